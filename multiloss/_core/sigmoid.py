r"""Sigmoid (binary, multi-label) cross-entropy and sigmoid focal loss: forward and gradient.

Per element, with logit x, target y ∈ [0, 1], σ = sigmoid and softplus(x) = log(1 + eˣ):

    ce   = pw · y · softplus(-x) + (1 - y) · softplus(x)       (= -pw·y·log σ(x) - (1-y)·log σ(-x))
    m    = y · σ(-x) + (1 - y) · σ(x)                          (= 1 - p_t)
    L    = w · α_t · m^γ · ce,       α_t = α·y + (1-α)·(1-y)
    ∂L/∂x = w · α_t · m^γ · (γ·(1 - 2y) · σ(x)σ(-x)·ce / m + (1-y)·σ(x) - pw·y·σ(-x))

`binary_cross_entropy` is γ = 0 with no α (``BCEWithLogitsLoss``: weight w, pos_weight pw);
`sigmoid_focal_loss` is pw = w = 1 (``torchvision.ops.sigmoid_focal_loss``, Lin et al. 2017).
Every term is a product of non-negative factors, so nothing cancels; σ(x)σ(-x)·ce/m
tends to 0 where m → 0, which keeps γ < 1 finite at saturated logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import _checks
from ._numerics import times_nonzero
from ._reduce import per_element_cotangent, reduce

Array = Any
Namespace = Any


@dataclass(frozen=True)
class SigmoidConfig:
    """Everything static about one sigmoid-loss call; hashable."""

    gamma: float
    alpha: float | None
    reduction: str


class SigmoidOperands(NamedTuple):
    """The arrays of one call, in the compute dtype."""

    logits: Array
    target: Array
    weight: Array | None
    pos_weight: Array | None


def _check_broadcast(name: str, value: Array, shape: tuple[int, ...]) -> None:
    if _checks.broadcast_shape(tuple(value.shape), shape) != shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast to the logits' shape {shape}"
        )


def _prepare(
    logits: Array,
    target: Array,
    *,
    weight: object,
    pos_weight: object,
    gamma: float,
    alpha: float | None,
    reduction: object,
    check_values: bool,
    convert_logits: bool,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    xp = _checks.input_namespace(logits, target)
    _checks.check_logits(xp, logits)
    reduction = _checks.check_reduction(reduction)
    dtype = _checks.compute_dtype(xp, logits.dtype)
    shape = tuple(logits.shape)
    if tuple(target.shape) != shape:
        raise ValueError(f"target must have the logits' shape {shape}; got {tuple(target.shape)}")
    if not (
        xp.isdtype(target.dtype, "real floating")
        or xp.isdtype(target.dtype, "integral")
        or xp.isdtype(target.dtype, "bool")
    ):
        raise TypeError(f"target must hold real numbers in [0, 1]; got dtype {target.dtype}")
    arrays = {}
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            arrays[name] = None
            continue
        array = _checks.as_weight_array(xp, name, value, logits, dtype)
        _check_broadcast(name, array, shape)
        if check_values:
            _checks.check_weight_values(xp, name, array)
        arrays[name] = array
    config = SigmoidConfig(gamma=gamma, alpha=alpha, reduction=reduction)
    operands = SigmoidOperands(
        xp.astype(logits, dtype, copy=False) if convert_logits else logits,
        xp.astype(target, dtype, copy=False),
        arrays["weight"],
        arrays["pos_weight"],
    )
    return xp, config, operands


def prepare_binary_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: object = None,
    pos_weight: object = None,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    """Validate the arguments of :func:`binary_cross_entropy`.

    `check_values` False skips the checks that read array contents (traced data);
    `convert_logits` False leaves 16-bit logits in their dtype, for an adapter that
    converts them a slab at a time before calling :func:`sigmoid_forward`.
    """
    return _prepare(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
    )


def prepare_sigmoid_focal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: object = 0.25,
    gamma: object = 2.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    """Validate the arguments of :func:`sigmoid_focal_loss`; ``alpha=None`` disables α_t.

    `check_values` and `convert_logits` as in :func:`prepare_binary_cross_entropy`.
    """
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    if alpha is not None:
        alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    return _prepare(
        logits,
        target,
        weight=None,
        pos_weight=None,
        gamma=gamma,
        alpha=alpha,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
    )


class _Pieces(NamedTuple):
    softplus_pos: Array  # softplus(x) = -log σ(-x)
    softplus_neg: Array  # softplus(-x) = -log σ(x)
    coefficient: Array | None  # w · α_t, or None when it is 1


def _softplus_pair(xp: Namespace, x: Array) -> tuple[Array, Array]:
    """softplus(x) and softplus(-x), each as max(±x, 0) + log1p(e^-|x|): exact for large
    |x| (no cancellation), finite for every finite x. (PyTorch's fused ``logsigmoid``
    kernel computes the same, but measured slower than these passes: it also writes a
    buffer for its own backward.)
    """
    tail = xp.log1p(xp.exp(-xp.abs(x)))
    return xp.clip(x, min=0) + tail, xp.clip(-x, min=0) + tail


def _pieces(xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands) -> _Pieces:
    x, y = operands.logits, operands.target
    softplus_pos, softplus_neg = _softplus_pair(xp, x)
    coefficient = operands.weight
    if config.alpha is not None:
        alpha_t = config.alpha * y + (1.0 - config.alpha) * (1.0 - y)
        coefficient = alpha_t if coefficient is None else coefficient * alpha_t
    return _Pieces(softplus_pos, softplus_neg, coefficient)


def _cross_entropy(xp: Namespace, operands: SigmoidOperands, pieces: _Pieces) -> Array:
    """pw · y · softplus(-x) + (1 - y) · softplus(x), each term 0 where its factor is."""
    y = operands.target
    positive_weight = y if operands.pos_weight is None else y * operands.pos_weight
    return times_nonzero(xp, positive_weight, pieces.softplus_neg) + times_nonzero(
        xp, 1.0 - y, pieces.softplus_pos
    )


def _denominator(xp: Namespace, logits: Array) -> Array:
    """The element count, in the compute dtype (also for 16-bit logits left unconverted)."""
    dtype = _checks.compute_dtype(xp, logits.dtype)
    return xp.asarray(float(math.prod(logits.shape)), dtype=dtype, device=_checks.device(logits))


def sigmoid_forward(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands
) -> tuple[Array, None]:
    """The reduced loss (compute dtype); the backward pass needs no residuals."""
    pieces = _pieces(xp, config, operands)
    per_element = _cross_entropy(xp, operands, pieces)
    if config.gamma != 0:
        sigma_pos, sigma_neg = xp.exp(-pieces.softplus_neg), xp.exp(-pieces.softplus_pos)
        y = operands.target
        one_minus_p_t = y * sigma_neg + (1.0 - y) * sigma_pos
        per_element = one_minus_p_t**config.gamma * per_element
    if pieces.coefficient is not None:
        per_element = times_nonzero(xp, pieces.coefficient, per_element)
    return reduce(xp, per_element, config.reduction, _denominator(xp, operands.logits)), None


def sigmoid_vjp(
    xp: Namespace,
    config: SigmoidConfig,
    operands: SigmoidOperands,
    residuals: None,
    cotangent: Array,
) -> Array:
    """cotangent · ∂loss/∂logits, in the compute dtype, with the logits' shape."""
    del residuals
    x, y = operands.logits, operands.target
    pieces = _pieces(xp, config, operands)
    sigma_pos, sigma_neg = xp.exp(-pieces.softplus_neg), xp.exp(-pieces.softplus_pos)
    positive_weight = y if operands.pos_weight is None else y * operands.pos_weight
    slope = (1.0 - y) * sigma_pos - positive_weight * sigma_neg
    if config.gamma != 0:
        gamma = config.gamma
        one_minus_p_t = y * sigma_neg + (1.0 - y) * sigma_pos
        safe = xp.where(one_minus_p_t == 0, 1.0, one_minus_p_t)
        ratio = xp.where(
            one_minus_p_t == 0,
            0.0,
            sigma_pos * sigma_neg * _cross_entropy(xp, operands, pieces) / safe,
        )
        slope = one_minus_p_t**gamma * (gamma * (1.0 - 2.0 * y) * ratio + slope)
    if pieces.coefficient is not None:
        slope = times_nonzero(xp, pieces.coefficient, slope)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, _denominator(xp, x))
    return element_cotangent * slope
