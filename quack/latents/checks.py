"""Latents checked once, with one clear sentence, before any method over them runs."""

from __future__ import annotations

import numpy as np

__all__ = ["latent_matrix"]


def latent_matrix(latents: np.ndarray, minimum_rows: int, what: str) -> np.ndarray:
    """Latents as a finite float32 matrix with enough rows, or a sentence saying what is wrong.

    Parameters
    ----------
    latents : numpy.ndarray
        (N, H) latent vectors.
    minimum_rows : int
        Fewest records the method can work with.
    what : str
        Name of the method, as the error message starts (``"PCA"``, ``"UMAP"``).

    Returns
    -------
    numpy.ndarray
        (N, H) float32 latents (the input itself when it already is one).

    Raises
    ------
    ValueError
        If the latents are not 2-D, have fewer than ``minimum_rows`` rows, or hold NaN
        or infinite values.
    """
    x = np.asarray(latents, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what} needs a 2-D array of latents (rows x features), got shape {x.shape}.")
    if x.shape[0] < minimum_rows:
        raise ValueError(f"{what} needs at least {minimum_rows} records, got {x.shape[0]}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} got latents with NaN or infinite values; re-encode the data set.")
    return x
