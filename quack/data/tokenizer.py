"""Turn a measurement row into token ids.

A record's tokens are ``[<s>, static..., text..., </s>]``, in the id layout of
:mod:`quack.data.vocab`: the specials, one token per static field from its fixed range,
then the text part, sent, status, headers and body, each opened by its marker token and
encoded by a byte-level BPE trained on the corpus with the ``tokenizers`` library. Only
the first :data:`quack.data.vocab.FIELD_CHARS` characters of a field are encoded, so the
stored display text is exactly what was tokenized. ``max_tokens`` bounds the text part,
markers included; each field has a share of it so a long header block cannot crowd out
the body, and a share a field does not use goes to the others.

``fields`` chooses which fields make the sequence and in which order
(:data:`quack.data.vocab.FIELDS` names them; the default,
:data:`quack.data.vocab.DEFAULT_FIELDS`, is the layout above). Leaving out the identity of
a measurement (``ip``, ``sent``) and putting the response first keeps the latents about
the response (see BENCHMARKS.md). Ids do not depend on the choice, only which tokens
appear and where, and a tokenizer document records it.

Byte-level BPE can encode any string, and every id is checked against the vocabulary, so
no id ever reaches :attr:`QuackTokenizer.vocab_size`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from quack.data.vocab import (
    DEFAULT_FIELDS,
    FIELD_CHARS,
    FIELDS,
    LAYOUT_VERSION,
    MARKER_START,
    STATIC_FIELDS,
    TEXT_FIELDS,
    TEXT_OFFSET,
    check_fields,
    static_categories,
    static_field_at,
)
from quack.jsonfiles import loads_bounded
from quack.schema import BOS, EOS, SPECIALS, UNK, columns

#: The columns of a stored row that make its tokens (:data:`quack.schema.ROW_SCHEMA`'s "tokenized").
TOKENIZED_COLUMNS = columns("tokenized")
#: Smallest text vocabulary a BPE may be asked for: the 256 bytes.
MIN_TEXT_VOCAB = 256
#: Smallest text budget: room for the four field markers and a few tokens each.
MIN_MAX_TOKENS = 16
#: Largest text budget: a checkpoint's tokenizer sets every record's length, so a larger claim is refused
#: (the shipped model uses 128; a record's padded batch grows with it).
MAX_MAX_TOKENS = 2048
# Rows turned into Python objects at a time by encode_table: the BPE's batch, memory bounded.
_TABLE_BATCH = 2048


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
        The fields of the sequence in their order (names of :data:`quack.data.vocab.FIELDS`;
        a comma-separated string works too); None is :data:`quack.data.vocab.DEFAULT_FIELDS`.
    """

    def __init__(self, bpe: Tokenizer, max_tokens: int = 256, fields: Iterable[str] | None = None) -> None:
        if not isinstance(max_tokens, int) or not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
            raise ValueError(f"max_tokens must be an integer from {MIN_MAX_TOKENS} to {MAX_MAX_TOKENS:,}, "
                             f"got {max_tokens!r}.")
        self.bpe = bpe
        self.max_tokens = max_tokens
        self.fields = DEFAULT_FIELDS if fields is None else check_fields(fields)
        self._bpe_size = bpe.get_vocab_size()
        # Shares of sent, status and headers; the body gets whatever they leave.
        self._caps = [max(2, max_tokens // 8), max(2, max_tokens // 16), max_tokens // 3]
        self._text = [k for k, name in enumerate(TEXT_FIELDS) if name in self.fields]
        # Each static field of the sequence as its indices in the static categories, in order.
        static_of = {name: [k for k, field in enumerate(STATIC_FIELDS) if field.name == name] for name in FIELDS}
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
            specials, static tokens and field markers come on top
            (:data:`quack.data.vocab.TEXT_OFFSET` ids), and a small corpus may learn fewer
            merges; :attr:`vocab_size` tells the total reached.
        max_tokens : int
            Most tokens of the text part of a record.
        fields : sequence of str, optional
            The fields of the sequence in their order; None is
            :data:`quack.data.vocab.DEFAULT_FIELDS`. The BPE learns from every text field
            whichever are chosen.

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
        return [self.assemble(row, ids[i * n : (i + 1) * n]) for i, row in enumerate(rows)]

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

    def assemble(self, row: Mapping[str, Any], field_ids: list[list[int]]) -> list[int]:
        """The sequence of one row from the BPE ids of its text fields, each cut to its share of ``max_tokens``.

        :meth:`encode_rows` calls it with the ids its BPE pass found; given the ids of
        whole fields instead, it tells the sequence any encoding of the same text must give.

        Parameters
        ----------
        row : mapping
            The row, read for its static fields.
        field_ids : list of list of int
            BPE ids (from 0) of each text field of :attr:`fields`, in
            :data:`quack.data.vocab.TEXT_FIELDS` order.

        Returns
        -------
        list of int
        """
        categories = static_categories(row)
        lengths = [0] * len(TEXT_FIELDS)
        pieces = [[] for _ in TEXT_FIELDS]
        for k, found in zip(self._text, field_ids):
            lengths[k], pieces[k] = len(found), found
        alloc = self._allocate(lengths)
        ids = [BOS]
        for kind, part in self._layout:
            if kind == "static":
                ids += [STATIC_FIELDS[k].start + categories[k] for k in part]
            elif alloc[part]:
                ids.append(MARKER_START + part)
                ids += [TEXT_OFFSET + p for p in pieces[part][: alloc[part]]]
        ids.append(EOS)
        if max(ids) >= self.vocab_size or min(ids) < 0:
            # Unreachable with a consistent BPE; kept so the bound holds whatever the model file says.
            ids = [i if 0 <= i < self.vocab_size else UNK for i in ids]
        return ids

    def _allocate(self, lengths: list[int]) -> list[int]:
        """Text tokens given to each text field, markers excluded, within ``max_tokens``.

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
        if len(SPECIALS) <= i < MARKER_START:
            return static_field_at(i).piece(i)
        if MARKER_START <= i < TEXT_OFFSET:
            return f"[{TEXT_FIELDS[i - MARKER_START]}]"
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
            elif len(SPECIALS) <= i < MARKER_START:
                fields.append(static_field_at(i).name)
            elif MARKER_START <= i < TEXT_OFFSET:
                current = TEXT_FIELDS[i - MARKER_START]
                fields.append(current)
            else:
                fields.append(current)
        return fields

    # --- persistence ----------------------------------------------------------------------

    def to_json(self) -> str:
        """The whole tokenizer, BPE included, as one JSON document.

        ``fields`` is written only when it is not :data:`quack.data.vocab.DEFAULT_FIELDS`,
        so a tokenizer of the seed's layout keeps the document it always had.
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
            data = loads_bounded(document)
        except (TypeError, ValueError) as error:
            raise ValueError(f"The document is not a quack tokenizer ({error}); save one with QuackTokenizer.to_json().")
        if not isinstance(data, dict) or data.get("kind") != "quack-tokenizer":
            raise ValueError("The document is not a quack tokenizer; save one with QuackTokenizer.to_json().")
        if data.get("layout_version") != LAYOUT_VERSION or data.get("field_chars") != FIELD_CHARS:
            raise ValueError(
                f"The tokenizer was written with layout {data.get('layout_version')}, this quack reads "
                f"layout {LAYOUT_VERSION}; re-ingest the data to build a new one."
            )
        fields = data.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise ValueError("The tokenizer's fields are not a list of field names; re-ingest the data to build a new one.")
        try:
            bpe = Tokenizer.from_str(json.dumps(data["bpe"]))
            max_tokens = int(data["max_tokens"])
        # The tokenizers library raises a bare Exception for a vocabulary it cannot take
        # (a negative or repeated id, a merge of unknown pieces).
        except Exception as error:
            raise ValueError(f"Its vocabulary cannot be read ({error}); re-ingest the data to build a new one.") from None
        return cls(bpe, max_tokens=max_tokens, fields=fields)

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
