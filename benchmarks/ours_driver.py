"""Train progressive_sae on the benchmark's .npy activations and report step time, RSS, FVU.

Same command line and JSON record as the peer drivers (peers/_driver_common.py), so all
three libraries read the same rows in the same order and are scored by the same FVU code.
Run in its own process so that its peak RSS is its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import _driver_common as common  # noqa: E402


class TimedRows:
    """An ActivationSource over the .npy file that marks the clock at every batch read.

    The trainer reads batch i+1 right after finishing step i, so the gaps between reads
    are whole steps (data read included, as for the peers).
    """

    def __init__(self, reader: common.RowReader, clock: common.StepClock) -> None:
        self.reader, self.clock = reader, clock  # the clock waits for the GPU at each mark
        self.d_in = reader.dim

    def __len__(self) -> int:
        return self.reader.limit

    def rows(self, start: int, stop: int):
        self.clock.mark()
        self.reader.cursor = start
        return self.reader.take(stop - start)


def main() -> None:
    parser = common.build_parser(__doc__)
    parser.add_argument("--granularities", default="", help="Matryoshka sizes, comma-separated")
    parser.add_argument("--lr", type=float, default=None, help="override the default lr")
    parser.add_argument("--warmup", type=int, default=None, help="override the warm-up steps")
    parser.add_argument("--matmul-dtype", default="auto",
                        help="selection matmul dtype: auto, float32 or bfloat16")
    parser.add_argument("--dead-tokens", type=int, default=None,
                        help="AuxK's dead window (default: the trainer's, min(10M, tokens/10))")
    args = parser.parse_args()
    stdout = common.claim_stdout()
    common.seed_and_threads(args.seed, args.threads)

    from progressive_sae import TrainConfig, Trainer

    granularities = [int(g) for g in args.granularities.split(",") if g] or None
    cfg = TrainConfig(
        num_latents=args.num_latents, k=args.k, batch_size=args.batch_size,
        total_tokens=args.batch_size * args.steps, granularities=granularities, lr=args.lr,
        seed=args.seed, device=args.device, matmul_dtype=args.matmul_dtype,
        dead_tokens=args.dead_tokens,
        **({"lr_warmup_steps": args.warmup} if args.warmup is not None else {}),
    )
    clock = common.StepClock(args.device)
    source = TimedRows(common.open_rows(args), clock)
    trainer = Trainer(cfg, source, progress=False)
    clock.reset()  # b_dec initialisation read rows too; time only the loop
    trainer.fit()
    clock.mark()  # end of the last step (fit has no run dir, so nothing is saved after it)
    peak_rss = common.peak_rss_mb()
    device_info = common.device_record(args.device)  # before the FVU pass adds its buffers

    sae = trainer.sae.eval()
    fvu = common.eval_fvu(lambda x: sae(x), args.eval, args.eval_chunk, args.device)
    result = common.summarize(
        clock, args.batch_size, args.steps, fvu,
        {"library": "progressive_sae", "granularities": granularities, "lr": cfg.peak_lr,
         "matmul_dtype": trainer.matmul_dtype, "dead_tokens": cfg.resolved_dead_tokens(),
         "dead_fraction": trainer.tracker.dead_fraction(), **device_info},
        peak_rss=peak_rss,
    )
    common.emit(result, args.out, stdout)


if __name__ == "__main__":
    main()
