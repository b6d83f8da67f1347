"""Leave-fingerprints-out evaluation of every discovery method on the sample, the realistic sample and real data.

Run from the project root::

    python bench/bench_evaluate.py                        # all three data sets, the shipped checkpoint
    python bench/bench_evaluate.py --only real
    python bench/bench_evaluate.py --train-realistic runs/realistic   # also a model trained on the realistic sample

Each data set is built with the shipped checkpoint's tokenizer and evaluated by
:func:`quack.discovery.evaluation.evaluate` (what ``quack evaluate`` runs), one fold per fingerprint
family:

* ``sample``: the built-in sample, 5,000 measurements, seed 0, with its ground truth;
* ``realistic``: ``quack sample --realistic``, 5,000 measurements, seed 0, with its truth;
* ``real``: the Censored Planet files in ``../shared/data/censoredplanet`` labelled with
  the signature lists published beside them (skipped when the folder is absent). Its
  families have four or five rows, so they are hidden from four rows up and scored at
  5, 10 and 20.

``--train-realistic DIR`` also trains a model on the realistic sample with the settings
of the shipped checkpoint (``scripts/train_sample_checkpoint.py``), its own tokenizer
included, and evaluates it: the shipped model never saw those pages. Writes each
report's JSON to ``--out`` and prints the tables recorded in ``BENCHMARKS.md``; for the
samples also the best fingerprint :func:`quack.discovery.proposals.propose_patterns` proposes for
each unknown family (its rows against every other row with a body) and what it matches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "censoredplanet"
SAMPLE = {"n": 5000, "seed": 0}


def _load_script():
    import importlib.util

    path = ROOT / "scripts" / "train_sample_checkpoint.py"
    spec = importlib.util.spec_from_file_location("train_sample_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(kind: str, work: Path, tokenizer) -> tuple[Path, Path | None]:
    """The data set of ``kind`` in ``work`` and its truth file (None for real data)."""
    from quack.data.build import build_dataset
    from quack.sample.generator import write_sample

    data = work / f"{kind}-data"
    if kind == "real":
        paths = sorted(str(p) for p in REAL.glob("Quack-*"))
        signatures = [str(REAL / "blockpage_signatures.json"), str(REAL / "false_positive_signatures.json")]
        build_dataset(paths, data, signatures=signatures, tokenizer=tokenizer)
        return data, None
    records, truth = write_sample(work / f"{kind}.json", realistic=kind == "realistic", **SAMPLE)
    build_dataset([records], data, tokenizer=tokenizer)
    return data, truth


def train_realistic(out: Path, work: Path) -> Path:
    """Train a model on the realistic sample as the shipped one was trained on the default; return its checkpoint."""
    from quack.data.build import build_dataset
    from quack.sample.generator import write_sample
    from quack.model.training import fit

    script = _load_script()
    records, _ = write_sample(work / "realistic-train.json", realistic=True, **SAMPLE)
    build_dataset([records], work / "realistic-train", **script.TOKENIZER)
    start = time.perf_counter()
    result = fit(work / "realistic-train", out, script.MODEL, logger="none", progress_bar=False, overwrite=True,
                 **script.TRAINER)
    print(f"trained {result.checkpoint} in {time.perf_counter() - start:.0f} s, {result.epochs} epochs, "
          f"test loss {result.test_loss:.2f}, greedy token accuracy {result.token_accuracy:.3f}", file=sys.stderr)
    return Path(result.checkpoint)


def markdown(report, title: str) -> str:
    """The report as the Markdown table of BENCHMARKS.md."""
    summary = report.summary()
    k1, k2, last = report.top[0], report.top[1], report.top[-1]
    figures = [f"p@{k1}", f"p@{k2}", f"r@{last}", "ap"] + ([f"c@{k1}"] if report.truth else [])
    head = f"| method | P@{k1} | P@{k2} | R@{last} | AP |"
    if report.truth:
        head += f" C@{k1} | truth P@{k1} | truth AP |"
    lines = [f"**{title}**: {report.rows:,} rows ({report.rows_per_label['1']} censored, "
             f"{report.rows_per_label['0']} undetermined, {report.rows_per_label['-1']} uncensored); "
             f"{len(report.folds)} folds, one family each; purity {report.purity['mean']:.2f} "
             f"over {report.purity['records']} hidden records.", "",
             head, "| --- |" + " ---: |" * (head.count("|") - 2)]
    for method, values in summary.items():
        cells = [f"{values[f]['mean']:.2f} ± {values[f]['sd']:.2f}" for f in figures]
        if report.truth:
            base = report.truth["positives"] / report.truth["ranked"]
            truth = report.truth["scores"].get(method, {f"p@{k1}": base, "ap": base})
            cells += [f"{truth[f'p@{k1}']:.2f}", f"{truth['ap']:.2f}"]
        lines.append(f"| {method.replace('_', ' ')} | " + " | ".join(cells) + " |")
    if report.truth:
        lines += ["", f"Truth: {report.truth['positives']} unknown-blockpage rows among {report.truth['ranked']} "
                      f"undetermined; purity of unknown pages {report.truth['purity']['mean']:.2f}."]
    return "\n".join(lines)


def proposals(data: Path, truth_file: Path) -> str:
    """For each unknown family of the truth, its best proposed fingerprint and what it matches, as Markdown."""
    import numpy as np

    from quack.data.datafolder import read_rows
    from quack.discovery.proposals import count_matches, propose_patterns
    from quack.discovery.evaluation import read_truth

    rows = read_rows(data, ["label", "body", "source", "line", "probe"])
    truth, pages = read_truth(truth_file, rows)
    bodies = rows["body"].fillna("").to_numpy(dtype=object)
    lines = ["| unknown family | rows (with a body) | best proposal | share of its bodies | "
             "rows it matches (censored / undetermined / uncensored) | of which this family |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for family in sorted(set(pages[truth == "unknown_blockpage"])):
        members = pages == family
        try:
            best = propose_patterns(list(bodies[members]), list(bodies[~members & (bodies != "")]))[0]
        except ValueError as error:
            lines.append(f"| {family} | {members.sum()} (0) | none: {error} | | | |")
            continue
        counts = count_matches(best.pattern, data).set_index("label")["matches"]
        hits = np.array([best.text in body for body in bodies])
        with_body = (members & (bodies != "")).sum()
        lines.append(f"| {family} | {members.sum()} ({with_body}) | `{best.pattern}` | {best.cluster_share:.2f} | "
                     f"{counts['censored']} / {counts['undetermined']} / {counts['uncensored']} | "
                     f"{(hits & members).sum()} of {hits.sum()} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = ["sample", "realistic", "real"]
    parser.add_argument("--only", nargs="+", choices=kinds, default=kinds, help="data sets to evaluate (default: all)")
    parser.add_argument("--train-realistic", metavar="DIR", default=None,
                        help="also train a model on the realistic sample into DIR and evaluate it")
    parser.add_argument("--out", default="bench-evaluate", help="folder for the JSON reports (default: bench-evaluate)")
    parser.add_argument("--device", default="cpu", help="where to encode (default: cpu)")
    args = parser.parse_args()

    from quack.model.encoding import SHIPPED_CHECKPOINT, load_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(SHIPPED_CHECKPOINT)
    kinds = [kind for kind in args.only if kind != "real" or REAL.is_dir()]
    with tempfile.TemporaryDirectory(prefix="quack-bench-evaluate-") as tmp:
        work = Path(tmp)
        for kind in kinds:
            run(kind, kind, model, SHIPPED_CHECKPOINT, work, out, args.device)
        if args.train_realistic:
            checkpoint = train_realistic(Path(args.train_realistic), work)
            run("realistic-trained", "realistic", load_checkpoint(checkpoint), checkpoint, work, out, args.device)


def run(name: str, kind: str, model, checkpoint: Path, work: Path, out: Path, device: str) -> None:
    """Build the data set of ``kind`` for ``model``, evaluate it, write ``name``.json and print its tables."""
    from dataclasses import replace

    import torch

    from quack.discovery.evaluation import evaluate
    from quack.discovery.options import EVALUATION

    data, truth = build(kind, work / name, model.tokenizer)
    # The real families are small: hidden from four rows up, scored at the first ranks.
    config = replace(EVALUATION, top=(5, 10, 20), min_rows=4) if kind == "real" else EVALUATION
    start = time.perf_counter()
    report = evaluate(data, model, truth=truth, top=config.top, min_rows=config.min_rows, seed=config.seed,
                      device=device, progress=lambda line: print(f"{name}: {line}", file=sys.stderr))
    seconds = time.perf_counter() - start
    report.checkpoint = str(checkpoint)
    document = report.to_json() | {"seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()}
    (out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(markdown(report, f"{name} ({Path(checkpoint).name}, {seconds:.0f} s)"), flush=True)
    print(flush=True)
    if truth is not None:
        print(proposals(data, truth), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
