"""How torch and Lightning read a data set folder (:mod:`quack.data.datafolder`).

:class:`QuackDataset` gives one record's tokens (and metadata) at a time from Arrow
buffers; :class:`QuackDataModule` splits the records and batches them for training and
prediction. Data sets are written by :func:`quack.data.build.build_dataset`; a folder of parts
reads as one data set. Given another tokenizer than the data set's (a checkpoint's),
:class:`QuackDataset` tokenizes the stored rows again with it as it opens them.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from quack.data.datafolder import DataFolder
from quack.schema import PAD, columns
from quack.data.tokenizer import TOKENIZED_COLUMNS, QuackTokenizer

__all__ = [
    "METADATA_COLUMNS",
    "QuackDataset",
    "collate_tokens",
    "collate_with_metadata",
    "LengthGroupedSampler",
    "QuackDataModule",
]

#: The columns that go with each record's latent vector (:func:`quack.schema.columns`).
METADATA_COLUMNS = list(columns("metadata"))


class QuackDataset(Dataset):
    """Map-style access to a data set's tokens, backed by Arrow buffers.

    Tokens stay as one flat int32 array plus offsets; an item is a slice of it turned into
    a LongTensor, so no per-row Python objects are held.

    Parameters
    ----------
    data_dir : path
        A data set folder written by :func:`quack.data.build.build_dataset`, or a folder of parts.
    with_metadata : bool
        Items are ``(metadata dict, tokens)`` instead of ``tokens``.
    tokenizer : QuackTokenizer, optional
        The tokenizer the items must be in. When it is not the data set's, the stored rows
        are tokenized again with it (streamed in batches; the tokens are those a fresh
        ingest with this tokenizer would store).
    progress : callable, optional
        Called as ``progress(done, total)`` while tokenizing again.

    Attributes
    ----------
    retokenized : bool
        Whether the tokens were made here with ``tokenizer``.

    Raises
    ------
    QuackInputError
        When the folder is not a quack data set.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        with_metadata: bool = False,
        tokenizer: QuackTokenizer | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        folder = DataFolder.open(data_dir)
        self.retokenized = tokenizer is not None and tokenizer.to_json() != folder.tokenizer.to_json()
        table = folder.read_table(METADATA_COLUMNS + ([] if self.retokenized else ["tokens"]))
        if self.retokenized:
            tokens = _tokenized_again(folder, tokenizer, progress)
        else:
            tokens = table.column("tokens").combine_chunks()
        self._meta = {name: table.column(name).combine_chunks() for name in METADATA_COLUMNS}
        self._offsets = np.asarray(tokens.offsets)
        self._values = np.asarray(tokens.values)
        self.lengths = np.diff(self._offsets).astype(np.int32)
        self.with_metadata = with_metadata

    def __len__(self) -> int:
        return len(self.lengths)

    def tokens(self, i: int) -> torch.Tensor:
        """The token ids of row ``i`` as a LongTensor."""
        return torch.from_numpy(self._values[self._offsets[i] : self._offsets[i + 1]].astype(np.int64))

    @property
    def metadata_table(self) -> pa.Table:
        """The :data:`METADATA_COLUMNS` of every row, in id order."""
        return pa.table(self._meta)

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


def _tokenized_again(
    folder: DataFolder, tokenizer: QuackTokenizer, progress: Callable[[int, int], None] | None
) -> pa.ListArray:
    """Every row's tokens under ``tokenizer``, from the stored text, in id order."""
    pieces, done = [], 0
    for batch in folder.iter_batches(list(TOKENIZED_COLUMNS)):
        pieces.append(tokenizer.encode_table(pa.Table.from_batches([batch])))
        done += batch.num_rows
        if progress is not None:
            progress(done, folder.n_rows)
    return pa.concat_arrays(pieces) if pieces else pa.array([], type=pa.list_(pa.int32()))


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
        A data set folder written by :func:`quack.data.build.build_dataset`, or a folder of parts.
    batch_size : int
    split : (float, float, float)
        Train, validation and test shares; they must add up to 1.
    seed : int
        Fixes the split and the shuffling.
    num_workers : int
        DataLoader worker processes.
    bucket_by_length : bool
        Batch records of similar length together to cut padding.

    Raises
    ------
    ValueError
        When ``batch_size`` or ``split`` is out of range.
    QuackInputError
        When the folder is not a quack data set.
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
        self.folder = DataFolder.open(data_dir)
        self.data_dir = self.folder.path
        self.batch_size = batch_size
        self.split = split
        self.seed = seed
        self.num_workers = num_workers
        self.bucket_by_length = bucket_by_length
        self._dataset: QuackDataset | None = None
        self._splits: dict[str, np.ndarray] = {}

    @property
    def tokenizer(self) -> QuackTokenizer:
        """The data set's tokenizer."""
        return self.folder.tokenizer

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
