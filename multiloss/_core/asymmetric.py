r"""The Asymmetric Loss (Ridnik et al., ICCV 2021) for multi-label heads, every derivative.

Per element, with logit x, target y ∈ [0, 1], σ = σ(x), σ' = σ(-x), sp = softplus and the
shifted probability q = p_m = max(σ - clip, 0):

    L = y · P(x) + (1 - y) · N(x),
    P = σ'^{γ+} · sp(-x)                 (= -(1 - p)^{γ+} · log p)
    N = q^{γ-} · ℓ_n,  ℓ_n = -log(1 - q) (= sp(x) for clip = 0)

computed from the logits (no probability clamped, no eps inside a log; 1 - q as
min(σ' + clip, 1), so that it is not rounded to 0 where σ rounds to 1). The derivatives,
with v = σσ' (docs/math.md):

    P'  = -σ'^{γ+} · (γ+ σ sp(-x) + σ'),
    P'' = σ'^{γ+} · (γ+² σ² sp(-x) + γ+ σσ' (2 - sp(-x)) + σσ'),
    N'  = v · g(q),    g = γ- q^{γ- - 1} ℓ_n + q^{γ-} / (1 - q),
    N'' = v (σ' - σ) g + v² g',
    g'  = q^{γ- - 1} (γ- (γ- - 1) r + 2γ- / (1 - q)) + q^{γ-} / (1 - q)²,   r = ℓ_n / q,

and N, N', N'' are 0 where σ ≤ clip. For clip = 0 they are written without q's negative
powers (q = σ, 1 - q = σ'). For γ- < 1 with clip > 0, N'' grows without bound as σ → clip
from above (N is once continuously differentiable there); it is taken as 0 at q = 0.
With an element weight w and pos_weight pw (kornia's binary focal semantics: pw weights
the positive term), L = w (pw y P + (1 - y) N), and likewise its derivatives;
∂L/∂y = w (pw P - N), ∂L/∂w = pw y P + (1 - y) N, ∂L/∂pw = w y P.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

from . import _checks
from ._numerics import power, times_nonzero
from ._reduce import operand_cotangents, operand_tangent, per_element_cotangent, reduce
from .family import Family, Tangents, Wanted
from .hyper import binding, is_zero, static
from .kernels import GENERIC_SIGMOID, SigmoidKernels
from .sigmoid import (
    element_count,
    element_logits_cotangent,
    element_loss_shape,
    element_mean_scale,
    sigmoid_directional_derivative,
)

Array = Any
Namespace = Any


@dataclass(frozen=True)
class AsymmetricConfig:
    """Everything static about one asymmetric-loss call; hashable."""

    family: ClassVar[Family]

    gamma_pos: Any
    """γ+: a float, or a 0-d array here and :class:`.hyper.Traced` until bound (so are γ-
    and clip)."""
    gamma_neg: Any
    clip: Any
    reduction: str


class AsymmetricOperands(NamedTuple):
    """The arrays of one call, in the compute dtype."""

    logits: Array
    target: Array
    weight: Array | None = None
    pos_weight: Array | None = None
    hyper: tuple[Array, ...] = ()
    """The hyperparameters given as 0-d arrays (:mod:`.hyper`)."""


class _Sides(NamedTuple):
    sigma_pos: Array  # σ(x)
    sigma_neg: Array  # σ(-x)
    softplus_neg: Array  # sp(-x) = -log σ(x)
    q: Array  # max(σ - clip, 0)
    one_minus_q: Array  # 1 - q = min(σ' + clip, 1), formed without cancellation
    log_term: Array  # ℓ_n = -log(1 - q)


def _sides(xp: Namespace, config: AsymmetricConfig, x: Array, kernels: SigmoidKernels) -> _Sides:
    softplus_pos, softplus_neg = kernels.softplus_pair(xp, x)
    sigma_pos, sigma_neg = kernels.sigmoid_pair(xp, x)
    if is_zero(config.clip):
        return _Sides(sigma_pos, sigma_neg, softplus_neg, sigma_pos, sigma_neg, softplus_pos)
    q = xp.clip(sigma_pos - config.clip, min=0.0)
    one_minus_q = xp.clip(sigma_neg + config.clip, max=1.0)
    # -log1p(-q) where q is small (exact there), -log(σ' + clip) where it is not (which
    # stays exact as σ' → 0: 1 - q is not rounded to 0)
    log_term = xp.where(q < 0.5, -xp.log1p(-q), -xp.log(one_minus_q))
    return _Sides(sigma_pos, sigma_neg, softplus_neg, q, one_minus_q, log_term)


def _power(xp: Namespace, base: Array, exponent: float) -> Array:
    """base^exponent with 0^0 = 1 (the focusing weight of γ = 0)."""
    return xp.ones_like(base) if is_zero(exponent) else power(base, exponent)


def _values(xp: Namespace, config: AsymmetricConfig, s: _Sides) -> tuple[Array, Array]:
    """P and N (N is 0 where σ ≤ clip: q = 0)."""
    positive = times_nonzero(xp, _power(xp, s.sigma_neg, config.gamma_pos), s.softplus_neg)
    negative = times_nonzero(xp, _power(xp, s.q, config.gamma_neg), s.log_term)
    return positive, negative


def _slopes(xp: Namespace, config: AsymmetricConfig, s: _Sides) -> tuple[Array, Array]:
    """P' and N' (N' is 0 where σ ≤ clip)."""
    gp, gn = config.gamma_pos, config.gamma_neg
    inner = (
        s.sigma_neg
        if is_zero(gp)
        else gp * times_nonzero(xp, s.sigma_pos, s.softplus_neg) + s.sigma_neg
    )
    positive = -_power(xp, s.sigma_neg, gp) * inner
    weight = _power(xp, s.q, gn)
    if is_zero(config.clip):  # N' = σ^γ (γ σ' ℓ_n + σ)
        inner = (
            s.sigma_pos
            if is_zero(gn)
            else gn * times_nonzero(xp, s.sigma_neg, s.log_term) + s.sigma_pos
        )
        return positive, weight * inner
    g = weight / s.one_minus_q
    if not is_zero(gn):
        g = g + gn * weight * _log_ratio(xp, s)
    return positive, xp.where(s.q == 0, 0.0, s.sigma_pos * s.sigma_neg * g)


def _log_ratio(xp: Namespace, s: _Sides) -> Array:
    """r = ℓ_n / q → 1 as q → 0 (so that γ q^{γ-1} ℓ_n = γ q^γ r stays finite)."""
    vanishing = s.q == 0
    return xp.where(vanishing, 1.0, s.log_term / xp.where(vanishing, 1.0, s.q))


def _parts(
    xp: Namespace,
    config: AsymmetricConfig,
    x: Array,
    kernels: Any,
    part: Callable[[Namespace, AsymmetricConfig, _Sides], tuple[Array, Array]],
) -> tuple[Array, Array]:
    """`part` (:func:`_values`, :func:`_slopes` or :func:`_curvatures`) at the logits `x`.
    For a clip given as an array, N comes from the clip = 0 forms where it is 0 (those of
    clip > 0 divide by 1 - q = σ', which may be 0 there) and from the others elsewhere."""
    positive, negative = part(xp, config, _sides(xp, config, x, kernels))
    if static(config.clip) is None:
        unclipped = replace(config, clip=0.0)
        _, plain = part(xp, unclipped, _sides(xp, unclipped, x, kernels))
        negative = xp.where(config.clip == 0, plain, negative)
    return positive, negative


def asymmetric_forward(
    xp: Namespace,
    config: AsymmetricConfig,
    operands: AsymmetricOperands,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> tuple[Array, None]:
    """The reduced loss (compute dtype); the backward pass needs no residuals."""
    x, y = operands.logits, operands.target
    del y
    positive, negative = _parts(xp, config, x, kernels, _values)
    per_element = _combine(xp, operands, positive, negative)
    return reduce(xp, per_element, config.reduction, element_mean_scale(config, x)), None


def _slope(
    xp: Namespace, config: AsymmetricConfig, operands: AsymmetricOperands, kernels: Any
) -> Array:
    """dL/dx per element."""
    positive, negative = _parts(xp, config, operands.logits, kernels, _slopes)
    return _combine(xp, operands, positive, negative)


def _combine(
    xp: Namespace, operands: AsymmetricOperands, positive: Array, negative: Array
) -> Array:
    """w (pw y · positive + (1 - y) · negative), each term 0 where its factor is."""
    y = operands.target
    weighted = y if operands.pos_weight is None else y * operands.pos_weight
    total = times_nonzero(xp, weighted, positive) + times_nonzero(xp, 1.0 - y, negative)
    return total if operands.weight is None else times_nonzero(xp, operands.weight, total)


def asymmetric_vjp(
    xp: Namespace,
    config: AsymmetricConfig,
    operands: AsymmetricOperands,
    residuals: None,
    cotangent: Array,
    kernels: SigmoidKernels = GENERIC_SIGMOID,
) -> Array:
    """cotangent · ∂loss/∂logits, in the compute dtype, with the logits' shape."""
    del residuals
    scale = element_mean_scale(config, operands.logits)
    element_cotangent = per_element_cotangent(xp, cotangent, config.reduction, scale)
    return element_cotangent * _slope(xp, config, operands, kernels)


def _curvatures(xp: Namespace, config: AsymmetricConfig, s: _Sides) -> tuple[Array, Array]:
    """P'' and N''. σσ' is never formed as a difference (no cancellation near σ = 1)."""
    gp, gn = config.gamma_pos, config.gamma_neg
    v = s.sigma_pos * s.sigma_neg
    sp_neg = times_nonzero(xp, s.sigma_pos, s.softplus_neg)  # σ sp(-x), 0 at x = -inf
    positive = _power(xp, s.sigma_neg, gp) * (
        gp * gp * s.sigma_pos * sp_neg + gp * s.sigma_neg * (2.0 * s.sigma_pos - sp_neg) + v
    )
    if is_zero(config.clip):  # the mirror image: σ^γ [γ² σ'(σ' ℓ_n) + γσ(2σ' - σ' ℓ_n) + σσ']
        sp_pos = times_nonzero(xp, s.sigma_neg, s.log_term)  # σ' sp(x), 0 at x = +inf
        negative = _power(xp, s.q, gn) * (
            gn * gn * s.sigma_neg * sp_pos + gn * s.sigma_pos * (2.0 * s.sigma_neg - sp_pos) + v
        )
        return positive, negative
    one_minus_q = s.one_minus_q
    weight = _power(xp, s.q, gn)
    g = weight / one_minus_q
    g_slope = weight / (one_minus_q * one_minus_q)
    if not is_zero(gn):
        r = _log_ratio(xp, s)
        g = g + gn * weight * r
        vanishing = s.q == 0
        safe_q = xp.where(vanishing, 1.0, s.q)
        number = static(gn)
        if number is not None and number >= 1:
            head = power(s.q, gn - 1)
        else:  # also an array γ-: where q = 0 the result below is 0 whatever head is
            head = xp.where(vanishing, 0.0, safe_q ** (gn - 1))
        g_slope = g_slope + head * (gn * (gn - 1) * r + 2.0 * gn / one_minus_q)
    negative = v * (s.sigma_neg - s.sigma_pos) * g + v * v * g_slope
    return positive, xp.where(s.q == 0, 0.0, negative)


def asymmetric_hvp(
    xp: Namespace, config: AsymmetricConfig, operands: AsymmetricOperands, tangent: Array
) -> Array:
    """H·t (diagonal Hessian; see the module docstring)."""
    x = operands.logits
    positive, negative = _parts(xp, config, x, GENERIC_SIGMOID, _curvatures)
    curvature = _combine(xp, operands, positive, negative)
    ones = xp.ones(
        tuple(x.shape) if config.reduction == "none" else (),
        dtype=x.dtype,
        device=_checks.device(x),
    )
    scale = element_mean_scale(config, x)
    element_cotangent = per_element_cotangent(xp, ones, config.reduction, scale)
    return xp.broadcast_to(element_cotangent * curvature * tangent, tuple(x.shape))


def _operand_partials(
    xp: Namespace, config: AsymmetricConfig, operands: AsymmetricOperands, wanted: Wanted
) -> dict[str, Array]:
    """∂L/∂y = w (pw P - N), ∂L/∂w = pw y P + (1 - y) N and ∂L/∂pw = w y P per element."""
    x, y = operands.logits, operands.target
    positive, negative = _parts(xp, config, x, GENERIC_SIGMOID, _values)
    w, pw = operands.weight, operands.pos_weight

    def times_weight(values: Array) -> Array:
        return values if w is None else times_nonzero(xp, w, values)

    partials = {}
    if "target" in wanted:
        weighted = positive if pw is None else pw * positive
        partials["target"] = times_weight(weighted - negative)
    if "weight" in wanted:
        partials["weight"] = _combine(xp, operands._replace(weight=None), positive, negative)
    if "pos_weight" in wanted:
        partials["pos_weight"] = times_weight(times_nonzero(xp, y, positive))
    return partials


def asymmetric_operand_vjp(
    xp: Namespace,
    config: AsymmetricConfig,
    operands: AsymmetricOperands,
    cotangent: Array,
    wanted: Wanted,
) -> dict[str, Array]:
    partials = _operand_partials(xp, config, operands, wanted)
    return operand_cotangents(
        xp,
        partials,
        cotangent,
        config.reduction,
        element_mean_scale(config, operands.logits),
        operands,
    )


def asymmetric_operand_jvp(
    xp: Namespace, config: AsymmetricConfig, operands: AsymmetricOperands, tangents: Tangents
) -> Array:
    partials = _operand_partials(xp, config, operands, tangents.keys())
    return operand_tangent(
        xp, partials, tangents, config.reduction, element_mean_scale(config, operands.logits)
    )


ASYMMETRIC = Family(
    name="asymmetric",
    operands=AsymmetricOperands,
    differentiable=("target", "weight", "pos_weight"),
    forward=binding(asymmetric_forward),
    vjp=binding(asymmetric_vjp),
    hessian_vector_product=binding(asymmetric_hvp),
    directional_derivative=sigmoid_directional_derivative,
    operand_vjp=binding(asymmetric_operand_vjp),
    operand_jvp=binding(asymmetric_operand_jvp),
    denominator=element_count,
    loss_shape=element_loss_shape,
    logits_cotangent=element_logits_cotangent,
)
"""The asymmetric-loss family (see the module docstring)."""

AsymmetricConfig.family = ASYMMETRIC

__all__ = ["ASYMMETRIC", "AsymmetricConfig", "AsymmetricOperands"]
