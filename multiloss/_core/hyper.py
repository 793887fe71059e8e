"""Hyperparameters as data: a float hyperparameter given as a 0-d array (docs/semantics.md,
Schedules).

A hyperparameter given as a Python number is static: it sits in the call's hashable config
and the math specialises on it (integer powers, the γ = 0 shortcuts). One given as a 0-d
array of the logits' backend is data, traced by a compiler like any operand:

* :func:`check` leaves a :class:`Traced` marker in its place (so the config stays static
  and hashable: one compilation for every value) and checks the array's shape and dtype,
  and its value where the backend policy says it can be read without a sync or a trace
  (:func:`.policy.values_readable`), with the catalogue's message;
* the operands carry the arrays (their last field, ``hyper``: a tuple in the order of the
  config's markers, :func:`names`), made by :func:`operands`;
* inside the engine, :func:`bound` puts each array back where its marker is (also into a
  nested term: ``config.term.gamma``), an out-of-range value replaced by NaN so that the
  loss is NaN (``multiloss.jax.checked`` reports it as an error, :func:`in_range`); every
  family function that reads a hyperparameter runs on the bound config (:func:`binding`).

The math then takes either: a branch on a hyperparameter's value is taken only where it is
a Python number (:func:`is_zero`, :func:`static`); for an array the general form runs,
with the same accuracy. A new hyperparameter is declared once, in :data:`BOUNDS` (its
range, whence its check, its NaN and its checkify message), checked with :func:`check` by
its loss's preparation, and read by the math with the helpers below; the registry lists it
in the loss's :attr:`.registry.Loss.hyperparameters`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _checks
from .policy import host, values_readable

Array = Any
Namespace = Any


@dataclass(frozen=True)
class Traced:
    """The place of a hyperparameter given as an array, in a static config (its name)."""

    name: str

    def __repr__(self) -> str:
        return f"<array {self.name}>"


@dataclass(frozen=True)
class Bounds:
    """The range of a hyperparameter: ``low <= value <= high`` (`high_open`: ``< high``;
    `low_open`: ``> low``), finite."""

    low: float
    high: float = math.inf
    high_open: bool = False
    low_open: bool = False

    def describe(self) -> str:
        """The catalogue's wording of the range (as :func:`._checks.check_real_number`)."""
        if self.low_open:
            return f"> {self.low:g} and finite"
        if math.isfinite(self.high):
            return f"in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return f"finite and >= {self.low:g}"


BOUNDS: dict[str, Bounds] = {
    "gamma": Bounds(0.0),
    "epsilon": Bounds(-1.0),
    "alpha": Bounds(0.0, 1.0),
    "label_smoothing": Bounds(0.0, 1.0),
    "z_loss": Bounds(0.0),
    "softcap": Bounds(0.0, low_open=True),
    "gamma_pos": Bounds(0.0),
    "gamma_neg": Bounds(0.0),
    "clip": Bounds(0.0, 1.0, high_open=True),
    "beta": Bounds(0.0),
}
"""Every hyperparameter that may be given as a 0-d array, by its name, with its range."""


def _check_number(name: str, value: object) -> float:
    if name == "softcap":
        checked = _checks.check_softcap(value)
        assert checked is not None
        return checked
    bounds = BOUNDS[name]
    return _checks.check_real_number(
        name, value, low=bounds.low, high=bounds.high, high_open=bounds.high_open
    )


def check(name: str, value: object, *, check_values: bool = True) -> float | Traced:
    """A hyperparameter checked: a Python number (the catalogue's checks) as a float; a 0-d
    array of real numbers as the :class:`Traced` marker of `name`, its value checked where it
    can be read now (`check_values` and :func:`.policy.values_readable`)."""
    if isinstance(value, Traced):
        return value
    if isinstance(value, numbers.Real) or not _checks.is_array(value):  # NumPy scalars too
        return _check_number(name, value)
    shape = tuple(value.shape)  # type: ignore[attr-defined]
    dtype = value.dtype  # type: ignore[attr-defined]
    xp = _checks.namespace_of(array=value)
    if shape != ():
        raise ValueError(
            f"{name} must be a real number or a 0-d array; got an array of shape {shape}"
        )
    if xp.isdtype(dtype, "bool") or not xp.isdtype(dtype, ("real floating", "integral")):
        raise TypeError(f"{name} must hold a real number; got a 0-d array of dtype {dtype}")
    if check_values and values_readable(value):
        host_xp, readable = host(value)
        readable = getattr(readable, "detach", lambda: readable)()  # a torch leaf in a graph
        _check_number(name, float(host_xp.astype(readable, host_xp.float64)))
    return Traced(name)


def check_number(name: str, value: object) -> float:
    """A hyperparameter of a call kind that takes Python numbers only (the fused linear
    heads, the vocabulary-parallel losses, a module's constructor): an array is refused."""
    if is_traced(value) or (_checks.is_array(value) and not isinstance(value, numbers.Real)):
        raise TypeError(
            f"{name} must be a Python number here; got an array ({type(value).__name__}): "
            f"hyperparameters given as 0-d arrays (schedules) are taken by the plain losses "
            f"only, not by the fused linear heads or the vocabulary-parallel losses"
        )
    return _check_number(name, value)


def is_0d_array(value: object) -> bool:
    """Whether `value` is a 0-d array of some namespace (not a Python or NumPy scalar).
    Cheap for the common answers (a Python number, None, an array of some dimensions):
    every call asks it of its options."""
    if value is None or isinstance(value, (int, float, str)):
        return False
    if getattr(value, "ndim", None) != 0:
        return False
    return not isinstance(value, numbers.Real) and _checks.is_array(value)


def is_traced(value: object) -> bool:
    """Whether `value` is a :class:`Traced` marker (a config's hyperparameter given as an
    array, not yet bound)."""
    return isinstance(value, Traced)


def static(value: object) -> float | None:
    """The value of a hyperparameter given as a Python number; None for an array."""
    if type(value) is float or isinstance(value, numbers.Real):
        return float(value)
    return None


def is_zero(value: object) -> bool:
    """Whether a hyperparameter is the Python number 0 (a shortcut may be taken); False for
    an array, which takes the general form whatever its value."""
    if type(value) is float or type(value) is int:  # a checked number: every small call
        return value == 0
    return isinstance(value, numbers.Real) and value == 0


def fill_like(xp: Namespace, like: Array, value: Any) -> Array:
    """An array shaped like `like` full of `value` (a Python number or a 0-d array)."""
    if isinstance(value, numbers.Real):
        return xp.full_like(like, value)
    return xp.zeros_like(like) + value


def as_array(xp: Namespace, value: Any, like: Array) -> Array:
    """`value` as a 0-d array of `like`'s dtype and device (an array is returned as it is)."""
    if isinstance(value, numbers.Real):
        return xp.asarray(value, dtype=like.dtype, device=_checks.device(like))
    return value


def _fields(config: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)]


def names(config: Any) -> tuple[str, ...]:
    """The names of the hyperparameters given as arrays in `config` (and its ``term``), in
    the order in which the operands carry them."""
    found: list[str] = []
    for _, value in _fields(config):
        if isinstance(value, Traced):
            found.append(value.name)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            found.extend(v.name for _, v in _fields(value) if isinstance(v, Traced))
    return tuple(found)


def operands(xp: Namespace, config: Any, given: dict[str, object], dtype: Any) -> tuple[Any, ...]:
    """The arrays behind `config`'s markers (:func:`names`), taken from the call's `given`
    options and converted to the compute `dtype`: the operands' ``hyper`` field. Each must
    be an array of the logits' namespace `xp`."""
    if not any(is_0d_array(value) for value in given.values()):
        return ()  # numbers only (every small call): no marker to look for
    return tuple(_converted(xp, name, given[name], dtype) for name in names(config))


def _converted(xp: Namespace, name: str, value: Any, dtype: Any) -> Array:
    if _checks.namespace_of(array=value) is not xp:
        raise TypeError(
            f"{name} must be a Python number or a 0-d array of the logits' backend; got "
            f"{type(value).__module__}.{type(value).__name__}"
        )
    return xp.astype(value, dtype)


def folded(xp: Namespace, name: str, value: Any, dtype: Any) -> Array:
    """A hyperparameter array that the preparation folds into an operand by the backend's
    own operations (the element-wise losses' label smoothing, into the target): converted
    to the compute `dtype`, NaN where out of range. It never reaches the config, and its
    derivative is the backend's autodiff of the folding (docs/semantics.md, Schedules)."""
    return _poisoned(xp, name, _converted(xp, name, value, dtype))


def in_range(xp: Namespace, name: str, value: Array) -> Array:
    """Whether a hyperparameter array's value is in its range (False for NaN and inf)."""
    bounds = BOUNDS[name]
    low = value > bounds.low if bounds.low_open else value >= bounds.low
    high = value < bounds.high if bounds.high_open else value <= bounds.high
    return low & high & (xp.abs(value) < math.inf)


def _poisoned(xp: Namespace, name: str, value: Array) -> Array:
    """`value`, or NaN where it is out of range (a traced value, unchecked)."""
    return xp.where(in_range(xp, name, value), value, xp.nan)


def bound(xp: Namespace, config: Any, arrays: tuple[Any, ...]) -> Any:
    """`config` with each marker replaced by its array (in :func:`names`' order), an
    out-of-range one NaN."""
    values = {
        name: _poisoned(xp, name, array) for name, array in zip(names(config), arrays, strict=True)
    }
    changes = {}
    for field_name, value in _fields(config):
        if isinstance(value, Traced):
            changes[field_name] = values[value.name]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = {n: values[v.name] for n, v in _fields(value) if isinstance(v, Traced)}
            if inner:
                changes[field_name] = dataclasses.replace(value, **inner)
    return dataclasses.replace(config, **changes)


def binding(function: Callable[..., Any]) -> Callable[..., Any]:
    """A family function ``(xp, config, operands, …)`` that runs on the bound config (the
    operands' ``hyper`` arrays put back into it; the operands then carry none)."""

    @functools.wraps(function)
    def run(xp: Namespace, config: Any, operands: Any, *args: Any, **kwargs: Any) -> Any:
        if operands.hyper:
            config = bound(xp, config, operands.hyper)
            operands = operands._replace(hyper=())
        return function(xp, config, operands, *args, **kwargs)

    return run


def refusal(name: str) -> str:
    """The error of a derivative with respect to the hyperparameter `name`."""
    return (
        f"the derivative with respect to {name} is not provided (docs/semantics.md, "
        f"Schedules): {name} may be an array for a schedule, but not one that is "
        f"differentiated; detach it (torch: .detach(); JAX: jax.lax.stop_gradient)"
    )
