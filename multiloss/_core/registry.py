"""The loss registry: one typed record per loss, the single list of the library's losses.

The adapters, the top-level dispatch, the CLI, the docs' API lists and the tests iterate
over :data:`LOSSES`; no other place lists loss names. A record says everything an adapter
needs to know about a loss besides its math (which is its family's and its term's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .asymmetric import ASYMMETRIC
from .family import Family
from .prepare import (
    prepare_asymmetric_loss,
    prepare_binary_cross_entropy,
    prepare_cross_entropy,
    prepare_focal_loss,
    prepare_poly_loss,
    prepare_sigmoid_focal_loss,
)
from .sigmoid import SIGMOID
from .softmax import SOFTMAX


@dataclass(frozen=True)
class Loss:
    """One loss of the library."""

    name: str
    """The public name, the same in every backend (``multiloss.<backend>.<name>``)."""
    family: Family
    prepare: Callable[..., tuple[Any, Any, Any]]
    """The validating ``prepare_<name>`` step (:mod:`.prepare`)."""
    class_vectors: tuple[str, ...] = ()
    """Options that hold one entry per class (a length-C array or sequence)."""
    element_weights: tuple[str, ...] = ()
    """Options that hold weights broadcast against the logits."""
    static: tuple[str, ...] = ()
    """Options that must be static Python values (hyperparameters, shapes' choices)."""
    class_axis: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The default class axis per backend (``"torch"``, ``"jax"``, ``"numpy"``); empty for
    a family without a class axis."""

    @property
    def weights(self) -> tuple[str, ...]:
        """The array-valued options, in the order of the family's weight operands."""
        return self.class_vectors + self.element_weights

    @property
    def has_class_axis(self) -> bool:
        """Whether the loss takes ``axis`` (and an integer target holds class indices)."""
        return bool(self.class_axis)


_CLASS_AXIS = MappingProxyType({"torch": 1, "jax": -1, "numpy": -1})
"""PyTorch's ``(N, C, d1..dk)`` convention; the array convention (optax) elsewhere."""

_SOFTMAX_STATIC = ("axis", "ignore_index", "reduction", "label_smoothing", "z_loss", "softcap")

LOSSES: Mapping[str, Loss] = MappingProxyType(
    {
        loss.name: loss
        for loss in (
            Loss(
                "cross_entropy",
                SOFTMAX,
                prepare_cross_entropy,
                class_vectors=("weight",),
                static=_SOFTMAX_STATIC,
                class_axis=_CLASS_AXIS,
            ),
            Loss(
                "focal_loss",
                SOFTMAX,
                prepare_focal_loss,
                class_vectors=("alpha",),
                static=(*_SOFTMAX_STATIC, "gamma"),
                class_axis=_CLASS_AXIS,
            ),
            Loss(
                "poly_loss",
                SOFTMAX,
                prepare_poly_loss,
                class_vectors=("alpha",),
                static=(*_SOFTMAX_STATIC, "epsilon", "gamma"),
                class_axis=_CLASS_AXIS,
            ),
            Loss(
                "binary_cross_entropy",
                SIGMOID,
                prepare_binary_cross_entropy,
                element_weights=("weight", "pos_weight"),
                static=("reduction",),
            ),
            Loss(
                "sigmoid_focal_loss",
                SIGMOID,
                prepare_sigmoid_focal_loss,
                static=("alpha", "gamma", "reduction"),
            ),
            Loss(
                "asymmetric_loss",
                ASYMMETRIC,
                prepare_asymmetric_loss,
                static=("gamma_pos", "gamma_neg", "clip", "reduction"),
            ),
        )
    }
)
"""Every loss, by name."""
