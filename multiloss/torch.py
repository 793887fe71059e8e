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
  dtype), the target, the class weights and, for the softmax losses, a few O(N)
  residuals (for class indices: the target's log-probability and coefficient, and the row
  max and log-sum-exp unless the fused pass below skipped them) and the 0-d mean
  denominator: nothing of size N×C besides the logits. Backward recomputes the softmax
  from the logits (one exp per element). Computing
  the gradient in the forward pass and keeping it instead of the logits was not taken:
  it would make the backward non-differentiable.
* **Double backward.** With ``create_graph=True`` (Hessian-vector products, gradient
  penalties, ``gradgradcheck``, ``torch.func.hessian``) the gradient is itself a
  differentiable ``Function`` of the logits and the incoming cotangent, whose backward is
  the core's closed-form Hessian-vector product (``multiloss._core.second_order``). The
  residuals saved by forward are not reused there, since they depend on the logits: the
  gradient is recomputed from the logits. The closed form keeps the second derivative
  finite where differentiating the first one automatically would not (0 < γ < 1 at
  p_t = 1).
* **Forward mode.** ``torch.func.jvp``, ``jacfwd``, ``hessian`` and
  ``torch.autograd.forward_ad`` work through a ``jvp`` built from the same closed forms.
  ``torch.compile`` cannot trace a ``Function`` that defines ``jvp``, so under
  compilation a twin ``Function`` without it is used (compiled code has no forward mode).
* **Transforms and compilation.** ``torch.func.vmap`` (generated batching rule),
  ``torch.func.grad``/``vjp``, ``torch.compile(fullgraph=True)`` and ``torch.export``
  work. A float hyperparameter specialises a compiled graph to its value, as
  ``F.cross_entropy``'s ``label_smoothing`` does (a new value compiles once more); with
  ``dynamic=True`` the batch size and the class count stay symbolic. The core finds the
  namespace of a tensor by a registered look-up, so compiling traces none of
  ``array_api_compat``'s cached type checks (no warnings). TorchScript
  (``torch.jit.script``/``trace``) is refused with an error that points to
  ``torch.compile``.
* **Speed.** The core's arithmetic runs on ``array_api_compat.torch``, plus native
  passes offered to the core for the class-index softmax losses, used in eager mode when
  no graph is recorded and no ``torch.func`` transform is active. They work a cache-sized
  slab (about 1 MiB) at a time, so no temporary of the logits' size is made: forward
  gathers the target's log-probability from PyTorch's fused ``log_softmax`` kernel,
  backward writes ``softmax`` times the row scale straight into the gradient and
  scatters the target entries. Where those kernels are slow (the class axis last with
  fewer than 32 classes, or an inner class axis with short trailing dimensions) the same
  slabs go through separate in-place element-wise passes instead, which give the generic
  path's numbers exactly; the fused kernels agree with it to a few ulps. 16-bit logits
  are converted to float32 slab by slab there, never as a whole. The sigmoid losses run
  slab by slab through the core's generic operations. Measured figures:
  ``docs/benchmarks.md``.
* **Dtypes.** float16 and bfloat16 logits are computed in float32 inside; the loss comes
  back in the input dtype, the gradient in the logits' dtype. A ``"mean"`` is formed in
  float32, so it stays finite in float16 when the sum passes 65504. Under
  ``torch.autocast`` the same holds (the loss is not on autocast's lists; it takes the
  dtype the logits arrive in, and is computed in float32 inside whatever that is).
* **No host synchronisation on the hot path.** Shape, dtype and hyperparameter checks
  are static and always run; nothing reads tensor data to decide what to compute. The
  *value* checks (class indices in range, weights non-negative and finite) need the
  data, which on an accelerator means a device-to-host copy, so they run only when every
  tensor is on the CPU and nothing is tracing (not under ``torch.compile``/
  ``torch.export``, ``torch.jit``, ``torch.func`` transforms, fake or meta tensors).
  There they raise the same ``ValueError`` as :mod:`multiloss.numpy`. Elsewhere nothing
  is checked: an out-of-range class index makes its element's loss (and so the mean)
  NaN, never a silent clamp to a valid class, and a negative weight is used as given. A
  module's own weights are checked once, at construction.
* **Devices.** Nothing is moved: constants and weights given as sequences are created on
  the logits' device; module buffers follow ``.to(device)``.
* **What gets a gradient.** The logits, to second order; and to first order a probability
  or sigmoid target, ``weight``, a per-class ``alpha`` tensor and ``pos_weight``
  (closed forms in ``multiloss._core.operands``; backward and forward mode). Second
  derivatives through those are refused with ``NotImplementedError`` (detach them for
  ``create_graph=True``) rather than returned without their terms.

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

import inspect
import math
import numbers
import types
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._backends import missing_backend

try:
    import torch
except ImportError as error:
    raise missing_backend(__name__, "PyTorch", "torch") from error

from array_api_compat import array_namespace
from torch import Tensor, nn

from . import _core
from ._core import _checks, second_order
from ._core._reduce import per_element_cotangent, reduce
from ._core.operands import operand_jvp, operand_vjp
from ._core.sigmoid import SigmoidConfig, SigmoidOperands, sigmoid_forward, sigmoid_vjp
from ._core.sigmoid import _denominator as sigmoid_denominator
from ._core.softmax import SoftmaxConfig, SoftmaxOperands, SoftmaxResiduals

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

for _tensor_type in (Tensor, nn.Parameter):
    _checks.register_namespace(_tensor_type, _XP)


_CHUNK_ELEMENTS = 1 << 18
"""Elements per chunk of the native passes: 1 MiB of float32, which stays in cache."""


def _chunks(axis: int, *tensors: Tensor) -> Any:
    """The tensors split alike into slabs of about `_CHUNK_ELEMENTS` elements along a
    dimension other than the class axis (all dimensions of size 1 or the logits' size)."""
    first = tensors[0]
    dim = 1 if axis == 0 else 0
    if first.ndim < 2 or first.numel() <= _CHUNK_ELEMENTS:
        return [tensors]
    per_slice = first.numel() // max(first.shape[dim], 1)
    step = max(1, _CHUNK_ELEMENTS // max(per_slice, 1))
    return zip(*(t.split(step, dim=dim) for t in tensors), strict=True)


def _compute_dtype(tensor: Tensor) -> torch.dtype:
    """float32 for 16-bit floating tensors, the tensor's own dtype otherwise."""
    return _checks.compute_dtype(_XP, tensor.dtype)


def _native_takes_16_bit(config: SoftmaxConfig | SigmoidConfig, logits: Tensor) -> bool:
    """Whether the native passes take the logits in their own dtype and convert them a
    slab at a time: the hard-target softmax passes (the core reads the logits through
    them alone) and split sigmoid calls (:func:`_sigmoid_slabs` converts each slab)."""
    if isinstance(config, SoftmaxConfig):
        return config.hard_target and config.label_smoothing == 0
    return logits.ndim >= 2 and logits.numel() > _CHUNK_ELEMENTS


class _Workspace:
    """One slab-sized buffer reused by every slab of a pass (the first slab is the
    largest): the pass allocates it once instead of a temporary per slab, which on the
    CPU can mean fresh, page-faulted memory each time, depending on the allocator's
    state."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.buffer: Tensor | None = None

    def like(self, slab: Tensor) -> Tensor:
        """A buffer of `slab`'s shape in the workspace's dtype (a view of the one buffer)."""
        if self.buffer is None:
            self.buffer = torch.empty(slab.shape, dtype=self.dtype, device=slab.device)
        return self.buffer[tuple(slice(0, size) for size in slab.shape)]


def _native_max_and_log_sum_exp(logits: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """The core's ``_max_and_log_sum_exp`` (same operations, same numbers), a cache-sized
    slab at a time: no temporary of the logits' size."""
    row_max = torch.amax(logits, dim=axis, keepdim=True).to(_compute_dtype(logits))
    sum_exp = torch.empty_like(row_max)
    workspace = _Workspace(row_max.dtype)
    for z, m, out in _chunks(axis, logits, row_max, sum_exp):
        shifted = torch.sub(z, m, out=workspace.like(z)).exp_()
        torch.sum(shifted, dim=axis, keepdim=True, out=out)
    return row_max, sum_exp.log_()


def _fused_softmax_pays(logits: Tensor, axis: int) -> bool:
    """Whether PyTorch's fused (log-)softmax kernels beat separate element-wise passes.

    They need fewer passes over each slab, but with the class axis last they work row by
    row and are slow on short rows (measured: 5x slower at 10 classes, 0.6x from 32 on);
    with the class axis inner (``(N, C, H, W)``) they vectorise along the trailing
    dimensions, which pays once those hold 64 or more elements.
    """
    axis = axis % logits.ndim
    if axis == logits.ndim - 1:
        return logits.shape[axis] >= 32
    return math.prod(logits.shape[axis + 1 :]) >= 64


def _native_target_log_softmax(
    logits: Tensor, index: Tensor, axis: int
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """The core's ``_target_log_softmax``: the row max m, the log-sum-exp L and the
    target's log-probability (z_t - m) - L, a cache-sized slab at a time.

    Where it pays (:func:`_fused_softmax_pays`) each slab goes through PyTorch's fused
    log-softmax kernel, and m and L are not formed (None): the native backward pass does
    not read them, and the core recomputes them where another one does. Elsewhere the
    core's operations are done in place (same numbers)."""
    dtype = _compute_dtype(logits)
    if not _fused_softmax_pays(logits, axis):
        row_max, log_sum_exp = _native_max_and_log_sum_exp(logits, axis)
        target_logit = torch.gather(logits, axis, index).to(dtype)
        return row_max, log_sum_exp, target_logit.sub_(row_max).sub_(log_sum_exp)
    target_log_p = torch.empty(index.shape, dtype=dtype, device=logits.device)
    workspace = _Workspace(dtype)
    for z, i, log_p_t in _chunks(axis, logits, index, target_log_p):
        log_p = torch.log_softmax(z, axis, dtype=dtype, out=workspace.like(z))
        torch.gather(log_p, axis, i, out=log_p_t)
    return None, None, target_log_p


def _native_scaled_softmax_with_target(
    logits: Tensor,
    row_max: Tensor,
    log_sum_exp: Tensor,
    index: Tensor,
    target_value: Tensor,
    scale: Tensor,
    axis: int,
) -> Tensor:
    """The core's ``_scaled_softmax_with_target`` written straight into the gradient (in
    the logits' dtype: 16-bit logits are computed in float32 slab by slab), a
    cache-sized slab at a time: where it pays by PyTorch's fused softmax kernel (which
    recomputes the row max and sum in cache instead of reading `row_max` and
    `log_sum_exp`), elsewhere by the core's operations done in place (same numbers)."""
    gradient = torch.empty_like(logits)
    dtype = _compute_dtype(logits)
    scale = torch.broadcast_to(scale, index.shape)
    scaled_target = target_value * scale
    fused = _fused_softmax_pays(logits, axis)
    # the fused kernel does not read row_max and log_sum_exp (None after a fused forward)
    shift = () if fused else (row_max, log_sum_exp)
    workspace = _Workspace(dtype)
    for z, s, i, v, out, *m_lse in _chunks(
        axis, logits, scale, index, scaled_target, gradient, *shift
    ):
        # 16-bit logits: the softmax in a float32 slab, rounded once into the gradient by
        # the product with the row scale
        work = out if dtype == out.dtype else workspace.like(out)
        if fused:
            torch.softmax(z, axis, dtype=dtype, out=work)
        else:
            m, lse = m_lse
            torch.sub(z, m, out=work).sub_(lse).exp_()
        torch.mul(work, s, out=out).scatter_(axis, i, v.to(out.dtype))
    return gradient


def _native_take_along_axis(x: Tensor, indices: Tensor, /, *, axis: int = -1) -> Tensor:
    """``take_along_axis`` as one ``torch.gather`` where the standard's broadcasting and
    negative indices are not needed (the core gathers one in-range class per element)."""
    same_shape = indices.ndim == x.ndim and all(
        size == x.shape[dim] for dim, size in enumerate(indices.shape) if dim != axis % x.ndim
    )
    if not same_shape:
        return _XP.take_along_axis(x, indices, axis=axis)
    return torch.gather(x, axis, indices)


def _broadcast_to(x: Tensor, /, shape: tuple[int, ...]) -> Tensor:
    """``broadcast_to`` as ``Tensor.expand`` (the same view), which the legacy vmap of
    ``torch.autograd.grad(..., is_grads_batched=True)`` can batch."""
    return x.expand(shape)


def _clip(x: Tensor, /, min: Any = None, max: Any = None) -> Tensor:
    """``clip`` as ``torch.clamp`` with Python-number bounds: array_api_compat's reads its
    bounds with ``math.isnan``, which ``torch.compile`` cannot trace for a symbolic class
    count (``dynamic=True``)."""
    return torch.clamp(x, min=min, max=max)


def _asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Tensor:
    """``asarray``; a Python number as ``torch.full``, which keeps a symbolic size (the mean's
    element count under ``torch.compile(dynamic=True)``) symbolic instead of specialising
    the graph to it."""
    if isinstance(obj, (numbers.Real, torch.SymInt, torch.SymFloat)) and not isinstance(obj, bool):
        return torch.full((), obj, dtype=dtype, device=device)
    return _XP.asarray(obj, dtype=dtype, device=device, copy=copy)


def _namespace_with(name: str, **functions: Any) -> types.ModuleType:
    """``array_api_compat.torch`` with some functions replaced or added."""
    namespace = types.ModuleType(f"{__name__}.{name}", _XP.__doc__)
    namespace.__dict__.update(
        (key, value)
        for key, value in vars(_XP).items()
        if not key.startswith("__") or key == "__array_namespace_info__"
    )
    namespace.__dict__.update(functions)
    return namespace


_XP_GENERIC = _namespace_with(
    "_generic_namespace",
    asarray=_asarray,
    broadcast_to=_broadcast_to,
    clip=_clip,
    take_along_axis=_native_take_along_axis,
)
"""What the core computes with in general."""

_XP_NATIVE = _namespace_with(
    "_native_namespace",
    asarray=_asarray,
    broadcast_to=_broadcast_to,
    clip=_clip,
    take_along_axis=_native_take_along_axis,
    multiloss_max_and_log_sum_exp=_native_max_and_log_sum_exp,
    multiloss_target_log_softmax=_native_target_log_softmax,
    multiloss_scaled_softmax_with_target=_native_scaled_softmax_with_target,
)
"""The same plus the core's optional native fast paths (in-place work on temporaries)."""


def _namespace(*tensors: Tensor | None) -> Any:
    """The namespace for the core's arithmetic: with the native in-place fast paths in
    plain eager execution without a graph being recorded; the plain one where in-place
    work on temporaries is unsafe or pointless (autograd recording, ``torch.func``
    transforms, ``torch.compile``, which fuses the plain operations itself)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return _XP_GENERIC
    if any(_is_functorch(t) for t in tensors if t is not None):
        return _XP_GENERIC
    return _XP_NATIVE


def _sigmoid_slabs(prepared: Any) -> list[SigmoidOperands] | None:
    """A large element-wise (sigmoid) call on the native namespace, split into slabs of
    about `_CHUNK_ELEMENTS` elements along dim 0 (weights broadcast first): each slab's
    temporaries stay in cache instead of being fresh, page-faulted memory. None when the
    call is not split (softmax losses, small or 1-d inputs, the generic namespace)."""
    xp, config, operands = prepared
    logits = operands.logits
    if not isinstance(config, SigmoidConfig) or xp is not _XP_NATIVE:
        return None
    if logits.ndim < 2 or logits.numel() <= _CHUNK_ELEMENTS:
        return None
    full = [None if t is None else t.expand(logits.shape) for t in operands]
    slabs = []
    for parts in _chunks(-1, *(t for t in full if t is not None)):
        present = iter(parts)
        slab = SigmoidOperands(*(None if t is None else next(present) for t in full))
        slabs.append(slab._replace(logits=slab.logits.to(_compute_dtype(slab.logits))))
    return slabs


def _forward(prepared: Any) -> tuple[Tensor, Any]:
    """The core's forward; for a split sigmoid call, the core's per-slab sums reduced by
    the core's own reduction over the whole call's denominator."""
    slabs = _sigmoid_slabs(prepared)
    if slabs is None:
        return _core.forward(prepared)
    xp, config, operands = prepared
    if config.reduction == "none":
        return torch.cat([sigmoid_forward(xp, config, slab)[0] for slab in slabs]), None
    summed = replace(config, reduction="sum")
    sums = torch.stack([sigmoid_forward(xp, summed, slab)[0] for slab in slabs])
    return reduce(xp, sums, config.reduction, sigmoid_denominator(xp, operands.logits)), None


def _vjp(prepared: Any, residuals: Any, cotangent: Tensor) -> Tensor:
    """The core's vjp; for a split sigmoid call, slab by slab with each element's cotangent
    (the core's adjoint of the whole call's reduction)."""
    slabs = _sigmoid_slabs(prepared)
    if slabs is None:
        return _core.vjp(prepared, residuals, cotangent)
    xp, config, operands = prepared
    denominator = sigmoid_denominator(xp, operands.logits)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, denominator)
    grad = torch.empty_like(operands.logits)
    if config.reduction == "none":
        pieces = zip(
            slabs,
            grad.split([slab.logits.shape[0] for slab in slabs]),
            element_cotangent.split([slab.logits.shape[0] for slab in slabs]),
            strict=True,
        )
        for slab, out, slab_cotangent in pieces:
            out.copy_(sigmoid_vjp(xp, config, slab, None, slab_cotangent))
        return grad
    summed = replace(config, reduction="sum")
    outs = grad.split([slab.logits.shape[0] for slab in slabs])
    for slab, out in zip(slabs, outs, strict=True):
        out.copy_(sigmoid_vjp(xp, summed, slab, None, element_cotangent))
    return grad


def _is_functorch(tensor: Tensor) -> bool:
    """A tensor seen through a ``torch.func`` transform, or batched by autograd itself
    (``torch.autograd.grad(..., is_grads_batched=True)``, which uses the legacy vmap)."""
    functorch = torch._C._functorch
    return functorch.is_functorch_wrapped_tensor(tensor) or functorch.is_legacy_batchedtensor(
        tensor
    )


# ---------------------------------------------------------------------------------------
# Autograd glue
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """The static part of one call: the core's config and the dtypes the core works in.

    A dataclass, not a tuple, so that ``torch.func`` sees it as one opaque argument.
    """

    config: SoftmaxConfig | SigmoidConfig
    compute_dtype: torch.dtype
    target_dtype: torch.dtype


def _prepared(
    spec: _Spec,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    *others: Tensor | None,
    first_order: bool = False,
) -> tuple[Any, Any, Any]:
    """The core's ``(xp, config, operands)`` from tensors saved as the user gave them.

    The logits and target are converted as the core's ``prepare`` step converts them (to
    the compute dtype, class indices to the index dtype); the weights already were.
    `others` are the further tensors of the computation, which choose the namespace too.
    For the loss and its gradient (`first_order`) on the native namespace, 16-bit logits
    stay 16-bit where the native passes convert them slab by slab
    (:func:`_native_takes_16_bit`): no float32 copy of the whole logits is made.
    """
    xp = _namespace(logits, target, weight, pos_weight, *others)
    if not (first_order and xp is _XP_NATIVE and _native_takes_16_bit(spec.config, logits)):
        logits = logits.to(spec.compute_dtype)
    target = target.to(spec.target_dtype)
    if isinstance(spec.config, SoftmaxConfig):
        return xp, spec.config, SoftmaxOperands(logits, target, weight)
    return xp, spec.config, SigmoidOperands(logits, target, weight, pos_weight)


def _unit_cotangent(spec: _Spec, loss_shape: torch.Size, like: Tensor) -> Tensor:
    """Ones shaped like the loss: the cotangent whose vjp is the unit gradient G."""
    return torch.ones(loss_shape, dtype=spec.compute_dtype, device=like.device)


def _per_element(spec: _Spec, cotangent: Tensor) -> Tensor:
    """The cotangent of the loss, broadcastable against the logits."""
    config = spec.config
    if isinstance(config, SoftmaxConfig) and config.reduction == "none":
        return cotangent.unsqueeze(config.axis)
    return cotangent


def _hessian_times(spec: _Spec, prepared: Any, cotangent: Tensor, tangent: Tensor) -> Tensor:
    """cotangent · H · tangent, from the core's closed-form Hessian-vector product."""
    hvp = second_order.hessian_vector_product(prepared, tangent.to(spec.compute_dtype))
    return hvp * _per_element(spec, cotangent)


def _operand_fields(spec: _Spec) -> tuple[str | None, str | None, str | None]:
    """The core's operand fields behind the ``target``, ``weight`` and ``pos_weight``
    inputs of :class:`_Loss` (None where the family has no such operand)."""
    if isinstance(spec.config, SoftmaxConfig):
        return ("target", "class_weight", None)
    return ("target", "weight", "pos_weight")


def _refuse_second_order(spec: _Spec, target: object, weight: object, pos_weight: object) -> None:
    """Second derivatives through the target and the weights are not provided: refuse
    where one of them has a tangent or needs a gradient (not None, not False)."""
    softmax = isinstance(spec.config, SoftmaxConfig)
    names = ("target", "weight (or alpha)" if softmax else "weight", "pos_weight")
    for name, tangent in zip(names, (target, weight, pos_weight), strict=True):
        if tangent is not None and tangent is not False:
            raise NotImplementedError(
                f"second derivatives through {name} are not provided: the closed forms give "
                f"first-order gradients with respect to {name} and second-order ones with "
                f"respect to the logits only; detach {name} for create_graph=True, "
                f"gradgradcheck, torch.func.hessian and the like"
            )


def _operand_grads(
    spec: _Spec, ctx: Any, grad_loss: Tensor, inputs: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """cotangent · ∂loss/∂(target, weight, pos_weight), for those that need a gradient."""
    fields = _operand_fields(spec)
    needs = ctx.needs_input_grad[2:5]
    wanted = [field for field, need in zip(fields, needs, strict=True) if need and field]
    if not wanted:
        return None, None, None
    logits, target, weight, pos_weight = inputs
    if torch.is_grad_enabled():  # create_graph=True
        _refuse_second_order(spec, *needs)
    prepared = _prepared(spec, logits, target, weight, pos_weight, grad_loss)
    grads = operand_vjp(prepared, grad_loss.to(spec.compute_dtype), wanted)
    return tuple(  # type: ignore[return-value]
        None if field not in grads else grads[field].to(tensor.dtype)
        for field, tensor in zip(fields, (target, weight, pos_weight), strict=True)
    )


def _residual_outputs(residuals: SoftmaxResiduals | None, like: Tensor) -> tuple[Tensor, ...]:
    """The softmax residuals as ``Function`` outputs (so that ``setup_context`` can save
    them), an absent one (None: not computed, or not needed for this config) as an empty
    1-d tensor, a shape no residual has (they keep the class axis, or are 0-d)."""
    if residuals is None:
        return ()
    return tuple(like.new_empty((0,)) if r is None else r for r in residuals)


def _saved_residuals(saved: Sequence[Tensor]) -> SoftmaxResiduals | None:
    """The inverse of :func:`_residual_outputs`."""
    if not saved:
        return None
    absent = [t.ndim == 1 and t.shape[0] == 0 for t in saved]
    return SoftmaxResiduals(*(None if a else t for a, t in zip(absent, saved, strict=True)))


class _Loss(torch.autograd.Function):
    """One loss with the core's closed-form backward.

    Inputs: the spec; the logits, the target and the weights (``weight`` or ``alpha`` and
    ``pos_weight``) as saved for backward (logits and target as the user gave them); the
    logits (in their own dtype) and target already converted by the core's ``prepare``
    step, which forward alone uses. Outputs: the loss, then the
    residuals of the softmax losses (not differentiable).
    """

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
    ) -> tuple[Tensor, ...]:
        prepared = _prepared(
            spec, compute_logits, compute_target, weight, pos_weight, first_order=True
        )
        loss, residuals = _forward(prepared)
        return (loss, *_residual_outputs(residuals, like=loss))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        spec, logits, target, weight, pos_weight, _, _ = inputs
        residuals = output[1:]
        ctx.mark_non_differentiable(*residuals)
        ctx.save_for_backward(logits, target, weight, pos_weight, *residuals)
        ctx.spec = spec
        ctx.loss_shape = output[0].shape

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
        if grad_loss is None:
            return (None,) * 7
        spec: _Spec = ctx.spec
        logits, target, weight, pos_weight, *saved = ctx.saved_tensors
        operand_grads = _operand_grads(spec, ctx, grad_loss, (logits, target, weight, pos_weight))
        if not ctx.needs_input_grad[1]:
            grad = None
        elif torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable, also through
            # the residuals, which depend on the logits. Its derivative is the core's
            # closed-form Hessian-vector product (finite also for 0 < γ < 1 at p_t = 1).
            grad = _function(_LossGradient).apply(
                spec, grad_loss, logits, target, weight, pos_weight
            )
        else:
            prepared = _prepared(
                spec, logits, target, weight, pos_weight, grad_loss, *saved, first_order=True
            )
            residuals = _saved_residuals(saved)
            grad = _vjp(prepared, residuals, grad_loss).to(logits.dtype)
        return None, grad, *operand_grads, None, None


class _LossForwardMode(_Loss):
    """:class:`_Loss` with forward-mode AD (``torch.func.jvp``, ``jacfwd``, dual tensors).

    A separate class because ``torch.compile`` does not trace an ``autograd.Function``
    that defines ``jvp``; it is used only outside compilation.
    """

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        _Loss.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[1:5], *output[1:])
        ctx.set_materialize_grads(False)  # a missing tangent stays None, not zeros

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> tuple[Tensor | None, ...]:
        _, logits_t, *operand_tangents, _, _ = tangents
        spec: _Spec = ctx.spec
        logits, target, weight, pos_weight, *saved = ctx.saved_tensors
        residual_tangents = (None,) * len(saved)
        given = {
            field: t.to(spec.compute_dtype)
            for field, t in zip(_operand_fields(spec), operand_tangents, strict=True)
            if field is not None and t is not None
        }
        if logits_t is None and not given:
            return (None, *residual_tangents)
        prepared = _prepared(spec, logits, target, weight, pos_weight)
        tangent = operand_jvp(prepared, given) if given else None
        if logits_t is not None:
            residuals = _saved_residuals(saved)
            unit = _core.vjp(prepared, residuals, _unit_cotangent(spec, ctx.loss_shape, logits))
            logit_part = second_order.directional_derivative(
                prepared, unit, logits_t.to(spec.compute_dtype)
            )
            tangent = logit_part if tangent is None else tangent + logit_part
        return (tangent, *residual_tangents)


class _LossGradient(torch.autograd.Function):
    """The gradient cotangent · ∂loss/∂logits as a differentiable function of both.

    Used by :class:`_Loss` when a graph is built through its backward. Forward recomputes
    the residuals; backward is ⟨G, v⟩ for the cotangent and cotangent · H·v for the
    logits, both from the core (``second_order``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: _Spec,
        cotangent: Tensor,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
        pos_weight: Tensor | None,
    ) -> Tensor:
        prepared = _prepared(spec, logits, target, weight, pos_weight, cotangent)
        _, residuals = _core.forward(prepared)
        return _core.vjp(prepared, residuals, cotangent).to(logits.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        spec, cotangent, logits, target, weight, pos_weight = inputs
        ctx.save_for_backward(cotangent, logits, target, weight, pos_weight)
        ctx.spec = spec

    @staticmethod
    def backward(ctx: Any, grad_grad: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad_grad is None:
            return (None,) * 6
        spec: _Spec = ctx.spec
        cotangent, logits, target, weight, pos_weight = ctx.saved_tensors
        prepared = _prepared(spec, logits, target, weight, pos_weight)
        grad_cotangent = grad_logits = None
        if ctx.needs_input_grad[1]:
            _, residuals = _core.forward(prepared)
            unit = _core.vjp(prepared, residuals, torch.ones_like(cotangent))
            grad_cotangent = second_order.directional_derivative(
                prepared, unit, grad_grad.to(spec.compute_dtype)
            )
        if ctx.needs_input_grad[2]:
            grad_logits = _hessian_times(spec, prepared, cotangent, grad_grad).to(logits.dtype)
        return None, grad_cotangent, grad_logits, None, None, None


class _LossGradientForwardMode(_LossGradient):
    """:class:`_LossGradient` with forward-mode AD (``torch.func.hessian``)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        _LossGradient.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[1:])
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor | None:
        _, cotangent_t, logits_t, target_t, weight_t, pos_weight_t = tangents
        spec: _Spec = ctx.spec
        _refuse_second_order(spec, target_t, weight_t, pos_weight_t)
        cotangent, logits, target, weight, pos_weight = ctx.saved_tensors
        prepared = _prepared(spec, logits, target, weight, pos_weight)
        result = None
        if cotangent_t is not None:  # the gradient is linear in the cotangent
            _, residuals = _core.forward(prepared)
            result = _core.vjp(prepared, residuals, cotangent_t)
        if logits_t is not None:
            curvature = _hessian_times(spec, prepared, cotangent, logits_t)
            result = curvature if result is None else result + curvature
        return None if result is None else result.to(logits.dtype)


_FORWARD_MODE = {_Loss: _LossForwardMode, _LossGradient: _LossGradientForwardMode}


for _class in (_Loss, _LossGradient):
    # ``Function.apply`` binds its arguments to ``inspect.signature(forward)`` on every
    # call; a signature stored on the function is returned at once instead of re-parsed.
    _class.forward.__signature__ = inspect.signature(_class.forward)


def _function(base: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """`base`, or its forward-mode variant where nothing is compiling."""
    return base if torch.compiler.is_compiling() else _FORWARD_MODE[base]


# ---------------------------------------------------------------------------------------
# Validation policy
# ---------------------------------------------------------------------------------------


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def _is_concrete_cpu(tensor: Tensor) -> bool:
    """A plain CPU tensor whose values can be read without a device sync or a trace."""
    if tensor.device.type != "cpu" or _is_functorch(tensor):
        return False
    return not isinstance(tensor, torch._subclasses.FakeTensor)


def _values_checkable(*tensors: object) -> bool:
    """Whether the value checks (docs/semantics.md, Bad input) run: CPU tensors, nothing tracing."""
    if _is_tracing():
        return False
    return all(_is_concrete_cpu(t) for t in tensors if isinstance(t, Tensor))


def _check_logits(logits: object) -> None:
    # A target or weight of another backend is refused by the core, with its message.
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"logits must be a torch.Tensor for multiloss.torch; got "
            f"{type(logits).__module__}.{type(logits).__name__}"
        )


# ---------------------------------------------------------------------------------------
# Functional API
# ---------------------------------------------------------------------------------------


_NO_TORCHSCRIPT = (
    "multiloss.torch does not support TorchScript (torch.jit.script, torch.jit.trace): its "
    "losses are Python autograd Functions, which TorchScript can neither compile nor trace; "
    "use torch.compile (or torch.export) instead"
)


def _loss(name: str, logits: Tensor, target: Tensor, options: dict[str, Any]) -> Tensor:
    """Validate through the core's ``prepare`` step, then run :class:`_Loss`."""
    if torch.jit.is_tracing():
        raise NotImplementedError(_NO_TORCHSCRIPT)
    _check_logits(logits)
    softmax = name in ("cross_entropy", "focal_loss")
    if softmax and options["axis"] is None:
        # PyTorch's convention: classes on axis 1 of (N, C, d1..dk), on axis 0 of (C,).
        options["axis"] = 0 if logits.ndim == 1 else 1
    if softmax:
        weight_names = ("weight" if name == "cross_entropy" else "alpha", "")
    else:
        weight_names = ("weight", "pos_weight")
    check_values = _values_checkable(logits, target, *(options.get(n) for n in weight_names))
    _, config, operands = _core.PREPARE[name](
        logits, target, check_values=check_values, convert_logits=False, **options
    )
    weights = (operands.class_weight, None) if softmax else (operands.weight, operands.pos_weight)
    spec = _Spec(config, _compute_dtype(logits), operands.target.dtype)
    outputs = _function(_Loss).apply(
        spec, logits, target, *weights, operands.logits.detach(), operands.target.detach()
    )
    return outputs[0].to(logits.dtype)


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
    return _loss("cross_entropy", logits, target, options)


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
    return _loss("focal_loss", logits, target, options)


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
    return _loss("binary_cross_entropy", logits, target, options)


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
    return _loss("sigmoid_focal_loss", logits, target, options)


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


class _Criterion(nn.Module):
    """The modules' common base: refuses TorchScript with a clear error."""

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script calls this on the module (and on every submodule of a model
        # being scripted) before compiling anything.
        raise NotImplementedError(_NO_TORCHSCRIPT)


class CrossEntropyLoss(_Criterion):
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


class FocalLoss(_Criterion):
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
        if isinstance(alpha, numbers.Real):  # a bool is refused here, as by focal_loss
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


class BCEWithLogitsLoss(_Criterion):
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
        self.register_buffer("pos_weight", _as_buffer("pos_weight", pos_weight, class_vector=False))
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


class SigmoidFocalLoss(_Criterion):
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
            None if alpha is None else _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
        )
        self.gamma = _checks.check_real_number("gamma", gamma, low=0.0)
        self.reduction = _checks.check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sigmoid_focal_loss(
            input, target, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
