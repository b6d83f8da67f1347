"""How torch and Lightning read a data set folder (:mod:`quack.datafolder`).

:class:`QuackDataset` gives one record's tokens (and metadata) at a time from Arrow
buffers; :class:`QuackDataModule` splits the records and batches them for training and
prediction. Data sets are written by :func:`quack.build.build_dataset`.
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from quack.datafolder import DataFolder
from quack.schema import columns
from quack.tokenizer import PAD, QuackTokenizer

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
        A data set folder written by :func:`quack.build.build_dataset`.
    with_metadata : bool
        Items are ``(metadata dict, tokens)`` instead of ``tokens``.

    Raises
    ------
    QuackInputError
        When the folder is not a quack data set.
    """

    def __init__(self, data_dir: str | os.PathLike, with_metadata: bool = False) -> None:
        folder = DataFolder.open(data_dir)
        table = pq.read_table(folder.rows_path, columns=METADATA_COLUMNS + ["tokens", "n_tokens"])
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
        A data set folder written by :func:`quack.build.build_dataset`.
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
