"""The label codes and the row's columns, each defined once."""

import numpy as np
import pytest

from quack.schema import ROW_SCHEMA, Label, columns, label_names, schema_of


def test_label_codes_names_and_colours():
    assert [int(label) for label in (Label.CENSORED, Label.UNDETERMINED, Label.UNCENSORED)] == [1, 0, -1]
    assert [label.display for label in Label] == ["censored", "undetermined", "uncensored"]
    assert len({label.colour for label in Label}) == 3
    assert Label.labelled() == (Label.CENSORED, Label.UNCENSORED)
    assert list(Label.by_display()) == ["censored", "uncensored", "undetermined"]


def test_label_names_reads_unknown_codes_as_undetermined():
    names = label_names(np.array([1, 0, -1, 7]))
    assert names.tolist() == ["censored", "undetermined", "uncensored", "undetermined"]


def test_metadata_columns_are_those_carried_with_a_latent():
    assert columns("metadata") == ("id", "label", "fingerprint", "country", "domain", "service", "vp", "anomaly",
                                   "controls_failed", "status", "source", "line", "time", "scan")
    assert columns("optional") == ("time", "scan")


def test_ingest_columns_are_the_keys_of_a_raw_row():
    assert set(columns("ingest")) == {
        "source", "line", "probe", "format", "vp", "country", "domain", "service", "anomaly", "controls_failed",
        "stateful_block", "matches_template", "error", "start_time", "end_time", "elapsed_ms", "sent", "status",
        "headers", "body", "tls_version", "cipher_suite", "certificate", "time", "scan",
    }
    assert not set(columns("ingest")) & set(columns("derived"))
    assert set(columns("ingest")) | set(columns("derived")) == set(columns())


def test_tokenized_text_and_flag_columns():
    assert set(columns("tokenized")) == {
        "vp", "service", "anomaly", "controls_failed", "stateful_block", "matches_template", "tls_version",
        "cipher_suite", "certificate", "elapsed_ms", "error", "sent", "status", "headers", "body",
    }
    assert set(columns("flag")) == {"anomaly", "controls_failed", "matches_template", "stateful_block", "certificate"}
    assert columns("text", "tokenized") == ("service", "vp", "status", "error", "sent", "headers", "body")
    assert columns("text", exclude=("ingest",)) == ("fingerprint",)


def test_schema_of_keeps_schema_order():
    assert schema_of(["body", "id", "label"]).names == ["id", "label", "body"]
    assert schema_of(columns()).names == ROW_SCHEMA.names


def test_unknown_roles_are_refused():
    with pytest.raises(ValueError, match=r"Unknown column roles \['metdata'\]"):
        columns("metdata")
    with pytest.raises(ValueError, match=r"Unknown column roles \['nope'\]"):
        columns(exclude=("nope",))
