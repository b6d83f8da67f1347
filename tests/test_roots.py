"""The trust boundary for browser-typed paths: only shared folders, and refusals that tell nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quack.roots import ENVIRONMENT_VARIABLE, HIDDEN_PATH, Roots, resolve_writable_name


@pytest.fixture
def layout(tmp_path):
    """A shared folder with data, a secret beside it, and links pointing in and out."""
    shared = tmp_path / "shared"
    (shared / "scans").mkdir(parents=True)
    (shared / "scans" / "http.json").write_text("{}\n")
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text("key\n")
    (shared / "leak").symlink_to(outside / "secret.txt")
    (shared / "leak-folder").symlink_to(outside, target_is_directory=True)
    (shared / "alias").symlink_to(shared / "scans" / "http.json")
    return Roots([shared]), shared, outside


def refusal(roots: Roots, typed: str) -> str:
    with pytest.raises(ValueError) as caught:
        roots.resolve_readable(typed)
    return str(caught.value)


def test_file_and_folder_inside_are_read_by_absolute_or_relative_path(layout):
    roots, shared, _ = layout
    assert roots.resolve_readable(str(shared / "scans" / "http.json")) == (shared / "scans" / "http.json").resolve()
    assert roots.resolve_readable("scans/http.json") == (shared / "scans" / "http.json").resolve()
    assert roots.resolve_readable(f"  {shared / 'scans'}  ") == (shared / "scans").resolve()


def test_link_inside_to_inside_is_followed_to_its_target(layout):
    roots, shared, _ = layout
    assert roots.resolve_readable(str(shared / "alias")) == (shared / "scans" / "http.json").resolve()


@pytest.mark.parametrize("typed", [
    "{shared}/../private/secret.txt",
    "../private/secret.txt",
    "scans/../../private/secret.txt",
    "{shared}/leak",
    "leak",
    "{shared}/leak-folder/secret.txt",
    "{outside}/secret.txt",
    "/etc/passwd",
    "/proc/self/environ",
    "~",
    "~no-such-user-here/x",
    "",
    "scans/http.json\x00.png",
])
def test_paths_leading_out_are_refused(layout, typed):
    roots, shared, outside = layout
    message = refusal(roots, typed.format(shared=shared, outside=outside))
    assert str(outside) not in message and "/etc" not in message and "/proc" not in message


def test_refusal_is_the_same_whether_or_not_the_path_exists(layout):
    roots, shared, outside = layout
    messages = {
        refusal(roots, str(shared / "scans" / "missing.json")),
        refusal(roots, str(outside / "secret.txt")),
        refusal(roots, str(outside / "missing.txt")),
        refusal(roots, "/etc/passwd"),
        refusal(roots, "/no/such/folder/at/all"),
    }
    assert len(messages) == 1
    message = messages.pop()
    assert str(shared) in message and ENVIRONMENT_VARIABLE in message


def test_unreadable_folder_inside_is_refused_like_a_missing_one(layout):
    roots, shared, _ = layout
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    locked = shared / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0)
    try:
        assert refusal(roots, str(locked / "inner")) == refusal(roots, str(shared / "missing"))
    finally:
        locked.chmod(0o755)


def test_a_shared_folder_reached_through_a_link_still_shares_its_files(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.json").write_text("{}\n")
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    roots = Roots([tmp_path / "via"])
    assert roots.resolve_readable(str(tmp_path / "via" / "a.json")) == (real / "a.json").resolve()
    assert roots.contains(real / "a.json")


def test_environment_variable_lists_folders_and_defaults_apply_when_unset(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    roots = Roots.from_environment([tmp_path / "default"], {ENVIRONMENT_VARIABLE: f"{first}{os.pathsep}{second}"})
    assert roots.folders == (first, second)
    assert Roots.from_environment([tmp_path / "default"], {}).folders == (tmp_path / "default",)
    blank = Roots.from_environment([tmp_path / "default"], {ENVIRONMENT_VARIABLE: " "})
    assert blank.folders == (tmp_path / "default",)


def test_relative_shared_folder_is_refused_at_start_up():
    with pytest.raises(ValueError, match=f"'data' is not an absolute path.*{ENVIRONMENT_VARIABLE}"):
        Roots.from_environment([], {ENVIRONMENT_VARIABLE: "data"})


@pytest.mark.parametrize("name", ["a/b", "../x", "..", ".", ".hidden", "a\x00b", "", "a\\b", "é.json",
                                  "x" * 129, "/etc/passwd", "a b", "name\n"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="cannot be used as the export folder's name: use up to 128 ASCII"):
        resolve_writable_name(tmp_path, name, "the export folder's name")


def test_plain_name_lands_in_the_folder(tmp_path):
    assert resolve_writable_name(tmp_path, "run-2024_05.v1.json") == tmp_path / "run-2024_05.v1.json"


def test_name_of_an_existing_link_is_refused(tmp_path):
    (tmp_path / "fingerprints.json").symlink_to("/etc/passwd")
    with pytest.raises(ValueError, match="a link of that name is already there"):
        resolve_writable_name(tmp_path, "fingerprints.json", "the fingerprint file's name")


def test_public_message_hides_paths_outside_and_keeps_paths_inside(layout):
    roots, shared, outside = layout
    text = (f"Cannot open {outside}/secret.txt (Permission denied); "
            f"[Errno 2] No such file or directory: '{outside}/My Data/x.json'; "
            f"see {shared}/scans/http.json. Also file:///etc/passwd, ~/notes and https://censoredplanet.org/data.")
    shown = roots.public_message(OSError(text))
    assert str(outside) not in shown and "/etc/passwd" not in shown and "~/notes" not in shown
    assert shown.count(HIDDEN_PATH) == 4
    assert f"{shared}/scans/http.json." in shown and "https://censoredplanet.org/data" in shown


def test_public_message_leaves_ordinary_words_alone(layout):
    roots, _, _ = layout
    text = "Loss 1/2 of the epochs and/or batches."
    assert roots.public_message(text) == text

