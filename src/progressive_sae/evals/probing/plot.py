"""Plot of sparse probing: mean top-k accuracy over the scored tasks against granularity."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.evals.probing.result import ProbingResult

LINESTYLES = {"relative": "-", "prefix": "--"}


def plot_probing(result: ProbingResult, path: str | Path) -> Path:
    """One panel per k: accuracy (95% CI bars) vs G per SAE and mode; the full-residual probe
    as a grey line. Writes a PNG at `path`."""
    ks = sorted({s.k for s in result.summary}, key=lambda k: (k == 0, k)) or [1]
    fig, axes = new_figure(len(ks))
    lines: dict[tuple, list] = defaultdict(list)
    largest: dict[str, int] = defaultdict(int)
    for s in result.summary:
        largest[s.sae] = max(largest[s.sae], s.granularity)
    for s in result.summary:
        lines[(s.k, s.sae, s.mode)].append(s)
    for s in result.summary:  # the full dictionary is listed once (relative); both lines end there
        if s.granularity == largest[s.sae] and (s.k, s.sae, "prefix") in lines:
            lines[(s.k, s.sae, "prefix")].append(s)
    for ax, k in zip(axes, ks):
        for (kk, sae, mode), points in sorted(lines.items()):
            if kk != k:
                continue
            points.sort(key=lambda s: s.granularity)
            xs = [p.granularity for p in points]
            ys = [p.accuracy.value for p in points]
            err = [[max(0.0, p.accuracy.value - p.accuracy.low) for p in points],
                   [max(0.0, p.accuracy.high - p.accuracy.value) for p in points]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, linestyle=LINESTYLES[mode],
                        label=f"{sae} ({mode})")
        if result.residual_mean is not None:
            ax.axhline(result.residual_mean.value, color="grey", linestyle=":",
                       label="full residual")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("granularity G (first G latents)")
        ax.set_ylabel("test accuracy, mean over datasets")
        scored = sum(not t.gated for t in result.tasks)
        which = f"top-{k} latents" if k else "all latents"
        ax.set_title(f"sparse probing, {which} ({scored}/{len(result.tasks)} tasks scored)"
                     if result.summary else "sparse probing: every task gated")
        if result.summary:
            ax.legend(fontsize=7)
    return save_figure(fig, path)
