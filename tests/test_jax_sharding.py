"""multiloss.jax on arrays sharded over 8 (simulated CPU) devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX starts, and
this test process has started it already, so the check runs in a subprocess (a fresh
interpreter, without ``jax_enable_x64``). Sharded loss and gradient must equal the
unsharded ones, with the batch or the class axis sharded, in Auto and Explicit mesh
modes; per-element losses keep the batch sharding; a Hessian-vector product and the
checkify path work on sharded arrays too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import functools
    import warnings

    warnings.simplefilter("error")  # x64 is off here: no int64 truncation warning either

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import checkify
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import multiloss.jax as mlj

    assert len(jax.devices()) == 8, jax.devices()
    assert not jax.config.jax_enable_x64
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(64, 16)) * 3).astype(np.float32)
    labels = rng.integers(0, 16, size=64).astype(np.int32)
    labels[::7] = -100
    uniform = rng.uniform(size=(64, 16)).astype(np.float32)
    CASES = {
        "ce": ("cross_entropy", {}, labels),
        "ce-weight-smoothing": (
            "cross_entropy", {"weight": np.linspace(0.5, 2, 16), "label_smoothing": 0.1}, labels
        ),
        "focal-alpha": ("focal_loss", {"gamma": 2.0, "alpha": 0.25}, labels),
        "focal-none": ("focal_loss", {"gamma": 0.5, "reduction": "none"}, labels),
        "ce-probabilities": ("cross_entropy", {}, uniform / uniform.sum(-1, keepdims=True)),
        "bce-pos-weight": (
            "binary_cross_entropy", {"pos_weight": np.linspace(0.5, 2, 16)},
            (uniform > 0.5).astype(np.float32),
        ),
        "sigmoid-focal": ("sigmoid_focal_loss", {"gamma": 2.0}, uniform),
    }
    STEPS, EXPECTED = {}, {}
    for key, (name, options, target) in CASES.items():
        function = functools.partial(getattr(mlj, name), **options)
        STEPS[key] = jax.jit(jax.value_and_grad(lambda z, y, f=function: jnp.sum(f(z, y))))
        EXPECTED[key] = STEPS[key](jnp.asarray(z), jnp.asarray(target))

    def check(mesh, spec, keys):
        for key in keys:
            target = CASES[key][2]
            target_spec = spec if target.ndim == 2 else P(spec[0])
            with jax.set_mesh(mesh):
                zs = jax.device_put(z, NamedSharding(mesh, spec))
                ys = jax.device_put(target, NamedSharding(mesh, target_spec))
                value, grad = STEPS[key](zs, ys)
            assert len(zs.sharding.device_set) == 8
            np.testing.assert_allclose(value, EXPECTED[key][0], rtol=2e-6, atol=1e-6)
            np.testing.assert_allclose(grad, EXPECTED[key][1], rtol=2e-6, atol=1e-7)
            assert grad.sharding.spec == zs.sharding.spec, (key, grad.sharding)

    explicit = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    auto = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    check(explicit, P("data", "model"), list(CASES))  # classes sharded too
    check(explicit, P(("data", "model"), None), ["ce", "focal-none", "sigmoid-focal"])
    check(auto, P("data", "model"), ["ce-weight-smoothing", "focal-alpha", "bce-pos-weight"])
    check(auto, P("data", None), ["ce", "focal-none"])

    # Forward mode: a Hessian-vector product on sharded arrays.
    loss = functools.partial(mlj.focal_loss, gamma=0.5, label_smoothing=0.1)
    hvp = jax.jit(lambda z, y, t: jax.jvp(lambda z: jax.grad(loss)(z, y), (z,), (t,))[1])
    tangent = rng.normal(size=z.shape).astype(np.float32)
    expected = hvp(jnp.asarray(z), jnp.asarray(labels), jnp.asarray(tangent))
    for mesh in (explicit, auto):
        with jax.set_mesh(mesh):
            sharding = NamedSharding(mesh, P("data", "model"))
            got = hvp(
                jax.device_put(z, sharding),
                jax.device_put(labels, NamedSharding(mesh, P("data"))),
                jax.device_put(tangent, sharding),
            )
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)

    # Explicit axes without a mesh context: eager and jitted per-element losses, vmap.
    zs = jax.device_put(z, NamedSharding(explicit, P("data", "model")))
    ys = jax.device_put(labels, NamedSharding(explicit, P("data")))
    reference = mlj.focal_loss(jnp.asarray(z), jnp.asarray(labels), reduction="none")
    for function in (mlj.focal_loss, jax.jit(mlj.focal_loss, static_argnames="reduction")):
        per_element = function(zs, ys, reduction="none")
        assert per_element.sharding.spec == P("data"), per_element.sharding
        np.testing.assert_allclose(per_element, reference, rtol=2e-6, atol=1e-6)
    batched = jax.jit(jax.vmap(mlj.cross_entropy))(zs.reshape(4, 16, 16), ys.reshape(4, 16))
    np.testing.assert_allclose(
        batched,
        jax.vmap(mlj.cross_entropy)(
            jnp.asarray(z).reshape(4, 16, 16), jnp.asarray(labels).reshape(4, 16)
        ),
        rtol=2e-6,
    )

    # checkify on sharded arrays: an out-of-range label becomes an error.
    bad = jax.device_put(np.where(labels == 5, 99, labels), NamedSharding(explicit, P("data")))
    try:
        mlj.checked(jax.jit(mlj.cross_entropy))(zs, bad)
    except checkify.JaxRuntimeError as error:
        assert "out of range [0, 16)" in str(error) and "99" in str(error), error
    else:
        raise AssertionError("no error for an out-of-range label")
    assert np.isnan(jax.jit(mlj.cross_entropy)(zs, bad))

    assert not jax.config.jax_enable_x64  # the library changed no global setting
    print("SHARDING OK")
    """
)


def test_sharded_loss_and_gradient_equal_unsharded():
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = (
        environment.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    environment.pop("JAX_ENABLE_X64", None)
    environment["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "SHARDING OK" in result.stdout
