"""Reductions and their adjoints.

``"mean"`` divides the sum by a denominator chosen by each loss (the number of counted
elements, or PyTorch's Σ w_{y_i}); a mean over nothing (denominator 0) is 0.0 with a zero
gradient, not NaN (docs/semantics.md, pytorch#70348).
"""

from __future__ import annotations

from typing import Any

Array = Any
Namespace = Any


def _nonzero(xp: Namespace, denominator: Array) -> Array:
    """The denominator with 0 replaced by 1, where the mean is 0 by definition."""
    return xp.where(denominator == 0, 1.0, denominator)


def reduce(xp: Namespace, per_element: Array, reduction: str, denominator: Array) -> Array:
    """Apply `reduction` to the per-element losses (any shape)."""
    if reduction == "none":
        return per_element
    total = xp.sum(per_element)
    if reduction == "sum":
        return total
    # 0 where the denominator is: also for a numerator that is not (the label-smoothing
    # term of a weighted mean whose counted targets all weigh 0).
    return xp.where(denominator == 0, xp.zeros_like(total), total / _nonzero(xp, denominator))


def per_element_cotangent(
    xp: Namespace, cotangent: Array, reduction: str, denominator: Array
) -> Array:
    """The cotangent of each per-element loss, given the cotangent of the reduced loss.

    For ``"none"`` it is the cotangent itself (per element); otherwise a 0-d array that
    broadcasts against every element.
    """
    if reduction == "mean":
        scaled = cotangent / _nonzero(xp, denominator)
        return xp.where(denominator == 0, xp.zeros_like(scaled), scaled)
    return cotangent
