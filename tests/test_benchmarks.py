"""The benchmark suite: its quick mode runs end to end (a smoke test: no timing assertion),
its cost model counts what it says, and its plan holds the groups the full run promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/run.py as a module, its sibling modules importable."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run

    return run


def test_quick_mode_writes_table_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("optax")
    pytest.importorskip("matplotlib")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--rounds", "1", "--out", tmp_path],
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
        "| F.binary_cross_entropy_with_logits | 1.00× |",
        "| multiloss BCE |",
        "| torchvision sigmoid focal (formula) | 1.00× |",
        "| multiloss sigmoid focal γ=2 |",
        "| optax sigmoid_focal_loss | 1.00× |",
        "| multiloss poly ε=2 |",
        "| textbook PolyLoss ε=2 |",
        "| multiloss CE + z-loss 1e-4 |",
        "| optax poly_loss_cross_entropy ε=2 |",
        "| textbook ASL (timm formula) | 1.00× |",
        "| multiloss ASL |",
    ):
        assert implementation in table, implementation
    columns = "| ratio, 1 thread | time, 1 thread | ratio, 2 threads | time, 2 threads | memory |"
    assert columns + " kernels | bytes | modelled | modelled ratio |" in table
    assert "; reference torchvision sigmoid focal (formula)" in table
    assert "; reference F.binary_cross_entropy_with_logits" in table
    for backend, reference in (("torch", "F.cross_entropy"), ("jax", "optax CE (integer labels)")):
        assert f"## {backend}, poly (PolyLoss, Poly-1, ε = 2): 64×100; reference {reference}\n" in (
            table
        )
    for backend in ("torch", "jax"):
        assert f"## {backend}, asl (" in table
    assert table.count("64×80; reference textbook ASL (timm formula)\n") == 2

    raw = json.loads((tmp_path / "benchmarks.json").read_text(encoding="utf-8"))
    measured = raw["measurements"]
    assert {m["backend"] for m in measured} == {"torch", "jax"}
    assert {m["group"] for m in measured} == {"softmax", "poly", "bce", "sigmoid focal", "asl"}
    rows = {(m["backend"], m["group"], m["implementation"]): m for m in measured}
    for backend, kind, implementation, reference in (
        ("torch", "poly", "multiloss poly ε=2", "F.cross_entropy"),
        ("torch", "poly", "textbook PolyLoss ε=2", "F.cross_entropy"),
        ("torch", "poly", "multiloss CE + z-loss 1e-4", "F.cross_entropy"),
        ("jax", "poly", "optax poly_loss_cross_entropy ε=2", "optax CE (integer labels)"),
        ("jax", "poly", "multiloss poly ε=2", "optax CE (integer labels)"),
        ("torch", "asl", "multiloss ASL", "textbook ASL (timm formula)"),
        ("torch", "asl", "F.binary_cross_entropy_with_logits", "textbook ASL (timm formula)"),
        ("jax", "asl", "multiloss ASL", "textbook ASL (timm formula)"),
    ):
        row = rows[(backend, kind, implementation)]
        assert row["reference"] == reference, row
        assert row["kernels"] > 0 and row["modelled_ratio"] > 0, row
    assert all(m["seconds"] and m["median_seconds"] > 0 for m in measured)
    for backend in ("torch", "jax"):
        assert {m["threads"] for m in measured if m["backend"] == backend} == {1, 2}
    multiloss = [m for m in measured if m["implementation"].startswith("multiloss")]
    assert all(m["memory_bytes"] is not None for m in multiloss)
    for m in multiloss:
        assert m["kernels"] > 0 and m["bytes_accessed"] > 0 and m["ops"] >= m["kernels"], m
        assert m["modelled_seconds"] > 0 and m["modelled_ratio"] > 0, m
    references = [m for m in measured if m["implementation"] == m["reference"]]
    assert all(m["modelled_ratio"] == pytest.approx(1.0) for m in references)
    assert (tmp_path / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--backends", "tensorflow"], "unknown backend(s): tensorflow"),
        (["--kinds", "hinge"], "unknown kind(s): hinge"),
        (["--threads", "0"], "thread counts must be positive"),
    ],
)
def test_bad_options_are_refused(option: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), *option],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr


# --------------------------------------------------------------------------------------
# The cost model


def test_count_torch_counts_kernels_ops_and_bytes_on_meta(bench: ModuleType) -> None:
    torch = pytest.importorskip("torch")
    from cost_model import LAUNCH_SECONDS, count_torch

    x = torch.empty(64, 10, device="meta")
    cost = count_torch(lambda: torch.exp(x).sum())
    assert (cost.ops, cost.kernels) == (2, 2)
    assert dict(cost.by_kernel) == {"exp": 1, "sum": 1}
    # exp reads x and writes its result, sum reads that and writes one float
    assert cost.bytes == 3 * 64 * 10 * 4 + 4
    assert cost.modelled_seconds == pytest.approx(2 * LAUNCH_SECONDS + cost.bytes / 3.35e12)

    views = count_torch(lambda: x.view(-1).unsqueeze(0).expand(3, -1).detach())
    assert views.ops == 4 and views.kernels == 0 and views.bytes == 0

    leaf = torch.empty(64, 10, device="meta", requires_grad=True)
    backward = count_torch(lambda: torch.exp(leaf).sum().backward())
    # backward: the gradient of sum is a filled tensor expanded (a view), times exp's result
    assert dict(backward.by_kernel) == {"exp": 1, "sum": 1, "ones_like": 1, "mul": 1}
    assert backward.ops > backward.kernels == 4


def test_count_hlo_counts_the_entry_computations_kernels(bench: ModuleType) -> None:
    from cost_model import count_hlo

    hlo = """HloModule m

%fused (p: f32[8]) -> f32[8] {
  %p = f32[8]{0} parameter(0)
  ROOT %e = f32[8]{0} exponential(%p)
}

ENTRY %main (x: f32[8], y: s32[8]) -> (f32[], f32[8]) {
  %x = f32[8]{0} parameter(0)
  %y = s32[8]{0} parameter(1)
  %c = f32[] constant(0)
  %f = f32[8]{0} fusion(%x), kind=kLoop, calls=%fused
  %b = f32[2,4]{1,0} bitcast(%f)
  %r = f32[] reduce(%b, %c), dimensions={0,1}, to_apply=%add
  %s = f32[8]{0} copy-start(%f)
  %d = f32[8]{0} copy-done(%s)
  %k = f32[8]{0} custom-call(%d), custom_call_target="k"
  ROOT %t = (f32[], f32[8]{0}) tuple(%r, %k)
}
"""
    cost = count_hlo(hlo, bytes_accessed=96.0)
    assert dict(cost.by_kernel) == {"fusion": 1, "reduce": 1, "copy-start": 1, "custom-call": 1}
    assert (cost.ops, cost.kernels, cost.bytes) == (10, 4, 96)


def test_count_xla_reads_a_compiled_jax_function(bench: ModuleType) -> None:
    jax = pytest.importorskip("jax")
    from cost_model import count_xla

    x = jax.numpy.ones((64, 10))
    compiled = jax.jit(lambda a: jax.numpy.exp(a).sum()).lower(x).compile()
    cost = count_xla(compiled)
    assert 1 <= cost.kernels <= cost.ops
    assert cost.bytes >= 64 * 10 * 4


# --------------------------------------------------------------------------------------
# The textbook references


def test_the_textbook_poly_and_asl_rows_compute_multilosss_values(bench: ModuleType) -> None:
    """The written-out references of the poly and asl groups (and optax's PolyLoss) give
    the value and gradient of the multiloss rows they are timed against."""
    torch = pytest.importorskip("torch")
    from harness import ASL, POLY, Shape, make_data
    from torch_impls import torch_implementations

    cases = (
        (POLY, Shape("16×7", (16, 7)), "textbook PolyLoss ε=2", "multiloss poly ε=2"),
        (
            POLY,
            Shape("2×5×3×3, ignore 255", (2, 5, 3, 3), ignore_index=255),
            "textbook PolyLoss ε=2",
            "multiloss poly ε=2",
        ),
        (ASL, Shape("16×7", (16, 7)), "textbook ASL (timm formula)", "multiloss ASL"),
    )
    for kind, shape, textbook, multiloss in cases:
        logits_np, target_np = make_data(shape, kind, seed=1)
        target = torch.from_numpy(target_np)
        implementations = torch_implementations(kind, shape)
        found = []
        for name in (textbook, multiloss):
            logits = torch.from_numpy(logits_np).double().requires_grad_(True)
            value = implementations[name](logits, target.double() if kind == ASL else target)
            value.backward()
            found.append((value.detach(), logits.grad))
        torch.testing.assert_close(found[0][0], found[1][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(found[0][1], found[1][1], rtol=1e-8, atol=1e-12)

    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    import numpy as np
    from jax_impls import jax_implementations

    for kind, textbook, multiloss in (
        (POLY, "optax poly_loss_cross_entropy ε=2", "multiloss poly ε=2"),
        (ASL, "textbook ASL (timm formula)", "multiloss ASL"),
    ):
        shape = Shape("16×7", (16, 7))
        logits_np, target_np = make_data(shape, kind, seed=2)
        target = jax.numpy.asarray(target_np, dtype="float32" if kind == ASL else "int32")
        implementations = jax_implementations(kind, shape)
        found = [
            jax.value_and_grad(implementations[name])(jax.numpy.asarray(logits_np), target)
            for name in (textbook, multiloss)
        ]
        np.testing.assert_allclose(found[0][0], found[1][0], rtol=1e-5)
        np.testing.assert_allclose(found[0][1], found[1][1], rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------------------
# The plan and the table


def test_the_full_plan_holds_every_promised_group(bench: ModuleType) -> None:
    args = bench.parse_arguments([])
    assert args.threads == [1, 2] and args.compiled
    groups = bench.select_groups(args.backends, args.kinds, False, [])
    names = {(g.backend, g.kind, g.shape.name) for g in groups}
    for shape in ("32×10", "64×10", "256×100", "512×1000", "8192×1000"):
        assert ("torch", "softmax", shape) in names and ("jax", "softmax", shape) in names
    for kind in ("bce", "sigmoid focal"):
        for shape in ("256×80", "65536×80", "8192×1000"):
            assert ("torch", kind, shape) in names and ("jax", kind, shape) in names
    for kind, shapes in (("poly", ("256×100", "8192×1000")), ("asl", ("256×80", "65536×80"))):
        assert {(g.backend, g.shape.name) for g in groups if g.kind == kind} == {
            (backend, shape) for backend in ("torch", "jax") for shape in shapes
        }
    assert {("torch", "compiled", "64×10"), ("torch", "compiled", "8192×1000")} <= names
    assert not [g for g in groups if g.backend == "jax" and g.kind == "compiled"]

    batches = bench.plan_batches(groups, [1, 2], one_process_per_backend=False)
    assert all(len(b.groups) == 1 for b in batches)
    recompile = [b for b in batches if b.groups[0].kind == "recompile"]
    assert [(b.threads, b.groups[0].shape.name) for b in recompile] == [(1, "8192×1000")]
    assert len(batches) == 2 * len(groups) - 1


def test_shape_words_and_quick_defaults(bench: ModuleType) -> None:
    args = bench.parse_arguments(["--shapes", "64×10,256×80"])
    groups = bench.select_groups(args.backends, args.kinds, False, ["64×10", "256×80"])
    assert {(g.kind, g.shape.name) for g in groups} == {
        ("softmax", "64×10"),
        ("bce", "256×80"),
        ("sigmoid focal", "256×80"),
        ("asl", "256×80"),
        ("compiled", "64×10"),
        ("recompile", "64×10"),
    }
    new_kinds = bench.parse_arguments(["--kinds", "poly,asl", "--shapes", "256×100,256×80"])
    groups = bench.select_groups(new_kinds.backends, new_kinds.kinds, False, ["256×100", "256×80"])
    assert {(g.backend, g.kind, g.shape.name) for g in groups} == {
        (backend, kind, shape)
        for backend in ("torch", "jax")
        for kind, shape in (("poly", "256×100"), ("asl", "256×80"))
    }
    quick = bench.parse_arguments(["--quick"])
    assert not quick.compiled and "compiled" not in quick.kinds
    assert bench.parse_arguments(["--quick", "--compiled"]).compiled
    assert bench.parse_arguments(["--device", "cuda"]).threads == [1]


def test_the_table_shows_threads_side_by_side_and_na_for_compiled(bench: ModuleType) -> None:
    from harness import Measurement
    from report import markdown

    def row(name: str, threads: int, seconds: float, kernels: int | None) -> Measurement:
        m = Measurement("torch", "compiled", "64×10", name, "F.cross_entropy, compiled", threads)
        m.seconds, m.ratios = [seconds], [seconds / 2e-4]
        if kernels is not None:
            m.kernels, m.bytes_accessed, m.modelled_seconds = kernels, 2048, 25e-6
        return m

    results = [
        row("F.cross_entropy, compiled", 1, 2e-4, None),
        row("F.cross_entropy, eager", 1, 1e-4, 5),
        row("F.cross_entropy, compiled", 2, 2e-4, None),
        row("F.cross_entropy, eager", 2, 1e-4, 5),
    ]
    header = {"versions": {}, "device": "cpu", "threads": [1, 2], "cpu_count": 2}
    header |= {"rounds": 1, "quick": True, "notes": [{"text": "1 graph compiled"}]}
    table = markdown(results, header)
    assert "| F.cross_entropy, compiled | 1.00× | 200.0 µs | 1.00× | 200.0 µs | – | n/a |" in table
    assert "| F.cross_entropy, eager | 0.50× | 100.0 µs | 0.50× | 100.0 µs | – | 5 |" in table
    assert "Note: 1 graph compiled" in table
