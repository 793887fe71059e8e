"""The `nn.Module` criteria of the element-wise (sigmoid) losses of
[`multiloss.torch`][multiloss.torch]: each calls the functional API."""

from __future__ import annotations

import numbers
from typing import Any

from torch import Tensor

from .._core import _checks
from .._core.element_options import check_ignore_index
from ._detection import quality_focal_loss, varifocal_loss
from ._migration import migration_errors as _migration_errors
from .functional import Weights, asymmetric_loss, binary_cross_entropy, sigmoid_focal_loss
from .modules import Criterion, as_buffer, describe


def _unless_zero(value: float | Tensor) -> float | Tensor | None:
    """A hyperparameter for the repr, None where it is the number 0 (never read: a tensor)."""
    return None if isinstance(value, (int, float)) and value == 0 else value


class ElementCriterion(Criterion):
    """The element-wise criteria's common options (`weight`, `pos_weight`, `ignore_index`,
    `label_smoothing`, `reduction`): checked once, the weights kept as buffers."""

    weight: Tensor | None
    pos_weight: Tensor | None

    def _set_element_options(
        self,
        *,
        weight: Weights,
        pos_weight: Weights,
        ignore_index: int | None,
        label_smoothing: float | Tensor,
        reduction: str,
    ) -> None:
        self.register_buffer("weight", as_buffer("weight", weight, class_vector=False))
        self.register_buffer("pos_weight", as_buffer("pos_weight", pos_weight, class_vector=False))
        self.ignore_index = check_ignore_index(ignore_index)
        self._set_hyperparameter("label_smoothing", label_smoothing)  # a 0-d tensor: a buffer
        self.reduction = _checks.check_reduction(reduction)

    def _element_options(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "pos_weight": self.pos_weight,
            "ignore_index": self.ignore_index,
            "label_smoothing": self.label_smoothing,
            "reduction": self.reduction,
        }

    def _element_repr(self, *names: str) -> str:
        """`, name=value` for each of `names` that differs from its default."""
        given = {
            "weight": None if self.weight is None else describe(self.weight),
            "pos_weight": None if self.pos_weight is None else describe(self.pos_weight),
            "ignore_index": self.ignore_index,
            "label_smoothing": _unless_zero(self.label_smoothing),
        }
        return "".join(f", {n}={given[n]}" for n in names if given[n] is not None)


class BCEWithLogitsLoss(ElementCriterion):
    r"""Sigmoid cross-entropy criterion, a drop-in for `torch.nn.BCEWithLogitsLoss`.

    $L = -w \left[ p_w y \log \sigma(x) + (1-y) \log(1-\sigma(x)) \right]$ per element; see
    [`binary_cross_entropy`][multiloss.torch.binary_cross_entropy].

    Args:
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        reduction: `"mean"`, `"sum"` or `"none"` (keyword-only).
        pos_weight: weight of the positive term, broadcast to the input's shape (a
            length-C vector weights the last axis), kept as a buffer.
        ignore_index: a target value not counted, or None.
        label_smoothing: ε in [0, 1] (each target becomes y·(1 − ε) + ε/2); a 0-d
            tensor is kept as a buffer, for a schedule ([Schedules][schedules]).

    Examples:
        >>> import torch
        >>> from multiloss.torch import BCEWithLogitsLoss
        >>> criterion = BCEWithLogitsLoss(pos_weight=[1.0, 3.0])
        >>> criterion
        BCEWithLogitsLoss(reduction='mean', pos_weight=[1.0, 3.0])
        >>> round(criterion(torch.zeros(1, 2), torch.ones(1, 2)).item(), 6)  # 2·log 2
        1.386294
    """

    weight: Tensor | None
    pos_weight: Tensor | None

    @_migration_errors(
        "torch.nn.BCEWithLogitsLoss", "weight", "size_average", "reduce", "reduction", "pos_weight"
    )
    def __init__(
        self,
        weight: Weights = None,
        *,
        reduction: str = "mean",
        pos_weight: Weights = None,
        ignore_index: int | None = None,
        label_smoothing: float | Tensor = 0.0,
    ) -> None:
        super().__init__()
        self._set_element_options(
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return binary_cross_entropy(input, target, **self._element_options(), normalizer=normalizer)

    def extra_repr(self) -> str:
        text = "" if self.weight is None else f"weight={describe(self.weight)}, "
        text += f"reduction={self.reduction!r}"
        if self.pos_weight is not None:
            text += f", pos_weight={describe(self.pos_weight)}"
        return text + self._element_repr("ignore_index", "label_smoothing")


class SigmoidFocalLoss(ElementCriterion):
    r"""Sigmoid focal loss criterion (Lin et al. 2017), as `torchvision.ops.sigmoid_focal_loss`.

    $L = \alpha_t (1 - p_t)^\gamma \mathrm{BCE}(x, y)$ per element; see
    [`sigmoid_focal_loss`][multiloss.torch.sigmoid_focal_loss].

    Args:
        alpha: α in [0, 1], a per-class vector α_c (kept as a buffer), or None for no
            $\alpha_t$ weighting.
        gamma: focusing parameter γ ≥ 0.
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        pos_weight: weight of the positive log-term, kept as a buffer.
        ignore_index: a target value not counted, or None.
        label_smoothing: ε in [0, 1] (each target becomes y·(1 − ε) + ε/2); a 0-d
            tensor is kept as a buffer, for a schedule ([Schedules][schedules]).
        reduction: `"mean"`, `"sum"` or `"none"`.

    Examples:
        >>> import torch
        >>> from multiloss.torch import SigmoidFocalLoss
        >>> criterion = SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> criterion
        SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction='mean')
        >>> logits = torch.randn(4, 5, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 2, (4, 5)).float()).backward()
    """

    alpha: Tensor | float | None

    @_migration_errors("torchvision.ops.sigmoid_focal_loss", "alpha", "gamma", "reduction")
    def __init__(
        self,
        *,
        alpha: float | Tensor | Weights = 0.25,
        gamma: float | Tensor = 2.0,
        weight: Weights = None,
        pos_weight: Weights = None,
        ignore_index: int | None = None,
        label_smoothing: float | Tensor = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if alpha is None:
            self.alpha = None
        elif isinstance(alpha, numbers.Real) or (isinstance(alpha, Tensor) and alpha.ndim == 0):
            self._set_hyperparameter("alpha", alpha)  # a number, or a 0-d tensor's buffer
        else:  # a per-class α, a buffer
            vector: Weights = alpha  # type: ignore[assignment]  # not a number: checked above
            self.register_buffer("alpha", as_buffer("alpha", vector, class_vector=False))
        self._set_hyperparameter("gamma", gamma)
        self._set_element_options(
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return sigmoid_focal_loss(
            input,
            target,
            alpha=self.alpha,
            gamma=self.gamma,
            **self._element_options(),
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        alpha = describe(self.alpha) if isinstance(self.alpha, Tensor) else self.alpha
        return f"alpha={alpha}, gamma={self.gamma}, reduction={self.reduction!r}" + (
            self._element_repr("weight", "pos_weight", "ignore_index", "label_smoothing")
        )


class AsymmetricLoss(ElementCriterion):
    r"""Asymmetric Loss criterion for multi-label heads (Ridnik et al., ICCV 2021).

    $L = -y (1-p)^{\gamma_+} \log p - (1-y) p_m^{\gamma_-} \log(1 - p_m)$ per element,
    $p_m = \max(p - \mathrm{clip}, 0)$; see
    [`asymmetric_loss`][multiloss.torch.asymmetric_loss]. timm's `AsymmetricLossMultiLabel`
    is `AsymmetricLoss(gamma_pos=1.0, gamma_neg=4.0, clip=0.05, reduction="sum")`.

    Args:
        gamma_pos: γ+ ≥ 0.
        gamma_neg: γ- ≥ 0.
        clip: margin in [0, 1).
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        pos_weight: weight of the positive log-term, kept as a buffer.
        ignore_index: a target value not counted, or None.
        label_smoothing: ε in [0, 1] (each target becomes y·(1 − ε) + ε/2); a 0-d
            tensor is kept as a buffer, for a schedule ([Schedules][schedules]).
        reduction: `"mean"`, `"sum"` or `"none"`.

    Examples:
        >>> import torch
        >>> from multiloss.torch import AsymmetricLoss
        >>> criterion = AsymmetricLoss()
        >>> criterion
        AsymmetricLoss(gamma_pos=0.0, gamma_neg=4.0, clip=0.05, reduction='mean')
        >>> logits = torch.randn(4, 5, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 2, (4, 5)).float()).backward()
    """

    @_migration_errors("timm's AsymmetricLossMultiLabel", "gamma_neg", "gamma_pos", "clip")
    def __init__(
        self,
        *,
        gamma_pos: float | Tensor = 0.0,
        gamma_neg: float | Tensor = 4.0,
        clip: float | Tensor = 0.05,
        weight: Weights = None,
        pos_weight: Weights = None,
        ignore_index: int | None = None,
        label_smoothing: float | Tensor = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self._set_hyperparameter("gamma_pos", gamma_pos)
        self._set_hyperparameter("gamma_neg", gamma_neg)
        self._set_hyperparameter("clip", clip)
        self._set_element_options(
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return asymmetric_loss(
            input,
            target,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            **self._element_options(),
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
            f"reduction={self.reduction!r}"
        ) + self._element_repr("weight", "pos_weight", "ignore_index", "label_smoothing")


class VarifocalLoss(ElementCriterion):
    r"""Varifocal loss criterion (Zhang et al., CVPR 2021).

    $L = \mathrm{BCE}(x, q) \cdot (q$ where $q > 0$, $\alpha \sigma(x)^\gamma$ where
    $q = 0)$ per element; see [`varifocal_loss`][multiloss.torch.varifocal_loss].

    Args:
        alpha: α in [0, 1], the negatives' weight.
        gamma: focusing parameter γ ≥ 0 of the negatives.
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        pos_weight: weight of the positive log-term, kept as a buffer.
        ignore_index: a target value not counted, or None.
        label_smoothing: ε in [0, 1] (the cross-entropy's target only).
        reduction: `"mean"`, `"sum"` or `"none"`.

    Each of `alpha`, `gamma` and `label_smoothing` is a number or a 0-d tensor (kept as a
    buffer, for a schedule that does not recompile: [Schedules][schedules]).

    Examples:
        >>> import torch
        >>> from multiloss.torch import VarifocalLoss
        >>> criterion = VarifocalLoss()
        >>> criterion
        VarifocalLoss(alpha=0.75, gamma=2.0, reduction='mean')
        >>> logits = torch.randn(4, 5, requires_grad=True)
        >>> criterion(logits, torch.rand(4, 5) * (torch.rand(4, 5) < 0.2)).backward()
    """

    alpha: float | Tensor

    def __init__(
        self,
        *,
        alpha: float | Tensor = 0.75,
        gamma: float | Tensor = 2.0,
        weight: Weights = None,
        pos_weight: Weights = None,
        ignore_index: int | None = None,
        label_smoothing: float | Tensor = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self._set_hyperparameter("alpha", alpha)  # a number, or a 0-d tensor's buffer
        self._set_hyperparameter("gamma", gamma)
        self._set_element_options(
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return varifocal_loss(
            input,
            target,
            alpha=self.alpha,
            gamma=self.gamma,
            **self._element_options(),
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}" + (
            self._element_repr("weight", "pos_weight", "ignore_index", "label_smoothing")
        )


class QualityFocalLoss(ElementCriterion):
    r"""Quality focal loss criterion (Li et al., NeurIPS 2020, Generalized Focal Loss).

    $L = |y - \sigma(x)|^\beta \, \mathrm{BCE}(x, y)$ per element; see
    [`quality_focal_loss`][multiloss.torch.quality_focal_loss].

    Args:
        beta: focusing parameter β ≥ 0.
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        pos_weight: weight of the positive log-term, kept as a buffer.
        ignore_index: a target value not counted, or None.
        label_smoothing: ε in [0, 1].
        reduction: `"mean"`, `"sum"` or `"none"`.

    `beta` and `label_smoothing` are each a number or a 0-d tensor (kept as a buffer, for a
    schedule that does not recompile: [Schedules][schedules]).

    Examples:
        >>> import torch
        >>> from multiloss.torch import QualityFocalLoss
        >>> criterion = QualityFocalLoss(beta=2.0)
        >>> criterion
        QualityFocalLoss(beta=2.0, reduction='mean')
        >>> logits = torch.randn(4, 5, requires_grad=True)
        >>> criterion(logits, torch.rand(4, 5)).backward()
    """

    beta: float | Tensor

    def __init__(
        self,
        *,
        beta: float | Tensor = 2.0,
        weight: Weights = None,
        pos_weight: Weights = None,
        ignore_index: int | None = None,
        label_smoothing: float | Tensor = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self._set_hyperparameter("beta", beta)  # a number, or a 0-d tensor's buffer
        self._set_element_options(
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return quality_focal_loss(
            input, target, beta=self.beta, **self._element_options(), normalizer=normalizer
        )

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}" + (
            self._element_repr("weight", "pos_weight", "ignore_index", "label_smoothing")
        )


__all__ = [
    "AsymmetricLoss",
    "BCEWithLogitsLoss",
    "ElementCriterion",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "VarifocalLoss",
]
