"""Discover: censorship the fingerprints missed, found in the latent space."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, errors, loaders, results, session, settings, tables
from quack.discover import cluster_summary, rank_candidates
from quack.labels import save_user_fingerprint
from quack.patterns import PatternError, compile_pattern
from quack.roots import resolve_writable_name
from quack.schema import Label

#: Seconds one pattern may search all the records for, whatever the engine; past it the
#: pattern is refused, so no pattern holds the server.
SCAN_SECONDS = 10


def pattern_hits(pattern: str, texts: pd.Series) -> np.ndarray:
    """Which texts the pattern occurs in, searched in bounded time.

    Raises
    ------
    quack.patterns.PatternError
        One sentence naming the pattern when it is invalid, refused as unsafe, or takes
        too long on one text or on all of them.
    """
    compiled = compile_pattern(pattern, "the Discover page's pattern box")
    deadline = time.monotonic() + SCAN_SECONDS
    return np.array([compiled.search(text, deadline=deadline) for text in texts], dtype=bool)


def fingerprint_path(name: str) -> Path:
    """The user fingerprint file of a name typed on the page, always in the fingerprint folder.

    Raises
    ------
    ValueError
        When the name is not a plain file name.
    """
    return resolve_writable_name(settings.fingerprint_folder(), name.strip(), "the fingerprint file's name")


st.title("Discover")
st.caption(
    "A classifier trained on the labelled latents scores the undetermined measurements; "
    "clusters of the latent space group responses that look alike. Both point at "
    "blockpages the fingerprints do not know yet."
)

s = loaders.current()
enc = results.encoded(s)
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
texts = loaders.texts(s.data_dir)
if session.relabelled() is not None:
    st.info("Labels include your own fingerprints (relabelled on this page).")

# Kept by key, so the chosen tab stays chosen when a first computation's progress bars
# are gone on the next run and the page's elements move up.
classify, cluster = st.tabs(["Latent classifier", "Clusters and fingerprints"], key="discover_tab", on_change="rerun")

with classify:
    report, probability = results.classifier(s)
    cards = st.columns(4)
    cards[0].metric("Held-out accuracy", f"{report.accuracy:.1%}")
    cards[1].metric("Held-out F1 (censored)", f"{report.f1:.3f}")
    cards[2].metric("Labelled records held out", f"{len(report.test_index):,}")
    cards[3].metric("Undetermined scoring ≥ 0.5", f"{int(((labels == Label.UNDETERMINED) & (probability >= 0.5)).sum()):,}")
    left, right = st.columns([1, 2])
    left.plotly_chart(charts.confusion_figure(report.confusion), config=charts.PLOT_CONFIG, key="confusion")
    with right:
        top = st.slider("Candidates to list", 10, 500, 50, 10, key="discover_top")
        ranked = rank_candidates(probability, labels, top=top)
        if not len(ranked):
            st.warning("There are no undetermined records to rank in this data set.")
        else:
            table = tables.record_table(frame, labels, texts, ranked)
            table.insert(1, "p_censored", np.round(probability[ranked], 3))
            truth = loaders.sample_truth(s.data_dir)
            if truth is not None:
                # The sample's generator knows which undetermined records are unknown
                # blockpages: a direct check of what the ranking finds.
                table.insert(2, "ground truth", truth[ranked])
                found = float(np.mean(truth[ranked[:50]] == "unknown_blockpage"))
                st.caption(f"Ground truth of the built-in sample: {found:.0%} of the top {min(50, len(ranked))} "
                           "candidates are blockpages the fingerprints do not know.")
            picked = st.dataframe(
                table, hide_index=True, height=300, on_select="rerun", selection_mode="single-row", key="candidates"
            )
            rows_picked = picked.selection.rows if picked is not None else []
            candidate = int(ranked[rows_picked[0]]) if rows_picked else int(ranked[0])
            st.caption(f"Raw response of record {candidate} (p = {probability[candidate]:.3f}):")
            st.code(texts.iloc[candidate] or "(empty)", language=None, wrap_lines=True, height=160)
            if st.button("Open this record on the Attention page", key="candidate_attention"):
                session.set_record(candidate)
                st.switch_page("app_pages/attention.py")
    if len(ranked):
        coords = results.best_map(s)
        where = np.full(len(frame), "other", dtype=object)
        where[labels == Label.CENSORED] = Label.CENSORED.display
        where[ranked] = "candidate"
        fig = charts.map_figure(
            coords,
            tables.hover_table(frame, loaders.snippets(s.data_dir), np.arange(len(frame))),
            where,
            "where the candidates fall",
            True,
            title="The candidates on the map (censored in red)",
        )
        fig.for_each_trace(
            lambda t: t.update(marker_color={"candidate": "#f4a261", Label.CENSORED.display: Label.CENSORED.colour}.get(
                t.name.split(" ")[0], charts.OTHER_COLOR))
        )
        st.plotly_chart(fig, config=charts.PLOT_CONFIG, key="candidate_map")

with cluster:
    size = st.slider("Smallest cluster", 5, 200, 25, 5, key="cluster_size")
    clusters = results.clusters(s, size)
    summary = cluster_summary(clusters, labels, enc.latents, texts.to_numpy())
    if summary.empty:
        st.warning("HDBSCAN found no clusters at this size; lower the smallest cluster size.")
        st.stop()
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
            "undetermined_share": st.column_config.ProgressColumn("undetermined", min_value=0.0, max_value=1.0, format="percent"),
            "representative_text": st.column_config.TextColumn("representative response", width="large"),
        },
    )
    # Start from the cluster most worth a look: the most undetermined.
    best = summary.sort_values(["undetermined_share", "size"], ascending=False)["cluster"].tolist()
    chosen = st.selectbox(
        "Cluster", best, key="cluster_choice",
        format_func=lambda c: f"cluster {c} — {int(summary.set_index('cluster').loc[c, 'size'])} records",
    )
    info = summary.set_index("cluster").loc[chosen]
    members = np.flatnonzero(clusters == chosen)
    a, b = st.columns([2, 1])
    a.markdown("**Representative response**")
    a.code(info["representative_text"] or "(empty)", language=None, wrap_lines=True, height=180)
    mix = pd.Series({label.display: info[label.display] for label in Label})
    b.plotly_chart(charts.counts_bar(mix, "Label mix", labels=True), config=charts.PLOT_CONFIG, key="cluster_mix")

    st.subheader("Propose a fingerprint")
    payload = loaders.bodies(s.data_dir)
    # Fingerprints match the payload, so only members that have one can suggest a pattern;
    # undetermined members are the ones a new fingerprint is for.
    with_text = members[payload.to_numpy()[members] != ""]
    undetermined = with_text[labels[with_text] == Label.UNDETERMINED]
    basis = undetermined if len(undetermined) else with_text
    share = st.slider("Share of the cluster's responses the pattern must match", 0.5, 1.0, 0.9, 0.05, key="pattern_share")
    proposal = ""
    if not len(basis):
        st.warning("No record of this cluster has a response to build a pattern from (timeouts and resets); "
                   "choose another cluster.")
    else:
        # The responses nearest the cluster's centre are the most typical ones.
        centre = enc.latents[basis].mean(axis=0)
        typical = basis[np.argsort(((enc.latents[basis] - centre) ** 2).sum(axis=1))[:20]]
        try:
            proposal = results.propose(tuple(payload.iloc[i] for i in typical), share)
        except ValueError as error:
            st.warning(charts.markdown_text(errors.public(error)))
    name = st.text_input("Fingerprint name", f"e_unk_user_cluster_{chosen}", key=f"fp_name_{chosen}")
    pattern = st.text_area("Pattern (Python regular expression)", proposal, key=f"fp_pattern_{chosen}_{share}", height=90)
    if pattern.strip():
        try:
            hits = pattern_hits(pattern, payload)
        except PatternError as error:
            errors.show(error)
        else:
            cards = st.columns(3)
            cards[0].metric("Matches in the cluster", f"{int(hits[members].sum()):,} / {len(members):,}")
            cards[1].metric("Undetermined records it would mark censored", f"{int((hits & (labels == Label.UNDETERMINED)).sum()):,}")
            cards[2].metric("Records labelled uncensored it matches", f"{int((hits & (labels == Label.UNCENSORED)).sum()):,}")
    file_name = st.text_input(
        "User fingerprint file", session.fingerprint_file().name, key="fp_file",
        help="A file name such as my-fingerprints.json; the dashboard keeps every user fingerprint file in one folder.",
    )
    save, relabel = st.columns(2)
    if save.button("Save fingerprint", type="primary", icon=":material/save:"):
        try:
            written = save_user_fingerprint(fingerprint_path(file_name), name, pattern)
        except ValueError as error:
            errors.show(error)
        else:
            session.set_fingerprint_file(written)
            st.success(charts.markdown_text(f"Saved {name} to the fingerprint file {written.name}."))
    if relabel.button("Relabel the data with my fingerprints", icon=":material/label:"):
        try:
            fingerprints = fingerprint_path(file_name)
            if not fingerprints.is_file():
                raise ValueError(
                    f"There is no fingerprint file named {file_name.strip()!r} yet; save a fingerprint to it first."
                )
            changed = loaders.relabel(s, fingerprints)
        except (ValueError, OSError) as error:
            errors.show(error)
        else:
            st.success(f"Relabelled: {changed:,} records changed label. Maps and the classifier now use the new labels.")
