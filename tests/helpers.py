"""Assertions shared by test modules."""

import pytest

from progressive_sae.errors import PSAEError


def one_line_error(call, *words):
    """`call()` raises a one-line PSAEError that contains every word; returns the message."""
    with pytest.raises(PSAEError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message
