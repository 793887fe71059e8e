r"""The NumPy reference: every loss and its gradient, in float64 by default.

Use it to check another implementation (a CUDA kernel, a copied focal loss): the value
*and* the gradient with respect to the logits come from one trusted place, computed in
the stable closed forms of [the math page][the-math]. The class axis is -1 (the array
convention, as in optax).

Every function takes `dtype` (default `numpy.float64`): the logits (and probability
targets) are converted to it first. `dtype=None` keeps the input's floating dtype
(float16 is then computed in float32 inside and returned as float16).

The `*_grad` functions return $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$:
for `reduction="none"` that is every element's own gradient, since an element's loss
depends only on its own logits. The `*_value_and_grad` functions return `(loss, grad)` from
one pass. Both take the keyword arguments of their loss.

Examples:
    >>> import numpy as np
    >>> from multiloss.numpy import focal_loss, focal_loss_grad
    >>> logits = np.array([[2.0, 0.5, -1.0]])
    >>> float(focal_loss(logits, np.array([0]), gamma=0.0))  # γ = 0 is cross-entropy
    0.24131...
    >>> bool(abs(focal_loss_grad(logits, np.array([0])).sum()) < 1e-15)  # rows sum to 0
    True
"""

from __future__ import annotations

from .._backends import public_names
from .._core.counting import count_elements, count_targets
from ._detection import (
    quality_focal_loss,
    quality_focal_loss_grad,
    quality_focal_loss_value_and_grad,
    varifocal_loss,
    varifocal_loss_grad,
    varifocal_loss_value_and_grad,
)
from ._distribution import (
    distribution_focal_loss,
    distribution_focal_loss_grad,
    distribution_focal_loss_value_and_grad,
)
from ._linear import (
    linear_cross_entropy,
    linear_cross_entropy_grad,
    linear_cross_entropy_value_and_grad,
    linear_focal_loss,
    linear_focal_loss_grad,
    linear_focal_loss_value_and_grad,
    linear_poly_loss,
    linear_poly_loss_grad,
    linear_poly_loss_value_and_grad,
)
from ._sigmoid import (
    asymmetric_loss,
    asymmetric_loss_grad,
    asymmetric_loss_value_and_grad,
    binary_cross_entropy,
    binary_cross_entropy_grad,
    binary_cross_entropy_value_and_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_grad,
    sigmoid_focal_loss_value_and_grad,
)
from ._softmax import (
    cross_entropy,
    cross_entropy_grad,
    cross_entropy_value_and_grad,
    focal_loss,
    focal_loss_grad,
    focal_loss_value_and_grad,
    poly_loss,
    poly_loss_grad,
    poly_loss_value_and_grad,
)

__all__ = [
    "asymmetric_loss",
    "asymmetric_loss_grad",
    "asymmetric_loss_value_and_grad",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_cross_entropy_value_and_grad",
    "count_elements",
    "count_targets",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_value_and_grad",
    "distribution_focal_loss",
    "distribution_focal_loss_grad",
    "distribution_focal_loss_value_and_grad",
    "focal_loss",
    "focal_loss_grad",
    "focal_loss_value_and_grad",
    "linear_cross_entropy",
    "linear_cross_entropy_grad",
    "linear_cross_entropy_value_and_grad",
    "linear_focal_loss",
    "linear_focal_loss_grad",
    "linear_focal_loss_value_and_grad",
    "linear_poly_loss",
    "linear_poly_loss_grad",
    "linear_poly_loss_value_and_grad",
    "poly_loss",
    "poly_loss_grad",
    "poly_loss_value_and_grad",
    "quality_focal_loss",
    "quality_focal_loss_grad",
    "quality_focal_loss_value_and_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_value_and_grad",
    "varifocal_loss",
    "varifocal_loss_grad",
    "varifocal_loss_value_and_grad",
]


def __dir__() -> list[str]:
    """The public names only (docs/api: what the module offers)."""
    return public_names(__all__)
