"""bench/bench_scale.py's report: the table and the log-log plot drawn from result files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is in requirements-dev.txt")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(n: int, rows: int, scale: float, dashboard: bool) -> dict:
    steps = {name: {"seconds": 2.0 * scale, "tree_peak_rss_mb": 100.0 * scale, "cpu_seconds": 1.5 * scale}
             for name in ("sample", "ingest_1", "ingest_2", "encode")}
    if dashboard:
        steps.update({name: {"seconds": 3.0 * scale, "server_peak_mb": 2048.0 * scale}
                      for name in ("first_map", "umap_map", "colour", "lasso")})
    return {"measurements": n, "rows": rows, "steps": steps, "command": f"python bench/bench_scale.py --sizes {n}",
            "load_before": "0.10 0.20 0.30", "load_after": "1.00 1.00 1.00", "numba_cache": "warm"}


def test_table_and_plot_from_result_files(bench, tmp_path):
    (tmp_path / "scale-100.json").write_text(json.dumps(_result(100, 140, 1.0, dashboard=True)))
    (tmp_path / "scale-2000.json").write_text(json.dumps(_result(2000, 2900, 10.0, dashboard=False)))
    results = bench.load_results(tmp_path)
    assert [r["measurements"] for r in results] == [100, 2000], "smallest size first, not by file name"
    lines = bench.table(results).splitlines()
    assert lines[0] == "| step | 100 (140 rows) | 2,000 (2,900 rows) |"
    assert "| ingest, 2 workers | 2.0 s (CPU 1.5 s), 0.10 GB | 20.0 s (CPU 15.0 s), 0.98 GB |" in lines
    assert "| dashboard: UMAP map | 3.0 s, 2.00 GB |  |" in lines, "a step a run did not reach is left empty"
    png = bench.plot(results, tmp_path / "scale.png", "python bench/bench_scale.py --report")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
