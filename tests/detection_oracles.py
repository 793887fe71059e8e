"""Independent oracles of the varifocal and quality focal losses (float64 NumPy, naive;
mpmath), written from the papers' definitions (docs/math.md), not from the library:

    VFL (Zhang et al. 2021):  L = w · K · BCE_pw(x, q),  K = q (q > 0), α σ(x)^γ (q = 0)
    QFL (Li et al. 2020):     L = w · |q - σ(x)|^β · BCE_pw(x, q)
    BCE_pw(x, q) = -pw q log σ(x) - (1 - q) log(1 - σ(x))

Each returns ``(loss, gradient with respect to the logits)`` as the other oracles do
(tests/oracles.py), the mpmath ones H·t in place of the gradient when given a tangent.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np

DPS = 60


def _reduce(per_element, grad, reduction, denominator):
    if reduction == "none":
        return per_element, grad
    if reduction == "sum":
        return float(np.sum(per_element)), grad
    if denominator == 0:
        return 0.0, np.zeros_like(grad)
    return float(np.sum(per_element)) / denominator, grad / denominator


def _operands(logits, target, weight, pos_weight):
    x = np.asarray(logits, dtype=np.float64)
    q = np.broadcast_to(np.asarray(target, np.float64), x.shape)
    w = np.broadcast_to(np.asarray(1.0 if weight is None else weight, np.float64), x.shape)
    pw = np.broadcast_to(np.asarray(1.0 if pos_weight is None else pos_weight, np.float64), x.shape)
    return x, q, w, pw


def _np_bce(x, q, pw):
    """BCE and its slope in x, textbook float64."""
    p = 1.0 / (1.0 + np.exp(-x))
    bce = pw * q * np.logaddexp(0.0, -x) + (1.0 - q) * np.logaddexp(0.0, x)
    return p, bce, (1.0 - q) * p - pw * q * (1.0 - p)


def np_varifocal_loss(
    logits, target, *, alpha=0.75, gamma=2.0, weight=None, pos_weight=None, reduction="mean"
):
    """NumPy varifocal loss, naive float64."""
    x, q, w, pw = _operands(logits, target, weight, pos_weight)
    p, bce, bce_slope = _np_bce(x, q, pw)
    k = np.where(q > 0, q, alpha * p**gamma)
    k_slope = np.where(q > 0, 0.0, alpha * gamma * p**gamma * (1.0 - p))
    loss = w * k * bce
    grad = w * (k_slope * bce + k * bce_slope)
    return _reduce(loss, grad, reduction, float(x.size))


def np_quality_focal_loss(
    logits, target, *, beta=2.0, weight=None, pos_weight=None, reduction="mean"
):
    """NumPy quality focal loss, naive float64 (|q - p| as written)."""
    x, q, w, pw = _operands(logits, target, weight, pos_weight)
    p, bce, bce_slope = _np_bce(x, q, pw)
    d = q - p
    k = np.abs(d) ** beta
    with np.errstate(divide="ignore", invalid="ignore"):
        k_slope = np.where(d == 0, 0.0, -beta * np.abs(d) ** (beta - 1) * np.sign(d) * p * (1 - p))
    loss = w * k * bce
    grad = w * (k_slope * bce + k * bce_slope)
    return _reduce(loss, grad, reduction, float(x.size))


def _mp_bce(x, q, pw):
    log_p = -mpmath.log1p(mpmath.exp(-x))
    log_1mp = -mpmath.log1p(mpmath.exp(x))
    return -pw * q * log_p - (1 - q) * log_1mp


def mp_varifocal_element(x, q, *, alpha=0.75, gamma=2.0, weight=1.0, pos_weight=1.0):
    p = 1 / (1 + mpmath.exp(-x))
    k = q if q > 0 else alpha * p ** mpmath.mpf(gamma)
    return weight * k * _mp_bce(x, q, pos_weight)


def mp_quality_focal_element(x, q, *, beta=2.0, weight=1.0, pos_weight=1.0):
    p, one_minus_p = 1 / (1 + mpmath.exp(-x)), 1 / (1 + mpmath.exp(x))
    distance = q * one_minus_p - (1 - q) * p  # q - p, exact also where 1 - p is below 1e-60
    return weight * abs(distance) ** mpmath.mpf(beta) * _mp_bce(x, q, pos_weight)


def _mp_family(element, logits, target, options, weight, pos_weight, reduction, tangent):
    x, q, w, pw = _operands(logits, target, weight, pos_weight)
    shape = x.shape
    with mpmath.workdps(max(DPS, mpmath.mp.dps)):
        losses, grads = [], []
        for index in np.ndindex(shape):
            args = {
                "weight": mpmath.mpf(float(w[index])),
                "pos_weight": mpmath.mpf(float(pw[index])),
            }
            q_i = mpmath.mpf(float(q[index]))

            def f(v, q_i=q_i, args=args):
                return element(v, q_i, **options, **args)

            x_i = mpmath.mpf(float(x[index]))
            losses.append(f(x_i))
            if tangent is None:
                grads.append(mpmath.diff(f, x_i))
            else:
                grads.append(mpmath.mpf(float(np.asarray(tangent)[index])) * mpmath.diff(f, x_i, 2))
        size = math.prod(shape)
        if reduction == "none":
            return (
                np.array([float(v) for v in losses]).reshape(shape),
                np.array([float(g) for g in grads]).reshape(shape),
            )
        scale = mpmath.mpf(1) if reduction == "sum" or size == 0 else mpmath.mpf(size)
        total = mpmath.fsum(losses)
        return float(total / scale), np.array([float(g / scale) for g in grads]).reshape(shape)


def mp_varifocal_loss(
    logits,
    target,
    *,
    alpha=0.75,
    gamma=2.0,
    weight=None,
    pos_weight=None,
    reduction="mean",
    tangent=None,
):
    """mpmath varifocal loss; its derivatives by mpmath.diff at high precision."""
    options = {"alpha": alpha, "gamma": gamma}
    return _mp_family(
        mp_varifocal_element, logits, target, options, weight, pos_weight, reduction, tangent
    )


def mp_quality_focal_loss(
    logits, target, *, beta=2.0, weight=None, pos_weight=None, reduction="mean", tangent=None
):
    """mpmath quality focal loss; its derivatives by mpmath.diff at high precision."""
    return _mp_family(
        mp_quality_focal_element,
        logits,
        target,
        {"beta": beta},
        weight,
        pos_weight,
        reduction,
        tangent,
    )
