"""The README's research loop on the command line runs as written, from `quack sample` to `quack evaluate`.

The commands are read from README.md's first ``bash`` block under "The research loop on
the command line" and run one after the other in a fresh folder, each as its own
process. Two numbers are made smaller so the loop fits a test on two shared cores, and
nothing else is changed: ``--n`` (the measurements `quack sample` writes) becomes
:data:`SMALL_N` and ``--max-epochs`` becomes 1.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SECTION = "## The research loop on the command line"
#: Measurements of the sample: enough for fingerprint families of five rows, the smallest `quack evaluate` hides.
SMALL_N = 300
SMALLER = {"--n": str(SMALL_N), "--max-epochs": "1"}


def loop_commands() -> list[list[str]]:
    """The commands of the section's first bash block: continuations joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the loop section has no bash block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def smaller(words: list[str]) -> list[str]:
    """The command with :data:`SMALLER`'s values in place of the README's."""
    return [SMALLER[words[i - 1]] if i and words[i - 1] in SMALLER else word for i, word in enumerate(words)]


def test_the_loop_names_every_step_in_order():
    steps = [words[:2] for words in loop_commands()]
    assert all(quack == "quack" for quack, _ in steps), steps
    assert [step for _, step in steps] == ["sample", "ingest", "fit", "encode", "classify", "evaluate"]


def test_the_readme_loop_runs_as_written_and_ends_in_an_evaluation_table(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = ""
    for words in loop_commands():
        argv = [sys.executable, "-m", "quack.cli.main", *smaller(words[1:])]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{shlex.join(words)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        out = done.stdout
    assert list((tmp_path / "encoded").rglob("scores.parquet")), "quack classify scored the encoded rows"
    # quack evaluate ends the loop with its table: one line per method, the latent classifier among them.
    assert "latent_classifier" in out and "AP" in out, out
