"""LM absorption (SAEBench's definitions): hand-built rows and SAEs, the read position on the
shipped tokenizer, token label sets, and bad input through the CLI."""

import json

import numpy as np
import pytest
import torch

from progressive_sae.cli import main
from progressive_sae.data import CacheWriter
from progressive_sae.evals.absorption import (
    AbsorptionConfig,
    PromptConfig,
    evaluate_absorption,
    label_tokens,
    plot_absorption,
    read_position,
    row_absorption,
)
from progressive_sae.evals.absorption.first_letter import (
    build_prompt,
    build_prompts,
    vocabulary_words,
)
from progressive_sae.lm.offline import load_offline_lm
from progressive_sae.sae import SAEConfig, TopKSAE, save_sae
from tests.helpers import one_line_error


def test_row_absorption_follows_saebench_on_hand_built_rows():
    cos = torch.tensor([1.0, 0.8, 0.05, -0.5])  # latent 0 is the main latent
    code = torch.tensor([
        [1.0, 0.0, 0.0, 0.0],    # the main latent carries the whole projection
        [0.0, 1.25, 0.0, 0.0],   # main silent, an aligned latent carries it all
        [0.5, 0.625, 0.0, 0.0],  # half and half
        [0.0, 0.0, 10.0, 0.0],   # only a barely aligned latent (cos 0.05 < 0.1)
    ])
    projection = torch.ones(4)
    fraction, full = row_absorption(code, projection, cos, [0], AbsorptionConfig())
    torch.testing.assert_close(fraction, torch.tensor([0.0, 1.0, 0.5, 0.0]))
    # Full absorption uses SAEBench's looser cosine (0.025) for the top projecting latent.
    assert full.tolist() == [False, True, False, True]


def _absorbing_case(seed: int = 0):
    """Rows of a concept (direction e0); 10% of its rows also hold one of four sub-features,
    and there the concept's latent is silent while a latent 'concept + sub-feature' fires."""
    g = torch.Generator().manual_seed(seed)
    n, d = 4000, 16
    positive = torch.rand(n, generator=g) < 0.5
    sub = torch.randint(1, 5, (n,), generator=g)
    absorbed = positive & (torch.rand(n, generator=g) < 0.1)
    eye = torch.eye(d)
    x = positive[:, None] * eye[0] + absorbed[:, None] * eye[sub] + 0.01 * torch.randn(
        n, d, generator=g)
    sae = TopKSAE(SAEConfig(d_in=d, num_latents=8, k=7))
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_dec.copy_(eye[8:16])  # spare latents point elsewhere
        sae.W_enc[0] = eye[0] - 3 * eye[1:5].sum(0)
        sae.W_dec[0] = eye[0]
        for i in range(1, 5):
            sae.W_enc[i] = eye[i]
            sae.W_dec[i] = torch.nn.functional.normalize(eye[0] + eye[i], dim=0)
        sae.b_enc.fill_(-0.05)
    labels = np.where(positive.numpy(), "concept", "rest")
    return sae, x, labels, absorbed[positive].float().mean().item()


def test_absorbed_rows_are_found_and_the_main_latent_is_the_concept(tmp_path):
    sae, x, labels, share = _absorbing_case()
    saebench = AbsorptionConfig(absorber_cos=0.1, full_absorption_cos=0.025, resamples=200)
    result = evaluate_absorption({"hand": sae}, x, labels, granularities=[5], config=saebench)
    assert {p.name: p.status for p in result.probes} == {"concept": "scored", "rest": "scored"}
    full = result.views[0]
    concept = next(c for c in full.classes if c.name == "concept")
    assert concept.main_latents == (0,)  # each absorber alone adds < 0.03 F1: not "split"
    assert concept.mean_absorption_fraction == pytest.approx(share, abs=0.03)
    assert concept.full_absorption_rate == pytest.approx(share, abs=0.03)
    # G=5 keeps the main latent and every absorber: the same answer in both modes.
    for view in result.views[1:]:
        c = next(c for c in view.classes if c.name == "concept")
        assert c.mean_absorption_fraction == pytest.approx(concept.mean_absorption_fraction)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["scored_classes"] == ["concept", "rest"] and len(data["views"]) == 3
    assert plot_absorption(result, tmp_path / "a.png").stat().st_size > 1000


def test_classes_the_residual_probe_cannot_learn_are_gated_not_scored():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 8, generator=g)
    labels = np.where(np.arange(600) % 3 == 0, "a", "b")  # unrelated to x
    result = evaluate_absorption({"s": TopKSAE(SAEConfig(d_in=8, num_latents=16, k=2))}, x,
                                 labels, config=AbsorptionConfig(resamples=50))
    assert {p.status for p in result.probes} == {"gated"}
    assert result.views[0].mean_absorption_fraction is None and not result.views[0].classes


@pytest.fixture(scope="module")
def tokenizer():
    return load_offline_lm()[1]


def test_read_position_on_the_shipped_tokenizer_is_the_words_last_token(tokenizer):
    words = vocabulary_words(tokenizer)
    word = next(w for w in words if w == " generator")
    config = PromptConfig(icl_examples=2)
    text, start, end = build_prompt(word, [" contains", " appear"], config)
    position = read_position(tokenizer, text, start, end)
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)
                                             ["input_ids"])
    assert pieces[position] == "Ġgenerator"
    assert pieces[-3:] == ["Ġlet", "ter", ":"]  # " letter" is two tokens here
    assert pieces[-2] != "Ġgenerator"  # SAEBench's fixed offset -2 would read " let"
    assert position == len(pieces) - 7  # then " has the first let ter :"
    # A word that merges with the text after it has no position of its own.
    vocab = tokenizer.get_vocab()
    merging = next(w for w in words if "Ġ" + w[1:] + "s" in vocab)
    text, start, end = build_prompt(merging, [], PromptConfig(template="{word}s:"))
    assert read_position(tokenizer, text, start, end) is None


def test_words_per_letter_caps_common_letters_and_keeps_rare_ones(tokenizer):
    def letters(words):
        counts = {}
        for w in words:
            counts[w.strip()[0].lower()] = counts.get(w.strip()[0].lower(), 0) + 1
        return counts

    every = letters(vocabulary_words(tokenizer))
    cap = sorted(every.values())[len(every) // 2]  # half the letters have more words than this
    config = PromptConfig(icl_examples=1, words_per_letter=cap)
    prompts = build_prompts(tokenizer, config, seed=3)
    kept = letters(prompts.words)
    assert kept == {c: min(n, cap) for c, n in every.items()}  # rare letters keep every word
    assert prompts.words == build_prompts(tokenizer, config, seed=3).words  # seeded
    assert prompts.words != build_prompts(tokenizer, config, seed=4).words


def test_token_label_sets():
    pieces = [">>>", " x", "\n", "The", " valu", "es", " Big", "\n", " 12"]
    assert label_tokens("word-start", pieces) == [
        None, "word start", None, "word start", "word start", "continuation", "word start",
        None, None]
    assert label_tokens("capitalised", pieces) == [
        None, "lower case", None, "capitalised", "lower case", None, "capitalised", None, None]
    assert label_tokens("doctest", pieces) == [
        "doctest", "doctest", None] + ["other line"] * 4 + [None, "other line"]
    assert label_tokens("doctest", pieces, starts_a_line=False)[:2] == [None, None]


def _cache(path, tokenizer, texts):
    """A one-window-per-text activation cache of the shipped tokenizer's tokens."""
    writer = CacheWriter(path, dtype="float32", meta={"hook": "layers.2"})
    g = torch.Generator().manual_seed(0)
    for seq, text in enumerate(texts):
        ids = [0] + tokenizer(text, add_special_tokens=False)["input_ids"]
        writer.add(torch.randn(len(ids), 256, generator=g), torch.tensor(ids),
                   torch.full((len(ids),), seq), torch.arange(len(ids)))
    writer.finish()
    return path


def _psae_error(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("psae: error:"), err
    return err


def test_bad_input_through_the_cli_is_one_line_and_exit_2(tmp_path, tokenizer, capsys):
    sae = save_sae(TopKSAE(SAEConfig(d_in=256, num_latents=64, k=4)), tmp_path / "sae")
    narrow = save_sae(TopKSAE(SAEConfig(d_in=32, num_latents=64, k=4)), tmp_path / "narrow")
    out = str(tmp_path / "out")
    digits = _cache(tmp_path / "digits", tokenizer, ["1 2 3 4 5 6 7 8 9 10 11 12"] * 4)
    lower = _cache(tmp_path / "lower", tokenizer, ["the value of the list is"] * 4)
    base = [str(sae), "--lm", "offline-default", "--hook", "layers.2", "--out", out]
    err = _psae_error(capsys, "absorption", *base, "--task", "capitalised", "--data",
                      str(digits))
    assert "empty label set" in err
    err = _psae_error(capsys, "absorption", *base, "--task", "capitalised", "--data",
                      str(lower))
    assert "single class" in err and "lower case" in err
    err = _psae_error(capsys, "absorption", *base, "--template", "Its first letter is:")
    assert "word position cannot be found" in err and "Its first letter" in err
    err = _psae_error(capsys, "absorption", str(narrow), "--synthetic", "toy_tree",
                      "--out", out)
    assert "d_in=32" in err and "64" in err
    err = _psae_error(capsys, "absorption", str(sae), "--out", out)
    assert "--synthetic" in err
    assert not (tmp_path / "out").exists()


def test_label_checks_in_the_api():
    sae = TopKSAE(SAEConfig(d_in=4, num_latents=8, k=2))
    one_line_error(lambda: evaluate_absorption({"s": sae}, torch.zeros(0, 4), []), "empty")
    one_line_error(lambda: evaluate_absorption({"s": sae}, torch.zeros(3, 4), ["a"] * 3),
                   "single class", "'a'")
    one_line_error(lambda: evaluate_absorption({"s": sae}, torch.zeros(3, 5), ["a", "b", "a"]),
                   "d_in=4", "5")


def test_cli_writes_json_and_plot_for_a_synthetic_yaml_and_a_cache_task(tmp_path, tokenizer,
                                                                         capsys):
    from progressive_sae.data import SyntheticActivations, SyntheticConfig

    source = SyntheticActivations(SyntheticConfig.toy_tree(mean_active=2.0))
    sae = TopKSAE(SAEConfig(d_in=64, num_latents=32, k=8))
    with torch.no_grad():
        sae.W_dec.copy_(source.features)
        sae.W_enc.copy_(source.features)
        sae.b_dec.copy_(source.offset)
    folder = save_sae(sae, tmp_path / "ideal")
    (tmp_path / "tree.yaml").write_text("synthetic: {preset: toy_tree, mean_active: 2.0}\n")
    capsys.readouterr()
    assert main(["absorption", str(folder), "--synthetic", str(tmp_path / "tree.yaml"),
                 "--rows", "4096", "--granularities", "16", "--out", str(tmp_path / "h")]) == 0
    data = json.loads((tmp_path / "h" / "hierarchy.json").read_text())
    assert [v["label"] for v in data["views"]] == ["G=32 (relative)", "G=16 (relative)",
                                                   "G=16 (prefix)"]
    assert data["views"][0]["matched_mean_abs_cos"] == pytest.approx(1.0)
    assert (tmp_path / "h" / "hierarchy.png").stat().st_size > 1000

    texts = ["The Value of a List is Here", "some words and Some Other Words"] * 8
    cache = _cache(tmp_path / "cache", tokenizer, texts)
    wide = save_sae(TopKSAE(SAEConfig(d_in=256, num_latents=64, k=4)), tmp_path / "wide")
    assert main(["absorption", str(wide), "--lm", "offline-default", "--hook", "layers.2",
                 "--task", "capitalised", "--data", str(cache), "--resamples", "50",
                 "--out", str(tmp_path / "a")]) == 0
    data = json.loads((tmp_path / "a" / "absorption_capitalised.json").read_text())
    assert sorted(p["name"] for p in data["probes"]) == ["capitalised", "lower case"]
    assert data["details"]["hook"] == "layers.2"
    assert (tmp_path / "a" / "absorption_capitalised.png").stat().st_size > 1000


def test_cosine_thresholds_are_saebench_at_its_width_and_the_same_chance_level_below():
    config = AbsorptionConfig()
    assert config.cosine_thresholds(2304) == pytest.approx((0.1, 0.025))
    assert config.cosine_thresholds(4096) == (0.1, 0.025)
    assert config.cosine_thresholds(256) == pytest.approx((0.1875, 0.075))
    assert config.cosine_thresholds(None) == (0.1, 0.025)
    assert AbsorptionConfig(absorber_cos=0.1).cosine_thresholds(256)[0] == 0.1


def test_classes_too_small_to_split_are_reported_not_fitted():
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    result = evaluate_absorption({"s": TopKSAE(SAEConfig(d_in=4, num_latents=8, k=2))}, x,
                                 ["a", "b"] * 10, config=AbsorptionConfig(resamples=20))
    assert {p.status for p in result.probes} == {"too_few"}
    assert result.views[0].mean_absorption_fraction is None
