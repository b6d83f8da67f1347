"""A sample of daily scans in which censorship changes in known ways, and the truth of each change.

:func:`write_days` writes one Hyperquack v2 file a day, named as Censored Planet names its
scans (``CP_Quack-sample-2021-09-15-05-00-00.json``), each day drawn as the default sample
draws it, plus the records of the changes below. Beside them ``events.truth.json`` names
each change (what, where, from which day and scan) and the days on which nothing changed,
so a change view can be scored on finding the first and staying quiet on the second.

The changes, placed by :func:`schedule`:

* ``new_blockpage``: a blockpage no fingerprint knows starts in one country;
* ``isp_filter``: an ISP's filter page starts at one vantage point of a country, then
  spreads to more of that country's vantage points, each step a change of its own;
* ``lifted_block``: a known blockpage met in one country from the first day stops.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Callable

from quack.sample.blockpages import known_page
from quack.sample.generator import START, draw_record, event_sampler, record_line, vantage_points
from quack.sample.world import Clock, Where

__all__ = ["EVENTS_FILE", "MIN_DAYS", "Event", "schedule", "write_days", "scan_of_day"]

#: The ground truth of a sample of days, beside its scans.
EVENTS_FILE = "events.truth.json"
#: Fewest days that hold every change with a quiet day between them.
MIN_DAYS = 8

# Where each change happens: countries with no blockpage family of their own in the sample.
_NEW_COUNTRY, _ISP_COUNTRY, _LIFTED_COUNTRY = "NG", "BR", "EG"
_NEW_PAGE, _ISP_PAGE, _LIFTED_PAGE = "u_event_notice", "u_event_isp_filter", "fortiguard"


@dataclass(frozen=True)
class Event:
    """One change in censorship in a sample of days.

    Attributes
    ----------
    kind : str
        ``new_blockpage``, ``isp_filter`` (its start and each spread) or ``lifted_block``.
    what : str
        The change in words.
    country : str
        Where it happens.
    vps : tuple of str
        The vantage points that see the blockpage from ``day`` on (before it, for a lifted block).
    page : str
        The blockpage's family, as the per-probe truth files name it.
    label : str
        What the shipped fingerprints call the page: ``undetermined`` or ``censored``.
    day : int
        The first day (from 0) that shows the change.
    scan : str
        The scan of that day.
    time : str
        When that scan starts (ISO 8601, UTC).
    direction : str
        ``up`` when the page's records rise from ``day``, ``down`` when they stop.
    """

    kind: str
    what: str
    country: str
    vps: tuple[str, ...]
    page: str
    label: str
    day: int
    scan: str
    time: str
    direction: str


def _day_start(day: int):
    return (START + timedelta(days=day)).astimezone(timezone.utc)


def scan_of_day(day: int) -> str:
    """The scan name of day ``day`` (from 0), as Censored Planet names a scan by its start in UTC."""
    return _day_start(day).strftime("CP_Quack-sample-%Y-%m-%d-%H-%M-%S")


def schedule(days: int) -> dict[str, int]:
    """The day each change starts: spread over the days with quiet days between them.

    Parameters
    ----------
    days : int
        At least :data:`MIN_DAYS`.

    Returns
    -------
    dict
        ``new_blockpage``, ``isp_filter``, ``isp_spread_1``, ``isp_spread_2``, ``lifted_block``: a day each.
    """
    if not isinstance(days, int) or days < MIN_DAYS:
        raise ValueError(f"--days must be at least {MIN_DAYS} so that every change fits with quiet days between, "
                         f"got {days!r}.")
    gap = max(1, days // 7)
    new = 1 + gap
    isp = new + 2 * gap
    return {"new_blockpage": new, "isp_filter": isp, "isp_spread_1": isp + gap, "isp_spread_2": isp + 2 * gap,
            "lifted_block": isp + 3 * gap}


def _notice(where: Where, rnd: random.Random) -> str:
    return ("<html><head><title>Notice of restriction</title></head><body><h2>This address has been restricted</h2>"
            f"<p>Access to {where.domain} is restricted under directive NCC/{rnd.randint(100, 999)}/2021 of the "
            "national communications commission.</p></body></html>")


def _isp_filter(where: Where, rnd: random.Random) -> str:
    return ("<html><head><title>NetShield</title></head><body><div id=\"ns-block\">NetShield: the requested site "
            f"{where.domain} is unavailable on this connection. Ref {rnd.getrandbits(32):08x}</div></body></html>")


def _fortiguard(where: Where, rnd: random.Random) -> str:
    return known_page(_LIFTED_PAGE, where.domain, rnd)


def _events(days: int, vps: dict[str, list[str]]) -> list[Event]:
    at = schedule(days)
    isp_vps = vps[_ISP_COUNTRY]
    steps = (("isp_filter", 1), ("isp_spread_1", max(2, len(isp_vps) // 2)), ("isp_spread_2", len(isp_vps)))

    def event(kind: str, what: str, country: str, points, page: str, label: str, day: int, direction: str) -> Event:
        return Event(kind, what, country, tuple(points), page, label, day, scan_of_day(day),
                     _day_start(day).isoformat(), direction)

    found = [event("new_blockpage", "a blockpage no fingerprint knows starts", _NEW_COUNTRY, vps[_NEW_COUNTRY],
                   _NEW_PAGE, "undetermined", at["new_blockpage"], "up")]
    for step, (name, count) in enumerate(steps):
        what = "an ISP filter starts at one vantage point" if step == 0 else f"the ISP filter spreads to {count} vantage points"
        found.append(event("isp_filter", what, _ISP_COUNTRY, isp_vps[:count], _ISP_PAGE, "undetermined", at[name], "up"))
    found.append(event("lifted_block", "a known blockpage stops", _LIFTED_COUNTRY, vps[_LIFTED_COUNTRY], _LIFTED_PAGE,
                       "censored", at["lifted_block"], "down"))
    return found


def _active(events: list[Event], day: int) -> list[tuple[Event, int]]:
    """The blockpages shown on ``day`` and their records: per vantage point for the ISP filter."""
    shown = []
    new, *isp, lifted = events
    if day >= new.day:
        shown.append((new, 0))
    started = [step for step in isp if day >= step.day]
    if started:
        shown.append((started[-1], len(started[-1].vps)))
    if day < lifted.day:
        shown.append((lifted, 0))
    return shown


def write_days(
    out_dir: str | Path,
    days: int,
    n: int = 2000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Path], Path]:
    """Write ``days`` daily scans with known changes in censorship, and their truth.

    Parameters
    ----------
    out_dir : path
        The folder of the scans (created); a scan is ``<scan name>.json`` with its per-probe
        truth beside it as ``<scan name>.truth.jsonl`` (the default sample's truth format).
    days : int
        Scans to write, one a day; at least :data:`MIN_DAYS`.
    n : int
        Ordinary measurements a day, drawn as the default sample draws them; each change
        adds its own records on top.
    seed : int
        The same seed gives byte-identical files.
    progress : callable, optional
        Called with the number of days written after each.

    Returns
    -------
    (list of Path, Path)
        The scan files in day order and ``events.truth.json``: ``{"days", "scans",
        "events", "quiet_days"}``, each event as :class:`Event` (a dict), ``quiet_days``
        the days after the first on which nothing changed.

    Raises
    ------
    ValueError
        For too few days or a bad ``n``.
    """
    at = schedule(days)
    if not isinstance(n, int) or n < 100:
        raise ValueError(f"--n must be at least 100 measurements a day for a sample of days, got {n!r}.")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    vps = vantage_points(random.Random(seed))
    events = _events(days, vps)
    bodies = {_NEW_PAGE: ("unknown", _notice), _ISP_PAGE: ("unknown", _isp_filter), _LIFTED_PAGE: ("known", _fortiguard)}
    # Enough records that a change stands out of a day's noise, as a real block of a country does.
    per_day = {_NEW_PAGE: max(10, n // 60), _LIFTED_PAGE: max(10, n // 60)}
    per_vp = max(8, n // 100)
    files = []
    for day in range(days):
        rnd = random.Random(f"{seed}-day-{day}")
        clock = Clock(START + timedelta(days=day), rnd)
        drawn = [draw_record(rnd, clock, vps) for _ in range(n)]
        for event, points in _active(events, day):
            scenario, body = bodies[event.page]
            sampler = event_sampler(scenario, event.country, event.page, body)
            where = {event.country: list(event.vps)}
            count = per_vp * points if points else per_day[event.page]
            drawn += [draw_record(rnd, clock, where, sampler) for _ in range(count)]
        files.append(_write_day(out / f"{scan_of_day(day)}.json", drawn, _day_start(day)))
        if progress is not None:
            progress(day + 1)
    truth = out / EVENTS_FILE
    changed = set(at.values())
    document = {"days": days, "scans": [scan_of_day(day) for day in range(days)],
                "events": [asdict(event) for event in events],
                "quiet_days": [day for day in range(1, days) if day not in changed]}
    truth.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return files, truth


def _write_day(path: Path, drawn: list, start) -> Path:
    truth_path = path.with_suffix(".truth.jsonl")
    tag = start.strftime("%Y-%m-%dT%H:%M:%S")
    with open(path, "w", encoding="utf-8", newline="\n") as records, \
            open(truth_path, "w", encoding="utf-8", newline="\n") as truth:
        for line, (record, truths) in enumerate(drawn, start=1):
            record["tag"] = tag
            records.write(record_line(record) + "\n")
            for probe, kind, page in truths:
                truth.write(json.dumps({"source": path.name, "line": line, "probe": probe, "truth": kind,
                                        "page": page}) + "\n")
    return path
