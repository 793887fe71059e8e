"""benchmarks/call_overhead.py, the before/after per-call time of a small call (issue 20),
as a smoke test: this tree against itself, no timing asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_side_by_side_runs(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "overhead.json"
    script = ROOT / "benchmarks" / "call_overhead.py"
    command = [sys.executable, str(script), "--quick", "--json", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "after / before" in run.stdout
    assert out.read_text(encoding="utf-8").count("ratios") == 1
