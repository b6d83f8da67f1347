"""The tokenized data set on disk, and how torch and Lightning read it.

A data set is a folder:

* ``rows.parquet``: one row per measurement probe, in id order. Metadata columns
  (:data:`METADATA_COLUMNS`), the other fields of the row, the display text (``sent``,
  ``status``, ``headers``, ``body``, each cut at :data:`quack.tokenizer.FIELD_CHARS`
  characters, which is exactly the text that was tokenized), ``tokens`` (list<int32>)
  and ``n_tokens``.
* ``tokenizer.json``: the :class:`~quack.tokenizer.QuackTokenizer` that made the tokens.
* ``info.json``: counts readable without a scan (rows, rows per label, longest sequence,
  vocabulary size, sources, skipped input by reason).

:func:`build_dataset` streams the input twice over a staging file (once to ingest and
label, once to tokenize) so memory stays flat, and renames the finished folder into place
so a failed build leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from quack.ingest import IngestStats, QuackInputError, iter_rows
from quack.labels import Fingerprints, label_row
from quack.tokenizer import FIELD_CHARS, PAD, TEXT_FIELDS, QuackTokenizer

METADATA_COLUMNS = ["id", "label", "fingerprint", "country", "domain", "service", "vp", "anomaly",
                    "controls_failed", "status", "source", "line"]

_INT32 = (-(2**31), 2**31 - 1)
_ROW_SCHEMA = pa.schema([
    ("label", pa.int8()), ("fingerprint", pa.string()), ("country", pa.string()), ("domain", pa.string()),
    ("service", pa.string()), ("vp", pa.string()), ("anomaly", pa.bool_()), ("controls_failed", pa.bool_()),
    ("status", pa.string()), ("source", pa.string()), ("line", pa.int64()), ("probe", pa.int64()),
    ("format", pa.string()), ("matches_template", pa.bool_()), ("stateful_block", pa.bool_()),
    ("error", pa.string()), ("start_time", pa.string()), ("end_time", pa.string()), ("elapsed_ms", pa.float64()),
    ("tls_version", pa.int32()), ("cipher_suite", pa.int32()), ("certificate", pa.bool_()),
    ("sent", pa.string()), ("headers", pa.string()), ("body", pa.string()),
])
_FINAL_SCHEMA = pa.schema([("id", pa.int64())] + list(_ROW_SCHEMA) + [("tokens", pa.list_(pa.int32())), ("n_tokens", pa.int32())])
_BATCH = 2048
_FLAGS = ("anomaly", "controls_failed", "matches_template", "stateful_block")
_TEXTS = ("fingerprint", "country", "domain", "service", "vp", "status", "source", "format", "error",
          "start_time", "end_time") + TEXT_FIELDS

# The row fields the tokenizer reads.
_TOKENIZED = ["vp", "service", "anomaly", "controls_failed", "stateful_block", "matches_template", "tls_version",
              "cipher_suite", "certificate", "elapsed_ms", "error", *TEXT_FIELDS]

Progress = Callable[[int, str], None]


def build_dataset(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    signatures: list[str] | None = None,
    tokenizer: QuackTokenizer | None = None,
    vocab_size: int = 4000,
    max_tokens: int = 256,
    geoip_db: str | None = None,
    anomalies_only: bool = False,
    progress: Progress | None = None,
    stats: IngestStats | None = None,
    allow_empty: bool = True,
) -> dict:
    """Ingest, label and tokenize raw Quack files into a data set folder.

    Parameters
    ----------
    paths : path or iterable of paths
        Raw files or folders, as for :func:`quack.ingest.iter_rows`.
    out_dir : path
        The data set folder. An existing data set there is replaced, only once the new
        one is complete; a folder holding anything else is refused.
    signatures : list of str, optional
        Fingerprint files; None uses the list shipped with quack.
    tokenizer : QuackTokenizer, optional
        Reuse this tokenizer (a checkpoint's, say); None trains one on the input.
    vocab_size, max_tokens : int
        For a newly trained tokenizer.
    geoip_db : str, optional
        MaxMind database for v1 countries.
    anomalies_only : bool
        Keep only failed probes of anomalous records.
    progress : callable, optional
        Called as ``progress(done_rows, stage)`` with stage ``"ingest"``, ``"train"`` or
        ``"tokenize"``.
    stats : IngestStats, optional
        Filled with the ingest counts (pass ``IngestStats(keep_problems=True)`` to list problems).
    allow_empty : bool
        Write a data set of no rows when the input holds no measurements; when False,
        raise instead and leave ``out_dir`` as it was.

    Returns
    -------
    dict
        The info written to ``info.json``.

    Raises
    ------
    QuackInputError
        For an unreadable input, an unusable output folder, or (unless ``allow_empty``)
        input with no measurements.
    """
    out = Path(out_dir).expanduser()
    _check_output(out)
    fingerprints = Fingerprints.load(signatures)
    stats = stats if stats is not None else IngestStats()
    report = progress or (lambda done, stage: None)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        staging = work / "staging.parquet"
        n_rows = _ingest(paths, staging, fingerprints, stats, geoip_db, anomalies_only, report)
        if n_rows == 0 and not allow_empty:
            raise QuackInputError(
                f"Found no measurements in {_describe(paths)} ({_skipped_text(stats)}); "
                "give Censored Planet Quack files" + (" or drop --anomalies-only." if anomalies_only else ".")
            )
        if tokenizer is None:
            report(0, "train")
            tokenizer = QuackTokenizer.train(_staged_texts(staging), vocab_size=vocab_size, max_tokens=max_tokens)
            report(n_rows, "train")
        counts, longest, total_tokens = _tokenize(staging, work / "rows.parquet", tokenizer, report)
        staging.unlink()
        tokenizer.save(work / "tokenizer.json")
        info = {
            "rows": n_rows,
            "rows_per_label": {str(k): counts.get(k, 0) for k in (-1, 0, 1)},
            "longest_sequence": longest,
            "mean_tokens": total_tokens / n_rows if n_rows else 0.0,
            "vocab_size": tokenizer.vocab_size,
            "max_tokens": tokenizer.max_tokens,
            "files": stats.files,
            "lines": stats.lines,
            "skipped": dict(sorted(stats.skipped.items())),
            "sources": _sources(work / "rows.parquet"),
            "signatures": fingerprints.sources,
            "anomalies_only": anomalies_only,
        }
        (work / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        _replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise QuackInputError(f"The output {out} is a file; give a folder for the data set.")
    if out.is_dir() and any(out.iterdir()) and not (out / "info.json").is_file():
        raise QuackInputError(
            f"The output folder {out} holds files that are not a quack data set; choose an empty or new folder."
        )


def _replace(work: Path, out: Path) -> None:
    """Move the finished folder into place; an old data set goes only after that succeeded."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "data")
    try:
        os.replace(work, out)
    except OSError:
        if old is not None:
            os.replace(old / "data", out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _describe(paths) -> str:
    if isinstance(paths, (str, os.PathLike)):
        return str(paths)
    paths = [str(p) for p in paths]
    return ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")


def _skipped_text(stats: IngestStats) -> str:
    if not stats.skipped:
        return f"{stats.lines} lines read"
    parts = ", ".join(f"{n} {reason}" for reason, n in stats.skipped.most_common())
    return f"{stats.lines} lines read; skipped: {parts}"


def _ingest(paths, staging: Path, fingerprints: Fingerprints, stats: IngestStats, geoip_db, anomalies_only, report) -> int:
    """Pass 1: rows with labels, display text cut, into a staging Parquet file."""
    n_rows = 0
    with pq.ParquetWriter(staging, _ROW_SCHEMA) as writer:
        batch: list[dict] = []
        for row in iter_rows(paths, stats, geoip_db=geoip_db, anomalies_only=anomalies_only):
            row["label"], row["fingerprint"] = label_row(row, fingerprints)
            batch.append(row)
            if len(batch) == _BATCH:
                writer.write_table(_rows_table(batch))
                n_rows += len(batch)
                batch = []
                report(n_rows, "ingest")
        if batch:
            writer.write_table(_rows_table(batch))
            n_rows += len(batch)
    report(n_rows, "ingest")
    return n_rows


def _rows_table(rows: list[dict]) -> pa.Table:
    columns: dict[str, list] = {}
    for name in _TEXTS:
        columns[name] = [_cut(r.get(name)) for r in rows]
    for name in _FLAGS:
        # Missing flags count as false, as the published model's pipeline did.
        columns[name] = [r.get(name) is True for r in rows]
    columns["certificate"] = [r.get("certificate") is True for r in rows]
    columns["label"] = [r["label"] for r in rows]
    columns["line"] = [r.get("line") for r in rows]
    columns["probe"] = [r.get("probe") for r in rows]
    columns["elapsed_ms"] = [r.get("elapsed_ms") for r in rows]
    for name in ("tls_version", "cipher_suite"):
        columns[name] = [v if isinstance(v, int) and _INT32[0] <= v <= _INT32[1] else None for v in (r.get(name) for r in rows)]
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in _ROW_SCHEMA}, schema=_ROW_SCHEMA)


def _cut(value: Any) -> str:
    return value[:FIELD_CHARS] if isinstance(value, str) else ""


def _staged_texts(staging: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(staging).iter_batches(batch_size=_BATCH, columns=list(TEXT_FIELDS)):
        columns = [batch.column(name).to_pylist() for name in TEXT_FIELDS]
        for values in zip(*columns):
            yield dict(zip(TEXT_FIELDS, values))


def _tokenize(staging: Path, target: Path, tokenizer: QuackTokenizer, report) -> tuple[dict, int, int]:
    """Pass 2: add ids and tokens to the staged rows."""
    counts: dict[int, int] = {}
    longest = total = done = 0
    with pq.ParquetWriter(target, _FINAL_SCHEMA) as writer:
        for batch in pq.ParquetFile(staging).iter_batches(batch_size=_BATCH):
            table = pa.Table.from_batches([batch])
            rows = table.select(_TOKENIZED).to_pylist()
            token_lists = tokenizer.encode_rows(rows)
            lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int32, count=len(token_lists))
            offsets = np.zeros(len(token_lists) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            flat = np.fromiter((i for t in token_lists for i in t), dtype=np.int32, count=int(offsets[-1]))
            tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
            ids = pa.array(np.arange(done, done + len(rows), dtype=np.int64))
            table = table.add_column(0, "id", ids).append_column("tokens", tokens).append_column("n_tokens", pa.array(lengths))
            writer.write_table(table.cast(_FINAL_SCHEMA))
            for label, n in zip(*np.unique(table.column("label").to_numpy(), return_counts=True)):
                counts[int(label)] = counts.get(int(label), 0) + int(n)
            longest = max(longest, int(lengths.max()))
            total += int(lengths.sum())
            done += len(rows)
            report(done, "tokenize")
    return counts, longest, total


def _sources(rows_path: Path) -> list[str]:
    sources = pq.read_table(rows_path, columns=["source"]).column("source")
    return sorted(str(s) for s in pc.unique(sources).to_pylist())


def read_info(data_dir: str | os.PathLike) -> dict:
    """The ``info.json`` of a data set.

    Raises
    ------
    QuackInputError
        When the folder is not a quack data set.
    """
    path = Path(data_dir) / "info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QuackInputError(f"{data_dir} is not a quack data set (no readable info.json); build one with `quack ingest`.") from exc


def read_rows(data_dir: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of a data set (all columns, or the ones named) as a DataFrame in id order."""
    path = Path(data_dir) / "rows.parquet"
    if not path.is_file():
        raise QuackInputError(f"{data_dir} is not a quack data set (no rows.parquet); build one with `quack ingest`.")
    return pq.read_table(path, columns=list(columns) if columns is not None else None).to_pandas()


class QuackDataset(Dataset):
    """Map-style access to a data set's tokens, backed by Arrow buffers.

    Tokens stay as one flat int32 array plus offsets; an item is a slice of it turned into
    a LongTensor, so no per-row Python objects are held.

    Parameters
    ----------
    data_dir : path
        A folder written by :func:`build_dataset`.
    with_metadata : bool
        Items are ``(metadata dict, tokens)`` instead of ``tokens``.
    """

    def __init__(self, data_dir: str | os.PathLike, with_metadata: bool = False) -> None:
        path = Path(data_dir) / "rows.parquet"
        if not path.is_file():
            raise QuackInputError(f"{data_dir} is not a quack data set (no rows.parquet); build one with `quack ingest`.")
        table = pq.read_table(path, columns=METADATA_COLUMNS + ["tokens", "n_tokens"])
        tokens = table.column("tokens").combine_chunks()
        self._offsets = np.asarray(tokens.offsets)
        self._values = np.asarray(tokens.values)
        self.lengths = table.column("n_tokens").to_numpy()
        self.with_metadata = with_metadata
        self._meta = {name: table.column(name).combine_chunks() for name in METADATA_COLUMNS}

    def __len__(self) -> int:
        return len(self.lengths)

    def tokens(self, i: int) -> torch.Tensor:
        """The token ids of row ``i`` as a LongTensor."""
        return torch.from_numpy(self._values[self._offsets[i] : self._offsets[i + 1]].astype(np.int64))

    def metadata(self, i: int) -> dict:
        """The :data:`METADATA_COLUMNS` of row ``i`` as plain Python values."""
        return {name: column[i].as_py() for name, column in self._meta.items()}

    def __getitem__(self, i: int):
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} is out of range for a data set of {len(self)} rows")
        i %= len(self)
        if self.with_metadata:
            return self.metadata(i), self.tokens(i)
        return self.tokens(i)


def collate_tokens(batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack token tensors into a (B, T) LongTensor, right-padded with ``<pad>``."""
    return torch.nn.utils.rnn.pad_sequence(list(batch), batch_first=True, padding_value=PAD)


def collate_with_metadata(batch: Sequence[tuple[dict, torch.Tensor]]) -> tuple[list[dict], torch.Tensor]:
    """``(metadata list, padded tokens)`` from ``(metadata, tokens)`` items."""
    metas, tokens = zip(*batch)
    return list(metas), collate_tokens(tokens)


class LengthGroupedSampler(Sampler[int]):
    """Indices in an order where each run of ``batch_size`` has similar lengths.

    Shuffled indices are cut into groups of 50 batches, each group is sorted by length and
    cut into batches, and (when shuffling) the batches are shuffled again: batches keep
    little padding yet still differ from epoch to epoch. As a plain sampler it works with
    a standard batch sampler, and Lightning can still swap in a distributed sampler.

    Parameters
    ----------
    lengths : numpy.ndarray
        Length of each item.
    batch_size : int
    shuffle : bool
    seed : int
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        group = self.batch_size * 50
        batches = []
        for start in range(0, n, group):
            chunk = order[start : start + group]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[b : b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        for batch in batches:
            yield from (int(i) for i in batch)


class QuackDataModule(pl.LightningDataModule):
    """Train/validation/test/predict loaders over one data set folder.

    Parameters
    ----------
    data_dir : path
        A folder written by :func:`build_dataset`.
    batch_size : int
    split : (float, float, float)
        Train, validation and test shares; they must add up to 1.
    seed : int
        Fixes the split and the shuffling.
    num_workers : int
        DataLoader worker processes.
    bucket_by_length : bool
        Batch records of similar length together to cut padding.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        batch_size: int = 32,
        split: tuple[float, float, float] = (0.7, 0.2, 0.1),
        seed: int = 0,
        num_workers: int = 0,
        bucket_by_length: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        split = tuple(float(s) for s in split)
        if len(split) != 3 or min(split) < 0 or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"split must be three non-negative shares adding up to 1, got {split!r}.")
        self.data_dir = Path(data_dir)
        if not (self.data_dir / "rows.parquet").is_file():
            raise QuackInputError(f"{data_dir} is not a quack data set (no rows.parquet); build one with `quack ingest`.")
        self.batch_size = batch_size
        self.split = split
        self.seed = seed
        self.num_workers = num_workers
        self.bucket_by_length = bucket_by_length
        self._dataset: QuackDataset | None = None
        self._splits: dict[str, np.ndarray] = {}
        self._tokenizer: QuackTokenizer | None = None

    @property
    def tokenizer(self) -> QuackTokenizer:
        """The data set's tokenizer."""
        if self._tokenizer is None:
            self._tokenizer = QuackTokenizer.load(self.data_dir / "tokenizer.json")
        return self._tokenizer

    def setup(self, stage: str | None = None) -> None:
        """Open the data set and fix the split (idempotent)."""
        if self._dataset is not None:
            return
        self._dataset = QuackDataset(self.data_dir)
        n = len(self._dataset)
        order = np.random.default_rng(self.seed).permutation(n)
        bounds = np.round(np.cumsum(self.split) * n).astype(int)
        bounds[-1] = n
        for name, part in zip(("train", "val", "test"), np.split(order, bounds[:2])):
            self._splits[name] = np.sort(part)

    def split_ids(self, name: str) -> np.ndarray:
        """Row ids of the ``train``, ``val`` or ``test`` split, ascending."""
        self.setup()
        if name not in self._splits:
            raise ValueError(f"Unknown split {name!r}; use 'train', 'val' or 'test'.")
        return self._splits[name]

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        ids = self._splits[name]
        # An empty split (a tiny or empty data set, a zero share) gives an empty loader.
        shuffle = shuffle and len(ids) > 0
        subset = Subset(self._dataset, ids.tolist())
        options = dict(batch_size=self.batch_size, collate_fn=collate_tokens, num_workers=self.num_workers,
                       persistent_workers=self.num_workers > 0)
        if self.bucket_by_length:
            sampler = LengthGroupedSampler(self._dataset.lengths[ids], self.batch_size, shuffle=shuffle, seed=self.seed)
            return DataLoader(subset, sampler=sampler, **options)
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(subset, shuffle=shuffle, generator=generator, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Every row in id order, as ``(metadata list, tokens)`` batches."""
        return DataLoader(QuackDataset(self.data_dir, with_metadata=True), batch_size=self.batch_size, shuffle=False,
                          collate_fn=collate_with_metadata, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
