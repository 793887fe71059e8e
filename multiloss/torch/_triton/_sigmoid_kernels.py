r"""The device code of the sigmoid family's kernels (`multiloss.torch._triton.sigmoid`
launches them): the loss and slope of one element of BCE / sigmoid focal loss, of the
asymmetric loss and of the varifocal and quality focal losses, the forward kernel
(per-element losses, partial sums, or one program's whole sum), the kernel that sums
partial sums, and the backward kernel.

The math restates the core's forms (`multiloss._core.sigmoid`, `multiloss._core.asymmetric`,
`multiloss._core.detection`) element by element; see `multiloss.torch._triton.sigmoid` for
the flags. The loss is chosen by the compile-time KIND: 0 BCE / sigmoid focal, 1 asymmetric,
2 varifocal, 3 quality focal.
"""

import triton
import triton.language as tl

from ._math import div, exp, log1p, sigmoid_softplus


@triton.jit
def _offset(i, D1, D2, D12, s0, s1, s2, MODE: tl.constexpr):
    """Memory offset of flat element i of the logits' (coalesced) shape (D0, D1, D2): MODE 1
    contiguous (i itself); 2, 3, 4 strided over three, the last two or the last dimension
    (fewer integer divisions)."""
    if MODE == 1:
        offset = i
    elif MODE == 4:
        offset = i * s2
    elif MODE == 3:
        offset = (i // D2) * s1 + (i % D2) * s2
    else:
        offset = (i // D12) * s0 + ((i // D2) % D1) * s1 + (i % D2) * s2
    return offset


@triton.jit
def _times_nonzero(coefficient, value):
    """coefficient · value, 0 where the coefficient is 0 (0 · inf = 0)."""
    return tl.where(coefficient == 0, 0.0, coefficient * value)


@triton.jit
def _power(base, log_base, GAMMA: tl.constexpr, GAMMA_INT: tl.constexpr):
    """base^γ for γ > 0: a product for a small integral γ (GAMMA_INT > 0), else
    exp(γ · log base) (0 at base 0)."""
    if GAMMA_INT > 0:
        result = base
        for _ in tl.static_range(GAMMA_INT - 1):
            result = result * base
    else:
        result = exp(GAMMA * log_base)
    return result


@triton.jit
def _sigmoid_element(
    x,
    y,
    w,
    pw,
    GRAD: tl.constexpr,
    GAMMA: tl.constexpr,
    GAMMA_INT: tl.constexpr,
    ALPHA: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_PW: tl.constexpr,
):
    """The sigmoid family's loss (GRAD False) or its slope ∂L/∂x (GRAD True)."""
    sp_pos, sp_neg, s_pos, s_neg = sigmoid_softplus(x)
    negative = 1.0 - y
    positive = y * pw if HAS_PW else y
    if GRAD:
        value = negative * s_pos - positive * s_neg
    if (not GRAD) or GAMMA != 0:
        ce = _times_nonzero(positive, sp_neg) + _times_nonzero(negative, sp_pos)
        if not GRAD:
            value = ce
    if GAMMA != 0:
        m = y * s_neg + negative * s_pos
        if GAMMA_INT > 0:
            focal = _power(m, m, GAMMA, GAMMA_INT)
        else:
            focal = _power(m, tl.log(m), GAMMA, GAMMA_INT)
        if GRAD:
            vanishing = m == 0
            ratio = tl.where(vanishing, 0.0, div(s_pos * s_neg * ce, tl.where(vanishing, 1.0, m)))
            value = focal * (GAMMA * (negative - y) * ratio + value)
        else:
            value = focal * value
    if HAS_ALPHA:
        coefficient = ALPHA * y + (1.0 - ALPHA) * negative
        if HAS_W:
            coefficient = w * coefficient
        value = _times_nonzero(coefficient, value)
    elif HAS_W:
        value = _times_nonzero(w, value)
    return value


@triton.jit
def _asymmetric_element(
    x,
    y,
    w,
    pw,
    GRAD: tl.constexpr,
    GAMMA_POS: tl.constexpr,
    GAMMA_POS_INT: tl.constexpr,
    GAMMA_NEG: tl.constexpr,
    GAMMA_NEG_INT: tl.constexpr,
    CLIP: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_PW: tl.constexpr,
):
    """The asymmetric loss's L (GRAD False) or ∂L/∂x (GRAD True), as `_core.asymmetric`:
    w (pw y P + (1 - y) N) and its slope."""
    sp_pos, sp_neg, s_pos, s_neg = sigmoid_softplus(x)
    if CLIP == 0:
        q = s_pos
        one_minus_q = s_neg
        log_term = sp_pos
        log_q = -sp_neg
    else:
        q = tl.maximum(s_pos - CLIP, 0.0)
        one_minus_q = tl.minimum(s_neg + CLIP, 1.0)
        log_term = tl.where(q < 0.5, -log1p(-q), -tl.log(one_minus_q))
        log_q = q if GAMMA_NEG_INT > 0 else tl.log(q)
    if GAMMA_POS == 0:
        weight_pos = tl.full(x.shape, 1.0, x.dtype)
    else:
        weight_pos = _power(s_neg, -sp_pos, GAMMA_POS, GAMMA_POS_INT)
    if GAMMA_NEG == 0:
        weight_neg = tl.full(x.shape, 1.0, x.dtype)
    else:
        weight_neg = _power(q, log_q, GAMMA_NEG, GAMMA_NEG_INT)
    if GRAD:
        inner = s_neg if GAMMA_POS == 0 else GAMMA_POS * _times_nonzero(s_pos, sp_neg) + s_neg
        positive = -weight_pos * inner
        if CLIP == 0:
            inner = s_pos if GAMMA_NEG == 0 else GAMMA_NEG * _times_nonzero(s_neg, log_term) + s_pos
            negative = weight_neg * inner
        else:
            g = div(weight_neg, one_minus_q)
            if GAMMA_NEG != 0:
                vanishing = q == 0
                ratio = tl.where(vanishing, 1.0, div(log_term, tl.where(vanishing, 1.0, q)))
                g = g + GAMMA_NEG * weight_neg * ratio
            negative = tl.where(q == 0, 0.0, s_pos * s_neg * g)
    else:
        positive = _times_nonzero(weight_pos, sp_neg)
        negative = _times_nonzero(weight_neg, log_term)
    value = _times_nonzero(y * pw if HAS_PW else y, positive) + _times_nonzero(1.0 - y, negative)
    if HAS_W:
        value = _times_nonzero(w, value)
    return value


@triton.jit
def _detection_element(
    x,
    q,
    w,
    pw,
    GRAD: tl.constexpr,
    QUALITY: tl.constexpr,
    GAMMA: tl.constexpr,
    GAMMA_INT: tl.constexpr,
    ALPHA: tl.constexpr,
    SMOOTHING: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_PW: tl.constexpr,
):
    """The varifocal (QUALITY False: α = ALPHA, γ = GAMMA, label smoothing ε = SMOOTHING)
    or quality focal (QUALITY True: β = GAMMA) loss w K ce (GRAD False), or its slope
    w (K' ce + K ce') (GRAD True), as `_core.detection`: ce the cross-entropy against
    s = q (1 - ε) + ε/2 with pw on its positive term; K = q (q > 0) or α σ^γ (q = 0) for
    the varifocal loss (K' = γ α σ^γ σ' on the negatives), K = |d|^β with
    d = s σ' - (1 - s) σ for the quality focal loss (K' = -β sgn(d) |d|^{β-1} σσ', formed
    as K · σσ' / |d| for β < 1, taken as 0 where d = 0)."""
    sp_pos, sp_neg, s_pos, s_neg = sigmoid_softplus(x)
    if SMOOTHING == 0:
        s = q
        negative = 1.0 - q
    else:  # 1 - s formed as (1 - q)(1 - ε) + ε/2: no rounding of s before the subtraction
        s = q * (1.0 - SMOOTHING) + 0.5 * SMOOTHING
        negative = (1.0 - q) * (1.0 - SMOOTHING) + 0.5 * SMOOTHING
    positive = s * pw if HAS_PW else s
    ce = _times_nonzero(positive, sp_neg) + _times_nonzero(negative, sp_pos)
    if QUALITY:
        d = s * s_neg - negative * s_pos
        a = tl.abs(d)
        if GAMMA == 0:
            k = tl.full(x.shape, 1.0, x.dtype)
        elif GAMMA_INT > 0:
            k = _power(a, a, GAMMA, GAMMA_INT)
        else:
            k = _power(a, tl.log(a), GAMMA, GAMMA_INT)
        if GRAD:
            v = s_pos * s_neg
            if GAMMA == 0:
                k_rho = tl.zeros(x.shape, x.dtype)
            elif GAMMA == 1:
                k_rho = v
            elif GAMMA_INT > 1:
                k_rho = _power(a, a, GAMMA - 1.0, GAMMA_INT - 1) * v
            elif GAMMA > 1:
                k_rho = exp((GAMMA - 1.0) * tl.log(a)) * v
            else:  # β < 1: K · v / a, 0 where a = 0
                vanishing = a == 0
                k_rho = tl.where(vanishing, 0.0, k * div(v, tl.where(vanishing, 1.0, a)))
            sign = tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, 0.0))
            k_slope = -GAMMA * sign * k_rho
    else:
        if GAMMA == 0:
            focus = tl.full(x.shape, ALPHA, x.dtype)
        else:
            focus = ALPHA * _power(s_pos, -sp_neg, GAMMA, GAMMA_INT)
        hit = q > 0
        k = tl.where(hit, q, focus)
        if GRAD:
            k_slope = tl.where(hit, 0.0, GAMMA * focus * s_neg)
    if GRAD:
        value = _times_nonzero(k_slope, ce) + k * (negative * s_pos - positive * s_neg)
    else:
        value = _times_nonzero(k, ce)
    if HAS_W:
        value = _times_nonzero(w, value)
    return value


@triton.jit
def _element(
    X,
    Y,
    W,
    PW,
    i,
    mask,
    D1,
    D2,
    D12,
    sx0,
    sx1,
    sx2,
    sy0,
    sy1,
    sy2,
    sw0,
    sw1,
    sw2,
    sp0,
    sp1,
    sp2,
    GRAD: tl.constexpr,
    KIND: tl.constexpr,
    GAMMA: tl.constexpr,
    GAMMA_INT: tl.constexpr,
    ALPHA: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    GAMMA_NEG: tl.constexpr,
    GAMMA_NEG_INT: tl.constexpr,
    CLIP: tl.constexpr,
    SMOOTHING: tl.constexpr,
    X_MODE: tl.constexpr,
    Y_MODE: tl.constexpr,
    W_MODE: tl.constexpr,
    PW_MODE: tl.constexpr,
    COMPUTE: tl.constexpr,
):
    """Load one block's operands and return its losses or slopes (COMPUTE dtype)."""
    x = tl.load(X + _offset(i, D1, D2, D12, sx0, sx1, sx2, X_MODE), mask=mask, other=0.0)
    y = tl.load(Y + _offset(i, D1, D2, D12, sy0, sy1, sy2, Y_MODE), mask=mask, other=0.0)
    x = x.to(COMPUTE)
    y = y.to(COMPUTE)
    w = x
    pw = x
    if W_MODE != 0:
        w_offset = _offset(i, D1, D2, D12, sw0, sw1, sw2, W_MODE)
        w = tl.load(W + w_offset, mask=mask, other=0.0).to(COMPUTE)
    if PW_MODE != 0:
        pw_offset = _offset(i, D1, D2, D12, sp0, sp1, sp2, PW_MODE)
        pw = tl.load(PW + pw_offset, mask=mask, other=0.0).to(COMPUTE)
    if KIND == 1:
        value = _asymmetric_element(
            x, y, w, pw, GRAD, GAMMA, GAMMA_INT, GAMMA_NEG, GAMMA_NEG_INT, CLIP,
            W_MODE != 0, PW_MODE != 0,
        )  # fmt: skip
    elif KIND >= 2:
        value = _detection_element(
            x, y, w, pw, GRAD, KIND == 3, GAMMA, GAMMA_INT, ALPHA, SMOOTHING,
            W_MODE != 0, PW_MODE != 0,
        )  # fmt: skip
    else:
        value = _sigmoid_element(
            x, y, w, pw, GRAD, GAMMA, GAMMA_INT, ALPHA, HAS_ALPHA, W_MODE != 0, PW_MODE != 0
        )
    return value


@triton.jit
def _block(n, INT64: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    """The flat indices of this program's block, and their mask."""
    pid = tl.program_id(0)
    if INT64:
        pid = pid.to(tl.int64)
    i = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    return i, i < n


@triton.jit
def forward_kernel(
    X,
    Y,
    W,
    PW,
    OUT,
    n,
    scale,
    D1,
    D2,
    D12,
    sx0,
    sx1,
    sx2,
    sy0,
    sy1,
    sy2,
    sw0,
    sw1,
    sw2,
    sp0,
    sp1,
    sp2,
    KIND: tl.constexpr,
    GAMMA: tl.constexpr,
    GAMMA_INT: tl.constexpr,
    ALPHA: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    GAMMA_NEG: tl.constexpr,
    GAMMA_NEG_INT: tl.constexpr,
    CLIP: tl.constexpr,
    SMOOTHING: tl.constexpr,
    X_MODE: tl.constexpr,
    Y_MODE: tl.constexpr,
    W_MODE: tl.constexpr,
    PW_MODE: tl.constexpr,
    REDUCE: tl.constexpr,
    COMPUTE: tl.constexpr,
    INT64: tl.constexpr,
    STEPS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """REDUCE 0: the per-element losses, written contiguously in OUT's dtype; 1: one
    partial sum per program, times `scale`; 2: one program walks every block and writes
    the whole sum, times `scale`, in OUT's dtype (0-d), in STEPS blocks (≥ n / BLOCK_SIZE;
    a compile-time count: Triton 3.6's interpreter cannot loop to a runtime bound)."""
    if REDUCE == 2:
        total = tl.zeros((BLOCK_SIZE,), COMPUTE)
        for step in range(STEPS):
            i = step * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
            mask = i < n
            loss = _element(
                X, Y, W, PW, i, mask, D1, D2, D12,
                sx0, sx1, sx2, sy0, sy1, sy2, sw0, sw1, sw2, sp0, sp1, sp2,
                False, KIND, GAMMA, GAMMA_INT, ALPHA, HAS_ALPHA, GAMMA_NEG, GAMMA_NEG_INT,
                CLIP, SMOOTHING, X_MODE, Y_MODE, W_MODE, PW_MODE, COMPUTE,
            )  # fmt: skip
            total += tl.where(mask, loss, 0.0)
        result = tl.sum(total, axis=0) * scale
        tl.store(OUT, result.to(OUT.dtype.element_ty))
    else:
        i, mask = _block(n, INT64, BLOCK_SIZE)
        loss = _element(
            X, Y, W, PW, i, mask, D1, D2, D12,
            sx0, sx1, sx2, sy0, sy1, sy2, sw0, sw1, sw2, sp0, sp1, sp2,
            False, KIND, GAMMA, GAMMA_INT, ALPHA, HAS_ALPHA, GAMMA_NEG, GAMMA_NEG_INT, CLIP,
            SMOOTHING, X_MODE, Y_MODE, W_MODE, PW_MODE, COMPUTE,
        )  # fmt: skip
        if REDUCE == 1:
            partial = tl.sum(tl.where(mask, loss, 0.0), axis=0) * scale
            tl.store(OUT + tl.program_id(0), partial)
        else:
            tl.store(OUT + i, loss.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def sum_kernel(
    PARTIALS, OUT, count, COMPUTE: tl.constexpr, STEPS: tl.constexpr, BLOCK_SIZE: tl.constexpr
):
    """OUT (0-d, its own dtype) = the sum of `count` partial sums, in one program (a fixed
    order: deterministic) of STEPS blocks (≥ count / BLOCK_SIZE)."""
    total = tl.zeros((BLOCK_SIZE,), COMPUTE)
    for step in range(STEPS):
        i = step * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        total += tl.load(PARTIALS + i, mask=i < count, other=0.0).to(COMPUTE)
    tl.store(OUT, tl.sum(total, axis=0).to(OUT.dtype.element_ty))


@triton.jit
def backward_kernel(
    COT,
    X,
    Y,
    W,
    PW,
    GRAD_OUT,
    n,
    scale,
    D1,
    D2,
    D12,
    sc0,
    sc1,
    sc2,
    sx0,
    sx1,
    sx2,
    sy0,
    sy1,
    sy2,
    sw0,
    sw1,
    sw2,
    sp0,
    sp1,
    sp2,
    KIND: tl.constexpr,
    GAMMA: tl.constexpr,
    GAMMA_INT: tl.constexpr,
    ALPHA: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    GAMMA_NEG: tl.constexpr,
    GAMMA_NEG_INT: tl.constexpr,
    CLIP: tl.constexpr,
    SMOOTHING: tl.constexpr,
    X_MODE: tl.constexpr,
    Y_MODE: tl.constexpr,
    W_MODE: tl.constexpr,
    PW_MODE: tl.constexpr,
    COT_MODE: tl.constexpr,
    REDUCE: tl.constexpr,
    COMPUTE: tl.constexpr,
    INT64: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """cotangent · ∂L/∂x, written contiguously in the logits' dtype. With REDUCE the
    cotangent is that of the reduced loss (0-d), times `scale`."""
    i, mask = _block(n, INT64, BLOCK_SIZE)
    slope = _element(
        X, Y, W, PW, i, mask, D1, D2, D12,
        sx0, sx1, sx2, sy0, sy1, sy2, sw0, sw1, sw2, sp0, sp1, sp2,
        True, KIND, GAMMA, GAMMA_INT, ALPHA, HAS_ALPHA, GAMMA_NEG, GAMMA_NEG_INT, CLIP,
        SMOOTHING, X_MODE, Y_MODE, W_MODE, PW_MODE, COMPUTE,
    )  # fmt: skip
    if REDUCE:
        cotangent = tl.load(COT).to(COMPUTE) * scale
    else:
        c_offset = _offset(i, D1, D2, D12, sc0, sc1, sc2, COT_MODE)
        cotangent = tl.load(COT + c_offset, mask=mask, other=0.0).to(COMPUTE)
    grad = cotangent * slope
    tl.store(GRAD_OUT + i, grad.to(GRAD_OUT.dtype.element_ty), mask=mask)
