r"""The NumPy reference: the four losses and their gradients, in float64 by default.

Use it to check another implementation (a CUDA kernel, a copied focal loss): the value
*and* the gradient with respect to the logits come from one trusted place, computed in
the stable closed forms of [the math page][the-math]. The class axis is -1 (the array
convention, as in optax).

Every function takes `dtype` (default `numpy.float64`): the logits (and probability
targets) are converted to it first. `dtype=None` keeps the input's floating dtype
(float16 is then computed in float32 inside and returned as float16).

The `*_grad` functions return $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$:
for `reduction="none"` that is every element's own gradient, since an element's loss
depends only on its own logits. The `*_value_and_grad` functions return `(loss, grad)` from
one pass. Both take the keyword arguments of their loss.

Examples:
    >>> import numpy as np
    >>> from multiloss.numpy import focal_loss, focal_loss_grad
    >>> logits = np.array([[2.0, 0.5, -1.0]])
    >>> float(focal_loss(logits, np.array([0]), gamma=0.0))  # γ = 0 is cross-entropy
    0.24131...
    >>> bool(abs(focal_loss_grad(logits, np.array([0])).sum()) < 1e-15)  # rows sum to 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_cross_entropy_value_and_grad",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_value_and_grad",
    "focal_loss",
    "focal_loss_grad",
    "focal_loss_value_and_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_value_and_grad",
]

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


def _run(
    name: str,
    logits: ArrayLike,
    target: ArrayLike,
    dtype: DTypeLike | None,
    with_grad: bool,
    options: dict[str, Any],
) -> Any:
    logits, target = _as_input(logits, target, dtype)
    prepared = _core.LOSSES[name].prepare(logits, target, **options)
    # The core evaluates both sides of its guards (where(p == 0, 0, p·r) and the like):
    # the discarded side may hold 0·inf, which is not worth a warning.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # np.asarray: a reduced loss is a 0-d array (NumPy's own reductions give scalars)
        if with_grad:
            loss, grad = _core.loss_value_and_grad(prepared, logits.dtype)
            return np.asarray(loss), grad
        return np.asarray(_core.loss_value(prepared, logits.dtype))


def _value_and_grad(
    name: str, logits: ArrayLike, target: ArrayLike, dtype: DTypeLike | None, **options: Any
) -> tuple[NDArray[Any], NDArray[Any]]:
    """The body of every `<loss>_value_and_grad`: `(loss, grad)` of the loss `name`."""
    return _run(name, logits, target, dtype, True, options)


def _grad(
    name: str, logits: ArrayLike, target: ArrayLike, dtype: DTypeLike | None, **options: Any
) -> NDArray[Any]:
    """The body of every `<loss>_grad`: the gradient of the loss `name`."""
    return _value_and_grad(name, logits, target, dtype, **options)[1]


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Softmax cross-entropy, with the semantics of `torch.nn.functional.cross_entropy`.

    Per element with log-softmax ℓ = log_softmax(z) along `axis` and target distribution q
    (one-hot of a class index, or the given probabilities; label smoothing ε makes it
    $(1-\varepsilon)\,q + \varepsilon/C$):

    $$
    L = -\sum_k q_k \, w_k \, \log p_k
    $$

    Args:
        logits: unnormalised scores, any rank, classes along `axis`.
        target: integer class indices (the logits' shape without `axis`) or class
            probabilities (the logits' shape, floating).
        axis: the class axis.
        weight: per-class weights w (length C); None weights every class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (class-index targets only).
        reduction: `"mean"` ($\sum w_{y_i} \ell_i / \sum w_{y_i}$ over counted elements for
            class indices; divided by the element count for probabilities), `"sum"` or
            `"none"` (per element, class axis removed). A mean over nothing is 0.0.
        label_smoothing: ε in [0, 1].
        dtype: computation and result dtype (None keeps the input's).

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, float or bool class
            indices, a hyperparameter that is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a class index out of range, a weight of
            the wrong length or negative, or an unknown `reduction` (the full list is
            under [Bad input][bad-input]).

    Examples:
        >>> import numpy as np
        >>> round(float(cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))), 8)  # log 2
        0.69314718
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _run("cross_entropy", logits, target, dtype, False, options)


def cross_entropy_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `cross_entropy` with respect to the logits.

    It takes the arguments of [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> cross_entropy_grad(np.array([[0.0, 0.0]]), np.array([1]))
        array([[ 0.5, -0.5]])
    """
    return _grad(
        "cross_entropy",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def cross_entropy_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `cross_entropy`, from one pass.

    It takes the arguments of [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        The pair `(loss, grad)`: what `cross_entropy` and `cross_entropy_grad` return.

    Examples:
        >>> cross_entropy_value_and_grad(np.array([[0.0, 0.0]]), np.array([1]))
        (array(0.69314718), array([[ 0.5, -0.5]]))
    """
    return _value_and_grad(
        "cross_entropy",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    $$
    L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k
    $$

    For a class-index target t this is $-\alpha_t (1-p_t)^\gamma \log p_t$; γ = 0 with
    no alpha is exactly [`cross_entropy`][multiloss.numpy.cross_entropy]. The modulating
    factor $(1-p_t)^\gamma$ turns down well-classified examples: with γ = 2, $p_t = 0.9$ is
    weighted by 0.01.

    The gradient is computed as $p_k \sum_j c_j A_j - c_k A_k$ with
    $A = u^\gamma (1 - \gamma p \ell / u)$, $u = 1 - p$, which has no negative power of u:
    finite for 0 < γ < 1 at $p_t = 1$.

    Args:
        logits: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        target: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        axis: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        ignore_index: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        label_smoothing: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        dtype: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        gamma: focusing parameter γ ≥ 0.
        alpha: None (no weighting); a sequence of C per-class weights; or a scalar α in
            [0, 1] that weights class 0 (background) by 1-α and every other class by α
            (RetinaNet, kornia, MONAI). The two-class `[α, 1-α]` is the sequence form.
        reduction: `"mean"` divides by the number of counted (not ignored) elements, not
            by Σα; `"sum"`; `"none"`. A mean over nothing is 0.0.

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, float or bool class
            indices, a hyperparameter that is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a class index out of range, a weight of
            the wrong length or negative, or an unknown `reduction` (the full list is
            under [Bad input][bad-input]).

    References:
        Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
        ICCV 2017, [arXiv:1708.02002](https://arxiv.org/abs/1708.02002).

    Examples:
        >>> import numpy as np
        >>> round(float(focal_loss(np.log(np.array([[0.9, 0.1]])), np.array([0]))), 8)
        0.00105361
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _run("focal_loss", logits, target, dtype, False, options)


def focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `focal_loss` with respect to the logits.

    It takes the arguments of [`focal_loss`][multiloss.numpy.focal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> focal_loss_grad(np.array([[0.0, 0.0]]), np.array([1]))
        array([[ 0.2982868, -0.2982868]])
    """
    return _grad(
        "focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `focal_loss`, from one pass.

    It takes the arguments of [`focal_loss`][multiloss.numpy.focal_loss].

    Returns:
        The pair `(loss, grad)`: what `focal_loss` and `focal_loss_grad` return.

    Examples:
        >>> focal_loss_value_and_grad(np.array([[0.0, 0.0]]), np.array([1]))
        (array(0.1732868), array([[ 0.2982868, -0.2982868]]))
    """
    return _value_and_grad(
        "focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


def binary_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Sigmoid cross-entropy on logits, with the semantics of `torch.nn.BCEWithLogitsLoss`.

    $$
    L = -w \left[ p_w \, y \log \sigma(x) + (1 - y) \log (1 - \sigma(x)) \right]
    $$

    computed as `w·(pw·y·softplus(-x) + (1-y)·softplus(x))`, finite for any finite logit.

    Args:
        logits: any shape.
        target: the logits' shape; probabilities in [0, 1] (integer or bool 0/1 accepted).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        dtype: computation and result dtype (None keeps the input's).

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, a hyperparameter that
            is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a target of another shape, a negative
            weight or an unknown `reduction` (the full list is under [Bad input][bad-input]).

    Examples:
        >>> import numpy as np
        >>> round(float(binary_cross_entropy(np.array([0.0]), np.array([1.0]))), 8)  # log 2
        0.69314718
    """
    options = {
        "weight": weight,
        "pos_weight": pos_weight,
        "reduction": reduction,
    }
    return _run("binary_cross_entropy", logits, target, dtype, False, options)


def binary_cross_entropy_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `binary_cross_entropy` with respect to the logits.

    It takes the arguments of [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> binary_cross_entropy_grad(np.array([0.0]), np.array([1.0]))
        array([-0.5])
    """
    return _grad(
        "binary_cross_entropy",
        logits,
        target,
        dtype,
        weight=weight,
        pos_weight=pos_weight,
        reduction=reduction,
    )


def binary_cross_entropy_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `binary_cross_entropy`, from one pass.

    It takes the arguments of [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].

    Returns:
        The pair `(loss, grad)`: what `binary_cross_entropy` and `binary_cross_entropy_grad` return.

    Examples:
        >>> binary_cross_entropy_value_and_grad(np.array([0.0]), np.array([1.0]))
        (array(0.69314718), array([-0.5]))
    """
    return _value_and_grad(
        "binary_cross_entropy",
        logits,
        target,
        dtype,
        weight=weight,
        pos_weight=pos_weight,
        reduction=reduction,
    )


def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Sigmoid focal loss, with the semantics of `torchvision.ops.sigmoid_focal_loss`.

    $$
    \begin{gathered}
    L = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \\
    p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)
    \end{gathered}
    $$

    Args:
        logits: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].
        target: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].
        dtype: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].
        alpha: α in [0, 1], or None for no $\alpha_t$ weighting.
        gamma: focusing parameter γ ≥ 0.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, a hyperparameter that
            is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a target of another shape, a negative
            weight or an unknown `reduction` (the full list is under [Bad input][bad-input]).

    References:
        Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
        ICCV 2017, [arXiv:1708.02002](https://arxiv.org/abs/1708.02002).

    Examples:
        >>> import numpy as np
        >>> round(float(sigmoid_focal_loss(np.array([0.0]), np.array([1.0]), alpha=None)), 6)
        0.173287
    """
    options = {
        "alpha": alpha,
        "gamma": gamma,
        "reduction": reduction,
    }
    return _run("sigmoid_focal_loss", logits, target, dtype, False, options)


def sigmoid_focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `sigmoid_focal_loss` with respect to the logits.

    It takes the arguments of [`sigmoid_focal_loss`][multiloss.numpy.sigmoid_focal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> sigmoid_focal_loss_grad(np.array([0.0]), np.array([1.0]), alpha=None)
        array([-0.2982868])
    """
    return _grad(
        "sigmoid_focal_loss", logits, target, dtype, alpha=alpha, gamma=gamma, reduction=reduction
    )


def sigmoid_focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `sigmoid_focal_loss`, from one pass.

    It takes the arguments of [`sigmoid_focal_loss`][multiloss.numpy.sigmoid_focal_loss].

    Returns:
        The pair `(loss, grad)`: what `sigmoid_focal_loss` and `sigmoid_focal_loss_grad` return.

    Examples:
        >>> sigmoid_focal_loss_value_and_grad(np.array([0.0]), np.array([1.0]), alpha=None)
        (array(0.1732868), array([-0.2982868]))
    """
    return _value_and_grad(
        "sigmoid_focal_loss", logits, target, dtype, alpha=alpha, gamma=gamma, reduction=reduction
    )
