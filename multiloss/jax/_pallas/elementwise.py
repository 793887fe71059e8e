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
chunk of `jax.numpy` values inside the kernel): the tails stay exact as the core's are (no
`1 - σ` cancellation) and no formula is restated here. A weight or pos_weight that varies
along the last axis only (a length-C vector, PyTorch's pos_weight) is read as one
`(1, C)` row; any other broadcast is materialised at the logits' shape first.
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


def _as_rows(array: Array, shape: tuple[int, ...]) -> Array:
    columns = shape[-1] if shape else 1
    return jnp.reshape(jnp.broadcast_to(array, shape), (-1, columns))


def _inputs(operands: Any, blocks: Blocks, dtype: Any) -> dict[str, Array]:
    """The padded kernel inputs: logits (0 in padding), target, weights as rows or columns."""
    logits = operands.logits
    shape = tuple(logits.shape)
    inputs = {
        "logits": _blocks.pad(_as_rows(logits, shape), blocks, 0.0),
        "target": _blocks.pad(_as_rows(operands.target.astype(dtype), shape), blocks, 0.0),
    }
    for name in _WEIGHTS:
        weight = getattr(operands, name, None)
        if weight is None:
            continue
        along_last = len(shape) >= 1 and all(d == 1 for d in weight.shape[:-1])
        if along_last and weight.ndim <= len(shape):
            vector = jnp.broadcast_to(jnp.reshape(weight, (-1,)), (blocks.columns,))
            inputs[name] = _blocks.pad_columns(vector, blocks, dtype)
        else:
            inputs[name] = _blocks.pad(_as_rows(weight.astype(dtype), shape), blocks, 0.0)
    return inputs


def _setup(config: Any, operands: Any) -> tuple[Spec, int]:
    shape = tuple(operands.logits.shape)
    columns = shape[-1] if shape else 1
    rows = math.prod(shape) // columns if columns else 0
    blocks = _blocks.blocks(rows, columns, operands.logits.dtype)
    dtype = _blocks.compute_dtype(operands.logits.dtype)
    spec = Spec(
        blocks=blocks,
        config=dataclasses.replace(config, reduction="none"),
        reduce_rows=config.reduction != "none",
        dtype=str(dtype),
    )
    return spec, rows


def forward(config: Any, operands: Any) -> tuple[Array, Any]:
    """The reduced loss (compute dtype) and the residuals of :func:`backward`."""
    spec, rows = _setup(config, operands)
    b = spec.blocks
    inputs = _inputs(operands, b, spec.dtype)
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
        per_row = out["loss"][:rows, 0].astype(spec.dtype)
        loss = reduce(jnp, per_row, config.reduction, element_mean_scale(config, logits))
    else:
        loss = jnp.reshape(_blocks.unpad(out["loss"], b), logits.shape)
    return loss, inputs


def backward(config: Any, operands: Any, residuals: Any, cotangent: Array) -> Array:
    """cotangent · ∂loss/∂logits, in the logits' dtype and shape."""
    spec, rows = _setup(config, operands)
    b = spec.blocks
    logits = operands.logits
    scale = element_mean_scale(config, logits)
    element = per_element_cotangent(jnp, cotangent, config.reduction, scale)
    element = jnp.asarray(element, spec.dtype)
    if spec.reduce_rows:
        column = _blocks.pad_rows(jnp.broadcast_to(element, (rows,)), b, 0, spec.dtype)
    else:
        column = _blocks.pad(_as_rows(element, tuple(logits.shape)), b, 0.0)
    inputs = {**residuals, "cotangent": column}
    out = _blocks.call(
        functools.partial(_backward_kernel, spec),
        b,
        inputs,
        {"grad": jax.ShapeDtypeStruct((b.rows_padded, b.columns_padded), logits.dtype)},
        name="multiloss_elementwise_backward",
    )
    return jnp.reshape(_blocks.unpad(out["grad"], b), logits.shape)
