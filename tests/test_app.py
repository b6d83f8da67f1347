"""Every dashboard page, run headless with Streamlit's AppTest on a small data set and model.

The model is trained once per test session and the dashboard's cache folder is a
temporary one shared by the tests; each test still computes what it checks (a test run
alone passes too), so none relies on another's results.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import charts, jobs, session, tables, training_runs
from dashboard.results import UMAP_DEFAULTS
from dashboard.selection import selected_ids
from quack.schema import Label, label_names

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
TIMEOUT = 300


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    from quack.build import build_dataset
    from quack.sample import write_sample
    from quack.training import fit

    root = tmp_path_factory.mktemp("dashboard")
    records, _ = write_sample(root / "train.json", n=400, seed=3)
    build_dataset([str(records)], root / "train", vocab_size=1500, max_tokens=96)
    result = fit(
        root / "train", root / "run", model_options={"embed_size": 16, "hidden_size": 32},
        max_epochs=1, batch_size=64, progress_bar=False, logger="none", patience=0,
    )
    return {"root": root, "checkpoint": result.checkpoint}


@pytest.fixture()
def env(workspace, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(workspace["root"] / "cache"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(workspace["root"] / "checkpoints"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(workspace["checkpoint"]))
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "300")
    return workspace


def run_page(page: str | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def built_rows(env, prefix: str) -> int:
    """Rows of the data set the dashboard built from a source (sample or a path)."""
    (info,) = (Path(env["root"]) / "cache" / "datasets").glob(f"{prefix}-*/info.json")
    return json.loads(info.read_text())["rows"]


def rows_of(env, tmp_path, records: Path) -> int:
    """Rows a data set of ``records`` has when built apart from the dashboard, with the model's tokenizer."""
    from quack.build import build_dataset
    from quack.encoding import load_checkpoint

    tokenizer = load_checkpoint(env["checkpoint"]).tokenizer
    return build_dataset([str(records)], tmp_path / "expected", tokenizer=tokenizer)["rows"]


def test_the_app_opens_on_the_latent_map_of_the_sample(env):
    at = run_page()
    assert_clean(at)
    assert at.title[0].value == "Latent map"
    assert any("Map: **" in c.value for c in at.caption)
    sample = Path(env["root"]) / "cache" / "sample-300-0" / "sample.json"
    assert len(sample.read_text().splitlines()) == 300
    assert metrics(at)["Records"] == f"{built_rows(env, 'sample'):,}"


def test_latent_map_colour_and_projection_controls_change_the_chart(env):
    at = run_page()
    first = at.get("plotly_chart")[0].proto.spec
    at.selectbox(key="map_colour").set_value("loss").run()
    assert_clean(at)
    by_loss = at.get("plotly_chart")[0].proto.spec
    assert by_loss != first and "Reconstruction loss" in by_loss
    at.segmented_control(key="map_method").set_value("PCA").run()
    assert_clean(at)
    assert any(c.value == "Map: **PCA**" for c in at.caption)
    at.segmented_control(key="map_dims").set_value("3D").run()
    assert_clean(at)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert traces and all(t["type"] == "scatter3d" for t in traces)


def sample_identity(env) -> jobs.Identity:
    """The identity the dashboard gives the built-in sample under the test checkpoint."""
    (data_dir,) = (Path(env["root"]) / "cache" / "datasets").glob("sample-*")
    return jobs.Identity.of(data_dir, env["checkpoint"])


def test_latent_map_swaps_in_umap_when_it_is_ready(env):
    at = run_page()
    assert_clean(at)
    key = jobs.umap_key(sample_identity(env), 2, **UMAP_DEFAULTS)
    job = jobs.store().submit(key, lambda: None, start=False)
    assert job is not None, "the page started the UMAP map"
    if not job.done():
        assert any(c.value == "Map: **PCA**" for c in at.caption), "PCA is shown while UMAP computes"
        assert any("Computing the UMAP map" in i.value for i in at.info)
    coords = job.result(timeout=600)
    assert coords.shape == (built_rows(env, "sample"), 2)
    at.run()
    assert_clean(at)
    assert any(c.value == "Map: **UMAP**" for c in at.caption)


def test_latent_map_record_choice_lists_its_neighbours(env):
    at = run_page(**{session.RECORD: 5})
    assert_clean(at)
    tables = [d.value for d in at.dataframe]
    neighbours = tables[-1]
    assert len(neighbours) == 10 and 5 not in neighbours["id"].tolist()
    assert list(neighbours["distance"]) == sorted(neighbours["distance"])


def test_latent_map_lists_a_selection_and_tells_when_there_is_none(env):
    at = run_page()
    assert any("Nothing selected" in i.value for i in at.info)
    at = run_page(**{session.SELECTION: [1, 2, 3]})
    assert_clean(at)
    assert any("3 records selected" in c.value for c in at.caption)
    assert at.dataframe[0].value["id"].tolist() == [1, 2, 3]


def test_data_page_counts_and_filters(env):
    at = run_page("data")
    assert_clean(at)
    counts = metrics(at)
    total = int(counts["Records"].replace(",", ""))
    parts = sum(int(counts[k].replace(",", "")) for k in ("Censored", "Undetermined", "Uncensored"))
    assert total == parts == built_rows(env, "sample")
    at.multiselect(key="filter_label").set_value(["censored"]).run()
    assert_clean(at)
    assert set(at.dataframe[0].value["label"]) == {"censored"}
    at.text_input(key="filter_domain").input("no-such-domain-anywhere").run()
    assert any("No record matches" in w.value for w in at.warning)


def test_data_page_bad_path_gives_one_sentence_and_keeps_the_sample(env):
    at = run_page("data")
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").input("/no/such/quack/file.json").run()
    at.button(key="data_load").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "does not exist" in at.error[0].value
    assert session.SOURCE not in at.session_state
    assert metrics(at)["Records"] == f"{built_rows(env, 'sample'):,}", "the page goes on with the sample"


def test_data_page_file_without_measurements_is_refused(env, tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text("this is not json\n{\"also\": \"not a measurement\"}\n")
    at = run_page("data")
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").input(str(junk)).run()
    at.button(key="data_load").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "junk.json" in at.error[0].value


def test_data_page_loads_a_file_on_the_server(env, tmp_path):
    from quack.sample import write_sample

    other, _ = write_sample(tmp_path / "other.json", n=120, seed=9)
    at = run_page("data", **{session.SELECTION: [1, 2], session.RECORD: 2})
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").input(str(other)).run()
    at.button(key="data_load").click().run()
    assert_clean(at)
    chosen = at.session_state[session.SOURCE]
    assert chosen["kind"] == "path" and chosen["name"] == "other.json"
    assert metrics(at)["Records"] == f"{rows_of(env, tmp_path, other):,}"
    assert session.SELECTION not in at.session_state and session.RECORD not in at.session_state, (
        "ids of the old data set are forgotten"
    )


def test_model_page_shows_the_model_and_refuses_a_wrong_checkpoint(env, tmp_path):
    at = run_page("model")
    assert_clean(at)
    shown = metrics(at)
    assert int(shown["Parameters"].replace(",", "")) > 0 and shown["Embedding / hidden"] == "16 / 32"
    bad = tmp_path / "not-a-model.ckpt"
    bad.write_bytes(b"definitely not a checkpoint")
    at.text_input(key="ckpt_path").input(str(bad)).run()
    at.button(key="ckpt_use_path").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "not-a-model.ckpt" in at.error[0].value
    assert metrics(at)["Embedding / hidden"] == "16 / 32", "the previous checkpoint stays in use"


def test_model_page_trains_in_the_background_and_offers_the_result(env):
    at = run_page("model")
    form = at.get("form")[0]
    number_inputs = {n.label: n for n in at.number_input}
    number_inputs["Embedding size"].set_value(8)
    number_inputs["Hidden size (even)"].set_value(16)
    number_inputs["Epochs"].set_value(1)
    number_inputs["Batch size"].set_value(128)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    assert form is not None and not at.exception
    run = training_runs.find(at.session_state[session.TRAINING])
    assert (run.model.embed_size, run.model.hidden_size, run.train.max_epochs) == (8, 16, 1)
    path = run.future.result(timeout=600)
    assert path.is_file() and path.parent == Path(env["root"]) / "checkpoints" / "trained"
    at.run()
    assert any("finished" in s.value for s in at.success)
    assert run.recorder.snapshot(), "the loss history is recorded while training"


def test_model_page_form_refuses_an_odd_hidden_size_in_one_sentence(env):
    at = run_page("model")
    number_inputs = {n.label: n for n in at.number_input}
    assert number_inputs["Hidden size (even)"].value == 256, "the form starts from AutoencoderConfig's defaults"
    number_inputs["Hidden size (even)"].set_value(15)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "even" in at.error[0].value and "15" in at.error[0].value
    assert session.TRAINING not in at.session_state, "no run starts"


def test_attention_page_heatmap_text_and_reconstruction(env):
    at = run_page("attention", **{session.RECORD: 7})
    assert_clean(at)
    assert at.number_input(key="attention_record").value == 7
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)
    ticks = heat["layout"]["xaxis"]["ticktext"]
    assert len(ticks) == len(set(ticks)), "heatmap axis labels are unique"
    assert heat["data"][0]["type"] == "heatmap"
    html = [h.proto.body for h in at.get("html")]
    assert any("qk-tok" in h and "background: rgba(209,73,91," in h for h in html)
    assert any("tokens right" in h for h in html)
    at.segmented_control(key="attention_mode").set_value("Greedy").run()
    assert_clean(at)
    assert any("Reconstruction** (greedy)" in m.value for m in at.markdown)


def test_attention_page_per_field_needs_a_selection(env):
    at = run_page("attention", **{session.RECORD: 0})
    assert any("No records are selected" in w.value for w in at.warning)
    at = run_page("attention", **{session.RECORD: 0, session.SELECTION: list(range(40))})
    assert_clean(at)
    bars = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    field = [b for b in bars if b["data"] and b["data"][0]["type"] == "bar"]
    assert field, "per-field bars drawn for the selection"
    names = {trace["name"] for trace in field[0]["data"]}
    assert names <= {"censored", "uncensored", "undetermined"} and names
    totals = [sum(trace["y"]) for trace in field[0]["data"]]
    assert all(abs(t - 1) < 1e-6 for t in totals)


def test_discover_page_classifier_candidates_and_clusters(env):
    at = run_page("discover")
    assert_clean(at)
    shown = metrics(at)
    assert shown["Held-out accuracy"].endswith("%")
    candidates = at.dataframe[0].value
    assert list(candidates["p_censored"]) == sorted(candidates["p_censored"], reverse=True)
    assert set(candidates["label"]) == {"undetermined"}
    at.slider(key="cluster_size").set_value(10).run()
    assert_clean(at)
    assert int(metrics(at)["Clusters"]) >= 1


def test_discover_page_saves_a_fingerprint_and_relabels(env, tmp_path):
    at = run_page("discover")
    at.slider(key="cluster_size").set_value(10).run()
    fp_file = tmp_path / "mine.json"
    at.text_input(key="fp_file").input(str(fp_file)).run()
    name_box = [t for t in at.text_input if t.label == "Fingerprint name"][0]
    name_box.input("e_unk_test_everything").run()
    pattern_box = [t for t in at.text_area if t.label.startswith("Pattern")][0]
    pattern_box.input("HTTP|html|\\d").run()
    at.button[[b.label for b in at.button].index("Save fingerprint")].click().run()
    assert_clean(at)
    assert json.loads(fp_file.read_text().splitlines()[0])["fingerprint"] == "e_unk_test_everything"
    at.button[[b.label for b in at.button].index("Relabel the data with my fingerprints")].click().run()
    assert_clean(at)
    assert any("Relabelled" in s.value for s in at.success)
    assert session.RELABELLED in at.session_state
    at.button[[b.label for b in at.button].index("Save fingerprint")].click().run()
    assert any("already has a fingerprint" in e.value for e in at.error)


def test_export_page_writes_with_the_writer_and_offers_downloads(env, tmp_path):
    at = run_page("export")
    assert_clean(at)
    out = tmp_path / "written"
    at.text_input(key="export_path").input(str(out)).run()
    at.radio(key="export_rows").set_value("labelled only (filtered)").run()
    at.button(key="export_write").click().run()
    assert_clean(at)
    summary = json.loads((out / "metadata.json").read_text())
    assert any(f"Wrote {out}" in s.value for s in at.success)
    assert metrics(at)["Undetermined"] == "0" and int(summary["censored"]) + int(summary["uncensored"]) > 0
    at.button(key="export_write").click().run()
    assert any("not empty" in e.value for e in at.error)
    at.segmented_control(key="export_format").set_value("CSV").run()
    assert_clean(at)
    assert at.get("download_button")[0].proto.label.endswith(".csv")
    assert "reconstruction_loss" not in at.dataframe[-1].value.columns
    at.toggle(key="export_loss").set_value(True).run()
    assert_clean(at)
    losses = at.dataframe[-1].value["reconstruction_loss"]
    assert losses.notna().all() and (losses > 0).all()


def test_selected_ids_reads_record_ids_from_customdata():
    event = {"selection": {"points": [
        {"point_index": 3, "customdata": [42, "example.com"]},
        {"point_index": 0, "customdata": [7, "x"]},
        {"point_index": 3, "customdata": [42, "example.com"]},
        {"point_index": 1},
    ]}}
    assert selected_ids(event) == [42, 7]
    assert selected_ids({"selection": {"points": []}}) == []
    assert selected_ids(None) == []


def test_map_figure_carries_ids_and_keeps_label_colours():
    import pandas as pd

    coords = np.arange(12, dtype=np.float32).reshape(6, 2)
    hover = pd.DataFrame({c: [str(i) for i in range(6)] for c in tables.HOVER_COLUMNS}).assign(id=range(10, 16))
    hover.loc[0, "snippet"] = "<b>blocked</b> a -> b"
    names = label_names([1, 0, -1, 1, 0, -1])
    fig = charts.map_figure(coords, hover, names, "Label", True, highlight=[12])
    by_name = {t.name.split(" ")[0]: t for t in fig.data}
    assert by_name["censored"].marker.color == Label.CENSORED.colour
    assert by_name["censored"].customdata[0][5] == "&lt;b&gt;blocked&lt;/b&gt; a -&gt; b", "hover text is escaped"
    assert sorted(int(c[0]) for c in by_name["censored"].customdata) == [10, 13]
    assert by_name["chosen"].customdata[0][0] == 12
    assert all(t.type == "scattergl" for t in fig.data)
    fig3 = charts.map_figure(np.zeros((6, 3)), hover, np.linspace(0, 1, 6), "Classifier probability", False)
    assert fig3.data[0].type == "scatter3d"


def test_data_page_upload_of_a_bad_file_gives_one_sentence(env):
    at = run_page("data")
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").upload("broken.json", b"{not json at all\n").run()
    at.button(key="upload_load").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.json" in at.error[0].value
    assert session.SOURCE not in at.session_state


def test_data_page_upload_of_measurements_switches_the_data(env, tmp_path):
    from quack.sample import write_sample

    upload, _ = write_sample(tmp_path / "upload.json", n=60, seed=11)
    at = run_page("data")
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").upload("upload.json", upload.read_bytes()).run()
    at.button(key="upload_load").click().run()
    assert_clean(at)
    chosen = at.session_state[session.SOURCE]
    assert chosen["kind"] == "upload" and chosen["name"] == "upload.json"
    assert metrics(at)["Records"] == f"{rows_of(env, tmp_path, upload):,}"
