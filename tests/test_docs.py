"""The documentation site builds, and the Python examples of its pages run.

* ``mkdocs build --strict`` (Material theme, mkdocstrings API pages) must pass: a broken
  link or anchor, a page missing from the nav, or a docstring mkdocstrings cannot read
  fails it.
* Every ```` ```python ```` block of ``docs/**/*.md`` and ``README.md`` is executed, the
  blocks of one page in order in one fresh namespace, so the examples never go stale. A
  page whose blocks import a backend that is not installed is skipped as a whole.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
BACKEND_MODULES = ("numpy", "torch", "jax")

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a page: (line of the block's first code line, code)."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((first_line, textwrap.dedent(match.group("code"))))
    return blocks


def imported_modules(code: str) -> set[str]:
    """The modules a block imports (``multiloss.<adapter>`` kept whole, others by package)."""
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            modules.add(".".join(name.split(".")[:2]) if top == "multiloss" else top)
    return modules


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


def test_the_docs_have_examples() -> None:
    names = {_page_id(page) for page in PAGES_WITH_CODE}
    for page in ("docs/index.md", "docs/math.md", "docs/semantics.md", "docs/migration.md"):
        assert page in names, f"{page} has no ```python example"


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_page_examples_run(page: Path) -> None:
    blocks = python_blocks(page)
    needed = set().union(*(imported_modules(code) for _, code in blocks))
    for module in sorted(needed):
        pytest.importorskip(module, reason=f"{_page_id(page)} needs {module}")
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    for first_line, code in blocks:
        # Pad with blank lines so that a traceback points at the line of the page.
        compiled = compile("\n" * (first_line - 1) + code, str(page), "exec")
        exec(compiled, namespace)


def test_api_reference_covers_every_backend() -> None:
    """One API page per adapter module present in the package, wired into the nav."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "::: multiloss\n" in (DOCS / "api" / "multiloss.md").read_text(encoding="utf-8")
    for name in BACKEND_MODULES:
        if not (ROOT / "multiloss" / f"{name}.py").exists():
            continue
        page = DOCS / "api" / f"{name}.md"
        assert page.exists(), f"multiloss.{name} has no API page"
        assert f"::: multiloss.{name}\n" in page.read_text(encoding="utf-8")
        assert f"api/{name}.md" in config, f"api/{name}.md is not in the nav"


def test_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (mkdocs, mkdocs-material, mkdocstrings[python])")
    for plugin in ("material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(plugin) is None:
            pytest.skip(f"{plugin} is not installed")
    site = tmp_path / "site"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").exists()
    numpy_api = (site / "api" / "numpy" / "index.html").read_text(encoding="utf-8")
    assert "with the semantics of" in numpy_api  # mkdocstrings rendered the docstrings
    parity = (site / "parity" / "index.html").read_text(encoding="utf-8")
    assert "kornia-mean" in parity
