"""Every dashboard page, run headless with Streamlit's AppTest on a small data set and model.

The model is trained once per test session and the dashboard's cache folder is a
temporary one shared by the tests; each test still computes what it checks (a test run
alone passes too), so none relies on another's results.
"""

import hashlib
import html
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean, plotly_array
from dashboard import charts, jobs, map_charts, session, tables, training_runs
from dashboard.jobs import UMAP_DEFAULTS
from dashboard.selection import selected_ids
from quack.config import AutoencoderConfig
from quack.schema import Label, label_names

# Every page runs the whole app headless: seconds each.
pytestmark = pytest.mark.slow



@pytest.fixture(scope="session")
def workspace(tmp_path_factory, trained_sample):
    return {"root": tmp_path_factory.mktemp("dashboard"), "checkpoint": trained_sample["checkpoint"]}


@pytest.fixture()
def env(workspace, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("QUACK_CACHE_DIR", str(workspace["root"] / "cache"))
    monkeypatch.setenv("QUACK_CHECKPOINT_DIR", str(workspace["root"] / "checkpoints"))
    monkeypatch.setenv("QUACK_CHECKPOINT", str(workspace["checkpoint"]))
    monkeypatch.setenv("QUACK_SAMPLE_SIZE", "300")
    monkeypatch.delenv("QUACK_DATA_ROOTS", raising=False)
    return workspace


def run_page(page: str | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def plain(markdown: str) -> str:
    """Text as a browser shows it, from Markdown whose punctuation the dashboard escaped."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def markup(markdown: str) -> bool:
    """Whether Markdown holds a tag, link or image that was not escaped."""
    return re.search(r"(?<!\\)[<\[]", markdown) is not None


def errors_of(at: AppTest) -> list[str]:
    return [plain(e.value) for e in at.error]


def shared(env, name: str) -> Path:
    """A path inside the dashboard's cache folder, which the server shares by default."""
    folder = Path(env["root"]) / "cache" / "shared-by-tests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name



def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def built_rows(env, prefix: str) -> int:
    """Rows of the data set the dashboard built from a source (sample or a path)."""
    (info,) = (Path(env["root"]) / "cache" / "datasets").glob(f"{prefix}-*/info.json")
    return json.loads(info.read_text())["rows"]


def rows_of(env, tmp_path, records: Path) -> int:
    """Rows a data set of ``records`` has when built apart from the dashboard, with the model's tokenizer."""
    from quack.data.build import build_dataset
    from quack.model.encoding import load_checkpoint

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


def test_latent_map_colours_by_time_and_by_scan(env):
    at = run_page()
    at.selectbox(key="map_colour").set_value("time").run()
    assert_clean(at)
    (trace,) = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if "colorbar" in t.get("marker", {})]
    assert trace["marker"]["colorbar"]["title"]["text"] == "Hours from the first record", "one scan: hours"
    days = plotly_array(trace["marker"]["color"])
    assert np.isfinite(days).all() and days.min() >= 0
    at.selectbox(key="map_colour").set_value("scan").run()
    assert_clean(at)
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert any(name.startswith("sample") for name in names), names


def test_time_since_first_leaves_records_without_a_time_blank():
    from dashboard.map_layers import time_since_first

    stamps = pd.Series(pd.to_datetime(["2024-01-02T00:00:00Z", None, "2024-01-01T12:00:00Z"], utc=True))
    hours, unit = time_since_first(stamps)
    assert unit == "hours" and hours[0] == 12 and np.isnan(hours[1]) and hours[2] == 0.0
    days, unit = time_since_first(pd.Series(pd.to_datetime(["2024-01-01", "2024-01-31"], utc=True)))
    assert unit == "days" and days.tolist() == [0.0, 30.0]
    assert np.isnan(time_since_first(pd.Series([None, None]))[0]).all()


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


def test_latent_map_counts_the_records_sharing_the_chosen_latent_instead_of_listing_ties(env):
    run_page()
    latents = jobs.store().get(jobs.encoded_key(sample_identity(env), False)).latents
    _, group, counts = np.unique(latents, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    shared = np.flatnonzero(counts[group] > 1)
    assert len(shared), "the sample has records of the same few tokens (echo or discard without a response)"
    record = int(shared[0])
    same = np.flatnonzero(group == group[record])
    at = run_page(**{session.RECORD: record})
    assert_clean(at)
    assert any(c.value.startswith(f"{len(same) - 1:,} other records share this exact latent") for c in at.caption)
    near = at.dataframe[-1].value
    assert len(near) and not np.isin(near["id"], same).any(), "the ties are counted, not listed"


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


def load_path(at: AppTest, typed: str) -> AppTest:
    at.radio(key="data_kind").set_value("path").run()
    at.text_input(key="data_path").input(typed).run()
    return at.button(key="data_load").click().run()


def test_path_boxes_refuse_everything_outside_the_shared_folders_in_one_sentence(env, tmp_path):
    from quack.sample.generator import write_sample

    real, _ = write_sample(tmp_path / "outside.json", n=20, seed=2)
    seen = set()
    at = run_page("data")
    folder = shared(env, "")
    for typed in (str(real), str(tmp_path / "missing.json"), "/", "/proc/self/environ",
                  f"{folder}/{os.path.relpath(real, folder)}"):
        load_path(at, typed)
        assert not at.exception and len(at.error) == 1, typed
        seen.add(errors_of(at)[0])
    at = run_page("model")
    for typed in ("/etc/passwd", str(tmp_path / "missing.ckpt")):
        at.text_input(key="ckpt_path").input(typed).run()
        at.button(key="ckpt_use_path").click().run()
        assert not at.exception and len(at.error) == 1, typed
        seen.add(errors_of(at)[0])
    (sentence,) = seen
    assert sentence.startswith("That path is not a file or folder this server shares")
    assert str(tmp_path) not in sentence and "passwd" not in sentence
    assert metrics(at)["Embedding / hidden"] == "16 / 32", "the session keeps its checkpoint"
    assert session.SOURCE not in at.session_state, "and its data"


def test_errors_name_no_server_path_outside_the_shared_folders(env, monkeypatch, tmp_path):
    hidden = tmp_path / "private-place" / "gone.ckpt"
    monkeypatch.setenv("QUACK_CHECKPOINT", str(hidden))
    at = run_page()
    assert not at.exception and len(at.error) == 1
    assert "private-place" not in at.error[0].value and "[server path]" in errors_of(at)[0]


def test_the_served_app_shows_no_error_details():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and newer

    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


def test_data_page_file_without_measurements_is_refused(env):
    junk = shared(env, "junk.json")
    junk.write_text("this is not json\n{\"also\": \"not a measurement\"}\n")
    at = load_path(run_page("data"), str(junk))
    assert not at.exception
    assert len(at.error) == 1 and "junk.json" in errors_of(at)[0]


def test_data_page_loads_a_file_on_the_server(env, tmp_path):
    from quack.sample.generator import write_sample

    other, _ = write_sample(shared(env, "other.json"), n=120, seed=9)
    at = run_page("data", **{session.SELECTION: [1, 2], session.RECORD: 2})
    load_path(at, "shared-by-tests/other.json")
    assert_clean(at)
    chosen = at.session_state[session.SOURCE]
    assert chosen["kind"] == "path" and chosen["name"] == "other.json" and chosen["paths"] == [str(other.resolve())]
    assert metrics(at)["Records"] == f"{rows_of(env, tmp_path, other):,}"
    assert session.SELECTION not in at.session_state and session.RECORD not in at.session_state, (
        "ids of the old data set are forgotten"
    )


def test_model_page_shows_the_model_and_refuses_a_wrong_checkpoint(env):
    at = run_page("model")
    assert_clean(at)
    shown = metrics(at)
    assert int(shown["Parameters"].replace(",", "")) > 0 and shown["Embedding / hidden"] == "16 / 32"
    bad = shared(env, "not-a-model.ckpt")
    bad.write_bytes(b"definitely not a checkpoint")
    at.text_input(key="ckpt_path").input(str(bad)).run()
    at.button(key="ckpt_use_path").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "not-a-model.ckpt" in errors_of(at)[0]
    assert metrics(at)["Embedding / hidden"] == "16 / 32", "the previous checkpoint stays in use"


def test_model_page_refuses_a_checkpoint_claiming_a_huge_model_and_keeps_no_trace_of_it(env):
    from test_settings import crafted_checkpoint

    uploads = Path(env["root"]) / "cache" / "uploads"
    before = {p for p in uploads.rglob("*")} if uploads.is_dir() else set()
    at = run_page("model")
    at.get("file_uploader")[0].upload("huge.ckpt", crafted_checkpoint(10**9)).run()
    at.button(key="ckpt_use_upload").click().run()
    assert not at.exception and len(at.error) == 1
    assert re.fullmatch(r"'huge\.ckpt' claims hyperparameters quack does not build \(num_embeddings .*\)[^.]*\.",
                        errors_of(at)[0])
    assert metrics(at)["Embedding / hidden"] == "16 / 32"
    assert {p for p in uploads.rglob("*")} == before, "the refused upload is deleted at once"
    assert not any("huge" in str(option) for option in at.selectbox(key="ckpt_pick").options)


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
    assert number_inputs["Hidden size (even)"].value == AutoencoderConfig().hidden_size, \
        "the form starts from AutoencoderConfig's defaults"
    number_inputs["Hidden size (even)"].set_value(15)
    at.button[[b.label for b in at.button].index("Start training")].click().run()
    assert not at.exception
    assert errors_of(at) == ["“Hidden size (even)” must be even (half per encoder direction), got 15."]
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
    # Led by the best-scoring template; below it the list is re-ordered for distinct templates.
    assert candidates["p_censored"].iloc[0] == candidates["p_censored"].max()
    assert set(candidates["label"]) == {"undetermined"}
    at.slider(key="cluster_size").set_value(10).run()
    assert_clean(at)
    assert int(metrics(at)["Clusters"]) >= 1


def pattern_box(at: AppTest):
    return [t for t in at.text_area if t.label.startswith("Pattern")][0]


def click(at: AppTest, label: str) -> AppTest:
    return at.button[[b.label for b in at.button].index(label)].click().run()


def test_discover_page_saves_a_fingerprint_and_relabels(env):
    at = run_page("discover")
    at.slider(key="cluster_size").set_value(10).run()
    at.text_input(key="fp_file").input("mine.json").run()
    name_box = [t for t in at.text_input if t.label == "Fingerprint name"][0]
    name_box.input("e_unk_test_everything").run()
    pattern_box(at).input("HTTP|html|\\d").run()
    click(at, "Save fingerprint")
    assert_clean(at)
    fp_file = Path(env["root"]) / "cache" / "fingerprints" / "mine.json"
    assert json.loads(fp_file.read_text().splitlines()[0])["fingerprint"] == "e_unk_test_everything"
    click(at, "Relabel the data with my fingerprints")
    assert_clean(at)
    assert any("Relabelled" in s.value for s in at.success)
    assert session.RELABELLED in at.session_state
    click(at, "Save fingerprint")
    assert any("already has a fingerprint" in e for e in errors_of(at))


def test_discover_page_stops_a_pattern_that_runs_too_long_in_one_sentence(env):
    at = run_page("discover")
    at.slider(key="cluster_size").set_value(10).run()
    started = time.monotonic()
    pattern_box(at).input("(.|.)+(?<=\\x00)").run(timeout=60)
    assert time.monotonic() - started < 30
    assert not at.exception and len(at.error) == 1
    assert re.fullmatch(r"The pattern '\(\.\|\.\)\+\(\?<=\\x00\)' in the Discover page's pattern box ran longer "
                        r"than [^;]*; simplify it [^.]*\.", errors_of(at)[0])
    assert not any(m.label == "Matches in the cluster" for m in at.metric)


def test_fingerprint_files_are_names_in_one_folder_and_the_package_is_never_written(env, tmp_path):
    from quack.fingerprints.labels import shipped_fingerprint_files

    shipped = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped_fingerprint_files()}
    folder = Path(env["root"]) / "cache" / "fingerprints"
    at = run_page("discover")
    at.slider(key="cluster_size").set_value(10).run()
    pattern_box(at).input("planted").run()
    for typed in ("../../planted/new/evil.py", str(tmp_path / "evil.json"), *map(str, shipped), ".hidden"):
        at.text_input(key="fp_file").input(typed).run()
        for button in ("Save fingerprint", "Relabel the data with my fingerprints"):
            click(at, button)
            assert not at.exception and len(at.error) == 1, (typed, button)
            assert "cannot be used as the fingerprint file's name" in errors_of(at)[0]
    assert not list(tmp_path.iterdir()) and not (Path(env["root"]) / "planted").exists()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in shipped} == shipped
    assert all(p.parent == folder for p in folder.rglob("*")), "nothing outside the fingerprint folder either"
    at.text_input(key="fp_file").input("never-saved.json").run()
    click(at, "Relabel the data with my fingerprints")
    assert errors_of(at) == ["There is no fingerprint file named 'never-saved.json' yet; save a fingerprint to it first."]


def export(at: AppTest, name: str) -> AppTest:
    at.text_input(key="export_name").input(name).run()
    return at.button(key="export_write").click().run()


def test_export_page_writes_with_the_writer_and_offers_downloads(env):
    at = run_page("export")
    assert_clean(at)
    at.radio(key="export_rows").set_value("labelled only (filtered)").run()
    export(at, "labelled-export")
    assert_clean(at)
    out = Path(env["root"]) / "cache" / "exports" / "labelled-export"
    summary = json.loads((out / "metadata.json").read_text())
    # Where it is on the server, in full: the export folder is one of the dashboard's own.
    assert any(plain(s.value) == f"Wrote the export labelled-export to {out}" for s in at.success)
    shard = pd.read_parquet(next(out.glob("part-*.parquet")))
    assert set(shard["label_name"]) <= {"censored", "uncensored"} and (shard["label"] != 0).all()
    download = at.dataframe[-1].value
    assert (download["label_name"].to_numpy() == label_names(download["label"].to_numpy())).all()
    assert metrics(at)["Undetermined"] == "0" and int(summary["censored"]) + int(summary["uncensored"]) > 0
    at.button(key="export_write").click().run()
    assert errors_of(at) == ["An export named 'labelled-export' already exists; choose another name."]
    at.segmented_control(key="export_format").set_value("CSV").run()
    assert_clean(at)
    assert at.get("download_button")[0].proto.label.endswith(".csv")
    assert "reconstruction_loss" not in at.dataframe[-1].value.columns
    at.toggle(key="export_loss").set_value(True).run()
    assert_clean(at)
    losses = at.dataframe[-1].value["reconstruction_loss"]
    assert losses.notna().all() and (losses > 0).all()


def test_export_names_a_folder_in_the_export_folder_and_writes_nowhere_else(env, tmp_path):
    exports = Path(env["root"]) / "cache" / "exports"
    before = set(exports.iterdir()) if exports.is_dir() else set()
    at = run_page("export")
    for typed in (str(tmp_path / "quack-export"), "/etc/quack-export", "../escaped", "a/b", ".hidden"):
        export(at, typed)
        assert not at.exception and len(at.error) == 1, typed
        assert "cannot be used as the export folder's name" in errors_of(at)[0]
    assert not list(tmp_path.iterdir()) and not (Path(env["root"]) / "cache" / "escaped").exists()
    assert (set(exports.iterdir()) if exports.is_dir() else set()) == before


def test_export_page_reports_an_export_removed_since_in_one_sentence(env):
    gone = Path(env["root"]) / "cache" / "exports" / "never-written"
    at = run_page("export", **{session.WRITTEN: str(gone)})
    assert not at.exception and len(at.error) == 1 and "never-written" in errors_of(at)[0]
    assert at.get("download_button"), "the rest of the page still works"


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
    fig = map_charts.map_figure(coords, hover, names, "Label", True, highlight=[12])
    by_name = {t.name.split(" ")[0]: t for t in fig.data}
    assert by_name["censored"].marker.color == Label.CENSORED.colour
    assert "<i>&lt;b&gt;blocked&lt;/b&gt; a -&gt; b</i>" in by_name["censored"].hovertext[0], "hover text is escaped"
    assert sorted(int(c) for c in by_name["censored"].customdata) == [10, 13]
    assert by_name["chosen"].customdata[0] == 12
    assert [t.name.split(" ")[0] for t in fig.data][:3] == ["undetermined", "uncensored", "censored"], "censored on top"
    assert all(t.type == "scattergl" for t in fig.data)
    fig3 = map_charts.map_figure(np.zeros((6, 3)), hover, np.linspace(0, 1, 6), "Classifier probability", False)
    assert fig3.data[0].type == "scatter3d"


def test_data_page_upload_of_a_bad_file_gives_one_sentence(env):
    at = run_page("data")
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").upload("broken.json", b"{not json at all\n").run()
    at.button(key="upload_load").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.json" in errors_of(at)[0]
    assert session.SOURCE not in at.session_state


def test_data_page_upload_of_measurements_switches_the_data(env, tmp_path):
    from quack.sample.generator import write_sample

    upload, _ = write_sample(tmp_path / "upload.json", n=60, seed=11)
    at = run_page("data")
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").upload("upload.json", upload.read_bytes()).run()
    at.button(key="upload_load").click().run()
    assert_clean(at)
    chosen = at.session_state[session.SOURCE]
    assert chosen["kind"] == "upload" and chosen["name"] == "upload.json"
    assert metrics(at)["Records"] == f"{rows_of(env, tmp_path, upload):,}"


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").upload(name, data).run()
    return at.button(key="upload_load").click().run()


def kept_uploads(env) -> set[Path]:
    return {p for p in (Path(env["root"]) / "cache" / "uploads").rglob("*") if p.is_file()}


def test_data_uploads_are_bounded_by_size_and_by_rows_and_a_refused_one_is_not_kept(env, monkeypatch, tmp_path):
    from quack.sample.generator import write_sample

    records, _ = write_sample(tmp_path / "many.json", n=60, seed=12)
    before = kept_uploads(env)
    monkeypatch.setenv("QUACK_UPLOAD_MAX_ROWS", "10")
    at = upload(run_page("data"), "many.json", records.read_bytes())
    assert errors_of(at) == [
        "many.json holds more than 10 measurements, more than an upload may (QUACK_UPLOAD_MAX_ROWS); "
        "put the files in a folder this server shares and load them from there."
    ]
    monkeypatch.setenv("QUACK_UPLOAD_LIMIT_MB", "1")
    at = upload(run_page("data"), "big.json", b"{}\n" * 400_000)
    assert not at.exception and len(at.error) == 1 and "QUACK_UPLOAD_LIMIT_MB" in errors_of(at)[0]
    assert kept_uploads(env) == before
    assert session.SOURCE not in at.session_state


def test_a_truncated_upload_gets_the_pages_advice_and_loads_partially_when_asked(env, tmp_path):
    import gzip

    from quack.sample.generator import write_sample

    records, _ = write_sample(tmp_path / "cut.json", n=80, seed=13)
    packed = gzip.compress(records.read_bytes())
    at = upload(run_page("data"), "cut.json.gz", packed[: len(packed) // 2])
    assert not at.exception and len(at.error) == 1
    assert "--keep-partial" not in errors_of(at)[0]
    assert "tick “Keep the rows read before damage in a truncated file” on the Data page" in errors_of(at)[0]
    at.checkbox(key="upload_keep_partial").check().run()
    at.button(key="upload_load").click().run()
    assert_clean(at)
    assert at.session_state[session.SOURCE]["keep_partial"] is True
    assert 0 < int(metrics(at)["Records"].replace(",", "")) < rows_of(env, tmp_path, records)


def test_html_and_markdown_in_an_upload_and_its_fields_show_as_text(env, tmp_path):
    from quack.sample.generator import write_sample

    records, _ = write_sample(tmp_path / "fields.json", n=40, seed=14)
    domain, vp = "<b>bold</b>[link](http://evil.example)", "<i>vp</i>"
    country = "<a href='http://evil.example'>c</a>"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    for line in lines:
        line.update(test_url=domain, vp=vp)
        line["location"]["country_code"] = country
    name = "<b>up</b>![img](http://evil.example/x.png).json"
    at = upload(run_page("data"), name, "\n".join(map(json.dumps, lines)).encode())
    assert_clean(at)
    (sidebar,) = [m.value for m in at.markdown if 'class="qk-side"' in m.value]
    assert "&lt;b&gt;up&lt;/b&gt;" in sidebar and "<b>up" not in sidebar
    (heading,) = [h.value for h in at.subheader if "up" in h.value]
    assert plain(heading) == name and not markup(heading)
    (raw,) = [m.value for m in at.markdown if m.value.startswith("**Raw response")]
    assert domain in plain(raw) and not markup(raw)
    by_country = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]
    assert by_country["data"][0]["y"] == [html.escape(country)]
    at.switch_page("app_pages/attention.py").run()
    assert_clean(at)
    (fields,) = [m.value for m in at.markdown if "vantage point" in m.value]
    assert domain in plain(fields) and vp in plain(fields) and not markup(fields)


def test_figures_escape_every_value_from_data():
    import pandas as pd

    marked = {"domain": "<b>d</b>", "vp": "<i>v</i>", "country": "<a href='x'>c</a>", "status": "<b>200</b>",
              "snippet": "<i>s</i>"}
    hover = pd.DataFrame({c: [marked.get(c, 0)] * 3 for c in tables.HOVER_COLUMNS}).assign(id=[1, 2, 3])
    for colour, categorical in (("domain", True), ("vp", True)):
        fig = map_charts.map_figure(np.zeros((3, 2)), hover, hover[colour].to_numpy(), "<b>colour</b>", categorical,
                                title="<i>title</i>")
        assert [t.name for t in fig.data] == [f"{html.escape(marked[colour])} (3)"], "legends are escaped"
        assert fig.layout.title.text == "&lt;i&gt;title&lt;/i&gt;"
        assert all(html.escape(marked[c]) in fig.data[0].hovertext[0] for c in tables.HOVER_COLUMNS[1:])
        assert not any(marked[c] in fig.data[0].hovertext[0] for c in tables.HOVER_COLUMNS[1:]), "none left raw"
    numeric = map_charts.map_figure(np.zeros((3, 2)), hover, np.ones(3), "<b>colour</b>", False)
    assert numeric.data[0].name == "&lt;b&gt;colour&lt;/b&gt;"
    bars = charts.counts_bar(pd.Series({"<b>x</b>": 3, "plain": 1}), "By <i>country</i>")
    assert list(bars.data[0].y) == ["plain", "&lt;b&gt;x&lt;/b&gt;"] and "<i>" not in bars.layout.title.text
    assert charts.markdown_text("[a](http://e)\n<b>*x*</b>") == r"\[a\]\(http\:\/\/e\) \<b\>\*x\*\<\/b\>"


def test_attention_shading_spans_the_records_own_range_and_shows_its_scale():
    # Nearly uniform attention, as a trained decoder often gives: the most attended
    # token must still stand out at full strength and the least fade out.
    page = charts.attention_text_html(["<s>", "GET", "</s>"], np.array([0.333, 0.335, 0.332]), ["special", "sent", "special"])
    alphas = [float(a) for a in re.findall(r"rgba\(209,73,91,([0-9.]+)\)\">[^<]", page)[:3]]
    assert alphas == [0.33, 0.9, 0.04]
    assert "0.3320" in page and "0.3350" in page and "&lt;s&gt;" in page
