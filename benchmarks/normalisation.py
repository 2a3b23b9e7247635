"""Does normalising SmolLM2-135M's residual stream before the SAE change what it learns?

    .venv/bin/python benchmarks/normalisation.py [--hook layers.9] [--tokens 122880]

Extracts `smollm2-135m` activations at --hook on CPython's docs (train and held-out parts,
into benchmarks/.data/), prints how the variance is spread over the dimensions (the stream
has a few dimensions of very large magnitude), then trains the same TopK SAE (N=4096, k=32,
same seed and rows) on

* `raw` activations (what psae does),
* `scalar`: every row times one constant so that E‖x‖² = d (SAELens's
  `normalize_activations: expected_average_only_in`),
* `per-dimension`: each dimension standardised (not a peer's option; the extreme case),

and reports each one's FVU on the held-out rows in its own space (FVU is invariant to one
scale factor, so `raw` and `scalar` compare directly). Writes
benchmarks/results/normalisation.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from smollm2_rows import smollm2_rows  # benchmarks/ is the script's folder: on sys.path

from progressive_sae import TrainConfig, Trainer
from progressive_sae.data.source import TensorSource
from progressive_sae.lm import load_lm

HERE = Path(__file__).resolve().parent
B = 4096


def fvu(sae, x: torch.Tensor) -> float:
    with torch.no_grad():
        err = sum(float((x[i:i + B] - sae(x[i:i + B])).pow(2).sum())
                  for i in range(0, x.shape[0], B))
    return err / float((x - x.mean(0)).pow(2).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hook", default="layers.9")
    p.add_argument("--tokens", type=int, default=30 * B)
    p.add_argument("--heldout", type=int, default=16_384)
    p.add_argument("--seeds", default="0,1,2", help="SAE seeds (init and row order)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "normalisation.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    lm = load_lm("smollm2-135m")
    train = smollm2_rows(args.hook, "train", args.tokens, lm)
    held = smollm2_rows(args.hook, "heldout", args.heldout, lm)
    variance = (train - train.mean(0)).pow(2).mean(0)
    top = variance.topk(5)
    spread = {
        "mean_squared_norm": float(train.pow(2).sum(1).mean()),
        "largest_abs_value": float(train.abs().max()),
        "top5_dims": top.indices.tolist(),
        "top5_dims_share_of_variance": float(top.values.sum() / variance.sum()),
        "median_dim_variance": float(variance.median()),
        "largest_dim_variance": float(top.values[0]),
    }
    print(json.dumps(spread, indent=2))
    scale = (train.shape[1] / train.pow(2).sum(1).mean()) ** 0.5
    mu, sd = train.mean(0), train.std(0).clamp_min(1e-6)
    variants = {"raw": lambda x: x, "scalar": lambda x: x * scale,
                "per-dimension": lambda x: (x - mu) / sd}
    results = {}
    for name, transform in variants.items():
        fvus = []
        for seed in (int(s) for s in args.seeds.split(",")):
            cfg = TrainConfig(num_latents=4096, k=32, batch_size=B,
                              total_tokens=train.shape[0], seed=seed)
            trainer = Trainer(cfg, TensorSource(transform(train)), progress=False)
            trainer.fit()
            fvus.append(fvu(trainer.sae.eval(), transform(held)))
        mean = sum(fvus) / len(fvus)
        spread_ = (sum((f - mean) ** 2 for f in fvus) / max(1, len(fvus) - 1)) ** 0.5
        results[name] = {"heldout_fvu": fvus, "mean": mean, "std": spread_}
        print(name, results[name])
    record = {"model": "smollm2-135m", "hook": args.hook, "train_tokens": train.shape[0],
              "heldout_tokens": held.shape[0], "num_latents": 4096, "k": 32,
              "spread": spread, "scalar_factor": float(scale), "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
