"""The backend policy: the questions every call asks of its arrays, answered by one object per
adapter.

* Is a call being traced (``torch.compile``, ``torch.jit``, a JAX trace)?
* May an array's values be read now, without a device synchronisation or a trace?
* Where are they read (:meth:`BackendPolicy.host`: the array itself for a CPU tensor, a
  NumPy copy of a concrete JAX array, which stays readable also while a trace captures it)?

An adapter registers its policy with :func:`register_backend`, beside the namespace of its
array types; the core and the adapters ask :func:`policy_of` and :func:`values_readable`
and decide nowhere else. An array of no registered backend (NumPy, array-api-strict, …)
has :data:`ARRAY_API`: never traced, values always readable, in its own namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any
Namespace = Any


@dataclass(frozen=True)
class BackendPolicy:
    """One backend's answers (see the module docstring)."""

    name: str
    """``"torch"``, ``"jax"``, ``"array_api"``: also the key of a loss's default class axis
    (:attr:`.registry.Loss.class_axis`; ``"array_api"`` takes NumPy's)."""
    tracing: Callable[[], bool]
    """Whether a trace or compilation is in progress now (no array needed)."""
    concrete: Callable[[Array], bool]
    """Whether this array's values can be read now without a device sync (not a tracer, not
    on an accelerator, not a fake or functorch-wrapped tensor)."""
    host: Callable[[Array], tuple[Namespace, Array]]
    """The namespace and array to read a concrete array's values with."""
    adopt: Callable[[Any], Any] = lambda value: value
    """A weight or normaliser given as host data that the backend takes as its own array
    (JAX: a NumPy array becomes a JAX array); anything else is returned as it is."""


def _never() -> bool:
    return False


def _always(array: Array) -> bool:
    return True


def _itself(array: Array) -> tuple[Namespace, Array]:
    from ._checks import namespace_of

    return namespace_of(array=array), array


ARRAY_API = BackendPolicy("array_api", _never, _always, _itself)
"""Arrays of no registered backend: NumPy, array-api-strict, …"""

_BY_TYPE: dict[type, BackendPolicy] = {}
_BY_BASE: list[tuple[type, BackendPolicy]] = []


def register_backend(
    policy: BackendPolicy, array_types: tuple[type, ...], *, subclasses: bool = False
) -> None:
    """Declare `policy` the policy of arrays of `array_types` (and of their subclasses with
    `subclasses`, for backends whose arrays have many types: JAX's tracers)."""
    for array_type in array_types:
        _BY_TYPE[array_type] = policy
        if subclasses:
            _BY_BASE.append((array_type, policy))


def policy_of(array: object) -> BackendPolicy:
    """The policy of `array`'s backend (:data:`ARRAY_API` where none is registered)."""
    policy = _BY_TYPE.get(type(array))
    if policy is not None:
        return policy
    for base, found in _BY_BASE:
        if isinstance(array, base):
            _BY_TYPE[type(array)] = found
            return found
    return ARRAY_API


def values_readable(*arrays: object) -> bool:
    """Whether the value checks (docs/semantics.md, Bad input) can read these arrays now:
    nothing is tracing and each array (None and Python values are skipped) is concrete."""
    from ._checks import is_array

    present = [a for a in arrays if a is not None and is_array(a)]
    if not present:
        return True
    policies = {id(policy_of(a)): policy_of(a) for a in present}
    if any(policy.tracing() for policy in policies.values()):
        return False
    return all(policy_of(a).concrete(a) for a in present)


def host(array: Array) -> tuple[Namespace, Array]:
    """The namespace and array to read a concrete `array`'s values with (its policy's)."""
    return policy_of(array).host(array)
