"""multiloss.jax: values and gradients against the NumPy reference, torch and optax.

The session runs with ``jax_enable_x64`` (tests/conftest.py), so float64 comparisons
are exact to a few ulp; float32 and 16-bit behaviour is asked for explicitly.
"""

from __future__ import annotations

import doctest
import functools
import warnings

import numpy as np
import pytest
from backends import assert_close
from losses import SOFTMAX, has_class_axis

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import multiloss  # noqa: E402
import multiloss.jax as mlj  # noqa: E402
import multiloss.numpy as mln  # noqa: E402

RNG = np.random.default_rng(20240601)
F64 = 1e-12  # relative to 1 + |reference|, float64
F32 = 2e-6


def close(actual, expected, tol) -> None:
    """|actual - expected| ≤ tol · (1 + |expected|), elementwise (:func:`backends.assert_close`)."""
    assert_close(actual, expected, rtol=tol, atol=tol)


def _softmax_case(kdim: bool, soft: bool, ignore: bool):
    shape = (4, 3, 5) if kdim else (6, 5)  # classes last
    logits = RNG.normal(size=shape) * 2
    if soft:
        target = RNG.dirichlet(np.ones(5), size=shape[:-1])
    else:
        target = RNG.integers(0, 5, size=shape[:-1])
        if ignore:
            target.flat[::3] = -100
    return logits, target


SOFTMAX_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.15},
    {"weight": [0.5, 1.0, 2.0, 0.1, 1.5]},
    {"weight": [0.5, 1.0, 2.0, 0.1, 1.5], "label_smoothing": 0.1, "reduction": "none"},
]
FOCAL_OPTIONS = [
    {"gamma": 0.0},
    {"gamma": 0.5, "alpha": 0.25},
    {"gamma": 2.0, "alpha": [0.5, 1.0, 2.0, 0.1, 1.5], "reduction": "sum"},
    {"gamma": 1.0, "label_smoothing": 0.1, "reduction": "none"},
]


def _ce_options(options):
    return options


def _focal_options(options):
    return {("alpha" if k == "weight" else k): v for k, v in options.items()}


CASES = [("cross_entropy", o) for o in SOFTMAX_OPTIONS] + [
    ("focal_loss", o) for o in [*FOCAL_OPTIONS, _focal_options(SOFTMAX_OPTIONS[-1])]
]


@pytest.mark.parametrize("target_kind", ["index", "index+ignore", "probability"])
@pytest.mark.parametrize(
    ("name", "options", "kdim"), [(*c, i % 2 == 1) for i, c in enumerate(CASES)]
)
def test_softmax_matches_numpy_reference(name, options, kdim, target_kind):
    """Against the float64 reference; (N, C) and (N, d, C) alternate."""
    logits, target = _softmax_case(kdim, target_kind == "probability", "ignore" in target_kind)
    expected, expected_grad = getattr(mln, f"{name}_value_and_grad")(logits, target, **options)
    eager = functools.partial(getattr(mlj, name), **options)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    # jitted too for one target kind (the same code; compiling every case costs time)
    functions = (eager, jax.jit(eager)) if target_kind == "index+ignore" else (eager,)
    for function in functions:
        value = function(z, y)
        grad = jax.grad(lambda z, f=function: jnp.sum(f(z, y)))(z)
        assert value.dtype == jnp.float64 and grad.dtype == jnp.float64
        close(value, expected, F64)
        close(grad, expected_grad, F64)


SIGMOID_CASES = [
    ("binary_cross_entropy", {}),
    ("binary_cross_entropy", {"reduction": "none", "pos_weight": [2.0, 0.5, 1.0, 3.0]}),
    ("binary_cross_entropy", {"reduction": "sum", "weight": "array"}),
    ("sigmoid_focal_loss", {}),
    ("sigmoid_focal_loss", {"alpha": None, "gamma": 0.5, "reduction": "none"}),
    ("sigmoid_focal_loss", {"alpha": 0.75, "gamma": 5.0, "reduction": "sum"}),
]


@pytest.mark.parametrize(("name", "options"), SIGMOID_CASES)
def test_sigmoid_matches_numpy_reference(name, options):
    logits = RNG.normal(size=(5, 4)) * 3
    target = np.concatenate([RNG.uniform(size=(5, 2)), RNG.integers(0, 2, size=(5, 2))], 1)
    if options.get("weight") == "array":
        options = {**options, "weight": RNG.uniform(size=(5, 1))}
    expected, expected_grad = getattr(mln, f"{name}_value_and_grad")(logits, target, **options)
    eager = functools.partial(getattr(mlj, name), **options)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    for function in (eager, jax.jit(eager)):
        close(function(z, y), expected, F64)
        close(jax.grad(lambda z, f=function: jnp.sum(f(z, y)))(z), expected_grad, F64)


def test_class_axis_can_be_moved():
    logits, target = _softmax_case(True, False, True)
    expected = mlj.focal_loss(jnp.asarray(logits), jnp.asarray(target), reduction="none")
    moved = jnp.moveaxis(jnp.asarray(logits), -1, 1)
    got = jax.jit(functools.partial(mlj.focal_loss, axis=1, reduction="none"))(
        moved, jnp.asarray(target)
    )
    close(got, expected, F64)


# ------------------------------------------------------------------ torch and optax peers

TORCH_OPTIONS = [
    {},
    {"weight": [0.5, 1.0, 2.0, 0.1, 1.5]},
    {"ignore_index": 2},
    {"label_smoothing": 0.2},
    {"weight": [0.5, 1.0, 2.0, 0.1, 1.5], "label_smoothing": 0.2, "ignore_index": 1},
    {"reduction": "none", "weight": [0.5, 1.0, 2.0, 0.1, 1.5]},
    {"reduction": "sum", "label_smoothing": 0.05},
]


@pytest.mark.parametrize(
    ("options", "probability"),
    [(o, False) for o in TORCH_OPTIONS]
    + [(o, True) for o in TORCH_OPTIONS if "ignore_index" not in o],  # indices only
)
def test_cross_entropy_matches_torch(options, probability):
    torch = pytest.importorskip("torch")
    logits, target = _softmax_case(True, probability, False)  # (N, d, C)
    torch_options = dict(options)
    if "weight" in options:
        torch_options["weight"] = torch.tensor(options["weight"], dtype=torch.float64)
    z = torch.tensor(np.moveaxis(logits, -1, 1), requires_grad=True)  # torch: (N, C, d)
    t = torch.tensor(np.moveaxis(target, -1, 1) if probability else target)
    expected = torch.nn.functional.cross_entropy(z, t, **torch_options)
    expected.sum().backward()
    expected_grad = np.moveaxis(z.grad.numpy(), 1, -1)
    y = jnp.asarray(target)
    function = functools.partial(mlj.cross_entropy, **options)
    value, grad = jax.value_and_grad(lambda z: jnp.sum(function(z, y)))(jnp.asarray(logits))
    close(function(jnp.asarray(logits), y), expected.detach().numpy(), F64)
    close(value, expected.sum().detach().numpy(), F64)
    close(grad, expected_grad, F64)


def _float32(*arrays):
    return [jnp.asarray(np.asarray(a), dtype=jnp.float32) for a in arrays]


def _value_and_grad32(function, logits, target):
    return jax.value_and_grad(lambda z: jnp.sum(function(z, target)))(logits)


def test_integer_label_cross_entropy_matches_optax():
    optax = pytest.importorskip("optax")
    (logits,) = _float32(RNG.normal(size=(64, 10)) * 3)
    labels = jnp.asarray(RNG.integers(0, 10, size=64), dtype=jnp.int32)
    ours = _value_and_grad32(mlj.cross_entropy, logits, labels)
    peer = _value_and_grad32(
        lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
        logits,
        labels,
    )
    for a, b in zip(ours, peer, strict=True):
        assert a.dtype == jnp.float32
        close(a, b, F32)
    none = mlj.cross_entropy(logits, labels, reduction="none")
    close(none, optax.softmax_cross_entropy_with_integer_labels(logits, labels), F32)


@pytest.mark.parametrize(("gamma", "alpha"), [(0.0, None), (1.0, 0.25), (2.0, 0.25), (3.5, None)])
def test_sigmoid_focal_loss_matches_optax(gamma, alpha):
    optax = pytest.importorskip("optax")
    logits, labels = _float32(RNG.normal(size=(32, 6)) * 3, RNG.integers(0, 2, size=(32, 6)))
    ours = functools.partial(mlj.sigmoid_focal_loss, alpha=alpha, gamma=gamma)
    per_element = optax.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma)
    close(ours(logits, labels, reduction="none"), per_element, F32)

    def peer(z, y):
        return optax.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma).mean()

    for a, b in zip(
        _value_and_grad32(ours, logits, labels),
        _value_and_grad32(peer, logits, labels),
        strict=True,
    ):
        assert a.dtype == jnp.float32
        close(a, b, 1e-5)


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_binary_cross_entropy_matches_optax(soft):
    optax = pytest.importorskip("optax")
    labels = RNG.uniform(size=(32, 6)) if soft else RNG.integers(0, 2, size=(32, 6))
    logits, labels = _float32(RNG.normal(size=(32, 6)) * 4, labels)

    def peer(z, y):
        return optax.sigmoid_binary_cross_entropy(z, y).mean()

    close(mlj.binary_cross_entropy(logits, labels, reduction="none"),
          optax.sigmoid_binary_cross_entropy(logits, labels), F32)  # fmt: skip
    for a, b in zip(
        _value_and_grad32(mlj.binary_cross_entropy, logits, labels),
        _value_and_grad32(peer, logits, labels),
        strict=True,
    ):
        close(a, b, F32)


# ------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", [*SOFTMAX, "sigmoid_focal_loss"])
def test_16_bit_inputs_are_computed_in_float32(name, dtype):
    logits = RNG.normal(size=(8, 5)) * 2
    target = RNG.integers(0, 5, size=8) if has_class_axis(name) else RNG.uniform(size=(8, 5))
    low = jnp.asarray(logits, dtype=getattr(jnp, dtype))
    y = jnp.asarray(target) if target.dtype.kind == "i" else jnp.asarray(target, low.dtype)
    function = getattr(mlj, name)
    value, grad = jax.value_and_grad(function)(low, y)
    assert value.dtype == low.dtype and grad.dtype == low.dtype
    # The same call on the float32 upcast of the same inputs, rounded once at the end.
    wide_y = y if target.dtype.kind == "i" else y.astype(jnp.float32)
    wide_value, wide_grad = jax.value_and_grad(function)(low.astype(jnp.float32), wide_y)
    assert value == wide_value.astype(low.dtype)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(wide_grad.astype(low.dtype)))


def test_float16_mean_does_not_overflow():
    logits = jnp.zeros((70000, 2), dtype=jnp.float16)  # Σ loss = 70000 log 2 > 65504
    labels = jnp.zeros((70000,), dtype=jnp.int32)
    value = jax.jit(mlj.cross_entropy)(logits, labels)
    assert value.dtype == jnp.float16
    assert float(value) == pytest.approx(np.log(2), rel=1e-3)


def test_float32_without_x64_and_no_warning():
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = jnp.asarray(RNG.normal(size=(6, 5)), dtype=jnp.float32)
        labels = jnp.asarray(RNG.integers(0, 5, size=6))
        assert labels.dtype == jnp.int32
        for function in (mlj.cross_entropy, mlj.focal_loss):
            value, grad = jax.jit(jax.value_and_grad(function))(logits, labels)
            assert value.dtype == grad.dtype == jnp.float32
    assert jax.config.jax_enable_x64  # the session's setting, untouched


# ------------------------------------------------------------------ semantics and transforms


def test_mean_over_nothing_is_zero_with_zero_gradient():
    logits = jnp.asarray(RNG.normal(size=(4, 3)))
    labels = jnp.full((4,), -100)
    for name in SOFTMAX:
        value, grad = jax.jit(jax.value_and_grad(getattr(mlj, name)))(logits, labels)
        assert float(value) == 0.0
        assert not np.any(np.asarray(grad))


def test_gamma_zero_focal_is_cross_entropy():
    logits, target = _softmax_case(False, False, True)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    a = jax.value_and_grad(functools.partial(mlj.focal_loss, gamma=0.0))(z, y)
    b = jax.value_and_grad(mlj.cross_entropy)(z, y)
    for x, w in zip(a, b, strict=True):
        close(x, w, F64)


def test_vmap_matches_a_loop():
    logits = jnp.asarray(RNG.normal(size=(3, 6, 5)))
    labels = jnp.asarray(RNG.integers(0, 5, size=(3, 6)))
    function = functools.partial(mlj.focal_loss, gamma=1.5, alpha=0.25)
    batched = jax.jit(jax.vmap(jax.value_and_grad(function)))(logits, labels)
    for i in range(3):
        value, grad = jax.value_and_grad(function)(logits[i], labels[i])
        close(batched[0][i], value, F64)
        close(batched[1][i], grad, F64)
    # vmap over the logits only, the labels shared
    shared = jax.vmap(function, in_axes=(0, None))(logits, labels[0])
    close(shared[1], function(logits[1], labels[0]), F64)


def test_traced_weights_and_static_hyperparameters():
    logits, target = _softmax_case(False, False, False)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    alpha = jnp.asarray([0.5, 1.0, 2.0, 0.1, 1.5])

    @functools.partial(jax.jit, static_argnames=("gamma", "reduction"))
    def loss(z, y, alpha, *, gamma, reduction):
        return mlj.focal_loss(z, y, gamma=gamma, alpha=alpha, reduction=reduction)

    expected = mln.focal_loss(logits, target, gamma=3.0, alpha=np.asarray(alpha))
    close(loss(z, y, alpha, gamma=3.0, reduction="mean"), expected, F64)
    # gamma traced (data: docs/semantics.md, Schedules), the same value
    close(jax.jit(mlj.focal_loss)(z, y, gamma=3.0, alpha=alpha), expected, F64)
    with pytest.raises(TypeError, match="reduction must be a static Python value"):
        jax.jit(mlj.focal_loss)(z, y, reduction=jnp.asarray(1))


def test_numpy_and_list_inputs_are_accepted():
    logits, target = _softmax_case(False, False, False)
    expected = mln.focal_loss(logits, target, alpha=[0.5, 1.0, 2.0, 0.1, 1.5])
    got = mlj.focal_loss(logits, target, alpha=np.asarray([0.5, 1.0, 2.0, 0.1, 1.5]))
    assert isinstance(got, jax.Array)
    close(got, expected, F64)


@pytest.mark.parametrize("name", SOFTMAX)
def test_top_level_dispatch_routes_jax_arrays_here(name):
    logits, target = _softmax_case(True, False, True)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    got = getattr(multiloss, name)(z, y, reduction="none")  # axis: the JAX default, -1
    assert isinstance(got, jax.Array)
    close(got, getattr(mlj, name)(z, y, reduction="none"), 0)
    close(jax.grad(getattr(multiloss, name))(z, y), jax.grad(getattr(mlj, name))(z, y), 0)


def test_sigmoid_top_level_dispatch():
    x = jnp.asarray(RNG.normal(size=(4, 3)))
    y = jnp.asarray(RNG.integers(0, 2, size=(4, 3)), dtype=jnp.float64)
    close(multiloss.sigmoid_focal_loss(x, y), mlj.sigmoid_focal_loss(x, y), 0)
    close(multiloss.binary_cross_entropy(x, y), mlj.binary_cross_entropy(x, y), 0)


def test_doctests():
    # multiloss.jax is a package: its functions' examples live in its modules
    attempted = failed = 0
    for module in (mlj, mlj.losses, mlj._validation):
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted > 10
    assert failed == 0


def test_checkpoint_scan_and_shard_map():
    logits = jnp.asarray(RNG.normal(size=(4, 6, 5)))
    labels = jnp.asarray(RNG.integers(0, 5, size=(4, 6)))
    loss = functools.partial(mlj.focal_loss, gamma=0.5, label_smoothing=0.1)
    expected = jax.vmap(jax.value_and_grad(loss))(logits, labels)

    def accumulate(total, batch):  # gradient accumulation over micro-batches
        value, grad = jax.value_and_grad(jax.checkpoint(loss))(*batch)
        return total + value, grad

    total, grads = jax.jit(lambda z, y: jax.lax.scan(accumulate, 0.0, (z, y)))(logits, labels)
    close(total, jnp.sum(expected[0]), F64)
    close(grads, expected[1], F64)
    mesh = jax.make_mesh((1,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    spec = jax.sharding.PartitionSpec("batch")
    mapped = jax.jit(
        jax.shard_map(
            lambda z, y: jax.lax.psum(mlj.cross_entropy(z, y, reduction="sum"), "batch"),
            mesh=mesh,
            in_specs=(spec, spec),
            out_specs=jax.sharding.PartitionSpec(),
        )
    )
    close(
        mapped(logits[0], labels[0]), mlj.cross_entropy(logits[0], labels[0], reduction="sum"), F64
    )
