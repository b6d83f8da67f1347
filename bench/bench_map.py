"""The Latent map's work at a million records, step by step, as the page does it.

Synthetic latents (Gaussian clusters, a few of them labelled censored, the rest
uncensored or undetermined) go through the functions the page calls: the PCA map, the
drawn sample (:func:`dashboard.map_layers.drawn_rows`), the hover boxes
(:func:`dashboard.map_charts.hover_texts`), the density layer
(:func:`dashboard.map_layers.map_density`), the figure (:func:`dashboard.map_charts.map_figure`)
and its JSON as ``st.plotly_chart`` makes it (``plotly.io.to_json``), a colour change,
box and lasso selections over all records (:func:`dashboard.selection.region_ids`,
:func:`dashboard.selection.selection_counts`), and the UMAP map fitted on a bounded sample
(:func:`quack.latents.maps.umap_at_scale`).

A page rerun after a colour change or a selection rebuilds the figure from the cached
hover boxes and density and serialises it; those rows of the table add up what that
rerun costs. Reading the drawn records' response snippets from the data set is not part
of this benchmark (``bench/bench_scale.py`` times the page on real files).

Run ``python bench/bench_map.py`` from the repository root (``--rows``, ``--dims``,
``--threads``, ``--no-umap``); it prints a markdown table and the peak memory.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The dashboard's cached functions run here without a Streamlit server.
logging.getLogger("streamlit").setLevel(logging.ERROR)

import pandas as pd  # noqa: E402
import plotly.io as pio  # noqa: E402
import torch  # noqa: E402

from dashboard import jobs, map_charts, map_layers, tables  # noqa: E402
from dashboard.selection import region_ids, selection_counts  # noqa: E402
from quack.latents.maps import pca, umap_at_scale  # noqa: E402
from quack.schema import Label, label_names  # noqa: E402


def synthetic(rows: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Latents in 40 clusters (3 censored, 25 uncensored, 12 undetermined), labels, metadata and snippets."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(40, dims)).astype(np.float32)
    cluster = rng.choice(40, size=rows, p=np.r_[np.full(3, 0.005), np.full(37, 0.985 / 37)])
    latents = centres[cluster]
    latents += rng.normal(size=(rows, dims)).astype(np.float32)
    kind = np.r_[np.full(3, Label.CENSORED), np.full(25, Label.UNCENSORED), np.full(12, Label.UNDETERMINED)]
    labels = kind[cluster].astype(np.int8)
    countries = np.array(["US", "DE", "CN", "IR", "RU", "BR", "IN", "TR", "FR", "GB"])
    frame = pd.DataFrame({
        "id": np.arange(rows),
        "domain": pd.Categorical.from_codes(rng.integers(0, 5000, rows), [f"site{i}.example" for i in range(5000)]),
        "vp": pd.Categorical.from_codes(rng.integers(0, 2000, rows), [f"192.0.2.{i % 250}-{i}" for i in range(2000)]),
        "country": pd.Categorical.from_codes(rng.integers(0, len(countries), rows), countries),
        "status": pd.Categorical.from_codes(rng.integers(0, 3, rows), ["HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden", ""]),
    })
    page = "HTTP/1.1 200 OK Content-Type: text/html <html><head><title>Welcome</title></head><body> page of site "
    snippets = np.array([tables.snippet(page + str(i)) for i in range(rows)], dtype=object)
    return latents, labels, frame, snippets


def timed(table: list, step: str, work):
    started = time.perf_counter()
    value = work()
    table.append((step, time.perf_counter() - started))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=128, help="latent width (the shipped model's is 128)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-points", type=int, default=100_000)
    parser.add_argument("--fit-rows", type=int, default=jobs.UMAP_DEFAULTS["fit_rows"])
    parser.add_argument("--no-umap", action="store_true", help="leave out the UMAP map (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    latents, labels, frame, snippets = synthetic(args.rows, args.dims)
    steps: list[tuple[str, float]] = []
    coords = timed(steps, "PCA map (2-D)", lambda: pca(latents, 2))
    drawn = timed(steps, f"drawn sample ({args.max_points:,}, by label, censored last)",
                  lambda: map_layers.drawn_rows(labels, args.max_points))
    hover = tables.hover_table(frame, snippets, drawn)
    texts = timed(steps, "hover boxes of the drawn records", lambda: map_charts.hover_texts(hover))
    layer = timed(steps, "density layer of all records", lambda: map_layers.map_density(("bench", "pca"), coords))

    def figure(values, name, categorical):
        fig = map_charts.map_figure(coords[drawn], hover, values, name, categorical, title="map", texts=texts, density=layer)
        return len(pio.to_json(fig, validate=False))

    size = timed(steps, "figure by label, built and serialised", lambda: figure(label_names(labels[drawn]), "Label", True))
    first = sum(t for _, t in steps)
    timed(steps, "colour change: by country", lambda: figure(np.asarray(frame["country"].take(drawn), dtype=object),
                                                             "Country", True))
    probability = np.random.default_rng(1).random(args.rows)
    timed(steps, "colour change: by a number (probability)", lambda: figure(probability[drawn], "Classifier probability",
                                                                            False))
    x, y = coords[:, 0], coords[:, 1]
    box = {"selection": {"box": [{"x": [float(x.min()), float(np.median(x))], "y": [float(y.min()), float(y.max())]}]}}
    angles = np.linspace(0, 2 * np.pi, 300, endpoint=False)
    radius = float(np.percentile(np.hypot(x - x.mean(), y - y.mean()), 60))
    lasso = {"selection": {"lasso": [{"x": list(x.mean() + radius * np.cos(angles) * (1 + 0.1 * np.sin(5 * angles))),
                                      "y": list(y.mean() + radius * np.sin(angles))}]}}
    selected = {}
    for name, event in (("box", box), ("lasso of 300 vertices", lasso)):
        ids = timed(steps, f"{name} selection over all records", lambda: region_ids(event, coords))
        counts = timed(steps, "  its counts per label and undrawn", lambda: selection_counts(ids.tolist(), labels, drawn))
        selected[name] = counts
    fitted_at = []
    if not args.no_umap:
        def progress(done: int, total: int) -> None:
            if done and not fitted_at:
                fitted_at.append(time.perf_counter())

        started = time.perf_counter()
        timed(steps, f"UMAP map: PCA to 50, fit on {args.fit_rows:,}, place the rest",
              lambda: umap_at_scale(latents, labels, 2, fit_rows=args.fit_rows, seed=0, progress=progress))
        if fitted_at:
            steps.append(("  of which until the fit was done", fitted_at[0] - started))

    print(f"{args.rows:,} records x {args.dims} latents, {args.threads} torch threads, "
          f"{len(drawn):,} drawn, figure JSON {size / 1e6:.1f} MB\n")
    print("| step | time |\n| --- | ---: |")
    for step, seconds in steps:
        print(f"| {step} | {seconds:.2f} s |")
    print(f"\nfirst map from latents in memory: {first:.2f} s")
    for name, counts in selected.items():
        print(f"{name}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB "
          f"(latents {latents.nbytes / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
