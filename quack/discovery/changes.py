"""What changed between scans: shares of censored and undetermined records over time and between two periods.

A data set's records carry the scan they came from and the time they were measured
(``scan`` and ``time``, :data:`quack.schema.ROW_SCHEMA`). :func:`shares_over_time` counts,
per scan, the censored and undetermined records of each country (or domain, vantage point,
fingerprint); :func:`compare_periods` sets two periods side by side per country, domain,
vantage point and fingerprint family, with the counts and shares in each and their
difference, sorted by how much changed; :func:`families_appeared` lists the fingerprint
families met in only one of them. The new templates, from the latents, are
:mod:`quack.discovery.new_templates`.

Counts are of measurements, not probes: the probes of one Quack trial (its retries) are
one measurement, censored when any probe is, else undetermined when any is
(:func:`measurements`); counting the four retries of a blocked trial four times would
make every change look surer than it is. How much a share changed is scored as a
two-proportion z statistic, so a large change in a small group and a small change in a
large one compare fairly, and a quiet day's noise stays below a threshold whatever the
group's size. The more shares a comparison scores, the higher the largest of them
reaches by chance alone (about 3.7 among 500 shares of two quiet days);
:func:`chance_threshold` is the score to show changes from, for a table of that many rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

import numpy as np
import pandas as pd

from quack.schema import Label

__all__ = ["LEVELS", "SHARES", "TIME_UNKNOWN", "Period", "parse_period", "scan_times", "shares_over_time",
           "compare_periods", "chance_threshold", "families_appeared", "time_known", "measurements"]

#: What a comparison groups records by: the columns of the records frame.
LEVELS = ("country", "domain", "vp", "fingerprint")
#: The shares counted per group: censored and undetermined, by their display names.
SHARES = (Label.CENSORED.display, Label.UNDETERMINED.display)
#: Said once where a data set was built before times and scans were recorded.
TIME_UNKNOWN = ("This data set was built before quack recorded each measurement's time and scan, so its time is "
                "unknown; build it again with `quack ingest` to compare scans.")

_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?"
_RANGE = re.compile(rf"^({_DATE})?\.\.({_DATE})?$")


def time_known(frame: pd.DataFrame) -> bool:
    """Whether the records carry the scan they came from (data sets built before it do not)."""
    return "scan" in frame.columns and bool(frame["scan"].notna().any()) and bool((frame["scan"].astype(str) != "").any())


@dataclass(frozen=True)
class Period:
    """A period of a data set: some scans, or the records measured in a time range.

    Attributes
    ----------
    name : str
        As a person wrote it; shown in tables.
    scans : tuple of str, optional
        The scans it holds, when it is given by scan names.
    start, end : datetime, optional
        The records measured from ``start`` (included) to ``end`` (excluded), UTC; either
        may be open.
    """

    name: str
    scans: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which records of ``frame`` (columns ``scan`` and ``time``) fall in the period."""
        if self.scans is not None:
            return frame["scan"].isin(self.scans).to_numpy()
        times = pd.to_datetime(frame["time"], utc=True)
        keep = times.notna().to_numpy()
        if self.start is not None:
            keep = keep & (times >= pd.Timestamp(self.start)).to_numpy()
        if self.end is not None:
            keep = keep & (times < pd.Timestamp(self.end)).to_numpy()
        return keep


def _moment(text: str, end: bool) -> datetime:
    moment = datetime.fromisoformat(text.replace(" ", "T"))
    if end and len(text) == 10:
        # A day as the end of a range includes the whole day.
        moment += timedelta(days=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_period(text: str, scans: Sequence[str] = ()) -> Period:
    """A period from how a person writes it.

    Parameters
    ----------
    text : str
        A scan name, several joined by commas, or a date range ``FROM..TO`` of ISO dates
        or times (UTC unless an offset is given; a date as ``TO`` includes that day;
        either side may be left open: ``..2021-09-18`` is before that day ends,
        ``2021-09-18..`` from it on).
    scans : sequence of str, optional
        The data set's scans, to check scan names against.

    Returns
    -------
    Period

    Raises
    ------
    ValueError
        For a name that is no scan of the data set or a range that cannot be read.
    """
    text = text.strip()
    ranged = _RANGE.match(text)
    if ranged:
        start, end = ranged.groups()
        try:
            return Period(text, start=_moment(start, False) if start else None, end=_moment(end, True) if end else None)
        except ValueError:
            raise ValueError(f"The period {text!r} is not a range of dates; write it as 2021-09-15..2021-09-18.") from None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    known = set(scans)
    missing = [name for name in names if known and name not in known]
    if not names or missing:
        listed = ", ".join(sorted(known)[:3]) + (" ..." if len(known) > 3 else "")
        raise ValueError(f"The period {text!r} names no scan of this data set ({listed}); give scan names or a range "
                         "of dates such as 2021-09-15..2021-09-18.")
    return Period(text, scans=names)


def scan_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Each scan with its first and last measurement time and its records, in time order.

    Returns
    -------
    pandas.DataFrame
        Columns ``scan``, ``start``, ``end``, ``rows``.
    """
    grouped = frame.groupby("scan", observed=True, sort=False)
    table = pd.DataFrame({"start": grouped["time"].min(), "end": grouped["time"].max(), "rows": grouped.size()})
    return table.reset_index().sort_values(["start", "scan"], kind="stable", ignore_index=True)


def measurements(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement (the probes of one trial: ``source`` and ``line``), its most telling probe's.

    A measurement is censored when any of its probes is, else undetermined when any is,
    else uncensored; the row kept is that probe's (its fingerprint, its time).
    """
    return frame.iloc[_measurement_rows(frame)]


def _measurement_rows(frame: pd.DataFrame) -> np.ndarray:
    """The position of each measurement's most telling probe in ``frame``, in ``frame``'s order.

    Without ``source`` and ``line`` every row is a measurement of its own.
    """
    if not {"source", "line"} <= set(frame.columns):
        return np.arange(len(frame))
    labels = frame["label"].to_numpy()
    rank = np.where(labels == Label.CENSORED, 0, np.where(labels == Label.UNDETERMINED, 1, 2))
    source = pd.factorize(frame["source"])[0]
    order = np.lexsort((rank, frame["line"].to_numpy(), source))
    line, source = frame["line"].to_numpy()[order], source[order]
    first = np.ones(len(order), bool)
    first[1:] = (line[1:] != line[:-1]) | (source[1:] != source[:-1])
    return np.sort(order[first])


def _label_counts(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Records, censored and undetermined records per group of ``keys``."""
    labels = frame["label"].to_numpy()
    counted = frame[keys].copy()
    counted["rows"] = 1
    counted[SHARES[0]] = (labels == Label.CENSORED).astype(np.int64)
    counted[SHARES[1]] = (labels == Label.UNDETERMINED).astype(np.int64)
    return counted.groupby(keys, observed=True, sort=False).sum()


def shares_over_time(frame: pd.DataFrame, by: str = "country", top: int | None = 12) -> pd.DataFrame:
    """Per scan and group, the records and the shares of them censored and undetermined.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records with ``label``, ``scan``, ``time`` and the ``by`` column.
    by : str
        One of :data:`LEVELS`.
    top : int, optional
        Keep the groups with the most censored and undetermined records over all scans;
        None keeps every group.

    Returns
    -------
    pandas.DataFrame
        Columns ``scan``, ``start`` (the scan's first measurement), ``by``'s column,
        ``rows``, ``censored``, ``undetermined``, ``censored_share``,
        ``undetermined_share``; in time order.
    """
    _check_level(by)
    counts = _label_counts(measurements(frame), ["scan", by]).reset_index()
    if top is not None:
        weight = counts.groupby(by, observed=True)[list(SHARES)].sum().sum(axis=1)
        counts = counts[counts[by].isin(weight.nlargest(top).index)]
    for name in SHARES:
        counts[f"{name}_share"] = counts[name] / counts["rows"]
    starts = scan_times(frame).set_index("scan")["start"]
    counts.insert(1, "start", counts["scan"].map(starts).to_numpy())
    counts[by] = counts[by].astype(str)
    counts["scan"] = counts["scan"].astype(str)
    return counts.sort_values(["start", "scan", by], kind="stable", ignore_index=True)


def _z(before: np.ndarray, n_before: np.ndarray, after: np.ndarray, n_after: np.ndarray) -> np.ndarray:
    """Two-proportion z statistics of ``after / n_after`` against ``before / n_before``; 0 where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (before + after) / (n_before + n_after)
        spread = np.sqrt(pooled * (1 - pooled) * (1 / n_before + 1 / n_after))
        z = (after / n_after - before / n_before) / spread
    return np.where(np.isfinite(z), z, 0.0)


def chance_threshold(shares: int, alpha: float = 0.05, step: float = 0.5) -> float:
    """The |score| that chance alone passes in at most ``alpha`` of comparisons scoring ``shares`` shares.

    Each share's score is a z statistic. With nothing changed, the chance that any of
    ``shares`` of them lies beyond ``t`` is at most ``shares`` times the chance for one
    (Bonferroni), so ``t`` is the normal quantile of ``1 - alpha / (2 shares)``, rounded up
    to ``step``: 3.5 for 60 shares, 4.0 for 500, 4.5 for 3,000.

    Parameters
    ----------
    shares : int
        Rows of the between-periods table (:func:`compare_periods`).
    alpha : float
        The chance of one or more false alarms that is accepted, per comparison.
    step : float
        The threshold is rounded up to a multiple of this, so that it stays put while the
        number of shares moves a little.
    """
    from scipy.special import ndtri

    if not 0 < alpha < 1 or step <= 0:
        raise ValueError("alpha must lie between 0 and 1 and step be positive.")
    exact = float(ndtri(1 - alpha / (2 * max(int(shares), 1))))
    return float(np.ceil(exact / step) * step)


def compare_periods(
    frame: pd.DataFrame, before: np.ndarray, after: np.ndarray, levels: Sequence[str] = LEVELS, min_rows: int = 1
) -> pd.DataFrame:
    """Counts and shares of each group in two periods and their difference, the largest change first.

    Parameters
    ----------
    frame : pandas.DataFrame
        Records with ``label`` and the columns of ``levels``.
    before, after : numpy.ndarray
        Boolean masks of the two periods' records.
    levels : sequence of str
        Which groupings to compare, from :data:`LEVELS`. For ``fingerprint`` the group is
        the measurements a fingerprint family labelled, its share the part of all the period's
        measurements; for the others, a country's (domain's, vantage point's) measurements and the
        shares of them censored and undetermined.
    min_rows : int
        Leave out groups with fewer measurements than this in both periods together.

    Returns
    -------
    pandas.DataFrame
        One row per group and share: ``level``, ``group``, ``share`` (``censored`` or
        ``undetermined``), ``total_before`` (the group's measurements), ``count_before``
        (those censored, or undetermined), ``share_before``, the same
        ``_after``, ``difference`` (share after minus before) and ``score`` (the two-
        proportion z statistic of the difference), sorted by ``|score|``, largest first.
    """
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    if not before.any() or not after.any():
        raise ValueError("One of the two periods holds no records; choose periods that each hold some scans.")
    for level in levels:
        _check_level(level)
    # A measurement's probes are of one scan: it is in a period when its most telling probe is.
    kept = np.flatnonzero(before | after)
    kept = kept[_measurement_rows(frame.iloc[kept])]
    frame, before, after = frame.iloc[kept], before[kept], after[kept]
    pieces = [_fingerprints(frame, before, after) if level == "fingerprint" else _groups(frame, level, before, after)
              for level in levels]
    table = pd.concat(pieces, ignore_index=True)
    table = table[table["total_before"] + table["total_after"] >= min_rows]
    table["difference"] = table["share_after"] - table["share_before"]
    table["score"] = _z(table["count_before"].to_numpy(float), table["total_before"].to_numpy(float),
                        table["count_after"].to_numpy(float), table["total_after"].to_numpy(float))
    order = np.argsort(-np.abs(table["score"].to_numpy()), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def _groups(frame: pd.DataFrame, level: str, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    sides = [_label_counts(frame[mask], [level]) for mask in (before, after)]
    joined = sides[0].add_suffix("_before").join(sides[1].add_suffix("_after"), how="outer").fillna(0)
    rows = []
    for share in SHARES:
        part = pd.DataFrame({
            "level": level, "group": joined.index.astype(str), "share": share,
            "total_before": joined["rows_before"].to_numpy(np.int64),
            "count_before": joined[f"{share}_before"].to_numpy(np.int64),
            "total_after": joined["rows_after"].to_numpy(np.int64),
            "count_after": joined[f"{share}_after"].to_numpy(np.int64),
        })
        rows.append(part)
    table = pd.concat(rows, ignore_index=True)
    return _with_shares(table)


def _fingerprints(frame: pd.DataFrame, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    counts, totals = [], []
    for mask in (before, after):
        side = frame[mask]
        counts.append(side["fingerprint"].astype(object)[side["label"].to_numpy() == Label.CENSORED].value_counts())
        totals.append(len(side))
    joined = pd.concat(counts, axis=1, keys=["before", "after"]).fillna(0)
    joined = joined[joined.index.astype(str) != ""]
    table = pd.DataFrame({
        "level": "fingerprint", "group": joined.index.astype(str), "share": SHARES[0],
        "total_before": totals[0], "count_before": joined["before"].to_numpy(np.int64),
        "total_after": totals[1], "count_after": joined["after"].to_numpy(np.int64),
    })
    return _with_shares(table)


def _with_shares(table: pd.DataFrame) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        for side in ("before", "after"):
            table[f"share_{side}"] = np.where(table[f"total_{side}"] > 0,
                                              table[f"count_{side}"] / table[f"total_{side}"].clip(lower=1), 0.0)
    columns = ["level", "group", "share", "total_before", "count_before", "share_before", "total_after", "count_after",
               "share_after"]
    return table[columns]


def families_appeared(frame: pd.DataFrame, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    """Fingerprint families that label records in only one of the two periods.

    Returns
    -------
    pandas.DataFrame
        Columns ``fingerprint``, ``change`` (``appeared`` or ``vanished``), ``records`` (in
        the period that has them), ``countries`` (theirs, most first); appeared first.
    """
    censored = frame["label"].to_numpy() == Label.CENSORED
    found = []
    for mask, other, change in ((after, before, "appeared"), (before, after, "vanished")):
        mine = frame.loc[np.asarray(mask, bool) & censored, ["fingerprint", "country"]].astype(str)
        theirs = set(frame.loc[np.asarray(other, bool) & censored, "fingerprint"].astype(str))
        for name, group in mine.groupby("fingerprint", sort=True):
            if name and name not in theirs:
                countries = group["country"].value_counts()
                found.append({"fingerprint": name, "change": change, "records": len(group),
                              "countries": ", ".join(f"{c or '?'} {n}" for c, n in countries.head(5).items())})
    return pd.DataFrame(found, columns=["fingerprint", "change", "records", "countries"])


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"Cannot group records by {level!r}; choose one of {', '.join(LEVELS)}.")
