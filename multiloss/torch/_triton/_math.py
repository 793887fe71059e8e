r"""Accurate element-wise functions for the Triton kernels, written from `tl.exp` and
`tl.log` only (no libdevice, no inline assembly: Triton's interpreter runs them).

Every function takes a float32 or float64 tensor (kernels convert 16-bit inputs to
float32 first) and returns values of its dtype, accurate to a few ulps over the whole
range, with the limits at ±inf and NaN propagated:

* `log1p(x)`: log(1 + x); the series 2·atanh(s), s = x / (2 + x), for |x| < 1/2, and
  log(u)·x/(u - 1), u = 1 + x, beyond (Goldberg's correction of the rounding of u).
  Near 0 it never relies on `tl.log` being accurate close to 1 (an approximate GPU log
  is not, in relative terms).
* `expm1(x)`: eˣ - 1; its Taylor polynomial for |x| < 1, eˣ - 1 beyond (where the
  subtraction loses less than one bit).
* `tanh(x)`: -a / (2 + a), a = expm1(-2|x|), with the sign of x: exact near 0 and
  exactly ±1 in the tails, no overflow.
* `softplus_pair(x)`: softplus(x) and softplus(-x), each max(±x, 0) + log1p(e^{-|x|}).
* `sigmoid_pair(x)`: σ(x) and σ(-x) from e = e^{-|x|} as 1 / (1 + e) and e / (1 + e):
  the small one is never formed as 1 - σ (no cancellation).
* `sigmoid_softplus(x)`: both pairs from one exp and one log1p.
* `exp(x)`: eˣ by a reduction to |r| ≤ ln 2 / 2 (float32 `tl.exp` on NVIDIA GPUs is
  `ex2.approx` of x·log₂e, which loses |x|·2⁻²⁴ relative); every exponential here goes
  through it.
* `div(a, b)`: a / b rounded to nearest in float32 too (Triton's `/` is `div.full.f32`,
  2 ulps, on NVIDIA GPUs); every division here goes through it.

The polynomial degree follows the dtype (a compile-time branch): float64 gets the
terms it needs for its 53 bits.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def exp(x):
    """eˣ to a few ulps over the whole range, also on NVIDIA GPUs, where float32 `tl.exp`
    is `ex2.approx` of x·log₂e, whose rounding costs |x|·2⁻²⁴ relative (40 ulps at
    |x| = 80): x = k·ln 2 + r (Cody and Waite, |r| ≤ ln 2 / 2), `tl.exp(r)` times 2^k
    formed exactly from its bits. float64 is `tl.exp` itself."""
    if x.dtype == tl.float64:
        result = tl.exp(x)
    else:
        # clamped so that 2^k splits into two normal powers; e^89 overflows to inf and
        # e^-110 underflows to 0 by the products themselves
        clamped = tl.minimum(tl.maximum(x, -110.0), 89.0)
        k = tl.floor(clamped * 1.4426950408889634 + 0.5)
        r = (clamped - k * 0.693145751953125) - k * 1.428606765330187e-06
        power = k.to(tl.int32)
        half = power >> 1
        low = ((half + 127) << 23).to(tl.float32, bitcast=True)
        high = ((power - half + 127) << 23).to(tl.float32, bitcast=True)
        result = tl.where(x != x, x, (tl.exp(r) * low) * high)
    return result


@triton.jit
def div(numerator, denominator):
    """numerator / denominator rounded to nearest (IEEE) also in float32, where Triton's
    `/` compiles to the approximate `div.full.f32` (2 ulps) on NVIDIA GPUs."""
    if denominator.dtype == tl.float32:
        quotient = tl.math.div_rn(numerator, denominator)
    else:
        quotient = numerator / denominator
    return quotient


@triton.jit
def log1p(x):
    """log(1 + x), accurate to a few ulps for every x ≥ -1 (NaN below, -inf at -1)."""
    small = tl.abs(x) < 0.5
    # the series' argument, with a harmless denominator where it is not used
    t = tl.where(small, x, 0.0)
    s = div(t, 2.0 + t)
    s2 = s * s
    # 2·atanh(s) = 2 (s + s³/3 + s⁵/5 + …), |s| ≤ 1/3
    if x.dtype == tl.float64:
        p = s2 * (1.0 / 33.0) + 1.0 / 31.0
        p = p * s2 + 1.0 / 29.0
        p = p * s2 + 1.0 / 27.0
        p = p * s2 + 1.0 / 25.0
        p = p * s2 + 1.0 / 23.0
        p = p * s2 + 1.0 / 21.0
        p = p * s2 + 1.0 / 19.0
        p = p * s2 + 1.0 / 17.0
    else:
        p = s2 * (1.0 / 19.0) + 1.0 / 17.0
    p = p * s2 + 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    series = 2.0 * (s + s * (s2 * p))
    u = 1.0 + x
    d = u - 1.0
    log_u = tl.log(u)
    # where u - 1 rounds to u (x ≥ 2^24 in float32, +inf), log u is log1p(x) as it is
    corrected = tl.where(d == u, log_u, log_u * div(x, tl.where(small, 1.0, d)))
    return tl.where(small, series, corrected)


@triton.jit
def expm1(x):
    """eˣ - 1, accurate to a few ulps for every x (-1 at -inf, inf at +inf)."""
    small = tl.abs(x) < 1.0
    t = tl.where(small, x, 0.0)
    if x.dtype == tl.float64:
        p = t * (1.0 / 6402373705728000.0) + 1.0 / 355687428096000.0  # 1/18!, 1/17!
        p = p * t + 1.0 / 20922789888000.0
        p = p * t + 1.0 / 1307674368000.0
        p = p * t + 1.0 / 87178291200.0
        p = p * t + 1.0 / 6227020800.0
        p = p * t + 1.0 / 479001600.0
    else:
        p = t * (1.0 / 6227020800.0) + 1.0 / 479001600.0  # 1/13!, 1/12!
    p = p * t + 1.0 / 39916800.0
    p = p * t + 1.0 / 3628800.0
    p = p * t + 1.0 / 362880.0
    p = p * t + 1.0 / 40320.0
    p = p * t + 1.0 / 5040.0
    p = p * t + 1.0 / 720.0
    p = p * t + 1.0 / 120.0
    p = p * t + 1.0 / 24.0
    p = p * t + 1.0 / 6.0
    p = p * t + 0.5
    series = t + t * (t * p)
    return tl.where(small, series, exp(x) - 1.0)


@triton.jit
def tanh(x):
    """tanh(x), accurate to a few ulps, ±1 in the tails (no overflow)."""
    a = expm1(-2.0 * tl.abs(x))
    magnitude = div(-a, 2.0 + a)
    return tl.where(x < 0, -magnitude, magnitude)


@triton.jit
def softplus_pair(x):
    """softplus(x) = log(1 + eˣ) and softplus(-x), each exact in both tails (inf on the
    side that diverges at ±inf, 0 on the other)."""
    tail = log1p(exp(-tl.abs(x)))
    return tl.maximum(x, 0.0) + tail, tl.maximum(-x, 0.0) + tail


@triton.jit
def sigmoid_pair(x):
    """σ(x) and σ(-x), each exact in both tails (σ(-x) is not formed as 1 - σ(x))."""
    e = exp(-tl.abs(x))
    big = div(tl.full(e.shape, 1.0, e.dtype), 1.0 + e)
    small = e * big
    positive = x >= 0
    return tl.where(positive, big, small), tl.where(positive, small, big)


@triton.jit
def sigmoid_softplus(x):
    """softplus(x), softplus(-x), σ(x) and σ(-x) from one exp and one log1p."""
    e = exp(-tl.abs(x))
    tail = log1p(e)
    big = div(tl.full(e.shape, 1.0, e.dtype), 1.0 + e)
    small = e * big
    positive = x >= 0
    return (
        tl.maximum(x, 0.0) + tail,
        tl.maximum(-x, 0.0) + tail,
        tl.where(positive, big, small),
        tl.where(positive, small, big),
    )
