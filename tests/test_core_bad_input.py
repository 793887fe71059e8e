"""The bad-input catalogue of docs/semantics.md ("Bad input") in the core: one test per
entry, for each loss it applies to, in every namespace. Each asserts the exception type and
that the message names the argument (and, where there is one, shows the bad value or shape).

The cases every backend runs (``tests/catalogue.py``) run here too, in every namespace, with
the message of the NumPy namespace.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from backends import XP_NAMES, asarray, backend_name, namespace, run_core
from catalogue import params
from losses import ALL, SIGMOID, SOFTMAX, class_weight, has_class_axis

from multiloss import _core
from multiloss._core import LOSSES


def _prepare(xp, name, logits, target, **options):
    """Run the core's validation (and the loss, to show nothing is raised later instead)."""
    return run_core(name, asarray(xp, logits), asarray(xp, target), **options)


def _good(name):
    """A valid (logits, target) pair of shape (3, 4) for the loss."""
    logits = np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0
    if has_class_axis(name):
        return logits, np.array([0, 3, 1])
    return logits, np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0.5, 0, 1, 1]], dtype=np.float64)


@pytest.mark.parametrize("name", ALL)
def test_valid_call_passes(xp, name):
    """The baseline the other tests perturb is itself valid."""
    logits, target = _good(name)
    loss, _ = _prepare(xp, name, logits, target)
    assert np.isfinite(float(loss))


# ----------------------------------------------------------------------------- class indices


@pytest.mark.parametrize("bad", [4, 17, -1, -99])
@pytest.mark.parametrize("name", SOFTMAX)
def test_class_index_out_of_range(xp, name, bad):
    logits, target = _good(name)
    target[1] = bad
    with pytest.raises(ValueError, match=rf"target.*\[0, 4\).*{bad}"):
        _prepare(xp, name, logits, target)


@pytest.mark.parametrize("name", SOFTMAX)
def test_ignore_index_is_not_out_of_range(xp, name):
    """ignore_index itself may lie outside [0, C) (255 in segmentation); one off is not."""
    logits, target = _good(name)
    target[1] = 255
    loss, _ = _prepare(xp, name, logits, target, ignore_index=255)
    assert np.isfinite(float(loss))
    target[1] = 254
    with pytest.raises(ValueError, match=r"target.*254"):
        _prepare(xp, name, logits, target, ignore_index=255)
    target[1] = -100
    with pytest.raises(ValueError, match=r"target.*-100"):
        _prepare(xp, name, logits, target, ignore_index=255)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", SOFTMAX)
def test_float_class_indices(xp, name, dtype):
    logits, target = _good(name)
    with pytest.raises(TypeError, match=r"target.*(integer|class indices)"):
        run_core(name, asarray(xp, logits), asarray(xp, target.astype(dtype)))


@pytest.mark.parametrize("name", SOFTMAX)
def test_bool_class_indices(xp, name):
    logits, _ = _good(name)
    with pytest.raises(TypeError, match=r"target.*bool"):
        run_core(name, asarray(xp, logits), asarray(xp, np.array([True, False, True])))


# ----------------------------------------------------------------------------- logits


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("name", ALL)
def test_integer_or_bool_logits(xp, name, dtype):
    logits, target = _good(name)
    with pytest.raises(TypeError, match=rf"logits.*floating.*{dtype}"):
        run_core(name, asarray(xp, logits.astype(dtype)), asarray(xp, target))


@pytest.mark.parametrize("name", SOFTMAX)
def test_zero_dimensional_logits(xp, name):
    for options in ({}, {class_weight(name): [1.0]}):
        with pytest.raises(ValueError, match=r"logits.*0-d"):
            _prepare(xp, name, np.array(1.5), np.array(0), **options)


@pytest.mark.parametrize("name", SOFTMAX)
def test_zero_classes(xp, name):
    options = [{}, {"axis": 1}] + ([{"alpha": 0.25}] if name == "focal_loss" else [])
    for option in options:
        shape = (3, 0, 2) if option.get("axis") == 1 else (3, 0)
        target_shape = (3, 2) if option.get("axis") == 1 else (3,)
        option = {"axis": option.get("axis", -1), **option}
        with pytest.raises(ValueError, match=r"logits.*class.*\(3, 0"):
            _prepare(xp, name, np.zeros(shape), np.zeros(target_shape, np.int64), **option)


@pytest.mark.parametrize("axis", [2, -3, 5])
@pytest.mark.parametrize("name", SOFTMAX)
def test_axis_out_of_range(xp, name, axis):
    logits, target = _good(name)
    with pytest.raises(ValueError, match=rf"axis {axis}.*2 dimension"):
        _prepare(xp, name, logits, target, axis=axis)


@pytest.mark.parametrize("axis", [1.0, "1", None])
def test_axis_not_an_integer(xp, axis):
    logits, target = _good("cross_entropy")
    with pytest.raises(TypeError, match=r"axis"):
        _prepare(xp, "cross_entropy", logits, target, axis=axis)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", SOFTMAX)
def test_batch_shape_mismatch(xp, name):
    logits, _ = _good(name)
    with pytest.raises(ValueError, match=r"target.*\(3,\).*\(2,\)"):
        _prepare(xp, name, logits, np.array([0, 1]))


@pytest.mark.parametrize("name", SOFTMAX)
def test_spatial_shape_mismatch(xp, name):
    logits = np.zeros((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"target.*\(2, 4, 5\).*\(2, 4, 4\)"):
        _prepare(xp, name, logits, np.zeros((2, 4, 4), np.int64), axis=1)
    # the right shape for the other class axis is the wrong one for this one
    with pytest.raises(ValueError, match=r"target.*\(2, 4, 5\).*\(2, 3, 4\)"):
        _prepare(xp, name, logits, np.zeros((2, 3, 4), np.int64), axis=1)


@pytest.mark.parametrize("name", SOFTMAX)
def test_probability_target_of_another_shape(xp, name):
    logits, _ = _good(name)
    for shape in ((3, 5), (4, 4), (3, 4, 1)):
        with pytest.raises(ValueError, match=r"target.*\(3, 4\).*" + re_shape(shape)):
            _prepare(xp, name, logits, np.full(shape, 0.25))


@pytest.mark.parametrize("name", SIGMOID)
def test_sigmoid_target_of_another_shape(xp, name):
    logits, _ = _good(name)
    for shape in ((3, 5), (4,), (3, 4, 1)):
        with pytest.raises(ValueError, match=r"target.*\(3, 4\).*" + re_shape(shape)):
            _prepare(xp, name, logits, np.zeros(shape))


def re_shape(shape):
    return re.escape(str(tuple(shape)))


# ----------------------------------------------------------------------------- weights


WEIGHTED = [
    pytest.param(name, key, id=f"{name}-{key}") for name in ALL for key in LOSSES[name].weights
]
"""The per-class and per-element weights (array-valued options) of every loss."""


@pytest.mark.parametrize(("name", "key"), WEIGHTED)
def test_weight_of_wrong_length(xp, name, key):
    logits, target = _good(name)
    for value in ([1.0, 2.0, 3.0], [1.0] * 5):
        pattern = rf"{key}.*\({len(value)},\)"
        with pytest.raises(ValueError, match=pattern):
            _prepare(xp, name, logits, target, **{key: value})
        with pytest.raises(ValueError, match=pattern):
            _prepare(xp, name, logits, target, **{key: asarray(xp, np.array(value))})


@pytest.mark.parametrize("name", SOFTMAX)
def test_class_weight_of_wrong_rank(xp, name):
    key = class_weight(name)
    logits, target = _good(name)
    with pytest.raises(ValueError, match=rf"{key}.*\(4, 1\)"):
        _prepare(xp, name, logits, target, **{key: asarray(xp, np.ones((4, 1)))})


@pytest.mark.parametrize("bad", [-1.0, -1e-12, math.nan, -math.inf, math.inf])
@pytest.mark.parametrize(("name", "key"), WEIGHTED)
def test_weight_negative_nan_or_infinite(xp, name, key, bad):
    logits, target = _good(name)
    value = [1.0, 2.0, bad, 0.5]
    with pytest.raises(ValueError, match=rf"{key}.*non-negative.*(nan|-|inf)"):
        _prepare(xp, name, logits, target, **{key: value})
    with pytest.raises(ValueError, match=rf"{key}.*non-negative"):
        _prepare(xp, name, logits, target, **{key: asarray(xp, np.array(value))})


@pytest.mark.parametrize(("name", "key"), WEIGHTED)
def test_weight_not_numbers(xp, name, key):
    logits, target = _good(name)
    for value in ("abcd", {"a": 1}, [1.0, "x", 2.0, 3.0]):
        with pytest.raises(TypeError, match=key):
            _prepare(xp, name, logits, target, **{key: value})
    with pytest.raises(TypeError, match=rf"{key}.*bool"):
        _prepare(xp, name, logits, target, **{key: asarray(xp, np.ones(4, dtype=bool))})


# ----------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan, math.inf])
@pytest.mark.parametrize("name", SOFTMAX)
def test_label_smoothing_outside_unit_interval(xp, name, bad):
    logits, target = _good(name)
    with pytest.raises(ValueError, match=r"label_smoothing.*\[0, 1\]"):
        _prepare(xp, name, logits, target, label_smoothing=bad)


@pytest.mark.parametrize("bad", [-0.5, -1e-300, -math.inf, math.nan, math.inf])
@pytest.mark.parametrize("name", ["focal_loss", "sigmoid_focal_loss"])
def test_gamma_negative_nan_or_infinite(xp, name, bad):
    """γ < 0 or NaN (docs/semantics.md, "Bad input"), and γ = inf, whose gradient is NaN
    (regression: inf passed the open-ended range check)."""
    logits, target = _good(name)
    with pytest.raises(ValueError, match=r"gamma.*>= 0.*" + re.escape(repr(bad))):
        _prepare(xp, name, logits, target, gamma=bad)


@pytest.mark.parametrize("bad", [-0.25, 1.5, math.nan, math.inf])
@pytest.mark.parametrize("name", ["focal_loss", "sigmoid_focal_loss"])
def test_scalar_alpha_outside_unit_interval(xp, name, bad):
    logits, target = _good(name)
    with pytest.raises(ValueError, match=r"alpha.*\[0, 1\]"):
        _prepare(xp, name, logits, target, alpha=bad)


@pytest.mark.parametrize("name", ["focal_loss", "sigmoid_focal_loss"])
def test_hyperparameters_must_be_numbers(xp, name):
    logits, target = _good(name)
    for key, value in (("gamma", "2"), ("gamma", True), ("gamma", [2.0])):
        with pytest.raises(TypeError, match=key):
            _prepare(xp, name, logits, target, **{key: value})
    with pytest.raises(TypeError, match=r"alpha"):
        _prepare(xp, name, logits, target, alpha=True)


@pytest.mark.parametrize("bad", ["avg", "elementwise_mean", "Mean", None, 0])
@pytest.mark.parametrize("name", ALL)
def test_unknown_reduction(xp, name, bad):
    logits, target = _good(name)
    with pytest.raises(ValueError, match=r"reduction.*'mean', 'sum' or 'none'.*" + repr(bad)):
        _prepare(xp, name, logits, target, reduction=bad)


@pytest.mark.parametrize("bad", [1.0, "255", True])
@pytest.mark.parametrize("name", SOFTMAX)
def test_ignore_index_not_an_integer(xp, name, bad):
    logits, target = _good(name)
    with pytest.raises(TypeError, match=r"ignore_index"):
        _prepare(xp, name, logits, target, ignore_index=bad)


@pytest.mark.parametrize("ignore_index", [0, 3, 255])
@pytest.mark.parametrize("name", SOFTMAX)
def test_ignore_index_with_probability_targets(xp, name, ignore_index):
    logits, _ = _good(name)
    with pytest.raises(ValueError, match=rf"ignore_index={ignore_index}.*probabilit"):
        _prepare(xp, name, logits, np.full((3, 4), 0.25), ignore_index=ignore_index)
    # a negative ignore_index (the default -100 included) is no class index: allowed
    loss, _ = _prepare(xp, name, logits, np.full((3, 4), 0.25), ignore_index=-1)
    assert np.isfinite(float(loss))


# ----------------------------------------------------------------------------- backends


def _other_backends(xp):
    """Every namespace but `xp`."""
    own = backend_name(xp)
    return [(name, namespace(name)) for name in XP_NAMES if name != own]


@pytest.mark.parametrize("name", ALL)
def test_arrays_of_two_backends(xp, name):
    logits, target = _good(name)
    for other_name, other in _other_backends(xp):
        pattern = rf"different backends.*logits.*target.*{_module(other_name)}"
        with pytest.raises(TypeError, match=pattern):
            run_core(name, asarray(xp, logits), asarray(other, target))
        pattern = rf"different backends.*logits: {_module(other_name)}"
        with pytest.raises(TypeError, match=pattern):
            run_core(name, asarray(other, logits), asarray(xp, target))


def _module(backend: str) -> str:
    """How the error message names an array type of a backend (its module's start)."""
    return {"numpy": "numpy", "array_api_strict": "array_api_strict", "torch": "torch",
            "jax": "jax"}[backend]  # fmt: skip


@pytest.mark.parametrize(("name", "key"), WEIGHTED)
def test_weight_of_another_backend(xp, name, key):
    logits, target = _good(name)
    for _, other in _other_backends(xp):
        with pytest.raises(TypeError, match=rf"{key}.*another backend"):
            run_core(
                name, asarray(xp, logits), asarray(xp, target), **{key: asarray(other, np.ones(4))}
            )


@pytest.mark.parametrize("name", ALL)
def test_python_lists_are_not_arrays(xp, name):
    logits, target = _good(name)
    with pytest.raises(TypeError, match=r"target.*array"):
        _core.PREPARE[name](asarray(xp, logits), target.tolist())
    with pytest.raises(TypeError, match=r"logits.*array"):
        _core.PREPARE[name](logits.tolist(), asarray(xp, target))
    with pytest.raises(TypeError, match=r"logits.*array"):
        _core.PREPARE[name](logits.tolist(), target.tolist())


# ----------------------------------------------------------------------------- the catalogue


def _core_error(xp, case):
    """The core's error for a catalogue case, its arrays moved into `xp`; dtypes in the
    message as NumPy names them (``int64``, not ``torch.int64``)."""
    logits, target = asarray(xp, case.logits), asarray(xp, case.target)
    with pytest.raises((TypeError, ValueError)) as info:
        run_core(case.name, logits, target, **case.options)
    return type(info.value), re.sub(r"\b(torch|array_api_strict)\.", "", str(info.value))


@pytest.mark.parametrize("case", params())
def test_catalogue_raises_as_in_numpy(xp, case):
    """Every case of the shared catalogue: its exception, with the NumPy namespace's message."""
    expected = _core_error(np, case)
    assert expected[0] is case.error, expected
    assert _core_error(xp, case) == expected
