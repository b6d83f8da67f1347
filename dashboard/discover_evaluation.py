"""The Discover page's Evaluate tab: which ranking method would have found the blockpages the fingerprints did not know.

It only reads the background evaluation (:mod:`dashboard.rankings`), so it shows at once
while the other tabs compute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, errors, rankings
from dashboard.loaders import Session


def show_evaluation(s: Session, labels: np.ndarray, state: rankings.EvaluationState) -> None:
    """The Evaluate tab: the evaluation's progress, why it cannot run, or its figures."""
    st.caption(
        "Leave-fingerprints-out: hide a family of blockpage fingerprints, so its records become undetermined; "
        "train each method on the labels left; rank every undetermined record and score how many of the hidden "
        "records come first. A method that ranks them high would have found those blockpages before their "
        f"fingerprints were written. Up to {rankings.MAX_FOLDS} folds, families of at least "
        f"{rankings.CONFIG.min_rows} records; figures are the mean ± sd over folds."
    )
    if state.refused is not None:
        st.warning(charts.markdown_text(errors.public(state.refused)))
    elif state.failure is not None:
        # A data set the protocol cannot score (no family large enough) is not a fault.
        if isinstance(state.failure, ValueError):
            st.warning(charts.markdown_text(errors.public(state.failure)))
        else:
            errors.show(f"The evaluation failed ({state.failure}).")
    elif state.report is None:
        _progress(s, labels, state)
    else:
        _figures(state)


def _progress(s: Session, labels: np.ndarray, state: rankings.EvaluationState) -> None:
    key = rankings.evaluation_key(s, labels)

    @st.fragment(run_every=1.5)
    def evaluation_progress() -> None:
        if state.job.done():
            st.rerun()
        share, text = rankings.progress_of(key)
        st.progress(share, text=f"Evaluating every ranking method — {charts.markdown_text(text)}")

    evaluation_progress()


def _figures(state: rankings.EvaluationState) -> None:
    report, best = state.report, state.best
    hidden = sum(fold["positives"] for fold in report.folds)
    # The best method's name is the longest value: its card is the widest, so the name is not cut off.
    cards = st.columns([1, 1, 1.6, 1])
    cards[0].metric("Folds", len(report.folds), help="Each fold hides one or more fingerprint families.")
    cards[1].metric("Hidden records", f"{hidden:,}")
    cards[2].metric("Best method", rankings.method_name(best), delta=f"AP {state.aps[best]:.2f}", delta_color="off",
                    delta_arrow="off", help="By mean average precision; the Candidates tab ranks by it.")
    purity = report.purity
    small = purity["ceiling"] < 1.0
    cards[3].metric("Purity", f"{purity['mean']:.2f}", delta=f"of at most {purity['ceiling']:.2f}" if small else None,
                    delta_color="off", delta_arrow="off",
                    help="Share of a hidden record's ten nearest latents that belong to its own family. A family of "
                         "fewer than eleven records cannot fill ten places, which caps the figure"
                         + (f"; of the places its family could fill, {purity['within_reach']:.2f}." if small else "."))
    table = rankings.summary_table(report)
    if report.truth is not None:
        k = rankings.TABLE_TOP[0]
        st.caption(
            "Two questions, side by side. **P@K, R@K, AP**: would the method have found a fingerprint family "
            "hidden from it (leave-fingerprints-out, above)? **truth P@K, truth AP**: with every fingerprint used, "
            f"how many of its first {k} candidates does the built-in sample's ground truth call a blockpage no "
            "fingerprint knows (the Candidates tab's figure)? A method can do well at one and badly at the other."
        )
    st.dataframe(table, hide_index=True, key="evaluation_table", column_config={
        "AP": st.column_config.TextColumn(help="Average precision at finding a hidden fingerprint family."),
        **{c: st.column_config.TextColumn(help="Against the sample's ground truth: every blockpage no fingerprint "
                                               "knows, all fingerprints used.") for c in table.columns
           if c.startswith("truth")},
    })
    st.plotly_chart(charts.precision_curve(rankings.precision_curves(report), "Precision at K, mean over folds"),
                    config=charts.PLOT_CONFIG, key="evaluation_curve")
    with st.expander("Folds"):
        st.dataframe(
            pd.DataFrame([{
                "hidden families": ", ".join(fold["hidden"]), "hidden records": fold["positives"],
                "undetermined ranked": fold["ranked"],
                **{f"AP {rankings.method_name(m)}": round(fold["scores"][m]["ap"], 3) for m in report.methods},
            } for fold in report.folds]),
            hide_index=True,
        )
