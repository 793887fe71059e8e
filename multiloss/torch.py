r"""PyTorch adapter: functional losses and ``nn.Module`` criteria over the closed-form core.

The four losses of :mod:`multiloss` for ``torch.Tensor`` inputs, with autograd:

* functional: :func:`cross_entropy`, :func:`focal_loss`, :func:`binary_cross_entropy`,
  :func:`sigmoid_focal_loss` (class axis 1, the ``(N, C, d1..dk)`` convention of
  ``torch.nn.functional.cross_entropy``; an unbatched ``(C,)`` input works too);
* modules: :class:`CrossEntropyLoss`, :class:`FocalLoss`, :class:`BCEWithLogitsLoss`,
  :class:`SigmoidFocalLoss`, with the argument names of ``nn.CrossEntropyLoss`` and
  ``nn.BCEWithLogitsLoss``; ``weight``, a per-class ``alpha`` and ``pos_weight`` are
  buffers (they follow ``.to(device, dtype)``, live in ``state_dict``, pickle and deepcopy).

The modules call the functional API, which calls :mod:`multiloss._core`: no loss formula
is written here, only type and autograd glue.

How it works, and the decisions behind it:

* **Autograd.** Each call is one ``torch.autograd.Function`` (``setup_context`` style, so
  ``torch.func`` and ``torch.compile`` accept it) whose backward is the core's closed-form
  vector-Jacobian product. Between forward and backward it keeps the logits (in their own
  dtype), the target, the class weights and, for the softmax losses, two O(N) residuals
  (row max and log-sum-exp): nothing of size N×C besides the logits.
* **Double backward.** The backward is made of differentiable torch operations, so
  ``create_graph=True`` (Hessian-vector products, gradient penalties, ``gradgradcheck``)
  works. The saved residuals depend on the logits; when a graph is being built in
  backward they are recomputed from the logits (one more forward pass) instead of being
  used as constants, which would make the second derivative wrong.
* **Dtypes.** float16 and bfloat16 logits are computed in float32 inside; the loss comes
  back in the input dtype, the gradient in the logits' dtype. A ``"mean"`` is formed in
  float32, so it stays finite in float16 when the sum passes 65504. Under
  ``torch.autocast`` the same holds (the loss is not listed by autocast; it takes whatever
  dtype the logits arrive in).
* **No host synchronisation on the hot path.** Shape, dtype and hyperparameter checks
  are static and always run. The *value* checks (class indices in range, weights
  non-negative and not NaN) need the data, which on an accelerator means a device-to-host
  copy, so they run only when every tensor is on the CPU and no tracing is going on (not
  under ``torch.compile``/``torch.export``, ``torch.jit`` tracing, ``torch.func``
  transforms, fake or meta tensors). There they raise the same ``ValueError`` as
  :mod:`multiloss.numpy`. Elsewhere nothing is checked and an out-of-range class index
  makes its element's loss (and the mean) NaN, never a silent clamp to a valid class; a
  negative weight is used as given. A module's own weights are checked once, at
  construction.
* **What gets a gradient.** The closed form differentiates the logits only. If a
  probability target, ``weight``, ``alpha`` or ``pos_weight`` tensor requires grad while
  grad mode is on, the call raises ``NotImplementedError`` (detach it first) rather than
  return a silently wrong gradient.
* **Transforms.** ``torch.func.vmap`` (the batching rule is generated), ``torch.func.grad``
  / ``vjp`` and ``torch.compile(fullgraph=True)`` work; forward-mode AD
  (``torch.func.jvp``, ``jacfwd``) is not provided.

>>> import torch
>>> from multiloss.torch import FocalLoss, cross_entropy
>>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
>>> target = torch.tensor([0, 2])
>>> loss = cross_entropy(logits, target)
>>> bool(torch.isclose(loss, torch.nn.functional.cross_entropy(logits, target)))
True
>>> FocalLoss(gamma=2.0, alpha=[0.25, 0.5, 0.25])(logits, target).backward()
>>> logits.grad.shape
torch.Size([2, 3])
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from array_api_compat import array_namespace
from torch import Tensor, nn

from . import _core
from ._core import _checks
from ._core.sigmoid import SigmoidConfig, SigmoidOperands, sigmoid_forward, sigmoid_vjp
from ._core.softmax import (
    SoftmaxConfig,
    SoftmaxOperands,
    SoftmaxResiduals,
    softmax_forward,
    softmax_vjp,
)

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "SigmoidFocalLoss",
    "binary_cross_entropy",
    "cross_entropy",
    "focal_loss",
    "sigmoid_focal_loss",
]

Weights = Tensor | Sequence[float] | None

_XP = array_namespace(torch.empty(0))
"""The array-API namespace of torch tensors (``array_api_compat.torch``)."""


# ---------------------------------------------------------------------------------------
# Autograd glue
# ---------------------------------------------------------------------------------------


class _Spec(NamedTuple):
    """The static part of one call: the core's config and the dtypes the core works in."""

    config: SoftmaxConfig | SigmoidConfig
    compute_dtype: torch.dtype
    target_dtype: torch.dtype


def _cast(tensor: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if tensor is None else tensor.to(dtype)


class _SoftmaxLoss(torch.autograd.Function):
    """Softmax cross-entropy / focal loss with the core's closed-form backward.

    Inputs: the spec, the logits and target as the user gave them (saved for backward),
    the class weights in the compute dtype, and the logits and target already converted
    by the core's ``prepare`` step (used by forward only, so they are not converted twice).
    Outputs: the loss and the residuals, which are not differentiable.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: _Spec,
        logits: Tensor,
        target: Tensor,
        class_weight: Tensor | None,
        compute_logits: Tensor,
        compute_target: Tensor,
    ) -> tuple[Tensor, ...]:
        operands = SoftmaxOperands(compute_logits, compute_target, class_weight)
        loss, residuals = softmax_forward(_XP, spec.config, operands)
        return (loss, *residuals)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        spec, logits, target, class_weight, _, _ = inputs
        residuals = output[1:]
        ctx.mark_non_differentiable(*residuals)
        ctx.save_for_backward(logits, target, class_weight, *residuals)
        ctx.spec = spec

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, *_: Any) -> tuple[Tensor | None, ...]:
        if not ctx.needs_input_grad[1]:
            return (None,) * 6
        spec: _Spec = ctx.spec
        logits, target, class_weight, *saved = ctx.saved_tensors
        operands = SoftmaxOperands(
            logits.to(spec.compute_dtype), target.to(spec.target_dtype), class_weight
        )
        if torch.is_grad_enabled():
            # Building a graph (create_graph=True): the residuals must carry their own
            # dependence on the logits, so they are recomputed here, differentiably.
            residuals = softmax_forward(_XP, spec.config, operands)[1]
        else:
            residuals = SoftmaxResiduals(*saved)
        grad = softmax_vjp(_XP, spec.config, operands, residuals, grad_loss)
        return None, grad.to(logits.dtype), None, None, None, None


class _SigmoidLoss(torch.autograd.Function):
    """Binary cross-entropy / sigmoid focal loss with the core's closed-form backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: _Spec,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
        pos_weight: Tensor | None,
        compute_logits: Tensor,
        compute_target: Tensor,
    ) -> Tensor:
        operands = SigmoidOperands(compute_logits, compute_target, weight, pos_weight)
        return sigmoid_forward(_XP, spec.config, operands)[0]

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        spec, logits, target, weight, pos_weight, _, _ = inputs
        ctx.save_for_backward(logits, target, weight, pos_weight)
        ctx.spec = spec

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        if not ctx.needs_input_grad[1]:
            return (None,) * 7
        spec: _Spec = ctx.spec
        logits, target, weight, pos_weight = ctx.saved_tensors
        operands = SigmoidOperands(
            logits.to(spec.compute_dtype), target.to(spec.target_dtype), weight, pos_weight
        )
        grad = sigmoid_vjp(_XP, spec.config, operands, None, grad_loss)
        return None, grad.to(logits.dtype), None, None, None, None, None


# ---------------------------------------------------------------------------------------
# Validation policy
# ---------------------------------------------------------------------------------------


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def _is_concrete_cpu(tensor: Tensor) -> bool:
    """A plain CPU tensor whose values can be read without a device sync or a trace."""
    if tensor.device.type != "cpu":
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(tensor):
        return False
    return not isinstance(tensor, torch._subclasses.FakeTensor)


def _values_checkable(*tensors: object) -> bool:
    """Whether the value checks (DESIGN.md section 6) run: CPU tensors, nothing tracing."""
    if _is_tracing():
        return False
    return all(_is_concrete_cpu(t) for t in tensors if isinstance(t, Tensor))


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor for multiloss.torch; got {type(value).__module__}."
            f"{type(value).__name__}"
        )


def _refuse_grad(loss_name: str, **tensors: Tensor | None) -> None:
    """The closed form differentiates the logits only; refuse to drop another gradient."""
    if not torch.is_grad_enabled():
        return
    for name, tensor in tensors.items():
        if tensor is not None and tensor.requires_grad:
            raise NotImplementedError(
                f"{loss_name}: {name} requires grad, but the closed-form backward gives the "
                f"gradient with respect to the logits only; pass {name}.detach()"
            )


# ---------------------------------------------------------------------------------------
# Functional API
# ---------------------------------------------------------------------------------------


def _softmax_loss(name: str, logits: Tensor, target: Tensor, options: dict[str, Any]) -> Tensor:
    _check_tensor("logits", logits)
    _check_tensor("target", target)
    if options["axis"] is None:
        # PyTorch's convention: classes on axis 1 of (N, C, d1..dk), on axis 0 of (C,).
        options["axis"] = 0 if logits.ndim == 1 else 1
    weight_name = "weight" if name == "cross_entropy" else "alpha"
    check_values = _values_checkable(logits, target, options[weight_name])
    _, config, operands = _core.PREPARE[name](
        logits, target, check_values=check_values, **options
    )
    soft_target = operands.target if not config.hard_target else None
    _refuse_grad(name, target=soft_target, **{weight_name: operands.class_weight})
    spec = _Spec(config, operands.logits.dtype, operands.target.dtype)
    loss, *_ = _SoftmaxLoss.apply(
        spec,
        logits,
        target,
        operands.class_weight,
        operands.logits.detach(),
        operands.target.detach(),
    )
    return loss.to(logits.dtype)


def _sigmoid_loss(name: str, logits: Tensor, target: Tensor, options: dict[str, Any]) -> Tensor:
    _check_tensor("logits", logits)
    _check_tensor("target", target)
    check_values = _values_checkable(
        logits, target, options.get("weight"), options.get("pos_weight")
    )
    _, config, operands = _core.PREPARE[name](
        logits, target, check_values=check_values, **options
    )
    _refuse_grad(
        name, target=operands.target, weight=operands.weight, pos_weight=operands.pos_weight
    )
    spec = _Spec(config, operands.logits.dtype, operands.target.dtype)
    loss = _SigmoidLoss.apply(
        spec,
        logits,
        target,
        operands.weight,
        operands.pos_weight,
        operands.logits.detach(),
        operands.target.detach(),
    )
    return loss.to(logits.dtype)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softmax cross-entropy, with the semantics of ``torch.nn.functional.cross_entropy``.

    Per element, with ℓ = log_softmax(z) along `axis` and q the target distribution (the
    one-hot of a class index, or the given probabilities; label smoothing ε makes it
    ``(1-ε)·q + ε/C``):

    .. math:: L = -\sum_k q_k \, w_k \, \log p_k

    Args:
        logits: ``(N, C, d1..dk)`` or unbatched ``(C,)`` unnormalised scores, any floating
            dtype (16-bit is computed in float32 and returned in its own dtype).
        target: class indices of any integer dtype, shaped like `logits` without the class
            axis, or class probabilities (floating, shaped like `logits`).
        axis: the class axis; None (the default) follows PyTorch: 1 for ``(N, C, ...)``,
            0 for an unbatched ``(C,)`` input.
        weight: per-class weights w, a length-C tensor or sequence; None weights every
            class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted.
        reduction: ``"mean"`` (Σ w_{y_i} ℓ_i / Σ w_{y_i} over counted elements for class
            indices, divided by the element count for probabilities), ``"sum"`` or
            ``"none"`` (per element, class axis removed). A mean over nothing is 0.0 with
            a zero gradient, where PyTorch gives NaN.
        label_smoothing: ε in [0, 1].

    Example:

    >>> import torch
    >>> from multiloss.torch import cross_entropy
    >>> logits = torch.zeros(1, 2)
    >>> round(cross_entropy(logits, torch.tensor([1])).item(), 6)  # log 2
    0.693147
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _softmax_loss("cross_entropy", logits, target, options)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    .. math:: L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k

    For a class-index target t this is :math:`-\alpha_t (1-p_t)^\gamma \log p_t`. γ = 0
    with no alpha is exactly :func:`cross_entropy`. The gradient is the closed form
    p_k·Σ_j c_j A_j - c_k A_k with A = u^γ(1 - γ p ℓ/u), u = 1 - p: no negative power of
    u, so it is finite for 0 < γ < 1 at p_t = 1.

    Args:
        logits, target, axis, ignore_index, label_smoothing: as in :func:`cross_entropy`.
        gamma: focusing parameter γ ≥ 0.
        alpha: None (no weighting); C per-class weights (a tensor or sequence); or a scalar
            α in [0, 1] that weights class 0 (background) by 1-α and every other class by
            α (RetinaNet, kornia, MONAI).
        reduction: ``"mean"`` divides by the number of counted (not ignored) elements, not
            by Σα; ``"sum"``; ``"none"``. A mean over nothing is 0.0.

    Example:

    >>> import math, torch
    >>> from multiloss.torch import focal_loss
    >>> logits = torch.log(torch.tensor([[0.9, 0.1]], dtype=torch.float64))
    >>> loss = focal_loss(logits, torch.tensor([0]), gamma=2.0)
    >>> math.isclose(loss.item(), -(0.1**2) * math.log(0.9))
    True
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    return _softmax_loss("focal_loss", logits, target, options)


def binary_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid cross-entropy on logits, with the semantics of ``nn.BCEWithLogitsLoss``.

    .. math:: L = -w \left[ p_w \, y \log \sigma(x) + (1 - y) \log (1 - \sigma(x)) \right]

    computed as ``w·(pw·y·softplus(-x) + (1-y)·softplus(x))``, finite for any finite logit.

    Args:
        logits: any shape.
        target: the logits' shape; probabilities in [0, 1] (integer or bool 0/1 accepted).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.

    Example:

    >>> import torch
    >>> from multiloss.torch import binary_cross_entropy
    >>> round(binary_cross_entropy(torch.zeros(1), torch.ones(1)).item(), 6)  # log 2
    0.693147
    """
    options = {"weight": weight, "pos_weight": pos_weight, "reduction": reduction}
    return _sigmoid_loss("binary_cross_entropy", logits, target, options)


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al. 2017), as ``torchvision.ops.sigmoid_focal_loss``.

    .. math:: L = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \quad
              p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)

    Args:
        logits: any shape (e.g. ``(N, C)`` multi-label scores or ``(N, A, C)`` anchors).
        target: the logits' shape, in [0, 1].
        alpha: α in [0, 1], or None for no α_t weighting.
        gamma: focusing parameter γ ≥ 0.
        reduction: ``"mean"`` (over all elements, torchvision's default is ``"none"``),
            ``"sum"`` or ``"none"``.

    Example:

    >>> import torch
    >>> from multiloss.torch import sigmoid_focal_loss
    >>> round(sigmoid_focal_loss(torch.zeros(1), torch.ones(1), alpha=None).item(), 6)
    0.173287
    """
    options = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
    return _sigmoid_loss("sigmoid_focal_loss", logits, target, options)


# ---------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------


def _as_buffer(name: str, value: Weights, *, class_vector: bool) -> Tensor | None:
    """A weight argument of a module as a floating tensor, checked once (it is a constant)."""
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
            tensor = torch.tensor(value, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{name} must be a sequence of numbers or a tensor; got {value!r}"
            ) from error
    if class_vector and tensor.ndim != 1:
        raise ValueError(
            f"{name} must have one entry per class, a 1-d shape; got shape {tuple(tensor.shape)}"
        )
    if tensor.device.type != "meta":
        _checks.check_weight_values(_XP, name, tensor)
    return tensor


def _describe(tensor: Tensor | None) -> str:
    """A short text for ``extra_repr``: the values of a small tensor, else its shape."""
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


class CrossEntropyLoss(nn.Module):
    r"""Softmax cross-entropy criterion, a drop-in for ``torch.nn.CrossEntropyLoss``.

    ``L = -Σ_k q_k w_k log p_k`` per element; see :func:`cross_entropy` for every option.
    The one difference from PyTorch: a ``"mean"`` over zero counted elements is 0.0 with a
    zero gradient instead of NaN.

    Args:
        weight: per-class weights (length C), kept as a buffer.
        ignore_index, reduction, label_smoothing, axis: as in :func:`cross_entropy`
            (keyword-only; ``size_average`` and ``reduce``, long deprecated in PyTorch,
            are not accepted).

    Example:

    >>> import torch
    >>> from multiloss.torch import CrossEntropyLoss
    >>> criterion = CrossEntropyLoss(weight=[1.0, 2.0, 1.0], ignore_index=255)
    >>> criterion
    CrossEntropyLoss(weight=[1.0, 2.0, 1.0], ignore_index=255, reduction='mean', label_smoothing=0.0)
    >>> logits = torch.randn(4, 3, 8, 8, requires_grad=True)
    >>> criterion(logits, torch.randint(0, 3, (4, 8, 8))).backward()
    """  # noqa: E501

    weight: Tensor | None

    def __init__(
        self,
        weight: Weights = None,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        axis: int | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _as_buffer("weight", weight, class_vector=True))
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.reduction = _checks.check_reduction(reduction)
        self.label_smoothing = _checks.check_real_number(
            "label_smoothing", label_smoothing, low=0.0, high=1.0
        )
        self.axis = _check_axis(axis)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            axis=self.axis,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        text = "" if self.weight is None else f"weight={_describe(self.weight)}, "
        text += (
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}"
        )
        return text + ("" if self.axis is None else f", axis={self.axis}")


class FocalLoss(nn.Module):
    r"""Softmax focal loss criterion (Lin et al., "Focal Loss for Dense Object Detection").

    ``L = -Σ_k q_k α_k (1 - p_k)^γ log p_k`` per element, ``-α_t (1-p_t)^γ log p_t`` for a
    class index; see :func:`focal_loss` for every option.

    Args:
        gamma: focusing parameter γ ≥ 0.
        alpha: None; C per-class weights (kept as a buffer); or a scalar α in [0, 1]
            (class 0 weighted by 1-α, the others by α), kept as a float.
        ignore_index, reduction, label_smoothing, axis: as in :func:`focal_loss`.

    Example:

    >>> import torch
    >>> from multiloss.torch import FocalLoss
    >>> criterion = FocalLoss(gamma=2.0, alpha=0.25, ignore_index=255)
    >>> criterion
    FocalLoss(gamma=2.0, alpha=0.25, ignore_index=255, reduction='mean', label_smoothing=0.0)
    >>> logits = torch.randn(4, 3, 8, 8, requires_grad=True)
    >>> criterion(logits, torch.randint(0, 3, (4, 8, 8))).backward()
    """

    alpha: Tensor | float | None

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | Weights = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        axis: int | None = None,
    ) -> None:
        super().__init__()
        self.gamma = _checks.check_real_number("gamma", gamma, low=0.0)
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            self.alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
        else:
            self.register_buffer("alpha", _as_buffer("alpha", alpha, class_vector=True))
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        self.reduction = _checks.check_reduction(reduction)
        self.label_smoothing = _checks.check_real_number(
            "label_smoothing", label_smoothing, low=0.0, high=1.0
        )
        self.axis = _check_axis(axis)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            input,
            target,
            axis=self.axis,
            gamma=self.gamma,
            alpha=self.alpha,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        alpha = self.alpha if isinstance(self.alpha, float) else _describe(self.alpha)
        text = (
            f"gamma={self.gamma}, alpha={alpha}, ignore_index={self.ignore_index}, "
            f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"
        )
        return text + ("" if self.axis is None else f", axis={self.axis}")


class BCEWithLogitsLoss(nn.Module):
    r"""Sigmoid cross-entropy criterion, a drop-in for ``torch.nn.BCEWithLogitsLoss``.

    ``L = -w [pw·y log σ(x) + (1-y) log(1-σ(x))]`` per element; see
    :func:`binary_cross_entropy`.

    Args:
        weight: per-element weight broadcast to the input's shape, kept as a buffer.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (keyword-only).
        pos_weight: weight of the positive term, broadcast to the input's shape (a
            length-C vector weights the last axis), kept as a buffer.

    Example:

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

    def __init__(
        self,
        weight: Weights = None,
        *,
        reduction: str = "mean",
        pos_weight: Weights = None,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _as_buffer("weight", weight, class_vector=False))
        self.register_buffer(
            "pos_weight", _as_buffer("pos_weight", pos_weight, class_vector=False)
        )
        self.reduction = _checks.check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(
            input, target, weight=self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        text = "" if self.weight is None else f"weight={_describe(self.weight)}, "
        text += f"reduction={self.reduction!r}"
        if self.pos_weight is not None:
            text += f", pos_weight={_describe(self.pos_weight)}"
        return text


class SigmoidFocalLoss(nn.Module):
    r"""Sigmoid focal loss criterion (Lin et al. 2017), as ``torchvision.ops.sigmoid_focal_loss``.

    ``L = α_t (1 - p_t)^γ BCE(x, y)`` per element; see :func:`sigmoid_focal_loss`.

    Args:
        alpha: α in [0, 1], or None for no α_t weighting.
        gamma: focusing parameter γ ≥ 0.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Example:

    >>> import torch
    >>> from multiloss.torch import SigmoidFocalLoss
    >>> criterion = SigmoidFocalLoss(alpha=0.25, gamma=2.0)
    >>> criterion
    SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction='mean')
    >>> logits = torch.randn(4, 5, requires_grad=True)
    >>> criterion(logits, torch.randint(0, 2, (4, 5)).float()).backward()
    """

    def __init__(
        self, *, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.alpha = (
            None
            if alpha is None
            else _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
        )
        self.gamma = _checks.check_real_number("gamma", gamma, low=0.0)
        self.reduction = _checks.check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sigmoid_focal_loss(
            input, target, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
