"""The package's import graph: every import runs down the layers (README, "Layout").

Read from the source with ``ast`` (lazy imports inside functions included), so a module
that reaches up a layer, or two peers that import each other, fail here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nlconvert

PACKAGE = Path(nlconvert.__file__).parent

#: Lowest first. A unit may import its own modules and any unit of a lower layer.
LAYERS: list[set[str]] = [
    {"_version", "errors"},  # the version; the error types and exit codes
    {"_atomic", "_progress", "_hashing"},  # helpers: atomic files, progress, file hashes
    {"io", "keymap"},  # bytes -> blobs; the weight-name tables of weights_map/ and their engine
    {"arch"},  # what a network is; the zoo; detection
    {"model", "reference"},  # the PyTorch network; the independent numpy Caffe2 reference
    {"convert"},  # blobs -> model; the model file
    {"synthetic", "training"},  # generated checkpoints, clips, networks; training networks
    {"runtime"},  # backends, ONNX export and sessions, fast paths, bench
    {"attention"},  # non-local attention weights recorded from the model, pictures
    {"parity", "video", "interop"},  # layer-by-layer checks; videos, evaluate, features; other frameworks
    {"cluster", "demo", "hub"},  # Ray pipelines; the end-to-end demo; hub folders, torch.hub
    {"commands"},  # the command line's sub-commands
    {"cli"},
    {"__init__"},  # the public API facade
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    """``nlconvert.video.decode`` -> ``video``; ``nlconvert`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute nlconvert modules imported by a file, with line numbers."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("nlconvert")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("nlconvert"):
                if not node.module and node.level:
                    found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
                else:
                    found.append((target, node.lineno))
    return found


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(RANK), f"modules without a layer: {sorted(units - set(RANK))}"


def test_no_import_runs_up_the_layers() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(_module_name(path))
        for target, line in _imports(path):
            other = _unit(target)
            if other == unit or other not in RANK:
                continue
            if RANK[other] >= RANK[unit]:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {unit} imports {target} "
                           f"(layer {RANK[other]} >= {RANK[unit]})")
    assert not bad, "\n".join(bad)


def test_the_reference_shares_no_code_with_the_model() -> None:
    for path in (PACKAGE / "reference").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text, path
        for target, _ in _imports(path):
            assert _unit(target) not in ("model", "convert", "runtime"), (path, target)


def test_importlib_only_in_the_lazy_facades() -> None:
    allowed = {PACKAGE / "__init__.py", PACKAGE / "convert" / "__init__.py", PACKAGE / "cli.py"}
    users = {p for p in PACKAGE.rglob("*.py") if "import_module(" in p.read_text()}
    assert users <= allowed, sorted(str(p.relative_to(PACKAGE)) for p in users - allowed)


def _module_graph() -> dict[str, set[str]]:
    """Module -> the nlconvert modules it imports (lazy imports included), resolved to files:
    ``from .x import y`` is an edge to ``x`` (or to ``x.y`` when that is a module)."""
    names = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        edges = set()
        for target, _ in _imports(path):
            while target and target not in names:  # a name inside a module: its module
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target:
                edges.add(target)
        graph[_module_name(path)] = edges - {_module_name(path)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (as the list of its modules), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_even_inside_a_package() -> None:
    """Peers of one unit may import each other one way only (lazy imports included): a
    circle means a fact sits on the wrong side (e.g. a tolerance both ends need)."""
    graph = _module_graph()
    # A package's __init__ re-exports its modules (a facade, imported from outside): edges
    # out of a facade are not followed, or every module using its package's facade would loop.
    facades = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    inner = {m: {t for t in edges if t not in facades} for m, edges in graph.items()
             if m not in facades}
    found = _cycle(inner)
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_the_circle_finder_finds_circles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
