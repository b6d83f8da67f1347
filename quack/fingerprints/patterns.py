"""Regular expressions whose every search ends in bounded time.

Blockpage signatures, user fingerprint files and the pattern typed on the Discover page
are Python ``re`` syntax, compiled with DOTALL, searched unanchored and case-sensitively.
Python's backtracking engine can take exponential time on a pattern such as ``(a+)+$``,
and it holds the interpreter lock while it does, so one pattern can freeze a server.

:func:`compile_pattern` keeps Python's syntax and results but runs the search elsewhere:

- Through RE2, in time linear in the text, when the pattern translates to it exactly.
  Python parses the pattern and its parse tree is written out again in RE2's syntax.
  Every character class, ``\\d``, ``\\w``, ``\\s`` and case-insensitive letters included,
  is spelled out as the very characters Python's ``re`` matches with it (RE2's classes are
  ASCII-only and both engines fold case differently from Python); ``$`` keeps Python's
  meaning (the end, or before a final newline). Lookarounds, backreferences, conditionals,
  atomic groups, possessive repeats, a ``$`` that something follows and counts above 1000
  have no RE2 form. Neither has a word boundary on non-ASCII text, nor ``\\B`` on empty
  text: those texts go to the other engine.
- Otherwise through the ``regex`` package with a timeout, from the same translation, so
  the classes stay Python's (``regex``'s own ``\\w`` and ``\\s`` differ). A pattern that
  needs this engine and nests one unbounded repeat in another, the shape of the classic
  catastrophic patterns, is refused before it runs.

Python's parse tree and its translations live in :mod:`quack.fingerprints.parsetree`.

Results equal ``re``'s, with one exception: a case-insensitive backreference follows
``regex``'s case folding. The shipped and published signature lists run through RE2, but
for one pattern whose repeat count of 2000 is above RE2's limit.

``regex`` measures its timeout in processor time and releases the interpreter lock while
it searches; an RE2 search needs no timeout.
"""

from __future__ import annotations

import re
import time

import re2
import regex

from quack.fingerprints.parsetree import TooSlow, Translation, Unsupported, nests_unbounded, parse_tree

__all__ = ["COMPILE_SECONDS", "DEFAULT_TIMEOUT", "MAX_PATTERN_CHARS", "BoundedPattern", "PatternError",
           "PatternTimeout", "compile_pattern"]

#: Seconds of processor time one search through the ``regex`` engine may take.
DEFAULT_TIMEOUT = 0.5

#: Longest pattern accepted; the longest published signature has 838 characters.
MAX_PATTERN_CHARS = 2_000

#: Seconds a pattern's compilation may take when no deadline is given.
COMPILE_SECONDS = 10.0


class PatternError(ValueError):
    """A pattern that is not a valid regular expression or that is refused as unsafe."""


class PatternTimeout(PatternError):
    """A search that was stopped at its time limit; the message names the pattern and its source."""


def _show(pattern: str, limit: int = 60) -> str:
    """The pattern shortened for a message, with control characters made visible."""
    short = pattern if len(pattern) <= limit else pattern[: limit - 3] + "..."
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in short)


class BoundedPattern:
    """A compiled pattern whose searches end in bounded time; build it with :func:`compile_pattern`.

    Attributes
    ----------
    pattern : str
        The pattern as written.
    source : str
        Where it came from, as used in messages.
    timeout : float
        Seconds of processor time one search through ``regex`` may take.
    engine : str
        ``"re2"`` when RE2 runs it, ``"regex"`` when only the ``regex`` engine can. With RE2,
        ``regex`` still takes the few texts RE2 cannot match exactly: text with lone
        surrogates, non-ASCII text for a Unicode word boundary, empty text for ``\\B``.
    """

    __slots__ = ("pattern", "source", "timeout", "engine", "_re2", "_regex", "_regex_text",
                 "_ascii_only", "_nonempty_only")

    def __init__(self, pattern: str, source: str, timeout: float, re2_pattern, regex_text: str,
                 ascii_only: bool, nonempty_only: bool) -> None:
        self.pattern = pattern
        self.source = source
        self.timeout = timeout
        self.engine = "re2" if re2_pattern is not None else "regex"
        self._re2 = re2_pattern
        self._regex_text = regex_text
        # Built on first need where RE2 runs the pattern: most such patterns never need it.
        self._regex = None if re2_pattern is not None else _compile_regex(pattern, source, regex_text)
        self._ascii_only = ascii_only
        self._nonempty_only = nonempty_only

    def __repr__(self) -> str:
        return f"BoundedPattern({self.pattern!r}, source={self.source!r}, engine={self.engine!r})"

    def search(self, text: str, deadline: float | None = None) -> bool:
        """Whether the pattern occurs anywhere in ``text``, as ``re.search`` would say.

        Parameters
        ----------
        text : str
            The text searched.
        deadline : float, optional
            A :func:`time.monotonic` time after which no search may start or run on; for a
            scan of many texts that must end by then as a whole.

        Returns
        -------
        bool

        Raises
        ------
        PatternTimeout
            When the search took longer than ``timeout`` or ran past ``deadline``.
        """
        limit = self.timeout
        if deadline is not None:
            limit = min(limit, deadline - time.monotonic())
            if limit <= 0:
                raise self._timeout(None)
        if self._re2 is not None and (not self._ascii_only or text.isascii()) \
                and (text or not self._nonempty_only):
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError:
                pass  # lone surrogates: RE2 takes only valid UTF-8
            else:
                return self._re2.search(encoded) is not None
        if self._regex is None:
            self._regex = _compile_regex(self.pattern, self.source, self._regex_text)
        try:
            return self._regex.search(text, timeout=limit, concurrent=True) is not None
        except TimeoutError:
            raise self._timeout(None if deadline is not None and limit < self.timeout else limit) from None

    def _timeout(self, seconds: float | None) -> PatternTimeout:
        if seconds is None:
            return PatternTimeout(
                f"The pattern '{_show(self.pattern)}' in {self.source} did not finish within the time allowed "
                "for this search; simplify it or search fewer records."
            )
        return PatternTimeout(
            f"The pattern '{_show(self.pattern)}' in {self.source} ran longer than {seconds:g} s on one text "
            "and was stopped; simplify it (alternatives or repeats that can match the same text are the usual cause)."
        )


def compile_pattern(pattern: str, source: str, timeout: float = DEFAULT_TIMEOUT,
                    deadline: float | None = None) -> BoundedPattern:
    """Compile a Python regular expression, with DOTALL, for searches that end in bounded time.

    Parameters
    ----------
    pattern : str
        Python ``re`` syntax.
    source : str
        Where the pattern came from, read after "in" in messages: ``"blockpages.json line 3"``,
        ``"the Discover page's pattern box"``.
    timeout : float
        Seconds of processor time one search may take when the ``regex`` engine runs it.
    deadline : float, optional
        A :func:`time.monotonic` time by which compiling must end (a scan's deadline covers
        its patterns' compilation); :data:`COMPILE_SECONDS` from now when not given.

    Returns
    -------
    BoundedPattern

    Raises
    ------
    PatternError
        When the pattern is not valid Python syntax, is longer than
        :data:`MAX_PATTERN_CHARS`, or needs the backtracking engine and nests one
        unbounded repeat in another.
    PatternTimeout
        When compiling runs past the deadline.
    """
    if not timeout > 0:
        raise ValueError(f"The pattern timeout must be a positive number of seconds, got {timeout!r}.")
    if not isinstance(pattern, str):
        raise PatternError(f"The pattern in {source} is a {type(pattern).__name__}, not text; give a string.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"The pattern '{_show(pattern)}' in {source} is {len(pattern):,} characters long, more than the "
            f"{MAX_PATTERN_CHARS:,} allowed; shorten it."
        )
    try:
        re.compile(pattern, re.DOTALL)
    except (re.error, RecursionError, OverflowError) as error:
        raise PatternError(
            f"The pattern '{_show(pattern)}' in {source} is not a valid regular expression ({error}); correct it."
        ) from None
    if deadline is None:
        deadline = time.monotonic() + COMPILE_SECONDS
    try:
        return _translated(pattern, source, timeout, deadline)
    except TooSlow:
        raise PatternTimeout(
            f"The pattern '{_show(pattern)}' in {source} did not compile within the time allowed; "
            "shorten it or use fewer distinct characters under (?i)."
        ) from None


def _translated(pattern: str, source: str, timeout: float, deadline: float) -> BoundedPattern:
    items, flags = parse_tree(pattern)
    re2_pattern = None
    ascii_only = nonempty_only = False
    try:
        to_re2 = Translation(for_re2=True, deadline=deadline)
        re2_pattern = re2.compile(to_re2.sequence(items, flags, tail=True), _re2_options())
        ascii_only, nonempty_only = to_re2.ascii_only, to_re2.nonempty_only
    except (Unsupported, re2.error, RecursionError):
        if nests_unbounded(items, inside=False):
            raise PatternError(
                f"The pattern '{_show(pattern)}' in {source} repeats a part that itself repeats without limit, "
                "which can take exponential time with the lookarounds or backreferences it also uses; "
                "rewrite it without the nested repeat."
            ) from None
    try:
        regex_text = Translation(for_re2=False, deadline=deadline).sequence(items, flags, tail=False)
    except RecursionError:
        raise PatternError(f"The pattern '{_show(pattern)}' in {source} nests too deeply; simplify it.") from None
    return BoundedPattern(pattern, source, timeout, re2_pattern, regex_text, ascii_only, nonempty_only)


def _compile_regex(pattern: str, source: str, regex_text: str):
    try:
        return regex.compile(regex_text, regex.V0)
    except (regex.error, RecursionError) as error:
        raise PatternError(
            f"The pattern '{_show(pattern)}' in {source} cannot be run with a time limit ({error}); simplify it."
        ) from None


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refusal is expected and handled; RE2 would print it to stderr
    options.never_capture = True  # only whether there is a match is asked
    return options
