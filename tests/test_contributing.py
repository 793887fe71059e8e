"""docs/contributing.md against the code: its lists of places are complete and exist, and
the import rules it states hold (issue 20)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "multiloss"
PAGE = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
ADAPTERS = ("torch", "jax", "numpy")


def _section(title: str) -> str:
    start = PAGE.index(f"## {title}")
    end = PAGE.find("\n## ", start + 1)
    return PAGE[start : end if end != -1 else None]


def _paths(text: str) -> set[str]:
    return set(re.findall(r"`(multiloss/[\w/]+\.py)`", text))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _names_in_code(path: Path) -> set[str]:
    """Identifiers and string constants of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            names.add(node.value)
    return names


def test_every_place_named_exists():
    for path in _paths(PAGE):
        assert (ROOT / path).is_file(), path


def test_the_places_of_a_new_loss_are_all_the_places_polyloss_is():
    """PolyLoss was the last loss added: every module whose code names it is on the list,
    and the list has nothing else (the demo's and the CLI's examples, and the options the
    demo's agreement check picks, are the docs' own choice of examples)."""
    listed = _paths(_section("How to add a loss"))
    named = {
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if any(re.search(r"poly", name, re.IGNORECASE) for name in _names_in_code(path))
    } - {"multiloss/demo.py", "multiloss/cli.py", "multiloss/_agreement.py"}
    assert named == listed, named ^ listed
    assert len(listed) == 16 and "the 16 files" in PAGE


def test_the_places_of_a_new_option_exist_and_name_the_registry():
    text = _section("How to add an option")
    assert "_SOFTMAX_OPTIONS" in text and "NOT_IN_VOCAB_PARALLEL" in text
    registry = (PACKAGE / "_core" / "registry.py").read_text(encoding="utf-8")
    assert "_SOFTMAX_OPTIONS = (" in registry and "NOT_IN_VOCAB_PARALLEL = (" in registry


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module imported from, name) of every ``from … import …`` of a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found += [(source, alias.name) for alias in node.names]
    return found


def test_adapters_never_import_the_top_level_package():
    for name, path in MODULES.items():
        if name.split(".")[1:2] and name.split(".")[1] in ADAPTERS:
            for source, imported in _imports(path):
                if source == "multiloss":
                    assert imported in ("_core", "_backends", "_version"), (name, imported)


def test_no_module_imports_another_modules_private_name():
    bad = []
    for name, path in MODULES.items():
        for source, imported in _imports(path):
            if not source.startswith("multiloss") or f"{source}.{imported}" in MODULES:
                continue  # a module (private modules are the packages' internal API)
            if imported.startswith("_") and not imported.startswith("__") and source != name:
                bad.append(f"{name} imports {source}.{imported}")
    assert bad == []
