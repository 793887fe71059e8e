r"""The denominators of ``"mean"``, from the targets alone: what a global normaliser is made of.

A loss's ``"mean"`` is Σ_i L_i / D. Split over micro-batches or devices, each part's sum
divided by the whole batch's D adds up to the whole batch's mean; each part's own mean does
not, as soon as the parts count differently many targets. D is

* for class-index targets, the number of counted targets (not ``ignore_index``), or
  PyTorch's Σ_i w_{y_i} for weighted cross-entropy (:func:`count_targets`);
* for probability targets and the element-wise losses, the number of elements, known from
  the shape (:func:`count_elements`).

Each is a 0-d array on the target's device, computed without reading a value back to the
host, so that it can be all-reduced and passed as ``normalizer=`` (docs/distributed.md).
"""

from __future__ import annotations

import math
from typing import Any

from . import _checks
from .kernels import index_dtype

Array = Any
Namespace = Any


def _target_namespace(target: object) -> Namespace:
    if not _checks.is_array(target):
        raise TypeError(f"target must be an array; got {type(target).__name__}")
    return _checks.namespace_of(target=target)


def count_targets(
    target: Array,
    *,
    ignore_index: object = -100,
    weight: object = None,
    check_values: bool = True,
) -> Array:
    """Σ_i [y_i ≠ ignore_index], or Σ_i [y_i ≠ ignore_index] · w_{y_i} with `weight`.

    Integer (index dtype) without a weight, exact at any count; the weight's floating
    dtype with it, float32 at least (a 16-bit sum of many weights would round and
    overflow). `check_values` False skips the index range check (traced data).
    """
    xp = _target_namespace(target)
    if not xp.isdtype(target.dtype, "integral"):
        raise TypeError(
            f"count_targets counts class indices, so target must hold integers; got dtype "
            f"{target.dtype} (the mean over probability targets or element-wise losses "
            f"counts elements: use count_elements)"
        )
    ignore_index = _checks.check_ignore_index(ignore_index)
    index = xp.astype(target, index_dtype(xp), copy=False)
    counted = index != ignore_index
    if weight is None:
        if check_values and bool(xp.any(counted & (index < 0))):
            raise ValueError(
                f"target has negative class indices other than ignore_index={ignore_index}: "
                f"{_checks._preview(target[counted & (index < 0)])}"
            )
        return xp.sum(xp.astype(counted, index_dtype(xp)))
    float_dtype = xp.__array_namespace_info__().default_dtypes(device=_checks.device(target))
    dtype = float_dtype["real floating"]
    given: Any = weight
    same_backend = _checks.is_array(given) and _checks.namespace_of(weight=given) is xp
    if same_backend and xp.isdtype(given.dtype, "real floating"):
        # at least float32: a 16-bit sum of many weights rounds, then overflows
        dtype = _checks.compute_dtype(xp, given.dtype)
    weights = _checks.as_weight_array(xp, "weight", weight, target, dtype)
    if weights.ndim != 1:
        raise ValueError(
            f"weight must have one entry per class, a 1-d shape; got shape {tuple(weights.shape)}"
        )
    num_classes = weights.shape[0]
    if check_values:
        _checks.check_class_indices(xp, target, index, num_classes, ignore_index)
        _checks.check_weight_values(xp, "weight", weights)
    if num_classes == 0:  # nothing can be counted: every index must be ignore_index
        return xp.sum(xp.zeros(index.shape, dtype=dtype, device=_checks.device(target)))
    gathered = xp.take(weights, xp.reshape(xp.clip(index, 0, num_classes - 1), (-1,)), axis=0)
    gathered = xp.reshape(gathered, index.shape)
    return xp.sum(xp.where(counted, gathered, xp.zeros_like(gathered)))


def count_elements(target: Array, *, class_axis: object = None) -> Array:
    """The number of loss elements of `target`: all its elements (the element-wise losses),
    or those along every axis but `class_axis` (probability targets of a softmax loss);
    a 0-d integer array (index dtype) on the target's device."""
    xp = _target_namespace(target)
    shape = tuple(target.shape)
    if class_axis is not None:
        if isinstance(class_axis, bool) or not isinstance(class_axis, int):
            raise TypeError(f"class_axis must be an integer or None; got {class_axis!r}")
        if not -len(shape) <= class_axis < len(shape):
            raise ValueError(
                f"class_axis {class_axis} is out of range for a target with {len(shape)} "
                f"dimension(s), shape {shape}"
            )
        axis = class_axis % len(shape)
        shape = _checks.shape_without(shape, axis)
    return xp.asarray(math.prod(shape), dtype=index_dtype(xp), device=_checks.device(target))
