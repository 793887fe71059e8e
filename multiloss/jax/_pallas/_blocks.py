"""Block shapes and padding of the Pallas kernels, valid for both lowerings.

Every kernel works on 2-D arrays of rows × columns (classes, or the last axis of an
element-wise loss). A block is `rows` whole rows (the grid runs over row blocks); inside
the block a `lax.fori_loop` walks the columns `chunk` at a time with aligned dynamic
slices (`pl.ds` + `pl.multiple_of`). So that this is valid for Triton (GPU: power-of-two
shapes of every loaded value) and Mosaic (TPU: the last two dimensions of a block multiples
of 8 × 128, or the array's own), and never reads out of bounds:

- `rows` is 8 for 32- and 64-bit data, 16 for 16-bit data (TPU packs two per sublane);
- the columns are padded to a multiple of 128 (logits with -inf, targets and weights with
  0) and `chunk` is the largest power of two ≤ 2048 that divides the padded width;
- the rows are padded to a multiple of `rows` (targets ignored, row weights 0);
- per-row values travel as `(rows_padded, 1)` arrays of the compute dtype (block
  `(rows, 1)`: the last dimension is the array's own).

Padding copies the array; the benchmark shapes (vocabularies of 32000, 128256, rows a
multiple of 16) need none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

LANES = 128
MAX_CHUNK = 2048


@dataclass(frozen=True)
class Blocks:
    """The blocking of one (rows × columns) problem; hashable (a kernel's static data)."""

    rows: int
    columns: int
    rows_padded: int
    columns_padded: int
    block_rows: int
    chunk: int

    @property
    def grid(self) -> tuple[int]:
        return (self.rows_padded // self.block_rows,)

    @property
    def chunks(self) -> int:
        return self.columns_padded // self.chunk

    @property
    def padded(self) -> bool:
        return (self.rows_padded, self.columns_padded) != (self.rows, self.columns)


def blocks(rows: int, columns: int, dtype: Any) -> Blocks:
    """The blocks for a `rows × columns` array of `dtype` (see the module docstring)."""
    block_rows = 16 if np.dtype(dtype).itemsize == 2 else 8
    columns_padded = max(LANES, -(-columns // LANES) * LANES)
    chunk = MAX_CHUNK
    while columns_padded % chunk:
        chunk //= 2
    rows_padded = max(block_rows, -(-rows // block_rows) * block_rows)
    return Blocks(rows, columns, rows_padded, columns_padded, block_rows, chunk)


def pad(array: Any, shape: Blocks, value: float) -> Any:
    """A rows × columns array padded to the blocks' shape with `value` (itself if none)."""
    if not shape.padded:
        return array
    widths = ((0, shape.rows_padded - shape.rows), (0, shape.columns_padded - shape.columns))
    return jnp.pad(array, widths, constant_values=value)


def pad_rows(vector: Any, shape: Blocks, value: float, dtype: Any = jnp.float32) -> Any:
    """A length-`rows` vector as a `(rows_padded, 1)` column of `dtype`, padded with `value`."""
    vector = jnp.reshape(jnp.asarray(vector, dtype=dtype), (-1, 1))
    if shape.rows_padded == shape.rows:
        return vector
    return jnp.pad(vector, ((0, shape.rows_padded - shape.rows), (0, 0)), constant_values=value)


def pad_columns(vector: Any, shape: Blocks, dtype: Any) -> Any:
    """A length-`columns` vector as a `(1, columns_padded)` row, padded with 0."""
    vector = jnp.reshape(jnp.asarray(vector, dtype=dtype), (1, -1))
    if shape.columns_padded == shape.columns:
        return vector
    return jnp.pad(vector, ((0, 0), (0, shape.columns_padded - shape.columns)))


def unpad(array: Any, shape: Blocks) -> Any:
    """The top-left rows × columns of a padded array (itself if not padded)."""
    if not shape.padded:
        return array
    return array[: shape.rows, : shape.columns]


def compute_dtype(dtype: Any) -> Any:
    """float32 for 16-bit data, the dtype itself otherwise."""
    return np.dtype(np.float32) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)


def block_spec(shape: Blocks, array_shape: tuple[int, ...]) -> Any:
    """The BlockSpec of an operand or output of a row-blocked kernel, from its shape:
    `(rows_padded, columns_padded)` data, a `(rows_padded, 1)` per-row column, or a
    `(1, columns_padded)` per-column row (the same block at every step)."""
    from jax.experimental import pallas as pl

    rows, columns = shape.block_rows, shape.columns_padded
    if array_shape == (shape.rows_padded, shape.columns_padded):
        return pl.BlockSpec((rows, columns), lambda i: (i, 0))
    if array_shape == (shape.rows_padded, 1):
        return pl.BlockSpec((rows, 1), lambda i: (i, 0))
    if array_shape == (1, shape.columns_padded):
        return pl.BlockSpec((1, columns), lambda i: (0, 0))
    if array_shape == (1, 1):  # one number for every block
        return pl.BlockSpec((1, 1), lambda i: (0, 0))
    raise AssertionError(f"no block for an operand of shape {array_shape} in {shape}")


def call(
    kernel: Any,
    shape: Blocks,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    *,
    name: str,
) -> dict[str, Any]:
    """Run `kernel(names, *refs)` over the row blocks: `inputs` by name (arrays), `outputs`
    by name (`jax.ShapeDtypeStruct`s); the kernel receives the names of its refs first.
    Interpreted or compiled, with the platform's compiler parameters, as
    `multiloss.jax.engine` says for the platform being traced for."""
    import functools

    import jax
    from jax.experimental import pallas as pl

    from .._engine import compiler_params, interpret

    names = tuple(inputs) + tuple(outputs)
    result = pl.pallas_call(
        functools.partial(kernel, names),
        grid=shape.grid,
        in_specs=[block_spec(shape, tuple(array.shape)) for array in inputs.values()],
        out_specs=[block_spec(shape, tuple(out.shape)) for out in outputs.values()],
        out_shape=[jax.ShapeDtypeStruct(out.shape, out.dtype) for out in outputs.values()],
        name=name,
        interpret=interpret(),
        compiler_params=compiler_params(),
    )(*inputs.values())
    return dict(zip(outputs, result, strict=True))


def loop(count: int, body: Any, start: Any) -> Any:
    """`lax.fori_loop` over the chunks with an int32 index (also under `jax_enable_x64`:
    Mosaic multiplies no int32 offset by an int64 index)."""
    from jax import lax

    return lax.fori_loop(jnp.int32(0), jnp.int32(count), body, start)
