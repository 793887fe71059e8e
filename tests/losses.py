"""The library's losses as the tests see them, taken from the registry
(:data:`multiloss._core.LOSSES`): no test file lists loss names of its own.

``ALL``, ``SOFTMAX`` and ``SIGMOID`` keep the registry's order, so that parametrised
tests keep their ids (the loss names).
"""

from __future__ import annotations

from multiloss._core import LOSSES

ALL = tuple(LOSSES)
"""Every loss, by name."""
SOFTMAX = tuple(name for name, loss in LOSSES.items() if loss.has_class_axis)
"""The losses with a class axis (class-index or probability targets)."""
SIGMOID = tuple(name for name, loss in LOSSES.items() if not loss.has_class_axis)
"""The element-wise losses (a target of the logits' shape)."""


def has_class_axis(name: str) -> bool:
    """Whether the loss takes ``axis`` and class indices."""
    return LOSSES[name].has_class_axis


def class_weight(name: str) -> str:
    """The option that holds one weight per class (``weight`` or ``alpha``) of a softmax loss."""
    (key,) = LOSSES[name].class_vectors
    return key
