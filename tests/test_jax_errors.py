"""multiloss.jax: the bad-input catalogue (``tests/catalogue.py``; docs/semantics.md, "Bad
input"), eager and under jit.

Shape, dtype and hyperparameter errors raise at trace time with the exception type and
message of the NumPy backend. Value errors (class index out of range, negative or NaN
weights) raise eagerly on concrete arrays; under jit an out-of-range index gives NaN,
and :func:`multiloss.jax.checked` (checkify) turns it into an error.
"""

from __future__ import annotations

import functools

import catalogue
import numpy as np
import pytest
from catalogue import CATALOGUE, B, Y, Z
from losses import SOFTMAX

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from jax.experimental import checkify  # noqa: E402

import multiloss.jax as mlj  # noqa: E402
import multiloss.numpy as mln  # noqa: E402
from multiloss import _core  # noqa: E402

STATIC = [case for case in CATALOGUE if case.values is None]
"""Errors that need no array values: raised while tracing."""
VALUES = [case for case in CATALOGUE if case.values is not None]
"""Errors that need the arrays' values: raised on concrete arrays."""


def _unpack(case):
    return case.name, case.logits, case.target, case.options, case.error


def _numpy_error(name, logits, target, options):
    with pytest.raises(Exception) as info:
        getattr(mln, name)(logits, target, **options)
    return info.value


@pytest.mark.parametrize("case", catalogue.params(STATIC))
def test_static_errors_raise_at_trace_time_like_numpy(case):
    name, logits, target, options, kind = _unpack(case)
    expected = _numpy_error(name, logits, target, options)
    assert type(expected) is kind
    function = functools.partial(getattr(mlj, name), **options)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    runs = [function, jax.jit(function)]
    if np.issubdtype(np.asarray(logits).dtype, np.floating):  # else jax.grad itself refuses
        runs.append(jax.jit(jax.grad(function)))
    for run in runs:
        with pytest.raises(kind) as info:
            run(z, y)
        assert str(info.value) == str(expected)


@pytest.mark.parametrize("case", catalogue.params(VALUES))
def test_value_errors_raise_on_concrete_arrays_like_numpy(case):
    name, logits, target, options, kind = _unpack(case)
    expected = _numpy_error(name, logits, target, options)
    assert type(expected) is kind
    function = functools.partial(getattr(mlj, name), **options)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    runs = [function, jax.grad(function)]
    if case.values != "target":  # traced class indices cannot be checked (see below); weights can
        runs.append(lambda z, y: jax.vmap(function)(z[None], y[None]))
    for run in runs:
        with pytest.raises(kind) as info:
            run(z, y)
        assert str(info.value) == str(expected)


def test_python_weights_are_checked_under_jit_too():
    # Known while tracing, so checked then (and the message is the NumPy backend's).
    expected = _numpy_error("cross_entropy", Z, Y, {"weight": [1.0, -2.0, 1.0]})
    function = jax.jit(functools.partial(mlj.cross_entropy, weight=[1.0, -2.0, 1.0]))
    with pytest.raises(ValueError) as info:
        function(jnp.asarray(Z), jnp.asarray(Y))
    assert str(info.value) == str(expected)
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        jax.jit(mlj.focal_loss, static_argnames="alpha")(Z, Y, alpha=(1.0, float("nan"), 1.0))


def test_mixing_backends_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="arrays of different backends cannot be mixed"):
        _core.prepare_cross_entropy(Z, torch.tensor(Y))  # what the NumPy path says
    with pytest.raises(TypeError, match="arrays of different backends cannot be mixed"):
        mlj.cross_entropy(jnp.asarray(Z), torch.tensor(Y))
    with pytest.raises(TypeError, match="weight is an array of another backend"):
        mlj.cross_entropy(jnp.asarray(Z), jnp.asarray(Y), weight=torch.ones(3))


def test_traced_hyperparameters_get_a_hint():
    with pytest.raises(TypeError, match=r"label_smoothing must be a static Python value"):
        jax.jit(mlj.cross_entropy)(Z, Y, label_smoothing=0.1)
    with pytest.raises(TypeError, match=r"gamma must be a static Python value"):
        jax.jit(mlj.sigmoid_focal_loss)(Z, B, gamma=2.0)
    # sigmoid focal's alpha is data (a per-class vector, or a scalar broadcast as one)
    traced = jax.jit(mlj.sigmoid_focal_loss)(Z, B, alpha=jnp.asarray(0.5))
    np.testing.assert_allclose(traced, mln.sigmoid_focal_loss(Z, B, alpha=0.5), rtol=1e-6)


# ------------------------------------------------------------------ out-of-range under jit


def test_out_of_range_index_under_jit_is_nan_never_a_clamp():
    labels = jnp.asarray([0, 3, 1, -5])  # 3 and -5 are out of range for C = 3
    z = jnp.asarray(Z)
    per_element = jax.jit(functools.partial(mlj.focal_loss, reduction="none"))(z, labels)
    assert np.isnan(per_element[1]) and np.isnan(per_element[3])
    assert np.all(np.isfinite(per_element[np.array([0, 2])]))
    grad = jax.jit(jax.grad(lambda z, y: mlj.cross_entropy(z, y, reduction="sum")))(z, labels)
    assert np.all(np.isnan(grad[1])) and np.all(np.isfinite(grad[0]))
    for name in SOFTMAX:
        assert np.isnan(jax.jit(getattr(mlj, name))(z, labels))
    ignored = jnp.asarray([0, -100, 1, 2])  # ignore_index is not out of range
    assert np.isfinite(jax.jit(mlj.cross_entropy)(z, ignored))


def test_checked_turns_run_time_value_errors_into_exceptions():
    z = jnp.asarray(Z)
    step = mlj.checked(jax.jit(jax.value_and_grad(mlj.focal_loss)))
    value, grad = step(z, jnp.asarray(Y))
    assert np.isfinite(value) and grad.shape == z.shape
    with pytest.raises(checkify.JaxRuntimeError, match=r"out of range \[0, 3\).*for example 3"):
        step(z, jnp.asarray([0, 3, 1, 1]))
    with pytest.raises(checkify.JaxRuntimeError, match="for example -1"):
        mlj.checked(jax.vmap(mlj.cross_entropy))(z[None], jnp.asarray([[0, -1, 1, 1]]))
    weighted = mlj.checked(jax.jit(lambda z, y, w: mlj.cross_entropy(z, y, weight=w)))
    with pytest.raises(checkify.JaxRuntimeError, match="weight must be non-negative"):
        weighted(z, jnp.asarray(Y), jnp.asarray([1.0, -1.0, 1.0]))
    pos = mlj.checked(jax.jit(lambda x, y, w: mlj.binary_cross_entropy(x, y, pos_weight=w)))
    with pytest.raises(checkify.JaxRuntimeError, match="pos_weight must be non-negative"):
        pos(z, jnp.asarray(B), jnp.asarray([1.0, float("nan"), 1.0]))


def test_validate_labels():
    mlj.validate_labels(jnp.asarray([0, 2, -100]), 3)  # eager, fine
    with pytest.raises(checkify.JaxRuntimeError, match="out of range"):
        mlj.validate_labels(jnp.asarray([0, 3]), 3)  # eager, concrete: raises at once
    checked = mlj.checked(jax.jit(lambda y: mlj.validate_labels(y, 3, ignore_index=255)))
    checked(jnp.asarray([0, 255, 2]))
    with pytest.raises(checkify.JaxRuntimeError, match="ignore_index=255"):
        checked(jnp.asarray([0, 254, 2]))
    with pytest.raises(ValueError, match="functionalized"):  # jit without checkify
        jax.jit(lambda y: mlj.validate_labels(y, 3))(jnp.asarray([0, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        mlj.validate_labels(jnp.asarray([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        mlj.validate_labels(jnp.asarray([0]), 0)


def test_an_empty_batch_under_jit_is_zero_not_an_error() -> None:
    """The traced label check reduces over the labels: an empty batch has none."""
    empty_logits, empty_labels = jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)
    assert float(jax.jit(mlj.cross_entropy)(empty_logits, empty_labels)) == 0.0
    assert float(mlj.checked(mlj.focal_loss)(empty_logits, empty_labels)) == 0.0
