r"""Vocabulary-parallel softmax losses: the class axis sharded across ranks (Megatron-LM).

Each of R ranks holds a contiguous, equal slice of the C classes, in rank order: rank r
holds the logits of the classes [r·C_l, (r+1)·C_l), C_l = C / R. The target holds global
class indices, the same on every rank, and so does every per-row quantity once the
collectives have run: every rank returns the same global loss, and the gradient with
respect to its own slice of the logits.

Forward, per row (with z the local logits, t the target, m_i the row mask: 1 counted, 0
ignored, NaN for an out-of-range index that could not be checked), two all-reduces:

1. M = all-reduce-max of the local row max;
2. one all-reduce-sum of the local row sums, stacked: Σ_k e^{z_k - M}; z_t - M (on the
   rank that holds t, 0 elsewhere); for a sharded weight, w_t (likewise); for label
   smoothing, Σ_k w_k (z_k - M) (w ≡ 1 without a weight) and, for a sharded weight, Σ_k w_k.

Then L = log Σ_k e^{z_k - M}, ℓ_t = (z_t - M) - L, lse = M + L, c_t = w_t · m_i (α_t for the
focal loss) and, with f the per-class term (:class:`.terms.Focal`),

    loss_i = (1-ε) c_t f(ℓ_t) + (ε/C) m_i (L Σ_k w_k - Σ_k w_k (z_k - M)) + λ ω_i lse²,

PyTorch's weighted label smoothing -(1-ε) w_t log p_t - (ε/C) Σ_k w_k log p_k (for
cross-entropy only: with f = -ℓ the smoothing term is linear in L, so its row sums can be
all-reduced before L is known), and the z-loss with ω_i = c_t for weighted cross-entropy,
m_i otherwise (``softmax._row_weight``). "mean" divides by Σ_i c_t (weighted cross-entropy)
or Σ_i m_i; over nothing it is 0.

Backward, with no collective (Megatron's scheme: M, L and ℓ_t are kept per row):

    ∂loss_i/∂z_k = p_k (a + r) - a [k = t] - (ε/C) m_i w_k [k ≠ t],

a = c_t A_t (A = -df/dℓ, 1 for cross-entropy) without smoothing and (1 - ε + ε/C) c_t with
it, r = (ε/C) m_i (Σ_k w_k - w_t) + 2λ ω_i lse; the target's entry is formed as
a expm1(ℓ_t) + r p_t, exact where p_t is close to 1 (as in :mod:`.softmax`).

The collectives are the caller's (:class:`Collectives`): ``torch.distributed`` for the
torch adapter, ``lax.pmax``/``lax.psum`` for the JAX one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from . import _checks
from ._numerics import times_nonzero
from ._reduce import mean_scale, normalizer_scale, per_element_cotangent, reduce
from .kernels import class_ids, index_dtype
from .prepare import scalar_alpha
from .registry import VOCAB_PARALLEL, Loss, term_of
from .terms import Term

Array = Any
Namespace = Any


class Collectives(Protocol):
    """The engine's collectives over the ranks that share the class axis.

    ``max`` and ``sum`` all-reduce an array (the same shape on every rank) and return the
    result; they may reduce in place the array they are given, which the core never
    reads again. ``rank`` is this rank's index (a Python int, or a 0-d integer array
    such as JAX's ``lax.axis_index``), ``size`` the number of ranks R (a Python int).
    """

    @property
    def rank(self) -> Any: ...

    @property
    def size(self) -> int: ...

    def max(self, x: Array) -> Array: ...

    def sum(self, x: Array) -> Array: ...


@dataclass(frozen=True)
class VocabParallelConfig:
    """Everything static about one vocabulary-parallel call; hashable."""

    axis: int
    local_classes: int
    """C_l, the classes of this rank's slice."""
    num_classes: int
    """C = R · C_l, the global class count."""
    term: Term
    ignore_index: int
    label_smoothing: float
    reduction: str
    """"sum" where a normaliser is given: the adapter divides the sum by it."""
    weight_layout: str
    """"none", "whole" (length C, on every rank) or "sharded" (length C_l, this rank's)."""
    mean_over_target_weight: bool
    """"mean" divides by Σ w_{t_i} (PyTorch's weighted cross-entropy mean)."""
    indices_checked: bool = False
    z_loss: float = 0.0
    shards_checked: bool = False
    """Whether unequal slices raise (the engine may read the first all-reduce's result
    now); otherwise they make the loss NaN. Either way never a silently wrong loss."""


class VocabParallelOperands(NamedTuple):
    """The arrays of one call: the local logits (compute dtype), the global class indices
    (index dtype) and the class weight as given (whole or this rank's slice) or None."""

    logits: Array
    target: Array
    class_weight: Array | None


class VocabParallelResiduals(NamedTuple):
    """What the forward pass keeps for the backward pass, each per row with the class
    axis kept (size 1), or 0-d, besides this rank's slice of the weight: O(N + C_l),
    never O(N×C)."""

    row_max: Array
    """M, the global row max."""
    log_sum_exp: Array
    """L = log Σ_k e^{z_k - M} over all the classes."""
    target_log_p: Array
    """ℓ_t."""
    local_target: Array
    """t - r·C_l: the target's index in this rank's slice (outside [0, C_l) elsewhere)."""
    rank_one: Array
    """a, the coefficient of -onehot(t)."""
    rest: Array
    """r, the rest of the coefficient of p."""
    smoothing: Array | None
    """(ε/C) m_i, the coefficient of -w_k (None without label smoothing)."""
    local_weight: Array | None
    """This rank's slice of the class weight, where label smoothing reads it (else None)."""
    mean_scale: Array | None
    """1 / denominator of "mean" (None for "sum" and "none")."""
    denominator: Array
    """The "mean" denominator of this call, Σ_i c_t or Σ_i m_i (0-d)."""


# --------------------------------------------------------------------------------------
# Validation


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or int(size) < 1:
        raise ValueError(f"the number of ranks must be a positive integer; got {size!r}")
    return int(size)


def _check_target(xp: Namespace, target: Array, index_shape: tuple[int, ...], name: str) -> None:
    dtype = target.dtype
    if xp.isdtype(dtype, "bool") or not xp.isdtype(dtype, "integral"):
        kind = "floating probabilities" if xp.isdtype(dtype, "real floating") else "them"
        raise TypeError(
            f"{name} takes class indices only: target must hold integers; got dtype {dtype}"
            f" (probability targets are not offered: sharding {kind} over the class axis "
            f"would need the target sharded too)"
        )
    if tuple(target.shape) != index_shape:
        raise ValueError(
            f"target of class indices must have the logits' shape without the class axis, "
            f"{index_shape}; got {tuple(target.shape)}"
        )


def _weight_layout(name: str, weight: Array, local_classes: int, num_classes: int) -> str:
    """ "sharded" for a length-C_l weight, "whole" for a length-C one.

    Where R = 1 both lengths are C and the weight is read as this rank's slice: the same
    numbers (its all-reduces are over one rank), and under JAX's shard_map the result
    does not vary along the axis even where the weight's block does."""
    length = weight.shape[0] if weight.ndim == 1 else None
    if length == local_classes:
        return "sharded"
    if length == num_classes:
        return "whole"
    if local_classes == num_classes:
        shapes = f"shape ({num_classes},)"
    else:
        shapes = (
            f"either for every class, shape ({num_classes},), or for this rank's slice, "
            f"shape ({local_classes},)"
        )
    raise ValueError(
        f"{name} must have one entry per class, {shapes}; got shape {tuple(weight.shape)}"
    )


def _prepare(
    loss: str,
    logits: Array,
    target: Array,
    *,
    size: object,
    axis: object,
    class_weight: object,
    class_weight_name: str,
    term: Term,
    ignore_index: object,
    reduction: object,
    label_smoothing: object,
    z_loss: object,
    normalizer: object,
    check_values: bool,
    weighted_mean: bool,
) -> tuple[Namespace, VocabParallelConfig, VocabParallelOperands, Array | None]:
    xp = _checks.input_namespace(logits, target)
    _checks.check_logits(xp, logits)
    axis = _checks.normalize_axis(axis, logits.ndim)
    ranks = _check_size(size)
    local_classes = logits.shape[axis]
    if local_classes == 0:
        raise ValueError(
            f"logits must hold at least one class of this rank's slice; got shape "
            f"{tuple(logits.shape)} with 0 classes along axis {axis}"
        )
    num_classes = local_classes * ranks
    reduction = _checks.check_reduction(reduction)
    ignore_index = _checks.check_ignore_index(ignore_index)
    label_smoothing = _checks.check_real_number(
        "label_smoothing", label_smoothing, low=0.0, high=1.0
    )
    z_loss = _checks.check_real_number("z_loss", z_loss, low=0.0)
    _check_target(xp, target, _checks.shape_without(tuple(logits.shape), axis), loss)
    dtype = _checks.compute_dtype(xp, logits.dtype)
    logits = xp.astype(logits, dtype, copy=False)
    given, target = target, xp.astype(target, index_dtype(xp), copy=False)
    if check_values:
        _checks.check_class_indices(xp, given, target, num_classes, ignore_index)

    layout = "none"
    if not weighted_mean and isinstance(class_weight, numbers.Real):
        class_weight = scalar_alpha(xp, class_weight, num_classes, logits, dtype)
    if class_weight is not None:
        class_weight = _checks.as_weight_array(xp, class_weight_name, class_weight, logits, dtype)
        layout = _weight_layout(class_weight_name, class_weight, local_classes, num_classes)
        if check_values:
            _checks.check_weight_values(xp, class_weight_name, class_weight)
    scale = None
    if normalizer is not None:  # the one idiom (:mod:`._reduce`): "sum" times the scale
        _checks.check_normalized_reduction(reduction)
        scale = normalizer_scale(xp, normalizer, logits, check_values=check_values)
        reduction = "sum"
    config = VocabParallelConfig(
        axis=axis,
        local_classes=local_classes,
        num_classes=num_classes,
        term=term,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        weight_layout=layout,
        mean_over_target_weight=weighted_mean and class_weight is not None,
        indices_checked=check_values,
        z_loss=z_loss,
    )
    return xp, config, VocabParallelOperands(logits, target, class_weight), scale


FOCAL_SMOOTHING = (
    "label_smoothing > 0 is not offered by vocab_parallel_focal_loss: with the focal term "
    "the smoothed loss Σ_k c_k f(ℓ_k) is not linear in the log-sum-exp, so the forward pass "
    "would need a third all-reduce (once the log-sum-exp is known) and the backward pass a "
    "collective of its own (Σ_k c_k A_k); use vocab_parallel_cross_entropy for label "
    "smoothing, or the unsharded focal_loss; got label_smoothing={!r}"
)


def prepare_vocab_parallel(
    loss: Loss,
    logits: Array,
    target: Array,
    *,
    size: object,
    check_values: bool = True,
    axis: object = -1,
    normalizer: object = None,
    **options: Any,
) -> tuple[Namespace, VocabParallelConfig, VocabParallelOperands, Array | None]:
    """Validate a vocabulary-parallel call of the softmax `loss` (its registry record) on
    one rank's slice `logits` of `size` ranks' (docs/semantics.md, Bad input); returns
    ``(xp, config, operands, normalizer)``. `options` are the loss's, by the registry's
    names (:meth:`.registry.Loss.option_names` of the vocabulary-parallel variant).

    A class vector of length C_l is this rank's slice, of length C the whole vector; a
    scalar α becomes [1-α, α, …, α] over the global classes (class 0 on rank 0). A given
    `normalizer` (reduction "mean" only) is folded into the mean's scale, returned last
    (1 / normalizer, 0-d; None without one), and the config's reduction is "sum": the
    caller multiplies the loss by the scale (:func:`._reduce.normalizer_scale`).
    `check_values` False skips the checks that read array contents (traced or device
    data): an out-of-range class index then gives NaN for its element. Label smoothing
    is refused (NotImplementedError, :data:`FOCAL_SMOOTHING`) where the loss's term makes
    the smoothed loss nonlinear in the log-sum-exp (:attr:`.registry.Loss.sharded_smoothing`).
    """
    if VOCAB_PARALLEL not in loss.variants:
        raise TypeError(f"{loss.name} has no vocabulary-parallel form")
    term = term_of(loss, options)
    smoothing = options.get("label_smoothing", 0.0)
    if not loss.sharded_smoothing:
        checked = _checks.check_real_number("label_smoothing", smoothing, low=0.0, high=1.0)
        if checked > 0:
            message = FOCAL_SMOOTHING.format(smoothing)
            raise NotImplementedError(message.replace("focal_loss", loss.name))
    class_vector = loss.class_vector or "weight"
    return _prepare(
        f"vocab_parallel_{loss.name}",
        logits,
        target,
        size=size,
        axis=axis,
        class_weight=options.get(class_vector),
        class_weight_name=class_vector,
        term=term,
        ignore_index=options.get("ignore_index", -100),
        reduction=options.get("reduction", "mean"),
        label_smoothing=smoothing,
        z_loss=options.get("z_loss", 0.0),
        normalizer=normalizer,
        check_values=check_values,
        weighted_mean=loss.weighted_mean,
    )


# --------------------------------------------------------------------------------------
# Forward and backward


def _along_axis(config: VocabParallelConfig, start: int, ndim: int) -> tuple[slice, ...]:
    """The index of entry `start` along the class axis, kept (size 1)."""
    return (
        (slice(None),) * config.axis
        + (slice(start, start + 1),)
        + (slice(None),) * (ndim - config.axis - 1)
    )


def _local_weight(
    xp: Namespace, config: VocabParallelConfig, weight: Array, offset: Any, ndim: int
) -> Array:
    """This rank's slice of the class weight, shaped to broadcast along the class axis of
    an ndim-d array."""
    if config.weight_layout == "whole":
        ids = xp.arange(config.local_classes, dtype=index_dtype(xp), device=_checks.device(weight))
        weight = xp.take(weight, ids + offset, axis=0)
    shape = [1] * ndim
    shape[config.axis] = config.local_classes
    return xp.reshape(weight, tuple(shape))


def _gather(xp: Namespace, vector: Array, index: Array) -> Array:
    """vector[index] for an index array of any shape."""
    return xp.reshape(xp.take(vector, xp.reshape(index, (-1,)), axis=0), index.shape)


UNEQUAL_SLICES = (
    "the vocabulary-parallel losses need every rank to hold the same number of classes, "
    "C/R each, in rank order (Megatron-LM's layout); the ranks hold between {} and {} "
    "classes"
)


def _row_max_of_equal_slices(
    xp: Namespace, config: VocabParallelConfig, local_max: Array, collectives: Collectives
) -> Array:
    """M, the global row max, by the first all-reduce (MAX), which also carries this rank's
    slice width and its negation: every rank learns the widest and the narrowest slice
    without a collective of its own. Unequal slices raise (``shards_checked``) or make M,
    and so the loss and its gradient, NaN."""
    width = float(config.local_classes)
    widths = xp.asarray([width, -width], dtype=local_max.dtype, device=_checks.device(local_max))
    reduced = collectives.max(xp.concat([xp.reshape(local_max, (-1,)), widths]))
    rows = math.prod(local_max.shape)
    row_max = xp.reshape(reduced[:rows], local_max.shape)
    widest, narrowest = reduced[rows], -reduced[rows + 1]
    if config.shards_checked:
        if bool(widest != narrowest):
            raise ValueError(UNEQUAL_SLICES.format(int(narrowest), int(widest)))
        return row_max
    return xp.where(widest == narrowest, row_max, math.nan)


Partials = Callable[[Array, Array, Any], tuple[Array, Array, Array]]
"""An engine's one-pass row statistics of a shard: ``(logits, target, offset)`` ->
``(local row max, Σ_k e^{z_k - local max}, z_t where t is on the shard else 0)``, each with
the class axis kept (size 1)."""


def vocab_parallel_forward(
    xp: Namespace,
    config: VocabParallelConfig,
    operands: VocabParallelOperands,
    collectives: Collectives,
    partials: Partials | None = None,
) -> tuple[Array, VocabParallelResiduals]:
    """The reduced global loss (compute dtype) and the residuals for
    :func:`vocab_parallel_vjp`, with two all-reduces (see the module docstring).

    `partials`: an engine's row statistics of the shard in one pass (a kernel), used
    without label smoothing; the local Σ e^{z - local max} is rescaled to the global max
    once it is known, so the collectives stay the same two."""
    logits, axis, weight = operands.logits, config.axis, operands.class_weight
    num_classes, smoothing = config.num_classes, config.label_smoothing
    dtype = logits.dtype
    offset = collectives.rank * config.local_classes
    target = xp.expand_dims(operands.target, axis=axis)
    counted = target != config.ignore_index
    mask = xp.astype(counted, dtype)
    if not config.indices_checked:
        # Never a silent clamp or wrap to a valid class: an unchecked index out of
        # [0, C) poisons its element.
        mask = xp.where(counted & (xp.clip(target, 0, num_classes - 1) != target), math.nan, mask)
    local_target = target - offset
    here = (local_target >= 0) & (local_target < config.local_classes)
    index = xp.clip(local_target, 0, config.local_classes - 1)

    if partials is not None and not smoothing:
        local_max, local_sum, target_logit = partials(logits, operands.target, offset)
        row_max = _row_max_of_equal_slices(xp, config, local_max, collectives)
        zero = xp.zeros_like(row_max)
        rescaled = local_sum * xp.exp(local_max - row_max)
        fields = [
            xp.where(local_max == -math.inf, zero, rescaled),
            xp.where(here, target_logit - row_max, zero),
        ]
    else:
        local_max = xp.max(logits, axis=axis, keepdims=True)
        row_max = _row_max_of_equal_slices(xp, config, local_max, collectives)
        shifted = logits - row_max
        zero = xp.zeros_like(row_max)
        fields = [
            xp.sum(xp.exp(shifted), axis=axis, keepdims=True),
            xp.where(here, xp.take_along_axis(shifted, index, axis=axis), zero),
        ]
    if config.weight_layout == "sharded":
        fields.append(xp.where(here, _gather(xp, weight, index), zero))
    local_weight = None
    if smoothing:
        if weight is None:
            fields.append(xp.sum(shifted, axis=axis, keepdims=True))
        else:
            local_weight = _local_weight(xp, config, weight, offset, logits.ndim)
            weighted = times_nonzero(xp, local_weight, shifted)
            fields.append(xp.sum(weighted, axis=axis, keepdims=True))
            if config.weight_layout == "sharded":
                fields.append(zero + xp.sum(weight))
    summed = collectives.sum(xp.concat(fields, axis=axis))

    def field(position: int) -> Array:
        return summed[_along_axis(config, position, logits.ndim)]

    log_sum_exp = xp.log(field(0))
    target_log_p = field(1) - log_sum_exp
    if config.weight_layout == "none":
        coefficient = mask
    else:
        if config.weight_layout == "sharded":
            target_weight = field(2)
        else:
            target_weight = _gather(xp, weight, xp.clip(target, 0, num_classes - 1))
        coefficient = target_weight * mask
    term = config.term
    per_element = times_nonzero(xp, coefficient, term.value(xp, target_log_p))
    rank_one = coefficient if term.constant_slope else coefficient * term.slope(xp, target_log_p)
    rest = zero
    smoothing_scale = None
    if smoothing:
        weighted_sum = field(3 if config.weight_layout == "sharded" else 2)
        if weight is None:
            total_weight: Any = float(num_classes)
        elif config.weight_layout == "sharded":
            total_weight = field(4)
        else:
            total_weight = xp.sum(weight)
        smoothing_scale = times_nonzero(xp, mask, xp.full_like(mask, smoothing / num_classes))
        smooth_value = log_sum_exp * total_weight - weighted_sum
        per_element = (1.0 - smoothing) * per_element + times_nonzero(
            xp, smoothing_scale, smooth_value
        )
        rank_one = (1.0 - smoothing + smoothing / num_classes) * coefficient
        target_share = 1.0 if weight is None else target_weight
        rest = smoothing_scale * (total_weight - target_share)
    if config.z_loss:
        row_weight = coefficient if config.mean_over_target_weight else mask
        lse = row_max + log_sum_exp
        per_element = per_element + times_nonzero(xp, row_weight, config.z_loss * (lse * lse))
        rest = rest + times_nonzero(xp, row_weight, (2.0 * config.z_loss) * lse)

    denominator = xp.sum(coefficient if config.mean_over_target_weight else mask)
    scale = mean_scale(xp, denominator) if config.reduction == "mean" else None
    per_element = xp.squeeze(per_element, axis=axis)
    residuals = VocabParallelResiduals(
        row_max,
        log_sum_exp,
        target_log_p,
        local_target,
        rank_one,
        rest,
        smoothing_scale,
        local_weight,
        scale,
        denominator,
    )
    return reduce(xp, per_element, config.reduction, scale), residuals


def vocab_parallel_row_factors(
    xp: Namespace, residuals: VocabParallelResiduals
) -> tuple[Array, Array]:
    """Each row's two gradient factors, with the class axis kept: the factor of p_k,
    a + r, and the target's entry a·expm1(ℓ_t) + r·p_t (exact also where p_t is close
    to 1). Without label smoothing the gradient is p_k (a + r) off the target and the
    entry on it: what an engine's one-pass backward kernel needs besides M and L."""
    rank_one, rest, target_log_p = residuals.rank_one, residuals.rest, residuals.target_log_p
    return rank_one + rest, rank_one * xp.expm1(target_log_p) + rest * xp.exp(target_log_p)


def vocab_parallel_vjp(
    xp: Namespace,
    config: VocabParallelConfig,
    operands: VocabParallelOperands,
    residuals: VocabParallelResiduals,
    cotangent: Array,
) -> Array:
    """cotangent · ∂loss/∂(local logits), with the local logits' shape, in the compute
    dtype; no collective. `cotangent` has the reduced loss's shape (the same on every
    rank, as the loss is)."""
    logits, axis = operands.logits, config.axis
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, residuals.mean_scale)
    if config.reduction == "none":
        element_cotangent = xp.expand_dims(element_cotangent, axis=axis)
    p = xp.exp((logits - residuals.row_max) - residuals.log_sum_exp)
    factor, target_entry = vocab_parallel_row_factors(xp, residuals)
    grad = p * factor
    if residuals.smoothing is not None:
        local_weight = 1.0 if residuals.local_weight is None else residuals.local_weight
        grad = grad - residuals.smoothing * local_weight
    on_target = class_ids(xp, logits, axis) == residuals.local_target
    return element_cotangent * xp.where(on_target, target_entry, grad)


__all__ = [
    "FOCAL_SMOOTHING",
    "Collectives",
    "Partials",
    "VocabParallelConfig",
    "VocabParallelOperands",
    "VocabParallelResiduals",
    "prepare_vocab_parallel",
    "vocab_parallel_forward",
    "vocab_parallel_row_factors",
    "vocab_parallel_vjp",
]
