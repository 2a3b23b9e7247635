"""One report per run, as HTML with a Markdown copy: claims, plots and tables.

Both are built from the same list of blocks (heading, paragraph, table, image, links), so the
two files always say the same thing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from progressive_sae.analysis.frontier import SIDE_SERIES
from progressive_sae.atomic import write_bytes_atomic
from progressive_sae.report.claims import evaluate_claims

PLOT_CAPTIONS = {
    "frontier_fvu": "Progressive-coding frontier: FVU against granularity G.",
    "frontier_ce_ratio": "Recaptured LM loss CE_clean/CE_spliced against G.",
    "frontier_rsa": "Representational similarity (RSA) against G.",
    "sparsity_frontier_fvu": "Sparsity–fidelity frontier: FVU against measured L0, at full size "
                             "and at prefixes.",
    "sparsity_frontier_ce_ratio": "Sparsity frontier of the recaptured LM loss.",
    "power_law": "Dictionary power law: decoder-covariance eigenvalues, E[z²] and firing "
                 "frequency by rank, with fits.",
    "scaling_law": "Scaling law (eq. 9): predicted against observed FVU.",
    "decoder_similarity_matryoshka": "Decoder cosine similarity of the Matryoshka SAE "
                                     "(granularity boundaries marked).",
    "decoder_similarity_topk": "Decoder cosine similarity of the TopK SAE.",
    "feature_splitting": "Feature splitting: large-SAE latents per small-SAE latent.",
    "activation_mass": "Cumulative activation mass over latent index.",
    "metric_correlation": "FVU, recaptured LM loss and RSA over every scored point, by SAE "
                          "family (Pearson/Spearman in the claims table).",
    "absorption": "Feature absorption on LM tokens per SAE and granularity (lower is better).",
    "sparse_probing": "Sparse probing: top-k latent probe accuracy per SAE and granularity.",
    "concept_erasure": "Targeted concept erasure (SCR, TPP) against latents ablated.",
    "hierarchy_absorption": "Ground-truth hierarchy: absorption gap per parent/child edge.",
}
PLOT_PREFIX_CAPTIONS = {
    "interp_": "Interpretability (simulation/fuzzing/detection scores): ",
}

Block = tuple[str, Any]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _frontier_table(results: dict, metric: str) -> tuple[list[str], list[list[str]]] | None:
    rows: dict[str, dict[int, float]] = {}
    for p in results["points"]:
        if p["series"].startswith(SIDE_SERIES) or p.get(metric) is None:
            continue
        rows.setdefault(p["series"], {})[p["granularity"]] = p[metric]
    if not rows:
        return None
    gs = sorted({g for r in rows.values() for g in r})
    header = ["series"] + [f"G={g}" for g in gs]
    return header, [[name] + [_fmt(r.get(g)) for g in gs] for name, r in rows.items()]


def _interval(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "n/a"
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def _absorption_table(results: dict) -> tuple[list[str], list[list[str]]] | None:
    """Each SAE's absorption at full size and every view (both modes), 95% bootstrap CIs."""
    absorption = (results.get("evals") or {}).get("absorption")
    if not absorption or not absorption.get("views"):
        return None
    full = {}
    for v in absorption["views"]:
        full[v["sae"]] = max(full.get(v["sae"], 0), v["view"]["granularity"])
    rows = [[v["sae"], "full" if v["view"]["granularity"] == full[v["sae"]] else v["label"],
             _interval(v["mean_absorption_fraction"]), _interval(v["full_absorption_rate"]),
             _fmt(v["mean_main_latents"])] for v in absorption["views"]]
    scored = len(absorption.get("scored_classes") or [])
    return (["SAE", "view", f"absorption fraction ({scored} classes)", "full absorption rate",
             "main latents per class"], rows)


def build_blocks(results: dict) -> list[Block]:
    grid = results["config"]["grid"]
    blocks: list[Block] = [("h1", "progressive-sae experiment report")]
    lm = results["config"].get("lm") or {}
    text = results["config"].get("text") or {}
    where = (f"LM {lm.get('model', 'offline-default')}, hook "
             f"{results['config']['extract'].get('hook')}, text {text.get('source')}"
             if text else "ready activation sources (no LM)")
    train = results["config"]["train"]
    blocks.append(("p", f"{where}. Largest dictionary N={grid['num_latents']}, k={grid['k']}, "
                        f"{train['total_tokens']:,} training tokens per SAE, "
                        f"{len(results['saes'])} SAEs scored in "
                        f"'{results['config']['eval']['mode']}' sparsity mode."))
    if results.get("baseline_ce"):
        b = results["baseline_ce"]
        blocks.append(("p", f"LM cross-entropy on {b['tokens']:,} held-out tokens: clean "
                            f"{b['ce_clean']:.4f}, zero-ablated {b['ce_zero']:.4f}."))
    blocks.append(("h2", "The paper's claims beside this run"))
    claims = evaluate_claims(results)
    blocks.append(("table", (["claim", "paper", "this run", "verdict"],
                             [[c.claim, c.paper, c.found, c.verdict] for c in claims])))
    blocks.append(("h2", "Plots"))
    for name in results["plots"]:
        stem = Path(name).stem
        caption = PLOT_CAPTIONS.get(stem) or next(
            (text + stem.removeprefix(prefix).replace("_", " ")
             for prefix, text in PLOT_PREFIX_CAPTIONS.items() if stem.startswith(prefix)), stem)
        blocks.append(("img", (f"plots/{name}", caption)))
    for metric, title in (("fvu", "FVU"), ("ce_ratio", "Recaptured LM loss"), ("rsa", "RSA")):
        table = _frontier_table(results, metric)
        if table:
            blocks.append(("h2", f"{title} by granularity"))
            blocks.append(("table", table))
    browsers = (results.get("interp") or {}).get("browsers") or {}
    if browsers:
        blocks.append(("h2", "Feature browsers"))
        blocks.append(("p", "One self-contained page per interpreted SAE: every latent's top "
                            "windows, activation histogram, decoder neighbours and logit effects, "
                            "with the explanations and scores of this run."))
        blocks.append(("links", [(name, path) for name, path in browsers.items()]))
    absorption = _absorption_table(results)
    if absorption:
        blocks.append(("h2", f"Absorption ({results['evals']['absorption']['task']} task) by "
                             "SAE and view"))
        blocks.append(("table", absorption))
    if results.get("power_law"):
        rows = []
        for name, law in results["power_law"].items():
            for stat in ("decoder_eigenvalues", "mean_sq", "frequency"):
                for part in ("full", "central"):
                    f = law[stat][part]
                    rows.append([name, stat, part, f"{f['exponent']:.3f}", f"{f['r2']:.3f}"])
        blocks.append(("h2", "Power-law fits (value ∝ rank^-exponent)"))
        blocks.append(("table", (["SAE", "statistic", "range", "exponent", "R²"], rows)))
    if results.get("scaling_law"):
        fit = results["scaling_law"]
        blocks.append(("h2", "Scaling-law fit (eq. 9)"))
        blocks.append(("table", (list(fit["params"]) + ["R² (log)", "points"],
                                 [[_fmt(v) for v in fit["params"].values()]
                                  + [_fmt(fit["r2_log"]), str(fit["n_points"])]])))
    return blocks


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + body)
        elif kind == "p":
            out.append(body)
        elif kind == "img":
            src, caption = body
            out.append(f"![{caption}]({src})\n\n*{caption}*")
        elif kind == "links":
            out.append("\n".join(f"- [{text}](<{href}>)" for text, href in body))
        elif kind == "table":
            header, rows = body
            cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
            lines = ["| " + " | ".join(map(cell, header)) + " |",
                     "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def to_html(blocks: Sequence[Block]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>progressive-sae report</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}",
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}",
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}",
             "th{background:#f3f3f3}.holds{color:#176b1f}.does{color:#a11}",
             "figure{display:inline-block;margin:0.5em;width:520px}img{width:100%}",
             "</style></head><body>"]
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{e(body)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(body)}</p>")
        elif kind == "img":
            src, caption = body
            parts.append(f"<figure><img src='{e(src)}' alt='{e(caption)}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
        elif kind == "links":
            parts.append("<ul>" + "".join(f"<li><a href='{e(href)}'>{e(text)}</a></li>"
                                          for text, href in body) + "</ul>")
        elif kind == "table":
            header, rows = body
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                cells = []
                for value in row:
                    css = {"holds": "holds", "does not hold": "does"}.get(str(value))
                    attr = f" class='{css}'" if css else ""
                    cells.append(f"<td{attr}>{e(str(value))}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(out: Path, results: dict) -> tuple[Path, Path]:
    """Write out/report.html and out/report.md from `results` (results.json's content)."""
    blocks = build_blocks(results)
    html_path, md_path = out / "report.html", out / "report.md"
    write_bytes_atomic(html_path, to_html(blocks).encode())
    write_bytes_atomic(md_path, to_markdown(blocks).encode())
    return html_path, md_path
