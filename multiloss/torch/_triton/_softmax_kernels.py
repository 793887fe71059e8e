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
  loop over the row, once lse is known, for Σ c_k f(ℓ_k) and S = Σ c_k A(ℓ_k) (split
  rows: a second split pass, :func:`softmax_terms_kernel`).

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
def _rows(N, ROWS: tl.constexpr):
    """The program's ROWS rows (int64) and which of them exist."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    return rows, rows < N


@triton.jit
def _row_ptrs(ptr, rows, stride, INNER, LAST: tl.constexpr):
    """Pointers to the rows' class 0: row r at r·stride (LAST: classes contiguous), else
    of a contiguous (outer, C, inner) view at (r // INNER)·stride + r % INNER."""
    return ptr + rows * stride if LAST else ptr + (rows // INNER) * stride + rows % INNER


@triton.jit
def _col(cols, INNER, LAST: tl.constexpr):
    """Offsets of classes `cols` from a row's class 0 (class stride 1, or INNER)."""
    return cols if LAST else cols * INNER


@triton.jit
def _load_z(ptrs, inb, HAS_CAP: tl.constexpr, CAP: tl.constexpr):
    """Logits in float32, capped; -inf outside the rows."""
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
def _row_target(
    target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W: tl.constexpr, CHECKED: tl.constexpr
):
    """Per row: the class index t (clamped into [0, C)), the row mask (1, 0 if ignored,
    NaN for an unchecked index out of range) and w_t (1 without weights)."""
    given = tl.load(target_ptr + rows, mask=row_ok, other=0)
    counted = given != IGNORE
    t = tl.minimum(tl.maximum(given, 0), C - 1)
    mask = tl.where(counted, 1.0, 0.0)
    if not CHECKED:
        mask = tl.where(counted & (t != given), float("nan"), mask)
    if HAS_W:
        w_t = tl.load(weight_ptr + t, mask=row_ok, other=0.0).to(tl.float32)
    else:
        w_t = tl.zeros_like(mask) + 1.0
    return t, mask, w_t


@triton.jit
def _class_weight(weight_ptr, cols, col_ok):
    """w_k of the block's columns, one row ([1, BLOCK]: shared by the program's rows)."""
    return tl.load(weight_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)


@triton.jit
def _soft_coefficient(
    q_rows, weight_ptr, cols, col_ok, inb, C,
    HARD: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr, INNER, LAST: tl.constexpr,
):  # fmt: skip
    """The per-class coefficient that mode 1 accumulates: w_k for hard targets (the row's
    ε/C·mask is applied once per row), ((1-ε)·q_k + ε/C)·w_k for probabilities."""
    if HARD:
        c = tl.where(inb, 1.0, 0.0)
    else:
        q = tl.load(q_rows + _col(cols, INNER, LAST), mask=inb, other=0.0).to(tl.float32)
        c = q * (1.0 - SMOOTH) + SMOOTH / C
        c = tl.where(inb, c, 0.0)
    if HAS_W:
        c = c * _class_weight(weight_ptr, cols, col_ok)
    return c


@triton.jit
def _full_coefficient(
    q_rows, weight_ptr, cols, col_ok, inb, C, t, mask,
    HARD: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr, INNER, LAST: tl.constexpr,
):  # fmt: skip
    """c_k = q_k·w_k with q the smoothed target distribution (0 outside the rows); `t`
    and `mask` as [ROWS, 1]."""
    if HARD:
        c = mask * tl.where(cols == t, 1.0 - SMOOTH + SMOOTH / C, SMOOTH / C)
        c = tl.where(inb, c, 0.0)
    else:
        q = tl.load(q_rows + _col(cols, INNER, LAST), mask=inb, other=0.0).to(tl.float32)
        c = tl.where(inb, q * (1.0 - SMOOTH) + SMOOTH / C, 0.0)
    if HAS_W:
        c = c * _class_weight(weight_ptr, cols, col_ok)
    return c


@triton.jit
def _row_stats(
    z_rows, q_rows, weight_ptr, row_ok, t, lo, hi, C,
    HARD: tl.constexpr, ACC: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    INNER, LAST: tl.constexpr,
):  # fmt: skip
    """One read of columns [lo, hi) of ROWS rows (`z_rows`, `q_rows`: [ROWS, 1] row
    pointers) with an online softmax, per lane, then combined per row: the max m,
    Σ e^{z_k - m} (without the target's own term for hard targets), and for ACC the
    coefficient sum Σ c_k and Σ c_k (m - z_k) (m taken as 0 where it is -inf)."""
    offsets = tl.arange(0, BLOCK)[None, :]
    live = row_ok[:, None]
    m = tl.full([ROWS, BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([ROWS, BLOCK], tl.float32)
    w_sum = tl.zeros([ROWS, BLOCK], tl.float32)
    acc = tl.zeros([ROWS, BLOCK], tl.float32)
    for start in range(lo, hi, BLOCK):
        cols = start + offsets
        col_ok = cols < hi
        inb = col_ok & live
        z = _load_z(z_rows + _col(cols, INNER, LAST), inb, HAS_CAP, CAP)
        m_new = tl.maximum(m, z)
        ref_new = tl.where(m_new == float("-inf"), 0.0, m_new)
        e = tl.exp(z - ref_new)
        if HARD:
            e = tl.where(cols == t[:, None], 0.0, e)
        s = s * tl.exp(m - ref_new) + e
        if ACC:
            ref_old = tl.where(m == float("-inf"), 0.0, m)
            c = _soft_coefficient(
                q_rows, weight_ptr, cols, col_ok, inb, C, HARD, HAS_W, SMOOTH, INNER, LAST
            )
            acc = acc + (ref_new - ref_old) * w_sum + tl.where(c == 0, 0.0, c * (ref_new - z))
            w_sum = w_sum + c
        m = m_new
    row_max = tl.max(m, axis=1)
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)[:, None]
    total = tl.sum(s * tl.exp(m - ref), axis=1)
    if ACC:
        lane_ref = tl.where(m == float("-inf"), 0.0, m)
        acc_total = tl.sum(acc + tl.where(w_sum == 0, 0.0, (ref - lane_ref) * w_sum), axis=1)
        w_total = tl.sum(w_sum, axis=1)
    else:
        acc_total = tl.zeros_like(total)
        w_total = tl.zeros_like(total)
    return row_max, total, w_total, acc_total


@triton.jit
def _term_sums(
    z_ptr, z_stride, q_ptr, q_stride, weight_ptr, rows, row_ok, t, mask, ref, log_sum,
    lo, hi, C, HARD: tl.constexpr, HAS_W: tl.constexpr, SMOOTH: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    INNER, LAST: tl.constexpr,
):  # fmt: skip
    """Mode 2's second read, of columns [lo, hi): Σ_k c_k f(ℓ_k) and Σ_k c_k A(ℓ_k) per
    row, once m and log Σ e^{z - m} are known."""
    offsets = tl.arange(0, BLOCK)[None, :]
    live = row_ok[:, None]
    z_rows = _row_ptrs(z_ptr, rows, z_stride, INNER, LAST)[:, None]
    q_rows = _row_ptrs(q_ptr, rows, q_stride, INNER, LAST)[:, None]
    value_sum = tl.zeros([ROWS, BLOCK], tl.float32)
    slope_sum = tl.zeros([ROWS, BLOCK], tl.float32)
    for start in range(lo, hi, BLOCK):
        cols = start + offsets
        col_ok = cols < hi
        inb = col_ok & live
        z = _load_z(z_rows + _col(cols, INNER, LAST), inb, HAS_CAP, CAP)
        c = _full_coefficient(
            q_rows, weight_ptr, cols, col_ok, inb, C, t[:, None], mask[:, None],
            HARD, HAS_W, SMOOTH, INNER, LAST,
        )  # fmt: skip
        lp = tl.minimum((z - ref[:, None]) - log_sum[:, None], 0.0)
        value, slope = _term(lp, tl.exp(lp), -expm1(lp), GAMMA, GAMMA_INT, EPS)
        value_sum = value_sum + tl.where(c == 0, 0.0, c * value)
        slope_sum = slope_sum + tl.where(c == 0, 0.0, c * slope)
    return tl.sum(value_sum, axis=1), tl.sum(slope_sum, axis=1)


@triton.jit
def _finish_rows(
    z_ptr, z_stride, q_ptr, q_stride, weight_ptr, target_ptr, rows, row_ok, C, IGNORE,
    row_max, s_others, w_total, acc_total,
    loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    TERMS: tl.constexpr, INNER, LAST: tl.constexpr,
):  # fmt: skip
    """The rows' losses, statistics (m, log Σ e^{z - m}, lse - z_t), factors and ω from
    what :func:`_row_stats` gathered (each a [ROWS] vector)."""
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)
    zeros = tl.zeros_like(ref)
    if HARD:
        t, mask, w_t = _row_target(target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W, CHECKED)
        z_at = _row_ptrs(z_ptr, rows, z_stride, INNER, LAST) + _col(t, INNER, LAST)
        z_t = tl.load(z_at, mask=row_ok, other=0.0)
        z_t = _cap_scalar(z_t, HAS_CAP, CAP)
        margin = ref - z_t
        s_all = s_others + tl.exp(z_t - ref)
        big = margin > 60.0
        x = s_others * tl.exp(tl.minimum(margin, 60.0))
        nll = tl.where(big, margin + tl.log(s_all), log1p(x))  # lse - z_t
        l_t = -nll
        p_t = tl.where(big, tl.exp(l_t), div(zeros + 1.0, 1.0 + x))
        u_t = tl.where(big, -expm1(l_t), div(x, 1.0 + x))
        omega = mask * w_t if OMEGA_W else mask
    else:
        nll = zeros
        t = rows * 0 - 1
        mask = zeros + 1.0
        s_all = s_others
        omega = zeros + 1.0
    log_sum = tl.log(tl.where(row_ok, s_all, 1.0))  # rows past the end: not stored
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
    elif TERMS:
        loss, factor = _term_sums(
            z_ptr, z_stride, q_ptr, q_stride, weight_ptr, rows, row_ok, t, mask, ref, log_sum,
            0, C, C, HARD, HAS_W, SMOOTH, GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, ROWS, BLOCK,
            INNER, LAST,
        )  # fmt: skip
    else:  # split rows: softmax_terms_kernel and softmax_terms_finish_kernel do it
        loss = zeros
        factor = zeros
    if Z_LOSS != 0:
        loss = loss + tl.where(omega == 0, 0.0, Z_LOSS * omega * (lse * lse))
    tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_ok)
    tl.store(stats_ptr + 3 * rows, ref, mask=row_ok)
    tl.store(stats_ptr + 3 * rows + 1, log_sum, mask=row_ok)
    tl.store(stats_ptr + 3 * rows + 2, nll, mask=row_ok)
    tl.store(factor_ptr + rows, factor, mask=row_ok)
    tl.store(omega_ptr + rows, omega, mask=row_ok)


@triton.jit
def softmax_forward_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, N, C, IGNORE,
    loss_ptr, stats_ptr, factor_ptr, omega_ptr, INNER,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
    LAST: tl.constexpr,
):  # fmt: skip
    """One program per ROWS rows, a [ROWS, BLOCK] tile: statistics, then the rows'
    results (a second loop for mode 2 only). LAST: classes contiguous, rows `z_stride`
    apart; else the logits (and a probability target) are a contiguous (outer, C, INNER)
    view, rows the (outer, inner) pairs, consecutive rows consecutive in memory."""
    rows, row_ok = _rows(N, ROWS)
    z_rows = _row_ptrs(z_ptr, rows, z_stride, INNER, LAST)[:, None]
    q_rows = _row_ptrs(q_ptr, rows, q_stride, INNER, LAST)[:, None]
    if HARD:
        t, _, _ = _row_target(target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W, CHECKED)
    else:
        t = rows * 0 - 1
    row_max, s_others, w_total, acc_total = _row_stats(
        z_rows, q_rows, weight_ptr, row_ok, t, 0, C, C,
        HARD, MODE == 1, HAS_W, SMOOTH, HAS_CAP, CAP, ROWS, BLOCK, INNER, LAST,
    )  # fmt: skip
    _finish_rows(
        z_ptr, z_stride, q_ptr, q_stride, weight_ptr, target_ptr, rows, row_ok, C, IGNORE,
        row_max, s_others, w_total, acc_total,
        loss_ptr, stats_ptr, factor_ptr, omega_ptr,
        MODE, HARD, HAS_W, CHECKED, OMEGA_W, SMOOTH, Z_LOSS,
        GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, ROWS, BLOCK, True, INNER, LAST,
    )  # fmt: skip


@triton.jit
def softmax_partials_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, N, C, IGNORE, SPAN, SPLITS,
    part_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    SMOOTH: tl.constexpr, HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Split rows: program (row, j) reads columns [j·SPAN, (j+1)·SPAN)
    and writes its statistics (m, Σe, Σc, Σc(m - z)) to part[row, :, j]."""
    rows, row_ok = _rows(N, 1)
    split = tl.program_id(1)
    z_rows = z_ptr + rows[:, None] * z_stride
    q_rows = q_ptr + rows[:, None] * q_stride
    if HARD:
        t, _, _ = _row_target(target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W, CHECKED)
    else:
        t = rows * 0 - 1
    lo = split * SPAN
    hi = tl.minimum(lo + SPAN, C)
    row_max, s_part, w_part, acc_part = _row_stats(
        z_rows, q_rows, weight_ptr, row_ok, t, lo, hi, C,
        HARD, MODE == 1, HAS_W, SMOOTH, HAS_CAP, CAP, 1, BLOCK, 1, True,
    )  # fmt: skip
    base = part_ptr + rows * 4 * SPLITS + split
    tl.store(base, row_max, mask=row_ok)
    tl.store(base + SPLITS, s_part, mask=row_ok)
    tl.store(base + 2 * SPLITS, w_part, mask=row_ok)
    tl.store(base + 3 * SPLITS, acc_part, mask=row_ok)


@triton.jit
def softmax_combine_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, N, C, IGNORE, SPLITS,
    part_ptr, loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Split rows: combine the statistics of a row's programs, then its results (for
    mode 2 only its statistics and ω: :func:`softmax_terms_kernel` reads the row again,
    split alike, and :func:`softmax_terms_finish_kernel` writes its loss and factor)."""
    rows, row_ok = _rows(N, 1)
    j = tl.arange(0, BLOCK_S)[None, :]
    valid = (j < SPLITS) & row_ok[:, None]
    base = part_ptr + rows[:, None] * 4 * SPLITS + j
    m = tl.load(base, mask=valid, other=float("-inf"))
    s = tl.load(base + SPLITS, mask=valid, other=0.0)
    w = tl.load(base + 2 * SPLITS, mask=valid, other=0.0)
    acc = tl.load(base + 3 * SPLITS, mask=valid, other=0.0)
    row_max = tl.max(m, axis=1)
    ref = tl.where(row_max == float("-inf"), 0.0, row_max)[:, None]
    s_total = tl.sum(s * tl.exp(m - ref), axis=1)
    lane_ref = tl.where(m == float("-inf"), 0.0, m)
    acc_total = tl.sum(acc + tl.where(w == 0, 0.0, (ref - lane_ref) * w), axis=1)
    w_total = tl.sum(w, axis=1)
    _finish_rows(
        z_ptr, z_stride, q_ptr, q_stride, weight_ptr, target_ptr, rows, row_ok, C, IGNORE,
        row_max, s_total, w_total, acc_total,
        loss_ptr, stats_ptr, factor_ptr, omega_ptr,
        MODE, HARD, HAS_W, CHECKED, OMEGA_W, SMOOTH, Z_LOSS,
        GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, 1, 16, False, 1, True,
    )  # fmt: skip


@triton.jit
def softmax_terms_kernel(
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, N, C, IGNORE, SPAN, SPLITS,
    stats_ptr, part_ptr,
    HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr, SMOOTH: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Split rows in mode 2: program (row, j) sums c_k f(ℓ_k) and c_k A(ℓ_k) over columns
    [j·SPAN, (j+1)·SPAN) into part[row, :2, j], from the combined statistics."""
    rows, row_ok = _rows(N, 1)
    split = tl.program_id(1)
    ref = tl.load(stats_ptr + 3 * rows, mask=row_ok, other=0.0)
    log_sum = tl.load(stats_ptr + 3 * rows + 1, mask=row_ok, other=0.0)
    if HARD:
        t, mask, _ = _row_target(target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W, CHECKED)
    else:
        t = rows * 0 - 1
        mask = tl.zeros_like(ref) + 1.0
    lo = split * SPAN
    hi = tl.minimum(lo + SPAN, C)
    value, slope = _term_sums(
        z_ptr, z_stride, q_ptr, q_stride, weight_ptr, rows, row_ok, t, mask, ref, log_sum,
        lo, hi, C, HARD, HAS_W, SMOOTH, GAMMA, GAMMA_INT, EPS, HAS_CAP, CAP, 1, BLOCK, 1, True,
    )  # fmt: skip
    base = part_ptr + rows * 4 * SPLITS + split
    tl.store(base, value, mask=row_ok)
    tl.store(base + SPLITS, slope, mask=row_ok)


@triton.jit
def softmax_terms_finish_kernel(
    N, SPLITS, part_ptr, loss_ptr, stats_ptr, factor_ptr, omega_ptr,
    Z_LOSS: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Split rows in mode 2: a row's loss (its programs' Σ c_k f(ℓ_k), plus the z-loss)
    and factor S = Σ c_k A(ℓ_k)."""
    rows, row_ok = _rows(N, 1)
    j = tl.arange(0, BLOCK_S)[None, :]
    valid = (j < SPLITS) & row_ok[:, None]
    base = part_ptr + rows[:, None] * 4 * SPLITS + j
    loss = tl.sum(tl.load(base, mask=valid, other=0.0), axis=1)
    factor = tl.sum(tl.load(base + SPLITS, mask=valid, other=0.0), axis=1)
    if Z_LOSS != 0:
        lse = tl.load(stats_ptr + 3 * rows, mask=row_ok, other=0.0)
        lse = lse + tl.load(stats_ptr + 3 * rows + 1, mask=row_ok, other=0.0)
        omega = tl.load(omega_ptr + rows, mask=row_ok, other=0.0)
        loss = loss + tl.where(omega == 0, 0.0, Z_LOSS * omega * (lse * lse))
    tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_ok)
    tl.store(factor_ptr + rows, factor, mask=row_ok)


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
    z_ptr, z_stride, q_ptr, q_stride, target_ptr, weight_ptr, N, C, IGNORE,
    stats_ptr, factor_ptr, cot_ptr, scale_ptr, grad_ptr, grad_stride, INNER,
    MODE: tl.constexpr, HARD: tl.constexpr, HAS_W: tl.constexpr, CHECKED: tl.constexpr,
    OMEGA_W: tl.constexpr, SMOOTH: tl.constexpr, Z_LOSS: tl.constexpr,
    GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr, EPS: tl.constexpr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROW_COT: tl.constexpr,
    HAS_SCALE: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr, LAST: tl.constexpr,
):  # fmt: skip
    """Program (i, j) writes the gradient of rows [i·ROWS, (i+1)·ROWS) and columns
    [j·BLOCK, (j+1)·BLOCK): one read of the logits (and of a probability target), one
    write, no reduction."""
    rows, row_ok = _rows(N, ROWS)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    col_ok = cols < C
    inb = col_ok & row_ok[:, None]
    z_at = _row_ptrs(z_ptr, rows, z_stride, INNER, LAST)[:, None] + _col(cols, INNER, LAST)
    raw = tl.load(z_at, mask=inb, other=0.0).to(tl.float32)
    if HAS_CAP:
        tanh_z = tanh(raw / CAP)
        z = CAP * tanh_z
    else:
        z = raw
    row_max = tl.load(stats_ptr + 3 * rows, mask=row_ok, other=0.0)[:, None]
    log_sum = tl.load(stats_ptr + 3 * rows + 1, mask=row_ok, other=0.0)[:, None]
    lse = row_max + log_sum
    factor = tl.load(factor_ptr + rows, mask=row_ok, other=0.0)[:, None]
    if ROW_COT:
        cot = tl.load(cot_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[:, None]
    else:
        cot = tl.load(cot_ptr).to(tl.float32)
    if HAS_SCALE:
        cot = cot * tl.load(scale_ptr)
    if HARD:
        t1, mask1, w_t1 = _row_target(
            target_ptr, weight_ptr, rows, row_ok, C, IGNORE, HAS_W, CHECKED
        )
        t = t1[:, None]
        mask = mask1[:, None]
        w_t = w_t1[:, None]
        omega = mask * w_t if OMEGA_W else mask
    else:
        t = -1
        mask = 1.0
        omega = 1.0
    z_slope = tl.where(omega == 0, 0.0, (2.0 * Z_LOSS) * omega * lse) if Z_LOSS != 0 else 0.0
    lp = tl.minimum((z - row_max) - log_sum, 0.0)
    p = tl.exp(lp)
    on_target = cols == t
    if HARD:
        # the target's p_t and u_t from lse - z_t, which the forward pass kept exact
        nll = tl.load(stats_ptr + 3 * rows + 2, mask=row_ok, other=0.0)[:, None]
        p = tl.where(on_target, tl.exp(-nll), p)
        u = -expm1(-nll)
    q_rows = _row_ptrs(q_ptr, rows, q_stride, INNER, LAST)[:, None]
    if MODE == 0:
        grad = tl.where(on_target, z_slope * p - factor * u, (factor + z_slope) * p)
    elif MODE == 1:
        c = _soft_coefficient(
            q_rows, weight_ptr, cols, col_ok, inb, C, HARD, HAS_W, SMOOTH, INNER, LAST
        )
        if HARD:
            c = c * (mask * (SMOOTH / C))
            c_hard = (1.0 - SMOOTH) * w_t * mask
            on = p * (factor + z_slope - c_hard) - c - c_hard * u
            grad = tl.where(on_target, on, (factor + z_slope) * p - c)
        else:
            grad = (factor + z_slope) * p - c
    else:
        c = _full_coefficient(
            q_rows, weight_ptr, cols, col_ok, inb, C, t, mask, HARD, HAS_W, SMOOTH, INNER, LAST
        )
        _, slope = _term(lp, p, -expm1(lp), GAMMA, GAMMA_INT, EPS)
        grad = (factor + z_slope) * p - tl.where(c == 0, 0.0, c * slope)
    grad = cot * grad
    if HAS_CAP:
        e = tl.exp(-2.0 * tl.abs(raw / CAP))
        grad = grad * div(4.0 * e, (1.0 + e) * (1.0 + e))
    out = _row_ptrs(grad_ptr, rows, grad_stride, INNER, LAST)[:, None] + _col(cols, INNER, LAST)
    tl.store(out, grad.to(grad_ptr.dtype.element_ty), mask=inb)


@triton.jit
def partials_kernel(
    z_ptr, z_stride, target_ptr, N, C, offset, max_ptr, sum_ptr, target_logit_ptr,
    HAS_CAP: tl.constexpr, CAP: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """A vocabulary shard's row max, Σ e^{z - max} and target logit (0 off the shard),
    ROWS rows per program."""
    rows, row_ok = _rows(N, ROWS)
    z_rows = z_ptr + rows[:, None] * z_stride
    row_max, total, _, _ = _row_stats(
        z_rows, z_rows, z_ptr, row_ok, rows * 0 - 1, 0, C, C,
        False, False, False, 0.0, HAS_CAP, CAP, ROWS, BLOCK, 1, True,
    )  # fmt: skip
    local = tl.load(target_ptr + rows, mask=row_ok, other=0) - offset
    here = (local >= 0) & (local < C)
    safe = tl.where(here, local, 0)
    z_t = _cap_scalar(tl.load(z_ptr + rows * z_stride + safe, mask=row_ok, other=0.0), HAS_CAP, CAP)
    tl.store(max_ptr + rows, row_max, mask=row_ok)
    tl.store(sum_ptr + rows, total, mask=row_ok)
    tl.store(target_logit_ptr + rows, tl.where(here, z_t, 0.0), mask=row_ok)


__all__ = [
    "partials_kernel",
    "reduce_kernel",
    "softmax_backward_kernel",
    "softmax_combine_kernel",
    "softmax_forward_kernel",
    "softmax_partials_kernel",
    "softmax_terms_finish_kernel",
    "softmax_terms_kernel",
    "triton",
]
