r"""The distribution focal loss on Triton kernels (`._distribution_kernels`): the custom
operators ``multiloss::distribution_forward`` (the loss, reduced in the op, and each
row's float32 lse) and ``multiloss::distribution_backward`` (the gradient w · e · (p - c),
out of place), and the entry :func:`distribution_loss`.

The logits are read where they lie as (outer, n, inner) rows through three strides (the
bins along ``config.axis``, any position); a layout whose dimensions before or after the
bin axis do not merge into one stride is copied first. The target (and a broadcast weight,
materialised at the target's size: 1 / n of the logits') are flat rows. Reductions, no host
sync and deterministic: one partial sum per program (BLOCK_R rows), written as the result
when one program runs, else summed by one more program (`sum_kernel`). float32 and 16-bit
logits, computed in float32.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import triton
from torch import Tensor

from ..._core.distribution import DistributionConfig
from ._distribution_kernels import distribution_backward_kernel, distribution_forward_kernel
from ._sigmoid_kernels import sum_kernel

BLOCK_R = 64
"""Rows per program."""
MAX_BLOCK_N = 64
"""Bins per chunk at most (16 bins: one chunk of 16)."""
_SUM_BLOCK = 1024


def _merged_stride(sizes: tuple[int, ...], strides: tuple[int, ...]) -> int | None:
    """The one stride that walks `sizes` (C order) as one dimension, or None."""
    kept = [(size, stride) for size, stride in zip(sizes, strides, strict=True) if size > 1]
    if not kept:
        return 1
    for (_, outer), (size, stride) in itertools.pairwise(kept):
        if outer != stride * size:
            return None
    return kept[-1][1]


def _rows(logits: Tensor, axis: int) -> tuple[Tensor, int, int, int, int, int]:
    """The logits (copied when they must be), rows, inner and the three strides."""
    shape, strides = tuple(logits.shape), tuple(logits.stride())
    outer_stride = _merged_stride(shape[:axis], strides[:axis])
    inner_stride = _merged_stride(shape[axis + 1 :], strides[axis + 1 :])
    if outer_stride is None or inner_stride is None:
        logits = logits.contiguous()
        return _rows(logits, axis)
    inner = math.prod(shape[axis + 1 :])
    rows = math.prod(shape[:axis]) * inner
    return logits, rows, inner, outer_stride, strides[axis], inner_stride


def _sum_steps(count: int) -> int:
    """Blocks the sum program walks: a power of two ≥ count / block (few variants)."""
    return 1 << max(triton.cdiv(count, _SUM_BLOCK) - 1, 0).bit_length()


def _block_n(n: int) -> tuple[int, int]:
    block = min(triton.next_power_of_2(n), MAX_BLOCK_N)
    return block, triton.cdiv(n, block)


def _loss_shape(logits: Tensor, axis: int, reduction: str) -> tuple[int, ...]:
    shape = tuple(logits.shape)
    return shape[:axis] + shape[axis + 1 :] if reduction == "none" else ()


def _loss_dtype(logits: Tensor, keep_dtype: bool) -> torch.dtype:
    return logits.dtype if keep_dtype else torch.float32


def _flat(tensor: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    return None if tensor is None else tensor.broadcast_to(shape).reshape(-1).contiguous()


@torch.library.custom_op("multiloss::distribution_forward", mutates_args=())
def _forward_op(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    axis: int,
    reduction: str,
    keep_dtype: bool,
) -> tuple[Tensor, Tensor]:
    """The reduced loss and each row's lse (float32, the target's shape)."""
    shape = _loss_shape(logits, axis, "none")
    lse = torch.empty(shape, dtype=torch.float32, device=logits.device)
    out = logits.new_empty(
        _loss_shape(logits, axis, reduction), dtype=_loss_dtype(logits, keep_dtype)
    )
    x, rows, inner, s_outer, s_bin, s_inner = _rows(logits, axis)
    if rows == 0:
        return (out if reduction == "none" else out.zero_()), lse
    n = logits.shape[axis]
    t, w = _flat(target, shape), _flat(weight, shape)
    programs = triton.cdiv(rows, BLOCK_R)
    scale = 1.0 / rows if reduction == "mean" else 1.0
    reduce = reduction != "none"
    destination = out
    if reduce and programs > 1:
        destination = logits.new_empty((programs,), dtype=torch.float32)
    block_n, chunks = _block_n(n)
    distribution_forward_kernel[(programs,)](
        x, t, w if w is not None else t, destination, lse, rows, n, inner, s_outer, s_bin,
        s_inner, scale, HAS_W=w is not None, REDUCE=int(reduce), CHUNKS=chunks,
        BLOCK_R=BLOCK_R, BLOCK_N=block_n, num_warps=4,
    )  # fmt: skip
    if reduce and programs > 1:
        sum_kernel[(1,)](
            destination, out, programs, COMPUTE=triton.language.float32,
            STEPS=_sum_steps(programs), BLOCK_SIZE=_SUM_BLOCK, num_warps=4,
        )  # fmt: skip
    return out, lse


@_forward_op.register_fake
def _(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    axis: int,
    reduction: str,
    keep_dtype: bool,
) -> tuple[Tensor, Tensor]:
    lse = logits.new_empty(_loss_shape(logits, axis, "none"), dtype=torch.float32)
    out = logits.new_empty(
        _loss_shape(logits, axis, reduction), dtype=_loss_dtype(logits, keep_dtype)
    )
    return out, lse


@torch.library.custom_op("multiloss::distribution_backward", mutates_args=())
def _backward_op(
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    axis: int,
    reduction: str,
) -> Tensor:
    """cotangent · ∂loss/∂logits in the logits' dtype (contiguous)."""
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    x, rows, inner, s_outer, s_bin, s_inner = _rows(logits, axis)
    if rows == 0:
        return grad
    n = logits.shape[axis]
    shape = _loss_shape(logits, axis, "none")
    t, w = _flat(target, shape), _flat(weight, shape)
    per_row = reduction == "none"
    cot = _flat(cotangent, shape) if per_row else cotangent
    _, _, g_outer, g_bin, g_inner = _rows(grad, axis)[1:]
    block_n, chunks = _block_n(n)
    distribution_backward_kernel[(triton.cdiv(rows, BLOCK_R),)](
        cot, x, t, w if w is not None else t, lse.reshape(-1), grad, rows, n, inner, s_outer,
        s_bin, s_inner, g_outer, g_bin, g_inner, 1.0 / rows if reduction == "mean" else 1.0,
        HAS_W=w is not None, PER_ROW=per_row, CHUNKS=chunks, BLOCK_R=BLOCK_R,
        BLOCK_N=block_n, num_warps=4,
    )  # fmt: skip
    return grad


@_backward_op.register_fake
def _(
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    lse: Tensor,
    axis: int,
    reduction: str,
) -> Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    logits, target, weight, axis, reduction, _ = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(logits, target, weight, output[1])
    ctx.axis, ctx.reduction = axis, reduction


def _backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
    if grad_loss is None or not ctx.needs_input_grad[0]:
        return None, None, None, None, None, None
    logits, target, weight, lse = ctx.saved_tensors
    if torch.is_grad_enabled():
        # create_graph=True: the eager plans' closed forms give the gradient's derivative
        grad = _differentiable_gradient(ctx, grad_loss, logits, target, weight)
    else:
        grad = _backward_op(grad_loss, logits, target, weight, lse, ctx.axis, ctx.reduction)
    return grad, None, None, None, None, None


def _differentiable_gradient(
    ctx: Any, grad_loss: Tensor, logits: Tensor, target: Tensor, weight: Tensor | None
) -> Tensor:
    from .._autograd import LossGradient, LossSpec, function

    config: Any = DistributionConfig(ctx.axis, logits.shape[ctx.axis], ctx.reduction)
    spec = LossSpec(config, torch.float32, target.dtype)
    grad: Tensor = function(LossGradient).apply(
        spec, grad_loss.to(torch.float32), logits, target, weight, None, None
    )
    return grad


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def distribution_loss(
    config: DistributionConfig,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    *,
    keep_dtype: bool = False,
) -> Tensor:
    """The reduced distribution focal loss of a prepared call on the kernels,
    differentiable with respect to the logits.

    Args:
        config: the core's config (`prepare_distribution`).
        logits: the n bins along ``config.axis``; float32 or 16-bit (computed in float32).
        target: positions in [0, n - 1], the logits' shape without the bin axis (a bad
            one makes its element NaN).
        weight: None, or broadcastable to the target.
        keep_dtype: return the loss in the logits' dtype instead of float32.

    Returns:
        The loss per ``config.reduction``: 0-d, or the target's shape.

    Raises:
        ValueError: the target or the weight requires grad (the kernels differentiate the
            logits only: the engine keeps the eager plans then).
    """
    for name, value in (("target", target), ("weight", weight)):
        if value is not None and value.requires_grad:
            raise ValueError(
                f"the Triton distribution kernels differentiate the logits only; {name} "
                "requires grad"
            )
    axis = config.axis % logits.ndim
    loss: Tensor = _forward_op(logits, target, weight, axis, config.reduction, keep_dtype)[0]
    return loss


__all__ = ["distribution_loss"]
