"""Export: write the encoded data set with AutoencoderWriter, or download a table."""

import streamlit as st

from dashboard import state

st.title("Export")

s = state.current()

st.subheader("Write the encoded data set")
st.caption(
    "Runs the model over every record with Lightning's Trainer.predict and AutoencoderWriter, "
    "on the best device present. The folder must be new or empty."
)
cols = st.columns([3, 1, 1.2])
storage = cols[0].text_input("Storage path", str(state.default_export_dir(s)), key="export_path")
layout = cols[1].selectbox("Layout", ["parquet", "indexed"], key="export_layout",
                           help="Parquet shards, or one .npz file per record placed by item_path")
keep = cols[2].radio("Rows", ["all", "labelled only (filtered)", "undetermined only (evaluate)"], key="export_rows")
if st.button("Write", type="primary", icon=":material/save:", key="export_write"):
    try:
        written = state.write_encoded(
            s, storage, layout, filtered=keep.startswith("labelled"), evaluate=keep.startswith("undetermined")
        )
    except (ValueError, OSError) as error:
        st.error(str(error))
    else:
        st.session_state["export_written"] = str(written)

written = st.session_state.get("export_written")
if written:
    summary, files, preview = state.describe_written(written)
    st.success(f"Wrote {written}")
    cards = st.columns(4)
    for card, key in zip(cards, ("total", "censored", "undetermined", "uncensored")):
        card.metric(key.capitalize(), f"{int(summary.get(key, 0)):,}")
    left, right = st.columns([1, 2])
    left.dataframe(files, hide_index=True, height=240)
    right.dataframe(preview, hide_index=True, height=240)

st.subheader("Download a table")
st.caption(
    "Metadata, latent vectors, map coordinates (PCA, and UMAP when computed) and scores "
    "(reconstruction loss when asked, and the classifier's probability once trained) of every record."
)
cols = st.columns([1, 1, 1.4, 2])
fmt = cols[0].segmented_control("Format", ["Parquet", "CSV"], default="Parquet", key="export_format") or "Parquet"
with_latents = cols[1].toggle("Latent vectors", value=True, key="export_latents")
with_loss = cols[2].toggle("Reconstruction loss", value=False, key="export_loss",
                           help="Computed on first use: one more pass of the model over every record")
table = state.export_table(s, with_latents, with_loss)
st.dataframe(table.head(20), hide_index=True, height=240)
data, name, mime = state.export_bytes(s, table, fmt, with_latents)
st.download_button(f"Download {name}", data, file_name=name, mime=mime, type="primary",
                   icon=":material/download:", key="export_download")
st.caption("Every chart downloads as an image from its toolbar (the camera icon).")
