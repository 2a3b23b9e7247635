"""Learning-rate schedule: linear warm-up, constant, linear decay to zero at the end."""

from __future__ import annotations


def learning_rate(
    step: int, total_steps: int, peak: float, warmup_steps: int, decay_fraction: float
) -> float:
    """The rate for 0-based `step` of `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = int(total_steps * decay_fraction)
    decay_start = total_steps - decay_steps
    if decay_steps > 0 and step >= decay_start:
        return peak * (total_steps - step) / (decay_steps + 1)
    return peak
