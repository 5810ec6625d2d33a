"""The package's shape: layers visible in folders, no import cycles, no reaching into private names.

The import graph is read from the source with ast (nothing is imported): every import counts, inside
functions too, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kontext_nb"
ROOT_ALLOWED = {"__init__", "__main__", "_version"}
PRESENTATION = ("kontext_nb.magics", "kontext_nb.widgets")
UI_LIBRARIES = ("IPython", "ipywidgets", "anywidget", "traitlets")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif isinstance(node, ast.If) and _is_type_checking(node):
        return
    else:
        for child in ast.iter_child_nodes(node):
            yield from _imports_in(child)


def _base(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    here = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    here = here[: len(here) - node.level + 1]
    return ".".join(here + ([node.module] if node.module else []))


def edges(module: str) -> Iterator[tuple[str, str]]:
    """(imported module, name taken from it or '') for each kontext_nb import of a module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kontext_nb"):
                    yield alias.name, ""
            continue
        base = _base(module, node)
        if not base.startswith("kontext_nb"):
            continue
        for alias in node.names:
            full = f"{base}.{alias.name}"
            yield (full, "") if full in MODULES else (base, alias.name)


GRAPH = {m: sorted({target for target, _ in edges(m) if target in MODULES and target != m}) for m in MODULES}


def test_the_package_root_holds_at_most_14_modules() -> None:
    root = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ROOT_ALLOWED)
    assert len(root) <= 14, root


def test_the_layers_have_folders_with_a_public_face() -> None:
    for layer in ("fal", "journal", "views", "magics", "widgets", "sandbox", "proxy", "judging"):
        init = PACKAGE / layer / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{layer}/__init__.py says what the layer is for"
        assert any(
            isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
            for n in tree.body
        ), f"{layer}/__init__.py declares __all__"


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in GRAPH[m]:
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    GRAPH["kontext_nb.endpoints"].append("kontext_nb.session")
    try:
        assert _cycle() is not None
    finally:
        GRAPH["kontext_nb.endpoints"].remove("kontext_nb.session")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "kontext_nb"))
def test_no_submodule_imports_the_package_root_or_private_names(module: str) -> None:
    for target, name in edges(module):
        assert target != "kontext_nb" or not name or f"kontext_nb.{name}" in MODULES, (
            f"{module} takes {name!r} from the package root"
        )
        private = name.startswith("_") and not name.startswith("__")
        assert not private, f"{module} takes the private name {name!r} from {target}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(PRESENTATION)))
def test_below_the_presentation_line_no_ui_library(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in _imports(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for name in names:
            assert not name.startswith(UI_LIBRARIES), f"{module} imports {name}"
