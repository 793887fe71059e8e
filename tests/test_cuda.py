"""multiloss.torch on a CUDA device: values and gradients against PyTorch, no host sync,
and a training step captured in a CUDA graph.

Every test is marked ``cuda`` and skipped without a CUDA device; ``benchmarks/device_check.sh``
runs them on a machine with one (``pytest -m cuda``).

* Values: ``cross_entropy`` against ``F.cross_entropy``, ``focal_loss`` against a textbook
  focal loss, ``binary_cross_entropy`` against ``F.binary_cross_entropy_with_logits`` and
  ``sigmoid_focal_loss`` against torchvision's formula (written out below), forward and
  backward, computed on the same device; float32 to ``rtol=1e-5``, bfloat16 logits against
  the float32 reference of the same (upcast) values to bfloat16's precision.
* No host sync: after a warm-up call, forward + backward under
  ``torch.cuda.set_sync_debug_mode("error")``, which raises at a synchronizing operation.
* CUDA graphs: a small model's training step (forward, loss, backward, optimizer step)
  captured with ``torch.cuda.graph`` and replayed on new data moves the parameters as the
  same step run eagerly on a copy of the model.

Dry run without a GPU: ``MULTILOSS_TEST_DEVICE=cpu pytest tests/test_cuda.py`` runs the
value tests on the CPU (the sync and graph tests need CUDA and stay skipped).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402

DEVICE = os.environ.get("MULTILOSS_TEST_DEVICE", "cuda")
"""Where the value tests run: CUDA, or another device for a dry run of their logic."""

HAS_CUDA = torch.cuda.is_available()

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        torch.device(DEVICE).type == "cuda" and not HAS_CUDA, reason="needs a CUDA device"
    ),
]
cuda_only = pytest.mark.skipif(
    not HAS_CUDA or torch.device(DEVICE).type != "cuda",
    reason="needs a CUDA device (sync detection and graph capture are CUDA features)",
)


@pytest.fixture(autouse=True)
def _exact_float32_matmul():
    """No TF32 in the model of the graph tests (eager and replay compared to 1e-5)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = previous


# --------------------------------------------------------------------------- inputs


def _generator(seed: int) -> Any:
    return torch.Generator().manual_seed(seed)


def _randn(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> Any:
    """Standard normal values drawn on the CPU (the same on every device), times scale."""
    return torch.randn(shape, generator=_generator(seed)) * scale


def _class_target(
    logits_shape: tuple[int, ...], ignore_index: int | None, dtype: Any, seed: int
) -> Any:
    """Class indices for `(N, C, d1..dk)` logits, about 10% `ignore_index` where given."""
    generator = _generator(seed)
    shape = logits_shape[:1] + logits_shape[2:]
    target = torch.randint(0, logits_shape[1], shape, generator=generator)
    if ignore_index is not None:
        ignored = torch.rand(shape, generator=generator) < 0.1
        target = torch.where(ignored, torch.tensor(ignore_index), target)
    return target.to(DEVICE, dtype)


def _probabilities(shape: tuple[int, ...], seed: int, axis: int) -> Any:
    return torch.softmax(_randn(shape, seed), dim=axis).to(DEVICE)


def _positive(shape: tuple[int, ...], seed: int) -> Any:
    """Weights in [0.5, 1.5)."""
    return (torch.rand(shape, generator=_generator(seed)) + 0.5).to(DEVICE)


def _logits(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> Any:
    return _randn(shape, seed).to(DEVICE, dtype)


# --------------------------------------------------------------------------- comparison


def _run(
    loss_fn: Callable[..., Any], logits: Any, target: Any, seed: int, rounding: Any, **options: Any
):
    """The loss and the gradient of <cotangent, loss> for a fresh leaf copy of the logits."""
    leaf = logits.detach().clone().requires_grad_(True)
    loss = loss_fn(leaf, target, **options)
    # a random cotangent (also for a 0-d loss), rounded to the dtype of the logits under
    # test, so that the reference (float32 for 16-bit logits) gets the very same values
    cotangent = _randn(tuple(loss.shape), seed + 1, scale=1.0).to(rounding)
    loss.backward(cotangent.to(loss.device, loss.dtype))
    return loss.detach(), leaf.grad


def _assert_close(actual: Any, expected: Any, *, rtol: float, atol_fraction: float) -> None:
    """Close to `rtol`, with an absolute tolerance of `atol_fraction` of the largest |expected|
    (entries that cancel to near 0 carry the rounding of the large ones)."""
    assert actual.shape == expected.shape
    assert torch.isfinite(actual).all(), "non-finite values"
    expected = expected.detach().to(torch.float32)
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(
        actual.detach().to(torch.float32),
        expected,
        rtol=rtol,
        atol=atol_fraction * scale + 1e-30,
    )


TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol_fraction": 1e-6},
    # the loss and gradient rounded once to bfloat16 (8 significant bits: 2**-8 = 0.4%)
    torch.bfloat16: {"rtol": 1e-2, "atol_fraction": 1e-2},
}


def _compare(ours_fn, reference_fn, logits, target, ours_options, reference_options, seed):
    """multiloss against the reference, forward and backward, on the logits' device; for
    16-bit logits the reference runs in float32 on the upcast values."""
    loss, grad = _run(ours_fn, logits, target, seed, logits.dtype, **ours_options)
    reference_logits = logits if logits.dtype == torch.float64 else logits.to(torch.float32)
    expected_loss, expected_grad = _run(
        reference_fn, reference_logits, target, seed, logits.dtype, **reference_options
    )
    assert loss.dtype == logits.dtype and grad.dtype == logits.dtype
    assert loss.device == logits.device and grad.device == logits.device
    tolerance = TOLERANCES[logits.dtype]
    _assert_close(loss, expected_loss, **tolerance)
    _assert_close(grad, expected_grad, **tolerance)


# --------------------------------------------------------------------------- references


def textbook_focal_loss(logits, target, *, gamma, alpha=None, ignore_index=-100, reduction):
    """-α_t (1 - p_t)^γ log p_t from log_softmax and gather; the mean is over the counted
    (not ignored) elements."""
    log_p = F.log_softmax(logits, dim=1)
    counted = target != ignore_index
    safe = torch.where(counted, target, 0).long()
    log_p_t = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p_t.exp()) ** gamma) * log_p_t
    if alpha is not None:
        loss = loss * alpha[safe]
    loss = torch.where(counted, loss, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / counted.sum()


def torchvision_sigmoid_focal_loss(inputs, targets, *, alpha, gamma, reduction):
    """``torchvision.ops.sigmoid_focal_loss``'s formula; ``alpha=None`` for no α_t (its
    ``alpha < 0``), and a ``"mean"`` over all elements."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha is not None:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --------------------------------------------------------------------------- softmax values


@dataclass(frozen=True)
class Case:
    shape: tuple[int, ...]
    dtype: Any = torch.float32
    ignore_index: int | None = None
    weight: bool = False
    label_smoothing: float = 0.0
    probabilities: bool = False
    reduction: str = "mean"
    target_dtype: Any = torch.int64


SEGMENTATION = (8, 21, 32, 32)
CROSS_ENTROPY_CASES = {
    "64x10": Case((64, 10)),
    "8192x1000": Case((8192, 1000)),
    "1024x32000": Case((1024, 32000)),
    "8x21x32x32 ignore 255": Case(SEGMENTATION, ignore_index=255),
    "8x21x32x32 ignore 255 uint8": Case(SEGMENTATION, ignore_index=255, target_dtype=torch.uint8),
    "weight": Case((512, 100), weight=True),
    "weight ignore 255 8x21x32x32": Case(SEGMENTATION, ignore_index=255, weight=True),
    "label smoothing": Case((512, 100), label_smoothing=0.1),
    "label smoothing weight ignore": Case(
        (512, 100), label_smoothing=0.1, weight=True, ignore_index=-1
    ),
    "probabilities": Case((512, 100), probabilities=True),
    "probabilities weight smoothing 8x21x16x16": Case(
        (8, 21, 16, 16), probabilities=True, weight=True, label_smoothing=0.05
    ),
    "sum 8192x1000": Case((8192, 1000), reduction="sum"),
    "none 8x21x32x32 ignore 255": Case(SEGMENTATION, ignore_index=255, reduction="none"),
    "none weight": Case((512, 100), weight=True, reduction="none"),
    "bfloat16 8192x1000": Case((8192, 1000), dtype=torch.bfloat16),
    "bfloat16 1024x32000": Case((1024, 32000), dtype=torch.bfloat16),
    "bfloat16 8x21x32x32 ignore 255": Case(SEGMENTATION, dtype=torch.bfloat16, ignore_index=255),
}


def _softmax_inputs(case: Case, seed: int = 0):
    logits = _logits(case.shape, case.dtype, seed)
    if case.probabilities:
        target = _probabilities(case.shape, seed + 10, axis=1)
    else:
        target = _class_target(case.shape, case.ignore_index, case.target_dtype, seed + 10)
    weight = _positive((case.shape[1],), seed + 20) if case.weight else None
    return logits, target, weight


@pytest.mark.parametrize("case", CROSS_ENTROPY_CASES.values(), ids=CROSS_ENTROPY_CASES.keys())
def test_cross_entropy_matches_pytorch(case: Case) -> None:
    logits, target, weight = _softmax_inputs(case)
    options = {
        "weight": weight,
        "ignore_index": -100 if case.ignore_index is None else case.ignore_index,
        "reduction": case.reduction,
        "label_smoothing": case.label_smoothing,
    }
    reference_target = target if case.probabilities else target.long()

    def reference(z, _target, **kwargs):
        return F.cross_entropy(z, reference_target, **kwargs)

    _compare(mt.cross_entropy, reference, logits, target, options, options, seed=1)


FOCAL_CASES = {
    "64x10": Case((64, 10)),
    "8192x1000": Case((8192, 1000)),
    "1024x32000": Case((1024, 32000)),
    "8x21x32x32 ignore 255 alpha per class": Case(SEGMENTATION, ignore_index=255, weight=True),
    "sum": Case((512, 100), reduction="sum"),
    "none ignore": Case((512, 100), ignore_index=-1, reduction="none"),
    "bfloat16 8192x1000": Case((8192, 1000), dtype=torch.bfloat16),
    "bfloat16 8x21x32x32 ignore 255": Case(SEGMENTATION, dtype=torch.bfloat16, ignore_index=255),
}


@pytest.mark.parametrize("case", FOCAL_CASES.values(), ids=FOCAL_CASES.keys())
def test_focal_loss_matches_textbook(case: Case) -> None:
    logits, target, alpha = _softmax_inputs(case)
    ignore_index = -100 if case.ignore_index is None else case.ignore_index
    common = {"gamma": 2.0, "ignore_index": ignore_index, "reduction": case.reduction}
    _compare(
        mt.focal_loss,
        textbook_focal_loss,
        logits,
        target,
        common | {"alpha": alpha},
        common | {"alpha": alpha},
        seed=2,
    )


def test_focal_loss_scalar_alpha_matches_textbook() -> None:
    """A scalar α weights class 0 by 1-α and the other classes by α."""
    logits, target, _ = _softmax_inputs(Case(SEGMENTATION, ignore_index=255))
    alpha = torch.full((SEGMENTATION[1],), 0.25, device=DEVICE)
    alpha[0] = 0.75
    common = {"gamma": 2.0, "ignore_index": 255, "reduction": "mean"}
    _compare(
        mt.focal_loss,
        textbook_focal_loss,
        logits,
        target,
        common | {"alpha": 0.25},
        common | {"alpha": alpha},
        seed=3,
    )


# --------------------------------------------------------------------------- sigmoid values


@dataclass(frozen=True)
class SigmoidCase:
    shape: tuple[int, ...]
    dtype: Any = torch.float32
    weight: tuple[int, ...] | None = None
    pos_weight: tuple[int, ...] | None = None
    soft: bool = False
    reduction: str = "mean"


BCE_CASES = {
    "8192x1000": SigmoidCase((8192, 1000)),
    "64x10 weight pos_weight": SigmoidCase((64, 10), weight=(64, 10), pos_weight=(10,)),
    "8192x1000 weight per class pos_weight": SigmoidCase(
        (8192, 1000), weight=(1000,), pos_weight=(1000,)
    ),
    "soft targets": SigmoidCase((512, 100), soft=True),
    "sum": SigmoidCase((512, 100), pos_weight=(100,), reduction="sum"),
    "none": SigmoidCase((16, 100, 80), weight=(80,), reduction="none"),
    "bfloat16 8192x1000": SigmoidCase((8192, 1000), dtype=torch.bfloat16),
    "bfloat16 weight pos_weight": SigmoidCase(
        (512, 100), dtype=torch.bfloat16, weight=(100,), pos_weight=(100,)
    ),
}


def _sigmoid_inputs(case: SigmoidCase, seed: int = 0):
    logits = _logits(case.shape, case.dtype, seed)
    generator = _generator(seed + 10)
    if case.soft:
        target = torch.rand(case.shape, generator=generator)
    else:
        target = (torch.rand(case.shape, generator=generator) < 0.2).to(torch.float32)
    return logits, target.to(DEVICE)


@pytest.mark.parametrize("case", BCE_CASES.values(), ids=BCE_CASES.keys())
def test_binary_cross_entropy_matches_pytorch(case: SigmoidCase) -> None:
    logits, target = _sigmoid_inputs(case)
    options = {
        "weight": None if case.weight is None else _positive(case.weight, 20),
        "pos_weight": None if case.pos_weight is None else _positive(case.pos_weight, 30) * 3,
        "reduction": case.reduction,
    }
    _compare(
        mt.binary_cross_entropy,
        F.binary_cross_entropy_with_logits,
        logits,
        target,
        options,
        options,
        seed=4,
    )


SIGMOID_FOCAL_CASES = {
    "8192x1000 alpha 0.25 gamma 2": (SigmoidCase((8192, 1000)), 0.25, 2.0),
    "anchors 16x100x80 alpha none gamma 1.5 sum": (
        SigmoidCase((16, 100, 80), reduction="sum"),
        None,
        1.5,
    ),
    "none": (SigmoidCase((512, 100), reduction="none"), 0.25, 2.0),
    "soft targets": (SigmoidCase((512, 100), soft=True), 0.5, 2.0),
    "bfloat16 8192x1000": (SigmoidCase((8192, 1000), dtype=torch.bfloat16), 0.25, 2.0),
}


@pytest.mark.parametrize(
    ("case", "alpha", "gamma"), SIGMOID_FOCAL_CASES.values(), ids=SIGMOID_FOCAL_CASES.keys()
)
def test_sigmoid_focal_loss_matches_torchvision(case: SigmoidCase, alpha, gamma) -> None:
    logits, target = _sigmoid_inputs(case)
    options = {"alpha": alpha, "gamma": gamma, "reduction": case.reduction}
    _compare(
        mt.sigmoid_focal_loss,
        torchvision_sigmoid_focal_loss,
        logits,
        target,
        options,
        options,
        seed=5,
    )


# --------------------------------------------------------------------------- devices


def _last_device() -> Any:
    """The last CUDA device (not the current one where there are several), else DEVICE."""
    if torch.device(DEVICE).type == "cuda":
        return torch.device("cuda", torch.cuda.device_count() - 1)
    return torch.device(DEVICE)


def _last_axis(tensor: Any) -> Any:
    """`(N, C, d1, d2)` as `(N, d2, d1, C)`: the classes of a multi-label input last."""
    return tensor.transpose(1, -1)


def _module(cls: Any, device: Any, **options: Any) -> Any:
    """A criterion built with CPU weights, then moved (its buffers) to the device."""
    cpu = {key: v.cpu() if isinstance(v, torch.Tensor) else v for key, v in options.items()}
    return cls(**cpu).to(device)


DEVICE_CALLS = {
    "cross_entropy": lambda z, y, b, w: mt.cross_entropy(z, y, weight=w, ignore_index=255),
    "focal_loss": lambda z, y, b, w: mt.focal_loss(z, y, alpha=w, ignore_index=255),
    "binary_cross_entropy": lambda z, y, b, w: mt.binary_cross_entropy(
        _last_axis(z), _last_axis(b), pos_weight=w
    ),
    "sigmoid_focal_loss": lambda z, y, b, w: mt.sigmoid_focal_loss(z, b),
    "CrossEntropyLoss": lambda z, y, b, w: _module(
        mt.CrossEntropyLoss, w.device, weight=w, ignore_index=255
    )(z, y),
    "FocalLoss": lambda z, y, b, w: _module(mt.FocalLoss, w.device, alpha=w, ignore_index=255)(
        z, y
    ),
    "BCEWithLogitsLoss": lambda z, y, b, w: _module(mt.BCEWithLogitsLoss, w.device, pos_weight=w)(
        _last_axis(z), _last_axis(b)
    ),
}


@pytest.mark.parametrize("call", DEVICE_CALLS.values(), ids=DEVICE_CALLS.keys())
def test_loss_and_gradient_stay_on_the_input_device(call) -> None:
    device = _last_device()
    shape = (4, 5, 6, 7)
    logits = _randn(shape, 0).to(device).requires_grad_(True)
    target = _class_target(shape, 255, torch.int64, 1).to(device)
    binary = (_randn(shape, 2) > 0).to(device, torch.float32)
    weight = _positive((5,), 3).to(device)
    loss = call(logits, target, binary, weight)
    loss.backward()
    assert loss.device == device
    assert logits.grad is not None and logits.grad.device == device
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------- no host sync


def _seg_inputs():
    logits, target, weight = _softmax_inputs(Case(SEGMENTATION, ignore_index=255, weight=True))
    return logits, target, weight


def _sync_ce(reduction):
    logits, target, _ = _seg_inputs()
    return logits, lambda z: mt.cross_entropy(z, target, ignore_index=255, reduction=reduction)


def _sync_ce_weight_smoothing(reduction):
    logits, target, weight = _seg_inputs()
    return logits, lambda z: mt.cross_entropy(
        z, target, weight=weight, ignore_index=255, label_smoothing=0.1, reduction=reduction
    )


def _sync_ce_probabilities(reduction):
    logits = _logits((512, 100), torch.float32)
    target = _probabilities((512, 100), 1, axis=1)
    weight = _positive((100,), 2)
    return logits, lambda z: mt.cross_entropy(z, target, weight=weight, reduction=reduction)


def _sync_ce_large(reduction):
    logits = _logits((1024, 32000), torch.float32)
    target = _class_target((1024, 32000), -100, torch.int64, 1)
    return logits, lambda z: mt.cross_entropy(z, target, reduction=reduction)


def _sync_ce_bfloat16(reduction):
    logits = _logits((8192, 1000), torch.bfloat16)
    target = _class_target((8192, 1000), -100, torch.int64, 1)
    return logits, lambda z: mt.cross_entropy(z, target, reduction=reduction)


def _sync_module(reduction):
    logits, target, weight = _seg_inputs()
    criterion = mt.CrossEntropyLoss(weight=weight.cpu(), ignore_index=255, reduction=reduction)
    criterion = criterion.to(DEVICE)
    return logits, lambda z: criterion(z, target)


def _sync_focal_alpha_per_class(reduction):
    logits, target, weight = _seg_inputs()
    return logits, lambda z: mt.focal_loss(
        z, target, gamma=2.0, alpha=weight, ignore_index=255, reduction=reduction
    )


def _sync_focal_alpha_scalar(reduction):
    logits, target, _ = _seg_inputs()
    return logits, lambda z: mt.focal_loss(
        z, target, gamma=2.0, alpha=0.25, ignore_index=255, reduction=reduction
    )


def _sync_bce(reduction):
    logits = _logits((8192, 1000), torch.float32)
    target = (_randn((8192, 1000), 1) > 2).to(DEVICE, torch.float32)
    weight, pos_weight = _positive((1000,), 2), _positive((1000,), 3)
    return logits, lambda z: mt.binary_cross_entropy(
        z, target, weight=weight, pos_weight=pos_weight, reduction=reduction
    )


def _sync_sigmoid_focal(reduction):
    logits = _logits((16, 100, 80), torch.float32)
    target = (_randn((16, 100, 80), 1) > 2).to(DEVICE, torch.float32)
    return logits, lambda z: mt.sigmoid_focal_loss(z, target, reduction=reduction)


SYNC_CASES = {
    "cross_entropy ignore 255": _sync_ce,
    "cross_entropy weight smoothing ignore 255": _sync_ce_weight_smoothing,
    "cross_entropy probabilities weight": _sync_ce_probabilities,
    "cross_entropy 1024x32000": _sync_ce_large,
    "cross_entropy bfloat16": _sync_ce_bfloat16,
    "CrossEntropyLoss module weight ignore 255": _sync_module,
    "focal_loss alpha per class ignore 255": _sync_focal_alpha_per_class,
    "focal_loss scalar alpha ignore 255": _sync_focal_alpha_scalar,
    "binary_cross_entropy weight pos_weight": _sync_bce,
    "sigmoid_focal_loss": _sync_sigmoid_focal,
}


def _forward_backward(loss_of: Callable[[Any], Any], logits: Any) -> Any:
    leaf = logits.detach().requires_grad_(True)
    loss = loss_of(leaf)
    loss.sum().backward()
    return loss, leaf.grad


@cuda_only
def test_sync_debug_mode_catches_a_sync() -> None:
    """The detector itself: `.item()` raises under mode "error"."""
    value = torch.ones((), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError, match="synchroniz"):
            value.item()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda_only
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("make", SYNC_CASES.values(), ids=SYNC_CASES.keys())
def test_forward_and_backward_do_not_sync_with_the_host(make, reduction) -> None:
    logits, loss_of = make(reduction)
    _forward_backward(loss_of, logits)  # warm-up: allocator, kernels, handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, grad = _forward_backward(loss_of, logits)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


# --------------------------------------------------------------------------- CUDA graphs

BATCH, FEATURES, HIDDEN, CLASSES = 1024, 64, 128, 1000


def _model() -> Any:
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    )


def _sgd(parameters):
    return torch.optim.SGD(parameters, lr=0.1, momentum=0.9)


def _adam(parameters):
    return torch.optim.Adam(parameters, lr=1e-3, capturable=True)


CLASS_WEIGHT = (torch.rand(CLASSES, generator=_generator(7)) + 0.5).tolist()
GRAPH_CASES = {
    "CrossEntropyLoss SGD": (lambda: mt.CrossEntropyLoss(), _sgd, "index"),
    "CrossEntropyLoss weight smoothing ignore Adam": (
        lambda: mt.CrossEntropyLoss(weight=CLASS_WEIGHT, label_smoothing=0.1, ignore_index=255),
        _adam,
        "index",
    ),
    "FocalLoss alpha per class ignore Adam": (
        lambda: mt.FocalLoss(gamma=2.0, alpha=CLASS_WEIGHT, ignore_index=255),
        _adam,
        "index",
    ),
    "FocalLoss scalar alpha SGD": (lambda: mt.FocalLoss(gamma=2.0, alpha=0.25), _sgd, "index"),
    "BCEWithLogitsLoss pos_weight SGD": (
        lambda: mt.BCEWithLogitsLoss(pos_weight=[3.0] * CLASSES),
        _sgd,
        "multi-label",
    ),
    "SigmoidFocalLoss Adam": (lambda: mt.SigmoidFocalLoss(), _adam, "multi-label"),
}


def _batches(kind: str, count: int) -> list[tuple[Any, Any]]:
    batches = []
    for seed in range(count):
        x = _randn((BATCH, FEATURES), 100 + seed, scale=1.0).cuda()
        if kind == "index":
            # about 10% class 255: ignored where the criterion's ignore_index is 255
            y = _class_target((BATCH, CLASSES), 255, torch.int64, 200 + seed).cuda()
        else:
            y = (torch.rand((BATCH, CLASSES), generator=_generator(200 + seed)) < 0.02).float()
            y = y.cuda()
        batches.append((x, y))
    return batches


def _eager_step(model, criterion, optimizer, x, y) -> Any:
    optimizer.zero_grad(set_to_none=True)
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


@cuda_only
@pytest.mark.parametrize(
    ("make_criterion", "make_optimizer", "kind"), GRAPH_CASES.values(), ids=GRAPH_CASES.keys()
)
def test_training_step_captured_in_a_cuda_graph(make_criterion, make_optimizer, kind) -> None:
    """Capture (after warm-up on a side stream) and replay, as in PyTorch's CUDA graphs
    notes; each replay on new data moves the parameters as an eager step does."""
    torch.manual_seed(0)
    model = _model().cuda()
    eager_model = copy.deepcopy(model)
    criterion, eager_criterion = make_criterion().cuda(), make_criterion().cuda()
    optimizer = make_optimizer(model.parameters())
    eager_optimizer = make_optimizer(eager_model.parameters())
    warmup, replays = _batches(kind, 3), _batches(kind, 8)[3:]
    static_x = torch.empty_like(warmup[0][0])
    static_y = torch.empty_like(warmup[0][1])

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for x, y in warmup:
            static_x.copy_(x)
            static_y.copy_(y)
            _eager_step(model, criterion, optimizer, static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    for x, y in warmup:
        _eager_step(eager_model, eager_criterion, eager_optimizer, x, y)

    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = criterion(model(static_x), static_y)
        static_loss.backward()
        optimizer.step()

    before = [p.detach().clone() for p in model.parameters()]
    for x, y in replays:
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        eager_loss = _eager_step(eager_model, eager_criterion, eager_optimizer, x, y)
        torch.cuda.synchronize()
        assert torch.isfinite(static_loss)
        torch.testing.assert_close(static_loss, eager_loss, rtol=1e-5, atol=1e-6)
        for replayed, eager in zip(model.parameters(), eager_model.parameters(), strict=True):
            torch.testing.assert_close(replayed, eager, rtol=1e-5, atol=1e-6)
    moved = [not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)]
    assert all(moved), "replays did not update every parameter"
