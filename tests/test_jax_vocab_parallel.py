"""multiloss.jax.distributed: vocabulary-parallel losses on 8 simulated CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX starts, and
this test process has started it already, so the checks run in a subprocess (with
float64 enabled there, for comparisons to 1e-12). On a (data 2, model 4) mesh with the
classes split over "model": the loss and the gradient of each device's slice equal the
unsharded ``multiloss.jax`` losses, under ``jax.shard_map`` with ``axis_name`` (the
gradient taken inside and outside it) and under ``jit`` on global arrays with a
``NamedSharding`` (``mesh=``, with and without ``batch_axes``, Auto and Explicit axes);
the compiled HLO holds two all-reduces for the forward pass and none more for the
gradient (three with the batch split too: one over "data"); bad input raises, and under
``jit`` an out-of-range class index gives NaN.
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
    r"""
    import functools, re

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import multiloss.jax as mlj
    from multiloss.jax.distributed import vocab_parallel_cross_entropy, vocab_parallel_focal_loss

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    explicit = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    rng = np.random.default_rng(0)
    C, R = 16, 4
    z = rng.normal(size=(12, C)) * 3
    t = rng.integers(0, C, size=12)
    t[[1, 5]] = -100
    w = rng.uniform(0.25, 1.25, size=C)
    ignored = np.full(12, -100)
    FAILURES = []

    def close(name, got, expected, rtol=1e-12, atol=1e-12):
        got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
            difference = np.max(np.abs(got - expected)) if got.shape == expected.shape else None
            FAILURES.append(f"{name}: differs ({difference}, shapes {got.shape} {expected.shape})")

    def compiled(function, *args):
        # The compiled program, run, and its all-reduce ops counted in the HLO text.
        program = function.lower(*args).compile()
        count = len(re.findall(r"all-reduce(?:-start)?\(", program.as_text()))
        return program(*args), count

    # name, kind, options, weight: None / "whole" / "sharded" / a scalar alpha, target
    CASES = [
        ("ce-mean", "ce", dict(), None, t),
        ("ce-weight-whole-sum", "ce", dict(reduction="sum"), "whole", t),
        ("ce-weight-sharded-smoothing-zloss-mean", "ce",
         dict(label_smoothing=0.15, z_loss=0.02), "sharded", t),
        ("ce-smoothing-none", "ce", dict(reduction="none", label_smoothing=0.2), None, t),
        ("focal-2-alpha-scalar-mean", "focal", dict(gamma=2.0), 0.25, t),
        ("focal-0.5-alpha-sharded-zloss-none", "focal",
         dict(reduction="none", gamma=0.5, z_loss=0.01), "sharded", t),
        ("focal-0-alpha-whole-sum", "focal", dict(reduction="sum", gamma=0.0), "whole", t),
        ("ce-all-ignored", "ce", dict(label_smoothing=0.1, z_loss=0.1), "whole", ignored),
        ("ce-ignore-index-3", "ce", dict(ignore_index=3, label_smoothing=0.1), "sharded",
         np.where(t < 0, 3, t)),
        ("ce-normalizer", "ce", dict(normalizer=17.0, label_smoothing=0.1), "sharded", t),
    ]
    UNSHARDED = {"ce": mlj.cross_entropy, "focal": mlj.focal_loss}
    SHARDED = {"ce": vocab_parallel_cross_entropy, "focal": vocab_parallel_focal_loss}

    def weight_options(kind, weight, whole, block):
        key = "weight" if kind == "ce" else "alpha"
        value = {None: None, "whole": whole, "sharded": block}.get(weight, weight)
        return {key: value}

    def reference(z, t, kind, options, weight):
        options = dict(options)
        normalizer = options.pop("normalizer", None)
        if normalizer is not None:
            options["reduction"] = "sum"
        function = functools.partial(
            UNSHARDED[kind], **options, **weight_options(kind, weight, w, w)
        )
        def total(z):
            loss = function(z, t)
            loss = loss if normalizer is None else loss / normalizer
            return jnp.sum(loss), loss
        (_, loss), grad = jax.value_and_grad(total, has_aux=True)(z)
        return loss, grad

    @jax.jit
    def references(z):
        return [reference(z, target, kind, o, weight) for _, kind, o, weight, target in CASES]

    EXPECTED = references(z)

    # 1. Inside shard_map, the gradient taken there too: every case in one program.
    def local_cases(z_block, w_block, w_whole, *targets):
        results = []
        for (_, kind, options, weight, _), target in zip(CASES, targets):
            function = functools.partial(
                SHARDED[kind], axis_name="model", **options,
                **weight_options(kind, weight, w_whole, w_block),
            )
            def total(z_block, target=target, function=function):
                loss = function(z_block, target)
                return jnp.sum(loss), loss
            (_, loss), grad = jax.value_and_grad(total, has_aux=True)(z_block)
            results.append((loss, grad))
        return results

    out_specs = [(P(), P(None, "model"))] * len(CASES)
    inside = jax.jit(jax.shard_map(
        local_cases, mesh=mesh,
        in_specs=(P(None, "model"), P("model"), P()) + (P(),) * len(CASES),
        out_specs=out_specs,
    ))
    targets = [case[4] for case in CASES]
    for (name, *_), (loss, grad), (expected_loss, expected_grad) in zip(
        CASES, inside(z, w, w, *targets), EXPECTED
    ):
        close(name + " loss (inside)", loss, expected_loss)
        close(name + " grad (inside)", grad, expected_grad)
        if "all-ignored" in name:
            assert float(loss) == 0.0 and not np.any(np.asarray(grad)), name

    # 2. The gradient taken outside shard_map; HLO: 2 all-reduces, none more for it.
    for index in (2, 5):
        name, kind, options, weight, target = CASES[index]
        def body(z_block, w_block, w_whole, kind=kind, options=options, weight=weight):
            loss = SHARDED[kind](z_block, target, axis_name="model", **options,
                                 **weight_options(kind, weight, w_whole, w_block))
            return jnp.sum(loss)
        mapped = jax.shard_map(body, mesh=mesh, in_specs=(P(None, "model"), P("model"), P()),
                               out_specs=P())
        (value, grad), count = compiled(jax.jit(jax.value_and_grad(mapped)), z, w, w)
        close(name + " loss (outside)", value, np.sum(EXPECTED[index][0]))
        close(name + " grad (outside)", grad, EXPECTED[index][1])
        _, forward_count = compiled(jax.jit(mapped), z, w, w)
        assert (forward_count, count) == (2, 2), (name, forward_count, count)

    # 3. Global arrays under jit, classes (and the batch) sharded: mesh=.
    def global_step(mesh, batch_axes, kind, options, weight, target):
        function = functools.partial(
            SHARDED[kind], axis_name="model", mesh=mesh, batch_axes=batch_axes, **options,
            **weight_options(kind, weight, w, w),
        )
        def total(z):
            loss = function(z, target)
            return jnp.sum(loss), loss
        return jax.jit(jax.value_and_grad(total, has_aux=True))

    for index, layout, batch_axes, expected_count in [
        (0, P(None, "model"), None, 2),
        (2, P("data", "model"), "data", 3),  # the third sums the batch's parts over "data"
        # "none": the loss stays split over "data", the caller's jnp.sum is the third
        (5, P("data", "model"), "data", 3),
        (9, P(None, "model"), "data", 3),  # a normaliser: the sum over "data" only
    ]:
        name, kind, options, weight, target = CASES[index]
        step = global_step(mesh, batch_axes, kind, options, weight, target)
        zs = jax.device_put(z, NamedSharding(mesh, layout))
        ((_, loss), grad), count = compiled(step, zs)
        close(name + " loss (mesh=)", loss, EXPECTED[index][0])
        close(name + " grad (mesh=)", grad, EXPECTED[index][1])
        assert count == expected_count, (name, batch_axes, count)
        if options.get("reduction") == "none" and batch_axes:
            assert loss.sharding.spec == P("data"), loss.sharding

    # Explicit mesh axes (sharding in types): the inputs are resharded first.
    name, kind, options, weight, target = CASES[2]
    with jax.set_mesh(explicit):
        zs = jax.device_put(z, NamedSharding(explicit, P("data", "model")))
        (_, loss), grad = global_step(explicit, "data", kind, options, weight, target)(zs)
    close(name + " loss (explicit)", loss, EXPECTED[2][0])
    close(name + " grad (explicit)", grad, EXPECTED[2][1])

    # 4. float32 and bfloat16 logits, against the unsharded loss in the same dtype.
    def low_precision(z32, z16):
        focal = functools.partial(mlj.focal_loss, gamma=2.0, alpha=0.25)
        sharded = functools.partial(
            vocab_parallel_focal_loss, axis_name="model", mesh=mesh, gamma=2.0, alpha=0.25
        )
        ce16 = functools.partial(vocab_parallel_cross_entropy, axis_name="model", mesh=mesh)
        return (
            sharded(z32, t), focal(z32, t),
            jax.value_and_grad(ce16)(z16, t), jax.value_and_grad(mlj.cross_entropy)(z16, t),
        )

    loss32, expected32, (loss16, grad16), (expected16, expected_grad16) = jax.jit(
        low_precision
    )(z.astype(np.float32), jnp.asarray(z, jnp.bfloat16))
    assert loss32.dtype == np.float32
    close("float32", loss32, expected32, rtol=8 * np.finfo(np.float32).eps, atol=0)
    assert loss16.dtype == jnp.bfloat16 and grad16.dtype == jnp.bfloat16, grad16.dtype
    close("bfloat16", loss16, expected16, rtol=1e-2)
    close("bfloat16 grad", grad16, expected_grad16, rtol=1e-2, atol=1e-2)

    # 5. Out-of-range class indices: an error where concrete, NaN under jit.
    too_large, negative = t.copy(), t.copy()
    too_large[0], negative[3] = C, -3
    try:
        vocab_parallel_cross_entropy(z, too_large, axis_name="model", mesh=mesh)
    except ValueError as error:
        assert "target" in str(error) and f"[0, {C})" in str(error), error
    else:
        FAILURES.append("no error for an out-of-range class index")
    per_element = functools.partial(
        vocab_parallel_cross_entropy, axis_name="model", mesh=mesh, reduction="none"
    )
    mean = functools.partial(vocab_parallel_focal_loss, axis_name="model", mesh=mesh)
    poisoned, poisoned_mean = jax.jit(lambda: (per_element(z, too_large), mean(z, negative)))()
    poisoned = np.asarray(poisoned)
    assert np.isnan(poisoned[0]) and np.all(np.isfinite(poisoned[1:])), poisoned
    assert np.isnan(poisoned_mean), poisoned_mean

    # 6. Bad calls.
    def raises(error, match, call):
        try:
            call()
        except error as caught:
            assert re.search(match, str(caught)), (match, str(caught))
        else:
            FAILURES.append(f"no {error.__name__} matching {match!r}")

    plain = jax.shard_map(
        lambda zb: vocab_parallel_cross_entropy(zb, t, axis_name="model"),
        mesh=mesh, in_specs=P(None, "model"), out_specs=P(), check_vma=False,
    )
    raises(ValueError, "check_vma", lambda: jax.jit(plain)(z))
    raises(ValueError, "not bound", lambda: vocab_parallel_cross_entropy(z, t, axis_name="model"))
    ce16 = functools.partial(vocab_parallel_cross_entropy, axis_name="model", mesh=mesh)
    raises(ValueError, "not an axis", lambda: ce16(z, t, axis_name="vocab"))
    raises(ValueError, "do not split evenly", lambda: ce16(z[:, :10], t % 10))
    raises(ValueError, "overlap", lambda: ce16(z, t, batch_axes="model"))
    raises(TypeError, "class indices only", lambda: ce16(z, z))
    raises(NotImplementedError, "label_smoothing", lambda: vocab_parallel_focal_loss(
        z, t, axis_name="model", mesh=mesh, label_smoothing=0.1))
    raises(NotImplementedError, "no derivative with respect to weight", lambda: jax.grad(
        lambda w: vocab_parallel_cross_entropy(z, t, axis_name="model", mesh=mesh, weight=w)
    )(w))
    raises(TypeError, "static", lambda: jax.jit(
        lambda g: vocab_parallel_focal_loss(z, t, axis_name="model", mesh=mesh, gamma=g)
    )(2.0))
    assert not FAILURES, "\n".join(FAILURES)
    print("VOCAB PARALLEL OK", len(CASES))
    """
)


def test_vocab_parallel_on_eight_devices():
    environment = dict(os.environ)
    # Eight devices; the compiler's backend optimisations off (they change no number,
    # and halve the time this test spends compiling)
    flags = " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    flags += " --xla_llvm_disable_expensive_passes=true"
    environment["XLA_FLAGS"] = (environment.get("XLA_FLAGS", "") + flags).strip()
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
    assert "VOCAB PARALLEL OK" in result.stdout


def test_one_device_in_this_process():
    """A single-device mesh in the test process itself (no subprocess): the same as the
    unsharded loss, and the argument errors."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from multiloss.jax import cross_entropy
    from multiloss.jax.distributed import vocab_parallel_cross_entropy

    mesh = jax.make_mesh((1,), ("model",))
    z = jnp.asarray(np.random.default_rng(1).normal(size=(5, 7)))
    t = jnp.asarray([0, 6, -100, 3, 3])
    loss = vocab_parallel_cross_entropy(
        z, t, axis_name="model", mesh=mesh, label_smoothing=0.1, weight=np.arange(1.0, 8.0)
    )
    expected = jax.jit(
        lambda z: cross_entropy(z, t, label_smoothing=0.1, weight=np.arange(1.0, 8.0))
    )(z)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)

    def sharded(z, normalizer):
        return vocab_parallel_cross_entropy(
            z, t, axis_name="model", mesh=mesh, z_loss=0.01, normalizer=normalizer
        )

    value, grad = jax.jit(jax.value_and_grad(sharded))(z, jnp.asarray(4.0))
    expected, expected_grad = jax.jit(
        jax.value_and_grad(lambda z: cross_entropy(z, t, z_loss=0.01, reduction="sum") / 4.0)
    )(z)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="batch_axes is for calls on global arrays"):
        vocab_parallel_cross_entropy(z, t, axis_name="model", batch_axes="data")
    with pytest.raises(ValueError, match="normalizer"):
        vocab_parallel_cross_entropy(
            z, t, axis_name="model", mesh=mesh, reduction="sum", normalizer=3.0
        )
