"""SAEBench's torch probe recipe (AdamW, L1, best test epoch) on a problem worked by hand,
beside our sklearn probe on the same data."""

from __future__ import annotations

import numpy as np
import pytest

from progressive_sae.evals.probing.adamw import AdamWProbeSettings, train_adamw_probe
from progressive_sae.evals.probing.probes import fit_probe

# Train: 32 texts at x = (+1, 0) labelled 1 and 32 at (−1, 0) labelled 0; one batch of all
# 64, so each epoch is one AdamW step. Test: the two training points plus (100, −100)
# labelled 1, which is right only once w0 > w1 (the bias stays ~0: its gradient cancels
# between the two symmetric classes, so the factor 100 makes it irrelevant).
X = np.array([[1.0, 0.0]] * 32 + [[-1.0, 0.0]] * 32)
Y = np.array([1] * 32 + [0] * 32)
X_TEST = np.array([[1.0, 0.0], [-1.0, 0.0], [100.0, -100.0]])
Y_TEST = np.array([1, 0, 1])
INIT = (np.array([0.0, 0.0105]), 0.0)


def run(lr: float, l1: float, epochs: int = 20):
    settings = AdamWProbeSettings(epochs=epochs, batch_size=64, lr=lr, l1_penalty=l1,
                                  patience=epochs)
    return train_adamw_probe(X, Y, X_TEST, Y_TEST, settings, seed=0, init=INIT)


@pytest.mark.parametrize(("lr", "l1", "epoch"), [(1e-3, 1e-3, 6), (1e-3, 0.0, 11),
                                                 (2e-3, 1e-3, 3)])
def test_the_kept_epoch_follows_from_lr_l1_and_first_best_selection(lr, l1, epoch):
    """Adam moves a parameter whose gradient keeps its sign by ~lr per step, whatever the
    gradient's size. w0 (the signal weight, gradient ≈ −0.5) grows by lr per epoch. w1 sees no
    data (x1 = 0 on the training texts): with L1 its gradient is the constant l1·sign(w1),
    so it falls by lr per epoch from 0.0105; without L1 only AdamW's decay lr·0.01·w1 acts
    (negligible). The third test point turns right when w0 > w1:
      L1, lr = 1e-3:     t·lr > 0.0105 − t·lr  ⇔ t > 5.25  → epoch 6;
      no L1, lr = 1e-3:  t·lr > 0.0105         ⇔ t > 10.5  → epoch 11;
      L1, lr = 2e-3:     2t·lr' halves it      ⇔ t > 2.625 → epoch 3.
    Test accuracy is 2/3 from epoch 1 and 1 from then on; SAEBench keeps an epoch only on a
    strict improvement, so the kept probe is that epoch's, not the last (epoch 20) one."""
    trained = run(lr, l1)
    assert trained.epoch == epoch and trained.test_accuracy == 1.0
    w0, w1 = trained.probe.weight
    assert abs(w0 - epoch * lr) < 0.01 * epoch * lr  # not 20·lr: the kept epoch's weights
    expected_w1 = 0.0105 - (epoch * lr if l1 else 0.0)
    assert abs(w1 - expected_w1) < 2e-5
    assert abs(trained.probe.bias) < 1e-3


def test_patience_stops_before_the_late_improvement():
    """With patience 3 (L1, lr 1e-3), epochs 2–4 do not beat epoch 1's 2/3, so training stops
    after epoch 4 and keeps epoch 1: w0 = lr, w1 = 0.0105 − lr. (SAEBench's SCR/TPP config
    sets patience = epochs, so it never stops early; its full-width probes use 10.)"""
    settings = AdamWProbeSettings(epochs=20, batch_size=64, lr=1e-3, l1_penalty=1e-3,
                                  patience=3)
    short = train_adamw_probe(X, Y, X_TEST, Y_TEST, settings, seed=0, init=INIT)
    assert short.epoch == 1 and short.test_accuracy == pytest.approx(2 / 3)
    np.testing.assert_allclose(short.probe.weight, [1e-3, 0.0105 - 1e-3], atol=1e-6)


def test_sklearn_probe_on_the_same_data_is_converged_and_ignores_the_silent_feature():
    """Our logistic regression (and SAEBench's lbfgs k-sparse one) fit to convergence: the
    feature that is 0 on every training text gets weight exactly 0 under the L2 penalty, so
    the third test point is right without any epoch choice; the AdamW probe stops far from
    convergence (|w0| = 6·lr at its kept epoch)."""
    for standardize in (True, False):
        probe = fit_probe(X, Y, standardize=standardize)
        assert probe.weight[1] == 0.0 and probe.weight[0] > 0.5
        assert probe.predict(X_TEST).tolist() == [True, False, True]
    assert run(1e-3, 1e-3).probe.weight[0] < 0.01


def test_default_init_is_seeded_and_leaves_the_global_rng_alone():
    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    settings = AdamWProbeSettings(epochs=3, batch_size=16)
    a = train_adamw_probe(X, Y, X[:4], Y[:4], settings, seed=5)
    after = torch.rand(1)
    b = train_adamw_probe(X, Y, X[:4], Y[:4], settings, seed=5)
    assert torch.equal(before, after)
    np.testing.assert_array_equal(a.probe.weight, b.probe.weight)
