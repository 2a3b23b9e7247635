"""Train the offline default LM: a small GPT-2 on the CPython corpus, resumable, on CPU.

Data: windows of ``n_positions + 1`` token ids cut from the documents' token stream
(`windows.py`); held-out windows come from the held-out documents.

Output folder: a plain Hugging Face model folder (config.json, model.safetensors in
bfloat16, tokenizer files) plus metrics.json; ``checkpoint/`` holds the resumable fp32 state
while training runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from progressive_sae.atomic import atomic_directory, write_json_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.lm.offline.bigram import (
    DEFAULT_K_GRID,
    best_bigram_cross_entropy,
    bigram_counts,
)
from progressive_sae.lm.offline.config import RESUMABLE_CHANGES, LMTrainConfig
from progressive_sae.lm.offline.corpus import Corpus, build_corpus
from progressive_sae.lm.offline.lm_files import (
    export_bf16,
    load_checkpoint,
    load_folder,
    save_checkpoint,
)
from progressive_sae.lm.offline.tokenizer import (
    encode_documents,
    load_tokenizer,
    train_tokenizer,
)
from progressive_sae.lm.offline.windows import epoch_windows, token_stream, windows_at

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.json"
FIRST_WINDOWS = 8
"""metrics.json also records the CE on this many leading held-out windows (a quick check)."""


# --------------------------------------------------------------------------- model


def make_model(cfg: LMTrainConfig, special_id: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, bos_token_id=special_id,
        eos_token_id=special_id, tie_word_embeddings=True,
        use_cache=False,
    )
    # transformers draws its own initialisation from the global RNG: let it, inside a forked
    # RNG (the caller's state stays as it was), then draw the weights again from the seed.
    with torch.random.fork_rng(devices=[]):
        model = GPT2LMHeadModel(config)
    init_gpt2_weights(model, cfg.n_layer, config.initializer_range,
                      torch.Generator().manual_seed(cfg.seed))
    model.config._attn_implementation = cfg.attn_implementation
    return model


@torch.no_grad()
def init_gpt2_weights(model, n_layer: int, std: float, generator: torch.Generator) -> None:
    """GPT-2's initialisation (as transformers' GPT2PreTrainedModel._init_weights) drawn
    from `generator`: N(0, std) weights, residual projections N(0, std/√(2·n_layer)), zero
    biases, unit LayerNorm gains. A tied output head is the embedding, listed once."""
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif ".ln_" in name:
            param.fill_(1.0)
        else:
            scale = std / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else std
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


@torch.no_grad()
def heldout_cross_entropy(model, windows: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token CE (nats) over every position of every [n, ctx+1] window."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.shape[0], batch_size):
        w = windows[i: i + batch_size]
        logits = model(input_ids=w[:, :-1]).logits.float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                               reduction="sum")
        total += float(loss)
        count += w[:, 1:].numel()
    model.train(was_training)
    return total / max(count, 1)


def lr_at(cfg: LMTrainConfig, step: int, elapsed: float) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = step / cfg.max_steps
    if cfg.max_seconds is not None:
        progress = max(progress, elapsed / cfg.max_seconds)
    progress = min(max(progress, 0.0), 1.0)
    floor = cfg.lr * cfg.min_lr_fraction
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model, cfg: LMTrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, fused=True,
    )


# --------------------------------------------------------------------------- training


def _log_default(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg)


def train_offline_lm(
    cfg: LMTrainConfig, out: Path, *, corpus: Corpus | None = None, resume: bool = True,
    progress: bool = True, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the offline LM into `out`; returns the metrics written to metrics.json.

    `out` ends up as a Hugging Face model folder loadable with
    ``AutoModelForCausalLM.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)``.
    A run interrupted at any point resumes from ``out/checkpoint`` when called again.
    """
    from tqdm import tqdm

    cfg.validate()
    log = log or _log_default
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # denormal arithmetic is very slow on x86 CPUs
    t_start = time.perf_counter()

    corpus = corpus or build_corpus(cfg.heldout_fraction)
    train_docs = list(corpus.train[: cfg.max_train_documents])
    heldout_docs = list(corpus.heldout[: cfg.max_heldout_documents])
    if not train_docs or not heldout_docs:
        raise PSAEError("the corpus has no training or no held-out documents")
    ckpt = out / CHECKPOINT_DIR
    resuming = resume and (ckpt / "state.json").exists()
    if resuming:  # before any work: the model and data must be those of the checkpoint
        saved = json.loads((ckpt / "state.json").read_text())["config"]
        changed = sorted(k for k, v in cfg.to_dict().items()
                         if k not in RESUMABLE_CHANGES and saved.get(k) != v)
        if changed:
            raise PSAEError(f"{ckpt} was written with other values of {changed}; use a new "
                            "folder or resume=False")
        tokenizer = load_tokenizer(ckpt)
    else:
        tokenizer = train_tokenizer([d.text for d in train_docs], cfg.vocab_size)
    special = tokenizer.bos_token_id
    ids_train = encode_documents(tokenizer, [d.text for d in train_docs])
    ids_held = encode_documents(tokenizer, [d.text for d in heldout_docs])
    train_stream = token_stream(ids_train, special)
    held_stream = token_stream(ids_held, special)
    ctx = cfg.n_positions
    held_windows = windows_at(held_stream, ctx, 0, special)[: cfg.max_heldout_windows]
    if held_windows.shape[0] == 0 or train_stream.numel() < 2 * ctx:
        raise PSAEError("too little text for this context length")
    windows_per_epoch = (train_stream.numel() - ctx + 1) // ctx
    steps_per_epoch = max(windows_per_epoch // cfg.batch_size, 1)
    prep_seconds = time.perf_counter() - t_start
    log(f"corpus: {len(train_docs)} train docs, {train_stream.numel()} tokens; "
        f"{len(heldout_docs)} held-out docs, {held_windows.shape[0]} windows; "
        f"{steps_per_epoch} steps/epoch; prep {prep_seconds:.1f}s")

    model = make_model(cfg, special)
    model.train()
    opt = make_optimizer(model, cfg)
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "history": [], "config": cfg.to_dict()}
    if resuming:
        state = load_checkpoint(ckpt, model, opt)
        state["config"] = cfg.to_dict()
        log(f"resumed at step {state['step']} ({state['elapsed']:.0f}s trained)")

    def save(step: int) -> None:
        state["step"] = step
        save_checkpoint(ckpt, model, opt, tokenizer, state)

    step = state["step"]
    elapsed0 = state["elapsed"]
    if step == 0 and cfg.eval_every:
        ce0 = heldout_cross_entropy(model, held_windows)
        state["history"].append({"step": 0, "heldout_ce": ce0, "elapsed": 0.0})
    t0 = time.perf_counter()
    last_ckpt = t0
    epoch_cache: tuple[int, torch.Tensor] | None = None
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not progress, unit="step",
               dynamic_ncols=True, mininterval=5.0)
    window_loss, window_n = 0.0, 0
    while step < cfg.max_steps:
        elapsed = elapsed0 + time.perf_counter() - t0
        if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
            break
        epoch, idx = divmod(step, steps_per_epoch)
        if epoch_cache is None or epoch_cache[0] != epoch:
            epoch_cache = (epoch, epoch_windows(train_stream, ctx, special, cfg.seed, epoch))
        w = epoch_cache[1][idx * cfg.batch_size: (idx + 1) * cfg.batch_size]
        lr = lr_at(cfg, step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(input_ids=w[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        window_loss += float(loss.detach())
        window_n += 1
        bar.update(1)
        now = time.perf_counter()
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            el = elapsed0 + now - t0
            tok_s = step * cfg.batch_size * ctx / max(el, 1e-9)
            log(f"step {step} epoch {epoch} loss {window_loss / window_n:.4f} lr {lr:.2e} "
                f"{el:.0f}s {tok_s:.0f} tok/s")
            bar.set_postfix(loss=f"{window_loss / window_n:.3f}", lr=f"{lr:.1e}")
            window_loss, window_n = 0.0, 0
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
            t_eval = time.perf_counter()
            ce = heldout_cross_entropy(model, held_windows)
            t0 += time.perf_counter() - t_eval  # evaluation time is not training time
            state["history"].append({"step": step, "heldout_ce": ce,
                                     "elapsed": elapsed0 + time.perf_counter() - t0})
            log(f"step {step} held-out CE {ce:.4f}")
        if now - last_ckpt >= cfg.checkpoint_seconds:
            state["elapsed"] = elapsed0 + time.perf_counter() - t0
            save(step)
            last_ckpt = time.perf_counter()
    bar.close()
    train_seconds = elapsed0 + time.perf_counter() - t0
    state["elapsed"] = train_seconds
    save(step)

    # Bigram baseline on exactly the pairs the LM is scored on.
    train_windows = windows_at(train_stream, ctx, 0, special)
    counts = bigram_counts(train_windows[:, :-1], train_windows[:, 1:], cfg.vocab_size)
    ks = (cfg.bigram_k,) if cfg.bigram_k is not None else DEFAULT_K_GRID
    bigram_ce, bigram_k = best_bigram_cross_entropy(
        counts, held_windows[:, :-1], held_windows[:, 1:], ks)
    ce_fp32 = heldout_cross_entropy(model, held_windows)
    with atomic_directory(out / ".export", overwrite=True) as scratch:
        export_bf16(model, tokenizer, scratch)
    # Score what ships: the bf16 file loaded back to fp32 through the plain HF path.
    final_files = sorted(p.name for p in (out / ".export").iterdir())
    for name in final_files:
        (out / ".export" / name).replace(out / name)
    (out / ".export").rmdir()
    shipped, _ = load_folder(out)
    shipped.config._attn_implementation = "eager"
    ce_bf16 = heldout_cross_entropy(shipped, held_windows)
    ce_first = heldout_cross_entropy(shipped, held_windows[:FIRST_WINDOWS])
    n_params = sum(p.numel() for p in model.parameters())
    metrics = {
        "heldout_ce": ce_bf16,
        "heldout_ce_fp32": ce_fp32,
        "bigram_heldout_ce": bigram_ce,
        "bigram_k": bigram_k,
        "beats_bigram": ce_bf16 < bigram_ce,
        "heldout_first_windows": {"windows": int(min(FIRST_WINDOWS, held_windows.shape[0])),
                                  "ce": ce_first},
        "heldout_windows": int(held_windows.shape[0]),
        "heldout_tokens_scored": int(held_windows[:, 1:].numel()),
        "train_stream_tokens": int(train_stream.numel()),
        "steps": step,
        "tokens_trained": step * cfg.batch_size * ctx,
        "epochs": step / steps_per_epoch,
        "train_seconds": train_seconds,
        "parameters": n_params,
        "history": state["history"],
        "corpus": corpus.summary(),
        "corpus_subset": {"train_documents": len(train_docs),
                          "heldout_documents": len(heldout_docs)},
        "windows": "[BOS] + n_positions stream tokens; documents separated by BOS",
        "config": cfg.to_dict(),
        "versions": _versions(),
    }
    write_json_atomic(out / METRICS_FILE, metrics)
    if not cfg.keep_checkpoint:
        import shutil

        shutil.rmtree(ckpt, ignore_errors=True)
    log(f"held-out CE {ce_bf16:.4f} (fp32 {ce_fp32:.4f}) vs bigram {bigram_ce:.4f} "
        f"(k={bigram_k}); {step} steps in {train_seconds:.0f}s")
    return metrics


def _versions() -> dict[str, str]:
    import platform

    import tokenizers
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def _parse_args(argv: list[str] | None = None) -> tuple[LMTrainConfig, Path, bool]:
    import argparse

    parser = argparse.ArgumentParser(description="Train the offline default LM.")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--no-resume", action="store_true", help="ignore out/checkpoint")
    for f in dataclasses.fields(LMTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"),
                                default=f.default)
        elif f.name in ("max_seconds", "bigram_k"):
            parser.add_argument(flag, type=float, default=f.default)
        elif f.name in ("max_train_documents", "max_heldout_documents",
                        "max_heldout_windows"):
            parser.add_argument(flag, type=int, default=f.default)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    args = vars(parser.parse_args(argv))
    out, no_resume = args.pop("out"), args.pop("no_resume")
    return LMTrainConfig(**args), out, not no_resume


if __name__ == "__main__":
    _cfg, _out, _resume = _parse_args()
    train_offline_lm(_cfg, _out, resume=_resume)
