"""The `nn.Module` criteria of [`multiloss.torch`][multiloss.torch]: each calls the functional
API."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._core import _checks, hyper
from ._detection import distribution_focal_loss
from ._migration import migration_errors as _migration_errors
from ._namespace import NO_TORCHSCRIPT, XP
from .functional import Weights, cross_entropy, focal_loss, poly_loss


def as_buffer(name: str, value: Weights, *, class_vector: bool) -> Tensor | None:
    """A weight argument of a module as a floating tensor, checked once (it is a constant):
    a tensor as given (an integer one in the default dtype), a sequence in float64 (its
    numbers exactly; each call converts it to the logits' compute dtype, so a criterion
    gives its functional form's numbers)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}")
        tensor = value if value.is_floating_point() else value.to(torch.get_default_dtype())
    elif isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, numbers.Real)):
        raise TypeError(f"{name} must be a sequence of numbers or a tensor; got {value!r}")
    else:
        try:
            # float64: the Python numbers exactly, converted to the logits' compute dtype at
            # each call, as the functional form converts the same sequence (a float32
            # buffer would differ from it by ~1e-9 with float64 logits)
            tensor = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{name} must be a sequence of numbers or a tensor; got {value!r}"
            ) from error
    if class_vector and tensor.ndim != 1:
        raise ValueError(
            f"{name} must have one entry per class, a 1-d shape; got shape {tuple(tensor.shape)}"
        )
    if tensor.device.type != "meta":
        _checks.check_weight_values(XP, name, tensor)
    return tensor


def describe(tensor: Tensor | None) -> str:
    """A short text for `extra_repr`: the values of a small tensor, else its shape."""
    if tensor is None:
        return "None"
    if tensor.numel() <= 8 and tensor.device.type != "meta":
        return repr([round(float(v), 6) for v in tensor.detach().reshape(-1).cpu()])
    return f"<tensor of shape {tuple(tensor.shape)}, {tensor.dtype}>"


def _check_axis(axis: object) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer; got {axis!r}")
    return int(axis)


class Criterion(nn.Module):
    """The modules' common base: refuses TorchScript with a clear error."""

    # The float hyperparameters of the criteria that have them: a float, or a 0-d tensor
    # buffer for a schedule (:meth:`_set_hyperparameter`).
    gamma: float | Tensor
    epsilon: float | Tensor
    label_smoothing: float | Tensor
    z_loss: float | Tensor
    softcap: float | Tensor | None
    gamma_pos: float | Tensor
    gamma_neg: float | Tensor
    clip: float | Tensor

    def _set_hyperparameter(self, name: str, value: object) -> None:
        """A float hyperparameter: a Python number kept as a float (static: the math
        specialises on it); a 0-d tensor registered as a buffer, for a schedule that does
        not recompile under `torch.compile` (update it in place, ``crit.gamma.fill_(v)``,
        or assign a new 0-d tensor: docs/semantics.md, Schedules)."""
        if isinstance(value, Tensor):
            hyper.check(name, value)
            self.register_buffer(name, value)
        else:
            setattr(self, name, hyper.check(name, value))

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script calls this on the module (and on every submodule of a model
        # being scripted) before compiling anything.
        raise NotImplementedError(NO_TORCHSCRIPT)


class SoftmaxCriterion(Criterion):
    """The softmax criteria's common options: checked once, passed on each call."""

    alpha: Tensor | float | None

    def _set_options(
        self,
        *,
        ignore_index: int,
        reduction: str,
        label_smoothing: float,
        z_loss: float,
        softcap: float | None,
        axis: int | None,
    ) -> None:
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.reduction = _checks.check_reduction(reduction)
        self._set_hyperparameter("label_smoothing", label_smoothing)
        self._set_hyperparameter("z_loss", z_loss)
        if softcap is None:
            self.softcap = None
        else:
            self._set_hyperparameter("softcap", softcap)
        self.axis = _check_axis(axis)

    def _set_alpha(self, alpha: float | Weights) -> None:
        """A scalar α kept as a float, C per-class weights as a buffer."""
        if isinstance(alpha, (float, int, numbers.Real)):  # a bool is refused, as by focal_loss
            self.alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
        else:
            self.register_buffer("alpha", as_buffer("alpha", alpha, class_vector=True))

    def _options(self) -> dict[str, Any]:
        """The options every softmax loss takes, for the functional call."""
        return {
            "axis": self.axis,
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
            "z_loss": self.z_loss,
            "softcap": self.softcap,
        }

    def _describe_alpha(self) -> str:
        """A per-class alpha's values; a scalar's with the rule it resolves by (the number
        of classes is known only at the call)."""
        if isinstance(self.alpha, float):
            return f"{self.alpha} (class 0: {round(1.0 - self.alpha, 6)}, others: {self.alpha})"
        return describe(self.alpha)

    def _repr_options(self) -> str:
        """ignore_index, reduction, label_smoothing, and the options off their defaults."""
        text = (
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}"
        )
        text += "" if self.z_loss == 0 else f", z_loss={self.z_loss}"
        text += "" if self.softcap is None else f", softcap={self.softcap}"
        return text + ("" if self.axis is None else f", axis={self.axis}")


class CrossEntropyLoss(SoftmaxCriterion):
    r"""Softmax cross-entropy criterion, a drop-in for `torch.nn.CrossEntropyLoss`.

    $L = -\sum_k q_k w_k \log p_k$ per element; see
    [`cross_entropy`][multiloss.torch.cross_entropy] for every option. The one difference
    from PyTorch: a `"mean"` over zero counted elements is 0.0 with a zero gradient instead
    of NaN. The arguments after `weight` are keyword-only; `size_average` and `reduce`,
    long deprecated in PyTorch, are refused with the `reduction` they meant.

    Args:
        weight: per-class weights $w_k$ (length C), kept as a buffer.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (default -100).
        reduction: `"mean"` (the weighted mean over the counted elements; 0.0 over none),
            `"sum"` or `"none"` (one loss per element, class axis removed).
        label_smoothing: ε in [0, 1]: the target distribution becomes
            $(1-\varepsilon)\,q + \varepsilon/C$ (default 0).
        z_loss: λ ≥ 0 of PaLM's z-loss: each counted element adds
            $\lambda\,(\log\sum_k e^{z_k})^2$, weighted like its own loss (default 0).
        softcap: c > 0 of Gemma 2's logit soft-capping, $z \mapsto c \tanh(z / c)$ before
            the softmax; None (the default) leaves the logits as they are.
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`, 0
            for an unbatched `(C,)` input.

    Examples:
        >>> import torch
        >>> from multiloss.torch import CrossEntropyLoss
        >>> criterion = CrossEntropyLoss(weight=[1.0, 2.0, 1.0], ignore_index=255)
        >>> criterion
        CrossEntropyLoss(weight=[1.0, 2.0, 1.0], ignore_index=255, reduction='mean', label_smoothing=0.0)
        >>> logits = torch.randn(4, 3, 8, 8, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 3, (4, 8, 8))).backward()
    """  # noqa: E501

    weight: Tensor | None

    @_migration_errors(
        "torch.nn.CrossEntropyLoss",
        "weight",
        "size_average",
        "ignore_index",
        "reduce",
        "reduction",
        "label_smoothing",
    )
    def __init__(
        self,
        weight: Weights = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        axis: int | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", as_buffer("weight", weight, class_vector=True))
        self._set_options(
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            axis=axis,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return cross_entropy(
            input, target, weight=self.weight, **self._options(), normalizer=normalizer
        )

    def extra_repr(self) -> str:
        text = "" if self.weight is None else f"weight={describe(self.weight)}, "
        return text + self._repr_options()


class FocalLoss(SoftmaxCriterion):
    r"""Softmax focal loss criterion (Lin et al., "Focal Loss for Dense Object Detection").

    $L = -\sum_k q_k \alpha_k (1 - p_k)^\gamma \log p_k$ per element,
    $-\alpha_t (1-p_t)^\gamma \log p_t$ for a class index; see
    [`focal_loss`][multiloss.torch.focal_loss] for every option.

    Args:
        gamma: focusing parameter γ ≥ 0 (0: cross-entropy).
        alpha: class weighting: None (none); C per-class weights $\alpha_k$ (kept as a
            buffer); or a scalar α in [0, 1], RetinaNet's rule: class 0 (the background)
            weighted by 1 − α, every other class by α. The `repr` shows the rule
            (`alpha=0.25 (class 0: 0.75, others: 0.25)`). The focal loss class copied
            from blogs weights class 0 by α and class 1 by 1 − α: its `alpha=a` is
            `alpha=[a, 1 - a]` here ([Migration guides][migration-guides]).
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (default -100).
        reduction: `"mean"` (the weighted mean over the counted elements; 0.0 over none),
            `"sum"` or `"none"` (one loss per element, class axis removed).
        label_smoothing: ε in [0, 1]: the target distribution becomes
            $(1-\varepsilon)\,q + \varepsilon/C$ (default 0).
        z_loss: λ ≥ 0 of PaLM's z-loss: each counted element adds
            $\lambda\,(\log\sum_k e^{z_k})^2$, weighted like its own loss (default 0).
        softcap: c > 0 of Gemma 2's logit soft-capping, $z \mapsto c \tanh(z / c)$ before
            the softmax; None (the default) leaves the logits as they are.
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`, 0
            for an unbatched `(C,)` input.

    Examples:
        >>> import torch
        >>> from multiloss.torch import FocalLoss
        >>> criterion = FocalLoss(gamma=2.0, alpha=0.25, ignore_index=255)
        >>> criterion
        FocalLoss(gamma=2.0, alpha=0.25 (class 0: 0.75, others: 0.25), ignore_index=255, ...)
        >>> logits = torch.randn(4, 3, 8, 8, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 3, (4, 8, 8))).backward()
    """

    @_migration_errors("the blog FocalLoss", "gamma", "alpha", "size_average")
    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | Weights = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        axis: int | None = None,
    ) -> None:
        super().__init__()
        self._set_hyperparameter("gamma", gamma)
        self._set_alpha(alpha)
        self._set_options(
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            axis=axis,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return focal_loss(
            input,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            **self._options(),
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self._describe_alpha()}, " + self._repr_options()


class PolyLoss(SoftmaxCriterion):
    r"""PolyLoss criterion, Poly-1 (Leng et al., ICLR 2022).

    $L = \sum_k q_k \alpha_k \left(-(1 - p_k)^\gamma \log p_k
    + \varepsilon (1 - p_k)^{\gamma+1}\right)$ per element; see
    [`poly_loss`][multiloss.torch.poly_loss] for every option.

    Args:
        epsilon: ε ≥ -1 (default 2.0, the paper's ImageNet value).
        gamma: focusing parameter γ ≥ 0 (0: cross-entropy plus ε (1 - p_t)).
        alpha: class weighting: None; C per-class weights $\alpha_k$ (a buffer); or a
            scalar α in [0, 1] (class 0 weighted by 1 − α, the others by α, as in
            [`FocalLoss`][multiloss.torch.FocalLoss]).
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (default -100).
        reduction: `"mean"` (the weighted mean over the counted elements; 0.0 over none),
            `"sum"` or `"none"` (one loss per element, class axis removed).
        label_smoothing: ε in [0, 1]: the target distribution becomes
            $(1-\varepsilon)\,q + \varepsilon/C$ (default 0).
        z_loss: λ ≥ 0 of PaLM's z-loss: each counted element adds
            $\lambda\,(\log\sum_k e^{z_k})^2$, weighted like its own loss (default 0).
        softcap: c > 0 of Gemma 2's logit soft-capping, $z \mapsto c \tanh(z / c)$ before
            the softmax; None (the default) leaves the logits as they are.
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`, 0
            for an unbatched `(C,)` input.

    Examples:
        >>> import torch
        >>> from multiloss.torch import PolyLoss
        >>> criterion = PolyLoss(epsilon=1.0)
        >>> criterion
        PolyLoss(epsilon=1.0, gamma=0.0, alpha=None, ignore_index=-100, reduction='mean', label_smoothing=0.0)
        >>> logits = torch.randn(4, 3, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 2, 1, 1])).backward()
    """  # noqa: E501

    alpha: Tensor | float | None

    @_migration_errors("PolyLoss", "epsilon", "gamma", "alpha", "ignore_index", "reduction")
    def __init__(
        self,
        *,
        epsilon: float = 2.0,
        gamma: float = 0.0,
        alpha: float | Weights = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        axis: int | None = None,
    ) -> None:
        super().__init__()
        self._set_hyperparameter("epsilon", epsilon)
        self._set_hyperparameter("gamma", gamma)
        self._set_alpha(alpha)
        self._set_options(
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            axis=axis,
        )

    def forward(
        self, input: Tensor, target: Tensor, *, normalizer: Tensor | float | None = None
    ) -> Tensor:
        """The loss of one call; `normalizer` as in
        [`cross_entropy`][multiloss.torch.cross_entropy] (a ``"mean"``'s global count)."""
        return poly_loss(
            input,
            target,
            epsilon=self.epsilon,
            gamma=self.gamma,
            alpha=self.alpha,
            **self._options(),
            normalizer=normalizer,
        )

    def extra_repr(self) -> str:
        text = f"epsilon={self.epsilon}, gamma={self.gamma}, alpha={self._describe_alpha()}, "
        return text + self._repr_options()


class DistributionFocalLoss(Criterion):
    r"""Distribution focal loss criterion (ultralytics' `DFLoss`, mmdetection's):
    [`distribution_focal_loss`][multiloss.torch.distribution_focal_loss], with `weight`
    (a per-anchor weight changes with the batch) an argument of each call.

    Args:
        reduction: `"mean"`, `"sum"` or `"none"`.
        axis: the bin axis; None: 1, or 0 for an unbatched `(n,)` input.

    Examples:
        >>> import torch
        >>> from multiloss.torch import DistributionFocalLoss
        >>> criterion = DistributionFocalLoss(reduction="sum")  # 2 rows of 4 uniform bins
        >>> round(criterion(torch.zeros(2, 4), torch.tensor([0.5, 3.0])).item(), 4)  # 2 log 4
        2.7726
    """

    def __init__(self, *, reduction: str = "mean", axis: int | None = None) -> None:
        super().__init__()
        self.reduction = _checks.check_reduction(reduction)
        self.axis = _check_axis(axis)

    def forward(
        self,
        input: Tensor,
        target: Tensor,
        *,
        weight: Tensor | None = None,
        normalizer: Tensor | float | None = None,
    ) -> Tensor:
        """The loss of one call; `weight` and `normalizer` as in
        [`distribution_focal_loss`][multiloss.torch.distribution_focal_loss]."""
        options: dict[str, Any] = {"weight": weight, "normalizer": normalizer}
        return distribution_focal_loss(
            input, target, axis=self.axis, reduction=self.reduction, **options
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + (
            "" if self.axis is None else f", axis={self.axis}"
        )


__all__ = ["CrossEntropyLoss", "DistributionFocalLoss", "FocalLoss", "PolyLoss"]
