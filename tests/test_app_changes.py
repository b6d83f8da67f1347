"""The Changes page run headless with Streamlit's AppTest on a sample of days, and on a data set without times."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from dashboard import session
from quack.cli.main import main
from quack.discovery.changes import TIME_UNKNOWN
from quack.sample.days import write_days
from quack.schema import columns

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "quack-sample.ckpt"


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes-page")
    _, truth = write_days(root / "scans", 8, n=300, seed=5)
    assert main(["ingest", str(root / "scans"), "--out", str(root / "data"), "--tokenizer-from", str(SHIPPED),
                 "--workers", "1"]) == 0
    return {"root": root, "data": root / "data", "truth": json.loads(truth.read_text())}


@pytest.fixture()
def env(days, dashboard_env, monkeypatch):
    dashboard_env("changes-dashboard", 300)
    return days


def opened(monkeypatch, data: Path, **state) -> AppTest:
    monkeypatch.setenv("QUACK_DATA", str(data))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.switch_page("app_pages/changes.py").run()


def shown_with(at: AppTest, column: str):
    """The table on the page that has ``column``."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def test_changes_over_time_between_periods_and_new_templates(env, monkeypatch):
    truth = env["truth"]
    new = next(e for e in truth["events"] if e["kind"] == "new_blockpage")
    scans = truth["scans"]
    at = opened(monkeypatch, env["data"], changes_before=(scans[0], scans[new["day"] - 1]),
                changes_after=(scans[new["day"]], scans[new["day"]]), changes_threshold=0.0, changes_k=10)
    assert_clean(at)
    assert at.get("plotly_chart"), "the chart of shares per scan"
    assert at.multiselect(key="changes_groups_country").value, "the groups that moved most are drawn"
    table = shown_with(at, "score")
    assert new["country"] in table.head(10)["group"].tolist()
    at.toggle(key="changes_templates").set_value(True).run()
    assert_clean(at)
    templates = shown_with(at, "snippet")
    assert len(templates) and any(new["country"] in c for c in templates["countries"])
    assert templates["snippet"].str.len().gt(0).all()
    example = int(templates.iloc[0]["example"])
    at.button(key="changes_open").click().run()
    assert_clean(at)
    assert at.session_state["attention_record"] == example or at.number_input(key="attention_record").value == example
    # From a new template to a fingerprint: its records become the selection Discover proposes from.
    at = opened(monkeypatch, env["data"], changes_before=(scans[0], scans[new["day"] - 1]),
                changes_after=(scans[new["day"]], scans[new["day"]]), changes_k=10, changes_templates=True)
    records = int(shown_with(at, "snippet").iloc[0]["records"])
    at.button(key="changes_propose").click().run()
    assert_clean(at)
    assert len(at.session_state[session.SELECTION]) == records
    assert at.session_state["proposal_origin"] == "selection"
    assert at.segmented_control(key="proposal_origin").value == "selection"


def test_a_data_set_without_times_says_so_once(env, monkeypatch, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(env["data"], old)
    table = pq.read_table(old / "rows.parquet")
    pq.write_table(table.drop_columns(list(columns("optional"))), old / "rows.parquet")
    at = opened(monkeypatch, old)
    assert_clean(at)
    said = [i.value for i in at.info]
    assert said.count(TIME_UNKNOWN) == 1
    assert not at.get("plotly_chart")
