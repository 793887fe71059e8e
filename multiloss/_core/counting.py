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
import numbers
from collections.abc import Sequence
from typing import Any

from . import _checks
from .kernels import index_dtype
from .policy import host, policy_of, values_readable

Array = Any
Namespace = Any


def _target_namespace(target: object) -> Namespace:
    if not _checks.is_array(target):
        raise TypeError(f"target must be an array; got {type(target).__name__}")
    return _checks.namespace_of(target=target)


def target_count(
    target: Array,
    *,
    ignore_index: object = -100,
    weight: object = None,
    check_values: bool | None = None,
) -> Array:
    """Σ_i [y_i ≠ ignore_index], or Σ_i [y_i ≠ ignore_index] · w_{y_i} with `weight`.

    Integer (index dtype) without a weight, exact at any count; the weight's floating
    dtype with it, float32 at least (a 16-bit sum of many weights would round and
    overflow). `check_values` False skips the index range check (traced data); None asks
    the target's backend policy (:func:`.policy.values_readable`). Values are read where
    the policy reads them (:func:`.policy.host`), never through a trace.
    """
    xp = _target_namespace(target)
    weight = policy_of(target).adopt(weight)
    if check_values is None:
        check_values = values_readable(target, weight)
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
        if check_values:
            hxp, labels = host(target)
            bad = (labels != ignore_index) & (labels < 0)
            if bool(hxp.any(bad)):
                raise ValueError(
                    f"target has negative class indices other than "
                    f"ignore_index={ignore_index}: {_checks.preview(labels[bad])}"
                )
        return xp.sum(xp.astype(counted, index_dtype(xp)))
    float_dtype = xp.__array_namespace_info__().default_dtypes(device=_checks.device(target))
    dtype = float_dtype["real floating"]
    given: Any = weight
    same_backend = _checks.is_array(given) and _checks.namespace_of(weight=given) is xp
    if same_backend and xp.isdtype(given.dtype, "real floating"):
        # at least float32: a 16-bit sum of many weights rounds, then overflows
        dtype = _checks.compute_dtype(xp, given.dtype)
    weights = _checks.as_weight_array(xp, "weight", weight, target, dtype, like_name="target")
    if weights.ndim != 1:
        raise ValueError(
            f"weight must have one entry per class, a 1-d shape; got shape {tuple(weights.shape)}"
        )
    num_classes = weights.shape[0]
    if check_values:
        hxp, labels = host(target)
        host_index = hxp.astype(labels, index_dtype(hxp), copy=False)
        _checks.check_class_indices(hxp, labels, host_index, num_classes, ignore_index)
        given = weight if _checks.is_array(weight) else weights  # read as given, not traced
        if values_readable(given):
            _checks.check_weight_values(xp, "weight", given)
    if num_classes == 0:  # nothing can be counted: every index must be ignore_index
        return xp.sum(xp.zeros(index.shape, dtype=dtype, device=_checks.device(target)))
    gathered = xp.take(weights, xp.reshape(xp.clip(index, 0, num_classes - 1), (-1,)), axis=0)
    gathered = xp.reshape(gathered, index.shape)
    return xp.sum(xp.where(counted, gathered, xp.zeros_like(gathered)))


def count_elements(target: Array, *, class_axis: int | None = None) -> Array:
    """The number of loss elements: the denominator of the mean of probability targets
    (with `class_axis`) and of the element-wise losses (without).

    Args:
        target: the target array of any backend (its shape is all that is read).
        class_axis: the class axis of a softmax loss's probability target, which is not
            counted; None (the default) counts every element (`binary_cross_entropy`,
            `sigmoid_focal_loss`, `asymmetric_loss`).

    Returns:
        A 0-d integer array (the backend's index dtype) on the target's device.

    Examples:
        >>> import numpy as np, multiloss
        >>> int(multiloss.count_elements(np.zeros((4, 3)), class_axis=-1))
        4
        >>> int(multiloss.count_elements(np.zeros((4, 3))))
        12
    """
    xp = _target_namespace(target)
    shape = tuple(target.shape)
    if class_axis is not None:
        if isinstance(class_axis, bool) or not isinstance(class_axis, numbers.Integral):
            raise TypeError(f"class_axis must be an integer or None; got {class_axis!r}")
        class_axis = int(class_axis)
        if not -len(shape) <= class_axis < len(shape):
            raise ValueError(
                f"class_axis {class_axis} is out of range for a target with {len(shape)} "
                f"dimension(s), shape {shape}"
            )
        axis = class_axis % len(shape)
        shape = _checks.shape_without(shape, axis)
    return xp.asarray(math.prod(shape), dtype=index_dtype(xp), device=_checks.device(target))


def count_targets(
    target: Array, *, ignore_index: int = -100, weight: Array | Sequence[float] | None = None
) -> Array:
    r"""The number of counted class-index targets: the denominator of a softmax loss's mean.

    $$
    D = \sum_i [y_i \ne \mathrm{ignore}] \quad\text{or, with weight,}\quad
    D = \sum_i [y_i \ne \mathrm{ignore}]\, w_{y_i}
    $$

    Pass the weight for `cross_entropy` with `weight=` (PyTorch's weighted mean divides by
    $\sum_i w_{y_i}$); focal loss and PolyLoss divide by the count, whatever their
    `alpha`. Summed over micro-batches and all-reduced over ranks, it is the `normalizer=`
    that makes the parts of a batch add up to the whole batch's mean ([Global
    normalisation][global-normalisation]). No value is read back to the host (only the
    checks below read values, where they are known: NumPy, CPU tensors, concrete JAX arrays).

    Args:
        target: class indices of any integer dtype and shape, an array of any backend.
        ignore_index: targets equal to it are not counted.
        weight: per-class weights (length C) of `cross_entropy`, or None.

    Returns:
        A 0-d array on the target's device: integer (the backend's index dtype, exact at
            any count) without `weight`, the weight's floating dtype with it (float32 at
            least: a 16-bit sum of many weights would round, then overflow).

    Raises:
        TypeError: `target` is not an array of integers, `weight` not numbers.
        ValueError: `weight` is not 1-d; where values are known, a class index out of
            range (negative other than `ignore_index`; at or above C with `weight`), a
            negative or non-finite weight.

    Examples:
        >>> import numpy as np, multiloss
        >>> target = np.array([0, 2, -100, 1])
        >>> int(multiloss.count_targets(target))
        3
        >>> float(multiloss.count_targets(target, weight=[1.0, 0.5, 2.0]))
        3.5
    """
    return target_count(target, ignore_index=ignore_index, weight=weight)
