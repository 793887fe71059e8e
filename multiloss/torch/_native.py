"""Native kernels for the core's fast-path seam: cache-sized slab passes in eager mode.

They work a cache-sized slab (about 1 MiB) at a time, so no temporary of the logits' size
is made: forward sums each slab's exponentials over the classes other than the target
(the target's log-probability relatively exact, see
:func:`~multiloss._core.kernels.target_log_p_from_others`), backward writes ``softmax``
times the row scale straight into the gradient and scatters the target entries. Where
PyTorch's fused softmax kernel is slow (the class axis last with fewer than 32 classes,
or an inner class axis with short trailing dimensions) backward's slabs go through
separate in-place element-wise passes instead, which give the generic path's numbers
exactly; the fused kernel agrees with it to a few ulps. 16-bit logits are converted to
float32 slab by slab, never as a whole. Large sigmoid calls run slab by slab through the
core's generic operations (:func:`forward`, :func:`vjp`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from .. import _core
from .._core import SOFTMAX, SoftmaxKernels
from .._core._reduce import mean_scale, per_element_cotangent, reduce
from .._core.hyper import is_zero
from .._core.sigmoid import SigmoidOperands
from ._namespace import compute_dtype
from ._whole import log_p_from_others

CHUNK_ELEMENTS = 1 << 18
"""Elements per chunk of the native passes: 1 MiB of float32, which stays in cache."""


def chunks(axis: int, *tensors: Tensor) -> Any:
    """The tensors split alike into slabs of about `CHUNK_ELEMENTS` elements along a
    dimension other than the class axis (all dimensions of size 1 or the logits' size)."""
    first = tensors[0]
    dim = 1 if axis == 0 else 0
    if first.ndim < 2 or first.numel() <= CHUNK_ELEMENTS:
        return [tensors]
    per_slice = first.numel() // max(first.shape[dim], 1)
    step = max(1, CHUNK_ELEMENTS // max(per_slice, 1))
    return zip(*(t.split(step, dim=dim) for t in tensors), strict=True)


def takes_16_bit(plan: Any, config: Any, logits: Tensor) -> bool:
    """Whether a plan's passes take the logits in their own dtype and convert them as they
    go: the hard-target softmax passes of the slab and whole-tensor plans (the core reads
    the logits through them alone) and split sigmoid calls (:func:`_sigmoid_slabs`
    converts each slab)."""
    if plan.name == "generic":
        return False
    if config.family is SOFTMAX:
        return config.hard_target and is_zero(config.label_smoothing) and config.softcap is None
    if config.family.operands is not SigmoidOperands:
        return False
    return plan.slabs and logits.ndim >= 2 and logits.numel() > CHUNK_ELEMENTS


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


def _max_and_log_sum_exp(xp: Any, logits: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """The seam's ``max_and_log_sum_exp`` (same operations, same numbers), a cache-sized
    slab at a time: no temporary of the logits' size."""
    row_max = torch.amax(logits, dim=axis, keepdim=True).to(compute_dtype(logits))
    sum_exp = torch.empty_like(row_max)
    workspace = _Workspace(row_max.dtype)
    for z, m, out in chunks(axis, logits, row_max, sum_exp):
        shifted = torch.sub(z, m, out=workspace.like(z)).exp_()
        torch.sum(shifted, dim=axis, keepdim=True, out=out)
    return row_max, sum_exp.log_()


def _log_softmax(xp: Any, logits: Tensor, axis: int) -> tuple[Tensor, Tensor, Tensor]:
    """The seam's ``log_softmax`` with m and L from :func:`_max_and_log_sum_exp`."""
    row_max, log_sum_exp = _max_and_log_sum_exp(xp, logits, axis)
    return row_max, log_sum_exp, (logits - row_max) - log_sum_exp


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


def _target_log_softmax(
    xp: Any, logits: Tensor, index: Tensor, axis: int
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """The seam's ``target_log_softmax``: the row max m, the log-sum-exp L and the
    target's log-probability ℓ_t, a cache-sized slab at a time.

    Each slab's row max, its exponentials e^{z - m} in the workspace, the target's entry
    zeroed in place (a scatter of one element per row) and their sum S over the other
    classes; ℓ_t and L from m, S and z_t as the core's
    :func:`~multiloss._core.kernels.target_log_p_from_others` forms them
    (:func:`._whole.log_p_from_others`; ℓ_t relatively exact for a confident row). The
    slab is read from memory once (the max and the exponentials find it in cache)."""
    dtype = compute_dtype(logits)
    row_max = torch.empty(index.shape, dtype=dtype, device=logits.device)
    others = torch.empty_like(row_max)
    workspace = _Workspace(dtype)
    for z, i, m, out in chunks(axis, logits, index, row_max, others):
        m.copy_(torch.amax(z, dim=axis, keepdim=True))
        shifted = torch.sub(z, m, out=workspace.like(z)).exp_()
        torch.sum(shifted.scatter_(axis, i, 0.0), dim=axis, keepdim=True, out=out)
    target_logit = torch.gather(logits, axis, index).to(dtype)
    return row_max, *log_p_from_others(row_max, others, target_logit)


def _scaled_softmax_with_target(
    xp: Any,
    logits: Tensor,
    row_max: Tensor | None,
    log_sum_exp: Tensor | None,
    index: Tensor,
    target_entry: Tensor,
    scale: Tensor,
    axis: int,
) -> Tensor:
    """The seam's ``scaled_softmax_with_target`` written straight into the gradient (in
    the logits' dtype: 16-bit logits are computed in float32 slab by slab), a
    cache-sized slab at a time: where it pays by PyTorch's fused softmax kernel (which
    recomputes the row max and sum in cache instead of reading `row_max` and
    `log_sum_exp`), elsewhere by the core's operations done in place (same numbers)."""
    gradient = torch.empty_like(logits)
    dtype = compute_dtype(logits)
    scale = torch.broadcast_to(scale, index.shape)
    target_entry = torch.broadcast_to(target_entry, index.shape)
    fused = _fused_softmax_pays(logits, axis)
    # the fused kernel does not read row_max and log_sum_exp (None after a fused forward)
    shift = () if fused else (row_max, log_sum_exp)
    workspace = _Workspace(dtype)
    for z, s, i, v, out, *m_lse in chunks(
        axis, logits, scale, index, target_entry, gradient, *shift
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


NATIVE = SoftmaxKernels(
    max_and_log_sum_exp=_max_and_log_sum_exp,
    log_softmax=_log_softmax,
    target_log_softmax=_target_log_softmax,
    scaled_softmax_with_target=_scaled_softmax_with_target,
)
"""The slab kernels handed to the core's seam in plain eager execution."""


def _sigmoid_slabs(prepared: Any, plan: Any) -> list[SigmoidOperands] | None:
    """A large element-wise (sigmoid) call on the slab plan, split into slabs of about
    `CHUNK_ELEMENTS` elements along dim 0 (weights broadcast first): each slab's
    temporaries stay in cache instead of being fresh, page-faulted memory. None when the
    call is not split (softmax losses, small or 1-d inputs, other plans)."""
    _, config, operands = prepared
    logits = operands.logits
    if config.family.operands is not SigmoidOperands or not plan.slabs:
        return None  # (the sigmoid family and the detection losses share its operands)
    if logits.ndim < 2 or logits.numel() <= CHUNK_ELEMENTS:
        return None
    full = [None if t is None else t.expand(logits.shape) for t in operands[:4]]
    slabs = []
    for parts in chunks(-1, *(t for t in full if t is not None)):
        present = iter(parts)
        slab = SigmoidOperands(*(None if t is None else next(present) for t in full))  # type: ignore[arg-type]
        slabs.append(slab._replace(logits=slab.logits.to(compute_dtype(slab.logits))))
    return slabs


def forward(prepared: Any, plan: Any) -> tuple[Tensor, Any]:
    """The core's forward with the plan's kernels; for a split sigmoid call, the core's
    per-slab sums reduced by the core's own reduction over the whole call's denominator."""
    xp, config, _ = prepared
    kernels = plan.kernels(config.family)
    slabs = _sigmoid_slabs(prepared, plan)
    if slabs is None:
        return _core.forward(prepared, kernels)
    if config.reduction == "none":
        pieces = [config.family.forward(xp, config, slab, kernels)[0] for slab in slabs]
        return torch.cat(pieces), None
    summed = replace(config, reduction="sum")
    sums = torch.stack([config.family.forward(xp, summed, slab, kernels)[0] for slab in slabs])
    scale = mean_scale(xp, _core.mean_denominator(prepared))
    return reduce(xp, sums, config.reduction, scale), None


def vjp(prepared: Any, residuals: Any, cotangent: Tensor, plan: Any) -> Tensor:
    """The core's vjp with the plan's kernels; for a split sigmoid call, slab by slab with
    each element's cotangent (the core's adjoint of the whole call's reduction)."""
    xp, config, operands = prepared
    kernels = plan.kernels(config.family)
    slabs = _sigmoid_slabs(prepared, plan)
    if slabs is None:
        return _core.vjp(prepared, residuals, cotangent, kernels)
    scale = mean_scale(xp, _core.mean_denominator(prepared))
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, scale)
    grad = torch.empty_like(operands.logits)
    if config.reduction == "none":
        pieces = zip(
            slabs,
            grad.split([slab.logits.shape[0] for slab in slabs]),
            element_cotangent.split([slab.logits.shape[0] for slab in slabs]),
            strict=True,
        )
        for slab, out, slab_cotangent in pieces:
            out.copy_(config.family.vjp(xp, config, slab, None, slab_cotangent, kernels))
        return grad
    summed = replace(config, reduction="sum")
    outs = grad.split([slab.logits.shape[0] for slab in slabs])
    for slab, out in zip(slabs, outs, strict=True):
        out.copy_(config.family.vjp(xp, summed, slab, None, element_cotangent, kernels))
    return grad
