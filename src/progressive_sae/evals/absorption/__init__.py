"""Feature absorption on labelled activations (SPEC §4.7; Chanin et al., SAEBench): the LM
first-letter task, token label sets the small offline LM encodes, or any labels."""

from progressive_sae.evals.absorption.config import TASKS, AbsorptionConfig
from progressive_sae.evals.absorption.first_letter import (
    PromptConfig,
    build_prompts,
    first_letter_dataset,
    read_position,
)
from progressive_sae.evals.absorption.lm_tasks import evaluate_lm_absorption
from progressive_sae.evals.absorption.measure import evaluate_absorption, row_absorption
from progressive_sae.evals.absorption.plot import plot_absorption
from progressive_sae.evals.absorption.result import (
    AbsorptionResult,
    ClassAbsorption,
    ClassProbe,
    ViewAbsorption,
)
from progressive_sae.evals.absorption.token_tasks import (
    TOKEN_TASKS,
    cache_token_dataset,
    corpus_token_dataset,
    label_tokens,
)

__all__ = [
    "TASKS", "TOKEN_TASKS", "AbsorptionConfig", "AbsorptionResult", "ClassAbsorption",
    "ClassProbe", "PromptConfig", "ViewAbsorption", "build_prompts", "cache_token_dataset",
    "corpus_token_dataset", "evaluate_absorption", "evaluate_lm_absorption",
    "first_letter_dataset", "label_tokens", "plot_absorption", "read_position",
    "row_absorption",
]
