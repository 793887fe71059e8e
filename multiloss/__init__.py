"""multiloss: classification losses for PyTorch, JAX/Flax and NumPy, written once.

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
from ._backends import public_names
from ._core.counting import count_elements, count_targets
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
    """The package's public names and the three backend modules (listing them imports
    nothing)."""
    return public_names(__all__, *_BACKENDS)


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
    normalizer = _core.split_normalizer(options)
    prepared = _core.prepare_call(loss, logits, target, options)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # guarded 0·inf
        return _core.loss_value(prepared, logits.dtype, normalizer)


def cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: int | None = None,
    weight: Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
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
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
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
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
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
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
    }
    return _dispatch("focal_loss", logits, target, options)


def poly_loss(
    logits: Array,
    target: Array,
    *,
    axis: int | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
) -> Array:
    """PolyLoss (Poly-1) of any backend's arrays.

    See [`multiloss.numpy.poly_loss`][multiloss.numpy.poly_loss] for the arguments.
    `axis=None` takes the backend's default class axis (1 for torch, -1 otherwise).
    """
    options = {
        "axis": axis,
        "epsilon": epsilon,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
    }
    return _dispatch("poly_loss", logits, target, options)


def binary_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Sigmoid cross-entropy of any backend's arrays.

    See [`multiloss.numpy.binary_cross_entropy`][multiloss.numpy.binary_cross_entropy] for
    the arguments.
    """
    options = {
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return _dispatch("binary_cross_entropy", logits, target, options)


def sigmoid_focal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: float | Array | Sequence[float] | None = 0.25,
    gamma: float = 2.0,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Sigmoid focal loss of any backend's arrays.

    See [`multiloss.numpy.sigmoid_focal_loss`][multiloss.numpy.sigmoid_focal_loss] for the
    arguments.
    """
    options = {
        "alpha": alpha,
        "gamma": gamma,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return _dispatch("sigmoid_focal_loss", logits, target, options)


def asymmetric_loss(
    logits: Array,
    target: Array,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Asymmetric Loss (multi-label) of any backend's arrays.

    See [`multiloss.numpy.asymmetric_loss`][multiloss.numpy.asymmetric_loss] for the
    arguments.
    """
    options = {
        "gamma_pos": gamma_pos,
        "gamma_neg": gamma_neg,
        "clip": clip,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return _dispatch("asymmetric_loss", logits, target, options)


def distribution_focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: int | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Distribution focal loss (the bins of a box side) of any backend's arrays.

    See [`multiloss.numpy.distribution_focal_loss`][multiloss.numpy.distribution_focal_loss]
    for the arguments. `axis=None` takes the backend's default bin axis (1 for torch, -1
    otherwise).
    """
    options = {"axis": axis, "weight": weight, "reduction": reduction, "normalizer": normalizer}
    return _dispatch("distribution_focal_loss", logits, target, options)


def varifocal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: float = 0.75,
    gamma: float = 2.0,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Varifocal loss (detection) of any backend's arrays.

    See [`multiloss.numpy.varifocal_loss`][multiloss.numpy.varifocal_loss] for the
    arguments.
    """
    options = {
        "alpha": alpha,
        "gamma": gamma,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return _dispatch("varifocal_loss", logits, target, options)


def quality_focal_loss(
    logits: Array,
    target: Array,
    *,
    beta: float = 2.0,
    weight: Array | Sequence[float] | None = None,
    pos_weight: Array | Sequence[float] | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    """Quality focal loss (detection) of any backend's arrays.

    See [`multiloss.numpy.quality_focal_loss`][multiloss.numpy.quality_focal_loss] for the
    arguments.
    """
    options = {
        "beta": beta,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return _dispatch("quality_focal_loss", logits, target, options)


def _dispatch_linear(
    name: str, arrays: tuple[Array, Array, Array], options: dict[str, Any]
) -> Array:
    backend = backend_of(arrays[0])
    if backend != "array_api":
        module = importlib.import_module(f"multiloss.{backend}")
        return getattr(module, f"linear_{name}")(*arrays, **options)
    # NumPy and any other array-API array: the core's engine, in the array's own backend
    # and dtype (as the plain losses)
    x, w, target = arrays
    bias = options.pop("linear_bias")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # guarded 0·inf
        call = _core.prepare_linear(
            _core.LOSSES[name], x, w, target, bias, options, check_values=True
        )
        return _core.run_linear(call, with_grad=False)


def linear_cross_entropy(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    weight: Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    """Cross-entropy of `input @ linear_weight.T + linear_bias`, fused over chunks of tokens,
    of any backend's arrays.

    See [`multiloss.torch.linear_cross_entropy`][multiloss.torch.linear_cross_entropy]
    and [Large vocabularies][large-vocabularies]; NumPy arrays go to the reference
    [`multiloss.numpy.linear_cross_entropy`][multiloss.numpy.linear_cross_entropy], in
    their own dtype.
    """
    options = {
        "linear_bias": linear_bias,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return _dispatch_linear("cross_entropy", (input, linear_weight, target), options)


def linear_focal_loss(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    gamma: float = 2.0,
    alpha: float | Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    """Focal loss of `input @ linear_weight.T + linear_bias`, fused over chunks of tokens,
    of any backend's arrays; see [`linear_cross_entropy`][multiloss.linear_cross_entropy].
    """
    options = {
        "linear_bias": linear_bias,
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
    return _dispatch_linear("focal_loss", (input, linear_weight, target), options)


def linear_poly_loss(
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Array | Sequence[float] | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Array | float | None = None,
    chunk_size: int | None = None,
) -> Array:
    """PolyLoss of `input @ linear_weight.T + linear_bias`, fused over chunks of tokens, of
    any backend's arrays; see [`linear_cross_entropy`][multiloss.linear_cross_entropy].
    """
    options = {
        "linear_bias": linear_bias,
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
    return _dispatch_linear("poly_loss", (input, linear_weight, target), options)


def _counts(counts: Any) -> tuple[Any, Any, bool]:
    """The namespace and array of `counts` (a sequence becomes a NumPy array), and whether
    their values are known (not a JAX tracer)."""
    if isinstance(counts, (list, tuple)):
        counts = np.asarray(counts)
    if not _core._checks.is_array(counts):
        raise TypeError(
            f"counts must be an array or a sequence of integers; got {type(counts).__name__}"
        )
    jax = sys.modules.get("jax")
    traced = jax is not None and isinstance(counts, jax.core.Tracer)
    return _core._checks.namespace_of(counts=counts), counts, not traced


def inverse_frequency_weights(counts: Array | Sequence[int]) -> Array:
    r"""Class weights $w_c = n / (C \cdot n_c)$ from class counts (scikit-learn's "balanced").

    Every class then carries the same total weight. A class with no sample gets 0.

    Args:
        counts: the number of samples of each class, a 1-d array of any backend (or a
            sequence: a NumPy array is returned), non-negative integers, not all 0.

    Returns:
        The weights, floating, in the counts' backend: pass them as `weight=` or `alpha=`.

    Raises:
        TypeError: `counts` is not an array of real numbers.
        ValueError: `counts` is not 1-d, has a negative or non-integer entry, or is all 0.

    Examples:
        >>> import numpy as np, multiloss
        >>> multiloss.inverse_frequency_weights(np.array([100, 10, 1, 0]))
        array([ 0.2775,  2.775 , 27.75  ,  0.    ])
    """
    xp, array, known = _counts(counts)
    return _core.inverse_frequency_weights(xp, array, check_values=known)


def class_balanced_weights(counts: Array | Sequence[int], *, beta: float = 0.9999) -> Array:
    r"""Class-balanced weights (Cui et al. 2019): the inverse effective number of samples.

    $$
    w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \sum_c w_c = C.
    $$

    $\beta = 0$ weights every class alike; as $\beta \to 1$ the weights tend to the
    inverse frequencies. A class with no sample gets 0. $1 - \beta^{n}$ is computed as
    $-\mathrm{expm1}(n \log \beta)$, exact also for $\beta$ close to 1.

    Args:
        counts: as in [`inverse_frequency_weights`][multiloss.inverse_frequency_weights].
        beta: $\beta \in [0, 1)$; the paper's default 0.9999.

    Returns:
        The weights, floating, in the counts' backend: pass them as `weight=` or `alpha=`.

    Raises:
        TypeError: `counts` is not an array of real numbers, or `beta` is not a number.
        ValueError: `counts` as in `inverse_frequency_weights`; `beta` outside [0, 1).

    References:
        Cui, Jia, Lin, Song, Belongie, "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.

    Examples:
        >>> import numpy as np, multiloss
        >>> weights = multiloss.class_balanced_weights(np.array([1000, 100, 10]), beta=0.99)
        >>> weights.round(4), round(float(weights.sum()), 12)
        (array([0.2301, 0.363 , 2.4068]), 3.0)
    """
    xp, array, known = _counts(counts)
    return _core.class_balanced_weights(xp, array, beta=beta, check_values=known)


__all__ = [
    "__version__",
    "asymmetric_loss",
    "backend_of",
    "binary_cross_entropy",
    "class_balanced_weights",
    "count_elements",
    "count_targets",
    "cross_entropy",
    "distribution_focal_loss",
    "focal_loss",
    "inverse_frequency_weights",
    "linear_cross_entropy",
    "linear_focal_loss",
    "linear_poly_loss",
    "poly_loss",
    "quality_focal_loss",
    "sigmoid_focal_loss",
    "varifocal_loss",
]
