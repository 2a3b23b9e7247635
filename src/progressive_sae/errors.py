"""Errors meant for people: one line naming the value and what was expected."""


class PSAEError(ValueError):
    """Bad input from a user: the CLI prints the message alone and exits with code 2."""
