"""Reductions and their adjoints.

``"mean"`` multiplies the sum by a scale, 1 / denominator, with the denominator chosen by
each loss (the number of counted elements, or PyTorch's Σ w_{y_i}); a mean over nothing
(denominator 0) is 0.0 with a zero gradient, not NaN (docs/semantics.md, pytorch#70348),
so the scale is 0 there. The scale is formed once (:func:`mean_scale`) and used by the
forward pass and its adjoint alike; ``"sum"`` and ``"none"`` need none (None).

A given normaliser (docs/semantics.md, Global normalisation) is one idiom in every call
kind (plain, fused head, vocabulary-parallel) and backend: :func:`split_normalizer` takes
it out of the call's options (the reduction must be ``"mean"`` and becomes ``"sum"``),
:func:`normalizer_scale` checks it and folds it into the mean's scale, 1 / normaliser,
and the sum is multiplied by that scale (:func:`normalized`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _checks
from ._numerics import times_nonzero

Array = Any
Namespace = Any


def mean_scale(xp: Namespace, denominator: Array) -> Array:
    """1 / denominator, and 0 where the denominator is 0 (the mean over nothing).

    0 also for a numerator that is not: the label-smoothing term of a weighted mean whose
    counted targets all weigh 0.
    """
    # d ** -1 rather than 1 / d: one operation in every namespace (torch makes 1 / d a
    # reciprocal and a product)
    return xp.where(denominator == 0, 0.0, denominator**-1.0)


def count_scale(count: int) -> float:
    """The scale of a mean over `count` elements known from the shape: 1 / count, and 0
    for no elements (a Python number: nothing to compute)."""
    return 0.0 if count == 0 else 1.0 / count


def split_normalizer(options: dict[str, Any]) -> Any:
    """Take ``normalizer`` out of a call's `options` (the rest goes to the call's
    preparation); where one is given, the reduction must be ``"mean"`` (the catalogue's
    message) and becomes ``"sum"``, which the normaliser's scale multiplies."""
    normalizer = options.pop("normalizer", None)
    if normalizer is not None:
        _checks.check_normalized_reduction(options.get("reduction", "mean"))
        options["reduction"] = "sum"
    return normalizer


def normalizer_scale(xp: Namespace, normalizer: Any, like: Array, *, check_values: bool) -> Array:
    """The mean's scale with a given normaliser folded in: 1 / normaliser as a 0-d array of
    `like`'s dtype and device, 0 where the normaliser is 0 (as for a mean over nothing),
    after its checks (:func:`._checks.check_normalizer`; values only with `check_values`)."""
    checked = _checks.check_normalizer(xp, normalizer, "mean", like, check_values=check_values)
    return reciprocal(xp, checked)


def reciprocal(xp: Namespace, normalizer: Array) -> Array:
    """1 / `normalizer`, 0 where it is 0; its derivative is 0 there, not NaN."""
    # 1 / n formed where n != 0 only: its derivative at n = 0 would be -inf · 0 = NaN
    safe = xp.where(normalizer == 0, xp.ones_like(normalizer), normalizer)
    return xp.where(normalizer == 0, 0.0, safe**-1.0)


def normalized(xp: Namespace, total: Array, normalizer: Array) -> Array:
    """A sum divided by a checked normaliser instead of the call's own denominator: the
    ``"mean"`` of a part of a batch over the whole batch's count (docs/semantics.md, Global
    normalisation); 0 where the normaliser is 0, as for a mean over nothing."""
    return total * reciprocal(xp, normalizer)


def reduce(xp: Namespace, per_element: Array, reduction: str, scale: Array | None) -> Array:
    """Apply `reduction` to the per-element losses (any shape); `scale` from
    :func:`mean_scale` for ``"mean"`` (ignored otherwise)."""
    if reduction == "none":
        return per_element
    total = xp.sum(per_element)
    if reduction == "sum":
        return total
    return total * scale


def per_element_cotangent(
    xp: Namespace, cotangent: Array, reduction: str, scale: Array | None
) -> Array:
    """The cotangent of each per-element loss, given the cotangent of the reduced loss.

    For ``"none"`` it is the cotangent itself (per element); otherwise a 0-d array that
    broadcasts against every element.
    """
    if reduction == "mean":
        return cotangent * scale
    return cotangent


# --------------------------------------------------------------------------------------
# The operands' derivatives of an element-wise loss (sigmoid, asymmetric, detection,
# distribution): per-element partials ∂ℓ/∂operand, reduced as the loss is.


def sum_to_shape(xp: Namespace, values: Array, shape: tuple[int, ...]) -> Array:
    """`values` summed over the axes along which an operand of `shape` was broadcast."""
    lead = values.ndim - len(shape)
    if lead:
        values = xp.sum(values, axis=tuple(range(lead)))
    axes = tuple(d for d, size in enumerate(shape) if size == 1 and values.shape[d] != 1)
    if axes:
        values = xp.sum(values, axis=axes, keepdims=True)
    return xp.reshape(values, shape)


def operand_cotangents(
    xp: Namespace,
    partials: Mapping[str, Array],
    cotangent: Array,
    reduction: str,
    scale: Any,
    operands: Any,
) -> dict[str, Array]:
    """The cotangent of each operand named in `partials` (its per-element partial of the
    loss): the partial times the loss's per-element cotangent, summed back to the
    operand's shape (an operand broadcast against the logits)."""
    element = per_element_cotangent(xp, cotangent, reduction, scale)
    return {
        name: sum_to_shape(
            xp, times_nonzero(xp, element, partial), tuple(getattr(operands, name).shape)
        )
        for name, partial in partials.items()
    }


def operand_tangent(
    xp: Namespace,
    partials: Mapping[str, Array],
    tangents: Mapping[str, Array],
    reduction: str,
    scale: Any,
) -> Array:
    """The loss's directional derivative along the operands' `tangents`: Σ partial · tangent
    per element (linear in the tangents: JAX transposes it), reduced as the loss is."""
    if not partials:
        raise ValueError(f"no tangent of a differentiable operand; got {sorted(tangents)}")
    terms = [partial * tangents[name] for name, partial in partials.items()]
    per_element = terms[0]
    for term in terms[1:]:
        per_element = per_element + term
    return reduce(xp, per_element, reduction, scale)
