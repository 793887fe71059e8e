"""Validation of a call: the ``prepare_<loss>`` step of every loss.

``prepare_<loss>(logits, target, **options)`` checks the arguments against the bad-input
catalogue (docs/semantics.md, Bad input; the checks themselves are in :mod:`._checks`) and
returns ``(xp, config, operands)``: the namespace, the static hashable config of the
loss's family and the operand arrays in the compute dtype.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from . import _checks, element_options
from .asymmetric import AsymmetricConfig, AsymmetricOperands
from .kernels import index_dtype
from .sigmoid import SigmoidConfig, SigmoidOperands
from .softmax import SoftmaxConfig, SoftmaxOperands
from .terms import Focal, Poly, Term

Array = Any
Namespace = Any


_STATIC_CACHE: dict[tuple[Any, ...], Any] = {}
"""The static part of recent calls (:func:`_cached_static`), by their static facts."""
_STATIC_CACHE_SIZE = 256


def _cached_static(compute: Any, *facts: object) -> Any:
    """``compute()``, or its result for an earlier call with the same static `facts`
    (shapes, dtypes, Python options; each with its type, so that ``True`` is not ``1``).

    Only the validation that depends on nothing else is cached: an error is raised again
    on every call (nothing is stored for it), and facts that cannot be hashed (a list
    where a number belongs, say) are validated afresh.
    """
    key = tuple((type(fact), fact) for fact in facts)
    try:
        static = _STATIC_CACHE.get(key)
    except TypeError:  # an unhashable option: no caching, the checks say what is wrong
        return compute()
    if static is None:
        static = compute()
        if len(_STATIC_CACHE) >= _STATIC_CACHE_SIZE:
            _STATIC_CACHE.clear()
        _STATIC_CACHE[key] = static
    return static


def softmax_static(
    xp: Namespace,
    logits: Array,
    target: Array,
    *,
    axis: object,
    has_class_weight: bool,
    term: Term,
    ignore_index: object,
    reduction: object,
    label_smoothing: object,
    z_loss: object,
    softcap: object,
    is_cross_entropy: bool,
    check_values: bool,
) -> SoftmaxConfig:
    """The checks of a softmax call that read only shapes, dtypes and options; its config."""
    _checks.check_logits(xp, logits)
    axis = _checks.normalize_axis(axis, logits.ndim)
    num_classes = logits.shape[axis]
    if num_classes == 0:
        raise ValueError(
            f"logits must have at least one class; got shape {tuple(logits.shape)} "
            f"with 0 classes along axis {axis}"
        )
    reduction = _checks.check_reduction(reduction)
    ignore_index = _checks.check_ignore_index(ignore_index)
    label_smoothing = _checks.check_real_number(
        "label_smoothing", label_smoothing, low=0.0, high=1.0
    )
    z_loss = _checks.check_real_number("z_loss", z_loss, low=0.0)
    softcap = _checks.check_softcap(softcap)
    index_shape = _checks.shape_without(tuple(logits.shape), axis)
    if xp.isdtype(target.dtype, "bool"):
        raise TypeError(
            "target must hold integer class indices or floating probabilities; got dtype bool"
        )
    hard_target = xp.isdtype(target.dtype, "integral")
    if hard_target:
        if tuple(target.shape) != index_shape:
            raise ValueError(
                f"target of class indices must have the logits' shape without the class axis, "
                f"{index_shape}; got {tuple(target.shape)} (logits {tuple(logits.shape)}, "
                f"axis {axis}){_index_shape_hint(tuple(logits.shape), tuple(target.shape), axis)}"
            )
    elif xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != tuple(logits.shape):
            if tuple(target.shape) == index_shape:
                raise TypeError(
                    f"target has the shape of class indices {index_shape} but a floating dtype "
                    f"({target.dtype}); class indices must be integers"
                )
            raise ValueError(
                f"target of class probabilities must have the logits' shape "
                f"{tuple(logits.shape)}; got {tuple(target.shape)}"
            )
        if ignore_index >= 0:
            raise ValueError(
                f"ignore_index={ignore_index} cannot be used with probability targets "
                f"(there is no class index to ignore); leave it at its default -100"
            )
    else:
        raise TypeError(
            f"target must hold integer class indices or floating probabilities; "
            f"got dtype {target.dtype}"
        )
    return SoftmaxConfig(
        axis=axis,
        num_classes=num_classes,
        hard_target=hard_target,
        term=term,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
        mean_over_target_weight=is_cross_entropy and hard_target and has_class_weight,
        indices_checked=hard_target and check_values,
        z_loss=z_loss,
        softcap=softcap,
    )


def _prepare_softmax(
    logits: Array,
    target: Array,
    *,
    axis: object,
    class_weight: object,
    class_weight_name: str,
    term: Term,
    ignore_index: object,
    reduction: object,
    label_smoothing: object,
    z_loss: object,
    softcap: object,
    is_cross_entropy: bool,
    check_values: bool,
    convert_logits: bool,
    cache_static: bool = False,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    xp = _checks.input_namespace(logits, target)
    static = {
        "axis": axis,
        "has_class_weight": class_weight is not None,
        "term": term,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "is_cross_entropy": is_cross_entropy,
        "check_values": check_values,
    }

    def compute() -> SoftmaxConfig:
        return softmax_static(xp, logits, target, **static)  # type: ignore[arg-type]

    if cache_static:
        facts = (tuple(logits.shape), logits.dtype, tuple(target.shape), target.dtype)
        config = _cached_static(compute, "softmax", *facts, *static.values())
    else:
        config = compute()
    dtype = _checks.compute_dtype(xp, logits.dtype)
    target, class_weight = softmax_operands(
        xp,
        config,
        target,
        class_weight,
        class_weight_name,
        like=logits,
        dtype=dtype,
        check_values=check_values,
        is_cross_entropy=is_cross_entropy,
    )
    if convert_logits:
        logits = xp.astype(logits, dtype, copy=False)
    operands = SoftmaxOperands(logits, target, class_weight)
    return xp, config, operands


def softmax_operands(
    xp: Namespace,
    config: SoftmaxConfig,
    target: Array,
    class_weight: object,
    class_weight_name: str,
    *,
    like: Array,
    dtype: Any,
    check_values: bool,
    is_cross_entropy: bool,
) -> tuple[Array, Array | None]:
    """The target (index dtype, its class indices checked with `check_values`; or
    probabilities in `dtype`) and the class vector (a scalar α made [1-α, α, …]; checked)
    of a softmax call whose static part is `config`; new arrays go next to `like`. Every
    call kind's (plain, fused head)."""
    num_classes = config.num_classes
    if config.hard_target:
        given, target = target, xp.astype(target, index_dtype(xp), copy=False)
        if check_values:
            _checks.check_class_indices(xp, given, target, num_classes, config.ignore_index)
    else:
        target = xp.astype(target, dtype, copy=False)
    if not is_cross_entropy and isinstance(class_weight, numbers.Real):
        class_weight = scalar_alpha(xp, class_weight, num_classes, like, dtype)
    if class_weight is not None:
        given_weight = class_weight
        class_weight = _checks.as_weight_array(xp, class_weight_name, class_weight, like, dtype)
        _checks.check_class_vector(xp, class_weight_name, class_weight, num_classes)
        if check_values:
            read = given_weight if _checks.is_array(given_weight) else class_weight
            _checks.check_weight_values(xp, class_weight_name, read)
    return target, class_weight


def _index_shape_hint(
    logits_shape: tuple[int, ...], target_shape: tuple[int, ...], axis: int
) -> str:
    """What a class-index target of the wrong shape most likely means, for the error."""
    if len(logits_shape) == 1:
        return (
            f": logits of shape {logits_shape} are read as one unbatched sample of "
            f"{logits_shape[0]} classes; for one logit per sample use binary_cross_entropy or "
            f"sigmoid_focal_loss, or give the logits a class axis"
        )
    if target_shape == logits_shape:
        return (
            f": an integer target of the logits' own shape looks one-hot; pass class indices "
            f"(target.argmax(axis={axis})) or a floating probability target"
        )
    last = len(logits_shape) - 1
    if axis != last and target_shape == logits_shape[:-1]:
        return (
            f": the target matches the logits without their last axis, as for channels-last "
            f"logits; if the classes are on the last axis pass axis=-1, or move them to axis "
            f"{axis}"
        )
    return ""


def scalar_alpha(
    xp: Namespace, alpha: object, num_classes: int, logits: Array, dtype: Any
) -> Array:
    """A scalar α weights class 0 (background) by 1 - α and every other class by α: the
    vector made on the logits' device (no host-to-device copy, which would synchronise)."""
    alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    others = xp.full((num_classes,), alpha, dtype=dtype, device=_checks.device(logits))
    ids = xp.arange(num_classes, device=_checks.device(logits))
    return xp.where(ids == 0, 1.0 - alpha, others)


def prepare_cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: object = -1,
    weight: object = None,
    ignore_index: object = -100,
    reduction: object = "mean",
    label_smoothing: object = 0.0,
    z_loss: object = 0.0,
    softcap: object = None,
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    """Validate the arguments of :func:`cross_entropy` (docs/semantics.md, Bad input).

    `check_values` False skips the checks that read array contents (traced data);
    `convert_logits` False leaves 16-bit logits in their dtype, for an adapter whose
    native passes convert them a slab at a time (see :class:`SoftmaxOperands`);
    `cache_static` True reuses the checks that read only shapes, dtypes and options from
    an earlier call with the same ones (an adapter's eager calls; not while a compiler
    traces shapes that are symbols).
    """
    return _prepare_softmax(
        logits,
        target,
        axis=axis,
        class_weight=weight,
        class_weight_name="weight",
        term=Focal(0.0),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        is_cross_entropy=True,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
    )


def prepare_focal_loss(
    logits: Array,
    target: Array,
    *,
    axis: object = -1,
    gamma: object = 2.0,
    alpha: object = None,
    ignore_index: object = -100,
    reduction: object = "mean",
    label_smoothing: object = 0.0,
    z_loss: object = 0.0,
    softcap: object = None,
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    """Validate the arguments of :func:`focal_loss`; a scalar alpha becomes [1-α, α, …, α].

    `check_values`, `convert_logits` and `cache_static` as in :func:`prepare_cross_entropy`.
    """
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    return _prepare_softmax(
        logits,
        target,
        axis=axis,
        class_weight=alpha,
        class_weight_name="alpha",
        term=Focal(gamma),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        is_cross_entropy=False,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
    )


def prepare_poly_loss(
    logits: Array,
    target: Array,
    *,
    axis: object = -1,
    epsilon: object = 2.0,
    gamma: object = 0.0,
    alpha: object = None,
    ignore_index: object = -100,
    reduction: object = "mean",
    label_smoothing: object = 0.0,
    z_loss: object = 0.0,
    softcap: object = None,
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, SoftmaxConfig, SoftmaxOperands]:
    """Validate the arguments of :func:`poly_loss` (ε ≥ -1, γ ≥ 0; `alpha` as in
    :func:`prepare_focal_loss`); `check_values`, `convert_logits` and `cache_static` as in
    :func:`prepare_cross_entropy`."""
    epsilon = _checks.check_real_number("epsilon", epsilon, low=-1.0)
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    return _prepare_softmax(
        logits,
        target,
        axis=axis,
        class_weight=alpha,
        class_weight_name="alpha",
        term=Poly(epsilon, gamma),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        is_cross_entropy=False,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
    )


def _check_broadcast(name: str, value: Array, shape: tuple[int, ...]) -> None:
    if _checks.broadcast_shape(tuple(value.shape), shape) != shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast to the logits' shape {shape}"
        )


def _sigmoid_static(
    xp: Namespace,
    logits: Array,
    target: Array,
    gamma: float,
    alpha: float | None,
    reduction: object,
) -> SigmoidConfig:
    """The checks of a sigmoid call that read only shapes, dtypes and options; its config."""
    _checks.check_logits(xp, logits)
    reduction = _checks.check_reduction(reduction)
    shape = tuple(logits.shape)
    if tuple(target.shape) != shape:
        raise ValueError(f"target must have the logits' shape {shape}; got {tuple(target.shape)}")
    if not (
        xp.isdtype(target.dtype, "real floating")
        or xp.isdtype(target.dtype, "integral")
        or xp.isdtype(target.dtype, "bool")
    ):
        raise TypeError(f"target must hold real numbers in [0, 1]; got dtype {target.dtype}")
    return SigmoidConfig(gamma=gamma, alpha=alpha, reduction=reduction)


def prepare_sigmoid(
    logits: Array,
    target: Array,
    *,
    weight: object,
    pos_weight: object,
    gamma: float,
    alpha: object,
    reduction: object,
    check_values: bool,
    convert_logits: bool,
    cache_static: bool,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    unit_target: bool = False,
    smooth_target: bool = True,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    """The common preparation of the element-wise losses: checks, operands, and the
    options every one of them takes folded in (:func:`.element_options.fold`). A scalar
    `alpha` (or None) goes to the config; an array or sequence is a per-class α."""
    xp = _checks.input_namespace(logits, target)
    scalar = alpha is None or isinstance(alpha, numbers.Real)
    static_alpha = alpha if scalar else None

    def compute() -> SigmoidConfig:
        return _sigmoid_static(xp, logits, target, gamma, static_alpha, reduction)  # type: ignore[arg-type]

    if cache_static:
        facts = (tuple(logits.shape), logits.dtype, tuple(target.shape), target.dtype)
        config = _cached_static(compute, "sigmoid", *facts, gamma, static_alpha, reduction)
    else:
        config = compute()
    ignore_index = element_options.check_ignore_index(ignore_index)
    label_smoothing = element_options.check_label_smoothing(label_smoothing)
    dtype = _checks.compute_dtype(xp, logits.dtype)
    shape = tuple(logits.shape)
    arrays: dict[str, Array | None] = {}
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            arrays[name] = None
            continue
        array = _checks.as_weight_array(xp, name, value, logits, dtype)
        _check_broadcast(name, array, shape)
        if check_values:
            _checks.check_weight_values(xp, name, array)
        arrays[name] = array
    alpha_vector = (
        None
        if scalar
        else element_options.class_alpha(xp, alpha, logits, dtype, check_values=check_values)
    )
    folded_target, arrays["weight"], folded_reduction = element_options.fold(
        xp,
        target,
        arrays["weight"],
        dtype=dtype,
        alpha=alpha_vector,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing if smooth_target else 0.0,
        reduction=config.reduction,
        unit_target=unit_target,
        check_values=check_values,
    )
    if folded_reduction != config.reduction:
        config = dataclasses.replace(config, reduction=folded_reduction)
    operands = SigmoidOperands(
        xp.astype(logits, dtype, copy=False) if convert_logits else logits,
        folded_target,
        arrays["weight"],
        arrays["pos_weight"],
    )
    return xp, config, operands


def prepare_binary_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: object = None,
    pos_weight: object = None,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    """Validate the arguments of :func:`binary_cross_entropy`.

    `check_values` False skips the checks that read array contents (traced data);
    `convert_logits` False leaves 16-bit logits in their dtype, for an adapter that
    converts them a slab at a time before calling :func:`sigmoid_forward`;
    `cache_static` as in :func:`prepare_cross_entropy`. `ignore_index` and
    `label_smoothing` are folded into the target and the weight
    (:mod:`.element_options`), as in every element-wise loss.
    """
    return prepare_sigmoid(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


def prepare_sigmoid_focal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: object = 0.25,
    gamma: object = 2.0,
    weight: object = None,
    pos_weight: object = None,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, SigmoidConfig, SigmoidOperands]:
    """Validate the arguments of :func:`sigmoid_focal_loss`; ``alpha=None`` disables α_t,
    an array or sequence is a per-class α (folded into the weight).

    The other arguments as in :func:`prepare_binary_cross_entropy`.
    """
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    if alpha is not None and (isinstance(alpha, numbers.Real) or not _is_sequence(alpha)):
        alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    return prepare_sigmoid(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=gamma,
        alpha=alpha,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


def _is_sequence(value: object) -> bool:
    """An array or a sequence of numbers (a per-class α), not a scalar."""
    return _checks.is_array(value) or (
        isinstance(value, (list, tuple)) and not isinstance(value, (str, bytes))
    )


def prepare_asymmetric_loss(
    logits: Array,
    target: Array,
    *,
    gamma_pos: object = 0.0,
    gamma_neg: object = 4.0,
    clip: object = 0.05,
    weight: object = None,
    pos_weight: object = None,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, AsymmetricConfig, AsymmetricOperands]:
    """Validate the arguments of :func:`asymmetric_loss` (γ± ≥ 0, clip in [0, 1)); the
    other arguments as in :func:`prepare_binary_cross_entropy` (`pos_weight` weights the
    positive term)."""
    gamma_pos = _checks.check_real_number("gamma_pos", gamma_pos, low=0.0)
    gamma_neg = _checks.check_real_number("gamma_neg", gamma_neg, low=0.0)
    clip = _checks.check_clip(clip)
    xp, sigmoid_config, operands = prepare_sigmoid(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    config = AsymmetricConfig(gamma_pos, gamma_neg, clip, sigmoid_config.reduction)
    return xp, config, AsymmetricOperands(*operands)
