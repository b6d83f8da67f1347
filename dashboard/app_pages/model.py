"""Model: choose a checkpoint, or train a new one while watching its loss."""

import streamlit as st

from dashboard import charts, errors, loaders, session, settings, sources, training_runs, uploads
from quack.config import AutoencoderConfig, TrainConfig, options
from quack.model.encoding import best_device

FORM_COLUMNS = 4

st.title("Model")

choose, train = st.tabs(["Checkpoint", "Train a new model"])

with choose:
    found = sources.list_checkpoints(session.uploaded_checkpoints())
    current = session.checkpoint().resolve()
    choices = found if current in found else [current, *found]
    picked = st.selectbox(
        "Checkpoint", choices, index=choices.index(current), format_func=sources.describe_checkpoint, key="ckpt_pick"
    )
    extra = st.columns(2)
    typed = extra[0].text_input("…or a checkpoint file in a folder this server shares", key="ckpt_path")
    uploaded = extra[1].file_uploader("…or upload one (.ckpt)", type=["ckpt"], key="ckpt_upload")
    candidate = None
    try:
        if typed.strip() and st.button("Use this file", key="ckpt_use_path"):
            candidate = settings.data_roots().resolve_readable(typed)
        elif uploaded is not None and st.button("Use the upload", key="ckpt_use_upload"):
            # Kept only once it loads; a refused upload is deleted at once.
            try:
                candidate = sources.save_checkpoint_upload(uploaded.name, uploaded)
            finally:
                # On disk now, or refused: Streamlit's copy in memory is not needed either way.
                uploads.release([uploaded])
            session.add_uploaded_checkpoint(candidate)
        elif picked != current:
            candidate = picked
        if candidate is not None:
            loaders.load_model(candidate)
    except (ValueError, OSError) as error:
        # The session keeps its checkpoint; the page goes on showing it.
        errors.show(error)
    else:
        if candidate is not None:
            session.set_checkpoint(candidate)
            st.rerun()

    model = loaders.load_model()
    hp = model.hparams
    cards = st.columns(5)
    cards[0].metric("Device for encoding", best_device().type.upper())
    cards[1].metric("Parameters", f"{sum(p.numel() for p in model.parameters()):,}")
    cards[2].metric("Vocabulary", f"{hp.num_embeddings:,}")
    cards[3].metric("Embedding / hidden", f"{hp.embed_size} / {hp.hidden_size}")
    cards[4].metric("File size", f"{session.checkpoint().stat().st_size / 1e6:.1f} MB")
    with st.expander("All hyperparameters"):
        st.json(dict(hp))


def form_message(error: ValueError, *configs: type) -> str:
    """A config's refusal in the form's words: the option's label where the message names its flag."""
    text = str(error)
    for config in configs:
        for f, option in options(config):
            # quack.config names an option in its messages as its command-line flag.
            flag = "--" + f.name.replace("_", "-")
            if text.startswith(flag + " "):
                return f"“{option.label}” {text[len(flag) + 1:]}"
    return text


def option_inputs(config: type, columns: list, start: int) -> dict:
    """One number input per form option of ``config``, placed in turn from ``columns[start]``.

    The bounds, step and default are the option's own, so the form offers exactly what
    the config accepts (up to the form's tighter upper end, where one is set).
    """
    values = {}
    for i, (f, option) in enumerate((f, o) for f, o in options(config) if o.in_form):
        kind = int if isinstance(f.default, int) else float
        high = option.form_high if option.form_high is not None else option.high
        values[f.name] = columns[(start + i) % len(columns)].number_input(
            option.label,
            min_value=None if option.low is None else kind(option.low),
            max_value=None if high is None else kind(high),
            value=f.default,
            step=None if option.step is None else kind(option.step),
            format=None if kind is int else "%g",
            help=option.help,
            key=f"train_{f.name}",
        )
    return values


with train:
    run = training_runs.find(session.training_id())
    if run is None or run.future.done():
        st.caption(
            f"Trains on the current data set ({charts.markdown_text(session.source()['name'])}) with its tokenizer, "
            "in the background; the pages stay usable meanwhile."
        )
        with st.form("train_form"):
            columns = st.columns(FORM_COLUMNS)
            model_values = option_inputs(AutoencoderConfig, columns, 0)
            train_values = option_inputs(TrainConfig, columns, len(model_values))
            go = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
        if go:
            try:
                model_config = AutoencoderConfig(**model_values)
                train_config = TrainConfig(**train_values)
            except ValueError as error:
                errors.show(form_message(error, AutoencoderConfig, TrainConfig))
            else:
                run = training_runs.start(loaders.current().data_dir, model_config, train_config)
                session.set_training_id(run.run_id)
                st.rerun()

    @st.fragment(run_every=1.0)
    def progress() -> None:
        run = training_runs.find(session.training_id())
        if run is None:
            return
        recorder = run.recorder
        total = max(recorder.total_steps, 1)
        history = recorder.snapshot()
        if run.future.done():
            error = run.future.exception()
            if error is not None:
                errors.show(f"Training {run.run_id} failed: {error}")
            else:
                path = run.future.result()
                how = (f"was stopped at step {recorder.stopped_at:,}" if recorder.stopped_at is not None
                       else "finished")
                st.success(charts.markdown_text(
                    f"Training {run.run_id} {how}; it kept its best checkpoint by validation loss ({run.kept}), "
                    f"saved as {errors.public(str(path))}."))
                if st.button("Use the new checkpoint", type="primary", key="use_trained"):
                    session.set_checkpoint(path)
                    session.set_training_id(None)
                    st.rerun(scope="app")
        else:
            stopping = " — stopping after this batch" if recorder.stopping else ""
            st.progress(min(recorder.step / total, 1.0),
                        text=f"Run {run.run_id}: epoch {recorder.epoch + 1}, step {recorder.step:,} of {total:,}{stopping}")
            if st.button("Stop training", icon=":material/stop:", key="stop_training"):
                training_runs.stop(run.run_id)
        if history:
            st.plotly_chart(charts.loss_curve(history), config=charts.PLOT_CONFIG, key=f"loss_{run.run_id}")

    progress()
