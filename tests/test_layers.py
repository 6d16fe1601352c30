"""The package's layers: each folder imports only the folders below it, and no module imports itself in a circle.

Layers, top down (see each folder's ``__init__`` docstring): ``tools`` → ``model`` → ``training`` → ``corruption``,
``data`` → ``validation``. ``corruption`` and ``data`` sit side by side and do not import each other. The package
root (``isstad_plugin/__init__.py``) may import every layer; a layer may read only ``__version__`` from the root.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "isstad_plugin"
RANK = {"tools": 4, "model": 3, "training": 2, "corruption": 1, "data": 1, "validation": 0}


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every ``isstad_plugin`` import in the file, at any depth (lazy imports count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "isstad_plugin":
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "isstad_plugin"]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module → the package modules it imports (``from pkg import submodule`` counts as the submodule)."""
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, names in _imports(path):
            if module == "isstad_plugin" and names == ["__version__"]:
                continue  # the version string, the one name a layer may read from the root
            submodules = {f"{module}.{n}" for n in names if f"{module}.{n}" in modules}
            targets |= submodules or {module}
        graph[name] = targets - {name}
    return graph


def wrong_layers(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a layer to the root, to a layer beside it or to one above it."""
    wrong = []
    for module, targets in graph.items():
        source = _layer(module)
        for target in targets:
            destination = _layer(target)
            if source is None or destination == source:
                continue
            if destination is None or RANK[destination] >= RANK[source]:
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles between the modules below the root (the root imports the layers by design)."""
    graph = {module: targets for module, targets in graph.items() if module != "isstad_plugin"}
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target in graph and target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_folder_has_a_rank():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules == set(RANK)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    assert wrong_layers(import_graph(PACKAGE)) == []


def test_no_import_cycle():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_checks_find_a_wrong_layer_and_a_cycle(tmp_path):
    package = tmp_path / "isstad_plugin"
    for folder in ("training", "model"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("__version__ = '0'\n")
    (package / "training" / "a.py").write_text("def f():\n    from isstad_plugin.model import b\n")
    (package / "model" / "b.py").write_text(
        "from isstad_plugin.training.a import f\nfrom isstad_plugin import __version__\n"
    )
    graph = import_graph(package)
    assert wrong_layers(graph) == ["isstad_plugin.training.a -> isstad_plugin.model.b"]
    assert cycles(graph) == [["isstad_plugin.model.b", "isstad_plugin.training.a", "isstad_plugin.model.b"]]
