"""The NumPy reference of the fused linear-head losses (multiloss.numpy._linear).

Against an independent float64 oracle: tests/oracles.py's naive softmax losses of the
logits ``x @ W.T + b`` (written from the formulas), with the chain rule through the matmul
written here, ``dX = G W``, ``dW = Gᵀ X``, ``db = Σ_i G_i``; and against central finite
differences of the reference's own value for the gradients with respect to the input, the
weight and the bias.
"""

from __future__ import annotations

import numpy as np
import oracles
import pytest
from backends import assert_close, assert_eps

from multiloss.numpy._linear import (
    linear_cross_entropy,
    linear_cross_entropy_grad,
    linear_cross_entropy_value_and_grad,
    linear_focal_loss,
    linear_focal_loss_grad,
    linear_focal_loss_value_and_grad,
)

RNG = np.random.default_rng(1415)
N, D, V = 9, 4, 6
FUNCTIONS = {
    "cross_entropy": (
        linear_cross_entropy,
        linear_cross_entropy_grad,
        linear_cross_entropy_value_and_grad,
    ),
    "focal_loss": (linear_focal_loss, linear_focal_loss_grad, linear_focal_loss_value_and_grad),
}
ORACLES = {"cross_entropy": oracles.np_cross_entropy_ext, "focal_loss": oracles.np_focal_loss_ext}
WEIGHT = [0.5, 1.0, 2.0, 0.1, 1.5, 0.0]


def _data(shape=(N,), target="index", bias=True):
    x = RNG.normal(size=(*shape, D))
    w = RNG.normal(size=(V, D)) * 0.8
    b = RNG.normal(size=V) * 0.5 if bias else None
    if target == "probability":
        y = RNG.dirichlet(np.ones(V), size=shape)
    else:
        y = RNG.integers(0, V, size=shape)
        y.flat[::4] = -100
    return x, w, b, y


def _oracle(name, x, w, b, y, options):
    """The oracle's loss and logits-gradient G, then the chain rule through x @ W.T + b."""
    options = dict(options)
    normalizer = options.pop("normalizer", None)
    if normalizer is not None:
        options["reduction"] = "sum"
    logits = x @ w.T if b is None else x @ w.T + b
    loss, grad = ORACLES[name](logits, y, **options)
    if normalizer is not None:
        scale = 0.0 if normalizer == 0 else 1.0 / normalizer
        loss, grad = loss * scale, grad * scale
    rows = grad.reshape(-1, V)
    grads = {
        "input": (rows @ w).reshape(x.shape),
        "linear_weight": rows.T @ x.reshape(-1, D),
        "linear_bias": None if b is None else rows.sum(axis=0),
    }
    return np.asarray(loss), grads


def _compare(name, options, x, w, b, y):
    value, grad, value_and_grad = FUNCTIONS[name]
    arguments = (x, w, y)
    expected_loss, expected = _oracle(name, x, w, b, y, options)
    loss = value(*arguments, linear_bias=b, **options)
    grads = grad(*arguments, linear_bias=b, **options)
    both = value_and_grad(*arguments, linear_bias=b, **options)
    assert loss.dtype == np.float64 and loss.shape == np.shape(expected_loss)
    for result_loss, result_grads in ((loss, grads), both):
        assert_eps(result_loss, expected_loss, "float64", 16, f"{name} {options} value")
        assert set(result_grads) == {"input", "linear_weight", "linear_bias"}
        for key, reference in expected.items():
            if reference is None:
                assert result_grads[key] is None
                continue
            assert result_grads[key].shape == reference.shape
            assert_eps(result_grads[key], reference, "float64", 64, f"{name} {options} {key}")


CASES = [
    ("cross_entropy", {}),
    ("cross_entropy", {"reduction": "sum", "weight": WEIGHT}),
    ("cross_entropy", {"reduction": "none", "label_smoothing": 0.2}),
    ("cross_entropy", {"weight": WEIGHT, "label_smoothing": 0.1, "z_loss": 1e-2}),
    ("cross_entropy", {"softcap": 2.0, "z_loss": 1e-3, "ignore_index": 1}),
    ("cross_entropy", {"normalizer": 5.0, "weight": WEIGHT}),
    ("cross_entropy", {"normalizer": 0.0}),
    ("focal_loss", {}),
    ("focal_loss", {"gamma": 0.5, "alpha": 0.25, "reduction": "sum"}),
    ("focal_loss", {"gamma": 1.0, "alpha": WEIGHT, "label_smoothing": 0.1, "reduction": "none"}),
    ("focal_loss", {"gamma": 3.0, "softcap": 3.0, "z_loss": 1e-2, "normalizer": 7}),
]


@pytest.mark.parametrize("layout", ["2d", "3d-no-bias"])
@pytest.mark.parametrize(("name", "options"), CASES)
def test_matches_the_oracle(name, options, layout):
    if layout == "2d":
        x, w, b, y = _data()
    else:
        x, w, b, y = _data(shape=(2, 5), bias=False)
    if "ignore_index" in options:
        y = np.where(y == -100, options["ignore_index"], y)
    _compare(name, options, x, w, b, y)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy", {}),
        ("cross_entropy", {"label_smoothing": 0.1, "z_loss": 1e-3, "reduction": "none"}),
        ("focal_loss", {"gamma": 2.0, "softcap": 2.5, "reduction": "sum"}),
    ],
)
def test_probability_targets(name, options):
    _compare(name, options, *_data(target="probability"))


def test_no_tokens_and_every_token_ignored():
    x, w, b, y = _data(shape=(0,))
    loss, grads = linear_cross_entropy_value_and_grad(x, w, y, linear_bias=b)
    assert float(loss) == 0.0 and grads["input"].shape == (0, D)
    assert not grads["linear_weight"].any() and not grads["linear_bias"].any()
    x, w, b, y = _data()
    y[:] = -100
    loss, grads = linear_focal_loss_value_and_grad(x, w, y, linear_bias=b)
    assert float(loss) == 0.0 and not any(g.any() for g in grads.values())


def _finite_difference(function, array, step=1e-6):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        upper = function()
        array[index] = saved - step
        lower = function()
        array[index] = saved
        grad[index] = (upper - lower) / (2 * step)
    return grad


@pytest.mark.parametrize(
    ("name", "options", "target"),
    [
        ("cross_entropy", {"weight": WEIGHT, "label_smoothing": 0.1, "z_loss": 1e-2}, "index"),
        ("cross_entropy", {"softcap": 2.0, "reduction": "none"}, "probability"),
        ("focal_loss", {"gamma": 0.5, "alpha": 0.25, "normalizer": 3.0}, "index"),
        ("focal_loss", {"gamma": 2.0, "label_smoothing": 0.2, "reduction": "sum"}, "index"),
    ],
)
def test_gradients_match_finite_differences(name, options, target):
    x, w, b, y = _data(shape=(5,), target=target)
    value, grad, _ = FUNCTIONS[name]
    cotangent = RNG.normal(size=5) if options.get("reduction") == "none" else 1.0

    def total():
        return float(np.sum(value(x, w, y, linear_bias=b, **options) * cotangent))

    if options.get("reduction") == "none":  # the grad of Σ loss; a cotangent by linearity
        rows = [grad(x[i : i + 1], w, y[i : i + 1], linear_bias=b, **options) for i in range(5)]
        analytic = {
            "input": np.concatenate([r["input"] * c for r, c in zip(rows, cotangent, strict=True)]),
            "linear_weight": sum(
                r["linear_weight"] * c for r, c in zip(rows, cotangent, strict=True)
            ),
            "linear_bias": sum(r["linear_bias"] * c for r, c in zip(rows, cotangent, strict=True)),
        }
    else:
        analytic = grad(x, w, y, linear_bias=b, **options)
    for key, array in (("input", x), ("linear_weight", w), ("linear_bias", b)):
        numeric = _finite_difference(total, array)
        assert_close(analytic[key], numeric, rtol=1e-6, atol=1e-7, what=key)


def test_dtypes():
    x, w, b, y = _data()
    for dtype in (np.float32, np.float16):
        loss, grads = linear_cross_entropy_value_and_grad(
            x.astype(dtype), w.astype(dtype), y, linear_bias=b.astype(dtype), dtype=None
        )
        assert loss.dtype == dtype and all(g.dtype == dtype for g in grads.values())
        reference = linear_cross_entropy(
            x.astype(dtype), w.astype(dtype), y, linear_bias=b.astype(dtype)
        )
        assert reference.dtype == np.float64  # the default dtype
        eps = float(np.finfo(dtype).eps)
        assert_close(loss, reference, rtol=4 * eps, atol=4 * eps)
    assert linear_cross_entropy(x.astype(np.float32), w.astype(np.float32), y).dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        linear_cross_entropy(x, w, y, dtype=np.int32)


BAD = [
    ({"linear_weight": np.zeros((V, D + 1))}, ValueError, "linear_weight must have shape"),
    ({"linear_weight": np.zeros((0, D))}, ValueError, "at least one class"),
    ({"linear_bias": np.zeros(V + 1)}, ValueError, "linear_bias must have shape"),
    ({"linear_bias": np.zeros(V, np.float32), "dtype": None}, TypeError, "linear_bias must have"),
    ({"input": np.zeros((N, D), np.int64)}, TypeError, "input must have a real floating"),
    ({"input": np.float64(1.0)}, ValueError, "input must have at least one dimension"),
    ({"target": np.zeros(N + 1, np.int64)}, ValueError, "target of class indices"),
    ({"target": np.zeros(N)}, TypeError, "class indices must be integers"),
    ({"target": np.zeros((N, V + 1))}, ValueError, "target of class probabilities"),
    ({"target": np.zeros(N, bool)}, TypeError, "got dtype bool"),
    ({"target": np.full(N, V)}, ValueError, "out of range"),
    ({"target": "abc"}, TypeError, "target must hold integer"),
    ({"weight": [1.0] * (V - 1)}, ValueError, "weight must have one entry"),
    ({"weight": [-1.0] * V}, ValueError, "weight must be non-negative"),
    ({"reduction": "avg"}, ValueError, "reduction must be one of"),
    ({"label_smoothing": -0.5}, ValueError, "label_smoothing must be in"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
    ({"chunk_size": 2.5}, TypeError, "chunk_size must be a positive integer"),
    ({"normalizer": 3.0, "reduction": "none"}, ValueError, "normalizer divides"),
    ({"normalizer": np.nan}, ValueError, "normalizer must be"),
]


@pytest.mark.parametrize(("changes", "error", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input(changes, error, message):
    x, w, b, y = _data()
    arguments = {"input": x, "linear_weight": w, "target": y, "linear_bias": b, **changes}
    with pytest.raises(error, match=message):
        linear_cross_entropy(
            arguments.pop("input"),
            arguments.pop("linear_weight"),
            arguments.pop("target"),
            **arguments,
        )
    with pytest.raises(ValueError, match="gamma must be"):
        linear_focal_loss(x, w, y, gamma=-1.0)
