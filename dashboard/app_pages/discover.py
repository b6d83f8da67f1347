"""Discover: censorship the fingerprints missed, ranked, clustered, evaluated and written down as fingerprints."""

import time
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import (charts, discovery, errors, jobs, loaders, map_charts, proposals, responses, results, session,
                       settings, tables)
from quack.discovery.clusters import cluster_summary, rank_candidates
from quack.fingerprints.patterns import PatternError, compile_pattern
from quack.roots import resolve_writable_name
from quack.schema import Label

#: Seconds one pattern may search all the records for, whatever the engine; past it the
#: pattern is refused, so no pattern holds the server.
SCAN_SECONDS = 10


def pattern_hits(pattern: str, texts: Iterable[str]) -> np.ndarray:
    """Which texts the pattern occurs in, searched in bounded time (the texts streamed).

    Raises
    ------
    quack.fingerprints.patterns.PatternError
        One sentence naming the pattern when it is invalid, refused as unsafe, or takes
        too long on one text or on all of them.
    """
    compiled = compile_pattern(pattern, "the Discover page's pattern box")
    deadline = time.monotonic() + SCAN_SECONDS
    return np.fromiter((compiled.search(text, deadline=deadline) for text in texts), dtype=bool)


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
    "Rank the undetermined measurements by how likely they are censored, group the responses that look "
    "alike, and write what a group shares down as a fingerprint. The Evaluate tab measures which ranking "
    "method would have found blockpages the fingerprints did not know yet."
)

s = loaders.current()
enc = results.encoded(s)
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
if session.relabelled() is not None:
    st.info("Labels include your own fingerprints (relabelled on this page).")

# The evaluation runs in the background from the first visit; the page ranks by its best
# method once it is done.
try:
    evaluation, refused = discovery.evaluation(s, labels, session.relabelled()), None
except ValueError as error:
    evaluation, refused = None, error
# Read once: the job may end while the page runs, and the page shows one state of it.
report, failure = None, None
if evaluation is not None and evaluation.done():
    failure = evaluation.exception()
    report = evaluation.result() if failure is None else None


def method_name(method: str) -> str:
    return method.replace("_", " ")


# Kept by key, so the chosen tab stays chosen when a first computation's progress bars
# are gone on the next run and the page's elements move up.
find, cluster, evaluate = st.tabs(
    ["Candidates", "Clusters and fingerprints", "Evaluate"], key="discover_tab", on_change="rerun"
)

aps = discovery.average_precisions(report) if report is not None else {}
best = discovery.best_method(report) if report is not None else None

# The Evaluate tab first: it only reads the background job, so it shows at once while the
# candidates are computed.
with evaluate:
    st.caption(
        "Leave-fingerprints-out: hide a family of blockpage fingerprints, so its records become undetermined; "
        "train each method on the labels left; rank every undetermined record and score how many of the hidden "
        "records come first. A method that ranks them high would have found those blockpages before their "
        f"fingerprints were written. Up to {discovery.MAX_FOLDS} folds, families of at least "
        f"{discovery.MIN_ROWS} records; figures are the mean ± sd over folds."
    )
    if refused is not None:
        st.warning(charts.markdown_text(errors.public(refused)))
    elif failure is not None:
        # A data set the protocol cannot score (no family large enough) is not a fault.
        if isinstance(failure, ValueError):
            st.warning(charts.markdown_text(errors.public(failure)))
        else:
            errors.show(f"The evaluation failed ({failure}).")
    elif report is None:
        key = discovery.evaluation_key(s, labels)

        @st.fragment(run_every=1.5)
        def _evaluation_progress() -> None:
            if evaluation.done():
                st.rerun()
            share, text = discovery.progress_of(key)
            st.progress(share, text=f"Evaluating every ranking method — {charts.markdown_text(text)}")

        _evaluation_progress()
    else:
        hidden = sum(fold["positives"] for fold in report.folds)
        cards = st.columns(4)
        cards[0].metric("Folds", len(report.folds), help="Each fold hides one or more fingerprint families.")
        cards[1].metric("Hidden records", f"{hidden:,}")
        cards[2].metric("Best method", method_name(best), delta=f"AP {aps[best]:.2f}", delta_color="off",
                        delta_arrow="off", help="By mean average precision; the Candidates tab ranks by it.")
        cards[3].metric("Purity", f"{report.purity['mean']:.2f}",
                        help="Share of a hidden record's ten nearest latents that belong to its own family.")
        st.dataframe(discovery.summary_table(report), hide_index=True, key="evaluation_table")
        st.plotly_chart(charts.precision_curve(discovery.precision_curves(report), "Precision at K, mean over folds"),
                        config=charts.PLOT_CONFIG, key="evaluation_curve")
        with st.expander("Folds"):
            st.dataframe(
                pd.DataFrame([{
                    "hidden families": ", ".join(fold["hidden"]), "hidden records": fold["positives"],
                    "undetermined ranked": fold["ranked"],
                    **{f"AP {method_name(m)}": round(fold["scores"][m]["ap"], 3) for m in report.methods},
                } for fold in report.folds]),
                hide_index=True,
            )

with find:
    def choice_label(method: str) -> str:
        if method == discovery.BEST:
            if best is None:
                return "Best by evaluation (the latent classifier until the evaluation is done)"
            return f"Best by evaluation: {method_name(best)} (AP {aps[best]:.2f})"
        ap = aps.get(method)
        return method_name(method) + (f" (AP {ap:.2f})" if ap is not None and np.isfinite(ap) else "")

    controls = st.columns([2, 1])
    choice = controls[0].selectbox(
        "Rank by", discovery.methods(), format_func=choice_label, key="discover_method",
        help="AP: the method's average precision at finding a hidden fingerprint family (Evaluate tab).",
    )
    top = controls[1].slider("Candidates to list", 10, 500, 50, 10, key="discover_top")
    method = (best or discovery.LATENT) if choice == discovery.BEST else choice
    try:
        values = discovery.scores(s, labels, method)
    except ValueError as error:
        st.warning(charts.markdown_text(errors.public(f"{method_name(method).capitalize()} cannot rank this data "
                                                      f"set ({error}); the latent classifier ranks instead.")))
        method, values = discovery.LATENT, discovery.scores(s, labels, discovery.LATENT)
    if values is None:
        why = "the evaluation reads, which this data set is too large for here" if refused is not None else \
            "the evaluation is still reading"
        st.info(f"Ranking by {method_name(method)} needs the counts {why}; the latent classifier ranks instead.")
        method, values = discovery.LATENT, discovery.scores(s, labels, discovery.LATENT)
    if report is None and choice == discovery.BEST:
        st.caption("The evaluation is running (Evaluate tab); until it is done the latent classifier ranks."
                   if refused is None and failure is None else
                   "The evaluation could not run on this data set (Evaluate tab); the latent classifier ranks.")

    cards = st.columns(4)
    if method == discovery.LATENT:
        classifier_report, _ = results.classifier(s)
        cards[0].metric("Held-out accuracy", f"{classifier_report.accuracy:.1%}")
        cards[1].metric("Held-out F1 (censored)", f"{classifier_report.f1:.3f}")
    else:
        cards[0].metric("Ranking by", method_name(method))
        ap = aps.get(method, float("nan"))
        cards[1].metric("Evaluation AP", f"{ap:.2f}" if np.isfinite(ap) else "–",
                        help="Mean average precision at finding a hidden family (Evaluate tab).")
    undetermined = labels == Label.UNDETERMINED
    cards[2].metric("Undetermined records", f"{int(undetermined.sum()):,}")
    if method == discovery.LATENT:
        cards[3].metric("Undetermined scoring ≥ 0.5", f"{int((undetermined & (values >= 0.5)).sum()):,}")

    ranked = rank_candidates(values, labels, top=top)
    if not len(ranked):
        st.warning("There are no undetermined records to rank in this data set.")
    else:
        table = tables.record_table(frame, labels, responses.texts(s.data_dir, ranked), ranked)
        table.insert(1, "p_censored" if method == discovery.LATENT else "score", np.round(values[ranked], 3))
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
        st.caption(f"Raw response of record {candidate} ({'p' if method == discovery.LATENT else 'score'} = "
                   f"{values[candidate]:.3f}):")
        st.code(responses.texts(s.data_dir, [candidate])[0] or "(empty)", language=None, wrap_lines=True, height=160)
        if st.button("Open this record on the Attention page", key="candidate_attention"):
            session.set_record(candidate)
            st.switch_page("app_pages/attention.py")
        coords = results.best_map(s)
        where = np.full(len(frame), "other", dtype=object)
        where[labels == Label.CENSORED] = Label.CENSORED.display
        where[ranked] = "candidate"
        fig = map_charts.map_figure(
            coords,
            tables.hover_table(frame, responses.snippets(s.data_dir), np.arange(len(frame))),
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
    summary = cluster_summary(clusters, labels, enc.latents, responses.RowTexts(s.data_dir))
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
    # Start from the cluster most worth a look: one with a response to propose a fingerprint
    # from, the most undetermined.
    representative_bodies = responses.bodies(s.data_dir, summary["representative"].to_numpy())
    best_clusters = summary.assign(has_body=[bool(str(b or "").strip()) for b in representative_bodies]).sort_values(
        ["has_body", "undetermined_share", "size"], ascending=False)["cluster"].tolist()
    chosen = st.selectbox(
        "Cluster", best_clusters, key="cluster_choice",
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
    selection = session.selection()
    selection = selection[(selection >= 0) & (selection < len(frame))]
    group_name, group = f"cluster {chosen}", members
    if len(selection):
        origin = st.segmented_control(
            "Propose from", ["cluster", "selection"], default="cluster", key="proposal_origin",
            format_func={"cluster": f"Cluster {chosen}", "selection": f"Map selection ({len(selection):,})"}.get,
        )
        if origin == "selection":
            group_name, group = "the map selection", selection
    share = st.slider("Share of the responses a pattern must occur in", 0.5, 1.0, 0.8, 0.05, key="pattern_share")
    st.caption(
        f"The shortest texts (8 to 120 characters) that at least this share of {group_name}'s responses hold and "
        "the fewest other responses do, ranked by precision; each is counted over the whole data set before "
        "you save it. Tick the ones to save."
    )
    ticked: list[str] = []
    try:
        proposed = proposals.propose(s, labels, group, share)
    except ValueError as error:
        st.warning(charts.markdown_text(errors.public(error)))
    else:
        table = proposed.table.copy()
        table.insert(0, "save", False)
        edited = st.data_editor(
            table, hide_index=True, key=f"proposals_{jobs.digest(group_name, share, len(group))}",
            disabled=[c for c in table.columns if c != "save"],
            column_config={
                "save": st.column_config.CheckboxColumn("save", width="small"),
                "pattern": st.column_config.TextColumn("pattern", width="medium"),
                "length": st.column_config.NumberColumn("length", width="small"),
                "group share": st.column_config.ProgressColumn(
                    "in the group", min_value=0.0, max_value=1.0, format="percent", width="small",
                    help="Share of the group's responses that hold the pattern."),
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
        ticked = edited.loc[edited["save"], "pattern"].tolist()
        if proposed.scanned < proposed.total:
            st.caption(f"Matches counted over the first {proposed.scanned:,} of {proposed.total:,} records, "
                       f"all that {proposals.SCAN_SECONDS} s allowed.")
        else:
            st.caption(f"Matches counted over all {proposed.total:,} records, per label: a pattern worth "
                       "contributing matches undetermined records and no uncensored one.")

    name = st.text_input("Fingerprint name", f"e_unk_user_cluster_{chosen}", key=f"fp_name_{chosen}",
                         help="Several patterns saved together become name_1, name_2, …: variants of one page.")
    pattern = st.text_area("Pattern (Python regular expression), saved with the ticked proposals", "",
                           key=f"fp_pattern_{chosen}", height=80, placeholder="Optional: a pattern of your own")
    if pattern.strip():
        try:
            hits = pattern_hits(pattern, responses.iter_bodies(s.data_dir))
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
            target = fingerprint_path(file_name)
            saved = proposals.save_fingerprints(target, name, [*ticked, pattern])
        except ValueError as error:
            errors.show(error)
        else:
            session.set_fingerprint_file(target)
            st.success(charts.markdown_text(f"Saved {', '.join(saved)} to the fingerprint file {target.name}."))
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
