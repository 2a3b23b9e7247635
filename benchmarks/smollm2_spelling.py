"""At which SmolLM2-135M layer does the residual stream spell? SAEBench's first-letter task.

    .venv/bin/python benchmarks/smollm2_spelling.py [--layers 3,6,9,12,15,20] [--per-letter 100]

Builds the absorption evaluation's first-letter prompts (`"{word} has the first letter:"`,
two answered in-context examples, read at the word's own token; single-token alphabetic
words of SmolLM2's vocabulary, at most --per-letter per first letter), runs SmolLM2 once up to
the deepest layer asked for while keeping each asked layer's residual stream at the read
position, and fits at each layer the very probes the absorption evaluation gates on (the
same seeded train/val/test split, one-vs-rest class-balanced logistic regression on the
residual, test F1). Prints and writes benchmarks/results/smollm2_spelling.json: per layer,
each letter's test F1 and how many letters reach F1 ≥ 0.6 and ≥ the evaluation's gate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from progressive_sae.evals.absorption import AbsorptionConfig
from progressive_sae.evals.absorption.first_letter import PromptConfig, Prompts, build_prompts
from progressive_sae.evals.absorption.measure import check_labelled, split_rows
from progressive_sae.evals.absorption.probes import f1_scores, fit_residual_probes
from progressive_sae.lm import load_lm
from progressive_sae.lm.hooks import activations
from progressive_sae.lm.model import LanguageModel

HERE = Path(__file__).resolve().parent
THRESHOLD = 0.6
"""The brief's bar: a layer is usable when ≥ 20 letters' residual probes reach this F1."""


@torch.no_grad()
def layer_activations(lm: LanguageModel, layers: list[int], prompts: Prompts,
                      batch_size: int) -> dict[int, torch.Tensor]:
    """Residual stream leaving each of `layers` at every prompt's read position, from one
    forward pass per batch that stops after the deepest layer."""
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(module, args, output) -> None:
            captured[layer] = output[0] if isinstance(output, tuple) else output
        return hook

    handles = [lm.blocks[layer].register_forward_hook(keep(layer)) for layer in layers]
    order = sorted(range(len(prompts.ids)), key=lambda i: len(prompts.ids[i]))
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            width = max(len(prompts.ids[i]) for i in chosen)
            ids = torch.zeros(len(chosen), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(chosen):  # right padding: causal attention never sees it
                ids[row, :len(prompts.ids[i])] = torch.tensor(prompts.ids[i])
                mask[row, :len(prompts.ids[i])] = 1
            activations(lm, ids, f"layers.{max(layers)}", attention_mask=mask)
            where = torch.tensor([prompts.positions[i] for i in chosen])
            for layer in layers:
                acts = captured[layer]
                out[layer].append(acts[torch.arange(len(chosen)), where].float().cpu())
    finally:
        for handle in handles:
            handle.remove()
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return {layer: torch.cat(parts)[inverse] for layer, parts in out.items()}


def letter_f1(x: torch.Tensor, letters: list[str], config: AbsorptionConfig) -> dict[str, float]:
    """Test F1 of each letter's residual probe, exactly as the absorption evaluation fits it
    (letters too small to split are left out)."""
    y, names = check_labelled(x, letters)
    train, val, test = split_rows(x.shape[0], config)
    labels = y.numpy()
    enough = [c for c in range(len(names))
              if min(int((labels[s] == c).sum()) for s in (train, val, test))
              >= config.min_class_rows]
    xn = x.numpy().astype(np.float64)
    probes = fit_residual_probes(xn[train], labels[train], len(names), enough, config.probe_c)
    said = probes.scores(xn[test]) > 0
    return {names[c]: round(float(f1_scores(said[:, c][None], (labels[test] == c)[None])[0]), 4)
            for c in enough}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="3,6,9,12,15,20")
    p.add_argument("--per-letter", type=int, default=100, help="words per first letter, at most")
    p.add_argument("--icl-examples", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", type=Path, default=HERE / "results" / "smollm2_spelling.json")
    args = p.parse_args()
    layers = sorted({int(v) for v in args.layers.split(",")})
    torch.manual_seed(0)
    lm = load_lm("smollm2-135m")
    config = AbsorptionConfig()
    prompt_config = PromptConfig(icl_examples=args.icl_examples,
                                 words_per_letter=args.per_letter)
    prompts = build_prompts(lm.tokenizer, prompt_config, config.seed)
    letters = [w.strip()[0].lower() for w in prompts.words]
    tokens = sum(map(len, prompts.ids))
    print(f"{len(prompts.words)} prompts ({prompts.skipped} words skipped), {tokens} tokens; "
          f"e.g. {prompts.example!r}")
    start = time.perf_counter()
    acts = layer_activations(lm, layers, prompts, args.batch_size)
    lm_seconds = time.perf_counter() - start
    print(f"LM up to layers.{max(layers)}: {lm_seconds:.1f} s ({tokens / lm_seconds:.0f} "
          "tokens/s)")
    per_layer = {}
    for layer in layers:
        start = time.perf_counter()
        f1 = letter_f1(acts[layer], letters, config)
        above = sorted(letter for letter, v in f1.items() if v >= THRESHOLD)
        per_layer[f"layers.{layer}"] = {
            "letters_f1_ge_0.6": len(above),
            f"letters_f1_ge_gate_{config.gate_f1}": sum(v >= config.gate_f1 for v in f1.values()),
            "letters_scored": len(f1),
            "mean_f1": round(float(np.mean(list(f1.values()))), 4),
            "f1": f1, "probe_seconds": round(time.perf_counter() - start, 1)}
        print(f"layers.{layer}: {len(above)}/{len(f1)} letters with test F1 ≥ {THRESHOLD} "
              f"(mean {per_layer[f'layers.{layer}']['mean_f1']:.3f}); below: "
              f"{sorted(set(f1) - set(above))}")
    record = {
        "model": "smollm2-135m", "task": "first-letter", "template": prompt_config.template,
        "icl_examples": args.icl_examples, "words_per_letter": args.per_letter,
        "prompts": len(prompts.words), "words_skipped": prompts.skipped, "tokens": tokens,
        "letter_counts": {c: letters.count(c) for c in sorted(set(letters))},
        "splits": dict(zip(("train", "val", "test"),
                           map(len, split_rows(len(letters), config)))),
        "lm_seconds": round(lm_seconds, 1), "threshold": THRESHOLD, "gate_f1": config.gate_f1,
        "layers": per_layer, "torch_threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
