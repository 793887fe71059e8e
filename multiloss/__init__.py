"""multiloss: cross-entropy and focal losses for PyTorch, JAX/Flax and NumPy, written once.

The functions here take arrays of any supported backend and dispatch on the array:

* `torch.Tensor` → [`multiloss.torch`][multiloss.torch] (autograd, class axis 1 by default);
* `jax.Array` → [`multiloss.jax`][multiloss.jax] (jit/grad, class axis -1 by default);
* NumPy and any other array-API array (array-api-strict, …) → the array-API core, class
  axis -1 by default, in the input's own dtype (use [`multiloss.numpy`][multiloss.numpy]
  for the float64 reference with gradients).

`import multiloss` imports neither torch nor jax: a backend is looked up in `sys.modules`
only when one of its arrays arrives. The backend modules are attributes of the package,
imported on first access: `multiloss.numpy.focal_loss_grad(...)` works after a plain
`import multiloss` (and `multiloss.torch` then imports torch).

Examples:
    >>> import numpy as np, multiloss
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    >>> round(float(multiloss.cross_entropy(logits, np.array([0, 2]))), 6)
    0.634229
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._version import __version__

if TYPE_CHECKING:  # for type checkers; at run time these are imported by __getattr__
    from . import jax as jax
    from . import numpy as numpy
    from . import torch as torch

Array = Any

_BACKENDS = ("jax", "numpy", "torch")


def __getattr__(name: str) -> ModuleType:
    """`multiloss.numpy`, `multiloss.torch`, `multiloss.jax`: imported on first access.

    A backend that is not installed raises the ImportError that says which extra to install.
    """
    if name in _BACKENDS:
        return importlib.import_module(f"{__name__}.{name}")  # also sets the attribute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The package's names and the three backend modules (listing them imports nothing)."""
    return sorted({*globals(), *_BACKENDS})


def backend_of(array: object) -> str:
    """`'torch'`, `'jax'` or `'array_api'`: which adapter serves this array (no import is made)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return "torch"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(array, jax.Array):
        return "jax"
    return "array_api"


def _dispatch(name: str, logits: Array, target: Array, options: dict[str, Any]) -> Array:
    loss = _core.LOSSES[name]
    backend = backend_of(logits)
    if backend != "array_api":
        function = getattr(importlib.import_module(f"multiloss.{backend}"), name)
        if loss.has_class_axis and options["axis"] is None:
            del options["axis"]  # the adapter's own default
        return function(logits, target, **options)
    if loss.has_class_axis and options["axis"] is None:
        options["axis"] = loss.class_axis["numpy"]
    prepared = loss.prepare(logits, target, **options)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # guarded 0·inf
        return _core.loss_value(prepared, logits.dtype)


def cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: int | None = None,
    weight: Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Softmax cross-entropy of any backend's arrays.

    See [`multiloss.numpy.cross_entropy`][multiloss.numpy.cross_entropy] for the arguments.
    `axis=None` takes the backend's default class axis (1 for torch, -1 otherwise).
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _dispatch("cross_entropy", logits, target, options)


def focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: int | None = None,
    gamma: float = 2.0,
    alpha: float | Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    """Softmax focal loss of any backend's arrays.

    See [`multiloss.numpy.focal_loss`][multiloss.numpy.focal_loss] for the arguments.
    `axis=None` takes the backend's default class axis (1 for torch, -1 otherwise).
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _dispatch("focal_loss", logits, target, options)


def binary_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    reduction: str = "mean",
) -> Array:
    """Sigmoid cross-entropy of any backend's arrays.

    See [`multiloss.numpy.binary_cross_entropy`][multiloss.numpy.binary_cross_entropy] for
    the arguments.
    """
    options = {"weight": weight, "pos_weight": pos_weight, "reduction": reduction}
    return _dispatch("binary_cross_entropy", logits, target, options)


def sigmoid_focal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Array:
    """Sigmoid focal loss of any backend's arrays.

    See [`multiloss.numpy.sigmoid_focal_loss`][multiloss.numpy.sigmoid_focal_loss] for the
    arguments.
    """
    options = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
    return _dispatch("sigmoid_focal_loss", logits, target, options)


__all__ = [
    "__version__",
    "backend_of",
    "binary_cross_entropy",
    "cross_entropy",
    "focal_loss",
    "sigmoid_focal_loss",
]
