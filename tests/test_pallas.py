"""The Pallas engine of multiloss.jax (`multiloss.jax.engine("pallas")`), in interpret mode.

Every loss and option against the independent float64 oracles of ``tests/oracles.py``,
under `jax.jit(jax.value_and_grad(...))`, in float32 and bfloat16; gradients through
`vmap` and with respect to probability targets and weights; the engine's choice rules;
`checked`; arrays sharded over 8 simulated devices (a subprocess). On this CPU the
kernels run in Pallas's interpreter; each case compiles once (XLA's backend optimisation
is turned down for the tests: the kernels' numbers do not depend on it).
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
from oracles import (
    np_asymmetric_loss,
    np_binary_cross_entropy,
    np_cross_entropy_ext,
    np_focal_loss_ext,
    np_poly_loss,
    np_sigmoid_focal_loss,
)

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("jax.experimental.pallas")

import multiloss.jax as mlj  # noqa: E402
from multiloss.jax._engine import current_engine, lowering_for, uses_kernels  # noqa: E402
from multiloss.jax.distributed import vocab_parallel_focal_loss  # noqa: E402

ORACLES = {
    "cross_entropy": np_cross_entropy_ext,
    "focal_loss": np_focal_loss_ext,
    "poly_loss": np_poly_loss,
    "binary_cross_entropy": np_binary_cross_entropy,
    "sigmoid_focal_loss": np_sigmoid_focal_loss,
    "asymmetric_loss": np_asymmetric_loss,
}
FAST = {"xla_backend_optimization_level": 0}
F32 = 1e-5  # relative to 1 + |reference|: float32 sums over a few hundred classes
W4 = [0.5, 2.0, 1.0, 0.25]


def _jit(function):
    return jax.jit(function, compiler_options=FAST)


def _softmax(name, shape, *, target="hard", ignore=None, seed=0, **options):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.5, size=shape)
    axis = options.get("axis", -1)
    num_classes = shape[axis]
    batch = tuple(np.delete(np.array(shape), axis))
    if target == "hard":
        labels = rng.integers(0, num_classes, size=batch)
        if ignore is not None:
            labels.reshape(-1)[::3] = ignore
            if ignore != -100:
                options["ignore_index"] = ignore
    else:
        labels = np.moveaxis(rng.dirichlet(np.ones(num_classes), size=batch), -1, axis)
    return name, logits, labels, options


def _sigmoid(name, shape, *, target="hard", seed=1, **options):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=shape)
    if target == "hard":
        labels = (rng.uniform(size=shape) < 0.4).astype(np.float64)
    else:
        labels = rng.uniform(size=shape)
    return name, logits, labels, options


CE, FL, PL = "cross_entropy", "focal_loss", "poly_loss"
BCE, SFL, ASL = "binary_cross_entropy", "sigmoid_focal_loss", "asymmetric_loss"
CASES = {
    # cross-entropy: every option
    "ce": _softmax(CE, (6, 4), ignore=-100),
    "ce-weight-sum": _softmax(CE, (6, 4), ignore=-100, weight=W4, reduction="sum"),
    "ce-ignore-in-range-weight": _softmax(CE, (6, 4), ignore=1, weight=W4),
    "ce-smoothing": _softmax(CE, (6, 4), ignore=-100, label_smoothing=0.1),
    "ce-kdim-axis1-weight-smoothing-none": _softmax(
        CE, (2, 4, 3), ignore=2, axis=1, weight=W4, label_smoothing=0.3, reduction="none"
    ),
    "ce-probabilities": _softmax(CE, (6, 4), target="soft"),
    "ce-probabilities-weight-smoothing": _softmax(
        CE, (5, 4), target="soft", weight=W4, label_smoothing=0.2
    ),
    "ce-z-loss-weight": _softmax(CE, (6, 4), ignore=-100, weight=W4, z_loss=1e-2),
    "ce-softcap-none": _softmax(CE, (6, 4), softcap=3.0, reduction="none"),
    "ce-3-chunks": _softmax(CE, (9, 384), ignore=-100),
    "ce-2-chunks-unpadded": _softmax(CE, (16, 4096), ignore=-100, z_loss=1e-3),
    # 300 classes: 3 chunks of 128, the last one masked past the class count (not padded)
    "ce-masked-tail-weight-smoothing": _softmax(
        CE, (6, 300), ignore=-100, weight=np.linspace(0.5, 2.0, 300), label_smoothing=0.1
    ),
    "focal-probabilities-masked-tail": _softmax(FL, (5, 300), target="soft", gamma=2.0),
    "ce-unbatched": _softmax(CE, (7,)),
    # focal
    "focal-alpha-scalar": _softmax(FL, (6, 4), ignore=-100, gamma=2.0, alpha=0.25),
    "focal-gamma0.5-alpha-none": _softmax(FL, (6, 4), gamma=0.5, alpha=W4, reduction="none"),
    "focal-smoothing": _softmax(FL, (6, 4), gamma=1.0, label_smoothing=0.1, ignore=-100),
    "focal-probabilities-alpha": _softmax(FL, (6, 4), target="soft", gamma=2.0, alpha=0.3),
    "focal-z-loss-softcap-alpha": _softmax(
        FL, (6, 200), ignore=-100, gamma=3.0, alpha=0.25, z_loss=1e-2, softcap=4.0
    ),
    # poly
    "poly": _softmax(PL, (6, 4), ignore=-100, epsilon=1.0),
    "poly-gamma-alpha-smoothing-sum": _softmax(
        PL, (6, 4), epsilon=2.0, gamma=0.5, alpha=W4, label_smoothing=0.1, reduction="sum"
    ),
    # the sigmoid family
    "bce": _sigmoid(BCE, (6, 4)),
    "bce-pos-weight-soft": _sigmoid(BCE, (6, 4), target="soft", pos_weight=[1.0, 2.0, 0.5, 3.0]),
    "bce-weight-elementwise-none": _sigmoid(
        BCE, (6, 4), weight=np.random.default_rng(3).uniform(size=(6, 4)), reduction="none"
    ),
    "bce-3d-row-weight-pos-weight-sum": _sigmoid(
        BCE,
        (2, 3, 4),
        weight=np.random.default_rng(4).uniform(size=(3, 1)),
        pos_weight=np.array([1.0, 2.0, 0.5, 3.0]),
        reduction="sum",
    ),
    "bce-0d": _sigmoid(BCE, ()),
    "sigmoid-focal": _sigmoid(SFL, (6, 300)),
    "sigmoid-focal-alpha-none-gamma0.5-none": _sigmoid(
        SFL, (6, 4), target="soft", alpha=None, gamma=0.5, reduction="none"
    ),
    "asymmetric": _sigmoid(ASL, (6, 4)),
    "asymmetric-clip0-gamma-pos-sum": _sigmoid(
        ASL, (6, 4), target="soft", gamma_pos=1.0, clip=0.0, reduction="sum"
    ),
}
BF16_CASES = [
    "ce-3-chunks",
    "ce-masked-tail-weight-smoothing",
    "focal-smoothing",
    "focal-z-loss-softcap-alpha",
    "poly",
    "ce-probabilities",
    "bce-pos-weight-soft",
    "sigmoid-focal",
    "asymmetric",
]


def _loss_function(name, options, target):
    loss = functools.partial(getattr(mlj, name), **options)
    return lambda logits: jnp.sum(loss(logits, target)), lambda logits: loss(logits, target)


def _run(name, logits, target, options, dtype):
    """value, (sum's gradient) of the Pallas engine under jit, and the loss itself."""
    z = jnp.asarray(logits, dtype=dtype)
    y = jnp.asarray(target) if np.asarray(target).dtype.kind in "iu" else jnp.asarray(target, dtype)
    total, per_call = _loss_function(name, options, y)
    with mlj.engine("pallas"):
        step = _jit(lambda z: (per_call(z), jax.grad(total)(z)))
        value, grad = step(z)
    return value, grad


def _oracle(name, logits, target, options, dtype):
    """The float64 oracle at the inputs rounded to `dtype` (the test's own inputs)."""
    rounded = np.asarray(jnp.asarray(logits, dtype=dtype), dtype=np.float64)
    if np.asarray(target).dtype.kind == "f":
        target = np.asarray(jnp.asarray(target, dtype=dtype), dtype=np.float64)
    return ORACLES[name](rounded, target, **options)


@pytest.mark.parametrize("case", list(CASES))
def test_float32_matches_float64_oracle(case):
    name, logits, target, options = CASES[case]
    value, grad = _run(name, logits, target, options, jnp.float32)
    expected, expected_grad = _oracle(name, logits, target, options, jnp.float32)
    assert value.dtype == jnp.float32 and grad.dtype == jnp.float32
    assert grad.shape == np.shape(logits)
    assert_close(value, expected, rtol=F32, atol=F32, what="loss")
    assert_close(grad, expected_grad, rtol=F32, atol=F32, what="gradient")


@pytest.mark.parametrize("case", BF16_CASES)
def test_bfloat16_matches_float64_oracle(case):
    """bf16 in, bf16 out, float32 inside: each result within a few bf16 roundings (2^-8)."""
    name, logits, target, options = CASES[case]
    value, grad = _run(name, logits, target, options, jnp.bfloat16)
    expected, expected_grad = _oracle(name, logits, target, options, jnp.bfloat16)
    assert value.dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
    value, grad = np.asarray(value, np.float64), np.asarray(grad, np.float64)
    assert_close(value, expected, rtol=1e-2, atol=1e-2, what="loss")
    scale = float(np.max(np.abs(expected_grad)))
    assert_close(grad, expected_grad, rtol=1e-2, atol=1e-2 * scale, what="gradient")


def test_float64_is_exact():
    """With float64 logits (x64 is on in this session) the kernels compute in float64."""
    name, logits, target, options = CASES["focal-z-loss-softcap-alpha"]
    value, grad = _run(name, logits, target, options, jnp.float64)
    expected, expected_grad = _oracle(name, logits, target, options, jnp.float64)
    assert value.dtype == jnp.float64
    assert_close(value, expected, rtol=1e-12, atol=1e-12, what="loss")
    assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12, what="gradient")


def test_extreme_logits():
    """Shift invariance at ±1e4, -inf at a non-target logit (finite loss, zero gradient
    there), -inf at the target (+inf), and a mean over nothing (0 with a zero gradient)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(8, 130)).astype(np.float32)
    labels = rng.integers(0, 130, size=8).astype(np.int32)
    labels[1] = 3
    logits = base.copy()
    logits[0] += 1e4
    logits[2] -= 1e4
    logits[1, 7] = -np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        expected, expected_grad = np_focal_loss_ext(
            logits.astype(np.float64), labels, gamma=2.0, reduction="none"
        )
    value, grad = _run(FL, logits, labels, {"gamma": 2.0, "reduction": "none"}, jnp.float32)
    assert_close(value, expected, rtol=F32, atol=F32, what="loss")
    assert grad[1, 7] == 0.0
    assert_close(grad, expected_grad, rtol=F32, atol=F32, what="gradient")
    at_target = logits.copy()
    at_target[4, labels[4]] = -np.inf
    value, _ = _run(CE, at_target, labels, {"reduction": "none"}, jnp.float32)
    assert value[4] == np.inf and np.all(np.isfinite(np.delete(np.asarray(value), 4)))
    ignored = np.full(8, -100, dtype=np.int32)
    value, grad = _run(CE, base, ignored, {}, jnp.float32)
    assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_vmap_of_grad_and_operand_gradients_match_xla():
    """`vmap(grad)` over a batch of problems, and the gradients with respect to a
    probability target and a class weight (the core's closed forms), equal the XLA
    engine's."""
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(3, 5, 6)), jnp.float32)
    y = jnp.asarray(rng.dirichlet(np.ones(6), size=(3, 5)), jnp.float32)
    w = jnp.asarray(rng.uniform(0.5, 2.0, size=6), jnp.float32)

    def loss(z, y, w):
        return mlj.focal_loss(z, y, gamma=1.5, alpha=w, label_smoothing=0.1)

    per_problem = jax.vmap(jax.grad(loss, argnums=(0, 1, 2)), in_axes=(0, 0, None))
    results = {}
    for name in ("pallas", "xla"):
        with mlj.engine(name):
            results[name] = _jit(per_problem)(z, y, w)
    for ours, reference in zip(results["pallas"], results["xla"], strict=True):
        assert_close(ours, reference, rtol=F32, atol=F32)


def test_fused_linear_head_chunks_run_the_kernels():
    """`linear_focal_loss`'s chunk step runs the softmax kernels under the engine (its own
    jit keys its cache on the engine) and gives the XLA engine's loss and gradients, with
    smoothing, z-loss and per-row losses ("none": the kernels' O(rows) residuals kept
    across chunks, the logits formed again in backward)."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(300, 16)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(256, 16)) * 0.3, jnp.float32)
    t = jnp.asarray(rng.integers(0, 256, size=300), jnp.int32).at[::5].set(-100)
    for options in ({"label_smoothing": 0.1, "z_loss": 1e-3}, {"reduction": "none"}):

        def loss(x, w, options=options):
            out = mlj.linear_focal_loss(x, w, t, gamma=2.0, chunk_size=128, **options)
            return jnp.sum(out)

        results = {}
        for name in ("pallas", "xla"):
            with mlj.engine(name):
                step = jax.value_and_grad(loss, argnums=(0, 1))
                assert ("pallas_call" in str(jax.make_jaxpr(step)(x, w))) == (name == "pallas")
                results[name] = _jit(step)(x, w)
        for ours, reference in zip(
            jax.tree.leaves(results["pallas"]), jax.tree.leaves(results["xla"]), strict=True
        ):
            assert_close(ours, reference, rtol=F32, atol=F32)


def test_engine_choice():
    """ "auto" is XLA here; "pallas" puts the kernels in what is traced inside the block;
    a function keeps the engine it was traced with (JAX's caches do not see the setting)."""
    z = jnp.zeros((8, 16), jnp.float32)
    y = jnp.zeros(8, jnp.int32)

    def kernels_in(function):
        return "pallas_call" in str(jax.make_jaxpr(function)(z))

    def loss():  # a fresh function each time: JAX caches traces by function
        return lambda z: mlj.cross_entropy(z, y)

    assert current_engine() == "auto" and not uses_kernels()  # XLA until measured
    assert not kernels_in(loss())
    with mlj.engine("pallas"):
        assert current_engine() == "pallas" and uses_kernels()
        assert kernels_in(loss()) and kernels_in(jax.grad(loss()))
        with mlj.engine("xla"):
            assert not kernels_in(loss())
        compiled = jax.jit(loss())
        compiled(z)  # traced here, with the kernels
    assert current_engine() == "auto"
    assert "pallas_call" in str(compiled.trace(z).jaxpr)  # the cached trace keeps them
    with (
        pytest.raises(ValueError, match=r"engine must be one of .*got 'triton'"),
        mlj.engine("triton"),
    ):
        pass


def test_checked_still_catches_bad_labels():
    z = jnp.zeros((8, 16), jnp.float32)
    bad = jnp.array([0, 1, 2, 3, 16, 5, 6, -100], jnp.int32)
    with mlj.engine("pallas"):
        loss = _jit(lambda z, y: mlj.cross_entropy(z, y, reduction="none"))
        assert np.isnan(np.asarray(loss(z, bad))[4])  # traced: NaN, never a clamp
        with pytest.raises(Exception, match=r"out of range \[0, 16\)"):
            mlj.checked(jax.jit(lambda z, y: mlj.cross_entropy(z, y)))(z, bad)


def test_forward_mode_is_refused_clearly():
    """The kernels are reverse mode only (a custom_vjp): forward mode raises an error that
    names the engine and the way out; under engine("xla") the same jvp runs."""
    z = jnp.zeros((8, 16), jnp.float32)
    y = jnp.zeros(8, jnp.int32)
    forward = functools.partial(jax.jvp, lambda z: mlj.binary_cross_entropy(z, z), (z,), (z,))
    for function in (lambda: jax.jvp(lambda z: mlj.cross_entropy(z, y), (z,), (z,)), forward):
        with mlj.engine("pallas"), pytest.raises(TypeError) as caught:
            function()
        message = str(caught.value)
        assert "engine('pallas')" in message and "engine('xla')" in message, message
    with mlj.engine("xla"):
        _, tangent = jax.jvp(lambda z: mlj.cross_entropy(z, y), (z,), (jnp.ones_like(z),))
    assert float(tangent) == pytest.approx(0.0, abs=1e-6)  # Σ_k (p_k - onehot) = 0


LOWERED = [
    (CE, {"weight": W4 * 250, "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 30.0}, "index"),
    (FL, {"gamma": 0.5, "alpha": 0.25}, "index"),
    (PL, {"gamma": 1.5, "epsilon": 1.0, "reduction": "none"}, "index"),
    (FL, {"gamma": 2.0}, "probability"),
    (BCE, {"pos_weight": np.linspace(0, 1, 1000), "weight": np.ones((60, 1))}, "probability"),
    (SFL, {"gamma": 0.5, "reduction": "none"}, "probability"),
    (ASL, {}, "probability"),
]


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_kernels_lower_for_gpu_and_tpu(platform):
    """Every family's kernels, float32 and bfloat16, lower for Triton (GPU) and Mosaic (TPU)
    on this CPU: the blocks and every primitive inside are accepted by both lowerings
    (what their compilers then do needs the device). Two custom calls per value_and_grad,
    the vocabulary-parallel losses' too."""
    for dtype in (jnp.float32, jnp.bfloat16):
        for name, options, kind in LOWERED:
            z = jax.ShapeDtypeStruct((60, 1000), dtype)  # the last row block masked too
            y = (
                jax.ShapeDtypeStruct((60,), jnp.int32)
                if kind == "index"
                else jax.ShapeDtypeStruct((60, 1000), jnp.float32)
            )
            loss = functools.partial(getattr(mlj, name), **options)
            step = jax.value_and_grad(lambda z, y, loss=loss: jnp.sum(loss(z, y)))
            with mlj.engine("pallas"), lowering_for(platform):
                lowered = jax.jit(step).trace(z, y).lower(lowering_platforms=(platform,))
            text = lowered.as_text()
            kernel = "tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton"
            assert text.count(f"custom_call @{kernel}") == 2, (name, options, dtype)
    # the vocabulary-parallel entry: the row-partials kernel and the backward kernel
    mesh = jax.make_mesh((1,), ("model",))
    sharded = jax.value_and_grad(
        lambda z, y: vocab_parallel_focal_loss(z, y, axis_name="model", mesh=mesh, gamma=2.0)
    )
    z = jax.ShapeDtypeStruct((60, 1000), jnp.bfloat16)
    with mlj.engine("pallas"), lowering_for(platform):
        lowered = jax.jit(sharded).trace(z, jax.ShapeDtypeStruct((60,), jnp.int32))
        text = lowered.lower(lowering_platforms=(platform,)).as_text()
    assert text.count(f"custom_call @{kernel}") == 2


SHARDED = textwrap.dedent(
    """
    import functools
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import multiloss.jax as mlj

    assert len(jax.devices()) == 8, jax.devices()
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(64, 16)) * 3).astype(np.float32)
    labels = rng.integers(0, 16, size=64).astype(np.int32)
    labels[::7] = -100
    uniform = rng.uniform(size=(64, 16)).astype(np.float32)
    cases = [
        ("focal_loss", {"gamma": 2.0, "alpha": 0.25, "label_smoothing": 0.1}, labels),
        ("cross_entropy", {"reduction": "none", "weight": np.linspace(0.5, 2, 16)}, labels),
        ("binary_cross_entropy", {"pos_weight": np.linspace(0.5, 2, 16)}, uniform),
    ]
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    rows = NamedSharding(mesh, P("batch"))
    for name, options, target in cases:
        loss = functools.partial(getattr(mlj, name), **options)
        step = lambda z, y: jax.value_and_grad(lambda z: jnp.sum(loss(z, y)))(z)
        with mlj.engine("pallas"):
            value, grad = jax.jit(step)(jax.device_put(z, rows), jax.device_put(target, rows))
        with mlj.engine("xla"):
            expected_value, expected_grad = jax.jit(step)(z, target)
        np.testing.assert_allclose(value, expected_value, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(grad, expected_grad, rtol=2e-5, atol=2e-5)
    print("ok")
    """
)


def test_sharded_over_8_devices():
    """Batch-sharded logits and targets on 8 simulated CPU devices (a fresh process: the
    device count is fixed when JAX starts) give the unsharded XLA engine's numbers."""
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    environment["JAX_PLATFORMS"] = "cpu"
    root = Path(__file__).resolve().parents[1]
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(root), environment.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-c", SHARDED],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


VOCAB_PARALLEL = textwrap.dedent(
    r"""
    import functools, re

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    import multiloss.jax as mlj
    from multiloss.jax import distributed as vp

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    rng = np.random.default_rng(1)
    C = 40  # 10 classes a shard: the kernels' last chunk is masked; 6 rows a device
    z = rng.normal(size=(12, C)) * 3
    t = rng.integers(0, C, size=12)
    t[[2, 7]] = -100
    w = rng.uniform(0.25, 2.0, size=C)

    def oracle(z, kind, weight=None, alpha=None, gamma=0.0, epsilon=0.0, z_loss=0.0,
               reduction="mean", smoothing=0.0):
        # float64 numpy, written out: PyTorch's weighted cross-entropy (mean over Σ w_t),
        # the focal and poly terms (mean over the counted rows), the z-loss.
        m = z.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
        log_p = z - lse[:, None]
        counted = t != -100
        target = np.where(counted, t, 0)
        lp_t = log_p[np.arange(len(t)), target]
        p_t = np.exp(lp_t)
        if kind == "ce":
            c = np.ones(C) if weight is None else weight
            loss = -(1 - smoothing) * c[target] * lp_t - smoothing / C * (c * log_p).sum(1)
            omega = c[target] if weight is not None else np.ones(len(t))
        else:
            c = np.ones(C) if alpha is None else np.r_[1 - alpha, np.full(C - 1, alpha)]
            loss = -c[target] * (1 - p_t) ** gamma * lp_t
            if kind == "poly":
                loss = loss + c[target] * epsilon * (1 - p_t) ** (gamma + 1)
            omega = np.ones(len(t))
        loss = np.where(counted, loss + z_loss * omega * lse**2, 0.0)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        return loss.sum() / (omega * counted).sum()

    def oracle_grad(function):
        # central differences of the float64 oracle's sum
        grad, h = np.zeros_like(z), 1e-6
        for index in np.ndindex(*z.shape):
            up, down = z.copy(), z.copy()
            up[index] += h
            down[index] -= h
            grad[index] = (np.sum(function(up)) - np.sum(function(down))) / (2 * h)
        return grad

    EVERY = (jnp.float64, jnp.float32, jnp.bfloat16)
    CASES = [  # the oracle takes the face's options by the same names
        ("ce", vp.vocab_parallel_cross_entropy, dict(weight=w, z_loss=1e-2), EVERY),
        ("ce", vp.vocab_parallel_cross_entropy, dict(reduction="none"), (jnp.bfloat16,)),
        ("focal", vp.vocab_parallel_focal_loss, dict(gamma=2.0, alpha=0.25, reduction="sum"),
         (jnp.float32,)),
        ("poly", vp.vocab_parallel_poly_loss, dict(epsilon=1.0, gamma=0.5), (jnp.float32,)),
    ]
    TOLERANCE = {jnp.float64: 1e-7, jnp.float32: 2e-5, jnp.bfloat16: 3e-2}
    failures = []

    def check(name, got, expected, tolerance):
        got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
        scale = max(1.0, float(np.max(np.abs(expected))))
        if got.shape != expected.shape or np.max(np.abs(got - expected)) > tolerance * scale:
            failures.append(f"{name}: {np.max(np.abs(got - expected))}")

    def kernels_in(function, *args):
        return str(jax.make_jaxpr(function)(*args)).count("pallas_call")

    for kind, face, options, dtypes in CASES:
        expected = oracle(z, kind, **options)
        expected_grad = oracle_grad(lambda x: oracle(x, kind, **options))
        for dtype in dtypes:
            logits = jnp.asarray(z, dtype)
            step = jax.value_and_grad(lambda x: jnp.sum(
                face(x, t, axis_name="model", mesh=mesh, batch_axes="data", **options)))
            with mlj.engine("pallas"):
                count = kernels_in(step, logits)
                compiled = jax.jit(step).lower(logits).compile()
            value, grad = compiled(logits)
            reduces = len(re.findall(r"all-reduce(?:-start)?\(", compiled.as_text()))
            name = f"{kind} {options.get('reduction', 'mean')} {jnp.dtype(dtype).name}"
            check(name + " loss", value, np.sum(expected), TOLERANCE[dtype])
            check(name + " grad", grad, expected_grad, 10 * TOLERANCE[dtype])
            if count != 2 or grad.dtype != dtype or reduces != 3:
                failures.append(f"{name}: {count} kernels, {reduces} all-reduces, {grad.dtype}")

    # Inside shard_map on the local blocks, with the gradient taken inside.
    local = jax.jit(jax.shard_map(
        jax.value_and_grad(lambda x, y: vp.vocab_parallel_cross_entropy(x, y, axis_name="model")),
        mesh=mesh, in_specs=(P(None, "model"), P()), out_specs=(P(), P(None, "model")),
    ))
    with mlj.engine("pallas"):
        value, grad = local(jnp.asarray(z), jnp.asarray(t))
    check("shard_map loss", value, oracle(z, "ce"), 1e-7)
    check("shard_map grad", grad, oracle_grad(lambda x: oracle(x, "ce")), 1e-6)

    # Label smoothing reads the logits twice: it stays on the core's XLA path.
    smooth = jax.value_and_grad(lambda x: vp.vocab_parallel_cross_entropy(
        x, t, axis_name="model", mesh=mesh, label_smoothing=0.1))
    with mlj.engine("pallas"):
        value, grad = jax.jit(smooth)(jnp.asarray(z))
        count = kernels_in(smooth, jnp.asarray(z))
    check("smoothing loss", value, oracle(z, "ce", smoothing=0.1), 1e-7)
    check("smoothing grad", grad, oracle_grad(lambda x: oracle(x, "ce", smoothing=0.1)), 1e-6)
    if count:
        failures.append(f"smoothing ran {count} kernels")

    # An out-of-range class under jit: NaN for its row (never a clamp).
    bad = t.copy()
    bad[4] = C + 3
    none = jax.jit(lambda x, y: vp.vocab_parallel_cross_entropy(
        x, y, axis_name="model", mesh=mesh, reduction="none"))
    with mlj.engine("pallas"):
        per_row = np.asarray(none(jnp.asarray(z), jnp.asarray(bad)))
    if not (np.isnan(per_row[4]) and np.isfinite(np.delete(per_row, 4)).all()):
        failures.append(f"out-of-range class: {per_row}")
    print("\n".join(failures) if failures else "ok")
    """
)


def test_vocab_parallel_kernels_on_8_devices():
    """The vocabulary-parallel losses under engine("pallas") on a (data 2, model 4) mesh of
    8 simulated devices: 2 kernels (the shard's row partials, the backward), the same 3
    all-reduces as the XLA path; loss and gradient against a float64 numpy oracle (its
    gradient by central differences) in float64, float32 and bfloat16; inside shard_map
    too; label smoothing stays on XLA; an out-of-range class under jit gives NaN."""
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    environment["JAX_PLATFORMS"] = "cpu"
    root = Path(__file__).resolve().parents[1]
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(root), environment.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-c", VOCAB_PARALLEL],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok"), result.stdout[-3000:]


def test_cost_model_meets_the_targets_at_every_softmax_benchmark_shape(monkeypatch):
    """benchmarks/pallas_costs.py on the CUDA lowering, at every softmax benchmark shape
    (class counts of 10, 21, 100, 1000, 32000, 128256; float32 and bfloat16): 2 kernels
    and 3 logits-sized passes per value_and_grad for class indices (no padded copy of the
    logits, no padded gradient sliced), the small operations around them few; also where
    the row count is not a multiple of the block's (1000 rows of bfloat16, blocks of 16)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pallas_costs
    from harness import SOFTMAX, SOFTMAX_FULL, Shape

    odd = Shape("1000×1000 bfloat16", (1000, 1000), dtype="bfloat16")
    for shape in [*SOFTMAX_FULL, *pallas_costs.LARGE, odd]:
        rows = pallas_costs.measure(SOFTMAX, shape, cpu=False)
        kernels = [row for row in rows if row.implementation.endswith(pallas_costs.PALLAS)]
        assert kernels, shape
        for row in kernels:
            assert (row.gpu_kernels, row.gpu_passes) == (2, 3), row
            assert row.gpu_other_ops <= 12, row  # 6–9 without x64; int64 targets add a clip


def test_cost_model_counts_an_elementwise_kernel(monkeypatch):
    """BCE on the CUDA lowering: 2 kernels, 5 passes (the target is logits-sized)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pallas_costs
    from harness import Shape

    rows = pallas_costs.measure("bce", Shape("256×80", (256, 80)), cpu=False)
    kernels = [row for row in rows if row.implementation.endswith(pallas_costs.PALLAS)]
    assert kernels
    for row in kernels:
        assert (row.gpu_kernels, row.gpu_passes) == (2, 5), row
