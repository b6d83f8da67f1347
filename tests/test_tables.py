"""The dashboard's tables, from plain frames and arrays, without Streamlit."""

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dashboard import tables


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [0, 1, 2, 3],
            "label": [1, -1, 0, 0],
            "fingerprint": ["b_ir", None, None, None],
            "country": ["IR", "DE", "IR", "US"],
            "domain": ["news.example", "Shop.example", "mail.example", "news.example"],
            "service": ["http", "https", "echo", "http"],
            "vp": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"],
            "status": ["403 Forbidden", "200 OK", None, None],
            "headers": ["Server: x", "", None, None],
            "body": ["<b>blocked</b>", "welcome", "GET / HTTP/1.1", None],
            "error": [None, None, None, "read: connection reset by peer"],
            "source": ["s.json"] * 4,
            "line": [1, 1, 2, 3],
            "probe": [0, 1, 0, 0],
        }
    )


def test_tables_do_not_import_streamlit():
    code = "import sys, dashboard.tables; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_snippet_flattens_and_cuts_but_does_not_escape():
    text = "HTTP/1.1 403 Forbidden\r\n\r\n<b>blocked</b>  a -> b"
    assert tables.snippet(text) == "HTTP/1.1 403 Forbidden <b>blocked</b> a -> b"
    assert tables.snippet("x" * 50, 10) == "x" * 9 + "…"
    assert tables.snippet(None) == ""


def test_response_texts_read_as_a_person_would(frame):
    texts = tables.response_texts(frame)
    assert texts[0] == "403 Forbidden\nServer: x\n\n<b>blocked</b>"
    assert texts[2] == "GET / HTTP/1.1", "echo replies are whole in the body"
    assert texts[3] == "(no response: read: connection reset by peer)"


def test_record_table_names_labels_and_keeps_the_order_asked(frame):
    texts = tables.response_texts(frame)
    table = tables.record_table(frame, frame["label"].to_numpy(), texts.iloc[[3, 0]], [3, 0])
    assert table["id"].tolist() == [3, 0]
    assert table["label"].tolist() == ["undetermined", "censored"]
    assert list(table.columns) == ["id", "label", *tables.RECORD_COLUMNS, "response"]
    assert table["response"][1] == "403 Forbidden Server: x <b>blocked</b>"


def test_record_table_uses_the_labels_given_not_the_stored_ones(frame):
    relabelled = np.array([1, 1, 1, 1])
    table = tables.record_table(frame, relabelled, tables.response_texts(frame).iloc[[1, 2]], [1, 2])
    assert set(table["label"]) == {"censored"}


def test_hover_table_has_the_hover_columns_for_the_drawn_points(frame):
    snippets = tables.snippet_array(tables.response_texts(frame))
    hover = tables.hover_table(frame.astype({"country": "category", "status": "category"}), snippets, np.array([2, 0]))
    assert tuple(hover.columns) == tables.HOVER_COLUMNS
    assert hover["id"].tolist() == [2, 0] and hover["status"].tolist() == ["", "403 Forbidden"]
    assert hover["snippet"].tolist() == ["GET / HTTP/1.1", "403 Forbidden Server: x <b>blocked</b>"]


@pytest.mark.parametrize("text", ["", "a  b\t\nc", "x" * 500, "  lead\u00a0and\u2003spaces  ", "y" * 119, "z" * 120,
                                  "w" * 121, "é" * 130, "\x1c one \x85 two"])
def test_snippet_array_is_snippet_for_each_text(text):
    assert tables.snippet_array(pd.Series([text, None]))[0].as_py() == tables.snippet(text)
    assert tables.snippet_array(pd.Series([text, None]))[1].as_py() == ""


@pytest.mark.parametrize(
    "countries, services, wanted, search, expected",
    [
        ([], [], [], "", [0, 1, 2, 3]),
        (["IR"], [], [], "", [0, 2]),
        ([], ["http"], [], "", [0, 3]),
        ([], [], ["undetermined"], "", [2, 3]),
        ([], [], [], " shop ", [1]),
        (["IR"], ["http"], ["censored"], "news", [0]),
        (["DE"], [], ["censored"], "", []),
    ],
)
def test_filter_records(frame, countries, services, wanted, search, expected):
    shown = tables.filter_records(frame, frame["label"].to_numpy(), countries, services, wanted, search)
    assert shown.tolist() == expected


def test_balanced_subset_shares_the_limit_between_labels():
    labels = np.array([0] * 187 + [1] * 13 + [-1] * 500)
    chosen = tables.balanced_subset(list(range(700)), labels, 200)
    assert len(chosen) == len(set(chosen)) == 200
    counts = {lab: int((labels[chosen] == lab).sum()) for lab in (1, 0, -1)}
    assert counts[1] == 13 and abs(counts[0] - counts[-1]) <= 1
    assert sorted(tables.balanced_subset([3, 1, 2], labels, 200)) == [1, 2, 3]
    assert tables.balanced_subset(list(range(700)), labels, 200, seed=1) != chosen


def test_mean_shares_count_a_missing_field_as_zero():
    assert tables.mean_shares([{"body": 0.8, "status": 0.2}, {"body": 0.4}]) == pytest.approx({"body": 0.6, "status": 0.1})


def test_truth_column_joins_by_source_line_and_probe(frame):
    truth = pd.DataFrame(
        {"source": ["s.json", "s.json"], "line": [1, 3], "probe": [1, 0], "truth": ["ordinary", "reset"]}
    )
    assert tables.truth_column(frame, truth).tolist() == ["", "ordinary", "", "reset"]


def test_export_table_has_only_the_scores_given(frame):
    labels = np.array([1, 1, 0, 0])
    pca = np.arange(8, dtype=float).reshape(4, 2)
    bare = tables.export_table(frame, labels, pca)
    assert "label" in bare and bare["label"].tolist() == [1, 1, 0, 0], "the labels in use, not the stored ones"
    assert bare["pca_y"].tolist() == [1.0, 3.0, 5.0, 7.0]
    assert not {"umap_x", "reconstruction_loss", "p_censored", "latent", "body"} & set(bare.columns)
    full = tables.export_table(frame, labels, pca, umap=pca + 1, loss=np.ones(4), probability=np.zeros(4),
                               latents=np.eye(4, 3, dtype=np.float32))
    assert {"umap_x", "umap_y", "reconstruction_loss", "p_censored", "latent"} <= set(full.columns)


def test_export_bytes_parquet_keeps_latents_and_csv_spreads_them(frame):
    table = tables.export_table(frame, frame["label"].to_numpy(), np.zeros((4, 2)), latents=np.eye(4, 3, dtype=np.float32))
    data, name, mime = tables.export_bytes(table, "Parquet", "quack-x")
    assert name == "quack-x.parquet" and mime == "application/vnd.apache.parquet"
    back = pd.read_parquet(io.BytesIO(data))
    assert np.allclose(np.stack(back["latent"].to_numpy()), np.eye(4, 3))
    data, name, mime = tables.export_bytes(table, "CSV", "quack-x")
    assert name == "quack-x.csv" and mime == "text/csv"
    flat = pd.read_csv(io.BytesIO(data))
    assert "latent" not in flat and flat[["latent_0", "latent_1", "latent_2"]].to_numpy().tolist() == np.eye(4, 3).tolist()


def test_written_files_and_latent_preview(tmp_path):
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "a.parquet").write_bytes(b"12345")
    (tmp_path / "metadata.json").write_text("{}")
    listing = tables.written_files(tmp_path)
    assert listing.to_dict("records") == [{"file": "metadata.json", "bytes": 2}, {"file": "part/a.parquet", "bytes": 5}]
    encoded = pd.DataFrame({"id": range(30), "latent": [np.arange(8, dtype=np.float32) / 3] * 30})
    preview = tables.latent_preview(encoded)
    assert len(preview) == 20 and preview["latent"][0] == [0.0, 0.333, 0.667, 1.0]
