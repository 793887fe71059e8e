"""Ground truth for the tests, written from the formulas and independent of multiloss.

Two oracles for each of the four losses, each returning ``(loss, grad)`` where ``grad`` is
∂(Σ loss)/∂logits (for ``reduction="none"`` every element's own gradient):

* ``np_*``: naive float64 NumPy, straight from the textbook (log_softmax by max-shift,
  gather, ``(1 - p)**γ``, PyTorch's weighted means). Good for moderate inputs.
* ``mp_*``: mpmath at 50 significant digits. Probabilities are written so that no
  digit cancels at any finite logit, e.g. ``u_k = 1 - p_k = s_k / (1 + s_k)`` with
  ``s_k = Σ_{j≠k} exp(z_j - z_k)``, and mpmath's exponent range does not overflow or
  underflow, so these are exact to ~50 digits also at logits of ±1e4. The results are
  rounded to float64 (half an ulp of float64).

Gradients are hand-derived (and cross-checked against ``mpmath.diff`` in
``test_core_oracles.py``). For the softmax family, with ℓ = log p and c_k = q_k·w_k:

    L = Σ_k c_k f(ℓ_k),  f(ℓ) = -(1 - e^ℓ)^γ ℓ,
    f'(ℓ) = -(1 - p)^γ + γ (1 - p)^(γ-1) p ℓ,
    ∂L/∂z_j = Σ_k c_k f'(ℓ_k) (δ_kj - p_j) = c_j f'(ℓ_j) - p_j Σ_k c_k f'(ℓ_k).

For the sigmoid family, with σ = sigmoid, ce = -pw·y·log σ(x) - (1-y)·log σ(-x),
m = 1 - p_t = y σ(-x) + (1-y) σ(x) and L = w α_t m^γ ce:

    ∂L/∂x = w α_t (γ m^(γ-1) (1-2y) σ(x) σ(-x) ce + m^γ ((1-y) σ(x) - pw y σ(-x))).

Reductions: ``"mean"`` of class-index cross-entropy with ``weight`` divides by
Σ_i w_{y_i} over counted elements (PyTorch), otherwise by the number of counted elements
(class indices) or of all elements (probability targets, sigmoid losses); a mean over
nothing is 0.0 with a zero gradient (docs/math.md, "Reductions").
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np

DPS = 50

# ----------------------------------------------------------------------------- helpers


def _rows(logits: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The logits with the class axis moved last and the rest flattened: (M, C)."""
    moved = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape[:-1]


def _unrows(rows: np.ndarray, batch_shape: tuple[int, ...], axis: int) -> np.ndarray:
    return np.moveaxis(rows.reshape(*batch_shape, rows.shape[-1]), -1, axis)


def scalar_alpha_vector(alpha: float, num_classes: int) -> list[float]:
    """RetinaNet's scalar α: class 0 (background) weighted 1-α, every other class α."""
    return [1.0 - alpha] + [alpha] * (num_classes - 1)


def _softmax_setup(
    logits, target, axis, class_weight, ignore_index, label_smoothing, weighted_mean
) -> dict[str, Any]:
    """Everything but the math of a row: the rows (M, C), the target distribution q (M, C;
    zero for ignored rows), the class weights w (C,) and the "mean" denominator."""
    rows, batch_shape = _rows(logits, axis)
    num_rows, num_classes = rows.shape
    target = np.asarray(target)
    hard = np.issubdtype(target.dtype, np.integer)
    w = np.ones(num_classes) if class_weight is None else np.asarray(class_weight, np.float64)
    eps = label_smoothing
    if hard:
        t = target.reshape(-1)
        counted = t != ignore_index
        q = np.zeros((num_rows, num_classes))
        for i in range(num_rows):
            if counted[i]:
                q[i, :] = eps / num_classes
                q[i, t[i]] += 1.0 - eps
        if weighted_mean and class_weight is not None:
            denominator = sum(w[t[i]] for i in range(num_rows) if counted[i])
        else:
            denominator = float(np.sum(counted))
    else:
        y, _ = _rows(target, axis)
        q = (1.0 - eps) * y + eps / num_classes
        denominator = float(num_rows)
    return {
        "rows": rows,
        "batch_shape": batch_shape,
        "q": q,
        "w": w,
        "denominator": float(denominator),
    }


def _reduce(per_element, grad, reduction, denominator):
    """Apply the reduction to per-element losses and their (per-element) gradients."""
    if reduction == "none":
        return per_element, grad
    if reduction == "sum":
        return float(np.sum(per_element)), grad
    if denominator == 0:  # a mean over nothing
        return 0.0, np.zeros_like(grad)
    return float(np.sum(per_element)) / denominator, grad / denominator


# ----------------------------------------------------------------------------- NumPy


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """The textbook log-softmax: z - max - log Σ exp(z - max)."""
    m = np.max(z, axis=axis, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def _np_softmax_family(
    logits,
    target,
    *,
    axis,
    gamma,
    class_weight,
    ignore_index,
    reduction,
    label_smoothing,
    weighted_mean,
):
    s = _softmax_setup(
        logits, target, axis, class_weight, ignore_index, label_smoothing, weighted_mean
    )
    log_p = log_softmax(s["rows"], axis=-1)
    p = np.exp(log_p)
    c = s["q"] * s["w"]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = -((1.0 - p) ** gamma) * log_p
        if gamma == 0:
            df = -np.ones_like(p)
        else:
            df = -((1.0 - p) ** gamma) + gamma * (1.0 - p) ** (gamma - 1) * p * log_p
            # p = 1 (a single class): f(ℓ) ≈ u^(γ+1) near it, so f'(ℓ) = 0
            df = np.where(p == 1.0, 0.0, df)
    terms = np.where(c == 0, 0.0, c * f)
    cdf = np.where(c == 0, 0.0, c * df)
    per_row = np.sum(terms, axis=-1)
    grad_rows = cdf - p * np.sum(cdf, axis=-1, keepdims=True)
    per_element = per_row.reshape(s["batch_shape"])
    grad = _unrows(grad_rows, s["batch_shape"], axis)
    return _reduce(per_element, grad, reduction, s["denominator"])


def np_cross_entropy(
    logits,
    target,
    *,
    axis=-1,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
):
    """torch.nn.functional.cross_entropy semantics (mean over nothing = 0)."""
    return _np_softmax_family(
        logits,
        target,
        axis=axis,
        gamma=0.0,
        class_weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        weighted_mean=True,
    )


def _alpha_vector(alpha, logits, axis):
    if alpha is None or not np.isscalar(alpha):
        return alpha
    return scalar_alpha_vector(float(alpha), np.shape(logits)[axis])


def np_focal_loss(
    logits,
    target,
    *,
    axis=-1,
    gamma=2.0,
    alpha=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
):
    """Σ_k q_k α_k (1 - p_k)^γ (-log p_k); mean over counted elements."""
    return _np_softmax_family(
        logits,
        target,
        axis=axis,
        gamma=gamma,
        class_weight=_alpha_vector(alpha, logits, axis),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        weighted_mean=False,
    )


def _np_sigmoid_family(logits, target, *, weight, pos_weight, gamma, alpha, reduction):
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    sig = 1.0 / (1.0 + np.exp(-x))
    log_sig = -np.logaddexp(0.0, -x)  # log σ(x)
    log_one_minus_sig = -np.logaddexp(0.0, x)  # log(1 - σ(x))
    ce = -(pw * y * log_sig + (1.0 - y) * log_one_minus_sig)
    dce = (1.0 - y) * sig - pw * y * (1.0 - sig)
    p_t = sig * y + (1.0 - sig) * (1.0 - y)
    m = 1.0 - p_t
    if gamma == 0:
        per, dper = ce, dce
    else:
        dm = (1.0 - 2.0 * y) * sig * (1.0 - sig)
        per = m**gamma * ce
        dper = gamma * m ** (gamma - 1) * dm * ce + m**gamma * dce
    factor = w
    if alpha is not None:
        factor = factor * (alpha * y + (1.0 - alpha) * (1.0 - y))
    per = np.broadcast_to(factor * per, x.shape)
    dper = np.broadcast_to(factor * dper, x.shape)
    return _reduce(per, np.array(dper), reduction, float(x.size))


def np_binary_cross_entropy(logits, target, *, weight=None, pos_weight=None, reduction="mean"):
    """torch.nn.BCEWithLogitsLoss semantics."""
    return _np_sigmoid_family(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
    )


def np_sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="mean"):
    """torchvision.ops.sigmoid_focal_loss semantics (alpha=None: no α_t)."""
    return _np_sigmoid_family(
        logits, target, weight=None, pos_weight=None, gamma=gamma, alpha=alpha, reduction=reduction
    )


# ----------------------------------------------------------------------------- mpmath


def _precision():
    """At least DPS digits (more where a caller such as ``mpmath.diff`` raised them)."""
    return mpmath.workdps(max(DPS, mpmath.mp.dps))


def _mp(value) -> mpmath.mpf:
    """A float (any precision) as an exact mpf; an mpf as it is."""
    if isinstance(value, mpmath.mpf):
        return value
    return mpmath.mpf(float(value))


def mp_log_softmax_row(z: list) -> tuple[list, list, list]:
    """ℓ_k, p_k and u_k = 1 - p_k of one row of mpf logits, with no cancellation.

    s_k = Σ_{j≠k} exp(z_j - z_k);  p_k = 1/(1+s_k);  u_k = s_k/(1+s_k);  ℓ_k = -log1p(s_k).
    """
    log_p, p, u = [], [], []
    for k, z_k in enumerate(z):
        s_k = mpmath.fsum(mpmath.exp(z_j - z_k) for j, z_j in enumerate(z) if j != k)
        log_p.append(-mpmath.log1p(s_k))
        p.append(1 / (1 + s_k))
        u.append(s_k / (1 + s_k))
    return log_p, p, u


def mp_focal_term(log_p, p, u, gamma):
    """f(ℓ) = -u^γ ℓ and f'(ℓ) = -u^γ + γ u^(γ-1) p ℓ with u = 1 - p, in mpmath."""
    gamma = _mp(gamma)
    if gamma == 0:
        return -log_p, mpmath.mpf(-1)
    if u == 0:  # one class only (ℓ = 0): f ≡ 0 near it
        return mpmath.mpf(0), mpmath.mpf(0)
    f = -(u**gamma) * log_p
    df = -(u**gamma) + gamma * u ** (gamma - 1) * p * log_p
    return f, df


def mp_softmax_row(z: list, c: list, gamma) -> tuple[Any, list]:
    """Σ_k c_k f(ℓ_k) of one row of mpf logits z with coefficients c, and its gradient
    c_j f'(ℓ_j) - p_j Σ_k c_k f'(ℓ_k)."""
    with _precision():
        log_p, p, u = mp_log_softmax_row(z)
        loss, slopes = mpmath.mpf(0), []
        for k in range(len(z)):
            if c[k] == 0:  # 0 · f = 0, also where f is infinite
                slopes.append(mpmath.mpf(0))
                continue
            f, df = mp_focal_term(log_p[k], p[k], u[k], gamma)
            loss += c[k] * f
            slopes.append(c[k] * df)
        slope_sum = mpmath.fsum(slopes)
        return loss, [slopes[j] - p[j] * slope_sum for j in range(len(z))]


def mp_softmax_row_hvp(z: list, direction: list, c: list, gamma) -> list:
    """H·t of one row: d/dε of the gradient of :func:`mp_softmax_row` at z + ε·t."""

    def gradient_entry(epsilon, j):
        moved = [z_k + epsilon * t_k for z_k, t_k in zip(z, direction, strict=True)]
        return mp_softmax_row(moved, c, gamma)[1][j]

    with _precision():
        return [mpmath.diff(lambda e, j=j: gradient_entry(e, j), 0) for j in range(len(z))]


def _mp_softmax_family(
    logits,
    target,
    *,
    axis,
    gamma,
    class_weight,
    ignore_index,
    reduction,
    label_smoothing,
    weighted_mean,
    tangent=None,
):
    rows, batch_shape = _rows(logits, axis)
    num_rows, num_classes = rows.shape
    tangent_rows = None if tangent is None else _rows(tangent, axis)[0]
    target = np.asarray(target)
    hard = np.issubdtype(target.dtype, np.integer)
    flat_target = target.reshape(-1) if hard else None
    soft_target = None if hard else _rows(target, axis)[0]
    with _precision():
        eps = _mp(label_smoothing)
        w = (
            [mpmath.mpf(1)] * num_classes
            if class_weight is None
            else [_mp(v) for v in class_weight]
        )
        per_row = [mpmath.mpf(0)] * num_rows
        grad_rows = [[mpmath.mpf(0)] * num_classes for _ in range(num_rows)]
        denominator = mpmath.mpf(0)
        for i in range(num_rows):
            if hard:
                t = int(flat_target[i])
                if t == ignore_index:
                    continue
                q = [
                    (1 - eps) * (1 if k == t else 0) + eps / num_classes for k in range(num_classes)
                ]
                denominator += w[t] if weighted_mean and class_weight is not None else 1
            else:
                q = [
                    (1 - eps) * _mp(soft_target[i, k]) + eps / num_classes
                    for k in range(num_classes)
                ]
                denominator += 1
            c = [q[k] * w[k] for k in range(num_classes)]
            z = [_mp(v) for v in rows[i]]
            per_row[i], grad_rows[i] = mp_softmax_row(z, c, gamma)
            if tangent_rows is not None:  # H·t in place of the gradient
                direction = [_mp(v) for v in tangent_rows[i]]
                grad_rows[i] = mp_softmax_row_hvp(z, direction, c, gamma)
        if reduction in ("none", "sum"):
            scale = mpmath.mpf(1)
        elif denominator == 0:  # a mean over nothing: 0 with a zero gradient
            scale = mpmath.inf
        else:
            scale = denominator
        grad = np.array([[float(g / scale) for g in row] for row in grad_rows]).reshape(
            num_rows, num_classes
        )
        grad = _unrows(grad, batch_shape, axis)
        if reduction == "none":
            return np.array([float(v) for v in per_row]).reshape(batch_shape), grad
        return float(mpmath.fsum(per_row) / scale), grad


def mp_cross_entropy(
    logits,
    target,
    *,
    axis=-1,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    tangent=None,
):
    """mpmath cross-entropy (PyTorch semantics); grad rounded from ~50 digits.

    Given a `tangent` (the logits' shape), the second result is the Hessian-vector product
    H·tangent instead of the gradient: ``mpmath.diff`` of the gradient along the tangent.
    The same holds for the other ``mp_*`` losses.
    """
    return _mp_softmax_family(
        logits,
        target,
        axis=axis,
        gamma=0.0,
        class_weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        weighted_mean=True,
        tangent=tangent,
    )


def mp_focal_loss(
    logits,
    target,
    *,
    axis=-1,
    gamma=2.0,
    alpha=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    tangent=None,
):
    """mpmath softmax focal loss."""
    return _mp_softmax_family(
        logits,
        target,
        axis=axis,
        gamma=gamma,
        class_weight=_alpha_vector(alpha, logits, axis),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        weighted_mean=False,
        tangent=tangent,
    )


def mp_sigmoid_element(x, y, *, gamma=0.0, alpha=None, weight=1.0, pos_weight=1.0):
    """Loss and d loss/dx of one element, in mpmath, from σ(±x) = 1/(1 + exp(∓x))."""
    with _precision():
        x, y, gamma = _mp(x), _mp(y), _mp(gamma)
        w, pw = _mp(weight), _mp(pos_weight)
        sig_pos = 1 / (1 + mpmath.exp(-x))  # σ(x)
        sig_neg = 1 / (1 + mpmath.exp(x))  # σ(-x) = 1 - σ(x)
        minus_log_sig_pos = mpmath.log1p(mpmath.exp(-x))  # -log σ(x)
        minus_log_sig_neg = mpmath.log1p(mpmath.exp(x))  # -log σ(-x)
        ce = pw * y * minus_log_sig_pos + (1 - y) * minus_log_sig_neg
        dce = (1 - y) * sig_pos - pw * y * sig_neg
        factor = w
        if alpha is not None:
            a = _mp(alpha)
            factor *= a * y + (1 - a) * (1 - y)
        if gamma == 0:
            return factor * ce, factor * dce
        m = y * sig_neg + (1 - y) * sig_pos
        dm = (1 - 2 * y) * sig_pos * sig_neg
        loss = m**gamma * ce
        dloss = gamma * m ** (gamma - 1) * dm * ce + m**gamma * dce
        return factor * loss, factor * dloss


def _mp_sigmoid_family(
    logits, target, *, weight, pos_weight, gamma, alpha, reduction, tangent=None
):
    x = np.asarray(logits, dtype=np.float64)
    shape = x.shape
    y = np.broadcast_to(np.asarray(target, np.float64), shape)
    w = np.broadcast_to(np.asarray(1.0 if weight is None else weight, np.float64), shape)
    pw = np.broadcast_to(np.asarray(1.0 if pos_weight is None else pos_weight, np.float64), shape)
    with _precision():
        losses, grads = [], []
        for index in np.ndindex(shape):
            options = {"gamma": gamma, "alpha": alpha, "weight": w[index], "pos_weight": pw[index]}
            loss, grad = mp_sigmoid_element(x[index], y[index], **options)
            if tangent is not None:  # H·t in place of the gradient
                x_i, t_i, y_i = _mp(x[index]), _mp(np.asarray(tangent)[index]), y[index]
                grad = t_i * mpmath.diff(
                    lambda v, y_i=y_i, options=options: mp_sigmoid_element(v, y_i, **options)[1],
                    x_i,
                )
            losses.append(loss)
            grads.append(grad)
        total = mpmath.fsum(losses)
        size = math.prod(shape)
        if reduction == "none":
            return (
                np.array([float(v) for v in losses]).reshape(shape),
                np.array([float(g) for g in grads]).reshape(shape),
            )
        scale = mpmath.mpf(1) if reduction == "sum" or size == 0 else mpmath.mpf(size)
        return float(total / scale), np.array([float(g / scale) for g in grads]).reshape(shape)


def mp_binary_cross_entropy(
    logits, target, *, weight=None, pos_weight=None, reduction="mean", tangent=None
):
    """mpmath BCE with logits (BCEWithLogitsLoss semantics)."""
    return _mp_sigmoid_family(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        tangent=tangent,
    )


def mp_sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="mean", tangent=None):
    """mpmath sigmoid focal loss (torchvision semantics)."""
    return _mp_sigmoid_family(
        logits,
        target,
        weight=None,
        pos_weight=None,
        gamma=gamma,
        alpha=alpha,
        reduction=reduction,
        tangent=tangent,
    )


NUMPY = {
    "cross_entropy": np_cross_entropy,
    "focal_loss": np_focal_loss,
    "binary_cross_entropy": np_binary_cross_entropy,
    "sigmoid_focal_loss": np_sigmoid_focal_loss,
}
MPMATH = {
    "cross_entropy": mp_cross_entropy,
    "focal_loss": mp_focal_loss,
    "binary_cross_entropy": mp_binary_cross_entropy,
    "sigmoid_focal_loss": mp_sigmoid_focal_loss,
}


# ----------------------------------------------------------------------------- issue 13
# z-loss, logit soft-capping, PolyLoss and Asymmetric Loss (docs/math.md; issue 13),
# written from the definitions, independent of the library:
#
#   softcap c:  z' = c·tanh(z/c) replaces the logits everywhere (z-loss included);
#               dz'/dz = sech²(z/c) = 1 - tanh²(z/c).
#   poly:       f(ℓ) = -u^γ ℓ + ε u^(γ+1),  f'(ℓ) = f'_focal(ℓ) - ε (γ+1) u^γ p.
#   z-loss λ:   + λ·ω_i·lse_i², lse_i = log Σ_k exp(z'_ik), ∂/∂z'_j = 2λ·ω_i·lse_i·p_j;
#               ω_i = w_{y_i} for cross-entropy with class indices and a class weight,
#               1 otherwise; ignored elements add nothing; mean denominators unchanged.
#   ASL:        p = σ(x), p_m = max(p - clip, 0),
#               L = -y (1-p)^γ+ log p - (1-y) p_m^γ- log(1 - p_m);
#               dL/dx = y (γ+ (1-p)^γ+ p log p - (1-p)^(γ+ +1))
#                       + (1-y) [p > clip] p (1-p) (p_m^γ- / (1-p_m) - γ- p_m^(γ- -1) log(1-p_m)).


def _softmax_term(kind, log_p, p, u, gamma, epsilon):
    """f(ℓ) and f'(ℓ) of one class for kind "ce", "focal" or "poly", in mpmath."""
    if kind == "ce":
        return -log_p, mpmath.mpf(-1)
    f, df = mp_focal_term(log_p, p, u, gamma)
    if kind == "poly":
        gamma, epsilon = _mp(gamma), _mp(epsilon)
        f += epsilon * u ** (gamma + 1)
        df -= epsilon * (gamma + 1) * (u**gamma if gamma != 0 else 1) * p
    return f, df


def mp_softmax_ext_row(z, c, *, kind, gamma=0.0, epsilon=0.0, z_loss=0.0, z_weight=1, softcap=None):
    """Loss and gradient (w.r.t. the raw logits z) of one row with soft-capping and z-loss."""
    with _precision():
        if softcap is None:
            capped, factor = list(z), [mpmath.mpf(1)] * len(z)
        else:
            cap = _mp(softcap)
            capped = [cap * mpmath.tanh(z_k / cap) for z_k in z]
            factor = [mpmath.sech(z_k / cap) ** 2 for z_k in z]
        log_p, p, u = mp_log_softmax_row(capped)
        loss, slopes = mpmath.mpf(0), []
        for k in range(len(z)):
            if c[k] == 0:
                slopes.append(mpmath.mpf(0))
                continue
            f, df = _softmax_term(kind, log_p[k], p[k], u[k], gamma, epsilon)
            loss += c[k] * f
            slopes.append(c[k] * df)
        slope_sum = mpmath.fsum(slopes)
        grad = [slopes[j] - p[j] * slope_sum for j in range(len(z))]
        lam = _mp(z_loss) * z_weight
        if lam != 0:
            top = max(capped)
            lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in capped))
            loss += lam * lse**2
            grad = [grad[j] + 2 * lam * lse * p[j] for j in range(len(z))]
        return loss, [grad[j] * factor[j] for j in range(len(z))]


def _mp_softmax_ext(
    logits,
    target,
    *,
    kind,
    axis=-1,
    gamma=0.0,
    epsilon=0.0,
    class_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
    tangent=None,
):
    """The softmax family with every option of issue 13, in mpmath (module notes above)."""
    rows, batch_shape = _rows(logits, axis)
    num_rows, num_classes = rows.shape
    tangent_rows = None if tangent is None else _rows(tangent, axis)[0]
    target = np.asarray(target)
    hard = np.issubdtype(target.dtype, np.integer)
    flat_target = target.reshape(-1) if hard else None
    soft_target = None if hard else _rows(target, axis)[0]
    weighted_mean = kind == "ce" and class_weight is not None and hard
    with _precision():
        eps = _mp(label_smoothing)
        w = (
            [mpmath.mpf(1)] * num_classes
            if class_weight is None
            else [_mp(v) for v in class_weight]
        )
        per_row = [mpmath.mpf(0)] * num_rows
        grad_rows = [[mpmath.mpf(0)] * num_classes for _ in range(num_rows)]
        denominator = mpmath.mpf(0)
        for i in range(num_rows):
            if hard:
                t = int(flat_target[i])
                if t == ignore_index:
                    continue
                q = [(1 - eps) * (k == t) + eps / num_classes for k in range(num_classes)]
                omega = w[t] if weighted_mean else mpmath.mpf(1)
            else:
                q = [
                    (1 - eps) * _mp(soft_target[i, k]) + eps / num_classes
                    for k in range(num_classes)
                ]
                omega = mpmath.mpf(1)
            denominator += omega
            c = [q[k] * w[k] for k in range(num_classes)]
            z = [_mp(v) for v in rows[i]]
            options = {
                "kind": kind,
                "gamma": gamma,
                "epsilon": epsilon,
                "z_loss": z_loss,
                "z_weight": omega,
                "softcap": softcap,
            }
            per_row[i], grad_rows[i] = mp_softmax_ext_row(z, c, **options)
            if tangent_rows is not None:  # H·t in place of the gradient
                direction = [_mp(v) for v in tangent_rows[i]]

                def entry(e, j, z=z, c=c, direction=direction, options=options):
                    moved = [a + e * b for a, b in zip(z, direction, strict=True)]
                    return mp_softmax_ext_row(moved, c, **options)[1][j]

                grad_rows[i] = [
                    mpmath.diff(lambda e, j=j: entry(e, j), 0) for j in range(num_classes)
                ]
        if reduction in ("none", "sum"):
            scale = mpmath.mpf(1)
        elif denominator == 0:
            scale = mpmath.inf
        else:
            scale = denominator
        grad = np.array([[float(g / scale) for g in row] for row in grad_rows]).reshape(
            num_rows, num_classes
        )
        grad = _unrows(grad, batch_shape, axis)
        if reduction == "none":
            return np.array([float(v) for v in per_row]).reshape(batch_shape), grad
        return float(mpmath.fsum(per_row) / scale), grad


def mp_cross_entropy_ext(
    logits,
    target,
    *,
    axis=-1,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
    tangent=None,
):
    """mpmath cross-entropy with ``z_loss`` and ``softcap``."""
    return _mp_softmax_ext(
        logits,
        target,
        kind="ce",
        axis=axis,
        class_weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        tangent=tangent,
    )


def mp_focal_loss_ext(
    logits,
    target,
    *,
    axis=-1,
    gamma=2.0,
    alpha=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
    tangent=None,
):
    """mpmath softmax focal loss with ``z_loss`` and ``softcap`` (α does not weight z²)."""
    return _mp_softmax_ext(
        logits,
        target,
        kind="focal",
        axis=axis,
        gamma=gamma,
        class_weight=_alpha_vector(alpha, logits, axis),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        tangent=tangent,
    )


def mp_poly_loss(
    logits,
    target,
    *,
    axis=-1,
    epsilon=2.0,
    gamma=0.0,
    alpha=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
    tangent=None,
):
    """mpmath Poly-1 loss: Σ_k q_k α_k (-u_k^γ ℓ_k + ε u_k^(γ+1)); focal's mean."""
    return _mp_softmax_ext(
        logits,
        target,
        kind="poly",
        axis=axis,
        gamma=gamma,
        epsilon=epsilon,
        class_weight=_alpha_vector(alpha, logits, axis),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        tangent=tangent,
    )


def mp_asymmetric_value(x, y, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05):
    """The asymmetric loss of one element, straight from the definition, in mpmath (for
    ``mpmath.diff``): σ(±x) = 1/(1 + exp(∓x)), no cancellation at any finite x."""
    with _precision():
        x, y = _mp(x), _mp(y)
        gp, gn, m = _mp(gamma_pos), _mp(gamma_neg), _mp(clip)
        p = 1 / (1 + mpmath.exp(-x))
        one_minus_p = 1 / (1 + mpmath.exp(x))
        log_p = -mpmath.log1p(mpmath.exp(-x))
        if m == 0:
            p_m, log_one_minus_p_m = p, -mpmath.log1p(mpmath.exp(x))
        elif p > m:
            p_m, log_one_minus_p_m = p - m, mpmath.log(one_minus_p + m)
        else:
            p_m, log_one_minus_p_m = mpmath.mpf(0), mpmath.mpf(0)
        positive = -(one_minus_p**gp) * log_p if y != 0 else 0
        negative = -(p_m**gn) * log_one_minus_p_m if y != 1 else 0
        return y * positive + (1 - y) * negative


def mp_asymmetric_element(x, y, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05):
    """Loss and dloss/dx of one element, in mpmath (closed form of the module notes)."""
    with _precision():
        loss = mp_asymmetric_value(x, y, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip)
        x, y = _mp(x), _mp(y)
        gp, gn, m = _mp(gamma_pos), _mp(gamma_neg), _mp(clip)
        p = 1 / (1 + mpmath.exp(-x))
        one_minus_p = 1 / (1 + mpmath.exp(x))
        log_p = -mpmath.log1p(mpmath.exp(-x))
        d_pos = gp * one_minus_p**gp * p * log_p - one_minus_p ** (gp + 1)
        if m == 0 or p > m:
            if m == 0:
                p_m, one_minus_p_m = p, one_minus_p
                log_one_minus_p_m = -mpmath.log1p(mpmath.exp(x))
            else:
                p_m, one_minus_p_m = p - m, one_minus_p + m
                log_one_minus_p_m = mpmath.log(one_minus_p_m)
            focusing = p_m**gn / one_minus_p_m
            if gn != 0:
                focusing -= gn * p_m ** (gn - 1) * log_one_minus_p_m
            d_neg = p * one_minus_p * focusing
        else:
            d_neg = mpmath.mpf(0)
        grad = (y * d_pos if y != 0 else 0) + ((1 - y) * d_neg if y != 1 else 0)
        return loss, grad


def mp_asymmetric_loss(
    logits, target, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, reduction="mean", tangent=None
):
    """mpmath Asymmetric Loss (Ridnik et al. 2021); "mean" over all elements."""
    x = np.asarray(logits, dtype=np.float64)
    shape = x.shape
    y = np.broadcast_to(np.asarray(target, np.float64), shape)
    options = {"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "clip": clip}
    with _precision():
        losses, grads = [], []
        for index in np.ndindex(shape):
            loss, grad = mp_asymmetric_element(x[index], y[index], **options)
            if tangent is not None:  # H·t in place of the gradient
                t_i, y_i = _mp(np.asarray(tangent)[index]), y[index]
                grad = t_i * mpmath.diff(
                    lambda v, y_i=y_i: mp_asymmetric_element(v, y_i, **options)[1], _mp(x[index])
                )
            losses.append(loss)
            grads.append(grad)
        size = math.prod(shape)
        if reduction == "none":
            return (
                np.array([float(v) for v in losses]).reshape(shape),
                np.array([float(g) for g in grads]).reshape(shape),
            )
        scale = mpmath.mpf(1) if reduction == "sum" or size == 0 else mpmath.mpf(size)
        total = mpmath.fsum(losses)
        return float(total / scale), np.array([float(g / scale) for g in grads]).reshape(shape)


# NumPy, naive float64 ---------------------------------------------------------------


def _np_softmax_ext(
    logits,
    target,
    *,
    kind,
    axis=-1,
    gamma=0.0,
    epsilon=0.0,
    class_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    softcap=None,
):
    """The textbook formulas in float64: tanh cap, max-shifted log_softmax, the term, lse²."""
    weighted_mean = kind == "ce"
    s = _softmax_setup(
        logits, target, axis, class_weight, ignore_index, label_smoothing, weighted_mean
    )
    z = s["rows"]
    factor = np.ones_like(z)
    if softcap is not None:
        factor = 1.0 - np.tanh(z / softcap) ** 2
        z = softcap * np.tanh(z / softcap)
    log_p = log_softmax(z, axis=-1)
    p = np.exp(log_p)
    u = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "ce" or gamma == 0:
            f, df = -log_p, -np.ones_like(p)
        else:
            f = -(u**gamma) * log_p
            df = -(u**gamma) + gamma * u ** (gamma - 1) * p * log_p
            df = np.where(p == 1.0, 0.0, df)
        if kind == "poly":
            f = f + epsilon * u ** (gamma + 1)
            df = df - epsilon * (gamma + 1) * (u**gamma if gamma != 0 else 1.0) * p
    c = s["q"] * s["w"]
    terms = np.where(c == 0, 0.0, c * f)
    cdf = np.where(c == 0, 0.0, c * df)
    per_row = np.sum(terms, axis=-1)
    grad_rows = cdf - p * np.sum(cdf, axis=-1, keepdims=True)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.integer):
        t = target.reshape(-1)
        counted = t != ignore_index
        omega = counted.astype(np.float64)
        if kind == "ce" and class_weight is not None:
            omega = np.where(counted, s["w"][np.where(counted, t, 0)], 0.0)
    else:
        omega = np.ones(z.shape[0])
    if z_loss:
        top = np.max(z, axis=-1)
        lse = top + np.log(np.sum(np.exp(z - top[:, None]), axis=-1))
        per_row = per_row + z_loss * omega * lse**2
        grad_rows = grad_rows + (2 * z_loss * omega * lse)[:, None] * p
    grad_rows = grad_rows * factor
    per_element = per_row.reshape(s["batch_shape"])
    grad = _unrows(grad_rows, s["batch_shape"], axis)
    return _reduce(per_element, grad, reduction, s["denominator"])


def np_cross_entropy_ext(logits, target, *, weight=None, **options):
    """NumPy cross-entropy with ``z_loss`` and ``softcap``."""
    return _np_softmax_ext(logits, target, kind="ce", class_weight=weight, **options)


def np_focal_loss_ext(logits, target, *, axis=-1, gamma=2.0, alpha=None, **options):
    """NumPy softmax focal loss with ``z_loss`` and ``softcap``."""
    alpha = _alpha_vector(alpha, logits, axis)
    return _np_softmax_ext(
        logits, target, kind="focal", axis=axis, gamma=gamma, class_weight=alpha, **options
    )


def np_poly_loss(logits, target, *, axis=-1, epsilon=2.0, gamma=0.0, alpha=None, **options):
    """NumPy Poly-1 loss."""
    alpha = _alpha_vector(alpha, logits, axis)
    return _np_softmax_ext(
        logits,
        target,
        kind="poly",
        axis=axis,
        gamma=gamma,
        epsilon=epsilon,
        class_weight=alpha,
        **options,
    )


def np_asymmetric_loss(
    logits, target, *, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, reduction="mean"
):
    """NumPy Asymmetric Loss, naive: σ, softplus for the logs, max(p - clip, 0)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.broadcast_to(np.asarray(target, np.float64), x.shape)
    p = 1.0 / (1.0 + np.exp(-x))
    one_minus_p = 1.0 / (1.0 + np.exp(x))
    log_p = -np.logaddexp(0.0, -x)
    if clip == 0:
        p_m, one_minus_p_m, log_one_minus_p_m = p, one_minus_p, -np.logaddexp(0.0, x)
        active = np.ones(x.shape, dtype=bool)
    else:
        p_m = np.maximum(p - clip, 0.0)
        one_minus_p_m = np.minimum(one_minus_p + clip, 1.0)
        log_one_minus_p_m = np.log(one_minus_p_m)
        active = p > clip
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -y * one_minus_p**gamma_pos * log_p - (1 - y) * p_m**gamma_neg * log_one_minus_p_m
        d_pos = gamma_pos * one_minus_p**gamma_pos * p * log_p - one_minus_p ** (gamma_pos + 1)
        focusing = p_m**gamma_neg / one_minus_p_m
        if gamma_neg != 0:
            focusing = focusing - gamma_neg * p_m ** (gamma_neg - 1) * log_one_minus_p_m
        d_neg = np.where(active, p * one_minus_p * focusing, 0.0)
    grad = np.where(y != 0, y * d_pos, 0.0) + np.where(y != 1, (1 - y) * d_neg, 0.0)
    return _reduce(loss, np.array(grad), reduction, float(x.size))


NUMPY_EXT = {
    "cross_entropy": np_cross_entropy_ext,
    "focal_loss": np_focal_loss_ext,
    "poly_loss": np_poly_loss,
    "asymmetric_loss": np_asymmetric_loss,
}
"""Oracles taking the options of issue 13 (``z_loss``, ``softcap``; the new losses)."""
MPMATH_EXT = {
    "cross_entropy": mp_cross_entropy_ext,
    "focal_loss": mp_focal_loss_ext,
    "poly_loss": mp_poly_loss,
    "asymmetric_loss": mp_asymmetric_loss,
}
"""The same in mpmath."""
NUMPY.update(poly_loss=np_poly_loss, asymmetric_loss=np_asymmetric_loss)
MPMATH.update(poly_loss=mp_poly_loss, asymmetric_loss=mp_asymmetric_loss)

# ----------------------------------------------------------------------------- issue 24
# The varifocal and quality focal losses (tests/detection_oracles.py).
from detection_oracles import (  # noqa: E402
    mp_quality_focal_loss,
    mp_varifocal_loss,
    np_quality_focal_loss,
    np_varifocal_loss,
)

NUMPY.update(varifocal_loss=np_varifocal_loss, quality_focal_loss=np_quality_focal_loss)
MPMATH.update(varifocal_loss=mp_varifocal_loss, quality_focal_loss=mp_quality_focal_loss)
NUMPY_EXT.update(varifocal_loss=np_varifocal_loss, quality_focal_loss=np_quality_focal_loss)
MPMATH_EXT.update(varifocal_loss=mp_varifocal_loss, quality_focal_loss=mp_quality_focal_loss)
