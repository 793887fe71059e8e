r"""Pallas kernels of the element-wise losses: BCE, sigmoid focal and asymmetric.

One kernel each way, one pass over the logits each:

* **forward**: reads the logits and the target (and a weight / pos_weight that is not a
  per-class vector) once and writes, per row, the sum of the element losses in float32
  (`"mean"`, `"sum"`: the reduction finishes outside over a vector of rows) or every
  element's loss (`"none"`);
* **backward**: reads them once more and writes the gradient once, out of place, in the
  logits' dtype.

The element's value and slope are the core's own functions (`sigmoid_forward`,
`sigmoid_vjp`, `asymmetric_forward`, `asymmetric_vjp` with `reduction="none"`, called on a
chunk of values inside the kernel, on :mod:`._portable`'s namespace): the tails stay exact
as the core's are (no `1 - σ` cancellation) and no formula is restated here. A weight or
pos_weight that varies along the last axis only (a length-C vector, PyTorch's pos_weight)
is read as one `(1, C)` row; any other broadcast is materialised at the logits' shape
first. The kernels see the array as a free 2-D view whose width is a multiple of 128 (and
of C where a per-class vector must line up), so that most shapes need no padding.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ..._core._reduce import per_element_cotangent, reduce
from ..._core.sigmoid import element_mean_scale
from . import _blocks
from ._blocks import Blocks
from ._portable import xp

Array = jax.Array

_WEIGHTS = ("weight", "pos_weight")


@dataclass(frozen=True)
class Spec:
    """What an element-wise kernel is specialised on (hashable)."""

    blocks: Blocks
    config: Any
    """The family's config with `reduction="none"` (the kernel's per-element view)."""
    reduce_rows: bool
    """The forward pass writes row sums (`"mean"`, `"sum"`) rather than every element."""
    dtype: str


def _operands(spec: Spec, r: dict[str, Any], start: Any) -> Any:
    """The family's operands for chunk `start` of the block, in the compute dtype."""
    chunk = spec.blocks.chunk

    def load(name: str) -> Array | None:
        if name not in r:
            return None
        return r[name][:, pl.ds(start, chunk)].astype(spec.dtype)

    operands = spec.config.family.operands
    values = {"logits": load("logits"), "target": load("target")}
    values.update({name: load(name) for name in _WEIGHTS if name in operands._fields})
    return operands(**values)


def _forward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = dict(zip(names, refs, strict=True))
    b = spec.blocks
    family = spec.config.family

    def step(j: Any, total: Any) -> Any:
        start = pl.multiple_of(j * b.chunk, b.chunk)
        loss, _ = family.forward(xp, spec.config, _operands(spec, r, start))
        if b.columns_padded != b.columns:
            column = start + lax.broadcasted_iota(jnp.int32, loss.shape, 1)
            loss = jnp.where(column < b.columns, loss, 0.0)
        if spec.reduce_rows:
            return total + jnp.sum(loss, axis=1, keepdims=True)
        r["loss"][:, pl.ds(start, b.chunk)] = loss.astype(r["loss"].dtype)
        return total

    total = _blocks.loop(b.chunks, step, jnp.zeros((b.block_rows, 1), spec.dtype))
    if spec.reduce_rows:
        r["loss"][...] = total.astype(r["loss"].dtype)


def _backward_kernel(spec: Spec, names: tuple[str, ...], *refs: Any) -> None:
    r = dict(zip(names, refs, strict=True))
    b = spec.blocks
    family = spec.config.family

    def step(j: Any, carry: Any) -> Any:
        start = pl.multiple_of(j * b.chunk, b.chunk)
        if spec.reduce_rows:
            cotangent = r["cotangent"][...].astype(spec.dtype)
        else:
            cotangent = r["cotangent"][:, pl.ds(start, b.chunk)].astype(spec.dtype)
        grad = family.vjp(xp, spec.config, _operands(spec, r, start), None, cotangent)
        grad = jnp.broadcast_to(grad, (b.block_rows, b.chunk))
        r["grad"][:, pl.ds(start, b.chunk)] = grad.astype(r["grad"].dtype)
        return carry

    _blocks.loop(b.chunks, step, 0)


def _column_vector(weight: Array | None, shape: tuple[int, ...]) -> bool:
    """Whether `weight` varies along the last axis only (read as one `(1, C)` row)."""
    if weight is None or not shape or weight.ndim > len(shape):
        return False
    return all(d == 1 for d in weight.shape[:-1])


def _view(shape: tuple[int, ...], vectors: bool, block_rows: int) -> tuple[int, int]:
    """The 2-D view (rows, width) the kernels see: an element-wise loss does not care where
    rows end, so the array is reshaped (for free) to a width that is a multiple of 128
    (and of C where a per-class vector must line up) and a row count that is a multiple
    of the block's, which needs no padding; the logits' own rows × C (padded) if none."""
    columns = shape[-1] if shape else 1
    total = math.prod(shape)
    base = math.lcm(columns, _blocks.LANES) if vectors and columns else _blocks.LANES
    best = None
    for width in range(base, max(base, 8192) + 1, base):
        if total % width == 0 and (total // width) % block_rows == 0:
            best = width
    if best is None or total == 0:
        return (total // columns if columns else 0), columns
    return total // best, best


def _inputs(operands: Any, spec: Spec) -> dict[str, Array]:
    """The kernel inputs in the view, padded: logits (0), target (0), weights as rows of
    the view or as one per-column row."""
    b = spec.blocks
    shape = tuple(operands.logits.shape)

    def full(array: Array) -> Array:
        view = jnp.reshape(jnp.broadcast_to(array, shape), (b.rows, b.columns))
        return _blocks.pad(view, b, 0.0)

    inputs = {"logits": full(operands.logits), "target": full(operands.target.astype(spec.dtype))}
    for name in _WEIGHTS:
        weight = getattr(operands, name, None)
        if weight is None:
            continue
        if _column_vector(weight, shape):
            vector = jnp.broadcast_to(jnp.reshape(weight, (-1,)), (shape[-1],))
            vector = jnp.tile(vector, b.columns // shape[-1])
            inputs[name] = _blocks.pad_columns(vector, b, spec.dtype)
        else:
            inputs[name] = full(weight.astype(spec.dtype))
    return inputs


def _setup(config: Any, operands: Any) -> Spec:
    shape = tuple(operands.logits.shape)
    vectors = any(_column_vector(getattr(operands, name, None), shape) for name in _WEIGHTS)
    block_rows = _blocks.blocks(1, 1, operands.logits.dtype).block_rows
    rows, width = _view(shape, vectors, block_rows)
    return Spec(
        blocks=_blocks.blocks(rows, width, operands.logits.dtype),
        config=dataclasses.replace(config, reduction="none"),
        reduce_rows=config.reduction != "none",
        dtype=str(_blocks.compute_dtype(operands.logits.dtype)),
    )


def forward(config: Any, operands: Any) -> tuple[Array, Any]:
    """The reduced loss (compute dtype) and the residuals of :func:`backward`."""
    spec = _setup(config, operands)
    b = spec.blocks
    inputs = _inputs(operands, spec)
    out_shape = (b.rows_padded, 1) if spec.reduce_rows else (b.rows_padded, b.columns_padded)
    out = _blocks.call(
        functools.partial(_forward_kernel, spec),
        b,
        inputs,
        {"loss": jax.ShapeDtypeStruct(out_shape, spec.dtype)},
        name="multiloss_elementwise_forward",
    )
    logits = operands.logits
    if spec.reduce_rows:
        per_row = out["loss"][: b.rows, 0]
        loss = reduce(jnp, per_row, config.reduction, element_mean_scale(config, logits))
    else:
        loss = jnp.reshape(_blocks.unpad(out["loss"], b), logits.shape)
    return loss, None


def backward(config: Any, operands: Any, residuals: Any, cotangent: Array) -> Array:
    """cotangent · ∂loss/∂logits, in the logits' dtype and shape (no residuals)."""
    del residuals
    spec = _setup(config, operands)
    b = spec.blocks
    logits = operands.logits
    scale = element_mean_scale(config, logits)
    element = jnp.asarray(
        per_element_cotangent(jnp, cotangent, config.reduction, scale), spec.dtype
    )
    if spec.reduce_rows:  # one number for every element
        element = jnp.reshape(element, (1, 1))
    else:
        view = jnp.reshape(jnp.broadcast_to(element, logits.shape), (b.rows, b.columns))
        element = _blocks.pad(view, b, 0.0)
    out = _blocks.call(
        functools.partial(_backward_kernel, spec),
        b,
        {**_inputs(operands, spec), "cotangent": element},
        {"grad": jax.ShapeDtypeStruct((b.rows_padded, b.columns_padded), logits.dtype)},
        name="multiloss_elementwise_backward",
    )
    return jnp.reshape(_blocks.unpad(out["grad"], b), logits.shape)
