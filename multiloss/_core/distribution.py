r"""The distribution focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss), every derivative.

A box side is regressed as a distribution over n bins 0, 1, …, n - 1 (the class axis of the
logits z); its continuous target t ∈ [0, n - 1] is the two-hot distribution c on the bins
around it. With k = min(⌊t⌋, n - 2), the weights c_k = k + 1 - t and c_{k+1} = t - k (so
t = n - 1 puts all the mass on the last bin and no bin n is read), ℓ = log_softmax(z) and an
element weight w (1 without one):

    L = -w · (c_k ℓ_k + c_{k+1} ℓ_{k+1}),
    ∂L/∂z = w · (p - c),
    H·v = w · p ⊙ (v - Σ_j p_j v_j),

cross-entropy against a fixed distribution: the softmax family's Hessian. Only ℓ_k and
ℓ_{k+1} are gathered; no N×n target is stored: the gradient forms c where it needs it, as
the triangle c_j = max(1 - |j - t|, 0) around t (k + 1 - t at k, t - k at k + 1, 0
elsewhere). With respect to the target and the weight (first order, piecewise):

    ∂L/∂t = w · (ℓ_k - ℓ_{k+1}),   ∂L/∂w = -(c_k ℓ_k + c_{k+1} ℓ_{k+1}).

``"mean"`` divides by the number of elements (the target's size), whatever the weights, as
mmdetection's ``weight_reduce_loss`` without ``avg_factor``; ``normalizer=`` gives the
detectors' own denominators (docs/semantics.md, Detection normalisers). A target outside
[0, n - 1] (or NaN) is an error where values can be read and poisons its element with NaN
where they cannot (traced data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from . import _checks
from ._numerics import times_nonzero
from ._reduce import count_scale, operand_cotangents, operand_tangent, per_element_cotangent, reduce
from .family import Family, Tangents, Wanted
from .kernels import GENERIC, SoftmaxKernels, class_ids, index_dtype, max_and_log_sum_exp
from .policy import host

Array = Any
Namespace = Any


@dataclass(frozen=True)
class DistributionConfig:
    """Everything static about one distribution-focal-loss call; hashable."""

    family: ClassVar[Family]

    axis: int
    num_bins: int
    reduction: str
    values_checked: bool = False
    """The target was checked in [0, n - 1], so none needs to be poisoned with NaN."""


class DistributionOperands(NamedTuple):
    """The arrays of one call, in the compute dtype."""

    logits: Array
    target: Array
    """The continuous target, the logits' shape without the bin axis."""
    weight: Array | None
    """Element weights broadcast against the target; None: 1."""
    hyper: tuple[Array, ...] = ()
    """The hyperparameters given as 0-d arrays (:mod:`.hyper`): none, the loss has none."""


class _TwoHot(NamedTuple):
    low: Array
    """k = min(⌊t⌋, n - 2), index dtype, the bin axis kept (size 1)."""
    low_mass: Array
    """c_k = k + 1 - t, the bin axis kept."""
    high_mass: Array
    """c_{k+1} = t - k, the bin axis kept."""
    position: Array
    """t (0 where it is bad), the bin axis kept."""
    mask: Array
    """1, or NaN for a bad target that could not be checked, the bin axis kept."""
    scale: Array
    """w · mask per element, the bin axis kept."""


def _two_hot(xp: Namespace, config: DistributionConfig, operands: DistributionOperands) -> _TwoHot:
    axis = config.axis
    target = xp.expand_dims(operands.target, axis=axis)
    valid = (target >= 0) & (target <= config.num_bins - 1)  # False for NaN
    safe = xp.where(valid, target, xp.zeros_like(target))
    low = xp.clip(xp.floor(safe), max=float(config.num_bins - 2))
    high_mass = safe - low
    mask = xp.ones_like(target)
    if not config.values_checked:  # never a silent clamp: the element becomes NaN
        mask = xp.where(valid, mask, math.nan)
    scale = mask
    if operands.weight is not None:
        weight = xp.broadcast_to(operands.weight, tuple(operands.target.shape))
        scale = mask * xp.expand_dims(weight, axis=axis)
    index = xp.astype(low, index_dtype(xp))
    return _TwoHot(index, 1.0 - high_mass, high_mass, safe, mask, scale)


def _log_probabilities(xp: Namespace, config: DistributionConfig, logits: Array) -> Array:
    row_max, log_sum_exp = max_and_log_sum_exp(xp, logits, config.axis)
    return (logits - row_max) - log_sum_exp


def _gathered(
    xp: Namespace, config: DistributionConfig, log_p: Array, two: _TwoHot
) -> tuple[Array, Array]:
    """ℓ_k and ℓ_{k+1}."""
    low = xp.take_along_axis(log_p, two.low, axis=config.axis)
    return low, xp.take_along_axis(log_p, two.low + 1, axis=config.axis)


def _unweighted(xp: Namespace, config: DistributionConfig, log_p: Array, two: _TwoHot) -> Array:
    """-(c_k ℓ_k + c_{k+1} ℓ_{k+1}) per element, the bin axis kept."""
    low, high = _gathered(xp, config, log_p, two)
    return -(times_nonzero(xp, two.low_mass, low) + times_nonzero(xp, two.high_mass, high))


def _mean_scale(config: DistributionConfig, target: Array) -> float | None:
    if config.reduction != "mean":
        return None
    return count_scale(math.prod(target.shape))


def distribution_forward(
    xp: Namespace,
    config: DistributionConfig,
    operands: DistributionOperands,
    kernels: SoftmaxKernels = GENERIC,
) -> tuple[Array, None]:
    """The reduced loss (compute dtype); the backward pass needs no residuals. `kernels`:
    the softmax family's seam (:mod:`.kernels`), whose ``log_softmax`` alone is used."""
    two = _two_hot(xp, config, operands)
    _, _, log_p = kernels.log_softmax(xp, operands.logits, config.axis)
    per_element = _unweighted(xp, config, log_p, two)
    per_element = xp.squeeze(two.scale * per_element, axis=config.axis)
    return reduce(xp, per_element, config.reduction, _mean_scale(config, operands.target)), None


def _element_cotangent(
    xp: Namespace, config: DistributionConfig, operands: DistributionOperands, cotangent: Array
) -> Array:
    scale = _mean_scale(config, operands.target)
    element = per_element_cotangent(xp, cotangent, config.reduction, scale)
    return xp.expand_dims(element, axis=config.axis) if config.reduction == "none" else element


def distribution_vjp(
    xp: Namespace,
    config: DistributionConfig,
    operands: DistributionOperands,
    residuals: None,
    cotangent: Array,
    kernels: SoftmaxKernels = GENERIC,
) -> Array:
    """cotangent · ∂loss/∂logits = e · w · (p - c), in the compute dtype."""
    del residuals
    logits, axis = operands.logits, config.axis
    two = _two_hot(xp, config, operands)
    p = xp.exp(kernels.log_softmax(xp, logits, axis)[2])
    # c_j = max(1 - |j - t|, 0): k + 1 - t at bin k, t - k at bin k + 1, 0 elsewhere (the
    # two-hot target as a triangle around t, with no comparison or select)
    bins = xp.astype(class_ids(xp, logits, axis), p.dtype)
    two_hot = xp.clip(1.0 - xp.abs(bins - two.position), min=0.0)
    row = _element_cotangent(xp, config, operands, cotangent) * two.scale
    return row * (p - two_hot)


def distribution_hvp(
    xp: Namespace, config: DistributionConfig, operands: DistributionOperands, tangent: Array
) -> Array:
    """H·v = e · w · p ⊙ (v - Σ_j p_j v_j) (see the module docstring)."""
    logits, axis = operands.logits, config.axis
    two = _two_hot(xp, config, operands)
    p = xp.exp(_log_probabilities(xp, config, logits))
    centred = tangent - xp.sum(p * tangent, axis=axis, keepdims=True)
    loss_shape = tuple(operands.target.shape) if config.reduction == "none" else ()
    ones = xp.ones(loss_shape, dtype=logits.dtype, device=_checks.device(logits))
    row = _element_cotangent(xp, config, operands, ones) * two.scale
    return row * (p * centred)


def distribution_directional_derivative(
    xp: Namespace, config: DistributionConfig, gradient: Array, tangent: Array
) -> Array:
    """⟨G, v⟩ per loss element (the bin axis summed; all of it for "mean"/"sum")."""
    product = gradient * tangent
    if config.reduction != "none":
        return xp.sum(product)
    return xp.sum(product, axis=config.axis)


def _operand_partials(
    xp: Namespace, config: DistributionConfig, operands: DistributionOperands, wanted: Wanted
) -> dict[str, Array]:
    """∂L_i/∂t_i and ∂L_i/∂w_i per element (the target's shape)."""
    axis = config.axis
    two = _two_hot(xp, config, operands)
    log_p = _log_probabilities(xp, config, operands.logits)
    partials = {}
    if "weight" in wanted:
        unweighted = two.mask * _unweighted(xp, config, log_p, two)
        partials["weight"] = xp.squeeze(unweighted, axis=axis)
    if "target" in wanted:
        low, high = _gathered(xp, config, log_p, two)
        partials["target"] = xp.squeeze(two.scale * (low - high), axis=axis)
    return partials


def distribution_operand_vjp(
    xp: Namespace,
    config: DistributionConfig,
    operands: DistributionOperands,
    cotangent: Array,
    wanted: Wanted,
) -> dict[str, Array]:
    partials = _operand_partials(xp, config, operands, wanted)
    return operand_cotangents(
        xp, partials, cotangent, config.reduction, _mean_scale(config, operands.target), operands
    )


def distribution_operand_jvp(
    xp: Namespace, config: DistributionConfig, operands: DistributionOperands, tangents: Tangents
) -> Array:
    partials = _operand_partials(xp, config, operands, tangents.keys())
    return operand_tangent(
        xp, partials, tangents, config.reduction, _mean_scale(config, operands.target)
    )


def _denominator(
    xp: Namespace, config: DistributionConfig, operands: DistributionOperands
) -> Array:
    logits = operands.logits
    dtype = _checks.compute_dtype(xp, logits.dtype)
    count = float(math.prod(operands.target.shape))
    return xp.asarray(count, dtype=dtype, device=_checks.device(logits))


def _loss_shape(config: DistributionConfig, logits_shape: tuple[int, ...]) -> tuple[int, ...]:
    if config.reduction == "none":
        return _checks.shape_without(logits_shape, config.axis)
    return ()


def _logits_cotangent(xp: Namespace, config: DistributionConfig, cotangent: Array) -> Array:
    if config.reduction == "none":
        return xp.expand_dims(cotangent, axis=config.axis)
    return cotangent


DISTRIBUTION = Family(
    name="distribution",
    operands=DistributionOperands,
    differentiable=("target", "weight"),
    forward=distribution_forward,
    vjp=distribution_vjp,
    hessian_vector_product=distribution_hvp,
    directional_derivative=distribution_directional_derivative,
    operand_vjp=distribution_operand_vjp,
    operand_jvp=distribution_operand_jvp,
    denominator=_denominator,
    loss_shape=_loss_shape,
    logits_cotangent=_logits_cotangent,
)
"""The distribution-focal-loss family (see the module docstring)."""

DistributionConfig.family = DISTRIBUTION


# --------------------------------------------------------------------------------------
# Validation (the prepare step, in the style of :mod:`.prepare`)


def check_bin_targets(xp: Namespace, target: Array, num_bins: int) -> None:
    """Value check: every target in [0, n - 1] (not NaN), read where the backend's policy
    reads values (:func:`.policy.host`)."""
    hxp, values = host(target)
    bad = ~((values >= 0) & (values <= num_bins - 1))
    if bool(hxp.any(bad)):
        raise ValueError(
            f"target must lie in [0, {num_bins - 1}] (the bins 0..{num_bins - 1} of the "
            f"{num_bins}-bin axis; not NaN); got {_checks.preview(values[bad])}"
        )


def _static(
    xp: Namespace, logits: Array, target: Array, axis: object, reduction: object, check_values: bool
) -> DistributionConfig:
    _checks.check_logits(xp, logits)
    axis = _checks.normalize_axis(axis, logits.ndim)
    num_bins = logits.shape[axis]
    if num_bins < 2:
        raise ValueError(
            f"logits must have at least 2 bins along axis {axis}; got shape {tuple(logits.shape)}"
        )
    reduction = _checks.check_reduction(reduction)
    if not xp.isdtype(target.dtype, "real floating"):
        raise TypeError(
            f"target must hold floating positions in [0, {num_bins - 1}] (the distribution "
            f"focal loss has no class indices); got dtype {target.dtype}"
        )
    expected = _checks.shape_without(tuple(logits.shape), axis)
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have the logits' shape without the bin axis, {expected}; got "
            f"{tuple(target.shape)} (logits {tuple(logits.shape)}, axis {axis})"
        )
    return DistributionConfig(axis, num_bins, reduction, values_checked=check_values)


def prepare_distribution(
    loss: Any,
    logits: Array,
    target: Array,
    given: dict[str, Any],
    *,
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, DistributionConfig, DistributionOperands]:
    """The distribution family's plain-call preparation (:data:`.prepare.FAMILY_PREPARATIONS`):
    the arguments of :func:`distribution_focal_loss` checked (docs/semantics.md), `given`
    holding every option of the registry record `loss` (``axis``, ``weight``, ``reduction``).

    `check_values` False skips the checks that read array contents (traced data: a bad
    target then makes its element NaN); `convert_logits` and `cache_static` are taken for
    the adapters' uniform call (the logits are always converted; nothing is cached).
    """
    del loss, convert_logits, cache_static
    axis, weight, reduction = given["axis"], given["weight"], given["reduction"]
    xp = _checks.input_namespace(logits, target)
    config = _static(xp, logits, target, axis, reduction, check_values)
    dtype = _checks.compute_dtype(xp, logits.dtype)
    target = xp.astype(target, dtype, copy=False)
    if check_values:
        check_bin_targets(xp, target, config.num_bins)
    weights = None
    if weight is not None:
        weights = _checks.as_weight_array(xp, "weight", weight, logits, dtype)
        shape = tuple(target.shape)
        if _checks.broadcast_shape(tuple(weights.shape), shape) != shape:
            raise ValueError(
                f"weight of shape {tuple(weights.shape)} does not broadcast to the target's "
                f"shape {shape}"
            )
        if check_values:
            _checks.check_weight_values_of(xp, "weight", weight, weights)
    operands = DistributionOperands(xp.astype(logits, dtype, copy=False), target, weights)
    return xp, config, operands


__all__ = [
    "DISTRIBUTION",
    "DistributionConfig",
    "DistributionOperands",
    "check_bin_targets",
    "prepare_distribution",
]
