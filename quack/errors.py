"""The error every stage raises for what a user can fix: a bad file, folder or option."""

from __future__ import annotations

__all__ = ["QuackInputError"]


class QuackInputError(ValueError):
    """An input file that cannot be read at all; the message names it and says what to do."""
