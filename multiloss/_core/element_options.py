r"""The options every element-wise (sigmoid) loss takes, applied once when a call is prepared.

``ignore_index``, ``label_smoothing`` and a per-class ``alpha`` are not formulas of their
own: each is folded into the target and the element weight the families already take, so
every family, derivative and engine (the Triton and Pallas kernels included) serves them
unchanged (docs/semantics.md, Sigmoid losses):

    counted  c = (y ≠ ignore_index),    y ← where(c, y, 0)
    smoothed y ← y (1 - ε) + ε / 2                          (Keras's label smoothing)
    alpha    w ← w · (α_c y + (1 - α_c)(1 - y))             (α_c along the last axis)
    ignored  w ← where(c, w, 0);  "mean": w ← w / Σ c, reduction "sum"

The mean over the counted elements is thus Σ w ℓ / Σ c, 0 (with a zero gradient) where
nothing is counted, as for the softmax losses. The gradients with respect to the target,
the weight and α reach the user's arrays through the backend's own autodiff of these
few operations (they are formed outside the loss's custom derivative); so does the
gradient with respect to an ε given as a 0-d array (a schedule: docs/semantics.md,
Schedules), folded whatever its value, NaN where out of range (:func:`.hyper.folded`).
"""

from __future__ import annotations

from typing import Any

from . import _checks, hyper
from ._reduce import mean_scale
from .policy import host

Array = Any
Namespace = Any


def check_ignore_index(ignore_index: object) -> int | None:
    """None (nothing ignored) or an integer."""
    return None if ignore_index is None else _checks.check_ignore_index(ignore_index)


def smooth(target: Array, label_smoothing: float | Array) -> Array:
    """y (1 - ε) + ε / 2: each element's own two-class smoothing (Keras); ε a number or a
    0-d array (formed by the backend's operations whatever its value)."""
    if hyper.is_zero(label_smoothing):
        return target
    return target * (1.0 - label_smoothing) + 0.5 * label_smoothing


def class_alpha(
    xp: Namespace, alpha: object, logits: Array, dtype: Any, *, check_values: bool
) -> Array:
    """A per-class α (an array or sequence broadcast against the logits: a length-C vector
    weights the last axis) as an array of `dtype`, checked to lie in [0, 1] (where values
    are read; else NaN in place of each value outside)."""
    known = not _checks.is_array(alpha)  # a Python sequence: its values are known now
    array = _checks.as_weight_array(xp, "alpha", alpha, logits, dtype)
    shape = tuple(logits.shape)
    if _checks.broadcast_shape(tuple(array.shape), shape) != shape:
        raise ValueError(
            f"alpha of shape {tuple(array.shape)} does not broadcast to the logits' shape "
            f"{shape} (a per-class alpha has one entry per class, along the last axis)"
        )
    if not (check_values or known):  # traced: NaN in place of a value outside [0, 1], never a clamp
        return xp.where((array >= 0) & (array <= 1), array, float("nan"))
    if known:
        inside = all(0 <= float(value) <= 1 for value in _flat(alpha))  # False for NaN too
    else:
        host_xp, values = host(array)
        inside = bool(host_xp.all((values >= 0) & (values <= 1)))
    if not inside:
        raise ValueError(
            f"alpha must be non-negative and at most 1 (in [0, 1], not NaN); got "
            f"{_checks.preview(array)}"
        )
    return array


def _flat(values: Any) -> list[Any]:
    """The numbers of a (nested) Python sequence."""
    if isinstance(values, (list, tuple)):
        return [number for value in values for number in _flat(value)]
    return [values]


def check_unit_target(xp: Namespace, target: Array) -> None:
    """A soft target in [0, 1] (varifocal, quality focal), where its values can be read."""
    host_xp, values = host(target)
    if not bool(host_xp.all((values >= 0) & (values <= 1))):  # False for NaN too
        raise ValueError(
            f"target must lie in [0, 1] (or equal ignore_index); got {_checks.preview(values)}"
        )


def fold(
    xp: Namespace,
    target: Array,
    weight: Array | None,
    *,
    dtype: Any,
    alpha: Array | None,
    ignore_index: int | None,
    label_smoothing: float | Array,
    reduction: str,
    unit_target: bool = False,
    check_values: bool = True,
) -> tuple[Array, Array | None, str]:
    """The call's target (in `dtype`), element weight and reduction with the options folded
    in (see the module docstring). `label_smoothing` 0 leaves the target to the family
    (the varifocal loss smooths only its cross-entropy's target); `unit_target` checks
    the counted targets to lie in [0, 1]. The target is changed beyond its dtype only by
    `ignore_index` and `label_smoothing` (:func:`folds_target`)."""
    target = xp.astype(target, dtype, copy=False)
    counted = None
    if ignore_index is not None:
        counted = target != float(ignore_index)
        target = xp.where(counted, target, 0.0)
    if unit_target and check_values:
        check_unit_target(xp, target)
    elif unit_target:  # traced: NaN in each element outside [0, 1] (through its weight, so
        # that the target stays the user's and the backward pass sees the NaN too)
        inside = (target >= 0) & (target <= 1)
        weight = xp.where(inside, xp.ones_like(target) if weight is None else weight, xp.nan)
    target = smooth(target, label_smoothing)
    if alpha is not None:
        alpha_t = alpha * target + (1.0 - alpha) * (1.0 - target)
        weight = alpha_t if weight is None else weight * alpha_t
    if counted is not None:
        weight = xp.where(counted, xp.ones_like(target) if weight is None else weight, 0.0)
        if reduction == "mean":
            count = xp.sum(xp.astype(counted, dtype))
            weight, reduction = weight * mean_scale(xp, count), "sum"
    return target, weight, reduction


def folds_target(ignore_index: object, label_smoothing: object) -> bool:
    """Whether a call's target is changed by its preparation beyond the compute dtype (an
    adapter then keeps the prepared target for the backward pass, not the user's)."""
    if ignore_index is not None or hyper.is_0d_array(label_smoothing):
        return True  # an array ε: folded whatever its value (never read by the host)
    return isinstance(label_smoothing, (int, float)) and label_smoothing != 0


__all__ = [
    "check_ignore_index",
    "class_alpha",
    "fold",
    "folds_target",
    "smooth",
]
