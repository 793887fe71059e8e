r"""Logit soft-capping (Gemma 2): the softmax losses of z' = c · tanh(z / c), every derivative.

The capped logits replace the logits before anything else; the loss's derivatives follow
by the chain rule, with s = dz'/dz = 1 - tanh²(z/c) (element-wise, so the Jacobian is
diagonal) and s' = ds/dz = -2 tanh(z/c) · s / c:

    ∂L/∂z = s ⊙ ∂L/∂z',
    H·t = s ⊙ H'·(s ⊙ t) + G' ⊙ s' ⊙ t,

with H' and G' the Hessian and the unit gradient of the loss at z'. Each function here takes
the family's own function for uncapped logits (`inner`) and calls it at z' with the cap
removed from the config; derivatives with respect to targets and weights are those at z'.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import _checks

Array = Any
Namespace = Any


def cap(xp: Namespace, softcap: float, logits: Array) -> tuple[Array, Array]:
    """z' = c · tanh(z / c) in the compute dtype, and tanh(z / c)."""
    logits = xp.astype(logits, _checks.compute_dtype(xp, logits.dtype), copy=False)
    tanh = xp.tanh(logits / softcap)
    return softcap * tanh, tanh


def _at_capped(xp: Namespace, config: Any, operands: Any) -> tuple[Any, Any, Array]:
    capped, tanh = cap(xp, config.softcap, operands.logits)
    return replace(config, softcap=None), operands._replace(logits=capped), tanh


def forward(inner: Any, xp: Namespace, config: Any, operands: Any, kernels: Any) -> Any:
    """The loss and residuals at the capped logits."""
    config, operands, _ = _at_capped(xp, config, operands)
    return inner(xp, config, operands, kernels)


def vjp(
    inner: Any,
    xp: Namespace,
    config: Any,
    operands: Any,
    residuals: Any,
    cotangent: Array,
    kernels: Any,
) -> Array:
    """s ⊙ (the vjp at the capped logits)."""
    config, operands, tanh = _at_capped(xp, config, operands)
    gradient = inner(xp, config, operands, residuals, cotangent, kernels)
    return xp.astype(gradient, tanh.dtype, copy=False) * (1.0 - tanh * tanh)


def hessian_vector_product(
    forward_inner: Any,
    vjp_inner: Any,
    hvp_inner: Any,
    xp: Namespace,
    config: Any,
    operands: Any,
    tangent: Array,
    loss_shape: tuple[int, ...],
) -> Array:
    """s ⊙ H'·(s ⊙ t) + G' ⊙ s' ⊙ t (see the module docstring)."""
    softcap = config.softcap
    config, operands, tanh = _at_capped(xp, config, operands)
    slope = 1.0 - tanh * tanh
    curvature = hvp_inner(xp, config, operands, slope * tangent)
    _, residuals = forward_inner(xp, config, operands)
    ones = xp.ones(loss_shape, dtype=tanh.dtype, device=_checks.device(tanh))
    unit_gradient = vjp_inner(xp, config, operands, residuals, ones)
    slope_derivative = (-2.0 / softcap) * tanh * slope
    return slope * curvature + unit_gradient * slope_derivative * tangent


def operand_function(inner: Any, xp: Namespace, config: Any, operands: Any, *args: Any) -> Any:
    """A derivative with respect to targets or weights, taken at the capped logits."""
    config, operands, _ = _at_capped(xp, config, operands)
    return inner(xp, config, operands, *args)
