r"""Fused linear head + softmax loss for large vocabularies: the logits a chunk at a time.

`linear_cross_entropy(input, linear_weight, target)` is
`cross_entropy(input @ linear_weight.T + linear_bias, target)` (classes on the last axis)
without ever holding the N×V logits: the tokens are cut into chunks of `chunk_size` rows,
and a `lax.scan` forms one chunk's logits, runs the core's loss and logits-gradient on
them and contracts that gradient with the weight and the chunk's inputs at once.

How it runs:

* The loss of each chunk and its gradient with respect to the chunk's logits are the
  core's (`_core.forward` / `_core.vjp` of a call prepared by `_core.prepare_call` of
  the loss's record with `reduction="none"`): no formula is restated here. The
  `"mean"`'s denominator comes from the whole target first
  (`_core.counting.target_count`, or the element count for probability targets), or from
  `normalizer`.
* A `jax.custom_vjp`. For `"mean"` and `"sum"` the forward pass of a differentiated call
  accumulates dX, dW and db along with the loss (three matmuls per chunk, as many as the
  unfused computation; dW and db in float32 for 16-bit inputs) and the backward pass scales
  them by the cotangent. For `"none"` every element's cotangent is known only in the
  backward pass: the forward pass keeps the core's O(N) residuals (row max, log-sum-exp,
  the target's log-probability) and the backward pass recomputes each chunk's logits
  (four matmuls per chunk). Undifferentiated, one matmul per chunk. Measured (float32,
  2 threads, 2048×512×65536): recomputing in the backward pass for "mean" too took 1.5×
  the time of accumulating in the forward pass, at the same temporary memory.
* Rows are padded up to a multiple of the chunk with masked rows (no data-dependent
  shape); of n chunks, chunk c holds rows c, c + n, c + 2n, …, so that rows sharded over
  devices stay on their device in every chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _core
from .._core import LOSSES, Loss, _checks, prepare_linear
from .._core._reduce import mean_scale, normalized
from .._core.counting import target_count
from .._core.linear import automatic_chunk_size
from ._autodiff import no_derivative
from ._engine import uses_kernels
from ._pallas import chunk_forward, chunk_vjp
from ._validation import (
    as_jax,
    check_label_values,
    check_labels,
    is_host_data,
    is_tracer,
    require_static,
)
from .losses import explicit_mesh_axes

__all__ = ["chunk_rows", "linear_cross_entropy", "linear_focal_loss", "linear_poly_loss"]

Array = jax.Array
Weights = Array | np.ndarray | Sequence[float] | None

chunk_rows = automatic_chunk_size
"""The automatic chunk size for `rows` tokens and `num_classes` classes: the core's one
rule, every engine's (:func:`multiloss._core.linear.automatic_chunk_size`)."""


# --------------------------------------------------------------------------------------
# The chunked computation


class _Spec(NamedTuple):
    """Everything static about one fused call: the custom_vjp's static argument."""

    loss: str
    options: tuple[tuple[str, Any], ...]
    """The loss's static options for `_core.prepare_call` (a scalar alpha among them)."""
    weight_name: str
    """"weight" or "alpha": the option that the class-weight operand fills."""
    reduction: str
    rows: int
    chunk: int
    hard: bool
    fill: Any
    """What padding rows' targets hold: an ignored index, or 0 (probabilities)."""
    dtype: Any
    """The input's (and the linear layer's) dtype."""


def _count(spec: _Spec) -> int:
    return -(-spec.rows // spec.chunk)


def _to_chunks(array: Array, spec: _Spec, fill: Any) -> Array:
    """(N, …) → (n, T, …), chunk c holding rows c, c + n, c + 2n, … (padded with `fill`)."""
    count = _count(spec)
    pad = count * spec.chunk - spec.rows
    if pad:
        widths = [(0, pad)] + [(0, 0)] * (array.ndim - 1)
        array = jnp.pad(array, widths, constant_values=fill)
    return jnp.swapaxes(array.reshape(spec.chunk, count, *array.shape[1:]), 0, 1)


def _from_chunks(array: Array, spec: _Spec) -> Array:
    """The inverse of `_to_chunks`, padding dropped."""
    return jnp.swapaxes(array, 0, 1).reshape(-1, *array.shape[2:])[: spec.rows]


def _row_mask(spec: _Spec, index: Array) -> Array:
    """True for the chunk's real rows, False for padding."""
    return jnp.arange(spec.chunk) * _count(spec) + index < spec.rows


def _compute_dtype(array: Array) -> Any:
    return _checks.compute_dtype(jnp, array.dtype)


def _chunk_logits(x: Array, w: Array, b: Array | None) -> Array:
    """x @ w.T + b in the compute dtype (float32 accumulation for 16-bit inputs)."""
    dtype = _compute_dtype(x)
    logits = lax.dot_general(x, w, (((1,), (1,)), ((), ())), preferred_element_type=dtype)
    return logits if b is None else logits + b.astype(dtype)


def _prepare(spec: _Spec, logits: Array, target: Array, class_weight: Array | None) -> Any:
    options = dict(spec.options, axis=-1, reduction="none")
    if class_weight is not None:
        options[spec.weight_name] = class_weight
    _, config, operands = _core.prepare_call(
        _core.LOSSES[spec.loss], logits, target, options, check_values=False
    )
    return (jnp, config, operands)


class _Chunk(NamedTuple):
    """One chunk's arrays inside the scan."""

    x: Array
    target: Array
    mask: Array


def _chunk_loss(spec: _Spec, chunk: _Chunk, w: Array, b: Array | None, class_weight: Any):
    """The chunk's masked per-row losses, its prepared call and the core's residuals."""
    prepared = _prepare(spec, _chunk_logits(chunk.x, w, b), chunk.target, class_weight)
    loss, residuals = chunk_forward(prepared)  # the engine hook: kernels or the core
    return jnp.where(chunk.mask, loss, 0.0), prepared, residuals


def _chunk_grads(
    prepared: Any, residuals: Any, cotangent: Array, x: Array, w: Array, accumulated: Any
) -> tuple[Array, Any]:
    """The chunk's dX, and its dW and db added to `accumulated` (compute dtype)."""
    grad_w, grad_b = accumulated
    logits_grad = chunk_vjp(prepared, residuals, cotangent)  # by the engine of chunk_forward
    operand = logits_grad.astype(x.dtype)  # 16-bit matmuls, accumulated in float32
    grad_x = lax.dot_general(
        operand, w, (((1,), (0,)), ((), ())), preferred_element_type=_compute_dtype(x)
    )
    grad_w = _add_weight_grad(grad_w, operand, x)
    if grad_b is not None:
        grad_b = grad_b + jnp.sum(logits_grad, axis=0, dtype=grad_b.dtype)
    return grad_x.astype(x.dtype), (grad_w, grad_b)


def _add_weight_grad(grad_w: Array, operand: Array, x: Array) -> Array:
    """grad_w + operand.T @ x, in place a block of classes at a time: ceil(D / T) blocks,
    so that no product larger than one chunk's logits is formed (one V×D product would
    be a temporary as large as the weight itself)."""

    def product(rows: Array) -> Array:
        dims = (((0,), (0,)), ((), ()))
        return lax.dot_general(rows, x, dims, preferred_element_type=grad_w.dtype)

    num_classes, chunk = operand.shape[1], max(operand.shape[0], 1)
    blocks = min(-(-x.shape[1] // chunk), num_classes)
    if blocks <= 1:
        return grad_w + product(operand)
    size = num_classes // blocks

    def block(index: Array, grad_w: Array) -> Array:
        start = index * size
        rows = lax.dynamic_slice_in_dim(operand, start, size, axis=1)
        update = lax.dynamic_slice_in_dim(grad_w, start, size, axis=0) + product(rows)
        return lax.dynamic_update_slice_in_dim(grad_w, update, start, axis=0)

    grad_w = lax.fori_loop(0, blocks, block, grad_w)
    rest = blocks * size
    if rest < num_classes:
        grad_w = grad_w.at[rest:].add(product(operand[:, rest:]))
    return grad_w


def _zero_grads(w: Array, b: Array | None) -> tuple[Array, Array | None]:
    dtype = _compute_dtype(w)
    return jnp.zeros(w.shape, dtype), None if b is None else jnp.zeros(b.shape, dtype)


def _unit_cotangent(spec: _Spec, denominator: Array | None, dtype: Any) -> Array:
    """Each row's cotangent when the reduced loss's is 1."""
    if spec.reduction == "mean":
        return mean_scale(jnp, denominator).astype(dtype)
    return jnp.ones((), dtype)


def _scan(
    spec: _Spec,
    x: Array,
    target: Array,
    body: Callable[..., Any],
    init: Any,
    rows: tuple[Array, ...] = (),
    chunked: Any = None,
) -> Any:
    """`lax.scan` of `body(carry, _Chunk, *row chunks, chunked chunk)` over the chunks:
    `rows` are (N, …) arrays cut like `x`, `chunked` a pytree already in (n, T, …) chunks."""
    chunks = [_to_chunks(a, spec, 0) for a in (x, *rows)]
    chunks.insert(1, _to_chunks(target, spec, spec.fill))

    def step(carry: Any, inputs: Any) -> Any:
        index, x_chunk, target_chunk, *rest, chunked_chunk = inputs
        chunk = _Chunk(x_chunk, target_chunk, _row_mask(spec, index))
        extra = (*rest, chunked_chunk) if chunked is not None else tuple(rest)
        return body(carry, chunk, *extra)

    indices = jnp.arange(chunks[0].shape[0])
    return lax.scan(step, init, (indices, *chunks, chunked))


def _forward(spec: _Spec, x, w, b, target, class_weight, denominator, mode: str):
    """The loss (reduced, or per row for "none") and, by `mode`: nothing ("value"), its
    dX, dW and db for a unit cotangent ("grads"), or the core's residuals of every chunk
    ("residuals")."""
    dtype = _compute_dtype(x)

    def body(carry, chunk):
        total, accumulated = carry
        loss, prepared, residuals = _chunk_loss(spec, chunk, w, b, class_weight)
        total = total + jnp.sum(loss)
        kept = residuals if mode == "residuals" else None
        if mode == "grads":
            cotangent = jnp.where(chunk.mask, _unit_cotangent(spec, denominator, dtype), 0.0)
            grad_x, accumulated = _chunk_grads(
                prepared, residuals, cotangent, chunk.x, w, accumulated
            )
            return (total, accumulated), (None, grad_x)
        return (total, accumulated), (loss if spec.reduction == "none" else None, kept)

    init = (jnp.zeros((), dtype), _zero_grads(w, b) if mode == "grads" else (None, None))
    (total, accumulated), (losses, out) = _scan(spec, x, target, body, init)
    if spec.reduction == "none":
        loss = _from_chunks(losses, spec)
    elif spec.reduction == "sum":
        loss = total
    else:
        loss = normalized(jnp, total, denominator)
    if mode == "grads":
        return loss, (_from_chunks(out, spec), *accumulated)
    return loss, out


def _recomputed_grads(spec: _Spec, x, w, b, target, class_weight, residuals, cotangent):
    """dX, dW, db for per-row cotangents ("none"): each chunk's logits formed again, the
    core's vjp from the residuals that the forward pass kept."""

    def body(accumulated, chunk, chunk_cotangent, chunk_residuals):
        prepared = _prepare(spec, _chunk_logits(chunk.x, w, b), chunk.target, class_weight)
        row_cotangent = jnp.where(chunk.mask, chunk_cotangent, 0.0)
        grad_x, accumulated = _chunk_grads(
            prepared, chunk_residuals, row_cotangent, chunk.x, w, accumulated
        )
        return accumulated, grad_x

    init = _zero_grads(w, b)
    (grad_w, grad_b), grad_x = _scan(spec, x, target, body, init, (cotangent,), residuals)
    return _from_chunks(grad_x, spec), grad_w, grad_b


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(spec: _Spec, x, w, b, target, class_weight, denominator):
    """The reduced loss (compute dtype), or the (N,) per-row losses for "none"."""
    return _forward(spec, x, w, b, target, class_weight, denominator, "value")[0]


def _fused_fwd(spec: _Spec, x, w, b, target, class_weight, denominator):
    if spec.reduction == "none":
        loss, residuals = _forward(spec, x, w, b, target, class_weight, denominator, "residuals")
        return loss, (x, w, b, target, class_weight, residuals)
    return _forward(spec, x, w, b, target, class_weight, denominator, "grads")


def _fused_bwd(spec: _Spec, saved, cotangent):
    if spec.reduction == "none":
        x, w, b, target, class_weight, residuals = saved
        grad_x, grad_w, grad_b = _recomputed_grads(
            spec, x, w, b, target, class_weight, residuals, cotangent
        )
    else:
        grad_x, grad_w, grad_b = saved
        scale = cotangent.astype(grad_w.dtype)
        grad_x = (grad_x.astype(scale.dtype) * scale).astype(grad_x.dtype)
        grad_w = grad_w * scale
        grad_b = None if grad_b is None else grad_b * scale
    grad_b = None if grad_b is None else grad_b.astype(spec.dtype)
    return grad_x, grad_w.astype(spec.dtype), grad_b, None, None, None


_fused.defvjp(_fused_fwd, _fused_bwd)


# --------------------------------------------------------------------------------------
# Validation and the public functions


def _denominator(
    spec: _Spec, target: Array, class_weight: Array | None, dtype: Any
) -> Array | None:
    """What "mean" divides the sum by, from the whole target: the counted targets (Σ w_y
    for weighted cross-entropy), or the number of rows for probability targets."""
    if spec.reduction != "mean":
        return None
    if not spec.hard:
        return jnp.asarray(float(spec.rows), dtype)
    weight = class_weight if LOSSES[spec.loss].weighted_mean else None
    ignore_index = dict(spec.options)["ignore_index"]
    count = target_count(target, ignore_index=ignore_index, weight=weight, check_values=False)
    return count.astype(dtype)


def _compute(spec: _Spec, *arrays: Any) -> Array:
    """:func:`_compute_with` for the engine in force (multiloss.jax.engine), which keys
    the jit's cache: a trace with one engine is never reused for the other."""
    return _compute_with(spec, uses_kernels(), *arrays)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compute_with(spec: _Spec, kernels: bool, x, w, b, target, class_weight, normalizer):
    """The loss of validated operands (jitted: compiled once per `spec` and engine)."""
    del kernels
    if spec.hard:  # the labels' run-time check under checkify (multiloss.jax.checked)
        check_labels(target, w.shape[0], dict(spec.options)["ignore_index"], debug=True)
    target = no_derivative(_NO_TARGET_DERIVATIVE, target)
    if class_weight is not None:
        refusal = _NO_WEIGHT_DERIVATIVE.format(name=spec.weight_name)
        class_weight = no_derivative(refusal, class_weight)
    flat_x = x.reshape(spec.rows, x.shape[-1])
    flat_target = target.reshape(spec.rows, *target.shape[x.ndim - 1 :])
    if normalizer is not None:  # the sum, divided outside the rule: d/dn is JAX's own
        summed = spec._replace(reduction="sum")
        out = _fused(summed, flat_x, w, b, flat_target, class_weight, None)
        return normalized(jnp, out, normalizer).astype(x.dtype)
    denominator = _denominator(spec, target, class_weight, _compute_dtype(x))
    out = _fused(spec, flat_x, w, b, flat_target, class_weight, denominator)
    out = out.reshape(x.shape[:-1]) if spec.reduction == "none" else out
    return out.astype(x.dtype)


_NO_TARGET_DERIVATIVE = (
    "the fused linear losses give no derivative with respect to a probability target; "
    "compute the unfused loss of input @ linear_weight.T (multiloss.jax.cross_entropy) for "
    "one, or wrap the target in jax.lax.stop_gradient"
)
_NO_WEIGHT_DERIVATIVE = (
    "the fused linear losses give no derivative with respect to {name}; compute the unfused "
    "loss of input @ linear_weight.T for one, or wrap {name} in jax.lax.stop_gradient"
)


def _linear_loss(loss: Loss, arrays: tuple[Any, Any, Any, Any], options: dict[str, Any]) -> Array:
    """Prepare (the core's :func:`prepare_linear`, at trace time), then run the chunked
    custom_vjp loss of `arrays` (the input, the weight, the target and the bias): the place
    where JAX's engine executes a prepared fused-head call."""
    x, w, target, b = arrays
    dynamic = (loss.class_vector, "normalizer")
    require_static(**{key: value for key, value in options.items() if key not in dynamic})
    operands = {"input": x, "linear_weight": w, "target": target, "linear_bias": b}
    for name, value in operands.items():
        if _checks.is_array(value) and not isinstance(value, jax.Array | np.ndarray | np.generic):
            kind = f"{type(value).__module__}.{type(value).__name__}"
            raise TypeError(f"{name} must be a JAX or NumPy array; got {kind}")
    vector_name = loss.class_vector or "weight"
    vector = options.get(vector_name)
    if is_tracer(vector) and getattr(vector, "ndim", None) == 0:
        require_static(**{vector_name: vector})
    # Host labels are checked before JAX converts them: without x64 it would wrap an int64
    # label into int32.
    given = np.asarray(target) if is_host_data(target) else target
    if is_host_data(target) and np.issubdtype(given.dtype, np.integer):
        ignore_index = _checks.check_ignore_index(options.get("ignore_index", -100))
        if _checks.is_array(w) and getattr(w, "ndim", 0) == 2 and w.shape[0] and given.ndim:
            check_label_values(given, w.shape[0], ignore_index)
    x, w = as_jax(x), as_jax(w)
    b = None if b is None else as_jax(b)
    readable = not any(is_tracer(value) for value in (target, vector, options["normalizer"]))
    call = prepare_linear(
        loss, x, w, as_jax(target), b, options, check_values=readable, denominator=False
    )
    spec = _Spec(
        loss=loss.name,
        options=call.static_options,
        weight_name=loss.class_vector or "weight",
        reduction=call.reduction,
        rows=call.x.shape[0],
        chunk=call.chunk_size,
        hard=call.config.hard_target,
        fill=call.config.ignore_index if call.config.hard_target else 0,
        dtype=x.dtype,
    )
    run = functools.partial(_compute, spec)
    mesh, axes = explicit_mesh_axes(x)
    if axes:
        spec_x = tuple(jax.typeof(x).sharding.spec)
        spec_x += (None,) * (x.ndim - len(spec_x))
        out_spec = spec_x[:-1] if call.reduction == "none" else ()
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*out_spec))
        run = jax.sharding.auto_axes(run, axes=axes, out_sharding=sharding)
    target = call.target.reshape(*x.shape[:-1], *call.target.shape[1:])
    return run(x, w, b, target, call.class_weight, call.normalizer)


def linear_cross_entropy(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    r"""Cross-entropy of a linear layer's logits, without forming all of them.

    Equal to [`cross_entropy`][multiloss.jax.cross_entropy]`(input @ linear_weight.T +
    linear_bias, target, axis=-1, ...)` with the same options, but the N×V logits are never
    held at once: a `lax.scan` over chunks of `chunk_size` tokens forms one chunk's logits,
    its loss and its gradient (the core's closed forms), and contracts the gradient with
    `linear_weight` and the chunk's inputs at once. Memory: one chunk's logits and a few of
    its temporaries, plus dW (float32 for 16-bit inputs), instead of N×V logits and their
    gradient.

    Differentiable (reverse mode: `grad`, `vjp`, `value_and_grad`) with respect to `input`,
    `linear_weight` and `linear_bias`; works under `jit`, `vmap` and with the tokens
    sharded over devices; `normalizer` is differentiable too ($-\mathrm{loss}/n$). A
    derivative with respect to a probability `target` or `weight` raises
    NotImplementedError (the unfused loss gives those). Forward-mode and second
    derivatives are not provided (a `jax.custom_vjp`).

    Args:
        input: the hidden states, shape `(..., D)` (for example `(N, D)` or `(B, T, D)`);
            float16, bfloat16 (matmuls accumulated and the loss computed in float32),
            float32 or float64.
        linear_weight: the head's weight, `(V, D)` (`torch.nn.Linear`'s layout), the input's
            dtype.
        target: class indices of shape `input.shape[:-1]` (any integer dtype), or class
            probabilities of shape `(*input.shape[:-1], V)`.
        linear_bias: the head's bias `(V,)`, or None.
        weight, ignore_index, label_smoothing, z_loss, softcap: as in
            [`cross_entropy`][multiloss.jax.cross_entropy] (static, except `weight`).
        reduction: `"mean"`, `"sum"` or `"none"` (per token: shape `input.shape[:-1]`).
        normalizer: only with `reduction="mean"`: divide the sum by this number (or 0-d
            array) instead of the call's own denominator, for a mean over a whole batch split
            over devices or micro-batches; 0 gives 0.
        chunk_size: tokens per chunk (static). None: every backend's rule, the most tokens
            whose float32 logits take at most 1/16 of the whole logits and 32 MiB, but at
            least 192 tokens, or all of them (`multiloss.jax.linear.chunk_rows`).

    Returns:
        The loss in the input's dtype: 0-d, or per token for `"none"`.

    Raises:
        TypeError: at trace time, for a dtype that does not fit (integer input, weight or
            bias of another dtype, float class indices), a static option given as a traced
            array, or a `chunk_size` that is not an integer.
        ValueError: at trace time, for shapes that do not match (each argument named) or a
            hyperparameter out of range; when the arrays are concrete, also for a class
            index out of range or a negative weight.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax.linear import linear_cross_entropy
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        >>> y = jnp.array([0, 1, 2])
        >>> round(float(linear_cross_entropy(x, w, y, chunk_size=2)), 6)  # 2 chunks
        0.988295
        >>> jax.grad(linear_cross_entropy, argnums=1)(x, w, y).shape
        (3, 2)
    """
    options = {
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "weight": weight,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return _linear_loss(
        LOSSES["cross_entropy"], (input, linear_weight, target, linear_bias), options
    )


def linear_focal_loss(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    r"""Softmax focal loss of a linear layer's logits, without forming all of them.

    Equal to [`focal_loss`][multiloss.jax.focal_loss]`(input @ linear_weight.T +
    linear_bias, target, axis=-1, ...)`, computed a chunk of tokens at a time as
    [`linear_cross_entropy`][multiloss.jax.linear_cross_entropy] is.

    Args:
        input, linear_weight, target, linear_bias, normalizer, chunk_size: as in
            [`linear_cross_entropy`][multiloss.jax.linear_cross_entropy].
        gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap: as in
            [`focal_loss`][multiloss.jax.focal_loss]; `"mean"` divides by the number of
            counted tokens.

    Returns:
        The loss in the input's dtype: 0-d, or per token for `"none"`.

    Raises:
        TypeError: as for [`linear_cross_entropy`][multiloss.jax.linear_cross_entropy].
        ValueError: as for [`linear_cross_entropy`][multiloss.jax.linear_cross_entropy];
            γ < 0, a scalar α outside [0, 1].

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax.linear import linear_focal_loss
        >>> x, w = jnp.eye(2), jnp.log(jnp.array([[0.9, 0.1], [0.1, 0.9]]))
        >>> round(float(linear_focal_loss(x, w, jnp.array([0, 0]), gamma=0.0)), 6)
        1.203973
    """
    options = {
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "gamma": gamma,
        "alpha": alpha,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return _linear_loss(LOSSES["focal_loss"], (input, linear_weight, target, linear_bias), options)


def linear_poly_loss(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    r"""PolyLoss (Poly-1) of a linear layer's logits, without forming all of them.

    Equal to [`poly_loss`][multiloss.jax.poly_loss]`(input @ linear_weight.T +
    linear_bias, target, axis=-1, ...)`, computed and differentiated as
    [`linear_cross_entropy`][multiloss.jax.linear.linear_cross_entropy] is.

    Args:
        input, linear_weight, target, linear_bias, normalizer, chunk_size: as in
            [`linear_cross_entropy`][multiloss.jax.linear.linear_cross_entropy].
        epsilon, gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap:
            as in [`poly_loss`][multiloss.jax.poly_loss] (static, except `alpha` arrays).

    Returns:
        The loss in the input's dtype: 0-d, or per token for `"none"`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax.linear import linear_poly_loss
        >>> x, w = jnp.eye(2), jnp.zeros((2, 2))
        >>> round(float(linear_poly_loss(x, w, jnp.array([0, 1]), epsilon=1.0)), 5)
        1.19315
    """
    options = {
        "epsilon": epsilon,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return _linear_loss(LOSSES["poly_loss"], (input, linear_weight, target, linear_bias), options)
