"""Turn what a person selects on a chart into record ids.

Plotly reports a selection as the drawn points it covers, each carrying its record id
as its ``customdata`` (or the first entry of it). A map draws only some of its points,
so a box or lasso is also read as a region (:func:`selected_region`), which
:func:`quack.latents.regions.select_region` resolves against every point.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from quack.schema import Label


def _selection(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not event:
        return {}
    selection = event.get("selection") if hasattr(event, "get") else None
    return selection or {}


def selected_ids(event: Mapping[str, Any] | None) -> list[int]:
    """Record ids of the points in a ``st.plotly_chart`` selection event, in first-seen order.

    Parameters
    ----------
    event : mapping or None
        What ``st.plotly_chart(..., on_select="rerun")`` returns (or its session state
        value); None or an empty selection gives no ids.

    Returns
    -------
    list of int
        Unique record ids.
    """
    points = _selection(event).get("points") or []
    ids: list[int] = []
    seen: set[int] = set()
    for point in points:
        custom = point.get("customdata")
        if custom is None:
            continue
        first = custom[0] if isinstance(custom, (list, tuple)) else custom
        try:
            record = int(first)
        except (TypeError, ValueError):
            continue
        if record not in seen:
            seen.add(record)
            ids.append(record)
    return ids


def selected_region(event: Mapping[str, Any] | None) -> tuple[list[tuple], list[tuple]]:
    """The boxes and lasso polygons of a selection event, in the map's coordinates.

    Parameters
    ----------
    event : mapping or None
        As for :func:`selected_ids`; Streamlit reports each box as ``{"x": [x0, x1],
        "y": [y0, y1]}`` and each lasso as ``{"x": [...], "y": [...]}`` (its vertices).

    Returns
    -------
    tuple of list
        ``(boxes, lassos)``: boxes as ``(x0, x1, y0, y1)``, lassos as ``(xs, ys)``, as
        :func:`quack.latents.regions.select_region` takes them; malformed entries are left out.
    """
    selection = _selection(event)
    boxes, lassos = [], []
    for box in selection.get("box") or []:
        xs, ys = _numbers(box.get("x")), _numbers(box.get("y"))
        if len(xs) == 2 and len(ys) == 2:
            boxes.append((xs[0], xs[1], ys[0], ys[1]))
    for lasso in selection.get("lasso") or []:
        xs, ys = _numbers(lasso.get("x")), _numbers(lasso.get("y"))
        if len(xs) == len(ys) >= 3:
            lassos.append((xs, ys))
    return boxes, lassos


def region_ids(event: Mapping[str, Any] | None, coords: np.ndarray) -> np.ndarray | None:
    """Ids of every record inside the event's boxes and lassos, drawn or not; None when it has neither.

    Record ids are the rows of ``coords``, the (N, 2) map of all records.
    """
    from quack.latents.regions import select_region

    boxes, lassos = selected_region(event)
    if not boxes and not lassos:
        return None
    return select_region(coords, boxes, lassos)


def selection_key(event: Mapping[str, Any] | None) -> list:
    """What identifies a selection event: its regions' coordinates, else its points' ids; empty when nothing is selected.

    A chart reports its selection again on every rerun; comparing keys tells a new one.
    """
    boxes, lassos = selected_region(event)
    if boxes or lassos:
        return [value for box in boxes for value in box] + [v for xs, ys in lassos for v in (*xs, *ys)]
    return selected_ids(event)


def selection_counts(ids: Sequence[int] | np.ndarray, labels: np.ndarray, drawn: np.ndarray) -> dict[str, int]:
    """How many records a selection holds, how many of each label, and how many the map does not draw.

    Parameters
    ----------
    ids : sequence of int
        Selected record ids (rows of ``labels``).
    labels : numpy.ndarray
        (N,) label of every record.
    drawn : numpy.ndarray
        Ids of the records the map draws.

    Returns
    -------
    dict
        ``selected``, one entry per label display name, and ``not drawn``.
    """
    rows = np.asarray(ids, dtype=np.int64)
    chosen = np.asarray(labels)[rows]
    counts = {"selected": len(rows)}
    counts.update({label.display: int((chosen == label).sum()) for label in Label.labelled()})
    # As everywhere, a code that is no label reads as undetermined.
    counts[Label.UNDETERMINED.display] = len(rows) - sum(counts[label.display] for label in Label.labelled())
    is_drawn = np.zeros(len(labels), dtype=bool)
    is_drawn[np.asarray(drawn, dtype=np.int64)] = True
    counts["not drawn"] = int((~is_drawn[rows]).sum())
    return counts


def _numbers(values: Any) -> list[float]:
    try:
        return [float(v) for v in values or []]
    except (TypeError, ValueError):
        return []
