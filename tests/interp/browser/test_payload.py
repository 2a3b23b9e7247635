"""The browser's data: payload against the records, neighbours, logit effects, token text,
the embedded JSON, scores and `psae browse`'s bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from progressive_sae import SAEConfig, build_sae, save_sae
from progressive_sae.cli import main
from progressive_sae.data.cache import CacheWriter
from progressive_sae.interp.browser import build_browser, read_scores
from progressive_sae.interp.browser.logit_effect import logit_effects
from progressive_sae.interp.browser.neighbors import nearest_by_decoder
from progressive_sae.interp.browser.page import embed_json, read_embedded, render_page
from progressive_sae.interp.browser.payload import quantile_groups, round_sig
from progressive_sae.interp.browser.tokens import token_strings, token_text, visible
from progressive_sae.interp.config import InterpConfig
from progressive_sae.interp.pipeline import interpret
from progressive_sae.interp.records import LatentRecords
from progressive_sae.sae import load_sae
from progressive_sae.sae.io import weights_digest
from tests.helpers import one_line_error
from tests.interp.browser.conftest import EXPLAINED, NUM_LATENTS
from tests.interp.browser.test_browser_chromium import embedded_payload


def test_payload_holds_the_records(setting):
    payload = embedded_payload(setting["page"])
    records = LatentRecords.load(setting["records"])
    table = payload["latents"]
    assert table["index"] == list(range(NUM_LATENTS))
    np.testing.assert_allclose(table["frequency"], records.frequency, rtol=1e-3)
    np.testing.assert_allclose(table["max"], records.max_activation, rtol=1e-3)
    assert table["explanation"] == [EXPLAINED.get(j) for j in range(NUM_LATENTS)]
    assert table["scores"]["simulation"] == [
        pytest.approx(0.1 * j) if j in EXPLAINED else None for j in range(NUM_LATENTS)]
    assert table["scores"]["fuzzing"] == [None] * NUM_LATENTS
    live = records.live()
    assert len(live) > 10
    for j in live[:10]:
        detail = payload["details"][j]
        kept = records.windows(int(j), "top")[:10]
        assert [w[0] for w in detail["top"]] == [w.tokens.tolist() for w in kept]
        for (_, sparse), window in zip(detail["top"], kept):
            dense = np.zeros(len(window.tokens))
            dense[sparse[::2]] = sparse[1::2]
            np.testing.assert_allclose(dense, window.acts, rtol=1e-3)
        assert sum(detail["histogram"]["counts"]) == records.counts[j]
        assert table["top_tokens"][j][0] == int(kept[0].tokens[kept[0].acts.argmax()])
        assert len(detail["neighbors"]) == 8 and len(detail["suppressed"]) == 10
    used = {str(t) for d in payload["details"] for w in d["top"] for t in w[0]}
    assert used <= set(payload["tokens"])


def test_neighbours_are_the_largest_decoder_cosines():
    W = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    W[13] = 0  # a dead row: cosine 0 with everything
    latents = torch.tensor([0, 13, 49, 5])
    near, cos = nearest_by_decoder(W, latents, count=5, block=3)
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    for row, j in enumerate(latents.tolist()):
        sims = unit @ unit[j]
        sims[j] = -2
        expected = sims.topk(5)
        np.testing.assert_allclose(cos[row], expected.values, atol=1e-6)
        assert set(near[row].tolist()) == set(expected.indices.tolist()) or j == 13
        assert j not in near[row].tolist()


def test_logit_effects_use_the_final_norm_and_unembedding(lm):
    torch.manual_seed(0)
    W_dec = torch.randn(6, lm.d_model)
    up_ids, up, down_ids, down = logit_effects(lm, W_dec, torch.arange(6), count=5)
    model = lm.model
    for j in range(6):
        # the model's own final stage on a long multiple of the direction, minus its output
        # at zero (LayerNorm's bias): the same ranking
        direction = W_dec[j] / W_dec[j].norm() * 1000
        with torch.no_grad():
            logits = (model.lm_head(model.transformer.ln_f(direction))
                      - model.lm_head(model.transformer.ln_f(torch.zeros_like(direction))))
        assert up_ids[j].tolist() == logits.topk(5).indices.tolist()
        assert down_ids[j].tolist() == logits.topk(5, largest=False).indices.tolist()
        assert bool(torch.all(up[j][:-1] >= up[j][1:])) and bool(torch.all(down[j] < up[j]))


def test_token_text_is_readable(lm):
    tokenizer = lm.tokenizer
    ids = tokenizer.encode("naïve café ✓\n\tdef x <script>")
    texts = [token_text(tokenizer, i) for i in ids]
    assert "\ufffd" not in "".join(texts)  # byte fragments are shown as bytes
    assert "\\xc3" in texts  # the first byte of ï and é, alone
    shown = token_strings(tokenizer, ids)
    assert shown[str(tokenizer.encode("\n")[0])] == "↵"
    assert shown[str(tokenizer.encode("\t")[0])] == "⇥"
    assert " x" in shown.values()
    assert visible("a\x00b\r") == "a\\x00b␍"
    assert token_strings(None, ids) == {}


def test_quantile_groups_split_by_rank():
    scores = np.arange(10, 0, -1, dtype=np.float32)  # window i has max 10 - i
    wids = np.arange(10)
    groups = quantile_groups(scores, wids, quantiles=3, per_quantile=2)
    assert len(groups) == 3
    assert [scores[picks].tolist() for _, picks in groups] == [[1, 4], [5, 7], [8, 10]]
    assert "quantile 1 of 3 (window max 1 – 4)" in groups[0][0]
    assert [scores[p].tolist() for _, p in quantile_groups(scores[:2], wids[:2], 5, 3)] == \
        [[9], [10]]
    assert quantile_groups(scores[:0], wids[:0], 5, 2) == []


def test_round_sig():
    values = np.array([0.0, 1.23456, -0.000123456, 123456.7, 0.3, 5e-7])
    assert round_sig(values).tolist() == [0.0, 1.235, -0.0001235, 123500.0, 0.3, 5e-7]
    assert json.dumps(round_sig([0.1 + 0.2]).tolist()) == "[0.3]"


def test_embedded_payload_cannot_end_the_script_element():
    payload = {"title": "t", "tokens": {"1": "</script><script>alert(1)</script>",
                                        "2": "<!-- & \u2028 \n"},
               "details": [{"top": [[[1, 2], [0, 1.5]]]}, {"top": []}]}
    text = embed_json(payload)
    assert "<" not in text and ">" not in text and "&" not in text
    assert read_embedded(render_page(payload)) == payload


def test_scores_folder(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"latent": 1, "explanation": "x", "scores": {"simulation": 0.5}}\n'
        'not json\n{"latent": 2, "fuzzing": 0.75, "simulation": null}\n')
    scores = read_scores(tmp_path)
    assert scores.explanations == {1: "x"}
    assert scores.scores == {"simulation": {1: 0.5, 2: None}, "fuzzing": {2: 0.75}}


def test_scores_of_psae_interp(tmp_path):
    """The files `psae interp` writes: several SAEs (and the random control), an LLM and the
    baseline interpreter; the browsed SAE's lines are used, the LLM's explanation first."""
    from progressive_sae.interp.results import scores_path, write_scores
    from progressive_sae.interp.scorers.common import MethodScore
    from progressive_sae.interp.scoring import LatentResult

    def result(sae, interpreter, latent, text, value):
        return LatentResult(sae, interpreter, "[0, 40)", 0, latent, 0.01, text,
                            {"simulation": MethodScore(value), "fuzzing": MethodScore(
                                None, "all answers failed")})

    for sae in ("topk", "matryoshka", "random"):
        write_scores(scores_path(tmp_path, sae, "llm:offline-default"),
                     [result(sae, "llm:offline-default", 1, f"{sae} llm", 0.5),
                      result(sae, "llm:offline-default", 2, None, None)])
        write_scores(scores_path(tmp_path, sae, "baseline"),
                     [result(sae, "baseline", 1, f"{sae} table", 0.25),
                      result(sae, "baseline", 2, f"{sae} table 2", 0.125)])
    scores = read_scores(tmp_path, sae="/some/where/matryoshka")
    assert scores.explanations == {1: "matryoshka llm", 2: "[baseline] matryoshka table 2"}
    assert scores.scores == {
        "simulation (llm)": {1: 0.5, 2: None}, "fuzzing (llm)": {1: None, 2: None},
        "simulation (baseline)": {1: 0.25, 2: 0.125}, "fuzzing (baseline)": {1: None, 2: None}}
    assert "matryoshka" in scores.source and "llm:offline-default" in scores.source
    one_line_error(lambda: read_scores(tmp_path, sae="other"), "topk", "matryoshka", "'other'")


def test_granularity_and_latent_limit(setting, lm, tmp_path):
    sae = load_sae(setting["sae"])
    result = build_browser(sae, setting["cache"], tmp_path / "g", granularity=16,
                           mode="prefix", lm=lm, latents=10)
    payload = embedded_payload(result.page)
    assert result.latents == 10 and payload["latents"]["index"] == list(range(10))
    assert all(j < 16 for d in payload["details"] for j, _ in d["neighbors"])
    assert payload["meta"]["granularity"] == "16 (prefix)"


def _cli_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("psae: error: "), err
    for word in words:
        assert word in err[0], err[0]
    return err[0]


def test_bad_inputs(setting, tmp_path, capsys):
    out = tmp_path / "out"
    small = build_sae(SAEConfig(d_in=8, num_latents=16, k=2))
    save_sae(small, tmp_path / "small")
    _cli_error(capsys, ["browse", str(tmp_path / "small"), "--data", str(setting["cache"]),
                        "--out", str(out)], "d_in=8", "d=256")

    no_tokens = tmp_path / "no_tokens"
    writer = CacheWriter(no_tokens, dtype="float32", meta={"hook": "layers.2"})
    n = 64
    writer.add(np.zeros((n, 256), np.float32), np.full(n, -1), np.arange(n) // 16,
               np.arange(n) % 16)
    writer.finish()
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(no_tokens),
                        "--out", str(out)], "no token ids", str(no_tokens))
    np.save(tmp_path / "acts.npy", np.zeros((n, 256), np.float32))
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(tmp_path / "acts.npy"),
                        "--out", str(out)], "no token ids")

    empty = tmp_path / "interp"
    empty.mkdir()
    (empty / "notes.txt").write_text("no scores here")
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(setting["cache"]),
                        "--out", str(out), "--scores", str(empty)], str(empty), "scores")
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(setting["cache"]),
                        "--out", str(out), "--scores", str(tmp_path / "missing")], "missing")
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(setting["cache"]),
                        "--out", str(out), "--granularity", "99"], "99", "num_latents=40")
    _cli_error(capsys, ["browse", str(setting["sae"]), "--data", str(setting["cache"]),
                        "--out", str(out), "--lm", str(tmp_path / "no_model")], "no_model")

    # a cache whose manifest names the offline LM (d_model 256) under an SAE of d_in 8
    narrow = tmp_path / "narrow"
    writer = CacheWriter(narrow, dtype="float32", meta={"model": "offline-default",
                                                        "hook": "layers.2"})
    writer.add(np.ones((n, 8), np.float32), np.arange(n) % 50, np.arange(n) // 16,
               np.arange(n) % 16)
    writer.finish()
    _cli_error(capsys, ["browse", str(tmp_path / "small"), "--data", str(narrow),
                        "--out", str(out)], "d_model=256", "d_in=8")
    assert not out.exists()
    one_line_error(lambda: build_browser(setting["sae"], setting["cache"], out, latents=0),
                   "--latents 0")


def test_the_lm_named_by_the_cache():
    from types import SimpleNamespace

    from progressive_sae.interp.browser.build import _lm_label, resolve_lm

    notes: list[str] = []
    moved = SimpleNamespace(manifest={"model": "/elsewhere/src/progressive_sae/lm/offline/default"})
    assert _lm_label(resolve_lm(None, moved, notes)) == "offline-default" and notes == []
    remote = SimpleNamespace(manifest={"model": "google/gemma-2-2b"})
    assert resolve_lm(None, remote, notes) is None
    assert "google/gemma-2-2b" in notes[0] and "--lm" in notes[0]
    assert resolve_lm(None, SimpleNamespace(manifest={}), notes) is None and len(notes) == 2


def test_browse_finds_a_psae_run_s_scores_by_the_sae_s_weights(setting, tmp_path, capsys):
    """`psae run` files scores under series names ("TopK permuted by E[z²]"), not folder
    names: the browsed SAE is found by the weights its records were collected from, or
    named with --scores-name."""
    sae = load_sae(setting["sae"])
    other = build_sae(SAEConfig(d_in=sae.d_in, num_latents=NUM_LATENTS, k=6))
    other.reset_parameters(torch.Generator().manual_seed(2))
    cfg = InterpConfig.from_dict({
        "records": {"window": 8, "reservoir": 12, "top_windows": 4, "nonactivating_pool": 40},
        "sampling": {"quantiles": 1, "latents_per_quantile": 3, "train_examples": 4,
                     "test_examples": 2, "example_quantiles": 2},
        "granularities": [], "control": False})
    run = tmp_path / "interp"
    interpret({"TopK permuted by E[z²]": sae, "Matryoshka": other}, setting["cache"],
              "baseline", cfg, out=run)
    lines = (run / "scores" / "TopK permuted by E[z²].baseline.jsonl").read_text().splitlines()
    explained = {row["latent"] for row in map(json.loads, lines) if row.get("explanation")}

    found = read_scores(run, sae=str(setting["sae"]), weights=weights_digest(sae).hexdigest())
    assert "TopK permuted by E[z²]" in found.source and set(found.explanations) == explained
    one_line_error(lambda: read_scores(run, sae=str(setting["sae"])), "--scores-name")
    named = read_scores(run, name="Matryoshka")
    assert "Matryoshka" in named.source
    one_line_error(lambda: read_scores(run, name="TopK"), "--scores-name 'TopK'", "Matryoshka")

    page = tmp_path / "page"
    assert main(["browse", str(setting["sae"]), "--data", str(setting["cache"]), "--out",
                 str(page), "--scores", str(run), "--quiet"]) == 0
    assert main(["browse", str(setting["sae"]), "--data", str(setting["cache"]), "--out",
                 str(page), "--scores", str(run), "--scores-name", "Nope", "--quiet"]) == 2
    assert "--scores-name 'Nope'" in capsys.readouterr().err
