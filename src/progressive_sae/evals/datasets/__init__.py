"""Labelled text tasks for probing and erasure: offline ones from the shipped corpus, and
SAEBench's datasets through `datasets` (with internet)."""

from progressive_sae.evals.datasets.labelled import LabelledText, TextTask, make_task, one_vs_rest
from progressive_sae.evals.datasets.offline import (
    PACKAGES,
    SpuriousTask,
    TaskSizes,
    offline_tasks,
    package_task,
)
from progressive_sae.evals.datasets.spurious import SCR_PAIRS, scr_tasks

__all__ = [
    "PACKAGES",
    "SCR_PAIRS",
    "LabelledText",
    "SpuriousTask",
    "TaskSizes",
    "TextTask",
    "make_task",
    "offline_tasks",
    "one_vs_rest",
    "package_task",
    "scr_tasks",
]
