r"""Fused linear + softmax losses for large vocabularies: the projection to the logits and the
loss, a chunk of tokens at a time, so that the logits of the whole batch never exist.

`linear_cross_entropy(input, linear_weight, target)` is
`cross_entropy(input @ linear_weight.T + linear_bias, target, axis=-1)` with every option of
[`cross_entropy`][multiloss.torch.cross_entropy] (and `linear_focal_loss` likewise for
[`focal_loss`][multiloss.torch.focal_loss]), computed without the `(tokens, classes)`
logits and their gradient: what an LLM's output head spends most of its memory on.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from .._core import LOSSES, _checks, hyper
from ._linear import Normalizer, linear_loss
from ._namespace import refuse_torchscript
from .functional import Weights
from .modules import SoftmaxCriterion, as_buffer, describe


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Normalizer = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Cross-entropy of a linear projection, fused: the logits are never formed whole.

    The value and every gradient are those of
    `cross_entropy(input @ linear_weight.T + linear_bias, target, axis=-1, ...)` with the
    same options (classes on the last axis), computed a chunk of tokens at a time: one
    chunk's logits exist at any moment, their gradient written over them.

    How it runs:

    * Memory: besides the gradients, one chunk's logits and the temporaries of a quarter
      of a chunk (the core's passes run over four row blocks of each chunk, each
      block's gradient written over its logits).
    * `"mean"` and `"sum"`: the forward pass forms the gradients with respect to `input`,
      `linear_weight` and `linear_bias` chunk by chunk (dX_c = G_c W, dW += G_cᵀ X_c,
      the latter summed in float32 for 16-bit inputs), and backward scales them by the
      loss's cotangent in place: three matrix products, as unfused. They are formed
      whenever a gradient is wanted (`requires_grad` with grad mode on), also if
      backward is never called; a second backward through the same graph
      (`retain_graph=True`) recomputes them.
    * `"none"`: forward keeps nothing but its inputs; backward recomputes each chunk's
      logits (four matrix products in all).
    * `chunk_size` None (the default): the most tokens whose float32 logits take at most
      1/16 of the whole logits and 32 MiB, but at least 192 tokens (fewer leave the
      matrix products re-reading the whole projection for little work), or all of them.
    * No host synchronisation and no data-dependent shapes (ignored tokens are masked,
      not removed): it compiles with `torch.compile(fullgraph=True)`, the chunk loop
      unrolled.
    * `create_graph=True` (double backward, `gradgradcheck`), forward-mode AD
      (`torch.func.jvp`, dual tensors), every `torch.func` transform (`grad`, `vmap`,
      `hessian`) and gradients with respect to a probability `target`, `weight` or
      `normalizer` are supported by computing the loss unfused there: with the whole
      logits in memory (in backward only, for `create_graph=True`).

    Args:
        input: `(..., in_features)` features, any floating dtype (16-bit is computed in
            float32 inside).
        linear_weight: `(num_classes, in_features)`, as the weight of `torch.nn.Linear`,
            in the input's dtype.
        target: class indices of any integer dtype, shaped `input.shape[:-1]`, or class
            probabilities, shaped `(*input.shape[:-1], num_classes)`.
        linear_bias: `(num_classes,)` or None.
        weight: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        ignore_index: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        reduction: as in [`cross_entropy`][multiloss.torch.cross_entropy]; `"mean"`
            divides by the whole call's denominator (Σ w_{y_i} over the counted tokens,
            their count without `weight`, the token count for probabilities).
        label_smoothing: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        z_loss: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        softcap: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        normalizer: with `reduction="mean"` only: divide the sum by this non-negative
            number or 0-d tensor (say, the counted tokens of every micro-batch or device)
            instead of the call's own denominator; 0 gives 0.
        chunk_size: tokens per chunk, a positive integer; None chooses (see above).

    Returns:
        The loss, in the input's dtype: 0-d for `"mean"` and `"sum"`, `input.shape[:-1]`
            for `"none"`.

    Raises:
        TypeError: `input`, `linear_weight` or `linear_bias` not a floating tensor, or of
            different dtypes; a non-integer `chunk_size`; as in
            [`cross_entropy`][multiloss.torch.cross_entropy].
        ValueError: `linear_weight` not 2-d or not matching `input`'s last axis, a
            `linear_bias` not `(num_classes,)`, `chunk_size` < 1, a `normalizer` with
            another reduction; as in [`cross_entropy`][multiloss.torch.cross_entropy].
        NotImplementedError: under `torch.jit.trace`.

    Examples:
        >>> import torch
        >>> from multiloss.torch import cross_entropy
        >>> from multiloss.torch.linear import linear_cross_entropy
        >>> hidden, head = torch.randn(6, 4), torch.randn(10, 4, requires_grad=True)
        >>> target = torch.tensor([1, 2, 3, -100, 5, 6])
        >>> loss = linear_cross_entropy(hidden, head, target, chunk_size=4)
        >>> bool(torch.isclose(loss, cross_entropy(hidden @ head.T, target, axis=-1)))
        True
        >>> loss.backward()
    """
    options = {
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return linear_loss(LOSSES["cross_entropy"], input, linear_weight, target, linear_bias, options)


def linear_focal_loss(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Normalizer = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Softmax focal loss of a linear projection, fused: the logits are never formed whole.

    The value and every gradient are those of
    `focal_loss(input @ linear_weight.T + linear_bias, target, axis=-1, ...)`, computed as
    [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy] computes
    cross-entropy (chunks, gradients formed in the forward pass for `"mean"` and
    `"sum"`, the same fallbacks); focal loss costs no more per logit than cross-entropy.

    Args:
        input: as in [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        linear_weight: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        target: as in [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        linear_bias: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        gamma: focusing parameter γ ≥ 0.
        alpha: as in [`focal_loss`][multiloss.torch.focal_loss].
        ignore_index: as in [`focal_loss`][multiloss.torch.focal_loss].
        reduction: as in [`focal_loss`][multiloss.torch.focal_loss] (`"mean"` divides by
            the counted tokens, not by Σα).
        label_smoothing: as in [`focal_loss`][multiloss.torch.focal_loss].
        z_loss: as in [`focal_loss`][multiloss.torch.focal_loss].
        softcap: as in [`focal_loss`][multiloss.torch.focal_loss].
        normalizer: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        chunk_size: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].

    Returns:
        The loss, in the input's dtype: 0-d for `"mean"` and `"sum"`, `input.shape[:-1]`
            for `"none"`.

    Raises:
        TypeError: as for
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        ValueError: as for
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy]; γ < 0.
        NotImplementedError: under `torch.jit.trace`.

    Examples:
        >>> import torch
        >>> from multiloss.torch import focal_loss
        >>> from multiloss.torch.linear import linear_focal_loss
        >>> hidden, head = torch.randn(6, 4), torch.randn(10, 4)
        >>> target = torch.tensor([1, 2, 3, 4, 5, 6])
        >>> loss = linear_focal_loss(hidden, head, target, gamma=2.0, chunk_size=4)
        >>> bool(torch.isclose(loss, focal_loss(hidden @ head.T, target, axis=-1)))
        True
    """
    options = {
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return linear_loss(LOSSES["focal_loss"], input, linear_weight, target, linear_bias, options)


def linear_poly_loss(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: Normalizer = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""PolyLoss (Poly-1) of a linear projection, fused: the logits are never formed whole.

    The value and every gradient are those of
    `poly_loss(input @ linear_weight.T + linear_bias, target, axis=-1, ...)`, computed as
    [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy] computes
    cross-entropy (the same chunks, gradients and fallbacks).

    Args:
        input: as in [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        linear_weight: as there.
        target: as there.
        linear_bias: as there.
        epsilon: ε ≥ -1, as in [`poly_loss`][multiloss.torch.poly_loss].
        gamma: focusing parameter γ ≥ 0.
        alpha: as in [`poly_loss`][multiloss.torch.poly_loss].
        ignore_index: as there.
        reduction: as there.
        label_smoothing: as there.
        z_loss: as there.
        softcap: as there.
        normalizer: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        chunk_size: as there.

    Returns:
        The loss, in the input's dtype: 0-d for `"mean"` and `"sum"`, `input.shape[:-1]`
            for `"none"`.

    Examples:
        >>> import torch
        >>> from multiloss.torch import poly_loss
        >>> from multiloss.torch.linear import linear_poly_loss
        >>> hidden, head = torch.randn(6, 4), torch.randn(10, 4)
        >>> target = torch.tensor([1, 2, 3, 4, 5, 6])
        >>> loss = linear_poly_loss(hidden, head, target, epsilon=1.0, chunk_size=4)
        >>> bool(torch.isclose(loss, poly_loss(hidden @ head.T, target, axis=-1, epsilon=1.0)))
        True
    """
    options = {
        "epsilon": epsilon,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
        "chunk_size": chunk_size,
    }
    return linear_loss(LOSSES["poly_loss"], input, linear_weight, target, linear_bias, options)


# ---------------------------------------------------------------------------------------
# Modules


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}")
    return int(value)


class _LinearCriterion(SoftmaxCriterion):
    """The fused criteria's common part: a projection owned or taken at each call."""

    linear_weight: nn.Parameter | None
    linear_bias: nn.Parameter | None

    def _set_projection(
        self,
        in_features: int | None,
        num_classes: int | None,
        bias: bool,
        device: Any,
        dtype: Any,
    ) -> None:
        if (in_features is None) != (num_classes is None):
            raise TypeError(
                f"{type(self).__name__} owns its projection with both in_features and "
                f"num_classes, or takes it at each call with neither; got "
                f"in_features={in_features!r}, num_classes={num_classes!r}"
            )
        self.in_features = (
            in_features if in_features is None else _check_size("in_features", in_features)
        )
        self.num_classes = (
            num_classes if num_classes is None else _check_size("num_classes", num_classes)
        )
        if self.in_features is None or self.num_classes is None:
            self.register_parameter("linear_weight", None)
            self.register_parameter("linear_bias", None)
            return
        factory = {"device": device, "dtype": dtype}
        shape = (self.num_classes, self.in_features)
        self.linear_weight = nn.Parameter(torch.empty(shape, **factory))
        if bias:
            self.linear_bias = nn.Parameter(torch.empty(self.num_classes, **factory))
        else:
            self.register_parameter("linear_bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise an owned projection as `torch.nn.Linear` does (uniform, bound
        1/√in_features); nothing to do for a projection taken at each call."""
        if self.linear_weight is None:
            return
        nn.init.kaiming_uniform_(self.linear_weight, a=math.sqrt(5))
        if self.linear_bias is not None:
            bound = 1 / math.sqrt(self.linear_weight.shape[1])
            nn.init.uniform_(self.linear_bias, -bound, bound)

    def _projection(
        self, tensors: tuple[Tensor, ...], linear_bias: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """(linear_weight, linear_bias, target) of a call."""
        name = type(self).__name__
        if self.linear_weight is not None:
            if len(tensors) != 1 or linear_bias is not None:
                raise TypeError(
                    f"this {name} owns its projection (in_features={self.in_features}, "
                    f"num_classes={self.num_classes}): call it as loss(input, target)"
                )
            return self.linear_weight, self.linear_bias, tensors[0]
        if len(tensors) == 3 and linear_bias is None:
            return tensors[0], tensors[2], tensors[1]
        if len(tensors) == 2:
            return tensors[0], linear_bias, tensors[1]
        raise TypeError(
            f"this {name} takes its projection at each call: loss(input, linear_weight, "
            f"target, linear_bias=None); got {len(tensors) + 1} tensors (construct it with "
            f"in_features and num_classes to own the projection)"
        )

    def _linear_options(self) -> dict[str, Any]:
        return {
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
            "z_loss": self.z_loss,
            "softcap": self.softcap,
            "chunk_size": self.chunk_size,
        }

    def _describe_projection(self) -> str:
        if self.linear_weight is None:
            return ""
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"bias={self.linear_bias is not None}, "
        )

    def _repr_tail(self) -> str:
        text = self._repr_options()
        return text if self.chunk_size is None else text + f", chunk_size={self.chunk_size}"


class LinearCrossEntropyLoss(_LinearCriterion):
    r"""Fused linear + cross-entropy criterion for large vocabularies.

    [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy] as a module. It
    owns the projection (`in_features` and `num_classes` given: a `linear_weight` of shape
    `(num_classes, in_features)` and a `linear_bias`, parameters initialised as
    `torch.nn.Linear`'s) and is called as `loss(input, target)`, or takes it at each call
    (neither given): `loss(input, linear_weight, target, linear_bias=None)`, say with a
    language model's tied embedding. Both take `normalizer=` as a keyword.

    Args:
        in_features: the input's last axis, to own the projection (with `num_classes`).
        num_classes: the number of classes (the vocabulary), to own the projection.
        bias: whether an owned projection has a bias.
        weight: per-class weights (length C), kept as a buffer.
        ignore_index: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        reduction: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        label_smoothing: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        z_loss: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        softcap: as in [`cross_entropy`][multiloss.torch.cross_entropy].
        chunk_size: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        device: where an owned projection is made.
        dtype: the dtype of an owned projection.

    Examples:
        >>> import torch
        >>> from multiloss.torch.linear import LinearCrossEntropyLoss
        >>> head = LinearCrossEntropyLoss(8, 100, bias=False, z_loss=1e-4)
        >>> head
        LinearCrossEntropyLoss(in_features=8, num_classes=100, bias=False, ignore_index=-100, reduction='mean', label_smoothing=0.0, z_loss=0.0001)
        >>> hidden = torch.randn(2, 5, 8, requires_grad=True)
        >>> head(hidden, torch.randint(0, 100, (2, 5))).backward()
        >>> tied = LinearCrossEntropyLoss(label_smoothing=0.1)
        >>> embedding = torch.nn.Embedding(100, 8)
        >>> tied(hidden, embedding.weight, torch.randint(0, 100, (2, 5))).backward()
    """  # noqa: E501

    weight: Tensor | None

    def __init__(
        self,
        in_features: int | None = None,
        num_classes: int | None = None,
        *,
        bias: bool = True,
        weight: Weights = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", as_buffer("weight", weight, class_vector=True))
        self._set_options(
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            axis=None,
        )
        self.chunk_size = _checks.check_chunk_size(chunk_size)
        self._set_projection(in_features, num_classes, bias, device, dtype)

    def forward(
        self,
        input: Tensor,
        *tensors: Tensor,
        linear_bias: Tensor | None = None,
        normalizer: Normalizer = None,
    ) -> Tensor:
        linear_weight, linear_bias, target = self._projection(tensors, linear_bias)
        return linear_cross_entropy(
            input,
            linear_weight,
            target,
            linear_bias=linear_bias,
            weight=self.weight,
            normalizer=normalizer,
            **self._linear_options(),
        )

    def extra_repr(self) -> str:
        text = self._describe_projection()
        text += "" if self.weight is None else f"weight={describe(self.weight)}, "
        return text + self._repr_tail()


class LinearFocalLoss(_LinearCriterion):
    r"""Fused linear + softmax focal loss criterion for large vocabularies.

    [`linear_focal_loss`][multiloss.torch.linear.linear_focal_loss] as a module, owning
    its projection or taking it at each call as
    [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss] does.

    Args:
        in_features: as in
            [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss].
        num_classes: as in
            [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss].
        bias: as in
            [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss].
        gamma: focusing parameter γ ≥ 0.
        alpha: as in [`FocalLoss`][multiloss.torch.FocalLoss].
        ignore_index: as in [`focal_loss`][multiloss.torch.focal_loss].
        reduction: as in [`focal_loss`][multiloss.torch.focal_loss].
        label_smoothing: as in [`focal_loss`][multiloss.torch.focal_loss].
        z_loss: as in [`focal_loss`][multiloss.torch.focal_loss].
        softcap: as in [`focal_loss`][multiloss.torch.focal_loss].
        chunk_size: as in
            [`linear_cross_entropy`][multiloss.torch.linear.linear_cross_entropy].
        device: as in
            [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss].
        dtype: as in
            [`LinearCrossEntropyLoss`][multiloss.torch.linear.LinearCrossEntropyLoss].

    Examples:
        >>> import torch
        >>> from multiloss.torch.linear import LinearFocalLoss
        >>> head = LinearFocalLoss(8, 100, gamma=2.0, alpha=0.25)
        >>> head
        LinearFocalLoss(in_features=8, num_classes=100, bias=True, gamma=2.0, alpha=0.25 (class 0: 0.75, others: 0.25), ignore_index=-100, reduction='mean', label_smoothing=0.0)
        >>> head(torch.randn(5, 8), torch.randint(0, 100, (5,))).backward()
    """  # noqa: E501

    def __init__(
        self,
        in_features: int | None = None,
        num_classes: int | None = None,
        *,
        bias: bool = True,
        gamma: float = 2.0,
        alpha: float | Weights = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.gamma = hyper.check_number("gamma", gamma)  # numbers only: a fused head
        self._set_alpha(alpha)
        self._set_options(
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            axis=None,
        )
        self.chunk_size = _checks.check_chunk_size(chunk_size)
        self._set_projection(in_features, num_classes, bias, device, dtype)

    def forward(
        self,
        input: Tensor,
        *tensors: Tensor,
        linear_bias: Tensor | None = None,
        normalizer: Normalizer = None,
    ) -> Tensor:
        linear_weight, linear_bias, target = self._projection(tensors, linear_bias)
        return linear_focal_loss(
            input,
            linear_weight,
            target,
            linear_bias=linear_bias,
            gamma=self.gamma,  # type: ignore[arg-type]  # a float (checked above)
            alpha=self.alpha,
            normalizer=normalizer,
            **self._linear_options(),
        )

    def extra_repr(self) -> str:
        text = self._describe_projection()
        text += f"gamma={self.gamma}, alpha={self._describe_alpha()}, "
        return text + self._repr_tail()


refuse_torchscript(linear_cross_entropy, linear_focal_loss, linear_poly_loss)

__all__ = [
    "LinearCrossEntropyLoss",
    "LinearFocalLoss",
    "linear_cross_entropy",
    "linear_focal_loss",
    "linear_poly_loss",
]
