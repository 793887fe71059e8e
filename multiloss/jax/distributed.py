r"""Vocabulary-parallel losses for JAX: the class axis sharded over a mesh axis.

Megatron-LM's tensor-parallel convention on a named mesh axis `axis_name` of size R: the
device at index r along it holds the classes $[rC/R, (r+1)C/R)$, and every device the same
target of *global* class indices. Each device computes the same global loss, and the
gradient with respect to its own slice.

Two ways to call them:

* inside `jax.shard_map` (with `check_vma=True`, its default), on the local blocks, with
  `axis_name` the mesh axis that shards the classes;
* on global arrays, under `jit` or not, with `mesh=`: the function wraps itself in
  `jax.shard_map` over `mesh`, with the class axis split over `axis_name` and, with
  `batch_axes=`, the leading (batch) axis over those mesh axes.

The forward pass makes two all-reduces over `axis_name` (`lax.pmax` of the row max, one
`lax.psum` of a stacked array of row sums); the backward pass (a `jax.custom_vjp`) none.
The math is the core's (`multiloss._core.vocab_parallel`). Under
`multiloss.jax.engine("pallas")` (without label smoothing) the shard's row partials are
one Pallas kernel's, one read of the local logits, and the gradient is the softmax
backward kernel's, one read and one write.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .._core import LOSSES, Loss, _checks, _reduce
from .._core.vocab_parallel import (
    prepare_vocab_parallel,
)
from ._autodiff import no_derivative
from ._engine import kernel_platform, uses_kernels
from ._validation import as_jax, as_jax_weight, is_tracer, require_static
from ._vocab_rule import kernels_for, sharded_loss

Array = jax.Array
AxisName = str | tuple[str, ...]
Weights = Array | np.ndarray | Sequence[float] | None


_NO_WEIGHT_DERIVATIVE = (
    "the vocabulary-parallel losses give no derivative with respect to weight or alpha: its "
    "classes are spread over the devices, and so would be its gradient; wrap it in "
    "jax.lax.stop_gradient (or close over it)"
)


# ---------------------------------------------------------------------------------------
# Calls on local blocks (inside shard_map) and on global arrays (mesh=)

_STATIC = ("axis", "epsilon", "gamma", "ignore_index", "reduction", "label_smoothing", "z_loss")


def _face_options(given: dict[str, Any]) -> dict[str, Any]:
    """A face's loss options (its keyword arguments but the placement ones), by name."""
    placement = ("logits", "target", "axis_name", "mesh", "batch_axes")
    return {key: value for key, value in given.items() if key not in placement}


def _class_vector(loss: Loss) -> str:  # the registry's
    return loss.class_vector or "weight"


def _axis_size(axis_name: Any) -> int:
    try:
        return int(lax.axis_size(axis_name))
    except NameError as error:
        raise ValueError(
            f"axis_name {axis_name!r} is not bound here: call the vocabulary-parallel "
            f"losses inside jax.shard_map over a mesh with that axis, or pass mesh= to call "
            f"them on global arrays"
        ) from error


def _varying_axes(value: Array) -> frozenset[Any] | None:
    """The mesh axes along which `value` varies inside shard_map (check_vma=True; empty
    with check_vma=False), or None where this JAX does not say."""
    aval = jax.typeof(value)
    vma = getattr(aval, "vma", None)  # JAX < 0.9
    if vma is None:
        vma = getattr(getattr(aval, "manual_axis_type", None), "varying", None)
    return None if vma is None else frozenset(vma)


def _check_varying(logits: Array, axis_name: Any) -> None:
    """The local logits must vary along `axis_name` (shard_map's check_vma=True): without
    that type information JAX splits the cotangent of the replicated loss over the devices,
    and a backward pass without collectives would be R times too small."""
    varying = _varying_axes(logits)
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if varying is not None and not set(names) <= varying:
        raise ValueError(
            f"the local logits must vary along {axis_name!r}: pass the class axis's shards "
            f"(in_specs with {axis_name!r} on it) to a jax.shard_map with check_vma=True "
            f"(the default)"
        )


def _local_parts(
    loss: Loss, logits: Any, target: Any, axis_name: Any, options: dict[str, Any]
) -> tuple[Array, Array, Array | None]:
    """On this device's blocks (inside shard_map): the reduced loss and the "mean"
    denominator in the compute dtype, and the normaliser folded into the mean's scale (not
    yet applied; None without one)."""
    require_static(**{key: options[key] for key in _STATIC if key in options})
    size = _axis_size(axis_name)
    logits, target = as_jax(logits), as_jax(target)
    weight_name = _class_vector(loss)
    options = dict(options, **{weight_name: as_jax_weight(options[weight_name])})
    arrays = (logits, target, options[weight_name], options["normalizer"])
    check_values = not any(is_tracer(value) for value in arrays)
    _, config, operands, scale = prepare_vocab_parallel(
        loss, logits, target, size=size, check_values=check_values, **options
    )
    _check_varying(logits, axis_name)
    weight = operands.class_weight
    if weight is not None:
        weight = no_derivative(_NO_WEIGHT_DERIVATIVE, weight)
    kernels = kernels_for(config)
    value, denominator = sharded_loss(config, axis_name, kernels, logits, operands.target, weight)
    return value, denominator, scale


def _local(loss: Loss, logits: Any, target: Any, axis_name: Any, options: dict[str, Any]) -> Array:
    """The loss on this device's blocks (inside shard_map), in the logits' dtype."""
    value, _, scale = _local_parts(loss, logits, target, axis_name, options)
    if scale is not None:  # the normaliser folded into the mean's scale
        value = value * scale
    return value.astype(as_jax(logits).dtype)


def _names(value: Any, argument: str, mesh: Any) -> tuple[str, ...]:
    names = value if isinstance(value, tuple) else (value,)
    for name in names:
        if name not in mesh.axis_names:
            raise ValueError(
                f"{argument} {value!r} is not an axis of the mesh (axes {mesh.axis_names})"
            )
    return names


def _place(value: Any, mesh: Any, spec: P) -> Any:
    """`value` resharded to `spec` where the mesh has Explicit axes (shard_map reshards
    inputs over Auto axes itself, but refuses a mismatch of Explicit ones)."""
    axis_type = getattr(jax.sharding, "AxisType", None)
    types = getattr(mesh, "axis_types", ())
    if axis_type is None or not any(kind == axis_type.Explicit for kind in types):
        return value
    return jax.reshard(value, NamedSharding(mesh, spec))


def _global(
    loss: Loss,
    logits: Any,
    target: Any,
    axis_name: Any,
    mesh: Any,
    batch_axes: Any,
    options: dict[str, Any],
) -> Array:
    """The loss on global arrays: validated whole, then computed under shard_map."""
    require_static(**{key: options[key] for key in _STATIC if key in options})
    _names(axis_name, "axis_name", mesh)
    batch = () if batch_axes is None else _names(batch_axes, "batch_axes", mesh)
    classes = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    if set(batch) & set(classes):
        raise ValueError(f"batch_axes {batch_axes!r} and axis_name {axis_name!r} overlap")
    logits, target = as_jax(logits), as_jax(target)
    weight_name = _class_vector(loss)
    weight = as_jax_weight(options[weight_name])
    normalizer = options["normalizer"]
    arrays = (logits, target, weight, normalizer)
    check_values = not any(is_tracer(value) for value in arrays)
    # The whole call's checks (shapes, dtypes, options; values where concrete), as one rank.
    _, config, operands, _ = prepare_vocab_parallel(
        loss, logits, target, size=1, check_values=check_values, **{**options, weight_name: weight}
    )
    ranks = int(np.prod([mesh.shape[name] for name in classes]))
    axis, num_classes = config.axis, config.num_classes
    if num_classes % ranks:
        raise ValueError(
            f"the {num_classes} classes of the logits (axis {axis}) do not split evenly over "
            f"the {ranks} devices of mesh axis {axis_name!r}"
        )
    if batch and (axis == 0 or logits.ndim < 2):
        raise ValueError("batch_axes shards the leading axis, which must not be the class axis")
    batch_spec = (batch if len(batch) > 1 else batch[0]) if batch else None
    logits_spec: list[Any] = [None] * logits.ndim
    logits_spec[axis] = axis_name
    if batch:
        logits_spec[0] = batch_spec
    target_spec = P(batch_spec) if batch and target.ndim else P()
    vector = operands.class_weight is not None
    is_array = _checks.is_array(normalizer)
    specs = (P(*logits_spec), target_spec, P(axis_name) if vector else P(), P())
    statics = tuple((key, options[key]) for key in _STATIC if key in options)
    mapped = _mapped(
        loss.name,
        mesh,
        axis_name,
        batch,
        statics,
        weight_name,
        vector,
        is_array,
        None if is_array else normalizer,
        specs,
        P(batch_spec) if options["reduction"] == "none" and batch else P(),
        (uses_kernels(), kernel_platform()),
    )
    placeholder = jnp.zeros(())
    inputs = (
        logits,
        target,
        operands.class_weight if vector else placeholder,
        jnp.asarray(normalizer) if is_array else placeholder,
    )
    placed = [_place(value, mesh, spec) for value, spec in zip(inputs, specs, strict=True)]
    return mapped(*placed)


@functools.lru_cache(maxsize=128)
def _mapped(
    name: str,
    mesh: Any,
    axis_name: Any,
    batch: tuple[str, ...],
    statics: tuple[tuple[str, Any], ...],
    weight_name: str,
    vector: bool,
    normalizer_is_array: bool,
    normalizer: object,
    specs: tuple[P, ...],
    out_spec: P,
    engine: tuple[bool, str],
) -> Any:
    """The jitted shard_map of one global call's static facts (jitted: an eager shard_map
    runs op by op; cached: a jit of a new function would compile on every eager call).
    `normalizer` is the number given (or None), unless it is an array (the fourth input).
    `engine`: whether the engine in force gives the Pallas kernels, and for which platform
    (a key of the cache only: the jitted function is traced under that engine)."""
    reduction = dict(statics)["reduction"]
    loss = LOSSES[name]

    def block(logits: Any, target: Any, weight: Any, normalizer_block: Any) -> Array:
        local = dict(statics, **{weight_name: weight if vector else None})
        local["normalizer"] = normalizer_block if normalizer_is_array else normalizer
        if not batch or reduction == "none":
            return _local(loss, logits, target, axis_name, local)
        # The batch is split too: the sums (and the mean's denominator) over batch_axes.
        counted_here = reduction == "mean" and local["normalizer"] is None
        if counted_here:
            local["reduction"] = "sum"
        total, denominator, scale = _local_parts(loss, logits, target, axis_name, local)
        if counted_here:
            summed = lax.psum(jnp.stack([total, denominator]), batch)
            total = _reduce.normalized(jnp, summed[0], summed[1])
        else:
            total = lax.psum(total, batch)
            if scale is not None:
                total = total * scale
        return total.astype(logits.dtype)

    return jax.jit(jax.shard_map(block, mesh=mesh, in_specs=specs, out_specs=out_spec))


def _run(
    loss: Loss,
    logits: Any,
    target: Any,
    axis_name: Any,
    mesh: Any,
    batch_axes: Any,
    options: dict[str, Any],
) -> Array:
    if mesh is None:
        if batch_axes is not None:
            raise ValueError("batch_axes is for calls on global arrays, with mesh=")
        return _local(loss, logits, target, axis_name, options)
    return _global(loss, logits, target, axis_name, mesh, batch_axes, options)


def vocab_parallel_cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis_name: AxisName,
    mesh: jax.sharding.Mesh | None = None,
    batch_axes: AxisName | None = None,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Array | float | None = None,
) -> Array:
    r"""Cross-entropy over classes sharded along the mesh axis `axis_name` (Megatron-LM).

    The loss of [`cross_entropy`][multiloss.jax.cross_entropy] on the whole logits
    (PyTorch's semantics, $\varepsilon/C$ label smoothing with the global C), for
    class-index targets:

    $$
    L_i = -(1-\varepsilon)\, w_{t_i} \log p_{t_i}
          - \frac{\varepsilon}{C} \sum_{k} w_k \log p_k
          + \lambda\, \omega_i \Big(\log \sum_k e^{z_k}\Big)^2
    $$

    with $\omega_i = w_{t_i}$ (1 without `weight`). Collectives: two all-reduces over
    `axis_name` in the forward pass, `lax.pmax` of the row max and one `lax.psum` of the
    stacked row sums ($\sum_k e^{z_k - m}$, the target logit, and where needed $w_t$,
    $\sum_k w_k z_k$, $\sum_k w_k$); none in the backward pass (a `jax.custom_vjp` that
    keeps the row max, log-sum-exp and target log-probability). With `batch_axes`, one more
    all-reduce over them sums the batch's parts (and the mean's denominator). Reverse mode
    only (`jax.grad`, `jax.vjp`); 16-bit logits are computed in float32, the loss and the
    gradient come back in their dtype.

    Two ways to call it:

    * **inside `jax.shard_map`** (mesh=None): `logits` is this device's block, its class
      axis the slice $[rC_l, (r+1)C_l)$ of the device at index r along `axis_name`
      (in_specs with `axis_name` on the class axis), `target` the global class indices
      (replicated along `axis_name`). `check_vma` must be True (the default), or the
      call raises: it is what makes the cotangent of the replicated loss reach every
      device whole. A batch split over other mesh axes is this call's business: its
      `"mean"` is over the local rows unless `normalizer` gives the global count.
    * **on global arrays** (`mesh=` a `jax.sharding.Mesh`, under `jit` or not): the
      function runs itself under `jax.shard_map` over `mesh`, with the class axis of
      `logits` (and `weight`) split over `axis_name`, the leading axis of `logits` and
      `target` over `batch_axes` (None: replicated) and every other axis replicated.
      Inputs are resharded to that layout (by `shard_map` over Auto mesh axes, by
      `jax.reshard` over Explicit ones); the loss comes back replicated (`"mean"`,
      `"sum"`), or split like the batch (`"none"`).

    Args:
        logits: the local block (inside `shard_map`) or the global logits (`mesh=`),
            classes along `axis`; float16, bfloat16, float32 or float64.
        target: global class indices in $[0, C)$ (or `ignore_index`), integers, the
            logits' shape without the class axis. Probability targets are not offered.
        axis_name: the mesh axis (or tuple of axes) that splits the classes (static).
        mesh: None inside `shard_map`; the mesh, for a call on global arrays (static).
        batch_axes: with `mesh=`, the mesh axis or axes that split the leading axis of
            `logits` and `target` (static); None replicates it.
        axis: the class axis (static), -1 by default.
        weight: per-class weights: inside `shard_map` this device's slice (length $C_l$)
            or the whole vector (length $C$), told apart by length; with `mesh=` the
            whole vector. A constant: differentiating with respect to it raises
            NotImplementedError.
        ignore_index: class indices equal to it contribute nothing and are not counted
            (static).
        reduction: `"mean"` ($\sum_i w_{t_i} L_i / \sum_i w_{t_i}$ over counted elements;
            over nothing 0.0), `"sum"` or `"none"` (static).
        label_smoothing: $\varepsilon \in [0, 1]$ (static).
        z_loss: $\lambda \ge 0$ of the z-loss (static).
        normalizer: a number or 0-d array (with `"mean"` only): the sum is divided by it
            instead of by the call's own denominator.

    Returns:
        The global loss in the logits' dtype, the same on every device along `axis_name`.

    Raises:
        TypeError: at trace time, for a dtype that does not fit (integer logits, a
            floating or bool target) or a static hyperparameter given as a traced array.
        ValueError: at trace time, for shapes that do not match, a weight of neither
            length, a hyperparameter out of range, `axis_name` not bound (outside
            `shard_map` without `mesh=`) or logits that do not vary along it
            (`check_vma=False`), classes that do not split evenly over the mesh axis;
            on concrete arrays, a class index out of range or a negative weight. Under
            `jit` an out-of-range class index gives NaN for its element instead.
        NotImplementedError: a derivative with respect to `weight`.

    Examples:
        On global arrays, with a mesh of the devices there are (here one):

        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax import cross_entropy
        >>> from multiloss.jax.distributed import vocab_parallel_cross_entropy
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> logits = jnp.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, 1.0]])
        >>> target = jnp.array([0, 2])
        >>> loss = vocab_parallel_cross_entropy(
        ...     logits, target, axis_name="model", mesh=mesh, label_smoothing=0.1
        ... )
        >>> bool(jnp.allclose(loss, cross_entropy(logits, target, label_smoothing=0.1)))
        True

        Inside `shard_map`, on the local blocks (a mesh of Auto axes, over which
        `shard_map` splits its inputs itself):

        >>> from jax.sharding import AxisType, PartitionSpec as P
        >>> auto = jax.make_mesh((1,), ("model",), axis_types=(AxisType.Auto,))
        >>> step = jax.jit(jax.shard_map(
        ...     jax.grad(lambda z, y: vocab_parallel_cross_entropy(z, y, axis_name="model")),
        ...     mesh=auto, in_specs=(P(None, "model"), P()), out_specs=P(None, "model"),
        ... ))
        >>> bool(jnp.allclose(step(logits, target), jax.grad(cross_entropy)(logits, target)))
        True
    """
    options = _face_options(locals())
    return _run(LOSSES["cross_entropy"], logits, target, axis_name, mesh, batch_axes, options)


def vocab_parallel_focal_loss(
    logits: Array,
    target: Array,
    *,
    axis_name: AxisName,
    mesh: jax.sharding.Mesh | None = None,
    batch_axes: AxisName | None = None,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Array | float | None = None,
) -> Array:
    r"""Softmax focal loss over classes sharded along the mesh axis `axis_name`.

    The loss of [`focal_loss`][multiloss.jax.focal_loss] on the whole logits, for
    class-index targets, called as
    [`vocab_parallel_cross_entropy`][multiloss.jax.distributed.vocab_parallel_cross_entropy]
    is (inside `jax.shard_map`, or on global arrays with `mesh=`):

    $$
    L_i = -\alpha_{t_i} (1 - p_{t_i})^\gamma \log p_{t_i}
          + \lambda \Big(\log \sum_k e^{z_k}\Big)^2
    $$

    with the gradient $\alpha_t A_t (p - \mathrm{onehot}_t)$ on the local slice,
    $A = u^\gamma (1 - \gamma p \ell / u)$, $u = 1 - p_t$. Collectives: the same two
    all-reduces in the forward pass (the focal term needs only $p_t$), none in the
    backward pass.

    Args:
        logits: as in `vocab_parallel_cross_entropy`.
        target: as there.
        axis_name: as there.
        mesh: as there.
        batch_axes: as there.
        axis: as there.
        gamma: focusing parameter γ ≥ 0 (static).
        alpha: None; per-class weights (as `weight` there: a constant); or a scalar α in
            [0, 1] (static), which weights class 0 by 1-α and every other class by α.
        ignore_index: as there.
        reduction: `"mean"` divides by the number of counted elements (not by Σα);
            `"sum"`; `"none"` (static).
        label_smoothing: only 0: with the focal term the smoothed loss is not linear in
            the log-sum-exp, so it would need a third all-reduce in the forward pass and
            a collective in the backward pass; anything else raises NotImplementedError.
        z_loss: λ ≥ 0 of the z-loss, $\omega_i = 1$ (static).
        normalizer: as there.

    Returns:
        The global loss in the logits' dtype, the same on every device along `axis_name`.

    Raises:
        TypeError: as there.
        ValueError: as there.
        NotImplementedError: `label_smoothing` > 0; a derivative with respect to `alpha`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax import focal_loss
        >>> from multiloss.jax.distributed import vocab_parallel_focal_loss
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> logits = jnp.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, 1.0]])
        >>> target = jnp.array([0, 2])
        >>> loss_fn = jax.jit(
        ...     lambda z, y: vocab_parallel_focal_loss(z, y, axis_name="model", mesh=mesh)
        ... )
        >>> bool(jnp.allclose(loss_fn(logits, target), focal_loss(logits, target)))
        True
    """
    options = _face_options(locals())
    return _run(LOSSES["focal_loss"], logits, target, axis_name, mesh, batch_axes, options)


def vocab_parallel_poly_loss(
    logits: Array,
    target: Array,
    *,
    axis_name: AxisName,
    mesh: jax.sharding.Mesh | None = None,
    batch_axes: AxisName | None = None,
    axis: int = -1,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Array | float | None = None,
) -> Array:
    r"""PolyLoss (Poly-1) over classes sharded along the mesh axis `axis_name`.

    [`poly_loss`][multiloss.jax.poly_loss] on the whole logits, called as
    [`vocab_parallel_focal_loss`][multiloss.jax.distributed.vocab_parallel_focal_loss] is
    (the same two all-reduces forward, none backward: the term needs only $p_t$).

    Args:
        logits: as in `vocab_parallel_cross_entropy`.
        target: as there.
        axis_name: as there.
        mesh: as there.
        batch_axes: as there.
        axis: as there.
        epsilon: ε ≥ -1 (static), as in [`poly_loss`][multiloss.jax.poly_loss].
        gamma: focusing parameter γ ≥ 0 (static).
        alpha: as in `vocab_parallel_focal_loss`.
        ignore_index: as there.
        reduction: as in `vocab_parallel_focal_loss`.
        label_smoothing: only 0, as in `vocab_parallel_focal_loss`.
        z_loss: as in `vocab_parallel_focal_loss`.
        normalizer: as there.

    Returns:
        The global loss, as `vocab_parallel_focal_loss` returns it.

    Raises:
        TypeError: as `vocab_parallel_focal_loss`; ValueError: as there, and ε < -1.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax import poly_loss
        >>> from multiloss.jax.distributed import vocab_parallel_poly_loss
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> logits = jnp.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, 1.0]])
        >>> target = jnp.array([0, 2])
        >>> loss = vocab_parallel_poly_loss(logits, target, axis_name="model", mesh=mesh)
        >>> bool(jnp.allclose(loss, poly_loss(logits, target)))
        True
    """
    options = _face_options(locals())
    return _run(LOSSES["poly_loss"], logits, target, axis_name, mesh, batch_axes, options)


__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_focal_loss", "vocab_parallel_poly_loss"]
