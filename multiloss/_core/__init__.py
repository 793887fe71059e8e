"""The loss math, written once against the Python array API standard.

No framework is imported here: every function takes arrays of any namespace that
``array_api_compat.array_namespace`` recognises (NumPy, array-api-strict, PyTorch, JAX, …).

Layers:

* ``prepare_<loss>(logits, target, **options)`` validates the call (docs/semantics.md, Bad input)
  and returns ``(xp, config, operands)``: the namespace, a static hashable config and the
  operand arrays in the compute dtype;
* ``softmax_forward`` / ``softmax_vjp`` and ``sigmoid_forward`` / ``sigmoid_vjp`` compute
  the reduced loss and its vector-Jacobian product in closed form; adapters hook these into
  their autodiff systems;
* ``loss_value`` and ``loss_value_and_grad`` run a prepared call end to end, returning
  results in the input dtype.
"""

from __future__ import annotations

from typing import Any

from .sigmoid import (
    SigmoidConfig,
    SigmoidOperands,
    prepare_binary_cross_entropy,
    prepare_sigmoid_focal_loss,
    sigmoid_forward,
    sigmoid_vjp,
)
from .softmax import (
    SoftmaxConfig,
    SoftmaxOperands,
    SoftmaxResiduals,
    prepare_cross_entropy,
    prepare_focal_loss,
    softmax_forward,
    softmax_vjp,
)

Array = Any
Prepared = tuple[Any, SoftmaxConfig | SigmoidConfig, SoftmaxOperands | SigmoidOperands]

PREPARE = {
    "cross_entropy": prepare_cross_entropy,
    "focal_loss": prepare_focal_loss,
    "binary_cross_entropy": prepare_binary_cross_entropy,
    "sigmoid_focal_loss": prepare_sigmoid_focal_loss,
}
"""The four losses of docs/semantics.md, by name, to their validating ``prepare`` step."""


def forward(prepared: Prepared) -> tuple[Array, Any]:
    """The reduced loss in the compute dtype, and the residuals that :func:`vjp` needs."""
    xp, config, operands = prepared
    if isinstance(config, SoftmaxConfig):
        return softmax_forward(xp, config, operands)
    return sigmoid_forward(xp, config, operands)


def vjp(prepared: Prepared, residuals: Any, cotangent: Array) -> Array:
    """cotangent · ∂loss/∂logits in the compute dtype."""
    xp, config, operands = prepared
    if isinstance(config, SoftmaxConfig):
        return softmax_vjp(xp, config, operands, residuals, cotangent)
    return sigmoid_vjp(xp, config, operands, residuals, cotangent)


def loss_value(prepared: Prepared, dtype: Any) -> Array:
    """Run a prepared call; the loss is returned in `dtype` (the input's)."""
    xp = prepared[0]
    loss, _ = forward(prepared)
    return xp.astype(loss, dtype)


def loss_value_and_grad(prepared: Prepared, dtype: Any) -> tuple[Array, Array]:
    """The loss and the gradient of its sum with respect to the logits, both in `dtype`.

    For ``reduction="none"`` the gradient of the sum is every element's own gradient,
    because each element's loss depends only on its own logits.
    """
    xp = prepared[0]
    loss, residuals = forward(prepared)
    grad = vjp(prepared, residuals, xp.ones_like(loss))
    return xp.astype(loss, dtype), xp.astype(grad, dtype)


__all__ = [
    "PREPARE",
    "SigmoidConfig",
    "SigmoidOperands",
    "SoftmaxConfig",
    "SoftmaxOperands",
    "SoftmaxResiduals",
    "forward",
    "loss_value",
    "loss_value_and_grad",
    "prepare_binary_cross_entropy",
    "prepare_cross_entropy",
    "prepare_focal_loss",
    "prepare_sigmoid_focal_loss",
    "sigmoid_forward",
    "sigmoid_vjp",
    "softmax_forward",
    "softmax_vjp",
    "vjp",
]
