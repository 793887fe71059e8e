r"""The softmax family (cross-entropy, focal, poly) on Triton kernels: the custom
operators, the entry :func:`softmax_loss` and the row functions the fused head and the
vocabulary-parallel losses call (:func:`row_forward`, :func:`row_backward`,
:func:`row_partials`).

A call is two custom operators, ``multiloss::softmax_forward`` (the row kernel, then one
program that reduces; a split-row pass and its combine step for long rows with few of
them) and ``multiloss::softmax_backward`` (one kernel writing the gradient out of place).
Nothing is read back to the host; the static config travels to the operators as a list of
numbers (:func:`config_key`), so ``torch.compile`` sees plain constants. The kernels
compute in float32 (16-bit logits are read as they are); float64 logits are not served
here (the engine keeps the eager plans for them).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import torch
import triton
from torch import Tensor

from ..._core import SoftmaxConfig
from ..._core.terms import Focal, Poly
from . import _softmax_kernels as K

SPLIT_SPAN = 16384
"""Columns read by one program of a split row."""
TARGET_PROGRAMS = 256
"""Rows are split while fewer than this many programs would run (about 2 per SM)."""


_REDUCTIONS = ("none", "sum", "mean")


def _mend_interpreter() -> None:
    """Triton 3.6's interpreter holds a scalar argument as a 1-element array and turns it
    into an `int` (`range(lo, hi, BLOCK)` over a row's columns) with `int(array)`, which
    NumPy 2 refuses for arrays of one dimension; Triton 3.7 squeezes the array first.
    Where the interpreter lacks that, its tensors' `__index__` squeezes here too (only
    under `TRITON_INTERPRET=1`; the compiled kernels are untouched)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return
    try:
        from triton.runtime import interpreter
    except ImportError:  # pragma: no cover - an older layout: nothing to mend
        return
    patch = getattr(interpreter, "_patch_lang_tensor", None)
    if patch is None or getattr(patch, "mended", False):
        return
    import inspect

    if "squeeze" in inspect.getsource(patch):  # Triton 3.7 and later
        return

    def mended(tensor: Any, scope: Any) -> None:
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    mended.mended = True  # type: ignore[attr-defined]
    interpreter._patch_lang_tensor = mended


_mend_interpreter()


def config_key(config: SoftmaxConfig) -> list[float]:
    """The static config as the custom operators take it: a list of numbers (a
    ``torch.compile`` graph holds it as constants), read back by :func:`_config`."""
    term: Focal | Poly = config.term  # type: ignore[assignment]
    return [
        float(config.num_classes),
        float(config.hard_target),
        float(isinstance(term, Poly)),
        float(term.gamma),
        float(term.epsilon) if isinstance(term, Poly) else 0.0,
        float(config.ignore_index),
        float(config.label_smoothing),
        float(_REDUCTIONS.index(config.reduction)),
        float(config.mean_over_target_weight),
        float(config.indices_checked),
        float(config.z_loss),
        0.0 if config.softcap is None else float(config.softcap),
    ]


@functools.lru_cache(maxsize=256)
def _config_of(key: tuple[float, ...]) -> SoftmaxConfig:
    classes, hard, poly, gamma, epsilon, ignore, smooth, reduction, motw, checked, z, cap = key
    return SoftmaxConfig(
        axis=1,
        num_classes=int(classes),
        hard_target=bool(hard),
        term=Poly(epsilon, gamma) if poly else Focal(gamma),
        ignore_index=int(ignore),
        label_smoothing=smooth,
        reduction=_REDUCTIONS[int(reduction)],
        mean_over_target_weight=bool(motw),
        indices_checked=bool(checked),
        z_loss=z,
        softcap=cap or None,
    )


def _config(key: list[float]) -> SoftmaxConfig:
    return _config_of(tuple(key))


def _flags(config: SoftmaxConfig, has_weight: bool) -> dict[str, Any]:
    """The kernels' compile-time flags for `config`."""
    term: Focal | Poly = config.term  # type: ignore[assignment]
    gamma = float(term.gamma)
    epsilon = float(term.epsilon) if isinstance(term, Poly) else 0.0
    smoothing = float(config.label_smoothing)
    hard = config.hard_target
    if hard and smoothing == 0:
        mode = 0
    elif gamma == 0 and epsilon == 0:
        mode = 1
    else:
        mode = 2
    return {
        "MODE": mode,
        "HARD": hard,
        "HAS_W": has_weight,
        "CHECKED": bool(config.indices_checked),
        "OMEGA_W": bool(config.mean_over_target_weight and has_weight),
        "SMOOTH": smoothing,
        "Z_LOSS": float(config.z_loss),
        "GAMMA": gamma,
        "GAMMA_INT": int(gamma) if gamma.is_integer() and gamma <= 8 else -1,
        "EPS": epsilon,
        "HAS_CAP": config.softcap is not None,
        "CAP": float(config.softcap or 1.0),
    }


TILE = 4096
"""Elements of a program's [ROWS, BLOCK] tile (2048 in some forward passes, see
:func:`row_forward`)."""


def _block(num_classes: int, cap: int = TILE) -> int:
    return min(triton.next_power_of_2(max(num_classes, 4)), cap)


def _tile(
    num_rows: int, num_classes: int, elements: int = TILE, *, last: bool = True
) -> tuple[int, int]:
    """(ROWS, BLOCK) of a row kernel: BLOCK columns at a time (the row if it fits in
    `elements`) and as many rows per program as fill the tile (never more than the
    rows there are), so that short rows do not leave a program's lanes idle. With the
    class axis not last (`last=False`) consecutive rows are consecutive in memory: a
    tile keeps at least 32 of them (a warp's worth of contiguous addresses), and holds
    at most TILE / 2 elements (ptxas: (128, 32) tiles spill on sm_80; (64, 32) do not)."""
    if not last:
        elements = min(elements, TILE // 2)
    block = _block(num_classes, elements if last else max(elements // 32, 4))
    rows = max(min(elements // block, triton.next_power_of_2(max(num_rows, 1))), 1)
    return rows, block


def _splits(num_rows: int, num_classes: int, mode: int) -> int:
    """How many programs share one row: 1, unless the rows are too few to fill the GPU
    and long enough to split (mode 2 then reads its rows again in a second split pass)."""
    if num_classes < 2 * SPLIT_SPAN or num_rows * 2 > TARGET_PROGRAMS:
        return 1
    return min(triton.cdiv(num_classes, SPLIT_SPAN), max(TARGET_PROGRAMS // max(num_rows, 1), 1))


def _layout(logits: Tensor) -> tuple[int, int, bool]:
    """(rows, inner, last) of (N, C) logits (last) or a (outer, C, inner) view of logits
    whose class axis is not last (rows = outer·inner, in memory order)."""
    if logits.ndim == 2:
        return logits.shape[0], 1, True
    return logits.shape[0] * logits.shape[2], logits.shape[2], False


def _operands(
    logits: Tensor, target: Tensor, class_weight: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, int, Tensor]:
    """Logits with unit class stride ((N, C)) or contiguous ((outer, C, inner)); (q,
    q_stride) of a probability target, laid out as the logits (the logits stand in for a
    class-index target); the class weights (the logits stand in)."""
    if logits.ndim == 3 or logits.stride(1) != 1:
        logits = logits.contiguous()
    if target.ndim == logits.ndim:
        if logits.ndim == 3:
            q = target.contiguous()
        else:
            q = target if target.stride(1) == 1 else target.contiguous()
        q_stride = q.stride(0)
    else:
        q, q_stride = logits, 0
    weight = logits if class_weight is None else class_weight.contiguous()
    return logits, q, weight, q_stride, target


def row_forward(
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    *,
    config: SoftmaxConfig,
    loss_dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row results of a softmax loss over `logits` (N, C), no reduction, no autograd.

    Args:
        logits: (N, C) float32/16-bit logits, classes contiguous (else copied); or a
            contiguous (outer, C, inner) view of logits whose class axis is not last (rows
            N = outer·inner in memory order, read through the class stride; the split-row
            path does not take them).
        target: (N,) class indices (int64) or probabilities shaped as the logits.
        class_weight: (C,) weights / alpha in float32, or None.
        config: the core's config of the call (`reduction` is not used here).
        loss_dtype: dtype of the per-row losses.

    Returns:
        `(row_loss, lse, row_factor, omega)`: the row's loss ((N,), `loss_dtype`; z-loss
        included); `lse`, the row's log-sum-exp as (N, 3) float32 numbers (the max m,
        log Σ_k e^{z_k - m} and, for class indices, lse - z_t kept exact: the backward pass
        needs all three, so pass it on as it is); and, (N,) float32, its factor
        (F = c_t·A(ℓ_t) for class indices without smoothing, else
        S = Σ_k c_k A_k) and its share ω of the mean's denominator (w_t·mask for PyTorch's
        weighted mean, the row mask, or 1 for probability targets).
    """
    num_rows, inner, last = _layout(logits)
    num_classes = logits.shape[1]
    flags = _flags(config, class_weight is not None)
    device = logits.device
    loss = torch.empty(num_rows, dtype=loss_dtype, device=device)
    stats = torch.empty((num_rows, 3), dtype=torch.float32, device=device)
    factor, omega = (torch.empty(num_rows, dtype=torch.float32, device=device) for _ in "12")
    if num_rows == 0:
        return loss, stats, factor, omega
    z, q, weight, q_stride, target = _operands(logits, target, class_weight)
    # mode 1 keeps four per-lane accumulators, mode 2 many per-row values beside its
    # second loop: tiles of 2048 keep them at 8 warps without spilling (ptxas: mode 1 at
    # 4096 takes 170 registers a thread on sm_90; mode 2 at 256 × 16 spills on sm_80)
    short = flags["MODE"] == 2 and num_classes <= TILE // 2
    elements = TILE // 2 if flags["MODE"] == 1 or short else TILE
    rows, block = _tile(num_rows, num_classes, elements, last=last)
    splits = _splits(num_rows, num_classes, flags["MODE"]) if last else 1
    shape = (num_rows, num_classes, config.ignore_index)
    common = (z, z.stride(0), q, q_stride, target, weight, *shape)
    if splits == 1:
        K.softmax_forward_kernel[(triton.cdiv(num_rows, rows),)](
            *common, loss, stats, factor, omega, inner, **flags, ROWS=rows, BLOCK=block,
            LAST=last, num_warps=_warps(rows * block),
        )  # fmt: skip
        return loss, stats, factor, omega
    span = triton.cdiv(triton.cdiv(num_classes, splits), block) * block
    splits = triton.cdiv(num_classes, span)
    parts = torch.empty((num_rows, 4, splits), dtype=torch.float32, device=device)
    narrow = {k: flags[k] for k in ("MODE", "HARD", "HAS_W", "CHECKED", "SMOOTH", "HAS_CAP", "CAP")}
    K.softmax_partials_kernel[(num_rows, splits)](
        *common, span, splits, parts, **narrow, BLOCK=block, num_warps=_warps(block)
    )
    K.softmax_combine_kernel[(num_rows,)](
        *common, splits, parts, loss, stats, factor, omega, **flags,
        BLOCK_S=triton.next_power_of_2(splits),
    )  # fmt: skip
    if flags["MODE"] == 2:
        terms = {k: v for k, v in flags.items() if k not in ("MODE", "OMEGA_W", "Z_LOSS")}
        K.softmax_terms_kernel[(num_rows, splits)](
            *common, span, splits, stats, parts, **terms, BLOCK=block, num_warps=_warps(block)
        )
        K.softmax_terms_finish_kernel[(num_rows,)](
            num_rows, splits, parts, loss, stats, factor, omega, Z_LOSS=flags["Z_LOSS"],
            BLOCK_S=triton.next_power_of_2(splits),
        )  # fmt: skip
    return loss, stats, factor, omega


def _warps(block: int) -> int:
    """Warps for a tile of `block` elements: about 4-16 elements per thread."""
    if block <= 512:
        return max(block // 128, 1)
    return 4 if block < 2048 else 8


def row_backward(
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    lse: Tensor,
    row_factor: Tensor,
    row_cotangent: Tensor,
    *,
    config: SoftmaxConfig,
    scale: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """The gradient of a softmax loss with respect to `logits` (N, C), one pass.

    Args:
        logits, target, class_weight, config: as given to :func:`row_forward`.
        lse, row_factor: the (N, 3) and (N,) float32 results of :func:`row_forward`.
        row_cotangent: the cotangent of each row's loss, (N,), or a 0-d one for every row
            (any floating dtype).
        scale: an optional 0-d float32 factor of every row's cotangent (the mean's
            1 / denominator).
        out: where to write the gradient (shaped and laid out as the logits: (N, C) with
            classes contiguous, or a contiguous (outer, C, inner)); by default a new tensor
            of the logits' dtype. It may be the logits themselves only where
            nothing else reads them (the fused head's own chunk buffer).

    Returns:
        The gradient, `out` if given.
    """
    num_rows, inner, last = _layout(logits)
    num_classes = logits.shape[1]
    flags = _flags(config, class_weight is not None)
    if out is None:
        out = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    if num_rows == 0 or num_classes == 0:
        return out
    z, q, weight, q_stride, target = _operands(logits, target, class_weight)
    rows, block = _tile(num_rows, num_classes, last=last)
    grid = (triton.cdiv(num_rows, rows), triton.cdiv(num_classes, block))
    K.softmax_backward_kernel[grid](
        z, z.stride(0), q, q_stride, target, weight, num_rows, num_classes,
        config.ignore_index, lse, row_factor, row_cotangent, lse if scale is None else scale,
        out, out.stride(0), inner, **flags, ROW_COT=row_cotangent.ndim == 1,
        HAS_SCALE=scale is not None, ROWS=rows, BLOCK=block, LAST=last,
        num_warps=_warps(rows * block),
    )  # fmt: skip
    return out


def row_partials(
    local_logits: Tensor, target: Tensor, class_offset: int, *, softcap: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """A vocabulary shard's per-row statistics, for the vocabulary-parallel losses.

    Args:
        local_logits: (N, C_local) logits of classes [class_offset, class_offset + C_local).
        target: (N,) global class indices (int64).
        class_offset: the shard's first class.
        softcap: c of soft-capping, applied to the logits first; None: none.

    Returns:
        `(row_max, sum_exp, target_logit)`, each (N,) float32: max_k z_k, Σ_k e^{z_k - max}
        and the target's (capped) logit where the target is on this shard, else 0.
    """
    num_rows, num_classes = local_logits.shape
    device = local_logits.device
    row_max, sum_exp, target_logit = (
        torch.empty(num_rows, dtype=torch.float32, device=device) for _ in "123"
    )
    if num_rows == 0:
        return row_max, sum_exp, target_logit
    z = local_logits if local_logits.stride(1) == 1 else local_logits.contiguous()
    rows, block = _tile(num_rows, num_classes)
    K.partials_kernel[(triton.cdiv(num_rows, rows),)](
        z, z.stride(0), target, num_rows, num_classes, class_offset, row_max, sum_exp,
        target_logit, HAS_CAP=softcap is not None, CAP=float(softcap or 1.0), ROWS=rows,
        BLOCK=block, num_warps=_warps(rows * block),
    )  # fmt: skip
    return row_max, sum_exp, target_logit


# ---------------------------------------------------------------------------------------
# The custom operators


def _loss_dtype(logits: Tensor, keep_dtype: bool) -> torch.dtype:
    return logits.dtype if keep_dtype else torch.float32


@torch.library.custom_op("multiloss::softmax_forward", mutates_args=())
def _forward_op(
    logits: Tensor, target: Tensor, class_weight: Tensor | None, key: list[float], keep_dtype: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(the reduced loss, lse, row factor, the gradient's scale) of a call: the row kernel,
    then one program reducing the rows (none for "none")."""
    config = _config(key)
    out_dtype = _loss_dtype(logits, keep_dtype)
    if config.reduction == "none":
        loss, lse, factor, _ = row_forward(
            logits, target, class_weight, config=config, loss_dtype=out_dtype
        )
        return loss, lse, factor, torch.empty((), dtype=torch.float32, device=logits.device)
    rows, lse, factor, omega = row_forward(logits, target, class_weight, config=config)
    loss = torch.empty((), dtype=out_dtype, device=logits.device)
    scale = torch.empty((), dtype=torch.float32, device=logits.device)
    block = _block(rows.shape[0])
    K.reduce_kernel[(1,)](
        rows, omega, rows.shape[0], loss, scale, MEAN=config.reduction == "mean", BLOCK=block,
        num_warps=_warps(block),
    )  # fmt: skip
    return loss, lse, factor, scale


@_forward_op.register_fake
def _(
    logits: Tensor, target: Tensor, class_weight: Tensor | None, key: list[float], keep_dtype: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    config = _config(key)
    rows = _layout(logits)[0]
    loss_shape = (rows,) if config.reduction == "none" else ()
    loss = logits.new_empty(loss_shape, dtype=_loss_dtype(logits, keep_dtype))
    lse = logits.new_empty((rows, 3), dtype=torch.float32)
    factor = logits.new_empty((rows,), dtype=torch.float32)
    return loss, lse, factor, logits.new_empty((), dtype=torch.float32)


@torch.library.custom_op("multiloss::softmax_backward", mutates_args=())
def _backward_op(
    grad_loss: Tensor,
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    lse: Tensor,
    factor: Tensor,
    scale: Tensor,
    key: list[float],
) -> Tensor:
    """The gradient with respect to the logits, one kernel, out of place."""
    config = _config(key)
    return row_backward(
        logits,
        target,
        class_weight,
        lse,
        factor,
        grad_loss,
        config=config,
        scale=None if config.reduction == "none" else scale,
    )


@_backward_op.register_fake
def _(
    grad_loss: Tensor,
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    lse: Tensor,
    factor: Tensor,
    scale: Tensor,
    key: list[float],
) -> Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    logits, target, class_weight, key, _ = inputs
    _, lse, factor, scale = output
    ctx.mark_non_differentiable(lse, factor, scale)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(logits, target, class_weight, lse, factor, scale)
    ctx.key = key


def _backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
    if grad_loss is None or not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    logits, target, class_weight, lse, factor, scale = ctx.saved_tensors
    if torch.is_grad_enabled():
        # create_graph=True: the gradient must be differentiable; the eager plans' closed
        # forms give its derivative (the kernels have no second order).
        grad = _differentiable_gradient(ctx.key, grad_loss, logits, target, class_weight)
    else:
        grad = _backward_op(grad_loss, logits, target, class_weight, lse, factor, scale, ctx.key)
    return grad, None, None, None, None


def _differentiable_gradient(
    key: list[float], grad_loss: Tensor, logits: Tensor, target: Tensor, class_weight: Tensor | None
) -> Tensor:
    from .._autograd import LossGradient, LossSpec, function
    from .._namespace import compute_dtype

    if logits.ndim == 3 and target.ndim == 1:  # a (outer, C, inner) view's class indices
        target = target.reshape(logits.shape[0], logits.shape[2])
    spec = LossSpec(_config(key), compute_dtype(logits), target.dtype)
    grad: Tensor = function(LossGradient).apply(
        spec, grad_loss.to(spec.compute_dtype), logits, target, class_weight, None, None
    )
    return grad


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def softmax_loss(
    config: SoftmaxConfig,
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    *,
    keep_dtype: bool = False,
) -> Tensor:
    """The reduced loss of a prepared softmax-loss call on the kernels, differentiable with
    respect to the logits.

    Args:
        config: the core's config (``prepare_call``).
        logits: any shape with the class axis at ``config.axis``; float32 or 16-bit.
        target: class indices (the index dtype) or probabilities (float32), as prepared.
        class_weight: the prepared (C,) float32 weights or alpha, or None.
        keep_dtype: return the loss in the logits' dtype (16-bit logits) instead of float32.

    Returns:
        The loss per ``config.reduction``: 0-d, or the logits' shape without the class axis.
    """
    axis = config.axis % logits.ndim
    num_classes = logits.shape[axis]
    loss_shape = logits.shape[:axis] + logits.shape[axis + 1 :]
    inner = math.prod(logits.shape[axis + 1 :])
    last = inner == 1
    outer = math.prod(logits.shape[:axis])
    mode = _flags(config, class_weight is not None)["MODE"]
    if not last and logits.is_contiguous() and _splits(outer * inner, num_classes, mode) == 1:
        # the class axis read through its stride: a (outer, C, inner) view, no copy
        rows = logits.reshape(outer, num_classes, inner)
        if config.hard_target:
            flat_target = target.reshape(-1)
        else:
            flat_target = target.reshape(outer, num_classes, inner)
    else:  # classes last, or copied last (a strided tensor, or few long rows to split)
        rows = (logits if last else logits.movedim(axis, -1)).reshape(-1, num_classes)
        if config.hard_target:
            flat_target = target.reshape(-1)
        else:
            flat_target = target if last else target.movedim(axis, -1)
            flat_target = flat_target.reshape(-1, num_classes)
    loss = _forward_op(rows, flat_target, class_weight, config_key(config), keep_dtype)[0]
    if config.reduction == "none" and loss.shape != loss_shape:
        loss = loss.reshape(loss_shape)
    return loss


__all__ = ["config_key", "row_backward", "row_forward", "row_partials", "softmax_loss"]
