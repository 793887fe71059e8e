"""The JAX losses' derivatives: the core's closed forms hooked into `custom_jvp` rules.

How: the package docstring of `multiloss.jax` (Derivatives).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .. import _core
from .._core import hyper, second_order

Array = jax.Array


def _is_zero(tangent: object) -> bool:
    """A tangent that is known to be zero: absent, symbolic, or of an integer array."""
    return (
        tangent is None
        or isinstance(tangent, SymbolicZero)
        or getattr(tangent, "dtype", None) == jax.dtypes.float0
    )


_USER_NAMES = {"class_weight": "weight (or alpha)"}


def _split_tangents(operands: Any, tangents: Any) -> tuple[Array | None, dict[str, Array]]:
    """The tangent of the logits (None when it is zero) and the non-zero tangents of the other
    operands, by field name (a probability target, the weights)."""
    others = {
        field: tangent
        for field, tangent in zip(operands._fields[1:], tangents[1:], strict=True)
        if field != "hyper" and not _is_zero(tangent)
    }
    logit_tangent = None if _is_zero(tangents[0]) else tangents[0]
    return logit_tangent, others


def _refuse_hyperparameters(config: Any, tangents: Any) -> None:
    """A derivative with respect to a hyperparameter given as an array is refused, with an
    error that names it (docs/semantics.md, Schedules), never a silent zero."""
    for name, tangent in zip(hyper.names(config), tangents.hyper, strict=True):
        if not _is_zero(tangent):
            raise NotImplementedError(hyper.refusal(name))


def _refuse_second_order(fields: Any) -> None:
    for field in fields:
        name = _USER_NAMES.get(field, field)
        raise NotImplementedError(
            f"second derivatives through {name} are not provided: multiloss.jax gives "
            f"first-order derivatives with respect to {name} and derivatives of any order "
            f"with respect to the logits; wrap {name} in jax.lax.stop_gradient (or close over "
            f"it) where a second derivative is taken"
        )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _first_order_only(fields: tuple[str, ...], operands: Any) -> Any:
    """The operands themselves; differentiating them here is refused.

    `_operand_tangent` reads the operands through this identity. A first derivative
    with respect to a target or weight does not differentiate it (the tangent is linear in
    the operand tangents, the operands enter as constants); a second derivative through them
    does, and gets a clear error instead of JAX's automatic derivative of the first-order
    closed form (`fields`: the operands whose first derivative is being taken).
    """
    return operands


def _first_order_only_jvp(fields: tuple[str, ...], primals: Any, tangents: Any) -> Any:
    (operands,), (operand_tangents,) = primals, tangents
    logit_tangent, others = _split_tangents(operands, operand_tangents)
    if logit_tangent is not None or others:
        _refuse_second_order(fields)
    return operands, operand_tangents


_first_order_only.defjvp(_first_order_only_jvp, symbolic_zeros=True)


def _operand_tangent(config: Any, operands: Any, tangents: dict[str, Array]) -> Array:
    """The loss's tangent along the tangents of the target and the weights (first order)."""
    guarded = _first_order_only(tuple(sorted(tangents)), operands)
    return _core.operand_jvp((jnp, config, guarded), tangents)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def custom_loss(config: Any, operands: Any) -> Array:
    """The reduced loss, in the compute dtype."""
    loss, _ = _core.forward((jnp, config, operands))
    return loss


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _loss_and_gradient(config: Any, operands: Any) -> tuple[Array, Array]:
    """The reduced loss and its unit gradient G = ∂(Σ loss)/∂logits, from one pass."""
    return _core.loss_value_and_grad((jnp, config, operands), operands.logits.dtype)


def _loss_jvp(config: Any, primals: Any, tangents: Any) -> tuple[Array, Array]:
    (operands,), (operand_tangents,) = primals, tangents
    _refuse_hyperparameters(config, operand_tangents)
    tangent, others = _split_tangents(operands, operand_tangents)
    if tangent is None:
        loss = custom_loss(config, operands)
        if not others:
            return loss, jnp.zeros_like(loss)
        return loss, _operand_tangent(config, operands, others)
    # Calling the custom_jvp functions (not the core) for the primal outputs makes a
    # second derivative of this rule use their closed-form rules too.
    loss, gradient = _loss_and_gradient(config, operands)
    prepared = (jnp, config, operands)
    loss_tangent = second_order.directional_derivative(prepared, gradient, tangent)
    if others:
        loss_tangent = loss_tangent + _operand_tangent(config, operands, others)
    return loss, loss_tangent


def _loss_and_gradient_jvp(
    config: Any, primals: Any, tangents: Any
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    (operands,), (operand_tangents,) = primals, tangents
    _refuse_hyperparameters(config, operand_tangents)
    tangent, others = _split_tangents(operands, operand_tangents)
    if others:  # the gradient G differentiated with respect to a target or weight
        _refuse_second_order(others)
    loss, gradient = _loss_and_gradient(config, operands)
    if tangent is None:
        return (loss, gradient), (jnp.zeros_like(loss), jnp.zeros_like(gradient))
    prepared = (jnp, config, operands)
    return (loss, gradient), (
        second_order.directional_derivative(prepared, gradient, tangent),
        second_order.hessian_vector_product(prepared, tangent),
    )


custom_loss.defjvp(_loss_jvp, symbolic_zeros=True)
_loss_and_gradient.defjvp(_loss_and_gradient_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def no_derivative(refusal: str, value: Any) -> Any:
    """`value` itself (any pytree); a derivative through it raises NotImplementedError with
    the message `refusal`, where a zero would be silently wrong (an input whose derivative
    a custom rule does not give)."""
    return value


def _no_derivative_jvp(refusal: str, primals: Any, tangents: Any) -> Any:
    (value,), (tangent,) = primals, tangents
    leaves = jax.tree_util.tree_leaves(tangent, is_leaf=lambda t: isinstance(t, SymbolicZero))
    if any(not isinstance(leaf, SymbolicZero) for leaf in leaves):
        raise NotImplementedError(refusal)
    return value, tangent


no_derivative.defjvp(_no_derivative_jvp, symbolic_zeros=True)
