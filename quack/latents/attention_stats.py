"""Statistics of the decoder's attention, as the dashboard's Attention page shows them.

How much attention each input token of a record receives over the decoder's steps, and
what share of the record's attention falls on each of its fields.
"""

from __future__ import annotations

import numpy as np

__all__ = ["attention_received", "attention_by_field"]


def attention_received(attention: np.ndarray, n_decoded: int | None = None) -> np.ndarray:
    """How much attention each input token receives, averaged over decoder steps.

    Parameters
    ----------
    attention : numpy.ndarray
        (T_dec, T_enc) attention weights of one record (each row sums to 1).
    n_decoded : int or None, optional
        Number of real decoder steps; steps beyond (padding) are ignored.

    Returns
    -------
    numpy.ndarray
        (T_enc,) mean weight per input position; sums to 1 over the positions.
    """
    a = np.asarray(attention, dtype=np.float64)
    if n_decoded is not None:
        a = a[: max(1, n_decoded)]
    return a.mean(axis=0)


def attention_by_field(attention: np.ndarray, fields: list[str]) -> dict[str, float]:
    """Share of a record's attention that falls on each field.

    Parameters
    ----------
    attention : numpy.ndarray
        (T_dec, T_enc) attention weights of one record, or (T_enc,) weights already
        averaged over decoder steps.
    fields : list of str
        Field of each input position (``tokenizer.token_fields``), at least T_enc long
        or exactly the record's length; positions beyond it are ignored.

    Returns
    -------
    dict
        Field name -> share of the attention (shares sum to 1 over the fields).
    """
    a = np.asarray(attention, dtype=np.float64)
    received = a if a.ndim == 1 else a.mean(axis=0)
    n = min(len(fields), received.shape[0])
    totals: dict[str, float] = {}
    for field, weight in zip(fields[:n], received[:n]):
        totals[field] = totals.get(field, 0.0) + float(weight)
    whole = sum(totals.values())
    return {f: (w / whole if whole > 0 else 0.0) for f, w in totals.items()}
