"""Blockpage fingerprints and the labeling rule.

Fingerprint files use Censored Planet's format: JSON lines of ``{"fingerprint": name,
"pattern": regex}``, one list of blockpages and one of known false positives. Matching
follows the upstream Python exactly: every pattern compiled with DOTALL, searched
unanchored and case-sensitively, the whole false-positive list first, then the blockpage
list, each in file order; the first hit wins. A repeated name keeps its first position and
its last pattern.

Hundreds of patterns against thousands of bodies stay fast: each pattern is compiled once
and carries the literals it cannot match without (a plain run of text, or one string per
alternative of a group). One combined regex, a trie of all those literals, tells in a
single pass whether any of them occurs; when none does, only the few patterns without
literals are left to run. Otherwise substring tests (C speed) rule most patterns out
before their regex runs, and the first hit stops the search.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

try:
    from re import _parser as _sre_parse
    from re import _constants as _sre_constants
except ImportError:  # Python 3.10
    import sre_constants as _sre_constants
    import sre_parse as _sre_parse

from quack.ingest import QuackInputError

CENSORED, UNDETERMINED, UNCENSORED = 1, 0, -1

_SHIPPED = ("blockpages.json", "false_positives.json")


class _Pattern:
    __slots__ = ("name", "regex", "literals")

    def __init__(self, name: str, pattern: str) -> None:
        self.name = name
        self.regex = re.compile(pattern, re.DOTALL)
        self.literals = _required_literals(pattern)


# Literals shorter than this occur in almost any page and would not rule anything out.
_MIN_LITERAL = 3


def _required_literals(pattern: str) -> tuple[str, ...] | None:
    """Strings of which every match must contain at least one, or None when there are none.

    Built from the parsed pattern: a run of plain characters in sequence, or one string
    per alternative of a group every match must pass through. Parts that a match may
    skip (optional repeats) and case-insensitive parts give nothing.
    """
    try:
        parsed = _sre_parse.parse(pattern, re.DOTALL)
        if parsed.state.flags & re.IGNORECASE:
            return None
        return _sequence_literals(list(parsed))
    except Exception:
        # The prefilter is an optimisation; any surprise in the private parser disables it.
        return None


def _sequence_literals(items: list) -> tuple[str, ...] | None:
    candidates: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in items + [(None, None)]:
        if op is _sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        found = None
        if op is _sre_constants.SUBPATTERN:
            _, add_flags, _, sub = arg
            if not add_flags & re.IGNORECASE:
                found = _sequence_literals(list(sub))
        elif op is _sre_constants.BRANCH:
            alternatives = [_sequence_literals(list(alt)) for alt in arg[1]]
            if all(alternatives):
                found = tuple(literal for alt in alternatives for literal in alt)
        elif op in (_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT) and arg[0] >= 1:
            found = _sequence_literals(list(arg[2]))
        if found:
            candidates.append(found)
    candidates = [c for c in candidates if min(map(len, c)) >= _MIN_LITERAL]
    if not candidates:
        return None
    # The rarest test: longest shortest string, then fewest strings.
    return max(candidates, key=lambda c: (min(map(len, c)), -len(c)))


class Fingerprints:
    """An ordered false-positive list and blockpage list.

    Parameters
    ----------
    false_positives : iterable of (name, pattern)
    blockpages : iterable of (name, pattern)
        Entries in file order; later repeats of a name replace the pattern but keep the
        first position.
    sources : list of str, optional
        Where the entries came from, for reports.
    """

    def __init__(
        self,
        false_positives: Iterable[tuple[str, str]],
        blockpages: Iterable[tuple[str, str]],
        sources: list[str] | None = None,
    ) -> None:
        self.false_positives = [_Pattern(n, p) for n, p in _dedupe(false_positives)]
        self.blockpages = [_Pattern(n, p) for n, p in _dedupe(blockpages)]
        self.sources = list(sources or [])
        # Flat tuples keep the hot loop free of attribute lookups: (blocked, name, regex,
        # the one literal or None, several literals or None).
        self._ordered = [
            (blocked, e.name, e.regex, e.literals[0] if e.literals and len(e.literals) == 1 else None,
             e.literals if e.literals and len(e.literals) > 1 else None)
            for blocked, entries in ((False, self.false_positives), (True, self.blockpages)) for e in entries
        ]
        self._without_literal = [entry for entry in self._ordered if entry[3] is None and entry[4] is None]
        literals = {literal for e in self.false_positives + self.blockpages for literal in e.literals or ()}
        self._any_literal = re.compile(_trie_pattern(literals)) if literals else None

    @classmethod
    def load(cls, paths: list[str] | None = None) -> "Fingerprints":
        """Read fingerprint files; ``None`` reads the list shipped in ``quack/fingerprints``.

        A file whose name contains ``false`` (``false_positive_signatures.json``) is a
        false-positive list; any other is a blockpage list. Given paths replace the shipped
        lists.

        Raises
        ------
        QuackInputError
            When a file is missing or has a line that is not a fingerprint or not a regex.
        """
        if not paths:
            folder = resources.files("quack") / "fingerprints"
            paths = [str(folder / name) for name in _SHIPPED]
        false_positives: list[tuple[str, str]] = []
        blockpages: list[tuple[str, str]] = []
        for path in paths:
            entries = _read_signature_file(Path(path))
            (false_positives if "false" in Path(path).name.lower() else blockpages).extend(entries)
        return cls(false_positives, blockpages, sources=[str(p) for p in paths])

    def __len__(self) -> int:
        return len(self.false_positives) + len(self.blockpages)

    def match(self, text: str) -> tuple[bool | None, str | None]:
        """``(False, name)`` for a false positive, ``(True, name)`` for a blockpage, else ``(None, None)``."""
        candidates = self._ordered
        if self._any_literal is not None and self._any_literal.search(text) is None:
            candidates = self._without_literal
        for blocked, name, regex, literal, literals in candidates:
            if literal is not None:
                if literal not in text:
                    continue
            elif literals is not None and not any(one in text for one in literals):
                continue
            if regex.search(text) is not None:
                return blocked, name
        return None, None


def _trie_pattern(words: set[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie so each text position costs little."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        parts = []
        # Single-child chains become plain text, so nesting grows only at branch points.
        while "" not in node and len(node) == 1:
            (char, node), = node.items()
            parts.append(re.escape(char))
        if "" in node:
            # A shorter word ends here; finding it is enough, its extensions add nothing.
            return "".join(parts)
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items())]
        return "".join(parts) + "(?:" + "|".join(branches) + ")"

    return build(trie)


def _dedupe(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    by_name: dict[str, str] = {}
    for name, pattern in entries:
        by_name[name] = pattern
    return list(by_name.items())


def _read_signature_file(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuackInputError(f"Cannot read the signature file {path} ({exc}); give a JSON-lines fingerprint list.") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            name, pattern = item["fingerprint"], item["pattern"]
            if not isinstance(name, str) or not isinstance(pattern, str):
                raise TypeError("fingerprint and pattern must be strings")
            re.compile(pattern, re.DOTALL)
        except (ValueError, KeyError, TypeError, re.error) as exc:
            raise QuackInputError(
                f"{path} line {number} is not a fingerprint ({exc}); each line must be "
                '{"fingerprint": name, "pattern": regex}.'
            ) from exc
        entries.append((name, pattern))
    return entries


def label_row(row: dict[str, Any], fingerprints: Fingerprints) -> tuple[int, str | None]:
    """The label of one row and the fingerprint that decided it.

    The rule of the published model's pipeline: -1 when the probe matched its template in
    a record that is no anomaly; otherwise the matcher on the payload text (the body, or
    the whole reply for echo/discard) gives -1 for a false positive, 1 for a blockpage and
    0 for no hit; an empty payload gives 0.

    Parameters
    ----------
    row : dict
        A row from :func:`quack.ingest.iter_rows`.
    fingerprints : Fingerprints

    Returns
    -------
    (int, str or None)
    """
    if row.get("matches_template") is True and not row.get("anomaly"):
        return UNCENSORED, None
    text = row.get("body")
    if not isinstance(text, str) or not text:
        return UNDETERMINED, None
    blocked, name = fingerprints.match(text)
    if blocked is None:
        return UNDETERMINED, None
    return (CENSORED if blocked else UNCENSORED), name
