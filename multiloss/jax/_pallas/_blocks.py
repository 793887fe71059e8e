"""Block shapes and padding of the Pallas kernels, valid for both lowerings.

Every kernel works on 2-D arrays of rows × columns (classes, or the last axis of an
element-wise loss). A block is `rows` whole rows (the grid runs over row blocks); inside
the block a `lax.fori_loop` walks the columns `chunk` at a time with aligned dynamic
slices (`pl.ds` + `pl.multiple_of`). So that this is valid for Triton (GPU: power-of-two
shapes of every loaded value) and Mosaic (TPU: the last two dimensions of a block multiples
of 8 × 128, or the array's own), and never reads out of bounds:

- `rows` is 8 for 32- and 64-bit data, 16 for 16-bit data (TPU packs two per sublane);
- `chunk` is the largest power of two ≤ 2048 that divides the width rounded up to a
  multiple of 128 (`columns_padded`); the loop runs over that rounded width;
- the rows are padded to a multiple of `rows` (targets ignored, row weights 0), except
  with `edge_rows` (the softmax kernels) where there are at least `rows` of them: then
  the grid's last block runs past the array and the rows past it are masked like the
  columns (below: :func:`load`, :func:`store`, :func:`read`, :func:`write`);
- per-row values travel as `(rows_padded, 1)` arrays of the compute dtype (block
  `(rows, 1)`: the last dimension is the array's own).

The columns are never copied where a kernel reads them with :func:`read` (the softmax
kernels): the block spans the array's whole last dimension (valid for Mosaic because it
is the array's own, for Triton because only power-of-two chunks are loaded), and where
the class count is not a multiple of the chunk the chunks past it are masked by an iota
comparison against the true width, a static parameter: Triton's and the interpreter's
loads and stores take the mask (nothing out of bounds is read or written); Mosaic takes
none, and its loads of the last chunk stay inside the block's VMEM buffer, whose lanes are
allocated in whole tiles of 128 (what lies past the width is replaced by the fill before
use, and what is stored there never reaches memory). The rows past the array in the
last block of an `edge_rows` grid are masked the same way (Triton and the interpreter:
masked loads and stores; Mosaic copies only the rows inside). :func:`pad` (the
element-wise kernels, which reshape their data to a width that is a multiple of 128
instead) copies the array where it pads, and so does row padding, left only for fewer
rows than a block (a few rows: a Triton block's rows must be a power of two).
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
        return (-(-self.rows_padded // self.block_rows),)

    @property
    def row_tail(self) -> bool:
        """Whether the last row block runs past the array (`edge_rows`)."""
        return self.rows_padded % self.block_rows != 0

    @property
    def chunks(self) -> int:
        return self.columns_padded // self.chunk

    @property
    def padded(self) -> bool:
        return (self.rows_padded, self.columns_padded) != (self.rows, self.columns)


def blocks(rows: int, columns: int, dtype: Any, *, edge_rows: bool = False) -> Blocks:
    """The blocks for a `rows × columns` array of `dtype` (see the module docstring);
    `edge_rows`: no row padding where there are at least a block's rows (the kernels
    mask the last block's rows past the array)."""
    block_rows = 16 if np.dtype(dtype).itemsize == 2 else 8
    columns_padded = max(LANES, -(-columns // LANES) * LANES)
    chunk = MAX_CHUNK
    while columns_padded % chunk:
        chunk //= 2
    rows_padded = max(block_rows, -(-rows // block_rows) * block_rows)
    if edge_rows and rows >= block_rows:
        rows_padded = rows
    return Blocks(rows, columns, rows_padded, columns_padded, block_rows, chunk)


def edge_rows_for(array: Any) -> bool:
    """Whether a kernel over `array` may leave its last row block partial (`edge_rows`):
    everywhere but in the interpreter inside `jax.shard_map`, whose own padding of an edge
    block mixes a varying array with a constant and fails shard_map's check of varying
    axes (JAX 0.10.2); there the rows are padded instead (a copy, on the CPU only)."""
    import jax

    from .._engine import interpret

    kind = getattr(jax.typeof(array), "manual_axis_type", None)
    return not (interpret() and kind is not None and kind.varying)


def pad(array: Any, shape: Blocks, value: float) -> Any:
    """A rows × columns array padded to the blocks' shape with `value` (itself if none)."""
    if not shape.padded:
        return array
    widths = ((0, shape.rows_padded - shape.rows), (0, shape.columns_padded - shape.columns))
    return jnp.pad(array, widths, constant_values=value)


def pad_row_blocks(array: Any, shape: Blocks, value: float) -> Any:
    """A rows × columns array with its rows padded to the blocks' (itself if none are)."""
    if shape.rows_padded == shape.rows:
        return array
    return jnp.pad(array, ((0, shape.rows_padded - shape.rows), (0, 0)), constant_values=value)


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

    rows = shape.block_rows
    widths = (shape.columns_padded, shape.columns)  # padded, or read with `read`'s mask
    if array_shape == (shape.rows_padded, 1):
        return pl.BlockSpec((rows, 1), lambda i: (i, 0))
    if array_shape[0] == shape.rows_padded and array_shape[1] in widths:
        return pl.BlockSpec((rows, array_shape[1]), lambda i: (i, 0))
    if array_shape[0] == 1 and array_shape[1] in widths:
        return pl.BlockSpec((1, array_shape[1]), lambda i: (0, 0))
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

    inputs, manual = _varying_alike(inputs)
    names = tuple(inputs) + tuple(outputs)
    out_shape = [
        jax.ShapeDtypeStruct(out.shape, out.dtype, manual_axis_type=manual)
        for out in outputs.values()
    ]
    result = pl.pallas_call(
        functools.partial(kernel, names),
        grid=shape.grid,
        in_specs=[block_spec(shape, tuple(array.shape)) for array in inputs.values()],
        out_specs=[block_spec(shape, tuple(out.shape)) for out in outputs.values()],
        out_shape=out_shape,
        name=name,
        interpret=interpret(),
        compiler_params=compiler_params(),
    )(*inputs.values())
    return dict(zip(outputs, result, strict=True))


def _varying_alike(inputs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Inside `jax.shard_map` (check_vma): the inputs cast to vary along every mesh axis
    along which one of them varies, and that type for the outputs (a vocabulary shard's
    logits vary along the class axis, its targets do not); outside, the inputs and the
    type of an array that varies along none."""
    import jax

    found = [getattr(jax.typeof(array), "manual_axis_type", None) for array in inputs.values()]
    if not found or any(kind is None for kind in found):
        return inputs, None
    types: list[Any] = found
    varying = frozenset().union(*(kind.varying for kind in types))
    if varying:
        axes = tuple(sorted(varying, key=str))
        cast = {}
        for (name, array), kind in zip(inputs.items(), types, strict=True):
            missing = tuple(axis for axis in axes if axis not in kind.varying)
            cast[name] = jax.lax.pcast(array, missing, to="varying")
        inputs = cast
    return inputs, type(types[0])(varying=varying)


def _tail(shape: Blocks, width: int) -> bool:
    """Whether the chunks of an array `width` wide run past it (the last one is masked)."""
    return width % shape.chunk != 0


def rows_inside(shape: Blocks) -> Any:
    """Which rows of this step's block lie inside the array, `(block_rows, 1)` (None: all
    of them, or Mosaic, whose copies of an edge block stop at the array's end). Called at
    the top of a kernel (the interpreter knows the program id there, not inside a loop);
    the kernel hands it to :func:`load`, :func:`store`, :func:`read` and :func:`write`."""
    from jax import lax
    from jax.experimental import pallas as pl

    if not shape.row_tail or _mosaic():
        return None
    column = (shape.block_rows, 1)
    row = pl.program_id(0) * shape.block_rows + lax.broadcasted_iota(jnp.int32, column, 0)
    return row < shape.rows


def _row_mask(ref: Any, shape: Blocks, size: tuple[int, ...], rows: Any) -> Any:
    """`rows` broadcast to `size` for a row-blocked `ref` (None for the blocks every step
    shares, `(1, k)`, and where every row is inside)."""
    if rows is None or ref.shape[0] != shape.block_rows:
        return None
    return jnp.broadcast_to(rows, size)


def _masked_load(view: Any, mask: Any, fill: float, dtype: Any) -> Any:
    from jax.experimental.pallas import triton as pallas_triton

    return pallas_triton.load(view, mask=mask, other=jnp.asarray(fill, dtype))


def _masked_store(view: Any, value: Any, mask: Any) -> None:
    from jax.experimental.pallas import triton as pallas_triton

    pallas_triton.store(view, value, mask=mask)


def load(ref: Any, shape: Blocks, fill: float, rows: Any) -> Any:
    """The whole block of a per-row `ref` (`(rows, k)`), `fill` in the rows past the array
    (`rows`: :func:`rows_inside`)."""
    mask = _row_mask(ref, shape, tuple(ref.shape), rows)
    if mask is None:
        return ref[...]
    return _masked_load(ref, mask, fill, ref.dtype)


def store(ref: Any, shape: Blocks, value: Any, rows: Any) -> None:
    """Store the whole block of a per-row `ref`, never past the array's rows."""
    mask = _row_mask(ref, shape, tuple(ref.shape), rows)
    if mask is None:
        ref[...] = value.astype(ref.dtype)
        return
    _masked_store(ref, value.astype(ref.dtype), mask)


def read(ref: Any, shape: Blocks, start: Any, fill: float, rows: Any = None) -> Any:
    """Chunk `[start, start + chunk)` of every row of the block `ref`, with `fill` in the
    columns past the array's width and the rows past its end (see the module docstring:
    masked loads for Triton and the interpreter, a load inside the VMEM tile and a select
    for Mosaic)."""
    from jax import lax
    from jax.experimental import pallas as pl

    view = ref.at[:, pl.ds(start, shape.chunk)]
    size = (ref.shape[0], shape.chunk)
    rows = _row_mask(ref, shape, size, rows)
    if not _tail(shape, ref.shape[-1]):
        return view[...] if rows is None else _masked_load(view, rows, fill, ref.dtype)
    inside = start + lax.broadcasted_iota(jnp.int32, size, 1) < ref.shape[-1]
    if _mosaic():
        return jnp.where(inside, view[...], jnp.asarray(fill, ref.dtype))
    return _masked_load(view, inside if rows is None else inside & rows, fill, ref.dtype)


def write(ref: Any, shape: Blocks, start: Any, value: Any, rows: Any = None) -> None:
    """Store `value` into chunk `[start, start + chunk)` of the block `ref`, never past the
    array's width or its rows (masked for Triton and the interpreter; for Mosaic the
    columns past it lie in the VMEM tile's padding, which is not copied out)."""
    from jax import lax
    from jax.experimental import pallas as pl

    rows = _row_mask(ref, shape, tuple(value.shape), rows)
    tail = _tail(shape, ref.shape[-1]) and not _mosaic()
    if not tail and rows is None:
        ref[:, pl.ds(start, shape.chunk)] = value
        return
    # both starts of one integer type (the interpreter's store asks it, also under x64)
    first_row = jnp.zeros((), jnp.asarray(start).dtype)
    view = ref.at[pl.ds(first_row, ref.shape[0]), pl.ds(start, shape.chunk)]
    inside = start + lax.broadcasted_iota(jnp.int32, value.shape, 1) < ref.shape[-1]
    mask = rows if not tail else inside if rows is None else inside & rows
    _masked_store(view, value, mask)


def _mosaic() -> bool:
    from .._engine import lowers_for_tpu

    return lowers_for_tpu()


def loop(count: int, body: Any, start: Any) -> Any:
    """`lax.fori_loop` over the chunks with an int32 index (also under `jax_enable_x64`:
    Mosaic multiplies no int32 offset by an int64 index)."""
    from jax import lax

    return lax.fori_loop(jnp.int32(0), jnp.int32(count), body, start)
