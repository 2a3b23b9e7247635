"""The training loop: learning, exact resume, Matryoshka fast path vs reference."""

import json

import pytest
import torch

from progressive_sae import TrainConfig, Trainer, mean_max_cosine_similarity, objectives, train
from progressive_sae.objectives import sae_loss
from progressive_sae.sae import SAEConfig, build_sae
from progressive_sae.train import trainer as trainer_module


def test_topk_recovers_ground_truth_features(synthetic):
    sae, result = train(synthetic, num_latents=128, k=4, batch_size=1024,
                        total_tokens=1024 * 200, progress=False)
    assert mean_max_cosine_similarity(sae.W_dec, synthetic.features) >= 0.9
    assert result.fvu < 0.2
    norms = sae.W_dec.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


# AuxK's two paths: a sparse code when there are more than DENSE_AUX_FACTOR·k_aux dead
# latents, dense products over their columns otherwise; (20, 10) has rows with more than 10
# positive pre-activations among the dead latents, so the dense path's top-k matters.
@pytest.mark.parametrize(("num_dead", "k_aux", "dense"), [(40, 5, False), (20, 10, True),
                                                          (8, 12, True)])
@pytest.mark.parametrize("objective", [
    {}, {"granularities": [8, 32, 96]}, {"activation": "batchtopk"},
    {"granularities": [16, 64], "activation": "batchtopk"},
])
def test_training_step_gradients_match_dense_reference(objective, num_dead, k_aux, dense):
    assert (num_dead <= objectives.DENSE_AUX_FACTOR * k_aux) == dense
    torch.manual_seed(0)
    x = torch.randn(256, 24) + 2.0
    granularities = objective.get("granularities")
    cfg = SAEConfig(d_in=24, num_latents=128, k=8, activation=objective.get("activation", "topk"),
                    granularities=granularities)
    dead = torch.zeros(128, dtype=torch.bool)
    dead[128 - num_dead:] = True
    grads = []
    for reference in (False, True):
        sae = build_sae(cfg)
        sae.reset_parameters(torch.Generator().manual_seed(1))
        sae.use_reference_kernels = reference
        g = torch.tensor(cfg.granularities) if granularities else None
        parts = sae_loss(sae, x, granularities=g, dead=dead, k_aux=k_aux)
        parts.loss.backward()
        grads.append({n: p.grad.clone() for n, p in sae.named_parameters()}
                     | {"loss": parts.loss, "aux_loss": parts.aux_loss})
    assert float(grads[0]["aux_loss"]) > 0  # AuxK ran
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)


def _cfg(**kw):
    base = dict(num_latents=96, k=4, batch_size=256, total_tokens=256 * 24, lr_warmup_steps=3,
                checkpoint_every=4, log_every=2, dead_tokens=256 * 3, sampled_granularities=3)
    return TrainConfig(**(base | kw))


class _Killed(Exception):
    pass


def test_resume_after_interruption_is_bitwise_equal(synthetic, tmp_path, monkeypatch):
    reference = Trainer(_cfg(), synthetic, run_dir=tmp_path / "whole", progress=False)
    reference.fit()

    original = trainer_module.Trainer.save_checkpoint

    def save_then_die(self):
        folder = original(self)
        if self.step == 12:
            raise _Killed
        return folder

    monkeypatch.setattr(trainer_module.Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        Trainer(_cfg(), synthetic, run_dir=tmp_path / "cut", progress=False).fit()
    monkeypatch.setattr(trainer_module.Trainer, "save_checkpoint", original)

    resumed = Trainer(_cfg(), synthetic, run_dir=tmp_path / "cut", resume=True, progress=False)
    assert resumed.step == 12
    resumed.fit()
    for name, tensor in reference.sae.state_dict().items():
        assert torch.equal(resumed.sae.state_dict()[name], tensor), name
    resumed_params = dict(resumed.sae.named_parameters())
    for name, param in reference.sae.named_parameters():
        ref_state = reference.optimizer.state[param]
        res_state = resumed.optimizer.state[resumed_params[name]]
        assert ref_state.keys() == res_state.keys()
        for key in ref_state:
            assert torch.equal(ref_state[key], res_state[key]), (name, key)
    cut_log = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    lines = [json.loads(line) for line in cut_log]
    assert [r["step"] for r in lines] == list(range(2, 25, 2))
    whole = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["fvu"] for line in whole] == [r["fvu"] for r in lines]


def test_sampled_granularities_are_sorted_distinct_and_end_at_n():
    from progressive_sae.objectives import sample_granularities

    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        sizes = sample_granularities(100, 4, g)
        assert sizes[-1] == 100 and len(sizes) == 5
        assert torch.all(sizes[1:] > sizes[:-1]) and sizes[0] >= 1


def test_batchtopk_learns_an_inference_threshold(synthetic):
    sae, _ = train(synthetic, num_latents=96, k=4, activation="batchtopk", batch_size=512,
                   total_tokens=512 * 30, progress=False)
    assert sae.threshold > 0
    sae.eval()
    code = sae.encode(synthetic.rows(0, 2048))
    assert 1.0 < code.l0().float().mean() < 16.0  # about k per input, decided per input


def test_bf16_selection_moves_fvu_by_under_one_percent(synthetic):
    from progressive_sae import evaluate_reconstruction

    held_out = synthetic.rows(90_000, 98_192)
    fvus = {}
    for dtype in ("float32", "bfloat16"):
        sae, _ = train(synthetic, num_latents=128, k=4, batch_size=512, total_tokens=512 * 120,
                       matmul_dtype=dtype, progress=False)
        fvus[dtype] = sae
    # The same SAE encoded with a bf16 or an fp32 selection matmul: within 1% relative.
    sae = fvus["float32"]
    at = {}
    for dtype in (torch.float32, torch.bfloat16):
        sae.selection_dtype = dtype
        at[dtype] = evaluate_reconstruction(sae, held_out).fvu
    assert abs(at[torch.bfloat16] - at[torch.float32]) <= 0.01 * at[torch.float32], at
    # Whole runs diverge chaotically after the first differing selection; still close.
    trained = {d: evaluate_reconstruction(s, held_out).fvu for d, s in fvus.items()}
    assert abs(trained["bfloat16"] - trained["float32"]) <= 0.03 * trained["float32"], trained


def test_gradients_are_freed_right_after_each_update(synthetic, monkeypatch):
    # Held into the next step they would add 2 · N · d floats to that step's forward.
    cfg = TrainConfig(num_latents=128, k=4, batch_size=256, total_tokens=256 * 3, seed=3)
    trainer = Trainer(cfg, synthetic, progress=False)
    seen = []
    original = trainer.sae.encode_with

    def encode_with(*args, **kwargs):
        seen.append([p.grad is None for p in trainer.sae.parameters()])
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer.sae, "encode_with", encode_with)
    trainer.fit()
    assert len(seen) == 3 and all(all(step) for step in seen)


def test_total_variance_streams_float64_blocks(monkeypatch):
    from progressive_sae import objectives

    x = torch.randn(301, 7) * 1e3 + 5e3
    x64 = x.double()
    expected = ((x64 - x64.mean(0)) ** 2).sum()
    monkeypatch.setattr(objectives, "TOTAL_VARIANCE_ROWS", 64)  # several blocks and a rest
    got = objectives.total_variance(x)
    torch.testing.assert_close(got.double(), expected.to(got.dtype).double())


def test_geometric_median_in_blocks_matches_weiszfeld_on_the_whole_sample(monkeypatch):
    from progressive_sae.train import init

    g = torch.Generator().manual_seed(0)
    points = torch.randn(500, 6, generator=g) ** 3  # heavy tails: median ≠ mean
    p = points.double()
    y = p.mean(0)
    for _ in range(100):
        w = 1.0 / (p - y).norm(dim=1).clamp_min(1e-12)
        y = (w[:, None] * p).sum(0) / w.sum()
    monkeypatch.setattr(init, "CHUNK_ROWS", 77)
    torch.testing.assert_close(init.geometric_median(points), y.float())
    assert not torch.allclose(y.float(), points.mean(0), atol=1e-2)
