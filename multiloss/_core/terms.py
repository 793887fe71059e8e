r"""Per-class terms of the softmax losses: f(ℓ), its slope A and its curvature B.

A softmax loss is L = Σ_k c_k · f(ℓ_k) with ℓ = log_softmax(z) and class coefficients c
(target mass times class weight); everything else about it (the gradient
∂L/∂z_k = p_k · Σ_j c_j A_j - c_k A_k, the Hessian-vector product, the reductions) is the
family's (:mod:`.softmax`). A term supplies, in the notation of docs/math.md
(p = e^ℓ, u = 1 - p):

* ``value``: f(ℓ);
* ``slope``: A(ℓ) = -df/dℓ, so that ∂L/∂z_k = p_k · S - c_k · A_k with S = Σ_j c_j A_j
  (A ≡ 1 for cross-entropy, f = -ℓ);
* ``curvature``: B(ℓ) = dA/dℓ, for the closed-form second order;
* ``constant_slope``: whether A ≡ 1 (then B ≡ 0 and neither needs to be formed).

A term is a frozen dataclass: hashable, so it is part of a static config (a JAX static
argument); a hyperparameter given as an array is a marker there, bound to its array inside
the engine (:mod:`.hyper`). A new term is one such class plus its oracle in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ._numerics import log_p_over_one_minus_p, one_minus_p, power
from .hyper import is_zero, static

Array = Any
Namespace = Any


class Term(Protocol):
    """What a softmax loss needs of its per-class term (see the module docstring)."""

    @property
    def constant_slope(self) -> bool: ...

    def value(self, xp: Namespace, log_p: Array) -> Array: ...

    def slope(self, xp: Namespace, log_p: Array) -> Array: ...

    def curvature(self, xp: Namespace, log_p: Array) -> Array: ...


@dataclass(frozen=True)
class Focal:
    """The focal term f(ℓ) = -(1 - p)^γ · ℓ (Lin et al. 2017); γ = 0 is cross-entropy.

    γ is a Python number (the branches below specialise on it) or, bound inside the engine,
    a 0-d array (:mod:`.hyper`: the general forms, selected element-wise, with the same
    accuracy)."""

    gamma: Any = 0.0

    @property
    def constant_slope(self) -> bool:
        """A ≡ 1 for γ = 0 (cross-entropy); never for an array γ."""
        return is_zero(self.gamma)

    def value(self, xp: Namespace, log_p: Array) -> Array:
        """f(ℓ) = -(1 - p)^γ · ℓ, the focal loss of one class with unit weight."""
        if is_zero(self.gamma):
            return -log_p
        return -power(one_minus_p(xp, log_p), self.gamma) * log_p

    def slope(self, xp: Namespace, log_p: Array) -> Array:
        """A(ℓ) = u^γ · (1 - γ·p·r), r = ℓ/u, the factor of the focal gradient (docs/math.md).

        dL/dz_k = p_k · Σ_j c_j A_j - c_k A_k. A ≡ 1 for γ = 0; A ≥ u^γ ≥ 0 otherwise,
        with no negative power of u, so it is finite for 0 < γ < 1 at p = 1.

        For γ ≥ 1 it is computed as u^(γ-1) · (u - γ·p·ℓ), the same value with neither the
        ratio r nor its series: both terms are ≥ 0, so nothing cancels. (An array γ forms
        both and selects.)
        """
        gamma = self.gamma
        if is_zero(gamma):
            return xp.ones_like(log_p)
        number = static(gamma)
        u = one_minus_p(xp, log_p)
        p = xp.exp(log_p)
        if number is None or number >= 1:
            # p · ℓ → 0 as ℓ → -inf (p = 0): ℓ bounded below by the lowest finite number
            # gives that limit instead of 0 · (-inf), and changes nothing else (p = 0 there).
            p_log_p = p * xp.clip(log_p, min=xp.finfo(log_p.dtype).min)
            head = power(u, gamma - 1)
            large = head * (u - gamma * p_log_p)
            if number is not None:
                return large
        r = log_p_over_one_minus_p(xp, log_p, u)
        # p · r → 0 as ℓ → -inf (p = 0, r = -inf): take the limit instead of 0 · inf.
        p_times_r = xp.where(p == 0, 0.0, p * r)
        small = power(u, gamma) * (1.0 - gamma * p_times_r)
        if number is not None:
            return small
        return xp.where(gamma >= 1, large, small)

    def curvature(self, xp: Namespace, log_p: Array) -> Array:
        """B(ℓ) = dA/dℓ = -γ p u^(γ-1) (2 + ℓ - (γ-1) p r), the slope of the focal factor A.

        0 for γ = 0. Where u = 0 exactly and γ < 1 (B → -inf), it is 0: B only ever
        multiplies a dℓ of order u there, and B·dℓ ~ u^γ → 0. Where p = 0 (ℓ = -inf) it is
        its limit 0.
        """
        gamma = self.gamma
        if is_zero(gamma):
            return xp.zeros_like(log_p)
        number = static(gamma)
        u = one_minus_p(xp, log_p)
        p = xp.exp(log_p)
        r = log_p_over_one_minus_p(xp, log_p, u)
        vanishing = p == 0
        if number is None:
            vanishing = vanishing | ((u == 0) & (gamma < 1))
        elif number < 1:
            vanishing = vanishing | (u == 0)
        safe_u = xp.where(u == 0, xp.ones_like(u), u)
        safe_log_p = xp.where(vanishing, xp.zeros_like(log_p), log_p)
        p_times_r = xp.where(vanishing, xp.zeros_like(p), p * r)
        if number is None:
            factor = xp.where(gamma >= 1, u, safe_u) ** (gamma - 1)
        else:
            factor = power(u, gamma - 1) if number >= 1 else safe_u ** (gamma - 1)
        curvature = -gamma * p * factor * (2.0 + safe_log_p - (gamma - 1) * p_times_r)
        return xp.where(vanishing, xp.zeros_like(curvature), curvature)


@dataclass(frozen=True)
class Poly:
    """The Poly-1 term f(ℓ) = -u^γ · ℓ + ε · u^(γ+1) (Leng et al. 2022), u = 1 - p.

    γ = 0 is cross-entropy plus ε · (1 - p) (optax's ``poly_loss_cross_entropy``), γ > 0
    the paper's Poly-1 form of the focal loss. ε ≥ -1 keeps the loss ≥ 0 (-log p ≥ 1 - p).
    """

    epsilon: Any
    gamma: Any = 0.0

    @property
    def constant_slope(self) -> bool:
        return False

    def _focal(self) -> Focal:
        return Focal(self.gamma)

    def value(self, xp: Namespace, log_p: Array) -> Array:
        """f(ℓ) = -u^γ · ℓ + ε · u^(γ+1)."""
        u = one_minus_p(xp, log_p)
        return self._focal().value(xp, log_p) + self.epsilon * power(u, self.gamma + 1)

    def slope(self, xp: Namespace, log_p: Array) -> Array:
        """A(ℓ) = A_focal(ℓ) + ε (γ+1) p u^γ: d(u^(γ+1))/dℓ = -(γ+1) u^γ p."""
        p = xp.exp(log_p)
        u = one_minus_p(xp, log_p)
        extra = p if is_zero(self.gamma) else p * power(u, self.gamma)
        return self._focal().slope(xp, log_p) + (self.epsilon * (self.gamma + 1)) * extra

    def curvature(self, xp: Namespace, log_p: Array) -> Array:
        """B(ℓ) = B_focal(ℓ) + ε (γ+1) p u^(γ-1) (u - γ p); ε p for γ = 0.

        For 0 < γ < 1 the extra part is taken as 0 where u = 0 (it diverges like u^(γ-1)
        there, but only ever multiplies a dℓ of order u: B·dℓ ~ u^γ → 0), as the focal
        curvature is."""
        gamma = self.gamma
        p = xp.exp(log_p)
        base = self._focal().curvature(xp, log_p)
        if is_zero(gamma):
            return base + self.epsilon * p
        number = static(gamma)
        u = one_minus_p(xp, log_p)
        if number is not None and number >= 1:
            extra = p * power(u, gamma - 1) * (u - gamma * p)
        else:
            vanishing = u == 0
            if number is None:  # an array γ: the γ ≥ 1 form keeps u = 0
                vanishing = vanishing & (gamma < 1)
            safe_u = xp.where(vanishing, xp.ones_like(u), u)
            extra = xp.where(
                vanishing, xp.zeros_like(u), p * safe_u ** (gamma - 1) * (u - gamma * p)
            )
        return base + (self.epsilon * (gamma + 1)) * extra
