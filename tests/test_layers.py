"""genrec's packages form layers that only point down, and no module imports itself round a cycle.

Read from the source with `ast` (imports inside functions count too: they are dependencies,
only later ones), so the check needs no import of genrec and no installed extras.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "shared" / "genrec"

# Bottom first. A package may import its own modules and those of any lower layer.
LAYERS: list[set[str]] = [
    {"workloads", "signals", "heap", "api"},  # api: the gRPC contract (generated from its .proto)
    {"config"},
    {"model", "semantic", "evaluation", "events", "stores"},
    {"data", "tracing"},
    {"embeddings", "logs"},
    {"serving", "training"},
    {"recommend", "enrichment", "pipelines"},
    {"apps", "devstack", "deploy"},
    {"bench", "demo"},
    {"cli"},
]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the genrec modules it imports (anywhere in its body)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *filter(None, [base])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target not in (mod, "genrec"):
                    edges[mod].add(target)
    return edges


def _package(mod: str) -> str:
    return mod.split(".")[1]


def test_every_package_is_in_a_layer() -> None:
    packages = {_package(m) for m in _modules() if m != "genrec"}
    placed = set().union(*LAYERS)
    assert packages - placed == set(), "place new packages in LAYERS"
    assert placed - packages == set(), "LAYERS names packages that no longer exist"


def test_imports_point_down_only() -> None:
    layer = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}
    upward = sorted(
        f"{mod} imports {target}"
        for mod, targets in _imports(_modules()).items() if mod != "genrec"
        for target in targets
        if _package(mod) != _package(target) and layer[_package(target)] >= layer[_package(mod)]
    )
    assert upward == []


def test_no_import_cycles() -> None:
    edges = _imports(_modules())
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for target in sorted(edges.get(mod, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[mod] = 2

    for mod in sorted(_modules()):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []
