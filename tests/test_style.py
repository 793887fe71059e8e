"""The code base stays ruff-clean (lint and format) and mypy-clean, and keeps its shape,
checked as part of the test command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    beside_python = Path(sys.executable).with_name("ruff")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed")
    return [found]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [*_ruff(), *command, "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    """mypy over the package with the project's configuration (pyproject.toml: strict for
    ``multiloss._core``, the defaults plus ``check_untyped_defs`` elsewhere)."""
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_of_the_package_is_long() -> None:
    """A module holds one concern: none is longer than about 600 lines."""
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in (ROOT / "multiloss").rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > 620} == {}


def test_the_core_looks_up_no_fast_path_on_a_namespace() -> None:
    """Fast paths come in through the explicit seam (``_core.kernels``), not getattr."""
    for path in (ROOT / "multiloss" / "_core").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "getattr(xp" not in text, path
        assert "multiloss_" not in text, path
