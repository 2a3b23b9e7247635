"""Merging each family into one latent of a new, smaller TopK SAE, in closed form.

Decoder: the family's normalised activation-weighted sum of rows (Families.directions).
Target activation of family f on row x: Σ_{i∈f} z_i(x)·cos(d_i, D_f) — the coefficient
along D_f that best reproduces the members' contributions (the plain sum for exact
duplicates). Encoder: a ridge least-squares fit of that target on (x − b_dec), or the
members' activation-weighted mean encoder row. Optionally the decoder rows and b_dec are
then refitted by least squares on the new SAE's own code.
"""

from __future__ import annotations

import torch

from progressive_sae.distill.config import DistillConfig
from progressive_sae.distill.families import Families, Sample
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.topk import TopKSAE


def family_targets(sample: Sample, families: Families, W_dec: torch.Tensor) -> torch.Tensor:
    """[M, G]: each family's target activation on each sample row."""
    n, g = families.labels.numel(), families.num_families
    mixing = torch.zeros(n, g)
    mixing[torch.arange(n), families.labels.clamp_min(0)] = families.alignment(
        W_dec.detach().float().cpu())  # zero for dropped latents
    return sample.z.cpu() @ mixing


def ridge_solve(inputs: torch.Tensor, targets: torch.Tensor, ridge: float) -> torch.Tensor:
    """argmin_W ||[inputs, 1] W − targets||² + λ||W_inputs||² (λ relative to the mean
    diagonal of inputsᵀinputs); returns [d + 1, t], the last row being the intercept."""
    x = torch.cat([inputs, torch.ones(inputs.shape[0], 1, dtype=inputs.dtype)], 1).double()
    gram = x.t() @ x
    lam = ridge * float(gram.diagonal()[:-1].mean())
    gram[range(inputs.shape[1]), range(inputs.shape[1])] += lam
    return torch.linalg.solve(gram, x.t() @ targets.double()).float()


@torch.no_grad()
def merge_families(
    sae: SparseAutoencoder, sample: Sample, families: Families, k: int, cfg: DistillConfig
) -> SparseAutoencoder:
    """The G-latent TopK SAE (k active) whose latent f stands for family f."""
    g, d = families.num_families, sae.d_in
    W_dec = sae.W_dec.detach().float().cpu()
    b_dec = sae.b_dec.detach().float().cpu()
    small = TopKSAE(SAEConfig(d_in=d, num_latents=g, k=k))
    small.b_dec.copy_(b_dec)
    small.W_dec.copy_(families.directions)
    if cfg.encoder_fit == "lstsq":
        solved = ridge_solve(sample.x.cpu() - b_dec, family_targets(sample, families, W_dec),
                             cfg.ridge)
        small.W_enc.copy_(solved[:-1].t())
        small.b_enc.copy_(solved[-1])
    else:
        weight = sample.mean.cpu() * families.alignment(W_dec).clamp_min(0)
        labels = families.labels.clamp_min(0)  # dropped latents have weight 0
        total = torch.zeros(g).index_add_(0, labels, weight).clamp_min(1e-12)
        w_enc = torch.zeros(g, d).index_add_(
            0, labels, sae.W_enc.detach().float().cpu() * weight[:, None])
        b_enc = torch.zeros(g).index_add_(
            0, labels, sae.b_enc.detach().float().cpu() * weight)
        small.W_enc.copy_(w_enc / total[:, None])
        small.b_enc.copy_(b_enc / total)
    for _ in range(cfg.refit_rounds):
        refit_decoder(small, sample.x.cpu(), cfg.ridge)
    return small


@torch.no_grad()
def refit_decoder(sae: SparseAutoencoder, x: torch.Tensor, ridge: float) -> None:
    """Least-squares decoder rows and b_dec for the SAE's current code on x, rows
    renormalised to unit length with the scale moved into the encoder (so the
    reconstruction of the fitted code is kept); never-firing latents keep their rows."""
    code = sae.encode(x).to_dense(sae.num_latents)
    fired = code.abs().sum(0) > 0
    solved = ridge_solve(code[:, fired], x, ridge)
    rows, new_b_dec = solved[:-1], solved[-1]
    norms = rows.norm(dim=1)
    keep = norms > 1e-8
    idx = fired.nonzero().squeeze(1)[keep]
    scale = norms[keep]
    old_b_dec = sae.b_dec.clone()
    sae.W_dec[idx] = rows[keep] / scale[:, None]
    sae.W_enc[idx] *= scale[:, None]
    sae.b_enc[idx] *= scale
    # the encoder reads x − b_dec: keep its pre-activations (up to the rescale) unchanged
    sae.b_enc.add_(sae.W_enc @ (new_b_dec - old_b_dec))
    sae.b_dec.copy_(new_b_dec)
