"""A loss family: everything the core and the adapters call for one kind of loss.

The core has two families, softmax (:data:`multiloss._core.softmax.SOFTMAX`: cross-entropy,
focal loss, any per-class term) and sigmoid (:data:`multiloss._core.sigmoid.SIGMOID`: the
element-wise binary losses). Each config class names its family (``config.family``), so
that the core and the adapters call ``config.family.forward(...)`` and the like instead of
asking which kind of config they hold. All derivatives of a family live in its module,
side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

Array = Any
Namespace = Any


@dataclass(frozen=True)
class Family:
    """The operations of one loss family, each a function of ``(xp, config, operands, …)``.

    The shapes: the logits have the operands' logits shape; the reduced loss has
    :attr:`loss_shape`'s (0-d for ``"mean"``/``"sum"``); a cotangent has the loss's shape.
    """

    name: str
    """``"softmax"`` or ``"sigmoid"``."""
    operands: type
    """The NamedTuple of the family's operand arrays (logits first)."""
    differentiable: tuple[str, ...]
    """The operand fields besides the logits with first-order derivatives."""
    forward: Callable[..., tuple[Array, Any]]
    """``(xp, config, operands, kernels) -> (loss, residuals)``, in the compute dtype."""
    vjp: Callable[..., Array]
    """``(xp, config, operands, residuals, cotangent, kernels) -> cotangent · ∂loss/∂logits``."""
    hessian_vector_product: Callable[..., Array]
    """``(xp, config, operands, tangent) -> H·t`` of the unit gradient G."""
    directional_derivative: Callable[..., Array]
    """``(xp, config, gradient, tangent) -> ⟨G, t⟩`` per loss element: the loss's JVP."""
    operand_vjp: Callable[..., dict[str, Array]]
    """``(xp, config, operands, cotangent, wanted) -> {field: cotangent · ∂loss/∂field}``."""
    operand_jvp: Callable[..., Array]
    """``(xp, config, operands, tangents) -> the loss's tangent`` along operand tangents."""
    denominator: Callable[..., Array]
    """``(xp, config, operands) ->`` the 0-d denominator of the ``"mean"`` reduction."""
    loss_shape: Callable[[Any, tuple[int, ...]], tuple[int, ...]]
    """``(config, logits_shape) -> the reduced loss's shape``."""
    logits_cotangent: Callable[[Namespace, Any, Array], Array]
    """``(xp, config, cotangent) ->`` the loss's cotangent, broadcastable against the logits."""


Wanted = Collection[str]
Tangents = Mapping[str, Array]
