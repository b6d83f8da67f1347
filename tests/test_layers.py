"""The package's layers: imports run one way, no cycles, no private crossings, one path per name.

Read from the source with ``ast``, every import counted: at module level, inside
functions and under ``TYPE_CHECKING``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer may import its own package and the layers below it, never one above or beside.
LAYERS = {
    "quack": 0,  # the shared root: schema, config, errors, atomic writes, progress, roots
    "quack.fingerprints": 1,
    "quack.sample": 1,
    "quack.data": 2,
    "quack.model": 3,
    "quack.autoencoder": 3.5,  # the seed's facade over quack.model, which never imports it
    "quack.latents": 4,
    "quack.discovery": 5,
    "quack.cli": 6,
    "dashboard": 7,
}
#: Modules that may re-export names of other modules.
FACADES = {"quack.autoencoder"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    found = {}
    for folder in ("quack", "dashboard"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found[module_name(path)] = ast.parse(path.read_text(), str(path))
    return found


MODULES = modules()


def layer(name: str) -> tuple[str, float]:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def imports(tree: ast.Module) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in a module, ours only."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] in ("quack", "dashboard")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in ("quack", "dashboard"):
                found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def targets(module: str, names: list[str]) -> list[str]:
    """The modules an import reads: ``from quack.data import ingest`` reads ``quack.data.ingest``."""
    submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return submodules or [module]


def test_every_import_runs_down_the_layers():
    wrong = []
    for name, tree in MODULES.items():
        package, rank = layer(name)
        for module, names, line in imports(tree):
            for target in targets(module, names):
                other, other_rank = layer(target)
                if other != package and other_rank >= rank:
                    wrong.append(f"{name}:{line} imports {target}")
    assert not wrong, wrong


def test_there_is_no_import_cycle():
    graph = {name: {t for m, n, _ in imports(tree) for t in targets(m, n) if t in MODULES and t != name}
             for name, tree in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # A package's __init__ importing nothing of its modules keeps packages out of cycles.
    assert not cycles, cycles


def test_no_module_takes_another_modules_underscore_names():
    taken = [f"{name}:{line} takes {module}.{n}"
             for name, tree in MODULES.items()
             for module, names, line in imports(tree)
             for n in names if n.startswith("_") and not n.startswith("__")]
    assert not taken, taken


@pytest.mark.parametrize("folder", ["quack", "dashboard"])
def test_names_are_re_exported_only_by_the_facade_and_package_inits(folder):
    re_exports = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        name = module_name(path)
        if name in FACADES or path.name == "__init__.py":
            continue
        re_exports += [f"{name}:{i}" for i, text in enumerate(path.read_text().splitlines(), 1) if "noqa: F401" in text]
    assert not re_exports, re_exports


def test_the_layer_rule_would_catch_an_upward_import():
    tree = ast.parse("from dashboard import jobs\n")
    ((module, names, _),) = imports(tree)
    assert layer(targets(module, names)[0])[1] > layer("quack.data.ingest")[1]
