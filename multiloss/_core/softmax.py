r"""The softmax family: cross-entropy, focal loss and any per-class term, every derivative.

One loss (docs/math.md). With ℓ_k = z_k - logsumexp(z) the log-softmax of a row of
logits z, p_k = e^{ℓ_k}, u_k = 1 - p_k, per-class coefficients c_k = y_k · w_k (target
probability times class weight or alpha) and a per-class term f (:mod:`.terms`; the focal
term f(ℓ) = -u^γ·ℓ, γ = 0 for cross-entropy):

    L = Σ_k c_k · f(ℓ_k),
    ∂L/∂z_k = p_k · S - c_k · A_k,  A = -df/dℓ,  S = Σ_j c_j A_j.

A hard target y without label smoothing has a single non-zero coefficient c_t, so the
gradient is the rank-1 c_t · A_t · (p - onehot(t)) and only the target column is ever
gathered. Here, side by side: the forward pass and its vector-Jacobian product
(:func:`softmax_forward`, :func:`softmax_vjp`), the closed-form Hessian-vector product and
directional derivative (second order), and the first-order derivatives with respect to
probability targets and class weights; :data:`SOFTMAX` bundles them for the core and the
adapters. Backward needs only the logits, the target and a few numbers per row kept by the
forward pass: nothing of size N×C besides the logits.

Second order (B = dA/dℓ, dℓ_k = t_k - Σ_j p_j t_j):

    H·t = e · [ S · p ⊙ dℓ  +  Σ_k c_k B_k dℓ_k (p - onehot_k) ],

with e the cotangent of each element (1/denominator for "mean"). B·dℓ ~ u^γ is finite as
u → 0 although B alone is not (for γ < 1), so dℓ at the dominant class m of each row is
taken as Σ_j p_j (t_m - t_j), which has no cancellation. The dominant class's (p_m - 1) is
written -u_m, as in the gradient.

Targets and weights, per element i with row mask m_i and q = (1-ε)·y + ε/C:

    ∂L_i/∂y_ik = m_i (1-ε) w_k f(ℓ_ik),   ∂L_i/∂w_k = m_i q_ik f(ℓ_ik),

and PyTorch's weighted cross-entropy mean L = Σ_i L_i / D, D = Σ_i m_i w_{t_i}, adds
-L·n_k / D (n_k the counted elements of class k); where D = 0 the mean and its derivative
are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from . import _checks, softcap
from ._numerics import one_minus_p, times_nonzero
from ._reduce import count_scale, mean_scale, per_element_cotangent, reduce
from .family import Family, Tangents, Wanted
from .hyper import as_array, binding, fill_like, is_zero
from .kernels import GENERIC, SoftmaxKernels, class_ids
from .terms import Focal, Term

Array = Any
Namespace = Any


@dataclass(frozen=True)
class SoftmaxConfig:
    """Everything static about one softmax-loss call (shapes, options); hashable."""

    family: ClassVar[Family]

    axis: int
    num_classes: int
    hard_target: bool
    term: Term
    """The per-class term f (:class:`.terms.Focal` for cross-entropy and focal loss)."""
    ignore_index: int
    label_smoothing: Any
    """ε: a float, or a 0-d array here and :class:`.hyper.Traced` until bound (so are z_loss,
    softcap and the term's hyperparameters: :mod:`.hyper`)."""
    reduction: str
    mean_over_target_weight: bool
    """"mean" divides by Σ w_{y_i} (PyTorch's weighted CE mean) rather than by the count."""
    indices_checked: bool = False
    """The class indices were checked in range, so none needs to be poisoned with NaN."""
    z_loss: Any = 0.0
    """λ of the z-loss λ · ω_i · (log Σ_k e^{z_k})² added per element (PaLM)."""
    softcap: Any = None
    """c of the logit soft-capping z → c · tanh(z / c) (:mod:`.softcap`); None: none."""


class SoftmaxOperands(NamedTuple):
    """The arrays of one call, in the compute dtype (float32 for 16-bit inputs).

    The logits alone may still be 16-bit (``prepare_call(convert_logits=False)``) where the
    namespace's native passes take them so (the torch adapter's, for class-index targets
    without label smoothing: the only path that reads the logits through those passes
    alone); each pass then computes in float32, a slab at a time.
    """

    logits: Array
    target: Array
    class_weight: Array | None
    hyper: tuple[Array, ...] = ()
    """The hyperparameters given as 0-d arrays, in the order of the config's markers
    (:mod:`.hyper`); empty where every one is a Python number."""


class SoftmaxResiduals(NamedTuple):
    """What the forward pass keeps for the backward pass: O(N), never O(N×C).

    The last three are kept for hard targets without label smoothing only (None
    otherwise): with them the backward pass gathers no logit and rebuilds no mask.
    """

    row_max: Array | None
    """The row max, with the class axis kept (size 1); None if a native pass did not form
    it (then the backward pass recomputes it where it needs it)."""
    log_sum_exp: Array | None
    """log Σ_k exp(z_k - row_max), with the class axis kept; None with ``row_max``."""
    mean_scale: Array | None
    """The 0-d scale of the "mean" reduction, 1 / denominator (:func:`._reduce.mean_scale`);
    None for "sum" and "none"."""
    target_coefficient: Array | None = None
    """c_t = w_t · row mask (see :class:`_HardTarget`)."""
    target_log_p: Array | None = None
    """ℓ_t = z_t - row_max - log_sum_exp."""
    target_index: Array | None = None
    """The target index with the class axis kept, clipped into [0, C) (:func:`_target_index`)."""


def _along_class_axis(xp: Namespace, vector: Array, config: SoftmaxConfig, ndim: int) -> Array:
    """A length-C vector shaped to broadcast along the class axis of an ndim-d array."""
    shape = [1] * ndim
    shape[config.axis] = config.num_classes
    return xp.reshape(vector, tuple(shape))


class _HardTarget(NamedTuple):
    index: Array
    """The target index with the class axis kept (size 1), see :func:`_target_index`."""
    row_mask: Array
    """1 for a counted element, 0 for an ignored one, NaN for an out-of-range index."""
    coefficient: Array
    """c_t = w_t · row_mask (w_t = 1 without class weights)."""


def _target_index(xp: Namespace, config: SoftmaxConfig, target: Array) -> Array:
    """The class index t with the class axis kept, clipped into [0, C) so that it can be
    gathered: a counted element's own index, and some valid column for the others, whose
    coefficient (0 if ignored, NaN if out of range) voids what is read there."""
    return xp.clip(xp.expand_dims(target, axis=config.axis), 0, config.num_classes - 1)


def _hard_target(xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands) -> _HardTarget:
    target = xp.expand_dims(operands.target, axis=config.axis)
    index = _target_index(xp, config, operands.target)
    counted = target != config.ignore_index
    row_mask = xp.astype(counted, _checks.compute_dtype(xp, operands.logits.dtype))
    if not config.indices_checked:
        # An out-of-range index that could not be checked (traced data) poisons its
        # element: never a silent clamp or wrap to a valid class.
        row_mask = xp.where(counted & (index != target), math.nan, row_mask)
    if operands.class_weight is None:
        return _HardTarget(index, row_mask, row_mask)
    weight = xp.take(operands.class_weight, xp.reshape(index, (-1,)), axis=0)
    return _HardTarget(index, row_mask, xp.reshape(weight, index.shape) * row_mask)


def _soft_coefficients(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, hard: _HardTarget | None
) -> Array:
    """c_k = q_k · w_k with q the (smoothed) target distribution; N×C."""
    logits = operands.logits
    smoothing = config.label_smoothing
    uniform = smoothing / config.num_classes
    if hard is not None:
        on_target = class_ids(xp, logits, config.axis) == hard.index
        high = fill_like(xp, logits, 1.0 - smoothing + uniform)
        q = xp.where(on_target, high, fill_like(xp, logits, uniform)) * hard.row_mask
    else:
        q = operands.target
        if not is_zero(smoothing):
            q = q * (1.0 - smoothing) + uniform
    if operands.class_weight is not None:
        q = q * _along_class_axis(xp, operands.class_weight, config, logits.ndim)
    return q


def _uses_soft_path(config: SoftmaxConfig) -> bool:
    return not config.hard_target or not is_zero(config.label_smoothing)


def _denominator(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, hard: _HardTarget | None
) -> Array:
    logits = operands.logits
    if hard is None:
        count = math.prod(_checks.shape_without(tuple(logits.shape), config.axis))
        dtype = _checks.compute_dtype(xp, logits.dtype)
        return xp.asarray(float(count), dtype=dtype, device=_checks.device(logits))
    if config.mean_over_target_weight:
        return xp.sum(hard.coefficient)
    return xp.sum(hard.row_mask)


def _mean_scale(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, hard: _HardTarget | None
) -> Array | None:
    """The scale of the "mean" reduction (None for "sum" and "none", which need none)."""
    if config.reduction != "mean":
        return None
    if hard is None:  # the element count, known from the shape
        count = math.prod(_checks.shape_without(tuple(operands.logits.shape), config.axis))
        dtype = _checks.compute_dtype(xp, operands.logits.dtype)
        return xp.asarray(count_scale(count), dtype=dtype, device=_checks.device(operands.logits))
    if config.mean_over_target_weight:
        return mean_scale(xp, xp.sum(hard.coefficient))
    # The number of counted elements: where it is 0, every element's loss and gradient is
    # 0 (each is a multiple of its row mask), so 1 / max(count, 1) gives the mean over
    # nothing its 0 with one operation fewer than mean_scale.
    return xp.clip(xp.sum(hard.row_mask), min=1.0) ** -1.0


def _row_weight(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, hard: _HardTarget | None
) -> Array | None:
    """ω_i, the z-loss's weight of each element: w_{y_i} · row mask for weighted
    cross-entropy with class indices, the row mask for other class-index targets, None (1)
    for probability targets."""
    if hard is None:
        return None
    return hard.coefficient if config.mean_over_target_weight else hard.row_mask


def _z_loss(xp: Namespace, config: SoftmaxConfig, row_weight: Array | None, lse: Array) -> Array:
    """λ · ω · lse², 0 for an ignored element whatever its logits."""
    value = config.z_loss * (lse * lse)
    return value if row_weight is None else times_nonzero(xp, row_weight, value)


def _z_slope(xp: Namespace, config: SoftmaxConfig, row_weight: Array | None, lse: Array) -> Array:
    """2 λ · ω · lse: the z-loss's gradient is this times p."""
    value = (2.0 * config.z_loss) * lse
    return value if row_weight is None else times_nonzero(xp, row_weight, value)


# --------------------------------------------------------------------------------------
# First order: the loss and its gradient with respect to the logits


def softmax_forward(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    kernels: SoftmaxKernels = GENERIC,
) -> tuple[Array, SoftmaxResiduals]:
    """The reduced loss (compute dtype) and the residuals for :func:`softmax_vjp`."""
    if config.softcap is not None:
        return softcap.forward(softmax_forward, xp, config, operands, kernels)  # type: ignore[no-any-return]
    logits, axis, term = operands.logits, config.axis, config.term
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    scale = _mean_scale(xp, config, operands, hard)

    if hard is None or _uses_soft_path(config):
        row_max, log_sum_exp, log_p = kernels.log_softmax(xp, logits, axis)
        coefficient = _soft_coefficients(xp, config, operands, hard)
        per_element = xp.sum(
            times_nonzero(xp, coefficient, term.value(xp, log_p)), axis=axis, keepdims=True
        )
        if not is_zero(config.z_loss):
            if row_max is None or log_sum_exp is None:
                row_max, log_sum_exp = kernels.max_and_log_sum_exp(xp, logits, axis)
            row_weight = _row_weight(xp, config, operands, hard)
            per_element = per_element + _z_loss(xp, config, row_weight, row_max + log_sum_exp)
        residuals = SoftmaxResiduals(row_max, log_sum_exp, scale)
    else:
        row_max, log_sum_exp, target_log_p = kernels.target_log_softmax(
            xp, logits, hard.index, axis
        )
        per_element = times_nonzero(xp, hard.coefficient, term.value(xp, target_log_p))
        if not is_zero(config.z_loss):
            if row_max is None or log_sum_exp is None:
                row_max, log_sum_exp = kernels.max_and_log_sum_exp(xp, logits, axis)
            row_weight = _row_weight(xp, config, operands, hard)
            per_element = per_element + _z_loss(xp, config, row_weight, row_max + log_sum_exp)
        residuals = SoftmaxResiduals(
            row_max, log_sum_exp, scale, hard.coefficient, target_log_p, hard.index
        )

    per_element = xp.squeeze(per_element, axis=axis)
    return reduce(xp, per_element, config.reduction, scale), residuals


def softmax_vjp(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    residuals: SoftmaxResiduals,
    cotangent: Array,
    kernels: SoftmaxKernels = GENERIC,
) -> Array:
    """cotangent · ∂loss/∂logits, with the logits' shape, in the compute dtype (a native
    pass over 16-bit logits may return it in their own dtype).

    `cotangent` has the shape of the reduced loss: 0-d for "mean"/"sum", the per-element
    shape for "none".
    """
    if config.softcap is not None:
        return softcap.vjp(softmax_vjp, xp, config, operands, residuals, cotangent, kernels)
    logits, axis, term = operands.logits, config.axis, config.term
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, residuals.mean_scale)
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)
    if _uses_soft_path(config):
        hard = _hard_target(xp, config, operands) if config.hard_target else None
        if residuals.row_max is None or residuals.log_sum_exp is None:
            _, _, log_p = kernels.log_softmax(xp, logits, axis)
        else:
            log_p = (logits - residuals.row_max) - residuals.log_sum_exp
        p = xp.exp(log_p)
        coefficient = _soft_coefficients(xp, config, operands, hard)
        weighted_slope = times_nonzero(xp, coefficient, term.slope(xp, log_p))
        total = xp.sum(weighted_slope, axis=axis, keepdims=True)
        if not is_zero(config.z_loss):
            lse = _saved_log_sum_exp(residuals)
            total = total + _z_slope(xp, config, _row_weight(xp, config, operands, hard), lse)
        return element_cotangent * (p * total - weighted_slope)

    target_log_p = residuals.target_log_p
    row_scale = element_cotangent * _weighted_slope(
        xp, residuals.target_coefficient, target_log_p, term
    )
    # p_t - 1 = -u_t = expm1(ℓ_t): exact also where p_t is close to 1.
    target_entry = row_scale * xp.expm1(target_log_p)
    if not is_zero(config.z_loss):
        if config.mean_over_target_weight or operands.class_weight is None:
            row_weight = residuals.target_coefficient  # ω = c_t
        else:  # α_t weights the focal term, not the z-loss
            row_weight = _hard_target(xp, config, operands).row_mask
        lse = _saved_log_sum_exp(residuals)
        z_scale = element_cotangent * _z_slope(xp, config, row_weight, lse)
        row_scale = row_scale + z_scale
        target_entry = target_entry + z_scale * xp.exp(target_log_p)
    index = residuals.target_index
    if index is None:
        index = _target_index(xp, config, operands.target)
    return kernels.scaled_softmax_with_target(
        xp, logits, residuals.row_max, residuals.log_sum_exp, index, target_entry, row_scale, axis
    )


def _saved_log_sum_exp(residuals: SoftmaxResiduals) -> Array:
    """log Σ_k e^{z_k} = m + L from the residuals (the forward pass keeps both for z-loss)."""
    if residuals.row_max is None or residuals.log_sum_exp is None:
        raise AssertionError("the z-loss's forward pass keeps the row max and log-sum-exp")
    return residuals.row_max + residuals.log_sum_exp


def _weighted_slope(xp: Namespace, coefficient: Array, log_p: Array, term: Term) -> Array:
    """c · A(ℓ); c itself for cross-entropy (A ≡ 1).

    A plain product: A is finite wherever ℓ is a number, and where ℓ is NaN (a NaN logit)
    the gradient's whole row is NaN through p whatever c is.
    """
    if term.constant_slope:
        return coefficient
    return coefficient * term.slope(xp, log_p)


# --------------------------------------------------------------------------------------
# Second order


def _row_sum(xp: Namespace, values: Array, axis: int) -> Array:
    return xp.sum(values, axis=axis, keepdims=True)


def softmax_hvp(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, tangent: Array
) -> Array:
    """H·t for the softmax losses (see the module docstring), in the compute dtype."""
    logits, axis, term = operands.logits, config.axis, config.term
    loss_shape = _checks.shape_without(tuple(logits.shape), axis)
    if config.softcap is not None:
        return softcap.hessian_vector_product(
            softmax_forward,
            softmax_vjp,
            softmax_hvp,
            xp,
            config,
            operands,
            tangent,
            loss_shape if config.reduction == "none" else (),
        )
    row_max = xp.max(logits, axis=axis, keepdims=True)
    shifted = logits - row_max
    log_sum = xp.log(_row_sum(xp, xp.exp(shifted), axis))
    log_p = shifted - log_sum
    p = xp.exp(log_p)
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    scale = _mean_scale(xp, config, operands, hard)
    ones = xp.ones(
        loss_shape if config.reduction == "none" else (),
        dtype=logits.dtype,
        device=_checks.device(logits),
    )
    element_cotangent = per_element_cotangent(xp, ones, config.reduction, scale)
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)

    if hard is None or _uses_soft_path(config):
        # The dominant class m of each row (where p may be close to 1).
        dominant = xp.argmax(logits, axis=axis, keepdims=True)
        is_dominant = class_ids(xp, logits, axis) == dominant
        coefficient = _soft_coefficients(xp, config, operands, hard)
    else:
        dominant = hard.index
        is_dominant = class_ids(xp, logits, axis) == hard.index
        coefficient = None

    # dℓ_k = t_k - Σ_j p_j t_j, written (t_k - t_m) + Σ_j p_j (t_m - t_j): exact at p_m → 1.
    tangent_dominant = xp.take_along_axis(tangent, dominant, axis=axis)
    dominant_dlog_p = _row_sum(xp, p * (tangent_dominant - tangent), axis)
    dlog_p = (tangent - tangent_dominant) + dominant_dlog_p
    if not is_zero(config.z_loss):
        # H_z·t = 2λω [p (p·t) + lse · p ⊙ dℓ]
        row_weight = _row_weight(xp, config, operands, hard)
        lse = row_max + log_sum
        z_weight = _z_slope(xp, config, row_weight, xp.ones_like(lse))
        z_part = z_weight * (p * _row_sum(xp, p * tangent, axis) + lse * (p * dlog_p))
        element_cotangent_z = element_cotangent * z_part
    else:
        element_cotangent_z = None

    if coefficient is None and hard is not None:  # a class-index target, no smoothing
        log_p_t = xp.take_along_axis(log_p, hard.index, axis=axis)
        total = times_nonzero(xp, hard.coefficient, term.slope(xp, log_p_t))
        result = total * (p * dlog_p)
        if not term.constant_slope:
            scale = times_nonzero(xp, hard.coefficient, term.curvature(xp, log_p_t))
            p_minus_onehot = xp.where(is_dominant, -one_minus_p(xp, log_p_t), p)
            result = result + (scale * dominant_dlog_p) * p_minus_onehot
        result = element_cotangent * result
        return result if element_cotangent_z is None else result + element_cotangent_z

    total = _row_sum(xp, times_nonzero(xp, coefficient, term.slope(xp, log_p)), axis)
    result = total * (p * dlog_p)
    if not term.constant_slope:
        curvature = times_nonzero(xp, coefficient, term.curvature(xp, log_p)) * dlog_p
        # Σ_k Q_k (p - onehot_k) with Q = c·B·dℓ; at the dominant class,
        # p_m Σ_{k≠m} Q_k - u_m Q_m, so that nothing of size Q_m cancels.
        zero = xp.zeros_like(curvature)
        others = _row_sum(xp, xp.where(is_dominant, zero, curvature), axis)
        own = _row_sum(xp, xp.where(is_dominant, curvature, zero), axis)
        u = one_minus_p(xp, log_p)
        result = result + xp.where(
            is_dominant, p * others - u * curvature, p * (others + own) - curvature
        )
    result = element_cotangent * result
    return result if element_cotangent_z is None else result + element_cotangent_z


def softmax_directional_derivative(
    xp: Namespace, config: SoftmaxConfig, gradient: Array, tangent: Array
) -> Array:
    """⟨G, t⟩ per loss element (the class axis summed; all of it for "mean"/"sum")."""
    product = gradient * tangent
    if config.reduction != "none":
        return xp.sum(product)
    return xp.sum(product, axis=config.axis)


# --------------------------------------------------------------------------------------
# First order with respect to probability targets and class weights


def _operand_partials(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    hard: _HardTarget | None,
    wanted: Wanted,
) -> dict[str, Array]:
    """∂L_i/∂y_ik and ∂L_i/∂w_k (before the reduction), each N×C with the class axis kept."""
    logits, axis = operands.logits, config.axis
    row_max, log_sum_exp = GENERIC.max_and_log_sum_exp(xp, logits, axis)
    term = config.term.value(xp, (logits - row_max) - log_sum_exp)
    partials = {}
    if "target" in wanted:
        scale = 1.0 - config.label_smoothing
        if operands.class_weight is None:
            coefficient = as_array(xp, scale, term)
        else:
            coefficient = scale * _along_class_axis(xp, operands.class_weight, config, term.ndim)
        partials["target"] = times_nonzero(xp, coefficient, term)
    if "class_weight" in wanted:
        target_mass = _soft_coefficients(xp, config, operands._replace(class_weight=None), hard)
        partials["class_weight"] = times_nonzero(xp, target_mass, term)
        if not is_zero(config.z_loss) and config.mean_over_target_weight and hard is not None:
            # ω_i = w_{t_i} m_i: the z-loss's share n_ik λ lse_i²
            counts = _class_counts(xp, config, hard, logits)
            z_term = config.z_loss * (row_max + log_sum_exp) ** 2
            partials["class_weight"] = partials["class_weight"] + times_nonzero(xp, counts, z_term)
    return partials


def _class_counts(xp: Namespace, config: SoftmaxConfig, hard: _HardTarget, like: Array) -> Array:
    """n_ik = m_i [t_i = k]: the derivative of each element's share of Σ_i m_i w_{t_i}."""
    on_target = class_ids(xp, like, config.axis) == hard.index
    return xp.where(on_target, hard.row_mask, xp.zeros_like(like))


def _over_target_weight(config: SoftmaxConfig) -> bool:
    """Whether the "mean" is PyTorch's Σ_i L_i / Σ_i w_{t_i}, which depends on the weight."""
    return config.mean_over_target_weight and config.reduction == "mean"


def softmax_operand_vjp(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    cotangent: Array,
    wanted: Wanted,
) -> dict[str, Array]:
    if config.softcap is not None:
        return softcap.operand_function(  # type: ignore[no-any-return]
            softmax_operand_vjp, xp, config, operands, cotangent, wanted
        )
    axis = config.axis
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    partials = _operand_partials(xp, config, operands, hard, wanted)
    denominator = _denominator(xp, config, operands, hard)
    element_cotangent = per_element_cotangent(
        xp, cotangent, config.reduction, mean_scale(xp, denominator)
    )
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


def softmax_operand_jvp(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands, tangents: Tangents
) -> Array:
    if config.softcap is not None:
        return softcap.operand_function(softmax_operand_jvp, xp, config, operands, tangents)
    axis = config.axis
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    partials = _operand_partials(xp, config, operands, hard, tangents.keys())
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
    scale = mean_scale(xp, denominator)
    result = reduce(xp, per_element, config.reduction, scale)
    if "class_weight" in tangents and _over_target_weight(config) and hard is not None:
        loss, _ = softmax_forward(xp, config, operands)
        weight_tangent = _along_class_axis(xp, tangents["class_weight"], config, per_class.ndim)
        denominator_tangent = xp.sum(
            _class_counts(xp, config, hard, operands.logits) * weight_tangent
        )
        result = result - loss * denominator_tangent * scale
    return result


def _mean_denominator(xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands) -> Array:
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    return _denominator(xp, config, operands, hard)


def _loss_shape(config: SoftmaxConfig, logits_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The reduced loss's shape: the logits' without the class axis for "none", else 0-d."""
    if config.reduction == "none":
        return _checks.shape_without(logits_shape, config.axis)
    return ()


def _logits_cotangent(xp: Namespace, config: SoftmaxConfig, cotangent: Array) -> Array:
    """The loss's cotangent with the class axis restored for "none" (broadcasts)."""
    if config.reduction == "none":
        return xp.expand_dims(cotangent, axis=config.axis)
    return cotangent


SOFTMAX = Family(
    name="softmax",
    operands=SoftmaxOperands,
    differentiable=("target", "class_weight"),
    forward=binding(softmax_forward),
    vjp=binding(softmax_vjp),
    hessian_vector_product=binding(softmax_hvp),
    directional_derivative=softmax_directional_derivative,
    operand_vjp=binding(softmax_operand_vjp),
    operand_jvp=binding(softmax_operand_jvp),
    denominator=_mean_denominator,
    loss_shape=_loss_shape,
    logits_cotangent=_logits_cotangent,
)
"""The softmax family (see the module docstring)."""

SoftmaxConfig.family = SOFTMAX

__all__ = ["SOFTMAX", "Focal", "SoftmaxConfig", "SoftmaxOperands", "SoftmaxResiduals"]
