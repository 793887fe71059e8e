r"""Triton kernels of the sigmoid family: binary cross-entropy, sigmoid focal loss, the
asymmetric loss and the varifocal and quality focal losses (each with `weight` and
`pos_weight`), one element-wise kernel for the loss and one for the gradient.

The kernels restate the core's forms (`multiloss._core.sigmoid`,
`multiloss._core.asymmetric`, `multiloss._core.detection`) element by element, in float32
registers for 16-bit logits (float64 for float64 logits): softplus(±x) and σ(±x) from one
exponential (`_math.sigmoid_softplus`), products taken as 0 where their coefficient is 0 (so
0 · inf = 0 at infinite logits), the focal weight of γ < 1 finite at saturated logits
(σσ'·ce / m taken as 0 where m = 0), the asymmetric loss's 1 - q as min(σ' + clip, 1), the
varifocal weight α σ^γ from -softplus(-x) (no negative power of σ), the quality focal weight
|d|^β from d = s σ' - (1 - s) σ (no cancellation where σ saturates). The options are
compile-time flags (`tl.constexpr`): the loss (KIND), γ (0, a small integer: products;
otherwise exp(γ log m); β of the quality focal loss), α, clip, the varifocal loss's label
smoothing, which operands are present and how each is addressed, the reduction.

Operands are read where they lie: `weight` and `pos_weight` broadcast against the logits
through the strides of their expanded views (a stride 0 repeats an entry; nothing of the
logits' size is materialised), the target, the logits and the gradient's cotangent with
their own strides. The dimensions are coalesced jointly first; only a layout that needs
more than three dimensions after coalescing is copied (`.contiguous()`: then a broadcast
weight is materialised at the logits' size).

Reductions, no host sync and deterministic: `"none"` writes the per-element losses; `"sum"`
and `"mean"` (the mean's 1 / n, known from the shape, folded in) are one launch of one
program that walks every block for up to `SINGLE_PROGRAM_LIMIT` elements, else one partial
sum per program and a second one-program launch that sums them. The backward kernel reads
the 0-d cotangent. Forward + backward: 3 launches (4 above the limit), the `ones_like` that
seeds backward included. Double backward (`create_graph=True`) takes the eager plans'
differentiable gradient instead of the backward kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..._core.asymmetric import AsymmetricConfig
from ..._core.detection import QualityFocalConfig, VarifocalConfig
from ..._core.sigmoid import SigmoidConfig
from ._sigmoid_kernels import backward_kernel, forward_kernel, sum_kernel

BLOCK = 1024
"""Elements per program of the element-wise passes."""
SINGLE_PROGRAM_LIMIT = 32768
"""A mean or sum over at most this many elements is one program's work (one launch, which
walks the blocks); above it, one partial sum per program and a second launch sums them."""
SINGLE_PROGRAM_BLOCK = 2048
"""Elements per step of that single program."""
_MAX_INTEGER_POWER = 16
"""Integral exponents up to this are products; larger ones exp(γ log m)."""
_INT32_LIMIT = 2**31 - 1

# The loss of a call (the kernels' KIND)
SIGMOID, ASYMMETRIC, VARIFOCAL, QUALITY_FOCAL = 0, 1, 2, 3

# Addressing modes of an operand (compile-time): absent, contiguous, strided over the
# last 1, 2 or 3 coalesced dimensions
_ABSENT, _IDENTITY = 0, 1
_STRIDED = {1: 4, 2: 3, 3: 2}

# --------------------------------------------------------------------------------------
# Host side: layouts, flags


@dataclass(frozen=True)
class _Layout:
    """The logits' shape coalesced to three dimensions (D0, D1, D2) for every operand at
    once, each operand's strides along them and its addressing mode."""

    sizes: tuple[int, int, int]
    strides: tuple[tuple[int, int, int], ...]
    modes: tuple[int, ...]
    tensors: tuple[Tensor | None, ...]
    int64: bool


def _coalesce(
    shape: tuple[int, ...], strides: list[tuple[int, ...]]
) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dimensions and merge neighbours that every operand walks contiguously."""
    sizes: list[int] = []
    merged: list[list[int]] = [[] for _ in strides]
    for d, size in enumerate(shape):
        if size == 1:
            continue
        if sizes and all(merged[k][-1] == stride[d] * size for k, stride in enumerate(strides)):
            sizes[-1] *= size
            for k, stride in enumerate(strides):
                merged[k][-1] = stride[d]
            continue
        sizes.append(size)
        for k, stride in enumerate(strides):
            merged[k].append(stride[d])
    return sizes, merged


def _layout(shape: tuple[int, ...], operands: list[Tensor | None]) -> _Layout:
    """The joint layout of `operands` (None: absent) over `shape`, each broadcast to it."""
    views = [None if t is None else t.expand(shape) for t in operands]
    present = [v for v in views if v is not None]
    sizes, merged = _coalesce(shape, [tuple(v.stride()) for v in present])
    if len(sizes) > 3:  # rare: copy the operands that are not laid out as the logits
        views = [None if v is None else (v if v.is_contiguous() else v.contiguous()) for v in views]
        present = [v for v in views if v is not None]
        sizes, merged = _coalesce(shape, [tuple(v.stride()) for v in present])
    pad = 3 - len(sizes)
    padded = [1] * pad + sizes
    sizes3 = (padded[0], padded[1], padded[2])
    contiguous = tuple(math.prod(sizes3[d + 1 :]) for d in range(3))
    strides: list[tuple[int, int, int]] = []
    modes: list[int] = []
    found = iter(merged)
    extent = math.prod(sizes3)
    for v in views:
        if v is None:
            strides.append((0, 0, 0))
            modes.append(_ABSENT)
            continue
        s = (0,) * pad + tuple(next(found))
        s3 = (s[0], s[1], s[2])
        strides.append(s3)
        same = all(a == b for a, b, size in zip(s3, contiguous, sizes3, strict=True) if size > 1)
        modes.append(_IDENTITY if same else _STRIDED[len(sizes)])
        extent = max(
            extent, 1 + sum((size - 1) * abs(st) for size, st in zip(sizes3, s3, strict=True))
        )
    return _Layout(
        sizes3, tuple(strides), tuple(modes), tuple(views), extent + BLOCK > _INT32_LIMIT
    )


def _steps(count: int, block: int) -> int:
    """Blocks for one program to walk `count` elements: a power of two ≥ count / block (a
    compile-time loop count; powers of two keep the variants few)."""
    return 1 << max(triton.cdiv(count, block) - 1, 0).bit_length()


def _integral(gamma: float) -> int:
    """γ as a positive integer when it is one and small (a product), else 0."""
    if gamma > 0 and float(gamma).is_integer() and gamma <= _MAX_INTEGER_POWER:
        return int(gamma)
    return 0


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


_TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64}


def _flags(params: tuple[Any, ...]) -> dict[str, Any]:
    """The compile-time flags of a loss from the op's parameters."""
    kind, gamma, alpha, gamma_neg, clip, smoothing = params
    return {
        "KIND": int(kind),
        "GAMMA": float(gamma),
        "GAMMA_INT": _integral(gamma),
        "ALPHA": 0.0 if alpha is None else float(alpha),
        "HAS_ALPHA": alpha is not None,
        "GAMMA_NEG": float(gamma_neg),
        "GAMMA_NEG_INT": _integral(gamma_neg),
        "CLIP": float(clip),
        "SMOOTHING": float(smoothing),
    }


# --------------------------------------------------------------------------------------
# Custom operators


def _loss_dtype(logits: Tensor, keep_dtype: bool) -> torch.dtype:
    """The loss's dtype: the compute dtype, or the logits' own with `keep_dtype`."""
    return logits.dtype if keep_dtype else _compute_dtype(logits.dtype)


def _loss_shape(shape: tuple[int, ...], reduction: str) -> tuple[int, ...]:
    return shape if reduction == "none" else ()


def _launch_forward(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    params: tuple[Any, ...],
    reduction: str,
    keep_dtype: bool,
) -> Tensor:
    shape = tuple(logits.shape)
    n = math.prod(shape)
    dtype = _compute_dtype(logits.dtype)
    out = logits.new_empty(_loss_shape(shape, reduction), dtype=_loss_dtype(logits, keep_dtype))
    if n == 0:
        return out if reduction == "none" else out.zero_()
    layout = _layout(shape, [logits, target, weight, pos_weight])
    x, y, w, pw = layout.tensors
    _d0, d1, d2 = layout.sizes
    strides = [s for triple in layout.strides for s in triple]
    x_mode, y_mode, w_mode, pw_mode = layout.modes
    programs, block, warps, destination, steps = triton.cdiv(n, BLOCK), BLOCK, 4, out, 1
    if reduction == "none":
        mode = 0
    elif n <= SINGLE_PROGRAM_LIMIT:  # one launch: one program sums every block
        mode, programs, block, warps = 2, 1, SINGLE_PROGRAM_BLOCK, 8
        steps = _steps(n, block)
    else:  # partial sums, then their sum
        mode = 1
        destination = logits.new_empty((programs,), dtype=dtype)
    forward_kernel[(programs,)](
        x, y, w if w is not None else x, pw if pw is not None else x, destination, n,
        1.0 / n if reduction == "mean" else 1.0, d1, d2, d1 * d2, *strides,
        **_flags(params), X_MODE=x_mode, Y_MODE=y_mode, W_MODE=w_mode, PW_MODE=pw_mode,
        REDUCE=mode, COMPUTE=_TL_DTYPES[dtype], INT64=layout.int64, STEPS=steps,
        BLOCK_SIZE=block, num_warps=warps,
    )  # fmt: skip
    if mode == 1:
        sum_kernel[(1,)](
            destination, out, programs, COMPUTE=_TL_DTYPES[dtype],
            STEPS=_steps(programs, BLOCK), BLOCK_SIZE=BLOCK, num_warps=4,
        )  # fmt: skip
    return out


def _launch_backward(
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    params: tuple[Any, ...],
    reduction: str,
) -> Tensor:
    shape = tuple(logits.shape)
    n = math.prod(shape)
    dtype = _compute_dtype(logits.dtype)
    grad = torch.empty(shape, dtype=logits.dtype, device=logits.device)
    if n == 0:
        return grad
    reduce = reduction != "none"
    operands = [logits, target, weight, pos_weight, None if reduce else cotangent]
    layout = _layout(shape, operands)
    x, y, w, pw, cot = layout.tensors
    _d0, d1, d2 = layout.sizes
    (sx, sy, sw, sp, sc) = layout.strides
    x_mode, y_mode, w_mode, pw_mode, cot_mode = layout.modes
    if reduce:
        cot, sc = cotangent, (0, 0, 0)
    backward_kernel[(triton.cdiv(n, BLOCK),)](
        cot, x, y, w if w is not None else x, pw if pw is not None else x, grad, n,
        1.0 / n if reduction == "mean" else 1.0, d1, d2, d1 * d2, *sc, *sx, *sy, *sw, *sp,
        **_flags(params), X_MODE=x_mode, Y_MODE=y_mode, W_MODE=w_mode, PW_MODE=pw_mode,
        COT_MODE=cot_mode, REDUCE=reduce, COMPUTE=_TL_DTYPES[dtype], INT64=layout.int64,
        BLOCK_SIZE=BLOCK,
    )  # fmt: skip
    return grad


@torch.library.custom_op("multiloss::sigmoid_loss", mutates_args=())
def _sigmoid_loss_op(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    kind: int,
    gamma: float,
    alpha: float | None,
    gamma_neg: float,
    clip: float,
    smoothing: float,
    reduction: str,
    keep_dtype: bool,
) -> Tensor:
    """The reduced loss of a call."""
    params = (kind, gamma, alpha, gamma_neg, clip, smoothing)
    return _launch_forward(logits, target, weight, pos_weight, params, reduction, keep_dtype)


@_sigmoid_loss_op.register_fake
def _(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    kind: int,
    gamma: float,
    alpha: float | None,
    gamma_neg: float,
    clip: float,
    smoothing: float,
    reduction: str,
    keep_dtype: bool,
) -> Tensor:
    shape = _loss_shape(tuple(logits.shape), reduction)
    return logits.new_empty(shape, dtype=_loss_dtype(logits, keep_dtype))


@torch.library.custom_op("multiloss::sigmoid_loss_backward", mutates_args=())
def _sigmoid_loss_backward_op(
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    kind: int,
    gamma: float,
    alpha: float | None,
    gamma_neg: float,
    clip: float,
    smoothing: float,
    reduction: str,
) -> Tensor:
    """cotangent · ∂loss/∂logits in the logits' dtype (the cotangent of the forward op's
    output: per element for "none", else 0-d)."""
    params = (kind, gamma, alpha, gamma_neg, clip, smoothing)
    return _launch_backward(cotangent, logits, target, weight, pos_weight, params, reduction)


@_sigmoid_loss_backward_op.register_fake
def _(
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    kind: int,
    gamma: float,
    alpha: float | None,
    gamma_neg: float,
    clip: float,
    smoothing: float,
    reduction: str,
) -> Tensor:
    return torch.empty(tuple(logits.shape), dtype=logits.dtype, device=logits.device)


_PARAMETERS = ("kind", "gamma", "alpha", "gamma_neg", "clip", "smoothing", "reduction")
"""The forward op's parameters after its tensors, which the backward op takes (not
`keep_dtype`: the cotangent's dtype is read by the kernel)."""


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    logits, target, weight, pos_weight = inputs[:4]
    ctx.save_for_backward(logits, target, weight, pos_weight)
    ctx.parameters = inputs[4 : 4 + len(_PARAMETERS)]


def _backward(ctx: Any, cotangent: Tensor) -> tuple[Tensor | None, ...]:
    logits, target, weight, pos_weight = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        if torch.is_grad_enabled():
            # create_graph=True: the gradient must be differentiable; the eager plans'
            # closed forms give its derivative (the kernels have no second order)
            grad = _differentiable_gradient(
                ctx.parameters, cotangent, logits, target, weight, pos_weight
            )
        else:
            grad = _sigmoid_loss_backward_op(
                cotangent, logits, target, weight, pos_weight, *ctx.parameters
            )
    return (grad,) + (None,) * (4 + len(_PARAMETERS))


Config = SigmoidConfig | AsymmetricConfig | VarifocalConfig | QualityFocalConfig
"""The configs the kernels take."""


def _config(parameters: tuple[Any, ...]) -> Config:
    """The core's config back from the op's parameters."""
    kind, gamma, alpha, gamma_neg, clip, smoothing, reduction = parameters
    if kind == ASYMMETRIC:
        return AsymmetricConfig(gamma, gamma_neg, clip, reduction)
    if kind == VARIFOCAL:
        return VarifocalConfig(alpha, gamma, smoothing, reduction)
    if kind == QUALITY_FOCAL:
        return QualityFocalConfig(gamma, reduction)
    return SigmoidConfig(gamma=gamma, alpha=alpha, reduction=reduction)


def _parameters(config: Config) -> tuple[int, float, float | None, float, float, float]:
    """The op's parameters of a config (its hyperparameters are Python numbers here)."""
    if isinstance(config, AsymmetricConfig):
        return (ASYMMETRIC, config.gamma_pos, None, config.gamma_neg, config.clip, 0.0)
    if isinstance(config, VarifocalConfig):
        return (VARIFOCAL, config.gamma, config.alpha, 0.0, 0.0, config.label_smoothing)
    if isinstance(config, QualityFocalConfig):
        return (QUALITY_FOCAL, config.beta, None, 0.0, 0.0, 0.0)
    return (SIGMOID, config.gamma, config.alpha, 0.0, 0.0, 0.0)


def _differentiable_gradient(
    parameters: tuple[Any, ...],
    cotangent: Tensor,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
) -> Tensor:
    """cotangent · ∂loss/∂logits by the eager plans, differentiable (second order)."""
    from .._autograd import LossGradient, LossSpec, function

    compute = _compute_dtype(logits.dtype)
    config: Any = _config(parameters)  # LossSpec's annotation omits the asymmetric config
    spec = LossSpec(config, compute, target.dtype)
    grad: Tensor = function(LossGradient).apply(
        spec, cotangent.to(compute), logits, target, weight, pos_weight, None
    )
    return grad


_sigmoid_loss_op.register_autograd(_backward, setup_context=_setup_context)


# --------------------------------------------------------------------------------------
# Entry point


def sigmoid_loss(
    config: Config,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    *,
    keep_dtype: bool = False,
) -> Tensor:
    """The reduced sigmoid-family loss of a prepared call, through the kernels.

    Args:
        config: the core's config (`prepare_call` of binary cross-entropy, the
            sigmoid focal loss, the asymmetric loss, the varifocal or the quality focal
            loss), its hyperparameters Python numbers.
        logits: any shape, float16, bfloat16, float32 or float64 (16-bit computed in
            float32).
        target: the logits' shape, in the compute dtype (as the core's `prepare` leaves it).
        weight: None, or broadcastable to the logits (the element weight).
        pos_weight: None, or broadcastable to the logits (the positive term's weight).
        keep_dtype: return the loss in the logits' dtype (16-bit logits: rounded once from
            float32 in the kernel) instead of the compute dtype.

    Returns:
        The loss in the compute dtype (or the logits' with `keep_dtype`): per element for
            `"none"`, else 0-d (the mean over every element, 0 for none). Differentiable
            with respect to the logits only.

    Raises:
        ValueError: a gradient is wanted for the target, `weight` or `pos_weight` (the
            kernels differentiate the logits only: the engine keeps the eager path then).
    """
    for name, value in (("target", target), ("weight", weight), ("pos_weight", pos_weight)):
        if value is not None and value.requires_grad:
            raise ValueError(
                f"the Triton sigmoid kernels differentiate the logits only; {name} requires grad"
            )
    params = _parameters(config)
    return _sigmoid_loss_op(
        logits, target, weight, pos_weight, *params, config.reduction, keep_dtype
    )


__all__ = ["BLOCK", "sigmoid_loss"]
