"""multiloss.jax.linear: the fused linear head + loss, against the unfused loss and optax.

Every value and gradient (with respect to the input, the weight and the bias) is compared
with two references: multiloss.jax's own loss of the formed logits ``x @ W.T + b``, and an
independent one built from optax (``softmax_cross_entropy`` with the smoothed, weighted
target) or, for the focal loss, which optax lacks, from ``jax.nn.log_softmax``,
differentiated by JAX. The session runs with ``jax_enable_x64`` (tests/conftest.py).
Small chunk sizes force several chunks, a remainder and padding.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from backends import assert_close

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")

import multiloss.jax as mlj  # noqa: E402
from multiloss.jax.linear import chunk_rows, linear_cross_entropy, linear_focal_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(1414)
F64 = 1e-12
N, D, V = 37, 6, 11
FUSED = {"cross_entropy": linear_cross_entropy, "focal_loss": linear_focal_loss}
UNFUSED = {"cross_entropy": mlj.cross_entropy, "focal_loss": mlj.focal_loss}


def _data(shape=(N,), target="index", bias=True, dtype=np.float64):
    x = RNG.normal(size=(*shape, D)).astype(dtype)
    w = (RNG.normal(size=(V, D)) * 0.7).astype(dtype)
    b = (RNG.normal(size=V) * 0.5).astype(dtype) if bias else None
    if target == "probability":
        y = RNG.dirichlet(np.ones(V), size=shape).astype(dtype)
    else:
        y = RNG.integers(0, V, size=shape)
        y.flat[::5] = -100
    return x, w, b, y


def _optax_reference(name, x, w, b, y, options=None):
    """The loss from optax (cross-entropy) or jax.nn (focal), per its documented formula."""
    options = dict(options or {})
    reduction = options.pop("reduction", "mean")
    normalizer = options.pop("normalizer", None)
    smoothing = options.pop("label_smoothing", 0.0)
    z_loss = options.pop("z_loss", 0.0)
    softcap = options.pop("softcap", None)
    ignore_index = options.pop("ignore_index", -100)
    gamma = options.pop("gamma", 2.0 if name == "focal_loss" else 0.0)
    class_weight = options.pop("weight", options.pop("alpha", None))
    assert not options, options
    logits = x @ w.T if b is None else x @ w.T + b
    if softcap is not None:
        logits = softcap * jnp.tanh(logits / softcap)
    logits = logits.reshape(-1, V)
    hard = jnp.issubdtype(y.dtype, jnp.integer)
    if hard:
        labels = y.reshape(-1)
        counted = labels != ignore_index
        q = jax.nn.one_hot(jnp.where(counted, labels, 0), V) * counted[:, None]
    else:
        q, counted = y.reshape(-1, V), jnp.ones(logits.shape[0], bool)
    if smoothing:
        q = optax.smooth_labels(q, smoothing) * counted[:, None]
    if isinstance(class_weight, float):
        class_weight = [1 - class_weight] + [class_weight] * (V - 1)
    w_k = jnp.ones(V) if class_weight is None else jnp.asarray(class_weight, logits.dtype)
    if name == "cross_entropy":
        per_row = optax.softmax_cross_entropy(logits, q * w_k)
    else:
        log_p = jax.nn.log_softmax(logits)
        per_row = -jnp.sum(q * w_k * (1 - jnp.exp(log_p)) ** gamma * log_p, axis=-1)
    omega = counted.astype(logits.dtype)
    if name == "cross_entropy" and class_weight is not None and hard:
        omega = omega * w_k[jnp.where(counted, labels, 0)]
    per_row = per_row + z_loss * omega * jax.nn.logsumexp(logits, axis=-1) ** 2
    if reduction == "none":
        return per_row.reshape(y.shape[: x.ndim - 1])
    total = jnp.sum(per_row)
    if reduction == "sum":
        return total
    if normalizer is not None:
        denominator = normalizer
    elif name == "cross_entropy" and class_weight is not None and hard:
        denominator = jnp.sum(omega)
    else:
        denominator = jnp.sum(counted)
    return jnp.where(denominator == 0, 0.0, total / jnp.where(denominator == 0, 1, denominator))


def _unfused(name, x, w, b, y, options):  # the same signature as _optax_reference
    options = dict(options)
    normalizer = options.pop("normalizer", None)
    logits = x @ w.T if b is None else x @ w.T + b
    if normalizer is None:
        return UNFUSED[name](logits, y, **options)
    options["reduction"] = "sum"
    return UNFUSED[name](logits, y, **options) / normalizer


def _value_and_grads(function, x, w, b, y, cotangent):
    """The loss, and the gradients of <loss, cotangent> w.r.t. input, weight (and bias)."""

    def scalar(x, w, b):
        loss = function(x, w, b, y)
        return jnp.sum(loss * cotangent), loss

    argnums = (0, 1) if b is None else (0, 1, 2)
    (_, loss), grads = jax.value_and_grad(scalar, argnums=argnums, has_aux=True)(x, w, b)
    return loss, grads


QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
"""XLA options that halve the compile time of these small programs (about 0.7 s each)."""


def _quickly_compiled(function, *args):
    """`jax.jit(function)(*args)`, compiled with :data:`QUICK_COMPILE`."""
    return jax.jit(function).lower(*args).compile(compiler_options=QUICK_COMPILE)(*args)


def _fused_value_and_grads(name, options, x, w, b, y, chunk, cotangent=1.0):
    """The fused loss and its gradients, compiled."""

    def fused(x, w, b, y):
        return FUSED[name](x, w, y, linear_bias=b, chunk_size=chunk, **options)

    def step(x, w, b, y, cotangent):
        return _value_and_grads(fused, x, w, b, y, cotangent)

    return _quickly_compiled(step, x, w, b, y, cotangent)


def _check_all(name, options, x, w, b, y, chunk, tol=F64, eager_references=False):
    """The fused value and gradients against both references, all three compiled as one
    program (compiling is what costs time here: about a second a program), or the
    references run eagerly."""
    if "ignore_index" in options and np.issubdtype(y.dtype, np.integer):
        y = np.where(y == -100, options["ignore_index"], y)
    x, w, y = jnp.asarray(x), jnp.asarray(w), jnp.asarray(y)
    b = None if b is None else jnp.asarray(b)
    reduction = options.get("reduction", "mean")
    shape = y.shape[: x.ndim - 1] if reduction == "none" else ()
    cotangent = jnp.asarray(RNG.normal(size=shape)) if shape else jnp.asarray(1.0)

    def fused(x, w, b, y):
        return FUSED[name](x, w, y, linear_bias=b, chunk_size=chunk, **options)

    functions = [fused] + [
        functools.partial(reference, name, options=options)
        for reference in (_unfused, _optax_reference)
    ]

    def step(x, w, b, y, cotangent):
        return [_value_and_grads(f, x, w, b, y, cotangent) for f in functions]

    if eager_references:
        got = _quickly_compiled(lambda *a: _value_and_grads(fused, *a), x, w, b, y, cotangent)
        expected = [_value_and_grads(f, x, w, b, y, cotangent) for f in functions[1:]]
    else:
        got, *expected = _quickly_compiled(step, x, w, b, y, cotangent)
    for reference, (loss, grads) in zip(("unfused", "optax"), expected, strict=True):
        what = f"{name} {options} vs {reference}"
        assert got[0].shape == loss.shape
        assert_close(got[0], loss, rtol=tol, atol=tol, what=what)
        labels = ("input", "weight", "bias")[: len(got[1])]
        for label, g, e in zip(labels, got[1], grads, strict=True):
            assert g.shape == e.shape and g.dtype == e.dtype
            assert_close(g, e, rtol=tol, atol=tol, what=f"{what}: {label}")
    return got


WEIGHT = [0.5, 1.0, 2.0, 0.1, 1.5, 0.3, 1.0, 0.7, 2.5, 0.0, 1.2]
CE, FOCAL = "cross_entropy", "focal_loss"
# (loss, options, layout): "2d" is (37, D) with a bias, "3d" (3, 7, D) without one
CASES = [
    (CE, {}, "2d"),
    (CE, {"reduction": "sum", "ignore_index": 3, "label_smoothing": 0.2}, "2d"),
    (CE, {"reduction": "none", "weight": WEIGHT, "label_smoothing": 0.1}, "2d"),
    (CE, {"weight": WEIGHT}, "3d"),
    (CE, {"weight": WEIGHT, "label_smoothing": 0.1, "z_loss": 1e-2}, "2d"),
    (CE, {"z_loss": 1e-2, "reduction": "none"}, "3d"),
    (CE, {"softcap": 2.0}, "2d"),
    (CE, {"softcap": 2.5, "z_loss": 1e-3, "label_smoothing": 0.05, "reduction": "sum"}, "2d"),
    (CE, {"normalizer": 7, "weight": WEIGHT, "z_loss": 1e-3}, "2d"),
    (FOCAL, {"gamma": 2.0}, "2d"),
    (FOCAL, {"gamma": 0.5, "alpha": 0.25, "reduction": "sum"}, "3d"),
    (FOCAL, {"gamma": 2.0, "alpha": WEIGHT, "label_smoothing": 0.1, "reduction": "none"}, "2d"),
    (FOCAL, {"gamma": 3.0, "z_loss": 1e-2, "softcap": 3.0}, "2d"),
    (FOCAL, {"gamma": 2.0, "alpha": 0.75, "ignore_index": 2, "normalizer": 40.0}, "2d"),
]


def _case_id(case):
    name, options, layout = case
    text = "-".join(f"{k}={'w' if isinstance(v, list) else v}" for k, v in options.items())
    return f"{name}-{text or 'default'}-{layout}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_unfused_and_optax(case):
    name, options, layout = case
    if layout == "3d":  # 3 chunks of 4 of each row of 7, one row of padding
        x, w, b, y = _data(shape=(3, 7), bias=False)
        _check_all(name, options, x, w, b, y, chunk=4)
    else:  # 5 chunks of 8, 3 rows of padding
        x, w, b, y = _data()
        _check_all(name, options, x, w, b, y, chunk=8)


PROBABILITY_CASES = [
    (CE, {}, "2d"),
    (CE, {"label_smoothing": 0.1, "z_loss": 1e-3, "reduction": "sum"}, "2d"),
    (FOCAL, {"reduction": "none", "softcap": 2.0, "normalizer": None}, "3d"),
]


@pytest.mark.parametrize("case", PROBABILITY_CASES, ids=[_case_id(c) for c in PROBABILITY_CASES])
def test_probability_targets(case):
    name, options, layout = case
    options = {k: v for k, v in options.items() if v is not None}
    shape = (3, 7) if layout == "3d" else (N,)
    x, w, b, y = _data(shape=shape, target="probability", bias=layout == "2d")
    _check_all(name, options, x, w, b, y, chunk=16)


@pytest.mark.parametrize("chunk", [1, 37, 64, None])
def test_chunk_boundaries(chunk):
    """One row per chunk, exactly one chunk, one padded chunk, the automatic size."""
    x, w, b, y = _data()
    _check_all(FOCAL, {"gamma": 1.5, "alpha": WEIGHT}, x, w, b, y, chunk=chunk)


def test_a_chunk_entirely_ignored_and_all_ignored():
    x, w, b, y = _data(shape=(32,))
    y[0::4] = -100  # chunk 0 of 4 (rows 0, 4, 8, …) holds nothing to count
    _check_all(CE, {"weight": WEIGHT}, x, w, b, y, chunk=8)
    y[:] = -100  # a mean over nothing: 0.0 with a zero gradient
    loss, grads = _check_all(CE, {"weight": WEIGHT}, x, w, b, y, chunk=8)
    assert float(loss) == 0.0 and all(not np.any(np.asarray(g)) for g in grads)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_no_tokens(reduction):
    x, w, b, y = _data(shape=(0,))
    # eager references: multiloss.jax.cross_entropy's label check under jit reduces an
    # empty array with jnp.max, which JAX refuses
    options = {"reduction": reduction}
    loss, grads = _check_all(CE, options, x, w, b, y, chunk=4, eager_references=True)
    assert loss.shape == ((0,) if reduction == "none" else ())
    assert grads[0].shape == (0, D) and not np.any(np.asarray(grads[1]))


def test_jit_grad_and_vmap():
    x, w, b, y = map(jnp.asarray, _data(shape=(4, 19)))
    options = {"gamma": 2.0, "alpha": 0.25, "label_smoothing": 0.1}

    def fused(x, w, b, y):
        return linear_focal_loss(x, w, y, linear_bias=b, chunk_size=4, **options)

    def unfused(x, w, b, y):
        return mlj.focal_loss(x @ w.T + b, y, **options)

    def per_example(function):  # the batch mapped, the layer shared
        return jax.vmap(jax.value_and_grad(function, argnums=(0, 1, 2)), (0, None, None, 0))

    got = _quickly_compiled(per_example(fused), x, w, b, y)
    expected = per_example(unfused)(x, w, b, y)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert_close(g, e, rtol=F64, atol=F64)

    def total(function):
        return jax.grad(lambda w: jnp.sum(jax.vmap(function, (0, None, None, 0))(x, w, b, y)))

    assert_close(_quickly_compiled(total(fused), w), total(unfused)(w), rtol=F64, atol=F64)
    ws = jnp.stack([w, 2 * w])  # the layer mapped: one loss per weight
    per_weight = jax.vmap(fused, (None, 0, None, None))(x[0], ws, b, y[0])
    expected = jax.vmap(unfused, (None, 0, None, None))(x[0], ws, b, y[0])
    assert_close(per_weight, expected, rtol=F64, atol=F64)


def test_traced_weight_and_normalizer_under_jit():
    x, w, b, y = _data()
    x, w, b, y = map(jnp.asarray, (x, w, b, y))
    weight, normalizer = jnp.asarray(WEIGHT), jnp.asarray(23.0)

    @jax.jit
    def fused(x, weight, normalizer):
        return linear_cross_entropy(x, w, y, weight=weight, normalizer=normalizer, chunk_size=8)

    expected = mlj.cross_entropy(x @ w.T, y, weight=weight, reduction="sum") / 23.0
    assert_close(fused(x, weight, normalizer), expected, rtol=F64, atol=F64)
    assert float(fused(x, weight, jnp.asarray(0.0))) == 0.0


def test_float32_within_a_few_eps():
    x, w, b, y = _data(dtype=np.float32)
    y = y.astype(np.int32)
    for name, options in [(CE, {"label_smoothing": 0.1}), (FOCAL, {})]:
        got = _fused_value_and_grads(name, options, *map(jnp.asarray, (x, w, b, y)), 8)
        expected = _value_and_grads(
            functools.partial(_optax_reference, name, options=options),
            *(jnp.asarray(a, jnp.float64) for a in (x, w, b)),
            jnp.asarray(y),
            1.0,
        )
        eps = float(np.finfo(np.float32).eps)
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert g.dtype == jnp.float32
            assert_close(g, e, rtol=16 * eps, atol=16 * eps, what=name)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16_bit_inputs(dtype):
    x, w, b, y = _data(dtype=np.float32)
    x, w, b = (jnp.asarray(a).astype(dtype) for a in (x, w, b))
    y = jnp.asarray(y, jnp.int32)
    got = _fused_value_and_grads(CE, {}, x, w, b, y, 8)
    wide = [a.astype(jnp.float64) for a in (x, w, b)]
    expected = _value_and_grads(
        lambda x, w, b, y: _optax_reference("cross_entropy", x, w, b, y, {}), *wide, y, 1.0
    )
    eps = float(jnp.finfo(dtype).eps)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert g.dtype == jnp.dtype(dtype)
        assert_close(g.astype(jnp.float64), e, rtol=4 * eps, atol=4 * eps)


def test_automatic_chunk_size():
    # every backend's one rule (issue 20): at most 1/16 of the logits and 32 MiB of
    # float32, at least 192 tokens, or all of them
    assert chunk_rows(2048, 65536) == 192  # 128 by both bounds, raised to the minimum
    assert chunk_rows(8192, 32000) == 262  # 2^23 / 32000 = 262 < 8192 / 16 = 512
    assert chunk_rows(1 << 20, 1000) == 2**23 // 1000
    assert chunk_rows(37, 11) == 37  # every token, in one chunk
    assert chunk_rows(0, 11) == 1


def test_compiled_temporary_memory_is_an_eighth_of_the_unfused():
    """A structural property of the compiled program: at N = 4096, D = 64, V = 8192 the
    unfused optax step holds the N×V logits and their gradient; the fused one, a chunk."""
    n, d, v = 4096, 64, 8192
    x = jax.ShapeDtypeStruct((n, d), jnp.float32)
    w = jax.ShapeDtypeStruct((v, d), jnp.float32)
    y = jax.ShapeDtypeStruct((n,), jnp.int32)

    def temp(function):
        step = jax.jit(jax.value_and_grad(function, argnums=(0, 1)))
        return step.lower(x, w, y).compile().memory_analysis().temp_size_in_bytes

    def unfused(x, w, y):
        return optax.softmax_cross_entropy_with_integer_labels(x @ w.T, y).mean()

    reference = temp(unfused)
    assert reference >= 2 * n * v * 4 * 0.9
    for fused in (linear_cross_entropy, functools.partial(linear_focal_loss, gamma=2.0)):
        assert temp(fused) <= reference / 8, (temp(fused), reference)


# ----------------------------------------------------------------------- bad input


def _call(**changes):
    x, w, b, y = _data()
    arguments = {"input": x, "linear_weight": w, "target": y, "linear_bias": b}
    arguments.update(changes)
    options = arguments.pop("options", {})
    return linear_cross_entropy(
        jnp.asarray(arguments["input"])
        if isinstance(arguments["input"], np.ndarray)
        else arguments["input"],
        arguments["linear_weight"],
        arguments["target"],
        linear_bias=arguments["linear_bias"],
        **options,
    )


BAD = [
    ({"linear_weight": np.zeros((V, D + 1))}, ValueError, "linear_weight must have shape"),
    ({"linear_weight": np.zeros(V * D)}, ValueError, "linear_weight must have shape"),
    ({"linear_weight": np.zeros((0, D))}, ValueError, "at least one class"),
    ({"linear_bias": np.zeros(V + 1)}, ValueError, "linear_bias must have shape"),
    ({"linear_bias": np.zeros(V, np.float32)}, TypeError, "linear_bias must have the input"),
    ({"linear_weight": np.zeros((V, D), np.float32)}, TypeError, "linear_weight must have the"),
    ({"input": np.zeros((N, D), np.int32)}, TypeError, "input must have a real floating"),
    ({"input": np.float64(1.0)}, ValueError, "input must have at least one dimension"),
    ({"target": np.zeros(N + 1, np.int64)}, ValueError, "target of class indices"),
    ({"target": np.zeros(N)}, TypeError, "class indices must be integers"),
    ({"target": np.zeros((N, V + 1))}, ValueError, "target of class probabilities"),
    ({"target": np.zeros(N, bool)}, TypeError, "got dtype bool"),
    ({"target": np.full(N, V)}, ValueError, "out of range"),
    ({"target": [0, 1]}, ValueError, "target of class indices"),
    ({"options": {"weight": [1.0] * (V - 1)}}, ValueError, "weight must have one entry"),
    ({"options": {"weight": [-1.0] * V}}, ValueError, "weight must be non-negative"),
    ({"options": {"reduction": "avg"}}, ValueError, "reduction must be one of"),
    ({"options": {"label_smoothing": 1.5}}, ValueError, "label_smoothing must be in"),
    ({"options": {"softcap": 0.0}}, ValueError, "softcap must be > 0"),
    ({"options": {"chunk_size": 0}}, ValueError, "chunk_size must be a positive integer"),
    ({"options": {"chunk_size": 2.0}}, TypeError, "chunk_size must be a positive integer"),
    ({"options": {"chunk_size": True}}, TypeError, "chunk_size must be a positive integer"),
    ({"options": {"normalizer": 3.0, "reduction": "sum"}}, ValueError, "normalizer divides"),
    ({"options": {"normalizer": -1.0}}, ValueError, "normalizer must be"),
    ({"options": {"normalizer": jnp.ones(2)}}, ValueError, "normalizer must be a 0-d array"),
]


@pytest.mark.parametrize(("changes", "error", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input(changes, error, message):
    with pytest.raises(error, match=message):
        _call(**changes)


def test_bad_focal_options_and_static_arguments():
    x, w, _, y = _data()
    with pytest.raises(ValueError, match="gamma must be"):
        linear_focal_loss(x, w, y, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha must be in"):
        linear_focal_loss(x, w, y, alpha=1.5)
    with pytest.raises(ValueError, match="alpha must have one entry"):
        linear_focal_loss(x, w, y, alpha=[0.5, 0.5])
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="target must be a JAX or NumPy array; got torch"):
        linear_cross_entropy(x, w, torch.zeros(N, dtype=torch.int64))
    with pytest.raises(TypeError, match="chunk_size must be a static"):
        jax.jit(lambda c: linear_cross_entropy(x, w, y, chunk_size=c))(8)
    with pytest.raises(TypeError, match="label_smoothing must be a static"):
        jax.jit(lambda s: linear_cross_entropy(x, w, y, label_smoothing=s))(0.1)


def test_out_of_range_label_under_jit_is_nan():
    x, w, _, y = _data()
    y[3] = V + 4
    loss = jax.jit(lambda y: linear_cross_entropy(jnp.asarray(x), jnp.asarray(w), y, chunk_size=8))
    assert np.isnan(loss(jnp.asarray(y)))


# ----------------------------------------------------------------------- 8 devices

SCRIPT = textwrap.dedent(
    """
    import functools
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import multiloss.jax as mlj
    from multiloss.jax.linear import linear_cross_entropy, linear_focal_loss

    assert len(jax.devices()) == 8 and not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    n, d, v = 96, 16, 40
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = (rng.normal(size=(v, d)) * 0.5).astype(np.float32)
    b = rng.normal(size=v).astype(np.float32)
    y = rng.integers(0, v, size=n).astype(np.int32)
    y[::7] = -100
    cases = {
        "ce-mean": (linear_cross_entropy, {"label_smoothing": 0.1}),
        "focal-sum": (linear_focal_loss, {"gamma": 2.0, "alpha": 0.25, "reduction": "sum"}),
        "ce-none": (linear_cross_entropy, {"reduction": "none", "z_loss": 1e-3}),
    }

    def step(function, options):
        def loss(x, w, b, y):
            out = function(x, w, y, linear_bias=b, chunk_size=16, **options)
            return jnp.sum(out * jnp.arange(out.size).reshape(out.shape)) if out.ndim else out
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))

    auto = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    explicit = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    for key, (function, options) in cases.items():
        expected = step(function, options)(x, w, b, y)
        for mesh, spec in ((auto, P("data")), (explicit, P(("data", "model")))):
            with jax.set_mesh(mesh):
                xs = jax.device_put(x, NamedSharding(mesh, P(*spec, None)))
                ys = jax.device_put(y, NamedSharding(mesh, spec))
                got = step(function, options)(xs, w, b, ys)
            assert len(xs.sharding.device_set) == 8
            for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
                np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6, err_msg=key)
    print("LINEAR SHARDING OK")
    """
)


@pytest.fixture(scope="module", autouse=True)
def sharded_run():
    """The 8-device check, started in a subprocess when this module's first test runs, so
    that it runs beside the others (on the second core); collected by its own test."""
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = (
        environment.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    environment.pop("JAX_ENABLE_X64", None)
    environment["JAX_PLATFORMS"] = "cpu"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_tokens_sharded_over_eight_devices_equal_unsharded(sharded_run):
    stdout, stderr = sharded_run.communicate(timeout=600)
    assert sharded_run.returncode == 0, stdout[-3000:] + stderr[-6000:]
    assert "LINEAR SHARDING OK" in stdout


def test_the_normaliser_is_differentiable_and_the_weights_refuse_a_derivative() -> None:
    """d loss / d n = -loss / n, as for the unfused loss; a derivative with respect to the
    class weight or a probability target is refused, never a silent zero."""
    rng = np.random.default_rng(3)
    x, w = jnp.asarray(rng.normal(size=(10, 4))), jnp.asarray(rng.normal(size=(7, 4)))
    labels = jnp.asarray(rng.integers(0, 7, 10))

    def fused(n):
        return linear_cross_entropy(x, w, labels, normalizer=n, chunk_size=3)

    loss, slope = jax.value_and_grad(fused)(4.0)
    unfused = jax.grad(lambda n: mlj.cross_entropy(x @ w.T, labels, normalizer=n))(4.0)
    assert abs(float(slope) + float(loss) / 4.0) < 1e-15
    assert abs(float(slope) - float(unfused)) < 1e-15
    with pytest.raises(NotImplementedError, match="weight"):
        jax.grad(lambda c: linear_cross_entropy(x, w, labels, weight=c))(jnp.ones(7))
    probabilities = jax.nn.softmax(jnp.asarray(rng.normal(size=(10, 7))))
    with pytest.raises(NotImplementedError, match="probability target"):
        jax.grad(lambda q: linear_cross_entropy(x, w, q))(probabilities)
