"""The NumPy reference of the distribution focal loss (the bins of a box side)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._run import loss_grad, loss_value_and_grad, run_loss


def distribution_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Distribution focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss).

    A box side is predicted as a distribution over the $n$ bins $0, 1, \dots, n - 1$ of
    `axis`; its continuous target $t \in [0, n - 1]$ is the two-hot distribution on the
    bins $k = \min(\lfloor t \rfloor, n - 2)$ and $k + 1$. With $p = \operatorname{softmax}(z)$
    and the element weight $w$:

    $$
    L = -w \, \big[(k + 1 - t) \log p_k + (t - k) \log p_{k+1}\big]
    $$

    cross-entropy against that two-hot target, computed from two gathered
    log-probabilities (no two-hot array is formed); the gradient is $w\,(p - c)$.

    Args:
        logits: unnormalised scores, the bins along `axis` (at least 2 bins).
        target: floating positions in $[0, n - 1]$, the logits' shape without `axis`;
            $t = n - 1$ puts all the mass on the last bin.
        axis: the bin axis.
        weight: element weights broadcast against `target` (a mask, a per-anchor weight);
            None weights every element by 1.
        reduction: `"mean"` over the target's elements (whatever the weights: mmdetection's
            mean without `avg_factor`), `"sum"` or `"none"`.
        normalizer: divide the sum by it instead (mmdetection's `avg_factor`,
            ultralytics' `target_scores_sum`: [Detection normalisers][detection-normalisers]).
        dtype: as in [`binary_cross_entropy`][multiloss.numpy.binary_cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, the target's shape for `"none"`.

    Raises:
        TypeError: integer logits or an integer target.
        ValueError: a target outside $[0, n - 1]$ or NaN (naming the bad values), fewer than
            2 bins, a target or weight of the wrong shape, a negative or non-finite weight
            (see [Bad input][bad-input]).

    References:
        Li, Wang, Wu, Chen, Hu, Li, Tang and Yang, "Generalized Focal Loss: Learning
        Qualified and Distributed Bounding Boxes for Dense Object Detection", NeurIPS 2020,
        [arXiv:2006.04388](https://arxiv.org/abs/2006.04388).

    Examples:
        >>> import numpy as np
        >>> logits = np.zeros((1, 4))  # 4 uniform bins: -log(1/4) whatever t
        >>> round(float(distribution_focal_loss(logits, np.array([1.5]))), 8)
        1.38629436
    """
    options = {"axis": axis, "weight": weight, "reduction": reduction, "normalizer": normalizer}
    return run_loss("distribution_focal_loss", logits, target, dtype, False, options)


def distribution_focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `distribution_focal_loss` with respect to the logits, $w\,(p - c)$.

    It takes the arguments of
    [`distribution_focal_loss`][multiloss.numpy.distribution_focal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits.

    Examples:
        >>> distribution_focal_loss_grad(np.zeros((1, 3)), np.array([0.5]))
        array([[-0.16666667, -0.16666667,  0.33333333]])
    """
    return loss_grad(
        "distribution_focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        reduction=reduction,
        normalizer=normalizer,
    )


def distribution_focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `distribution_focal_loss`, from one pass.

    It takes the arguments of
    [`distribution_focal_loss`][multiloss.numpy.distribution_focal_loss].

    Returns:
        The pair `(loss, grad)`: what `distribution_focal_loss` and
            `distribution_focal_loss_grad` return.

    Examples:
        >>> loss, grad = distribution_focal_loss_value_and_grad(np.zeros((1, 2)), np.array([1.0]))
        >>> round(float(loss), 8), grad
        (0.69314718, array([[ 0.5, -0.5]]))
    """
    return loss_value_and_grad(
        "distribution_focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        reduction=reduction,
        normalizer=normalizer,
    )
