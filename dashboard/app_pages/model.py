"""Model: choose a checkpoint, or train a new one while watching its loss."""

import streamlit as st

from dashboard import charts, state
from quack.encoding import best_device
from quack.training import MODEL_DEFAULTS

st.title("Model")

choose, train = st.tabs(["Checkpoint", "Train a new model"])

with choose:
    found = state.list_checkpoints()
    current = state.checkpoint_path().resolve()
    options = found if current in found else [current, *found]
    picked = st.selectbox(
        "Checkpoint", options, index=options.index(current), format_func=state.describe_checkpoint, key="ckpt_pick"
    )
    extra = st.columns(2)
    typed = extra[0].text_input("…or a checkpoint file on this server", key="ckpt_path")
    uploaded = extra[1].file_uploader("…or upload one (.ckpt)", type=["ckpt"], key="ckpt_upload")
    candidate = None
    if typed.strip() and st.button("Use this file", key="ckpt_use_path"):
        candidate = typed.strip()
    elif uploaded is not None and st.button("Use the upload", key="ckpt_use_upload"):
        candidate = str(state.save_upload(uploaded.name, uploaded.getvalue()))
    elif picked != current:
        candidate = str(picked)
    if candidate is not None:
        try:
            state.load_model(candidate)
        except (ValueError, OSError) as error:
            # The session keeps its checkpoint; the page goes on showing it.
            st.error(str(error))
        else:
            st.session_state[state.CHECKPOINT] = candidate
            for key in (state.SELECTION, state.RECORD, state.LABEL_OVERRIDE):
                st.session_state.pop(key, None)
            st.rerun()

    model = state.load_model()
    hp = model.hparams
    cards = st.columns(5)
    cards[0].metric("Device for encoding", best_device().type.upper())
    cards[1].metric("Parameters", f"{sum(p.numel() for p in model.parameters()):,}")
    cards[2].metric("Vocabulary", f"{hp.num_embeddings:,}")
    cards[3].metric("Embedding / hidden", f"{hp.embed_size} / {hp.hidden_size}")
    cards[4].metric("File size", f"{state.checkpoint_path().stat().st_size / 1e6:.1f} MB")
    with st.expander("All hyperparameters"):
        st.json({k: v for k, v in dict(hp).items()})

with train:
    run = state.training_run(st.session_state.get(state.TRAINING))
    if run is None or run.future.done():
        st.caption(
            f"Trains on the current data set ({state.source()['name']}) with its tokenizer, in the background; "
            "the pages stay usable meanwhile."
        )
        with st.form("train_form"):
            cols = st.columns(4)
            embed = cols[0].number_input("Embedding size", 8, 1024, MODEL_DEFAULTS["embed_size"], 8)
            hidden = cols[1].number_input("Hidden size (even)", 8, 2048, MODEL_DEFAULTS["hidden_size"], 8)
            layers = cols[2].number_input("Decoder layers", 1, 4, MODEL_DEFAULTS["layers"])
            ratio = cols[3].slider("Teacher forcing ratio", 0.0, 1.0, float(MODEL_DEFAULTS["teacher_forcing_ratio"]))
            cols = st.columns(4)
            rate = cols[0].number_input("Learning rate", 1e-5, 1.0, float(MODEL_DEFAULTS["learning_rate"]), format="%.4f")
            epochs = cols[1].number_input("Epochs", 1, 500, 10)
            batch = cols[2].number_input("Batch size", 1, 1024, 32)
            seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0)
            go = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
        if go:
            if hidden % 2:
                st.error(f"The hidden size must be even (half per encoder direction), got {hidden}.")
            else:
                s = state.current()
                options = {"embed_size": int(embed), "hidden_size": int(hidden), "layers": int(layers),
                           "teacher_forcing_ratio": float(ratio), "learning_rate": float(rate)}
                run = state.start_training(s.data_dir, options, int(epochs), int(batch), int(seed))
                st.session_state[state.TRAINING] = run.run_id
                st.rerun()

    @st.fragment(run_every=1.0)
    def progress() -> None:
        run = state.training_run(st.session_state.get(state.TRAINING))
        if run is None:
            return
        recorder = run.recorder
        total = max(recorder.total_steps, 1)
        history = recorder.snapshot()
        if run.future.done():
            error = run.future.exception()
            if error is not None:
                st.error(f"Training {run.run_id} failed: {error}")
            else:
                path = run.future.result()
                st.success(f"Training {run.run_id} finished; the best checkpoint is saved as {path}.")
                if st.button("Use the new checkpoint", type="primary", key="use_trained"):
                    st.session_state[state.CHECKPOINT] = str(path)
                    st.session_state.pop(state.TRAINING, None)
                    st.rerun(scope="app")
        else:
            stopping = " — stopping after this batch" if recorder.stopping else ""
            st.progress(min(recorder.step / total, 1.0),
                        text=f"Run {run.run_id}: epoch {recorder.epoch + 1}, step {recorder.step:,} of {total:,}{stopping}")
            if st.button("Stop training", icon=":material/stop:", key="stop_training"):
                recorder.stop()
        if history:
            st.plotly_chart(charts.loss_curve(history), config=charts.PLOT_CONFIG, key=f"loss_{run.run_id}")

    progress()
