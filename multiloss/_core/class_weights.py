r"""Class weights from class counts, for the ``weight=`` or ``alpha=`` of any loss.

* inverse frequency (scikit-learn's ``"balanced"``): $w_c = n / (C \cdot n_c)$, so that
  every class carries the same total weight;
* class-balanced (Cui et al., "Class-Balanced Loss Based on Effective Number of
  Samples", CVPR 2019): $w_c \propto (1 - \beta) / (1 - \beta^{n_c})$, the inverse of the
  effective number of samples, normalised so that $\sum_c w_c = C$.

A class with no sample (n_c = 0) gets the weight 0: it has no training element for a
weight to act on, and an infinite weight would turn any later use into inf or NaN. Both
functions return an array of the counts' own namespace, floating.
"""

from __future__ import annotations

import math
from typing import Any

from . import _checks

Array = Any
Namespace = Any


def _check_counts(xp: Namespace, counts: Array, *, check_values: bool) -> Array:
    """The counts as a floating 1-d array, after the checks of docs/semantics.md."""
    if counts.ndim != 1 or counts.shape[0] == 0:
        raise ValueError(
            f"counts must be a 1-d array with one entry per class; got shape {tuple(counts.shape)}"
        )
    integral = xp.isdtype(counts.dtype, "integral")
    if not (integral or xp.isdtype(counts.dtype, "real floating")):
        raise TypeError(f"counts must hold non-negative integers; got dtype {counts.dtype}")
    dtype = counts.dtype if not integral else _default_float(xp, counts)
    values = xp.astype(counts, dtype)
    if check_values:
        whole = xp.isfinite(values) & (xp.floor(values) == values)
        if not bool(xp.all(whole & (values >= 0))):
            raise ValueError(f"counts must be non-negative integers; got {_checks.preview(counts)}")
        if not bool(xp.any(values > 0)):
            raise ValueError(
                f"counts must count at least one sample; got {_checks.preview(counts)}"
            )
    return values


def _default_float(xp: Namespace, like: Array) -> Any:
    return xp.__array_namespace_info__().default_dtypes(device=_checks.device(like))[
        "real floating"
    ]


def inverse_frequency_weights(xp: Namespace, counts: Array, *, check_values: bool = True) -> Array:
    """n / (C · n_c) per class, 0 for a class without samples."""
    values = _check_counts(xp, counts, check_values=check_values)
    present = values > 0
    total = xp.sum(values)
    safe = xp.where(present, values, xp.ones_like(values))
    return xp.where(present, total / (values.shape[0] * safe), xp.zeros_like(values))


def class_balanced_weights(
    xp: Namespace, counts: Array, *, beta: object = 0.9999, check_values: bool = True
) -> Array:
    """(1 - β) / (1 - β^{n_c}) per class, normalised to sum to C; 0 without samples.

    1 - β^n is computed as -expm1(n · log β), exact also for β close to 1 (β = 0.9999
    and small n, where 1 - β^n would cancel); β = 0 weights every present class alike.
    """
    out_of_range = ValueError(f"beta must be in [0, 1) and not NaN; got {beta!r}")
    try:
        beta = _checks.check_real_number("beta", beta, low=0.0, high=1.0)
    except ValueError:
        raise out_of_range from None
    if beta == 1.0:
        raise out_of_range
    values = _check_counts(xp, counts, check_values=check_values)
    present = values > 0
    if beta == 0:
        inverse_effective = xp.where(present, xp.ones_like(values), xp.zeros_like(values))
    else:
        # 1 / (1 - β^n), up to the common factor 1 - β that the normalisation removes
        one_minus_power = -xp.expm1(values * math.log(beta))
        safe = xp.where(present, one_minus_power, xp.ones_like(values))
        inverse_effective = xp.where(present, 1.0 / safe, xp.zeros_like(values))
    return inverse_effective * (values.shape[0] / xp.sum(inverse_effective))
