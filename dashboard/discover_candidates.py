"""The Discover page's Candidates tab: the undetermined records ranked by how likely they are censored.

The ranking is the evaluation's best method once it is done (:mod:`dashboard.rankings`),
the latent classifier until then; any other method is one choice away.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, errors, loaders, map_charts, map_layers, rankings, responses, results, session, settings, tables
from dashboard.loaders import Session
from quack.discovery.candidates import candidate_list, rows_like
from quack.schema import Label

#: The map's colour of the listed candidates.
CANDIDATE_COLOUR = "#f4a261"


def show_candidates(s: Session, labels: np.ndarray, state: rankings.EvaluationState) -> None:
    """The Candidates tab: a choice of ranking, its figures, the top candidates, one's response and the map."""
    method, values, top = _ranking(s, labels, state)
    _cards(s, labels, state, method, values)
    listed, keys = page_candidates(s, labels, values, top)
    if not len(listed):
        st.warning("There are no undetermined records to rank in this data set.")
        return
    ranked = listed["record"].to_numpy()
    _candidate_table(s, labels, method, values, ranked, listed)
    _like_this(s, labels, listed, keys)
    _candidate_map(s, labels, ranked)


def page_candidates(s: Session, labels: np.ndarray, values: np.ndarray, top: int):
    """The listed candidates and every record's template: the list ``quack candidates`` writes."""
    return candidate_list(s.data_dir, values, labels, features=results.encoded(s).latents, top=top)


def _like_this(s: Session, labels: np.ndarray, listed: pd.DataFrame, keys: np.ndarray) -> None:
    """Every record of one candidate's template, one choice away."""
    choice = st.selectbox(
        "Show all records like candidate", listed["rank"].tolist(), key="candidate_like",
        format_func=lambda r: f"#{r}: all {int(listed['records'].iloc[r - 1]):,} like this",
    )
    rows = rows_like(keys, labels, listed["template"].iloc[int(choice) - 1])[: settings.max_points()]
    frame = loaders.rows(s.data_dir)
    st.dataframe(tables.record_table(frame, labels, responses.texts(s.data_dir, rows), rows), hide_index=True,
                 height=240, key="candidate_like_rows")


def _choice_label(state: rankings.EvaluationState, method: str) -> str:
    if method == rankings.BEST:
        if state.best is None:
            return "Best by evaluation (the latent classifier until the evaluation is done)"
        return f"Best by evaluation: {rankings.method_name(state.best)} (AP {state.aps[state.best]:.2f})"
    ap = state.aps.get(method)
    return rankings.method_name(method) + (f" (AP {ap:.2f})" if ap is not None and np.isfinite(ap) else "")


def _ranking(s: Session, labels: np.ndarray, state: rankings.EvaluationState) -> tuple[str, np.ndarray, int]:
    """The method chosen, every record's score by it, and how many candidates to list.

    A method that cannot rank yet (its counts are still being read) or at all gives way
    to the latent classifier, and the tab says why.
    """
    controls = st.columns([2, 1])
    choice = controls[0].selectbox(
        "Rank by", rankings.methods(), format_func=lambda m: _choice_label(state, m), key="discover_method",
        help="AP: the method's average precision at finding a fingerprint family hidden from it (Evaluate tab), "
             "not at finding the sample's unknown blockpages.",
    )
    top = controls[1].slider("Candidates to list", 10, 500, 50, 10, key="discover_top")
    method = (state.best or rankings.LATENT) if choice == rankings.BEST else choice
    name = rankings.method_name(method)
    try:
        values = rankings.scores(s, labels, method)
    except ValueError as error:
        st.warning(charts.markdown_text(errors.public(f"{name.capitalize()} cannot rank this data set ({error}); "
                                                      "the latent classifier ranks instead.")))
        method, values = rankings.LATENT, rankings.scores(s, labels, rankings.LATENT)
    if values is None:
        why = "the evaluation reads, which this data set is too large for here" if state.refused is not None else \
            "the evaluation is still reading"
        st.info(f"Ranking by {name} needs the counts {why}; the latent classifier ranks instead.")
        method, values = rankings.LATENT, rankings.scores(s, labels, rankings.LATENT)
    if state.report is None and choice == rankings.BEST:
        st.caption("The evaluation is running (Evaluate tab); until it is done the latent classifier ranks."
                   if state.refused is None and state.failure is None else
                   "The evaluation could not run on this data set (Evaluate tab); the latent classifier ranks.")
    return method, values, top


def _cards(s: Session, labels: np.ndarray, state: rankings.EvaluationState, method: str, values: np.ndarray) -> None:
    cards = st.columns([1.6, 1, 1, 1])
    if method == rankings.LATENT:
        classifier_report, _ = results.classifier(s)
        cards[0].metric("Held-out accuracy", f"{classifier_report.accuracy:.1%}")
        cards[1].metric("Held-out F1 (censored)", f"{classifier_report.f1:.3f}")
    else:
        cards[0].metric("Ranking by", rankings.method_name(method))
        ap = state.aps.get(method, float("nan"))
        cards[1].metric("Evaluation AP", f"{ap:.2f}" if np.isfinite(ap) else "–",
                        help="Mean average precision at finding a hidden family (Evaluate tab).")
    undetermined = labels == Label.UNDETERMINED
    cards[2].metric("Undetermined records", f"{int(undetermined.sum()):,}")
    if method == rankings.LATENT:
        cards[3].metric("Undetermined scoring ≥ 0.5", f"{int((undetermined & (values >= 0.5)).sum()):,}")


def _candidate_table(s: Session, labels: np.ndarray, method: str, values: np.ndarray, ranked: np.ndarray,
                     listed: pd.DataFrame) -> None:
    """The listed candidates, and the raw response of the one picked (the first until one is)."""
    frame = loaders.rows(s.data_dir)
    table = tables.record_table(frame, labels, responses.texts(s.data_dir, ranked), ranked)
    table.insert(1, "p_censored" if method == rankings.LATENT else "score", np.round(values[ranked], 3))
    # One candidate stands for every near-identical response of its template.
    for position, column in enumerate(("records", "countries", "vantage_points", "domains"), 2):
        table.insert(position, column, listed[column].to_numpy())
    truth = loaders.sample_truth(s.data_dir)
    if truth is not None:
        # The sample's generator knows which undetermined records are unknown
        # blockpages: a direct check of what the ranking finds.
        table.insert(2, "ground truth", truth[ranked])
        found = float(np.mean(truth[ranked[:50]] == "unknown_blockpage"))
        st.caption(f"Ground truth of the built-in sample: {found:.0%} of the top {min(50, len(ranked))} "
                   "candidates are blockpages the fingerprints do not know. This asks whether the ranking finds "
                   "unknown blockpages of any kind; the AP beside each method asks whether it would have found a "
                   "fingerprint family hidden from it. The Evaluate tab shows both for every method.")
    picked = st.dataframe(
        table, hide_index=True, height=300, on_select="rerun", selection_mode="single-row", key="candidates"
    )
    rows_picked = picked.selection.rows if picked is not None else []
    candidate = int(ranked[rows_picked[0]]) if rows_picked else int(ranked[0])
    st.caption(f"Raw response of record {candidate} ({'p' if method == rankings.LATENT else 'score'} = "
               f"{values[candidate]:.3f}):")
    st.code(responses.texts(s.data_dir, [candidate])[0] or "(empty)", language=None, wrap_lines=True, height=160)
    if st.button("Open this record on the Attention page", key="candidate_attention"):
        session.set_record(candidate)
        st.switch_page("app_pages/attention.py")


def _candidate_map(s: Session, labels: np.ndarray, ranked: np.ndarray) -> None:
    """The candidates on the best map, over the capped sample of records the Latent map draws."""
    coords = results.best_map(s)
    sampled = map_layers.drawn_rows(labels, settings.max_points())
    hover, texts = map_layers.hover(s, sampled)
    # The candidates are drawn whether or not the sample holds them, and last: on top.
    others = ~np.isin(sampled, ranked)
    ranked_hover, ranked_texts = map_layers.hover(s, ranked)
    drawn = np.concatenate([sampled[others], ranked])
    hover = pd.concat([hover[others], ranked_hover], ignore_index=True)
    texts = np.concatenate([texts[others], ranked_texts])
    where = np.where(labels[drawn] == Label.CENSORED, Label.CENSORED.display, "other").astype(object)
    where[-len(ranked):] = "candidate"
    if len(drawn) < len(labels):
        st.caption(f"Drawing {len(drawn):,} of {len(labels):,} records (every label represented, every candidate "
                   "among them).")
    fig = map_charts.map_figure(coords[drawn], hover, where, "where the candidates fall", True, texts=texts,
                                title="The candidates on the map (censored in red)")
    colours = {"candidate": CANDIDATE_COLOUR, Label.CENSORED.display: Label.CENSORED.colour}
    fig.for_each_trace(lambda t: t.update(marker_color=colours.get(t.name.split(" ")[0], charts.OTHER_COLOR)))
    st.plotly_chart(fig, config=charts.PLOT_CONFIG, key="candidate_map")
