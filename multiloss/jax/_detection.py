"""The detection losses of [`multiloss.jax`][multiloss.jax]: varifocal and quality focal
loss, and the distribution focal loss (validation at trace time, then the custom rule)."""

from __future__ import annotations

import jax
import numpy as np

from .._core import LOSSES
from .losses import Weights, run_loss

Array = jax.Array


def varifocal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: float | Array = 0.75,
    gamma: float | Array = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Array = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Varifocal loss (Zhang et al., CVPR 2021) for an IoU-aware soft target q in [0, 1].

    $$
    L = \mathrm{BCE}(x, q) \cdot \begin{cases} q & q > 0 \\ \alpha\, \sigma(x)^\gamma & q = 0
    \end{cases}
    $$

    Positives are weighted by their target, negatives by $\alpha p^\gamma$ (with its
    gradient, as ultralytics' `VarifocalLoss` and mmdetection's `varifocal_loss` give it).


    Args:
        logits: any shape (e.g. `(N, A, C)` anchors × classes, one logit per class).
        target: the logits' shape, q in [0, 1] (0 for a negative).
        alpha: α in [0, 1], the negatives' weight: a number or a 0-d array.
        gamma: focusing parameter γ ≥ 0 of the negatives: a number or a 0-d array.
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch; may be traced).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing (static).
        label_smoothing: $\varepsilon \in [0, 1]$, a number or a 0-d array: the
            cross-entropy's target becomes
            $q (1 - \varepsilon) + \varepsilon / 2$ (the weights read q as given).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit, or a
            static option (`ignore_index`, `reduction`) given as a traced array.
        ValueError: a wrong shape or hyperparameter, a target outside [0, 1] (an error where
            its values are known at trace time, else NaN) (see [Bad input][bad-input]).

    References:
        Zhang, Wang, Dayoub and Sünderhauf, "VarifocalNet: An IoU-aware Dense Object
        Detector", CVPR 2021, [arXiv:2008.13367](https://arxiv.org/abs/2008.13367).

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import varifocal_loss
        >>> round(float(varifocal_loss(jnp.zeros(2), jnp.array([1.0, 0.0]))), 6)
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
    return run_loss(LOSSES["varifocal_loss"], logits, target, options)


def quality_focal_loss(
    logits: Array,
    target: Array,
    *,
    beta: float | Array = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Array = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Quality focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss) for a soft
    target y in [0, 1].

    $$
    L = |y - \sigma(x)|^\beta \cdot \mathrm{BCE}(x, y)
    $$

    with $|y - \sigma(x)|$ formed as $|y \sigma(-x) - (1 - y) \sigma(x)|$, exact where
    σ saturates. For 0/1 targets it is the sigmoid focal loss with γ = β and no α.

    Args:
        logits: any shape.
        target: the logits' shape, in [0, 1].
        beta: focusing parameter β ≥ 0: a number or a 0-d array.
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch; may be traced).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing (static).
        label_smoothing: $\varepsilon \in [0, 1]$, a number or a 0-d array: the target
            becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit, or a
            static option (`ignore_index`, `reduction`) given as a traced array.
        ValueError: a wrong shape or hyperparameter, a target outside [0, 1] (an error where
            its values are known at trace time, else NaN) (see [Bad input][bad-input]).

    References:
        Li, Wang, Wu, Chen, Hu, Li, Tang and Yang, "Generalized Focal Loss: Learning
        Qualified and Distributed Bounding Boxes for Dense Object Detection", NeurIPS 2020,
        [arXiv:2006.04388](https://arxiv.org/abs/2006.04388).

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import quality_focal_loss
        >>> round(float(quality_focal_loss(jnp.zeros(1), jnp.ones(1))), 6)  # 0.5² · log 2
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
    return run_loss(LOSSES["quality_focal_loss"], logits, target, options)


def distribution_focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    weight: Array | np.ndarray | None = None,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Distribution focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss).

    The bins $0, \dots, n - 1$ of a box side along `axis`, a continuous target
    $t \in [0, n - 1]$ and $k = \min(\lfloor t \rfloor, n - 2)$:

    $$
    L = -w \, \big[(k + 1 - t) \log p_k + (t - k) \log p_{k+1}\big]
    $$

    from two gathered log-probabilities (no two-hot array); gradient $w\,(p - c)$,
    second order in closed form.

    Args:
        logits: scores over at least 2 bins along `axis`.
        target: floating positions in $[0, n - 1]$, the logits' shape without `axis`.
        axis: the bin axis (static).
        weight: element weights broadcast against `target` (a mask, a per-anchor weight).
        reduction: `"mean"` over the target's elements, `"sum"` or `"none"` (static).
        normalizer: divide the sum by it instead: mmdetection's `avg_factor`, ultralytics'
            `target_scores_sum` ([Detection normalisers][detection-normalisers]).

    Returns:
        The loss in the logits' dtype.

    Raises:
        TypeError: at trace time, an integer target or another dtype that does not fit.
        ValueError: at trace time, shapes that do not fit or fewer than 2 bins; a target
            outside $[0, n - 1]$ or NaN where its values are known. A traced bad target
            makes its element NaN, and [`checked`][multiloss.jax.checked] reports it.

    References:
        Li et al., "Generalized Focal Loss", NeurIPS 2020, arXiv:2006.04388.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import distribution_focal_loss
        >>> logits = jnp.zeros((2, 4))  # uniform over 4 bins: log 4 whatever the target
        >>> round(float(distribution_focal_loss(logits, jnp.array([0.5, 3.0]))), 6)
        1.386294
    """
    options = {"axis": axis, "weight": weight, "reduction": reduction, "normalizer": normalizer}
    return run_loss(LOSSES["distribution_focal_loss"], logits, target, options)


__all__ = ["distribution_focal_loss", "quality_focal_loss", "varifocal_loss"]
