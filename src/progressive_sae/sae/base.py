"""What every SAE shares: the parameter layout, encode/decode, permutation and truncation.

Layout (SPEC §1): W_enc [N, d], b_enc [N], W_dec [N, d] (row j = feature j), b_dec [d].
Subclasses supply only the activation rule (`select`) and any per-latent extras.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from progressive_sae.errors import PSAEError
from progressive_sae.kernels import (
    SelectionRule,
    TopK,
    fast_matmul_dtype,
    sparse_decode,
    sparse_decode_reference,
    sparse_encode,
    sparse_encode_reference,
)
from progressive_sae.kernels.sparse_decode import entry_dots
from progressive_sae.sae.config import SAEConfig

GRANULARITY_MODES = ("relative", "prefix")


class SparseCode(NamedTuple):
    """Active latents of each input: values [B, K] (zero = padding) and indices [B, K]."""

    values: torch.Tensor
    indices: torch.Tensor

    def to_dense(self, num_latents: int) -> torch.Tensor:
        dense = self.values.new_zeros(self.values.shape[0], num_latents)
        return dense.scatter_add_(1, self.indices, self.values)

    def l0(self) -> torch.Tensor:
        """Number of non-zero latents of each input."""
        return (self.values > 0).sum(1)


class SparseAutoencoder(nn.Module):
    """Base class: subclasses define `select` (the activation rule)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, d = cfg.num_latents, cfg.d_in
        self.W_enc = nn.Parameter(torch.empty(n, d))
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.W_dec = nn.Parameter(torch.empty(n, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.use_reference_kernels = False
        """Route encode/decode through the plain dense references (for tests)."""
        self.selection_dtype: torch.dtype | None = None
        """Dtype of the fast product that proposes latents (None = fastest here); the
        choice is exact whatever it is."""
        self.reset_parameters()

    # --- construction -------------------------------------------------------------------
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder rows; encoder = decoder; zero biases."""
        with torch.no_grad():
            # Drawn on the CPU wherever the SAE lives (same init on every device), and in
            # place there: no N × d temporaries to fragment the heap before training.
            on_cpu = self.W_dec.device.type == "cpu"
            w = self.W_dec if on_cpu else torch.empty(self.W_dec.shape)
            w.normal_(generator=generator)
            w.div_(torch.linalg.vector_norm(w, dim=1, keepdim=True))
            if not on_cpu:
                self.W_dec.copy_(w)
            self.W_enc.copy_(self.W_dec)
            self.b_enc.zero_()
            self.b_dec.zero_()

    @property
    def num_latents(self) -> int:
        return self.cfg.num_latents

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    # --- the activation rule ------------------------------------------------------------
    def rule(self) -> SelectionRule:
        """The activation rule that picks each input's active latents."""
        raise NotImplementedError

    def rule_at(self, granularity: int) -> SelectionRule:
        """The rule for an SAE truncated to `granularity` latents at fixed relative sparsity."""
        return TopK(self.relative_k(granularity))

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rule on dense pre-activations (values [B, K], latents [B, K])."""
        return self.rule()(pre)

    def relative_k(self, granularity: int) -> int:
        """k_G = round(k·G/N), at least 1 (SPEC §2)."""
        return max(1, round(self.cfg.k * granularity / self.num_latents))

    # --- encode / decode ----------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise PSAEError(
                f"activations of shape {tuple(x.shape)}: expected [batch, d_in={self.d_in}]"
            )

    def encode_with(
        self, x: torch.Tensor, select: SelectionRule, aux_select: SelectionRule | None = None,
        num_latents: int | None = None,
    ) -> tuple[SparseCode, SparseCode | None]:
        """Encode with an explicit rule over the first `num_latents` latents (default all)."""
        self.check_input(x)
        n = num_latents or self.num_latents
        W_enc, b_enc = self.W_enc, self.b_enc
        if n < self.num_latents:  # a full slice would cost a dense N×d gradient copy
            W_enc, b_enc = W_enc[:n], b_enc[:n]
        if self.use_reference_kernels:
            x_c = x.to(self.W_enc.dtype) - self.b_dec
            v, i, av, ai = sparse_encode_reference(x_c, W_enc, b_enc, select, aux_select)
        else:
            v, i, av, ai = sparse_encode(
                x.to(self.W_enc.dtype), W_enc, b_enc, select, aux_select,
                self.selection_dtype or fast_matmul_dtype(x.device), b_dec=self.b_dec,
            )
        aux = SparseCode(av, ai) if av is not None else None
        return SparseCode(v, i), aux

    def encode(
        self, x: torch.Tensor, granularity: int | None = None, mode: str = "relative"
    ) -> SparseCode:
        """Sparse code of x; at `granularity` G only latents < G are used (SPEC §2).

        mode 'relative': the first G pre-activations with k_G = round(k·G/N).
        mode 'prefix': the full-size code with latents ≥ G dropped.
        """
        g = self._check_granularity(granularity, mode)
        if g == self.num_latents:
            return self.encode_with(x, self.rule())[0]
        if mode == "relative":
            return self.encode_with(x, self.rule_at(g), num_latents=g)[0]
        code = self.encode_with(x, self.rule())[0]
        return SparseCode(code.values * (code.indices < g), code.indices)

    def decode(self, code: SparseCode) -> torch.Tensor:
        return self.decode_latents(code) + self.b_dec

    def decode_latents(self, code: SparseCode) -> torch.Tensor:
        """Σ_j z_j · W_dec[j], without b_dec."""
        decode = sparse_decode_reference if self.use_reference_kernels else sparse_decode
        return decode(code.values, code.indices, self.W_dec)

    def forward(
        self, x: torch.Tensor, granularity: int | None = None, mode: str = "relative"
    ) -> torch.Tensor:
        return self.decode(self.encode(x, granularity, mode))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Dense pre-activations (x - b_dec) W_encᵀ + b_enc, for analyses."""
        return (x.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc.t() + self.b_enc

    def _check_granularity(self, granularity: int | None, mode: str) -> int:
        if mode not in GRANULARITY_MODES:
            raise PSAEError(f"mode={mode!r}: expected one of {GRANULARITY_MODES}")
        if granularity is None:
            return self.num_latents
        if not 1 <= granularity <= self.num_latents:
            raise PSAEError(
                f"granularity={granularity}: expected 1 ≤ G ≤ num_latents={self.num_latents}"
            )
        return granularity

    # --- decoder geometry ---------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm."""
        self.W_dec.div_(torch.linalg.vector_norm(self.W_dec, dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each (unit) decoder row."""
        grad = self.W_dec.grad
        if grad is None:
            return
        # One dot product per row by the kernel that scores a code's entries: no N × d
        # temporary (linalg.vecdot made one: 24 ms and 48 MiB at N=16384, d=768 on 2 cores),
        # 1.7 ms against N batched [1×d]·[d×1] products' 7.3.
        latents = torch.arange(self.num_latents, device=grad.device)
        dots = entry_dots(grad, self.W_dec, latents, latents[:1], latents).view(-1, 1)
        grad.addcmul_(dots, self.W_dec, value=-1.0)

    # --- progressive coding -------------------------------------------------------------
    def permute(self, perm: torch.Tensor) -> SparseAutoencoder:
        """A copy whose latent j is this SAE's latent perm[j]; reconstructions are unchanged."""
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.shape != (self.num_latents,) or not torch.equal(
            torch.sort(perm).values, torch.arange(self.num_latents)
        ):
            raise PSAEError(
                f"permutation of length {perm.numel()}: expected a permutation of "
                f"0..{self.num_latents - 1}"
            )
        return self._take_latents(perm, self.cfg.num_latents, self.cfg.k)

    def truncate(self, granularity: int, k: int | None = None) -> SparseAutoencoder:
        """A real, smaller SAE made of the first G latents, with k = k_G unless given."""
        g = self._check_granularity(granularity, "relative")
        k_g = k if k is not None else self.relative_k(g)
        if self.cfg.activation != "jumprelu":
            if g < 2:
                raise PSAEError(f"granularity={g}: a {self.cfg.activation} SAE needs G ≥ 2")
            k_g = min(k_g, g - 1)
        return self._take_latents(torch.arange(g), g, k_g)

    def _take_latents(self, latents: torch.Tensor, num_latents: int, k: int) -> SparseAutoencoder:
        granularities = self.cfg.granularities
        if granularities is not None and num_latents < self.num_latents:
            granularities = [m for m in granularities if m < num_latents] + [num_latents]
        cfg = SAEConfig(
            d_in=self.d_in, num_latents=num_latents, k=k, activation=self.cfg.activation,
            granularities=granularities, metadata=dict(self.cfg.metadata),
        )
        new = type(self)(cfg)
        with torch.no_grad():
            for name, tensor in self.latent_tensors().items():
                getattr(new, name).copy_(tensor[latents])
            new.b_dec.copy_(self.b_dec)
            for name, tensor in self.shared_tensors().items():
                getattr(new, name).copy_(tensor)
        return new

    def latent_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors with one entry per latent along dim 0 (permuted and truncated together)."""
        return {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec}

    def shared_tensors(self) -> dict[str, torch.Tensor]:
        """Per-SAE extras that are not per latent (besides b_dec)."""
        return {}

    def observe_training_code(self, code: SparseCode) -> None:
        """Hook called by training after each step's encode (BatchTopK learns θ here)."""

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"{type(self).__name__}(d_in={c.d_in}, num_latents={c.num_latents}, k={c.k}"
            + (f", granularities={c.granularities}" if c.granularities else "")
            + ")"
        )
