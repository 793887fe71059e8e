"""Documented values at the edges (docs/math.md: "Stable evaluation", "The γ < 1 case",
"Reductions"; docs/semantics.md: "Bad input"), in every namespace."""

from __future__ import annotations

import math

import numpy as np
import oracles
import pytest
from backends import (
    EPS,
    asarray,
    assert_eps,
    dtype_name,
    namespace,
    run_core,
    run_numpy,
    to_numpy,
)
from losses import ALL, SOFTMAX, class_weight, has_class_axis

# ----------------------------------------------------------------------------- worked example


@pytest.mark.parametrize(
    ("p_t", "factor", "loss"),
    [(0.9, 0.01, 1.054e-3), (0.6, 0.16, 8.17e-2)],
)
def test_worked_example(xp, p_t, factor, loss):
    """γ = 2: p_t = 0.9 → (1-p_t)^γ = 0.01, loss 1.054e-3; p_t = 0.6 → 0.16, 8.17e-2."""
    logits = np.log(np.array([[p_t, 1.0 - p_t]]))
    target = np.array([0])
    focal, _ = run_numpy(xp, "focal_loss", logits, target, gamma=2.0)
    ce, _ = run_numpy(xp, "cross_entropy", logits, target)
    assert float(ce) == pytest.approx(-math.log(p_t), rel=1e-14)
    assert float(focal) / float(ce) == pytest.approx(factor, rel=1e-12)
    assert float(focal) == pytest.approx(loss, rel=5e-4)  # the 4 digits quoted
    assert float(focal) == pytest.approx(factor * -math.log(p_t), rel=1e-14)


def test_gamma_zero_is_cross_entropy_exactly(xp):
    """γ = 0 without alpha gives cross-entropy exactly (same bits), loss and gradient."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(6, 4))
    target = np.array([0, 1, 2, 3, -100, 1])
    for reduction in ("none", "mean"):
        for smoothing in (0.0, 0.2):
            options = {"reduction": reduction, "label_smoothing": smoothing}
            focal = run_numpy(xp, "focal_loss", logits, target, gamma=0.0, **options)
            ce = run_numpy(xp, "cross_entropy", logits, target, **options)
            np.testing.assert_array_equal(focal[0], ce[0])
            np.testing.assert_array_equal(focal[1], ce[1])
            ref = oracles.np_cross_entropy(logits, target, **options)
            assert_eps(focal[0], ref[0], "float64", 4, "loss")


# ----------------------------------------------------------------------------- mean over nothing


@pytest.mark.parametrize("name", SOFTMAX)
def test_mean_over_all_ignored_is_zero(xp, name):
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    for ignore_index, target in ((-100, [-100, -100]), (1, [1, 1]), (255, [255, 255])):
        loss, grad = run_numpy(
            xp, name, logits, np.array(target), ignore_index=ignore_index, reduction="mean"
        )
        assert float(loss) == 0.0 and not math.isnan(float(loss))
        assert np.all(grad == 0)


@pytest.mark.parametrize("name", SOFTMAX)
def test_weighted_mean_with_zero_weight_sum_is_zero(xp, name):
    """Σ w_{y_i} = 0 (every target's class has weight 0): also a mean over nothing."""
    key = class_weight(name)
    loss, grad = run_numpy(
        xp, name, np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([1, 1]), **{key: [1.0, 0.0]}
    )
    assert float(loss) == 0.0
    assert np.all(grad == 0)


@pytest.mark.parametrize(
    ("name", "logits_shape", "target_shape", "target_kind"),
    [
        ("cross_entropy", (0, 3), (0,), "indices"),
        ("focal_loss", (0, 3), (0,), "indices"),
        ("cross_entropy", (0, 3, 2, 2), (0, 2, 2), "indices"),
        ("cross_entropy", (0, 3), (0, 3), "probabilities"),
        ("focal_loss", (0, 3), (0, 3), "probabilities"),
        ("binary_cross_entropy", (0, 3), (0, 3), "probabilities"),
        ("sigmoid_focal_loss", (0,), (0,), "probabilities"),
    ],
)
def test_empty_batch(xp, name, logits_shape, target_shape, target_kind):
    """N = 0: "mean" is 0.0 with a zero (empty) gradient, "sum" is 0, "none" is empty."""
    dtype = np.int64 if target_kind == "indices" else np.float64
    logits, target = np.zeros(logits_shape), np.zeros(target_shape, dtype=dtype)
    axis = {"axis": 1} if has_class_axis(name) else {}
    for reduction in ("mean", "sum"):
        loss, grad = run_numpy(xp, name, logits, target, reduction=reduction, **axis)
        assert float(loss) == 0.0
        assert grad.shape == logits_shape
    loss, grad = run_numpy(xp, name, logits, target, reduction="none", **axis)
    assert loss.shape == (
        logits_shape if not has_class_axis(name) else logits_shape[:1] + logits_shape[2:]
    )


# ----------------------------------------------------------------------------- infinities, NaN


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_minus_inf_at_non_target_logit(xp, gamma):
    """A -inf logit off the target: finite loss, zero gradient there, and the rest as if
    that class did not exist."""
    logits = np.array([[2.0, -np.inf, 0.5, -1.0], [-np.inf, 0.0, -np.inf, 3.0]])
    target = np.array([0, 3])
    for name in SOFTMAX:
        options = {"gamma": gamma} if name == "focal_loss" else {}
        for reduction in ("none", "mean"):
            loss, grad = run_numpy(xp, name, logits, target, reduction=reduction, **options)
            assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
            assert grad[0, 1] == 0 and grad[1, 0] == 0 and grad[1, 2] == 0
            # the same rows without the -inf classes
            first = oracles.NUMPY[name](
                logits[:1, [0, 2, 3]], np.array([0]), reduction="none", **options
            )
            second = oracles.NUMPY[name](
                logits[1:, [1, 3]], np.array([1]), reduction="none", **options
            )
            ref_loss = np.concatenate([first[0], second[0]])
            if reduction == "mean":
                ref_loss = ref_loss.mean()
            assert_eps(loss, ref_loss, "float64", 4, name)
            scale = 0.5 if reduction == "mean" else 1.0
            assert_eps(grad[0, [0, 2, 3]], scale * first[1][0], "float64", 4, name)
            assert_eps(grad[1, [1, 3]], scale * second[1][0], "float64", 4, name)


@pytest.mark.parametrize("name", SOFTMAX)
def test_minus_inf_at_target_logit_is_infinite(xp, name):
    logits = np.array([[-np.inf, 1.0, 2.0], [0.0, 1.0, 2.0]])
    loss, _ = run_numpy(xp, name, logits, np.array([0, 1]), reduction="none")
    assert loss[0] == np.inf
    assert np.isfinite(loss[1])
    loss, _ = run_numpy(xp, name, logits, np.array([0, 1]), reduction="mean")
    assert float(loss) == np.inf


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", ALL)
def test_non_finite_logit_poisons_only_its_row(xp, name, bad):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3))
    logits[2, 1] = bad
    if has_class_axis(name):
        target = np.array([0, 1, 2, 0])
    else:
        target = (rng.uniform(size=(4, 3)) < 0.5).astype(np.float64)
        target[2, 1] = 0.5  # a soft target, so that neither BCE term vanishes at ±inf
    loss, grad = run_numpy(xp, name, logits, target, reduction="none")
    ref_loss, ref_grad = oracles.NUMPY[name](
        np.delete(logits, 2, axis=0), np.delete(target, 2, axis=0), reduction="none"
    )
    if has_class_axis(name):
        assert np.isnan(loss[2]) or np.isinf(loss[2])
        assert_eps(np.delete(loss, 2, axis=0), ref_loss, "float64", 4, "other rows")
    else:
        # elementwise losses: only the element itself
        if name == "asymmetric_loss" and bad == np.inf:
            # the default clip 0.05 bounds the negative term at p = 1: 1 - p_m = clip, so
            # the element is (1 - y) · (1 - clip)^γ- · -log(clip), finite
            assert loss[2, 1] == pytest.approx(0.5 * 0.95**4 * -np.log(0.05), rel=1e-14)
        else:
            assert not np.isfinite(loss[2, 1])
        assert_eps(np.delete(loss, 2, axis=0), ref_loss, "float64", 4, "other rows")
        keep = [0, 2]
        same_row = oracles.NUMPY[name](logits[2, keep], target[2, keep], reduction="none")
        assert_eps(loss[2, keep], same_row[0], "float64", 4, "same row")
        assert_eps(grad[2, keep], same_row[1], "float64", 4, "same row")
    assert_eps(np.delete(grad, 2, axis=0), ref_grad, "float64", 4, "other rows")


# ----------------------------------------------------------------------------- saturation


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.75])
def test_gamma_below_one_at_p_t_one(xp, gamma):
    """p_t = 1 exactly in float64 (ℓ_t = 0): finite loss 0 and a finite gradient, where
    the pow(1 - p, γ - 1) form gives NaN. C = 1 is the same situation."""
    for logits, target in (
        (np.array([[800.0, 0.0, -5.0], [1e4, -1e4, 0.0]]), np.array([0, 0])),
        (np.array([[3.0], [-2.0]]), np.array([0, 0])),
    ):
        loss, grad = run_numpy(xp, "focal_loss", logits, target, gamma=gamma, reduction="none")
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        ref_loss, ref_grad = oracles.mp_focal_loss(logits, target, gamma=gamma, reduction="none")
        assert_eps(loss, ref_loss, "float64", 4, "loss")
        assert_eps(grad, ref_grad, "float64", 4, "grad")
    # sigmoid focal at saturation: 1 - p_t = 0 in float64
    x = np.array([1e4, -1e4, 800.0, -800.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    loss, grad = run_numpy(xp, "sigmoid_focal_loss", x, y, gamma=gamma, reduction="none")
    assert np.all(loss == 0) and np.all(grad == 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ALL)
def test_huge_logits_are_finite(xp, name, dtype):
    if has_class_axis(name):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4]])
        target = np.array([0, 0, 2])
    else:
        logits = np.array([[1e4, -1e4], [-1e4, 1e4]])
        target = np.array([[1.0, 1.0], [0.3, 0.0]])
    loss, grad = run_numpy(xp, name, logits, target, dtype=dtype, reduction="none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    ref_loss, ref_grad = oracles.MPMATH[name](logits, target, reduction="none")
    assert_eps(loss, ref_loss, dtype, 4, "loss")
    assert_eps(grad, ref_grad, dtype, 4, "grad")


# ----------------------------------------------------------------------------- 16-bit inputs

# array-api-strict has no 16-bit float, NumPy no bfloat16
SIXTEEN_BIT = [("numpy", "float16")] + [
    (xp_name, dtype) for xp_name in ("torch", "jax") for dtype in ("float16", "bfloat16")
]


@pytest.mark.parametrize(("xp_name", "dtype"), SIXTEEN_BIT)
@pytest.mark.parametrize("name", ALL)
def test_16_bit_mean_beyond_float16_range(xp_name, name, dtype):
    """A loss sum above 65504 still gives a finite mean in the 16-bit input dtype."""
    xp = namespace(xp_name)
    count = 10_000
    if has_class_axis(name):
        logits = np.tile([0.0, 40.0], (count, 1))
        target = np.zeros(count, dtype=np.int64)
    else:
        logits = np.full((count,), -40.0)
        target = np.ones(count)
    loss, grad = run_core(name, asarray(xp, logits, dtype), asarray(xp, target))
    assert dtype_name(loss) == dtype and dtype_name(grad) == dtype
    ref_loss, ref_grad = oracles.NUMPY[name](logits, target)
    assert float(np.sum(oracles.NUMPY[name](logits, target, reduction="none")[0])) > 65504
    assert np.isfinite(float(to_numpy(loss)))
    assert_eps(to_numpy(loss), ref_loss, dtype, 1, "loss")
    assert_eps(to_numpy(grad), ref_grad, dtype, 1, "grad")


@pytest.mark.parametrize(("xp_name", "dtype"), SIXTEEN_BIT)
@pytest.mark.parametrize("name", ALL)
def test_16_bit_computed_in_float32(xp_name, name, dtype):
    """Computed in float32 and returned in the input dtype: every entry is the exact value
    (on the 16-bit inputs) rounded once to the 16-bit dtype, give or take float32's own
    error. A computation in 16 bits misses that by several ulps (checked: with the core's
    compute dtype patched to the input dtype, this test fails)."""
    xp = namespace(xp_name)
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=6.0, size=(64, 8))
    if has_class_axis(name):
        target = rng.integers(0, 8, size=64)
        options = {"gamma": 0.5} if name == "focal_loss" else {"label_smoothing": 0.1}
    else:
        target = (rng.uniform(size=(64, 8)) < 0.5).astype(np.float64)
        options = {"pos_weight": [1.0, 2.0] * 4} if name == "binary_cross_entropy" else {}
    moved_logits = asarray(xp, logits, dtype)
    rounded = to_numpy(moved_logits).astype(np.float64)
    for reduction in ("none", "mean"):
        loss, grad = run_core(
            name, moved_logits, asarray(xp, target), reduction=reduction, **options
        )
        assert dtype_name(loss) == dtype and dtype_name(grad) == dtype
        ref_loss, ref_grad = oracles.NUMPY[name](rounded, target, reduction=reduction, **options)
        _assert_rounded_once(to_numpy(loss), ref_loss, dtype, "loss")
        _assert_rounded_once(to_numpy(grad), ref_grad, dtype, "grad")


def _assert_rounded_once(actual, reference, dtype, what):
    """|actual - reference| ≤ half an ulp of `dtype` at the reference, plus float32's
    error (16 eps of float32 · (1 + |reference|))."""
    mantissa = {"float16": 10, "bfloat16": 7}[dtype]
    smallest_normal = {"float16": 2.0**-14, "bfloat16": 2.0**-126}[dtype]
    reference = np.asarray(reference, dtype=np.float64)
    magnitude = np.maximum(np.abs(reference), smallest_normal)
    ulp = 2.0 ** (np.floor(np.log2(magnitude)) - mantissa)
    allowed = 0.5 * ulp + 16 * EPS["float32"] * (1.0 + np.abs(reference))
    error = np.abs(np.asarray(actual, dtype=np.float64) - reference)
    worst = np.max(error / allowed)
    assert worst <= 1.0, f"{what}: {worst:.3g} × (half an ulp of {dtype} + float32 error)"


# ----------------------------------------------------------------------------- shift invariance


@pytest.mark.parametrize(("dtype", "bound"), [("float64", 4), ("float32", 4)])
@pytest.mark.parametrize("name", SOFTMAX)
def test_shift_invariance_at_large_offset(xp, name, dtype, bound):
    """Logits + 1e6: the loss is the oracle's on the logits as they were rounded, i.e.
    (z + 1e6) - 1e6 (exact by Sterbenz), to the same few eps as without the offset."""
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=3.0, size=(8, 5)).astype(dtype)
    target = rng.integers(0, 5, size=8)
    shifted = logits + np.asarray(1e6, dtype=dtype)
    seen = (shifted - np.asarray(1e6, dtype=dtype)).astype(np.float64)
    options = {"gamma": 2.0} if name == "focal_loss" else {"label_smoothing": 0.1}
    loss, grad = run_numpy(xp, name, shifted, target, dtype=dtype, reduction="none", **options)
    ref_loss, ref_grad = oracles.MPMATH[name](seen, target, reduction="none", **options)
    assert_eps(loss, ref_loss, dtype, bound, "loss")
    assert_eps(grad, ref_grad, dtype, bound, "grad")
    # what adding 1e6 did to the logits themselves: at most half an ulp of 1e6 each
    assert np.max(np.abs(seen - logits.astype(np.float64))) <= 1e6 * EPS[dtype]


# ----------------------------------------------------------------------------- unchecked labels


@pytest.mark.parametrize("name", SOFTMAX)
def test_unchecked_out_of_range_index_gives_nan(xp, name):
    """Where label values cannot be checked (check_values=False, as under jax.jit), an
    out-of-range index makes its element NaN: never a silent clamp or wrap to a class."""
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4, 3))
    target = np.array([0, 7, -5, 2])
    for options in ({}, {"label_smoothing": 0.1}, {class_weight(name): [1.0, 2.0, 3.0]}):
        loss, grad = run_numpy(
            xp, name, logits, target, reduction="none", check_values=False, **options
        )
        assert np.isnan(loss[1]) and np.isnan(loss[2])
        assert np.all(np.isnan(grad[1:3]))
        ref_loss, ref_grad = oracles.NUMPY[name](
            logits[[0, 3]], target[[0, 3]], reduction="none", **options
        )
        assert_eps(loss[[0, 3]], ref_loss, "float64", 4, "valid rows")
        assert_eps(grad[[0, 3]], ref_grad, "float64", 4, "valid rows")
        loss, _ = run_numpy(xp, name, logits, target, check_values=False, **options)
        assert np.isnan(loss)


def test_unchecked_out_of_range_index_gives_nan_under_jit():
    jnp = pytest.importorskip("jax.numpy")
    logits = np.random.default_rng(5).normal(size=(4, 3))
    loss, _ = run_numpy(jnp, "focal_loss", logits, np.array([0, 3, 1, 2]), jit=True,
                        reduction="none")  # fmt: skip
    assert np.isnan(loss[1]) and not np.any(np.isnan(loss[[0, 2, 3]]))
