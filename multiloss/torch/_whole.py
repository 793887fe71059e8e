"""Whole-tensor kernels for the core's seam: few, fused passes, the plan of accelerators.

Each replaces one of the seam's kernels (:mod:`multiloss._core.kernels`) by PyTorch's
fused primitives over the whole tensor: a small number of kernels whatever the shape
(the slab passes of :mod:`._native` launch a few kernels per cache-sized slab, which a
GPU pays per launch), no host synchronisation, no data-dependent shapes. They take
16-bit logits as they are and compute in float32 (``dtype=`` of the fused softmax
kernels), so no float32 copy of the logits is made.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._core import SigmoidKernels, SoftmaxKernels
from ._namespace import compute_dtype


def _log_softmax(xp: Any, logits: Tensor, axis: int) -> tuple[None, None, Tensor]:
    """ℓ = log_softmax(z) in one kernel; m and L are not formed (the backward pass calls
    this again)."""
    return None, None, torch.log_softmax(logits, axis, dtype=compute_dtype(logits))


def _target_log_softmax(
    xp: Any, logits: Tensor, index: Tensor, axis: int
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """m, L and ℓ_t. On the CPU (where this plan serves small calls and a launch costs
    little): the row max, the exponentials e^{z - m} with the target's entry zeroed in
    place, their sum S over the other classes, then ℓ_t and L as the core's
    :func:`~multiloss._core.kernels.target_log_p_from_others` forms them
    (:func:`log_p_from_others`): ℓ_t relatively exact for a confident row, where the fused
    log-softmax gives 0 from a margin of about 17 in float32. Elsewhere (a GPU without the
    kernel engine, ``meta``) two kernels, the fused log-softmax and a gather, accurate in
    absolute terms (m and L not formed): the relatively exact form takes 13 more
    launches."""
    dtype = compute_dtype(logits)
    if logits.device.type != "cpu":
        log_p = torch.log_softmax(logits, axis, dtype=dtype)
        return None, None, torch.gather(log_p, axis, index)
    row_max = torch.amax(logits, axis, keepdim=True).to(dtype)
    shifted = torch.sub(logits, row_max).exp_().scatter_(axis, index, 0.0)
    others = torch.sum(shifted, axis, keepdim=True)
    target_logit = torch.gather(logits, axis, index).to(dtype)
    return row_max, *log_p_from_others(row_max, others, target_logit)


def log_p_from_others(
    row_max: Tensor, others: Tensor, target_logit: Tensor
) -> tuple[Tensor, Tensor]:
    """The core's :func:`~multiloss._core.kernels.target_log_p_from_others` (the same
    numbers) in PyTorch's own operations, fewer of them: L and ℓ_t from m, the sum over
    the other classes S and z_t."""
    shift = target_logit - row_max  # z_t - m ≤ 0
    log_sum_exp = torch.exp(shift).add_(others).log_()
    confident = torch.log1p(others).neg_()  # where t holds the max: -log1p(S)
    return log_sum_exp, torch.where(shift == 0, confident, shift.sub_(log_sum_exp))


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
    """softmax(z), scaled, with the target entry set: three kernels (the fused softmax
    recomputes the row max and sum instead of reading them)."""
    p = torch.softmax(logits, axis, dtype=compute_dtype(logits))
    return p.mul_(scale).scatter_(axis, index, target_entry)


WHOLE = SoftmaxKernels(
    log_softmax=_log_softmax,
    target_log_softmax=_target_log_softmax,
    scaled_softmax_with_target=_scaled_softmax_with_target,
)
"""The softmax kernels of the whole-tensor plan."""


_SOFTPLUS_THRESHOLD = {torch.float32: 20.0, torch.float64: 40.0}
"""Above it ``F.softplus`` returns x itself: log1p(e^-x) is then below half an ulp of x
(e^-20 ≈ 2e-9 against 20 · 6e-8 in float32; e^-40 ≈ 4e-18 against 40 · 1.1e-16 in
float64)."""


def _softplus(x: Tensor) -> Tensor:
    """softplus(x) in one kernel, exact to a few ulps in both tails: log1p(e^x), which
    keeps e^x's relative accuracy far below 0, and x itself above the threshold."""
    return F.softplus(x, threshold=_SOFTPLUS_THRESHOLD[x.dtype])


def _softplus_pair(xp: Any, x: Tensor) -> tuple[Tensor, Tensor]:
    """softplus(x) and softplus(-x): three kernels (one negation)."""
    return _softplus(x), _softplus(torch.neg(x))


def _sigmoid_pair(xp: Any, x: Tensor) -> tuple[Tensor, Tensor]:
    """σ(x) and σ(-x), each by PyTorch's sigmoid kernel (exact in both tails)."""
    return torch.sigmoid(x), torch.sigmoid(torch.neg(x))


WHOLE_SIGMOID = SigmoidKernels(softplus_pair=_softplus_pair, sigmoid_pair=_sigmoid_pair)
"""The sigmoid kernels of the whole-tensor plan (used by the slab plan's slabs too)."""
