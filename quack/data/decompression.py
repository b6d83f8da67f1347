"""Bounds on how far a compressed input may expand.

A compressed file can expand a thousandfold. :func:`bounded_decompression` wraps a
decompressing stream and stops it once it has produced more than a set multiple of the
compressed size. (A checkpoint, the other input that costs far more than its size, is
checked in :mod:`quack.model.checkpoint`.)
"""

from __future__ import annotations

import io
import os
from typing import IO, Mapping

__all__ = [
    "DEFAULT_MAX_EXPANSION",
    "EXPANSION_VARIABLE",
    "MIN_ALLOWANCE",
    "ExpansionError",
    "bounded_decompression",
    "max_expansion",
]

#: Decompressed bytes allowed per compressed byte. Quack's JSON lines compress 4 to 11
#: times (the published samples; the built-in sample 8.5), so ten times that leaves room
#: while a crafted file (deflate reaches about 1000) is stopped early.
DEFAULT_MAX_EXPANSION = 100.0

#: The environment variable that overrides :data:`DEFAULT_MAX_EXPANSION`.
EXPANSION_VARIABLE = "QUACK_MAX_EXPANSION"

#: Bytes any compressed input may expand to whatever its size, so that a small file of
#: repetitive records is never refused.
MIN_ALLOWANCE = 1 << 20


class ExpansionError(ValueError):
    """A compressed input that expands past its allowance; the message names it."""


def max_expansion(ratio: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """The expansion ratio in force: ``ratio`` if given, else ``QUACK_MAX_EXPANSION``, else the default.

    Raises
    ------
    ValueError
        When the ratio, or the variable, is not a number of at least 1.
    """
    if ratio is None:
        text = (os.environ if environ is None else environ).get(EXPANSION_VARIABLE, "").strip()
        if not text:
            return DEFAULT_MAX_EXPANSION
        try:
            ratio = float(text)
        except ValueError:
            ratio = float("nan")
        if not ratio >= 1 or ratio == float("inf"):
            raise ValueError(f"{EXPANSION_VARIABLE} must be a number of at least 1, got {text!r}; fix it and restart.")
        return ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1 <= ratio < float("inf"):
        raise ValueError(f"The expansion ratio must be a number of at least 1, got {ratio!r}.")
    return float(ratio)


class _CountingReader(io.RawIOBase):
    """Reads a decompressing stream and fails once it has given more than ``allowance`` bytes."""

    def __init__(self, stream: IO[bytes], allowance: int, message: str) -> None:
        self._stream = stream
        self._allowance = allowance
        self._message = message
        self._given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # One byte past the allowance is enough to know it is exceeded.
        wanted = min(len(buffer), self._allowance - self._given + 1)
        data = self._stream.read(wanted)
        self._given += len(data)
        if self._given > self._allowance:
            raise ExpansionError(self._message)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def bounded_decompression(stream: IO[bytes], compressed_size: int, source: str,
                          ratio: float | None = None) -> io.BufferedReader:
    """A decompressing stream that stops with :class:`ExpansionError` past its allowance.

    The allowance is ``ratio`` times ``compressed_size``, and never less than
    :data:`MIN_ALLOWANCE`. Reading goes on normally below it; the read that crosses it
    raises, so decompression stops within one buffer of the allowance.

    Parameters
    ----------
    stream : binary file object
        The decompressed side: a ``gzip.GzipFile``, or a ``tarfile`` member stream.
    compressed_size : int
        Bytes of the compressed input: the file's size, or the archive member's.
    source : str
        The file (or ``archive:member``) as messages should name it.
    ratio : float, optional
        Decompressed bytes allowed per compressed byte; see :func:`max_expansion`.

    Returns
    -------
    io.BufferedReader
        With ``read``, ``readline`` and ``peek``; closing it closes ``stream``.

    Raises
    ------
    ValueError
        When ``ratio`` or ``QUACK_MAX_EXPANSION`` is not a number of at least 1.
    """
    ratio = max_expansion(ratio)
    allowance = max(int(ratio * max(compressed_size, 0)), MIN_ALLOWANCE)
    message = (
        f"{source} expands to more than {ratio:g} times its compressed size when decompressed "
        f"({allowance:,} bytes), so it was not read further; if it is a genuine measurement file, "
        f"raise {EXPANSION_VARIABLE}."
    )
    return io.BufferedReader(_CountingReader(stream, allowance, message))
