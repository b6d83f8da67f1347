"""Turn what a person selects on a chart into record ids.

Plotly reports a selection as point indices per trace; every map trace carries the
record id as the first entry of its ``customdata``, so the ids come from there.
"""

from __future__ import annotations

from typing import Any, Mapping


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
    if not event:
        return []
    selection = event.get("selection") if hasattr(event, "get") else None
    points = (selection or {}).get("points") or []
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

