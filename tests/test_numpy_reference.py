"""``multiloss.numpy``: the float64 reference of values and gradients."""

from __future__ import annotations

import doctest

import numpy as np
import oracles
import pytest
from backends import assert_eps
from cases import ALL_CASES, REDUCTIONS
from losses import ALL, has_class_axis

import multiloss.numpy as mlnp


def _functions(name):
    return (
        getattr(mlnp, name),
        getattr(mlnp, f"{name}_grad"),
        getattr(mlnp, f"{name}_value_and_grad"),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_value_grad_and_value_and_grad_match_the_oracle(case, reduction):
    name, logits, target, options = case
    value, grad, value_and_grad = _functions(name)
    ref_loss, ref_grad = oracles.NUMPY[name](logits, target, reduction=reduction, **options)
    loss = value(logits, target, reduction=reduction, **options)
    gradient = grad(logits, target, reduction=reduction, **options)
    both = value_and_grad(logits, target, reduction=reduction, **options)
    for result in (loss, gradient, *both):
        assert np.asarray(result).dtype == np.float64
    assert gradient.shape == logits.shape
    assert_eps(loss, ref_loss, "float64", 16, "value")
    assert_eps(gradient, ref_grad, "float64", 16, "grad")
    assert_eps(both[0], ref_loss, "float64", 16, "value_and_grad value")
    assert_eps(both[1], ref_grad, "float64", 16, "value_and_grad grad")


def _float32_problem(name):
    rng = np.random.default_rng(8)
    logits = rng.normal(scale=3.0, size=(5, 4)).astype(np.float32)
    if has_class_axis(name):
        return logits, rng.integers(0, 4, size=5)
    return logits, rng.uniform(size=(5, 4)).astype(np.float32)


@pytest.mark.parametrize("name", ALL)
def test_float64_by_default(name):
    """float32 input → float64 result, computed in float64 (oracle to float64 eps)."""
    logits, target = _float32_problem(name)
    value, grad, value_and_grad = _functions(name)
    ref_loss, ref_grad = oracles.MPMATH[name](logits, target, reduction="none")
    loss = value(logits, target, reduction="none")
    gradient = grad(logits, target, reduction="none")
    assert loss.dtype == np.float64 and gradient.dtype == np.float64
    assert_eps(loss, ref_loss, "float64", 4, "loss")
    assert_eps(gradient, ref_grad, "float64", 4, "grad")
    both = value_and_grad(logits, target)
    assert both[0].dtype == np.float64 and both[1].dtype == np.float64


@pytest.mark.parametrize("name", ALL)
def test_dtype_none_keeps_the_input_dtype(name):
    logits, target = _float32_problem(name)
    value, grad, value_and_grad = _functions(name)
    loss = value(logits, target, reduction="none", dtype=None)
    gradient = grad(logits, target, reduction="none", dtype=None)
    assert loss.dtype == np.float32 and gradient.dtype == np.float32
    ref_loss, ref_grad = oracles.MPMATH[name](logits, target, reduction="none")
    assert_eps(loss, ref_loss, "float32", 4, "loss")
    assert_eps(gradient, ref_grad, "float32", 4, "grad")
    # float16 is computed in float32 and returned as float16
    half = logits.astype(np.float16)
    target_half = target.astype(np.float16) if target.dtype.kind == "f" else target
    loss, gradient = value_and_grad(half, target_half, reduction="none", dtype=None)
    assert loss.dtype == np.float16 and gradient.dtype == np.float16
    ref_loss, ref_grad = oracles.MPMATH[name](half, target_half, reduction="none")
    assert_eps(loss, ref_loss, "float16", 1, "loss")
    assert_eps(gradient, ref_grad, "float16", 1, "grad")


@pytest.mark.parametrize("name", ALL)
def test_explicit_dtype(name):
    """dtype=np.float32 computes in and returns float32, also from float64 input."""
    logits, target = _float32_problem(name)
    loss = getattr(mlnp, name)(logits.astype(np.float64), target, dtype=np.float32)
    assert np.asarray(loss).dtype == np.float32
    assert_eps(loss, oracles.NUMPY[name](logits, target)[0], "float32", 4, "loss")


def test_python_sequences_are_accepted():
    loss = mlnp.cross_entropy([[0.0, 0.0]], [1])
    assert float(loss) == pytest.approx(np.log(2), rel=1e-15)
    loss = mlnp.binary_cross_entropy([0.0, 0.0], [1, 0])
    assert float(loss) == pytest.approx(np.log(2), rel=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_integer_logits_are_refused_not_cast(name):
    """An integer array is no logits: the reference does not cast it to float64."""
    _, target = _float32_problem(name)
    with pytest.raises(TypeError, match="logits"):
        getattr(mlnp, name)(np.zeros((5, 4), dtype=np.int64), target)


def test_non_floating_dtype_is_refused():
    with pytest.raises(TypeError, match="dtype"):
        mlnp.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), dtype=np.int32)


def test_class_axis_defaults_to_last():
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(3, 4, 5))
    target = rng.integers(0, 5, size=(3, 4))
    ref_loss, _ = oracles.np_focal_loss(logits, target, axis=-1)
    assert_eps(mlnp.focal_loss(logits, target), ref_loss, "float64", 4, "axis=-1")
    target1 = rng.integers(0, 4, size=(3, 5))
    ref_loss, _ = oracles.np_focal_loss(logits, target1, axis=1)
    assert_eps(mlnp.focal_loss(logits, target1, axis=1), ref_loss, "float64", 4, "axis=1")


def test_docstring_examples():
    results = doctest.testmod(
        mlnp, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert results.attempted > 0
    assert results.failed == 0
