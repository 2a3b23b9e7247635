"""What a score records: its value (or why it is undefined) and every failed answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """An answer that could not be used: kept with its text, counted, never scored as 0."""

    window: int | None
    """Which window of the latent's scored set (None: the explanation)."""
    error: str
    """Why (call failed, unparseable, wrong length, …)."""
    text: str | None = None
    """The answer as it came back, if any (cut to 500 characters)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MethodScore:
    """One method's score of one latent."""

    value: float | None
    """The score; None when undefined (see reason)."""
    reason: str | None = None
    """Why the score is undefined."""
    answered: int = 0
    """Windows whose answer was used."""
    failures: tuple[Failure, ...] = field(default_factory=tuple)
    """Answers that could not be used (counted as failures)."""

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason, "answered": self.answered,
                "failures": [f.to_dict() for f in self.failures]}

    @classmethod
    def undefined(cls, reason: str, answered: int = 0,
                  failures: tuple[Failure, ...] = ()) -> MethodScore:
        return cls(None, reason, answered, tuple(failures))
