"""The fast-path seam: the few kernels of the softmax losses that a backend may replace.

The core computes everything with the array API standard. Three pieces of the softmax
losses are worth a backend's own implementation (a fused kernel, work in place on a
cache-sized slab); :class:`SoftmaxKernels` names them, with the generic array-API
implementations as defaults, and an adapter hands its own in explicitly
(``_core.forward(prepared, kernels)``). Each replacement must return the same quantities
as the default it replaces, to a few ulps.

* ``max_and_log_sum_exp(xp, logits, axis)``: the row max m and L = log Σ_k exp(z_k - m),
  both with the class axis kept;
* ``log_softmax(xp, logits, axis)``: m, L and the log-softmax ℓ = (z - m) - L; it **may
  return None for m and L** (a fused kernel does not form them), and the backward pass
  then calls it again instead of reading them;
* ``target_log_softmax(xp, logits, index, axis)``: m, L and the target's log-probability
  ℓ_t = (z_t - m) - L, relatively exact where p_t is close to 1
  (:func:`target_log_p_from_others`: the loss of a confident row keeps its digits). It
  **may return None for m and L** when its own ``scaled_softmax_with_target`` does not
  read them (a fused kernel recomputes them in cache); the core then recomputes them
  wherever another pass needs them;
* ``scaled_softmax_with_target(xp, logits, row_max, log_sum_exp, index, target_entry,
  scale, axis)``: scale · softmax(z) with the entry at `index` along the class axis set to
  target_entry (the gradient of a class-index target: rank one, plus the z-loss's p). `row_max` and
  `log_sum_exp` are None where ``target_log_softmax`` returned None for them.

Only the class-index path without label smoothing goes through the last two; the other
paths (probability targets, label smoothing) go through ``log_softmax``.

The sigmoid losses have two of their own (:class:`SigmoidKernels`):

* ``softplus_pair(xp, x)``: softplus(x) and softplus(-x), each exact to a few ulps for
  every finite x (no cancellation for large |x|), inf at ±inf on the side that diverges
  and 0 on the other;
* ``sigmoid_pair(xp, x)``: σ(x) and σ(-x), each exact to a few ulps (σ(-x) is not formed
  as 1 - σ(x), which cancels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _checks

Array = Any
Namespace = Any


def max_and_log_sum_exp(xp: Namespace, logits: Array, axis: int) -> tuple[Array, Array]:
    """The row max m and log Σ_k exp(z_k - m) along `axis`, both with the axis kept."""
    row_max = xp.max(logits, axis=axis, keepdims=True)
    return row_max, xp.log(xp.sum(xp.exp(logits - row_max), axis=axis, keepdims=True))


def log_softmax(
    xp: Namespace, logits: Array, axis: int
) -> tuple[Array | None, Array | None, Array]:
    """The row max m, L = log Σ_k exp(z_k - m) (class axis kept) and ℓ = (z - m) - L."""
    row_max, log_sum_exp = max_and_log_sum_exp(xp, logits, axis)
    return row_max, log_sum_exp, (logits - row_max) - log_sum_exp


def target_log_softmax(
    xp: Namespace, logits: Array, index: Array, axis: int
) -> tuple[Array | None, Array | None, Array]:
    """The row max m, L = log Σ_k exp(z_k - m) and ℓ_t = (z_t - m) - L, class axis kept;
    ℓ_t relatively exact also where p_t rounds to 1 (:func:`target_log_p_from_others`): the sum over
    the other classes is formed apart from the target's own term."""
    row_max = xp.max(logits, axis=axis, keepdims=True)
    shifted = xp.exp(logits - row_max)
    on_target = class_ids(xp, logits, axis) == index
    others = xp.sum(xp.where(on_target, 0.0, shifted), axis=axis, keepdims=True)
    target_logit = xp.take_along_axis(logits, index, axis=axis)
    log_sum_exp, log_p_t = target_log_p_from_others(xp, row_max, others, target_logit)
    return row_max, log_sum_exp, log_p_t


def target_log_p_from_others(
    xp: Namespace, row_max: Array, others: Array, target_logit: Array
) -> tuple[Array, Array]:
    """L = log Σ_k e^{z_k - m} and ℓ_t = z_t - lse from the row max m, the sum over the
    other classes S = Σ_{k≠t} e^{z_k - m} and the target's logit z_t.

    Where the target holds the row max (m = z_t), lse - z_t = log1p(S): relatively exact,
    also for a confident row whose p_t rounds to 1 (S is formed without the target's own
    term 1, so its digits survive; `(z_t - m) - L` would be 0 in float32 from a margin
    of about 17 on). Elsewhere p_t ≤ 1/2 and lse - z_t = (m - z_t) + L, a sum of two
    non-negative terms, is relatively exact as it is.
    """
    margin = row_max - target_logit
    log_sum_exp = xp.log(others + xp.exp(-margin))
    return log_sum_exp, -xp.where(margin == 0, xp.log1p(others), margin + log_sum_exp)


def scaled_softmax_with_target(
    xp: Namespace,
    logits: Array,
    row_max: Array | None,
    log_sum_exp: Array | None,
    index: Array,
    target_entry: Array,
    scale: Array,
    axis: int,
) -> Array:
    """scale · p, p = softmax(z), with the entry at `index` set to target_entry."""
    if row_max is None or log_sum_exp is None:
        row_max, log_sum_exp = max_and_log_sum_exp(xp, logits, axis)
    # exp(z - m) / Σ_k exp(z_k - m), the exp written exactly as in max_and_log_sum_exp:
    # where forward and backward compile together (JAX under jit) XLA then computes it
    # once, as optax does (measured: 1.6x -> 1.0x the time of optax at 8192x1000).
    p = xp.exp(logits - row_max) / xp.exp(log_sum_exp)
    return xp.where(class_ids(xp, logits, axis) == index, target_entry, p * scale)


def index_dtype(xp: Namespace) -> Any:
    """The namespace's default indexing dtype: int64, or int32 for JAX without x64.

    Asking JAX for int64 when x64 is off warns and truncates; the default is what it has.
    """
    return xp.__array_namespace_info__().default_dtypes()["indexing"]


def class_ids(xp: Namespace, like: Array, axis: int) -> Array:
    """0, 1, …, C-1 along the class axis of `like` (C = its size there), broadcastable."""
    num_classes = like.shape[axis]
    ids = xp.arange(num_classes, dtype=index_dtype(xp), device=_checks.device(like))
    shape = [1] * like.ndim
    shape[axis] = num_classes
    return xp.reshape(ids, tuple(shape))


@dataclass(frozen=True)
class SoftmaxKernels:
    """The replaceable kernels of the softmax losses (see the module docstring)."""

    max_and_log_sum_exp: Callable[[Namespace, Array, int], tuple[Array, Array]] = (
        max_and_log_sum_exp
    )
    log_softmax: Callable[[Namespace, Array, int], tuple[Array | None, Array | None, Array]] = (
        log_softmax
    )
    target_log_softmax: Callable[
        [Namespace, Array, Array, int], tuple[Array | None, Array | None, Array]
    ] = target_log_softmax
    scaled_softmax_with_target: Callable[
        [Namespace, Array, Array | None, Array | None, Array, Array, Array, int], Array
    ] = scaled_softmax_with_target


GENERIC = SoftmaxKernels()
"""The array-API implementations: what every backend gets unless its adapter says otherwise."""


def softplus_pair(xp: Namespace, x: Array) -> tuple[Array, Array]:
    """softplus(x) and softplus(-x), each as max(±x, 0) + log1p(e^-|x|): exact for large
    |x| (no cancellation), finite for every finite x."""
    tail = xp.log1p(xp.exp(-xp.abs(x)))
    return xp.clip(x, min=0) + tail, xp.clip(-x, min=0) + tail


def sigmoid_pair(xp: Namespace, x: Array) -> tuple[Array, Array]:
    """σ(x) = e^{-softplus(-x)} and σ(-x) = e^{-softplus(x)}, exact in both tails.

    Where a pass forms both the softplus pair and this one (the focal losses), the
    softplus pair is computed twice: compilers (XLA, inductor) merge the two.
    """
    softplus_pos, softplus_neg = softplus_pair(xp, x)
    return xp.exp(-softplus_neg), xp.exp(-softplus_pos)


@dataclass(frozen=True)
class SigmoidKernels:
    """The replaceable kernels of the sigmoid losses (see the module docstring)."""

    softplus_pair: Callable[[Namespace, Array], tuple[Array, Array]] = softplus_pair
    sigmoid_pair: Callable[[Namespace, Array], tuple[Array, Array]] = sigmoid_pair


GENERIC_SIGMOID = SigmoidKernels()
"""The array-API implementations of the sigmoid kernels."""
