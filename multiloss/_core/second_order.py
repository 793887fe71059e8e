"""Forward-mode and second-order derivatives of the losses, in closed form.

Adapters whose autodiff system works in forward mode (JAX's ``custom_jvp``) need, besides
the unit gradient G = ∂(Σ loss)/∂logits of :func:`multiloss._core.loss_value_and_grad` (for
``reduction="none"`` the gradient of the sum of the per-element losses, i.e. every
element's own gradient, since an element's loss depends only on its own logits):

* :func:`directional_derivative`: the JVP of the loss from G, ⟨G, t⟩ contracted over the
  logits of each loss element (all of them for ``"mean"``/``"sum"``);
* :func:`hessian_vector_product`: H·t, the JVP of G, from a closed form that stays finite
  where the automatic derivative of G does not (0 < γ < 1 at p_t = 1, where u^γ has an
  infinite derivative that multiplies a zero).

The closed forms live in each family's module, beside its first order
(:mod:`.softmax`, :mod:`.sigmoid`); these two functions dispatch on the call's family.
"""

from __future__ import annotations

from typing import Any

Array = Any
Prepared = tuple[Any, Any, Any]


def directional_derivative(prepared: Prepared, gradient: Array, tangent: Array) -> Array:
    """The JVP of the loss along `tangent`, given its unit gradient G.

    The result has the loss's shape: 0-d for "mean"/"sum", per element for "none" (the
    class axis summed for the softmax losses; elementwise for the sigmoid losses).
    """
    xp, config, _ = prepared
    return config.family.directional_derivative(xp, config, gradient, tangent)


def hessian_vector_product(prepared: Prepared, tangent: Array) -> Array:
    """H·t: the JVP of the unit gradient G along `tangent`, shaped like the logits."""
    xp, config, operands = prepared
    return config.family.hessian_vector_product(xp, config, operands, tangent)
