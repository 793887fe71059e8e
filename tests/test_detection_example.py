"""The detection-head example (examples/detection_head.py) runs and learns (a few steps,
small shapes): every loss decreases on held-out anchors and ranks the positives far above
chance."""

from __future__ import annotations

import importlib.util
import math
import runpy
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/detection_head.py"


def _load():
    spec = importlib.util.spec_from_file_location("detection_head", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "sigmoid_focal_loss", "varifocal_loss"])
def test_the_head_learns_with_each_loss(loss):
    example = _load()
    result = example.train(loss, steps=20, anchors=2048)
    assert math.isfinite(result["final"]) and result["final"] < 0.8 * result["first"], result
    assert result["ap"] > 20 * result["chance"], result  # chance: the positives' share
    assert 0.0 <= result["recall"] <= 1.0


def test_the_example_prints_its_table(monkeypatch, capsys):
    example = _load()
    example.main(steps=2, anchors=512, losses=("sigmoid_focal_loss",))
    out = capsys.readouterr().out
    assert "recall@P" in out and "sigmoid_focal_loss" in out and "chance AP" in out
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--steps", "1", "--anchors", "256"])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "varifocal_loss" in capsys.readouterr().out
