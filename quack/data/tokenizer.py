"""Turn a measurement row into token ids.

A record's tokens are ``[<s>, static..., text..., </s>]``.

* ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3 (the convention of the published model).
* Static fields come next, one token each, from fixed id ranges: the four octets of the
  vantage point's IP, service, the record and probe flags, TLS version, cipher suite
  (common suites by name, the rest hashed into a few buckets), certificate presence,
  elapsed time bucketed on a log scale and the class of the error. Every field has a
  slot for "missing", so any value, even junk, maps into its range.
* The text part is sent, status, headers and body, each opened by a marker token (which
  also lets :meth:`QuackTokenizer.token_fields` tell the fields apart from ids alone) and
  encoded by a byte-level BPE trained on the corpus with the ``tokenizers`` library. Only
  the first :data:`FIELD_CHARS` characters of a field are encoded, so the stored display
  text is exactly what was tokenized. ``max_tokens`` bounds the text part, markers
  included; each field has a share of it so a long header block cannot crowd out the
  body, and a share a field does not use goes to the others.

``fields`` chooses which fields make the sequence and in which order (:data:`FIELDS`
names them; the default, :data:`DEFAULT_FIELDS`, is the layout above). Leaving out the
identity of a measurement (``ip``, ``sent``) and putting the response first keeps the
latents about the response (see BENCHMARKS.md). Ids do not depend on the choice, only
which tokens appear and where, and a tokenizer document records it.

Byte-level BPE can encode any string, and every id is checked against the vocabulary, so
no id ever reaches :attr:`QuackTokenizer.vocab_size`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from quack.schema import columns

BOS, PAD, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")

#: Characters of each text field that are tokenized (and kept for display).
FIELD_CHARS = 4096

TEXT_FIELDS = ("sent", "status", "headers", "body")

#: The columns of a stored row that make its tokens (:data:`quack.schema.ROW_SCHEMA`'s "tokenized").
TOKENIZED_COLUMNS = columns("tokenized")
# Rows turned into Python objects at a time by encode_table: the BPE's batch, memory bounded.
_TABLE_BATCH = 2048

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

# (field name reported by token_fields, short name shown by decode_tokens, category labels)
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


#: Every field a sequence may hold, as ``fields`` names them: ``ip`` is the four octets.
FIELDS = ("ip", "service", "anomaly", "controls_failed", "stateful_block", "matches_template", "tls_version",
          "cipher_suite", "certificate", "elapsed", "error") + TEXT_FIELDS
#: The layout of the seed's tokenizers, and of any document that does not name its fields.
DEFAULT_FIELDS = FIELDS
#: The fields a measurement's identity is in rather than its response: the vantage point and the request.
IDENTITY_FIELDS = ("ip", "sent")


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


def _starts() -> list[int]:
    starts, at = [], len(SPECIALS)
    for _, _, labels in _STATIC:
        starts.append(at)
        at += len(labels)
    return starts + [at]


*_STATIC_START, _MARKER_START = _starts()
#: First id of the BPE vocabulary; everything below is specials, static tokens and markers.
TEXT_OFFSET = _MARKER_START + len(TEXT_FIELDS)
#: The first and last marker of the response's fields (status, headers, body).
RESPONSE_MARKERS = (_MARKER_START + TEXT_FIELDS.index("status"), _MARKER_START + TEXT_FIELDS.index("body"))
N_STATIC = len(_STATIC)
#: Smallest text vocabulary a BPE may be asked for: the 256 bytes.
MIN_TEXT_VOCAB = 256
#: Bumped whenever the static layout changes, so an old tokenizer document is refused.
LAYOUT_VERSION = 1
#: Smallest text budget: room for the four field markers and a few tokens each.
MIN_MAX_TOKENS = 16


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (GPT-2)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}
_VISIBLE = str.maketrans({"\r": "\\r", "\n": "\\n", "\t": "\\t"})


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None:
        return ""
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "replace")
    else:
        text = str(value)
    return text[:FIELD_CHARS]


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


class QuackTokenizer:
    """Byte-level BPE for the text of a measurement plus categorical static tokens.

    Build one with :meth:`train` or :meth:`from_json`/:meth:`load`.

    Parameters
    ----------
    bpe : tokenizers.Tokenizer
        A trained byte-level BPE with no special tokens of its own.
    max_tokens : int
        Most tokens of the text part of a record, field markers included.
    fields : sequence of str, optional
        The fields of the sequence in their order (names of :data:`FIELDS`; a
        comma-separated string works too); None is :data:`DEFAULT_FIELDS`.
    """

    def __init__(self, bpe: Tokenizer, max_tokens: int = 256, fields: Iterable[str] | None = None) -> None:
        if not isinstance(max_tokens, int) or max_tokens < MIN_MAX_TOKENS:
            raise ValueError(f"max_tokens must be an integer of at least {MIN_MAX_TOKENS}, got {max_tokens!r}.")
        self.bpe = bpe
        self.max_tokens = max_tokens
        self.fields = DEFAULT_FIELDS if fields is None else check_fields(fields)
        self._bpe_size = bpe.get_vocab_size()
        # Shares of sent, status and headers; the body gets whatever they leave.
        self._caps = [max(2, max_tokens // 8), max(2, max_tokens // 16), max_tokens // 3]
        self._text = [k for k, name in enumerate(TEXT_FIELDS) if name in self.fields]
        # Each static field of the sequence as (index in the static categories, its first id), in order.
        static_of = {name: [k for k, (field, _, _) in enumerate(_STATIC) if field == name] for name in FIELDS}
        self._layout = [("text", TEXT_FIELDS.index(name)) if name in TEXT_FIELDS else ("static", static_of[name])
                        for name in self.fields]

    @property
    def vocab_size(self) -> int:
        """Number of ids; every id this tokenizer gives is below it."""
        return TEXT_OFFSET + self._bpe_size

    @property
    def n_static(self) -> int:
        """Static tokens per record (the four octets of ``ip`` count four)."""
        return sum(len(part) for kind, part in self._layout if kind == "static")

    @classmethod
    def train(
        cls, rows_or_texts: Iterable[Mapping[str, Any] | str], vocab_size: int = 4000, max_tokens: int = 256,
        fields: Iterable[str] | None = None,
    ) -> "QuackTokenizer":
        """Train the BPE on the text fields of rows (or on plain strings).

        Parameters
        ----------
        rows_or_texts : iterable of dict or str
            Rows as from :func:`quack.data.ingest.iter_rows`, or texts; consumed once, streaming.
        vocab_size : int
            Size of the text vocabulary the BPE learns: the 256 bytes and its merges. The
            specials, static tokens and field markers come on top (:data:`TEXT_OFFSET`
            ids), and a small corpus may learn fewer merges; :attr:`vocab_size` tells
            the total reached.
        max_tokens : int
            Most tokens of the text part of a record.
        fields : sequence of str, optional
            The fields of the sequence in their order; None is :data:`DEFAULT_FIELDS`.
            The BPE learns from every text field whichever are chosen.

        Returns
        -------
        QuackTokenizer
        """
        if not isinstance(vocab_size, int) or vocab_size < MIN_TEXT_VOCAB:
            raise ValueError(f"vocab_size must be at least {MIN_TEXT_VOCAB} (the 256 bytes), got {vocab_size!r}.")
        fields = None if fields is None else check_fields(fields)
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        bpe.train_from_iterator(_training_texts(rows_or_texts), trainer=trainer)
        return cls(bpe, max_tokens=max_tokens, fields=fields)

    # --- encoding -------------------------------------------------------------------------

    def encode_row(self, row: Mapping[str, Any]) -> list[int]:
        """Token ids of one row: ``[<s>, fields..., </s>]``, by default ``[<s>, static..., text..., </s>]``."""
        return self.encode_rows([row])[0]

    def encode_rows(self, rows: list[Mapping[str, Any]]) -> list[list[int]]:
        """Token ids of many rows; the BPE runs in one parallel batch."""
        rows = [r if isinstance(r, Mapping) else {} for r in rows]
        names = [TEXT_FIELDS[k] for k in self._text]
        texts = [_text(r.get(f)) for r in rows for f in names]
        try:
            ids = self._encode_texts(texts)
        except (UnicodeEncodeError, TypeError, ValueError):
            # Lone surrogates cannot cross into Rust; replace them and try once more.
            ids = self._encode_texts([t.encode("utf-8", "replace").decode("utf-8") for t in texts])
        n = len(names)
        return [self._assemble(row, ids[i * n : (i + 1) * n]) for i, row in enumerate(rows)]

    def encode_table(self, table: pa.Table) -> pa.ListArray:
        """Token ids of every row of an Arrow table, as ``list<int32>``, in row order.

        Parameters
        ----------
        table : pyarrow.Table
            Rows holding :data:`TOKENIZED_COLUMNS` (other columns are ignored), such as
            the rows of a data set: their stored text is exactly the text tokenized, so
            a data set's rows give the tokens a fresh ingest with this tokenizer would.

        Returns
        -------
        pyarrow.ListArray
        """
        selected = table.select(list(TOKENIZED_COLUMNS))
        pieces = [
            pa.array(self.encode_rows(selected.slice(start, _TABLE_BATCH).to_pylist()), type=pa.list_(pa.int32()))
            for start in range(0, selected.num_rows, _TABLE_BATCH)
        ]
        return pa.concat_arrays(pieces) if pieces else pa.array([], type=pa.list_(pa.int32()))

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        """BPE ids of each text, enough of them for any field's share of ``max_tokens``.

        Encoding all of a long field only to keep its first few hundred tokens is wasted
        work, so a prefix is encoded first. Byte-level pre-tokenization splits text into
        words without looking past the next character, so every word but the last one of
        the prefix comes out exactly as in the whole text; those tokens are kept when there
        are enough of them, and only the rare text without enough is encoded whole.
        """
        prefix = self.max_tokens * 4
        ids: list[list[int]] = [[] for _ in texts]
        present = [k for k, text in enumerate(texts) if text]
        encoded = self.bpe.encode_batch([texts[k][:prefix] for k in present], add_special_tokens=False)
        redo = []
        for k, enc in zip(present, encoded):
            if len(texts[k]) <= prefix:
                ids[k] = enc.ids
                continue
            words = enc.word_ids
            keep = len(words)
            while keep and words[keep - 1] == words[-1]:
                keep -= 1
            if keep >= self.max_tokens:
                ids[k] = enc.ids[:keep]
            else:
                redo.append(k)
        if redo:
            for k, enc in zip(redo, self.bpe.encode_batch([texts[k] for k in redo], add_special_tokens=False)):
                ids[k] = enc.ids
        return ids

    def _assemble(self, row: Mapping[str, Any], field_ids: list[list[int]]) -> list[int]:
        """The sequence of one row from the BPE ids of its chosen text fields (in :data:`TEXT_FIELDS` order)."""
        categories = static_categories(row)
        lengths = [0] * len(TEXT_FIELDS)
        pieces = [[] for _ in TEXT_FIELDS]
        for k, found in zip(self._text, field_ids):
            lengths[k], pieces[k] = len(found), found
        alloc = self._allocate(lengths)
        ids = [BOS]
        for kind, part in self._layout:
            if kind == "static":
                ids += [_STATIC_START[k] + categories[k] for k in part]
            elif alloc[part]:
                ids.append(_MARKER_START + part)
                ids += [TEXT_OFFSET + p for p in pieces[part][: alloc[part]]]
        ids.append(EOS)
        if max(ids) >= self.vocab_size or min(ids) < 0:
            # Unreachable with a consistent BPE; kept so the bound holds whatever the model file says.
            ids = [i if 0 <= i < self.vocab_size else UNK for i in ids]
        return ids

    def _allocate(self, lengths: list[int]) -> list[int]:
        """Text tokens given to each field of :data:`TEXT_FIELDS`, markers excluded, within ``max_tokens``.

        Sent, status and headers take up to their share in turn, the body the rest; what
        a short field leaves goes back to headers, sent and status. A field left with no
        tokens (or not among the fields) loses its marker too; the order of the fields in
        the sequence does not change the shares.
        """
        left = self.max_tokens - sum(length > 0 for length in lengths)
        alloc = []
        for length, cap in zip(lengths, self._caps + [left]):
            take = min(length, cap, left)
            alloc.append(take)
            left -= take
        for k in (2, 0, 1):
            extra = min(left, lengths[k] - alloc[k])
            alloc[k] += extra
            left -= extra
        return alloc

    # --- reading ids back -----------------------------------------------------------------

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """A readable piece per id, such as ``<s>``, ``ip[1]=34``, ``tls=1.2``, ``[body]`` or ``<html``."""
        return [self._piece(int(i)) for i in ids]

    def _piece(self, i: int) -> str:
        if 0 <= i < len(SPECIALS):
            return SPECIALS[i]
        if len(SPECIALS) <= i < _MARKER_START:
            k = _static_index(i)
            _, short, labels = _STATIC[k]
            return f"{short}={labels[i - _STATIC_START[k]]}"
        if _MARKER_START <= i < TEXT_OFFSET:
            return f"[{TEXT_FIELDS[i - _MARKER_START]}]"
        if TEXT_OFFSET <= i < self.vocab_size:
            token = self.bpe.id_to_token(i - TEXT_OFFSET) or ""
            raw = bytes(_UNICODE_TO_BYTE.get(c, 63) for c in token)
            return raw.decode("utf-8", "backslashreplace").translate(_VISIBLE)
        return "<unk>"

    def token_fields(self, ids: Iterable[int]) -> list[str]:
        """The field each position belongs to: ``special``, a static field name, or a text field."""
        fields = []
        current = "text"
        for raw in ids:
            i = int(raw)
            if 0 <= i < len(SPECIALS):
                fields.append("special")
            elif len(SPECIALS) <= i < _MARKER_START:
                fields.append(_STATIC[_static_index(i)][0])
            elif _MARKER_START <= i < TEXT_OFFSET:
                current = TEXT_FIELDS[i - _MARKER_START]
                fields.append(current)
            else:
                fields.append(current)
        return fields

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole tokenizer, BPE included, as one JSON document.

        ``fields`` is written only when it is not :data:`DEFAULT_FIELDS`, so a tokenizer
        of the seed's layout keeps the document it always had.
        """
        document = {
            "kind": "quack-tokenizer",
            "layout_version": LAYOUT_VERSION,
            "max_tokens": self.max_tokens,
            "field_chars": FIELD_CHARS,
        }
        if self.fields != DEFAULT_FIELDS:
            document["fields"] = list(self.fields)
        document["bpe"] = json.loads(self.bpe.to_str())
        return json.dumps(document, ensure_ascii=False)

    @classmethod
    def from_json(cls, document: str) -> "QuackTokenizer":
        """Rebuild a tokenizer from :meth:`to_json` output.

        Raises
        ------
        ValueError
            When the document is not a quack tokenizer of this layout.
        """
        try:
            data = json.loads(document)
            ok = isinstance(data, dict) and data.get("kind") == "quack-tokenizer"
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError("The document is not a quack tokenizer; save one with QuackTokenizer.to_json().")
        if data.get("layout_version") != LAYOUT_VERSION or data.get("field_chars") != FIELD_CHARS:
            raise ValueError(
                f"The tokenizer was written with layout {data.get('layout_version')}, this quack reads "
                f"layout {LAYOUT_VERSION}; re-ingest the data to build a new one."
            )
        fields = data.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise ValueError("The tokenizer's fields are not a list of field names; re-ingest the data to build a new one.")
        bpe = Tokenizer.from_str(json.dumps(data["bpe"]))
        return cls(bpe, max_tokens=int(data["max_tokens"]), fields=fields)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "QuackTokenizer":
        """Read a tokenizer saved with :meth:`save`.

        Raises
        ------
        ValueError
            When the file cannot be read or is not a quack tokenizer, naming it.
        """
        try:
            document = Path(path).read_text(encoding="utf-8")
            return cls.from_json(document)
        except (OSError, ValueError) as exc:
            raise ValueError(f"Cannot load a tokenizer from {path}: {exc}") from exc


def _static_index(i: int) -> int:
    k = 0
    while k + 1 < len(_STATIC_START) and _STATIC_START[k + 1] <= i:
        k += 1
    return k


def _training_texts(rows_or_texts: Iterable[Mapping[str, Any] | str]) -> Iterable[str]:
    for item in rows_or_texts:
        if isinstance(item, Mapping):
            for name in TEXT_FIELDS:
                text = _text(item.get(name))
                if text:
                    yield text.encode("utf-8", "replace").decode("utf-8")
        else:
            text = _text(item)
            if text:
                yield text.encode("utf-8", "replace").decode("utf-8")
