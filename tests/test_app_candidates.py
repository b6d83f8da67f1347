"""`quack candidates` writes the list the Discover page shows: same data, same method, same candidates.

A small realistic sample is ingested with the shipped checkpoint's tokenizer and encoded by
`quack encode`; the Discover page opens the encoded folder (``QUACK_DATA``) and ranks by
the latent classifier, chosen explicitly, and the command ranks the same folder by the same
method. The page's candidates table and the command's file must list the same records in
the same order, with the same counts.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from quack.cli.main import main
from quack.model.encoding import SHIPPED_CHECKPOINT

torch.set_num_threads(1)

pytestmark = pytest.mark.slow

#: The page's default length of the list.
PAGE_TOP = 50


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[str, Path]:
    """A realistic sample of 300 measurements, ingested and encoded by the command line."""
    root = tmp_path_factory.mktemp("candidates-app")
    checkpoint = str(SHIPPED_CHECKPOINT)
    assert main(["sample", "--n", "300", "--realistic", "--seed", "5", "--out", str(root / "m.jsonl")]) == 0
    assert main(["ingest", str(root / "m.jsonl"), "--out", str(root / "data"), "--tokenizer-from", checkpoint,
                 "--workers", "1"]) == 0
    assert main(["encode", "--data", str(root / "data"), "--checkpoint", checkpoint, "--out", str(root / "enc"),
                 "--accelerator", "cpu"]) == 0
    return {"root": root, "data": root / "data", "encoded": root / "enc"}


def test_the_command_writes_the_candidates_the_discover_page_lists(encoded, dashboard_env, monkeypatch):
    dashboard_env("candidates-app", 300)
    monkeypatch.setenv("QUACK_DATA", str(encoded["encoded"]))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/discover.py").run()
    assert_clean(at)
    at.selectbox(key="discover_method").set_value("latent_classifier").run()
    assert_clean(at)
    assert at.slider(key="discover_top").value == PAGE_TOP
    (shown,) = [d.value for d in at.dataframe if d.key == "candidates"]

    out = encoded["root"] / "candidates.csv"
    assert main(["candidates", "--data", str(encoded["data"]), "--encoded", str(encoded["encoded"]),
                 "--out", str(out), "--method", "latent_classifier", "--top", str(PAGE_TOP)]) == 0
    written = pd.read_csv(out)

    assert len(written) == len(shown) > 1
    assert set(shown["label"]) == {"undetermined"}
    assert written["record"].tolist() == shown["id"].tolist()
    assert written["rank"].tolist() == list(range(1, len(written) + 1))
    assert (written["method"] == "latent_classifier").all()
    for column in ("records", "vantage_points", "domains"):
        assert written[column].tolist() == shown[column].tolist(), column
    assert written["countries"].fillna("").tolist() == shown["countries"].tolist()
    assert np.allclose(written["score"], shown["p_censored"], atol=1e-3)
    # Collapsing lost no record: the candidates stand for distinct templates.
    assert written["template"].is_unique and (written["records"] >= 1).all()
