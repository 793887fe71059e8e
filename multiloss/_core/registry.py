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

from . import hyper
from .asymmetric import ASYMMETRIC
from .detection import QUALITY_FOCAL, VARIFOCAL
from .distribution import DISTRIBUTION
from .family import Family
from .sigmoid import SIGMOID
from .softmax import SOFTMAX
from .terms import Focal, Poly, Term


@dataclass(frozen=True)
class Option:
    """One keyword option of a loss: its name, its default and whether it is static (a
    Python value a compiler specialises on, never a traced array)."""

    name: str
    default: Any
    static: bool = True
    check: Callable[[Any], Any] | None = None
    """The option's own check, returning the checked value, for a hyperparameter: a
    softmax loss's term's (:func:`term_of`) or a field of another family's config (of the
    same name); None where the family's preparation checks it (the common options)."""


PLAIN, LINEAR, VOCAB_PARALLEL = "plain", "linear", "vocab_parallel"
"""The call kinds (variants) of a loss: ``<loss>(logits, target)``, the fused linear head
``linear_<loss>(input, linear_weight, target)`` and the vocabulary-parallel
``vocab_parallel_<loss>(local_logits, target)``."""

NOT_IN_VOCAB_PARALLEL = ("softcap",)
"""Options of the softmax losses that the vocabulary-parallel variant does not take."""


@dataclass(frozen=True)
class Loss:
    """One loss of the library."""

    name: str
    """The public name, the same in every backend (``multiloss.<backend>.<name>``)."""
    family: Family
    """Its math and the kind of its preparation (:data:`.prepare.FAMILY_PREPARATIONS`)."""
    class_vectors: tuple[str, ...] = ()
    """Options that hold one entry per class (a length-C array or sequence)."""
    element_weights: tuple[str, ...] = ()
    """Options that hold weights broadcast against the logits."""
    static: tuple[str, ...] = ()
    """Options that must be static Python values (shapes' choices, the reduction, …)."""
    hyperparameters: tuple[str, ...] = ()
    """The float hyperparameters: a Python number (static; the math specialises on it) or
    a 0-d array of the logits' backend (data: traced, no recompilation when it changes;
    :mod:`.hyper`, whose :data:`.hyper.BOUNDS` gives each its range). The plain call
    kind only: the fused heads and the vocabulary-parallel losses take numbers."""
    class_axis: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The default class axis per backend (``"torch"``, ``"jax"``, ``"numpy"``); empty for
    a family without a class axis."""
    options: tuple[Option, ...] = ()
    """Every option of the loss's faces, in their order, with its default (``axis``,
    ``normalizer`` and a variant's own arguments are the faces' own: see
    :func:`face_options`)."""
    term: Callable[..., Term] | None = None
    """The softmax loss's per-class term from its checked options (keyword arguments named
    as :attr:`options`); None for the other families."""
    variants: tuple[str, ...] = (PLAIN,)
    """The call kinds offered (:data:`PLAIN`, :data:`LINEAR`, :data:`VOCAB_PARALLEL`)."""
    weighted_mean: bool = False
    """Whether ``"mean"`` divides by Σ_i w_{y_i} where a class vector is given (PyTorch's
    weighted cross-entropy) rather than by the count of counted targets."""
    sharded_smoothing: bool = False
    """Whether the vocabulary-parallel variant takes label smoothing (only where the
    smoothed loss is linear in the log-sum-exp: cross-entropy's term)."""

    @property
    def class_vector(self) -> str | None:
        """The option that holds one weight per class (``weight``, ``alpha``), or None."""
        return self.class_vectors[0] if self.class_vectors else None

    def option_names(self, variant: str = PLAIN) -> tuple[str, ...]:
        """The loss's options that the `variant` takes, in the faces' order."""
        names = tuple(option.name for option in self.options)
        if variant == VOCAB_PARALLEL:
            names = tuple(name for name in names if name not in NOT_IN_VOCAB_PARALLEL)
        return names

    def defaults(self, variant: str = PLAIN) -> dict[str, Any]:
        """The defaults of :meth:`option_names`, by name."""
        wanted = self.option_names(variant)
        return {option.name: option.default for option in self.options if option.name in wanted}

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

_SOFTMAX_STATIC = ("axis", "ignore_index", "reduction")
_SOFTMAX_HYPER = ("label_smoothing", "z_loss", "softcap")
_SOFTMAX_OPTIONS = (
    Option("ignore_index", -100),
    Option("reduction", "mean"),
    Option("label_smoothing", 0.0),
    Option("z_loss", 0.0),
    Option("softcap", None),
)
_SOFTMAX_VARIANTS = (PLAIN, LINEAR, VOCAB_PARALLEL)


_ELEMENT_WEIGHTS = ("weight", "pos_weight")
_ELEMENT_STATIC = ("ignore_index", "reduction")
_ELEMENT_HYPER = ("label_smoothing",)
_ELEMENT_OPTIONS = (
    Option("weight", None, static=False),
    Option("pos_weight", None, static=False),
    Option("ignore_index", None),
    Option("label_smoothing", 0.0),
    Option("reduction", "mean"),
)
"""The options every element-wise (sigmoid) loss takes after its own (:mod:`.element_options`)."""


def _hyperparameter(name: str) -> Callable[[Any], float]:
    """The check of a term's hyperparameter where the call kind takes numbers only (the
    fused heads, the vocabulary-parallel losses): its range is :data:`.hyper.BOUNDS`'s; an
    array is refused with an error that says so (the plain losses check with
    :func:`.hyper.check`, which takes arrays)."""

    def check(value: Any) -> float:
        return hyper.check_number(name, value)

    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`check`, letting None (the option's "off") through."""

    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


def _focal_term(gamma: float) -> Term:
    return Focal(gamma)


def _cross_entropy_term() -> Term:
    return Focal(0.0)


def _poly_term(epsilon: float, gamma: float) -> Term:
    return Poly(epsilon, gamma)


LOSSES: Mapping[str, Loss] = MappingProxyType(
    {
        loss.name: loss
        for loss in (
            Loss(
                "cross_entropy",
                SOFTMAX,
                class_vectors=("weight",),
                static=_SOFTMAX_STATIC,
                hyperparameters=_SOFTMAX_HYPER,
                class_axis=_CLASS_AXIS,
                options=(Option("weight", None, static=False), *_SOFTMAX_OPTIONS),
                term=_cross_entropy_term,
                variants=_SOFTMAX_VARIANTS,
                weighted_mean=True,
                sharded_smoothing=True,
            ),
            Loss(
                "focal_loss",
                SOFTMAX,
                class_vectors=("alpha",),
                static=_SOFTMAX_STATIC,
                hyperparameters=("gamma", *_SOFTMAX_HYPER),
                class_axis=_CLASS_AXIS,
                options=(
                    Option("gamma", 2.0, check=_hyperparameter("gamma")),
                    Option("alpha", None, static=False),
                    *_SOFTMAX_OPTIONS,
                ),
                term=_focal_term,
                variants=_SOFTMAX_VARIANTS,
            ),
            Loss(
                "poly_loss",
                SOFTMAX,
                class_vectors=("alpha",),
                static=_SOFTMAX_STATIC,
                hyperparameters=("epsilon", "gamma", *_SOFTMAX_HYPER),
                class_axis=_CLASS_AXIS,
                options=(
                    Option("epsilon", 2.0, check=_hyperparameter("epsilon")),
                    Option("gamma", 0.0, check=_hyperparameter("gamma")),
                    Option("alpha", None, static=False),
                    *_SOFTMAX_OPTIONS,
                ),
                term=_poly_term,
                variants=_SOFTMAX_VARIANTS,
            ),
            Loss(
                "binary_cross_entropy",
                SIGMOID,
                element_weights=_ELEMENT_WEIGHTS,
                static=_ELEMENT_STATIC,
                hyperparameters=_ELEMENT_HYPER,
                options=_ELEMENT_OPTIONS,
            ),
            Loss(
                "sigmoid_focal_loss",
                SIGMOID,
                element_weights=_ELEMENT_WEIGHTS,
                static=_ELEMENT_STATIC,
                hyperparameters=("alpha", "gamma", *_ELEMENT_HYPER),
                options=(
                    Option("alpha", 0.25, static=False, check=_optional(_hyperparameter("alpha"))),
                    Option("gamma", 2.0, check=_hyperparameter("gamma")),
                    *_ELEMENT_OPTIONS,
                ),
            ),
            Loss(
                "asymmetric_loss",
                ASYMMETRIC,
                element_weights=_ELEMENT_WEIGHTS,
                static=_ELEMENT_STATIC,
                hyperparameters=("gamma_pos", "gamma_neg", "clip", *_ELEMENT_HYPER),
                options=(
                    Option("gamma_pos", 0.0, check=_hyperparameter("gamma_pos")),
                    Option("gamma_neg", 4.0, check=_hyperparameter("gamma_neg")),
                    Option("clip", 0.05, check=_hyperparameter("clip")),
                    *_ELEMENT_OPTIONS,
                ),
            ),
            Loss(
                "varifocal_loss",
                VARIFOCAL,
                element_weights=_ELEMENT_WEIGHTS,
                static=_ELEMENT_STATIC,
                hyperparameters=("alpha", "gamma", *_ELEMENT_HYPER),
                options=(
                    Option("alpha", 0.75, check=_hyperparameter("alpha")),
                    Option("gamma", 2.0, check=_hyperparameter("gamma")),
                    *_ELEMENT_OPTIONS,
                ),
            ),
            Loss(
                "quality_focal_loss",
                QUALITY_FOCAL,
                element_weights=_ELEMENT_WEIGHTS,
                static=_ELEMENT_STATIC,
                hyperparameters=("beta", *_ELEMENT_HYPER),
                options=(Option("beta", 2.0, check=_hyperparameter("beta")), *_ELEMENT_OPTIONS),
            ),
            Loss(
                "distribution_focal_loss",
                DISTRIBUTION,
                element_weights=("weight",),
                static=("axis", "reduction"),
                class_axis=_CLASS_AXIS,
                options=(Option("weight", None, static=False), Option("reduction", "mean")),
            ),
        )
    }
)
"""Every loss, by name."""


def variant_name(loss: str, variant: str) -> str:
    """The public name of a loss's `variant` (``linear_focal_loss``, …)."""
    return loss if variant == PLAIN else f"{variant}_{loss}"


def hyperparameters(
    loss: Loss, options: Mapping[str, Any], *, arrays: bool = False, check_values: bool = True
) -> dict[str, Any]:
    """The `loss`'s options that have their own check (:attr:`Option.check`), each taken
    from `options` (by name; the default where absent) and checked (the catalogue's
    messages), in the record's order. With `arrays` (the plain call kind) one that the
    record lists in :attr:`Loss.hyperparameters` may be a 0-d array: :func:`.hyper.check`
    leaves its marker (its value checked where `check_values` and the backend allow)."""

    def checked(option: Option) -> Any:
        value = options.get(option.name, option.default)
        if arrays and value is not None and option.name in loss.hyperparameters:
            return hyper.check(option.name, value, check_values=check_values)
        assert option.check is not None
        return option.check(value)

    return {option.name: checked(option) for option in loss.options if option.check is not None}


def term_of(
    loss: Loss, options: Mapping[str, Any], *, arrays: bool = False, check_values: bool = True
) -> Term:
    """The per-class term of a softmax `loss` from a call's `options` (by name), each of the
    term's hyperparameters checked by its :class:`Option` (:func:`hyperparameters`; `arrays`
    and `check_values` as there)."""
    if loss.term is None:
        raise TypeError(f"{loss.name} has no per-class term (it is not a softmax loss)")
    return loss.term(**hyperparameters(loss, options, arrays=arrays, check_values=check_values))
