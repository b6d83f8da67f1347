"""JSON written elsewhere, read within bounds: its size and how deeply it nests.

``info.json``, ``metadata.json``, ``tokenizer.json``, fingerprint lists and truth files
may come from anyone who can put a file where quack reads. Python's decoder recurses once
per level of nesting, so a file nested a hundred thousand deep ends in a ``RecursionError``
(and a structure nested a few hundred deep in one later, wherever it is walked). Every
such file is read here: refused in one :class:`ValueError` when it is larger than its
bound, not UTF-8, nested deeper than :data:`MAX_DEPTH` or not JSON.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "MAX_BYTES", "loads_bounded", "read_json"]

#: Levels of nesting a document may have; quack's own files have fewer than ten.
MAX_DEPTH = 64
#: Bytes a JSON file may have unless its reader says otherwise (a tokenizer of a large
#: vocabulary is a few MB).
MAX_BYTES = 256 * 2**20

# A JSON string, escapes included; brackets inside one do not nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(_BRACKETS)))


def _depth(document: bytes) -> int:
    """How deeply the arrays and objects of a document nest, in time linear in its length."""
    if document.count(b"[") + document.count(b"{") <= MAX_DEPTH:
        return 0  # too few brackets to pass the bound, however they nest
    brackets = np.frombuffer(_STRING.sub(b"", document).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if not len(brackets):
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def loads_bounded(document: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of a document from outside, refused when it nests deeper than ``max_depth``.

    Parameters
    ----------
    document : str or bytes
        The JSON text (bytes are read as UTF-8).
    max_depth : int
        Levels of arrays and objects allowed.

    Returns
    -------
    object
        The parsed value.

    Raises
    ------
    ValueError
        A clause saying why (nested too deeply, not UTF-8, not JSON), to be put in a
        sentence naming the file.
    """
    raw = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else bytes(document)
    depth = _depth(raw)
    if depth > max_depth:
        raise ValueError(f"its JSON nests {depth:,} levels deep, more than the {max_depth} quack reads")
    try:
        return json.loads(raw.decode("utf-8") if isinstance(document, bytes) else document)
    except UnicodeDecodeError as error:
        raise ValueError(f"it is not UTF-8 text (byte {error.start})") from None
    except RecursionError:
        raise ValueError(f"its JSON nests more than the {max_depth} levels quack reads") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed contents of a JSON file from outside, within bounds of size and nesting.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_bytes : int
        The largest file read; a larger one is refused before it is read.
    max_depth : int
        Levels of arrays and objects allowed.

    Returns
    -------
    object

    Raises
    ------
    OSError
        When the file cannot be opened.
    ValueError
        A clause saying why the file is refused (as :func:`loads_bounded`, or too large).
    """
    with open(Path(path), "rb") as handle:
        document = handle.read(max_bytes + 1)
    if len(document) > max_bytes:
        raise ValueError(f"it is larger than the {max_bytes:,} bytes quack reads of such a file")
    return loads_bounded(document, max_depth)
