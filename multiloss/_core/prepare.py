"""The plain call's preparation, every loss's: :func:`prepare_call`.

``prepare_call(loss, logits, target, options)`` takes the loss's registry record
(:class:`.registry.Loss`) and the call's options by the registry's names, checks them
against the bad-input catalogue (docs/semantics.md, Bad input; the checks themselves are
in :mod:`._checks`) and returns ``(xp, config, operands)``: the namespace, the static
hashable config of the loss's family and the operand arrays in the compute dtype.

Nothing here names a loss: the record gives the options and their defaults, the per-class
term (softmax, :func:`.registry.term_of`) or the config's hyperparameters (the options with
a ``check``: the other families), the class vector's option and the mean's kind; the
family (:data:`FAMILY_PREPARATIONS`) says how its operands are formed.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from . import _checks, element_options, hyper
from .asymmetric import ASYMMETRIC, AsymmetricConfig
from .detection import QUALITY_FOCAL, VARIFOCAL, QualityFocalConfig, VarifocalConfig
from .distribution import DISTRIBUTION, prepare_distribution
from .kernels import index_dtype
from .registry import Loss, hyperparameters, term_of
from .sigmoid import SIGMOID, SigmoidConfig
from .softmax import SOFTMAX, SoftmaxConfig, SoftmaxOperands
from .terms import Term

Array = Any
Namespace = Any
Prepared = tuple[Namespace, Any, Any]


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


def _static_number(name: str, value: object) -> Any:
    """A hyperparameter of a static config: a checked Python number, or the marker that
    :func:`.hyper.check` left for an array (a plain call's; other call kinds take numbers)."""
    return value if hyper.is_traced(value) else hyper.check_number(name, value)


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
    label_smoothing = _static_number("label_smoothing", label_smoothing)
    z_loss = _static_number("z_loss", z_loss)
    softcap = None if softcap is None else _static_number("softcap", softcap)
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
    if not is_cross_entropy and (
        isinstance(class_weight, numbers.Real) or hyper.is_0d_array(class_weight)
    ):
        class_weight = scalar_alpha(
            xp, class_weight, num_classes, like, dtype, check_values=check_values
        )
    if class_weight is not None:
        given_weight = class_weight
        class_weight = _checks.as_weight_array(xp, class_weight_name, class_weight, like, dtype)
        _checks.check_class_vector(xp, class_weight_name, class_weight, num_classes)
        if check_values:  # the weight as given, else as converted (a scalar α's vector)
            _checks.check_weight_values_of(xp, class_weight_name, given_weight, class_weight)
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
    xp: Namespace,
    alpha: object,
    num_classes: int,
    logits: Array,
    dtype: Any,
    *,
    check_values: bool = True,
) -> Array:
    """A scalar α weights class 0 (background) by 1 - α and every other class by α: the
    vector made on the logits' device (no host-to-device copy, which would synchronise).

    A 0-d array α (a schedule: docs/semantics.md, Schedules) is checked where it can be
    read, NaN where it cannot and is out of range; the vector is formed from it by the
    backend's own operations (a derivative with respect to α flows through them into the
    class weight's closed form)."""
    ids = xp.arange(num_classes, device=_checks.device(logits))
    if hyper.is_0d_array(alpha):
        hyper.check("alpha", alpha, check_values=check_values)
        value = xp.astype(alpha, dtype)
        value = xp.where(hyper.in_range(xp, "alpha", value), value, xp.nan)
        others = xp.zeros((num_classes,), dtype=dtype, device=_checks.device(logits)) + value
        return xp.where(ids == 0, 1.0 - others, others)
    alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    others = xp.full((num_classes,), alpha, dtype=dtype, device=_checks.device(logits))
    return xp.where(ids == 0, 1.0 - alpha, others)


def _check_broadcast(name: str, value: Array, shape: tuple[int, ...]) -> None:
    if _checks.broadcast_shape(tuple(value.shape), shape) != shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast to the logits' shape {shape}"
        )


def _elementwise_static(
    xp: Namespace,
    logits: Array,
    target: Array,
    make_config: Callable[[str], Any],
    reduction: object,
) -> Any:
    """The checks of an element-wise (sigmoid, asymmetric) call that read only shapes,
    dtypes and options; its config, ``make_config(reduction)``."""
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
    return make_config(reduction)


# --------------------------------------------------------------------------------------
# The plain call


_DEFAULTS: dict[str, dict[str, Any]] = {}
"""Each loss's plain-call options with their defaults (``axis`` among them where the loss
has a class axis: the core's -1), by loss name; from the record, built once."""


def with_defaults(loss: Loss, options: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    """Every plain-call option of `loss` (its record's, and ``axis``), the given ones from
    `options` and the record's defaults for the rest; `extra` names options of a variant
    that are also accepted as given. An option the loss does not take raises TypeError."""
    defaults = _DEFAULTS.get(loss.name)
    if defaults is None:
        defaults = {"axis": -1} if loss.has_class_axis else {}
        defaults.update(loss.defaults())
        _DEFAULTS[loss.name] = defaults
    given = {**defaults, **options}
    if len(given) != len(defaults):
        unknown = [name for name in options if name not in defaults and name not in extra]
        if unknown:
            raise TypeError(f"{loss.name} takes no option {unknown[0]!r}")
    return given


def prepare_call(
    loss: Loss,
    logits: Array,
    target: Array,
    options: Mapping[str, Any] | None = None,
    *,
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> Prepared:
    """Prepare a plain call ``<loss>(logits, target, **options)`` of the loss whose
    registry record is `loss`: `options` by the record's names (``axis`` too where the
    loss has a class axis; ``normalizer`` is not among them:
    :func:`multiloss._core.split_normalizer`); the record's defaults for those not given.

    Returns ``(xp, config, operands)`` (the module docstring). `check_values` False skips
    the checks that read array contents (traced or device data: the backend policy's
    :func:`.policy.values_readable`); `convert_logits` False leaves 16-bit logits in their
    dtype, for an engine whose passes convert them a slab at a time (see
    :class:`.softmax.SoftmaxOperands`); `cache_static` True reuses the checks that read only
    shapes, dtypes and options from an earlier call with the same ones (an adapter's eager
    calls; not while a compiler traces shapes that are symbols).

    >>> import numpy as np
    >>> from multiloss._core import LOSSES, prepare_call
    >>> xp, config, operands = prepare_call(
    ...     LOSSES["focal_loss"], np.zeros((2, 3)), np.array([0, 2]), {"gamma": 1.0}
    ... )
    >>> config.term, config.num_classes
    (Focal(gamma=1.0), 3)
    """
    given = with_defaults(loss, options or {})
    prepare = FAMILY_PREPARATIONS[loss.family.name]
    return prepare(
        loss,
        logits,
        target,
        given,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
    )


def _static(compute: Callable[[], Any], cache_static: bool, *facts: object) -> Any:
    return _cached_static(compute, *facts) if cache_static else compute()


def _prepare_softmax(
    loss: Loss,
    logits: Array,
    target: Array,
    given: dict[str, Any],
    *,
    check_values: bool,
    convert_logits: bool,
    cache_static: bool,
) -> Prepared:
    """A softmax call: the term from the record (:func:`.registry.term_of`), the class vector
    from its option (:attr:`.registry.Loss.class_vector`), the mean's kind from
    :attr:`.registry.Loss.weighted_mean`."""
    term = term_of(loss, given, arrays=True, check_values=check_values)
    class_vector = loss.class_vector
    class_weight = given[class_vector] if class_vector else None
    xp = _checks.input_namespace(logits, target)
    static = softmax_keywords(loss, given, term, class_weight is not None, check_values)
    for name in ("label_smoothing", "z_loss", "softcap"):  # a 0-d array: its marker
        value = static[name]  # a number is checked with the static part (cached)
        if value is not None and not isinstance(value, (int, float)):
            static[name] = hyper.check(name, value, check_values=check_values)

    def compute() -> SoftmaxConfig:
        return softmax_static(xp, logits, target, **static)

    facts = (tuple(logits.shape), logits.dtype, tuple(target.shape), target.dtype)
    config = _static(compute, cache_static, "softmax", *facts, *static.values())
    dtype = _checks.compute_dtype(xp, logits.dtype)
    target, class_weight = softmax_operands(
        xp,
        config,
        target,
        class_weight,
        class_vector or "weight",
        like=logits,
        dtype=dtype,
        check_values=check_values,
        is_cross_entropy=loss.weighted_mean,
    )
    if convert_logits:
        logits = xp.astype(logits, dtype, copy=False)
    arrays = hyper.operands(xp, config, given, dtype)
    return xp, config, SoftmaxOperands(logits, target, class_weight, arrays)


def softmax_keywords(
    loss: Loss, given: Mapping[str, Any], term: Term, has_class_weight: bool, check_values: bool
) -> dict[str, Any]:
    """The keywords of :func:`softmax_static` for a call of `loss` with the options `given`
    (:func:`with_defaults`), every call kind's."""
    return {
        "axis": given.get("axis", -1),
        "has_class_weight": has_class_weight,
        "term": term,
        "ignore_index": given["ignore_index"],
        "reduction": given["reduction"],
        "label_smoothing": given["label_smoothing"],
        "z_loss": given["z_loss"],
        "softcap": given["softcap"],
        "is_cross_entropy": loss.weighted_mean,
        "check_values": check_values,
    }


def _prepare_elementwise(
    config_type: type,
    unit_target: bool,
    smoothing_in_config: bool,
    loss: Loss,
    logits: Array,
    target: Array,
    given: dict[str, Any],
    *,
    check_values: bool,
    convert_logits: bool,
    cache_static: bool,
) -> Prepared:
    """An element-wise call (sigmoid, asymmetric, varifocal, quality focal): the config
    holds the reduction and the loss's hyperparameters (:func:`hyperparameters`, by the
    config's field names; the config's own defaults for the fields the loss has not); the
    operands' weight fields are the loss's element weights of the same names (None for
    those it has not). The options every element-wise loss takes (``ignore_index``,
    ``label_smoothing``, a per-class ``alpha``) are folded into the target and the weight
    (:func:`.element_options.fold`), but a label smoothing that the config holds (the
    varifocal loss smooths its cross-entropy's target only); `unit_target`: the target
    must lie in [0, 1]; `smoothing_in_config`: the config holds the label smoothing."""
    given = dict(given)
    class_alpha = given.get("alpha")
    if _is_class_vector(class_alpha):  # a per-class α: folded into the weight
        given["alpha"] = None
    else:
        class_alpha = None
    own = hyperparameters(loss, given, arrays=True, check_values=check_values)
    ignore_index = element_options.check_ignore_index(given.get("ignore_index"))
    smoothing = hyper.check(
        "label_smoothing", given.get("label_smoothing", 0.0), check_values=check_values
    )
    if smoothing_in_config:  # a number, or the marker of an array carried by the operands
        own["label_smoothing"] = smoothing
    xp = _checks.input_namespace(logits, target)

    def make_config(reduction: str) -> Any:
        return config_type(reduction=reduction, **own)

    def compute() -> Any:
        return _elementwise_static(xp, logits, target, make_config, given["reduction"])

    facts = (tuple(logits.shape), logits.dtype, tuple(target.shape), target.dtype)
    config = _static(compute, cache_static, loss.name, *facts, *own.values(), given["reduction"])
    dtype = _checks.compute_dtype(xp, logits.dtype)
    if hyper.is_traced(smoothing) and not smoothing_in_config:  # folded by the backend's ops
        smoothing = hyper.folded(xp, "label_smoothing", given["label_smoothing"], dtype)
    shape = tuple(logits.shape)
    weights: dict[str, Array | None] = {}
    fields: tuple[str, ...] = loss.family.operands._fields  # type: ignore[attr-defined]
    for name in fields[2:-1]:  # the last field holds the array hyperparameters
        value = given.get(name) if name in loss.element_weights else None
        if value is not None:
            given_value, value = value, _checks.as_weight_array(xp, name, value, logits, dtype)
            _check_broadcast(name, value, shape)
            if check_values:  # as converted (an overflow to inf is refused), else as given
                _checks.check_weight_values_of(xp, name, value, given_value)
        weights[name] = value
    alpha = None
    if class_alpha is not None:
        alpha = element_options.class_alpha(
            xp, class_alpha, logits, dtype, check_values=check_values
        )
    target, weights["weight"], reduction = element_options.fold(
        xp,
        target,
        weights.get("weight"),
        dtype=dtype,
        alpha=alpha,
        ignore_index=ignore_index,
        label_smoothing=0.0 if smoothing_in_config else smoothing,
        reduction=config.reduction,
        unit_target=unit_target,
        check_values=check_values,
    )
    if reduction != config.reduction:
        config = dataclasses.replace(config, reduction=reduction)
    operands = loss.family.operands(
        xp.astype(logits, dtype, copy=False) if convert_logits else logits,
        target,
        **weights,
        hyper=hyper.operands(xp, config, given, dtype),
    )
    return xp, config, operands


def _is_class_vector(value: object) -> bool:
    """A per-class α: an array of at least one dimension or a Python sequence (a number
    or a 0-d array is the scalar α, a hyperparameter)."""
    if isinstance(value, (list, tuple)):
        return True
    return _checks.is_array(value) and len(getattr(value, "shape", ())) > 0


def _elementwise(
    config_type: type, *, unit_target: bool = False, smoothing_in_config: bool = False
) -> Callable[..., Prepared]:
    """The preparation of an element-wise family whose config is `config_type` (known here,
    not looked up while a compiler traces the call)."""

    def prepare(*args: Any, **keywords: Any) -> Prepared:
        return _prepare_elementwise(
            config_type, unit_target, smoothing_in_config, *args, **keywords
        )

    return prepare


FAMILY_PREPARATIONS: dict[str, Callable[..., Prepared]] = {
    SOFTMAX.name: _prepare_softmax,
    SIGMOID.name: _elementwise(SigmoidConfig),
    ASYMMETRIC.name: _elementwise(AsymmetricConfig),
    VARIFOCAL.name: _elementwise(VarifocalConfig, unit_target=True, smoothing_in_config=True),
    QUALITY_FOCAL.name: _elementwise(QualityFocalConfig, unit_target=True),
    DISTRIBUTION.name: prepare_distribution,
}
"""How a family prepares a plain call, by family name: ``(loss, logits, target, given, *,
check_values, convert_logits, cache_static) -> (xp, config, operands)``. A new family adds
its entry (an element-wise family: :func:`_elementwise` of its config class)."""
