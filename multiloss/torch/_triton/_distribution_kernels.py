r"""Triton kernels of the distribution focal loss (`multiloss._core.distribution`).

A program takes BLOCK_R rows (a row: the n bins of one target element, read through the
bin stride) and walks their bins in CHUNKS chunks of BLOCK_N. Forward keeps an online max
m and Σ exp(z - m) and gathers z_k, z_{k+1}; per row

    lse = m + log Σ exp(z - m),   L = -w · [c_k (z_k - lse) + c_{k+1} (z_{k+1} - lse)],

c_k = k + 1 - t, c_{k+1} = t - k, k = min(⌊t⌋, n - 2), a product taken as 0 where its mass
is 0, and NaN for a target outside [0, n - 1] (or NaN). The row's float32 lse is stored for
backward, which writes w · e · (exp(z - lse) - c), c_j = max(1 - |j - t|, 0), e the loss's
cotangent (times 1 / count for "mean").
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._math import exp


@triton.jit
def _row_addresses(pid, rows, inner, s_outer, s_inner, BLOCK_R: tl.constexpr):
    r = pid.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    live = r < rows
    base = (r // inner) * s_outer + (r % inner) * s_inner
    return r, live, base


@triton.jit
def _two_hot(T, r, live, n):
    """k, c_k, c_{k+1}, the safe t and the NaN mask (1 where the target is good)."""
    t = tl.load(T + r, mask=live, other=0.0).to(tl.float32)
    valid = (t >= 0.0) & (t <= (n - 1).to(tl.float32))  # False for NaN
    safe = tl.where(valid, t, 0.0)
    low = tl.minimum(tl.floor(safe), (n - 2).to(tl.float32))
    high_mass = safe - low
    mask = tl.where(valid, 1.0, float("nan"))
    return low.to(tl.int32), 1.0 - high_mass, high_mass, safe, mask


@triton.jit
def distribution_forward_kernel(
    X, T, W, OUT, LSE, rows, n, inner, s_outer, s_bin, s_inner, scale,
    HAS_W: tl.constexpr, REDUCE: tl.constexpr, CHUNKS: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """REDUCE 0: OUT[r] = L_r; 1: OUT[pid] = scale · Σ of this program's L_r (a partial
    sum, or the result when one program runs). LSE[r] = the row's lse (float32)."""
    pid = tl.program_id(0)
    r, live, base = _row_addresses(pid, rows, inner, s_outer, s_inner, BLOCK_R)
    low, low_mass, high_mass, _, mask = _two_hot(T, r, live, n)
    row_max = tl.full((BLOCK_R,), float("-inf"), tl.float32)
    total = tl.zeros((BLOCK_R,), tl.float32)
    z_low = tl.zeros((BLOCK_R,), tl.float32)
    z_high = tl.zeros((BLOCK_R,), tl.float32)
    for chunk in range(CHUNKS):
        j = chunk * BLOCK_N + tl.arange(0, BLOCK_N)
        inside = live[:, None] & (j[None, :] < n)
        z = tl.load(X + base[:, None] + j[None, :].to(tl.int64) * s_bin, mask=inside,
                    other=float("-inf")).to(tl.float32)  # fmt: skip
        new_max = tl.maximum(row_max, tl.max(z, axis=1))
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        total = total * tl.where(row_max == new_max, 1.0, exp(row_max - shift))
        total += tl.sum(tl.where(inside, exp(z - shift[:, None]), 0.0), axis=1)
        row_max = new_max
        z_low += tl.sum(tl.where(j[None, :] == low[:, None], z, 0.0), axis=1)
        z_high += tl.sum(tl.where(j[None, :] == low[:, None] + 1, z, 0.0), axis=1)
    log_total = tl.log(tl.where(live, total, 1.0))  # no log 0 in the dead rows
    lse = row_max + log_total
    low_term = tl.where(low_mass == 0.0, 0.0, low_mass * ((z_low - row_max) - log_total))
    high_term = tl.where(high_mass == 0.0, 0.0, high_mass * ((z_high - row_max) - log_total))
    loss = -(low_term + high_term) * mask
    if HAS_W:
        loss = loss * tl.load(W + r, mask=live, other=0.0).to(tl.float32)
    tl.store(LSE + r, lse, mask=live)
    if REDUCE == 0:
        tl.store(OUT + r, loss.to(OUT.dtype.element_ty), mask=live)
    else:
        partial = tl.sum(tl.where(live, loss, 0.0), axis=0) * scale
        tl.store(OUT + pid, partial.to(OUT.dtype.element_ty))


@triton.jit
def distribution_backward_kernel(
    COT, X, T, W, LSE, GRAD, rows, n, inner, s_outer, s_bin, s_inner, g_outer, g_bin,
    g_inner, scale,
    HAS_W: tl.constexpr, PER_ROW: tl.constexpr, CHUNKS: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """GRAD = e · w · (p - c) (out of place, the logits' dtype); e is COT[r] (PER_ROW)
    or the 0-d COT, times `scale`."""
    pid = tl.program_id(0)
    r, live, base = _row_addresses(pid, rows, inner, s_outer, s_inner, BLOCK_R)
    out = (r // inner) * g_outer + (r % inner) * g_inner
    _, _, _, position, mask = _two_hot(T, r, live, n)
    if PER_ROW:
        factor = tl.load(COT + r, mask=live, other=0.0).to(tl.float32)
    else:
        factor = tl.load(COT).to(tl.float32) + tl.zeros((BLOCK_R,), tl.float32)
    factor = factor * scale * mask
    if HAS_W:
        factor = factor * tl.load(W + r, mask=live, other=0.0).to(tl.float32)
    lse = tl.load(LSE + r, mask=live, other=0.0)
    for chunk in range(CHUNKS):
        j = chunk * BLOCK_N + tl.arange(0, BLOCK_N)
        inside = live[:, None] & (j[None, :] < n)
        z = tl.load(X + base[:, None] + j[None, :].to(tl.int64) * s_bin, mask=inside,
                    other=0.0).to(tl.float32)  # fmt: skip
        p = exp(z - lse[:, None])
        two_hot = tl.maximum(1.0 - tl.abs(j[None, :].to(tl.float32) - position[:, None]), 0.0)
        grad = factor[:, None] * (p - two_hot)
        tl.store(GRAD + out[:, None] + j[None, :].to(tl.int64) * g_bin,
                 grad.to(GRAD.dtype.element_ty), mask=inside)  # fmt: skip
