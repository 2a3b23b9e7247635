"""Finding split families: groups of a large SAE's latents that one small-SAE latent should
stand for (the reverse of feature splitting).

A feature of a small SAE is split over several latents of a large one whose decoder rows
are close; the split siblings usually fire on different subsets of the parent's contexts,
so decoder geometry is the main signal and co-activation an optional second one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from progressive_sae.metrics import evaluation_batches
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class Sample:
    """Activation rows and the large SAE's dense code on them."""

    x: torch.Tensor
    """Activations [M, d] (float32)."""
    z: torch.Tensor
    """Dense code [M, N] of the large SAE."""

    @property
    def mean(self) -> torch.Tensor:
        """E[z_j]: the activation weight of each latent in its family's decoder."""
        return self.z.mean(0)

    @property
    def mean_sq(self) -> torch.Tensor:
        """E[z_j²]: the importance ranking of SPEC §2."""
        return self.z.pow(2).mean(0)


@torch.no_grad()
def read_sample(sae: SparseAutoencoder, data: object, rows: int, batch_size: int) -> Sample:
    was_training = sae.training
    sae.eval()
    xs, zs = [], []
    for chunk in evaluation_batches(data, batch_size, rows):
        x = chunk.to(sae.W_dec.device, torch.float32)
        xs.append(x)
        zs.append(sae.encode(x).to_dense(sae.num_latents).float())
    sae.train(was_training)
    return Sample(torch.cat(xs), torch.cat(zs))


@dataclass
class Families:
    """A partition of the N latents into G families and each family's merged direction."""

    labels: torch.Tensor
    """Family of each latent [N] (0..G-1), or −1 for a latent left out of every family."""
    directions: torch.Tensor
    """Unit merged decoder direction of each family [G, d]."""

    @property
    def num_families(self) -> int:
        return self.directions.shape[0]

    def members(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.num_families)]
        for latent, family in enumerate(self.labels.tolist()):
            if family >= 0:
                out[family].append(latent)
        return out

    def dropped(self) -> list[int]:
        return (self.labels < 0).nonzero().squeeze(1).tolist()

    def alignment(self, W_dec: torch.Tensor) -> torch.Tensor:
        """cos(d_i, D_family(i)) of each latent (0 when left out): how much of it its
        family's direction keeps."""
        cos = (F.normalize(W_dec, dim=1) * self.directions[self.labels.clamp_min(0)]).sum(1)
        return cos * (self.labels >= 0)


def merged_directions(W_dec: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                      num_families: int) -> torch.Tensor:
    """Normalised activation-weighted sums of each family's decoder rows.

    A family with no activation mass on the sample falls back to its members' plain sum;
    latents labelled −1 count nowhere.
    """
    kept = labels >= 0
    labels, W_dec, weight = labels[kept], W_dec[kept], weight[kept]
    summed = torch.zeros(num_families, W_dec.shape[1], dtype=W_dec.dtype)
    summed.index_add_(0, labels, W_dec * weight[:, None])
    plain = torch.zeros_like(summed).index_add_(0, labels, W_dec)
    empty = summed.norm(dim=1) < 1e-12
    summed[empty] = plain[empty]
    return F.normalize(summed, dim=1)


def distinct_seeds(W: torch.Tensor, importance: torch.Tensor, count: int,
                   max_cosine: float) -> torch.Tensor:
    """The `count` most important latents, skipping any whose unit decoder row has cosine
    > max_cosine with one already chosen (topped up in importance order if too few)."""
    order = torch.sort(-importance, stable=True).indices
    chosen: list[int] = []
    for latent in order.tolist():
        if len(chosen) == count:
            break
        if not chosen or float((W[chosen] @ W[latent]).max()) <= max_cosine:
            chosen.append(latent)
    if len(chosen) < count:
        taken = set(chosen)
        chosen += [i for i in order.tolist() if i not in taken][: count - len(chosen)]
    return torch.tensor(chosen, dtype=torch.long)


def kmeans_families(W_dec: torch.Tensor, sample: Sample, num_families: int,
                    iters: int, seed_max_cosine: float = 1.0,
                    min_cosine: float = -1.0) -> Families:
    """Mass-weighted spherical k-means of decoder rows, seeded with the top-G latents by
    E[z²]. Each seed stays in its own family (no family is ever empty), and a latent whose
    best cosine with a family direction is below `min_cosine` joins none (it is not a
    split sibling of anything kept; merging it would only blur a direction)."""
    W = F.normalize(W_dec.detach().float().cpu(), dim=1)
    weight = sample.mean.cpu()
    seeds = distinct_seeds(W, sample.mean_sq.cpu(), num_families, seed_max_cosine)
    directions = W[seeds]
    labels = torch.empty(W.shape[0], dtype=torch.long)
    for _ in range(max(1, iters)):
        best = (W @ directions.t()).max(1)
        new = best.indices.masked_fill(best.values < min_cosine, -1)
        new[seeds] = torch.arange(num_families)
        if torch.equal(new, labels):
            break
        labels = new
        directions = merged_directions(W, labels, weight, num_families)
    return Families(labels, directions)


def agglomerative_families(W_dec: torch.Tensor, sample: Sample, num_families: int,
                           decoder_weight: float) -> Families:
    """Average-linkage clustering into exactly G clusters on
    w·cos(d_i, d_j) + (1 − w)·corr(z_i, z_j); families ordered by their E[z²] mass."""
    from scipy.cluster.hierarchy import cut_tree, linkage
    from scipy.spatial.distance import squareform

    W = F.normalize(W_dec.detach().float().cpu(), dim=1)
    similarity = W @ W.t()
    if decoder_weight < 1.0:
        z = sample.z.cpu()
        z = z - z.mean(0)
        std = z.norm(dim=0).clamp_min(1e-12)
        corr = (z.t() @ z) / (std[:, None] * std[None, :])
        similarity = decoder_weight * similarity + (1 - decoder_weight) * corr
    distance = (1.0 - similarity).clamp_min(0.0).double().numpy()
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    raw = torch.as_tensor(cut_tree(tree, n_clusters=num_families).reshape(-1), dtype=torch.long)
    mass = torch.zeros(num_families, dtype=torch.float64).index_add_(
        0, raw, sample.mean_sq.cpu().double())
    order = torch.sort(-mass, stable=True).indices
    labels = torch.empty_like(order).scatter_(0, order, torch.arange(num_families))[raw]
    return Families(labels, merged_directions(W, labels, sample.mean.cpu(), num_families))
