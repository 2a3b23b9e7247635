"""Shared plumbing for the peer-library drivers (sparsify, SAELens).

This module is imported by the driver scripts, which run inside the *peer*
virtual environments; it must therefore depend only on torch, numpy and the
standard library, and never on ``progressive_sae``.

Everything here is deliberately library-agnostic so that the two drivers read
the data, time steps and score reconstructions in exactly the same way; the
only thing that differs between them is how the peer's own trainer is driven.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

#: Steps excluded from the median: the first steps pay one-off costs (allocator
#: growth, lazily created optimizer state, bias initialisation from the first
#: batch) that say nothing about steady-state throughput.
WARMUP_STEPS = 3


def build_parser(description: str) -> argparse.ArgumentParser:
    """Command line shared by both drivers (see benchmarks/train_speed.py);
    drivers may add peer-specific options before parsing."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", type=Path, required=True, help="float32 [T, d] .npy")
    p.add_argument("--eval", type=Path, required=True, help="float32 [E, d] .npy")
    p.add_argument("--num-latents", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True, help="tokens per step")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="result JSON path")
    p.add_argument("--eval-chunk", type=int, default=2048, help="rows per FVU forward pass")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--shuffle", action="store_true",
                   help="serve the rows as passes over the file, each in a new order drawn "
                        "from --seed (then --steps x --batch-size may exceed the file)")
    return p


def open_rows(args: argparse.Namespace) -> RowReader:
    """The training rows the command line names: the file once in order, or shuffled passes."""
    return RowReader(args.train, args.batch_size * args.steps,
                     shuffle_seed=args.seed if args.shuffle else None)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work, so that a clock mark ends the step it follows."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_record(device: str | torch.device) -> dict[str, Any]:
    """The device a driver trained on: its name and, on a GPU, the peak memory it held."""
    device = torch.device(device)
    if device.type != "cuda":
        return {"device": str(device)}
    return {"device": str(device), "gpu_name": torch.cuda.get_device_name(device),
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20}


def claim_stdout() -> TextIO:
    """Point ``sys.stdout`` at stderr and return the real stdout.

    Both peers ``print`` progress/info to stdout (sparsify even does so at import
    time), while our contract is that stdout carries only the result JSON. Call
    this *before* importing the peer.
    """
    real = sys.stdout
    sys.stdout = sys.stderr
    return real


def seed_and_threads(seed: int, threads: int) -> None:
    """Pin thread counts and seeds so both peers run under identical conditions."""
    torch.set_num_threads(threads)
    try:
        # Only settable before any inter-op parallel work has started.
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def log(msg: str) -> None:
    print(f"[driver] {msg}", file=sys.stderr, flush=True)


class RowReader:
    """Hands out consecutive rows of a memory-mapped [T, d] float32 .npy file.

    Rows are read lazily, batch by batch and in file order, so that every
    library (and our own trainer) sees exactly the same token stream and no
    library gets to pre-load or shuffle the data. With `shuffle_seed`, the
    stream is seeded passes over the file instead (`positions`), the same for
    every library, and may be longer than the file.

    Pages of the mapping are released (``MADV_DONTNEED``) once their rows have
    been copied out. Resident file-backed pages count towards RSS, so without
    this the peak RSS would grow by the size of the training file and report
    the data set rather than the library's memory use. The page cache keeps
    the data; only this process's mapping of it is dropped.
    """

    def __init__(self, path: Path, max_rows: int | None = None,
                 shuffle_seed: int | None = None) -> None:
        self.path = path
        self.array = np.load(path, mmap_mode="r")
        if self.array.ndim != 2 or self.array.dtype != np.float32:
            raise ValueError(
                f"{path}: expected a 2-D float32 array, got {self.array.dtype} {self.array.shape}"
            )
        self.limit = self.array.shape[0] if max_rows is None else max_rows
        if self.limit > self.array.shape[0] and shuffle_seed is None:
            raise ValueError(f"{path} has {self.array.shape[0]} rows, {self.limit} needed")
        self.shuffle_seed = shuffle_seed
        self._order: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))  # (pass, rows)
        self.cursor = 0
        self.row_bytes = self.array.shape[1] * self.array.itemsize
        # np.memmap maps from the allocation-granularity boundary below the
        # .npy header, so the data starts this far into the mmap object.
        self._mm: mmap.mmap | None = getattr(self.array, "_mmap", None)
        self._data_start = self.array.offset % mmap.ALLOCATIONGRANULARITY
        self._can_release = self._mm is not None and hasattr(mmap, "MADV_DONTNEED")

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def take(self, n: int) -> torch.Tensor:
        """Return the next ``n`` rows as a fresh, contiguous fp32 tensor."""
        start, end = self.cursor, self.cursor + n
        if end > self.limit:
            raise RuntimeError(f"data exhausted: asked for rows {start}:{end} of {self.limit}")
        if self.shuffle_seed is not None:
            rows = torch.from_numpy(self._read_rows(self.positions(start, end)))
            self.cursor = end
            return rows
        # np.array copies out of the page cache; the copy is part of a real
        # data pipeline, and torch must not keep a view into the mmap.
        rows = torch.from_numpy(np.array(self.array[start:end], order="C"))
        self.cursor = end
        self._release(start, end)
        return rows

    def positions(self, start: int, end: int) -> np.ndarray:
        """The file rows behind stream positions start..end when shuffled: pass p is the
        file in the order `permutation(seed + p)`. Within a batch each pass's rows are read
        in file order (every library gets the same rows; their order changes no loss)."""
        assert self.shuffle_seed is not None
        rows = self.array.shape[0]
        stream = np.arange(start, end)
        passes = stream // rows
        out = np.empty_like(stream)
        for p in np.unique(passes).tolist():
            if self._order[0] != p:
                self._order = (p, np.random.default_rng(self.shuffle_seed + p).permutation(rows))
            here = passes == p
            out[here] = np.sort(self._order[1][stream[here] - p * rows])
        return out

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """These file rows, read with pread: gathered through the mapping, scattered rows
        would map whole 64 KB windows around each (the kernel's fault-around), nearly the
        whole file for a 4,096-row batch, and count towards RSS."""
        out = np.empty((rows.size, self.array.shape[1]), dtype=np.float32)
        view = memoryview(out).cast("B")
        size = self.row_bytes
        with open(self.path, "rb", buffering=0) as f:
            for j, row in enumerate(rows.tolist()):
                got = os.preadv(f.fileno(), [view[j * size:(j + 1) * size]],
                                self.array.offset + row * size)
                if got != size:
                    raise RuntimeError(f"{self.path}: short read at row {row}")
        return out

    def _release(self, start: int, end: int) -> None:
        if not self._can_release:
            return
        assert self._mm is not None
        lo = self._data_start + start * self.row_bytes
        hi = self._data_start + end * self.row_bytes
        lo -= lo % mmap.PAGESIZE  # madvise needs a page-aligned start
        self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class StepClock:
    """Records step boundaries; each driver calls :meth:`mark` once at the
    start of its training loop and once at the end of every step.

    Besides wall time it records process CPU time (all threads): on a shared
    machine another job inflates wall time but hardly CPU time, so the pair
    tells a slow library from a contended measurement.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        # (wall, cpu, minor page faults) in one list, so that ``marks.clear()`` (used to
        # drop setup reads) can never leave the series out of step.
        self.marks: list[tuple[float, float, int]] = []
        self.loadavg_start: tuple[float, float, float] | None = None
        self.device = device

    def mark(self) -> None:
        synchronize(self.device)
        if not self.marks:
            self.loadavg_start = os.getloadavg()
        self.marks.append((time.perf_counter(), time.process_time(),
                           resource.getrusage(resource.RUSAGE_SELF).ru_minflt))

    def reset(self) -> None:
        self.marks.clear()
        self.loadavg_start = None

    def _diffs(self, which: int) -> list[float]:
        return [b[which] - a[which] for a, b in zip(self.marks, self.marks[1:])]

    def durations_ms(self) -> list[float]:
        """Wall-clock ms of each step."""
        return [1000.0 * t for t in self._diffs(0)]

    def cpu_durations_ms(self) -> list[float]:
        """Process CPU ms (all threads) of each step."""
        return [1000.0 * t for t in self._diffs(1)]

    def page_faults(self) -> list[int]:
        """Minor page faults of each step: each is a fresh page the kernel had to zero."""
        return [int(n) for n in self._diffs(2)]


@torch.no_grad()
def eval_fvu(
    reconstruct: Callable[[torch.Tensor], torch.Tensor],
    eval_path: Path,
    chunk: int,
    device: str | torch.device = "cpu",
) -> float:
    """FVU = sum ||x - xhat||^2 / sum ||x - mean(x)||^2 over the eval rows.

    The reconstruction runs in fp32 (the caller's SAE); the sums are carried in
    fp64 so that the ratio does not depend on the chunking.
    """
    # Peers may lower the matmul precision for training (sparsify sets "high");
    # scoring must be plain fp32 for every library alike.
    torch.set_float32_matmul_precision("highest")
    data = np.load(eval_path, mmap_mode="r")
    n = data.shape[0]

    mean = torch.zeros(data.shape[1], dtype=torch.float64)
    for s in range(0, n, chunk):
        mean += torch.from_numpy(np.array(data[s : s + chunk])).double().sum(0)
    mean /= n

    err = 0.0
    var = 0.0
    for s in range(0, n, chunk):
        x = torch.from_numpy(np.array(data[s : s + chunk], dtype=np.float32))
        xhat = reconstruct(x.to(device)).float().cpu()
        err += float((x - xhat).double().pow(2).sum())
        var += float((x.double() - mean).pow(2).sum())
    return err / var


def peak_rss_mb() -> float:
    """High-water RSS of this process's own memory so far.

    Read from VmHWM, not ru_maxrss: Python starts subprocesses with vfork, and exec then
    carries the parent's peak into the child's ru_maxrss (measured: a child of an 800 MB
    parent reported 813 MB against 13 MB of its own), so every driver would report the
    benchmark's own peak whenever that was higher.
    """
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024.0  # kB
    except (OSError, StopIteration):  # no /proc: macOS reports ru_maxrss in bytes
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def current_rss_mb() -> float:
    """RSS right now; taken before training it is the import/setup baseline."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * mmap.PAGESIZE / 2**20


def summarize(
    timing: StepClock | list[float],
    batch_size: int,
    steps: int,
    fvu: float,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    *,
    peak_rss: float | None = None,
) -> dict[str, Any]:
    """Build the result record shared by all drivers.

    ``timing`` is the StepClock (preferred: it also yields CPU time and load)
    or a plain list of per-step wall ms. ``peak_rss`` should be
    :func:`peak_rss_mb` taken right after training, so that the FVU
    evaluation's buffers are not charged to the trainer; if omitted, the
    high-water mark at the time of this call is used.
    """
    clock = timing if isinstance(timing, StepClock) else None
    step_ms = clock.durations_ms() if clock else list(timing)  # type: ignore[arg-type]
    if len(step_ms) != steps:
        raise RuntimeError(f"timed {len(step_ms)} steps, expected {steps}")
    # With very short runs there is nothing left after the warm-up; fall back
    # to all steps rather than failing, and say so in the record.
    skip = WARMUP_STEPS if steps > WARMUP_STEPS else 0
    med = statistics.median(step_ms[skip:])
    result: dict[str, Any] = {
        "step_ms": med,
        # The mean counts the occasional slow step that the median skips over: it is what
        # a long run's wall time goes by.
        "step_ms_mean": statistics.fmean(step_ms[skip:]),
        "tokens_per_s": batch_size / (med / 1000.0),
        "peak_rss_mb": peak_rss if peak_rss is not None else peak_rss_mb(),
        "fvu": fvu,
        "steps": steps,
        "tokens": steps * batch_size,
        "config": {
            **config,
            "warmup_steps_excluded": skip,
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "pid": os.getpid(),
        },
        "step_ms_all": [round(t, 3) for t in step_ms],
        "extra": extra or {},
    }
    if clock:
        # Process CPU ms per step (all threads), median over the same steps.
        result["step_cpu_ms"] = statistics.median(clock.cpu_durations_ms()[skip:])
        # Fresh pages faulted in per step (median): memory the allocator returned to the
        # system and took back, each page zeroed again.
        result["page_faults_per_step"] = statistics.median(clock.page_faults()[skip:])
        result["page_faults_all"] = clock.page_faults()
        # 1/5/15-min load averages: above the thread count means other jobs
        # competed for the CPUs and step_ms is inflated.
        result["loadavg_start"] = list(clock.loadavg_start or ())
    result["loadavg_end"] = list(os.getloadavg())
    return result


def emit(result: dict[str, Any], out: Path, stdout: TextIO) -> None:
    """Write the JSON file and print the same JSON (only) to the real stdout."""
    text = json.dumps(result, indent=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    stdout.write(text + "\n")
    stdout.flush()
