"""Latent map: every record placed by its latent vector, coloured as asked."""

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import (charts, errors, jobs, links, loaders, map_charts, map_layers, responses, results, session,
                       settings, tables, worker)
from dashboard.jobs import UMAP_DEFAULTS
from dashboard.selection import region_ids, selected_ids, selection_counts, selection_key
from quack.latents.neighbours import METRICS
from quack.schema import Label, label_names

# Rows of a selection listed in its table; the counts above it cover all of them.
LISTED = 1000

st.title("Latent map")
st.caption(
    "Each point is one measurement, placed by the autoencoder's latent vector. "
    "Box- or lasso-select a region to count and list every record in it; click a point to see its neighbours."
)

s = loaders.current()
enc = results.encoded(s)
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
n = len(frame)
links.settle_records(n)

top = st.columns(4)
top[0].metric("Records", f"{n:,}")
top[1].metric("Latent size", enc.latents.shape[1])
top[2].metric("Encoded at", f"{enc.records_per_s:,.0f} rec/s", help=f"on {enc.device}")
top[3].metric("Labelled", f"{int((labels != Label.UNDETERMINED).sum()):,}", help="records labelled censored or uncensored by a fingerprint")

COLOURS = {
    "label": "Label",
    "country": "Country",
    "service": "Service",
    "domain": "Domain",
    "scan": "Scan",
    "time": "Time",
    "probability": "Classifier probability",
    "loss": "Reconstruction loss",
}
controls = st.columns([1.2, 0.8, 1.4, 2.6])
method = controls[0].segmented_control("Projection", ["UMAP", "PCA"], default="UMAP", key="map_method") or "UMAP"
dims = 3 if (controls[1].segmented_control("View", ["2D", "3D"], default="2D", key="map_dims") == "3D") else 2
links.settle("map_colour", COLOURS, "colour")
colour = controls[2].selectbox("Colour by", list(COLOURS), format_func=COLOURS.get, key="map_colour")
with controls[3].expander("UMAP options"):
    n_neighbors = st.slider("Neighbours", 2, 100, UMAP_DEFAULTS["n_neighbors"], key="umap_neighbors")
    min_dist = st.slider("Minimum distance", 0.0, 1.0, UMAP_DEFAULTS["min_dist"], 0.05, key="umap_min_dist")
    metric = st.selectbox("Metric", METRICS, index=METRICS.index(UMAP_DEFAULTS["metric"]), key="umap_metric")
    fit_all = st.toggle(
        "Fit on all records", key="umap_fit_all",
        help="UMAP's time grows faster than the records: at a million records a fit on all of them takes hours.",
    )
    fit_rows = st.number_input(
        "Records to fit on", 100, 1_000_000, UMAP_DEFAULTS["fit_rows"], 10_000, key="umap_fit_rows",
        disabled=fit_all,
        help="UMAP is fitted on this many records, every label kept; "
        "the others are placed beside their nearest fitted records.",
    )
    fit_rows = 0 if fit_all else int(fit_rows)

coords = results.pca_map(s, dims)
map_key = jobs.pca_key(s.identity, dims)
shown = "PCA"
umap_options = (dims, n_neighbors, min_dist, metric, fit_rows)
notice = st.empty()
failed = False
if method == "UMAP":
    key, job = results.umap_job(s, *umap_options, start=False)
    if job is not None and job.done() and job.exception() is None:
        coords, shown, map_key = job.result(), "UMAP", key
    elif job is not None and job.done():
        notice.warning(charts.markdown_text(errors.public(f"UMAP failed ({job.exception()}); showing the PCA map.")))
        jobs.store().forget(key)
        failed = True
    else:
        why = "" if worker.ready() else " (compiling UMAP the first time adds about ten seconds)"
        notice.info(f"Computing the UMAP map{why}; the PCA map is shown meanwhile and is swapped out when it is ready.")
        progress = jobs.store().progress(key)
        fitted = min(fit_rows or n, n)

        @st.fragment(run_every=2)
        def _umap_progress() -> None:
            running = jobs.store().submit(key, lambda: None, start=False)
            if running is not None and running.done():
                st.rerun()
            if progress.done == 0:
                st.progress(0.0, text=f"Fitting UMAP on {fitted:,} of {n:,} records — {progress.elapsed():,.0f} s")
            else:
                st.progress(progress.done / max(progress.total, 1), text=(
                    f"Placing the other records beside their nearest fitted ones — {progress.done:,} / "
                    f"{progress.total:,} — {progress.elapsed():,.0f} s"))

        _umap_progress()

chosen = session.record()
neighbours, distances, ties = np.empty(0, np.int64), np.empty(0, np.float32), 0
if chosen is not None and 0 <= chosen < n:
    neighbours, distances, ties = results.nearest(s, chosen)
    ringed = np.asarray([chosen, *neighbours], dtype=np.int64)
else:
    ringed = np.empty(0, np.int64)

drawn = map_layers.drawn_rows(labels, settings.max_points())
hover, texts = map_layers.hover(s, drawn)
# The chosen record and its neighbours are drawn even when the sample left them out.
extra = np.setdiff1d(ringed, drawn)
if len(extra):
    extra_hover, extra_texts = map_layers.hover(s, extra)
    drawn, texts = np.concatenate([drawn, extra]), np.concatenate([texts, extra_texts])
    hover = pd.concat([hover, extra_hover], ignore_index=True)
if len(drawn) < n:
    st.caption(
        f"Drawing {len(drawn):,} of {n:,} records (every label represented, censored on top); "
        "the blue shading under them counts all records, and a box or lasso selects all records in it."
    )

colour_name = COLOURS[colour]
if colour == "label":
    values, categorical = label_names(labels[drawn]), True
elif colour == "probability":
    values, categorical = results.classifier(s)[1][drawn], False
elif colour == "loss":
    values, categorical = results.encoded_with_loss(s).loss[drawn], False
elif colour == "time":
    since, unit = map_layers.time_since_first(frame["time"])
    values, categorical, colour_name = since.take(drawn), False, f"{unit.capitalize()} from the first record"
else:
    values, categorical = np.asarray(frame[colour].take(drawn), dtype=object), True

fig = map_charts.map_figure(
    coords[drawn], hover, values, colour_name, categorical,
    title=f"{shown} of the latent space, coloured by {colour_name.lower()}",
    highlight=ringed, texts=texts, density=map_layers.map_density(map_key, coords) if dims == 2 else None,
)
event = st.plotly_chart(
    fig, key="latent_map", on_select="rerun", selection_mode=("points", "box", "lasso"), config=charts.PLOT_CONFIG
)
st.caption(f"Map: **{shown}**")
# The chart reports its selection on every rerun; act only when it changed, so other
# controls (the record id below) are not overridden by an old click.
reported = selection_key(event)
if reported and reported != session.map_event():
    session.set_map_event(reported)
    region = region_ids(event, coords) if dims == 2 else None
    if region is not None:
        session.set_selection(region)
    else:
        ids = selected_ids(event)
        session.set_selection(ids)
        if ids:
            session.set_record(ids[0])
    st.rerun()

st.subheader("Selection")
selection = session.selection()
if len(selection):
    counts = selection_counts(selection, labels, drawn)
    cells = st.columns(5)
    cells[0].metric("Selected", f"{counts['selected']:,}")
    for cell, name in zip(cells[1:4], Label.by_display()):
        cell.metric(name.capitalize(), f"{counts[name]:,}")
    cells[4].metric("Not drawn", f"{counts['not drawn']:,}", help="selected records the map does not draw")
left, right = st.columns([3, 2])
with left:
    if not len(selection):
        st.info("Nothing selected yet: drag a box or lasso over the map, or click a point.")
    else:
        listed = selection[:LISTED]
        table = tables.record_table(frame, labels, responses.texts(s.data_dir, listed), listed)
        more = f"; the first {LISTED:,} listed" if len(selection) > LISTED else ""
        st.caption(f"{len(selection):,} records selected{more}")
        st.dataframe(table, hide_index=True, height=320)
        if st.button("Clear selection"):
            session.set_selection([])
            st.rerun()
with right:
    st.subheader("Chosen record")
    record = st.number_input(
        "Record id", min_value=0, max_value=n - 1, value=int(chosen) if chosen is not None else 0,
        key=f"map_record_{chosen}",
    )
    if record != chosen:
        session.set_record(record)
        st.rerun()
    row = frame.iloc[int(record)]
    md = charts.markdown_text
    name = label_names(labels[[int(record)]])[0]
    st.markdown(f"**{md(row['domain'])}** · {md(row['country'] or '—')} · {md(row['service'])} · {name}")
    # The rerun above makes the record the chosen one, whose neighbours the map found.
    near = tables.record_table(frame, labels, responses.texts(s.data_dir, neighbours), neighbours)
    near.insert(1, "distance", np.round(distances, 3))
    if ties:
        st.caption(f"{ties:,} other records share this exact latent (the same tokens: a short record such as an "
                   "echo or discard test with no status, headers or body); all at distance 0, they are left out. "
                   "The nearest records whose latent differs:")
    st.dataframe(near, hide_index=True, height=250)
    if st.button("Open on the Attention page", type="primary", icon=":material/visibility:"):
        session.set_record(record)
        st.switch_page("app_pages/attention.py")

if method == "UMAP" and shown != "UMAP" and not failed:
    # Started only now that the PCA map is on screen, so it does not slow the first map;
    # the progress bar above follows it.
    try:
        results.umap_job(s, *umap_options)
    except ValueError as error:
        # Too much work waits already: the PCA map stays, and the sentence says what to do.
        notice.warning(charts.markdown_text(errors.public(error)))
