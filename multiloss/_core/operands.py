r"""First-order derivatives with respect to the operands other than the logits.

PyTorch differentiates probability targets and weights too (soft targets from a teacher
that is trained as well, learnable class weights). Every loss here is linear in each of
those operands (docs/math.md), so the derivatives are short closed forms of quantities the
forward pass computes anyway.

Softmax, per element i with f(ℓ) = -u^γ·ℓ (cross-entropy: f = -ℓ), q = (1-ε)·y + ε/C and
row mask m_i (0 for an ignored element):

    L_i = m_i Σ_k q_ik w_k f(ℓ_ik),
    ∂L_i/∂y_ik = m_i (1-ε) w_k f(ℓ_ik)          (probability targets),
    ∂L_i/∂w_k  = m_i q_ik f(ℓ_ik),

and PyTorch's weighted cross-entropy mean, L = Σ_i L_i / D with D = Σ_i m_i w_{t_i},
adds the derivative of its denominator: ∂L/∂w_k = (Σ_i ∂L_i/∂w_k - L·n_k) / D, with n_k
the number of counted elements of class k. Where D = 0 the mean is 0.0 by definition
(docs/semantics.md) and so is its derivative.

Sigmoid, per element (ce, m = 1 - p_t and α_t as in :mod:`.sigmoid`, F = m^γ,
σ = σ(x), σ' = σ(-x)):

    L = w α_t F ce,
    ∂L/∂w  = α_t F ce,
    ∂L/∂pw = w α_t F · y · softplus(-x),
    ∂L/∂y  = w [ (2α - 1) F ce + α_t γ (σ' - σ) F ce/m + α_t F (pw·softplus(-x) - softplus(x)) ],

the (2α - 1) term only with α, the γ term only for γ > 0; ce/m is bounded for finite
logits and taken as 0 where m = 0 (there F·ce = 0 as well).

:func:`operand_vjp` gives cotangent · ∂loss/∂operand (reverse mode, the torch adapter's
backward) and :func:`operand_jvp` the loss's tangent along operand tangents (forward mode,
the JAX adapter's ``custom_jvp`` rule, which JAX transposes for reverse mode). Second
derivatives through these operands are not provided: the adapters refuse them with a
clear error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from . import _checks
from ._numerics import focal_term, times_nonzero
from ._reduce import per_element_cotangent, reduce
from .sigmoid import SigmoidConfig, SigmoidOperands, _cross_entropy, _Pieces, _softplus_pair
from .sigmoid import _denominator as _sigmoid_denominator
from .softmax import (
    SoftmaxConfig,
    SoftmaxOperands,
    _along_class_axis,
    _class_ids,
    _denominator,
    _hard_target,
    _HardTarget,
    _max_and_log_sum_exp,
    _soft_coefficients,
    softmax_forward,
)

Array = Any
Namespace = Any
Prepared = tuple[Any, Any, Any]

DIFFERENTIABLE = {
    SoftmaxOperands: ("target", "class_weight"),
    SigmoidOperands: ("target", "weight", "pos_weight"),
}
"""The operands besides the logits that each family differentiates (field names)."""


def operand_vjp(prepared: Prepared, cotangent: Array, wanted: Collection[str]) -> dict[str, Array]:
    """cotangent · ∂loss/∂operand for each operand field named in `wanted`, each with the
    operand's own shape, in the compute dtype.

    `cotangent` has the reduced loss's shape; a probability target of the softmax losses and
    any floating sigmoid target can be differentiated, class-index targets cannot.
    """
    xp, config, operands = prepared
    if isinstance(config, SoftmaxConfig):
        return _softmax_vjp(xp, config, operands, cotangent, wanted)
    return _sigmoid_vjp(xp, config, operands, cotangent, wanted)


def operand_jvp(prepared: Prepared, tangents: Mapping[str, Array]) -> Array:
    """The tangent of the reduced loss along the given operand tangents (by field name)."""
    xp, config, operands = prepared
    if isinstance(config, SoftmaxConfig):
        return _softmax_jvp(xp, config, operands, tangents)
    return _sigmoid_jvp(xp, config, operands, tangents)


def _sum_to_shape(xp: Namespace, values: Array, shape: tuple[int, ...]) -> Array:
    """`values` summed over the axes along which an operand of `shape` was broadcast."""
    lead = values.ndim - len(shape)
    if lead:
        values = xp.sum(values, axis=tuple(range(lead)))
    axes = tuple(d for d, size in enumerate(shape) if size == 1 and values.shape[d] != 1)
    if axes:
        values = xp.sum(values, axis=axes, keepdims=True)
    return xp.reshape(values, shape)


# ---------------------------------------------------------------------------------------
# Softmax


def _softmax_partials(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    hard: _HardTarget | None,
    wanted: Collection[str],
) -> dict[str, Array]:
    """∂L_i/∂y_ik and ∂L_i/∂w_k (before the reduction), each N×C with the class axis kept."""
    logits, axis = operands.logits, config.axis
    row_max, log_sum_exp = _max_and_log_sum_exp(xp, logits, axis)
    term = focal_term(xp, (logits - row_max) - log_sum_exp, config.gamma)
    partials = {}
    if "target" in wanted:
        scale = 1.0 - config.label_smoothing
        if operands.class_weight is None:
            coefficient = xp.asarray(scale, dtype=term.dtype, device=_checks.device(term))
        else:
            coefficient = scale * _along_class_axis(xp, operands.class_weight, config, term.ndim)
        partials["target"] = times_nonzero(xp, coefficient, term)
    if "class_weight" in wanted:
        target_mass = _soft_coefficients(xp, config, operands._replace(class_weight=None), hard)
        partials["class_weight"] = times_nonzero(xp, target_mass, term)
    return partials


def _class_counts(xp: Namespace, config: SoftmaxConfig, hard: _HardTarget, like: Array) -> Array:
    """n_ik = m_i [t_i = k]: the derivative of each element's share of Σ_i m_i w_{t_i}."""
    on_target = _class_ids(xp, config, like.ndim, like) == hard.index
    return xp.where(on_target, hard.row_mask, xp.zeros_like(like))


def _over_target_weight(config: SoftmaxConfig) -> bool:
    """Whether the "mean" is PyTorch's Σ_i L_i / Σ_i w_{t_i}, which depends on the weight."""
    return config.mean_over_target_weight and config.reduction == "mean"


def _softmax_vjp(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    cotangent: Array,
    wanted: Collection[str],
) -> dict[str, Array]:
    axis = config.axis
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    partials = _softmax_partials(xp, config, operands, hard, wanted)
    denominator = _denominator(xp, config, operands, hard)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, denominator)
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)
    other_axes = tuple(d for d in range(operands.logits.ndim) if d != axis)
    grads = {}
    if "target" in partials:
        grads["target"] = times_nonzero(xp, element_cotangent, partials["target"])
    if "class_weight" in partials:
        weighted = times_nonzero(xp, element_cotangent, partials["class_weight"])
        grad = xp.sum(weighted, axis=other_axes) if other_axes else weighted
        if _over_target_weight(config) and hard is not None:
            loss, _ = softmax_forward(xp, config, operands)
            counts = _class_counts(xp, config, hard, operands.logits)
            counts = xp.sum(counts, axis=other_axes) if other_axes else counts
            grad = grad - element_cotangent * loss * counts
            grad = xp.where(denominator == 0, xp.zeros_like(grad), grad)
        grads["class_weight"] = grad
    return grads


def _softmax_jvp(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, tangents: Mapping[str, Array]
) -> Array:
    axis = config.axis
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    partials = _softmax_partials(xp, config, operands, hard, tangents.keys())
    per_class = None
    for name, partial in partials.items():
        tangent = tangents[name]
        if name == "class_weight":
            tangent = _along_class_axis(xp, tangent, config, partial.ndim)
        term = partial * tangent  # linear in the tangent (JAX transposes it): no select on it
        per_class = term if per_class is None else per_class + term
    if per_class is None:
        raise ValueError(f"no tangent of a differentiable operand; got {sorted(tangents)}")
    per_element = xp.sum(per_class, axis=axis)
    denominator = _denominator(xp, config, operands, hard)
    result = reduce(xp, per_element, config.reduction, denominator)
    if "class_weight" in tangents and _over_target_weight(config) and hard is not None:
        loss, _ = softmax_forward(xp, config, operands)
        weight_tangent = _along_class_axis(xp, tangents["class_weight"], config, per_class.ndim)
        denominator_tangent = xp.sum(
            _class_counts(xp, config, hard, operands.logits) * weight_tangent
        )
        result = result - loss * denominator_tangent / xp.where(denominator == 0, 1.0, denominator)
        result = xp.where(denominator == 0, xp.zeros_like(result), result)
    return result


# ---------------------------------------------------------------------------------------
# Sigmoid


def _sigmoid_partials(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, wanted: Collection[str]
) -> dict[str, Array]:
    """∂L/∂y, ∂L/∂w and ∂L/∂pw per element (the logits' shape)."""
    x, y = operands.logits, operands.target
    softplus_pos, softplus_neg = _softplus_pair(xp, x)
    ce = _cross_entropy(xp, operands, _Pieces(softplus_pos, softplus_neg, None))
    gamma, alpha = config.gamma, config.alpha
    sigma_pos, sigma_neg = xp.exp(-softplus_neg), xp.exp(-softplus_pos)
    one_minus_p_t = y * sigma_neg + (1.0 - y) * sigma_pos
    focal = xp.ones_like(x) if gamma == 0 else one_minus_p_t**gamma
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
        if gamma != 0:
            safe = xp.where(one_minus_p_t == 0, 1.0, one_minus_p_t)
            ratio = xp.where(one_minus_p_t == 0, 0.0, ce / safe)
            slope = slope + times_alpha(gamma * (sigma_neg - sigma_pos) * focal * ratio)
        if alpha is not None:
            slope = slope + (2.0 * alpha - 1.0) * times_nonzero(xp, focal, ce)
        partials["target"] = times_weight(slope)
    return partials


def _sigmoid_vjp(
    xp: Namespace,
    config: SigmoidConfig,
    operands: SigmoidOperands,
    cotangent: Array,
    wanted: Collection[str],
) -> dict[str, Array]:
    partials = _sigmoid_partials(xp, config, operands, wanted)
    denominator = _sigmoid_denominator(xp, operands.logits)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, denominator)
    grads = {}
    for name, partial in partials.items():
        grad = times_nonzero(xp, element_cotangent, partial)
        grads[name] = _sum_to_shape(xp, grad, tuple(getattr(operands, name).shape))
    return grads


def _sigmoid_jvp(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, tangents: Mapping[str, Array]
) -> Array:
    partials = _sigmoid_partials(xp, config, operands, tangents.keys())
    per_element = None
    for name, partial in partials.items():
        term = partial * tangents[name]  # linear in the tangent, as above
        per_element = term if per_element is None else per_element + term
    if per_element is None:
        raise ValueError(f"no tangent of a differentiable operand; got {sorted(tangents)}")
    denominator = _sigmoid_denominator(xp, operands.logits)
    return reduce(xp, per_element, config.reduction, denominator)
