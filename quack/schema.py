"""The vocabulary every module shares: the special token ids, the label codes and the columns of a row.

The special tokens keep the ids of the published model (the XLM-R convention): ``<s>`` 0,
``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3. A label is a :class:`Label`: censored 1, undetermined
0, uncensored -1 (the codes of the published model's pipeline), each with the name and
colour a person sees. A row of a data set is one Arrow schema, :data:`ROW_SCHEMA`; each
field's metadata lists its roles, and every column list of the project is derived from
them with :func:`columns`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable

import numpy as np
import pyarrow as pa

__all__ = ["BOS", "PAD", "EOS", "UNK", "SPECIALS", "Label", "label_names", "ROW_SCHEMA", "ROLES", "columns"]

#: Ids of the special tokens: start of a sequence, padding, end of a sequence, unknown.
BOS, PAD, EOS, UNK = 0, 1, 2, 3
#: The special tokens as the tokenizer shows them, in id order.
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


class Label(IntEnum):
    """What the fingerprints say of a measurement."""

    CENSORED = 1
    UNDETERMINED = 0
    UNCENSORED = -1

    @property
    def display(self) -> str:
        """The lower-case name shown to people: ``censored``, ``undetermined``, ``uncensored``."""
        return self.name.lower()

    @property
    def colour(self) -> str:
        """The label's colour in every chart: censored red, uncensored teal, undetermined grey."""
        return _COLOURS[self]

    @classmethod
    def ordered(cls) -> tuple["Label", "Label", "Label"]:
        """The three labels in the order tables and counts list them: censored, undetermined, uncensored."""
        return cls.CENSORED, cls.UNDETERMINED, cls.UNCENSORED

    @classmethod
    def labelled(cls) -> tuple["Label", "Label"]:
        """The two labels a fingerprint decides: censored and uncensored."""
        return cls.CENSORED, cls.UNCENSORED

    @classmethod
    def by_display(cls) -> dict[str, "Label"]:
        """Labels by their display name, in the order charts list them."""
        return {label.display: label for label in (cls.CENSORED, cls.UNCENSORED, cls.UNDETERMINED)}


_COLOURS = {Label.CENSORED: "#d1495b", Label.UNDETERMINED: "#9aa0a6", Label.UNCENSORED: "#2a9d8f"}


def label_names(labels: Iterable[int] | np.ndarray) -> np.ndarray:
    """Display names of numeric labels; a code that is no label reads as undetermined."""
    codes = np.asarray(labels)
    names = np.full(codes.shape, Label.UNDETERMINED.display, dtype=object)
    for label in Label.labelled():
        names[codes == label] = label.display
    return names


#: The roles a column can play; a column may play several.
ROLES = {
    "ingest": "read from the raw files by quack.data.ingest (every key of a row it yields)",
    "derived": "added when the data set is built (id, label, tokens)",
    "metadata": "carried with each record's latent vector into encoded output",
    "text": "a string, cut at quack.data.vocab.FIELD_CHARS characters when stored",
    "flag": "a boolean; missing counts as false, as in the published pipeline",
    "tokenized": "read by the tokenizer to make the record's token sequence",
    "optional": "added after data sets were first written; a data set without it reads it as missing (unknown)",
}


def _field(name: str, kind: pa.DataType, *roles: str) -> pa.Field:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"Unknown column roles {sorted(unknown)} for {name!r}.")
    return pa.field(name, kind, metadata={"roles": ",".join(roles)})


#: A stored row of a data set (``rows.parquet``), in column order.
ROW_SCHEMA = pa.schema([
    _field("id", pa.int64(), "derived", "metadata"),
    _field("label", pa.int8(), "derived", "metadata"),
    _field("fingerprint", pa.string(), "derived", "metadata", "text"),
    _field("country", pa.string(), "ingest", "metadata", "text"),
    _field("domain", pa.string(), "ingest", "metadata", "text"),
    _field("service", pa.string(), "ingest", "metadata", "text", "tokenized"),
    _field("vp", pa.string(), "ingest", "metadata", "text", "tokenized"),
    _field("anomaly", pa.bool_(), "ingest", "metadata", "flag", "tokenized"),
    _field("controls_failed", pa.bool_(), "ingest", "metadata", "flag", "tokenized"),
    _field("status", pa.string(), "ingest", "metadata", "text", "tokenized"),
    _field("source", pa.string(), "ingest", "metadata", "text"),
    _field("line", pa.int64(), "ingest", "metadata"),
    # When the probe ran (UTC) and the scan it belongs to, so scans can be set side by side.
    _field("time", pa.timestamp("us", tz="UTC"), "ingest", "metadata", "optional"),
    _field("scan", pa.string(), "ingest", "metadata", "text", "optional"),
    _field("probe", pa.int64(), "ingest"),
    _field("format", pa.string(), "ingest", "text"),
    _field("matches_template", pa.bool_(), "ingest", "flag", "tokenized"),
    _field("stateful_block", pa.bool_(), "ingest", "flag", "tokenized"),
    _field("error", pa.string(), "ingest", "text", "tokenized"),
    _field("start_time", pa.string(), "ingest", "text"),
    _field("end_time", pa.string(), "ingest", "text"),
    _field("elapsed_ms", pa.float64(), "ingest", "tokenized"),
    _field("tls_version", pa.int32(), "ingest", "tokenized"),
    _field("cipher_suite", pa.int32(), "ingest", "tokenized"),
    _field("certificate", pa.bool_(), "ingest", "flag", "tokenized"),
    _field("sent", pa.string(), "ingest", "text", "tokenized"),
    _field("headers", pa.string(), "ingest", "text", "tokenized"),
    _field("body", pa.string(), "ingest", "text", "tokenized"),
    _field("tokens", pa.list_(pa.int32()), "derived"),
    _field("n_tokens", pa.int32(), "derived"),
])


def roles(field: pa.Field) -> frozenset[str]:
    """The roles of one field of :data:`ROW_SCHEMA`."""
    return frozenset((field.metadata or {}).get(b"roles", b"").decode().split(","))


def columns(*wanted: str, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Names of the columns that play every role in ``wanted`` and none in ``exclude``, in schema order.

    ``columns("metadata")`` lists what goes with a latent vector; ``columns("ingest")`` the
    keys of a raw row; ``columns()`` every column.
    """
    unknown = (set(wanted) | set(exclude)) - set(ROLES)
    if unknown:
        raise ValueError(f"Unknown column roles {sorted(unknown)}; the roles are {', '.join(ROLES)}.")
    excluded = set(exclude)
    return tuple(f.name for f in ROW_SCHEMA if set(wanted) <= roles(f) and not excluded & roles(f))


def schema_of(names: Iterable[str]) -> pa.Schema:
    """The part of :data:`ROW_SCHEMA` with these columns, in schema order."""
    chosen = set(names)
    return pa.schema([f for f in ROW_SCHEMA if f.name in chosen])
