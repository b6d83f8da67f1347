"""Latent map: every record placed by its latent vector, coloured as asked."""

import numpy as np
import streamlit as st

from dashboard import charts, errors, jobs, loaders, results, session, tables
from dashboard.results import UMAP_DEFAULTS
from dashboard.selection import selected_ids
from quack.projection import METRICS, display_sample, umap_ready
from quack.schema import Label, label_names

st.title("Latent map")
st.caption(
    "Each point is one measurement, placed by the autoencoder's latent vector. "
    "Box- or lasso-select points to list them; click one to see its neighbours."
)

s = loaders.current()
enc = results.encoded(s)
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
names = label_names(labels)

top = st.columns(4)
top[0].metric("Records", f"{len(frame):,}")
top[1].metric("Latent size", enc.latents.shape[1])
top[2].metric("Encoded at", f"{enc.records_per_s:,.0f} rec/s", help=f"on {enc.device}")
top[3].metric("Labelled", f"{int((labels != Label.UNDETERMINED).sum()):,}", help="records labelled censored or uncensored by a fingerprint")

COLOURS = {
    "label": "Label",
    "country": "Country",
    "service": "Service",
    "domain": "Domain",
    "probability": "Classifier probability",
    "loss": "Reconstruction loss",
}
controls = st.columns([1.2, 0.8, 1.4, 2.6])
method = controls[0].segmented_control("Projection", ["UMAP", "PCA"], default="UMAP", key="map_method") or "UMAP"
dims = 3 if (controls[1].segmented_control("View", ["2D", "3D"], default="2D", key="map_dims") == "3D") else 2
colour = controls[2].selectbox("Colour by", list(COLOURS), format_func=COLOURS.get, key="map_colour")
with controls[3].expander("UMAP options"):
    n_neighbors = st.slider("Neighbours", 2, 100, UMAP_DEFAULTS["n_neighbors"], key="umap_neighbors")
    min_dist = st.slider("Minimum distance", 0.0, 1.0, UMAP_DEFAULTS["min_dist"], 0.05, key="umap_min_dist")
    metric = st.selectbox("Metric", METRICS, index=METRICS.index(UMAP_DEFAULTS["metric"]), key="umap_metric")

coords = results.pca_map(s, dims)
shown = "PCA"
umap_options = (dims, n_neighbors, min_dist, metric)
notice = st.empty()
failed = False
if method == "UMAP":
    key, job = results.umap_job(s, *umap_options, start=False)
    if job is not None and job.done() and job.exception() is None:
        coords, shown = job.result(), "UMAP"
    elif job is not None and job.done():
        notice.warning(charts.markdown_text(errors.public(f"UMAP failed ({job.exception()}); showing the PCA map.")))
        jobs.store().forget(key)
        failed = True

chosen = session.record()
drawn = display_sample(len(frame), keep=[chosen] if chosen is not None else None)
if len(drawn) < len(frame):
    st.caption(f"Drawing a random {len(drawn):,} of {len(frame):,} records to keep the map fluid.")

hover = tables.hover_table(frame, loaders.snippets(s.data_dir), drawn)
if colour == "label":
    values, categorical = names[drawn], True
elif colour == "probability":
    values, categorical = results.classifier(s)[1][drawn], False
elif colour == "loss":
    values, categorical = results.encoded_with_loss(s).loss[drawn], False
else:
    values, categorical = frame[colour].to_numpy()[drawn], True

neighbours, distances = np.empty(0, np.int64), np.empty(0, np.float32)
if chosen is not None and 0 <= chosen < len(frame):
    neighbours, distances = results.nearest(s, chosen)
fig = charts.map_figure(
    coords[drawn], hover, values, COLOURS[colour], categorical,
    title=f"{shown} of the latent space, coloured by {COLOURS[colour].lower()}",
    highlight=[chosen, *neighbours] if chosen is not None else [],
)
event = st.plotly_chart(
    fig, key="latent_map", on_select="rerun", selection_mode=("points", "box", "lasso"), config=charts.PLOT_CONFIG
)
st.caption(f"Map: **{shown}**")
ids = selected_ids(event)
# The chart reports its selection on every rerun; act only when it changed, so other
# controls (the record id below) are not overridden by an old click.
if ids and ids != session.map_event():
    session.set_map_event(ids)
    session.set_selection(ids)
    session.set_record(ids[0])
    st.rerun()

left, right = st.columns([3, 2])
with left:
    st.subheader("Selection")
    selection = session.selection()
    if not selection:
        st.info("Nothing selected yet: drag a box or lasso over the map, or click a point.")
    else:
        table = tables.record_table(frame, labels, loaders.texts(s.data_dir, selection), selection)
        st.caption(f"{len(selection):,} records selected")
        st.dataframe(table, hide_index=True, height=320)
        if st.button("Clear selection"):
            session.set_selection([])
            st.rerun()
with right:
    st.subheader("Chosen record")
    record = st.number_input(
        "Record id", min_value=0, max_value=len(frame) - 1, value=int(chosen) if chosen is not None else 0,
        key=f"map_record_{chosen}",
    )
    if record != chosen:
        session.set_record(record)
        st.rerun()
    row = frame.iloc[int(record)]
    md = charts.markdown_text
    st.markdown(f"**{md(row['domain'])}** · {md(row['country'] or '—')} · {md(row['service'])} · {names[int(record)]}")
    # The rerun above makes the record the chosen one, whose neighbours the map found.
    near = tables.record_table(frame, labels, loaders.texts(s.data_dir, neighbours), neighbours)
    near.insert(1, "distance", np.round(distances, 3))
    st.dataframe(near, hide_index=True, height=250)
    if st.button("Open on the Attention page", type="primary", icon=":material/visibility:"):
        session.set_record(record)
        st.switch_page("app_pages/attention.py")

if method == "UMAP" and shown != "UMAP" and not failed:
    # Started only now that the PCA map is on screen, so it does not slow the first map.
    key, job = results.umap_job(s, *umap_options)
    why = "" if umap_ready() else " (compiling UMAP the first time adds about ten seconds)"
    notice.info(f"Computing the UMAP map{why}; the PCA map is shown meanwhile and is swapped out when it is ready.")

    @st.fragment(run_every=2)
    def _swap_when_ready() -> None:
        if job.done():
            st.rerun()

    _swap_when_ready()
