r"""The sigmoid family: binary (multi-label) cross-entropy and sigmoid focal loss, every derivative.

Per element, with logit x, target y ∈ [0, 1], σ = sigmoid and softplus(x) = log(1 + eˣ):

    ce   = pw · y · softplus(-x) + (1 - y) · softplus(x)       (= -pw·y·log σ(x) - (1-y)·log σ(-x))
    m    = y · σ(-x) + (1 - y) · σ(x)                          (= 1 - p_t)
    L    = w · α_t · m^γ · ce,       α_t = α·y + (1-α)·(1-y)
    ∂L/∂x = w · α_t · m^γ · (γ·(1 - 2y) · σ(x)σ(-x)·ce / m + (1-y)·σ(x) - pw·y·σ(-x))

`binary_cross_entropy` is γ = 0 with no α (``BCEWithLogitsLoss``: weight w, pos_weight pw);
`sigmoid_focal_loss` is ``torchvision.ops.sigmoid_focal_loss`` (Lin et al. 2017) with w and
pw as kornia's binary focal loss takes them. ``ignore_index``, label smoothing and a
per-class α arrive folded into y and w (:mod:`.element_options`).
Every term is a product of non-negative factors, so nothing cancels; σ(x)σ(-x)·ce/m
tends to 0 where m → 0, which keeps γ < 1 finite at saturated logits.

Second order, per element (σ = σ(x), σ' = σ(-x), v = σσ', m = 1 - p_t, ρ = v/m ≤ 1,
s = (1-y)σ - pw·y·σ', κ = w·α_t):

    ∂²L/∂x² = κ m^γ [γ(γ-1)(1-2y)² ρ² ce + γ(1-2y) ρ (σ'-σ) ce + 2γ(1-2y) ρ s
                     + v (pw·y + 1 - y)],

every term finite at saturated logits (ρ, ce and s are bounded there). The first-order
derivatives with respect to the target, the weight and pos_weight (docs/math.md):

    ∂L/∂w = α_t F ce,   ∂L/∂pw = w α_t F · y · softplus(-x),
    ∂L/∂y = w [(2α - 1) F ce + α_t γ (σ' - σ) F ce/m + α_t F (pw·softplus(-x) - softplus(x))],

with F = m^γ, the α term only with α, ce/m taken as 0 where m = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from . import _checks
from ._numerics import power, times_nonzero
from ._reduce import count_scale, operand_cotangents, operand_tangent, per_element_cotangent, reduce
from .family import Family, Tangents, Wanted
from .hyper import binding, is_zero
from .kernels import GENERIC_SIGMOID, SigmoidKernels, softplus_pair

Array = Any
Namespace = Any


@dataclass(frozen=True)
class SigmoidConfig:
    """Everything static about one sigmoid-loss call; hashable."""

    family: ClassVar[Family]

    reduction: str
    gamma: Any = 0.0
    """γ of the focal modulation (1 - p_t)^γ; 0: binary cross-entropy. A float, or a 0-d
    array here and :class:`.hyper.Traced` until bound (so is α)."""
    alpha: Any = None
    """α of the class balance α_t; None: none."""


class SigmoidOperands(NamedTuple):
    """The arrays of one call, in the compute dtype."""

    logits: Array
    target: Array
    weight: Array | None
    pos_weight: Array | None
    hyper: tuple[Array, ...] = ()
    """The hyperparameters given as 0-d arrays (:mod:`.hyper`)."""


# --------------------------------------------------------------------------------------
# First order


def _coefficient(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, negative: Array
) -> Array | None:
    """w · α_t, or None when it is 1 (`negative` is 1 - y, formed once per pass)."""
    y, coefficient = operands.target, operands.weight
    if config.alpha is not None:
        alpha_t = config.alpha * y + (1.0 - config.alpha) * negative
        coefficient = alpha_t if coefficient is None else coefficient * alpha_t
    return coefficient


def _positive_weight(operands: SigmoidOperands) -> Array:
    """pw · y, the weight of the positive term."""
    y = operands.target
    return y if operands.pos_weight is None else y * operands.pos_weight


def _cross_entropy(
    xp: Namespace,
    operands: SigmoidOperands,
    negative: Array,
    softplus_pos: Array,
    softplus_neg: Array,
) -> Array:
    """pw · y · softplus(-x) + (1 - y) · softplus(x), each term 0 where its factor is."""
    return times_nonzero(xp, _positive_weight(operands), softplus_neg) + times_nonzero(
        xp, negative, softplus_pos
    )


def _one_minus_p_t(y: Array, negative: Array, sigma_pos: Array, sigma_neg: Array) -> Array:
    """m = y · σ(-x) + (1 - y) · σ(x)."""
    return y * sigma_neg + negative * sigma_pos


def element_mean_scale(config: Any, logits: Array) -> float | None:
    """The scale of "mean" of an element-wise loss (any config with a `reduction`: the
    asymmetric family's too), 1 / (element count) known from the shape alone; None for
    "sum" and "none"."""
    if config.reduction != "mean":
        return None
    return count_scale(math.prod(logits.shape))


def sigmoid_forward(
    xp: Namespace,
    config: SigmoidConfig,
    operands: SigmoidOperands,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> tuple[Array, None]:
    """The reduced loss (compute dtype); the backward pass needs no residuals."""
    x, y = operands.logits, operands.target
    negative = 1.0 - y
    softplus_pos, softplus_neg = kernels.softplus_pair(xp, x)
    per_element = _cross_entropy(xp, operands, negative, softplus_pos, softplus_neg)
    if not is_zero(config.gamma):
        sigma_pos, sigma_neg = kernels.sigmoid_pair(xp, x)
        focal = power(_one_minus_p_t(y, negative, sigma_pos, sigma_neg), config.gamma)
        per_element = focal * per_element
    coefficient = _coefficient(xp, config, operands, negative)
    if coefficient is not None:
        per_element = times_nonzero(xp, coefficient, per_element)
    return reduce(xp, per_element, config.reduction, element_mean_scale(config, x)), None


def sigmoid_vjp(
    xp: Namespace,
    config: SigmoidConfig,
    operands: SigmoidOperands,
    residuals: None,
    cotangent: Array,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> Array:
    """cotangent · ∂loss/∂logits, in the compute dtype, with the logits' shape."""
    del residuals
    x, y = operands.logits, operands.target
    negative = 1.0 - y
    sigma_pos, sigma_neg = kernels.sigmoid_pair(xp, x)
    slope = negative * sigma_pos - _positive_weight(operands) * sigma_neg
    if not is_zero(config.gamma):
        gamma = config.gamma
        one_minus_p_t = _one_minus_p_t(y, negative, sigma_pos, sigma_neg)
        softplus_pos, softplus_neg = kernels.softplus_pair(xp, x)
        ce = _cross_entropy(xp, operands, negative, softplus_pos, softplus_neg)
        vanishing = one_minus_p_t == 0
        safe = xp.where(vanishing, 1.0, one_minus_p_t)
        ratio = xp.where(vanishing, 0.0, sigma_pos * sigma_neg * ce / safe)
        # 1 - 2y = (1 - y) - y
        slope = power(one_minus_p_t, gamma) * (gamma * (negative - y) * ratio + slope)
    coefficient = _coefficient(xp, config, operands, negative)
    if coefficient is not None:
        slope = times_nonzero(xp, coefficient, slope)
    scale = element_mean_scale(config, x)
    return per_element_cotangent(xp, cotangent, config.reduction, scale) * slope


# --------------------------------------------------------------------------------------
# Second order


def sigmoid_hvp(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, tangent: Array
) -> Array:
    """H·t for the sigmoid losses (diagonal Hessian; see the module docstring)."""
    x, y, gamma = operands.logits, operands.target, config.gamma
    softplus_pos, softplus_neg = softplus_pair(xp, x)
    sigma_pos, sigma_neg = xp.exp(-softplus_neg), xp.exp(-softplus_pos)
    positive_weight = _positive_weight(operands)
    negative = 1.0 - y
    v = sigma_pos * sigma_neg
    curvature = v * (positive_weight + negative)
    if not is_zero(gamma):
        ce = _cross_entropy(xp, operands, negative, softplus_pos, softplus_neg)
        slope = (1.0 - y) * sigma_pos - positive_weight * sigma_neg
        m = y * sigma_neg + (1.0 - y) * sigma_pos
        safe_m = xp.where(m == 0, xp.ones_like(m), m)
        rho = xp.where(m == 0, xp.zeros_like(m), v / safe_m)
        sign = 1.0 - 2.0 * y
        curvature = power(m, gamma) * (
            gamma * (gamma - 1) * sign * sign * rho * rho * ce
            + gamma * sign * rho * (sigma_neg - sigma_pos) * ce
            + 2.0 * gamma * sign * rho * slope
            + curvature
        )
    coefficient = _coefficient(xp, config, operands, negative)
    if coefficient is not None:
        curvature = times_nonzero(xp, coefficient, curvature)
    ones = xp.ones(
        tuple(x.shape) if config.reduction == "none" else (),
        dtype=x.dtype,
        device=_checks.device(x),
    )
    element_cotangent = per_element_cotangent(
        xp, ones, config.reduction, element_mean_scale(config, x)
    )
    return xp.broadcast_to(element_cotangent * curvature * tangent, tuple(x.shape))


def sigmoid_directional_derivative(
    xp: Namespace, config: Any, gradient: Array, tangent: Array
) -> Array:
    """⟨G, t⟩ per loss element (element-wise for "none"; all of it for "mean"/"sum")."""
    product = gradient * tangent
    if config.reduction != "none":
        return xp.sum(product)
    return product


# --------------------------------------------------------------------------------------
# First order with respect to the target, the weight and pos_weight


def _operand_partials(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, wanted: Wanted
) -> dict[str, Array]:
    """∂L/∂y, ∂L/∂w and ∂L/∂pw per element (the logits' shape)."""
    x, y = operands.logits, operands.target
    softplus_pos, softplus_neg = softplus_pair(xp, x)
    ce = _cross_entropy(xp, operands, 1.0 - y, softplus_pos, softplus_neg)
    gamma, alpha = config.gamma, config.alpha
    sigma_pos, sigma_neg = xp.exp(-softplus_neg), xp.exp(-softplus_pos)
    one_minus_p_t = y * sigma_neg + (1.0 - y) * sigma_pos
    focal = xp.ones_like(x) if is_zero(gamma) else power(one_minus_p_t, gamma)
    alpha_t = None if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)

    def times_alpha(values: Array) -> Array:
        return values if alpha_t is None else times_nonzero(xp, alpha_t, values)

    def times_weight(values: Array) -> Array:
        return values if operands.weight is None else times_nonzero(xp, operands.weight, values)

    partials = {}
    if "weight" in wanted:
        partials["weight"] = times_alpha(times_nonzero(xp, focal, ce))
    if "pos_weight" in wanted:
        partials["pos_weight"] = times_weight(
            times_alpha(focal * times_nonzero(xp, y, softplus_neg))
        )
    if "target" in wanted:
        positive_weight = 1.0 if operands.pos_weight is None else operands.pos_weight
        slope = times_alpha(focal * (positive_weight * softplus_neg - softplus_pos))
        if not is_zero(gamma):
            safe = xp.where(one_minus_p_t == 0, 1.0, one_minus_p_t)
            ratio = xp.where(one_minus_p_t == 0, 0.0, ce / safe)
            slope = slope + times_alpha(gamma * (sigma_neg - sigma_pos) * focal * ratio)
        if alpha is not None:
            slope = slope + (2.0 * alpha - 1.0) * times_nonzero(xp, focal, ce)
        partials["target"] = times_weight(slope)
    return partials


def sigmoid_operand_vjp(
    xp: Namespace,
    config: SigmoidConfig,
    operands: SigmoidOperands,
    cotangent: Array,
    wanted: Wanted,
) -> dict[str, Array]:
    partials = _operand_partials(xp, config, operands, wanted)
    return operand_cotangents(
        xp,
        partials,
        cotangent,
        config.reduction,
        element_mean_scale(config, operands.logits),
        operands,
    )


def sigmoid_operand_jvp(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, tangents: Tangents
) -> Array:
    partials = _operand_partials(xp, config, operands, tangents.keys())
    return operand_tangent(
        xp, partials, tangents, config.reduction, element_mean_scale(config, operands.logits)
    )


# The element-wise families (sigmoid, asymmetric) share these: they read only the logits'
# shape and the config's `reduction`.


def element_count(xp: Namespace, config: Any, operands: Any) -> Array:
    """The "mean"'s denominator, the element count, in the compute dtype (also for 16-bit
    logits left unconverted)."""
    logits = operands.logits
    dtype = _checks.compute_dtype(xp, logits.dtype)
    return xp.asarray(float(math.prod(logits.shape)), dtype=dtype, device=_checks.device(logits))


def element_loss_shape(config: Any, logits_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The reduced loss's shape: the logits' for "none", else 0-d."""
    return logits_shape if config.reduction == "none" else ()


def element_logits_cotangent(xp: Namespace, config: Any, cotangent: Array) -> Array:
    """The loss's cotangent, which already broadcasts against the logits."""
    return cotangent


SIGMOID = Family(
    name="sigmoid",
    operands=SigmoidOperands,
    differentiable=("target", "weight", "pos_weight"),
    forward=binding(sigmoid_forward),
    vjp=binding(sigmoid_vjp),
    hessian_vector_product=binding(sigmoid_hvp),
    directional_derivative=sigmoid_directional_derivative,
    operand_vjp=binding(sigmoid_operand_vjp),
    operand_jvp=binding(sigmoid_operand_jvp),
    denominator=element_count,
    loss_shape=element_loss_shape,
    logits_cotangent=element_logits_cotangent,
)
"""The sigmoid family (see the module docstring)."""

SigmoidConfig.family = SIGMOID

__all__ = ["SIGMOID", "SigmoidConfig", "SigmoidOperands"]
