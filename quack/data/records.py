"""Flatten Hyperquack v1 and v2 records into measurement rows.

One line of a Quack file holds one JSON record; :func:`rows_of_line` turns it into one
:data:`Row` per non-control probe, counting what it skips in the run's
:class:`IngestStats`. Opening files, cutting lines and chunking them live in
:mod:`quack.data.ingest`, which is the public entry point.

The format is described in ``docs/quack-format.md`` of the shared project notes; the
comments below refer to its sections.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Characters kept of a payload body. Censored Planet's own copy is cut at 64 KB, and every
#: known blockpage signature hits far earlier, so longer bodies are cut, not rejected.
BODY_CHARS = 65536
#: Responses one measurement may hold (published ones hold at most a few retries); a line with more is
#: skipped before any row is made, so one line cannot outgrow a row cap checked between chunks.
MAX_PROBES = 1000

Row = dict[str, Any]

# Section 5: the fixed control domains of Hyperquack v1.
_V1_CONTROL_DOMAINS = frozenset({"example5718349450314.com", "rtyutgyhefdafioasfjhjhi.com"})
# Reasons that are ordinary filtering, not bad input: counted, never listed as problems.
_FILTERED = frozenset({"control probe", "not anomalous", "satellite record", "evaluation record"})


@dataclass
class IngestStats:
    """Counts of one ingest run.

    Attributes
    ----------
    files : int
        Files (or archive members) read.
    lines : int
        Non-blank lines seen.
    rows : int
        Rows yielded.
    skipped : collections.Counter
        Skipped items by reason: lines for line-level problems, probes for probe-level ones.
    problems : list of tuple
        ``(file, line, reason)`` for each bad-input item, kept only when ``keep_problems``.
    keep_problems : bool
        Whether to fill ``problems``.
    damaged : set of str
        Files found truncated or corrupt and kept partially (``keep_partial``), each
        counted once however many members it hit.
    """

    files: int = 0
    lines: int = 0
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    keep_problems: bool = False
    damaged: set[str] = field(default_factory=set)

    def damage(self, file_source: str, source: str, line: int, detail: str) -> None:
        """Count a file that ends early or is corrupt, once per file."""
        if file_source not in self.damaged:
            self.damaged.add(file_source)
            self.skip(source, line, "truncated file", f"{detail}; rows read before the damage are kept")

    def skip(self, source: str, line: int, reason: str, detail: str = "") -> None:
        """Count one skipped item and, for bad input, remember where it was."""
        self.skipped[reason] += 1
        if self.keep_problems and reason not in _FILTERED:
            self.problems.append((source, line, f"{reason}: {detail}" if detail else reason))

    def merge(self, other: "IngestStats") -> None:
        """Add the counts (and problems, in order) of ``other``, a later part of the same run."""
        self.files += other.files
        self.lines += other.lines
        self.rows += other.rows
        self.skipped.update(other.skipped)
        if self.keep_problems:
            self.problems.extend(other.problems)
        self.damaged |= other.damaged

    def take(self) -> "IngestStats":
        """The counts since the last take, moved into a new object; ``damaged`` stays, for once-per-file."""
        taken = IngestStats(self.files, self.lines, self.rows, self.skipped, self.problems, self.keep_problems,
                            set(self.damaged))
        self.files = self.lines = self.rows = 0
        self.skipped, self.problems = Counter(), []
        return taken

    def is_empty(self) -> bool:
        """Whether nothing was counted (``damaged`` aside) since the last :meth:`take`."""
        return not (self.files or self.lines or self.rows or self.skipped)


class _BadRecord(Exception):
    """A record or probe that cannot be turned into a row; args = (reason, detail)."""


def rows_of_line(
    raw: bytes, source: str, line_no: int, service_hint: str, stats: IngestStats, anomalies_only: bool
) -> list[Row]:
    """The rows of one line of a Quack file, counting in ``stats`` what it skips.

    Parameters
    ----------
    raw : bytes
        The line, one JSON record.
    source : str
        The file (or archive member) it came from, for the rows and for problems.
    line_no : int
        Its 1-based line number in ``source``.
    service_hint : str
        The service named by the file or folder, for v1 records that do not name theirs.
    stats : IngestStats
        Takes a count for each line or probe skipped, by reason.
    anomalies_only : bool
        Keep only probes that failed to match in anomalous records.

    Returns
    -------
    list of dict
        One :data:`Row` per non-control probe; none for a line that is not a measurement.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        stats.skip(source, line_no, "not UTF-8", f"byte {exc.start}; re-export the file as UTF-8")
        return []
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        stats.skip(source, line_no, "not JSON", str(exc) or "nested too deeply")
        return []
    if not isinstance(record, dict):
        stats.skip(source, line_no, "unknown shape", f"a JSON {type(record).__name__}, not an object")
        return []
    try:
        kind = _kind(record)
        if kind in ("satellite record", "evaluation record"):
            stats.skip(source, line_no, kind)
            return []
        parse = _v1_rows if kind == "v1" else _v2_rows
        rows = parse(record, source, line_no, service_hint, stats, anomalies_only)
    except _BadRecord as exc:
        stats.skip(source, line_no, *exc.args)
        return []
    if "\\ud" in text or "\\uD" in text:
        # A lone surrogate escape decodes to a str that Arrow and the tokenizer reject.
        for row in rows:
            for key, value in row.items():
                if isinstance(value, str):
                    row[key] = value.encode("utf-8", "replace").decode("utf-8")
    return rows


def _kind(record: dict) -> str:
    """Section 1: ``Server`` means v1; ``vp`` with ``service`` or per-probe templates means v2."""
    if "Server" in record:
        return "v1"
    if "vp" in record:
        if "test_url" not in record and ("template" in record or "issue" in record):
            return "evaluation record"
        probes = record.get("response")
        has_template = isinstance(probes, list) and any(
            isinstance(p, dict) and "matches_template" in p for p in probes
        )
        if "service" in record or has_template:
            return "v2"
        return "satellite record"
    raise _BadRecord("unknown shape", "neither a Hyperquack v1 (Server) nor v2 (vp, service) record")


def _field(record: dict, key: str, kind: type | tuple, required: bool = False):
    value = record.get(key)
    if value is None:
        if required:
            raise _BadRecord("missing field", f"no {key!r}")
        return None
    # bool is an int subclass; a flag written as 1 is still a mistyped flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadRecord("mistyped field", f"{key!r} is {type(value).__name__}")
    return value


def _probes(record: dict, key: str) -> list:
    probes = _field(record, key, list, required=True)
    if len(probes) > MAX_PROBES:
        raise _BadRecord("too many responses", f"{len(probes):,} in {key!r}, more than the {MAX_PROBES:,} allowed")
    return probes


def _v1_rows(record, source, line_no, service_hint, stats, anomalies_only) -> list[Row]:
    vp = _field(record, "Server", str, required=True)
    keyword = _field(record, "Keyword", str, required=True)
    probes = _probes(record, "Results")
    retries = _field(record, "Retries", int)
    anomaly = _field(record, "Blocked", bool)
    base = {
        "source": source, "line": line_no, "format": "v1", "vp": vp, "country": "",
        "domain": keyword, "anomaly": anomaly,
        "controls_failed": _field(record, "FailSanity", bool),
        "stateful_block": _field(record, "StatefulBlock", bool),
    }
    rows = []
    for index, probe in enumerate(probes):
        try:
            if not isinstance(probe, dict):
                raise _BadRecord("mistyped field", f"probe {index} is {type(probe).__name__}")
            sent = _field(probe, "Sent", str) or ""
            if _v1_is_control(sent, index, retries):
                stats.skipped["control probe"] += 1
                continue
            success = _field(probe, "Success", bool)
            if anomalies_only and (success or not anomaly):
                stats.skipped["not anomalous"] += 1
                continue
            service = service_hint or _v1_service_from_shape(probe)
            row = dict(base, probe=index, service=service, matches_template=success, sent=sent,
                       error=_field(probe, "Error", str) or "")
            _add_times(row, probe, "StartTime", "EndTime")
            _add_payload(row, probe.get("Received"), v1=True)
        except _BadRecord as exc:
            stats.skip(source, line_no, exc.args[0], f"probe {index}: {exc.args[1]}")
            continue
        rows.append(row)
    return rows


def _v1_is_control(sent: str, index: int, retries: int | None) -> bool:
    """Section 5: test probes are ``Results[0..Retries]``; a control also names a control domain.

    Position alone decides when ``Sent`` is empty; the domain alone when ``Retries`` is missing.
    """
    if retries is not None and index > retries:
        return True
    return bool(sent) and _sent_host(sent) in _V1_CONTROL_DOMAINS


def _sent_host(sent: str) -> str:
    """The host a v1 probe asked for: the Host header of an echo request, else the whole string."""
    head, sep, host = sent.partition("Host: ")
    if not sep:
        return sent.strip()
    host = host.split("\r\n", 1)[0].split("\n", 1)[0].strip()
    if host.startswith("/"):
        # Section 6: host and path swapped in some echo/discard requests.
        parts = head.split(" ")
        return parts[1] if len(parts) > 1 else ""
    return host


def _v1_service_from_shape(probe: dict) -> str:
    received = probe.get("Received")
    if isinstance(received, dict):
        return "https" if received.get("tls") else "http"
    error = probe.get("Error") or ""
    if "echo" in error:
        return "echo"
    if "Received response" in error:
        return "discard"
    sent = probe.get("Sent") or ""
    return "echo" if sent.startswith("GET ") else ""


def _v2_rows(record, source, line_no, service_hint, stats, anomalies_only) -> list[Row]:
    vp = _field(record, "vp", str, required=True)
    test_url = _field(record, "test_url", str, required=True)
    probes = _probes(record, "response")
    anomaly = _field(record, "anomaly", bool)
    location = _field(record, "location", dict) or {}
    country = location.get("country_code")
    service = _field(record, "service", str) or service_hint
    base = {
        "source": source, "line": line_no, "format": "v2", "vp": vp,
        "country": country if isinstance(country, str) else "",
        "domain": test_url, "service": service.split(":", 1)[0],
        "anomaly": anomaly,
        "controls_failed": _field(record, "controls_failed", bool),
        "stateful_block": _field(record, "stateful_block", bool),
        "sent": _v2_sent(test_url, service),
    }
    rows = []
    for index, probe in enumerate(probes):
        try:
            if not isinstance(probe, dict):
                raise _BadRecord("mistyped field", f"probe {index} is {type(probe).__name__}")
            if "control_url" in probe:
                stats.skipped["control probe"] += 1
                continue
            matches = _field(probe, "matches_template", bool)
            if anomalies_only and (matches or not anomaly):
                stats.skipped["not anomalous"] += 1
                continue
            row = dict(base, probe=index, matches_template=matches, error=_field(probe, "error", str) or "")
            _add_times(row, probe, "start_time", "end_time")
            _add_payload(row, probe.get("response"), v1=False)
        except _BadRecord as exc:
            stats.skip(source, line_no, exc.args[0], f"probe {index}: {exc.args[1]}")
            continue
        rows.append(row)
    return rows


def _v2_sent(test_url: str, service: str) -> str:
    """What a v2 probe sent; v2 does not record it, so it is rebuilt as v1 stored it (section 2)."""
    if service.startswith(("echo", "discard")):
        host, slash, path = test_url.partition("/")
        return f"GET /{path if slash else ''} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    return test_url


def _add_times(row: Row, probe: dict, start_key: str, end_key: str) -> None:
    start = _field(probe, start_key, str)
    end = _field(probe, end_key, str)
    row["start_time"] = start or ""
    row["end_time"] = end or ""
    row["elapsed_ms"] = row["time"] = None
    if not start:
        return
    try:
        began = _parse_time(start)
    except ValueError:
        return
    # A time without an offset is taken as UTC, the clock Censored Planet's collectors keep.
    row["time"] = began.astimezone(timezone.utc) if began.tzinfo else began.replace(tzinfo=timezone.utc)
    if end:
        try:
            delta = _parse_time(end) - began
        except (ValueError, TypeError):
            return
        row["elapsed_ms"] = delta.total_seconds() * 1000.0


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_time(value: str) -> datetime:
    """RFC 3339 with up to nine fractional digits (section 7), truncated to microseconds."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", value))


def _add_payload(row: Row, payload: Any, v1: bool) -> None:
    """Section 4: a string payload is the raw reply; an object is an HTTP(S) response."""
    row.update(status="", headers="", body="", tls_version=None, cipher_suite=None, certificate=False)
    if payload is None:
        return
    if isinstance(payload, str):
        row["body"] = payload[:BODY_CHARS]
        if payload.startswith("HTTP/"):
            first = payload.split("\n", 1)[0].rstrip("\r")
            row["status"] = first.split(" ", 1)[1] if " " in first else ""
        return
    if not isinstance(payload, dict):
        raise _BadRecord("mistyped field", f"response is {type(payload).__name__}")
    row["status"] = _field(payload, "status_line", str) or ""
    row["body"] = (_field(payload, "body", str) or "")[:BODY_CHARS]
    headers = _field(payload, "headers", dict) or {}
    lines = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}: {value}")
    row["headers"] = "\r\n".join(lines)
    tls = payload.get("tls") if v1 else payload
    if isinstance(tls, dict):
        version = tls.get("version" if v1 else "TlsVersion")
        cipher = tls.get("cipher_suite" if v1 else "CipherSuite")
        cert = tls.get("cert" if v1 else "Certificate")
        if isinstance(cert, list):
            cert = cert[0] if cert else None
        row["tls_version"] = version if isinstance(version, int) and not isinstance(version, bool) else None
        row["cipher_suite"] = cipher if isinstance(cipher, int) and not isinstance(cipher, bool) else None
        row["certificate"] = bool(cert)
