"""What changed between scans: the library's tables and new templates, and `quack compare`, on a sample of days."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from quack.cli.main import main
from quack.data.build import build_dataset
from quack.discovery.changes import (chance_threshold, compare_periods, families_appeared, measurements,
                                     parse_period, scan_times, shares_over_time)
from quack.discovery.comparison import records_frame
from quack.discovery.new_templates import new_templates
from quack.sample.days import EVENTS_FILE, write_days
from quack.schema import Label, columns


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("days")
    files, truth = write_days(root / "scans", 8, n=400, seed=2)
    build_dataset([str(root / "scans")], root / "data", vocab_size=800, max_tokens=64)
    return {"root": root, "data": root / "data", "truth": json.loads(truth.read_text()), "files": files}


def day_masks(frame, scans, day):
    return parse_period(scans[day - 1], scans).mask(frame), parse_period(scans[day], scans).mask(frame)


def test_every_injected_change_is_in_the_top_ten_of_its_day(days):
    frame = records_frame(days["data"])
    scans = days["truth"]["scans"]
    assert scan_times(frame)["scan"].tolist() == scans
    for event in days["truth"]["events"]:
        table = compare_periods(frame, *day_masks(frame, scans, event["day"])).head(10)
        sign = 1 if event["direction"] == "up" else -1
        where = ((table["level"] == "country") & (table["group"] == event["country"])) | (
            (table["level"] == "vp") & table["group"].isin(event["vps"]))
        hit = table[where & (table["share"] == event["label"]) & (table["score"] * sign > 0)]
        assert len(hit), (event["kind"], event["day"], table[["level", "group", "share", "score"]])


def test_quiet_days_score_below_the_changes(days):
    frame = records_frame(days["data"])
    scans = days["truth"]["scans"]
    # A group of a handful of measurements flips by chance; the bench's larger days need no floor.
    quiet = [compare_periods(frame, *day_masks(frame, scans, d), min_rows=20)["score"].abs().max()
             for d in days["truth"]["quiet_days"]]
    changed = [compare_periods(frame, *day_masks(frame, scans, e["day"]), min_rows=20)["score"].abs().max()
               for e in days["truth"]["events"]]
    assert max(quiet) < min(changed)


def test_the_chance_threshold_holds_false_alarms_down_and_grows_with_the_shares(days):
    sizes = [1, 10, 60, 500, 3000, 100000]
    thresholds = [chance_threshold(m) for m in sizes]
    assert thresholds == sorted(thresholds) and thresholds[0] > 1.9 and thresholds[-1] < 6
    assert all(t * 2 == int(t * 2) for t in thresholds)
    # Scores of nothing changed are standard normal: the largest of 500 passes the threshold in at most 1 in 20.
    rng = np.random.default_rng(0)
    largest = np.abs(rng.standard_normal((2000, 500))).max(axis=1)
    assert (largest >= chance_threshold(500)).mean() <= 0.05
    assert (largest >= 3.0).mean() > 0.3  # a fixed 3 would cry wolf on most quiet comparisons of 500 shares
    frame = records_frame(days["data"])
    scans = days["truth"]["scans"]
    for day in days["truth"]["quiet_days"]:
        table = compare_periods(frame, *day_masks(frame, scans, day))
        assert (table["score"].abs() >= chance_threshold(len(table))).sum() == 0, day
    with pytest.raises(ValueError):
        chance_threshold(10, alpha=1.5)


def test_a_lifted_known_block_vanishes_from_its_country(days):
    frame = records_frame(days["data"])
    lifted = next(e for e in days["truth"]["events"] if e["kind"] == "lifted_block")
    egyptian = (frame["country"] == lifted["country"]).to_numpy()
    before = frame["scan"].isin(days["truth"]["scans"][:lifted["day"]]).to_numpy() & egyptian
    after = ~before & egyptian
    shares = shares_over_time(frame, "country", top=None)
    egypt = shares[shares["country"] == lifted["country"]]
    early = egypt[egypt["start"] < pd.Timestamp(lifted["time"])]["censored_share"]
    late = egypt[egypt["start"] >= pd.Timestamp(lifted["time"])]["censored_share"]
    assert early.min() > late.max()
    assert compare_periods(frame, before, after, levels=["fingerprint"]).iloc[0]["score"] < 0


def test_families_that_appear_or_vanish():
    frame = pd.DataFrame({"source": list("abcdef"), "line": 1, "label": [1, 1, 1, 1, -1, 1],
                          "fingerprint": ["old", "both", "both", "new", "", "new"], "country": list("ABCDEF")})
    before = np.array([1, 1, 0, 0, 0, 0], bool)
    table = families_appeared(frame, before, ~before)
    assert table.set_index("fingerprint")["change"].to_dict() == {"new": "appeared", "old": "vanished"}
    assert table.set_index("fingerprint").loc["new", "records"] == 2


def test_a_measurement_counts_once_and_as_its_most_telling_probe():
    frame = pd.DataFrame({"source": ["a"] * 4 + ["b"], "line": [1, 1, 1, 2, 1],
                          "label": [-1, 0, 1, -1, 0], "fingerprint": ["", "", "f", "", ""]})
    kept = measurements(frame)
    assert len(kept) == 3
    assert sorted(kept["label"].tolist()) == [-1, 0, 1] and "f" in kept["fingerprint"].tolist()


def test_periods_by_date_and_bad_periods(days):
    frame = records_frame(days["data"])
    scans = days["truth"]["scans"]
    first_day = scans[0][len("CP_Quack-sample-"):][:10]
    by_date = parse_period(f"..{first_day}", scans).mask(frame)
    assert (by_date == frame["scan"].eq(scans[0]).to_numpy()).all()
    assert parse_period(f"{scans[0]},{scans[1]}", scans).mask(frame).sum() > by_date.sum()
    with pytest.raises(ValueError, match="names no scan"):
        parse_period("CP_Quack-https-2000-01-01-00-00-00", scans)
    with pytest.raises(ValueError, match="range of dates"):
        parse_period("2021-13-45..", scans)
    with pytest.raises(ValueError, match="holds no records"):
        compare_periods(frame, np.zeros(len(frame), bool), np.ones(len(frame), bool))


def test_new_templates_are_the_later_records_unlike_any_earlier():
    rng = np.random.default_rng(0)
    old = rng.normal(0, 1, (300, 8)).astype(np.float32)
    again = rng.normal(0, 1, (300, 8)).astype(np.float32)
    page = rng.normal(12, 0.2, (60, 8)).astype(np.float32)
    latents = np.concatenate([old, again, page])
    n = len(latents)
    frame = pd.DataFrame({
        "id": np.arange(n), "label": np.full(n, int(Label.UNDETERMINED)),
        "country": ["US"] * 600 + ["NG"] * 60, "vp": [f"vp{i % 7}" for i in range(600)] + ["ng1"] * 60,
        "domain": ["a.com"] * n, "time": pd.date_range("2021-09-15", periods=n, freq="min", tz="UTC"),
    })
    before = np.arange(n) < 300
    table, template = new_templates(latents, frame, before, ~before, k=10, min_records=10)
    assert len(table) == 1 and table.loc[0, "records"] == 60 and table.loc[0, "countries"] == "NG 60"
    assert table.loc[0, "first_seen"] == frame["time"][600] and table.loc[0, "example"] == 600
    assert (template[600:] == 0).all() and (template[:600] == -1).all()
    # Nothing is new between a period and itself.
    assert new_templates(latents, frame, ~before, ~before, k=10)[0].empty


def test_quack_compare_prints_and_writes_json_and_parquet(days, tmp_path, capsys):
    scans = days["truth"]["scans"]
    new = next(e for e in days["truth"]["events"] if e["kind"] == "new_blockpage")
    period = ["--before", scans[new["day"] - 1], "--after", scans[new["day"]]]
    assert main(["compare", "--data", str(days["data"]), *period, "--threshold", "0", "--top", "5",
                 "--out", str(tmp_path / "c.json")]) == 0
    printed = capsys.readouterr().out
    assert new["country"] in printed and "give --encoded" in printed
    written = json.loads((tmp_path / "c.json").read_text())
    assert written["before"] == scans[new["day"] - 1] and written["changes"][0]["group"] in (new["country"], *new["vps"])
    assert main(["compare", "--data", str(days["data"]), *period, "--out", str(tmp_path / "c.parquet")]) == 0
    table = pq.read_table(tmp_path / "c.parquet").to_pandas()
    assert {"level", "group", "share", "difference", "score"} <= set(table.columns)
    assert (tmp_path / "c.families.parquet").is_file()


def test_quack_compare_with_encoded_lists_new_templates(days, tmp_path, trained_sample, capsys):
    from quack.model.encoding import load_checkpoint, write_encoded

    write_encoded(load_checkpoint(trained_sample["checkpoint"]), days["data"], tmp_path / "enc",
                  checkpoint=trained_sample["checkpoint"], accelerator="cpu")
    scans = days["truth"]["scans"]
    new = next(e for e in days["truth"]["events"] if e["kind"] == "new_blockpage")
    code = main(["compare", "--data", str(days["data"]), "--encoded", str(tmp_path / "enc"), "--before", scans[0],
                 "--after", scans[new["day"]], "--k", "10", "--out", str(tmp_path / "c.json")])
    assert code == 0
    written = json.loads((tmp_path / "c.json").read_text())
    assert written["templates"], "the new blockpage is a template no earlier record resembles"
    assert any(new["country"] in t["countries"] for t in written["templates"])
    assert all(t["snippet"] for t in written["templates"])


def test_quack_compare_takes_two_data_sets_ingested_apart(days, tmp_path, trained_sample, capsys):
    from quack.data.datafolder import DataFolder
    from quack.model.encoding import load_checkpoint, write_encoded

    new = next(e for e in days["truth"]["events"] if e["kind"] == "new_blockpage")
    tokenizer = DataFolder.open(days["data"]).tokenizer
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    build_dataset([str(f) for f in days["files"][:new["day"]]], earlier, tokenizer=tokenizer)
    build_dataset([str(days["files"][new["day"]])], later, tokenizer=tokenizer)
    model = load_checkpoint(trained_sample["checkpoint"])
    for data in (earlier, later):
        write_encoded(model, data, tmp_path / f"{data.name}.enc", checkpoint=trained_sample["checkpoint"],
                      accelerator="cpu")
    encoded = [str(tmp_path / "earlier.enc"), str(tmp_path / "later.enc")]
    code = main(["compare", "--data", str(earlier), str(later), "--encoded", *encoded, "--k", "10",
                 "--out", str(tmp_path / "c.json")])
    assert code == 0
    written = json.loads((tmp_path / "c.json").read_text())
    assert written["before"] == str(earlier) and written["after"] == str(later)
    assert written["changes"][0]["group"] in (new["country"], *new["vps"])
    assert any(new["country"] in t["countries"] for t in written["templates"])
    rows = len(DataFolder.open(later).read_rows(["id"]))
    assert all(0 <= t["example"] < rows and t["snippet"] for t in written["templates"]), "ids of the later data set"
    capsys.readouterr()
    # Latents of two checkpoints, or folders given the wrong way round, cannot be compared.
    assert main(["compare", "--data", str(earlier), str(later), "--encoded", *reversed(encoded)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["compare", "--data", str(earlier), str(later), "--encoded", encoded[0]]) == 2
    assert "two encoded folders" in capsys.readouterr().err
    assert main(["compare", "--data", str(earlier), str(later), "--before", "x"]) == 2
    assert "compared whole" in capsys.readouterr().err


def test_quack_compare_says_one_sentence_for_bad_input(days, tmp_path, capsys):
    assert main(["compare", "--data", str(days["data"]), "--before", "nope", "--after", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no scan" in err[0]
    old = tmp_path / "old"
    shutil.copytree(days["data"], old)
    table = pq.read_table(old / "rows.parquet")
    pq.write_table(table.drop_columns(list(columns("optional"))), old / "rows.parquet")
    assert main(["compare", "--data", str(old), "--before", "a", "--after", "b"]) == 2
    assert "time is unknown" in capsys.readouterr().err


def test_sample_of_days_names_its_scans_and_changes(days):
    truth = days["truth"]
    assert [f.name for f in days["files"]] == [f"{scan}.json" for scan in truth["scans"]]
    assert {e["kind"] for e in truth["events"]} == {"new_blockpage", "isp_filter", "lifted_block"}
    spread = [len(e["vps"]) for e in truth["events"] if e["kind"] == "isp_filter"]
    assert spread == sorted(spread) and spread[0] == 1 and spread[-1] > 1
    changed = {e["day"] for e in truth["events"]}
    assert truth["quiet_days"] and not changed & set(truth["quiet_days"])
    assert (days["root"] / "scans" / EVENTS_FILE).is_file()
