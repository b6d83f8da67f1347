"""The fixed id layout of a token sequence: specials, static tokens, field markers, then text.

Ids below :data:`TEXT_OFFSET` never depend on the corpus:

* the specials of :mod:`quack.schema` (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3);
* one range per static field (:data:`STATIC_FIELDS`): the four octets of the vantage
  point's IP, service, the record and probe flags, TLS version, cipher suite (common
  suites by name, the rest hashed into a few buckets), certificate presence, elapsed time
  bucketed on a log scale and the class of the error. Every field has a slot for
  "missing", so any value, even junk, maps into its range (:func:`static_categories`);
* one marker per text field (:data:`TEXT_FIELDS`), which opens the field's tokens and lets
  the field of every id be told from the ids alone.

The byte-level BPE of :mod:`quack.data.tokenizer` numbers its tokens from :data:`TEXT_OFFSET`.
:data:`FIELDS` names what a sequence may hold; a tokenizer's ``fields`` choose which of
them make its sequences and in which order (:func:`check_fields`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from quack.schema import SPECIALS

#: Characters of each text field that are tokenized (and kept for display).
FIELD_CHARS = 4096

TEXT_FIELDS = ("sent", "status", "headers", "body")

_TLS = {768: "ssl3", 769: "1.0", 770: "1.1", 771: "1.2", 772: "1.3"}
# The suites seen most in Quack HTTPS replies get their own token; the rest share buckets.
_CIPHERS = {
    0x000A: "0x000a", 0x002F: "0x002f", 0x0035: "0x0035", 0x009C: "0x009c", 0x009D: "0x009d",
    0x1301: "0x1301", 0x1302: "0x1302", 0x1303: "0x1303", 0xC013: "0xc013", 0xC014: "0xc014",
    0xC02B: "0xc02b", 0xC02C: "0xc02c", 0xC02F: "0xc02f", 0xC030: "0xc030", 0xCCA8: "0xcca8",
    0xCCA9: "0xcca9",
}
_CIPHER_BUCKETS = 32
_ELAPSED_MS = (10, 30, 100, 300, 1000, 3000, 10000, 30000)
_ELAPSED_LABELS = tuple(f"<{b}ms" if b < 1000 else f"<{b // 1000}s" for b in _ELAPSED_MS) + (">=30s", "?")
_ERRORS = ("none", "timeout", "reset", "refused", "unreachable", "eof", "local", "mismatch", "other")
_FLAG = ("false", "true", "?")

# (field name reported for its ids, short name shown for them, category labels), in id order.
_STATIC = [("ip", f"ip[{k}]", tuple(str(i) for i in range(256)) + ("?",)) for k in range(4)] + [
    ("service", "service", ("echo", "discard", "http", "https", "other", "?")),
    ("anomaly", "anomaly", _FLAG),
    ("controls_failed", "controls_failed", _FLAG),
    ("stateful_block", "stateful_block", _FLAG),
    ("matches_template", "matches_template", _FLAG),
    ("tls_version", "tls", tuple(_TLS.values()) + ("other", "none")),
    ("cipher_suite", "cipher", tuple(_CIPHERS.values()) + tuple(f"other#{k}" for k in range(_CIPHER_BUCKETS)) + ("none",)),
    ("certificate", "cert", ("no", "yes")),
    ("elapsed", "elapsed", _ELAPSED_LABELS),
    ("error", "error", _ERRORS),
]


@dataclass(frozen=True)
class StaticField:
    """One static token of a sequence and its range of ids.

    Attributes
    ----------
    name : str
        The field as :data:`FIELDS` and ``token_fields`` name it (the four octets are all ``ip``).
    short : str
        The name ``decode_tokens`` shows, such as ``ip[1]`` or ``tls``.
    labels : tuple of str
        The categories, in id order; the last ones stand for missing or other values.
    start : int
        The id of the first category.
    """

    name: str
    short: str
    labels: tuple[str, ...]
    start: int

    def piece(self, i: int) -> str:
        """How id ``i`` of this field reads, such as ``tls=1.2``."""
        return f"{self.short}={self.labels[i - self.start]}"


def _static_fields() -> tuple[StaticField, ...]:
    fields, at = [], len(SPECIALS)
    for name, short, labels in _STATIC:
        fields.append(StaticField(name, short, labels, at))
        at += len(labels)
    return tuple(fields)


#: The static tokens of a sequence in id order, one per category index of :func:`static_categories`.
STATIC_FIELDS = _static_fields()
N_STATIC = len(STATIC_FIELDS)
#: The id of the first text field's marker; the markers follow in :data:`TEXT_FIELDS` order.
MARKER_START = STATIC_FIELDS[-1].start + len(STATIC_FIELDS[-1].labels)
#: First id of the BPE vocabulary; everything below is specials, static tokens and markers.
TEXT_OFFSET = MARKER_START + len(TEXT_FIELDS)
#: The first and last marker of the response's fields (status, headers, body).
RESPONSE_MARKERS = (MARKER_START + TEXT_FIELDS.index("status"), MARKER_START + TEXT_FIELDS.index("body"))
#: Bumped whenever the static layout changes, so an old tokenizer document is refused.
LAYOUT_VERSION = 1

#: Every field a sequence may hold, as ``fields`` names them: ``ip`` is the four octets.
FIELDS = ("ip", "service", "anomaly", "controls_failed", "stateful_block", "matches_template", "tls_version",
          "cipher_suite", "certificate", "elapsed", "error") + TEXT_FIELDS
#: The layout of the seed's tokenizers, and of any document that does not name its fields.
DEFAULT_FIELDS = FIELDS
#: The fields a measurement's identity is in rather than its response: the vantage point and the request.
IDENTITY_FIELDS = ("ip", "sent")
#: The fields of a new tokenizer made by ``quack ingest``, response first: the shipped
#: checkpoint's layout, which the leave-fingerprints-out evaluation found best (BENCHMARKS.md).
RESPONSE_FIELDS = ("status", "headers", "body", "service", "error")


def check_fields(fields: Iterable[str]) -> tuple[str, ...]:
    """The fields of a sequence, checked: known names, each once, at least one text field.

    Raises
    ------
    ValueError
        One sentence naming the bad entry and the valid names.
    """
    if isinstance(fields, str):
        fields = [part.strip() for part in fields.split(",") if part.strip()]
    chosen = tuple(fields)
    unknown = [name for name in chosen if name not in FIELDS]
    if unknown:
        raise ValueError(f"Unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}.")
    repeated = [name for name in chosen if chosen.count(name) > 1]
    if repeated:
        raise ValueError(f"The field {repeated[0]!r} is named twice; name each field at most once.")
    if not any(name in TEXT_FIELDS for name in chosen):
        raise ValueError(f"The fields need at least one of the text fields {', '.join(TEXT_FIELDS)}.")
    return chosen


def static_field_at(i: int) -> StaticField:
    """The static field whose range holds id ``i`` (an id from ``len(SPECIALS)`` to :data:`MARKER_START`)."""
    k = 0
    while k + 1 < N_STATIC and STATIC_FIELDS[k + 1].start <= i:
        k += 1
    return STATIC_FIELDS[k]


def _flag(value: Any) -> int:
    return 1 if value is True else 0 if value is False else 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_class(error: Any) -> int:
    if not error:
        return 0
    text = str(error).lower()
    for index, needles in (
        (1, ("timeout", "timed out")),
        (2, ("reset",)),
        (3, ("refused",)),
        (4, ("unreachable", "no route")),
        (5, ("eof",)),
        (6, ("address already in use", "bind:", "too many open files")),
        (7, ("match", "incorrect", "received response", "not empty", "header field")),
    ):
        if any(n in text for n in needles):
            return index
    return 8


def static_categories(row: Mapping[str, Any]) -> list[int]:
    """The category index of each static field of ``row`` (position in its label list)."""
    categories = []
    vp = row.get("vp")
    octets = vp.split(".") if isinstance(vp, str) else []
    if len(octets) == 4 and all(o.isdigit() and len(o) <= 3 and int(o) < 256 for o in octets):
        categories += [int(o) for o in octets]
    else:
        categories += [256] * 4
    service = row.get("service")
    services = ("echo", "discard", "http", "https")
    if isinstance(service, str) and service:
        categories.append(services.index(service) if service in services else 4)
    else:
        categories.append(5)
    categories += [_flag(row.get(k)) for k in ("anomaly", "controls_failed", "stateful_block", "matches_template")]
    tls = row.get("tls_version")
    if _is_int(tls):
        categories.append(list(_TLS).index(tls) if tls in _TLS else len(_TLS))
    else:
        categories.append(len(_TLS) + 1)
    cipher = row.get("cipher_suite")
    if _is_int(cipher):
        if cipher in _CIPHERS:
            categories.append(list(_CIPHERS).index(cipher))
        else:
            # Knuth's multiplicative hash spreads nearby suite numbers over the buckets.
            categories.append(len(_CIPHERS) + (cipher * 2654435761 % 2**32) % _CIPHER_BUCKETS)
    else:
        categories.append(len(_CIPHERS) + _CIPHER_BUCKETS)
    categories.append(1 if row.get("certificate") is True else 0)
    elapsed = row.get("elapsed_ms")
    if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and math.isfinite(elapsed) and elapsed >= 0:
        categories.append(next((i for i, b in enumerate(_ELAPSED_MS) if elapsed < b), len(_ELAPSED_MS)))
    else:
        categories.append(len(_ELAPSED_MS) + 1)
    categories.append(_error_class(row.get("error")))
    return categories
