"""Blockpage fingerprints, the labeling rule, and labeling a data set again.

Fingerprint files use Censored Planet's format: JSON lines of ``{"fingerprint": name,
"pattern": regex}``, one list of blockpages and one of known false positives. quack ships
one of each (:func:`shipped_fingerprint_files`); a user's own blockpages go in a file of
the same format (:func:`save_user_fingerprint`) that :func:`relabel_rows` adds to them.

Matching follows the upstream Python exactly: every pattern compiled with DOTALL, searched
unanchored and case-sensitively, the whole false-positive list first, then the blockpage
list, each in file order; the first hit wins. A repeated name keeps its first position and
its last pattern. The patterns run through :func:`quack.fingerprints.patterns.compile_pattern`, with
Python's results but in bounded time, so one catastrophic signature (``(a+)+$``) cannot
stall a build or the dashboard; one it cannot bound is refused, naming its file and line.

Hundreds of patterns against thousands of bodies stay fast: each pattern is compiled once
and carries the literals it cannot match without (a plain run of text, or one string per
alternative of a group). One combined regex, a trie of all those literals, tells in a
single pass whether any of them occurs; when none does, only the few patterns without
literals are left to run. Otherwise substring tests (C speed) rule most patterns out
before their regex runs, and the first hit stops the search.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from quack.atomic import atomic_write
from quack.errors import QuackInputError
from quack.fingerprints.parsetree import required_literals
from quack.fingerprints.patterns import BoundedPattern, PatternError, PatternTimeout, compile_pattern
from quack.jsonfiles import loads_bounded
from quack.schema import Label

__all__ = [
    "Fingerprints",
    "FingerprintWarning",
    "label_row",
    "MATCH_RULES",
    "response_text",
    "shipped_fingerprint_files",
    "read_user_fingerprints",
    "save_user_fingerprint",
    "relabel_rows",
]

_SHIPPED_FOLDER = Path(__file__).parent
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def shipped_fingerprint_files() -> list[Path]:
    """The fingerprint lists shipped in ``quack/fingerprints``, in name order.

    Returns
    -------
    list of pathlib.Path
        The blockpage list and the false-positive list.
    """
    return sorted(_SHIPPED_FOLDER.glob("*.json"))


class FingerprintWarning(UserWarning):
    """A fingerprint list that loads but will label nothing; the message names the file."""


class _Pattern:
    __slots__ = ("name", "regex", "literals")

    def __init__(self, name: str, pattern: str | BoundedPattern) -> None:
        self.name = name
        if not isinstance(pattern, BoundedPattern):
            pattern = compile_pattern(pattern, f"the fingerprint {name!r}")
        self.regex = pattern
        self.literals = required_literals(pattern.pattern)


class Fingerprints:
    """An ordered false-positive list and blockpage list.

    Parameters
    ----------
    false_positives : iterable of (name, pattern)
    blockpages : iterable of (name, pattern)
        Entries in file order; later repeats of a name replace the pattern but keep the
        first position. A pattern is a string or a compiled
        :class:`~quack.fingerprints.patterns.BoundedPattern` (which names its file and line in messages).
    sources : list of str, optional
        Where the entries came from, for reports.

    Raises
    ------
    quack.fingerprints.patterns.PatternError
        When a pattern is not a regular expression or cannot be searched in bounded time.
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
    def load(cls, paths: list[str | os.PathLike] | None = None) -> "Fingerprints":
        """Read fingerprint files; ``None`` reads :func:`shipped_fingerprint_files`.

        A file whose name contains ``false`` (``false_positive_signatures.json``) is a
        false-positive list; any other is a blockpage list. Given paths replace the shipped
        lists. A file with no fingerprint in it is read, with a :class:`FingerprintWarning`
        naming it.

        Raises
        ------
        QuackInputError
            When a file is missing or has a line that is not a fingerprint, not a regex, or
            a regex whose search time cannot be bounded.
        """
        if not paths:
            paths = shipped_fingerprint_files()
        false_positives: list[tuple[str, BoundedPattern]] = []
        blockpages: list[tuple[str, BoundedPattern]] = []
        for path in paths:
            entries = _read_signature_file(Path(path))
            if not entries:
                # An empty list labels nothing, which a build would report as no censorship.
                warnings.warn(
                    f"The signature file {path} holds no fingerprints; no record is labelled by it, "
                    "so check that it is the file you meant.",
                    FingerprintWarning,
                    stacklevel=2,
                )
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
            if regex.search(text):
                return blocked, name
        return None, None


def _trie_pattern(words: set[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie so each text position costs little.

    It is built here from escaped literals alone, with no repeat, so Python's ``re`` runs it
    in time linear in the text; only the signatures themselves need a bounded engine.
    """
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


def _dedupe(entries: Iterable[tuple[str, str | BoundedPattern]]) -> list[tuple[str, str | BoundedPattern]]:
    by_name: dict[str, str | BoundedPattern] = {}
    for name, pattern in entries:
        by_name[name] = pattern
    return list(by_name.items())


def _read_signature_file(path: Path) -> list[tuple[str, BoundedPattern]]:
    """The entries of a fingerprint file, each pattern compiled and named by file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise QuackInputError(f"Cannot read the signature file {path} ({reason}); give a JSON-lines fingerprint list.") from exc
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = loads_bounded(line)
            if not isinstance(item, dict):
                raise TypeError(f"a JSON {type(item).__name__}, not an object")
            name, pattern = item["fingerprint"], item["pattern"]
            if not isinstance(name, str) or not isinstance(pattern, str):
                raise TypeError("fingerprint and pattern must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise QuackInputError(
                f"{path} line {number} is not a fingerprint ({exc}); each line must be "
                '{"fingerprint": name, "pattern": regex}.'
            ) from exc
        try:
            entries.append((name, compile_pattern(pattern, f"{path} line {number}")))
        except PatternError as exc:
            # The sentence already names the file and line.
            raise QuackInputError(str(exc)) from None
    return entries


#: The text a fingerprint is matched against. ``full``: Censored Planet's analysis pipeline,
#: the whole response rebuilt as text (:func:`response_text`), and a blockpage only in an
#: anomalous record. ``body``: the published model's pipeline, the body alone.
MATCH_RULES = ("full", "body")


def response_text(row: dict[str, Any]) -> str:
    """The response of a row rebuilt as Censored Planet's analysis pipeline matches it.

    An HTTP(S) reply becomes its status line, ``\\r\\n``, each header as ``Key: value\\r\\n``, a
    blank line and the body, so a signature for a ``Location`` header or a server banner
    can fire. An echo or discard reply is the received string itself, which the row keeps
    whole as its body.

    Parameters
    ----------
    row : dict
        A row with ``status``, ``headers`` (``Key: value`` lines joined by ``\\r\\n``),
        ``body`` and ``service``.

    Returns
    -------
    str
    """
    body = row.get("body")
    body = body if isinstance(body, str) else ""
    if str(row.get("service") or "").startswith(("echo", "discard")):
        return body
    status = row.get("status")
    headers = row.get("headers")
    head = (status if isinstance(status, str) else "") + "\r\n"
    if isinstance(headers, str) and headers:
        head += headers + "\r\n"
    return head + "\r\n" + body


def label_row(row: dict[str, Any], fingerprints: Fingerprints, match: str = "full") -> tuple[Label, str | None]:
    """The label of one row and the fingerprint that decided it.

    -1 when the probe matched its template in a record that is no anomaly. Otherwise the
    matcher runs, the false positives first: -1 for a false positive, 1 for a blockpage,
    0 for no hit. With ``match="full"`` (Censored Planet's analysis pipeline) it reads the
    whole response (:func:`response_text`), and a blockpage hit counts only in an anomalous
    record: the pipeline matches nothing else, so a retry that failed in a record whose
    other probes matched is never called censored; a false-positive hit there still says
    uncensored, as the record is. With ``match="body"`` (the published model's pipeline)
    it reads the body alone, in any record; an empty body gives 0.

    Parameters
    ----------
    row : dict
        A row from :func:`quack.data.ingest.iter_rows`.
    fingerprints : Fingerprints
    match : {"full", "body"}
        The text matched (:data:`MATCH_RULES`).

    Returns
    -------
    (Label, str or None)

    Raises
    ------
    ValueError
        For a ``match`` not in :data:`MATCH_RULES`.
    """
    if match not in MATCH_RULES:
        raise ValueError(f"Unknown match rule {match!r}; choose one of {', '.join(MATCH_RULES)}.")
    if row.get("matches_template") is True and not row.get("anomaly"):
        return Label.UNCENSORED, None
    if match == "full":
        text = response_text(row)
    else:
        text = row.get("body")
        if not isinstance(text, str) or not text:
            return Label.UNDETERMINED, None
    blocked, name = fingerprints.match(text)
    if blocked is None or (blocked and match == "full" and not row.get("anomaly")):
        return Label.UNDETERMINED, None
    return (Label.CENSORED if blocked else Label.UNCENSORED), name


def read_user_fingerprints(path: str | os.PathLike) -> list[dict]:
    """Read a fingerprint file in Censored Planet's format (one JSON object a line).

    Parameters
    ----------
    path : str or path-like
        The file; a missing file reads as empty.

    Returns
    -------
    list of dict
        ``{"fingerprint": name, "pattern": regex}`` entries in file order.

    Raises
    ------
    QuackInputError
        When the file cannot be read, or a line is not a fingerprint or holds a pattern
        whose search time cannot be bounded.
    """
    path = Path(path).expanduser()
    if not path.exists():
        return []
    return [{"fingerprint": name, "pattern": pattern.pattern} for name, pattern in _read_signature_file(path)]


def save_user_fingerprint(path: str | os.PathLike, name: str, pattern: str) -> Path:
    """Add a blockpage fingerprint to a user fingerprint file.

    The file uses Censored Planet's format, one ``{"fingerprint": ..., "pattern": ...}``
    object a line, so it can be given to the labeller next to the shipped lists.
    The new file replaces the old one in one rename, so a failure leaves the old intact.

    Parameters
    ----------
    path : str or path-like
        The user fingerprint file; created with its folder when missing.
    name : str
        Fingerprint name: letters, digits, ``_``, ``.`` and ``-``; not already in the file.
    pattern : str
        Python regular expression, matched with DOTALL against response text; it must be
        one :func:`quack.fingerprints.patterns.compile_pattern` can search in bounded time.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the name is empty, malformed or taken, the pattern is empty, not a valid
        regular expression or not searchable in bounded time, or the file cannot be written.
    """
    path = Path(path).expanduser()
    if not name or not _NAME.match(name):
        raise ValueError(f"Fingerprint name {name!r} must be letters, digits, '_', '.' or '-' and not empty.")
    if not pattern or not pattern.strip():
        raise ValueError("The fingerprint pattern is empty.")
    compile_pattern(pattern, f"the new fingerprint {name!r}")
    entries = read_user_fingerprints(path)
    if any(e["fingerprint"] == name for e in entries):
        raise ValueError(f"{path} already has a fingerprint named {name!r}; choose another name.")
    entries.append({"fingerprint": name, "pattern": pattern})
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode("utf-8")
    try:
        return atomic_write(path, lambda handle: handle.write(text))
    except OSError as error:
        raise ValueError(
            f"Cannot write the fingerprint file {path}: {error.strerror or error}; choose a folder you can write to."
        ) from error


def relabel_rows(
    frame: pd.DataFrame,
    extra_files: list[str | os.PathLike],
    base_files: list[str | os.PathLike] | None = None,
    match: str = "full",
    deadline: float | None = None,
) -> pd.DataFrame:
    """Label records again with more fingerprints, without tokenizing them again.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records of a data set (:func:`quack.data.datafolder.read_rows`) with ``id``, ``label``,
        ``fingerprint``, ``anomaly`` and ``body``.
    extra_files : list of path
        User fingerprint files added after the base lists (later entries win a name); a
        file that does not exist yet is skipped.
    base_files : list of path, optional
        The lists the data set was labelled with; None means :func:`shipped_fingerprint_files`.
    match : {"full", "body"}
        The matching rule the data set was built with (its ``info.json`` ``match``; a data
        set built before the rule was recorded used ``body``); the frame then also needs
        ``status``, ``headers`` and ``service`` for ``full``.
    deadline : float, optional
        A :func:`time.monotonic` time by which the whole run must end; each search is
        bounded on its own (:func:`quack.fingerprints.patterns.compile_pattern`), so the run
        ends at most one record's searches after it.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``label`` and ``fingerprint`` of every record, in the frame's order.

    Raises
    ------
    quack.fingerprints.patterns.PatternTimeout
        When the deadline passes before every record is labelled.
    """
    base = shipped_fingerprint_files() if base_files is None else [Path(p) for p in base_files]
    fingerprints = Fingerprints.load(base + [Path(p) for p in extra_files if Path(p).is_file()])
    new_labels, names = [], []
    for record in frame.to_dict("records"):
        if deadline is not None and time.monotonic() >= deadline:
            raise PatternTimeout(
                f"Labelling with {', '.join(Path(p).name for p in extra_files)} did not finish in the time allowed "
                f"({len(new_labels):,} of {len(frame):,} records done); remove slow patterns from the file."
            )
        fingerprint = record.get("fingerprint")
        named = isinstance(fingerprint, str) and fingerprint != ""
        if "matches_template" not in record:
            # Only a probe that matched its template in a normal record is labelled
            # uncensored without a fingerprint, so the flag can be recovered from that.
            record["matches_template"] = int(record["label"]) == Label.UNCENSORED and not named
        label, name = label_row(record, fingerprints, match)
        if name is None and label == Label.UNDETERMINED and named:
            # Ingest matched this fingerprint on the whole body, of which only the first
            # FIELD_CHARS characters are stored; the match stands.
            label, name = Label(int(record["label"])), fingerprint
        new_labels.append(label)
        names.append(name)
    return pd.DataFrame({"id": frame["id"].to_numpy(), "label": np.asarray(new_labels, dtype=np.int64), "fingerprint": names})
