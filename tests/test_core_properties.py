"""Hypothesis properties of the math (docs/math.md: the softmax losses, their gradient,
"Stable evaluation", "Reductions"), on the core through NumPy (float64).

The ``ci`` profile (conftest.py) is derandomised; ``HYPOTHESIS_PROFILE=long`` runs more.
"""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from backends import run_core
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from losses import ALL, SIGMOID, SOFTMAX, has_class_axis

weight_values = st.just(0.0) | st.floats(1e-3, 4.0)
gammas = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 5.0]) | st.floats(0.0, 6.0)


def _floats(bound: float):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def softmax_problems(draw, bound: float = 50.0, max_rows: int = 6, max_classes: int = 6):
    """(loss name, logits (N, C), integer target, options) with random options."""
    rows = draw(st.integers(1, max_rows))
    classes = draw(st.integers(1, max_classes))
    logits = draw(hnp.arrays(np.float64, (rows, classes), elements=_floats(bound)))
    target = draw(hnp.arrays(np.int64, (rows,), elements=st.integers(0, classes - 1)))
    name = draw(st.sampled_from(SOFTMAX))
    weights = draw(st.none() | st.lists(st.floats(0.0, 4.0), min_size=classes, max_size=classes))
    options = {"label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))}
    if name == "cross_entropy":
        options["weight"] = weights
    else:
        options["gamma"] = draw(gammas)
        options["alpha"] = draw(st.one_of(st.just(weights), st.floats(0.0, 1.0)))
    if name == "poly_loss":
        options["epsilon"] = draw(st.sampled_from([-1.0, -0.5, 0.0, 1.0, 2.0]) | st.floats(-1, 4))
    if name != "poly_loss" or options["epsilon"] >= 0:  # a negative ε may cancel a little
        options["z_loss"] = draw(st.sampled_from([0.0, 0.0, 1e-4, 0.1]))
    options["softcap"] = draw(st.sampled_from([None, None, 5.0, 30.0]))
    return name, logits, target, options


@st.composite
def sigmoid_problems(draw, bound: float = 50.0):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    logits = draw(hnp.arrays(np.float64, shape, elements=_floats(bound)))
    target = draw(
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0]) | st.floats(0, 1))
    )
    name = draw(st.sampled_from(SIGMOID))
    if name == "binary_cross_entropy":
        last = shape[-1]
        options = {
            "pos_weight": draw(st.none() | st.lists(weight_values, min_size=last, max_size=last)),
            "weight": draw(st.none() | hnp.arrays(np.float64, shape, elements=weight_values)),
        }
    elif name == "asymmetric_loss":
        options = {
            "gamma_pos": draw(gammas),
            "gamma_neg": draw(gammas),
            "clip": draw(st.sampled_from([0.0, 0.05]) | st.floats(0.0, 0.5)),
        }
    elif name == "varifocal_loss":
        options = {"gamma": draw(gammas), "alpha": draw(st.floats(0.0, 1.0))}
    elif name == "quality_focal_loss":
        # β ≥ 1: below, the slope β |y - σ|^(β-1) σσ' is unbounded where σ → y (a cusp that
        # central differences straddle); β < 1 is checked at fixed points instead
        beta = draw(st.sampled_from([1.0, 2.0, 5.0]) | st.floats(1.0, 6.0))
        options = {"beta": beta, "label_smoothing": draw(st.sampled_from([0.0, 0.1]))}
    else:
        options = {"gamma": draw(gammas), "alpha": draw(st.none() | st.floats(0.0, 1.0))}
    return name, logits, target, options


def _shift_invariant(options):
    """The options without z-loss and soft-capping, which make a loss depend on more than
    the differences of a row's logits (lse², c · tanh(z / c)): docs/math.md."""
    return {**options, "z_loss": 0.0, "softcap": None} if "softcap" in options else options


def _floor(name, options):
    """The least loss allowed: 0, and a few ulps below it for PolyLoss with ε < 0, whose
    ε·(1 - p) term cancels most of -log p as p → 1 (the loss is ≥ 0 exactly, its
    rounding a few eps of the terms below it)."""
    return -4 * np.finfo(np.float64).eps if options.get("epsilon", 0) < 0 else 0.0


def _run(name, logits, target, **options):
    return run_core(name, np.asarray(logits), np.asarray(target), **options)


@given(softmax_problems() | sigmoid_problems())
def test_loss_is_non_negative_and_finite(problem):
    """Loss ≥ 0, and no NaN or inf anywhere for finite inputs (γ < 1 included)."""
    name, logits, target, options = problem
    loss, grad = _run(name, logits, target, reduction="none", **options)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(loss >= _floor(name, options))


@given(softmax_problems(bound=1e4) | sigmoid_problems(bound=1e4))
def test_finite_at_large_logits(problem):
    name, logits, target, options = problem
    loss, grad = _run(name, logits, target, reduction="sum", **options)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss >= _floor(name, options) * np.asarray(logits).size


@given(softmax_problems() | sigmoid_problems(), st.sampled_from(["sum", "mean"]))
def test_reductions_agree(problem, reduction):
    """sum = Σ none; mean = Σ none / (count or Σ w_{y_i}), gradients likewise."""
    name, logits, target, options = problem
    none, grad_none = _run(name, logits, target, reduction="none", **options)
    reduced, grad = _run(name, logits, target, reduction=reduction, **options)
    if reduction == "sum":
        denominator = 1.0
    elif name == "cross_entropy" and options.get("weight") is not None:
        denominator = float(np.sum(np.asarray(options["weight"])[target]))
    else:
        denominator = float(np.asarray(none).size)
    expected = np.sum(none) / denominator if denominator else 0.0
    scale = 1.0 / denominator if denominator else 0.0
    np.testing.assert_allclose(reduced, expected, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(grad, grad_none * scale, rtol=1e-13, atol=1e-300)


@given(softmax_problems())
def test_focal_with_gamma_zero_is_cross_entropy(problem):
    """γ = 0 focal with α = w equals cross-entropy with weight = w, per element."""
    _, logits, target, options = problem
    weight = options.get("weight") or options.get("alpha")
    if not isinstance(weight, list):
        weight = None
    smoothing = options["label_smoothing"]
    ce = _run("cross_entropy", logits, target, weight=weight, label_smoothing=smoothing,
              reduction="none")  # fmt: skip
    focal = _run("focal_loss", logits, target, gamma=0.0, alpha=weight,
                 label_smoothing=smoothing, reduction="none")  # fmt: skip
    np.testing.assert_allclose(focal[0], ce[0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(focal[1], ce[1], rtol=1e-15, atol=0)


@given(softmax_problems(), st.floats(-1e3, 1e3))
def test_invariant_to_adding_a_constant_to_a_row(problem, constant):
    name, logits, target, options = problem
    options = _shift_invariant(options)
    row_shift = np.zeros((logits.shape[0], 1))
    row_shift[0] = constant
    moved = logits + row_shift
    base, base_grad = _run(name, logits, target, reduction="none", **options)
    loss, grad = _run(name, moved, target, reduction="none", **options)
    # adding c rounds each logit by up to ulp(|z| + |c|) / 2; the loss moves by at most
    # that times (1 + Σ|c_k|) with Σ|c_k| ≤ max weight ≤ 4 here
    rounding = 2.0**-52 * (np.max(np.abs(moved)) + np.max(np.abs(logits)) + 1.0) * 20
    np.testing.assert_allclose(loss, base, rtol=0, atol=rounding * (1 + np.max(np.abs(base))))
    np.testing.assert_allclose(grad, base_grad, rtol=0, atol=rounding * 4)


@given(softmax_problems())
def test_gradient_rows_sum_to_zero(problem):
    name, logits, target, options = problem
    options = _shift_invariant(options)
    _, grad = _run(name, logits, target, reduction="none", **options)
    row_sums = np.sum(grad, axis=-1)
    # Each entry carries the absolute rounding of its ℓ_k (|ℓ_k| ≤ the row's span, and ℓ_t
    # near 0 is known to ~1 eps absolute, not relative), times the row's largest coefficient.
    span = np.max(logits, axis=-1) - np.min(logits, axis=-1)
    weights = options.get("weight") or options.get("alpha")
    largest = max(weights) if isinstance(weights, list) else 1.0
    scale = (1.0 + np.sum(np.abs(grad), axis=-1)) * (logits.shape[-1] + span) * (1.0 + largest)
    assert np.all(np.abs(row_sums) <= 4 * 2.0**-52 * scale)


@given(softmax_problems(), st.sampled_from(["none", "sum"]))
def test_class_indices_equal_their_one_hot_probabilities(problem, reduction):
    """An integer target and its one-hot probability target give the same loss and gradient
    (reduction "mean" differs by design when CE has weights: Σ w_{y_i} vs N)."""
    name, logits, target, options = problem
    if options.get("weight") is not None:  # the z-loss weighs w_{y_i} for class indices, 1 else
        options = {**options, "z_loss": 0.0}
    one_hot = np.eye(logits.shape[1])[target]
    hard = _run(name, logits, target, reduction=reduction, **options)
    soft = _run(name, logits, one_hot, reduction=reduction, **options)
    np.testing.assert_allclose(soft[0], hard[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(soft[1], hard[1], rtol=1e-13, atol=1e-13)


def _central_differences(name, logits, target, options, step=1e-6):
    numeric = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += step
        down[index] -= step
        f_up = _run(name, up, target, reduction="sum", **options)[0]
        f_down = _run(name, down, target, reduction="sum", **options)[0]
        numeric[index] = (f_up - f_down) / (up[index] - down[index])
    return numeric


@given(softmax_problems(bound=4.0, max_rows=3, max_classes=4) | sigmoid_problems(bound=6.0))
def test_gradient_matches_central_differences(problem):
    name, logits, target, options = problem
    assume(logits.size <= 16)
    _, grad = _run(name, logits, target, reduction="sum", **options)
    numeric = _central_differences(name, logits, target, options)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_gradient_matches_oracle_on_random_problems(name):
    """Not hypothesis: a fixed batch of random problems against the numpy oracle, so
    that a property that holds for a wrong formula (a symmetric error) still fails."""
    rng = np.random.default_rng(9)
    logits = rng.normal(scale=3.0, size=(16, 5))
    target = rng.integers(0, 5, size=16) if has_class_axis(name) else rng.uniform(size=(16, 5))
    loss, grad = _run(name, logits, target, reduction="none")
    ref_loss, ref_grad = oracles.NUMPY[name](logits, target, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-14, atol=1e-15)
