r"""The NumPy reference of the fused linear-head losses, in float64 by default.

`linear_cross_entropy(input, linear_weight, target)` is
`cross_entropy(input @ linear_weight.T + linear_bias, target)` with the classes on the last
axis. The reference forms every logit (it is the yardstick of the chunked implementations,
not one of them): the loss and its gradient with respect to the logits G come from the
core, and the gradients with respect to the layer by the chain rule,

$$
\partial L / \partial X = G\,W, \qquad \partial L / \partial W = G^\top X, \qquad
\partial L / \partial b = \textstyle\sum_i G_i .
$$

The `*_grad` functions return these as a dict, `{"input": ..., "linear_weight": ...,
"linear_bias": ...}` (`"linear_bias"` None without a bias), of $\sum \mathrm{loss}$ for
`reduction="none"`; the `*_value_and_grad` functions return `(loss, grads)` from one pass.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .. import _core
from .._core import _checks
from .._core._reduce import mean_scale, normalized
from ._run import Weights

__all__ = [
    "linear_cross_entropy",
    "linear_cross_entropy_grad",
    "linear_cross_entropy_value_and_grad",
    "linear_focal_loss",
    "linear_focal_loss_grad",
    "linear_focal_loss_value_and_grad",
]

Grads = dict[str, NDArray[Any] | None]


def _check_linear_operands(xp: Any, x: Any, w: Any, b: Any, target: Any) -> None:
    """Shapes and dtypes of the input (…, D), the layer's weight (V, D) and bias (V,), and
    the target (class indices (…) or probabilities (…, V)); every error names its argument.
    Array-API only (the JAX adapter runs it too)."""
    for name, value in (("input", x), ("linear_weight", w), ("linear_bias", b), ("target", target)):
        if value is not None and not _checks.is_array(value):
            raise TypeError(f"{name} must be an array; got {type(value).__name__}")
    for name, value in (("input", x), ("linear_weight", w), ("linear_bias", b)):
        if value is not None and not xp.isdtype(value.dtype, "real floating"):
            raise TypeError(
                f"{name} must have a real floating dtype (float16, bfloat16, float32, "
                f"float64); got {value.dtype}"
            )
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the features, last); got 0-d")
    features = x.shape[-1]
    if w.ndim != 2 or w.shape[1] != features:
        raise ValueError(
            f"linear_weight must have shape (num_classes, {features}) (torch.nn.Linear's "
            f"layout; {features} = the last axis of input, shape {tuple(x.shape)}); got shape "
            f"{tuple(w.shape)}"
        )
    num_classes = w.shape[0]
    if num_classes == 0:
        raise ValueError(f"linear_weight must have at least one class (row); got {w.shape}")
    for name, value in (("linear_weight", w), ("linear_bias", b)):
        if value is not None and value.dtype != x.dtype:
            raise TypeError(f"{name} must have the input's dtype {x.dtype}; got {value.dtype}")
    if b is not None and tuple(b.shape) != (num_classes,):
        raise ValueError(
            f"linear_bias must have shape ({num_classes},), one entry per row of "
            f"linear_weight; got {tuple(b.shape)}"
        )
    batch = tuple(x.shape[:-1])
    if xp.isdtype(target.dtype, "integral") and not xp.isdtype(target.dtype, "bool"):
        if tuple(target.shape) != batch:
            raise ValueError(
                f"target of class indices must have the input's shape without its last "
                f"(feature) axis, {batch}; got {tuple(target.shape)} (input {tuple(x.shape)})"
            )
    elif xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != (*batch, num_classes):
            if tuple(target.shape) == batch:
                raise TypeError(
                    f"target has the shape of class indices {batch} but a floating dtype "
                    f"({target.dtype}); class indices must be integers"
                )
            raise ValueError(
                f"target of class probabilities must have shape {(*batch, num_classes)} (the "
                f"input's batch shape and num_classes = linear_weight.shape[0]); got "
                f"{tuple(target.shape)}"
            )
    else:
        raise TypeError(
            f"target must hold integer class indices or floating probabilities; "
            f"got dtype {target.dtype}"
        )


def _check_chunk_size(chunk_size: object) -> int | None:
    """None, or a positive integer (tokens per chunk)."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    return int(chunk_size)


def _converted(value: Any, dtype: DTypeLike | None) -> Any:
    if value is None:
        return None
    array = np.asarray(value)
    if dtype is not None and np.issubdtype(array.dtype, np.floating):
        array = array.astype(dtype, copy=False)
    return array


def _run(
    name: str,
    x: Any,
    w: Any,
    target: Any,
    b: Any,
    options: dict[str, Any],
    normalizer: Any,
    chunk_size: Any,
    dtype: DTypeLike | None,
    with_grad: bool,
) -> Any:
    if dtype is not None:
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating dtype; got {dtype}")
    x, w, b, target = (_converted(v, dtype) for v in (x, w, b, target))
    _check_linear_operands(np, x, w, b, target)
    _check_chunk_size(chunk_size)
    reduction = _checks.check_reduction(options.pop("reduction"))
    input_dtype = x.dtype
    compute = _checks.compute_dtype(np, input_dtype)
    x, w = x.astype(compute, copy=False), w.astype(compute, copy=False)
    features = w.shape[1]
    rows = math.prod(x.shape[:-1])
    flat_x = x.reshape(rows, features)
    flat_target = target.reshape(rows, *target.shape[x.ndim - 1 :])
    if np.issubdtype(target.dtype, np.floating):
        flat_target = flat_target.astype(compute, copy=False)
    given = None
    if normalizer is not None:
        like = np.zeros((), compute)
        given = _checks.check_normalizer(np, normalizer, reduction, like, check_values=True)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        logits = flat_x @ w.T
        if b is not None:
            logits = logits + b.astype(compute, copy=False)
        call_reduction = "sum" if given is not None else reduction
        prepared = _core.LOSSES[name].prepare(
            logits, flat_target, axis=-1, reduction=call_reduction, **options
        )
        loss, grad = _core.loss_value_and_grad(prepared, compute)
        if given is not None:
            loss, grad = normalized(np, loss, given), grad * mean_scale(np, given)
        if reduction == "none":
            loss = loss.reshape(x.shape[:-1])
        loss = np.asarray(loss).astype(input_dtype)
        if not with_grad:
            return loss
        grads: Grads = {
            "input": (grad @ w).reshape(x.shape).astype(input_dtype),
            "linear_weight": (grad.T @ flat_x).astype(input_dtype),
            "linear_bias": None if b is None else grad.sum(axis=0).astype(input_dtype),
        }
    return loss, grads


def _ce(
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    weight: Weights,
) -> dict[str, Any]:
    return {
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
    }


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Cross-entropy of a linear layer's logits: `cross_entropy(input @ linear_weight.T +
    linear_bias, target)`, classes on the last axis.

    Args:
        input: the hidden states, shape `(..., D)`.
        linear_weight: the layer's weight, `(V, D)` (`torch.nn.Linear`'s layout).
        target: class indices of shape `input.shape[:-1]`, or class probabilities of shape
            `(*input.shape[:-1], V)`.
        linear_bias: the layer's bias `(V,)`, or None.
        weight, ignore_index, reduction, label_smoothing, z_loss, softcap: as in
            [`cross_entropy`][multiloss.numpy.cross_entropy].
        normalizer: only with `reduction="mean"`: the sum is divided by this non-negative
            number (or 0-d array) instead of the call's own denominator; 0 gives 0.
        chunk_size: accepted for parity with the chunked backends (validated, a positive
            integer or None); the reference forms every logit at once.
        dtype: computation and result dtype (None keeps the input's; 16-bit is computed in
            float32 inside).

    Returns:
        The loss, in `dtype`: 0-d, or per token (`input.shape[:-1]`) for `"none"`.

    Raises:
        TypeError: a dtype that does not fit (integer input, a weight or bias of another
            dtype than the input, float class indices), a `chunk_size` that is not an integer.
        ValueError: shapes that do not match (the argument named), a class index out of
            range, a hyperparameter out of range.

    Examples:
        >>> import numpy as np
        >>> x, w = np.eye(2), np.zeros((3, 2))
        >>> round(float(linear_cross_entropy(x, w, np.array([0, 2]))), 8)  # log 3
        1.09861229
    """
    options = _ce(ignore_index, reduction, label_smoothing, z_loss, softcap, weight)
    args = (options, normalizer, chunk_size, dtype, False)
    return _run("cross_entropy", input, linear_weight, target, linear_bias, *args)


def linear_cross_entropy_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> Grads:
    r"""The gradients of `linear_cross_entropy` with respect to the input and the layer.

    It takes the arguments of [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy].

    Returns:
        `{"input": dX, "linear_weight": dW, "linear_bias": db}` of
            $\sum \mathrm{loss}$, each shaped like its argument (db None without a bias).

    Examples:
        >>> g = linear_cross_entropy_grad(np.eye(2), np.zeros((3, 2)), np.array([0, 2]))
        >>> g["linear_weight"]
        array([[-0.33333333,  0.16666667],
               [ 0.16666667,  0.16666667],
               [ 0.16666667, -0.33333333]])
    """
    options = _ce(ignore_index, reduction, label_smoothing, z_loss, softcap, weight)
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("cross_entropy", input, linear_weight, target, linear_bias, *args)[1]


def linear_cross_entropy_value_and_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], Grads]:
    r"""The value and the gradients of `linear_cross_entropy`, from one pass.

    It takes the arguments of [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy].

    Returns:
        The pair `(loss, grads)`: what `linear_cross_entropy` and
            `linear_cross_entropy_grad` return.
    """
    options = _ce(ignore_index, reduction, label_smoothing, z_loss, softcap, weight)
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("cross_entropy", input, linear_weight, target, linear_bias, *args)


def _focal(
    gamma: float,
    alpha: float | Weights,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
) -> dict[str, Any]:
    return {
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
    }


def linear_focal_loss(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Softmax focal loss of a linear layer's logits: `focal_loss(input @ linear_weight.T
    + linear_bias, target)`, classes on the last axis.

    Args:
        input, linear_weight, target, linear_bias, normalizer, chunk_size, dtype: as in
            [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy].
        gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap: as in
            [`focal_loss`][multiloss.numpy.focal_loss].

    Returns:
        The loss, in `dtype`: 0-d, or per token for `"none"`.

    Raises:
        TypeError: as in [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy].
        ValueError: as in [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy];
            γ < 0, a scalar α outside [0, 1].

    Examples:
        >>> import numpy as np
        >>> x, w = np.eye(2), np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
        >>> round(float(linear_focal_loss(x, w, np.array([0, 1]))), 8)  # 0.01 · -log 0.9
        0.00105361
    """
    options = _focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap)
    args = (options, normalizer, chunk_size, dtype, False)
    return _run("focal_loss", input, linear_weight, target, linear_bias, *args)


def linear_focal_loss_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> Grads:
    r"""The gradients of `linear_focal_loss` with respect to the input and the layer.

    It takes the arguments of [`linear_focal_loss`][multiloss.numpy.linear_focal_loss].

    Returns:
        `{"input": dX, "linear_weight": dW, "linear_bias": db}` of
            $\sum \mathrm{loss}$ (db None without a bias).
    """
    options = _focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap)
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("focal_loss", input, linear_weight, target, linear_bias, *args)[1]


def linear_focal_loss_value_and_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    chunk_size: int | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], Grads]:
    r"""The value and the gradients of `linear_focal_loss`, from one pass.

    It takes the arguments of [`linear_focal_loss`][multiloss.numpy.linear_focal_loss].

    Returns:
        The pair `(loss, grads)`: what `linear_focal_loss` and `linear_focal_loss_grad`
            return.
    """
    options = _focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap)
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("focal_loss", input, linear_weight, target, linear_bias, *args)
