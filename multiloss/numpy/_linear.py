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

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .._core import LOSSES
from .._core.linear import prepare_linear, run_linear
from ._run import Weights

__all__ = [
    "linear_cross_entropy",
    "linear_cross_entropy_grad",
    "linear_cross_entropy_value_and_grad",
    "linear_focal_loss",
    "linear_focal_loss_grad",
    "linear_focal_loss_value_and_grad",
    "linear_poly_loss",
    "linear_poly_loss_grad",
    "linear_poly_loss_value_and_grad",
]

Grads = dict[str, NDArray[Any] | None]


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
    if isinstance(normalizer, np.generic):
        normalizer = np.asarray(normalizer)  # a NumPy scalar as a 0-d array
    options = {**options, "normalizer": normalizer, "chunk_size": chunk_size}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        call = prepare_linear(LOSSES[name], x, w, target, b, options, check_values=True)
        result = run_linear(call, with_grad=with_grad)
    if not with_grad:
        return np.asarray(result)
    return np.asarray(result[0]), result[1]


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


def linear_poly_loss(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
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
    r"""PolyLoss (Poly-1) of a linear layer's logits: `poly_loss(input @ linear_weight.T
    + linear_bias, target)`, classes on the last axis.

    Args:
        input, linear_weight, target, linear_bias, normalizer, chunk_size, dtype: as in
            [`linear_cross_entropy`][multiloss.numpy.linear_cross_entropy].
        epsilon, gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap:
            as in [`poly_loss`][multiloss.numpy.poly_loss].

    Returns:
        The loss, in `dtype`: 0-d, or per token for `"none"`.

    Examples:
        >>> import numpy as np
        >>> x, w = np.eye(2), np.zeros((2, 2))
        >>> round(float(linear_poly_loss(x, w, np.array([0, 1]), epsilon=1.0)), 8)
        1.19314718
    """
    options = {
        "epsilon": epsilon,
        **_focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap),
    }
    args = (options, normalizer, chunk_size, dtype, False)
    return _run("poly_loss", input, linear_weight, target, linear_bias, *args)


def linear_poly_loss_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
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
    r"""The gradients of `linear_poly_loss` with respect to the input and the layer.

    It takes the arguments of [`linear_poly_loss`][multiloss.numpy.linear_poly_loss].

    Returns:
        `{"input": dX, "linear_weight": dW, "linear_bias": db}` of
            $\sum \mathrm{loss}$, each shaped like its argument (db None without a bias).
    """
    options = {
        "epsilon": epsilon,
        **_focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap),
    }
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("poly_loss", input, linear_weight, target, linear_bias, *args)[1]


def linear_poly_loss_value_and_grad(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
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
    r"""The value and the gradients of `linear_poly_loss`, from one pass.

    It takes the arguments of [`linear_poly_loss`][multiloss.numpy.linear_poly_loss].

    Returns:
        The pair `(loss, grads)`.
    """
    options = {
        "epsilon": epsilon,
        **_focal(gamma, alpha, ignore_index, reduction, label_smoothing, z_loss, softcap),
    }
    args = (options, normalizer, chunk_size, dtype, True)
    return _run("poly_loss", input, linear_weight, target, linear_bias, *args)
