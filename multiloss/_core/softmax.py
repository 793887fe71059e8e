r"""Softmax cross-entropy and softmax focal loss: forward and closed-form gradient.

Both are one loss (docs/math.md). With ℓ_k = z_k - logsumexp(z) the log-softmax
of a row of logits z, p_k = e^{ℓ_k}, u_k = 1 - p_k and per-class coefficients
c_k = y_k · w_k (target probability times class weight or alpha),

    L = Σ_k c_k · f(ℓ_k),          f(ℓ) = -u^γ · ℓ,
    ∂L/∂z_k = p_k · S - c_k · A_k,  A(ℓ) = u^γ · (1 - γ·p·ℓ/u),  S = Σ_j c_j A_j.

γ = 0 is cross-entropy (A ≡ 1). A hard target y without label smoothing has a single
non-zero coefficient c_t, so the gradient is the rank-1 c_t · A_t · (p - onehot(t)) and
only the target column is ever gathered.

The functions here work on one prepared call: ``prepare_*`` validates the user's
arguments and returns a :class:`SoftmaxConfig` (static, hashable: safe as a JAX static
argument) and the operand arrays; ``softmax_forward`` / ``softmax_vjp`` compute.
Backward needs only the logits, the target and the per-row max and log-sum-exp kept by the
forward pass: nothing of size N×C besides the logits.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import _checks
from ._numerics import focal_slope, focal_term, times_nonzero
from ._reduce import per_element_cotangent, reduce

Array = Any
Namespace = Any


@dataclass(frozen=True)
class SoftmaxConfig:
    """Everything static about one softmax-loss call (shapes, options); hashable."""

    axis: int
    num_classes: int
    hard_target: bool
    gamma: float
    ignore_index: int
    label_smoothing: float
    reduction: str
    mean_over_target_weight: bool
    """"mean" divides by Σ w_{y_i} (PyTorch's weighted CE mean) rather than by the count."""
    indices_checked: bool = False
    """The class indices were checked in range, so none needs to be poisoned with NaN."""


class SoftmaxOperands(NamedTuple):
    """The arrays of one call, in the compute dtype (float32 for 16-bit inputs).

    The logits alone may still be 16-bit (``prepare_*(convert_logits=False)``) where the
    namespace's native passes take them so (the torch adapter's, for class-index targets
    without label smoothing: the only path that reads the logits through those passes
    alone); each pass then computes in float32, a slab at a time.
    """

    logits: Array
    target: Array
    class_weight: Array | None


class SoftmaxResiduals(NamedTuple):
    """What the forward pass keeps for the backward pass: O(N), never O(N×C).

    The last two are kept for hard targets without label smoothing only (None
    otherwise): with them the backward pass gathers no logit and rebuilds no mask.
    """

    row_max: Array | None
    """The row max, with the class axis kept (size 1); None if a native pass did not form
    it (then the backward pass recomputes it where it needs it)."""
    log_sum_exp: Array | None
    """log Σ_k exp(z_k - row_max), with the class axis kept; None with ``row_max``."""
    denominator: Array
    """The 0-d denominator of the "mean" reduction (unused by the others)."""
    target_coefficient: Array | None = None
    """c_t = w_t · row mask (see :class:`_HardTarget`)."""
    target_log_p: Array | None = None
    """ℓ_t = z_t - row_max - log_sum_exp."""


def _prepare(
    logits: Array,
    target: Array,
    *,
    axis: object,
    class_weight: object,
    class_weight_name: str,
    gamma: float,
    ignore_index: object,
    reduction: object,
    label_smoothing: object,
    is_cross_entropy: bool,
    check_values: bool,
    convert_logits: bool,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    xp = _checks.input_namespace(logits, target)
    _checks.check_logits(xp, logits)
    axis = _checks.normalize_axis(axis, logits.ndim)
    num_classes = logits.shape[axis]
    if num_classes == 0:
        raise ValueError(
            f"logits must have at least one class; got shape {tuple(logits.shape)} "
            f"with 0 classes along axis {axis}"
        )
    reduction = _checks.check_reduction(reduction)
    ignore_index = _checks.check_ignore_index(ignore_index)
    label_smoothing = _checks.check_real_number(
        "label_smoothing", label_smoothing, low=0.0, high=1.0
    )
    dtype = _checks.compute_dtype(xp, logits.dtype)

    index_shape = _checks.shape_without(tuple(logits.shape), axis)
    if xp.isdtype(target.dtype, "bool"):
        raise TypeError(
            "target must hold integer class indices or floating probabilities; got dtype bool"
        )
    hard_target = xp.isdtype(target.dtype, "integral")
    if hard_target:
        if tuple(target.shape) != index_shape:
            raise ValueError(
                f"target of class indices must have the logits' shape without the class axis, "
                f"{index_shape}; got {tuple(target.shape)} (logits {tuple(logits.shape)}, "
                f"axis {axis}){_index_shape_hint(tuple(logits.shape), tuple(target.shape), axis)}"
            )
        given, target = target, xp.astype(target, _index_dtype(xp), copy=False)
        if check_values:
            _checks.check_class_indices(xp, given, target, num_classes, ignore_index)
    elif xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != tuple(logits.shape):
            if tuple(target.shape) == index_shape:
                raise TypeError(
                    f"target has the shape of class indices {index_shape} but a floating dtype "
                    f"({target.dtype}); class indices must be integers"
                )
            raise ValueError(
                f"target of class probabilities must have the logits' shape "
                f"{tuple(logits.shape)}; got {tuple(target.shape)}"
            )
        if ignore_index >= 0:
            raise ValueError(
                f"ignore_index={ignore_index} cannot be used with probability targets "
                f"(there is no class index to ignore); leave it at its default -100"
            )
        target = xp.astype(target, dtype, copy=False)
    else:
        raise TypeError(
            f"target must hold integer class indices or floating probabilities; "
            f"got dtype {target.dtype}"
        )

    if not is_cross_entropy and isinstance(class_weight, numbers.Real):
        class_weight = _scalar_alpha(class_weight, num_classes)
    if class_weight is not None:
        class_weight = _checks.as_weight_array(xp, class_weight_name, class_weight, logits, dtype)
        _checks.check_class_vector(xp, class_weight_name, class_weight, num_classes)
        if check_values:
            _checks.check_weight_values(xp, class_weight_name, class_weight)

    config = SoftmaxConfig(
        axis=axis,
        num_classes=num_classes,
        hard_target=hard_target,
        gamma=gamma,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        mean_over_target_weight=is_cross_entropy and hard_target and class_weight is not None,
        indices_checked=hard_target and check_values,
    )
    if convert_logits:
        logits = xp.astype(logits, dtype, copy=False)
    operands = SoftmaxOperands(logits, target, class_weight)
    return xp, config, operands


def _index_shape_hint(
    logits_shape: tuple[int, ...], target_shape: tuple[int, ...], axis: int
) -> str:
    """What a class-index target of the wrong shape most likely means, for the error."""
    if len(logits_shape) == 1:
        return (
            f": logits of shape {logits_shape} are read as one unbatched sample of "
            f"{logits_shape[0]} classes; for one logit per sample use binary_cross_entropy or "
            f"sigmoid_focal_loss, or give the logits a class axis"
        )
    if target_shape == logits_shape:
        return (
            f": an integer target of the logits' own shape looks one-hot; pass class indices "
            f"(target.argmax(axis={axis})) or a floating probability target"
        )
    last = len(logits_shape) - 1
    if axis != last and target_shape == logits_shape[:-1]:
        return (
            f": the target matches the logits without their last axis, as for channels-last "
            f"logits; if the classes are on the last axis pass axis=-1, or move them to axis "
            f"{axis}"
        )
    return ""


def _scalar_alpha(alpha: object, num_classes: int) -> list[float]:
    """A scalar α weights class 0 (background) by 1 - α and every other class by α."""
    alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    return [1.0 - alpha] + [alpha] * (num_classes - 1)


def prepare_cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: object = -1,
    weight: object = None,
    ignore_index: object = -100,
    reduction: object = "mean",
    label_smoothing: object = 0.0,
    check_values: bool = True,
    convert_logits: bool = True,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    """Validate the arguments of :func:`cross_entropy` (docs/semantics.md, Bad input).

    `check_values` False skips the checks that read array contents (traced data);
    `convert_logits` False leaves 16-bit logits in their dtype, for an adapter whose
    native passes convert them a slab at a time (see :class:`SoftmaxOperands`).
    """
    return _prepare(
        logits,
        target,
        axis=axis,
        class_weight=weight,
        class_weight_name="weight",
        gamma=0.0,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        is_cross_entropy=True,
        check_values=check_values,
        convert_logits=convert_logits,
    )


def prepare_focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: object = -1,
    gamma: object = 2.0,
    alpha: object = None,
    ignore_index: object = -100,
    reduction: object = "mean",
    label_smoothing: object = 0.0,
    check_values: bool = True,
    convert_logits: bool = True,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    """Validate the arguments of :func:`focal_loss`; a scalar alpha becomes [1-α, α, …, α].

    `check_values` and `convert_logits` as in :func:`prepare_cross_entropy`.
    """
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    return _prepare(
        logits,
        target,
        axis=axis,
        class_weight=alpha,
        class_weight_name="alpha",
        gamma=gamma,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        is_cross_entropy=False,
        check_values=check_values,
        convert_logits=convert_logits,
    )


def _along_class_axis(xp: Namespace, vector: Array, config: SoftmaxConfig, ndim: int) -> Array:
    """A length-C vector shaped to broadcast along the class axis of an ndim-d array."""
    shape = [1] * ndim
    shape[config.axis] = config.num_classes
    return xp.reshape(vector, tuple(shape))


def _index_dtype(xp: Namespace) -> Any:
    """The namespace's default indexing dtype: int64, or int32 for JAX without x64.

    Asking JAX for int64 when x64 is off warns and truncates; the default is what it has.
    """
    return xp.__array_namespace_info__().default_dtypes()["indexing"]


def _class_ids(xp: Namespace, config: SoftmaxConfig, ndim: int, like: Array) -> Array:
    ids = xp.arange(config.num_classes, dtype=_index_dtype(xp), device=_checks.device(like))
    return _along_class_axis(xp, ids, config, ndim)


def _max_and_log_sum_exp(xp: Namespace, logits: Array, axis: int) -> tuple[Array, Array]:
    """The row max m and log Σ_k exp(z_k - m) along `axis`, both with the axis kept.

    A namespace may carry a native ``multiloss_max_and_log_sum_exp(logits, axis)`` giving
    the same numbers faster (the torch adapter's works in place on its own temporary).
    """
    native = getattr(xp, "multiloss_max_and_log_sum_exp", None)
    if native is not None:
        return native(logits, axis)
    row_max = xp.max(logits, axis=axis, keepdims=True)
    return row_max, xp.log(xp.sum(xp.exp(logits - row_max), axis=axis, keepdims=True))


def _target_log_softmax(
    xp: Namespace, logits: Array, index: Array, axis: int
) -> tuple[Array, Array, Array]:
    """The row max m, L = log Σ_k exp(z_k - m) and the target's log-probability
    ℓ_t = (z_t - m) - L, all with the class axis kept.

    A namespace may carry a native ``multiloss_target_log_softmax(logits, index, axis)``
    giving the same quantities faster (the torch adapter's runs PyTorch's fused
    log-softmax kernel a cache-sized slab at a time); it may return None for m and L if
    its own ``multiloss_scaled_softmax_with_target`` does not need them.
    """
    native = getattr(xp, "multiloss_target_log_softmax", None)
    if native is not None:
        return native(logits, index, axis)
    row_max, log_sum_exp = _max_and_log_sum_exp(xp, logits, axis)
    target_log_p = (xp.take_along_axis(logits, index, axis=axis) - row_max) - log_sum_exp
    return row_max, log_sum_exp, target_log_p


def _scaled_softmax_with_target(
    xp: Namespace,
    config: SoftmaxConfig,
    logits: Array,
    residuals: SoftmaxResiduals,
    index: Array,
    target_value: Array,
    scale: Array,
) -> Array:
    """scale · p, p = softmax(z), with the entry at `index` along the class axis set to
    scale · target_value: the rank-one gradient of a hard target.

    A namespace may carry a native ``multiloss_scaled_softmax_with_target(logits, row_max,
    log_sum_exp, index, target_value, scale, axis)`` giving the same quantity faster (the
    torch adapter's runs PyTorch's fused softmax kernel a cache-sized slab at a time).
    """
    native = getattr(xp, "multiloss_scaled_softmax_with_target", None)
    if native is not None:
        return native(
            logits,
            residuals.row_max,
            residuals.log_sum_exp,
            index,
            target_value,
            scale,
            config.axis,
        )
    row_max, log_sum_exp = residuals.row_max, residuals.log_sum_exp
    if row_max is None:
        row_max, log_sum_exp = _max_and_log_sum_exp(xp, logits, config.axis)
    # exp(z - m) / Σ_k exp(z_k - m), the exp written exactly as in _max_and_log_sum_exp:
    # where forward and backward compile together (JAX under jit) XLA then computes it
    # once, as optax does (measured: 1.6x -> 1.0x the time of optax at 8192x1000).
    p = xp.exp(logits - row_max) / xp.exp(log_sum_exp)
    on_target = _class_ids(xp, config, logits.ndim, logits) == index
    return xp.where(on_target, target_value, p) * scale


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
        on_target = _class_ids(xp, config, logits.ndim, logits) == hard.index
        high = xp.full_like(logits, 1.0 - smoothing + uniform)
        q = xp.where(on_target, high, xp.full_like(logits, uniform)) * hard.row_mask
    else:
        q = operands.target
        if smoothing:
            q = q * (1.0 - smoothing) + uniform
    if operands.class_weight is not None:
        q = q * _along_class_axis(xp, operands.class_weight, config, logits.ndim)
    return q


def _uses_soft_path(config: SoftmaxConfig) -> bool:
    return not config.hard_target or config.label_smoothing > 0


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


def softmax_forward(
    xp: Namespace, config: SoftmaxConfig, operands: SoftmaxOperands
) -> tuple[Array, SoftmaxResiduals]:
    """The reduced loss (compute dtype) and the residuals for :func:`softmax_vjp`."""
    logits, axis, gamma = operands.logits, config.axis, config.gamma
    hard = _hard_target(xp, config, operands) if config.hard_target else None
    denominator = _denominator(xp, config, operands, hard)

    if _uses_soft_path(config):
        row_max, log_sum_exp = _max_and_log_sum_exp(xp, logits, axis)
        coefficient = _soft_coefficients(xp, config, operands, hard)
        log_p = (logits - row_max) - log_sum_exp
        per_element = xp.sum(
            times_nonzero(xp, coefficient, focal_term(xp, log_p, gamma)), axis=axis, keepdims=True
        )
        residuals = SoftmaxResiduals(row_max, log_sum_exp, denominator)
    else:
        row_max, log_sum_exp, target_log_p = _target_log_softmax(xp, logits, hard.index, axis)
        per_element = times_nonzero(xp, hard.coefficient, focal_term(xp, target_log_p, gamma))
        residuals = SoftmaxResiduals(
            row_max, log_sum_exp, denominator, hard.coefficient, target_log_p
        )

    per_element = xp.squeeze(per_element, axis=axis)
    return reduce(xp, per_element, config.reduction, denominator), residuals


def softmax_vjp(
    xp: Namespace,
    config: SoftmaxConfig,
    operands: SoftmaxOperands,
    residuals: SoftmaxResiduals,
    cotangent: Array,
) -> Array:
    """cotangent · ∂loss/∂logits, with the logits' shape, in the compute dtype (a native
    pass over 16-bit logits may return it in their own dtype).

    `cotangent` has the shape of the reduced loss: 0-d for "mean"/"sum", the per-element
    shape for "none".
    """
    logits, axis, gamma = operands.logits, config.axis, config.gamma
    element_cotangent = per_element_cotangent(
        xp, cotangent, config.reduction, residuals.denominator
    )
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)
    if _uses_soft_path(config):
        hard = _hard_target(xp, config, operands) if config.hard_target else None
        log_p = (logits - residuals.row_max) - residuals.log_sum_exp
        p = xp.exp(log_p)
        coefficient = _soft_coefficients(xp, config, operands, hard)
        weighted_slope = times_nonzero(xp, coefficient, focal_slope(xp, log_p, gamma))
        total = xp.sum(weighted_slope, axis=axis, keepdims=True)
        return element_cotangent * (p * total - weighted_slope)

    target_log_p = residuals.target_log_p
    row_scale = element_cotangent * _weighted_slope(
        xp, residuals.target_coefficient, target_log_p, gamma
    )
    # p_t - 1 = -u_t = expm1(ℓ_t): exact also where p_t is close to 1.
    minus_u = xp.expm1(target_log_p)
    index = _target_index(xp, config, operands.target)
    return _scaled_softmax_with_target(xp, config, logits, residuals, index, minus_u, row_scale)


def _weighted_slope(xp: Namespace, coefficient: Array, log_p: Array, gamma: float) -> Array:
    """c · A(ℓ); c itself for cross-entropy (A ≡ 1).

    A plain product: A is finite wherever ℓ is a number, and where ℓ is NaN (a NaN logit)
    the gradient's whole row is NaN through p whatever c is.
    """
    if gamma == 0:
        return coefficient
    return coefficient * focal_slope(xp, log_p, gamma)
