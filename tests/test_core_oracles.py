"""The oracles checked on their own: against hand-worked values, against mpmath's numerical
differentiation, and against each other. Nothing here touches multiloss."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import oracles
import pytest
from backends import assert_eps


def test_hand_worked_values():
    # log 2 for a uniform two-class row, and for BCE at x = 0.
    assert oracles.np_cross_entropy(np.zeros((1, 2)), np.array([1]))[0] == pytest.approx(
        math.log(2), rel=1e-15
    )
    assert oracles.mp_binary_cross_entropy(np.array([0.0]), np.array([1.0]))[0] == pytest.approx(
        math.log(2), rel=1e-15
    )
    # Lin et al.: γ = 2, p_t = 0.9 → 0.01 · (-log 0.9)
    logits = np.log(np.array([[0.9, 0.1]]))
    loss, _ = oracles.mp_focal_loss(logits, np.array([0]), gamma=2.0)
    assert loss == pytest.approx(0.01 * -math.log(0.9), rel=1e-14)
    # sigmoid focal at x = 0, y = 1, no α: 0.5² · log 2
    loss, _ = oracles.np_sigmoid_focal_loss(np.array([0.0]), np.array([1.0]), alpha=None)
    assert loss == pytest.approx(0.25 * math.log(2), rel=1e-15)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0, 2.0, 5.0])
def test_mp_softmax_gradient_matches_mpmath_diff(gamma):
    """The hand-derived gradient formula of the oracle against mpmath's own differentiation."""
    with mpmath.workdps(oracles.DPS):
        z = [mpmath.mpf(v) for v in (1.5, -0.25, 3.0, 0.0)]
        # a soft, weighted target: every coefficient differs
        c = [mpmath.mpf(v) for v in (0.1, 0.2, 0.6, 0.3)]
        _, grad = oracles.mp_softmax_row(z, c, gamma)
        for j in range(len(z)):

            def loss_of(value, j=j):
                moved = list(z)
                moved[j] = value
                return oracles.mp_softmax_row(moved, c, gamma)[0]

            numeric = mpmath.diff(loss_of, z[j])
            assert abs(numeric - grad[j]) < mpmath.mpf(10) ** -30


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("x", [-3.0, 0.2, 7.0])
def test_mp_sigmoid_gradient_matches_mpmath_diff(x, y, gamma):
    with mpmath.workdps(oracles.DPS):
        options = {"gamma": gamma, "alpha": 0.3, "weight": 1.5, "pos_weight": 2.5}
        _, grad = oracles.mp_sigmoid_element(mpmath.mpf(x), y, **options)
        numeric = mpmath.diff(lambda v: oracles.mp_sigmoid_element(v, y, **options)[0], x)
        assert abs(numeric - grad) < mpmath.mpf(10) ** -30


def _random_softmax_cases():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(5, 3, 4))
    hard = rng.integers(0, 3, size=(5, 4))
    hard[0, 0] = -100
    soft = np.moveaxis(rng.dirichlet(np.ones(3), size=(5, 4)), -1, 1)
    yield "cross_entropy", logits, hard, {"axis": 1, "weight": [0.5, 2.0, 1.0]}
    yield "cross_entropy", logits, hard, {"axis": 1, "label_smoothing": 0.2, "weight": [1, 2, 3]}
    yield "cross_entropy", logits, soft, {"axis": 1, "label_smoothing": 0.1, "weight": [1, 2, 3]}
    yield "focal_loss", logits, hard, {"axis": 1, "gamma": 0.5, "alpha": 0.25}
    yield "focal_loss", logits, soft, {"axis": 1, "gamma": 3.0, "alpha": [0.2, 0.3, 0.5]}
    yield "focal_loss", logits, hard, {"axis": 1, "gamma": 2.0, "label_smoothing": 0.3}
    x = rng.normal(scale=3.0, size=(4, 3))
    y = rng.uniform(size=(4, 3))
    yield (
        "binary_cross_entropy",
        x,
        y,
        {"weight": rng.uniform(size=(4, 1)), "pos_weight": [1, 2, 3]},
    )
    yield "sigmoid_focal_loss", x, y, {"alpha": 0.4, "gamma": 1.5}
    yield "sigmoid_focal_loss", x, (y > 0.5).astype(float), {"alpha": None, "gamma": 0.0}


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("case", list(_random_softmax_cases()), ids=lambda case: case[0])
def test_numpy_oracle_agrees_with_mpmath_oracle(case, reduction):
    name, logits, target, options = case
    np_loss, np_grad = oracles.NUMPY[name](logits, target, reduction=reduction, **options)
    mp_loss, mp_grad = oracles.MPMATH[name](logits, target, reduction=reduction, **options)
    assert_eps(np_loss, mp_loss, "float64", 64, "loss")
    assert_eps(np_grad, mp_grad, "float64", 64, "grad")


def test_oracle_mean_over_nothing():
    logits = np.ones((2, 3))
    target = np.array([-100, -100])
    for oracle in (oracles.np_focal_loss, oracles.mp_cross_entropy):
        loss, grad = oracle(logits, target)
        assert loss == 0.0
        assert np.all(grad == 0)
