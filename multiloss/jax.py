r"""JAX adapter: jit-able losses whose derivatives come from the closed forms of the core.

The four losses of :mod:`multiloss` as pure functions of ``jax.Array`` s, class axis -1 by
default (the optax convention), every hyperparameter keyword-only so that it can be made
static under :func:`jax.jit` (``static_argnames=...`` or :func:`functools.partial`).

Derivatives
    Each loss is a :func:`jax.custom_jvp` whose rule is the core's closed-form gradient
    G = ∂loss/∂logits (docs/math.md): the JVP along a tangent t is ⟨G, t⟩, and JAX
    transposes that for reverse mode. So :func:`jax.grad`, :func:`jax.value_and_grad`,
    :func:`jax.vjp`, :func:`jax.jvp`, :func:`jax.jacfwd`, :func:`jax.jacrev` and
    :func:`jax.hessian` all work, and reverse mode costs what a ``custom_vjp`` would: XLA
    compiles ``jit(value_and_grad(...))`` of both to the same fusions, with the same
    temporary memory (between forward and backward one array of the logits' size is kept
    either way: the logits for a ``custom_vjp``, G here). G is itself a
    ``custom_jvp`` whose rule is the core's closed-form Hessian-vector product, so second
    derivatives are finite where automatic differentiation of G is not (focal losses with
    0 < γ < 1 at saturated logits, p_t = 1: ``d/du u^γ`` is infinite there). Third and
    higher derivatives are JAX's automatic derivatives of that closed form.

    A probability target, a sigmoid target, ``weight``, a per-class ``alpha`` array and
    ``pos_weight`` are differentiable to first order too (closed forms in
    ``multiloss._core.operands``, contracted with their tangents in the same rule). A
    second derivative through them raises ``NotImplementedError``; wrap them in
    :func:`jax.lax.stop_gradient` or close over them where one is taken.

Dtypes
    float16 and bfloat16 logits are computed in float32 inside, and the loss (and the
    gradient) come back in the input dtype. float64 works when the user has enabled
    ``jax_enable_x64``; this module never changes JAX's configuration.

Bad input
    Shape, dtype and hyperparameter errors raise at trace time, under ``jit`` too, with
    the messages of every other backend (``TypeError``/``ValueError``; docs/semantics.md).
    Values (class indices in range, weights non-negative) are checked eagerly when the
    arrays are concrete, and so are weights held in concrete arrays that a traced function
    captures. Traced values cannot be: an out-of-range class index gives a
    NaN loss (and NaN gradient) for its element, never a silent clamp or wrap. To turn
    that into an error, run the function through :func:`checked` (or
    :func:`jax.experimental.checkify.checkify` yourself): the losses then check class
    indices and weights at run time. :func:`validate_labels` does the label check alone.

Sharding and transformations
    The losses are ordinary JAX computations: they work under ``vmap``, ``scan``,
    ``checkpoint``, ``shard_map``, and on arrays sharded with
    :class:`jax.sharding.NamedSharding` over the batch or the class axis (a ``"mean"``
    over a sharded batch becomes an all-reduce). With Explicit mesh axes (sharding in
    types, the default of :func:`jax.make_mesh`) the loss runs inside
    :func:`jax.sharding.auto_axes`, so that XLA places the gathers of target logits and
    weights; the loss comes back replicated (``"mean"``/``"sum"``) or sharded like the
    logits without the class axis (``"none"``), the gradient sharded like the logits.

>>> import jax, jax.numpy as jnp
>>> from multiloss.jax import focal_loss
>>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
>>> labels = jnp.array([0, 1])
>>> loss_fn = jax.jit(focal_loss, static_argnames=("gamma",))
>>> round(float(loss_fn(logits, labels, gamma=2.0)), 5)
0.05509
>>> grad = jax.grad(focal_loss)(logits, labels)
>>> grad.shape
(2, 3)
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._backends import missing_backend

try:
    import jax
except ImportError as error:
    raise missing_backend(__name__, "JAX", "jax") from error

import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.experimental import checkify

from . import _core
from ._core import _checks, second_order
from ._core import operands as operands_derivatives
from ._core.softmax import SoftmaxConfig

__all__ = [
    "binary_cross_entropy",
    "checked",
    "cross_entropy",
    "focal_loss",
    "sigmoid_focal_loss",
    "validate_labels",
]

Array = jax.Array
Weights = Array | np.ndarray | Sequence[float] | None


# ---------------------------------------------------------------------------------------
# Autodiff: the core's closed forms hooked into custom_jvp.


def _is_zero(tangent: object) -> bool:
    """A tangent that is known to be zero: absent, symbolic, or of an integer array."""
    return (
        tangent is None
        or isinstance(tangent, SymbolicZero)
        or getattr(tangent, "dtype", None) == jax.dtypes.float0
    )


_USER_NAMES = {"class_weight": "weight (or alpha)"}


def _split_tangents(operands: Any, tangents: Any) -> tuple[Array | None, dict[str, Array]]:
    """The tangent of the logits (None when it is zero) and the non-zero tangents of the other
    operands, by field name (a probability target, the weights)."""
    others = {
        field: tangent
        for field, tangent in zip(operands._fields[1:], tangents[1:], strict=True)
        if not _is_zero(tangent)
    }
    logit_tangent = None if _is_zero(tangents[0]) else tangents[0]
    return logit_tangent, others


def _refuse_second_order(fields: Any) -> None:
    for field in fields:
        name = _USER_NAMES.get(field, field)
        raise NotImplementedError(
            f"second derivatives through {name} are not provided: multiloss.jax gives "
            f"first-order derivatives with respect to {name} and derivatives of any order "
            f"with respect to the logits; wrap {name} in jax.lax.stop_gradient (or close over "
            f"it) where a second derivative is taken"
        )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _first_order_only(fields: tuple[str, ...], operands: Any) -> Any:
    """The operands themselves; differentiating them here is refused.

    :func:`_operand_tangent` reads the operands through this identity. A first derivative
    with respect to a target or weight does not differentiate it (the tangent is linear in
    the operand tangents, the operands enter as constants); a second derivative through them
    does, and gets a clear error instead of JAX's automatic derivative of the first-order
    closed form (`fields`: the operands whose first derivative is being taken).
    """
    return operands


def _first_order_only_jvp(fields: tuple[str, ...], primals: Any, tangents: Any) -> Any:
    (operands,), (operand_tangents,) = primals, tangents
    logit_tangent, others = _split_tangents(operands, operand_tangents)
    if logit_tangent is not None or others:
        _refuse_second_order(fields)
    return operands, operand_tangents


_first_order_only.defjvp(_first_order_only_jvp, symbolic_zeros=True)


def _operand_tangent(config: Any, operands: Any, tangents: dict[str, Array]) -> Array:
    """The loss's tangent along the tangents of the target and the weights (first order)."""
    guarded = _first_order_only(tuple(sorted(tangents)), operands)
    return operands_derivatives.operand_jvp((jnp, config, guarded), tangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _loss(config: Any, operands: Any) -> Array:
    """The reduced loss, in the compute dtype."""
    loss, _ = _core.forward((jnp, config, operands))
    return loss


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _loss_and_gradient(config: Any, operands: Any) -> tuple[Array, Array]:
    """The reduced loss and its unit gradient G = ∂(Σ loss)/∂logits, from one pass."""
    return _core.loss_value_and_grad((jnp, config, operands), operands.logits.dtype)


def _loss_jvp(config: Any, primals: Any, tangents: Any) -> tuple[Array, Array]:
    (operands,), (operand_tangents,) = primals, tangents
    tangent, others = _split_tangents(operands, operand_tangents)
    if tangent is None:
        loss = _loss(config, operands)
        if not others:
            return loss, jnp.zeros_like(loss)
        return loss, _operand_tangent(config, operands, others)
    # Calling the custom_jvp functions (not the core) for the primal outputs makes a
    # second derivative of this rule use their closed-form rules too.
    loss, gradient = _loss_and_gradient(config, operands)
    prepared = (jnp, config, operands)
    loss_tangent = second_order.directional_derivative(prepared, gradient, tangent)
    if others:
        loss_tangent = loss_tangent + _operand_tangent(config, operands, others)
    return loss, loss_tangent


def _loss_and_gradient_jvp(
    config: Any, primals: Any, tangents: Any
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    (operands,), (operand_tangents,) = primals, tangents
    tangent, others = _split_tangents(operands, operand_tangents)
    if others:  # the gradient G differentiated with respect to a target or weight
        _refuse_second_order(others)
    loss, gradient = _loss_and_gradient(config, operands)
    if tangent is None:
        return (loss, gradient), (jnp.zeros_like(loss), jnp.zeros_like(gradient))
    prepared = (jnp, config, operands)
    return (loss, gradient), (
        second_order.directional_derivative(prepared, gradient, tangent),
        second_order.hessian_vector_product(prepared, tangent),
    )


_loss.defjvp(_loss_jvp, symbolic_zeros=True)
_loss_and_gradient.defjvp(_loss_and_gradient_jvp, symbolic_zeros=True)


# ---------------------------------------------------------------------------------------
# Inputs, value checks and the checkify path.


def _is_tracer(value: object) -> bool:
    return isinstance(value, jax.core.Tracer)


def _as_jax(value: Any) -> Any:
    """NumPy arrays and Python numbers/lists become JAX arrays; anything else is left as is
    (a JAX array stays itself; another framework's array is refused by the core)."""
    if isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        return jnp.asarray(value)
    return value


def _as_jax_weight(value: Any) -> Any:
    """A NumPy weight array becomes a JAX array; sequences are left to the core."""
    if isinstance(value, (np.ndarray, np.generic)):
        return jnp.asarray(value)
    return value


def _require_static(**hyperparameters: object) -> None:
    for name, value in hyperparameters.items():
        if _is_tracer(value):
            raise TypeError(
                f"{name} must be a static Python value, but got a traced array "
                f"({value.aval}); under jax.jit mark it static "
                f"(jax.jit(fn, static_argnames=({name!r},))) or bind it with functools.partial"
            )


def _debug_checks(config: Any, operands: Any, weights: tuple[tuple[str, int], ...]) -> None:
    """Run-time value checks, active only under :func:`jax.experimental.checkify.checkify`.

    Without checkify they are dropped (no cost: XLA removes the unused predicates).
    `weights` names the weight operands still to check: (user's name, operand index).
    """
    if isinstance(config, SoftmaxConfig) and config.hard_target:
        _check_labels(operands.target, config.num_classes, config.ignore_index, debug=True)
    for name, index in weights:
        weight = operands[index]
        good = (weight >= 0) & jnp.isfinite(weight)  # False for NaN too
        checkify.debug_check(
            jnp.all(good),
            f"{name} must be non-negative and finite (not NaN or inf); got for example {{}}",
            jnp.min(jnp.where(good, jnp.inf, weight)),  # the most negative, or NaN
        )


def _check_labels(target: Array, num_classes: int, ignore_index: int, *, debug: bool) -> None:
    counted = target != ignore_index
    bad = jnp.ravel(counted & ((target < 0) | (target >= num_classes)))
    message = (
        f"target has class indices out of range [0, {num_classes}) "
        f"(ignore_index={ignore_index}): for example {{}}"
    )
    # A reduction, not an index: it also works on arrays sharded in explicit mode.
    example = jnp.max(jnp.where(bad, jnp.ravel(target), jnp.iinfo(target.dtype).min))
    check = checkify.debug_check if debug else checkify.check
    check(~jnp.any(bad), message, example)


def validate_labels(target: Array, num_classes: int, *, ignore_index: int = -100) -> None:
    """Check that every class index is in ``[0, num_classes)`` or equals `ignore_index`.

    A :func:`jax.experimental.checkify.check`: on concrete arrays it raises at once; inside
    a function transformed by :func:`~jax.experimental.checkify.checkify` (or
    :func:`checked`) it reports at run time, also under ``jit``. Staged under ``jit``
    *without* checkify, JAX refuses it at trace time (a ``check`` must be functionalized).
    The losses themselves run this check automatically under checkify; call it yourself to
    validate labels that reach a loss only later, or to check them once per batch.

    >>> import jax, jax.numpy as jnp
    >>> from multiloss.jax import checked, validate_labels
    >>> step = checked(jax.jit(lambda y: validate_labels(y, 3)))
    >>> step(jnp.array([0, 1, 2]))
    >>> step(jnp.array([0, 5, 2]))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    jax._src.checkify.JaxRuntimeError: target has class indices out of range [0, 3) ...
    """
    target = _as_jax(target)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise TypeError(f"target must hold integer class indices; got dtype {target.dtype}")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    _check_labels(target, int(num_classes), _checks.check_ignore_index(ignore_index), debug=False)


def checked(
    fn: Callable[..., Any], *, errors: frozenset = checkify.user_checks
) -> Callable[..., Any]:
    """`fn` with the run-time value checks of the losses turned into exceptions.

    Wraps `fn` (jitted or not) in :func:`jax.experimental.checkify.checkify` and raises the
    first failed check as ``jax.experimental.checkify.JaxRuntimeError``: an out-of-range
    class index, a negative or NaN weight/alpha/pos_weight (traced values only; concrete
    ones are checked eagerly anyway), or a failed :func:`validate_labels`. `errors` is
    passed on to ``checkify`` (for example ``checkify.user_checks | checkify.nan_checks``).

    The checks cost a reduction over the labels at run time; without ``checked`` the
    losses skip them and give NaN for an out-of-range label. ``checkify`` re-traces `fn`
    on every call (about half a millisecond). `checked` goes outside ``jit``
    (``checked(jax.jit(fn))``; inside a trace it raises a ``TypeError`` that says so). In a
    training loop,
    ``jax.jit(checkify.checkify(step, errors=checkify.user_checks))`` followed by
    ``error.throw()`` compiles the checked step once.

    >>> import jax, jax.numpy as jnp
    >>> from multiloss.jax import checked, cross_entropy
    >>> loss_fn = checked(jax.jit(cross_entropy))
    >>> logits = jnp.zeros((2, 3))
    >>> round(float(loss_fn(logits, jnp.array([0, 2]))), 4)
    1.0986
    >>> loss_fn(logits, jnp.array([0, 3]))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    jax._src.checkify.JaxRuntimeError: target has class indices out of range [0, 3) ...
    >>> float(jax.jit(cross_entropy)(logits, jnp.array([0, 3])))  # unchecked: NaN
    nan
    """
    checked_fn = checkify.checkify(fn, errors=errors)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(_is_tracer(leaf) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
            raise TypeError(
                "checked(fn) raises the failed checks as exceptions, which cannot happen "
                "inside jax.jit or another transformation (its arguments are traced): apply "
                "checked outside, checked(jax.jit(fn)), or inside a jitted function call "
                "jax.experimental.checkify.checkify(fn) and error.throw() on its result "
                "outside"
            )
        error, out = checked_fn(*args, **kwargs)
        error.throw()
        return out

    return wrapper


# ---------------------------------------------------------------------------------------
# The four losses.


def _is_host_data(value: object) -> bool:
    """Python numbers and sequences, NumPy arrays: values that are known while tracing."""
    return isinstance(value, (np.ndarray, np.generic, numbers.Real, list, tuple))


def _check_host_labels(logits: Any, target: Any, options: dict[str, Any]) -> None:
    """Check class indices given as NumPy integers or a Python sequence before JAX converts
    them: without x64 JAX's int32 would wrap a label of 2**31 or more (into range, or onto
    ignore_index), and a Python int that does not fit would raise an OverflowError that
    does not name the target."""
    if not _is_host_data(target) or isinstance(target, numbers.Real):
        return
    labels = np.asarray(target)
    if not np.issubdtype(labels.dtype, np.integer):
        return
    shape = tuple(np.shape(logits))
    axis = _checks.normalize_axis(options["axis"], len(shape))
    ignore_index = _checks.check_ignore_index(options["ignore_index"])
    index = labels.astype(np.int64)
    _checks.check_class_indices(np, labels, index, shape[axis], ignore_index)


def _run(
    name: str,
    logits: Any,
    target: Any,
    options: dict[str, Any],
    *,
    static: tuple[str, ...],
    weights: tuple[str, ...],
    class_indices: bool = False,
) -> Array:
    """Validate (at trace time), then run the custom_jvp loss; `weights` are the names of
    the array-valued options, in the order of the core's operands; `class_indices`: an
    integer target holds class indices (the softmax losses)."""
    _require_static(**{key: options[key] for key in static})
    if class_indices:
        _check_host_labels(logits, target, options)
    logits, target = _as_jax(logits), _as_jax(target)
    originals = {key: options[key] for key in weights}
    for key in weights:
        options[key] = _as_jax_weight(options[key])
    prepare = functools.partial(_core.PREPARE[name], logits, target, **options)
    traced = _is_tracer(target) or any(_is_tracer(options[key]) for key in weights)
    if not traced:
        try:
            _, config, operands = prepare(check_values=True)
        except jax.errors.ConcretizationTypeError:
            # Under jit even constants are staged: the converted arrays are tracers.
            traced = True
    unchecked = None  # None: checked already; else the weights to check at run time
    if traced:
        _, config, operands = prepare(check_values=False)
        unchecked = []
        for index, (key, weight) in enumerate(zip(weights, operands[2:], strict=False), 2):
            if weight is None:
                continue
            if _is_host_data(originals[key]):  # known now, whatever the core made of it
                host = np.asarray(originals[key], dtype=np.float64)
                _checks.check_weight_values(np, key, host)
            elif not _is_tracer(weight):
                # A concrete array, also one captured by jit, scan or checkpoint: its values
                # are known while tracing (the namespace's own operations would be staged).
                _checks.check_weight_values(np, key, np.asarray(weight, dtype=np.float64))
            else:
                unchecked.append((key, index))
    return _call_loss(config, operands, unchecked).astype(logits.dtype)


def _explicit_mesh_axes(array: Any) -> tuple[Any, tuple[str, ...]]:
    """The mesh of `array`'s sharding type and its Explicit axes (none outside explicit
    sharding, and on JAX versions without it)."""
    axis_type = getattr(getattr(jax, "sharding", None), "AxisType", None)
    sharding = getattr(jax.typeof(array), "sharding", None) if axis_type else None
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or getattr(mesh, "empty", True):
        return None, ()
    names = tuple(
        name
        for name, kind in zip(mesh.axis_names, mesh.axis_types, strict=True)
        if kind == axis_type.Explicit
    )
    return mesh, names


def _call_loss(config: Any, operands: Any, unchecked: list[tuple[str, int]] | None) -> Array:
    """The custom_jvp loss, after the run-time checks of :func:`_debug_checks` (if
    `unchecked` is not None); on arrays sharded over Explicit mesh axes, in Auto mode.

    Under explicit sharding ("sharding in types") JAX refuses operations whose output
    sharding it cannot infer, such as gathering the target logit or class weight with a
    batch-sharded index, or mixing sharded masks with replicated constants. Inside
    :func:`jax.sharding.auto_axes` XLA's sharding propagation decides instead; the loss
    comes out replicated ("mean"/"sum") or sharded like the logits ("none").
    """
    run = functools.partial(_checked_loss, config, unchecked)
    mesh, axes = _explicit_mesh_axes(operands.logits)
    if not axes:
        return run(operands)
    spec = tuple(jax.typeof(operands.logits).sharding.spec)
    spec += (None,) * (operands.logits.ndim - len(spec))
    if config.reduction != "none":
        spec = ()
    elif isinstance(config, SoftmaxConfig):
        spec = spec[: config.axis] + spec[config.axis + 1 :]
    out_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
    return jax.sharding.auto_axes(run, axes=axes, out_sharding=out_sharding)(operands)


def _checked_loss(config: Any, unchecked: tuple | None, operands: Any) -> Array:
    if unchecked is not None:
        _debug_checks(config, operands, tuple(unchecked))
    return _loss(config, operands)


def cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    r"""Softmax cross-entropy, with the semantics of ``torch.nn.functional.cross_entropy``.

    With ℓ = log_softmax(z) along `axis` and the target distribution q (the one-hot of a
    class index, or the given probabilities; label smoothing ε makes it
    ``(1-ε)·q + ε/C``), each element's loss is

    .. math:: L = -\sum_k q_k \, w_k \, \log p_k

    and its gradient ``p·Σ_k q_k w_k - q ⊙ w``. For class indices and no smoothing this is
    ``optax.softmax_cross_entropy_with_integer_labels`` (which has no weights,
    ``ignore_index`` or smoothing).

    Args:
        logits: unnormalised scores, any rank ≥ 1, classes along `axis`; float16, bfloat16
            (computed in float32 inside), float32 or float64.
        target: integer class indices (the logits' shape without `axis`) or class
            probabilities (the logits' shape, floating).
        axis: the class axis (static).
        weight: per-class weights w (length C): a JAX or NumPy array (may be traced) or a
            sequence; None weights every class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (static).
        reduction: ``"mean"`` (Σ w_{y_i} ℓ_i / Σ w_{y_i} over counted elements for class
            indices; divided by the element count for probabilities), ``"sum"`` or
            ``"none"`` (per element, class axis removed). A mean over nothing is 0.0 with a
            zero gradient (not NaN).
        label_smoothing: ε in [0, 1] (static).

    Returns:
        The loss in the logits' dtype: 0-d, or the per-element losses for ``"none"``.

    Under ``jit`` an out-of-range class index gives NaN for its element; see
    :func:`checked`.

    References: PyTorch ``torch.nn.CrossEntropyLoss``; Szegedy et al., "Rethinking the
    Inception Architecture for Computer Vision", CVPR 2016 (label smoothing).

    >>> import jax, jax.numpy as jnp
    >>> from multiloss.jax import cross_entropy
    >>> logits = jnp.array([[0.0, 0.0], [2.0, 0.0]])
    >>> round(float(cross_entropy(logits, jnp.array([1, 0]))), 6)  # (log 2 + 0.126928) / 2
    0.410038
    >>> loss_fn = jax.jit(cross_entropy, static_argnames=("label_smoothing",))
    >>> round(float(loss_fn(logits, jnp.array([1, 0]), label_smoothing=0.1)), 6)
    0.460038
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _run(
        "cross_entropy",
        logits,
        target,
        options,
        static=("axis", "ignore_index", "reduction", "label_smoothing"),
        weights=("weight",),
        class_indices=True,
    )


def focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    .. math:: L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k

    For a class-index target t this is :math:`-\alpha_t (1-p_t)^\gamma \log p_t`; γ = 0
    with no alpha is exactly :func:`cross_entropy`. The factor (1-p_t)^γ turns down
    well-classified examples: with γ = 2, p_t = 0.9 is weighted by 0.01.

    The gradient is p_k·Σ_j c_j A_j - c_k A_k with A = u^γ(1 - γ p ℓ/u), u = 1 - p,
    c = q·α: no negative power of u, so it is finite for 0 < γ < 1 at p_t = 1, and so is
    the Hessian (a closed form as well).

    Args:
        logits, target, axis, ignore_index, label_smoothing: as in :func:`cross_entropy`.
        gamma: focusing parameter γ ≥ 0 (static).
        alpha: None (no weighting); C per-class weights (array, may be traced, or
            sequence); or a static scalar α in [0, 1] that weights class 0 (background)
            by 1-α and every other class by α (RetinaNet, kornia, MONAI).
        reduction: ``"mean"`` divides by the number of counted (not ignored) elements,
            not by Σα; ``"sum"``; ``"none"``. A mean over nothing is 0.0.

    Returns:
        The loss in the logits' dtype.

    References: Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object
    Detection", ICCV 2017, arXiv:1708.02002.

    >>> import functools, jax, jax.numpy as jnp
    >>> from multiloss.jax import focal_loss
    >>> logits = jnp.log(jnp.array([[0.9, 0.1]]))
    >>> round(float(focal_loss(logits, jnp.array([0]), gamma=2.0)), 8)  # 0.01 · -log 0.9
    0.00105361
    >>> loss_fn = jax.jit(functools.partial(focal_loss, gamma=0.5, alpha=[0.25, 0.75]))
    >>> round(float(jax.grad(loss_fn)(logits, jnp.array([0]))[0, 0]), 6)
    -0.011654
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    if _is_tracer(alpha) and getattr(alpha, "ndim", None) == 0:
        _require_static(alpha=alpha)
    return _run(
        "focal_loss",
        logits,
        target,
        options,
        static=("axis", "gamma", "ignore_index", "reduction", "label_smoothing"),
        weights=("alpha",),
        class_indices=True,
    )


def binary_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    reduction: str = "mean",
) -> Array:
    r"""Sigmoid cross-entropy on logits, with the semantics of ``torch.nn.BCEWithLogitsLoss``.

    .. math:: L = -w \left[ p_w \, y \log \sigma(x) + (1 - y) \log (1 - \sigma(x)) \right]

    computed as ``w·(pw·y·softplus(-x) + (1-y)·softplus(x))``, finite for any finite
    logit. Without weights it is ``optax.sigmoid_binary_cross_entropy``.

    Args:
        logits: any shape (multi-label: one logit per class).
        target: the logits' shape; probabilities in [0, 1] (integer or bool 0/1 accepted).
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch; may be traced).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"`` (static).

    Returns:
        The loss in the logits' dtype (the logits' shape for ``"none"``).

    References: PyTorch ``torch.nn.BCEWithLogitsLoss``; optax
    ``sigmoid_binary_cross_entropy``.

    >>> import jax.numpy as jnp
    >>> from multiloss.jax import binary_cross_entropy
    >>> round(float(binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))), 6)  # log 2
    0.693147
    """
    options = {"weight": weight, "pos_weight": pos_weight, "reduction": reduction}
    return _run(
        "binary_cross_entropy",
        logits,
        target,
        options,
        static=("reduction",),
        weights=("weight", "pos_weight"),
    )


def sigmoid_focal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Array:
    r"""Sigmoid focal loss, with the semantics of ``torchvision.ops.sigmoid_focal_loss``.

    .. math:: L = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \quad
              p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)

    With ``reduction="none"`` this is ``optax.sigmoid_focal_loss``; unlike optax's, the
    gradient and Hessian are finite for 0 < γ < 1 at saturated logits.

    Args:
        logits, target: as in :func:`binary_cross_entropy`.
        alpha: α in [0, 1], or None for no α_t weighting (static).
        gamma: focusing parameter γ ≥ 0 (static).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"`` (static).

    Returns:
        The loss in the logits' dtype.

    References: Lin et al., ICCV 2017 (arXiv:1708.02002); torchvision
    ``ops.sigmoid_focal_loss``.

    >>> import jax.numpy as jnp
    >>> from multiloss.jax import sigmoid_focal_loss
    >>> x, y = jnp.array([0.0]), jnp.array([1.0])
    >>> round(float(sigmoid_focal_loss(x, y, alpha=None)), 6)  # 0.5² · log 2
    0.173287
    """
    options = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
    return _run(
        "sigmoid_focal_loss",
        logits,
        target,
        options,
        static=("alpha", "gamma", "reduction"),
        weights=(),
    )
