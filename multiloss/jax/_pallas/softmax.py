r"""Pallas kernels of the softmax family: cross-entropy, focal and poly, every option.

Two kernels, one pass each over the logits (docs/math.md and the core's
`multiloss._core.softmax`, whose notation this follows):

* **forward**: each block of rows is read once with an online softmax (running row max
  $m$ and $\sum e^{z - m}$, rescaled when $m$ grows); with class indices and no label
  smoothing the target logit is picked up in the same pass, and the per-row float32
  results are the loss, $m$, $L = \log\sum e^{z-m}$ and the gradient's two row factors
  (the rank-one gradient $c_t A_t (p - \mathrm{onehot}_t)$ of section 5, plus the z-loss's
  $2\lambda\omega\,\mathrm{lse}\;p$): $K_1$ (the factor of $p_k$) and $K_2$ (the target
  entry, formed in float32 before it is rounded). Probability targets and label
  smoothing need $\sum_k c_k f(\ell_k)$ at the final $m$ and $L$: a second loop over the
  block (one more read), which also forms $S = \sum_k c_k A(\ell_k)$.
* **backward**: reads the logits once more and writes the gradient once, out of place, in
  the logits' dtype: $g_k = e\,(K_1 p_k)$ off the target and $e\,K_2$ on it (rank one), or
  $e\,(p_k S - c_k A(\ell_k))$; times $1 - \tanh^2(z/c)$ with soft-capping; $e$ is each
  row's cotangent.

The per-class term's value and slope are the core's own (`config.term.value(xp, ...)`,
`.slope`), run inside the kernel on :mod:`._portable`'s namespace (`jax.numpy` with
`expm1` and `log1p` written from `exp` and `log`, which Mosaic lowers): Pallas kernels are
written in `jax.numpy`, so no formula is restated here. Blocks, padding and the grid:
:mod:`._blocks`. Arithmetic in float32 for 16-bit logits, float64 for float64.
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

from ..._core import softmax as core
from ..._core._numerics import times_nonzero
from ..._core._reduce import count_scale, mean_scale, per_element_cotangent, reduce
from ..._core.terms import Term
from . import _blocks
from ._blocks import Blocks
from ._portable import xp

Array = jax.Array


@dataclass(frozen=True)
class Spec:
    """What a softmax kernel is specialised on (hashable: Pallas's static data)."""

    blocks: Blocks
    num_classes: int
    term: Term
    hard: bool
    """Class-index targets (with or without label smoothing)."""
    rank_one: bool
    """Class indices without label smoothing: one target column, a rank-one gradient."""
    smoothing: float
    z_loss: float
    softcap: float | None
    weighted: bool
    """A class-weight (or alpha) vector is read, one `(1, C)` row."""
    ignore_index: int
    indices_checked: bool
    over_target_weight: bool
    """The mean's denominator and the z-loss's ω are the target's weight c_t (PyTorch's
    weighted cross-entropy), not the row mask."""
    counts: bool
    """The forward pass writes each row's share of the mean's denominator."""
    dtype: str
    """The compute dtype's name."""
    shard: bool = False
    """The target is this shard's index of the class (vocabulary-parallel), unclipped: a
    row whose class lies on another shard picks no column."""


ROWS = "rows inside"
"""The key of :func:`._blocks.rows_inside` in a kernel's dict of refs."""


def _refs(spec: Spec, names: tuple[str, ...], refs: tuple[Any, ...]) -> dict[str, Any]:
    """A kernel's refs by name, and which of its block's rows lie inside the array."""
    named = dict(zip(names, refs, strict=True))
    named[ROWS] = _blocks.rows_inside(spec.blocks)
    return named


def _chunk(spec: Spec, refs: dict[str, Any], j: Any) -> tuple[Any, Array, Array, Array | None]:
    """Chunk `j` of the block's logits: its start, the (capped) logits in the compute dtype
    with -inf in padded columns, the class ids, and tanh(z / c) with soft-capping."""
    b = spec.blocks
    start = pl.multiple_of(j * b.chunk, b.chunk)
    z = _blocks.read(refs["logits"], b, start, -math.inf, refs[ROWS]).astype(spec.dtype)
    column = start + lax.broadcasted_iota(jnp.int32, z.shape, 1)
    tanh = None
    if spec.softcap is not None:
        tanh = jnp.tanh(z / spec.softcap)
        z = spec.softcap * tanh
    if b.columns_padded != spec.num_classes:
        z = jnp.where(column < spec.num_classes, z, -jnp.inf)
    return start, z, column, tanh


def _rows(spec: Spec, refs: dict[str, Any]) -> tuple[Array | None, Array]:
    """The block's target index (clipped into [0, C); None for probability targets) and row
    mask: 1 for a counted row, 0 for an ignored or padded one, NaN for a class index out of
    range that could not be checked (it poisons its row, as in the core)."""
    if spec.shard:
        target = _blocks.load(refs["target"], spec.blocks, -1, refs[ROWS])
        return target, jnp.ones(target.shape, spec.dtype)
    if not spec.hard:
        b = spec.blocks
        row = pl.program_id(0) * b.block_rows + lax.broadcasted_iota(
            jnp.int32, (b.block_rows, 1), 0
        )
        return None, (row < b.rows).astype(spec.dtype)
    target = _blocks.load(refs["target"], spec.blocks, spec.ignore_index, refs[ROWS])
    counted = target != spec.ignore_index
    index = jnp.clip(target, 0, spec.num_classes - 1)
    mask = counted.astype(spec.dtype)
    if not spec.indices_checked:
        mask = jnp.where(counted & (index != target), jnp.nan, mask)
    return index, mask


def _weight_chunk(spec: Spec, refs: dict[str, Any], start: Any) -> Array:
    return _blocks.read(refs["weight"], spec.blocks, start, 0.0).astype(spec.dtype)


def _coefficients(
    spec: Spec, refs: dict[str, Any], start: Any, column: Array, index: Any, mask: Array
) -> Array:
    """c_k = q_k · w_k · (row mask) of the soft path, 0 in padded columns."""
    b = spec.blocks
    uniform = spec.smoothing / spec.num_classes
    if spec.hard:
        high = 1.0 - spec.smoothing + uniform
        q = jnp.where(column == index, high, uniform).astype(spec.dtype)
    else:
        q = _blocks.read(refs["target"], b, start, 0.0, refs[ROWS]).astype(spec.dtype)
        if spec.smoothing:
            q = q * (1.0 - spec.smoothing) + uniform
    q = q * mask
    if spec.weighted:
        q = q * _weight_chunk(spec, refs, start)
    if b.columns_padded != spec.num_classes:
        q = jnp.where(column < spec.num_classes, q, 0.0)
    return q


def _online(spec: Spec, r: dict[str, Any], index: Any) -> tuple[Array, Array, Array, Array]:
    """One read of the block: the row max m, Σ e^{z - m}, and (with class indices) the
    target's logit and weight, 0 where the row picks no column."""
    b, dtype = spec.blocks, spec.dtype
    column_shape = (b.block_rows, 1)
    gather_weight = spec.hard and spec.weighted

    def online(j: Any, carry: Any) -> Any:
        row_max, total, target_logit, target_weight = carry
        start, z, column, _ = _chunk(spec, r, j)
        new_max = jnp.maximum(row_max, jnp.max(z, axis=1, keepdims=True))
        # a row whose logits so far are all -inf keeps total 0 (no -inf - -inf)
        shift = jnp.where(new_max == -jnp.inf, 0.0, new_max)
        total = total * jnp.exp(row_max - shift) + jnp.sum(
            jnp.exp(z - shift), axis=1, keepdims=True
        )
        if spec.rank_one:
            picked = jnp.where(column == index, z, 0.0)
            target_logit = target_logit + jnp.sum(picked, axis=1, keepdims=True)
        if gather_weight:
            picked = jnp.where(column == index, _weight_chunk(spec, r, start), 0.0)
            target_weight = target_weight + jnp.sum(picked, axis=1, keepdims=True)
        return new_max, total, target_logit, target_weight

    zeros = jnp.zeros(column_shape, dtype)
    start = (jnp.full(column_shape, -jnp.inf, dtype), zeros, zeros, zeros)
    return _blocks.loop(b.chunks, online, start)


def _partials_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = _refs(spec, names, refs)
    index, _ = _rows(spec, r)
    row_max, total, target_logit, _ = _online(spec, r, index)
    b = spec.blocks
    _blocks.store(r["max"], b, row_max, r[ROWS])
    _blocks.store(r["sum"], b, total, r[ROWS])
    _blocks.store(r["target_logit"], b, target_logit, r[ROWS])


def _forward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = _refs(spec, names, refs)
    b, dtype = spec.blocks, spec.dtype
    column_shape = (b.block_rows, 1)
    index, mask = _rows(spec, r)
    gather_weight = spec.hard and spec.weighted
    row_max, total, target_logit, target_weight = _online(spec, r, index)
    zeros = jnp.zeros(column_shape, dtype)
    log_sum = jnp.log(total)
    coefficient = target_weight * mask if gather_weight else mask  # c_t
    row_weight = coefficient if spec.over_target_weight else mask  # ω and the mean's share
    term = spec.term
    if spec.rank_one:
        log_p = (target_logit - row_max) - log_sum
        loss = times_nonzero(jnp, coefficient, term.value(xp, log_p))
        factor = coefficient if term.constant_slope else coefficient * term.slope(xp, log_p)
        entry = factor * xp.expm1(log_p)
    else:

        def second(j: Any, carry: Any) -> Any:
            loss, factor = carry
            start, z, column, _ = _chunk(spec, r, j)
            log_p = (z - row_max) - log_sum
            c = _coefficients(spec, r, start, column, index, mask)
            loss = loss + jnp.sum(times_nonzero(jnp, c, term.value(xp, log_p)), 1, keepdims=True)
            slope = c if term.constant_slope else times_nonzero(jnp, c, term.slope(xp, log_p))
            return loss, factor + jnp.sum(slope, axis=1, keepdims=True)

        loss, factor = _blocks.loop(b.chunks, second, (zeros, zeros))
        entry = None
    if spec.z_loss:
        lse = row_max + log_sum
        loss = loss + times_nonzero(jnp, row_weight, spec.z_loss * (lse * lse))
        slope = times_nonzero(jnp, row_weight, (2.0 * spec.z_loss) * lse)
        factor = factor + slope
        if entry is not None:
            entry = entry + slope * jnp.exp(log_p)
    _blocks.store(r["loss"], b, loss, r[ROWS])
    _blocks.store(r["max"], b, row_max, r[ROWS])
    _blocks.store(r["log_sum"], b, log_sum, r[ROWS])
    _blocks.store(r["factor"], b, factor, r[ROWS])
    if entry is not None:
        _blocks.store(r["entry"], b, entry, r[ROWS])
    if spec.counts:
        _blocks.store(r["count"], b, row_weight, r[ROWS])


def _backward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = _refs(spec, names, refs)
    b, dtype = spec.blocks, spec.dtype
    row_max = _blocks.load(r["max"], b, 0.0, r[ROWS]).astype(dtype)
    log_sum = _blocks.load(r["log_sum"], b, 0.0, r[ROWS]).astype(dtype)
    factor = _blocks.load(r["factor"], b, 0.0, r[ROWS]).astype(dtype)
    # (rows, 1), or (1, 1) for "mean"/"sum"
    cotangent = _blocks.load(r["cotangent"], b, 0.0, r[ROWS]).astype(dtype)
    grad_ref = r["grad"]
    index, mask = _rows(spec, r)

    def step(j: Any, carry: Any) -> Any:
        start, z, column, tanh = _chunk(spec, r, j)
        log_p = (z - row_max) - log_sum
        p = jnp.exp(log_p)
        if spec.rank_one:
            entry = _blocks.load(r["entry"], b, 0.0, r[ROWS]).astype(dtype)
            grad = jnp.where(column == index, entry, factor * p)
        else:
            c = _coefficients(spec, r, start, column, index, mask)
            slope = (
                c if spec.term.constant_slope else times_nonzero(jnp, c, spec.term.slope(xp, log_p))
            )
            grad = p * factor - slope
        grad = cotangent * grad
        if tanh is not None:
            grad = grad * (1.0 - tanh * tanh)
        _blocks.write(grad_ref, b, start, grad.astype(grad_ref.dtype), r[ROWS])
        return carry

    _blocks.loop(b.chunks, step, 0)


# --------------------------------------------------------------------------------------
# The rows view of a prepared call, and the two passes


@dataclass(frozen=True)
class Layout:
    """Where the rows of a call come from: the class axis moved last, then flattened."""

    axis: int
    ndim: int
    moved_shape: tuple[int, ...]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.moved_shape[:-1]

    def rows(self, array: Array) -> Array:
        """An array of the logits' shape as rows × classes."""
        if self.axis != self.ndim - 1:
            array = jnp.moveaxis(array, self.axis, -1)
        return jnp.reshape(array, (-1, self.moved_shape[-1]))

    def unrows(self, rows: Array) -> Array:
        array = jnp.reshape(rows, self.moved_shape)
        return jnp.moveaxis(array, -1, self.axis) if self.axis != self.ndim - 1 else array


def rows_layout(config: Any, logits: Array) -> Layout:
    """The rows view of `logits` along `config.axis` (any family's config with one)."""
    axis = config.axis % logits.ndim
    shape = list(logits.shape)
    moved = tuple(shape[:axis] + shape[axis + 1 :] + [shape[axis]])
    return Layout(axis, logits.ndim, moved)


def _spec(config: core.SoftmaxConfig, operands: core.SoftmaxOperands, blocks: Blocks) -> Spec:
    return Spec(
        blocks=blocks,
        num_classes=config.num_classes,
        term=config.term,
        hard=config.hard_target,
        rank_one=config.hard_target and not config.label_smoothing,
        smoothing=float(config.label_smoothing),
        z_loss=float(config.z_loss),
        softcap=config.softcap,
        weighted=operands.class_weight is not None,
        ignore_index=int(config.ignore_index),
        indices_checked=config.indices_checked,
        over_target_weight=config.mean_over_target_weight,
        counts=config.hard_target and config.reduction == "mean",
        dtype=str(_blocks.compute_dtype(operands.logits.dtype)),
    )


_INT32 = (-(2**31), 2**31 - 1)


def _inputs(
    config: core.SoftmaxConfig, operands: core.SoftmaxOperands, spec: Spec, layout: Layout
) -> dict[str, Array]:
    """The kernels' inputs, never padded (the kernels mask the last chunk of classes and
    the last block of rows) unless there are fewer rows than a block: then the logits
    (-inf), the class indices (`ignore_index`) or probabilities (0)."""
    b = spec.blocks
    inputs = {"logits": _blocks.pad_row_blocks(layout.rows(operands.logits), b, -math.inf)}
    if spec.hard:
        target = jnp.reshape(operands.target, (-1,))
        if target.dtype.itemsize > 4:  # never wrap an index into range
            target = jnp.clip(target, *_INT32)
        inputs["target"] = _blocks.pad_rows(target, b, spec.ignore_index, jnp.int32)
    else:
        inputs["target"] = _blocks.pad_row_blocks(layout.rows(operands.target), b, 0.0)
    if spec.weighted:
        inputs["weight"] = jnp.reshape(jnp.asarray(operands.class_weight, spec.dtype), (1, -1))
    return inputs


def _setup(config: core.SoftmaxConfig, operands: core.SoftmaxOperands) -> tuple[Spec, Layout]:
    layout = rows_layout(config, operands.logits)
    rows = math.prod(layout.batch_shape)
    edge_rows = _blocks.edge_rows_for(operands.logits)
    blocks = _blocks.blocks(rows, config.num_classes, operands.logits.dtype, edge_rows=edge_rows)
    return _spec(config, operands, blocks), layout


def forward(config: core.SoftmaxConfig, operands: core.SoftmaxOperands) -> tuple[Array, Any]:
    """The reduced loss (compute dtype) and the residuals of :func:`backward`."""
    spec, layout = _setup(config, operands)
    b = spec.blocks
    inputs = _inputs(config, operands, spec, layout)
    column = jax.ShapeDtypeStruct((b.rows_padded, 1), spec.dtype)
    names = ["loss", "max", "log_sum", "factor"]
    names += (["entry"] if spec.rank_one else []) + (["count"] if spec.counts else [])
    out = _blocks.call(
        functools.partial(_forward_kernel, spec),
        b,
        inputs,
        dict.fromkeys(names, column),
        name="multiloss_softmax_forward",
    )
    per_row = out["loss"][:, 0]  # padded rows add 0
    if config.reduction == "none":
        loss = jnp.reshape(per_row[: b.rows], layout.batch_shape)
        scale = None
    else:
        if config.reduction == "sum":
            scale = None
        elif spec.counts:
            denominator = jnp.sum(out["count"][:, 0])  # the loss's sibling: one fusion
            scale = (
                mean_scale(jnp, denominator)
                if spec.over_target_weight
                else jnp.clip(denominator, min=1.0) ** -1.0
            )
        else:  # probabilities: the element count
            scale = jnp.asarray(count_scale(b.rows), spec.dtype)
        loss = reduce(jnp, per_row, config.reduction, scale)
    rows_out = {key: out[key] for key in names if key not in ("loss", "count")}
    return loss, (rows_out, scale)


def backward(
    config: core.SoftmaxConfig,
    operands: core.SoftmaxOperands,
    residuals: Any,
    cotangent: Array,
) -> Array:
    """cotangent · ∂loss/∂logits, in the logits' dtype and shape."""
    rows_out, scale = residuals
    spec, layout = _setup(config, operands)
    b = spec.blocks
    inputs = _inputs(config, operands, spec, layout)  # the same arrays unless padded
    element = per_element_cotangent(jnp, cotangent, config.reduction, scale)
    if config.reduction == "none":
        element = _blocks.pad_rows(jnp.ravel(element), b, 0, spec.dtype)
    else:  # one number for every row
        element = jnp.reshape(jnp.asarray(element, spec.dtype), (1, 1))
    logits = inputs["logits"]
    out = _blocks.call(
        functools.partial(_backward_kernel, spec),
        b,
        {**inputs, **rows_out, "cotangent": element},
        {"grad": jax.ShapeDtypeStruct(logits.shape, operands.logits.dtype)},
        name="multiloss_softmax_backward",
    )
    grad = out["grad"]
    return layout.unrows(grad if b.rows_padded == b.rows else grad[: b.rows])


# --------------------------------------------------------------------------------------
# The vocabulary-parallel entry: one shard's row partials and its gradient


def _shard_setup(config: Any, logits: Array) -> tuple[Spec, Layout]:
    """The spec of a vocabulary shard (`config`: the core's `VocabParallelConfig`)."""
    layout = rows_layout(config, logits)
    rows = math.prod(layout.batch_shape)
    edge_rows = _blocks.edge_rows_for(logits)
    blocks = _blocks.blocks(rows, config.local_classes, logits.dtype, edge_rows=edge_rows)
    spec = Spec(
        blocks=blocks,
        num_classes=config.local_classes,
        term=config.term,
        hard=True,
        rank_one=True,
        smoothing=0.0,
        z_loss=0.0,
        softcap=None,
        weighted=False,
        ignore_index=int(config.ignore_index),
        indices_checked=True,
        over_target_weight=False,
        counts=False,
        dtype=str(_blocks.compute_dtype(logits.dtype)),
        shard=True,
    )
    return spec, layout


def _shard_inputs(spec: Spec, layout: Layout, logits: Array, local_target: Array) -> dict:
    """The shard's logits as rows, and the target's index in the shard as an int32 column
    (clipped to [-1, C_l]: a class on another shard matches no column)."""
    b = spec.blocks
    index = jnp.clip(jnp.reshape(local_target, (-1,)), -1, spec.num_classes)
    return {
        "logits": _blocks.pad_row_blocks(layout.rows(logits), b, -math.inf),
        "target": _blocks.pad_rows(index, b, -1, jnp.int32),
    }


def _unrows_column(column: Array, spec: Spec, layout: Layout) -> Array:
    """A `(rows_padded, 1)` kernel column as the logits' shape with the class axis kept."""
    values = jnp.reshape(column[: spec.blocks.rows, 0], layout.batch_shape)
    return jnp.expand_dims(values, layout.axis)


def shard_partials(
    config: Any, logits: Array, target: Array, offset: Any
) -> tuple[Array, Array, Array]:
    """The core's `partials` of `vocab_parallel_forward` (its `Partials`) by one kernel,
    one read of the shard: the local row max, Σ_k e^{z_k - local max} and the target's
    logit where the target is on this shard (else 0), each in the compute dtype with the
    class axis kept. `logits` as given (16-bit ones are read as they are)."""
    spec, layout = _shard_setup(config, logits)
    b = spec.blocks
    inputs = _shard_inputs(spec, layout, logits, target - offset)
    column = jax.ShapeDtypeStruct((b.rows_padded, 1), spec.dtype)
    out = _blocks.call(
        functools.partial(_partials_kernel, spec),
        b,
        inputs,
        dict.fromkeys(("max", "sum", "target_logit"), column),
        name="multiloss_softmax_partials",
    )
    return (
        _unrows_column(out["max"], spec, layout),
        _unrows_column(out["sum"], spec, layout),
        _unrows_column(out["target_logit"], spec, layout),
    )


def shard_backward(
    config: Any, logits: Array, residuals: Any, factors: tuple[Array, Array], element: Array
) -> Array:
    """cotangent · ∂loss/∂(the shard's logits) by the backward kernel, in the logits' dtype:
    p_k · factor off the target and `entry` on it (`factors`, the core's
    `vocab_parallel_row_factors`), times each row's cotangent `element` (the loss's shape
    without the class axis, or 0-d for every row). No label smoothing."""
    spec, layout = _shard_setup(config, logits)
    b = spec.blocks
    inputs = _shard_inputs(spec, layout, logits, residuals.local_target)

    def rows(value: Array) -> Array:
        return _blocks.pad_rows(jnp.reshape(value, (-1,)), b, 0, spec.dtype)

    if jnp.ndim(element):
        cotangent = rows(element)
    else:
        cotangent = jnp.reshape(jnp.asarray(element, spec.dtype), (1, 1))
    factor, entry = factors
    row_values = {
        "max": rows(residuals.row_max),
        "log_sum": rows(residuals.log_sum_exp),
        "factor": rows(factor),
        "entry": rows(entry),
    }
    out = _blocks.call(
        functools.partial(_backward_kernel, spec),
        b,
        {**inputs, **row_values, "cotangent": cotangent},
        {"grad": jax.ShapeDtypeStruct(inputs["logits"].shape, logits.dtype)},
        name="multiloss_softmax_backward",
    )
    grad = out["grad"]
    return layout.unrows(grad if b.rows_padded == b.rows else grad[: b.rows])
