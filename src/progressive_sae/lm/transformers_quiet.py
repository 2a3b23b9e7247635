"""`quiet_transformers`: transformers' loading bars and reports switched off for a block.

Its own module, importing nothing of the package, so that `lm.model` and the offline LM's files
(`lm.offline`), which `lm.model` loads, can both use it without importing each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading bars and reports (stderr is for our one-line errors)."""
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
