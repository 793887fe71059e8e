r"""The detection losses of the sigmoid kind: varifocal and quality focal loss, every derivative.

Both weight a binary cross-entropy per element by a focusing factor K. With logit x, target
q ∈ [0, 1], the cross-entropy's target s, σ = σ(x), σ' = σ(-x), v = σσ', w the weight and
pw the pos_weight (kornia's binary focal semantics: pw weights the positive log-term):

    ce  = pw · s · softplus(-x) + (1 - s) · softplus(x),
    ce' = (1 - s) σ - pw s σ',      ce'' = v (pw s + 1 - s),
    L   = w K ce,   L' = w (K' ce + K ce'),   L'' = w (K'' ce + 2 K' ce' + K ce'').

**Varifocal loss** (Zhang, Wang, Dayoub and Sünderhauf, CVPR 2021): positives (q > 0) are
weighted by their IoU-aware target q, negatives (q = 0) by α σ^γ:

    K = q (q > 0),   K = α σ^γ,   K' = α γ σ^γ σ',   K'' = α γ σ^γ σ' (γ σ' - σ)   (q = 0),

with s = q (1 - ε) + ε/2 under label smoothing ε (the split q > 0 and the weight q read the
target as given, so that smoothing does not turn every negative into a positive). No
negative power of σ appears, so γ < 1 stays finite at saturated logits. The gradient flows
through the negatives' weight α σ^γ, as in ultralytics' ``VarifocalLoss`` and
mmdetection's ``varifocal_loss``, neither of which detaches it.

**Quality focal loss** (Li et al., NeurIPS 2020, Generalized Focal Loss): s = q, and

    d = s σ' - (1 - s) σ   (= s - σ, without cancellation where σ saturates),   a = |d|,
    K = a^β,   K' = -β sgn(d) a^{β-1} v,   K'' = β (β - 1) a^{β-2} v² - β sgn(d) a^{β-1} v (σ' - σ).

a^{β-1} v and a^{β-2} v² are formed as powers of a where the exponent is ≥ 0, else as
K ρ and K ρ² with ρ = v / a (bounded by 1 for 0/1 targets, where a = 1 - p_t): finite at
saturated logits for every β ≥ 0. At a = 0 (σ equal to a soft target) K is not twice
differentiable for β < 2 (nor once for β < 1); the terms are taken as 0 there. For a 0/1
target the loss is the sigmoid focal loss with γ = β and no α.

The derivatives with respect to the target (first order; docs/math.md):

    ∂L/∂q = w [∂K/∂q · ce + K (1 - ε)(pw softplus(-x) - softplus(x))],
    ∂K/∂q = 1 (VFL, q > 0), 0 (VFL, q = 0: the branch's own), β sgn(d) a^{β-1} (QFL),

and ∂L/∂w = K ce, ∂L/∂pw = w K s softplus(-x).

α, γ, ε and β may each be a 0-d array (docs/semantics.md, Schedules): the configs then
hold :class:`.hyper.Traced` markers, the family functions run on the bound config
(:func:`.hyper.binding`), and the forms above are chosen per value (β ≥ 1 and β ≥ 2 by
``where``, no γ = 0 or β = 0 shortcut), the same formulas as for numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from . import _checks
from ._numerics import power, times_nonzero
from ._reduce import operand_cotangents, operand_tangent, per_element_cotangent, reduce
from .family import Family, Tangents, Wanted
from .hyper import binding, is_zero, static
from .kernels import GENERIC_SIGMOID, SigmoidKernels
from .sigmoid import (
    SigmoidOperands,
    element_count,
    element_logits_cotangent,
    element_loss_shape,
    element_mean_scale,
    sigmoid_directional_derivative,
)

Array = Any
Namespace = Any


@dataclass(frozen=True)
class VarifocalConfig:
    """Everything static about one varifocal-loss call; hashable."""

    family: ClassVar[Family]

    alpha: Any
    """α: a float, or a 0-d array here and :class:`.hyper.Traced` until bound (so are γ and
    ε: docs/semantics.md, Schedules)."""
    gamma: Any
    label_smoothing: Any
    reduction: str


@dataclass(frozen=True)
class QualityFocalConfig:
    """Everything static about one quality-focal-loss call; hashable."""

    family: ClassVar[Family]

    beta: Any
    """β: a float, or a 0-d array here and :class:`.hyper.Traced` until bound."""
    reduction: str


DetectionConfig = VarifocalConfig | QualityFocalConfig


def _bce_target(config: DetectionConfig, q: Array) -> Array:
    """s: the varifocal loss smooths its cross-entropy's target itself (the quality focal
    loss's target arrives smoothed from the preparation)."""
    epsilon = getattr(config, "label_smoothing", 0.0)
    return q if is_zero(epsilon) else q * (1.0 - epsilon) + 0.5 * epsilon


def _power_or(xp: Namespace, beta: Any, threshold: int, power_form: Any, otherwise: Any) -> Array:
    """``power_form(β - threshold)`` where β ≥ threshold (a power of a with a non-negative
    exponent), else ``otherwise()``: chosen in Python for a number, per value for an array
    (its exponent kept ≥ 0 on the side not taken, so that neither side overflows)."""
    number = static(beta)
    if number is not None:
        return power_form(number - threshold) if number >= threshold else otherwise()
    above = beta >= threshold
    return xp.where(above, power_form(xp.where(above, beta - threshold, 0.0)), otherwise())


def _focus(
    xp: Namespace,
    config: DetectionConfig,
    q: Array,
    s: Array,
    sigma_pos: Array,
    sigma_neg: Array,
    order: int,
) -> list[Array]:
    """[K, K', K''][: order + 1] per element (see the module docstring)."""
    v = sigma_pos * sigma_neg
    if isinstance(config, VarifocalConfig):
        alpha, gamma = config.alpha, config.gamma
        positive = q > 0
        negative = alpha * power(sigma_pos, gamma)
        values = [xp.where(positive, q, negative)]
        if order >= 1:
            slope = gamma * negative * sigma_neg
            values.append(xp.where(positive, 0.0, slope))
        if order >= 2:
            values.append(xp.where(positive, 0.0, slope * (gamma * sigma_neg - sigma_pos)))
        return values
    beta = config.beta
    d = s * sigma_neg - (1.0 - s) * sigma_pos
    a = xp.abs(d)
    k = power(a, beta)
    values = [k]
    if order == 0 or is_zero(beta):
        return values + [xp.zeros_like(k)] * order
    vanishing = a == 0
    rho = xp.where(vanishing, 0.0, v / xp.where(vanishing, 1.0, a))
    k_rho = _power_or(xp, beta, 1, lambda e: power(a, e) * v, lambda: k * rho)  # a^{β-1} v
    sign = xp.sign(d)
    values.append(-beta * sign * k_rho)
    if order >= 2:  # a^{β-2} v²
        k_rho2 = _power_or(xp, beta, 2, lambda e: power(a, e) * (v * v), lambda: k_rho * rho)
        values.append(beta * (beta - 1) * k_rho2 - beta * sign * (sigma_neg - sigma_pos) * k_rho)
    return values


def _parts(
    xp: Namespace, config: DetectionConfig, operands: SigmoidOperands, kernels: SigmoidKernels
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """q, s, σ, σ', softplus(x), softplus(-x)."""
    x, q = operands.logits, operands.target
    softplus_pos, softplus_neg = kernels.softplus_pair(xp, x)
    sigma_pos, sigma_neg = kernels.sigmoid_pair(xp, x)
    return q, _bce_target(config, q), sigma_pos, sigma_neg, softplus_pos, softplus_neg


def _positive_weight(operands: SigmoidOperands, s: Array) -> Array:
    return s if operands.pos_weight is None else s * operands.pos_weight


def _cross_entropy(
    xp: Namespace, operands: SigmoidOperands, s: Array, softplus_pos: Array, softplus_neg: Array
) -> Array:
    return times_nonzero(xp, _positive_weight(operands, s), softplus_neg) + times_nonzero(
        xp, 1.0 - s, softplus_pos
    )


def _weighted(xp: Namespace, operands: SigmoidOperands, values: Array) -> Array:
    return values if operands.weight is None else times_nonzero(xp, operands.weight, values)


def detection_forward(
    xp: Namespace,
    config: DetectionConfig,
    operands: SigmoidOperands,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> tuple[Array, None]:
    """The reduced loss (compute dtype); the backward pass needs no residuals."""
    q, s, sigma_pos, sigma_neg, softplus_pos, softplus_neg = _parts(xp, config, operands, kernels)
    ce = _cross_entropy(xp, operands, s, softplus_pos, softplus_neg)
    (k,) = _focus(xp, config, q, s, sigma_pos, sigma_neg, 0)
    per_element = _weighted(xp, operands, times_nonzero(xp, k, ce))
    scale = element_mean_scale(config, operands.logits)
    return reduce(xp, per_element, config.reduction, scale), None


def _slope(
    xp: Namespace, config: DetectionConfig, operands: SigmoidOperands, kernels: SigmoidKernels
) -> Array:
    """∂L/∂x per element."""
    q, s, sigma_pos, sigma_neg, softplus_pos, softplus_neg = _parts(xp, config, operands, kernels)
    ce = _cross_entropy(xp, operands, s, softplus_pos, softplus_neg)
    ce_slope = (1.0 - s) * sigma_pos - _positive_weight(operands, s) * sigma_neg
    k, k_slope = _focus(xp, config, q, s, sigma_pos, sigma_neg, 1)
    return _weighted(xp, operands, times_nonzero(xp, k_slope, ce) + k * ce_slope)


def detection_vjp(
    xp: Namespace,
    config: DetectionConfig,
    operands: SigmoidOperands,
    residuals: None,
    cotangent: Array,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> Array:
    """cotangent · ∂loss/∂logits, in the compute dtype, with the logits' shape."""
    del residuals
    scale = element_mean_scale(config, operands.logits)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, scale)
    return element_cotangent * _slope(xp, config, operands, kernels)


def detection_hvp(
    xp: Namespace, config: DetectionConfig, operands: SigmoidOperands, tangent: Array
) -> Array:
    """H·t (diagonal Hessian; see the module docstring)."""
    x = operands.logits
    q, s, sigma_pos, sigma_neg, softplus_pos, softplus_neg = _parts(
        xp, config, operands, GENERIC_SIGMOID
    )
    ce = _cross_entropy(xp, operands, s, softplus_pos, softplus_neg)
    positive_weight = _positive_weight(operands, s)
    ce_slope = (1.0 - s) * sigma_pos - positive_weight * sigma_neg
    ce_curvature = sigma_pos * sigma_neg * (positive_weight + 1.0 - s)
    k, k_slope, k_curvature = _focus(xp, config, q, s, sigma_pos, sigma_neg, 2)
    curvature = _weighted(
        xp,
        operands,
        times_nonzero(xp, k_curvature, ce) + 2.0 * k_slope * ce_slope + k * ce_curvature,
    )
    scale = element_mean_scale(config, x)
    ones = xp.ones(
        tuple(x.shape) if config.reduction == "none" else (),
        dtype=x.dtype,
        device=_checks.device(x),
    )
    element_cotangent = per_element_cotangent(xp, ones, config.reduction, scale)
    return xp.broadcast_to(element_cotangent * curvature * tangent, tuple(x.shape))


def _operand_partials(
    xp: Namespace, config: DetectionConfig, operands: SigmoidOperands, wanted: Wanted
) -> dict[str, Array]:
    """∂L/∂q, ∂L/∂w and ∂L/∂pw per element (the logits' shape)."""
    x = operands.logits
    q, s, sigma_pos, sigma_neg, softplus_pos, softplus_neg = _parts(
        xp, config, operands, GENERIC_SIGMOID
    )
    ce = _cross_entropy(xp, operands, s, softplus_pos, softplus_neg)
    (k,) = _focus(xp, config, q, s, sigma_pos, sigma_neg, 0)
    partials = {}
    if "weight" in wanted:
        partials["weight"] = times_nonzero(xp, k, ce)
    if "pos_weight" in wanted:
        partials["pos_weight"] = _weighted(xp, operands, k * times_nonzero(xp, s, softplus_neg))
    if "target" in wanted:
        epsilon = getattr(config, "label_smoothing", 0.0)
        pw = 1.0 if operands.pos_weight is None else operands.pos_weight
        ce_target = (1.0 - epsilon) * (pw * softplus_neg - softplus_pos)
        if isinstance(config, VarifocalConfig):
            k_target = xp.where(q > 0, 1.0, xp.zeros_like(x))
        else:
            beta = config.beta
            d = s * sigma_neg - (1.0 - s) * sigma_pos
            a = xp.abs(d)
            head = _power_or(  # a^{β-1}
                xp,
                beta,
                1,
                lambda e: power(a, e),
                lambda: xp.where(a == 0, 0.0, k / xp.where(a == 0, 1.0, a)),
            )
            k_target = beta * xp.sign(d) * head
        partials["target"] = _weighted(
            xp, operands, times_nonzero(xp, k_target, ce) + k * ce_target
        )
    return partials


def detection_operand_vjp(
    xp: Namespace,
    config: DetectionConfig,
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


def detection_operand_jvp(
    xp: Namespace, config: DetectionConfig, operands: SigmoidOperands, tangents: Tangents
) -> Array:
    partials = _operand_partials(xp, config, operands, tangents.keys())
    return operand_tangent(
        xp, partials, tangents, config.reduction, element_mean_scale(config, operands.logits)
    )


def _family(name: str) -> Family:
    return Family(
        name=name,
        operands=SigmoidOperands,
        differentiable=("target", "weight", "pos_weight"),
        forward=binding(detection_forward),
        vjp=binding(detection_vjp),
        hessian_vector_product=binding(detection_hvp),
        directional_derivative=sigmoid_directional_derivative,
        operand_vjp=binding(detection_operand_vjp),
        operand_jvp=binding(detection_operand_jvp),
        denominator=element_count,
        loss_shape=element_loss_shape,
        logits_cotangent=element_logits_cotangent,
    )


VARIFOCAL = _family("varifocal")
"""The varifocal loss's family (see the module docstring)."""
QUALITY_FOCAL = _family("quality_focal")
"""The quality focal loss's family (see the module docstring)."""

VarifocalConfig.family = VARIFOCAL
QualityFocalConfig.family = QUALITY_FOCAL

__all__ = [
    "QUALITY_FOCAL",
    "VARIFOCAL",
    "QualityFocalConfig",
    "VarifocalConfig",
]
