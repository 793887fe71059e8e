"""The benchmark suite's quick mode runs end to end (a smoke test: no timing assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_mode_writes_table_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("optax")
    pytest.importorskip("matplotlib")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    for implementation in (
        "| F.cross_entropy | 1.00× |",
        "| multiloss CE |",
        "| multiloss focal γ=2 |",
        "| optax CE (integer labels) | 1.00× |",
        "| floor: one exp + one copy |",
    ):
        assert implementation in table
    raw = json.loads((tmp_path / "benchmarks.json").read_text(encoding="utf-8"))
    measured = raw["measurements"]
    assert {m["backend"] for m in measured} == {"torch", "jax"}
    assert all(m["seconds"] and m["median_seconds"] > 0 for m in measured)
    multiloss_torch = [
        m
        for m in measured
        if m["backend"] == "torch" and m["implementation"].startswith("multiloss")
    ]
    assert all(m["memory_bytes"] is not None for m in multiloss_torch)
    assert (tmp_path / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_backend_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--backends", "tensorflow"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown backend(s): tensorflow" in result.stderr
