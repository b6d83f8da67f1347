"""Python's own parse tree of a regular expression, and what quack reads from it.

Python's parser is the one authority on what a pattern means, so every reading of a
pattern starts from its tree (:func:`parse_tree`, over ``re``'s private parser, the one
place quack touches it):

- :class:`Translation` writes the tree out again in RE2's or ``regex``'s syntax, with
  Python's meaning, for :func:`quack.fingerprints.patterns.compile_pattern` (whose notes
  say how); what RE2 has no exact form for raises :class:`Unsupported`.
- :func:`nests_unbounded` finds the shape of the classic catastrophic patterns, an
  unbounded repeat inside another repeat.
- :func:`required_literals` finds strings every match must contain, so a fingerprint
  scan can rule a pattern out with a substring test before it runs.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache

try:
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # Python 3.10
    import sre_constants as _c
    import sre_parse as _sre_parse

__all__ = ["TooSlow", "Translation", "Unsupported", "nests_unbounded", "parse_tree", "required_literals"]

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


class Unsupported(Exception):
    """A construct with no exact RE2 form."""


class TooSlow(Exception):
    """A translation that ran past its deadline."""


def parse_tree(pattern: str) -> tuple[list, int]:
    """Python's parse of ``pattern`` with DOTALL: its items, as (opcode, argument) pairs, and its flags.

    Raises
    ------
    re.error
        When the pattern is not valid Python syntax.
    """
    parsed = _sre_parse.parse(pattern, re.DOTALL)
    return list(parsed), int(parsed.state.flags)


def nests_unbounded(items: list, inside: bool) -> bool:
    """Whether an unbounded repeat sits inside a repeat of more than one (``(a+)+``, ``(.*?,){15}``)."""
    for op, av in items:
        if op in _REPEATS:
            if inside and av[1] == _c.MAXREPEAT:
                return True
            if nests_unbounded(list(av[2]), inside or av[1] > 1):
                return True
        elif op is _c.SUBPATTERN:
            if nests_unbounded(list(av[3]), inside):
                return True
        elif op is _c.BRANCH:
            if any(nests_unbounded(list(alt), inside) for alt in av[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if nests_unbounded(list(av[1]), inside):
                return True
        elif op is _ATOMIC_GROUP:
            if nests_unbounded(list(av), inside):
                return True
        elif op is _c.GROUPREF_EXISTS:
            if any(nests_unbounded(list(part), inside) for part in av[1:] if part is not None):
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
    if flags & _IGNORECASE and not all(op is _c.LITERAL and _uncased(av) for op, av in parts):
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


def _uncased(code: int) -> bool:
    """Whether a character has no other case: Python's ``re`` then matches it alone, ignoring case or not.

    ``re`` folds case by the simple mappings and a table of extra cases among cased
    letters; a character both of whose mappings are itself is in neither. Asking this
    first spares a search of every character for each of thousands of such characters
    (a CJK text under ``(?i)``).
    """
    character = chr(code)
    return character.lower() == character and character.upper() == character


@lru_cache(maxsize=16384)
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


@lru_cache(maxsize=16384)
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


class Translation:
    """Python's parse tree of a pattern written out as RE2's or ``regex``'s syntax.

    ``flags`` are Python's flags in force at each point; ``tail`` tells whether nothing of
    the pattern can follow the item, which is where ``$`` has an RE2 form. Constructs
    without an exact RE2 form raise :class:`Unsupported` in a translation to RE2; after
    one, ``ascii_only`` says the result is exact on ASCII text only and ``nonempty_only``
    on non-empty text only.
    With a ``deadline`` (a :func:`time.monotonic` time), a translation still running then
    raises :class:`TooSlow`.
    """

    def __init__(self, for_re2: bool, deadline: float | None = None) -> None:
        self.re2 = for_re2
        self.deadline = deadline
        self.ascii_only = False
        self.nonempty_only = False

    def sequence(self, items, flags: int, tail: bool) -> str:
        """A sequence of parse-tree items written out; ``tail`` when nothing of the pattern follows it."""
        last = len(items) - 1
        return "".join(self.item(op, av, flags, tail and i == last) for i, (op, av) in enumerate(items))

    def item(self, op, av, flags: int, tail: bool) -> str:
        """One parse-tree item, opcode ``op`` with argument ``av``, written out."""
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
            raise Unsupported(op)
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
            raise Unsupported(op)
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
                raise Unsupported(at)
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
        # Spelling a class out may search every character: the one slow step, so the deadline is checked here.
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TooSlow()
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


# --- required literals ---------------------------------------------------------------------

# Literals shorter than this occur in almost any page and would not rule anything out.
_MIN_LITERAL = 3


def required_literals(pattern: str) -> tuple[str, ...] | None:
    """Strings of which every match must contain at least one, or None when there are none.

    Built from the parsed pattern: a run of plain characters in sequence, or one string
    per alternative of a group every match must pass through. Parts that a match may
    skip (optional repeats) and case-insensitive parts give nothing.
    """
    try:
        items, flags = parse_tree(pattern)
        if flags & re.IGNORECASE:
            return None
        return _sequence_literals(items)
    except Exception:
        # The prefilter is an optimisation; any surprise in the private parser disables it.
        return None


def _sequence_literals(items: list) -> tuple[str, ...] | None:
    candidates: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in items + [(None, None)]:
        if op is _c.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        found = None
        if op is _c.SUBPATTERN:
            _, add_flags, _, sub = arg
            if not add_flags & re.IGNORECASE:
                found = _sequence_literals(list(sub))
        elif op is _c.BRANCH:
            alternatives = [_sequence_literals(list(alt)) for alt in arg[1]]
            if all(alternatives):
                found = tuple(literal for alt in alternatives for literal in alt)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and arg[0] >= 1:
            found = _sequence_literals(list(arg[2]))
        if found:
            candidates.append(found)
    candidates = [c for c in candidates if min(map(len, c)) >= _MIN_LITERAL]
    if not candidates:
        return None
    # The rarest test: longest shortest string, then fewest strings.
    return max(candidates, key=lambda c: (min(map(len, c)), -len(c)))
