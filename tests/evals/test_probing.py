"""Sparse probing on hand-built activations and SAEs (no LM): a latent that equals the label,
gating, prefix views as columns of the full code, per-batch pooling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from progressive_sae.evals.common import GranularityView
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.probing.config import ProbingConfig
from progressive_sae.evals.probing.evaluate import probe_saes
from progressive_sae.evals.probing.pooling import TextActivations, pooled_latents
from progressive_sae.sae import SAEConfig, TopKSAE
from tests.helpers import one_line_error

D, N, K, TOKENS = 8, 16, 4, 3


def label_sae() -> TopKSAE:
    """Latent 0 reads dimension 0 (the label); the others read random mixes of dims 1..7."""
    sae = TopKSAE(SAEConfig(d_in=D, num_latents=N, k=K))
    g = torch.Generator().manual_seed(1)
    w = torch.randn(N, D, generator=g)
    w[:, 0] = 0
    w[0] = 0
    w[0, 0] = 1
    w = w / w.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_enc.copy_(w)
        sae.W_dec.copy_(w)
    return sae


def label_activations(n_texts: int = 160, seed: int = 0) -> tuple[TextActivations, np.ndarray]:
    """Texts whose tokens carry 3·label along dimension 0 plus noise in dimensions 1..7."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_texts) % 2
    tokens = rng.normal(0, 1.0, (n_texts, TOKENS, D)).astype(np.float32)
    tokens[:, :, 0] = 3.0 * labels[:, None]
    texts = tuple(f"text {i}" for i in range(n_texts))
    owner = torch.arange(n_texts).repeat_interleave(TOKENS)
    acts = TextActivations(texts, torch.from_numpy(tokens.reshape(-1, D)), owner,
                           torch.full((n_texts,), float(TOKENS)), "layers.0")
    return acts, labels


def split_task(name: str, texts: tuple[str, ...], labels: np.ndarray) -> TextTask:
    half = len(texts) // 2
    return TextTask(name, ("neg", "pos"), texts[:half], labels[:half], texts[half:],
                    labels[half:])


def test_a_latent_equal_to_the_label_gives_top1_accuracy_one():
    acts, labels = label_activations()
    task = split_task("label", acts.texts, labels)
    result = probe_saes({"sae": label_sae()}, acts, [task], [8],
                        ProbingConfig(resamples=200))
    # SAEBench's full-width recipe takes one step per epoch on 80 texts: near, not at, 1.
    assert not result.tasks[0].gated and result.tasks[0].residual.value > 0.9
    assert result.tasks[0].llm_top_k[1].value == 1.0  # dimension 0 is the label
    top1 = [s for s in result.scores if s.k == 1]
    assert {(s.granularity, s.mode) for s in top1} == {(16, "relative"), (8, "relative"),
                                                      (8, "prefix")}
    for s in top1:
        assert s.latents == [0]
        assert s.accuracy.value == 1.0 and s.accuracy.low == 1.0
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_task_the_residual_cannot_learn_is_gated_not_scored():
    acts, labels = label_activations()
    noise = np.random.default_rng(5).integers(0, 2, len(labels))
    learnable = split_task("label", acts.texts, labels)
    unlearnable = split_task("noise", acts.texts, noise)
    result = probe_saes({"sae": label_sae()}, acts, [learnable, unlearnable], None,
                        ProbingConfig(resamples=100))
    gated = {t.name: t.gated for t in result.tasks}
    assert gated == {"label": False, "noise": True}
    assert result.tasks[1].residual.value < 0.7
    assert {s.task for s in result.scores} == {"label"}
    assert all(s.tasks == 1 for s in result.summary)


def test_pooling_matches_dense_encode_and_prefix_is_columns_of_full():
    acts, _ = label_activations(20)
    sae = TopKSAE(SAEConfig(d_in=D, num_latents=N, k=K))
    for view in (None, GranularityView(8, "relative"), GranularityView(8, "prefix")):
        g = N if view is None else view.granularity
        mode = "relative" if view is None else view.mode
        dense = sae.encode(acts.tokens, g, mode).to_dense(N)[:, :g].view(20, TOKENS, g)
        pooled = pooled_latents(sae, acts, view, batch_tokens=7)  # batches cut across texts
        torch.testing.assert_close(pooled, dense.mean(1))
    torch.testing.assert_close(pooled_latents(sae, acts, GranularityView(8, "prefix")),
                               pooled_latents(sae, acts)[:, :8])


def test_sae_width_must_match_the_activations():
    acts, labels = label_activations(20)
    wide = TopKSAE(SAEConfig(d_in=D + 1, num_latents=N, k=K))
    one_line_error(lambda: probe_saes({"wide": wide}, acts, [split_task("t", acts.texts, labels)]),
                   "wide", "d_in=9", "width 8")


@pytest.mark.parametrize("bad", [np.zeros(10, dtype=np.int64), np.array([], dtype=np.int64)])
def test_a_task_needs_both_classes(bad):
    acts, _ = label_activations(20)
    task = TextTask("t", ("a", "b"), acts.texts[:10], bad, acts.texts[10:],
                    np.arange(10) % 2)
    one_line_error(lambda: probe_saes({"s": label_sae()}, acts, [task]), "'t'", "train")


def test_headline_is_the_full_size_mean_per_sae():
    acts, labels = label_activations()
    result = probe_saes({"sae": label_sae()}, acts, [split_task("label", acts.texts, labels)],
                        [8], ProbingConfig(resamples=50))
    assert result.headline(k=1)["sae"].value == 1.0
    assert set(result.headline(k=2, granularity=8, mode="prefix")) == {"sae"}


def test_means_are_over_tasks_within_a_dataset_then_over_datasets():
    """SAEBench averages a dataset's classes first: two tasks of dataset 'd' weigh as much
    together as the one task of dataset 'e'. Also reported: llm_top_k and the all-latents
    probe (k = 0)."""
    acts, labels = label_activations(240)
    flipped = labels.copy()
    flipped[np.random.default_rng(7).random(len(labels)) < 0.15] ^= 1  # ~85% learnable
    tasks = [split_task("d:clean", acts.texts, labels), split_task("d:noisy", acts.texts, flipped),
             split_task("e", acts.texts, labels)]
    result = probe_saes({"sae": label_sae()}, acts, tasks, None,
                        ProbingConfig(resamples=50, probe="logistic"))
    assert not any(t.gated for t in result.tasks)
    top1 = {s.task: s.accuracy.value for s in result.scores if s.k == 1}
    summary = next(s for s in result.summary if s.k == 1)
    expected = ((top1["d:clean"] + top1["d:noisy"]) / 2 + top1["e"]) / 2
    assert summary.accuracy.value == pytest.approx(expected)
    assert summary.accuracy.value != pytest.approx(np.mean(list(top1.values())))
    assert summary.tasks == 3 and summary.datasets == 2
    assert {s.k for s in result.summary} == {0, 1, 2, 5}
    assert set(result.llm_top_k) == {1, 2, 5} and result.llm_top_k[1].value > 0.9
    json.dumps(result.to_dict(), allow_nan=False)
