"""The library's losses as the tests see them, taken from the registry
(:data:`multiloss._core.LOSSES`): no test file lists loss names of its own.

``ALL``, ``SOFTMAX`` and ``SIGMOID`` keep the registry's order, so that parametrised
tests keep their ids (the loss names). ``ALL`` holds the losses whose target is class
indices, class probabilities or the logits' shape; the distribution focal loss (a floating
target of the class-index shape: positions among bins) is ``DISTRIBUTION``, and its own
test module (tests/test_distribution_focal.py) holds it to the same checks. Every face of
every loss, that one included, is held to the registry by tests/test_faces.py.
"""

from __future__ import annotations

from multiloss._core import LOSSES

DISTRIBUTION = tuple(name for name, loss in LOSSES.items() if loss.family.name == "distribution")
"""The losses of a continuous target among bins (the distribution focal loss)."""
ALL = tuple(name for name in LOSSES if name not in DISTRIBUTION)
"""Every loss of class indices, probabilities or element-wise targets, by name."""
SOFTMAX = tuple(name for name in ALL if LOSSES[name].has_class_axis)
"""The losses with a class axis (class-index or probability targets)."""
SIGMOID = tuple(name for name in ALL if not LOSSES[name].has_class_axis)
"""The element-wise losses (a target of the logits' shape)."""


def has_class_axis(name: str) -> bool:
    """Whether the loss takes ``axis`` and class indices."""
    return LOSSES[name].has_class_axis


def class_weight(name: str) -> str:
    """The option that holds one weight per class (``weight`` or ``alpha``) of a softmax loss."""
    (key,) = LOSSES[name].class_vectors
    return key
