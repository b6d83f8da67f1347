"""The real pages of ``../shared/data/realpages``: their truth joins the rows, and the collapse keeps families apart.

The records are read (no data set is written, no model runs), joined with the truth, and
the undetermined ones (the truth's ``expected_label``, quack's label by ``--match body``,
under which every one of the 55 unknown families stays undetermined) are collapsed into
templates as the Discover page lists them. The whole-response labels are checked against
the truth in ``tests/test_labels.py``.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quack.data.ingest import iter_rows
from quack.discovery.candidates import collapse_candidates, rows_like
from quack.discovery.collapse import template_keys
from quack.discovery.evaluation import read_truth
from quack.schema import Label

REALPAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "realpages"

pytestmark = pytest.mark.skipif(
    not (REALPAGES / "measurements.jsonl.gz").is_file() or not (REALPAGES / "truth.jsonl.gz").is_file(),
    reason="shared real pages not present",
)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Every test probe of the real pages, with its truth."""
    read = pd.DataFrame(list(iter_rows([REALPAGES / "measurements.jsonl.gz"])))
    truth = pd.read_json(REALPAGES / "truth.jsonl.gz", lines=True)
    truth = truth[["line", "probe", "is_blockpage", "family", "truth", "page", "category", "expected_label"]]
    return read.merge(truth, on=["line", "probe"], how="left", validate="one_to_one")


@pytest.fixture(scope="module")
def undetermined(rows) -> pd.DataFrame:
    """The undetermined rows, each with its template key."""
    ranked = rows[rows["expected_label"] == Label.UNDETERMINED].reset_index(drop=True)
    return ranked.assign(key=template_keys(ranked["status"], ranked["body"]))


def test_read_truth_opens_the_gzipped_truth_and_names_every_row(rows, tmp_path):
    keys = rows[["source", "line", "probe"]]
    truth, page = read_truth(REALPAGES / "truth.jsonl.gz", keys)
    assert len(truth) == len(rows) and (truth != "").all(), "every test probe has a truth line"
    assert truth.tolist() == rows["truth"].tolist()
    assert page.tolist() == rows["page"].fillna("").tolist()
    assert (truth == "unknown_blockpage").sum() > 0
    plain = tmp_path / "truth.jsonl"
    with gzip.open(REALPAGES / "truth.jsonl.gz", "rb") as source, open(plain, "wb") as target:
        shutil.copyfileobj(source, target)
    plain_truth, plain_page = read_truth(plain, keys)
    assert plain_truth.tolist() == truth.tolist() and plain_page.tolist() == page.tolist()


def test_read_truth_of_other_measurements_is_refused_in_one_sentence(rows):
    keys = rows[["source", "line", "probe"]].assign(source="other-scan.jsonl")
    with pytest.raises(ValueError, match="names none of the data set's rows"):
        read_truth(REALPAGES / "truth.jsonl.gz", keys)


def test_collapse_gives_each_unknown_family_a_template_and_never_mixes_blockpages_with_other_pages(undetermined):
    blockpages = undetermined[undetermined["is_blockpage"].astype(bool)]
    families = blockpages["family"].nunique()
    assert families >= 50, "the dev set's unknown families are undetermined"
    assert blockpages["key"].nunique() >= families
    # A candidate stands for blockpages only or for other pages only: collapsing hides no
    # ordinary page behind a blockpage, and no blockpage among ordinary pages.
    kinds = undetermined.groupby("key")["is_blockpage"].nunique()
    assert (kinds == 1).all(), list(kinds[kinds > 1].index)
    # The collapse shortens the list: fewer templates than undetermined rows.
    assert undetermined["key"].nunique() < len(undetermined) / 2


def test_a_blockpage_served_for_many_domains_is_one_candidate_with_every_record_one_step_away(undetermined):
    served = undetermined[undetermined["family"] == "in_dot_court_orders"]
    assert served["domain"].nunique() > 10 and served["vp"].nunique() > 1
    # The truth ranks: every blockpage before every other page.
    scores = undetermined["is_blockpage"].astype(float).to_numpy()
    labels = np.full(len(undetermined), int(Label.UNDETERMINED))
    listed = collapse_candidates(scores, labels, undetermined["key"].to_numpy(),
                                 undetermined[["country", "vp", "domain"]])
    assert len(listed) == undetermined["key"].nunique()
    assert listed["records"].sum() == len(undetermined)
    (candidate,) = listed[listed["template"].isin(set(served["key"]))].itertuples()
    assert candidate.records == len(served)
    assert candidate.domains == served["domain"].nunique() and candidate.vantage_points == served["vp"].nunique()
    assert rows_like(undetermined["key"].to_numpy(), labels, candidate.template).tolist() == served.index.tolist()
    # Blockpage templates come first, one each.
    blockpage_templates = undetermined.loc[undetermined["is_blockpage"].astype(bool), "key"].nunique()
    first = listed["template"].head(blockpage_templates)
    assert set(first) == set(undetermined.loc[undetermined["is_blockpage"].astype(bool), "key"])
