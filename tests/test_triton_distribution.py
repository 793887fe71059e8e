"""The distribution focal loss's Triton kernels (`multiloss.torch._triton.distribution`),
in Triton's interpreter on CPU tensors.

* loss and gradient against the independent float64 two-hot formula of
  tests/test_distribution_focal.py (`oracle`, which forms the two-hot target explicitly),
  on the inputs as rounded to the logits' dtype, in units of eps · (1 + |reference|): the
  core's bounds (5 eps per element, 10 for a reduced loss) for float32, float16 logits
  held to float32's bound for the loss (computed in float32) and float16's for the
  gradient (rounded once); targets on bin edges (t = 0, integers, t = n - 1), weights,
  every reduction, bins last, along axis 1 of a 3-d tensor, read through a transposed
  view's strides, and 70 bins (two chunks);
* a bad target (outside [0, n - 1], NaN) is NaN in its element only;
* the engine's routing (the operators dispatched, counted), the eager plans for float64,
  a target or weight that requires grad, ``torch.func`` and second order;
* the custom operators (`torch.library.opcheck`), tracing with
  `torch.compile(fullgraph=True)`, the kernel count on meta tensors at the DFL shape of a
  YOLO head (33600 × 16), and both kernels compiled for an sm_80 GPU without a device.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np
import pytest
import torch
from backends import assert_close, assert_eps
from test_distribution_focal import oracle

pytest.importorskip("triton")

import multiloss.torch as mt
from multiloss._core.distribution import DistributionConfig
from multiloss.torch._triton.distribution import distribution_loss

if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("no CUDA device and Triton's interpreter is off", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
BOUND = 5.0
"""The core's bound per element (eps · (1 + |reference|)); twice it for a reduced loss."""

# (logits shape, bin axis, transposed view)
LAYOUTS = {
    "37x16": ((37, 16), 1, False),
    "5x3x7-axis1": ((5, 3, 7), 1, False),
    "16x37-transposed": ((37, 16), 1, True),
    "6x70": ((6, 70), 1, False),
}


def _problem(shape, axis, transposed, dtype, seed=0):
    """Logits (rounded to `dtype`), targets with every kind of bin position, weights."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    n = shape[axis]
    target_shape = shape[:axis] + shape[axis + 1 :]
    t = torch.rand(target_shape, generator=gen, dtype=torch.float64) * (n - 1)
    flat = t.view(-1)
    flat[:4] = torch.tensor([0.0, 1.0, n - 1.0, n - 1.001])
    w = torch.rand(target_shape, generator=gen, dtype=torch.float64) + 0.5
    x = z.to(dtype)
    if transposed:  # the same values read through a transposed view's strides
        x = x.t().contiguous().t()
    return x, t.float(), w.float()


def _reference(x, t, w, axis, reduction):
    """The float64 two-hot oracle on the rounded inputs, bins moved last and back."""
    z = np.moveaxis(x.double().numpy(), axis, -1)
    loss, grad = oracle(z, t.double().numpy(), w.double().numpy(), reduction)
    return loss, np.moveaxis(grad, -1, axis)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_loss_and_gradient_against_the_two_hot_oracle(layout, dtype, reduction):
    shape, axis, transposed = LAYOUTS[layout]
    x, t, w = _problem(shape, axis, transposed, dtype)
    x = x.to(DEVICE).requires_grad_()
    config = DistributionConfig(axis, shape[axis], reduction)
    loss = distribution_loss(config, x, t.to(DEVICE), w.to(DEVICE))
    (grad,) = torch.autograd.grad(loss.sum(), x)
    ref_loss, ref_grad = _reference(x.detach().cpu(), t, w, axis, reduction)
    bound = BOUND if reduction == "none" else 2 * BOUND
    assert loss.dtype == torch.float32 and grad.dtype == dtype and grad.shape == x.shape
    assert_eps(loss.detach().double().cpu().numpy(), ref_loss, "float32", bound, "loss")
    grad_eps = "float16" if dtype == torch.float16 else "float32"
    assert_eps(grad.double().cpu().numpy(), ref_grad, grad_eps, BOUND, "gradient")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_partial_sums_of_several_programs(monkeypatch, reduction):
    """16 rows a program: 37 rows are 3 partial sums, then one program sums them."""
    from multiloss.torch._triton import distribution

    monkeypatch.setattr(distribution, "BLOCK_R", 16)
    x, t, w = _problem((37, 16), 1, False, torch.float32, seed=2)
    x.requires_grad_()
    loss = distribution_loss(DistributionConfig(1, 16, reduction), x, t, w)
    (grad,) = torch.autograd.grad(loss, x)
    ref_loss, ref_grad = _reference(x.detach(), t, w, 1, reduction)
    assert_eps(loss.detach().double().numpy(), ref_loss, "float32", 2 * BOUND, "loss")
    assert_eps(grad.double().numpy(), ref_grad, "float32", BOUND, "gradient")


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_weight_broadcast_and_cotangent(reduction):
    """A weight broadcast against the target (one per box side) and a non-unit cotangent."""
    x, t, _ = _problem((5, 3, 7), 1, False, torch.float32, seed=1)
    w = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0, 1.5, 0.25]).reshape(1, 7)
    x.requires_grad_()
    config = DistributionConfig(1, 3, reduction)
    loss = distribution_loss(config, x, t, w)
    cot = torch.linspace(-1.0, 2.0, loss.numel()).reshape(loss.shape)
    (grad,) = torch.autograd.grad(loss, x, cot)
    ref_loss, _ = _reference(x.detach(), t, w.expand(5, 7), 1, reduction)
    if reduction == "none":  # e_i · w_i (p - c): the cotangent folded into the weight
        _, ref_grad = _reference(x.detach(), t, w.expand(5, 7) * cot, 1, "none")
    else:
        _, ref_grad = _reference(x.detach(), t, w.expand(5, 7), 1, "mean")
        ref_grad = ref_grad * cot.item()
    assert_eps(loss.detach().double().numpy(), ref_loss, "float32", 2 * BOUND, "loss")
    assert_eps(grad.double().numpy(), ref_grad, "float32", BOUND, "gradient")


def test_a_bad_target_is_nan_in_its_element_only():
    x, t, w = _problem((37, 16), 1, False, torch.float32)
    t[5], t[6], t[7] = -0.5, math.nan, 15.25
    x.requires_grad_()
    loss = distribution_loss(DistributionConfig(1, 16, "none"), x, t, w)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    bad = torch.zeros(37, dtype=torch.bool)
    bad[5:8] = True
    assert loss[bad].isnan().all() and grad[bad].isnan().all()
    good = ~bad
    ref_loss, ref_grad = _reference(x.detach()[good], t[good], w[good], 1, "none")
    assert_eps(loss.detach()[good].double().numpy(), ref_loss, "float32", BOUND, "loss")
    assert_eps(grad[good].double().numpy(), ref_grad, "float32", BOUND, "gradient")
    total = distribution_loss(DistributionConfig(1, 16, "mean"), x.detach(), t, w)
    assert total.isnan()


# ------------------------------------------------------------- through the engine


def _ops_run(step):
    """The names of the operators `step()` dispatches (custom ones as namespace::name)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    names = []

    class _Recording(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            names.append(f"{func.namespace}::{func.overloadpacket.__name__}")
            return func(*args, **(kwargs or {}))

    with _Recording():
        step()
    return names


FORWARD, BACKWARD = "multiloss::distribution_forward", "multiloss::distribution_backward"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_the_engine_runs_the_kernels(dtype):
    """engine("triton"): one forward op and one backward op; the loss in the logits'
    dtype, the numbers the oracle's."""
    x, t, w = _problem((5, 3, 7), 1, False, dtype)
    x.requires_grad_()
    results = {}

    def step():
        with mt.engine("triton"):
            loss = mt.distribution_focal_loss(x, t, weight=w, reduction="sum")
        loss.backward()
        results["loss"] = loss

    ops = _ops_run(step)
    assert ops.count(FORWARD) == 1 and ops.count(BACKWARD) == 1, ops
    assert results["loss"].dtype == dtype
    ref_loss, ref_grad = _reference(x.detach(), t, w, 1, "sum")
    eps = "float16" if dtype == torch.float16 else "float32"
    assert_eps(results["loss"].detach().double().numpy(), ref_loss, eps, 2 * BOUND, "loss")
    assert_eps(x.grad.double().numpy(), ref_grad, eps, BOUND, "gradient")


def _kernel_ran(call):
    return FORWARD in _ops_run(call)


def test_the_eager_plans_keep_what_the_kernels_lack():
    """float64 logits, a target or weight that requires grad, `torch.func`: the eager
    plans (no kernel op dispatched), with the same value."""
    x, t, w = _problem((37, 16), 1, False, torch.float32)
    expected = mt.distribution_focal_loss(x.double(), t, weight=w).item()

    def under_triton(fn):
        def call():
            with mt.engine("triton"):
                fn()

        return call

    calls = {
        "float64": lambda: mt.distribution_focal_loss(x.double(), t, weight=w),
        "target grad": lambda: mt.distribution_focal_loss(x, t.requires_grad_(), weight=w),
        "weight grad": lambda: mt.distribution_focal_loss(x, t.detach(), weight=w.requires_grad_()),
        "torch.func": lambda: torch.func.grad(
            lambda z: mt.distribution_focal_loss(z, t.detach(), weight=w.detach())
        )(x),
    }
    for name, fn in calls.items():
        assert not _kernel_ran(under_triton(fn)), name
    with mt.engine("triton"):
        got = mt.distribution_focal_loss(x, t.detach(), weight=w.detach())
    assert abs(got.item() - expected) <= 10 * np.finfo(np.float32).eps * (1 + abs(expected))
    with mt.engine("eager"):
        assert not _kernel_ran(lambda: mt.distribution_focal_loss(x, t.detach()))


def test_second_order_takes_the_eager_closed_form():
    """create_graph=True through a kernel call: the gradient's derivative comes from the
    eager plans' closed forms, equal to the eager engine's."""
    x, t, w = _problem((5, 3, 7), 1, False, torch.float32)
    results = []
    for name in ("triton", "eager"):
        z = x.clone().requires_grad_()
        with mt.engine(name):
            loss = mt.distribution_focal_loss(z, t, weight=w)
        (grad,) = torch.autograd.grad(loss, z, create_graph=True)
        (hvp,) = torch.autograd.grad((grad * torch.cos(z.detach())).sum(), z)
        results.append((grad.detach(), hvp))
    assert_close(results[0][0].numpy(), results[1][0].numpy(), rtol=1e-5, atol=1e-7)
    assert_close(results[0][1].numpy(), results[1][1].numpy(), rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------- operators and cost


def test_custom_operators_opcheck():
    x, t, w = _problem((5, 3, 7), 1, False, torch.float32)
    x.requires_grad_()
    forward = torch.ops.multiloss.distribution_forward.default
    backward = torch.ops.multiloss.distribution_backward.default
    for reduction, weight in (("none", w), ("mean", None), ("sum", w[:1])):
        torch.library.opcheck(forward, (x, t, weight, 1, reduction, False))
        lse = forward(x.detach(), t, weight, 1, reduction, False)[1]
        cotangent = torch.randn(5, 7) if reduction == "none" else torch.tensor(0.5)
        torch.library.opcheck(backward, (cotangent, x.detach(), t, weight, lse, 1, reduction))
    torch.library.opcheck(forward, (x.detach().half(), t, None, 1, "sum", True))


def test_compiles_fullgraph():
    """torch.compile(fullgraph=True) traces the operators as they are: the same numbers."""
    x, t, w = _problem((8, 16), 1, False, torch.float32, seed=3)
    config = DistributionConfig(1, 16, "mean")

    def step(logits, target, weight):
        return distribution_loss(config, logits, target, weight)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager, traced = step(x1, t, w), compiled(x2, t, w)
    eager.backward()
    traced.backward()
    assert torch.equal(eager, traced) and torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_one_kernel_each_way_on_meta(reduction):
    """Forward + backward at 33600 × 16 (a YOLO head's boxes × bins) on meta tensors,
    counted as benchmarks/cost_model.py counts: the forward op, the ones_like seeding
    backward and the backward op (above one program's 64 rows the forward op launches a
    second one-program sum for "sum"/"mean"), the logits read once each way and the
    gradient written once."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from cost_model import count_torch

    x = torch.empty(33600, 16, device="meta", requires_grad=True)
    t, w = torch.empty(33600, device="meta"), torch.empty(33600, device="meta")

    def step():
        loss = distribution_loss(DistributionConfig(1, 16, reduction), x, t, w)
        (loss.sum() if reduction == "none" else loss).backward()

    cost = count_torch(step, full_numel=x.numel())
    extra = 1 if reduction == "none" else 0  # the test's own .sum() of the losses
    assert cost.kernels == 3 + extra, cost.by_kernel
    assert cost.by_kernel[FORWARD] == 1 and cost.by_kernel[BACKWARD] == 1
    assert cost.passes <= 3, cost


_COMPILE_FOR_GPU = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from multiloss.torch._triton import _distribution_kernels as device

def compile_for_gpu(fn, flags, types):
    signature, constexprs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in flags:
            signature[name] = "constexpr"
            constexprs[(index,)] = flags[name]
        else:
            signature[name] = types.get(name, "i32")
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    assert triton.compile(source, target=GPUTarget("cuda", 80, 32)).asm["cubin"]

types = {"X": "*fp16", "T": "*fp32", "W": "*fp32", "OUT": "*fp32", "LSE": "*fp32",
         "scale": "fp32", "COT": "*fp32", "GRAD": "*fp16"}
for reduce, chunks in ((0, 1), (1, 2)):
    flags = {"HAS_W": True, "REDUCE": reduce, "CHUNKS": chunks, "BLOCK_R": 64, "BLOCK_N": 16}
    compile_for_gpu(device.distribution_forward_kernel, flags, types)
for per_row, has_w in ((True, True), (False, False)):
    flags = {"HAS_W": has_w, "PER_ROW": per_row, "CHUNKS": 2, "BLOCK_R": 64, "BLOCK_N": 64}
    compile_for_gpu(device.distribution_backward_kernel, flags, {**types, "GRAD": "*bf16"})
print("compiled")
"""


def test_kernels_compile_for_a_gpu():
    """The interpreter accepts constructs that the compiler refuses: Triton's own pipeline
    compiles both kernels for an sm_80 GPU (16-bit logits, weights, two chunks) without a
    device, in a process without the interpreter."""
    import triton

    if "nvidia" not in getattr(triton.backends, "backends", {}):
        pytest.skip("no NVIDIA backend")
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_GPU], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]
