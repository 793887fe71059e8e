"""The fused linear head's preparation, every backend's, and its array-API engine.

A fused head ``linear_<loss>(input, linear_weight, target)`` is the softmax `loss` of the
logits ``input @ linear_weight.T + linear_bias`` (classes last), computed by an engine a
chunk of tokens at a time. :func:`prepare_linear` prepares such a call once, whatever the
backend: the operands' shapes and dtypes, every option (the registry's record says which,
and the plain call's :func:`.prepare.softmax_operands` converts the target and the class
vector), the normaliser folded into the mean's scale, and the chunk plan
(:func:`automatic_chunk_size`, the one rule of every engine). An engine (the torch chunk
loop, JAX's ``lax.scan``, :func:`run_linear` here) only runs a :class:`LinearCall`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from . import _checks
from ._reduce import count_scale, mean_scale, reciprocal, split_normalizer
from .policy import policy_of
from .prepare import softmax_keywords, softmax_operands, softmax_static, with_defaults
from .registry import LINEAR, Loss, term_of
from .softmax import SoftmaxConfig, SoftmaxOperands

Array = Any
Namespace = Any

MAX_CHUNK_BYTES = 32 << 20
"""The float32 logits of one automatic chunk take at most this much (32 MiB), …"""
CHUNK_FRACTION = 16
"""… and at most 1/16 of the whole call's logits, …"""
MIN_CHUNK_ROWS = 192
"""… but at least this many tokens, or all of them: each chunk's matrix products read the
whole projection, which fewer tokens do not amortise (measured with torch at N=2048,
D=512, V=65536, 2 threads: 1.04-1.09x the unfused time with 128 tokens a chunk, 0.92-0.94x
with 192, 0.91-0.95x with 256, whose chunk alone would be 1/8 of the logits)."""


def automatic_chunk_size(tokens: int, num_classes: int) -> int:
    """The tokens per chunk when `chunk_size` is None, in every engine: the largest count
    whose float32 logits take at most 1/`CHUNK_FRACTION` of the whole call's and
    `MAX_CHUNK_BYTES`, but at least `MIN_CHUNK_ROWS` (or every token, if there are fewer)."""
    by_fraction = math.ceil(tokens / CHUNK_FRACTION)
    by_bytes = MAX_CHUNK_BYTES // (4 * max(num_classes, 1))
    rows = max(min(by_fraction, by_bytes), MIN_CHUNK_ROWS)
    return max(1, min(rows, tokens))


class LogitsShape(NamedTuple):
    """The logits of a fused call without their values (they never exist whole): what the
    softmax preparation reads of them."""

    shape: tuple[int, ...]
    dtype: Any

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class LinearCall:
    """Everything an engine needs to run one fused call (:func:`prepare_linear`).

    The logits of a chunk are ``x[rows] @ weight.T + bias``, of shape (rows, V); their loss
    is the core's with :attr:`config` (class axis 1; reduction ``"none"`` for a per-token
    call, else ``"sum"``), multiplied by :attr:`scale` where one is given.
    """

    xp: Namespace
    loss: Loss
    config: SoftmaxConfig
    """The whole call's static config, as the engine runs each chunk (see above)."""
    reduction: str
    """The reduction as run: as given (``"mean"``, ``"sum"``, ``"none"``), but ``"sum"``
    where a normaliser is given (:attr:`scale` then divides by it)."""
    x: Array
    """The input as (M, D), its dtype as given."""
    weight: Array
    bias: Array | None
    target: Array
    """(M,) class indices (index dtype) or (M, V) probabilities (compute dtype)."""
    class_weight: Array | None
    """The class vector (V,) in the compute dtype, a scalar α made a vector."""
    scale: Array | None
    """The mean's scale, 1/denominator (or 1/normaliser where one is given: the normaliser
    folded in, :func:`._reduce.normalizer_scale`'s idiom), 0-d in the compute dtype; None
    for ``"sum"`` and ``"none"`` without a normaliser."""
    normalizer: Array | None
    """The given normaliser, checked, as a 0-d array of the compute dtype (None if none):
    :attr:`scale` is 1/normaliser; an engine that differentiates with respect to it
    divides by it itself."""
    chunk_size: int
    batch_shape: tuple[int, ...]
    static_options: tuple[tuple[str, Any], ...]
    """The loss's static options as checked, by name (for an engine that prepares each
    chunk again, such as JAX's traced scan); the class vector is :attr:`class_weight`."""


def prepare_linear(
    loss: Loss,
    input: Array,
    linear_weight: Array,
    target: Array,
    linear_bias: Array | None,
    options: dict[str, Any],
    *,
    check_values: bool,
    denominator: bool = True,
) -> LinearCall:
    """Prepare a fused-head call of the softmax `loss` (its registry record): `options`
    holds the loss's options by the registry's names, ``normalizer`` and ``chunk_size``.

    Every check of the catalogue runs here, with its message: the operands
    (:func:`._checks.check_linear_operands`), the options, the target against the logits'
    shape and dtype (which are not formed), the class vector; values (class indices,
    weights, the normaliser) only with `check_values` (the backend policy's answer).
    `denominator` False leaves a ``"mean"``'s scale to the engine (JAX computes it inside
    its compiled function); :attr:`LinearCall.scale` is then None.
    """
    if LINEAR not in loss.variants:
        raise TypeError(f"{loss.name} has no fused linear head")
    options = dict(options)
    adopt = policy_of(input).adopt  # host data the backend takes as its own (JAX: NumPy)
    normalizer = adopt(split_normalizer(options))  # given: "mean" becomes "sum" (the idiom)
    if loss.class_vector in options:
        options[loss.class_vector] = adopt(options[loss.class_vector])
    chunk = _checks.check_chunk_size(options.pop("chunk_size", None))
    for name, value in (
        ("input", input),
        ("linear_weight", linear_weight),
        ("linear_bias", linear_bias),
        ("target", target),
    ):
        if value is not None and not _checks.is_array(value):
            raise TypeError(f"{name} must be an array; got {type(value).__name__}")
    xp = _checks.namespace_of(
        input=input, linear_weight=linear_weight, linear_bias=linear_bias, target=target
    )
    _checks.check_linear_operands(xp, input, linear_weight, linear_bias, target)
    num_classes, features = linear_weight.shape
    batch_shape = tuple(input.shape[:-1])
    tokens = math.prod(batch_shape)
    given = with_defaults(loss, options)
    reduction = _checks.check_reduction(given["reduction"])
    term = term_of(loss, given)
    class_vector = loss.class_vector
    class_weight = given[class_vector] if class_vector else None
    logits = LogitsShape((*batch_shape, num_classes), input.dtype)
    keywords = softmax_keywords(loss, given, term, class_weight is not None, check_values)
    keywords.update(axis=-1, reduction=reduction)
    config = softmax_static(xp, logits, target, **keywords)
    dtype = _checks.compute_dtype(xp, input.dtype)
    flat_target, class_weight = softmax_operands(
        xp,
        config,
        xp.reshape(target, (tokens, num_classes) if not config.hard_target else (tokens,)),
        class_weight,
        class_vector or "weight",
        like=linear_weight,
        dtype=dtype,
        check_values=check_values,
        is_cross_entropy=loss.weighted_mean,
    )
    per_token = reduction == "none"
    config = replace(config, axis=1, reduction="none" if per_token else "sum")
    scale = checked = None
    if normalizer is not None:
        like = xp.zeros((), dtype=dtype, device=_checks.device(linear_weight))
        checked = _checks.check_normalizer(xp, normalizer, "mean", like, check_values=check_values)
        scale = reciprocal(xp, checked)
    elif reduction == "mean" and denominator:
        scale = _mean_scale(xp, config, flat_target, class_weight, dtype, linear_weight)
    static = {}
    for option in loss.options:  # as checked: the config's field of the same name, if any
        if option.static and option.name != "reduction":
            value = given[option.name]
            value = value if option.check is None else option.check(value)
            static[option.name] = getattr(config, option.name, value)
    return LinearCall(
        xp=xp,
        loss=loss,
        config=config,
        reduction=reduction,
        x=xp.reshape(input, (tokens, features)),
        weight=linear_weight,
        bias=linear_bias,
        target=flat_target,
        class_weight=class_weight,
        scale=scale,
        normalizer=checked,
        chunk_size=max(1, min(chunk or automatic_chunk_size(tokens, num_classes), tokens)),
        batch_shape=batch_shape,
        static_options=tuple(sorted(static.items())),
    )


def _mean_scale(
    xp: Namespace,
    config: SoftmaxConfig,
    target: Array,
    class_weight: Array | None,
    dtype: Any,
    like: Array,
) -> Array:
    """1 / the mean's denominator over the whole target: the family's own (Σ w_t for the
    weighted mean, the counted targets otherwise), the token count for probabilities."""
    if not config.hard_target:
        scale = count_scale(target.shape[0])
        return xp.asarray(scale, dtype=dtype, device=_checks.device(like))
    stand_in = LogitsShape((target.shape[0], config.num_classes), dtype)
    operands = SoftmaxOperands(stand_in, target, class_weight)
    return mean_scale(xp, config.family.denominator(xp, config, operands))


def run_linear(call: LinearCall, *, with_grad: bool) -> Any:
    """The array-API engine: the whole logits at once (the reference, and the top-level
    functions' engine for arrays of no adapter). The loss in the input's dtype (per token
    for ``"none"``) and, with `with_grad`, the gradients of its sum with respect to the
    input, the weight and the bias (a dict; the bias's None without one)."""
    from . import forward, vjp

    xp, x, w = call.xp, call.x, call.weight
    dtype = _checks.compute_dtype(xp, x.dtype)
    cx, cw = xp.astype(x, dtype, copy=False), xp.astype(w, dtype, copy=False)
    logits = cx @ xp.matrix_transpose(cw)
    if call.bias is not None:
        logits = logits + xp.astype(call.bias, dtype, copy=False)
    prepared = (xp, call.config, SoftmaxOperands(logits, call.target, call.class_weight))
    loss, residuals = forward(prepared)
    if call.scale is not None:
        loss = loss * call.scale
    if call.reduction == "none":
        loss = xp.reshape(loss, call.batch_shape)
    value = xp.astype(loss, x.dtype)
    if not with_grad:
        return value
    cotangent = xp.ones_like(loss) if call.scale is None else xp.ones_like(loss) * call.scale
    if call.reduction == "none":
        cotangent = xp.reshape(cotangent, (-1,))
    grad = vjp(prepared, residuals, cotangent)
    features = x.shape[-1]
    grads = {
        "input": xp.astype(xp.reshape(grad @ cw, (*call.batch_shape, features)), x.dtype),
        "linear_weight": xp.astype(xp.matrix_transpose(grad) @ cx, x.dtype),
        "linear_bias": None if call.bias is None else xp.astype(xp.sum(grad, axis=0), x.dtype),
    }
    return value, grads
