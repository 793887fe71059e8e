"""The sigmoid family's Triton kernels (`multiloss.torch._triton.sigmoid`) and the shared
device math (`multiloss.torch._triton._math`), in Triton's interpreter on CPU tensors.

* accuracy of every loss × option against the 50-digit mpmath oracles (`tests/oracles.py`,
  `tests/detection_oracles.py`: the varifocal and quality focal losses, the weighted
  Asymmetric Loss composed from the definition),
  in units of eps · (1 + |reference|) with the core's bounds (5 eps per element, 10 for a
  reduced loss), float32 and float64; float16 logits held to float32's bound for the loss
  (computed in float32) and float16's for the gradient (rounded once);
* against `F.binary_cross_entropy_with_logits` with every broadcast of `weight` and
  `pos_weight`, strided and expanded operands, every reduction, and the gradients;
* empty inputs, saturated (±30, ±1e4) and infinite logits, NaN confined to its element;
* the custom operators (`torch.library.opcheck`), the kernel count on meta tensors,
  tracing with `torch.compile(fullgraph=True)`, no write into the caller's tensors;
* `_math`: log1p, expm1, tanh, the softplus and sigmoid pairs against float64 over wide
  ranges (≤ 2 eps measured, 4 asserted), and their special values.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import detection_oracles
import mpmath
import numpy as np
import oracles
import pytest
import torch
import torch.nn.functional as F
from backends import assert_close, assert_eps

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from multiloss._core import PREPARE as CORE_PREPARE  # noqa: E402
from multiloss.torch._triton import _math  # noqa: E402
from multiloss.torch._triton.sigmoid import sigmoid_loss  # noqa: E402

if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("no CUDA device and Triton's interpreter is off", allow_module_level=True)

# The interpreter evaluates both sides of every `tl.where` in NumPy (log 0, exp overflow):
# its warnings say nothing about the results, which the tests check.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
ULP_BOUND = 5.0
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16}
PREPARE = {
    name: CORE_PREPARE[name]
    for name in (
        "binary_cross_entropy",
        "sigmoid_focal_loss",
        "asymmetric_loss",
        "varifocal_loss",
        "quality_focal_loss",
    )
}
prepare_binary_cross_entropy = PREPARE["binary_cross_entropy"]
prepare_sigmoid_focal_loss = PREPARE["sigmoid_focal_loss"]
prepare_asymmetric_loss = PREPARE["asymmetric_loss"]
DETECTION = ("varifocal_loss", "quality_focal_loss")


def run_kernel(name, logits, target, *, dtype="float32", reduction="mean", cotangent=None,
               **options):  # fmt: skip
    """Loss and ∂(cotangent · loss)/∂logits through the kernels (float64 NumPy arrays);
    `logits` and `target` NumPy arrays or tensors, `options` as the loss takes them."""
    x = torch.as_tensor(logits).to(TORCH_DTYPES[dtype]).to(DEVICE).detach().requires_grad_()
    y = torch.as_tensor(target).to(DEVICE)
    options = {
        key: torch.as_tensor(v, dtype=torch.float64).to(DEVICE)
        if isinstance(v, (np.ndarray, list))
        else v
        for key, v in options.items()
    }

    _, config, operands = PREPARE[name](x, y, reduction=reduction, convert_logits=False,
                                        **options)  # fmt: skip
    weight = getattr(operands, "weight", None)
    pos_weight = getattr(operands, "pos_weight", None)
    loss = sigmoid_loss(config, x, operands.target, weight, pos_weight)
    assert loss.dtype == (torch.float64 if dtype == "float64" else torch.float32)
    loss.backward(torch.ones_like(loss) if cotangent is None else cotangent)
    assert x.grad.dtype == x.dtype
    return loss.detach().double().cpu().numpy(), x.grad.double().cpu().numpy()


# ----------------------------------------------------------------------------- accuracy


def _sigmoid_problem():
    """Logits from tiny to saturated, each with targets 1, 0 and 0.3 (test_core_accuracy)."""
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.normal(scale=4.0, size=12),
            [0, 1e-8, -1e-8, 0.5, -0.5, 20, -20, 30, -30, 36.8, -36.8, 100, -100, 1e4, -1e4],
        ]
    )
    count = x.size
    y = np.concatenate([np.ones(count), np.zeros(count), np.full(count, 0.3)])
    return np.concatenate([x, x, x]), y


def _asymmetric_problem():
    """As test_new_losses: also near the clip's kink σ(x) = 0.05."""
    rng = np.random.default_rng(4)
    x = np.concatenate(
        [
            rng.normal(scale=4.0, size=8),
            [0, 1e-8, -1e-8, 0.5, -0.5, -2.5, -2.9, -3.0, -4.0, 20, -20, 36.8, -36.8],
            [100, -100, 1e4, -1e4],
        ]
    )
    count = x.size
    y = np.concatenate([np.ones(count), np.zeros(count), np.full(count, 0.3)])
    return np.concatenate([x, x, x]), y


def _configs():
    yield "binary_cross_entropy", {}
    yield "binary_cross_entropy", {"pos_weight": 3.0, "weight": 0.7}
    for gamma in (0.0, 0.25, 0.5, 1.0, 2.0, 5.0):
        yield "sigmoid_focal_loss", {"gamma": gamma, "alpha": None}
        yield "sigmoid_focal_loss", {"gamma": gamma, "alpha": 0.25}
    for gamma_pos in (0.0, 1.0, 0.5):
        for gamma_neg in (0.0, 0.5, 4.0):
            for clip in (0.0, 0.05):
                yield "asymmetric_loss", {"gamma_pos": gamma_pos, "gamma_neg": gamma_neg,
                                          "clip": clip}  # fmt: skip
    yield "asymmetric_loss", {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 1e-6}
    yield "asymmetric_loss", {"gamma_pos": 2.0, "gamma_neg": 2.5, "clip": 0.2}


CONFIGS = [
    pytest.param(name, options, id="-".join([name, *(f"{k}={v}" for k, v in options.items())]))
    for name, options in _configs()
]


FEW_CASES = [
    # one case of each loss, for the slower paths (engine, second order)
    ("binary_cross_entropy", {"pos_weight": 3.0, "weight": 0.7}),
    ("sigmoid_focal_loss", {"gamma": 0.5, "alpha": 0.25}),
    ("sigmoid_focal_loss", {"gamma": 2.0, "alpha": None}),
    ("asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}),
]


def _inputs(name, dtype):
    logits, target = _asymmetric_problem() if name == "asymmetric_loss" else _sigmoid_problem()
    return logits.astype(dtype).astype(np.float64), target


@functools.cache
def _reference(name, option_items, dtype, reduction):
    logits, target = _inputs(name, dtype)
    oracle = oracles.MPMATH_EXT.get(name, oracles.MPMATH[name])
    return oracle(logits, target, reduction=reduction, **dict(option_items))


def _items(options):
    return tuple(sorted(options.items()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), CONFIGS)
def test_elementwise_accuracy(name, options, dtype):
    logits, target = _inputs(name, dtype)
    loss, grad = run_kernel(name, logits, target, dtype=dtype, reduction="none", **options)
    ref_loss, ref_grad = _reference(name, _items(options), dtype, "none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_eps(loss, ref_loss, dtype, ULP_BOUND, "loss")
    assert_eps(grad, ref_grad, dtype, ULP_BOUND, "grad")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("name", "options"), CONFIGS[::3])
def test_reduced_accuracy(name, options, reduction):
    """A reduction adds one rounding per element at most."""
    logits, target = _inputs(name, "float32")
    loss, grad = run_kernel(name, logits, target, reduction=reduction, **options)
    ref_loss, ref_grad = _reference(name, _items(options), "float32", reduction)
    assert loss.shape == ()
    assert_eps(loss, ref_loss, "float32", 2 * ULP_BOUND, "loss")
    assert_eps(grad, ref_grad, "float32", ULP_BOUND, "grad")


@pytest.mark.parametrize(("name", "options"), CONFIGS[::2])
def test_float16_logits(name, options):
    """16-bit logits: float32 arithmetic, the loss in float32 (its bound), the gradient
    rounded once to float16 (float16's bound)."""
    logits, target = _inputs(name, "float16")
    loss, grad = run_kernel(name, logits, target, dtype="float16", reduction="none", **options)
    ref_loss, ref_grad = _reference(name, _items(options), "float16", "none")
    finite = np.abs(ref_grad) < 6e4  # float16's range
    assert_eps(loss, ref_loss, "float32", ULP_BOUND, "loss")
    assert_eps(grad[finite], ref_grad[finite], "float16", 1.0, "grad")


# ------------------------------------------- varifocal, quality focal, weighted ASL


def _detection_problem():
    """4 × 18: each row one target (0, 1, soft 0.3 and 0.85: the varifocal loss's q = 0
    and q > 0, the quality focal loss's d = q - σ of both signs) over logits from tiny to
    saturated."""
    rng = np.random.default_rng(8)
    x = np.concatenate(
        [rng.normal(scale=4.0, size=8), [0, 1e-8, -0.5, 2.0, 20, -20, 36.8, -36.8, 1e4, -1e4]]
    )
    targets = np.array([0.0, 1.0, 0.3, 0.85])
    return np.tile(x, (4, 1)), np.repeat(targets[:, None], x.size, axis=1)


def _detection_weights():
    """A weight along the last axis and a pos_weight per row (broadcast through strides)."""
    rng = np.random.default_rng(9)
    return rng.uniform(0.5, 2.0, size=18), rng.uniform(0.5, 3.0, size=(4, 1))


def _detection_configs():
    for gamma in (2.0, 0.5, 1.5):
        yield "varifocal_loss", {"alpha": 0.75, "gamma": gamma}
    yield "varifocal_loss", {"alpha": 0.75, "gamma": 2.0, "label_smoothing": 0.1}
    yield "varifocal_loss", {"alpha": 0.5, "gamma": 0.5, "label_smoothing": 0.2, "weighted": True}
    yield "varifocal_loss", {"alpha": 0.75, "gamma": 2.0, "weighted": True}
    for beta in (2.0, 1.5, 0.5, 1.0):
        yield "quality_focal_loss", {"beta": beta}
    yield "quality_focal_loss", {"beta": 2.0, "weighted": True}
    yield "quality_focal_loss", {"beta": 0.5, "weighted": True}
    yield "asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "weighted": True}
    yield "asymmetric_loss", {"gamma_pos": 0.0, "gamma_neg": 0.5, "clip": 0.0, "weighted": True}


DETECTION_CONFIGS = [
    pytest.param(name, options, id="-".join([name, *(f"{k}={v}" for k, v in options.items())]))
    for name, options in _detection_configs()
]


def _mp_varifocal_smoothed(x, q, *, alpha, gamma, label_smoothing, weight, pos_weight):
    """The varifocal loss of one element with label smoothing ε, from the definition: the
    weight reads q as given, the cross-entropy q (1 - ε) + ε/2."""
    s = q * (1 - mpmath.mpf(label_smoothing)) + mpmath.mpf(label_smoothing) / 2
    p = 1 / (1 + mpmath.exp(-x))
    k = q if q > 0 else alpha * p ** mpmath.mpf(gamma)
    return weight * k * detection_oracles._mp_bce(x, s, pos_weight)


def _weighted_asymmetric(x, y, weight, pos_weight, options):
    """w (pw y P + (1 - y) N) from the mpmath ASL oracle's P (y = 1) and N (y = 0)."""
    w = np.broadcast_to(weight, x.shape)
    pw = np.broadcast_to(pos_weight, x.shape)
    parts = [oracles.mp_asymmetric_loss(x, np.full(x.shape, t), reduction="none", **options)
             for t in (1.0, 0.0)]  # fmt: skip
    (p_loss, p_grad), (n_loss, n_grad) = parts
    return w * (pw * y * p_loss + (1 - y) * n_loss), w * (pw * y * p_grad + (1 - y) * n_grad)


@functools.cache
def _detection_reference(name, option_items, dtype):
    """Per-element loss and slope (float64) of the problem's logits rounded to `dtype`."""
    options = dict(option_items)
    weighted = options.pop("weighted", False)
    logits, target = _detection_problem()
    x = logits.astype(dtype).astype(np.float64)
    weight, pos_weight = _detection_weights() if weighted else (1.0, 1.0)
    if name == "asymmetric_loss":
        return _weighted_asymmetric(x, target, weight, pos_weight, options)
    if "label_smoothing" in options:
        return detection_oracles._mp_family(
            _mp_varifocal_smoothed, x, target, options, weight, pos_weight, "none", None
        )
    oracle = {"varifocal_loss": detection_oracles.mp_varifocal_loss,
              "quality_focal_loss": detection_oracles.mp_quality_focal_loss}[name]  # fmt: skip
    return oracle(x, target, reduction="none", weight=weight, pos_weight=pos_weight, **options)


def _run_detection(name, options, dtype, reduction):
    options = dict(options)
    if options.pop("weighted", False):
        weight, pos_weight = _detection_weights()
        options.update(weight=weight, pos_weight=pos_weight)
    logits, target = _detection_problem()
    return run_kernel(name, logits, target, dtype=dtype, reduction=reduction, **options)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), DETECTION_CONFIGS)
def test_detection_elementwise_accuracy(name, options, dtype):
    loss, grad = _run_detection(name, options, dtype, "none")
    ref_loss, ref_grad = _detection_reference(name, _items(options), dtype)
    finite = np.isfinite(ref_loss)
    assert np.array_equal(np.isfinite(loss), finite) and np.all(np.isfinite(grad))
    assert_eps(loss[finite], ref_loss[finite], dtype, ULP_BOUND, "loss")
    assert_eps(grad, ref_grad, dtype, ULP_BOUND, "grad")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("name", "options"), DETECTION_CONFIGS)
def test_detection_reduced_accuracy(name, options, reduction):
    """The reduced loss (one program's sum, the mean's 1 / n folded in) and the slopes
    times the 0-d cotangent."""
    loss, grad = _run_detection(name, options, "float32", reduction)
    ref_loss, ref_grad = _detection_reference(name, _items(options), "float32")
    scale = 1.0 if reduction == "sum" else 1.0 / ref_loss.size
    assert loss.shape == ()
    assert_eps(loss, math.fsum(ref_loss.ravel()) * scale, "float32", 2 * ULP_BOUND, "loss")
    assert_eps(grad, ref_grad * scale, "float32", ULP_BOUND, "grad")


@pytest.mark.parametrize(("name", "options"), DETECTION_CONFIGS[::2])
def test_detection_float16_logits(name, options):
    """float16 logits (±1e4 become ±inf): the loss computed in float32 and held to its
    bound, the gradient rounded once to float16."""
    loss, grad = _run_detection(name, options, "float16", "none")
    ref_loss, ref_grad = _detection_reference(name, _items(options), "float16")
    x = _detection_problem()[0].astype(np.float16)
    finite = np.isfinite(x) & np.isfinite(ref_loss)
    assert_eps(loss[finite], ref_loss[finite], "float32", ULP_BOUND, "loss")
    assert_eps(grad[finite], ref_grad[finite], "float16", 1.0, "grad")
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("varifocal_loss", {"alpha": 0.75, "gamma": 0.5}),
        ("quality_focal_loss", {"beta": 2.0}),
        ("quality_focal_loss", {"beta": 0.5}),
    ],
)
def test_detection_second_order(name, options):
    """create_graph=True through the kernel call: the eager plans' closed forms, H·t
    against the mpmath oracle's (weight and pos_weight given)."""
    x64 = np.array([-3.0, -0.4, 0.0, 0.7, 2.5, 9.0])
    y64 = np.array([1.0, 0.0, 0.3, 0.0, 0.85, 1.0])
    t64 = np.array([0.5, -1.0, 2.0, 0.25, 1.5, -0.75])
    w64, pw64 = np.linspace(0.5, 1.5, 6), np.full(6, 2.0)
    x = torch.tensor(x64, dtype=torch.float64, device=DEVICE, requires_grad=True)
    y = torch.tensor(y64, dtype=torch.float64, device=DEVICE)
    _, config, operands = PREPARE[name](x, y, reduction="sum", weight=torch.tensor(w64),
                                        pos_weight=torch.tensor(pw64), **options)  # fmt: skip
    loss = sigmoid_loss(config, x, operands.target, operands.weight, operands.pos_weight)
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    (hvp,) = torch.autograd.grad((grad * torch.tensor(t64, device=DEVICE)).sum(), x)
    oracle = {"varifocal_loss": detection_oracles.mp_varifocal_loss,
              "quality_focal_loss": detection_oracles.mp_quality_focal_loss}[name]  # fmt: skip
    _, ref_hvp = oracle(x64, y64, reduction="sum", tangent=t64, weight=w64, pos_weight=pw64,
                        **options)  # fmt: skip
    assert_eps(hvp.cpu().numpy(), ref_hvp, "float64", 8.0, "H·t")


# ------------------------------------------------------------------ PyTorch's own BCE


def _bce_cases():
    shape = (6, 5, 7)
    yield "none", shape, None, None
    yield "weight-last-axis", shape, (7,), None
    yield "weight-rows", shape, (6, 1, 1), None
    yield "weight-middle", shape, (5, 1), None
    yield "weight-full", shape, shape, None
    yield "weight-0d", shape, (), None
    yield "pos_weight-last-axis", shape, None, (7,)
    yield "pos_weight-rows", shape, None, (6, 1, 7)
    yield "both", shape, (6, 5, 1), (7,)
    # four dimensions that cannot be coalesced below four: the weight is copied
    yield "four-dims", (3, 4, 5, 6), (4, 1, 6), (3, 1, 5, 1)
    yield "vector", (37,), (37,), (1,)
    yield "0d", (), (), ()


BCE_CASES = [pytest.param(*case[1:], id=case[0]) for case in _bce_cases()]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize(("shape", "weight_shape", "pos_weight_shape"), BCE_CASES)
def test_binary_cross_entropy_against_torch(shape, weight_shape, pos_weight_shape, reduction):
    gen = torch.Generator().manual_seed(math.prod(shape) + len(reduction))
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 5
    y = torch.rand(shape, generator=gen, dtype=torch.float64)
    weight = None if weight_shape is None else torch.rand(weight_shape, generator=gen) * 2
    pos_weight = None if pos_weight_shape is None else torch.rand(pos_weight_shape, generator=gen)
    options = {"weight": weight, "pos_weight": pos_weight}
    cotangent = torch.randn(shape, generator=gen) if reduction == "none" else torch.tensor(0.7)
    loss, grad = run_kernel(
        "binary_cross_entropy", x, y, reduction=reduction, cotangent=cotangent, **options
    )
    x_ref = x.clone().requires_grad_()
    pw = None if pos_weight is None else pos_weight.double().expand(shape)
    w = None if weight is None else weight.double()
    ref = F.binary_cross_entropy_with_logits(x_ref, y, weight=w, pos_weight=pw,
                                             reduction=reduction)  # fmt: skip
    ref.backward(cotangent.double())
    assert_close(loss, ref.detach().numpy(), rtol=2e-6, atol=1e-6, what="loss")
    assert_close(grad, x_ref.grad.numpy(), rtol=2e-6, atol=1e-7, what="grad")


def test_strided_operands_are_read_in_place():
    """A transposed logits tensor, an expanded target and a strided cotangent."""
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(9, 40, generator=gen)
    x = base.t()  # (40, 9), not contiguous
    y = (torch.rand(1, 9, generator=gen) > 0.5).float().expand(40, 9)
    cotangent = torch.randn(9, 40, generator=gen).t()
    options = {"weight": torch.rand(40, 1, generator=gen), "pos_weight": torch.rand(9) * 3}
    loss, grad = run_kernel("binary_cross_entropy", x, y, reduction="none",
                            cotangent=cotangent, **options)  # fmt: skip
    ref_loss, ref_grad = oracles.np_binary_cross_entropy(
        x.double().numpy(), y.double().numpy(), reduction="none",
        weight=options["weight"].double().numpy(),
        pos_weight=options["pos_weight"].double().numpy(),
    )  # fmt: skip
    assert_eps(loss, ref_loss, "float32", ULP_BOUND)
    assert_eps(grad, ref_grad * cotangent.double().numpy(), "float32", 2 * ULP_BOUND)
    # the cotangent of a sum of the per-element losses: an expanded 0-d tensor (strides 0)
    logits = x.detach().clone().requires_grad_()
    _, config, operands = prepare_binary_cross_entropy(logits, y, reduction="none", **options)
    sigmoid_loss(
        config, logits, operands.target, operands.weight, operands.pos_weight
    ).sum().backward()
    assert_eps(logits.grad.double().numpy(), ref_grad, "float32", ULP_BOUND)


# ------------------------------------------------------- the focal family, random shapes


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("sigmoid_focal_loss", {"gamma": 2.0, "alpha": 0.25}),
        ("sigmoid_focal_loss", {"gamma": 0.5, "alpha": None}),
        ("sigmoid_focal_loss", {"gamma": 0.0, "alpha": 0.25}),
        ("asymmetric_loss", {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05}),
        ("asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.0}),
    ],
)
def test_focal_family_against_numpy(name, options, reduction):
    """16 × 1000 (16 programs, a ragged last block) against the naive float64 oracles."""
    rng = np.random.default_rng(7)
    x = rng.normal(scale=3.0, size=(16, 1000)).astype(np.float32).astype(np.float64)
    y = (rng.random((16, 1000)) < 0.2).astype(np.float64)
    loss, grad = run_kernel(name, x, y, reduction=reduction, **options)
    ref_loss, ref_grad = oracles.NUMPY[name](x, y, reduction=reduction, **options)
    assert_eps(loss, ref_loss, "float32", 2 * ULP_BOUND if reduction == "none" else 50, "loss")
    assert_eps(grad, ref_grad, "float32", ULP_BOUND, "grad")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_partial_sums_path(reduction):
    """More than SINGLE_PROGRAM_LIMIT elements: partial sums per program, then their sum;
    3 × 12345 with a weight per row (a split last block)."""
    from multiloss.torch._triton.sigmoid import SINGLE_PROGRAM_LIMIT

    gen = torch.Generator().manual_seed(5)
    shape = (3, 12345)
    assert math.prod(shape) > SINGLE_PROGRAM_LIMIT
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    y = (torch.rand(shape, generator=gen) > 0.7).double()
    weight = torch.rand(3, 1, generator=gen)
    loss, grad = run_kernel("binary_cross_entropy", x, y, reduction=reduction, weight=weight)
    x_ref = x.clone().requires_grad_()
    ref = F.binary_cross_entropy_with_logits(x_ref, y, weight=weight.double(),
                                             reduction=reduction)  # fmt: skip
    ref.backward()
    assert_close(loss, ref.detach().numpy(), rtol=1e-6, atol=1e-7, what="loss")
    assert_close(grad, x_ref.grad.numpy(), rtol=2e-6, atol=1e-9, what="grad")


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("size", [500, 40000])
def test_keep_dtype(size, reduction):
    """keep_dtype: the loss in the logits' 16-bit dtype, the float32 result rounded once."""
    gen = torch.Generator().manual_seed(6)
    x = (torch.randn(size, generator=gen) * 3).half().to(DEVICE)
    y = torch.rand(size, generator=gen).to(DEVICE)
    _, config, operands = prepare_sigmoid_focal_loss(x, y, reduction=reduction,
                                                     convert_logits=False)  # fmt: skip
    wide = sigmoid_loss(config, x, operands.target, None, None)
    x16 = x.clone().requires_grad_()
    narrow = sigmoid_loss(config, x16, operands.target, None, None, keep_dtype=True)
    assert wide.dtype == torch.float32 and narrow.dtype == torch.float16
    assert torch.equal(narrow, wide.half())
    narrow.backward(torch.ones_like(narrow))
    assert x16.grad.dtype == torch.float16 and torch.isfinite(x16.grad).all()


# ------------------------------------------------------------------------- edges


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", list(PREPARE))
def test_empty_input(name, reduction):
    x = torch.zeros(0, 5)
    loss, grad = run_kernel(name, x, torch.zeros(0, 5), reduction=reduction)
    assert grad.shape == (0, 5)
    if reduction == "none":
        assert loss.shape == (0, 5)
    else:
        assert loss.shape == () and loss == 0.0


SATURATED = [30.0, -30.0, 1e4, -1e4, 88.0, -88.0, 104.0, -104.0]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("name", "options"), CONFIGS[::2])
def test_saturated_logits(name, options, dtype):
    """±30 and ±1e4 (±inf in float16): finite where the loss is, as the oracle says."""
    x = np.array(SATURATED * 3)
    y = np.repeat([1.0, 0.0, 0.3], len(SATURATED))
    x = x.astype(dtype).astype(np.float64)
    loss, grad = run_kernel(name, x, y, dtype=dtype, reduction="none", **options)
    finite = np.isfinite(x)
    oracle = oracles.MPMATH_EXT.get(name, oracles.MPMATH[name])
    ref_loss, ref_grad = oracle(x[finite], y[finite], reduction="none", **options)
    assert_eps(loss[finite], ref_loss, "float32", ULP_BOUND, "loss")
    assert_eps(grad[finite], ref_grad, dtype, ULP_BOUND, "grad")
    # ±inf (float16's ±1e4): a zero gradient, a loss of 0 on the right side, inf on the other
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", list(PREPARE))
def test_infinite_and_nan_logits(name):
    inf = math.inf
    x = torch.tensor([inf, -inf, inf, -inf, math.nan, 1.0])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    loss, grad = run_kernel(name, x, y, reduction="none")
    assert loss[0] == 0 and loss[1] == 0 and grad[0] == 0 and grad[1] == 0
    if name != "asymmetric_loss":  # ASL's clip: σ ≤ clip gives no loss at -inf, y = 0
        assert loss[2] == inf
    assert loss[3] == inf
    assert np.isnan(loss[4]) and np.isnan(grad[4])
    assert np.isfinite(loss[5]) and np.isfinite(grad[5])


def test_gamma_below_one_is_finite_at_saturation():
    """γ < 1: the gradient stays finite where 1 - p_t = 0 (pow(m, γ - 1) forms give NaN)."""
    x = torch.tensor([200.0, -200.0, 1e4, -1e4])
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    for gamma in (0.25, 0.5):
        loss, grad = run_kernel("sigmoid_focal_loss", x, y, reduction="none", gamma=gamma)
        assert np.all(loss == 0) and np.all(grad == 0)


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("name", "options"), FEW_CASES)
def test_second_order(name, options, reduction):
    """create_graph=True: the gradient is differentiable (by the eager plans' closed
    forms); H·t against the mpmath oracle's."""
    x64 = np.array([-3.0, -0.4, 0.0, 0.7, 2.5, 9.0])
    y64 = np.array([1.0, 0.0, 0.3, 1.0, 0.0, 1.0])
    t64 = np.array([0.5, -1.0, 2.0, 0.25, 1.5, -0.75])
    x = torch.tensor(x64, dtype=torch.float64, device=DEVICE, requires_grad=True)
    y = torch.tensor(y64, dtype=torch.float64, device=DEVICE)
    _, config, operands = PREPARE[name](x, y, reduction=reduction, **options)
    weight = getattr(operands, "weight", None)
    pos_weight = getattr(operands, "pos_weight", None)
    loss = sigmoid_loss(config, x, operands.target, weight, pos_weight)
    (grad,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    (hvp,) = torch.autograd.grad((grad * torch.tensor(t64, device=DEVICE)).sum(), x)
    oracle = oracles.MPMATH_EXT.get(name, oracles.MPMATH[name])
    _, ref_hvp = oracle(x64, y64, reduction=reduction, tangent=t64, **options)
    assert_eps(hvp.cpu().numpy(), ref_hvp, "float64", 8.0, "H·t")


def test_only_the_logits_are_differentiated():
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.rand(3, 4, requires_grad=True)
    _, config, _ = prepare_binary_cross_entropy(x, y)
    with pytest.raises(ValueError, match="target requires grad"):
        sigmoid_loss(config, x, y, None, None)
    weight = torch.rand(4, requires_grad=True)
    with pytest.raises(ValueError, match="weight requires grad"):
        sigmoid_loss(config, x, y.detach(), weight, None)


def test_no_write_into_the_callers_tensors():
    """Liger #272: the logits feed another op too; its gradient stays right."""
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(8, 30, generator=gen).to(DEVICE).requires_grad_()
    y = (torch.rand(8, 30, generator=gen) > 0.5).float().to(DEVICE)
    weight = torch.rand(30, generator=gen).to(DEVICE)
    saved = [t.detach().clone() for t in (z, y, weight)]
    logits = torch.softmax(z, dim=1) * 10
    _, config, operands = prepare_sigmoid_focal_loss(logits, y, gamma=2.0)
    loss = sigmoid_loss(config, logits, operands.target, None, None) + (logits**2).sum()
    loss.backward()
    for before, after in zip(saved, (z, y, weight), strict=True):
        assert torch.equal(before, after.detach())
    z_ref = z.detach().clone().requires_grad_()
    logits_ref = torch.softmax(z_ref, dim=1) * 10
    p = torch.sigmoid(logits_ref)
    ce = F.binary_cross_entropy_with_logits(logits_ref, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    ref = (0.25 * y + 0.75 * (1 - y)) * (1 - p_t) ** 2 * ce
    (ref.mean() + (logits_ref**2).sum()).backward()
    grads = z.grad.cpu().numpy(), z_ref.grad.cpu().numpy()
    assert_close(*grads, rtol=1e-5, atol=1e-7, what="upstream grad")


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


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("name", "options"), FEW_CASES)
def test_through_the_engine(name, options, reduction):
    """`multiloss.torch.<loss>` under engine("triton") runs the kernels and meets the
    mpmath oracle's bound; float16 logits give a float16 loss."""
    import multiloss.torch as mt

    if not hasattr(mt, "engine"):
        pytest.skip("no engine choice in this build")
    logits, target = _inputs(name, "float32")
    ref_loss, ref_grad = _reference(name, _items(options), "float32", reduction)
    x = torch.tensor(logits, dtype=torch.float32, device=DEVICE, requires_grad=True)
    y = torch.tensor(target, dtype=torch.float32, device=DEVICE)
    loss_fn = getattr(mt, name)
    results = {}

    def step():
        with mt.engine("triton"):
            loss = loss_fn(x, y, reduction=reduction, **options)
        loss.backward(torch.ones_like(loss))
        results["loss"] = loss

    assert "multiloss::sigmoid_loss" in _ops_run(step)
    loss = results["loss"].detach().double().cpu().numpy()
    assert_eps(loss, ref_loss, "float32", ULP_BOUND if reduction == "none" else 2 * ULP_BOUND)
    assert_eps(x.grad.double().cpu().numpy(), ref_grad, "float32", ULP_BOUND)
    with mt.engine("triton"):
        half = loss_fn(x.detach().half(), y, reduction=reduction, **options)
    assert half.dtype == torch.float16


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("varifocal_loss", {"alpha": 0.75, "gamma": 2.0, "label_smoothing": 0.1, "weighted": True}),
        ("quality_focal_loss", {"beta": 1.5, "weighted": True}),
        ("asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "weighted": True}),
    ],
)
def test_detection_through_the_engine(name, options):
    """The varifocal and quality focal losses and the weighted Asymmetric Loss run the
    kernels under engine("triton") (one forward op, one backward op) and meet the oracle."""
    import multiloss.torch as mt

    logits, target = _detection_problem()
    weight, pos_weight = _detection_weights()
    own = {k: v for k, v in options.items() if k != "weighted"}
    x = torch.tensor(logits, dtype=torch.float32, device=DEVICE, requires_grad=True)
    y = torch.tensor(target, dtype=torch.float32, device=DEVICE)
    w, pw = torch.tensor(weight).float(), torch.tensor(pos_weight).float()
    results = {}

    def step():
        with mt.engine("triton"):
            loss = getattr(mt, name)(x, y, weight=w, pos_weight=pw, reduction="sum", **own)
        loss.backward()
        results["loss"] = loss

    ops = _ops_run(step)
    assert ops.count("multiloss::sigmoid_loss") == 1, ops
    assert ops.count("multiloss::sigmoid_loss_backward") == 1, ops
    ref_loss, ref_grad = _detection_reference(name, _items(options), "float32")
    loss = results["loss"].detach().double().cpu().numpy()
    assert_eps(loss, math.fsum(ref_loss.ravel()), "float32", 2 * ULP_BOUND, "loss")
    assert_eps(x.grad.double().cpu().numpy(), ref_grad, "float32", ULP_BOUND, "grad")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("sigmoid_focal_loss", {"gamma": torch.tensor(2.0), "alpha": 0.25}),
        ("asymmetric_loss", {"gamma_neg": torch.tensor(4.0), "weight": torch.rand(18)}),
        ("asymmetric_loss", {"clip": torch.tensor(0.05), "pos_weight": torch.rand(4, 1) + 1}),
    ],
)
def test_array_hyperparameters_keep_the_eager_plans(name, options):
    """A hyperparameter given as a tensor: the kernels specialise on the numbers, so the
    call keeps the eager plans (the same value as with the number). The varifocal and
    quality focal losses take numbers only (a tensor is refused by their checks)."""
    import multiloss.torch as mt

    logits, target = _detection_problem()
    x = torch.tensor(logits, dtype=torch.float32, device=DEVICE)
    y = torch.tensor(target, dtype=torch.float32, device=DEVICE)
    results = {}

    def step():
        with mt.engine("triton"):
            results["loss"] = getattr(mt, name)(x, y, **options)

    assert "multiloss::sigmoid_loss" not in _ops_run(step)
    numbers = {k: v.item() if getattr(v, "ndim", 1) == 0 else v for k, v in options.items()}
    with mt.engine("triton"):
        expected = getattr(mt, name)(x, y, **numbers)
    torch.testing.assert_close(results["loss"], expected, rtol=2e-6, atol=1e-7)


# --------------------------------------------------------------- operators and cost


def test_custom_operators_opcheck():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 7, generator=gen).to(DEVICE).requires_grad_()
    y = torch.rand(5, 7, generator=gen).to(DEVICE)
    w, pw = torch.rand(7, generator=gen).to(DEVICE), torch.rand(5, 1, generator=gen).to(DEVICE)
    forward = torch.ops.multiloss.sigmoid_loss.default
    backward = torch.ops.multiloss.sigmoid_loss_backward.default
    for reduction in ("none", "mean"):
        args = (x, y, w, pw, 0, 2.0, 0.25, 0.0, 0.0, 0.0, reduction)
        torch.library.opcheck(forward, (*args, False))
        cotangent = torch.randn(5, 7) if reduction == "none" else torch.tensor(0.5)
        cotangent = cotangent.to(DEVICE)
        torch.library.opcheck(backward, (cotangent, x.detach(), *args[1:]))
    args = (x.half(), y, None, None, 1, 1.0, None, 4.0, 0.05, 0.0, "sum", True)
    torch.library.opcheck(forward, args)
    # the weighted asymmetric, varifocal (smoothed) and quality focal losses
    q = torch.where(y > 0.5, y, 0.0)
    for kind, gamma, alpha, smoothing in ((1, 1.0, None, 0.0), (2, 0.5, 0.75, 0.1),
                                          (3, 1.5, None, 0.0)):  # fmt: skip
        args = (x, q, w, pw, kind, gamma, alpha, 4.0 if kind == 1 else 0.0, 0.0, smoothing, "mean")
        torch.library.opcheck(forward, (*args, False))
        torch.library.opcheck(backward, (torch.tensor(0.5).to(DEVICE), x.detach(), *args[1:]))


@pytest.mark.parametrize("shape", [(256, 80), (8192, 1000)], ids=["256x80", "8192x1000"])
@pytest.mark.parametrize("name", list(PREPARE))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_three_kernels_on_meta(name, reduction, shape):
    """Forward + backward on meta tensors, counted as benchmarks/cost_model.py counts:
    3 kernels (the forward op, the ones_like seeding backward, the backward op; above
    SINGLE_PROGRAM_LIMIT elements the forward op launches two: 4 in truth), the
    logits-sized data read twice each way at most and the gradient written once."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from cost_model import count_torch

    x = torch.empty(shape, device="meta", requires_grad=True)
    y = torch.empty(shape, device="meta")
    options = {}
    if name != "sigmoid_focal_loss":
        options = {"weight": torch.empty(shape[1], device="meta"),
                   "pos_weight": torch.empty(shape[1], device="meta")}  # fmt: skip

    def prepared():
        return PREPARE[name](x, y, reduction=reduction, check_values=False,
                             convert_logits=False, **options)  # fmt: skip

    if name in DETECTION:
        # their target is checked to lie in [0, 1]; meta has no values to read, so the
        # preparation folds the traced check (NaN outside) into a logits-sized weight: the
        # kernels' own cost is counted with the given weights instead
        _, config, operands = prepared()
        prepared = lambda: (None, config, operands._replace(  # noqa: E731
            weight=options["weight"], pos_weight=options["pos_weight"]))  # fmt: skip

    def step():
        _, config, operands = prepared()
        loss = sigmoid_loss(config, x, operands.target, getattr(operands, "weight", None),
                            getattr(operands, "pos_weight", None))  # fmt: skip
        (loss.sum() if reduction == "none" else loss).backward()

    cost = count_torch(step, full_numel=x.numel())
    extra = 1 if reduction == "none" else 0  # the test's own .sum() of the losses
    assert cost.kernels == 3 + extra, cost.by_kernel
    assert cost.by_kernel["multiloss::sigmoid_loss"] == 1
    assert cost.by_kernel["multiloss::sigmoid_loss_backward"] == 1
    # mean: logits + target forward, logits + target + gradient backward
    assert cost.passes <= (5 if reduction == "mean" else 7)


def test_compiles_fullgraph():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(16, 9, generator=gen).to(DEVICE)
    y = (torch.rand(16, 9, generator=gen) > 0.5).float().to(DEVICE)
    _, config, _ = prepare_asymmetric_loss(x, y)

    def step(logits, target):
        return sigmoid_loss(config, logits, target, None, None)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager, traced = step(x1, y), compiled(x2, y)
    eager.backward()
    traced.backward()
    assert torch.equal(eager, traced) and torch.equal(x1.grad, x2.grad)


_COMPILE_FOR_GPU = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from multiloss.torch._triton import _sigmoid_kernels as device, sigmoid as kernels

def compile_for_gpu(fn, flags, types):
    signature, constexprs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in flags:
            signature[name] = "constexpr"
            constexprs[(index,)] = flags[name]
        else:
            signature[name] = types.get(name, "i64" if flags["INT64"] else "i32")
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    assert triton.compile(source, target=GPUTarget("cuda", 80, 32)).asm["cubin"]

modes = {"X_MODE": 2, "Y_MODE": 2, "W_MODE": 2, "PW_MODE": 2, "COMPUTE": tl.float32, "STEPS": 4,
         "BLOCK_SIZE": kernels.BLOCK}
focal = kernels._flags((0, 0.5, 0.25, 0.0, 0.0, 0.0))
types = {"X": "*fp16", "Y": "*fp32", "W": "*fp32", "PW": "*fp32", "OUT": "*fp32",
         "scale": "fp32"}
compile_for_gpu(device.forward_kernel, {**focal, **modes, "REDUCE": 1, "INT64": True}, types)
compile_for_gpu(device.forward_kernel, {**focal, **modes, "REDUCE": 2, "INT64": False}, types)
summing = {"COMPUTE": tl.float32, "STEPS": 8, "BLOCK_SIZE": 1024, "INT64": False}
compile_for_gpu(device.sum_kernel, summing, {"PARTIALS": "*fp32", "OUT": "*bf16"})
asymmetric = kernels._flags((1, 2.5, None, 0.5, 0.05, 0.0))
types = {"COT": "*fp32", "X": "*bf16", "Y": "*fp32", "W": "*fp32", "PW": "*fp32",
         "GRAD_OUT": "*bf16", "scale": "fp32"}
flags = {**asymmetric, **modes, "COT_MODE": 2, "REDUCE": False, "INT64": False}
compile_for_gpu(device.backward_kernel, flags, types)
for params in ((2, 0.5, 0.75, 0.0, 0.0, 0.1), (3, 1.5, None, 0.0, 0.0, 0.0),
               (3, 0.5, None, 0.0, 0.0, 0.0), (3, 2.0, None, 0.0, 0.0, 0.0)):
    flags = {**kernels._flags(params), **modes, "COT_MODE": 2, "REDUCE": False, "INT64": False}
    compile_for_gpu(device.backward_kernel, flags, types)
    forward = {**kernels._flags(params), **modes, "REDUCE": 2, "INT64": False}
    compile_for_gpu(device.forward_kernel, forward, {**types, "OUT": "*fp32"})
print("compiled")
"""


@pytest.mark.skipif(
    "nvidia" not in getattr(triton.backends, "backends", {}), reason="no NVIDIA backend"
)
def test_kernels_compile_for_a_gpu():
    """The interpreter accepts constructs that the compiler refuses: Triton's own pipeline
    (frontend, LLVM, ptxas) compiles every kernel for an sm_80 GPU, every option at once,
    in 16-bit, without a device (in a process without the interpreter)."""
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_GPU], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]


# ------------------------------------------------------------------------- _math


@triton.jit
def _apply(X, O1, O2, n, WHICH: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    x = tl.load(X + i, mask=mask, other=0.0)
    if WHICH == 0:
        a = _math.log1p(x)
        b = a
    elif WHICH == 1:
        a = _math.expm1(x)
        b = a
    elif WHICH == 2:
        a = _math.tanh(x)
        b = a
    elif WHICH == 3:
        a, b = _math.softplus_pair(x)
    elif WHICH == 4:
        a, b = _math.sigmoid_pair(x)
    elif WHICH == 5:
        a, b, _, _ = _math.sigmoid_softplus(x)
    elif WHICH == 6:
        _, _, a, b = _math.sigmoid_softplus(x)
    else:
        a = _math.exp(x)
        b = a
    tl.store(O1 + i, a, mask=mask)
    tl.store(O2 + i, b, mask=mask)


def _device_math(x: torch.Tensor, which: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.to(DEVICE)
    o1, o2 = torch.empty_like(x), torch.empty_like(x)
    _apply[(triton.cdiv(x.numel(), 1024),)](x, o1, o2, x.numel(), WHICH=which, BLOCK=1024)
    return o1.cpu(), o2.cpu()


def _softplus(x):
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))


MATH = {
    "log1p": (0, lambda x: (torch.log1p(x),)),
    "expm1": (1, lambda x: (torch.expm1(x),)),
    "tanh": (2, lambda x: (torch.tanh(x),)),
    "softplus_pair": (3, lambda x: (_softplus(x), _softplus(-x))),
    "sigmoid_pair": (4, lambda x: (torch.sigmoid(x), torch.sigmoid(-x))),
    "sigmoid_softplus[softplus]": (5, lambda x: (_softplus(x), _softplus(-x))),
    "sigmoid_softplus[sigmoid]": (6, lambda x: (torch.sigmoid(x), torch.sigmoid(-x))),
    "exp": (7, lambda x: (torch.exp(x),)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("function", list(MATH))
def test_math_accuracy(function, dtype):
    """Relative error ≤ 4 eps against float64 (longdouble-free: float64 references of a
    float32 input are exact to 1e-16) over |x| from the smallest normals to the largest,
    and densely over [-3, 3]; float64 against torch's float64 (≤ 4 eps of float64)."""
    which, reference = MATH[function]
    info = torch.finfo(dtype)
    top = math.log10(info.max) - 1
    magnitudes = torch.logspace(math.log10(info.tiny), top, 3000, dtype=torch.float64)
    xs = torch.cat([-magnitudes, magnitudes, torch.linspace(-3, 3, 3001, dtype=torch.float64)])
    if function == "log1p":
        xs = xs[xs >= -1]
    x = xs.to(dtype)
    got = _device_math(x, which)
    for value, ref in zip(got, reference(x.double()), strict=False):
        value = value.double()
        tiny = ref.abs() < info.tiny
        error = ((value - ref).abs() / ref.abs()).where(~tiny, (value - ref).abs() / info.tiny)
        finite = torch.isfinite(ref) & (ref.abs() < info.max)
        assert torch.equal(torch.isfinite(value), torch.isfinite(ref) & (ref.abs() < info.max))
        assert (error[finite].max() / info.eps).item() <= 4.0, function


def test_math_special_values():
    inf, nan = math.inf, math.nan
    x = torch.tensor([inf, -inf, nan, -1.0, 0.0, -0.0, -2.0])
    log1p = _device_math(x, 0)[0]
    assert log1p[0] == inf and log1p[3] == -inf and log1p[4] == 0
    assert torch.isnan(log1p[2]) and torch.isnan(log1p[6])
    expm1 = _device_math(x, 1)[0]
    assert expm1[0] == inf and expm1[1] == -1 and torch.isnan(expm1[2]) and expm1[4] == 0
    exp = _device_math(x, 7)[0]
    assert exp[0] == inf and exp[1] == 0 and torch.isnan(exp[2]) and exp[4] == 1
    edges = torch.tensor([89.0, 88.7, -87.0, -100.0, -104.0, -110.0])  # overflow, subnormals
    reference = torch.exp(edges.double()).float()
    assert_close(_device_math(edges, 7)[0], reference, rtol=4 * 2.0**-23, atol=3e-45)
    tanh = _device_math(x, 2)[0]
    assert tanh[0] == 1 and tanh[1] == -1 and torch.isnan(tanh[2]) and tanh[4] == 0
    for which in (3, 5):
        softplus_pos, softplus_neg = _device_math(x, which)
        assert softplus_pos[0] == inf and softplus_neg[0] == 0
        assert softplus_pos[1] == 0 and softplus_neg[1] == inf
        assert torch.isnan(softplus_pos[2]) and torch.isnan(softplus_neg[2])
    for which in (4, 6):
        sigma_pos, sigma_neg = _device_math(x, which)
        assert sigma_pos[0] == 1 and sigma_neg[0] == 0
        assert sigma_pos[1] == 0 and sigma_neg[1] == 1
        assert torch.isnan(sigma_pos[2]) and torch.isnan(sigma_neg[2])
        assert sigma_pos[4] == 0.5 and sigma_neg[4] == 0.5
