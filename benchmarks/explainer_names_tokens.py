"""Does the offline explainer name the token a latent fires on? Chat vs completion prompt.

    python benchmarks/explainer_names_tokens.py [--tokens 32768] [--no-simulation]

Plants one latent per token of PLANTED on a real activation cache (the shipped offline LM's
block-2 activations on CPython's docs; a one-hot cache over its token ids, scaled by the real
activation norms, read by an identity TopK SAE through the real records and sampling: 20
train, 4 test windows), then explains each with SmolLM2-135M (the offline default, greedy, 24
tokens) under each explanation prompt, counts the explanations that name the token (its
stripped text as a word of its own), and scores simulation (Pearson, 4 test + 4
non-activating windows per latent; the simulation prompt is the same for both). Work files go
to benchmarks/.data/names/. Prints a table and writes
benchmarks/results/explainer_names_tokens.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from progressive_sae.data.cache.reader import CachedActivations
from progressive_sae.interp.clients.offline import load_offline_default
from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import RecordsConfig, SamplingConfig
from progressive_sae.interp.explainer import LLMInterpreter
from progressive_sae.interp.planted import names, plant_token_latents
from progressive_sae.interp.prompts import load_tokenizer, token_text_from
from progressive_sae.interp.sampling import Bucket, LatentExamples, draw_examples
from progressive_sae.interp.scoring import score_latents
from progressive_sae.lm import load_lm
from progressive_sae.lm.extract import extract
from progressive_sae.lm.text import OFFLINE_CORPUS, TextConfig

HERE = Path(__file__).resolve().parent
PLANTED = (" can", " to", "()", " method", " return", ":", " if", " list", ",", " class",
           " value", " function", " exception", "(", ")", " is", " pattern", " statement")


def planted_latents(work: Path, tokens: int) -> tuple[list[LatentExamples], list[str], object]:
    lm = load_lm("offline-default")
    shutil.rmtree(work, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extract(lm, TextConfig(source=OFFLINE_CORPUS, ctx=64), "layers.2", work / "real",
                max_tokens=tokens, dtype="float32", progress=False)
    real = CachedActivations(work / "real", shuffle_buffer=0)
    ids = [lm.tokenizer.encode(w, add_special_tokens=False)[0] for w in PLANTED]
    sae = plant_token_latents(real, ids, work / "planted")
    n = len(ids)
    records = collect_records(sae, work / "planted", RecordsConfig(), out=work / "records")
    sampling = SamplingConfig(train_examples=20, test_examples=4)
    items, words = [], []
    for j, word in enumerate(PLANTED):
        drawn = draw_examples(records, j, 0, Bucket(0, n + 1), sampling)
        if isinstance(drawn, LatentExamples):
            items.append(drawn)
            words.append(word)
        else:
            print(f"skipped {word!r}: {drawn.reason}")
    return items, words, token_text_from(load_tokenizer(records.meta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--no-simulation", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # measured faster for SmolLM2 on shared cores
    items, words, text = planted_latents(HERE / ".data" / "names", args.tokens)
    client = load_offline_default("cpu")
    result: dict = {"model": client.model_id, "tokens": args.tokens, "latents": len(items),
                    "prompts": {}}
    methods = () if args.no_simulation else ("simulation",)
    for prompt in ("chat", "completion"):
        interpreter = LLMInterpreter(client, text, explanation_tokens=24, prompt=prompt)
        start = time.perf_counter()
        explanations = interpreter.explain(items)
        seconds = time.perf_counter() - start
        named = [isinstance(e, str) and names(e, w) for e, w in zip(explanations, words)]
        row = {"named": int(sum(named)), "explain_seconds": round(seconds, 1),
               "explanations": {w: e if isinstance(e, str) else None
                                for w, e in zip(words, explanations)}}
        if methods:
            scored = score_latents("planted", items, interpreter, methods, seed=1)
            values = [r.value("simulation") for r in scored]
            defined = [v for v in values if v is not None]
            row["simulation_mean"] = float(np.mean(defined)) if defined else None
            row["simulation_undefined"] = len(values) - len(defined)
            row["simulation"] = dict(zip(words, values))
        result["prompts"][prompt] = row
        sim = row.get("simulation_mean")
        print(f"{prompt:10} named {row['named']}/{len(items)}  explain {seconds:.1f} s"
              + (f"  simulation mean {sim:.3f}" if sim is not None else ""))
    out = HERE / "results" / "explainer_names_tokens.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
