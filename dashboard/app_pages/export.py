"""Export: write the encoded data set with AutoencoderWriter, or download a table."""

import time

import streamlit as st

from dashboard import charts, errors, loaders, results, session, settings, tables
from quack.model.reader import load_encoded, read_metadata
from quack.model.encoding import write_encoded
from quack.roots import resolve_writable_name
from quack.schema import Label

# What the Rows choice says, and which rows quack.model.encoding.write_encoded keeps for it.
ROWS = {"all": "all", "labelled only (filtered)": "labelled", "undetermined only (evaluate)": "undetermined"}

st.title("Export")

s = loaders.current()

st.subheader("Write the encoded data set")
st.caption(
    "Runs the model over every record with Lightning's Trainer.predict and AutoencoderWriter, "
    "on the best device present, into a new folder of the dashboard's export folder."
)
cols = st.columns([3, 1, 1.2])
name = cols[0].text_input(
    "Export folder name", time.strftime(f"{s.data_dir.name}-%Y%m%d-%H%M%S"), key="export_name",
    help="A new name: letters, digits, '.', '_' and '-'. Every export is kept in the dashboard's export folder.",
)
layout = cols[1].selectbox("Layout", ["parquet", "indexed"], key="export_layout",
                           help="Parquet shards, or one .npz file per record placed by item_path")
keep = cols[2].radio("Rows", list(ROWS), key="export_rows")
if st.button("Write", type="primary", icon=":material/save:", key="export_write"):
    try:
        target = resolve_writable_name(settings.export_folder(), name.strip(), "the export folder's name")
        if target.exists():
            raise ValueError(f"An export named {name.strip()!r} already exists; choose another name.")
        # The name is claimed as the folder is made, so two sessions writing one name at once cannot mix shards.
        with results.progress_bar("Writing the encoded data set") as progress:
            write_encoded(s.model, s.data_dir, target, layout=layout, keep=ROWS[keep], progress=progress,
                          checkpoint=s.checkpoint, new=True)
    except (ValueError, OSError) as error:
        errors.show(error)
    else:
        session.set_written(target)

written = session.written()
if written is not None:
    try:
        summary = read_metadata(written)
        preview = tables.latent_preview(load_encoded(written))
    except (ValueError, OSError) as error:
        # The folder may have been removed or left incomplete since it was written.
        errors.show(error)
    else:
        # The full path on the server, where the operator's shared folders allow showing it.
        where = errors.public(str(written))
        where = where if "[server path]" not in where else "the dashboard's export folder"
        st.success(charts.markdown_text(f"Wrote the export {written.name} to {where}"))
        cards = st.columns(4)
        for card, key in zip(cards, ("total", *(label.display for label in Label))):
            card.metric(key.capitalize(), f"{int(summary.get(key, 0)):,}")
        left, right = st.columns([1, 2])
        left.dataframe(tables.written_files(written), hide_index=True, height=240)
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
table = tables.export_table(
    loaders.rows(s.data_dir),
    loaders.labels(s.data_dir),
    results.pca_map(s, 2),
    umap=results.default_umap(s),
    loss=results.encoded_with_loss(s).loss if with_loss else None,
    probability=results.stored_probability(s),
    latents=results.encoded(s).latents if with_latents else None,
)
st.dataframe(table.head(20), hide_index=True, height=240)
data, name, mime = tables.export_bytes(table, fmt, f"quack-{s.data_dir.name}")
st.download_button(f"Download {name}", data, file_name=name, mime=mime, type="primary",
                   icon=":material/download:", key="export_download")
st.caption("Every chart downloads as an image from its toolbar (the camera icon).")
