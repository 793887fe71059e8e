"""Moving NumPy test data into each array namespace of the ``xp`` fixture and back,
and running the core directly (the framework adapters are tested elsewhere).

Namespaces (what the ``xp`` fixture yields): ``numpy``, ``array_api_strict``,
``array_api_compat.torch`` (torch tensors) and ``jax.numpy``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from multiloss import _core

XP_NAMES = ("numpy", "array_api_strict", "torch", "jax")
FLOATS = ("float16", "bfloat16", "float32", "float64")


def namespace(name: str) -> Any:
    """The namespace of a backend name, skipping the test if the backend is missing."""
    if name == "numpy":
        return np
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict")
    if name == "torch":
        pytest.importorskip("torch")
        return importlib.import_module("array_api_compat.torch")
    if name == "jax":
        pytest.importorskip("jax")
        return importlib.import_module("jax.numpy")
    raise ValueError(name)


def backend_name(xp: Any) -> str:
    name = xp.__name__
    if name == "numpy":
        return "numpy"
    if name.startswith("array_api_strict"):
        return "array_api_strict"
    if name.endswith("torch"):
        return "torch"
    if name.startswith("jax"):
        return "jax"
    raise ValueError(name)


def dtype_of(xp: Any, name: str) -> Any:
    """A dtype of `xp` by name; skips where the backend has no such dtype (bfloat16)."""
    if name == "bfloat16":
        which = backend_name(xp)
        if which == "torch":
            import torch

            return torch.bfloat16
        if which == "jax":
            return xp.bfloat16
        pytest.skip(f"{which} has no bfloat16")
    return getattr(xp, name)


def asarray(xp: Any, value: Any, dtype: str | None = None) -> Any:
    """An array of namespace `xp` holding `value` (NumPy data), optionally cast by dtype name."""
    which = backend_name(xp)
    value = np.asarray(value)
    if dtype == "bfloat16":
        value = value.astype(np.float32)
    if which == "numpy":
        array = value
    elif which == "array_api_strict":
        array = xp.asarray(value)
    elif which == "torch":
        import torch

        array = torch.asarray(value.copy())
    else:
        array = xp.asarray(value)
    if dtype is not None:
        array = xp.astype(array, dtype_of(xp, dtype))
    return array


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of an array of any of the four backends (bfloat16 becomes float32)."""
    if isinstance(array, (np.ndarray, np.generic, float, int)):
        return np.asarray(array)
    module = type(array).__module__
    if module.startswith("torch"):
        import torch

        tensor = array.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.to(torch.float32)
        return tensor.numpy()
    if module.startswith("array_api_strict"):
        return np.from_dlpack(array)
    result = np.asarray(array)
    if result.dtype.name == "bfloat16":
        result = result.astype(np.float32)
    return result


def dtype_name(array: Any) -> str:
    """'float32', 'bfloat16', 'int64', … of an array of any backend."""
    text = str(array.dtype)
    return text.rsplit(".", 1)[-1]


def run_core(name: str, logits: Any, target: Any, **options: Any) -> tuple[Any, Any]:
    """The core end to end: validate, then loss and ∂Σloss/∂logits in the input dtype.

    As in ``multiloss.numpy``, NumPy's warnings about the discarded side of the core's
    guards (``where(p == 0, 0, p·r)`` and the like) are silenced.
    """
    prepared = _core.PREPARE[name](logits, target, **options)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return _core.loss_value_and_grad(prepared, logits.dtype)


def run_core_jit(name: str, logits: Any, target: Any, **options: Any) -> tuple[Any, Any]:
    """The same under ``jax.jit`` (value checks off: the data is abstract there)."""
    import jax

    def function(logits, target):
        prepared = _core.PREPARE[name](logits, target, check_values=False, **options)
        return _core.loss_value_and_grad(prepared, logits.dtype)

    return jax.jit(function)(logits, target)


def run_numpy(
    xp: Any,
    name: str,
    logits: np.ndarray,
    target: np.ndarray,
    *,
    dtype: str | None = None,
    jit: bool = False,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Move NumPy data into `xp` (logits cast to `dtype`), run the core, bring results back.

    Array-valued options (``weight``, ``pos_weight``, an ``alpha`` vector given as a NumPy
    array) are moved into `xp` too; Python lists and numbers are passed as they are.
    """
    target = np.asarray(target)
    target_dtype = (
        dtype if (dtype is not None and np.issubdtype(target.dtype, np.floating)) else None
    )
    moved = {
        key: asarray(xp, value) if isinstance(value, np.ndarray) else value
        for key, value in options.items()
    }
    run = run_core_jit if jit else run_core
    loss, grad = run(name, asarray(xp, logits, dtype), asarray(xp, target, target_dtype), **moved)
    return to_numpy(loss), to_numpy(grad)


# ----------------------------------------------------------------------------- tolerances
# The one tolerance helper of the tests: every comparison "within rtol/atol" or "within so
# many eps" goes through tolerance_error.

EPS = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
}


def tolerance_error(
    actual: Any,
    reference: Any,
    *,
    rtol: float,
    atol: float,
    equal_nan: bool = True,
    equal_inf: bool = True,
) -> float:
    """max |actual - reference| / (atol + rtol · |reference|), elementwise, in float64:
    at most 1 where ``|actual - reference| <= atol + rtol · |reference|`` everywhere.

    Equal elements count as no error. Non-finite elements: with `equal_inf` an infinity
    against the same infinity is no error, with `equal_nan` NaN against NaN is none (the
    conventions of ``numpy.testing.assert_allclose``; ``torch.testing.assert_close`` has
    ``equal_nan=False``); any other non-finite mismatch is an infinite error.
    """
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    if actual.size == 0:
        return 0.0
    same = actual == reference
    if not equal_inf:
        same &= np.isfinite(reference)
    if equal_nan:
        same |= np.isnan(actual) & np.isnan(reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.abs(actual - reference) / (atol + rtol * np.abs(reference))
    error = np.where(same, 0.0, error)
    error = np.where(np.isnan(error), np.inf, error)
    return float(np.max(error))


def eps_error(actual: Any, reference: Any, dtype: str, **nonfinite: bool) -> float:
    """max |actual - reference| / (eps · (1 + |reference|)), in units of `dtype`'s eps.

    Equal infinities and NaN against NaN count as no error unless `nonfinite`
    (``equal_nan``, ``equal_inf`` of :func:`tolerance_error`) says otherwise; any other
    non-finite mismatch is an infinite error.
    """
    return tolerance_error(actual, reference, rtol=EPS[dtype], atol=EPS[dtype], **nonfinite)


def assert_eps(
    actual: Any, reference: Any, dtype: str, bound: float, what: str = "", **nonfinite: bool
) -> None:
    """|actual - reference| ≤ bound · eps(dtype) · (1 + |reference|), elementwise."""
    error = eps_error(actual, reference, dtype, **nonfinite)
    assert error <= bound, (
        f"{what}: error {error:.3g} eps of {dtype} > {bound} eps\n"
        f"actual    = {np.asarray(actual)!r}\nreference = {np.asarray(reference)!r}"
    )


def assert_close(
    actual: Any, reference: Any, *, rtol: float, atol: float, what: str = "", **nonfinite: bool
) -> None:
    """|actual - reference| ≤ atol + rtol · |reference|, elementwise (shapes equal)."""
    error = tolerance_error(actual, reference, rtol=rtol, atol=atol, **nonfinite)
    assert error <= 1, (
        f"{what}: error {error:.3g} × (atol {atol:g} + rtol {rtol:g} · |reference|)\n"
        f"actual    = {np.asarray(actual)!r}\nreference = {np.asarray(reference)!r}"
    )
