"""Tokenizer: static layout, readable pieces, fields, truncation, bounds, persistence."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quack.data.tokenizer import QuackTokenizer
from quack.data.vocab import FIELD_CHARS, N_STATIC, TEXT_FIELDS, TEXT_OFFSET
from quack.schema import BOS, EOS, PAD


def make_row(**kw) -> dict:
    row = {
        "vp": "10.34.200.7", "service": "https", "anomaly": True, "controls_failed": False,
        "stateful_block": False, "matches_template": False, "tls_version": 771, "cipher_suite": 49199,
        "certificate": True, "elapsed_ms": 250.0, "error": "read tcp 1.2.3.4:5->6.7.8.9:443: i/o timeout",
        "sent": "example.org", "status": "403 Forbidden", "headers": "Server: nginx\r\nContent-Type: text/html",
        "body": "<html><head><title>Access denied</title></head><body>The page is blocked.</body></html>",
    }
    row.update(kw)
    return row


CORPUS = [make_row(body=f"<html><body>page {i} of the web, blocked by policy {i % 7}</body></html>") for i in range(300)]


@pytest.fixture(scope="module")
def tok() -> QuackTokenizer:
    return QuackTokenizer.train(CORPUS, vocab_size=1700, max_tokens=64)


def test_layout_starts_with_static_and_ends_with_eos(tok):
    ids = tok.encode_row(make_row())
    assert ids[0] == BOS and ids[-1] == EOS
    pieces = tok.decode_tokens(ids)
    assert pieces[1:6] == ["ip[0]=10", "ip[1]=34", "ip[2]=200", "ip[3]=7", "service=https"]
    assert "tls=1.2" in pieces and "cipher=0xc02f" in pieces and "cert=yes" in pieces
    assert "elapsed=<300ms" in pieces and "error=timeout" in pieces
    assert pieces[N_STATIC + 1] == "[sent]"
    assert tok.decode_tokens([PAD, 0, 2, 3, 10**6]) == ["<pad>", "<s>", "</s>", "<unk>", "<unk>"]


def test_text_pieces_are_readable(tok):
    ids = tok.encode_row(make_row(body="<html>\r\n blocked"))
    body = "".join(tok.decode_tokens(ids)[ids.index(TEXT_OFFSET - 1) + 1 : -1])
    assert body == "<html>\\r\\n blocked"


def test_token_fields_name_every_position(tok):
    ids = tok.encode_row(make_row())
    fields = tok.token_fields(ids)
    assert len(fields) == len(ids)
    assert fields[0] == fields[-1] == "special"
    assert fields[1:5] == ["ip"] * 4
    assert fields[5:N_STATIC + 1] == ["service", "anomaly", "controls_failed", "stateful_block", "matches_template",
                                      "tls_version", "cipher_suite", "certificate", "elapsed", "error"]
    text_fields = fields[N_STATIC + 1 : -1]
    assert text_fields == sorted(text_fields, key=TEXT_FIELDS.index)
    assert set(text_fields) == set(TEXT_FIELDS)


def test_missing_values_use_missing_slots(tok):
    pieces = tok.decode_tokens(tok.encode_row({}))
    assert pieces == ["<s>", "ip[0]=?", "ip[1]=?", "ip[2]=?", "ip[3]=?", "service=?", "anomaly=?",
                      "controls_failed=?", "stateful_block=?", "matches_template=?", "tls=none", "cipher=none",
                      "cert=no", "elapsed=?", "error=none", "</s>"]


def test_long_text_is_truncated_but_static_part_is_not(tok):
    row = make_row(headers="X-Long: " + "abc " * 3000, body="word " * 3000)
    ids = tok.encode_row(row)
    assert len(ids) == 2 + N_STATIC + tok.max_tokens
    fields = tok.token_fields(ids)
    assert fields.count("body") > tok.max_tokens // 3, "long headers must not crowd out the body"
    assert tok.decode_tokens(ids)[1] == "ip[0]=10"


@pytest.mark.parametrize("max_tokens", [16, 20, 64, 300])
def test_text_part_never_exceeds_max_tokens(tok, max_tokens):
    small = QuackTokenizer(tok.bpe, max_tokens=max_tokens)
    row = make_row(sent="s " * 500, status="t " * 500, headers="h " * 500, body="b " * 500)
    ids = small.encode_row(row)
    assert len(ids) == 2 + N_STATIC + max_tokens
    assert small.token_fields(ids).count("body") > 0


def test_prefix_encoding_equals_encoding_the_whole_field(tok):
    for body in ["x" * 5000, "ab " * 2000, "<p>" + "é" * 4000, " " * 300 + "z" * 10, "1234567890" * 500]:
        row = make_row(body=body, headers="")
        full = [tok.bpe.encode(str(row[f])[:FIELD_CHARS], add_special_tokens=False).ids for f in TEXT_FIELDS]
        assert tok.encode_row(row) == tok.assemble(row, full)


def test_round_trip_through_json(tok, tmp_path):
    tok.save(tmp_path / "tok.json")
    again = QuackTokenizer.load(tmp_path / "tok.json")
    assert again.to_json() == tok.to_json()
    assert again.vocab_size == tok.vocab_size and again.max_tokens == tok.max_tokens
    assert again.encode_rows(CORPUS[:20]) == tok.encode_rows(CORPUS[:20])


def test_bad_documents_and_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a quack tokenizer"):
        QuackTokenizer.from_json('{"kind": "something else"}')
    (tmp_path / "t.json").write_text("garbage")
    with pytest.raises(ValueError, match="t.json"):
        QuackTokenizer.load(tmp_path / "t.json")
    with pytest.raises(ValueError, match="vocab_size"):
        QuackTokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="max_tokens"):
        QuackTokenizer.train(["abc"], vocab_size=2000, max_tokens=3)


def test_trains_on_plain_texts():
    tok = QuackTokenizer.train(["hello world"] * 50, vocab_size=300, max_tokens=16)
    assert tok.vocab_size <= TEXT_OFFSET + 300
    assert max(tok.encode_row({"body": "hello world"})) < tok.vocab_size


junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=50),
                 st.binary(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
row_keys = ["vp", "service", "anomaly", "controls_failed", "stateful_block", "matches_template", "tls_version",
            "cipher_suite", "certificate", "elapsed_ms", "error", "sent", "status", "headers", "body"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(row_keys), junk) | st.just("not a dict"),
       st.text(alphabet=st.characters(), max_size=400))
def test_any_row_gives_ids_below_vocab_size(tok, row, text):
    if isinstance(row, dict):
        row = dict(row, body=text + "\ud800" if text else row.get("body"))
    for tokenizer in (tok, QuackTokenizer(tok.bpe, max_tokens=16)):
        ids = tokenizer.encode_row(row)
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        assert len(ids) <= 2 + N_STATIC + tokenizer.max_tokens
        assert len(tokenizer.decode_tokens(ids)) == len(tokenizer.token_fields(ids)) == len(ids)


def test_a_table_of_rows_tokenizes_as_its_rows(tok):
    import pyarrow as pa

    rows = CORPUS[:5] + [make_row(body=None, vp="not an address", tls_version=None, elapsed_ms=float("nan"))]
    table = pa.Table.from_pylist(rows)
    tokens = tok.encode_table(table)
    assert tokens.type == pa.list_(pa.int32()) and tokens.to_pylist() == tok.encode_rows(rows)
    assert tok.encode_table(table.slice(0, 0)).to_pylist() == []


# --------------------------------------------------------------------------- fields


def with_fields(tok: QuackTokenizer, fields) -> QuackTokenizer:
    return QuackTokenizer(tok.bpe, max_tokens=tok.max_tokens, fields=fields)


def test_fields_choose_and_order_the_sequence(tok):
    row = make_row()
    default = tok.encode_row(row)
    response_first = with_fields(tok, ["status", "headers", "body", "service", "error"])
    ids = response_first.encode_row(row)
    pieces = response_first.decode_tokens(ids)
    assert pieces[:3] == ["<s>", "[status]", "403"]
    assert pieces[-3:] == ["service=https", "error=timeout", "</s>"]
    assert not any(p.startswith("ip[") or p == "[sent]" or p.startswith("tls=") for p in pieces)
    assert response_first.n_static == 2 and tok.n_static == N_STATIC
    fields = response_first.token_fields(ids)
    assert fields[-3:-1] == ["service", "error"] and set(fields[1:-3]) == {"status", "headers", "body"}
    # The response's tokens are the default layout's, and the body gets what the request left.
    kept = [i for i, f in zip(default, tok.token_fields(default)) if f in ("status", "headers")]
    assert [i for i, f in zip(ids, fields) if f in ("status", "headers")] == kept
    assert fields.count("body") >= tok.token_fields(default).count("body")
    assert len(ids) <= 2 + 2 + tok.max_tokens


def test_fields_are_stored_and_checked(tok):
    chosen = with_fields(tok, "body,status,ip")
    assert chosen.fields == ("body", "status", "ip")
    again = QuackTokenizer.from_json(chosen.to_json())
    assert again.fields == chosen.fields
    assert again.encode_row(make_row()) == chosen.encode_row(make_row())
    # The default layout writes the document it always did, and such a document reads as the default.
    assert '"fields"' not in tok.to_json()
    assert QuackTokenizer.from_json(tok.to_json()).encode_row(make_row()) == tok.encode_row(make_row())
    for bad, message in ((["body", "colour"], "Unknown field 'colour'"), (["body", "body"], "named twice"),
                         (["ip", "service"], "at least one of the text fields")):
        with pytest.raises(ValueError, match=message):
            with_fields(tok, bad)
    trained = QuackTokenizer.train(CORPUS[:50], vocab_size=300, max_tokens=32, fields=["body", "error"])
    assert trained.decode_tokens(trained.encode_row(make_row()))[1] == "[body]"
