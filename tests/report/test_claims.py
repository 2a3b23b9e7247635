"""Claims are judged from results alone: holds, does not hold, or not tested."""

from progressive_sae.report.claims import evaluate_claims
from progressive_sae.report.render import build_blocks, to_html, to_markdown


def point(series, g, fvu, rsa=0.9, **extra):
    return {"series": series, "sae": series, "granularity": g, "num_latents": 64,
            "trained_k": 8, "fvu": fvu, "rsa": rsa, "ce_ratio": None, **extra}


def results(points):
    return {"config": {"grid": {"num_latents": 64, "k": 8}, "eval": {"mode": "relative"},
                       "train": {"total_tokens": 1000}, "extract": {}, "text": None, "lm": {}},
            "saes": {}, "points": points, "plots": ["frontier_fvu.png"]}


def by_claim(claims, start):
    (claim,) = [c for c in claims if c.claim.startswith(start)]
    return claim


def test_matryoshka_beating_permuted_topk_everywhere_holds_and_once_losing_does_not():
    gs = [16, 32, 64]
    win = [point("Matryoshka", g, 0.1) for g in gs] + [
        point("TopK permuted by E[z²]", g, 0.2) for g in gs]
    claim = by_claim(evaluate_claims(results(win)), "Matryoshka has lower FVU")
    assert claim.verdict == "holds" and "2/2" in claim.found
    lose = [p for p in win if not (p["series"].startswith("TopK") and p["granularity"] == 16)]
    lose.append(point("TopK permuted by E[z²]", 16, 0.05))
    assert by_claim(evaluate_claims(results(lose)), "Matryoshka has lower FVU").verdict == (
        "does not hold")


def test_claims_without_data_are_not_tested():
    claims = evaluate_claims(results([]))
    assert all(c.verdict == "not tested" for c in claims)
    assert by_claim(claims, "Matryoshka has higher recaptured").found.startswith("no ce_ratio")


def test_the_report_has_the_claims_table_and_the_plots_in_both_formats():
    blocks = build_blocks(results([point("Matryoshka", 16, 0.1)]))
    md, html = to_markdown(blocks), to_html(blocks)
    assert "| claim | paper | this run | verdict |" in md
    assert "![" in md and "(plots/frontier_fvu.png)" in md
    assert "<img src='plots/frontier_fvu.png'" in html
    assert "E[z²]" in html and "<script" not in html


def test_matryoshka_claim_states_its_own_sizes_in_both_modes():
    gs = [16, 32, 64]
    points = [point("Matryoshka", g, 0.1) for g in gs] + [
        point("TopK permuted by E[z²]", g, 0.2) for g in gs]
    points += [point("prefix: Matryoshka", 16, 0.3), point("prefix: TopK permuted by E[z²]",
                                                           16, 0.25)]
    data = results(points)
    data["saes"] = {"Matryoshka": {"granularities": [16, 64]}}
    found = by_claim(evaluate_claims(data), "Matryoshka has lower FVU").found
    assert "relative mode 1/1 (G=16: 0.1 vs 0.2)" in found
    assert "prefix mode 0/1 (G=16: 0.3 vs 0.25)" in found


def _pair(x, y, spearman):
    return {"x": x, "y": y, "n": 20, "pearson": spearman, "pearson_p": 0.01,
            "spearman": spearman, "spearman_p": 0.01}


def test_metric_correlation_claims():
    data = results([])
    data["metric_correlation"] = {"pairs": [_pair("fvu", "ce_ratio", -0.9),
                                            _pair("fvu", "rsa", -0.95),
                                            _pair("ce_ratio", "rsa", 0.92)]}
    claims = evaluate_claims(data)
    assert by_claim(claims, "FVU and the recaptured LM loss").verdict == "holds"
    assert by_claim(claims, "RSA sits between").verdict == "holds"
    data["metric_correlation"]["pairs"][0] = _pair("fvu", "ce_ratio", -0.5)
    data["metric_correlation"]["pairs"][2] = _pair("ce_ratio", "rsa", 0.4)
    claims = evaluate_claims(data)
    assert by_claim(claims, "FVU and the recaptured LM loss").verdict == "does not hold"
    assert by_claim(claims, "RSA sits between").verdict == "does not hold"


def test_the_report_tables_absorption_per_sae_and_view_with_intervals():
    def view(sae, g, mode, frac, full):
        return {"sae": sae, "view": {"granularity": g, "mode": mode},
                "label": f"G={g} ({mode})", "mean_main_latents": 1.5,
                "mean_absorption_fraction": {"value": frac, "low": frac - 0.01,
                                             "high": frac + 0.01, "n": 40},
                "full_absorption_rate": None if full is None else {
                    "value": full, "low": 0.0, "high": full + 0.02, "n": 40}}
    data = results([point("Matryoshka", 16, 0.1)])
    data["evals"] = {"absorption": {"task": "first-letter", "scored_classes": ["a", "b"],
                                    "views": [view("Matryoshka", 64, "relative", 0.2, 0.05),
                                              view("Matryoshka", 16, "prefix", 0.3, None)]}}
    md = to_markdown(build_blocks(data))
    assert "Absorption (first-letter task) by SAE and view" in md
    assert "| Matryoshka | full | 0.200 [0.190, 0.210] | 0.050 [0.000, 0.070] | 1.5 |" in md
    assert "| Matryoshka | G=16 (prefix) | 0.300 [0.290, 0.310] | n/a | 1.5 |" in md
    assert "absorption fraction (2 classes)" in md
    assert "Absorption (" not in to_markdown(build_blocks(results([])))
