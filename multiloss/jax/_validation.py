"""Inputs and value checks of the JAX losses: host data, traced values and checkify."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from .._core import DISTRIBUTION, SOFTMAX, _checks, hyper
from .._core.policy import BackendPolicy, register_backend

Array = jax.Array


def is_tracer(value: object) -> bool:
    """Whether `value` is traced (its values are not known now)."""
    return isinstance(value, jax.core.Tracer)


def _not_tracing() -> bool:
    # A concrete array is read on the host (NumPy), also while a trace captures it: for
    # the value checks, no JAX trace is "in progress".
    return False


def _concrete(array: Any) -> bool:
    return not is_tracer(array)


def _host(array: Any) -> tuple[Any, Any]:
    return np, np.asarray(array)


def adopt(value: Any) -> Any:
    """A NumPy weight or normaliser becomes a JAX array; anything else is left as it is."""
    if isinstance(value, (np.ndarray, np.generic)):
        return jnp.asarray(value)
    return value


POLICY = BackendPolicy("jax", _not_tracing, _concrete, _host, adopt)
"""The JAX adapter's backend policy: a tracer's values are unknown; a concrete array's are
read on the host, also where a ``jit``, ``scan`` or ``checkpoint`` trace captures it."""

register_backend(POLICY, (jax.Array,), subclasses=True)


def as_jax(value: Any) -> Any:
    """NumPy arrays and Python numbers/lists become JAX arrays; anything else is left as is
    (a JAX array stays itself; another framework's array is refused by the core)."""
    if isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        return jnp.asarray(value)
    return value


def as_jax_weight(value: Any) -> Any:
    """A NumPy weight array becomes a JAX array; sequences are left to the core."""
    if isinstance(value, (np.ndarray, np.generic)):
        return jnp.asarray(value)
    return value


def require_static(**hyperparameters: object) -> None:
    for name, value in hyperparameters.items():
        if is_tracer(value):
            raise TypeError(
                f"{name} must be a static Python value, but got a traced array "
                f"({getattr(value, 'aval', value)}); under jax.jit mark it static "
                f"(jax.jit(fn, static_argnames=({name!r},))) or bind it with functools.partial"
            )


def debug_checks(config: Any, operands: Any, weights: tuple[tuple[str, int], ...]) -> None:
    """Run-time value checks, active only under `jax.experimental.checkify.checkify`.

    Without checkify they are dropped (no cost: XLA removes the unused predicates).
    `weights` names the weight operands still to check: (user's name, operand index).
    """
    if config.family is SOFTMAX and config.hard_target:
        check_labels(operands.target, config.num_classes, config.ignore_index, debug=True)
    if config.family is DISTRIBUTION:
        bins = config.num_bins
        good = jnp.ravel((operands.target >= 0) & (operands.target <= bins - 1))  # not NaN
        checkify.debug_check(
            jnp.all(good),
            f"target must lie in [0, {bins - 1}] (the bins of the {bins}-bin axis; not NaN); "
            f"got for example {{}}",
            jnp.max(jnp.where(good, -jnp.inf, jnp.ravel(operands.target)), initial=-jnp.inf),
        )
    for name, value in zip(hyper.names(config), operands.hyper, strict=True):
        debug_check_hyperparameter(name, value)
    for name, index in weights:
        weight = operands[index]
        good = (weight >= 0) & jnp.isfinite(weight)  # False for NaN too
        checkify.debug_check(
            jnp.all(good),
            f"{name} must be non-negative and finite (not NaN or inf); got for example {{}}",
            jnp.min(jnp.where(good, jnp.inf, weight)),  # the most negative, or NaN
        )


def debug_check_hyperparameter(name: str, value: Array) -> None:
    """The run-time range check of a hyperparameter given as a traced array (active only
    under checkify): the config's, or one folded into an operand by the preparation."""
    checkify.debug_check(
        hyper.in_range(jnp, name, value),
        f"{name} must be {hyper.BOUNDS[name].describe()} and not NaN; got {{}}",
        value,
    )


def check_hyperparameters(
    options: dict[str, Any], names: tuple[str, ...], carried: tuple[str, ...]
) -> None:
    """Each hyperparameter among `names` given as an array in a traced call: a concrete one
    (its value known now) checked now; a traced one that the preparation folded into an
    operand (not among the config's `carried`: a label smoothing) checked at run time,
    under checkify (the carried ones are checked with the operands: :func:`debug_checks`)."""
    for name in names:
        value = options[name]
        if value is not None and not is_tracer(value):
            hyper.check(name, value)
        elif is_tracer(value) and name not in carried:
            debug_check_hyperparameter(name, value)


def check_labels(target: Array, num_classes: int, ignore_index: int, *, debug: bool) -> None:
    """The class indices' checkify check (`debug`: a debug check, active only under
    checkify)."""
    counted = target != ignore_index
    bad = jnp.ravel(counted & ((target < 0) | (target >= num_classes)))
    message = (
        f"target has class indices out of range [0, {num_classes}) "
        f"(ignore_index={ignore_index}): for example {{}}"
    )
    # A reduction, not an index: it also works on arrays sharded in explicit mode.
    lowest = jnp.iinfo(target.dtype).min
    example = jnp.max(jnp.where(bad, jnp.ravel(target), lowest), initial=lowest)  # N = 0 too
    check = checkify.debug_check if debug else checkify.check
    check(~jnp.any(bad), message, example)


def validate_labels(target: Array, num_classes: int, *, ignore_index: int = -100) -> None:
    """Check that every class index is in `[0, num_classes)` or equals `ignore_index`.

    A `jax.experimental.checkify.check`: on concrete arrays it raises at once; inside a function
    transformed by `jax.experimental.checkify.checkify` (or [`checked`][multiloss.jax.checked])
    it reports at run time, also under `jit`. Staged under `jit` *without* checkify, JAX refuses
    it at trace time (a `check` must be functionalized). The losses themselves run this check
    automatically under checkify; call it yourself to validate labels that reach a loss only
    later, or to check them once per batch.

    Args:
        target: integer class indices (a JAX or NumPy array, or a sequence).
        num_classes: the number of classes $C$, a positive integer.
        ignore_index: the class index that is exempt from the check (an integer).

    Raises:
        TypeError: `target` does not hold integers, or `ignore_index` is not an integer.
        ValueError: `num_classes` is not a positive integer.
        jax.experimental.checkify.JaxRuntimeError: a class index is out of range (at once on
            concrete arrays; under checkify, when the checked function raises it).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax import checked, validate_labels
        >>> step = checked(jax.jit(lambda y: validate_labels(y, 3)))
        >>> step(jnp.array([0, 1, 2]))
        >>> step(jnp.array([0, 5, 2]))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        jax._src.checkify.JaxRuntimeError: target has class indices out of range [0, 3) ...
    """
    target = as_jax(target)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise TypeError(f"target must hold integer class indices; got dtype {target.dtype}")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    check_labels(target, int(num_classes), _checks.check_ignore_index(ignore_index), debug=False)


def checked(
    fn: Callable[..., Any], *, errors: frozenset = checkify.user_checks
) -> Callable[..., Any]:
    """`fn` with the run-time value checks of the losses turned into exceptions.

    Wraps `fn` (jitted or not) in `jax.experimental.checkify.checkify` and raises the first
    failed check as `jax.experimental.checkify.JaxRuntimeError`: an out-of-range class index, a
    negative or NaN weight/alpha/pos_weight (traced values only; concrete ones are checked
    eagerly anyway), or a failed [`validate_labels`][multiloss.jax.validate_labels]. `errors` is
    passed on to `checkify` (for example `checkify.user_checks | checkify.nan_checks`).

    The checks cost a reduction over the labels at run time; without `checked` the losses skip
    them and give NaN for an out-of-range label. `checkify` re-traces `fn` on every call (about
    half a millisecond). `checked` goes outside `jit` (`checked(jax.jit(fn))`; inside a trace it
    raises a `TypeError` that says so). In a training loop,
    `jax.jit(checkify.checkify(step, errors=checkify.user_checks))` followed by `error.throw()`
    compiles the checked step once.

    Args:
        fn: the function to check, jitted or not.
        errors: the checkify error set to enable.

    Returns:
        A function with the signature of `fn` that returns what `fn` returns.

    Raises:
        jax.experimental.checkify.JaxRuntimeError: from the returned function, for the first
            failed check.
        TypeError: from the returned function, when it is called inside `jax.jit` or another
            transformation (its arguments are traced).

    Examples:
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
        if any(is_tracer(leaf) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
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


def is_host_data(value: object) -> bool:
    """Python numbers and sequences, NumPy arrays: values that are known while tracing."""
    return isinstance(value, (np.ndarray, np.generic, numbers.Real, list, tuple))


def check_host_labels(logits: Any, target: Any, options: dict[str, Any]) -> None:
    """Check class indices given as NumPy integers or a Python sequence before JAX converts
    them: without x64 JAX's int32 would wrap a label of 2**31 or more (into range, or onto
    ignore_index), and a Python int that does not fit would raise an OverflowError that
    does not name the target."""
    if not is_host_data(target) or isinstance(target, numbers.Real):
        return
    labels = np.asarray(target)
    if not np.issubdtype(labels.dtype, np.integer):
        return
    shape = tuple(np.shape(logits))
    axis = _checks.normalize_axis(options["axis"], len(shape))
    ignore_index = _checks.check_ignore_index(options["ignore_index"])
    index = labels.astype(np.int64)
    _checks.check_class_indices(np, labels, index, shape[axis], ignore_index)


# Validation of the fused linear losses (multiloss.jax.linear)


def class_weight_array(name: str, value: Any, num_classes: int, dtype: Any) -> Array | None:
    """A per-class weight (or alpha) vector as a JAX array of `dtype`, its values checked
    where they are known."""
    if value is None:
        return None
    if isinstance(value, np.ndarray | np.generic):
        value = jnp.asarray(value)
    array = _checks.as_weight_array(jnp, name, value, jnp.zeros((), dtype), dtype)
    _checks.check_class_vector(jnp, name, array, num_classes)
    if not is_tracer(array):
        _checks.check_weight_values(np, name, np.asarray(array, dtype=np.float64))
    return array


def check_label_values(target: Any, num_classes: int, ignore_index: int) -> None:
    """Class indices in range, where they are known (host data or a concrete array)."""
    if is_tracer(target):
        return
    try:
        labels = np.asarray(target)
    except jax.errors.ConcretizationTypeError:  # pragma: no cover - staged constants
        return
    if np.issubdtype(labels.dtype, np.integer):
        index = labels.astype(np.int64)
        _checks.check_class_indices(np, labels, index, num_classes, ignore_index)
