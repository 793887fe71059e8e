"""multiloss.torch: values and gradients against independent oracles.

* every option of ``torch.nn.functional.cross_entropy`` and
  ``binary_cross_entropy_with_logits``, and their combinations (PyTorch is the oracle),
  values and gradients, float32 and float64;
* softmax focal loss against the textbook formula written naively here in float64
  (log_softmax → gather → -α_t (1-p_t)^γ log p_t), values and its autograd gradients;
* sigmoid focal loss against torchvision's formula, written out (torchvision does not
  install beside this torch);
* 16-bit inputs, autocast, saturated logits, the mean over nothing, top-level dispatch,
  and the bad-input catalogue (``tests/catalogue.py``; docs/semantics.md, "Bad input")
  against :mod:`multiloss.numpy`.
"""

from __future__ import annotations

import itertools
import math

import catalogue
import numpy as np
import pytest
from backends import assert_eps, to_numpy
from losses import ALL, has_class_axis
from peers import torchvision_sigmoid_focal_loss

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss  # noqa: E402
import multiloss.numpy as mn  # noqa: E402
import multiloss.torch as mt  # noqa: E402

SHAPES = {"NC": (6, 5), "NCd": (3, 4, 5), "NCdd": (2, 3, 3, 2), "C": (5,)}
REDUCTIONS = ["mean", "sum", "none"]


# ---------------------------------------------------------------------------- helpers


def assert_close(actual, expected, dtype, factor=16.0):
    """|a - e| ≤ factor · eps(dtype) · (1 + |e|), elementwise, every element finite
    (:func:`backends.assert_eps`; `dtype` a torch dtype)."""
    assert_eps(
        to_numpy(actual),
        to_numpy(expected),
        str(dtype).removeprefix("torch."),
        factor,
        equal_nan=False,
        equal_inf=False,
    )


def value_and_grad(function, logits, cotangent_seed=1):
    """The loss and the vector-Jacobian product with a random cotangent."""
    z = logits.detach().clone().requires_grad_(True)
    loss = function(z)
    generator = torch.Generator().manual_seed(cotangent_seed)
    cotangent = torch.rand(loss.shape, generator=generator, dtype=torch.float64) + 0.5
    cotangent = cotangent.to(loss.dtype)
    (grad,) = torch.autograd.grad(loss, z, cotangent)
    return loss.detach(), grad


def class_axis(shape):
    return 0 if len(shape) == 1 else 1


def make_logits(shape, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(shape, generator=generator, dtype=dtype)


def make_target(shape, seed, *, soft=False, ignore=None, dtype=torch.float64):
    """Class indices (about a third equal to `ignore`, never all) or probabilities."""
    generator = torch.Generator().manual_seed(seed + 1)
    axis = class_axis(shape)
    if soft:
        raw = torch.randn(shape, generator=generator, dtype=torch.float64)
        return torch.softmax(raw, dim=axis).to(dtype)
    num_classes = shape[axis]
    index_shape = shape[:axis] + shape[axis + 1 :]
    target = torch.randint(0, num_classes, index_shape, generator=generator)
    if ignore is not None and target.ndim:
        flat = target.reshape(-1)
        flat[:: max(1, flat.numel() // 3)] = ignore
        flat[-1] = (ignore + 1) % num_classes if 0 <= ignore < num_classes else 0
    return target


# ------------------------------------------------- cross-entropy: parity with PyTorch

CE_GRID = [
    (shape, dtype, reduction, weighted, ignore, smoothing, soft)
    for shape, dtype, reduction, weighted, ignore, smoothing, soft in itertools.product(
        SHAPES,
        ["float32", "float64"],
        REDUCTIONS,
        [False, True],
        [None, 1, 255],
        [0.0, 0.1],
        [False, True],
    )
    if not (soft and ignore is not None)
]


@pytest.mark.parametrize(
    ("shape", "dtype", "reduction", "weighted", "ignore", "smoothing", "soft"), CE_GRID
)
def test_cross_entropy_matches_pytorch(shape, dtype, reduction, weighted, ignore, smoothing, soft):
    dtype = getattr(torch, dtype)
    shape = SHAPES[shape]
    seed = len(CE_GRID)
    logits = make_logits(shape, dtype, seed)
    target = make_target(shape, seed, soft=soft, ignore=ignore, dtype=dtype)
    options = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        options["weight"] = torch.linspace(0.2, 2.0, shape[class_axis(shape)], dtype=dtype)
    if ignore is not None:
        options["ignore_index"] = ignore
    ours = value_and_grad(lambda z: mt.cross_entropy(z, target, **options), logits)
    theirs = value_and_grad(lambda z: F.cross_entropy(z, target, **options), logits)
    assert ours[0].dtype == dtype and ours[1].dtype == dtype
    assert_close(ours[0], theirs[0], dtype)
    assert_close(ours[1], theirs[1], dtype)


def test_cross_entropy_module_matches_pytorch_module():
    logits = make_logits((4, 6, 3, 3), torch.float64, 0)
    target = make_target((4, 6, 3, 3), 0, ignore=255)
    weight = torch.linspace(0.5, 1.5, 6, dtype=torch.float64)
    options = {"ignore_index": 255, "label_smoothing": 0.05}
    ours_module = mt.CrossEntropyLoss(weight, **options)
    theirs_module = torch.nn.CrossEntropyLoss(weight, **options)
    ours = value_and_grad(lambda z: ours_module(z, target), logits)
    theirs = value_and_grad(lambda z: theirs_module(z, target), logits)
    assert_close(ours[0], theirs[0], torch.float64)
    assert_close(ours[1], theirs[1], torch.float64)


@pytest.mark.parametrize("empty", ["all ignored", "empty batch"])
def test_mean_over_nothing_is_zero_with_zero_gradient(empty):
    """The one documented difference: PyTorch gives NaN (pytorch#70348)."""
    if empty == "all ignored":
        logits, target = torch.randn(4, 3), torch.full((4,), -100)
    else:
        logits, target = torch.randn(0, 3), torch.zeros(0, dtype=torch.long)
    for function in (mt.cross_entropy, mt.focal_loss):
        loss, grad = value_and_grad(lambda z, f=function: f(z, target), logits)
        assert loss.item() == 0.0
        assert bool(torch.all(grad == 0))
    weighted = value_and_grad(lambda z: mt.cross_entropy(z, target, weight=[1.0, 2, 3]), logits)
    assert weighted[0].item() == 0.0 and bool(torch.all(weighted[1] == 0))
    assert math.isnan(F.cross_entropy(logits, target).item())


# ------------------------------------------------- binary cross-entropy: parity


BCE_WEIGHTS = {
    "none": None,
    "last axis": lambda shape: torch.linspace(0.5, 2.0, shape[-1]),
    "full": lambda shape: torch.rand(shape, generator=torch.Generator().manual_seed(3)),
    "per row": lambda shape: torch.linspace(0.5, 2.0, shape[0]).reshape(
        (shape[0],) + (1,) * (len(shape) - 1)
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", list(BCE_WEIGHTS))
@pytest.mark.parametrize("pos_weight", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
def test_binary_cross_entropy_matches_pytorch(dtype, reduction, weight, pos_weight, shape):
    dtype = getattr(torch, dtype)
    logits = make_logits(shape, dtype, 5)
    generator = torch.Generator().manual_seed(6)
    target = torch.rand(shape, generator=generator, dtype=dtype)
    target[..., 0] = (target[..., 0] > 0.5).to(dtype)  # hard 0/1 labels too
    options = {"reduction": reduction}
    if BCE_WEIGHTS[weight] is not None:
        options["weight"] = BCE_WEIGHTS[weight](shape).to(dtype)
    if pos_weight:
        options["pos_weight"] = torch.linspace(0.5, 3.0, shape[-1], dtype=dtype)
    ours = value_and_grad(lambda z: mt.binary_cross_entropy(z, target, **options), logits)
    theirs = value_and_grad(
        lambda z: F.binary_cross_entropy_with_logits(z, target, **options), logits
    )
    assert_close(ours[0], theirs[0], dtype)
    assert_close(ours[1], theirs[1], dtype)
    module = mt.BCEWithLogitsLoss(
        options.get("weight"), reduction=reduction, pos_weight=options.get("pos_weight")
    )
    torch_module = torch.nn.BCEWithLogitsLoss(
        options.get("weight"), reduction=reduction, pos_weight=options.get("pos_weight")
    )
    assert_close(module(logits, target), torch_module(logits, target), dtype)


# ------------------------------------------------- sigmoid focal: torchvision's formula


@pytest.mark.parametrize("alpha", [0.25, None, 0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_focal_loss_matches_torchvision_formula(alpha, gamma, reduction):
    logits = make_logits((5, 4, 3), torch.float64, 7)
    target = (torch.rand((5, 4, 3), generator=torch.Generator().manual_seed(8)) > 0.6).double()
    target[0, 0] = 0.3  # a soft label too
    ours = value_and_grad(
        lambda z: mt.sigmoid_focal_loss(z, target, alpha=alpha, gamma=gamma, reduction=reduction),
        logits,
    )
    theirs = value_and_grad(
        lambda z: torchvision_sigmoid_focal_loss(
            z, target, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=reduction
        ),
        logits,
    )
    assert_close(ours[0], theirs[0], torch.float64, factor=64)
    assert_close(ours[1], theirs[1], torch.float64, factor=64)
    module = mt.SigmoidFocalLoss(alpha=alpha, gamma=gamma, reduction=reduction)
    assert_close(module(logits, target), theirs[0], torch.float64, factor=64)


# ------------------------------------------------- softmax focal: the textbook formula


def textbook_focal(
    logits, target, *, gamma, alpha, ignore_index=-100, label_smoothing=0.0, reduction="mean"
):
    """-Σ_k q_k α_k (1 - p_k)^γ log p_k in float64, naively; hard targets by gather."""
    axis = class_axis(tuple(logits.shape))
    num_classes = logits.shape[axis]
    log_p = torch.log_softmax(logits.double(), dim=axis)
    if alpha is None:
        alpha = torch.ones(num_classes, dtype=torch.float64)
    elif isinstance(alpha, float):
        alpha = torch.tensor([1 - alpha] + [alpha] * (num_classes - 1), dtype=torch.float64)
    else:
        alpha = torch.as_tensor(alpha, dtype=torch.float64)
    broadcast = [1] * logits.ndim
    broadcast[axis] = num_classes
    alpha = alpha.reshape(broadcast)
    if target.is_floating_point() or label_smoothing:
        if target.is_floating_point():
            q, counted = target.double(), torch.ones(log_p.sum(axis).shape, dtype=torch.bool)
        else:
            counted = target != ignore_index
            safe = torch.where(counted, target, 0)
            q = F.one_hot(safe, num_classes).movedim(-1, axis).double()
        q = q * (1 - label_smoothing) + label_smoothing / num_classes
        terms = -(q * alpha * (1 - log_p.exp()) ** gamma * log_p).sum(axis)
    else:
        counted = target != ignore_index
        safe = torch.where(counted, target, 0).unsqueeze(axis)
        log_pt = log_p.gather(axis, safe)
        alpha_t = alpha.expand_as(log_p).gather(axis, safe)
        terms = (-alpha_t * (1 - log_pt.exp()) ** gamma * log_pt).squeeze(axis)
    terms = torch.where(counted, terms, torch.zeros_like(terms))
    if reduction == "none":
        return terms
    if reduction == "sum":
        return terms.sum()
    return terms.sum() / counted.sum()


FOCAL_VARIANTS = {
    "plain": {"shape": (6, 4)},
    "ignore, K-dim": {"shape": (2, 4, 3, 2), "ignore": 255},
    "ignore a class": {"shape": (6, 4), "ignore": 2},
    "smoothing": {"shape": (6, 4), "label_smoothing": 0.1},
    "smoothing, ignore": {"shape": (3, 4, 3), "label_smoothing": 0.2, "ignore": 255},
    "soft target": {"shape": (6, 4), "soft": True},
    "unbatched": {"shape": (4,)},
}
ALPHAS = {"none": None, "scalar": 0.25, "per class": [0.5, 1.0, 2.0, 0.25]}


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", list(ALPHAS))
@pytest.mark.parametrize("variant", list(FOCAL_VARIANTS))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_loss_matches_textbook_formula(gamma, alpha, variant, reduction):
    spec = FOCAL_VARIANTS[variant]
    shape, ignore = spec["shape"], spec.get("ignore")
    logits = make_logits(shape, torch.float64, 11)
    target = make_target(shape, 11, soft=spec.get("soft", False), ignore=ignore)
    options = {
        "gamma": gamma,
        "alpha": ALPHAS[alpha],
        "label_smoothing": spec.get("label_smoothing", 0.0),
        "reduction": reduction,
    }
    if ignore is not None:
        options["ignore_index"] = ignore
    ours = value_and_grad(lambda z: mt.focal_loss(z, target, **options), logits)
    theirs = value_and_grad(lambda z: textbook_focal(z, target, **options), logits)
    assert_close(ours[0], theirs[0], torch.float64, factor=64)
    assert_close(ours[1], theirs[1], torch.float64, factor=256)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_focal_loss_module_in_float32_and_float64(dtype):
    dtype = getattr(torch, dtype)
    logits = make_logits((8, 4, 5), dtype, 12)
    target = make_target((8, 4, 5), 12, ignore=255)
    alpha = [0.5, 1.0, 2.0, 0.25]
    module = mt.FocalLoss(gamma=2.0, alpha=alpha, ignore_index=255)
    ours = value_and_grad(lambda z: module(z, target), logits)
    theirs = value_and_grad(
        lambda z: textbook_focal(z, target, gamma=2.0, alpha=alpha, ignore_index=255), logits
    )
    assert ours[0].dtype == dtype
    assert_close(ours[0], theirs[0], dtype, factor=64)
    assert_close(ours[1], theirs[1], dtype, factor=64)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits = make_logits((3, 5, 4), torch.float64, 13)
    target = make_target((3, 5, 4), 13, ignore=255)
    focal = value_and_grad(lambda z: mt.focal_loss(z, target, gamma=0.0, ignore_index=255), logits)
    ce = value_and_grad(lambda z: F.cross_entropy(z, target, ignore_index=255), logits)
    assert_close(focal[0], ce[0], torch.float64)
    assert_close(focal[1], ce[1], torch.float64)


# ------------------------------------------------- numerics at the edges


SATURATED = {
    "±100": ([[100.0, 0.0, -100.0], [-100.0, 100.0, 0.0]], [0, 0]),
    "±1e4": ([[1e4, -1e4, 0.0], [0.0, -1e4, 1e4]], [0, 2]),
}


@pytest.mark.parametrize("case", list(SATURATED))
@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gamma_below_one_has_finite_gradients_at_saturated_logits(case, gamma, dtype):
    dtype = getattr(torch, dtype)
    rows, labels = SATURATED[case]
    logits, target = torch.tensor(rows, dtype=dtype), torch.tensor(labels)
    z = logits.clone().requires_grad_(True)
    loss = mt.focal_loss(z, target, gamma=gamma, alpha=[0.25, 0.5, 1.0])
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    assert bool(torch.isfinite(loss)) and bool(torch.all(torch.isfinite(grad)))
    reference = mn.focal_loss_grad(
        rows, np.array(labels), gamma=gamma, alpha=[0.25, 0.5, 1.0], dtype=np.float64
    )
    assert_close(grad, torch.from_numpy(reference), dtype)
    # The second derivative (closed form) is finite there too.
    (hvp,) = torch.autograd.grad(grad, z, torch.ones_like(grad))
    assert bool(torch.all(torch.isfinite(hvp)))
    # So are the sigmoid losses.
    for function in (mt.sigmoid_focal_loss, mt.binary_cross_entropy):
        kwargs = {"gamma": gamma} if function is mt.sigmoid_focal_loss else {}
        y = torch.zeros_like(logits)
        y[:, 0] = 1
        sig = value_and_grad(lambda x, f=function, k=kwargs, y=y: f(x, y, **k), logits)
        assert bool(torch.all(torch.isfinite(sig[1])))


def test_float16_mean_stays_finite_when_the_sum_passes_65504():
    logits = torch.zeros(40000, 2, dtype=torch.float16)
    logits[:, 1] = 4.0
    target = torch.zeros(40000, dtype=torch.long)  # loss ≈ 4.018 each, sum ≈ 160000
    z = logits.clone().requires_grad_(True)
    loss = mt.cross_entropy(z, target)
    loss.backward()
    assert loss.dtype == torch.float16 and z.grad.dtype == torch.float16
    expected = math.log1p(math.exp(4.0))
    assert abs(loss.item() - expected) <= 4e-3 * expected
    assert bool(torch.all(torch.isfinite(z.grad)))
    assert math.isfinite(mt.focal_loss(logits, target).item())
    assert math.isinf(mt.cross_entropy(logits, target, reduction="sum").item())  # as documented


SIXTEEN_BIT_LOSSES = {
    "cross_entropy": lambda z, t, y: mt.cross_entropy(z, t, label_smoothing=0.1),
    "focal_loss": lambda z, t, y: mt.focal_loss(z, t, gamma=2.0, alpha=0.25),
    "binary_cross_entropy": lambda z, t, y: mt.binary_cross_entropy(z, y, pos_weight=[1.0] * 5),
    "sigmoid_focal_loss": lambda z, t, y: mt.sigmoid_focal_loss(z, y),
    "poly_loss": lambda z, t, y: mt.poly_loss(z, t, gamma=0.5, z_loss=0.01, softcap=5.0),
    "asymmetric_loss": lambda z, t, y: mt.asymmetric_loss(z, y, gamma_pos=1.0),
    "varifocal_loss": lambda z, t, y: mt.varifocal_loss(z, y * 0.75, label_smoothing=0.1),
    "quality_focal_loss": lambda z, t, y: mt.quality_focal_loss(z, y * 0.5, ignore_index=0),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ALL)
def test_16_bit_inputs_are_computed_in_float32(dtype, name):
    dtype = getattr(torch, dtype)
    function = SIXTEEN_BIT_LOSSES[name]
    logits = make_logits((16, 5), torch.float32, 14).to(dtype)
    target = make_target((16, 5), 14)
    y = (make_logits((16, 5), torch.float32, 15) > 0).to(dtype)
    low = value_and_grad(lambda z: function(z, target, y), logits)
    high = value_and_grad(lambda z: function(z, target, y.float()), logits.float())
    assert low[0].dtype == dtype and low[1].dtype == dtype
    # Only the final rounding to 16 bits separates them.
    assert_close(low[0], high[0].to(dtype), dtype, factor=1)
    assert_close(low[1], high[1].to(dtype), dtype, factor=1)


def test_autocast_bfloat16():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 5)
    inputs, target = torch.randn(12, 8), torch.randint(0, 5, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(inputs)
        loss = mt.FocalLoss(gamma=2.0)(logits, target)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.bfloat16
    loss.backward()
    assert layer.weight.grad.dtype == torch.float32
    assert bool(torch.all(torch.isfinite(layer.weight.grad)))
    reference = textbook_focal(logits.detach().float(), target, gamma=2.0, alpha=None)
    assert_close(loss, reference.to(torch.bfloat16), torch.bfloat16, factor=1)


# ------------------------------------------------- dispatch and gradient policy


def test_top_level_functions_route_torch_tensors_to_the_adapter():
    logits = make_logits((3, 4, 5), torch.float64, 16).requires_grad_(True)
    target = make_target((3, 4, 5), 16, ignore=255)
    loss = multiloss.cross_entropy(logits, target, ignore_index=255)  # class axis 1
    assert isinstance(loss, torch.Tensor) and loss.grad_fn is not None
    assert_close(loss, F.cross_entropy(logits, target, ignore_index=255), torch.float64)
    focal = multiloss.focal_loss(logits, target, gamma=1.0, ignore_index=255)
    assert_close(focal, mt.focal_loss(logits, target, gamma=1.0, ignore_index=255), torch.float64)
    y = (logits > 0).double()
    assert_close(
        multiloss.binary_cross_entropy(logits, y),
        F.binary_cross_entropy_with_logits(logits, y),
        torch.float64,
    )
    assert_close(
        multiloss.sigmoid_focal_loss(logits, y),
        torchvision_sigmoid_focal_loss(logits, y, reduction="mean"),
        torch.float64,
        factor=64,
    )
    explicit = multiloss.cross_entropy(logits.movedim(1, -1), target, axis=-1, ignore_index=255)
    assert_close(explicit, loss, torch.float64)


def test_gradient_with_respect_to_target_and_weights_reaches_them():
    # the values: tests/test_operand_gradients.py; here, that each input gets its gradient
    logits = torch.randn(4, 3, requires_grad=True)
    soft = torch.softmax(torch.randn(4, 3), dim=1).requires_grad_(True)
    weight = torch.ones(3, requires_grad=True)
    mt.cross_entropy(logits, soft, weight=weight).backward()
    assert soft.grad is not None and weight.grad is not None and logits.grad is not None
    alpha = torch.ones(3, requires_grad=True)
    mt.focal_loss(logits, torch.tensor([0, 1, 2, 0]), alpha=alpha).backward()
    assert alpha.grad is not None and bool(torch.all(alpha.grad[:3] != 0))
    pos_weight = torch.ones(3, requires_grad=True)
    mt.binary_cross_entropy(logits, soft, pos_weight=pos_weight).backward()
    assert pos_weight.grad is not None and pos_weight.grad.shape == (3,)
    with torch.no_grad():  # nothing to differentiate: accepted
        mt.cross_entropy(logits, soft, weight=weight)


def test_integer_class_indices_of_any_dtype():
    logits = make_logits((6, 5), torch.float64, 17)
    target = make_target((6, 5), 17)
    expected = F.cross_entropy(logits, target)
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        assert_close(mt.cross_entropy(logits, target.to(dtype)), expected, torch.float64)


# ------------------------------------------------- bad input: as multiloss.numpy


def _error_of(call):
    try:
        call()
    except (TypeError, ValueError) as error:
        return type(error), str(error).replace("torch.", "")
    raise AssertionError("no error raised")


@pytest.mark.parametrize("case", catalogue.params())
def test_bad_input_raises_as_in_numpy(case):
    name, logits, target = case.name, case.logits, case.target
    options = dict(case.options)
    if has_class_axis(name):
        options.setdefault("axis", 1)
    numpy_error = _error_of(lambda: getattr(mn, name)(logits, target, **options))
    assert numpy_error[0] is case.error, numpy_error
    torch_options = dict(options)
    if np.asarray(options.get("weight", "")).dtype.kind == "f":
        # one weight given as a tensor, the others as sequences
        torch_options["weight"] = torch.tensor(options["weight"])
    torch_error = _error_of(
        lambda: getattr(mt, name)(
            torch.from_numpy(logits), torch.from_numpy(target), **torch_options
        )
    )
    assert torch_error == numpy_error


def test_arrays_of_two_backends_are_refused():
    logits = torch.randn(4, 3)
    target = np.array([0, 1, 2, 1])
    with pytest.raises(TypeError, match="different backends"):
        mt.cross_entropy(logits, target)
    with pytest.raises(TypeError, match="another backend"):
        mt.cross_entropy(logits, torch.from_numpy(target), weight=np.ones(3))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        mt.focal_loss(np.random.default_rng(0).normal(size=(4, 3)), torch.from_numpy(target))
