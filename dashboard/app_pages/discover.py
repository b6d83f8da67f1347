"""Discover: censorship the fingerprints missed, ranked, clustered, evaluated and written down as fingerprints."""

import streamlit as st

from dashboard import loaders, rankings, results, session
from dashboard.discover_candidates import show_candidates
from dashboard.discover_clusters import show_clusters
from dashboard.discover_evaluation import show_evaluation

st.title("Discover")
st.caption(
    "Rank the undetermined measurements by how likely they are censored, group the responses that look "
    "alike, and write what a group shares down as a fingerprint. The Evaluate tab measures which ranking "
    "method would have found blockpages the fingerprints did not know yet."
)

s = loaders.current()
# Encoded before the evaluation starts, so its background work does not compete with the
# encoding every tab needs.
results.encoded(s)
labels = loaders.labels(s.data_dir)
if session.relabelled() is not None:
    st.info("Labels include your own fingerprints (relabelled on this page).")

# The evaluation runs in the background from the first visit; the Candidates tab ranks by
# its best method once it is done.
state = rankings.evaluation_state(s, labels, session.relabelled(), loaders.sample_truth(s.data_dir))

# Kept by key, so the chosen tab stays chosen when a first computation's progress bars
# are gone on the next run and the page's elements move up.
find, cluster, evaluate = st.tabs(
    ["Candidates", "Clusters and fingerprints", "Evaluate"], key="discover_tab", on_change="rerun"
)
# The Evaluate tab first: it only reads the background job, so it shows at once while the
# candidates are computed.
with evaluate:
    show_evaluation(s, labels, state)
with find:
    show_candidates(s, labels, state)
with cluster:
    show_clusters(s, labels)
