"""The Pallas engine of `multiloss.jax`: a prepared call run by `pallas_call` kernels.

:func:`loss` takes what the core's `prepare_call` returns (a config and operands) and
gives the reduced loss in the compute dtype, like the XLA engine's rule in
`multiloss.jax._autodiff`; it is a `jax.custom_vjp` whose forward rule is one forward
kernel and whose backward rule is one backward kernel (the softmax family:
:mod:`.softmax`; BCE, sigmoid focal and asymmetric: :mod:`.elementwise`; the distribution
focal loss: :mod:`.distribution`). The derivatives
with respect to a probability target and the weights are the core's closed forms, formed
only for operands that are being differentiated (`symbolic_zeros`).

Reverse mode only: `jax.grad`, `value_and_grad`, `vjp` and `vmap` of them work;
`jax.jvp`, `jacfwd` and second derivatives need the `"xla"` engine (JAX refuses forward
mode through a `custom_vjp`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero, custom_vjp_primal_tree_values

from ... import _core
from ..._core import DISTRIBUTION, SOFTMAX
from .._engine import uses_kernels
from . import distribution, elementwise, softmax

Array = jax.Array


def _module(config: Any) -> Any:
    if config.family is SOFTMAX:
        return softmax
    return distribution if config.family is DISTRIBUTION else elementwise


@jax.tree_util.register_static
class _Fields(tuple[str, ...]):
    """The names of the differentiated operands besides the logits (static residual)."""


FORWARD_MODE = (
    "multiloss.jax.engine('pallas') gives reverse mode only (its kernels sit behind a "
    "jax.custom_vjp): jax.grad, value_and_grad, vjp and vmap work, but jax.jvp, jacfwd, "
    "hessian and other forward-mode or second derivatives need the XLA engine: trace them "
    "under multiloss.jax.engine('xla')"
)
"""The error of forward mode through the kernels."""


def loss(config: Any, operands: Any) -> Array:
    """The reduced loss of a prepared call, in the compute dtype, by the kernels
    (reverse mode only: forward mode raises a TypeError that names the way out)."""
    try:
        return _loss(config, operands)
    except TypeError as error:
        if "forward-mode" in str(error):
            raise TypeError(FORWARD_MODE) from error
        raise


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _loss(config: Any, operands: Any) -> Array:
    value, _ = _module(config).forward(config, operands)
    return value


def _loss_fwd(config: Any, operands: Any) -> tuple[Array, Any]:
    values = custom_vjp_primal_tree_values(operands)
    perturbed = _Fields(
        field
        for field in config.family.differentiable
        if getattr(operands, field) is not None and getattr(operands, field).perturbed
    )
    value, residuals = _module(config).forward(config, values)
    return value, (values, residuals, perturbed)


def _loss_bwd(config: Any, saved: Any, cotangent: Any) -> tuple[Any]:
    operands, residuals, perturbed = saved
    if isinstance(cotangent, SymbolicZero):
        cotangent = jnp.zeros(cotangent.shape, cotangent.dtype)
    grad = _module(config).backward(config, operands, residuals, cotangent)
    others = {}
    if perturbed:  # the core's closed forms take the logits in the compute dtype
        dtype = jnp.promote_types(operands.logits.dtype, jnp.float32)
        converted = operands._replace(logits=operands.logits.astype(dtype))
        others = _core.operand_vjp((jnp, config, converted), cotangent, perturbed)
    fields = {field: others.get(field) for field in operands._fields[1:]}
    return (type(operands)(logits=grad, **fields),)


_loss.defvjp(_loss_fwd, _loss_bwd, symbolic_zeros=True)


class KernelResiduals(NamedTuple):
    """What :func:`chunk_forward` keeps when the kernels ran (O(rows), never O(N×C))."""

    residuals: Any


def chunk_forward(prepared: Any) -> tuple[Array, Any]:
    """`multiloss._core.forward` of a prepared call (the fused linear head's chunk step),
    by the kernels where the engine chosen while tracing says so, else by the core."""
    _, config, operands = prepared
    if not uses_kernels():
        return _core.forward(prepared)
    value, residuals = _module(config).forward(config, operands)
    return value, KernelResiduals(residuals)


def chunk_vjp(prepared: Any, residuals: Any, cotangent: Array) -> Array:
    """`multiloss._core.vjp` of :func:`chunk_forward`'s result, by the engine that made it."""
    _, config, operands = prepared
    if isinstance(residuals, KernelResiduals):
        return _module(config).backward(config, operands, residuals.residuals, cotangent)
    return _core.vjp(prepared, residuals, cotangent)


__all__ = ["FORWARD_MODE", "KernelResiduals", "chunk_forward", "chunk_vjp", "loss"]
