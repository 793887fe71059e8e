"""``multiloss.inverse_frequency_weights`` and ``multiloss.class_balanced_weights`` against
the formulas written here (scikit-learn's "balanced"; Cui et al. 2019 in mpmath), in every
backend, with the bad-input cases of docs/semantics.md."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from backends import asarray, to_numpy

import multiloss

COUNTS = [5000, 400, 30, 2, 1]


def _naive_inverse_frequency(counts):
    n, c = sum(counts), len(counts)
    return [n / (c * k) if k else 0.0 for k in counts]


def _mp_class_balanced(counts, beta):
    """(1 - β) / (1 - β^n) in 50-digit arithmetic, normalised to sum to C (0 for n = 0)."""
    mpmath.mp.dps = 50
    b = mpmath.mpf(beta)
    raw = [(1 - b) / (1 - b**k) if k else mpmath.mpf(0) for k in counts]
    total = sum(raw)
    return [float(len(counts) * w / total) for w in raw]


def test_inverse_frequency_is_scikit_learns_balanced(xp):
    weights = multiloss.inverse_frequency_weights(asarray(xp, np.array(COUNTS)))
    np.testing.assert_allclose(to_numpy(weights), _naive_inverse_frequency(COUNTS), rtol=1e-6)
    # every class then carries the same total weight n / C
    np.testing.assert_allclose(to_numpy(weights) * COUNTS, sum(COUNTS) / len(COUNTS), rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99, 0.9999, 0.999999])
def test_class_balanced_against_mpmath(beta):
    weights = multiloss.class_balanced_weights(np.array(COUNTS), beta=beta)
    assert weights.dtype == np.float64
    expected = [1.0] * len(COUNTS) if beta == 0 else _mp_class_balanced(COUNTS, beta)
    np.testing.assert_allclose(weights, expected, rtol=4 * np.finfo(np.float64).eps)
    assert abs(float(weights.sum()) - len(COUNTS)) < 1e-12


def test_class_balanced_tends_to_the_inverse_frequency_as_beta_tends_to_one():
    near_one = multiloss.class_balanced_weights(np.array(COUNTS), beta=1 - 1e-12)
    inverse = np.asarray(_naive_inverse_frequency(COUNTS))
    np.testing.assert_allclose(near_one, inverse * len(COUNTS) / inverse.sum(), rtol=1e-6)


def test_a_class_without_samples_weighs_zero(xp):
    counts = asarray(xp, np.array([3, 0, 7]))
    for weights in (
        multiloss.inverse_frequency_weights(counts),
        multiloss.class_balanced_weights(counts, beta=0.9),
    ):
        values = to_numpy(weights)
        assert values[1] == 0.0 and np.all(np.isfinite(values))
    balanced = to_numpy(multiloss.class_balanced_weights(counts, beta=0.9))
    assert abs(balanced.sum() - 3.0) < 1e-5  # normalised over all C classes


def test_weights_come_back_in_the_counts_backend_and_feed_a_loss():
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    counts = torch.tensor([30, 3, 1])
    weight = multiloss.class_balanced_weights(counts, beta=0.99)
    assert isinstance(weight, torch.Tensor) and weight.dtype == torch.float32
    logits, target = torch.zeros(4, 3), torch.tensor([0, 1, 2, 1])
    loss = mt.cross_entropy(logits, target, weight=weight)
    assert float(loss) == pytest.approx(math.log(3), rel=1e-6)  # uniform logits: log C
    assert isinstance(multiloss.inverse_frequency_weights([2, 1]), np.ndarray)


def test_jax_weights_under_jit():
    jax = pytest.importorskip("jax")
    counts = jax.numpy.array(COUNTS)
    jitted = jax.jit(lambda c: multiloss.class_balanced_weights(c, beta=0.99))(counts)
    eager = multiloss.class_balanced_weights(np.array(COUNTS), beta=0.99)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-12)


@pytest.mark.parametrize(
    ("counts", "error", "match"),
    [
        ([3, -1, 2], ValueError, r"counts must be non-negative integers; got \[3, -1, 2\]"),
        (np.array([3.0, 1.5]), ValueError, "counts must be non-negative integers"),
        (np.array([3.0, np.nan]), ValueError, "counts must be non-negative integers"),
        ([0, 0], ValueError, "at least one sample"),
        (np.zeros((2, 2), dtype=int), ValueError, r"1-d .* shape \(2, 2\)"),
        (np.array([], dtype=int), ValueError, r"1-d .* shape \(0,\)"),
        (np.array([True, False]), TypeError, "counts must hold non-negative integers"),
        ("abc", TypeError, "counts must be an array"),
    ],
)
def test_bad_counts_are_refused(counts, error, match):
    for function in (multiloss.inverse_frequency_weights, multiloss.class_balanced_weights):
        with pytest.raises(error, match=match):
            function(counts)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan, math.inf])
def test_beta_outside_zero_one_is_refused(beta):
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\) and not NaN; got"):
        multiloss.class_balanced_weights([3, 1], beta=beta)
    with pytest.raises(TypeError, match="beta must be a real number"):
        multiloss.class_balanced_weights([3, 1], beta="0.9")
