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

Results equal ``re``'s, with one exception: a case-insensitive backreference follows
``regex``'s case folding. The shipped and published signature lists run through RE2, but
for one pattern whose repeat count of 2000 is above RE2's limit.

``regex`` measures its timeout in processor time and releases the interpreter lock while
it searches; an RE2 search needs no timeout.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache

import re2
import regex

try:
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # Python 3.10
    import sre_constants as _c
    import sre_parse as _sre_parse

__all__ = ["DEFAULT_TIMEOUT", "MAX_PATTERN_CHARS", "BoundedPattern", "PatternError", "PatternTimeout",
           "compile_pattern"]

#: Seconds of processor time one search through the ``regex`` engine may take.
DEFAULT_TIMEOUT = 0.5

#: Longest pattern accepted; the published signatures stay under 1000 characters.
MAX_PATTERN_CHARS = 20_000

# Python's flags as plain ints: the parse tree carries ints, and enum arithmetic is slow.
_IGNORECASE, _MULTILINE, _DOTALL, _ASCII = (int(flag) for flag in (re.IGNORECASE, re.MULTILINE, re.DOTALL, re.ASCII))
# RE2 refuses repeat counts above this.
_RE2_MAX_COUNT = 1000
_MAX_CHAR = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
# Absent on Python 3.10, which has neither construct.
_ATOMIC_GROUP = getattr(_c, "ATOMIC_GROUP", None)
_POSSESSIVE_REPEAT = getattr(_c, "POSSESSIVE_REPEAT", None)
_REPEATS = tuple(op for op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _POSSESSIVE_REPEAT) if op is not None)


class PatternError(ValueError):
    """A pattern that is not a valid regular expression or that is refused as unsafe."""


class PatternTimeout(PatternError):
    """A search that was stopped at its time limit; the message names the pattern and its source."""


class _Unsupported(Exception):
    """A construct with no exact RE2 form."""


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


def compile_pattern(pattern: str, source: str, timeout: float = DEFAULT_TIMEOUT) -> BoundedPattern:
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

    Returns
    -------
    BoundedPattern

    Raises
    ------
    PatternError
        When the pattern is not valid Python syntax, is longer than
        :data:`MAX_PATTERN_CHARS`, or needs the backtracking engine and nests one
        unbounded repeat in another.
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
    parsed = _sre_parse.parse(pattern, re.DOTALL)
    items, flags = list(parsed), int(parsed.state.flags)
    re2_pattern = None
    ascii_only = nonempty_only = False
    try:
        to_re2 = _Translation(for_re2=True)
        re2_pattern = re2.compile(to_re2.sequence(items, flags, tail=True), _re2_options())
        ascii_only, nonempty_only = to_re2.ascii_only, to_re2.nonempty_only
    except (_Unsupported, re2.error, RecursionError):
        if _nests_unbounded(items, inside=False):
            raise PatternError(
                f"The pattern '{_show(pattern)}' in {source} repeats a part that itself repeats without limit, "
                "which can take exponential time with the lookarounds or backreferences it also uses; "
                "rewrite it without the nested repeat."
            ) from None
    try:
        regex_text = _Translation(for_re2=False).sequence(items, flags, tail=False)
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


def _nests_unbounded(items: list, inside: bool) -> bool:
    """Whether an unbounded repeat sits inside a repeat of more than one (``(a+)+``, ``(.*?,){15}``)."""
    for op, av in items:
        if op in _REPEATS:
            if inside and av[1] == _c.MAXREPEAT:
                return True
            if _nests_unbounded(list(av[2]), inside or av[1] > 1):
                return True
        elif op is _c.SUBPATTERN:
            if _nests_unbounded(list(av[3]), inside):
                return True
        elif op is _c.BRANCH:
            if any(_nests_unbounded(list(alt), inside) for alt in av[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _nests_unbounded(list(av[1]), inside):
                return True
        elif op is _ATOMIC_GROUP:
            if _nests_unbounded(list(av), inside):
                return True
        elif op is _c.GROUPREF_EXISTS:
            if any(_nests_unbounded(list(part), inside) for part in av[1:] if part is not None):
                return True
    return False


# --- character sets ------------------------------------------------------------------------

#: Inclusive code point ranges, sorted and disjoint.
_Ranges = tuple[tuple[int, int], ...]

_CATEGORIES = {
    _c.CATEGORY_DIGIT: "d", _c.CATEGORY_NOT_DIGIT: "D",
    _c.CATEGORY_SPACE: "s", _c.CATEGORY_NOT_SPACE: "S",
    _c.CATEGORY_WORD: "w", _c.CATEGORY_NOT_WORD: "W",
}


@lru_cache(maxsize=1)
def _universe() -> str:
    return "".join(map(chr, range(_MAX_CHAR + 1)))


def _escape_u(code: int) -> str:
    """A character as Python and ``regex`` both read it inside and outside classes."""
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _escape_x(code: int) -> str:
    """A character as RE2 reads it."""
    return f"\\x{{{code:x}}}"


def _class_members(parts: tuple, flags: int) -> _Ranges:
    """The characters one position of a Python class (or literal) matches.

    Spelling a class out as its characters keeps Python's meaning whatever the engine:
    ``\\w`` and ``\\s`` are ASCII-only in RE2 and wider in ``regex``, and Python folds case
    its own way (``(?i)i`` also matches the dotted capital I, ``(?ai)k`` not the Kelvin sign).
    """
    if flags & _IGNORECASE:
        return _case_insensitive_members(parts, bool(flags & _ASCII))
    ranges = []
    for op, av in parts:
        if op is _c.LITERAL:
            ranges.append((av, av))
        elif op is _c.RANGE:
            ranges.append(av)
        else:
            ranges.extend(_matched_by(f"\\{_CATEGORIES[av]}", bool(flags & _ASCII)))
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


@lru_cache(maxsize=4096)
def _case_insensitive_members(parts: tuple, ascii_only: bool) -> _Ranges:
    text = []
    for op, av in parts:
        if op is _c.LITERAL:
            text.append(_escape_u(av))
        elif op is _c.RANGE:
            text.append(f"{_escape_u(av[0])}-{_escape_u(av[1])}")
        else:
            text.append("\\" + _CATEGORIES[av])
    return _matched_by(f"(?i:[{''.join(text)}])", ascii_only)


@lru_cache(maxsize=4096)
def _matched_by(one_character: str, ascii_only: bool) -> _Ranges:
    """The characters a one-character Python pattern matches, asked of ``re`` itself.

    Such a pattern matches a character whatever surrounds it, so searching every
    character once gives its exact set.
    """
    found = re.findall(("(?a)" if ascii_only else "") + one_character, _universe())
    ranges: list[list[int]] = []
    for code in map(ord, found):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return tuple((lo, hi) for lo, hi in ranges)


def _complement(ranges: _Ranges) -> _Ranges:
    out, start = [], 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CHAR:
        out.append((start, _MAX_CHAR))
    return tuple(out)


def _without_surrogates(ranges: _Ranges) -> _Ranges:
    """Valid UTF-8 holds no surrogates, and only valid UTF-8 reaches RE2."""
    out = []
    for lo, hi in ranges:
        if lo < _SURROGATES[0]:
            out.append((lo, min(hi, _SURROGATES[0] - 1)))
        if hi > _SURROGATES[1]:
            out.append((max(lo, _SURROGATES[1] + 1), hi))
    return tuple(out)


# --- translation ---------------------------------------------------------------------------

_NEWLINE = ((10, 10),)


class _Translation:
    """Python's parse tree of a pattern written out as RE2's or ``regex``'s syntax.

    ``flags`` are Python's flags in force at each point; ``tail`` tells whether nothing of
    the pattern can follow the item, which is where ``$`` has an RE2 form. Constructs
    without an exact RE2 form raise :class:`_Unsupported` in a translation to RE2; after
    one, ``ascii_only`` says the result is exact on ASCII text only and ``nonempty_only``
    on non-empty text only.
    """

    def __init__(self, for_re2: bool) -> None:
        self.re2 = for_re2
        self.ascii_only = False
        self.nonempty_only = False

    def sequence(self, items, flags: int, tail: bool) -> str:
        last = len(items) - 1
        return "".join(self.item(op, av, flags, tail and i == last) for i, (op, av) in enumerate(items))

    def item(self, op, av, flags: int, tail: bool) -> str:
        if op is _c.LITERAL and not flags & _IGNORECASE:
            return chr(av) if chr(av).isalnum() else self.set_text(((av, av),))
        if op is _c.LITERAL:
            return self.char_class(((op, av),), flags)
        if op is _c.NOT_LITERAL:
            return self.char_class(((_c.NEGATE, None), (_c.LITERAL, av)), flags)
        if op is _c.IN:
            return self.char_class(av, flags)
        if op is _c.ANY:
            return "(?s:.)" if flags & _DOTALL else self.set_text(_complement(_NEWLINE))
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.sequence(alt, flags, tail) for alt in av[1]) + ")"
        if op is _c.SUBPATTERN:
            group, add, remove, sub = av
            inner = self.sequence(sub, (flags | add) & ~remove, tail)
            # Capturing groups keep their numbers for the backreferences only ``regex`` runs.
            return f"({inner})" if group is not None and not self.re2 else f"(?:{inner})"
        if op in _REPEATS:
            return self.repeat(op, av, flags)
        if op is _c.AT:
            return self.anchor(av, flags, tail)
        if self.re2:
            raise _Unsupported(op)
        if op is _c.GROUPREF:
            return f"(?{'i' if flags & _IGNORECASE else '-i'}:\\g<{av}>)"
        if op is _c.GROUPREF_EXISTS:
            group, yes, no = av
            otherwise = "" if no is None else "|" + self.sequence(no, flags, False)
            return f"(?({group}){self.sequence(yes, flags, False)}{otherwise})"
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, sub = av
            kind = ("=" if op is _c.ASSERT else "!") if direction == 1 else ("<=" if op is _c.ASSERT else "<!")
            return f"(?{kind}{self.sequence(sub, flags, False)})"
        # Python's parser makes nothing else; an atomic group is all that is left.
        return f"(?>{self.sequence(av, flags, False)})"

    def repeat(self, op, av, flags: int) -> str:
        low, high, sub = av
        unbounded = high == _c.MAXREPEAT
        if self.re2 and (op is _POSSESSIVE_REPEAT or low > _RE2_MAX_COUNT
                         or (not unbounded and high > _RE2_MAX_COUNT)):
            raise _Unsupported(op)
        if unbounded:
            quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        else:
            quantifier = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        if op is _c.MIN_REPEAT:
            quantifier += "?"
        elif op is _POSSESSIVE_REPEAT:
            quantifier += "+"
        return f"(?:{self.sequence(sub, flags, False)}){quantifier}"

    def anchor(self, at, flags: int, tail: bool) -> str:
        multiline = flags & _MULTILINE
        if at is _c.AT_BEGINNING:
            return "(?m:^)" if multiline else "\\A"
        if at is _c.AT_BEGINNING_STRING:
            return "\\A"
        if at is _c.AT_END_STRING:
            return "\\z" if self.re2 else "\\Z"
        if at is _c.AT_END:
            if multiline:
                return "(?m:$)"
            if not self.re2:
                return "$"
            if not tail:
                raise _Unsupported(at)
            # Where nothing follows, "at the end or before a final newline" is "an optional newline, then the end".
            return "(?:\\n?\\z)"
        return self.boundary(at is _c.AT_BOUNDARY, flags)

    def boundary(self, word_boundary: bool, flags: int) -> str:
        if self.re2:
            # RE2's \b knows ASCII word characters only, and Python's \B never matches empty text.
            self.ascii_only |= not flags & _ASCII
            self.nonempty_only |= not word_boundary
            return "\\b" if word_boundary else "\\B"
        word = self.set_text(_class_members(((_c.CATEGORY, _c.CATEGORY_WORD),), flags & _ASCII))
        if word_boundary:
            return f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"
        return f"(?:(?<={word})(?={word})|(?<!{word})(?!{word})(?!\\A\\Z))"

    def char_class(self, items, flags: int) -> str:
        negate = any(op is _c.NEGATE for op, _ in items)
        parts = tuple((op, av) for op, av in items if op is not _c.NEGATE)
        members = _class_members(parts, flags & (_ASCII | _IGNORECASE))
        return self.set_text(_complement(members) if negate else members)

    def set_text(self, ranges: _Ranges) -> str:
        escape = _escape_x if self.re2 else _escape_u
        if self.re2:
            ranges = _without_surrogates(ranges)
        if not ranges:
            return f"[^{escape(0)}-{escape(_MAX_CHAR)}]"
        if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
            return escape(ranges[0][0])
        return "[" + "".join(escape(lo) if lo == hi else f"{escape(lo)}-{escape(hi)}" for lo, hi in ranges) + "]"
