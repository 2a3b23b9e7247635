"""Errors meant for people: one line naming the value and what was expected."""


class PSAEError(ValueError):
    """Bad input from a user: the CLI prints the message alone and exits with code 2."""


def first_line(err: BaseException) -> str:
    """'ErrorType: first line of its message', to quote a library's error in one line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
