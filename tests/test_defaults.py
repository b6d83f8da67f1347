"""A new model is trained as the shipped one was: the command line and the Model page default to its settings.

The settings are read from ``checkpoints/quack-sample.json``, the record the script that
trained the shipped checkpoint wrote (``scripts/train_sample_checkpoint.py``).
"""

import json

from streamlit.testing.v1 import AppTest

from conftest import APP, TIMEOUT, assert_clean
from quack.cli.main import build_parser
from quack.config import AutoencoderConfig, TrainConfig
from quack.model.encoding import SHIPPED_CHECKPOINT

RECORD = json.loads(SHIPPED_CHECKPOINT.with_suffix(".json").read_text())


def test_quack_fit_defaults_to_the_shipped_checkpoints_model_and_run():
    args = build_parser().parse_args(["fit", "--data", "data"])
    assert {name: getattr(args, name) for name in RECORD["model"]} == RECORD["model"]
    assert {name: getattr(args, name) for name in RECORD["trainer"]} == RECORD["trainer"]


def test_quack_ingest_defaults_to_the_shipped_checkpoints_tokenizer(tmp_path):
    from quack.cli.main import main
    from quack.data.datafolder import DataFolder
    from quack.sample.generator import write_sample

    args = build_parser().parse_args(["ingest", "raw", "--out", "data"])
    assert (args.vocab_size, args.max_tokens) == (RECORD["tokenizer"]["vocab_size"], RECORD["tokenizer"]["max_tokens"])
    records, _ = write_sample(tmp_path / "sample.json", n=60, seed=1)
    assert main(["ingest", str(records), "--out", str(tmp_path / "data"), "--workers", "1"]) == 0
    assert list(DataFolder.open(tmp_path / "data").tokenizer.fields) == RECORD["tokenizer"]["fields"]


def test_the_model_page_trains_with_the_shipped_checkpoints_settings(dashboard_env):
    dashboard_env("defaults-dashboard", 200)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/model.py").run()
    assert_clean(at)
    form = {key.removeprefix("train_"): widget.value for widget in at.number_input
            if (key := widget.key or "").startswith("train_")}
    assert form, "the page shows the training form"
    # What the form's Start button would train with: its inputs over the configs' other defaults.
    model = AutoencoderConfig(**{k: v for k, v in form.items() if k in AutoencoderConfig.__dataclass_fields__})
    train = TrainConfig(**{k: v for k, v in form.items() if k in TrainConfig.__dataclass_fields__})
    assert {name: getattr(model, name) for name in RECORD["model"]} == RECORD["model"]
    assert {name: getattr(train, name) for name in RECORD["trainer"]} == RECORD["trainer"]
