"""The detection losses of [`multiloss.torch`][multiloss.torch]'s functional API: varifocal
and quality focal loss (the element-wise family's options, one autograd Function) and the
distribution focal loss (the bins of a box side)."""

from __future__ import annotations

from torch import Tensor

from .._core import LOSSES
from ._namespace import refuse_torchscript
from .functional import Weights, run_loss


def varifocal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor = 0.75,
    gamma: float | Tensor = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Tensor = 0.0,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Varifocal loss (Zhang et al., CVPR 2021) for an IoU-aware soft target q in [0, 1].

    $$
    L = \mathrm{BCE}(x, q) \cdot \begin{cases} q & q > 0 \\ \alpha\, \sigma(x)^\gamma & q = 0
    \end{cases}
    $$

    Positives are weighted by their target, negatives by $\alpha p^\gamma$ (with its
    gradient, as ultralytics' `VarifocalLoss` and mmdetection's `varifocal_loss` give it).
    ultralytics' `VarifocalLoss()(x, q, label)` is `varifocal_loss(x, q, reduction="none")`
    `.mean(1).sum()` with `label = q > 0`.

    Args:
        logits: any shape (e.g. `(N, A, C)` anchors × classes).
        target: the logits' shape, q in [0, 1] (0 for a negative).
        alpha: α in [0, 1], the negatives' weight.
        gamma: focusing parameter γ ≥ 0 of the negatives. Each of `alpha`, `gamma` and
            `label_smoothing` is a number or a 0-d tensor ([Schedules][schedules]).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the cross-entropy's target becomes
            $q (1 - \varepsilon) + \varepsilon / 2$ (the weights read q as given).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.torch.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`, a
            hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter, a target outside [0, 1] (where values
            are checked: CPU tensors, nothing tracing) (see [Bad input][bad-input]).

    References:
        Zhang, Wang, Dayoub and Sünderhauf, "VarifocalNet: An IoU-aware Dense Object
        Detector", CVPR 2021, [arXiv:2008.13367](https://arxiv.org/abs/2008.13367).

    Examples:
        >>> import torch
        >>> from multiloss.torch import varifocal_loss
        >>> round(varifocal_loss(torch.zeros(2), torch.tensor([1.0, 0.0])).item(), 6)
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
    logits: Tensor,
    target: Tensor,
    *,
    beta: float | Tensor = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Tensor = 0.0,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Quality focal loss (Li et al., NeurIPS 2020, Generalized Focal Loss) for a soft
    target y in [0, 1].

    $$
    L = |y - \sigma(x)|^\beta \cdot \mathrm{BCE}(x, y)
    $$

    with $|y - \sigma(x)|$ formed as $|y \sigma(-x) - (1 - y) \sigma(x)|$, exact where
    σ saturates. For 0/1 targets it is the sigmoid focal loss with γ = β and no α.
    mmdetection's `quality_focal_loss(pred, (label, score))` is this loss of the dense
    target (the score at the label's class, 0 elsewhere) with `reduction="none"`, summed
    over classes.

    Args:
        logits: any shape.
        target: the logits' shape, in [0, 1].
        beta: focusing parameter β ≥ 0. It and `label_smoothing` are each a number or
            a 0-d tensor ([Schedules][schedules]).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive log-term, broadcast to the logits' shape (a
            length-C vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.torch.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`, a
            hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter, a target outside [0, 1] (where values
            are checked: CPU tensors, nothing tracing) (see [Bad input][bad-input]).

    References:
        Li, Wang, Wu, Chen, Hu, Li, Tang and Yang, "Generalized Focal Loss: Learning
        Qualified and Distributed Bounding Boxes for Dense Object Detection", NeurIPS 2020,
        [arXiv:2006.04388](https://arxiv.org/abs/2006.04388).

    Examples:
        >>> import torch
        >>> from multiloss.torch import quality_focal_loss
        >>> round(quality_focal_loss(torch.zeros(1), torch.ones(1)).item(), 6)  # 0.5² · log 2
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
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Distribution focal loss (Li et al., NeurIPS 2020; ultralytics' `DFLoss`).

    The bins $0, \dots, n - 1$ of a box side along `axis`, a continuous target
    $t \in [0, n - 1]$ and $k = \min(\lfloor t \rfloor, n - 2)$:

    $$
    L = -w \, \big[(k + 1 - t) \log p_k + (t - k) \log p_{k+1}\big]
    $$

    from two gathered log-probabilities (no two-hot tensor); gradient $w\,(p - c)$.

    Args:
        logits: `(N, n, d1..dk)` or unbatched `(n,)` scores over at least 2 bins.
        target: floating positions in $[0, n - 1]$, the logits' shape without `axis`.
        axis: the bin axis; None (the default) follows PyTorch: 1, or 0 for `(n,)`.
        weight: element weights broadcast against `target` (a per-anchor weight, a mask).
        reduction: `"mean"` over the target's elements, `"sum"` or `"none"`.
        normalizer: divide the sum by it instead: mmdetection's `avg_factor`, ultralytics'
            `target_scores_sum` ([Detection normalisers][detection-normalisers]).

    Returns:
        The loss, in the logits' dtype.

    Raises:
        TypeError: logits that are not a floating `torch.Tensor`, an integer target.
        ValueError: a target outside $[0, n - 1]$ or NaN (naming the values; on tensors
            whose values are known), fewer than 2 bins, a shape that does not fit.
        NotImplementedError: under `torch.jit.trace`.

    References:
        Li et al., "Generalized Focal Loss", NeurIPS 2020,
        [arXiv:2006.04388](https://arxiv.org/abs/2006.04388).

    Examples:
        >>> import torch
        >>> from multiloss.torch import distribution_focal_loss
        >>> logits = torch.zeros(2, 4)  # uniform over 4 bins: log 4 whatever the target
        >>> round(distribution_focal_loss(logits, torch.tensor([0.5, 3.0])).item(), 6)
        1.386294
    """
    options = {"axis": axis, "weight": weight, "reduction": reduction, "normalizer": normalizer}
    return run_loss(LOSSES["distribution_focal_loss"], logits, target, options)


refuse_torchscript(varifocal_loss, quality_focal_loss, distribution_focal_loss)

__all__ = ["distribution_focal_loss", "quality_focal_loss", "varifocal_loss"]
