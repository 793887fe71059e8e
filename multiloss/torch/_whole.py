"""Whole-tensor kernels for the core's seam: few, fused passes, the plan of accelerators.

Each replaces one of the seam's kernels (:mod:`multiloss._core.kernels`) by PyTorch's
fused primitives over the whole tensor: a small number of kernels whatever the shape
(the slab passes of :mod:`._native` launch a few kernels per cache-sized slab, which a
GPU pays per launch), no host synchronisation (on the CPU, where no device is waited
for, the target's log-probability reads its own largest value to choose its exact form),
no data-dependent shapes. They take
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


CONFIDENT = -0.5
"""ℓ_t above it (p_t > 0.61) is a confident row's, whose fused log-softmax loses digits:
where the target holds the max, lse - z_t = log(1 + S) is formed from 1 + S, which rounds
S away once it is below eps. At or below it the fused form's relative error is at most
about 1.3 eps / |ℓ_t| ≤ 2.6 eps (measured in float32 against float64 on 1.6 million rows
whose target holds the max, the case that loses digits)."""


def _target_log_softmax(
    xp: Any, logits: Tensor, index: Tensor, axis: int
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """m, L and ℓ_t: first the two fused kernels, the log-softmax and a gather (m and L
    not formed), accurate in absolute terms and relatively exact where ℓ_t ≤
    :data:`CONFIDENT`: if z_t is not the row max, ℓ_t = (z_t - m) - L adds two terms of
    one sign (p_t ≤ 1/2), and if it is, L = log(1 + S) ≥ 0.5 carries the rounding of 1 + S
    relatively.

    On the CPU (where this plan serves small calls and reading a value costs no device
    sync), a call with a confident row (ℓ_t > :data:`CONFIDENT`, so far as the fused pass
    tells) is formed again relatively exactly (:func:`_exact_target_log_softmax`); the
    fused form gives 0 from a margin of about 17 in float32. Elsewhere (a GPU without the
    kernel engine, ``meta``, a fake or subclassed tensor whose values are not read here)
    the two kernels' result stands."""
    dtype = compute_dtype(logits)
    log_p = torch.log_softmax(logits, axis, dtype=dtype)
    target_log_p = torch.gather(log_p, axis, index)
    if (
        logits.device.type == "cpu"
        and type(target_log_p) is Tensor
        and target_log_p.numel()
        and float(torch.max(target_log_p)) > CONFIDENT  # NaN: not confident, kept
    ):
        return _exact_target_log_softmax(logits, index, axis, dtype)
    return None, None, target_log_p


def _exact_target_log_softmax(
    logits: Tensor, index: Tensor, axis: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """m, L and ℓ_t relatively exact, in ten kernels: d = z_t - m (exact), the sum S of
    e^{z_k - m} over the classes k ≠ t (the target's entry zeroed), then

        L = log(e^d + S) = log1p(expm1(d) + S),   ℓ_t = d - L,

    which is -log1p(S) where the target holds the max (d = 0: S keeps its digits, where
    log(1 + S) would round them away), and where it does not (S ≥ 1) a sum of two terms of
    one sign. The same numbers as the core's
    :func:`~multiloss._core.kernels.target_log_p_from_others` up to rounding (a few eps,
    both relatively exact)."""
    row_max = torch.amax(logits, axis, keepdim=True).to(dtype)
    shifted = torch.sub(logits, row_max)
    shift = torch.gather(shifted, axis, index)  # d = z_t - m ≤ 0
    others = torch.sum(shifted.exp_().scatter_(axis, index, 0.0), axis, keepdim=True)
    log_sum_exp = torch.expm1(shift).add_(others).log1p_()
    return row_max, log_sum_exp, shift.sub_(log_sum_exp)


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
