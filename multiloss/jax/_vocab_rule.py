"""The custom rule of `multiloss.jax.distributed`'s vocabulary-parallel losses.

A `jax.custom_vjp` around the core's `vocab_parallel_forward` (two all-reduces over the
mesh axis that shards the classes: `lax.pmax`, `lax.psum`) and `vocab_parallel_vjp` (no
collective); under `multiloss.jax.engine("pallas")` (no label smoothing) the shard's row
partials are the Pallas row-partials kernel's and the gradient the softmax backward
kernel's (`multiloss.jax._pallas.softmax`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._core import _reduce
from .._core.vocab_parallel import (
    VocabParallelConfig,
    VocabParallelOperands,
    vocab_parallel_forward,
    vocab_parallel_row_factors,
    vocab_parallel_vjp,
)
from ._engine import uses_kernels

Array = jax.Array


@dataclass(frozen=True)
class _Collectives:
    """`lax.pmax` / `lax.psum` over the mesh axis that shards the classes."""

    axis_name: Any

    @property
    def rank(self) -> Array:
        return lax.axis_index(self.axis_name)

    @property
    def size(self) -> int:
        return int(lax.axis_size(self.axis_name))

    def max(self, x: Array) -> Array:
        return lax.pmax(x, self.axis_name)

    def sum(self, x: Array) -> Array:
        return lax.psum(x, self.axis_name)


# ---------------------------------------------------------------------------------------
# The custom rule: forward with two all-reduces, backward with none


def _operands(config: VocabParallelConfig, logits: Array, target: Array, weight: Any) -> Any:
    dtype = jnp.float32 if jnp.finfo(logits.dtype).bits < 32 else logits.dtype
    return VocabParallelOperands(logits.astype(dtype), target, weight)


def kernels_for(config: VocabParallelConfig) -> bool:
    """Whether the shard is read by the Pallas kernels: the engine chosen while tracing
    says so, and no label smoothing (its row sums need a second read of the logits)."""
    return uses_kernels() and not config.label_smoothing


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def sharded_loss(
    config: VocabParallelConfig,
    axis_name: Any,
    kernels: bool,
    logits: Array,
    target: Array,
    weight: Any,
) -> tuple[Array, Array]:
    """The reduced loss and the call's "mean" denominator (compute dtype); `kernels`: by
    the Pallas kernels (:func:`kernels_for`, decided once, when the call is traced)."""
    return _loss_fwd(config, axis_name, kernels, logits, target, weight)[0]


def _loss_fwd(
    config: VocabParallelConfig,
    axis_name: Any,
    kernels: bool,
    logits: Array,
    target: Array,
    weight: Any,
) -> tuple[tuple[Array, Array], Any]:
    operands = _operands(config, logits, target, weight)
    partials = None
    if kernels:
        from ._pallas.softmax import shard_partials

        def partials(_: Array, target: Array, offset: Any) -> tuple[Array, Array, Array]:
            # the logits as given: a 16-bit shard is read as it is, not copied to float32
            return shard_partials(config, logits, target, offset)

    collectives = _Collectives(axis_name)
    loss, residuals = vocab_parallel_forward(jnp, config, operands, collectives, partials)
    return (loss, residuals.denominator), (logits, target, weight, residuals)


def _loss_bwd(
    config: VocabParallelConfig, axis_name: Any, kernels: bool, saved: Any, cotangents: Any
) -> tuple[Array, None, Any]:
    logits, target, weight, residuals = saved
    zero_weight = None if weight is None else jnp.zeros_like(weight)
    if kernels:
        from ._pallas.softmax import shard_backward

        element = _reduce.per_element_cotangent(
            jnp, cotangents[0], config.reduction, residuals.mean_scale
        )
        factors = vocab_parallel_row_factors(jnp, residuals)
        grad = shard_backward(config, logits, residuals, factors, element)
        return grad, None, zero_weight
    operands = _operands(config, logits, target, weight)
    grad = vocab_parallel_vjp(jnp, config, operands, residuals, cotangents[0])
    # The denominator depends on the target and the weight only; the weight is a constant
    # (no_derivative refuses its derivative), so its zero cotangent is never used.
    return grad.astype(logits.dtype), None, zero_weight


sharded_loss.defvjp(_loss_fwd, _loss_bwd)


__all__ = ["kernels_for", "sharded_loss"]
