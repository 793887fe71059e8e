r"""Pallas kernels of the distribution focal loss (the core's `multiloss._core.distribution`).

The bins $0, \dots, n - 1$ lie along the class axis, moved last and flattened into rows
(a transpose where the axis is not the last, as in :mod:`.softmax`); a row block spans the
whole bin axis, read chunk by chunk with the masks of :mod:`._blocks` (no padded copy of
the logits; the last row block is masked where it runs past the array). With the target
$t$ of a row, $k = \min(\lfloor t \rfloor, n - 2)$, $c_k = k + 1 - t$, $c_{k+1} = t - k$ and
the row's scale $s = w$ (its element weight, 1 without one; NaN for a bad target that
could not be checked, which poisons its row as in the core):

* **forward**, one read of the row: an online softmax (running max $m$ and
  $\sum e^{z - m}$) that also picks up $z_k$ and $z_{k+1}$; per row in float32 (the compute
  dtype) the loss $-s\,(c_k \ell_k + c_{k+1} \ell_{k+1})$ with $\ell = z - \mathrm{lse}$, and
  $\mathrm{lse} = m + \log \sum e^{z - m}$;
* **backward**, one read and one write: $g_j = e\,s\,(e^{z_j - \mathrm{lse}} - c_j)$ with the
  two-hot target as the triangle $c_j = \max(1 - |j - t|, 0)$ (the core's form), $e$ the
  row's cotangent, written out of place in the logits' dtype.

16-bit logits are read as they are (arithmetic in float32); the target and the weight
travel as one float32 column each (the weight broadcast to the target's shape first).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ..._core import distribution as core
from ..._core._numerics import times_nonzero
from ..._core._reduce import count_scale, per_element_cotangent, reduce
from . import _blocks
from ._blocks import Blocks
from .softmax import Layout, rows_layout

Array = jax.Array


@dataclass(frozen=True)
class Spec:
    """What a distribution kernel is specialised on (hashable: Pallas's static data)."""

    blocks: Blocks
    num_bins: int
    weighted: bool
    """An element-weight column is read."""
    values_checked: bool
    """The targets were checked in [0, n - 1]: none is poisoned with NaN."""
    dtype: str
    """The compute dtype's name."""


ROWS = "rows inside"


def _refs(spec: Spec, names: tuple[str, ...], refs: tuple[Any, ...]) -> dict[str, Any]:
    named = dict(zip(names, refs, strict=True))
    named[ROWS] = _blocks.rows_inside(spec.blocks)
    return named


def _chunk(spec: Spec, refs: dict[str, Any], j: Any) -> tuple[Any, Array, Array]:
    """Chunk `j` of the block: its start, the logits in the compute dtype (-inf past the
    bins) and the bin ids."""
    b = spec.blocks
    start = pl.multiple_of(j * b.chunk, b.chunk)
    z = _blocks.read(refs["logits"], b, start, -math.inf, refs[ROWS]).astype(spec.dtype)
    column = start + lax.broadcasted_iota(jnp.int32, z.shape, 1)
    if b.columns_padded != spec.num_bins:
        z = jnp.where(column < spec.num_bins, z, -jnp.inf)
    return start, z, column


def _rows(spec: Spec, r: dict[str, Any]) -> tuple[Array, Array, Array]:
    """The block's target t (0 where bad), its low bin k (int32) and the row scale s:
    w · (1, or NaN for an unchecked bad target), 0 in padded rows."""
    b, dtype = spec.blocks, spec.dtype
    target = _blocks.load(r["target"], b, 0.0, r[ROWS]).astype(dtype)
    valid = (target >= 0) & (target <= spec.num_bins - 1)  # False for NaN
    safe = jnp.where(valid, target, 0.0)
    low = jnp.minimum(jnp.floor(safe), float(spec.num_bins - 2))
    row = pl.program_id(0) * b.block_rows + lax.broadcasted_iota(jnp.int32, (b.block_rows, 1), 0)
    scale = (row < b.rows).astype(dtype)
    if not spec.values_checked:  # never a silent clamp: the row becomes NaN
        scale = jnp.where(valid, scale, jnp.nan)
    if spec.weighted:
        scale = scale * _blocks.load(r["weight"], b, 0.0, r[ROWS]).astype(dtype)
    return safe, low, scale


def _forward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = _refs(spec, names, refs)
    b, dtype = spec.blocks, spec.dtype
    target, low, scale = _rows(spec, r)
    index = low.astype(jnp.int32)

    def online(j: Any, carry: Any) -> Any:
        row_max, total, low_logit, high_logit = carry
        _, z, column = _chunk(spec, r, j)
        new_max = jnp.maximum(row_max, jnp.max(z, axis=1, keepdims=True))
        shift = jnp.where(new_max == -jnp.inf, 0.0, new_max)  # no -inf - -inf
        total = total * jnp.exp(row_max - shift) + jnp.sum(
            jnp.exp(z - shift), axis=1, keepdims=True
        )
        low_logit = low_logit + jnp.sum(jnp.where(column == index, z, 0.0), 1, keepdims=True)
        high_logit = high_logit + jnp.sum(
            jnp.where(column == index + 1, z, 0.0), axis=1, keepdims=True
        )
        return new_max, total, low_logit, high_logit

    column_shape = (b.block_rows, 1)
    zeros = jnp.zeros(column_shape, dtype)
    first = (jnp.full(column_shape, -jnp.inf, dtype), zeros, zeros, zeros)
    row_max, total, low_logit, high_logit = _blocks.loop(b.chunks, online, first)
    log_sum = jnp.log(total)
    high_mass = target - low  # c_{k+1} = t - k; c_k = 1 - c_{k+1}
    low_log_p = (low_logit - row_max) - log_sum
    high_log_p = (high_logit - row_max) - log_sum
    unweighted = -(
        times_nonzero(jnp, 1.0 - high_mass, low_log_p) + times_nonzero(jnp, high_mass, high_log_p)
    )
    _blocks.store(r["loss"], b, times_nonzero(jnp, scale, unweighted), r[ROWS])
    _blocks.store(r["lse"], b, row_max + log_sum, r[ROWS])


def _backward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = _refs(spec, names, refs)
    b, dtype = spec.blocks, spec.dtype
    target, _, scale = _rows(spec, r)
    lse = _blocks.load(r["lse"], b, 0.0, r[ROWS]).astype(dtype)
    cotangent = _blocks.load(r["cotangent"], b, 0.0, r[ROWS]).astype(dtype)
    row = cotangent * scale
    grad_ref = r["grad"]

    def step(j: Any, carry: Any) -> Any:
        start, z, column = _chunk(spec, r, j)
        two_hot = jnp.maximum(1.0 - jnp.abs(column.astype(dtype) - target), 0.0)
        grad = row * (jnp.exp(z - lse) - two_hot)
        _blocks.write(grad_ref, b, start, grad.astype(grad_ref.dtype), r[ROWS])
        return carry

    _blocks.loop(b.chunks, step, 0)


# --------------------------------------------------------------------------------------
# The rows view of a prepared call, and the two passes


def _setup(
    config: core.DistributionConfig, operands: core.DistributionOperands
) -> tuple[Spec, Layout]:
    logits = operands.logits
    layout = rows_layout(config, logits)  # the bin axis moved last (a transpose if need be)
    rows = math.prod(layout.batch_shape)
    edge_rows = _blocks.edge_rows_for(logits)
    blocks = _blocks.blocks(rows, config.num_bins, logits.dtype, edge_rows=edge_rows)
    spec = Spec(
        blocks=blocks,
        num_bins=config.num_bins,
        weighted=operands.weight is not None,
        values_checked=config.values_checked,
        dtype=str(_blocks.compute_dtype(logits.dtype)),
    )
    return spec, layout


def _inputs(operands: core.DistributionOperands, spec: Spec, layout: Layout) -> dict[str, Array]:
    """The logits as rows (padded, with -inf, only where there are fewer rows than a
    block), the target and the weight as columns of the compute dtype."""
    b = spec.blocks
    inputs = {
        "logits": _blocks.pad_row_blocks(layout.rows(operands.logits), b, -math.inf),
        "target": _blocks.pad_rows(jnp.ravel(operands.target), b, 0.0, spec.dtype),
    }
    if operands.weight is not None:
        weight = jnp.broadcast_to(operands.weight, operands.target.shape)
        inputs["weight"] = _blocks.pad_rows(jnp.ravel(weight), b, 0.0, spec.dtype)
    return inputs


def forward(
    config: core.DistributionConfig, operands: core.DistributionOperands
) -> tuple[Array, Any]:
    """The reduced loss (compute dtype) and the residuals of :func:`backward` (each row's
    lse and the mean's scale)."""
    spec, layout = _setup(config, operands)
    b = spec.blocks
    column = jax.ShapeDtypeStruct((b.rows_padded, 1), spec.dtype)
    out = _blocks.call(
        functools.partial(_forward_kernel, spec),
        b,
        _inputs(operands, spec, layout),
        dict.fromkeys(("loss", "lse"), column),
        name="multiloss_distribution_forward",
    )
    per_row = out["loss"][:, 0]  # padded rows add 0
    scale = None
    if config.reduction == "none":
        loss = jnp.reshape(per_row[: b.rows], layout.batch_shape)
    else:
        if config.reduction == "mean":  # over the target's elements, whatever the weights
            scale = jnp.asarray(count_scale(b.rows), spec.dtype)
        loss = reduce(jnp, per_row, config.reduction, scale)
    return loss, (out["lse"], scale)


def backward(
    config: core.DistributionConfig,
    operands: core.DistributionOperands,
    residuals: Any,
    cotangent: Array,
) -> Array:
    """cotangent · ∂loss/∂logits = e · w · (p - c), in the logits' dtype and shape."""
    lse, scale = residuals
    spec, layout = _setup(config, operands)
    b = spec.blocks
    inputs = _inputs(operands, spec, layout)  # the same arrays as the forward's
    element = per_element_cotangent(jnp, cotangent, config.reduction, scale)
    if config.reduction == "none":
        element = _blocks.pad_rows(jnp.ravel(element), b, 0.0, spec.dtype)
    else:  # one number for every row
        element = jnp.reshape(jnp.asarray(element, spec.dtype), (1, 1))
    logits = inputs["logits"]
    out = _blocks.call(
        functools.partial(_backward_kernel, spec),
        b,
        {**inputs, "lse": lse, "cotangent": element},
        {"grad": jax.ShapeDtypeStruct(logits.shape, operands.logits.dtype)},
        name="multiloss_distribution_backward",
    )
    grad = out["grad"]
    return layout.unrows(grad if b.rows_padded == b.rows else grad[: b.rows])


__all__ = ["Spec", "backward", "forward"]
