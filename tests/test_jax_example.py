"""The Flax example and the JAX benchmark script run (a few steps, tiny shapes): no rot."""

from __future__ import annotations

import importlib.util
import math
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("optax")

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str):
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flax_focal_example_trains(capsys):
    example = _load("examples/flax_focal.py")
    result = example.main(steps=4, verbose=True)
    assert math.isfinite(result["loss"])
    assert len(result["recall"]) == 3
    assert all(0.0 <= r <= 1.0 for r in result["recall"])
    printed = capsys.readouterr().out
    assert "recall per class" in printed and "class 2:" in printed


def test_flax_focal_example_command_line(monkeypatch, capsys):
    path = ROOT / "examples/flax_focal.py"
    monkeypatch.setattr(sys, "argv", [str(path), "--steps", "2", "--gamma", "0", "--no-alpha"])
    runpy.run_path(str(path), run_name="__main__")
    assert "focal loss (gamma=0)" in capsys.readouterr().out
