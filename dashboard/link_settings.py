"""What a link may carry besides paths and records: each widget's value, and how it is read back.

Every reader takes the values a query string holds for one name and returns the value, or
raises ValueError with the end of a sentence ("is not ..."), which :mod:`dashboard.links`
shows. Plain Python: no Streamlit, so the bounds are testable alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from quack.discovery.changes import LEVELS
from quack.latents.neighbours import METRICS

#: The largest record id and the longest text a link may carry; anything larger is refused.
MAX_ID = 10**12
MAX_TEXT = 300
def read_text(values: list[str]) -> str:
    """One short text; the readers below build on it."""
    if len(values) != 1 or len(values[0]) > MAX_TEXT:
        raise ValueError("is not one short text")
    return values[0]


def one_of(*choices: str) -> Callable[[list[str]], str]:
    """A reader of one of ``choices``."""
    def read(values: list[str]) -> str:
        value = read_text(values)
        if value not in choices:
            raise ValueError("is not one of " + ", ".join(choices))
        return value
    return read


def whole(low: int, high: int) -> Callable[[list[str]], int]:
    """A reader of a whole number from ``low`` to ``high``."""
    def read(values: list[str]) -> int:
        value = read_text(values)
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"is not a whole number from {low:,} to {high:,}")
        return int(value)
    return read


def number(low: float, high: float) -> Callable[[list[str]], float]:
    """A reader of a finite number from ``low`` to ``high``."""
    def read(values: list[str]) -> float:
        try:
            value = float(read_text(values))
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"is not a number from {low} to {high}")
        return value
    return read


def flag(values: list[str]) -> bool:
    """``0`` or ``1``."""
    return one_of("0", "1")(values) == "1"


def texts(most: int) -> Callable[[list[str]], list[str]]:
    """A reader of at most ``most`` short texts."""
    def read(values: list[str]) -> list[str]:
        if len(values) > most or any(len(v) > MAX_TEXT for v in values):
            raise ValueError(f"is not a list of at most {most} short texts")
        return list(values)
    return read


def span(values: list[str]) -> tuple[str, str]:
    """Two scan names: the first and last of a period."""
    if len(values) != 2 or any(len(v) > MAX_TEXT for v in values):
        raise ValueError("is not two scan names")
    return values[0], values[1]


@dataclass(frozen=True)
class Setting:
    """One widget's value in a link: its name there, its session-state key, its page and how it is read."""

    name: str
    key: str | Callable[[Any], str]
    page: str
    read: Callable[[list[str]], Any]

    def key_in(self, state) -> str:
        """The widget's key (some depend on another widget's value)."""
        return self.key if isinstance(self.key, str) else self.key(state)


def groups_key(state) -> str:
    """The Changes page's groups widget, one per grouping."""
    return f"changes_groups_{state.get('changes_by', LEVELS[0])}"


MAP, CHANGES, DATA = "Latent map", "Changes", "Data"
SETTINGS = (
    Setting("projection", "map_method", MAP, one_of("UMAP", "PCA")),
    Setting("view", "map_dims", MAP, one_of("2D", "3D")),
    Setting("colour", "map_colour", MAP, read_text),
    Setting("neighbours", "umap_neighbors", MAP, whole(2, 100)),
    Setting("min_dist", "umap_min_dist", MAP, number(0.0, 1.0)),
    Setting("metric", "umap_metric", MAP, one_of(*METRICS)),
    Setting("fit_all", "umap_fit_all", MAP, flag),
    Setting("fit_rows", "umap_fit_rows", MAP, whole(100, 1_000_000)),
    Setting("by", "changes_by", CHANGES, one_of(*LEVELS)),
    Setting("groups", groups_key, CHANGES, texts(8)),
    Setting("before", "changes_before", CHANGES, span),
    Setting("after", "changes_after", CHANGES, span),
    Setting("threshold", "changes_threshold", CHANGES, number(0.0, 50.0)),
    Setting("templates", "changes_templates", CHANGES, flag),
    Setting("k", "changes_k", CHANGES, whole(2, 200)),
    Setting("country", "filter_country", DATA, texts(300)),
    Setting("service", "filter_service", DATA, texts(10)),
    Setting("label", "filter_label", DATA, texts(3)),
    Setting("domain_contains", "filter_domain", DATA, read_text),
)
