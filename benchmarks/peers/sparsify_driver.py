"""Train an EleutherAI ``sparsify`` TopK SAE on pre-computed activations.

Run with the sparsify peer venv's python (see setup_venv.py), e.g.::

    /tmp/peers/sparsify/bin/python benchmarks/peers/sparsify_driver.py \
        --train acts.npy --eval eval.npy --num-latents 16384 --k 32 \
        --batch-size 4096 --steps 48 --threads 2 --out sparsify.json

sparsify only trains on activations it captures itself, with a forward hook
on a module of a language model, inside ``Trainer.fit()``. To drive its real
training loop on *our* activation file we hand it a stand-in "model" whose
single hooked layer ignores its (dummy) token ids and returns the next rows
of the activation file, shaped ``[batch, ctx, d]``. Everything sparsify does
per step (hook bookkeeping, bias init, decoder renormalisation, the fused
TopK encoder, backward, Signum + ScheduleFree update, dead-latent tracking)
therefore runs unmodified; the only thing we skip is a real transformer.

Settings are sparsify 1.3.3 defaults except: k, num_latents, the batch size
(in sequences: batch_size * ctx == --batch-size tokens), the number of tokens
(the dataset length), the hookpoint, no wandb, and a temporary save dir.

Notes on the defaults, from the 1.3.3 source (sparsify/trainer.py):
* optimizer "signum" = ``ScheduleFreeWrapper(SignSGD, momentum=0.95)`` with
  lr = 5e-3 / sqrt(num_latents / 2**14); it creates *no* LR scheduler, so the
  default ``lr_warmup_steps=1000`` is inert (it only applies to adam/muon).
* ``fit()`` calls ``torch.set_float32_matmul_precision("high")``; that has no
  effect on CPUs without TF32/bf16 matmul units, and FVU is scored at
  "highest" regardless.
* ``auxk_alpha`` defaults to 0, so no AuxK loss; ``k_decay_steps`` is 0, so k
  is fixed from the first step.
* ScheduleFree keeps the parameters at the extrapolated "y" point while
  training; sparsify switches to the averaged "x" point (``optimizer.eval()``)
  whenever it saves. We score FVU on "x", i.e. the SAE sparsify writes to
  disk, and also report the "y" FVU as an extra.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from typing import Any

import _driver_common as common
import torch
from torch import nn


class ActivationReplay(nn.Module):
    """The hooked "layer": returns the next rows of the activation file.

    sparsify's forward hook sees this module's *output*, so that output must
    be the activations, shaped [batch, ctx, d] like a transformer block's.
    """

    def __init__(self, reader: common.RowReader, device: torch.device) -> None:
        super().__init__()
        self.reader = reader
        self.device = device

    def forward(self, input_ids: torch.Tensor, probe: bool = False) -> torch.Tensor:
        if probe:
            # sparsify calls the model once on ``dummy_inputs`` to discover the
            # hooked module's width; that call must not consume training rows.
            return torch.zeros(*input_ids.shape, self.reader.dim, device=self.device)
        n = input_ids.numel()
        rows = self.reader.take(n).to(self.device, non_blocking=True)
        return rows.view(*input_ids.shape, self.reader.dim)


class ReplayModel(nn.Module):
    """Minimal stand-in for a ``transformers.PreTrainedModel``.

    sparsify's Trainer only touches ``base_model`` (named_modules /
    get_submodule), ``device``, ``dummy_inputs``, ``parameters()`` and the
    forward call, so those are all we provide.
    """

    def __init__(self, reader: common.RowReader, device: torch.device) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ActivationReplay(reader, device)])
        self._device = device

    @property
    def base_model(self) -> nn.Module:
        return self

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dummy_inputs(self) -> dict[str, Any]:
        return {"input_ids": torch.zeros(1, 1, dtype=torch.long), "probe": True}

    def forward(self, input_ids: torch.Tensor, probe: bool = False) -> torch.Tensor:
        return self.layers[0](input_ids, probe=probe)


class DummyTokens(torch.utils.data.Dataset):
    """``len(self)`` sequences of ``ctx`` token ids (all 0, never excluded).

    sparsify derives the number of steps from ``len(dataset) // batch_size``;
    the ids themselves are ignored by ActivationReplay.
    """

    def __init__(self, num_sequences: int, ctx: int) -> None:
        self.num_sequences = num_sequences
        self.ids = torch.zeros(ctx, dtype=torch.long)

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids}


def main() -> None:
    parser = common.build_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--ctx",
        type=int,
        default=0,
        help="tokens per dummy sequence; 0 = gcd(batch_size, 2048) "
        "(2048 is sparsify's default ctx_len)",
    )
    args = parser.parse_args()
    stdout = common.claim_stdout()  # before importing sparsify: it prints on import
    common.seed_and_threads(args.seed, args.threads)

    import sparsify
    import sparsify.trainer as sp_trainer
    from sparsify import SaeConfig, TrainConfig, Trainer
    from tqdm.auto import tqdm

    B, S = args.batch_size, args.steps
    ctx = args.ctx or math.gcd(B, 2048)
    if B % ctx:
        sys.exit(f"--batch-size {B} is not a multiple of --ctx {ctx}")
    seqs_per_batch = B // ctx

    reader = common.open_rows(args)
    device = torch.device(args.device)
    model = ReplayModel(reader, device)
    dataset = DummyTokens(S * seqs_per_batch, ctx)
    clock = common.StepClock(device)

    # fit() has no per-step callback; its loop body is inline. It creates a
    # tqdm bar just before the loop and calls ``pbar.update()`` as the last
    # statement of every iteration, after the forward/backward, optimizer step
    # and dead-latent bookkeeping. Swapping the module-level ``tqdm`` name for
    # a subclass that stamps the clock there gives one boundary per step
    # (including sparsify's data fetch, i.e. reading our rows) without
    # touching the loop itself. The final checkpoint save happens after the
    # last update and is therefore not counted in any step.
    class TimedTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            clock.mark()

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            clock.mark()
            return out

    sp_trainer.tqdm = TimedTqdm  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory(prefix="sparsify_driver_") as save_dir:
        cfg = TrainConfig(
            SaeConfig(k=args.k, num_latents=args.num_latents),
            batch_size=seqs_per_batch,
            hookpoints=["layers.0"],
            init_seeds=[args.seed],
            log_to_wandb=False,
            save_dir=save_dir,
            run_name="driver",
        )
        trainer = Trainer(cfg, dataset, model)  # type: ignore[arg-type]
        common.log(f"sparsify {S} steps x {B} tokens ({seqs_per_batch} x {ctx})")
        rss_before = common.current_rss_mb()
        t0 = time.perf_counter()
        trainer.fit()  # ends with a checkpoint save into save_dir
        fit_s = time.perf_counter() - t0
        peak_rss = common.peak_rss_mb()
        device_info = common.device_record(device)  # before the FVU passes

    if reader.cursor != S * B:
        raise RuntimeError(f"sparsify consumed {reader.cursor} rows, not {S * B}")

    sae = trainer.saes["layers.0"]
    optimizer = trainer.optimizers[0]

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        top_acts, top_indices, _ = sae.encode(x)
        return sae.decode(top_acts, top_indices)

    # fit() leaves the parameters in ScheduleFree train mode ("y").
    fvu_y = common.eval_fvu(reconstruct, args.eval, args.eval_chunk, device)
    optimizer.eval()  # -> averaged "x" weights, what sparsify saves
    fvu_x = common.eval_fvu(reconstruct, args.eval, args.eval_chunk, device)

    group = optimizer.param_groups[0]
    config = {
        "library": "sparsify",
        "version": getattr(sparsify, "__version__", None) or _dist_version(),
        "d_in": reader.dim,
        "num_latents": sae.num_latents,
        "k": sae.cfg.k,
        "batch_tokens": B,
        "batch_size_sequences": seqs_per_batch,
        "ctx": ctx,
        "optimizer": cfg.optimizer,
        "optimizer_impl": f"{type(optimizer).__name__}({type(optimizer.base).__name__})",
        "schedulefree_momentum": optimizer.momentum,
        "lr": group["lr"],
        "lr_warmup_steps": cfg.lr_warmup_steps,
        # signum creates no scheduler, so the warm-up above is never applied.
        "lr_schedulers": len(trainer.lr_schedulers),
        "lr_warmup_applied": bool(trainer.lr_schedulers),
        "loss_fn": cfg.loss_fn,
        "auxk_alpha": cfg.auxk_alpha,
        "normalize_decoder": cfg.sae.normalize_decoder,
        "activation": cfg.sae.activation,
        "micro_acc_steps": cfg.micro_acc_steps,
        "grad_acc_steps": cfg.grad_acc_steps,
        "decoder_impl": _decoder_impl_name(),  # the Triton kernel on a GPU
        **device_info,
        "param_dtype": str(sae.dtype),
        "fvu_weights": "schedulefree x (optimizer.eval(), as saved)",
        "seed": args.seed,
        "threads": args.threads,
    }
    result = common.summarize(
        clock,
        B,
        S,
        fvu_x,
        config,
        extra={
            "fvu_train_mode_y": fvu_y,
            "fit_s": fit_s,
            "rss_before_fit_mb": rss_before,
        },
        peak_rss=peak_rss,
    )
    common.emit(result, args.out, stdout)


def _dist_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eai-sparsify")
    except PackageNotFoundError:
        return None


def _decoder_impl_name() -> str:
    from sparsify import utils

    return utils.decoder_impl.__name__


if __name__ == "__main__":
    main()
