"""Bounded input: decompression that stops at its allowance."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from quack.data.decompression import (
    DEFAULT_MAX_EXPANSION,
    EXPANSION_VARIABLE,
    MIN_ALLOWANCE,
    ExpansionError,
    bounded_decompression,
    max_expansion,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "censoredplanet"


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> Path:
    """50 MB of zeros in about 50 KB."""
    path = tmp_path_factory.mktemp("bomb") / "http_results.json.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        chunk = b"\0" * (1 << 20)
        for _ in range(50):
            out.write(chunk)
    return path


def read_all_lines(stream) -> int:
    lines = 0
    while stream.readline(1 << 16):
        lines += 1
    return lines


def test_gzip_bomb_is_refused_with_a_sentence_naming_it(gzip_bomb):
    with open(gzip_bomb, "rb") as handle:
        stream = bounded_decompression(gzip.GzipFile(fileobj=handle), gzip_bomb.stat().st_size, str(gzip_bomb))
        with pytest.raises(ExpansionError) as caught:
            read_all_lines(stream)
    message = str(caught.value)
    assert message.startswith(f"{gzip_bomb} expands to more than {DEFAULT_MAX_EXPANSION:g} times")
    assert EXPANSION_VARIABLE in message and message.count(". ") == 0


def test_tar_gz_bomb_member_is_refused(tmp_path):
    member = gzip.compress(b"\0" * (30 << 20), compresslevel=9)
    archive = tmp_path / "CP_Quack-http-2024-01-01.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("results.json.gz")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    with tarfile.open(archive, "r|") as tar:
        for entry in tar:
            stream = bounded_decompression(gzip.GzipFile(fileobj=tar.extractfile(entry)), entry.size,
                                           f"{archive}:{entry.name}")
            with pytest.raises(ExpansionError, match="results.json.gz expands to more than"):
                stream.read()


def test_outer_gzip_of_an_archive_is_bounded_as_tarfile_reads_it(tmp_path):
    archive = tmp_path / "scan.tar.gz"
    payload = b"\0" * (40 << 20)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("results.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with open(archive, "rb") as handle:
        stream = bounded_decompression(gzip.GzipFile(fileobj=handle), archive.stat().st_size, str(archive))
        with pytest.raises(ExpansionError):
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for entry in tar:
                    tar.extractfile(entry).read()


def test_ordinary_gzip_reads_in_full(tmp_path):
    lines = [f'{{"vp": "10.{i % 251}.{i % 13}.{i % 7}", "test_url": "site{i * 7919 % 10007}.example", '
             f'"start_time": "2024-01-01T00:{i % 60:02d}:{i * 31 % 60:02d}.{i * 7 % 1000:03d}Z"}}\n'.encode()
             for i in range(50_000)]
    path = tmp_path / "echo_results.json.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    with open(path, "rb") as handle:
        stream = bounded_decompression(gzip.GzipFile(fileobj=handle), path.stat().st_size, str(path))
        assert stream.peek(1)[:1] == b"{"
        assert read_all_lines(stream) == len(lines)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared Censored Planet samples not present")
def test_published_measurements_read_in_full_when_gzipped(tmp_path):
    for source in sorted(SHARED.glob("*/*.json")):
        raw = source.read_bytes()
        packed = gzip.compress(raw, compresslevel=9)
        # The published files are small, so compare against the ratio, not the floor.
        stream = bounded_decompression(gzip.GzipFile(fileobj=io.BytesIO(packed)), len(packed), source.name,
                                       ratio=len(raw) / len(packed) * 1.01)
        assert stream.read() == raw
        assert len(raw) / len(packed) < DEFAULT_MAX_EXPANSION / 5


def test_small_repetitive_file_is_never_refused():
    raw = b'{"vp": "1.2.3.4"}\n' * 40_000
    packed = gzip.compress(raw)
    assert len(raw) / len(packed) > DEFAULT_MAX_EXPANSION and len(raw) < MIN_ALLOWANCE
    assert bounded_decompression(gzip.GzipFile(fileobj=io.BytesIO(packed)), len(packed), "small.json.gz").read() == raw


def test_ratio_comes_from_argument_then_environment_then_default():
    assert max_expansion(7) == 7.0
    assert max_expansion(None, {EXPANSION_VARIABLE: "250"}) == 250.0
    assert max_expansion(None, {}) == DEFAULT_MAX_EXPANSION


@pytest.mark.parametrize("value", ["0.5", "many", "nan", "inf", "-3"])
def test_bad_environment_ratio_is_one_sentence_naming_the_variable(value):
    with pytest.raises(ValueError, match=f"{EXPANSION_VARIABLE} must be a number of at least 1, got '{value}'"):
        max_expansion(None, {EXPANSION_VARIABLE: value})


def test_environment_ratio_is_applied(monkeypatch):
    monkeypatch.setenv(EXPANSION_VARIABLE, "5000")
    packed = gzip.compress(b"\0" * (5 << 20))
    assert len(bounded_decompression(gzip.GzipFile(fileobj=io.BytesIO(packed)), len(packed), "z.gz").read()) == 5 << 20
