"""The NumPy reference's one path through the core: convert, prepare, run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .. import _core

Weights = ArrayLike | Sequence[float] | None


def _as_input(
    logits: ArrayLike,
    target: ArrayLike,
    dtype: DTypeLike | None,
) -> tuple[NDArray[Any], NDArray[Any]]:
    logits = np.asarray(logits)
    target = np.asarray(target)
    if dtype is not None and np.issubdtype(logits.dtype, np.floating):
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating dtype; got {dtype}")
        logits = logits.astype(dtype, copy=False)
        if np.issubdtype(target.dtype, np.floating):
            target = target.astype(dtype, copy=False)
    return logits, target


def run_loss(
    name: str,
    logits: ArrayLike,
    target: ArrayLike,
    dtype: DTypeLike | None,
    with_grad: bool,
    options: dict[str, Any],
) -> Any:
    logits, target = _as_input(logits, target, dtype)
    normalizer = _core.split_normalizer(options)
    if isinstance(normalizer, (np.ndarray, np.generic)):
        normalizer = np.asarray(normalizer)  # a NumPy scalar as a 0-d array
    prepared = _core.prepare_call(_core.LOSSES[name], logits, target, options)
    # The core evaluates both sides of its guards (where(p == 0, 0, p·r) and the like):
    # the discarded side may hold 0·inf, which is not worth a warning.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # np.asarray: a reduced loss is a 0-d array (NumPy's own reductions give scalars)
        if with_grad:
            loss, grad = _core.loss_value_and_grad(prepared, logits.dtype, normalizer=normalizer)
            return np.asarray(loss), grad
        return np.asarray(_core.loss_value(prepared, logits.dtype, normalizer))


def loss_value_and_grad(
    name: str, logits: ArrayLike, target: ArrayLike, dtype: DTypeLike | None, **options: Any
) -> tuple[NDArray[Any], NDArray[Any]]:
    """The body of every `<loss>_value_and_grad`: `(loss, grad)` of the loss `name`."""
    return run_loss(name, logits, target, dtype, True, options)


def loss_grad(
    name: str, logits: ArrayLike, target: ArrayLike, dtype: DTypeLike | None, **options: Any
) -> NDArray[Any]:
    """The body of every `<loss>_grad`: the gradient of the loss `name`."""
    return loss_value_and_grad(name, logits, target, dtype, **options)[1]
