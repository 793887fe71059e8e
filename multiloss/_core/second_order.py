r"""Forward-mode and second-order derivatives of the losses, in closed form.

Adapters whose autodiff system works in forward mode (JAX's ``custom_jvp``) need, besides
the unit gradient G = ∂(Σ loss)/∂logits of :func:`multiloss._core.loss_value_and_grad` (for
``reduction="none"`` the gradient of the sum of the per-element losses, i.e. every
element's own gradient, since an element's loss depends only on its own logits):

* :func:`directional_derivative`: the JVP of the loss from G, ⟨G, t⟩ contracted over the
  logits of each loss element (all of them for ``"mean"``/``"sum"``);
* :func:`hessian_vector_product`: H·t, the JVP of G, from a closed form that stays finite
  where the automatic derivative of G does not (0 < γ < 1 at p_t = 1, where u^γ has an
  infinite derivative that multiplies a zero).

Softmax (notation of docs/math.md; B = dA/dℓ, dℓ_k = t_k - Σ_j p_j t_j):

    H·t = e · [ S · p ⊙ dℓ  +  Σ_k c_k B_k dℓ_k (p - onehot_k) ],
    B(ℓ) = -γ p u^(γ-1) (2 + ℓ - (γ-1) p r),

with e the cotangent of each element (1/denominator for "mean"). B·dℓ ~ u^γ is finite as
u → 0 although B alone is not (for γ < 1), so dℓ at the dominant class m of each row is
taken as Σ_j p_j (t_m - t_j), which has no cancellation, and B is set to its limit 0·B = 0
where u is exactly 0. The dominant class's (p_m - 1) is written -u_m, as in the gradient.

Sigmoid, per element (σ = σ(x), σ' = σ(-x), v = σσ', m = 1 - p_t, ρ = v/m ≤ 1,
s = (1-y)σ - pw·y·σ', κ = w·α_t):

    ∂²L/∂x² = κ m^γ [γ(γ-1)(1-2y)² ρ² ce + γ(1-2y) ρ (σ'-σ) ce + 2γ(1-2y) ρ s
                     + v (pw·y + 1 - y)],

every term finite at saturated logits (ρ, ce and s are bounded there).

Everything uses only the array API standard.
"""

from __future__ import annotations

from typing import Any

from . import _checks
from ._numerics import focal_slope, log_p_over_one_minus_p, one_minus_p, times_nonzero
from ._reduce import per_element_cotangent
from .sigmoid import SigmoidConfig, SigmoidOperands, _cross_entropy, _pieces
from .sigmoid import _denominator as _sigmoid_denominator
from .softmax import (
    SoftmaxConfig,
    SoftmaxOperands,
    _class_ids,
    _denominator,
    _hard_target,
    _soft_coefficients,
    _uses_soft_path,
)

Array = Any
Namespace = Any
Prepared = tuple[Any, Any, Any]


def directional_derivative(prepared: Prepared, gradient: Array, tangent: Array) -> Array:
    """The JVP of the loss along `tangent`, given its unit gradient G.

    The result has the loss's shape: 0-d for "mean"/"sum", per element for "none" (the
    class axis summed for the softmax losses; elementwise for the sigmoid losses).
    """
    xp, config, _ = prepared
    product = gradient * tangent
    if config.reduction != "none":
        return xp.sum(product)
    if isinstance(config, SoftmaxConfig):
        return xp.sum(product, axis=config.axis)
    return product


def hessian_vector_product(prepared: Prepared, tangent: Array) -> Array:
    """H·t: the JVP of the unit gradient G along `tangent`, shaped like the logits."""
    xp, config, operands = prepared
    if isinstance(config, SoftmaxConfig):
        return softmax_hvp(xp, config, operands, tangent)
    return sigmoid_hvp(xp, config, operands, tangent)


def focal_curvature(xp: Namespace, log_p: Array, gamma: float) -> Array:
    """B(ℓ) = dA/dℓ = -γ p u^(γ-1) (2 + ℓ - (γ-1) p r), the slope of the focal factor A.

    0 for γ = 0. Where u = 0 exactly and γ < 1 (B → -inf), it is 0: B only ever multiplies
    a dℓ of order u there, and B·dℓ ~ u^γ → 0. Where p = 0 (ℓ = -inf) it is its limit 0.
    """
    if gamma == 0:
        return xp.zeros_like(log_p)
    u = one_minus_p(xp, log_p)
    p = xp.exp(log_p)
    r = log_p_over_one_minus_p(xp, log_p, u)
    vanishing = p == 0
    if gamma < 1:
        vanishing = vanishing | (u == 0)
    safe_u = xp.where(u == 0, xp.ones_like(u), u)
    safe_log_p = xp.where(vanishing, xp.zeros_like(log_p), log_p)
    p_times_r = xp.where(vanishing, xp.zeros_like(p), p * r)
    power = u ** (gamma - 1) if gamma >= 1 else safe_u ** (gamma - 1)
    curvature = -gamma * p * power * (2.0 + safe_log_p - (gamma - 1) * p_times_r)
    return xp.where(vanishing, xp.zeros_like(curvature), curvature)


def _row_sum(xp: Namespace, values: Array, axis: int) -> Array:
    return xp.sum(values, axis=axis, keepdims=True)


def softmax_hvp(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, tangent: Array
) -> Array:
    """H·t for the softmax losses (see the module docstring), in the compute dtype."""
    logits, axis, gamma = operands.logits, config.axis, config.gamma
    row_max = xp.max(logits, axis=axis, keepdims=True)
    shifted = logits - row_max
    log_p = shifted - xp.log(_row_sum(xp, xp.exp(shifted), axis))
    p = xp.exp(log_p)
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    denominator = _denominator(xp, config, operands, hard)
    loss_shape = _checks.shape_without(tuple(logits.shape), axis)
    ones = xp.ones(
        loss_shape if config.reduction == "none" else (),
        dtype=logits.dtype,
        device=_checks.device(logits),
    )
    element_cotangent = per_element_cotangent(xp, ones, config.reduction, denominator)
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)

    if _uses_soft_path(config):
        # The dominant class m of each row (where p may be close to 1).
        dominant = xp.argmax(logits, axis=axis, keepdims=True)
        is_dominant = _class_ids(xp, config, logits.ndim, logits) == dominant
        coefficient = _soft_coefficients(xp, config, operands, hard)
    else:
        dominant = hard.index
        is_dominant = _class_ids(xp, config, logits.ndim, logits) == hard.index
        coefficient = None

    # dℓ_k = t_k - Σ_j p_j t_j, written (t_k - t_m) + Σ_j p_j (t_m - t_j): exact at p_m → 1.
    tangent_dominant = xp.take_along_axis(tangent, dominant, axis=axis)
    dominant_dlog_p = _row_sum(xp, p * (tangent_dominant - tangent), axis)
    dlog_p = (tangent - tangent_dominant) + dominant_dlog_p

    if coefficient is None:
        log_p_t = xp.take_along_axis(log_p, hard.index, axis=axis)
        total = times_nonzero(xp, hard.coefficient, focal_slope(xp, log_p_t, gamma))
        result = total * (p * dlog_p)
        if gamma != 0:
            scale = times_nonzero(xp, hard.coefficient, focal_curvature(xp, log_p_t, gamma))
            p_minus_onehot = xp.where(is_dominant, -one_minus_p(xp, log_p_t), p)
            result = result + (scale * dominant_dlog_p) * p_minus_onehot
        return element_cotangent * result

    total = _row_sum(xp, times_nonzero(xp, coefficient, focal_slope(xp, log_p, gamma)), axis)
    result = total * (p * dlog_p)
    if gamma != 0:
        curvature = times_nonzero(xp, coefficient, focal_curvature(xp, log_p, gamma)) * dlog_p
        # Σ_k Q_k (p - onehot_k) with Q = c·B·dℓ; at the dominant class,
        # p_m Σ_{k≠m} Q_k - u_m Q_m, so that nothing of size Q_m cancels.
        zero = xp.zeros_like(curvature)
        others = _row_sum(xp, xp.where(is_dominant, zero, curvature), axis)
        own = _row_sum(xp, xp.where(is_dominant, curvature, zero), axis)
        u = one_minus_p(xp, log_p)
        result = result + xp.where(
            is_dominant, p * others - u * curvature, p * (others + own) - curvature
        )
    return element_cotangent * result


def sigmoid_hvp(
    xp: Namespace, config: SigmoidConfig, operands: SigmoidOperands, tangent: Array
) -> Array:
    """H·t for the sigmoid losses (diagonal Hessian; see the module docstring)."""
    x, y, gamma = operands.logits, operands.target, config.gamma
    pieces = _pieces(xp, config, operands)
    sigma_pos, sigma_neg = xp.exp(-pieces.softplus_neg), xp.exp(-pieces.softplus_pos)
    positive_weight = y if operands.pos_weight is None else y * operands.pos_weight
    v = sigma_pos * sigma_neg
    curvature = v * (positive_weight + (1.0 - y))
    if gamma != 0:
        ce = _cross_entropy(xp, operands, pieces)
        slope = (1.0 - y) * sigma_pos - positive_weight * sigma_neg
        m = y * sigma_neg + (1.0 - y) * sigma_pos
        safe_m = xp.where(m == 0, xp.ones_like(m), m)
        rho = xp.where(m == 0, xp.zeros_like(m), v / safe_m)
        sign = 1.0 - 2.0 * y
        curvature = m**gamma * (
            gamma * (gamma - 1) * sign * sign * rho * rho * ce
            + gamma * sign * rho * (sigma_neg - sigma_pos) * ce
            + 2.0 * gamma * sign * rho * slope
            + curvature
        )
    if pieces.coefficient is not None:
        curvature = times_nonzero(xp, pieces.coefficient, curvature)
    ones = xp.ones(
        tuple(x.shape) if config.reduction == "none" else (),
        dtype=x.dtype,
        device=_checks.device(x),
    )
    element_cotangent = per_element_cotangent(
        xp, ones, config.reduction, _sigmoid_denominator(xp, x)
    )
    return xp.broadcast_to(element_cotangent * curvature * tangent, tuple(x.shape))
