"""Validation of arguments: the bad-input catalogue of docs/semantics.md, Bad input.

Every check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind,
wrong value or shape) with a message that names the argument and shows the bad value.

Checks come in two kinds:

* *static* checks look only at shapes, dtypes and Python hyperparameters; they run
  everywhere, also while JAX traces a function under ``jit``;
* *value* checks look at array contents (class indices in range, weights non-negative);
  they need concrete data, so adapters may switch them off where data is abstract
  (a JAX tracer) and rely on the NaN that the core gives for an out-of-range index.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _array_device

from .policy import host, values_readable

Array = Any
Namespace = Any

REDUCTIONS = ("mean", "sum", "none")


_KNOWN_NAMESPACES: dict[type, Namespace] = {}
"""Array types whose namespace an adapter registered (:func:`register_namespace`)."""


def register_namespace(array_type: type, namespace: Namespace) -> None:
    """Declare `namespace` the array namespace of every array of exactly `array_type`.

    An adapter registers its own array type (the torch adapter: ``torch.Tensor`` and
    ``nn.Parameter``), so that its calls find the namespace by one dictionary look-up
    instead of ``array_api_compat``'s type detection, which ``torch.compile`` would trace
    through (with a warning for each of its cached helpers) on every compilation.
    """
    _KNOWN_NAMESPACES[array_type] = namespace


def _namespace(value: Array) -> Namespace:
    known = _KNOWN_NAMESPACES.get(type(value))
    return known if known is not None else array_namespace(value)


_NOT_ARRAYS = (type(None), bool, int, float, complex, str, bytes, list, tuple)


def is_array(value: object) -> bool:
    """Whether `value` is an array of some array-API namespace (Python's own values are not;
    NumPy scalars are)."""
    if type(value) in _KNOWN_NAMESPACES:
        return True
    return type(value) not in _NOT_ARRAYS and is_array_api_obj(value)


def device(array: Array) -> Any:
    """The device to create new arrays on, next to `array` (``array_api_compat.device``).

    An array sharded over several devices (JAX) reports its sharding, which is valid only
    for arrays of its own rank: new arrays then go to the default device (None), from
    where the operations that combine them with the sharded array place them.
    """
    if type(array) in _KNOWN_NAMESPACES:
        return array.device
    found = _array_device(array)
    if len(getattr(found, "device_set", ())) > 1:
        return None
    return found


def namespace_of(**arrays: Array | None) -> Namespace:
    """The array namespace shared by the given arrays, with a clear error if they mix backends."""
    present = {name: value for name, value in arrays.items() if is_array(value)}
    namespaces = {}
    for name, value in present.items():
        namespaces[name] = _namespace(value)
    distinct = {id(ns) for ns in namespaces.values()}
    if len(distinct) > 1:
        described = ", ".join(
            f"{name}: {type(present[name]).__module__}.{type(present[name]).__name__}"
            for name in namespaces
        )
        raise TypeError(f"arrays of different backends cannot be mixed ({described})")
    return next(iter(namespaces.values()))


def input_namespace(logits: object, target: object) -> Namespace:
    """The namespace of the logits and target, which must be arrays of one backend."""
    for name, value in (("logits", logits), ("target", target)):
        if not is_array(value):
            raise TypeError(f"{name} must be an array; got {type(value).__name__}")
    return namespace_of(logits=logits, target=target)


def check_reduction(reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum' or 'none'; got {reduction!r}")
    return reduction


def check_real_number(
    name: str, value: object, *, low: float, high: float = math.inf, high_open: bool = False
) -> float:
    """A Python real in ``[low, high]`` (``[low, high)`` with `high_open`); NaN, bools and
    non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # numpy scalars are numbers.Real; 0-d arrays of any backend are refused here,
        # because a hyperparameter must be static (a Python number).
        raise TypeError(
            f"{name} must be a real number; got {value!r} of type {type(value).__name__}"
        )
    number = float(value)
    # An open-ended range still excludes infinity: γ = inf gives a NaN gradient.
    # Comparisons only (no math.isnan): under torch.compile a float argument is a symbolic
    # float, which Dynamo specialises on comparisons but cannot pass to math.isnan.
    is_nan = number != number
    in_range = low <= number < high if high_open else low <= number <= high
    if is_nan or number in (math.inf, -math.inf) or not in_range:
        closing = ")" if high_open else "]"
        interval = (
            f"in [{low:g}, {high:g}{closing}" if math.isfinite(high) else f"finite and >= {low:g}"
        )
        raise ValueError(f"{name} must be {interval} and not NaN; got {value!r}")
    return number


def check_clip(clip: object) -> float:
    """A probability margin in [0, 1) (the Asymmetric Loss's `clip`)."""
    return check_real_number("clip", clip, low=0.0, high=1.0, high_open=True)


def check_softcap(softcap: object) -> float | None:
    """None (no capping) or a finite real number > 0."""
    if softcap is None:
        return None
    value = check_real_number("softcap", softcap, low=0.0)
    if value == 0:
        raise ValueError(f"softcap must be > 0 (or None for no capping); got {softcap!r}")
    return value


def check_ignore_index(ignore_index: object) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an integer; got {ignore_index!r}")
    return int(ignore_index)


def check_logits(xp: Namespace, logits: Array) -> None:
    dtype = logits.dtype
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(
            f"logits must have a real floating dtype (float16, bfloat16, float32, float64); "
            f"got {dtype}"
        )


def normalize_axis(axis: object, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer; got {axis!r}")
    if ndim == 0:
        raise ValueError(
            "logits must have at least one dimension (the class axis); got a 0-d array"
        )
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"axis {axis} is out of range for logits with {ndim} dimension(s)")
    return int(axis) % ndim


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """float16 and bfloat16 are computed in float32; float32 and float64 in themselves."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def shape_without(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1 :]


def broadcast_shape(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast of two shapes, or None when they do not broadcast."""
    ndim = max(len(first), len(second))
    first = (1,) * (ndim - len(first)) + tuple(first)
    second = (1,) * (ndim - len(second)) + tuple(second)
    result = []
    for a, b in zip(first, second, strict=True):
        if a != b and 1 not in (a, b):
            return None
        result.append(b if a == 1 else a)
    return tuple(result)


def as_weight_array(
    xp: Namespace,
    name: str,
    value: Array | Sequence[float],
    like: Array,
    dtype: Any,
    like_name: str = "logits",
) -> Array:
    """A user weight (array of the backend of `like`, the argument `like_name`, or a Python
    sequence) as an array of `dtype`."""
    if is_array(value):
        if _namespace(value) is not xp:
            raise TypeError(
                f"{name} is an array of another backend ({type(value).__module__}."
                f"{type(value).__name__}) than the {like_name}"
            )
        array: Array = value
        if not (xp.isdtype(array.dtype, "real floating") or xp.isdtype(array.dtype, "integral")):
            raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
        return xp.astype(array, dtype, copy=False)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, numbers.Real)):
        raise TypeError(f"{name} must be a sequence of numbers or an array; got {value!r}")
    try:
        return xp.asarray(value, dtype=dtype, device=device(like))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a sequence of numbers or an array; got {value!r}"
        ) from error


def check_weight_values(xp: Namespace, name: str, weight: Array) -> None:
    """Value check: every entry finite and non-negative (an infinite weight makes the loss
    inf or NaN, as a NaN one does). Read where the backend's policy reads values
    (:func:`.policy.host`)."""
    xp, weight = host(weight)
    if not bool(xp.all((weight >= 0) & xp.isfinite(weight))):
        raise ValueError(
            f"{name} must be non-negative and finite (not NaN or inf); got {preview(weight)}"
        )


def check_weight_values_of(xp: Namespace, name: str, *candidates: object) -> None:
    """:func:`check_weight_values` of a weight given as `candidates` (the weight as given
    and as converted, in the order to prefer): the first array whose values the backend's
    policy can read now (:func:`.policy.values_readable`), else the Python number or
    sequence given, as it is. Never an array that the conversion staged under a trace (a
    list made an array under ``jax.jit``), which no policy reads."""
    for candidate in candidates:
        if is_array(candidate) and values_readable(candidate):
            check_weight_values(xp, name, candidate)
            return
    for candidate in candidates:
        if not is_array(candidate) and candidate is not None:
            values = _python_values(candidate)
            if not all(value >= 0 and math.isfinite(value) for value in values):
                shown = _format(values[:6], count=len(values))
                raise ValueError(
                    f"{name} must be non-negative and finite (not NaN or inf); got {shown}"
                )
            return


def _python_values(value: object) -> list[float]:
    """The numbers of a Python number or (nested) sequence, flattened in order."""
    if isinstance(value, numbers.Real):
        return [float(value)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [number for item in value for number in _python_values(item)]
    return [float(value)]  # type: ignore[arg-type]  # an array scalar of the host


def check_class_vector(xp: Namespace, name: str, weight: Array, num_classes: int) -> None:
    if weight.ndim != 1 or weight.shape[0] != num_classes:
        raise ValueError(
            f"{name} must have one entry per class, shape ({num_classes},); "
            f"got shape {tuple(weight.shape)}"
        )


def check_class_indices(
    xp: Namespace, given: Array, index: Array, num_classes: int, ignore_index: int
) -> None:
    """Value check: every class index is in [0, C) or equals ignore_index.

    `given` holds the labels as the user gave them, `index` the same labels cast to the
    index dtype. A label that the cast changed (an unsigned label at or above the index
    dtype's maximum, which wraps to a negative index, possibly onto ignore_index; a signed
    one too wide for it) is out of range whatever it wrapped to. Only equality and casts are
    used on `given`: PyTorch's unsigned dtypes beyond uint8 offer nothing else.
    """
    hxp, host_given = host(given)
    if hxp is not xp:  # read on the host (a concrete JAX array captured by a trace): the
        # host's index dtype (int64) is at least as wide, so no wrap goes unnoticed
        xp, given = hxp, host_given
        index = xp.astype(given, xp.__array_namespace_info__().default_dtypes()["indexing"])
    given_range, index_range = xp.iinfo(given.dtype), xp.iinfo(index.dtype)
    unsigned = given_range.min == 0
    may_wrap = given_range.min < index_range.min or given_range.max > index_range.max
    if not may_wrap and _all_in_range(xp, index, num_classes, ignore_index):
        return
    bad = (xp.clip(index, 0, num_classes - 1) != index) & (index != ignore_index)
    if may_wrap:
        wrapped = xp.astype(index, given.dtype) != given
        bad = bad | wrapped | (index < 0) if unsigned else bad | wrapped
    if bool(xp.any(bad)):
        if unsigned:  # the cast kept the bits: the label as given, modulo 2^bits
            modulus = 2**given_range.bits
            bad_indices = index[bad]
            shown = [int(value) % modulus for value in _first(xp, bad_indices)]
            values = _format(shown, count=math.prod(bad_indices.shape))
        else:
            values = preview(given[bad])
        raise ValueError(
            f"target has class indices out of range [0, {num_classes}) "
            f"(ignore_index={ignore_index}): {values}"
        )


def _all_in_range(xp: Namespace, index: Array, num_classes: int, ignore_index: int) -> bool:
    """Whether every index is in [0, C) or ignore_index, from the smallest and largest
    index (two reductions): the common case, decided without an element-wise pass. False
    where ignore_index is present among out-of-range values (the caller then checks every
    element)."""
    if math.prod(index.shape) == 0:
        return True
    low, high = int(xp.min(index)), int(xp.max(index))
    if low >= 0 and high < num_classes:
        return True
    if ignore_index in (low, high) and not 0 <= ignore_index < num_classes:
        # only ignore_index may lie outside: the same test on the others
        others = xp.where(index == ignore_index, 0, index)
        return int(xp.min(others)) >= 0 and int(xp.max(others)) < num_classes
    return False


def _first(xp: Namespace, values: Array, limit: int = 6) -> list[Any]:
    flat = xp.reshape(values, (-1,))
    return [flat[i] for i in range(min(flat.shape[0], limit))]


def _format(shown: list[Any], count: int, limit: int = 6) -> str:
    text = ", ".join(repr(v) for v in shown)
    return f"[{text}{', ...' if count > limit else ''}]"


def preview(values: Array, limit: int = 6) -> str:
    """A short text showing the first few entries of a 1-d or n-d array."""
    xp = _namespace(values)
    floating = xp.isdtype(values.dtype, "real floating")
    shown = [float(v) if floating else int(v) for v in _first(xp, values, limit)]
    return _format(shown, count=math.prod(values.shape), limit=limit)


def check_normalized_reduction(reduction: object) -> None:
    """A normaliser is given: the reduction must be ``"mean"``, whose sum it divides."""
    if check_reduction(reduction) != "mean":
        raise ValueError(
            f"normalizer divides the sum of reduction='mean'; got reduction={reduction!r} "
            f"(leave normalizer=None for 'sum' and 'none')"
        )


def check_normalizer(
    xp: Namespace, normalizer: object, reduction: str, like: Array, *, check_values: bool
) -> Array:
    """The global normaliser of a ``"mean"`` (docs/semantics.md, Global normalisation) as a
    0-d array of `like`'s dtype: a non-negative real number, or a 0-d real array of
    `like`'s backend (values read only with `check_values`: never on a device or a trace)."""
    check_normalized_reduction(reduction)
    if not is_array(normalizer) or isinstance(normalizer, numbers.Real):  # NumPy scalars too
        number = check_real_number("normalizer", normalizer, low=0.0)
        return xp.asarray(number, dtype=like.dtype, device=device(like))
    if _namespace(normalizer) is not xp:
        raise TypeError(
            f"normalizer is an array of another backend ({type(normalizer).__module__}."
            f"{type(normalizer).__name__}) than the logits"
        )
    array: Array = normalizer
    if not (xp.isdtype(array.dtype, "real floating") or xp.isdtype(array.dtype, "integral")):
        raise TypeError(f"normalizer must hold a real number; got dtype {array.dtype}")
    if tuple(array.shape) != ():
        raise ValueError(
            f"normalizer must be a 0-d array (one number for the whole call); "
            f"got shape {tuple(array.shape)}"
        )
    if check_values:  # read where the backend reads values: a concrete JAX array captured by
        # a trace is read on the host, not through the trace (docs/semantics.md)
        hxp, value = host(array)
        if not bool((value >= 0) & hxp.isfinite(value)):
            raise ValueError(f"normalizer must be non-negative and finite; got {float(value)!r}")
    return xp.astype(array, like.dtype, copy=False)


def check_linear_operands(xp: Any, x: Any, w: Any, b: Any, target: Any) -> None:
    """Shapes and dtypes of the input (…, D), the layer's weight (V, D) and bias (V,), and
    the target (class indices (…) or probabilities (…, V)); every error names its argument.
    The fused linear heads' (every adapter's)."""
    for name, value in (("input", x), ("linear_weight", w), ("linear_bias", b), ("target", target)):
        if value is not None and not is_array(value):
            raise TypeError(f"{name} must be an array; got {type(value).__name__}")
    for name, value in (("input", x), ("linear_weight", w), ("linear_bias", b)):
        if value is not None and not xp.isdtype(value.dtype, "real floating"):
            raise TypeError(
                f"{name} must have a real floating dtype (float16, bfloat16, float32, "
                f"float64); got {value.dtype}"
            )
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (the features, last); got 0-d")
    features = x.shape[-1]
    if w.ndim != 2 or w.shape[1] != features:
        raise ValueError(
            f"linear_weight must have shape (num_classes, {features}) (torch.nn.Linear's "
            f"layout; {features} = the last axis of input, shape {tuple(x.shape)}); got shape "
            f"{tuple(w.shape)}"
        )
    num_classes = w.shape[0]
    if num_classes == 0:
        raise ValueError(f"linear_weight must have at least one class (row); got {w.shape}")
    for name, value in (("linear_weight", w), ("linear_bias", b)):
        if value is not None and value.dtype != x.dtype:
            raise TypeError(f"{name} must have the input's dtype {x.dtype}; got {value.dtype}")
    if b is not None and tuple(b.shape) != (num_classes,):
        raise ValueError(
            f"linear_bias must have shape ({num_classes},), one entry per row of "
            f"linear_weight; got {tuple(b.shape)}"
        )
    batch = tuple(x.shape[:-1])
    if xp.isdtype(target.dtype, "integral") and not xp.isdtype(target.dtype, "bool"):
        if tuple(target.shape) != batch:
            raise ValueError(
                f"target of class indices must have the input's shape without its last "
                f"(feature) axis, {batch}; got {tuple(target.shape)} (input {tuple(x.shape)})"
            )
    elif xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != (*batch, num_classes):
            if tuple(target.shape) == batch:
                raise TypeError(
                    f"target has the shape of class indices {batch} but a floating dtype "
                    f"({target.dtype}); class indices must be integers"
                )
            raise ValueError(
                f"target of class probabilities must have shape {(*batch, num_classes)} (the "
                f"input's batch shape and num_classes = linear_weight.shape[0]); got "
                f"{tuple(target.shape)}"
            )
    else:
        raise TypeError(
            f"target must hold integer class indices or floating probabilities; "
            f"got dtype {target.dtype}"
        )


def check_chunk_size(chunk_size: object) -> int | None:
    """None, or a positive integer (tokens per chunk)."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
    return int(chunk_size)
