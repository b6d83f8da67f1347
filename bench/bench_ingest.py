"""Throughput and peak memory of ingest + label + tokenize over generated measurements.

Run from the project root::

    python bench/bench_ingest.py            # 10,000 and 50,000 measurements on 2 cores
    python bench/bench_ingest.py --n 50000  # one size
    python bench/bench_ingest.py --workers 1 2   # quack ingest --workers over 8 files of 5,000
    python bench/bench_ingest.py --workers 1 2 --real-size --n 25000  # 8 gzip files of real-size pages

Without ``--workers``:

Each size runs in a fresh process pinned to two cores (the BPE's thread pool is held to
two threads as well), so the peak resident memory of one run is not hidden by another.
Every stage is timed on its own passes over the same file, and the fastest of three
passes is reported:

* ingest: :func:`quack.data.ingest.iter_rows` alone;
* ingest + label: plus :func:`quack.fingerprints.labels.label_row` with the shipped fingerprints;
* tokenize: :meth:`QuackTokenizer.encode_rows` on rows already in memory;
* build: :func:`quack.data.build.build_dataset` end to end (both passes, BPE training, Parquet).

With ``--workers``, a process pinned to two cores writes ``--files`` sample files of
``--n`` measurements (seeds 0, 1, ...) and runs ``quack ingest --workers N`` over them,
each a fresh process as a user runs it (start-up included), for each N in turn,
interleaved, three rounds, so that the machine's neighbours slow every count alike; the
fastest round of each is reported, with the tokenizer given (``--tokenizer-from``, as the
tasks of an array job ingest) and trained. With ``--real-size`` the files are gzip files of
the realistic sample with real-size pages (``quack sample --realistic --real-size``), as a
day of scans is a folder of compressed files of kilobyte pages. The load average is printed beside: on a
shared machine it says how much of the two cores the runs could have. Where the kernel
shares the CPU between sessions evenly (``/proc/sys/kernel/sched_autogroup_enabled``), a
session's processes together get one session's share however many they are, so more
workers cannot go faster while other sessions are busy; compare counts on free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORES = 2
REPEAT = 3


def _child(n: int) -> dict:
    cores = _pin()
    from quack.data.build import build_dataset
    from quack.data.ingest import iter_rows
    from quack.fingerprints.labels import Fingerprints, label_row
    from quack.sample.generator import write_sample
    from quack.data.tokenizer import QuackTokenizer

    result = {"measurements": n, "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        records, _ = write_sample(Path(tmp) / "bench.json", n=n, seed=0)
        result["file_mb"] = records.stat().st_size / 2**20
        result["rss_before_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        def best(run) -> float:
            """Fastest of REPEAT runs: on a shared machine the slower ones measure the neighbours."""
            times = []
            for _ in range(REPEAT):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            return min(times)

        rows = sum(1 for _ in iter_rows(records))
        result["rows"] = rows
        result["ingest_rows_per_s"] = rows / best(lambda: sum(1 for _ in iter_rows(records)))

        fingerprints = Fingerprints.load()

        def ingest_and_label() -> None:
            for row in iter_rows(records):
                label_row(row, fingerprints)

        result["ingest_label_rows_per_s"] = rows / best(ingest_and_label)

        sample = [row for _, row in zip(range(20000), iter_rows(records))]
        tokenizer = QuackTokenizer.train(sample, vocab_size=4000, max_tokens=256)

        def tokenize() -> None:
            for begin in range(0, len(sample), 2048):
                tokenizer.encode_rows(sample[begin : begin + 2048])

        result["tokenize_rows_per_s"] = len(sample) / best(tokenize)
        del sample

        elapsed = best(lambda: build_dataset(records, Path(tmp) / "data", vocab_size=4000, max_tokens=256))
        result["build_rows_per_s"] = rows / elapsed
        result["build_s"] = elapsed
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _pin() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(available[:CORES]))
    return len(os.sched_getaffinity(0))


def _workers_child(counts: list[int], n: int, files: int, real_size: bool = False) -> dict:
    cores = _pin()
    from quack.data.datafolder import DataFolder
    from quack.sample.generator import write_sample

    result: dict = {"cores": cores, "files": files, "measurements": n, "runs": {}, "load": [os.getloadavg()[0]],
                    "real_size": real_size}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        name = "scan-{}.jsonl.gz" if real_size else "scan-{}.json"
        for seed in range(files):
            write_sample(raw / name.format(seed), n=n, seed=seed, realistic=real_size, real_size=real_size)
        result["mb"] = sum(p.stat().st_size for p in raw.glob("scan-*.json*") if ".truth." not in p.name) / 2**20

        def ingest(out: str, *options: str) -> float:
            """Wall seconds of one `quack ingest`, a fresh process as a user or a batch job runs it."""
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "quack.cli.main", "ingest", str(raw), "--out", str(Path(tmp) / out),
                            "--vocab-size", "4000", "--max-tokens", "256", *options],
                           check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
            return time.perf_counter() - start

        # The tokenizer the given-tokenizer runs reuse, as the parts of an array job would.
        ingest("first", "--workers", "1")
        result["rows"] = DataFolder.open(Path(tmp) / "first").n_rows
        given = str(Path(tmp) / "first" / "tokenizer.json")
        for _ in range(REPEAT):
            for count in counts:
                for mode, options in (("given", ["--tokenizer-from", given]), ("trained", [])):
                    elapsed = ingest("data", "--workers", str(count), *options)
                    key = f"{mode}-{count}"
                    result["runs"][key] = min(result["runs"].get(key, elapsed), elapsed)
    result["load"].append(os.getloadavg()[0])
    return result


def _print_workers(r: dict, counts: list[int]) -> None:
    kind = "gzip files of real-size pages" if r.get("real_size") else "files"
    print(f"quack ingest of {r['files']} {kind} x {r['measurements']} measurements ({r['rows']} rows, "
          f"{r['mb']:.0f} MB) on {r['cores']} cores, fastest of {REPEAT} interleaved rounds "
          f"(load average {r['load'][0]:.1f} before, {r['load'][1]:.1f} after):")
    for mode, words in (("given", "tokenizer given"), ("trained", "tokenizer trained")):
        base = r["rows"] / r["runs"][f"{mode}-{counts[0]}"]
        parts = []
        for count in counts:
            rate = r["rows"] / r["runs"][f"{mode}-{count}"]
            parts.append(f"{count} worker{'s' if count > 1 else ''} {rate:,.0f} rows/s ({rate / base:.2f}x)")
        print(f"  {words}: " + " | ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=None,
                        help="measurements per run (default: 10000 50000; with --workers: 5000 per file)")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="compare these numbers of workers")
    parser.add_argument("--files", type=int, default=8, help="input files with --workers (default: 8)")
    parser.add_argument("--real-size", action="store_true",
                        help="with --workers: gzip files of the realistic sample with real-size pages")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.workers:
        print(json.dumps(_workers_child(args.workers, args.child, args.files, args.real_size)))
        return
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    env = dict(os.environ, RAYON_NUM_THREADS=str(CORES), TOKENIZERS_PARALLELISM="true")
    if args.workers:
        n = (args.n or [5000])[0]
        command = [sys.executable, __file__, "--child", str(n), "--files", str(args.files), "--workers",
                   *map(str, args.workers), *(["--real-size"] if args.real_size else [])]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        _print_workers(json.loads(done.stdout.strip().splitlines()[-1]), args.workers)
        return
    for n in args.n or [10000, 50000]:
        done = subprocess.run([sys.executable, __file__, "--child", str(n)], env=env, capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[1])
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['measurements']:>6} measurements ({r['rows']} rows, {r['file_mb']:.0f} MB) on {r['cores']} cores: "
              f"ingest {r['ingest_rows_per_s']:,.0f} rows/s | ingest+label {r['ingest_label_rows_per_s']:,.0f} rows/s | "
              f"tokenize {r['tokenize_rows_per_s']:,.0f} rows/s | build end to end {r['build_rows_per_s']:,.0f} rows/s "
              f"({r['build_s']:.1f} s) | peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(after imports {r['rss_before_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
