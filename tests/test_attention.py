"""Attention per input token and per field."""

import numpy as np
import pytest

from quack.latents.attention_stats import attention_by_field, attention_received


def test_attention_received_ignores_padded_decoder_steps():
    weights = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(attention_received(weights, n_decoded=2), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(attention_received(weights), [0.5, 1 / 3, 1 / 6])


def test_attention_by_field_sums_shares_per_field():
    weights = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    assert attention_by_field(weights, ["special", "body", "body"]) == pytest.approx({"special": 0.5, "body": 0.5})
    shares = attention_by_field(np.array([0.2, 0.3, 0.5]), ["status", "body", "special"])
    assert shares == pytest.approx({"status": 0.2, "body": 0.3, "special": 0.5})


def test_attention_by_field_ignores_positions_beyond_the_fields():
    shares = attention_by_field(np.array([0.6, 0.2, 0.2]), ["special", "body"])
    assert shares == pytest.approx({"special": 0.75, "body": 0.25})
