"""Throughput of the autoencoder: training with both decoders, and encoding.

Training: records per second of one forward + backward + AdamW step, with the
teacher-forced decoder run all at once against the same decoder run step by step, on the
same model and batch, and beside them the work both do alike (see ``shared_step``):
the step-by-step time divided by that bounds the ratio any all-at-once decoder can reach
on the machine, even one whose decoder GRU and attention cost nothing. Encoding: records
per second of ``QuackAutoEncoder.encode`` next to a bare bidirectional ``nn.GRU`` forward
over the same embedded tensors.

Two kinds of batch are timed. ``mixed``: record lengths drawn uniformly between T/8 and
T, one record of length T, as a padded batch of real records looks. ``full``: every
record T tokens long, so no step is padding.

Run ``python bench/bench_autoencoder.py`` from the repository root; it prints a markdown
table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quack.model.module import QuackAutoEncoder  # noqa: E402
from quack.schema import BOS, EOS, PAD  # noqa: E402


def make_batch(batch: int, time_steps: int, vocab: int, kind: str, seed: int) -> torch.Tensor:
    """A right-padded batch of random records; see the module docstring for ``kind``."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "full":
        lengths = [time_steps] * batch
    else:
        lengths = torch.randint(max(2, time_steps // 8), time_steps + 1, (batch,), generator=generator).tolist()
        lengths[0] = time_steps
    tokens = torch.full((batch, time_steps), PAD, dtype=torch.long)
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.randint(4, vocab, (length,), generator=generator)
        tokens[row, 0], tokens[row, length - 1] = BOS, EOS
    return tokens


def _timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def interleaved_seconds(steps: list, repeats: int, device: torch.device) -> list[float]:
    """Median wall time of each step after one warm-up call of each.

    The steps take turns, so that on a shared machine they all run under much the same
    load and their ratios stay meaningful even when absolute figures do not.
    """
    for step in steps:
        step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for step, spent in zip(steps, times):
            spent.append(_timed(step, device))
    return [statistics.median(spent) for spent in times]


def training_step(model: QuackAutoEncoder, tokens: torch.Tensor, stepwise: bool):
    """One forward + backward + AdamW step of the teacher-forced decoder."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.batch_loss(tokens, teacher_forcing=True, stepwise=stepwise).backward()
        optimizer.step()

    return step


def shared_step(model: QuackAutoEncoder, tokens: torch.Tensor):
    """The work both decoders do alike: the encoder forward and backward, the prediction
    network and loss over the steps whose target is a real token, and the AdamW step.

    Every teacher-forced training step does at least this, however it decodes; only the
    decoder GRU and the attention are left out.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    valid = model.mask_input(tokens)
    features = torch.randn(int(valid.sum()), 2 * model.hidden_size, device=tokens.device)
    targets = tokens[valid]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        final, sequence = model(tokens)
        loss = torch.nn.functional.cross_entropy(model.predict_word(features), targets)
        (loss + final.mean() + sequence.mean()).backward()
        optimizer.step()

    return step


def encoding_rates(model: QuackAutoEncoder, tokens: torch.Tensor, repeats: int) -> tuple[float, float]:
    bare = nn.GRU(model.hparams.embed_size, model.hidden_size // 2, batch_first=True,
                  bidirectional=True).to(tokens.device).eval()
    with torch.no_grad():
        embedded = model.embed(tokens)
        ours, plain = interleaved_seconds([lambda: model.encode(tokens), lambda: bare(embedded)],
                                          repeats, tokens.device)
    return tokens.size(0) / ours, tokens.size(0) / plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions per figure")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 256], help="padded lengths T")
    parser.add_argument("--kinds", nargs="+", default=["mixed", "full"], choices=["mixed", "full"])
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = QuackAutoEncoder(num_embeddings=7000, embed_size=128, hidden_size=512).to(device)
    vocab = model.hparams.num_embeddings
    where = f"{device.type}, {args.threads} threads" if device.type == "cpu" else str(device)
    print(f"torch {torch.__version__}, {where}; E=128, H=512, V={vocab}, training B=32, encoding B=256; "
          f"median of {args.repeats} interleaved runs after a warm-up\n")

    print("| T | batch | all at once (rec/s) | step by step (rec/s) | ratio | loss rel. diff "
          "| shared work alone (s) | ratio bound |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for time_steps in args.lengths:
        for kind in args.kinds:
            tokens = make_batch(32, time_steps, vocab, kind, seed=time_steps).to(device)
            fast = model.batch_loss(tokens, teacher_forcing=True).item()
            slow = model.batch_loss(tokens, teacher_forcing=True, stepwise=True).item()
            fast_seconds, slow_seconds, shared_seconds = interleaved_seconds(
                [training_step(model, tokens, False), training_step(model, tokens, True),
                 shared_step(model, tokens)], args.repeats, device)
            all_at_once, step_by_step = tokens.size(0) / fast_seconds, tokens.size(0) / slow_seconds
            print(f"| {time_steps} | {kind} | {all_at_once:.1f} | {step_by_step:.1f} | "
                  f"{all_at_once / step_by_step:.1f} | {abs(fast - slow) / abs(slow):.1e} | "
                  f"{shared_seconds:.2f} | {slow_seconds / shared_seconds:.1f} |", flush=True)

    print("\n| T | batch | QuackAutoEncoder.encode (rec/s) | bare nn.GRU forward (rec/s) |")
    print("| --- | --- | --- | --- |")
    for time_steps in args.lengths:
        for kind in args.kinds:
            tokens = make_batch(256, time_steps, vocab, kind, seed=time_steps + 1).to(device)
            ours, plain = encoding_rates(model, tokens, args.repeats)
            print(f"| {time_steps} | {kind} | {ours:.0f} | {plain:.0f} |", flush=True)


if __name__ == "__main__":
    main()
