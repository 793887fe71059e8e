"""The NumPy reference of the sigmoid losses (see :mod:`multiloss.numpy`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._run import Weights, loss_grad, loss_value_and_grad, run_loss


def binary_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        dtype: computation and result dtype (None keeps the input's).
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].

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
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return run_loss("binary_cross_entropy", logits, target, dtype, False, options)


def binary_cross_entropy_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
    return loss_grad(
        "binary_cross_entropy",
        logits,
        target,
        dtype,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def binary_cross_entropy_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
    return loss_value_and_grad(
        "binary_cross_entropy",
        logits,
        target,
        dtype,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | Weights = 0.25,
    gamma: float = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
        alpha: α in [0, 1], a per-class vector $\alpha_c$ (length C, the last axis: $\alpha_c$
            on positives, $1 - \alpha_c$ on negatives), or None for no $\alpha_t$ weighting.
        gamma: focusing parameter γ ≥ 0.
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].

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
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return run_loss("sigmoid_focal_loss", logits, target, dtype, False, options)


def sigmoid_focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | Weights = 0.25,
    gamma: float = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
    return loss_grad(
        "sigmoid_focal_loss",
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


def sigmoid_focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float | Weights = 0.25,
    gamma: float = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
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
    return loss_value_and_grad(
        "sigmoid_focal_loss",
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


def asymmetric_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Asymmetric Loss for multi-label classification (Ridnik et al., ICCV 2021).

    Per element, with $p = \sigma(x)$ and the shifted probability
    $p_m = \max(p - \mathrm{clip}, 0)$:

    $$
    L = -y \, (1 - p)^{\gamma_+} \log p - (1 - y) \, p_m^{\gamma_-} \log(1 - p_m)
    $$

    computed from the logits ($\log p = -\mathrm{softplus}(-x)$; no probability is clamped
    and no eps enters a log), with the gradient through the focusing weights. Many easy
    negatives per positive are turned down by $\gamma_-$ and discarded below `clip`.

    Args:
        logits: unnormalised scores of any shape, one per label.
        target: the logits' shape, real numbers in [0, 1] (0/1 labels, or soft labels).
        gamma_pos: focusing parameter γ+ ≥ 0 of the positive term.
        gamma_neg: focusing parameter γ- ≥ 0 of the negative term.
        clip: probability margin in [0, 1): negatives with $p \le$ clip contribute 0.
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` over all elements, `"sum"` (timm's `AsymmetricLossMultiLabel`
            returns this sum, with its eps clamps at saturated logits) or `"none"`.
        dtype: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, the logits' shape for `"none"`.

    Raises:
        TypeError: the wrong kind of input (integer logits, a hyperparameter that is not a
            number).
        ValueError: a wrong value or shape: γ± < 0, clip outside [0, 1), a target of
            another shape, an unknown `reduction` (see [Bad input][bad-input]).

    References:
        Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter and Zelnik-Manor, "Asymmetric
        Loss for Multi-Label Classification", ICCV 2021,
        [arXiv:2009.14119](https://arxiv.org/abs/2009.14119).

    Examples:
        >>> import numpy as np
        >>> round(float(asymmetric_loss(np.array([0.0]), np.array([1.0]))), 8)  # log 2
        0.69314718
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
    return run_loss("asymmetric_loss", logits, target, dtype, False, options)


def asymmetric_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `asymmetric_loss` with respect to the logits.

    It takes the arguments of [`asymmetric_loss`][multiloss.numpy.asymmetric_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits.

    Examples:
        >>> asymmetric_loss_grad(np.array([0.0]), np.array([1.0]))
        array([-0.5])
    """
    return loss_grad(
        "asymmetric_loss",
        logits,
        target,
        dtype,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )


def asymmetric_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | np.ndarray = 0.0,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `asymmetric_loss`, from one pass.

    It takes the arguments of [`asymmetric_loss`][multiloss.numpy.asymmetric_loss].

    Returns:
        The pair `(loss, grad)`: what `asymmetric_loss` and `asymmetric_loss_grad` return.

    Examples:
        >>> asymmetric_loss_value_and_grad(np.array([0.0]), np.array([1.0]))
        (array(0.69314718), array([-0.5]))
    """
    return loss_value_and_grad(
        "asymmetric_loss",
        logits,
        target,
        dtype,
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        weight=weight,
        pos_weight=pos_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        normalizer=normalizer,
    )
