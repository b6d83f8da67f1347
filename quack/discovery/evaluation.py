"""Leave-fingerprints-out evaluation: would a method have found a blockpage family the fingerprints did not know?

Discovery cannot be scored on undetermined records, whose truth nobody knows. It can be
scored on records whose truth is known, by pretending it is not: hide some fingerprint
families, so that the records they labelled censored become undetermined, train each
method on the labels that remain, rank every undetermined record, and see how many of the
hidden families' records come first. A method that ranks them high would have found
those blockpages had their fingerprints not been written yet.

A **family** is a fingerprint name with a trailing ``_<digits>`` removed, since Censored
Planet numbers the variants of one product's or one country's page
(``a_prod_fortinet_1`` ... ``_8`` are the family ``a_prod_fortinet``): hiding one variant
while its siblings still label the same pages would tell a method the answer. ``groups``
merges further: every name that starts with one of the given prefixes (``b_nat_ir_``)
is one family named by the prefix (:func:`quack.discovery.evaluation_data.family_of`).
A row belongs to the family of the fingerprint stored
with it, the first that matched when the data set was built; only censored rows have one.
Hiding a family makes exactly its rows undetermined; another fingerprint that would also
have matched them does not rescue them, as the data set keeps one name a row.

The methods, side by side (:data:`quack.discovery.rankers.METHODS`): the seed's latent classifier, logistic
regression on bag-of-tokens counts and on TF-IDF of the response text, the
reconstruction loss as an anomaly score, the distance to the nearest censored latents
and the censored share of a row's HDBSCAN cluster. The supervised ones train on the same
rows, those the latent classifier trains on (:func:`quack.latents.classifier.split_labelled`:
80 % of each labelled class, the larger class sampled down to the smaller).

Each fold is scored by precision and recall at each K of ``top`` and by average
precision, over the ranking of all undetermined rows (ties in a random order drawn from
the seed); the report gives each figure per fold and its mean and standard deviation
over folds. The **purity** of a hidden record is the share of its ten nearest latents
(among all rows, itself left out) that belong to its own family: how well the latent
space alone keeps a family together, whatever the method. A family of fewer than eleven
rows cannot fill ten places, so the report also gives the purity's ceiling and the purity
within reach: the share of the ``min(10, rows of the family - 1)`` nearest in the family.

With a ground-truth file (the built-in sample writes one), one more run trains on every
fingerprint label and scores the ranking against the records the truth calls unknown
blockpages: the discovery the project is about, measured directly. Each fold then also
gives ``c@K``, the share of the first K that is censorship of any kind, hidden or unknown
to every fingerprint: precision at K counts a blockpage no fingerprint knows as a miss,
and where such pages are many (the samples) they take the ranks the hidden family would.

The data set is encoded once per call and every fold reuses the latents, the losses,
the clusters and the neighbour index. Token counts and hashed text counts are built in
batches from the Parquet files (:class:`quack.discovery.evaluation_data.EvaluationData`),
so the text of every row is never in memory at once; the latents and the sparse counts
are. The defaults of ``top``, ``min_rows`` and ``seed`` are
:data:`quack.discovery.options.EVALUATION`. HDBSCAN's time grows faster than the rows, so evaluate
a sample of a large scan (hundreds of thousands of rows, not millions).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from quack.discovery.evaluation_data import EvaluationData, families_of, family_of
from quack.discovery.options import EVALUATION
from quack.discovery.rankers import METHODS, NEIGHBOURS, TEST_SIZE, SharedFeatures
from quack.discovery.report import EvaluationReport, distinct_at, precision_at, rank, ranking_scores
from quack.jsonfiles import loads_bounded
from quack.schema import Label

__all__ = ["read_truth", "evaluate", "evaluate_data"]

Progress = Callable[[str], None]


def read_truth(path: str | os.PathLike, keys) -> tuple[np.ndarray, np.ndarray]:
    """Join a ground-truth file of the sample with a data set's rows.

    Parameters
    ----------
    path : path
        JSON lines of ``{"source", "line", "probe", "truth", "page"}``
        (:func:`quack.sample.generator.write_sample`).
    keys : pandas.DataFrame
        ``source``, ``line`` and ``probe`` of each row; sources are matched by file name.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The truth of each row (``""`` for a row the file does not name) and its page.

    Raises
    ------
    ValueError
        When the file cannot be read, is not a truth file, or names none of the rows.
    """
    path = Path(path).expanduser()
    found: dict[tuple[str, int, int], tuple[str, str]] = {}
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = loads_bounded(line)
                    key = (Path(item["source"]).name, int(item["line"]), int(item["probe"]))
                    found[key] = (str(item["truth"]), str(item.get("page") or ""))
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(
                        f"{path} line {number} is not a ground-truth line ({error}); give the .truth.jsonl file "
                        "that `quack sample` wrote beside the measurements."
                    ) from None
    except OSError as error:
        raise ValueError(f"Cannot read the truth file {path} ({error.strerror or error}); check the path.") from None
    joined = [found.get((Path(s).name, int(l), int(p)), ("", "")) for s, l, p in
              zip(keys["source"], keys["line"], keys["probe"])]
    truth = np.array([t for t, _ in joined], dtype=object)
    if not (truth != "").any():
        raise ValueError(f"The truth file {path} names none of the data set's rows; give the truth of the "
                         "measurements the data set was built from.")
    return truth, np.array([p for _, p in joined], dtype=object)


# ----------------------------------------------------------------------------- the protocol


def _folds(
    labels: np.ndarray, families: np.ndarray, hide: Sequence[str] | None, folds: int | None, min_rows: int,
    groups: Sequence[str], seed: int, where: str,
) -> list[list[str]]:
    """The families each fold hides; every option is checked here, before anything is encoded."""
    counts = _family_counts(families)
    if not counts:
        raise ValueError(
            f"{where} has no rows a blockpage fingerprint labelled censored, so there is no family to hide; "
            "build it with fingerprints that match some of its rows."
        )
    if hide:
        chosen = list(dict.fromkeys(family_of(name, groups) for name in hide))
        unknown = [name for name in chosen if name not in counts]
        if unknown:
            names = sorted(counts)
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            raise ValueError(
                f"No fingerprint family named {unknown[0]!r} labels rows of {where}; its families are {listed}."
            )
        return _trainable([chosen], labels, counts, where)
    eligible = sorted(name for name, n in counts.items() if n >= min_rows)
    if not eligible:
        raise ValueError(
            f"No fingerprint family labels at least {min_rows} rows of {where}; lower --min-rows "
            f"(the largest family has {max(counts.values())})."
        )
    if folds is None:
        folds = len(eligible)
    if not 1 <= folds <= len(eligible):
        raise ValueError(
            f"--folds must be between 1 and the {len(eligible)} families that label at least {min_rows} rows, "
            f"got {folds}."
        )
    order = np.random.default_rng(seed).permutation(len(eligible))
    return _trainable([sorted(eligible[i] for i in part) for part in np.array_split(order, folds)], labels, counts,
                      where)


def _family_counts(families: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(families[families != ""].astype(str), return_counts=True)
    return dict(sorted(zip(names.tolist(), counts.tolist()), key=lambda item: (-item[1], item[0])))


def _trainable(parts: list[list[str]], labels: np.ndarray, counts: dict[str, int], where: str) -> list[list[str]]:
    """The folds, once sure that each leaves two rows of each label to learn from."""
    uncensored = int(np.sum(labels == Label.UNCENSORED))
    if uncensored < 2:
        raise ValueError(f"The methods need at least two uncensored rows to learn from and {where} has {uncensored}; "
                         "use a data set with both labels.")
    for hidden in parts:
        left = sum(counts.values()) - sum(counts[name] for name in hidden)
        if left < 2:
            raise ValueError(
                f"The methods need at least two censored rows to learn from and hiding {', '.join(hidden)} leaves "
                f"{left}; hide fewer families, or use more folds."
            )
    return parts


def _run(
    data: EvaluationData, shared: SharedFeatures, labels: np.ndarray, positives: np.ndarray, methods: Sequence[str],
    top: Sequence[int], seed: int, censorship: np.ndarray | None = None, pages: np.ndarray | None = None,
) -> dict:
    """Rank the undetermined rows of ``labels`` by each method and score against ``positives``.

    With ``censorship`` (every row the truth calls a blockpage), each method also gets
    ``c@K``, the share of its first K rows that are censorship of any kind.
    """
    candidates = np.flatnonzero(labels == Label.UNDETERMINED)
    scores = {}
    for name in methods:
        ranking = rank(METHODS[name].score(data, shared, labels, seed), candidates, np.random.default_rng(seed))
        scores[name] = ranking_scores(positives[ranking], top)
        if censorship is not None:
            scores[name].update({f"c@{k}": precision_at(censorship[ranking], k) for k in top})
        if pages is not None:
            scores[name].update({f"f@{k}": distinct_at(np.where(positives, pages, "")[ranking], k) for k in top})
    result = {"positives": int(positives[candidates].sum()), "ranked": int(len(candidates)), "scores": scores}
    if censorship is not None:
        result["censorship"] = int(censorship[candidates].sum())
    return result


def _purity(shared: SharedFeatures, rows: np.ndarray, groups: np.ndarray) -> dict:
    """Share of each row's nearest latents in its own group: mean over rows and per group.

    A group of ``n`` rows can fill at most ``n - 1`` of a row's ten nearest, so beside the
    ``mean`` the result gives its ``ceiling`` (what perfectly kept families would score) and
    ``within_reach``: the share of the ``min(10, n - 1)`` nearest in the row's own group,
    mean over the rows of groups of two or more.
    """
    if not len(rows):
        return {"mean": float("nan"), "ceiling": float("nan"), "within_reach": float("nan"), "records": 0,
                "by_family": {}}
    same = groups[shared.neighbours(rows)] == groups[rows][:, None]
    share = same.mean(axis=1)
    names, sizes = np.unique(groups, return_counts=True)
    reach = np.minimum(same.shape[1], sizes[np.searchsorted(names, groups[rows])] - 1)
    filled = np.cumsum(same, axis=1)[np.arange(len(rows)), np.maximum(reach, 1) - 1]
    in_reach = reach > 0
    by_family = {str(name): float(share[groups[rows] == name].mean()) for name in np.unique(groups[rows])}
    return {"mean": float(share.mean()), "ceiling": float((reach / same.shape[1]).mean()),
            "within_reach": float((filled[in_reach] / reach[in_reach]).mean()) if in_reach.any() else float("nan"),
            "records": int(len(rows)), "by_family": by_family}


def _check_options(methods: Sequence[str] | None, top: Sequence[int], min_rows: int) -> tuple[list[str], list[int]]:
    """The methods and the K of ``top`` to use, checked."""
    chosen = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    unknown = [name for name in chosen if name not in METHODS]
    if unknown or not chosen:
        raise ValueError(
            f"Unknown method {unknown[0] if unknown else '(none)'!r}; the methods are {', '.join(METHODS)}."
        )
    ks = sorted({int(k) for k in top})
    if not ks or ks[0] < 1:
        raise ValueError(f"--top needs positive numbers of rows, got {list(top)}.")
    if min_rows < 1:
        raise ValueError(f"--min-rows must be at least 1, got {min_rows}.")
    return chosen, ks


def evaluate_data(
    data: EvaluationData,
    hide: Sequence[str] | None = None,
    folds: int | None = None,
    top: Sequence[int] = EVALUATION.top,
    seed: int = EVALUATION.seed,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    min_rows: int = EVALUATION.min_rows,
    groups: Sequence[str] = (),
    where: str = "the data set",
    truth_only: bool = False,
) -> EvaluationReport:
    """Run the leave-fingerprints-out protocol on data already read and encoded.

    Parameters
    ----------
    data : EvaluationData
    hide : sequence of str, optional
        Families (or fingerprint names, mapped to their family) to hide, as one fold.
    folds : int, optional
        Without ``hide``: split the families of at least ``min_rows`` rows into this many
        folds at random (seeded); None hides each such family on its own.
    top : sequence of int
        The K of precision and recall at K.
    seed : int
        Seeds the folds, the training split, the methods and the order of ties.
    methods : sequence of str, optional
        Names from :data:`METHODS`; None runs them all.
    progress : callable, optional
        Called with a short line before each step.
    min_rows : int
        Smallest family ``folds`` hides; also HDBSCAN's smallest cluster, so that a
        family that small can form one.
    groups : sequence of str
        Family prefixes (:func:`family_of`), for the names in ``hide``.
    where : str
        How messages name the data.
    truth_only : bool
        Hide no family: only rank against the ground truth (``data.truth`` is needed).

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        One sentence: an unknown method or family, a bad ``top``, ``folds`` or
        ``min_rows``, no censored rows, or too few labelled rows left to train on.
    """
    say = progress or (lambda message: None)
    methods, top = _check_options(methods, top, min_rows)
    parts = [] if truth_only else _folds(data.labels, data.families, hide, folds, min_rows, groups, seed, where)
    if truth_only and data.truth is None:
        raise ValueError("Scoring against the ground truth alone needs a truth file; give --truth.")
    shared = SharedFeatures(data, min_cluster_size=min_rows)
    fold_results, hidden_rows = [], []
    for number, hidden in enumerate(parts, 1):
        say(f"fold {number}/{len(parts)}: hiding {', '.join(hidden)}")
        positives = np.isin(data.families, hidden)
        labels = data.labels.copy()
        labels[positives] = Label.UNDETERMINED
        censorship = positives | (data.truth == "unknown_blockpage") if data.truth is not None else None
        fold_results.append({"hidden": hidden, **_run(data, shared, labels, positives, methods, top, seed, censorship)})
        hidden_rows.append(np.flatnonzero(positives))
    say("purity of the hidden families")
    purity = _purity(shared, np.concatenate(hidden_rows) if hidden_rows else np.zeros(0, np.int64), data.families)
    truth = None
    if data.truth is not None:
        say("ranking against the ground truth")
        unknown_rows = data.truth == "unknown_blockpage"
        if not (unknown_rows & (data.labels == Label.UNDETERMINED)).any():
            raise ValueError(f"The ground truth marks no undetermined row of {where} as an unknown blockpage, "
                             "so there is nothing to find; give the truth of another sample.")
        pages = data.pages if data.pages is not None else data.truth
        truth = _run(data, shared, data.labels, unknown_rows, methods, top, seed, pages=np.asarray(pages, dtype=object))
        truth["purity"] = _purity(shared, np.flatnonzero(unknown_rows), np.where(unknown_rows, pages, ""))
    rows_per_label = {str(label.value): int(np.sum(data.labels == label)) for label in Label}
    return EvaluationReport(
        data=where, checkpoint=None, rows=int(len(data.labels)), rows_per_label=rows_per_label,
        families=_family_counts(data.families), top=top, methods=methods, folds=fold_results, purity=purity,
        truth=truth,
        settings={"seed": seed, "min_rows": min_rows, "groups": list(groups), "neighbours": NEIGHBOURS,
                  "min_cluster_size": min_rows, "test_size": TEST_SIZE},
    )


def evaluate(
    data_dir: str | os.PathLike,
    model=None,
    hide: Sequence[str] | None = None,
    folds: int | None = None,
    top: Sequence[int] = EVALUATION.top,
    seed: int = EVALUATION.seed,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    min_rows: int = EVALUATION.min_rows,
    groups: Sequence[str] = (),
    truth: str | os.PathLike | None = None,
    device: str | None = None,
    truth_only: bool = False,
) -> EvaluationReport:
    """Encode a data set once and run the leave-fingerprints-out protocol on it.

    Parameters
    ----------
    data_dir : path
        A data set written by ``quack ingest`` (with any tokenizer: the model reads it in its own tokens).
    model : QuackAutoEncoder or path, optional
        The model, or its checkpoint file; None uses the shipped checkpoint.
    hide, folds, top, seed, methods, progress, min_rows, groups
        As :func:`evaluate_data` takes them.
    truth : path, optional
        The sample's ground truth, for one more run scored against its unknown blockpages.
    device : str, optional
        Where to encode (``cpu``, ``cuda``, ...); by default the best device present.
    truth_only : bool
        Hide no family; only score the ranking against ``truth``.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        One sentence, as :func:`evaluate_data`, or when the data set is not one.
    """
    from quack.data.datafolder import DataFolder
    from quack.model.encoding import SHIPPED_CHECKPOINT, encode_dataset, load_checkpoint

    say = progress or (lambda message: None)
    folder = DataFolder.open(data_dir, require_rows=True)
    where = str(folder.path)
    # Every option and input is checked before the encoding, the one slow step.
    _check_options(methods, top, min_rows)
    stored = folder.read_rows(["label", "fingerprint"])
    labels = stored["label"].to_numpy()
    if not truth_only:
        _folds(labels, families_of(labels, stored["fingerprint"].tolist(), groups), hide, folds, min_rows,
               groups, seed, where)
    elif truth is None:
        raise ValueError("Scoring against the ground truth alone needs a truth file; give --truth.")
    truth_arrays = read_truth(truth, folder.read_rows(["source", "line", "probe"])) if truth is not None else None
    checkpoint = None
    if model is None or isinstance(model, (str, os.PathLike)):
        checkpoint = str(model or SHIPPED_CHECKPOINT)
        model = load_checkpoint(checkpoint)
    say(f"encoding {folder.n_rows} rows")
    encoded = encode_dataset(model, folder.path, device=device, with_loss=True)
    say("reading labels, tokens and text")
    data = EvaluationData.from_dataset(folder.path, encoded.latents, encoded.loss, groups=groups, truth=truth_arrays)
    report = evaluate_data(data, hide=hide, folds=folds, top=top, seed=seed, methods=methods, progress=progress,
                           min_rows=min_rows, groups=groups, where=where, truth_only=truth_only)
    report.checkpoint = checkpoint
    return report
