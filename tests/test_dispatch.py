"""The top-level functions of ``multiloss``: lazy backends, and dispatch of NumPy and
array-api-strict arrays to the core (the input dtype kept, class axis -1)."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap

import numpy as np
import oracles
import pytest
from backends import asarray as move
from backends import assert_eps, dtype_name, namespace, to_numpy
from losses import ALL, has_class_axis

import multiloss


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_import_multiloss_imports_neither_torch_nor_jax():
    result = _run_python(
        """
        import sys
        import multiloss
        import multiloss.numpy
        heavy = sorted(m for m in ("torch", "jax", "jaxlib", "flax", "optax") if m in sys.modules)
        print("loaded:", heavy)
        assert not heavy, heavy
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_numpy_and_strict_calls_import_neither_torch_nor_jax():
    """Using the core on NumPy and array-api-strict arrays loads no framework either."""
    result = _run_python(
        """
        import sys
        import numpy as np
        import array_api_strict as xs
        import multiloss, multiloss.numpy
        z, t = np.array([[1.0, 2.0, 0.5]]), np.array([1])
        multiloss.focal_loss(z, t)
        multiloss.cross_entropy(xs.asarray(z), xs.asarray(t))
        multiloss.numpy.sigmoid_focal_loss_value_and_grad(z, np.array([[0.0, 1.0, 1.0]]))
        assert multiloss.backend_of(z) == "array_api"
        heavy = sorted(m for m in ("torch", "jax", "jaxlib") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _problem(name, rng):
    logits = rng.normal(scale=2.0, size=(5, 4))
    if has_class_axis(name):
        return logits, rng.integers(0, 4, size=5)
    return logits, (rng.uniform(size=(5, 4)) < 0.5).astype(np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("name", ALL)
def test_top_level_runs_the_core_in_the_input_dtype(name, xp_name, dtype):
    xp = namespace(xp_name)
    rng = np.random.default_rng(6)
    logits, target = _problem(name, rng)
    target_dtype = dtype if target.dtype.kind == "f" else None
    moved = move(xp, logits, dtype)
    loss = getattr(multiloss, name)(moved, move(xp, target, target_dtype), reduction="none")
    assert dtype_name(loss) == dtype
    if xp_name == "array_api_strict":
        assert type(loss) is type(moved)
    rounded = logits.astype(dtype).astype(np.float64)
    ref_loss, _ = oracles.NUMPY[name](rounded, target, reduction="none")
    assert_eps(to_numpy(loss), ref_loss, dtype, 16, name)


@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict"])
def test_top_level_options_and_axis(xp_name):
    xp = namespace(xp_name)
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(3, 4, 5))
    target_last = rng.integers(0, 5, size=(3, 4))
    target_last[0, 0] = 255
    target_1 = rng.integers(0, 4, size=(3, 5))
    options = {"gamma": 0.5, "alpha": [0.1, 0.2, 0.3, 0.2, 0.2], "ignore_index": 255}
    loss = multiloss.focal_loss(move(xp, logits), move(xp, target_last), **options)
    ref_loss, _ = oracles.np_focal_loss(logits, target_last, axis=-1, **options)
    assert_eps(to_numpy(loss), ref_loss, "float64", 4, "default axis -1")
    loss = multiloss.cross_entropy(
        move(xp, logits), move(xp, target_1), axis=1, weight=[1.0, 2.0, 0.5, 1.0],
        label_smoothing=0.1,
    )  # fmt: skip
    ref_loss, _ = oracles.np_cross_entropy(
        logits, target_1, axis=1, weight=[1.0, 2.0, 0.5, 1.0], label_smoothing=0.1
    )
    assert_eps(to_numpy(loss), ref_loss, "float64", 4, "axis 1")
    y = (rng.uniform(size=(3, 4, 5)) < 0.5).astype(np.float64)
    loss = multiloss.binary_cross_entropy(
        move(xp, logits), move(xp, y), pos_weight=[1.0, 2.0, 3.0, 4.0, 5.0], reduction="sum"
    )
    ref_loss, _ = oracles.np_binary_cross_entropy(
        logits, y, pos_weight=[1.0, 2.0, 3.0, 4.0, 5.0], reduction="sum"
    )
    assert_eps(to_numpy(loss), ref_loss, "float64", 4, "bce")
    loss = multiloss.sigmoid_focal_loss(move(xp, logits), move(xp, y), alpha=None, gamma=1.0)
    ref_loss, _ = oracles.np_sigmoid_focal_loss(logits, y, alpha=None, gamma=1.0)
    assert_eps(to_numpy(loss), ref_loss, "float64", 4, "sigmoid focal")


def test_top_level_validates():
    with pytest.raises(ValueError, match="reduction"):
        multiloss.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"target.*out of range"):
        multiloss.focal_loss(np.zeros((2, 3)), np.array([0, 3]))


def test_backend_of():
    assert multiloss.backend_of(np.zeros(2)) == "array_api"
    assert multiloss.backend_of(namespace("array_api_strict").asarray([1.0])) == "array_api"
    torch = pytest.importorskip("torch")
    assert multiloss.backend_of(torch.zeros(2)) == "torch"
    jnp = pytest.importorskip("jax.numpy")
    assert multiloss.backend_of(jnp.zeros(2)) == "jax"


def test_docstring_examples():
    results = doctest.testmod(
        multiloss, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert results.attempted > 0
    assert results.failed == 0
