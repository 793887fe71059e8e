"""Values and gradients of the four losses, every option, against the float64 oracle,
in every namespace of the ``xp`` fixture (the core called directly), and under ``jax.jit``.
"""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from backends import XP_NAMES, assert_eps, dtype_name, namespace, run_core, run_numpy, to_numpy
from backends import asarray as move
from cases import ALL_CASES, REDUCTIONS
from losses import SOFTMAX

# Measured worst error against the float64 oracle over these cases, all namespaces and
# reductions: float64 1.6 eps (loss) / 1.2 eps (gradient); float32 (the oracle evaluated on
# the float32-rounded inputs) 1.0 / 1.4 eps. The bound leaves room for the naive oracle's
# own rounding and other summation orders.
BOUND = {"float64": 8, "float32": 8}


def _oracle(name, logits, target, reduction, options, dtype):
    """The float64 oracle on the inputs as the core sees them in `dtype`."""
    logits = logits.astype(dtype).astype(np.float64)
    if np.issubdtype(np.asarray(target).dtype, np.floating):
        target = np.asarray(target).astype(dtype).astype(np.float64)
    return oracles.NUMPY[name](logits, target, reduction=reduction, **options)


def _check(xp, case, reduction, dtype):
    name, logits, target, options = case
    loss, grad = run_numpy(xp, name, logits, target, dtype=dtype, reduction=reduction, **options)
    ref_loss, ref_grad = _oracle(name, logits, target, reduction, options, dtype)
    assert loss.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    assert loss.shape == np.shape(ref_loss)
    assert grad.shape == logits.shape
    assert_eps(loss, ref_loss, dtype, BOUND[dtype], "loss")
    assert_eps(grad, ref_grad, dtype, BOUND[dtype], "grad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_float64_against_oracle(xp, case, reduction):
    _check(xp, case, reduction, "float64")


def _float32_params():
    """Every case in every namespace, except that JAX (whose eager mode compiles each
    operation per shape, seconds each on a small machine) takes the 2-d cases only."""
    for case in ALL_CASES:
        for name in XP_NAMES:
            if name != "jax" or case.values[0][1].shape == (6, 4):
                yield pytest.param(name, case.values[0], id=f"{name}-{case.id}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("xp_name", "case"), list(_float32_params()))
def test_float32_against_oracle(xp_name, case, reduction):
    _check(namespace(xp_name), case, reduction, "float32")


JIT_CASES = {
    # one case per option, each compiled once (a compilation costs ~0.3 s here)
    "cross_entropy-kdim-axis1": "none",
    "cross_entropy-2d-axis0": "sum",
    "cross_entropy-unbatched": "mean",
    "cross_entropy-weight-array": "mean",
    "cross_entropy-ignore-in-range": "mean",
    "cross_entropy-kdim-weight-smoothing": "mean",
    "cross_entropy-probabilities-weight-smoothing": "none",
    "focal_loss-gamma0.25": "none",
    "focal_loss-kdim-axis-1": "mean",
    "focal_loss-alpha-scalar": "sum",
    "focal_loss-alpha-array": "mean",
    "focal_loss-ignore-in-range": "none",
    "focal_loss-smoothing-alpha-gamma0.5": "mean",
    "focal_loss-probabilities-alpha-smoothing": "none",
    "focal_loss-one-class": "mean",
    "binary_cross_entropy-bool-target": "none",
    "binary_cross_entropy-3d-pos-weight-weight": "mean",
    "binary_cross_entropy-0d": "none",
    "sigmoid_focal_loss-alpha-none": "sum",
    "sigmoid_focal_loss-gamma0.5": "none",
    "sigmoid_focal_loss-soft": "mean",
}


def _jit_params():
    for case in ALL_CASES:
        if case.id in JIT_CASES:
            reduction = JIT_CASES[case.id]
            yield pytest.param(case.values[0], reduction, id=f"{case.id}-{reduction}")


@pytest.mark.parametrize(("case", "reduction"), list(_jit_params()))
def test_jax_jit_against_oracle(case, reduction):
    """The JAX path also runs jitted (value checks off, shapes and options static)."""
    jnp = pytest.importorskip("jax.numpy")
    name, logits, target, options = case
    loss, grad = run_numpy(jnp, name, logits, target, jit=True, reduction=reduction, **options)
    ref_loss, ref_grad = oracles.NUMPY[name](logits, target, reduction=reduction, **options)
    assert_eps(loss, ref_loss, "float64", BOUND["float64"], "loss")
    assert_eps(grad, ref_grad, "float64", BOUND["float64"], "grad")


@pytest.mark.parametrize("name", SOFTMAX)
def test_class_index_dtypes(xp, name):
    """Any integer dtype of class indices gives the same result (int8 … uint8 … int64)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 4))
    target = rng.integers(0, 4, size=6)
    ref_loss, ref_grad = oracles.NUMPY[name](logits, target, reduction="none")
    for int_dtype in ("int8", "uint8", "int16", "int32", "int64"):
        loss, grad = run_core(name, move(xp, logits), move(xp, target, int_dtype), reduction="none")
        assert_eps(to_numpy(loss), ref_loss, "float64", 4, int_dtype)
        assert_eps(to_numpy(grad), ref_grad, "float64", 4, int_dtype)


def test_result_is_an_array_of_the_input_namespace(xp):
    logits = move(xp, np.zeros((6, 4)), "float32")
    loss, grad = run_core("focal_loss", logits, move(xp, np.array([0, 2, 1, 3, 3, 0])))
    for result in (loss, grad):
        # NumPy reductions give NumPy scalars (np.float32), which are 0-d arrays in all
        # but type; every other namespace gives its own array type.
        if xp is np:
            assert isinstance(result, (np.ndarray, np.generic))
        else:
            assert type(result) is type(logits)
        assert dtype_name(result) == "float32"
    assert tuple(loss.shape) == ()
    assert tuple(grad.shape) == (6, 4)


def test_weights_given_as_arrays_of_the_namespace(xp):
    """weight / alpha / pos_weight as arrays of the logits' backend (float or integer)."""
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 4))
    target = rng.integers(0, 4, size=6)
    weight = np.array([1, 3, 2, 0])
    for name, key in (("cross_entropy", "weight"), ("focal_loss", "alpha")):
        loss, grad = run_core(
            name, move(xp, logits), move(xp, target), **{key: move(xp, weight, "int64")}
        )
        ref_loss, ref_grad = oracles.NUMPY[name](logits, target, **{key: weight})
        assert_eps(to_numpy(loss), ref_loss, "float64", 4, name)
        assert_eps(to_numpy(grad), ref_grad, "float64", 4, name)
    y = (rng.uniform(size=(6, 4)) < 0.5).astype(np.float64)
    loss, grad = run_core(
        "binary_cross_entropy",
        move(xp, logits),
        move(xp, y),
        pos_weight=move(xp, weight, "float32"),
        weight=move(xp, np.full((6, 1), 0.5)),
    )
    ref_loss, ref_grad = oracles.np_binary_cross_entropy(
        logits, y, pos_weight=weight, weight=np.full((6, 1), 0.5)
    )
    assert_eps(to_numpy(loss), ref_loss, "float64", 4, "bce")
    assert_eps(to_numpy(grad), ref_grad, "float64", 4, "bce")
