"""The NumPy reference of the detection losses: varifocal and quality focal loss (see
:mod:`multiloss.numpy`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._run import Weights, loss_grad, loss_value_and_grad, run_loss


def varifocal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | np.ndarray = 0.75,
    gamma: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Varifocal loss (Zhang et al., CVPR 2021) for an IoU-aware soft target q in [0, 1].

    $$
    L = \mathrm{BCE}(x, q) \cdot \begin{cases} q & q > 0 \\ \alpha\, \sigma(x)^\gamma & q = 0
    \end{cases}
    $$

    Positives are weighted by their target, negatives by $\alpha p^\gamma$, with the
    gradient through that weight (ultralytics' `VarifocalLoss`, mmdetection's
    `varifocal_loss`; docs/semantics.md).

    Args:
        logits: any shape.
        target: the logits' shape, q in [0, 1] (0 for a negative).
        alpha: α in [0, 1], the negatives' weight.
        gamma: focusing parameter γ ≥ 0 of the negatives. Each of `alpha`, `gamma` and
            `label_smoothing` is a number or a 0-d array ([Schedules][schedules]).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the cross-entropy's target becomes
            $q (1 - \varepsilon) + \varepsilon / 2$ (the weights read q as given).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        dtype: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input (integer logits, a hyperparameter that is not a
            number).
        ValueError: a wrong value or shape: α outside [0, 1], γ < 0, a target outside
            [0, 1], a target of another shape (see [Bad input][bad-input]).

    References:
        Zhang, Wang, Dayoub and Sünderhauf, "VarifocalNet: An IoU-aware Dense Object
        Detector", CVPR 2021, [arXiv:2008.13367](https://arxiv.org/abs/2008.13367).

    Examples:
        >>> import numpy as np
        >>> round(float(varifocal_loss(np.zeros(2), np.array([1.0, 0.0]))), 6)
        0.411556
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
    return run_loss("varifocal_loss", logits, target, dtype, False, options)


def varifocal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | np.ndarray = 0.75,
    gamma: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `varifocal_loss` with respect to the logits.

    It takes the arguments of [`varifocal_loss`][multiloss.numpy.varifocal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> varifocal_loss_grad(np.zeros(2), np.array([1.0, 0.0]))  # doctest: +ELLIPSIS
        array([-0.25      ,  0.11185755])
    """
    return loss_grad(
        "varifocal_loss",
        logits,
        target,
        dtype,
        alpha=alpha,
        gamma=gamma,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def varifocal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | np.ndarray = 0.75,
    gamma: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `varifocal_loss`, from one pass.

    It takes the arguments of [`varifocal_loss`][multiloss.numpy.varifocal_loss].

    Returns:
        The pair `(loss, grad)`: what `varifocal_loss` and `varifocal_loss_grad` return.
    """
    return loss_value_and_grad(
        "varifocal_loss",
        logits,
        target,
        dtype,
        alpha=alpha,
        gamma=gamma,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def quality_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    beta: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Quality focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss) for a soft
    target y in [0, 1].

    $$
    L = |y - \sigma(x)|^\beta \cdot \mathrm{BCE}(x, y)
    $$

    with $|y - \sigma(x)|$ formed as $|y \sigma(-x) - (1 - y) \sigma(x)|$, exact where σ
    saturates. For 0/1 targets it is the sigmoid focal loss with γ = β and no α.

    Args:
        logits: any shape.
        target: the logits' shape, in [0, 1].
        beta: focusing parameter β ≥ 0. It and `label_smoothing` are each a number or
            a 0-d array ([Schedules][schedules]).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        dtype: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input (integer logits, a hyperparameter that is not a
            number).
        ValueError: a wrong value or shape: β < 0, a target outside [0, 1], a target of
            another shape (see [Bad input][bad-input]).

    References:
        Li, Wang, Wu, Chen, Hu, Li, Tang and Yang, "Generalized Focal Loss", NeurIPS 2020,
        [arXiv:2006.04388](https://arxiv.org/abs/2006.04388).

    Examples:
        >>> import numpy as np
        >>> round(float(quality_focal_loss(np.array([0.0]), np.array([1.0]))), 6)  # 0.5² · log 2
        0.173287
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
    return run_loss("quality_focal_loss", logits, target, dtype, False, options)


def quality_focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    beta: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `quality_focal_loss` with respect to the logits.

    It takes the arguments of [`quality_focal_loss`][multiloss.numpy.quality_focal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> quality_focal_loss_grad(np.array([0.0]), np.array([1.0]))  # doctest: +ELLIPSIS
        array([-0.2982868])
    """
    return loss_grad(
        "quality_focal_loss",
        logits,
        target,
        dtype,
        beta=beta,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def quality_focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    beta: float | np.ndarray = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `quality_focal_loss`, from one pass.

    It takes the arguments of [`quality_focal_loss`][multiloss.numpy.quality_focal_loss].

    Returns:
        The pair `(loss, grad)`: what `quality_focal_loss` and `quality_focal_loss_grad` return.
    """
    return loss_value_and_grad(
        "quality_focal_loss",
        logits,
        target,
        dtype,
        beta=beta,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


__all__ = [
    "quality_focal_loss",
    "quality_focal_loss_grad",
    "quality_focal_loss_value_and_grad",
    "varifocal_loss",
    "varifocal_loss_grad",
    "varifocal_loss_value_and_grad",
]
