"""Tests of quack.autoencoder: shapes, masks, the two decoders, training and checkpoints."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from quack.autoencoder import AttentionModule, AttentionScore, QuackAutoEncoder, item_path
from quack.model.network import encode_packed, encode_reversed, response_positions
from quack.schema import BOS, EOS, PAD

VOCAB = 40

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*self.log\\(\\)` but the `self.trainer`"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\)"),
]


def make_tokens(lengths: list[int], width: int | None = None, seed: int = 0) -> torch.Tensor:
    """Right-padded records ``[<s>, tokens..., </s>]`` of the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    batch = torch.full((len(lengths), width), PAD, dtype=torch.long)
    for row, length in enumerate(lengths):
        batch[row, :length] = torch.randint(4, VOCAB, (length,), generator=generator)
        batch[row, 0] = BOS
        batch[row, length - 1] = EOS
    return batch


def patterned_records(count: int, seed: int) -> list[torch.Tensor]:
    """Records built from a few repeated motifs, so a model can learn to reconstruct them."""
    generator = torch.Generator().manual_seed(seed)
    motifs = [torch.arange(4 + 6 * m, 10 + 6 * m) for m in range(4)]
    records = []
    for _ in range(count):
        motif = motifs[int(torch.randint(0, 4, (1,), generator=generator))]
        repeats = int(torch.randint(1, 3, (1,), generator=generator))
        body = motif.repeat(repeats)
        records.append(torch.cat([torch.tensor([BOS]), body, torch.tensor([EOS])]))
    return records


def collate(records: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(records, batch_first=True, padding_value=PAD)


def tiny_model(**kwargs) -> QuackAutoEncoder:
    options = dict(num_embeddings=VOCAB, embed_size=8, hidden_size=16)
    options.update(kwargs)
    return QuackAutoEncoder(**options)


def quiet_trainer(**kwargs) -> pl.Trainer:
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)
    options.update(kwargs)
    return pl.Trainer(**options)


# ---------------------------------------------------------------------- item_path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((202001, "pyc"), "/2/2/202001.pyc"),
        ((5,), "/0/0/5.png"),
        ((99999, "npz"), "/0/99/99999.npz"),
        ((100000, "npz"), "/1/0/100000.npz"),
        ((1234567, "json", True), "/12/34"),
        ((1234567, "json", False, True), "/12/34/1234567/1234567.json"),
        ((1234567, "json", True, True), "/12/34/1234567"),
    ],
)
def test_item_path(args, expected):
    assert item_path(*args) == expected


# ---------------------------------------------------------------------- attention


def test_attention_score_single_and_batched_contexts():
    states = torch.randn(2, 5, 4)
    context = torch.randn(2, 4)
    scores = AttentionScore(4)(states, context)
    assert scores.shape == (2, 5, 1)
    expected = torch.einsum("bth,bh->bt", states, context) / math.sqrt(4)
    torch.testing.assert_close(scores[..., 0], expected)

    contexts = torch.randn(2, 3, 4)
    all_scores = AttentionScore(4)(states, contexts)
    assert all_scores.shape == (2, 5, 3)
    for s in range(3):
        torch.testing.assert_close(all_scores[:, :, s:s + 1], AttentionScore(4)(states, contexts[:, s]))


def test_attention_module_masks_padding_without_touching_inputs():
    states = torch.randn(2, 5, 4)
    scores = torch.randn(2, 5, 1)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    scores_before, mask_before = scores.clone(), mask.clone()

    context, weights = AttentionModule()(states, scores, mask)

    assert context.shape == (2, 4) and weights.shape == (2, 5, 1)
    assert torch.equal(scores, scores_before) and torch.equal(mask, mask_before)
    assert torch.all(weights[1, 2:] == 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 1))
    torch.testing.assert_close(context, (states * weights).sum(dim=1))
    torch.testing.assert_close(weights[1, :2, 0], F.softmax(scores[1, :2, 0], dim=0))


def test_attention_module_without_mask_and_for_many_contexts():
    states = torch.randn(3, 6, 4)
    scores = torch.randn(3, 6, 2)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    contexts, weights = AttentionModule().attend_all(states, scores, mask)
    assert contexts.shape == (3, 2, 4) and weights.shape == (3, 6, 2)
    for s in range(2):
        context, single = AttentionModule()(states, scores[:, :, s:s + 1], mask)
        torch.testing.assert_close(contexts[:, s], context)
        torch.testing.assert_close(weights[:, :, s:s + 1], single)
    _, unmasked = AttentionModule()(states, scores[:, :, :1])
    torch.testing.assert_close(unmasked[..., 0], F.softmax(scores[:, :, 0], dim=1))


# ---------------------------------------------------------------------- encoder


def test_mask_input_marks_padding_in_a_new_tensor():
    model = tiny_model()
    batch = make_tokens([5, 3])
    mask = model.mask_input(batch)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    mask[:] = False
    assert batch[0, 1] != PAD


@pytest.mark.parametrize("layers", [1, 2])
def test_forward_shapes_and_padding(layers):
    model = tiny_model(layers=layers)
    # Every record is shorter than the batch: the states must still cover all T steps.
    batch = make_tokens([4, 6, 2], width=9)
    final, sequence = model(batch)
    assert final.shape == (3, 16)
    assert sequence.shape == (3, 9, 16)
    assert torch.all(sequence[0, 4:] == 0) and torch.all(sequence[2, 2:] == 0)
    assert torch.all(sequence[1, :6].abs().sum(dim=1) > 0)


@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_matches_packed_sequences(layers):
    model = tiny_model(layers=layers)
    batch = make_tokens([7, 3, 5, 1], width=8, seed=3)
    lengths = model.mask_input(batch).sum(dim=1)
    embedded = model.embed(batch)
    packed_final, packed_sequence = encode_packed(model.encoder, embedded, lengths)
    final, sequence = encode_reversed(model.encoder, embedded, lengths)
    torch.testing.assert_close(final, packed_final)
    torch.testing.assert_close(sequence, packed_sequence)
    # Training and encoding take different routes to the same latents.
    torch.testing.assert_close(model(batch)[0], model.encode(batch))


@pytest.mark.parametrize("pooling", ["final", "mean"])
def test_latents_do_not_depend_on_extra_padding_or_batch_mates(pooling):
    model = tiny_model(pooling=pooling)
    batch = make_tokens([5, 3], seed=4)
    wider = torch.cat([batch, torch.full((2, 4), PAD)], dim=1)
    alone = batch[1:, :3]
    torch.testing.assert_close(model.encode(batch), model.encode(wider))
    torch.testing.assert_close(model.encode(batch)[1:], model.encode(alone))


def test_final_joins_forward_and_backward_states():
    model = tiny_model()
    batch = make_tokens([6, 4], seed=5)
    final, sequence = model(batch)
    half = 8
    torch.testing.assert_close(final[0, :half], sequence[0, 5, :half])
    torch.testing.assert_close(final[1, :half], sequence[1, 3, :half])
    torch.testing.assert_close(final[:, half:], sequence[:, 0, half:])


def test_mean_pooling_averages_the_states_of_every_token_training_or_not():
    model = tiny_model(pooling="mean")
    batch = make_tokens([6, 4], seed=5)
    final, sequence = model(batch)
    torch.testing.assert_close(final[0], sequence[0, :6].mean(dim=0))
    torch.testing.assert_close(final[1], sequence[1, :4].mean(dim=0))
    torch.testing.assert_close(model.encode(batch), final.detach())
    with pytest.raises(ValueError, match="pooling must be one of final, mean"):
        tiny_model(pooling="max")


def test_encode_is_eval_without_gradients():
    model = tiny_model().train()
    latents = model.encode(make_tokens([4, 4]))
    assert latents.shape == (2, 16)
    assert not latents.requires_grad
    assert model.training


@pytest.mark.parametrize(
    ("options", "message"),
    [(dict(hidden_size=15), "hidden_size must be even"), (dict(num_embeddings=3), "num_embeddings must be"),
     (dict(layers=0), "layers must lie between 1 and"), (dict(max_decode_length=0), "max_decode_length must be at least 1"),
     (dict(teacher_forcing_ratio=1.5), "teacher_forcing_ratio must lie between 0 and 1")],
)
def test_bad_hyperparameters_raise(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**options)


# ---------------------------------------------------------------------- loss and decoders


def test_loss_over_time_sums_per_step_means_ignoring_padding():
    model = tiny_model()
    target = torch.tensor([[0, 5, 6, 2], [0, 7, 2, PAD]])
    logits = torch.randn(2, 4, VOCAB)
    expected = sum(
        F.cross_entropy(logits[:, t], target[:, t], ignore_index=PAD) for t in range(4)
    )
    torch.testing.assert_close(model.loss_over_time(target, logits), expected)

    # Extra all-padding steps add nothing (no NaN from an empty mean).
    padded_target = torch.cat([target, torch.full((2, 2), PAD)], dim=1)
    padded_logits = torch.cat([logits, torch.randn(2, 2, VOCAB)], dim=1)
    torch.testing.assert_close(model.loss_over_time(padded_target, padded_logits), expected)


def test_response_weight_weighs_the_response_tokens_of_the_loss():
    from quack.data.vocab import TEXT_OFFSET

    sent, status, body = (TEXT_OFFSET - 4, TEXT_OFFSET - 3, TEXT_OFFSET - 1)
    target = torch.tensor([[0, 5, sent, TEXT_OFFSET + 1, status, TEXT_OFFSET + 2, 2],
                           [0, body, TEXT_OFFSET + 3, TEXT_OFFSET + 4, 6, 2, PAD]])
    response = torch.tensor([[0, 0, 0, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(response_positions(target), response)
    vocab = TEXT_OFFSET + 8
    logits = torch.randn(2, 7, vocab)
    plain = tiny_model(num_embeddings=vocab)
    weighted = tiny_model(num_embeddings=vocab, response_weight=3.0)
    ce = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD, reduction="none")
    valid = target != PAD
    per_step = lambda weights: ((ce * weights).sum(0) / valid.sum(0)).sum()  # noqa: E731
    torch.testing.assert_close(plain.loss_over_time(target, logits), per_step(torch.ones_like(ce)))
    torch.testing.assert_close(weighted.loss_over_time(target, logits), per_step(1 + 2.0 * response))
    # The fast teacher-forced path weighs as the step-by-step one does.
    torch.manual_seed(0)
    torch.testing.assert_close(weighted.batch_loss(target, True), weighted.batch_loss(target, True, stepwise=True),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="response_weight"):
        tiny_model(response_weight=-1.0)


@pytest.mark.parametrize("layers", [1, 2])
def test_all_at_once_decoder_matches_step_by_step(layers):
    pl.seed_everything(1)
    model = tiny_model(layers=layers, hidden_size=24)
    batch = make_tokens([9, 4, 7, 2, 9], seed=6)
    fast = model.batch_loss(batch, teacher_forcing=True)
    slow = model.batch_loss(batch, teacher_forcing=True, stepwise=True)
    assert abs(fast.item() - slow.item()) <= 1e-5 * abs(slow.item())

    fast_grads = torch.autograd.grad(fast, list(model.parameters()), allow_unused=True)
    slow_grads = torch.autograd.grad(slow, list(model.parameters()), allow_unused=True)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_max_decode_length_limits_the_decoded_steps():
    model = tiny_model(max_decode_length=3)
    batch = make_tokens([6, 5])
    out = model.inspect(batch)
    assert out["ids"].shape == (2, 3)
    assert out["attention"].shape == (2, 3, 6)
    fast = model.batch_loss(batch, teacher_forcing=True)
    slow = model.batch_loss(batch, teacher_forcing=True, stepwise=True)
    assert abs(fast.item() - slow.item()) <= 1e-5 * abs(slow.item())


@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_gradients_reach_every_parameter(teacher_forcing):
    model = tiny_model(layers=2)
    loss = model.batch_loss(make_tokens([6, 3, 5]), teacher_forcing=teacher_forcing)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_teacher_forcing_ratio_picks_the_decoder():
    batch = make_tokens([6, 4, 5])
    pl.seed_everything(2)
    always = tiny_model(teacher_forcing_ratio=1.0)
    assert always.training_step(batch, 0).item() == pytest.approx(
        always.batch_loss(batch, teacher_forcing=True).item(), rel=1e-6)

    never = tiny_model(teacher_forcing_ratio=0.0)
    never.load_state_dict(always.state_dict())
    sampled = [never.training_step(batch, 0).item() for _ in range(3)]
    forced = never.batch_loss(batch, teacher_forcing=True).item()
    assert all(value != pytest.approx(forced, rel=1e-6) for value in sampled)


def test_inspect_teacher_forced_and_greedy():
    model = tiny_model()
    batch = make_tokens([6, 3], seed=7)
    for teacher_forcing in (True, False):
        out = model.inspect(batch, teacher_forcing=teacher_forcing)
        assert out["ids"].shape == (2, 6) and out["ids"].dtype == torch.long
        assert out["probs"].shape == (2, 6)
        assert out["attention"].shape == (2, 6, 6)
        assert out["loss"].shape == (2,)
        assert torch.all((out["probs"] >= 0) & (out["probs"] <= 1))
        assert torch.all(out["ids"][1, 3:] == PAD) and torch.all(out["probs"][1, 3:] == 0)
        # Each decoder step's weights cover the record's own tokens only.
        torch.testing.assert_close(out["attention"].sum(dim=2), torch.ones(2, 6))
        assert torch.all(out["attention"][1, :, 3:] == 0)
    forced = model.inspect(batch)
    expected = -torch.log(forced["target_probs"][1, :3]).mean()
    torch.testing.assert_close(forced["loss"][1], expected)
    assert torch.all(forced["probs"] >= forced["target_probs"] - 1e-6)


# ---------------------------------------------------------------------- optimiser


def test_configure_optimizers_periods():
    model = tiny_model(learning_rate=0.01)
    constant = model.configure_optimizers()
    assert isinstance(constant["optimizer"], torch.optim.AdamW)
    scheduler = constant["lr_scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    for _ in range(3):
        constant["optimizer"].step()
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.01])

    assert tiny_model(lr_max_epochs=7).configure_optimizers()["lr_scheduler"].T_max == 7

    trainer = quiet_trainer(max_epochs=4)
    attached = tiny_model()
    attached.trainer = trainer
    assert attached.configure_optimizers()["lr_scheduler"].T_max == 4


# ---------------------------------------------------------------------- training


def loaders(seed: int = 0, batch_size: int = 8) -> tuple[DataLoader, DataLoader]:
    train = patterned_records(64, seed)
    val = patterned_records(24, seed + 1)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate),
            DataLoader(val, batch_size=batch_size, collate_fn=collate))


def test_fit_lowers_validation_loss():
    pl.seed_everything(0)
    model = tiny_model(hidden_size=32, embed_size=16, learning_rate=0.01, teacher_forcing_ratio=0.75)
    train, val = loaders()
    trainer = quiet_trainer(max_epochs=6)
    before = trainer.validate(model, val, verbose=False)[0]["val_loss"]
    trainer.fit(model, train, val)
    after = trainer.callback_metrics["val_loss"].item()
    assert after < 0.7 * before
    assert "train_loss" in trainer.callback_metrics


def fitted_latents(seed: int) -> torch.Tensor:
    pl.seed_everything(seed)
    model = tiny_model(learning_rate=0.01)
    train, val = loaders()
    quiet_trainer(max_epochs=1).fit(model, train, val)
    return model.encode(collate(patterned_records(6, 9)))


def test_same_seed_same_latents():
    first, second = fitted_latents(3), fitted_latents(3)
    assert torch.equal(first, second)
    assert not torch.equal(first, fitted_latents(4))


def test_checkpoint_round_trip(tmp_path):
    pl.seed_everything(0)
    model = tiny_model(learning_rate=0.01, max_decode_length=12, teacher_forcing_ratio=0.25)
    model.tokenizer_json = '{"kind": "test tokenizer"}'
    train, val = loaders()
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(model, train, val)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    raw = torch.load(path, weights_only=True)
    assert raw["quack_tokenizer"] == '{"kind": "test tokenizer"}'
    assert raw["hyper_parameters"]["teacher_forcing_ratio"] == 0.25

    batch = collate(patterned_records(5, 11))
    expected = model.encode(batch)
    loaded = QuackAutoEncoder.load_from_checkpoint(path, map_location="cpu")
    assert loaded.tokenizer_json == model.tokenizer_json
    assert loaded.max_decode_length == 12 and loaded.teacher_forcing_ratio == 0.25
    torch.testing.assert_close(loaded.encode(batch), expected, rtol=0, atol=0)
    # quack's own loader checks the tokenizer a checkpoint carries: this one is no quack tokenizer.
    with pytest.raises(ValueError, match="not a quack tokenizer"):
        QuackAutoEncoder.from_checkpoint(path)
    model.tokenizer_json = None
    trainer.save_checkpoint(path)
    loaded = QuackAutoEncoder.from_checkpoint(path)
    assert loaded.tokenizer_json is None
    assert loaded.max_decode_length == 12 and loaded.teacher_forcing_ratio == 0.25
    torch.testing.assert_close(loaded.encode(batch), expected, rtol=0, atol=0)


def test_tokenizer_property_is_none_without_one():
    assert tiny_model().tokenizer is None


def test_from_checkpoint_rejects_what_is_not_a_quack_checkpoint(tmp_path):
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(ValueError, match="missing.ckpt"):
        QuackAutoEncoder.from_checkpoint(missing)

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        QuackAutoEncoder.from_checkpoint(garbage)

    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 0.1}}, other)
    with pytest.raises(ValueError, match="other.ckpt"):
        QuackAutoEncoder.from_checkpoint(other)

    mismatched = tmp_path / "mismatched.ckpt"
    state = tiny_model().state_dict()
    torch.save({"state_dict": state, "hyper_parameters": dict(num_embeddings=VOCAB, embed_size=8,
                                                             hidden_size=32)}, mismatched)
    with pytest.raises(ValueError, match="mismatched.ckpt"):
        QuackAutoEncoder.from_checkpoint(mismatched)


def test_checkpoint_carries_a_working_tokenizer(tmp_path):
    tokenizer_module = pytest.importorskip("quack.data.tokenizer")
    texts = ["HTTP/1.1 200 OK\r\nServer: nginx", "HTTP/1.1 403 Forbidden\r\nblocked page"] * 20
    tokenizer = tokenizer_module.QuackTokenizer.train(texts, vocab_size=1400, max_tokens=32)
    net = tiny_model(num_embeddings=tokenizer.vocab_size)
    net.tokenizer_json = tokenizer.to_json()
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path)
    records = DataLoader([make_tokens([5])[0]] * 4, batch_size=2, collate_fn=collate)
    trainer.fit(net, records, records)
    trainer.save_checkpoint(tmp_path / "model.ckpt")

    loaded = QuackAutoEncoder.from_checkpoint(tmp_path / "model.ckpt")
    assert isinstance(loaded.tokenizer, tokenizer_module.QuackTokenizer)
    assert loaded.tokenizer.to_json() == tokenizer.to_json()


def test_a_checkpoint_with_chosen_fields_and_response_weight_round_trips_and_encodes(tmp_path):
    from quack.data.tokenizer import QuackTokenizer

    rows = [{"vp": "10.0.0.1", "service": "http", "status": "403 Forbidden", "headers": "Server: x",
             "body": f"<html>blocked {i}</html>", "sent": "example.org"} for i in range(30)]
    tokenizer = QuackTokenizer.train(rows, vocab_size=300, max_tokens=32, fields=["body", "status", "service"])
    net = tiny_model(num_embeddings=tokenizer.vocab_size, response_weight=2.5)
    net.tokenizer_json = tokenizer.to_json()
    records = DataLoader([torch.tensor(ids) for ids in tokenizer.encode_rows(rows)], batch_size=8, collate_fn=collate)
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(net, records, records)
    trainer.save_checkpoint(tmp_path / "model.ckpt")

    loaded = QuackAutoEncoder.from_checkpoint(tmp_path / "model.ckpt")
    assert loaded.response_weight == 2.5
    assert loaded.tokenizer.fields == ("body", "status", "service")
    tokens = collate([torch.tensor(ids) for ids in loaded.tokenizer.encode_rows(rows[:3])])
    assert loaded.tokenizer.decode_tokens(tokens[0].tolist())[:2] == ["<s>", "[body]"]
    torch.testing.assert_close(loaded.encode(tokens), net.encode(tokens), rtol=0, atol=0)


def test_a_small_checkpoint_claiming_a_huge_model_is_refused_before_allocating(tmp_path):
    import subprocess
    import sys

    small = tiny_model()
    crafted = tmp_path / "claims.ckpt"
    hparams = {**dict(small.hparams), "num_embeddings": 900_000, "embed_size": 256, "hidden_size": 512}
    torch.save({"hyper_parameters": hparams, "state_dict": small.state_dict()}, crafted)
    script = (
        "import resource, sys\n"
        "from quack.autoencoder import QuackAutoEncoder\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    QuackAutoEncoder.from_checkpoint({str(crafted)!r})\n"
        "except ValueError as error:\n"
        "    print(error)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    message, grown_mb = out.stdout.strip().splitlines()
    assert "claims.ckpt does not fit the model its own hyperparameters describe" in message
    assert int(grown_mb) < 200
