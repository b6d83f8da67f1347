"""Data: choose the measurements to explore and look through them."""

import pandas as pd
import streamlit as st

from dashboard import charts, errors, links, loaders, responses, session, settings, sources, tables, uploads
from quack.schema import Label, label_names

st.title("Data")

#: Records the table lists at most; their responses are read from disk.
TABLE_ROWS = 1000
SOURCES = {"sample": "Built-in sample", "path": "A file or folder on this server", "upload": "Upload files"}
current = session.source()
kind = st.radio(
    "Source", list(SOURCES), format_func=SOURCES.get, index=list(SOURCES).index(current["kind"]),
    horizontal=True, key="data_kind",
)
candidate = None
try:
    if kind == "sample" and current["kind"] != "sample":
        candidate = dict(session.SAMPLE)
    elif kind == "path":
        typed = st.text_input(
            "Path", value=current["paths"][0] if current["kind"] == "path" else "",
            placeholder="CP_Quack-https-2021-05-30-01-01-01.tar.gz, a folder of such files, a data set from "
                        "`quack ingest` or a folder from `quack encode`, in a folder this server shares",
            help=charts.markdown_text("Only files and folders inside the folders this server shares can be read: "
                                      + ", ".join(str(folder) for folder in settings.data_roots().folders)),
            key="data_path",
        )
        keep_partial = st.checkbox(loaders.KEEP_PARTIAL_LABEL, key="data_keep_partial")
        if st.button("Load", type="primary", key="data_load") and typed.strip():
            candidate = sources.path_source(typed, keep_partial)
            # Build (or check) before switching, so a bad source leaves the session on the data it had.
            loaders.dataset_dir(candidate, session.recorded_checkpoint(candidate) or session.checkpoint())
    elif kind == "upload":
        files = st.file_uploader(
            "Quack results (.json, .jsonl, .gz, .tar, .tgz)", type=["json", "jsonl", "gz", "tar", "tgz"],
            accept_multiple_files=True, key="data_upload",
        )
        keep_partial = st.checkbox(loaders.KEEP_PARTIAL_LABEL, key="upload_keep_partial")
        if files:
            try:
                # Too many or too large: refused before anything is written, and the memory given back.
                uploads.check_batch([(f.name, f) for f in files])
            except ValueError:
                uploads.release(files)
                raise
        if files and st.button("Load", type="primary", key="upload_load"):
            # Uploads that make no data set are deleted again as the block fails (and stay in the
            # uploader for another try); kept ones are on disk, so Streamlit's copies are dropped.
            with sources.upload_source([(f.name, f) for f in files], keep_partial) as candidate:
                loaders.dataset_dir(candidate)
            uploads.release(files)
except (ValueError, OSError) as error:
    errors.show(error)
    candidate = None
if candidate is not None:
    session.set_source(candidate)
    st.rerun()

s = loaders.current()
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
about = loaders.info(s.data_dir)
named = pd.Series(label_names(labels))

st.subheader(charts.markdown_text(session.source()["name"]))
cards = st.columns(5)
cards[0].metric("Records", f"{len(frame):,}")
for card, label in zip(cards[1:4], Label.ordered()):
    card.metric(label.display.capitalize(), f"{int((labels == label).sum()):,}")
skipped = about.get("skipped") or {}
cards[4].metric("Skipped", f"{sum(skipped.values()) if isinstance(skipped, dict) else 0:,}",
                help=", ".join(f"{k}: {v}" for k, v in skipped.items()) if isinstance(skipped, dict) else None)

a, b, c = st.columns(3)
a.plotly_chart(charts.counts_bar(named.value_counts(), "By label", labels=True), config=charts.PLOT_CONFIG, key="by_label")
b.plotly_chart(charts.counts_bar(tables.value_counts(frame["country"]).head(15), "By country (top 15)"),
               config=charts.PLOT_CONFIG, key="by_country")
c.plotly_chart(charts.counts_bar(frame["service"].value_counts(), "By service"), config=charts.PLOT_CONFIG, key="by_service")

st.subheader("Records")
filters = st.columns([1, 1, 1, 2])
country_options = sorted(frame["country"].dropna().unique())
service_options = sorted(frame["service"].dropna().unique())
label_options = [label.display for label in Label]
for key, options, what in (("filter_country", country_options, "country filter"),
                           ("filter_service", service_options, "service filter"),
                           ("filter_label", label_options, "label filter")):
    links.settle(key, options, what)
countries = filters[0].multiselect("Country", country_options, key="filter_country")
services = filters[1].multiselect("Service", service_options, key="filter_service")
wanted = filters[2].multiselect("Label", label_options, key="filter_label")
search = filters[3].text_input("Domain contains", key="filter_domain")
shown = tables.filter_records(frame, labels, countries, services, wanted, search)
st.caption(f"{len(shown):,} of {len(frame):,} records")
if not len(shown):
    st.warning("No record matches these filters.")
else:
    if len(shown) > TABLE_ROWS:
        st.caption(f"Listing the first {TABLE_ROWS:,}; narrow the filters to see others.")
        shown = shown[:TABLE_ROWS]
    picked = st.dataframe(
        tables.record_table(frame, labels, responses.texts(s.data_dir, shown), shown), hide_index=True, height=340,
        on_select="rerun", selection_mode="single-row", key="records",
    )
    rows_picked = picked.selection.rows if picked is not None else []
    record = int(shown[rows_picked[0]]) if rows_picked else int(shown[0])
    st.markdown(f"**Raw response of record {record}** ({charts.markdown_text(frame.iloc[record]['domain'])})")
    st.code(responses.texts(s.data_dir, [record])[0] or "(empty)", language=None, wrap_lines=True, height=220)
    if st.button("Open on the Attention page", key="data_attention"):
        session.set_record(record)
        st.switch_page("app_pages/attention.py")
