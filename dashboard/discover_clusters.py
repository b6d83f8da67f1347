"""The Discover page's Clusters tab: groups of alike responses, and what one shares written down as a fingerprint.

A cluster's number means nothing once the smallest cluster size changes: HDBSCAN numbers
its clusters afresh. The chosen cluster is followed by one of its records instead (its
representative when it was chosen), so the tab shows the cluster that holds that record
now, or says that none does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, errors, jobs, loaders, proposals, responses, results, session, settings, tables
from dashboard.loaders import Session
from quack.discovery.clusters import cluster_summary
from quack.discovery.options import SCAN_SECONDS
from quack.discovery.proposals import MatchCounts, proposal_rows
from quack.roots import resolve_writable_name
from quack.schema import Label

#: The cluster choice's widget key.
CHOICE = "cluster_choice"
#: Session key of the record the chosen cluster is followed by: (data identity, record id).
FOLLOWED = "cluster_record"


def show_clusters(s: Session, labels: np.ndarray) -> None:
    """The Clusters tab: the clusters at a size, the chosen one's response and label mix, and proposals."""
    size = st.slider("Smallest cluster", 5, 200, 25, 5, key="cluster_size")
    clusters = results.clusters(s, size)
    summary = cluster_summary(clusters, labels, results.encoded(s).latents, responses.RowTexts(s.data_dir))
    if summary.empty:
        st.warning("HDBSCAN found no clusters at this size; lower the smallest cluster size.")
        return
    cards = st.columns(3)
    cards[0].metric("Clusters", len(summary))
    cards[1].metric("Records in no cluster", f"{int((clusters < 0).sum()):,}")
    cards[2].metric("Mostly undetermined clusters", int((summary["undetermined_share"] >= 0.5).sum()))
    shown = summary.assign(representative_text=[tables.snippet(t, 90) for t in summary["representative_text"]])
    st.dataframe(
        shown,
        hide_index=True,
        height=min(300, 38 + 35 * len(shown)),
        column_config={
            "undetermined_share": st.column_config.ProgressColumn("undetermined", min_value=0.0, max_value=1.0,
                                                                  format="percent"),
            "representative_text": st.column_config.TextColumn("representative response", width="large"),
        },
    )
    chosen = _chosen_cluster(s, clusters, summary)
    info = summary.set_index("cluster").loc[chosen]
    a, b = st.columns([2, 1])
    a.markdown(f"**Representative response** (record {int(info['representative'])})")
    a.code(info["representative_text"] or "(empty)", language=None, wrap_lines=True, height=180)
    mix = pd.Series({label.display: info[label.display] for label in Label})
    b.plotly_chart(charts.counts_bar(mix, "Label mix", labels=True), config=charts.PLOT_CONFIG, key="cluster_mix")
    _fingerprint(s, labels, chosen, np.flatnonzero(clusters == chosen))


def default_order(s: Session, summary: pd.DataFrame) -> list[int]:
    """The clusters, the one most worth a look first.

    First those with something to propose a fingerprint from: a representative (one of the
    records proposals are made from, :func:`quack.discovery.proposals.proposal_rows`) whose
    response has a body; then the most undetermined, then the largest.
    """
    bodies = responses.bodies(s.data_dir, summary["representative"].to_numpy())
    has_body = [bool(str(body or "").strip()) for body in bodies]
    ordered = summary.assign(has_body=has_body).sort_values(
        ["has_body", "undetermined_share", "size", "cluster"], ascending=[False, False, False, True])
    return [int(c) for c in ordered["cluster"]]


def _chosen_cluster(s: Session, clusters: np.ndarray, summary: pd.DataFrame) -> int:
    """The cluster the tab shows: the one holding the followed record, else the default, said so when it changed."""
    order = default_order(s, summary)
    followed = st.session_state.get(FOLLOWED)
    if followed is not None and followed[0] == s.identity:
        record = followed[1]
        holding = int(clusters[record]) if 0 <= record < len(clusters) else -1
        if holding in order:
            st.session_state[CHOICE] = holding
        else:
            del st.session_state[FOLLOWED]
            st.session_state[CHOICE] = order[0]
            st.info(f"The cluster you chose is gone at this size: its record {record} is in no cluster now. "
                    f"Showing cluster {order[0]}, the one most worth a look.")
    else:
        # Nothing followed yet in this data set: a choice left from another one means nothing here.
        st.session_state[CHOICE] = order[0]
    representatives = dict(zip(summary["cluster"].tolist(), summary["representative"].tolist()))
    sizes = dict(zip(summary["cluster"].tolist(), summary["size"].tolist()))

    def follow() -> None:
        st.session_state[FOLLOWED] = (s.identity, int(representatives[st.session_state[CHOICE]]))

    chosen = st.selectbox("Cluster", order, key=CHOICE, on_change=follow,
                          format_func=lambda c: f"cluster {c} — {sizes[c]} records")
    if FOLLOWED not in st.session_state or st.session_state[FOLLOWED][0] != s.identity:
        follow()
    return int(chosen)


def fingerprint_path(name: str) -> Path:
    """The user fingerprint file of a name typed on the page, always in the fingerprint folder.

    Raises
    ------
    ValueError
        When the name is not a plain file name.
    """
    return resolve_writable_name(settings.fingerprint_folder(), name.strip(), "the fingerprint file's name")


def _fingerprint(s: Session, labels: np.ndarray, chosen: int, members: np.ndarray) -> None:
    """Propose fingerprints for the cluster or the map selection, count a pattern of one's own, save and relabel."""
    st.subheader("Propose a fingerprint")
    selection = session.selection()
    selection = selection[(selection >= 0) & (selection < len(labels))]
    origin, group_name, group = "the cluster", f"cluster {chosen}", members
    if len(selection):
        picked = st.segmented_control(
            "Propose from", ["cluster", "selection"], default="cluster", key="proposal_origin",
            format_func={"cluster": f"Cluster {chosen}", "selection": f"Map selection ({len(selection):,})"}.get,
        )
        if picked == "selection":
            origin, group_name, group = "the map selection", "the map selection", selection
    share = st.slider("Share of the responses a pattern must occur in", 0.5, 1.0, 0.8, 0.05, key="pattern_share")
    source = proposal_rows(group, labels)
    whose = (f"the {len(source):,} undetermined records of {group_name}"
             if (labels[source] == Label.UNDETERMINED).all() else
             f"all {len(group):,} records of {group_name}, none of them undetermined")
    st.caption(
        f"The shortest texts (8 to 120 characters) that at least this share of the responses of {whose} hold and "
        "the fewest other responses do, ranked by precision; each is counted over the whole data set before "
        "you save it. Tick the ones to save."
    )
    ticked = _proposals(s, labels, group, group_name, share)
    name = st.text_input("Fingerprint name", f"e_unk_user_cluster_{chosen}", key=f"fp_name_{chosen}",
                         help="Several patterns saved together become name_1, name_2, …: variants of one page.")
    pattern = st.text_area("Pattern (Python regular expression), saved with the ticked proposals", "",
                           key=f"fp_pattern_{chosen}", height=80, placeholder="Optional: a pattern of your own")
    if pattern.strip():
        _pattern_counts(s, labels, pattern, group, origin)
    _save_and_relabel(s, labels, name, [*ticked, pattern])


def _proposals(s: Session, labels: np.ndarray, group: np.ndarray, group_name: str, share: float) -> list[str]:
    """The proposals for a group with their matches per label; the patterns ticked to save."""
    try:
        proposed = proposals.propose(s, labels, group, share)
    except ValueError as error:
        st.warning(charts.markdown_text(errors.public(error)))
        return []
    table = proposed.table.copy()
    table.insert(0, "save", False)
    edited = st.data_editor(
        table, hide_index=True, key=f"proposals_{jobs.digest(jobs.array_digest(group), share)}",
        disabled=[c for c in table.columns if c != "save"],
        column_config={
            "save": st.column_config.CheckboxColumn("save", width="small"),
            "pattern": st.column_config.TextColumn("pattern", width="medium"),
            "length": st.column_config.NumberColumn("length", width="small"),
            "group share": st.column_config.ProgressColumn(
                "in the group", min_value=0.0, max_value=1.0, format="percent", width="small",
                help=f"Share of the responses of {group_name} that hold the pattern."),
            "precision": st.column_config.NumberColumn(
                "precision", format="%.2f", width="small",
                help="Of the responses compared that hold it (the group's and a sample of the others), "
                     "the share that are the group's."),
            **{label.display: st.column_config.NumberColumn(
                label.display, format="%d", width="small",
                help=f"Records labelled {label.display} that the pattern matches, over the whole data set.")
               for label in Label},
        },
    )
    if proposed.scanned < proposed.total:
        st.caption(f"Matches counted over the first {proposed.scanned:,} of {proposed.total:,} records, "
                   f"all that {SCAN_SECONDS:g} s allowed.")
    else:
        st.caption(f"Matches counted over all {proposed.total:,} records, per label: a pattern worth "
                   "contributing matches undetermined records and no uncensored one.")
    return edited.loc[edited["save"], "pattern"].tolist()


def _matches(counts: MatchCounts, label: Label | None = None) -> int:
    names = [label.display] if label is not None else [one.display for one in Label]
    return int(counts.table.loc[0, names].sum())


def _pattern_counts(s: Session, labels: np.ndarray, pattern: str, group: np.ndarray, origin: str) -> None:
    """What a pattern typed on the page matches in the group (``origin`` names it) and over the data set."""
    try:
        among, everywhere = proposals.pattern_matches(s, labels, pattern, group)
    except ValueError as error:
        errors.show(error)
        return
    cards = st.columns(3)
    cards[0].metric(f"Matches in {origin}", f"{_matches(among):,} / {len(group):,}")
    cards[1].metric("Undetermined records it would mark censored", f"{_matches(everywhere, Label.UNDETERMINED):,}")
    cards[2].metric("Records labelled uncensored it matches", f"{_matches(everywhere, Label.UNCENSORED):,}")
    if not (among.complete and everywhere.complete):
        st.caption(f"Counted over the first {among.scanned:,} records of {origin} and {everywhere.scanned:,} of "
                   f"all {everywhere.total:,}, all that {SCAN_SECONDS:g} s allowed.")


#: The tick that lets a session save to or relabel with a fingerprint file it did not write.
SHARED_LABEL = "Use a shared fingerprint file"


def _whose(target: Path, shared: bool) -> str:
    """Which file a save or relabel uses, said in its message; another's file is used only when shared is ticked.

    Raises
    ------
    ValueError
        When the file exists, this session did not write it and sharing is not ticked.
    """
    if session.owns_fingerprint_file(target) or not target.exists():
        return f"your fingerprint file {target.name}"
    if not shared:
        raise ValueError(f"The fingerprint file {target.name!r} was not written in this session; tick "
                         f"'{SHARED_LABEL}' to use fingerprints others may have saved, or choose another name.")
    return f"the shared fingerprint file {target.name}"


def _save_and_relabel(s: Session, labels: np.ndarray, name: str, patterns: list[str]) -> None:
    file_name = st.text_input(
        "User fingerprint file", session.fingerprint_file().name, key="fp_file",
        help="A file name such as my-fingerprints.json; the name offered first is this session's own. "
             "Every user fingerprint file is kept in one folder.",
    )
    shared = st.checkbox(SHARED_LABEL, key="fp_shared",
                         help="Save to or relabel with a file this session did not write, such as a team's list.")
    save, relabel = st.columns(2)
    if save.button("Save fingerprint", type="primary", icon=":material/save:"):
        try:
            target = fingerprint_path(file_name)
            whose = _whose(target, shared)
            # Searched over the data set as the pattern box searches, so what the box refuses is not saved.
            proposals.check_on_data(s, labels, patterns)
            saved = proposals.save_fingerprints(target, name, patterns)
        except ValueError as error:
            errors.show(error)
        else:
            session.set_fingerprint_file(target)
            st.success(charts.markdown_text(f"Saved {', '.join(saved)} to {whose}."))
    if relabel.button("Relabel the data with my fingerprints", icon=":material/label:"):
        try:
            fingerprints = fingerprint_path(file_name)
            if not fingerprints.is_file():
                raise ValueError(
                    f"There is no fingerprint file named {file_name.strip()!r} yet; save a fingerprint to it first."
                )
            whose = _whose(fingerprints, shared)
            changed = loaders.relabel(s, fingerprints)
        except (ValueError, OSError) as error:
            errors.show(error)
        else:
            st.success(charts.markdown_text(
                f"Relabelled with {whose}: {changed:,} records changed label. Maps and the classifier now use "
                "the new labels."))
