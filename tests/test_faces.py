"""Every public face of every loss is held to the registry (issue 20): the keyword names, their
order and their defaults are those of the loss's options table
(``multiloss._core.LOSSES[name].options``), for every variant the registry says the loss
has (plain, fused linear head, vocabulary-parallel), in every backend.

A face may add its own arguments (``axis``, ``linear_bias``, ``normalizer``, ``chunk_size``,
``dtype``, ``group``, ``mesh``, …); the loss's options among its keywords must be exactly
the registry's, in its order, with its defaults. A face that drifts (a renamed or
reordered option, another default, a missing or extra face) fails here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from multiloss._core import LOSSES
from multiloss._core.registry import LINEAR, PLAIN, VOCAB_PARALLEL, variant_name

ALL_OPTIONS = {option.name for loss in LOSSES.values() for option in loss.options}
"""Every option name of any loss: a face's keywords among them are its loss's options."""

# The faces of each variant: (module, suffixes); a module that cannot be imported is skipped.
FACES = {
    PLAIN: [
        ("multiloss", ("",)),
        ("multiloss.torch", ("",)),
        ("multiloss.jax", ("",)),
        ("multiloss.numpy", ("", "_grad", "_value_and_grad")),
    ],
    LINEAR: [
        ("multiloss", ("",)),
        ("multiloss.torch", ("",)),
        ("multiloss.jax", ("",)),
        ("multiloss.numpy", ("", "_grad", "_value_and_grad")),
    ],
    VOCAB_PARALLEL: [
        ("multiloss.torch.distributed", ("",)),
        ("multiloss.jax.distributed", ("",)),
    ],
}

# The torch modules: the criterion class of each loss and of each fused head.
MODULES = {
    "cross_entropy": "CrossEntropyLoss",
    "focal_loss": "FocalLoss",
    "poly_loss": "PolyLoss",
    "binary_cross_entropy": "BCEWithLogitsLoss",
    "sigmoid_focal_loss": "SigmoidFocalLoss",
    "asymmetric_loss": "AsymmetricLoss",
    "varifocal_loss": "VarifocalLoss",
    "quality_focal_loss": "QualityFocalLoss",
}
LINEAR_MODULES = {"cross_entropy": "LinearCrossEntropyLoss", "focal_loss": "LinearFocalLoss"}


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as error:  # pragma: no cover - a backend not installed
        pytest.skip(f"{name}: {error}")


def _faces() -> Iterator[tuple[str, str, str, str]]:
    for loss in LOSSES.values():
        for variant in loss.variants:
            for module, suffixes in FACES[variant]:
                for suffix in suffixes:
                    yield loss.name, variant, module, variant_name(loss.name, variant) + suffix


def _options_of(function: Callable[..., Any], keyword_only: bool) -> list[inspect.Parameter]:
    parameters = inspect.signature(function).parameters.values()
    kinds = (
        (inspect.Parameter.KEYWORD_ONLY,)
        if keyword_only
        else (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    )
    return [p for p in parameters if p.kind in kinds and p.name in ALL_OPTIONS]


def _assert_held(face: str, found: list[inspect.Parameter], loss: str, variant: str) -> None:
    record = LOSSES[loss]
    names = [p.name for p in found]
    assert names == list(record.option_names(variant)), (face, names)
    defaults = record.defaults(variant)
    for parameter in found:
        assert parameter.default == defaults[parameter.name], (face, parameter)
        assert type(parameter.default) is type(defaults[parameter.name]), (face, parameter)


@pytest.mark.parametrize(("loss", "variant", "module", "face"), list(_faces()))
def test_every_face_takes_the_registry_options(loss, variant, module, face):
    function = getattr(_module(module), face)
    found = _options_of(function, keyword_only=True)
    _assert_held(f"{module}.{face}", found, loss, variant)
    normalizer = inspect.signature(function).parameters["normalizer"]
    assert normalizer.kind is inspect.Parameter.KEYWORD_ONLY and normalizer.default is None


@pytest.mark.parametrize("loss", list(MODULES))
def test_every_torch_module_takes_the_registry_options(loss):
    torch = _module("multiloss.torch")
    name = MODULES[loss]
    found = _options_of(getattr(torch, name).__init__, keyword_only=False)
    nn = _module("torch.nn")
    if hasattr(nn, name):  # a drop-in keeps PyTorch's own order (positional arguments)
        theirs = list(inspect.signature(getattr(nn, name).__init__).parameters)
        shared = [p.name for p in found if p.name in theirs]  # then the library's own
        assert shared == [n for n in theirs if n in LOSSES[loss].option_names()]
        found = sorted(found, key=lambda p: LOSSES[loss].option_names().index(p.name))
    _assert_held(name, found, loss, PLAIN)


@pytest.mark.parametrize("loss", list(LINEAR_MODULES))
def test_every_fused_torch_module_takes_the_registry_options(loss):
    torch = _module("multiloss.torch")
    found = _options_of(getattr(torch, LINEAR_MODULES[loss]).__init__, keyword_only=False)
    _assert_held(LINEAR_MODULES[loss], found, loss, LINEAR)


def test_no_face_is_missing_or_extra():
    """Each module offers exactly the faces the registry's variants give it."""
    for variant, modules in FACES.items():
        for module, suffixes in modules:
            offered = {
                name
                for name in getattr(_module(module), "__all__", dir(_module(module)))
                if (
                    variant == PLAIN
                    and name.removesuffix("_grad").removesuffix("_value_and") in LOSSES
                )
                or (variant != PLAIN and name.startswith(f"{variant}_"))
            }
            expected = {
                variant_name(loss.name, variant) + suffix
                for loss in LOSSES.values()
                if variant in loss.variants
                for suffix in suffixes
            }
            assert offered == expected, (module, variant, offered ^ expected)


def test_a_drifting_face_fails():
    """The check itself: a face with another default or order is caught."""

    def drifted(
        logits,
        target,
        *,
        axis=-1,
        weight=None,
        reduction="mean",
        ignore_index=-100,
        label_smoothing=0.0,
        z_loss=0.0,
        softcap=None,
        normalizer=None,
    ):
        raise AssertionError

    with pytest.raises(AssertionError):
        _assert_held("drifted", _options_of(drifted, True), "cross_entropy", PLAIN)
