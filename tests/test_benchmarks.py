"""The benchmark suite: its quick mode runs end to end (a smoke test: no timing assertion),
its cost model counts what it says, and its plan holds the groups the full run promises."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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
        "| ultralytics DFL (formula) | 1.00× |",
        "| multiloss DFL |",
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
    groups = {"softmax", "poly", "bce", "sigmoid focal", "asl", "dfl", "varifocal"}
    assert {m["group"] for m in measured} == groups
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
        ("torch", "dfl", "multiloss DFL", "ultralytics DFL (formula)"),
    ):
        row = rows[(backend, kind, implementation)]
        assert row["reference"] == reference, row
        assert row["kernels"] > 0 and row["modelled_ratio"] > 0, row
    # the kernel engine's rows (where it exists) are counted on meta, not timed on the CPU
    counted_only = [m for m in measured if m["implementation"].endswith(", kernels")]
    assert all(not m["seconds"] and m["kernels"] > 0 for m in counted_only)
    measured = [m for m in measured if m not in counted_only]
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


def test_detection_formulas_compute_the_same_losses(bench: ModuleType) -> None:
    """The detection groups compare like with like: ultralytics' DFL formula and
    mmdetection's varifocal formula give multiloss's numbers on the groups' data."""
    torch = pytest.importorskip("torch")
    from detection_impls import detection_implementations
    from harness import DFL, VARIFOCAL, make_data, shapes_for

    for kind in (DFL, VARIFOCAL):
        logits, target = (
            torch.from_numpy(a).double() for a in make_data(shapes_for(kind, True)[0], kind)
        )
        reference, ours = list(detection_implementations(kind).values())
        assert torch.allclose(ours(logits, target), reference(logits, target), rtol=1e-12)


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


# --------------------------------------------------------------------------------------
# The cost model on custom operators (how the kernel engine is counted)


@functools.cache
def _toy_cross_entropy(materialize: bool) -> Any:
    """A cross-entropy as two custom operators (forward: the mean loss and the per-row
    log-sum-exp; backward: the gradient), the shape of the kernel engine's; the
    log-sum-exp output is marked non-differentiable, and where `materialize` is False its
    missing gradient is not filled with zeros."""
    import torch

    space = f"multiloss_bench_test{int(materialize)}"

    @torch.library.custom_op(
        f"{space}::forward",
        mutates_args=(),
        schema="(Tensor logits, Tensor target) -> (Tensor, Tensor)",
    )
    def forward(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lse = torch.logsumexp(logits, 1)
        return (lse - logits.gather(1, target[:, None])[:, 0]).mean(), lse

    @forward.register_fake
    def _(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits.new_empty(()), logits.new_empty(logits.shape[:1])

    @torch.library.custom_op(
        f"{space}::backward",
        mutates_args=(),
        schema="(Tensor logits, Tensor target, Tensor lse, Tensor seed) -> Tensor",
    )
    def backward_op(
        logits: torch.Tensor, target: torch.Tensor, lse: torch.Tensor, seed: torch.Tensor
    ) -> torch.Tensor:
        grad = torch.exp(logits - lse[:, None])
        grad[torch.arange(len(target)), target] -= 1
        return grad * seed / len(target)

    @backward_op.register_fake
    def _(logits: torch.Tensor, target: torch.Tensor, lse: torch.Tensor, seed: torch.Tensor) -> Any:
        return torch.empty_like(logits)

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        ctx.save_for_backward(inputs[0], inputs[1], output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(materialize)

    def backward(ctx: Any, seed: Any, _: Any) -> tuple[Any, None]:
        logits, target, lse = ctx.saved_tensors
        return backward_op(logits, target, lse, seed), None

    forward.register_autograd(backward, setup_context=setup_context)
    return lambda logits, target: forward(logits, target)[0]


def test_a_custom_operator_is_one_kernel_and_its_operands_bytes(bench: ModuleType) -> None:
    torch = pytest.importorskip("torch")
    from cost_model import count_torch

    toy = _toy_cross_entropy(False)
    concrete = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (8,))
    toy(concrete, labels).backward()
    expected = torch.autograd.grad(F_cross_entropy(concrete, labels), concrete)[0]
    torch.testing.assert_close(concrete.grad, expected)  # the toy is a cross-entropy

    logits = torch.empty(64, 10, device="meta", requires_grad=True)
    target = torch.empty(64, dtype=torch.int64, device="meta")
    cost = count_torch(lambda: toy(logits, target).backward(), full_numel=640)
    assert dict(cost.by_kernel) == {
        "multiloss_bench_test0::forward": 1,
        "ones_like": 1,
        "multiloss_bench_test0::backward": 1,
    }
    assert cost.kernels == 3
    # forward reads the logits (2560 B) and the target (512 B), writes the loss and the
    # log-sum-exp; ones_like reads and writes a 0-d tensor; backward reads the logits,
    # the target, the log-sum-exp and the seed and writes the gradient
    forward = 2560 + 512 + 4 + 256
    backward = 2560 + 512 + 256 + 4 + 2560
    assert cost.bytes == forward + 2 * 4 + backward
    # logits-sized: read in forward, read and written in backward
    assert (cost.passes, cost.target_passes) == (3, 0)

    logits.grad = None  # else backward adds into it: one more kernel
    filled = count_torch(lambda: _toy_cross_entropy(True)(logits, target).backward())
    # autograd fills the marked output's missing gradient with zeros unless told not to
    assert filled.kernels == 4 and filled.by_kernel["zeros"] == 1


def F_cross_entropy(logits: Any, target: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits, target)


def test_passes_count_logits_sized_tensors_and_the_targets_apart(bench: ModuleType) -> None:
    torch = pytest.importorskip("torch")
    from cost_model import count_torch

    logits = torch.empty(32, 8, device="meta", requires_grad=True)
    target = torch.empty(32, 8, device="meta")
    row = torch.empty(32, 1, device="meta")

    def step() -> None:
        (
            torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + row.sum()
        ).backward()

    cost = count_torch(step, full_numel=256, apart=(target,))
    small = count_torch(lambda: torch.exp(row).sum(), full_numel=256)
    assert small.passes == 0  # nothing logits-sized
    assert cost.target_passes >= 2  # read in forward and in backward
    assert cost.passes > cost.target_passes
    assert count_torch(step).passes == 0  # no full_numel: no passes counted


def test_held_for_backward_counts_logits_sized_saves_beyond_the_inputs(bench: ModuleType) -> None:
    torch = pytest.importorskip("torch")
    from kernel_costs import held_for_backward

    logits = torch.empty(16, 10, device="meta", requires_grad=True)
    target = torch.empty(16, dtype=torch.int64, device="meta")
    toy = _toy_cross_entropy(False)
    assert held_for_backward(lambda: toy(logits, target), (logits, target), 160) == 0
    # log_softmax's output is saved by nll's backward: logits-sized, not an input
    held = held_for_backward(
        lambda: torch.nn.functional.cross_entropy(logits, target), (logits, target), 160
    )
    assert held == 16 * 10 * 4


def test_the_kernel_cost_report_counts_rows_and_judges_targets(bench: ModuleType) -> None:
    pytest.importorskip("torch")
    import kernel_costs
    from harness import Shape

    shape = Shape("64×10", (64, 10))
    rows = kernel_costs.count_all([shape], kernel_costs.softmax_variants())
    by_name = {r.name: r for r in rows}
    reference = by_name["F.cross_entropy"]
    assert reference.kernels == 5 and reference.modelled_ratio == pytest.approx(1.0)
    assert by_name["multiloss CE, eager"].kernels is not None
    probs = by_name["multiloss CE, probability targets, eager"]
    assert probs.target_passes and probs.target_passes > 0
    available = kernel_costs.engine_available() == ""
    kernel_row = by_name["multiloss CE, kernels"]
    assert (kernel_row.kernels is not None) == available, kernel_row.why

    def counted(name: str, loss: str, target: str, **values: Any) -> Any:
        row = kernel_costs.Counted(
            "8192×1000", name, loss, "triton", target, "F.cross_entropy", False
        )
        for key, value in values.items():
            setattr(row, key, value)
        return row

    synthetic = [
        counted("a", "CE", "index", kernels=3, passes=3, held=0, modelled_ratio=0.45),
        counted("b", "focal", "index", kernels=5, passes=3, held=0, modelled_ratio=0.6),
        counted("c", "CE", "probs", kernels=4, passes=5, held=0, modelled_ratio=0.9),
        counted("d", "BCE", "multilabel", kernels=2, passes=2, held=0, modelled_ratio=0.5),
        counted("e", "ASL", "multilabel", kernels=2, passes=2, held=64, modelled_ratio=0.2),
        counted("f", "CE", "index"),
    ]
    found = {v.target: v for v in kernel_costs.verdicts(synthetic)}
    assert found["a at 8192×1000: ≤ 4 kernels"].met
    assert found["a at 8192×1000: modelled ≤ 0.5× F.cross_entropy"].met
    assert not found["b at 8192×1000: ≤ 4 kernels"].met
    assert not found["b at 8192×1000: modelled ≤ 0.5× F.cross_entropy"].met
    assert not found["c at 8192×1000: ≤ 4 passes"].met
    assert found["d at 8192×1000: modelled ≤ 0.6× F.cross_entropy"].met
    assert not found["e at 8192×1000: nothing logits-sized held"].met
    assert found["f at 8192×1000: counted"].met is None
    text = kernel_costs.markdown(rows, kernel_costs.verdicts(rows))
    assert "| F.cross_entropy | 5 |" in text and "#### 64×10" in text
    compact = "\n".join(kernel_costs.docs_tables(rows))
    eager_kernels = by_name["multiloss CE, eager"].kernels
    assert "| 64×10 | " in compact and f"({eager_kernels} / 9 / " in compact


def test_the_kernel_cost_report_counts_the_detection_rows(bench: ModuleType) -> None:
    """The varifocal and quality focal rows: under the kernel engine one forward and one
    backward custom operator (the rest is the traced check of the target that meta
    tensors leave to the preparation), far fewer kernels than the eager plan's."""
    pytest.importorskip("torch")
    import kernel_costs
    from harness import Shape

    if kernel_costs.engine_available():
        pytest.skip("no kernel engine here")
    variants = [v for v in kernel_costs.sigmoid_variants() if v.loss in ("VFL", "QFL")]
    rows = kernel_costs.count_all([Shape("64×10", (64, 10))], variants)
    by_name = {r.name: r for r in rows}
    assert set(by_name) >= {
        "textbook VFL (mmdetection formula)",
        "multiloss VFL, kernels",
        "multiloss QFL β=2, kernels",
    }
    for name in ("multiloss VFL", "multiloss QFL β=2"):
        kernel, eager = by_name[name + ", kernels"], by_name[name + ", eager"]
        assert kernel.kernels is not None and eager.kernels is not None, kernel.why
        assert kernel.by_kernel["multiloss::sigmoid_loss"] == 1, kernel.by_kernel
        assert kernel.by_kernel["multiloss::sigmoid_loss_backward"] == 1, kernel.by_kernel
        assert kernel.kernels < eager.kernels
    assert by_name["multiloss VFL, kernels"].modelled_ratio is not None
    assert not [v for v in kernel_costs.verdicts(rows) if "VFL" in v.target or "QFL" in v.target]


# --------------------------------------------------------------------------------------
# The device check's script, without a GPU


def _device_check(
    *arguments: str, script: str = "device_check.sh", **environment: str
) -> subprocess.CompletedProcess[str]:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("DEVICE_")}
    env.pop("BENCH_ARGS", None)
    env |= {"PYTHON": sys.executable, "OUT": "/tmp/device_check_plan", **environment}
    return subprocess.run(
        ["bash", str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def test_the_device_check_plans_compiled_kernels_on_cuda_and_the_cuda_benchmark(
    bench: ModuleType,
) -> None:
    if not (BENCHMARKS / "device_check.sh").exists():  # an sdist carries benchmarks/*.py only
        pytest.skip("benchmarks/device_check.sh is not in this copy")
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / "device_check.sh")]).returncode == 0
    result = _device_check("--plan")
    assert result.returncode == 0, result.stdout + result.stderr
    tests = next(line for line in result.stdout.splitlines() if line.startswith("tests: "))
    benchmark = next(line for line in result.stdout.splitlines() if line.startswith("benchmark: "))
    assert "TRITON_INTERPRET=0" in tests and "MULTILOSS_TEST_DEVICE=cuda" in tests
    assert "tests/test_cuda.py tests/test_triton_cuda.py" in tests
    suites = [line for line in result.stdout.splitlines() if line.startswith("kernel suites: ")]
    assert all("TRITON_INTERPRET=0" in line and "test_triton_cuda" not in line for line in suites)
    assert "benchmarks/run.py --device cuda" in benchmark and "--large" in benchmark
    # the benchmark's arguments are run.py's: the groups they select hold the GPU shapes
    words = benchmark.split(" --shapes ")[1].split(" ")[0]
    args = bench.parse_arguments(
        ["--device", "cuda", "--kinds", "softmax,sigmoid focal,bce", "--large", "--no-compiled"]
    )
    groups = bench.select_groups(["torch"], args.kinds, False, words.split(","), args.large)
    names = {(g.kind, g.shape.name) for g in groups}
    assert {("softmax", "8192×32000"), ("softmax", "16384×128256 bfloat16")} <= names
    assert {("sigmoid focal", "65536×80"), ("bce", "65536×80")} <= names

    assert "benchmarks/linear_head_device.py --device cuda" in result.stdout

    dry = _device_check("--plan", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "--device cpu" in dry.stdout and "--quick" in dry.stdout
    assert "MULTILOSS_TEST_DEVICE=cpu" in dry.stdout
    refused = _device_check("--fast")
    assert refused.returncode == 64 and "unknown argument --fast" in refused.stderr


def test_the_jax_device_check_plans_the_kernel_tests_and_the_pallas_benchmark() -> None:
    if not (BENCHMARKS / "device_check_jax.sh").exists():
        pytest.skip("benchmarks/device_check_jax.sh is not in this copy")
    script = "device_check_jax.sh"
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / script)]).returncode == 0
    plan = _device_check("--plan", script=script)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    lines = plan.stdout.splitlines()
    tests = next(line for line in lines if line.startswith("tests (limit 140s): "))
    benchmark = next(line for line in lines if line.startswith("benchmark "))
    assert "pytest tests/test_pallas.py" in tests and "not devices and not cost_model" in tests
    assert "benchmarks/pallas_device.py" in benchmark and "--quick" not in benchmark
    dry = _device_check("--plan", "--dry-run", script=script)
    assert dry.returncode == 0 and sys.executable in dry.stdout, dry.stdout + dry.stderr
    assert "pallas_device.py --quick --repeat 3" in dry.stdout
    refused = _device_check("--fast", script=script)
    assert refused.returncode == 64 and "unknown argument --fast" in refused.stderr


def test_the_device_fused_head_benchmark_runs_on_the_cpu(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    import linear_head_device

    assert (
        linear_head_device.main(
            ["--device", "cpu", "--quick", "--rounds", "1", "--json", str(tmp_path / "h.json")]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| unfused: F.linear + F.cross_entropy |" in table and "1.00×" in table
    assert "| multiloss linear_cross_entropy, eager |" in table
    rows = json.loads((tmp_path / "h.json").read_text(encoding="utf-8"))
    assert all(row["median_seconds"] > 0 and row["peak_bytes"] is None for row in rows)
