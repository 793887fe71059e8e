"""Stable elementwise pieces shared by the losses (docs/math.md).

All functions take the array namespace ``xp`` first and use only the array API standard.
Notation: ``log_p`` is a log-probability ℓ ≤ 0, ``p = exp(ℓ)`` and ``u = 1 - p = -expm1(ℓ)``.
"""

from __future__ import annotations

from typing import Any

Array = Any
Namespace = Any

# Below this |ℓ|, r = ℓ / (1 - e^ℓ) is taken from its series; the first omitted term,
# |ℓ|^10 · |B_10| / 10!, is below 3e-17 there, under half an ulp of float64.
_SERIES_RADIUS = 0.1


def one_minus_p(xp: Namespace, log_p: Array) -> Array:
    """u = 1 - e^ℓ, accurate also where p is close to 1."""
    return -xp.expm1(log_p)


def log_p_over_one_minus_p(xp: Namespace, log_p: Array, u: Array) -> Array:
    """r = ℓ / u, which tends to -1 as ℓ → 0 (p → 1).

    Near 0 it is the series -1 + ℓ/2 - ℓ²/12 + ℓ⁴/720 - ℓ⁶/30240 + ℓ⁸/1209600
    (Bernoulli numbers), so that r and its derivatives are finite and exact at p = 1.
    """
    near_zero = xp.abs(log_p) < _SERIES_RADIUS
    l2 = log_p * log_p
    series = (
        -1.0 + log_p / 2 + l2 * (-1.0 / 12 + l2 * (1.0 / 720 + l2 * (-1.0 / 30240 + l2 / 1209600)))
    )
    safe_u = xp.where(near_zero, xp.ones_like(u), u)
    return xp.where(near_zero, series, log_p / safe_u)


def times_nonzero(xp: Namespace, coefficient: Array, value: Array) -> Array:
    """coefficient · value, taken as 0 where the coefficient is exactly 0 (so 0 · inf = 0).

    NaN coefficients (an out-of-range class index under tracing) stay NaN.
    """
    return xp.where(coefficient == 0, 0.0, coefficient * value)


def power(base: Array, exponent: float) -> Array:
    """base ** exponent, with an integral exponent passed as a Python int: namespaces then
    multiply (JAX's ``integer_pow``, NumPy's and torch's integer powers) instead of taking
    exp(exponent · log base), which costs transcendental work per element and rounds more.
    An array exponent (a hyperparameter given as data: :mod:`.hyper`) is taken as it is."""
    if not isinstance(exponent, (int, float)):
        return base**exponent
    if float(exponent).is_integer() and abs(exponent) <= 64:
        return base ** int(exponent)
    return base**exponent
