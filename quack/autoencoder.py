"""The seed's API in one place: the autoencoder, its attention, and the writer of its latents.

``quack.autoencoder`` is a facade; each name lives in the module that owns it:

- :class:`QuackAutoEncoder`: :mod:`quack.model.module`;
- :class:`AttentionScore`, :class:`AttentionModule`, :func:`response_positions`:
  :mod:`quack.model.network`;
- :class:`AutoencoderWriter`, :func:`item_path`: :mod:`quack.model.writer`;
- :func:`load_encoded`, :func:`read_metadata`: :mod:`quack.model.reader`;
- the special token ids ``BOS``, ``PAD``, ``EOS``, ``UNK``: :mod:`quack.schema`.
"""

from __future__ import annotations

from quack.model.module import QuackAutoEncoder
from quack.model.network import AttentionModule, AttentionScore, response_positions
from quack.model.reader import load_encoded, read_metadata
from quack.model.writer import AutoencoderWriter, item_path
from quack.schema import BOS, EOS, PAD, UNK

__all__ = [
    "BOS",
    "PAD",
    "EOS",
    "UNK",
    "item_path",
    "AttentionScore",
    "AttentionModule",
    "QuackAutoEncoder",
    "AutoencoderWriter",
    "load_encoded",
    "read_metadata",
    "response_positions",
]
