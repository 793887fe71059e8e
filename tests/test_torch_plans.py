"""multiloss.torch's execution plans (multiloss/torch/_plans.py, docs/torch-adapter.md).

* every plan, forced on CPU tensors, meets the mpmath accuracy bounds of
  ``test_core_accuracy`` for the loss and every gradient entry;
* the plan is chosen from static facts: the device, the size, ``torch.compile``,
  ``torch.func`` and autograd recording;
* the whole-tensor plan (every non-CPU device, so ``meta`` tensors) dispatches a fixed
  number of kernels whatever the shape, and reads no value on the host (a host read of a
  ``meta`` tensor raises);
* the static validation of a call is cached by its static facts, and a cached call still
  checks the values (class indices, weights) and still rejects bad options.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from backends import assert_eps
from losses import has_class_axis
from test_core_accuracy import CONFIGS, ULP_BOUND, _inputs, _option_items, _reference

torch = pytest.importorskip("torch")

import multiloss.torch as mt  # noqa: E402
from multiloss.torch import _plans  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from cost_model import count_torch  # noqa: E402

PLANS = ("generic", "whole", "slab")
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _torch_call(name, logits, target, options):
    """The torch loss `name` on (logits, target), class axis last as in the core tests."""
    options = dict(options)
    if has_class_axis(name):
        options["axis"] = -1
    return getattr(mt, name)(logits, target, **options)


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_every_plan_meets_the_mpmath_bounds(plan, name, options, dtype):
    logits_np, target_np = _inputs(name, dtype)
    logits = torch.tensor(logits_np, dtype=TORCH_DTYPES[dtype], requires_grad=True)
    if has_class_axis(name):
        target = torch.tensor(target_np, dtype=torch.int64)
    else:
        target = torch.tensor(target_np, dtype=TORCH_DTYPES[dtype])
    with _plans.forced(plan):
        loss = _torch_call(name, logits, target, {**options, "reduction": "none"})
        (grad,) = torch.autograd.grad(loss.sum(), logits)
    ref_loss, ref_grad = _reference(name, _option_items(options), dtype, "none")
    loss_np, grad_np = loss.detach().double().numpy(), grad.double().numpy()
    assert np.all(np.isfinite(loss_np)) and np.all(np.isfinite(grad_np))
    assert_eps(loss_np, ref_loss, dtype, ULP_BOUND[dtype], "loss")
    assert_eps(grad_np, ref_grad, dtype, ULP_BOUND[dtype], "grad")


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_plan_reduces_as_pytorch_does(plan, reduction):
    """Reductions, ignore_index and class weights on each plan, against F.cross_entropy
    in float64."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 7, 3, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 7, (40, 3), generator=generator)
    target[::5] = 2 - 102  # ignore_index -100
    weight = torch.rand(7, generator=generator, dtype=torch.float64) + 0.1
    z = logits.clone().requires_grad_(True)
    with _plans.forced(plan):
        ours = mt.cross_entropy(z, target, weight=weight, reduction=reduction)
        (grad,) = torch.autograd.grad(ours, z)
    w = logits.clone().requires_grad_(True)
    theirs = torch.nn.functional.cross_entropy(w, target, weight=weight, reduction=reduction)
    (expected_grad,) = torch.autograd.grad(theirs, w)
    torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------- choosing a plan


def _chosen(logits):
    """The plan as chosen inside an autograd Function's forward (no graph recorded)."""
    with torch.no_grad():
        return _plans.choose(logits).name


def test_the_plan_follows_device_and_size():
    small = torch.zeros(64, 10)
    large = torch.zeros(4096, 1000)
    assert _chosen(small) == "whole"
    assert _chosen(large) == "slab"
    assert _chosen(torch.zeros(4096, 1000, device="meta")) == "whole"
    with torch.enable_grad():  # autograd recording (create_graph=True)
        assert _plans.choose(large).name == "generic"


def test_a_forced_plan_yields_to_the_generic_one_where_that_is_required():
    with _plans.forced("slab"):
        assert _chosen(torch.zeros(8, 3)) == "slab"
        with torch.enable_grad():
            assert _plans.choose(torch.zeros(8, 3)).name == "generic"


def test_batched_tensors_of_vmap_take_the_generic_plan():
    """Under ``torch.func.vmap`` the Function's forward sees batched tensors; under
    ``torch.func.grad`` it sees plain ones (functorch unwraps them for a Function), and
    any plan may run."""
    seen = []
    original = _plans.choose

    def spy(logits, *others):
        plan = original(logits, *others)
        seen.append(plan.name)
        return plan

    target = torch.tensor([1, 0])
    try:
        _plans.choose = spy
        torch.func.vmap(lambda z: mt.cross_entropy(z, target))(torch.randn(4, 2, 3))
    finally:
        _plans.choose = original
    assert seen and set(seen) == {"generic"}


# ------------------------------------------------------------- kernels on meta tensors

SOFTMAX_SHAPES = [(64, 10), (8192, 1000), (1024, 32000), (8, 21, 128, 128)]
SIGMOID_SHAPES = [(256, 80), (65536, 80), (8192, 1000)]


def _meta_step(loss, shape, sigmoid):
    """One forward + backward of `loss` on meta tensors of `shape` (made outside the step)."""
    logits = torch.randn(shape, device="meta", requires_grad=True)
    if sigmoid:
        target = torch.rand(shape, device="meta")
    else:
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device="meta")

    def step():
        loss(logits, target).backward()

    return step


LOSSES_ON_META = {
    "cross_entropy": (mt.cross_entropy, False, SOFTMAX_SHAPES),
    "focal_loss": (mt.focal_loss, False, SOFTMAX_SHAPES),
    "binary_cross_entropy": (mt.binary_cross_entropy, True, SIGMOID_SHAPES),
    "sigmoid_focal_loss": (mt.sigmoid_focal_loss, True, SIGMOID_SHAPES),
    "poly_loss": (mt.poly_loss, False, SOFTMAX_SHAPES),
    "asymmetric_loss": (mt.asymmetric_loss, True, SIGMOID_SHAPES),
}


@pytest.mark.parametrize("name", sorted(LOSSES_ON_META))
def test_the_whole_tensor_plan_launches_a_fixed_number_of_kernels(name):
    """The same count at every benchmark shape (before: one set of kernels per slab, 671
    at 1024×32000), with no host read (which raises on meta tensors)."""
    loss, sigmoid, shapes = LOSSES_ON_META[name]
    counts = {shape: count_torch(_meta_step(loss, shape, sigmoid)).kernels for shape in shapes}
    assert len(set(counts.values())) == 1, counts
    assert next(iter(counts.values())) <= KERNEL_BOUND[name]


KERNEL_BOUND = {
    "cross_entropy": 25,
    "focal_loss": 39,
    "binary_cross_entropy": 23,
    "sigmoid_focal_loss": 68,
    "poly_loss": 37,
    "asymmetric_loss": 101,
}
"""The counts measured for this plan (a regression bound; F.cross_entropy launches 5,
F.binary_cross_entropy_with_logits 6: docs/benchmarks.md says what the rest costs)."""


# ----------------------------------------------------------------- cached validation


def test_a_cached_call_still_checks_values_and_options():
    logits = torch.randn(4, 3)
    good = torch.tensor([0, 1, 2, 1])
    mt.cross_entropy(logits, good)  # fills the cache for these shapes and options
    with pytest.raises(ValueError, match=r"target has class indices out of range \[0, 3\)"):
        mt.cross_entropy(logits, torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="ignore_index"):
        mt.cross_entropy(logits, torch.tensor([0, -100, -7, 1]))
    mt.cross_entropy(logits, torch.tensor([0, -100, 2, 1]))  # ignored: fine
    with pytest.raises(ValueError, match="weight must be non-negative"):
        mt.cross_entropy(logits, good, weight=torch.tensor([1.0, -1.0, 1.0]))
    for _ in range(2):  # an error is raised on every call, never cached as a success
        with pytest.raises(TypeError, match="label_smoothing must be a real number"):
            mt.cross_entropy(logits, good, label_smoothing=True)
        with pytest.raises(TypeError, match="label_smoothing must be a real number"):
            mt.cross_entropy(logits, good, label_smoothing=[0.1])
