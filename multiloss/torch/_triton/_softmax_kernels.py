r"""The Triton kernels of the softmax family (cross-entropy, focal, poly), every option a
compile-time flag. The custom operators and the row functions that launch them are in
:mod:`.softmax`.

Notation (DESIGN.md §5): per row z (capped to c·tanh(z/c) with soft-capping first),
ℓ_k = z_k - lse, p_k = e^{ℓ_k}, u_k = 1 - p_k, coefficients c_k = q_k·w_k and the term f
with slope A (:mod:`multiloss._core.terms`). The kernels know three modes:

* ``MODE = 0``: class indices without label smoothing, any term. The loss is c_t·f(ℓ_t);
  the gradient is rank one, (F + Z)·p - F·onehot(t) with F = c_t·A(ℓ_t) one number per
  row. The loss of a confident row is relatively accurate: lse - z_t is taken as
  log1p(Σ_{k≠t} e^{z_k - z_t}) (the sum over the other classes, kept apart from the
  target's own term), so p_t, u_t and ℓ_t are exact also where p_t rounds to 1.
* ``MODE = 1``: cross-entropy with label smoothing and/or probability targets: the loss
  is linear in ℓ, Σ_k c_k·(lse - z_k) = Σ_k c_k (m - z_k) + (Σ_k c_k)·log Σ_k e^{z_k - m},
  both parts ≥ 0 (nothing cancels); one read of the row.
* ``MODE = 2``: focal or poly with label smoothing or probability targets: a second
  loop over the row, once lse is known, for Σ c_k f(ℓ_k) and S = Σ c_k A(ℓ_k).

The forward pass keeps per row, in float32: the loss, lse, the row factor (F for mode 0,
S = Σ_k c_k A_k for modes 1 and 2) and the row's share of the mean's denominator ω
(w_t·mask for PyTorch's weighted mean, the row mask, or 1 for probability targets), which
also weights the z-loss λ·ω·lse² (its gradient Z·p, Z = 2λ·ω·lse).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._math import div, expm1, log1p, tanh

_BIG_MARGIN = 60.0
"""Beyond this margin m - z_t, lse - z_t is taken as d + log(Σ) (e^d would overflow)."""


@triton.jit
def _power(u, E: tl.constexpr, E_INT: tl.constexpr):
    """u ** E for u in [0, 1]: repeated products for a small integral E (exactly 1 for
    E = 0, also at u = 0), exp(E·log u) otherwise (0 at u = 0 for E > 0)."""
    if E_INT >= 0:
        result = u * 0.0 + 1.0
        for _ in tl.static_range(E_INT):
            result = result * u
    else:
        result = tl.exp(E * tl.log(u))
    return result


@triton.jit
def _term(lp, p, u, GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr):
    """f(ℓ) and A(ℓ) of the focal term (poly with EPS ≠ 0) from ℓ ≤ 0, p and u = 1 - p."""
    ug = _power(u, GAMMA, GAMMA_INT)
    value = -ug * lp
    if GAMMA == 0:
        slope = u * 0.0 + 1.0
    elif GAMMA >= 1:
        # p·ℓ → 0 as ℓ → -inf: ℓ bounded below by the lowest float32 gives that limit
        p_l = p * tl.maximum(lp, -3.4028234663852886e38)
        slope = _power(u, GAMMA - 1, GAMMA_INT - 1) * (u - GAMMA * p_l)
    else:
        near = tl.abs(lp) < 0.1
        l2 = lp * lp
        series = -1.0 + lp / 2 + l2 * (-1.0 / 12 + l2 * (1.0 / 720 - l2 / 30240))
        r = tl.where(near, series, div(lp, tl.where(near, 1.0, u)))
        p_r = tl.where(p == 0, 0.0, p * r)
        slope = ug * (1.0 - GAMMA * p_r)
    if EPS != 0:
        value = value + EPS * (ug * u)
        slope = slope + (EPS * (GAMMA + 1)) * (p * ug)
    return value, slope


@triton.jit
def _load_z(ptrs, inb, HAS_CAP: tl.constexpr, CAP: tl.constexpr):
    """Logits in float32, capped; -inf outside the row."""
    z = tl.load(ptrs, mask=inb, other=float("-inf")).to(tl.float32)
    if HAS_CAP:
        z = tl.where(inb, CAP * tanh(z / CAP), float("-inf"))
    return z


@triton.jit
def _cap_scalar(z, HAS_CAP: tl.constexpr, CAP: tl.constexpr):
    z = z.to(tl.float32)
    if HAS_CAP:
        z = CAP * tanh(z / CAP)
    return z


@triton.jit
def _row_target(target_ptr, weight_ptr, row, C, IGNORE, HAS_W: tl.constexpr, CHECKED: tl.constexpr):
    """The class index t (clamped into [0, C)), the row mask (1, 0 if ignored, NaN for an
    unchecked index out of range) and w_t (1 without weights)."""
    given = tl.load(target_ptr + row)
    counted = given != IGNORE
    t = tl.minimum(tl.maximum(given, 0), C - 1)
    mask = tl.where(counted, 1.0, 0.0)
    if not CHECKED:
        mask = tl.where(counted & (t != given), float("nan"), mask)
    w_t = tl.load(weight_ptr + t).to(tl.float32) if HAS_W else 1.0
    return t, mask, w_t


@triton.jit
def _soft_coefficient(
    q_row_ptr, weight_ptr, cols, inb, C,
    HARD: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr,
):  # fmt: skip
    """The per-class coefficient that mode 1 accumulates: w_k for hard targets (the row's
    ε/C·mask is applied once per row), ((1-ε)·q_k + ε/C)·w_k for probabilities."""
    if HARD:
        c = tl.where(inb, 1.0, 0.0)
    else:
        q = tl.load(q_row_ptr + cols, mask=inb, other=0.0).to(tl.float32)
        c = q * (1.0 - SMOOTH) + SMOOTH / C
        c = tl.where(inb, c, 0.0)
    if HAS_W:
        c = c * tl.load(weight_ptr + cols, mask=inb, other=0.0).to(tl.float32)
    return c


@triton.jit
def _row_stats(
    z_row_ptr, q_row_ptr, weight_ptr, t, lo, hi, C,
    HARD: tl.constexpr, ACC: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One read of columns [lo, hi) with an online softmax, per lane, then combined:
    the max m, Σ e^{z_k - m} (without the target's own term for hard targets), and for
    ACC the coefficient sum Σ c_k and Σ c_k (m - z_k) (m taken as 0 where it is -inf)."""
    offsets = tl.arange(0, BLOCK)
    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    w_sum = tl.zeros([BLOCK], tl.float32)
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(lo, hi, BLOCK):
        cols = start + offsets
        inb = cols < hi
        z = _load_z(z_row_ptr + cols, inb, HAS_CAP, CAP)
        m_new = tl.maximum(m, z)
        ref_new = tl.where(m_new == float("-inf"), 0.0, m_new)
        e = tl.exp(z - ref_new)
        if HARD:
            e = tl.where(cols == t, 0.0, e)
        s = s * tl.exp(m - ref_new) + e
        if ACC:
            ref_old = tl.where(m == float("-inf"), 0.0, m)
            c = _soft_coefficient(q_row_ptr, weight_ptr, cols, inb, C, HARD, HAS_W, SMOOTH)
            acc = acc + (ref_new - ref_old) * w_sum + tl.where(c == 0, 0.0, c * (ref_new - z))
            w_sum = w_sum + c
        m = m_new
    row_max = tl.max(m, axis=0)
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)
    total = tl.sum(s * tl.exp(m - ref), axis=0)
    if ACC:
        lane_ref = tl.where(m == float("-inf"), 0.0, m)
        acc_total = tl.sum(acc + tl.where(w_sum == 0, 0.0, (ref - lane_ref) * w_sum), axis=0)
        w_total = tl.sum(w_sum, axis=0)
    else:
        acc_total = 0.0
        w_total = 0.0
    return row_max, total, w_total, acc_total


@triton.jit
def _finish_row(
    z_row_ptr, q_row_ptr, weight_ptr, target_ptr, row, C, IGNORE,
    row_max, s_others, w_total, acc_total,
    loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """The row's loss, statistics (m, log Σ e^{z - m}, lse - z_t), factor and ω from
    what :func:`_row_stats` gathered."""
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)
    if HARD:
        t, mask, w_t = _row_target(target_ptr, weight_ptr, row, C, IGNORE, HAS_W, CHECKED)
        z_t = _cap_scalar(tl.load(z_row_ptr + t), HAS_CAP, CAP)
        margin = ref - z_t
        s_all = s_others + tl.exp(z_t - ref)
        big = margin > 60.0
        x = s_others * tl.exp(tl.minimum(margin, 60.0))
        nll = tl.where(big, margin + tl.log(s_all), log1p(x))  # lse - z_t
        l_t = -nll
        p_t = tl.where(big, tl.exp(l_t), div(1.0, 1.0 + x))
        u_t = tl.where(big, -expm1(l_t), div(x, 1.0 + x))
        omega = mask * w_t if OMEGA_W else mask
    else:
        nll = 0.0
        t = -1
        mask = 1.0
        s_all = s_others
        omega = 1.0
    log_sum = tl.log(s_all)
    lse = ref + log_sum
    if MODE == 0:
        c_t = w_t * mask
        value, slope = _term(l_t, p_t, u_t, GAMMA, GAMMA_INT, EPS)
        loss = tl.where(c_t == 0, 0.0, c_t * value)
        factor = c_t * slope
    elif MODE == 1:
        soft = acc_total + tl.where(w_total == 0, 0.0, w_total * log_sum)
        if HARD:
            c_hard = (1.0 - SMOOTH) * w_t * mask
            c_soft = mask * (SMOOTH / C)
            loss = tl.where(c_hard == 0, 0.0, c_hard * nll)
            loss = loss + tl.where(c_soft == 0, 0.0, c_soft * soft)
            factor = c_hard + c_soft * w_total
        else:
            loss = soft
            factor = w_total
    else:
        offsets = tl.arange(0, BLOCK)
        value_sum = tl.zeros([BLOCK], tl.float32)
        slope_sum = tl.zeros([BLOCK], tl.float32)
        for start in range(0, C, BLOCK):
            cols = start + offsets
            inb = cols < C
            z = _load_z(z_row_ptr + cols, inb, HAS_CAP, CAP)
            c = _full_coefficient(q_row_ptr, weight_ptr, cols, inb, C, t, mask, HARD, HAS_W, SMOOTH)
            lp = tl.minimum((z - ref) - log_sum, 0.0)
            value, slope = _term(lp, tl.exp(lp), -expm1(lp), GAMMA, GAMMA_INT, EPS)
            value_sum = value_sum + tl.where(c == 0, 0.0, c * value)
            slope_sum = slope_sum + tl.where(c == 0, 0.0, c * slope)
        loss = tl.sum(value_sum, axis=0)
        factor = tl.sum(slope_sum, axis=0)
    if Z_LOSS != 0:
        loss = loss + tl.where(omega == 0, 0.0, Z_LOSS * omega * (lse * lse))
    tl.store(loss_ptr + row, loss.to(loss_ptr.dtype.element_ty))
    tl.store(stats_ptr + 3 * row, ref)
    tl.store(stats_ptr + 3 * row + 1, log_sum)
    tl.store(stats_ptr + 3 * row + 2, nll)
    tl.store(factor_ptr + row, factor)
    tl.store(omega_ptr + row, omega)


@triton.jit
def _full_coefficient(
    q_row_ptr, weight_ptr, cols, inb, C, t, mask,
    HARD: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr,
):  # fmt: skip
    """c_k = q_k·w_k with q the smoothed target distribution (0 outside the row)."""
    if HARD:
        c = mask * tl.where(cols == t, 1.0 - SMOOTH + SMOOTH / C, SMOOTH / C)
        c = tl.where(inb, c, 0.0)
    else:
        q = tl.load(q_row_ptr + cols, mask=inb, other=0.0).to(tl.float32)
        c = tl.where(inb, q * (1.0 - SMOOTH) + SMOOTH / C, 0.0)
    if HAS_W:
        c = c * tl.load(weight_ptr + cols, mask=inb, other=0.0).to(tl.float32)
    return c


@triton.jit
def softmax_forward_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, C, IGNORE,
    loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """One program per row: statistics, then the row's results (a second loop for
    mode 2 only)."""
    row = tl.program_id(0).to(tl.int64)
    z_row = z_ptr + row * z_stride
    q_row = q_ptr + row * q_stride
    if HARD:
        t, _, _ = _row_target(target_ptr, weight_ptr, row, C, IGNORE, HAS_W, CHECKED)
    else:
        t = -1
    row_max, s_others, w_total, acc_total = _row_stats(
        z_row, q_row, weight_ptr, t, 0, C, C,
        HARD, MODE == 1, HAS_W, SMOOTH, HAS_CAP, CAP, BLOCK,
    )  # fmt: skip
    _finish_row(
        z_row, q_row, weight_ptr, target_ptr, row, C, IGNORE,
        row_max, s_others, w_total, acc_total,
        loss_ptr, stats_ptr, factor_ptr, omega_ptr,
        MODE, HARD, HAS_W, CHECKED, OMEGA_W, SMOOTH, Z_LOSS,
        GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, BLOCK,
    )  # fmt: skip


@triton.jit
def softmax_partials_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, C, IGNORE, SPAN, SPLITS,
    part_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    SMOOTH: tl.constexpr, HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Split rows (modes 0 and 1): program (row, j) reads columns [j·SPAN, (j+1)·SPAN)
    and writes its statistics (m, Σe, Σc, Σc(m - z)) to part[row, :, j]."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    z_row = z_ptr + row * z_stride
    q_row = q_ptr + row * q_stride
    if HARD:
        t, _, _ = _row_target(target_ptr, weight_ptr, row, C, IGNORE, HAS_W, CHECKED)
    else:
        t = -1
    lo = split * SPAN
    hi = tl.minimum(lo + SPAN, C)
    row_max, s_part, w_part, acc_part = _row_stats(
        z_row, q_row, weight_ptr, t, lo, hi, C,
        HARD, MODE == 1, HAS_W, SMOOTH, HAS_CAP, CAP, BLOCK,
    )  # fmt: skip
    base = part_ptr + row * 4 * SPLITS + split
    tl.store(base, row_max)
    tl.store(base + SPLITS, s_part)
    tl.store(base + 2 * SPLITS, w_part)
    tl.store(base + 3 * SPLITS, acc_part)


@triton.jit
def softmax_combine_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, C, IGNORE, SPLITS,
    part_ptr, loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Split rows: combine the statistics of a row's programs, then its results."""
    row = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_S)
    valid = j < SPLITS
    base = part_ptr + row * 4 * SPLITS + j
    m = tl.load(base, mask=valid, other=float("-inf"))
    s = tl.load(base + SPLITS, mask=valid, other=0.0)
    w = tl.load(base + 2 * SPLITS, mask=valid, other=0.0)
    acc = tl.load(base + 3 * SPLITS, mask=valid, other=0.0)
    row_max = tl.max(m, axis=0)
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)
    s_total = tl.sum(s * tl.exp(m - ref), axis=0)
    lane_ref = tl.where(m == float("-inf"), 0.0, m)
    acc_total = tl.sum(acc + tl.where(w == 0, 0.0, (ref - lane_ref) * w), axis=0)
    w_total = tl.sum(w, axis=0)
    _finish_row(
        z_ptr + row * z_stride, q_ptr + row * q_stride, weight_ptr, target_ptr, row, C,
        IGNORE, row_max, s_total, w_total, acc_total,
        loss_ptr, stats_ptr, factor_ptr, omega_ptr,
        MODE, HARD, HAS_W, CHECKED, OMEGA_W, SMOOTH, Z_LOSS,
        GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, 16,
    )  # fmt: skip


@triton.jit
def reduce_kernel(
    loss_ptr, omega_ptr, N, out_ptr, scale_ptr, MEAN: tl.constexpr, BLOCK: tl.constexpr
):
    """One program: Σ of the row losses; for the mean, times 1/Σω (0 where Σω = 0, NaN
    where it is NaN). Writes the reduced loss and the scale its gradient takes."""
    offsets = tl.arange(0, BLOCK)
    total = tl.zeros([BLOCK], tl.float32)
    denominator = tl.zeros([BLOCK], tl.float32)
    for start in range(0, N, BLOCK):
        rows = start + offsets
        inb = rows < N
        total += tl.load(loss_ptr + rows, mask=inb, other=0.0)
        if MEAN:
            denominator += tl.load(omega_ptr + rows, mask=inb, other=0.0)
    loss = tl.sum(total, axis=0)
    if MEAN:
        d = tl.sum(denominator, axis=0)
        scale = tl.where(d == 0, 0.0, div(1.0, tl.where(d == 0, 1.0, d)))
        loss = tl.where(scale == 0, 0.0, loss * scale)
    else:
        scale = loss * 0.0 + 1.0
    tl.store(out_ptr, loss.to(out_ptr.dtype.element_ty))
    tl.store(scale_ptr, scale)


@triton.jit
def softmax_backward_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, C, IGNORE,
    stats_ptr, factor_ptr, cot_ptr, scale_ptr, grad_ptr, grad_stride,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROW_COT: tl.constexpr,
    HAS_SCALE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (row, j) writes the gradient of columns [j·BLOCK, (j+1)·BLOCK): one read of
    the logits (and of a probability target), one write, no reduction."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inb = cols < C
    raw = tl.load(z_ptr + row * z_stride + cols, mask=inb, other=0.0).to(tl.float32)
    if HAS_CAP:
        tanh_z = tanh(raw / CAP)
        z = CAP * tanh_z
    else:
        z = raw
    row_max = tl.load(stats_ptr + 3 * row)
    log_sum = tl.load(stats_ptr + 3 * row + 1)
    lse = row_max + log_sum
    factor = tl.load(factor_ptr + row)
    cot = tl.load(cot_ptr + row if ROW_COT else cot_ptr).to(tl.float32)
    if HAS_SCALE:
        cot = cot * tl.load(scale_ptr)
    if HARD:
        t, mask, w_t = _row_target(target_ptr, weight_ptr, row, C, IGNORE, HAS_W, CHECKED)
        omega = mask * w_t if OMEGA_W else mask
    else:
        nll = 0.0
        t = -1
        mask = 1.0
        omega = 1.0
    z_slope = tl.where(omega == 0, 0.0, (2.0 * Z_LOSS) * omega * lse) if Z_LOSS != 0 else 0.0
    lp = tl.minimum((z - row_max) - log_sum, 0.0)
    p = tl.exp(lp)
    on_target = cols == t
    if HARD:
        # the target's p_t and u_t from lse - z_t, which the forward pass kept exact
        nll = tl.load(stats_ptr + 3 * row + 2)
        p = tl.where(on_target, tl.exp(-nll), p)
        u = -expm1(-nll)
    if MODE == 0:
        grad = tl.where(on_target, z_slope * p - factor * u, (factor + z_slope) * p)
    elif MODE == 1:
        c = _soft_coefficient(q_ptr + row * q_stride, weight_ptr, cols, inb, C, HARD, HAS_W, SMOOTH)
        if HARD:
            c = c * (mask * (SMOOTH / C))
            c_hard = (1.0 - SMOOTH) * w_t * mask
            on = p * (factor + z_slope - c_hard) - c - c_hard * u
            grad = tl.where(on_target, on, (factor + z_slope) * p - c)
        else:
            grad = (factor + z_slope) * p - c
    else:
        c = _full_coefficient(
            q_ptr + row * q_stride, weight_ptr, cols, inb, C, t, mask, HARD, HAS_W, SMOOTH
        )
        _, slope = _term(lp, p, -expm1(lp), GAMMA, GAMMA_INT, EPS)
        grad = (factor + z_slope) * p - tl.where(c == 0, 0.0, c * slope)
    grad = cot * grad
    if HAS_CAP:
        e = tl.exp(-2.0 * tl.abs(raw / CAP))
        grad = grad * div(4.0 * e, (1.0 + e) * (1.0 + e))
    tl.store(grad_ptr + row * grad_stride + cols, grad.to(grad_ptr.dtype.element_ty), mask=inb)


@triton.jit
def partials_kernel(
    z_ptr, z_stride, target_ptr, C, offset, max_ptr, sum_ptr, target_logit_ptr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """A vocabulary shard's row max, Σ e^{z - max} and target logit (0 off the shard)."""
    row = tl.program_id(0).to(tl.int64)
    z_row = z_ptr + row * z_stride
    row_max, total, _, _ = _row_stats(
        z_row, z_row, z_row, -1, 0, C, C, False, False, False, 0.0, HAS_CAP, CAP, BLOCK
    )
    local = tl.load(target_ptr + row) - offset
    here = (local >= 0) & (local < C)
    safe = tl.where(here, local, 0)
    z_t = _cap_scalar(tl.load(z_row + safe), HAS_CAP, CAP)
    tl.store(max_ptr + row, row_max)
    tl.store(sum_ptr + row, total)
    tl.store(target_logit_ptr + row, tl.where(here, z_t, 0.0))


__all__ = [
    "partials_kernel",
    "reduce_kernel",
    "softmax_backward_kernel",
    "softmax_combine_kernel",
    "softmax_forward_kernel",
    "softmax_partials_kernel",
    "triton",
]
