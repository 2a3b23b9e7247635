"""Train a SAELens TopK SAE on pre-computed activations.

Run with the SAELens peer venv's python (see setup_venv.py), e.g.::

    /tmp/peers/saelens/bin/python benchmarks/peers/saelens_driver.py \
        --train acts.npy --eval eval.npy --num-latents 16384 --k 32 \
        --batch-size 4096 --steps 48 --threads 2 --out saelens.json

SAELens 6.x separates the SAE (``TopKTrainingSAE`` + ``TopKTrainingSAEConfig``)
from the training loop (``SAETrainer`` + ``SAETrainerConfig``), and the loop
accepts any ``Iterator[Tensor]`` of [batch, d] activations as its data
provider. That is the same loop ``LanguageModelSAETrainingRunner`` runs; we
just feed it our activation file instead of its ActivationsStore.

Settings are SAELens 6.54.12 defaults except: d_in, d_sae, k, the batch size
and the number of tokens. Notes from the source:
* SAE defaults: fp32, ``apply_b_dec_to_input=True``, b_dec initialised to 0
  (no data-dependent init), ``decoder_init_norm=0.1`` with W_enc = W_dec^T,
  ``rescale_acts_by_decoder_norm=True``, ``aux_loss_coefficient=1``,
  ``use_sparse_activations=False`` (dense [batch, d_sae] activations; the
  sparse path crashes on CPU in combination with the rescaling default).
* Trainer defaults: Adam(lr=3e-4, betas=(0.9, 0.999)), constant LR schedule,
  no warm-up, grad-norm clipping at 1.0, no autocast, dead-feature window
  1000 steps (so AuxK never fires in a short run), no wandb
  (``SAETrainerConfig``'s logger defaults to ``log_to_wandb=False``), no
  checkpoints, no final checkpoint.
* ``SAETrainerConfig.lr_end`` defaults to None but ``SAETrainer.__init__``
  asserts it is set (the runner config's ``__post_init__`` normally fills in
  lr / 10); we pass that same value. It is only used by the cosine schedule.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import _driver_common as common
import torch


class ActivationIterator(Iterator[torch.Tensor]):
    """SAETrainer's data provider: the next ``batch_size`` rows, in file order.

    It also stamps the step clock on its first call, which happens at the top
    of the first iteration of ``SAETrainer.fit``'s training loop.
    """

    def __init__(self, reader: common.RowReader, batch_size: int, clock: common.StepClock,
                 device: str = "cpu") -> None:
        self.reader = reader
        self.batch_size = batch_size
        self.clock = clock
        self.device = device

    def __next__(self) -> torch.Tensor:
        if not self.clock.marks:
            self.clock.mark()
        return self.reader.take(self.batch_size).to(self.device)


def main() -> None:
    parser = common.build_parser(__doc__.splitlines()[0])
    parser.add_argument("--sparse-activations", action="store_true",
                        help="SAELens' sparse (COO) TopK activations for the decoder")
    args = parser.parse_args()
    stdout = common.claim_stdout()
    common.seed_and_threads(args.seed, args.threads)

    import sae_lens
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    B, S = args.batch_size, args.steps
    reader = common.open_rows(args)
    clock = common.StepClock(args.device)

    sae_cfg = TopKTrainingSAEConfig(d_in=reader.dim, d_sae=args.num_latents, k=args.k,
                                    device=args.device,
                                    use_sparse_activations=args.sparse_activations)
    torch.manual_seed(args.seed)  # SAE init (kaiming_uniform) draws from here
    sae = TopKTrainingSAE(sae_cfg)

    base_lr = SAETrainerConfig.lr  # dataclass default (3e-4)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=S * B,
        train_batch_size_samples=B,
        lr_end=base_lr / 10,  # what LanguageModelSAERunnerConfig would set
        device=args.device,
    )
    assert not trainer_cfg.logger.log_to_wandb
    assert trainer_cfg.n_checkpoints == 0 and not trainer_cfg.save_final_checkpoint

    trainer: SAETrainer[Any, Any] = SAETrainer(
        cfg=trainer_cfg,
        sae=sae,
        data_provider=ActivationIterator(reader, B, clock, args.device),
        evaluator=None,
    )

    # fit()'s loop is: next(data) -> step() (forward, backward, clip, Adam,
    # scheduler, dead-latent stats) -> checkpoint check -> _update_pbar().
    # ``_update_pbar`` is called at the end of *every* iteration (it only
    # redraws every 100 steps), so wrapping it on the instance gives one clock
    # stamp per finished step; the first stamp comes from the iterator. Thus
    # a step spans the same work as in the sparsify driver: reading the rows
    # plus the whole training update.
    original_update_pbar = trainer._update_pbar

    def timed_update_pbar(*a: Any, **kw: Any) -> None:
        clock.mark()
        original_update_pbar(*a, **kw)

    trainer._update_pbar = timed_update_pbar  # type: ignore[method-assign]

    common.log(f"SAELens {S} steps x {B} tokens")
    rss_before = common.current_rss_mb()
    t0 = time.perf_counter()
    sae = trainer.fit()
    fit_s = time.perf_counter() - t0
    peak_rss = common.peak_rss_mb()
    device_info = common.device_record(args.device)  # before the FVU pass

    if reader.cursor != S * B:
        raise RuntimeError(f"SAELens consumed {reader.cursor} rows, not {S * B}")

    sae.eval()

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        return sae(x)

    fvu = common.eval_fvu(reconstruct, args.eval, args.eval_chunk, args.device)

    config = {
        "library": "sae_lens",
        "version": sae_lens.__version__,
        "sae_class": type(sae).__name__,
        "d_in": sae.cfg.d_in,
        "num_latents": sae.cfg.d_sae,
        "k": sae.cfg.k,
        "batch_tokens": B,
        "optimizer": type(trainer.optimizer).__name__,
        "lr": trainer_cfg.lr,
        "lr_scheduler": trainer_cfg.lr_scheduler_name,
        "lr_warm_up_steps": trainer_cfg.lr_warm_up_steps,
        "adam_betas": [trainer_cfg.adam_beta1, trainer_cfg.adam_beta2],
        "grad_clip_norm": 1.0,
        "autocast": trainer_cfg.autocast,
        "dead_feature_window": trainer_cfg.dead_feature_window,
        "aux_loss_coefficient": sae.cfg.aux_loss_coefficient,
        "rescale_acts_by_decoder_norm": sae.cfg.rescale_acts_by_decoder_norm,
        "use_sparse_activations": sae.cfg.use_sparse_activations,  # --sparse-activations
        "apply_b_dec_to_input": sae.cfg.apply_b_dec_to_input,
        "decoder_init_norm": sae.cfg.decoder_init_norm,
        "normalize_activations": sae.cfg.normalize_activations,
        "param_dtype": sae.cfg.dtype,
        **device_info,
        "seed": args.seed,
        "threads": args.threads,
    }
    result = common.summarize(
        clock,
        B,
        S,
        fvu,
        config,
        extra={"fit_s": fit_s, "rss_before_fit_mb": rss_before},
        peak_rss=peak_rss,
    )
    common.emit(result, args.out, stdout)


if __name__ == "__main__":
    sys.exit(main())
