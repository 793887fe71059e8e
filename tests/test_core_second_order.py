"""``multiloss._core.second_order``: the closed-form Hessian-vector product and directional
derivative, against mpmath's differentiation of the oracle's gradient (50 digits)."""

from __future__ import annotations

import functools

import numpy as np
import oracles
import pytest
from backends import XP_NAMES, asarray, assert_eps, namespace, to_numpy
from cases import ALL_CASES, REDUCTIONS

from multiloss import _core
from multiloss._core import second_order

# Measured worst case over these problems: 1.8 eps of float64 · (1 + |reference|); the
# bound leaves room for other namespaces' summation orders.
BOUND = 8


def _tangent(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _hvp(xp, name, logits, target, tangent, **options):
    moved = {
        key: asarray(xp, value) if isinstance(value, np.ndarray) else value
        for key, value in options.items()
    }
    prepared = _core.PREPARE[name](asarray(xp, logits), asarray(xp, target), **moved)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return to_numpy(second_order.hessian_vector_product(prepared, asarray(xp, tangent)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_hessian_vector_product_matches_mpmath(case, reduction):
    name, logits, target, options = case
    tangent = _tangent(logits.shape)
    result = _hvp(np, name, logits, target, tangent, reduction=reduction, **options)
    _, reference = oracles.MPMATH[name](
        logits, target, reduction=reduction, tangent=tangent, **options
    )
    assert result.shape == logits.shape
    assert_eps(result, reference, "float64", BOUND, "H·t")


SUBSET = {case.id: case.values[0] for case in ALL_CASES if case.id in {
    "cross_entropy-kdim-axis1", "cross_entropy-probabilities-weight-smoothing",
    "focal_loss-gamma0.5", "focal_loss-smoothing-alpha-gamma0.5",
    "binary_cross_entropy-3d-pos-weight-weight", "sigmoid_focal_loss-gamma0.5",
}}  # fmt: skip


@functools.cache
def _subset_reference(case_id):
    name, logits, target, options = SUBSET[case_id]
    tangent = _tangent(logits.shape, seed=1)
    return oracles.MPMATH[name](logits, target, reduction="mean", tangent=tangent, **options)[1]


@pytest.mark.parametrize("xp_name", [name for name in XP_NAMES if name != "numpy"])
@pytest.mark.parametrize("case_id", sorted(SUBSET))
def test_hessian_vector_product_in_every_namespace(xp_name, case_id):
    name, logits, target, options = SUBSET[case_id]
    tangent = _tangent(logits.shape, seed=1)
    result = _hvp(namespace(xp_name), name, logits, target, tangent, reduction="mean", **options)
    assert_eps(result, _subset_reference(case_id), "float64", BOUND, "H·t")


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.75, 1.0, 2.0])
def test_hessian_vector_product_finite_at_p_t_one(gamma):
    """0 < γ < 1 at p_t = 1 exactly in float64: finite, where autodiff of the gradient
    gives NaN (u^γ has an infinite derivative multiplying a zero)."""
    logits = np.array([[800.0, 0.0, -5.0], [1e4, -1e4, 0.0], [3.0, 1.0, 0.0]])
    target = np.array([0, 0, 0])
    tangent = _tangent(logits.shape, seed=2)
    for name, options in (
        ("focal_loss", {"gamma": gamma}),
        ("focal_loss", {"gamma": gamma, "label_smoothing": 0.1}),
    ):
        result = _hvp(np, name, logits, target, tangent, reduction="none", **options)
        assert np.all(np.isfinite(result))
        _, reference = oracles.MPMATH[name](
            logits, target, reduction="none", tangent=tangent, **options
        )
        assert_eps(result, reference, "float64", BOUND, name)
    x = np.array([800.0, -800.0, 1e4, -1e4, 40.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    result = _hvp(np, "sigmoid_focal_loss", x, y, np.ones(5), gamma=gamma, reduction="none")
    assert np.all(np.isfinite(result))
    _, reference = oracles.mp_sigmoid_focal_loss(
        x, y, gamma=gamma, reduction="none", tangent=np.ones(5)
    )
    assert_eps(result, reference, "float64", BOUND, "sigmoid focal")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["focal_loss", "binary_cross_entropy"])
def test_directional_derivative(name, reduction):
    """⟨G, t⟩ per loss element (all elements for "mean"/"sum"), from the oracle's G."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 3, 4))
    if name == "focal_loss":
        target = rng.integers(0, 3, size=(2, 4))
        options = {"axis": 1, "gamma": 1.5}
    else:
        target = rng.uniform(size=(2, 3, 4))
        options = {}
    tangent = _tangent(logits.shape, seed=4)
    prepared = _core.PREPARE[name](logits, target, reduction=reduction, **options)
    _, gradient = _core.loss_value_and_grad(prepared, logits.dtype)
    result = second_order.directional_derivative(prepared, gradient, tangent)
    _, ref_gradient = oracles.MPMATH[name](logits, target, reduction=reduction, **options)
    product = ref_gradient * tangent
    if reduction != "none":
        expected = np.sum(product)
    elif name == "focal_loss":
        expected = np.sum(product, axis=1)
    else:
        expected = product
    assert np.shape(result) == np.shape(expected)
    assert_eps(result, expected, "float64", BOUND, "directional derivative")
