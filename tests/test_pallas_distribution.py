"""The Pallas kernels of the distribution focal loss (`multiloss.jax.engine("pallas")`).

Against a float64 two-hot oracle written here (log-softmax by NumPy, the two-hot target
built as a dense array, the gradient w · (p - c)), in interpret mode under `jax.jit`, in
float32 and bfloat16: every reduction, an element weight, targets on the bin edges
(0, integers, n - 1), a partial last row block, fewer rows than a block with the bin axis
not last, `vmap`, the gradients with respect to the target and the weight, and a bad
target (NaN under a trace, an error under `checked`). One jitted function per dtype
covers the reductions (compile time dominates in the interpreter).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backends import assert_close

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("jax.experimental.pallas")

import multiloss.jax as mlj  # noqa: E402

FAST = {"xla_backend_optimization_level": 0}
F32 = 1e-5  # tests/test_pallas.py's bound, relative to 1 + |reference|
BINS = 16


def _oracle(logits, target, weight, axis=-1):
    """Per-element loss and ∂L_i/∂z in float64: the two-hot c, -w Σ_j c_j log p_j, w (p - c)."""
    z = np.moveaxis(np.asarray(logits, np.float64), axis, -1)
    t = np.asarray(target, np.float64)
    n = z.shape[-1]
    shifted = z - z.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    low = np.minimum(np.floor(t), n - 2).astype(int)
    two_hot = np.zeros(z.shape)
    np.put_along_axis(two_hot, low[..., None], (low + 1 - t)[..., None], axis=-1)
    np.put_along_axis(two_hot, low[..., None] + 1, (t - low)[..., None], axis=-1)
    w = np.broadcast_to(np.asarray(weight, np.float64), t.shape)
    loss = -w * np.sum(two_hot * log_p, axis=-1)
    grad = w[..., None] * (np.exp(log_p) - two_hot)
    return loss, np.moveaxis(grad, -1, axis)


def _data(rows=37, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.5, size=(rows, BINS))
    target = rng.uniform(0, BINS - 1, size=rows)
    target[:6] = [0.0, 1.0, 7.0, BINS - 2, BINS - 1, BINS - 1.5]  # edges and integers
    weight = rng.uniform(0.0, 2.0, size=rows)
    weight[3] = 0.0
    return logits, target, weight


def _step(z, t, w, cotangent):
    """Every reduction with the weight, and without one; the gradients of a weighted
    cotangent of "none", and of the weighted mean with respect to z, t and w."""
    dfl = mlj.distribution_focal_loss
    with mlj.engine("pallas"):
        values = {
            reduction: dfl(z, t, weight=w, reduction=reduction)
            for reduction in ("none", "sum", "mean")
        }
        values["plain"] = dfl(z, t, reduction="none")
        values["plain-mean"] = dfl(z, t)
        values["grad-none"] = jax.grad(
            lambda z: jnp.sum(cotangent * dfl(z, t, weight=w, reduction="none").astype(jnp.float32))
        )(z)
        values["grad-mean"] = jax.grad(
            lambda z, t, w: dfl(z, t, weight=w).astype(jnp.float32), argnums=(0, 1, 2)
        )(z, t, w)
    return values


STEP = jax.jit(_step, compiler_options=FAST)


@pytest.mark.parametrize(
    ("dtype", "bound"), [(jnp.float32, F32), (jnp.bfloat16, 1e-2)], ids=["float32", "bfloat16"]
)
def test_matches_float64_two_hot_oracle(dtype, bound):
    """Value and gradients against the oracle at the inputs rounded to `dtype` (bf16: within
    a few bf16 roundings, 2^-8, as tests/test_pallas.py)."""
    logits, target, weight = _data()
    z = jnp.asarray(logits, dtype)
    t, w = jnp.asarray(target, dtype), jnp.asarray(weight, dtype)
    cotangent = jnp.asarray(np.linspace(-1.0, 2.0, len(target)), jnp.float32)
    out = STEP(z, t, w, cotangent)
    rounded = [np.asarray(a, np.float64) for a in (z, t, w)]
    loss, grad = _oracle(*rounded)
    plain, _ = _oracle(rounded[0], rounded[1], 1.0)
    count = len(target)

    def close(actual, expected, what, scale=1.0):
        actual = np.asarray(actual.astype(jnp.float32), np.float64)
        assert_close(actual, expected, rtol=bound, atol=bound * scale, what=what)

    assert out["none"].dtype == dtype and out["grad-none"].dtype == dtype
    close(out["none"], loss, "none")
    close(out["sum"], loss.sum(), "sum", scale=count)
    close(out["mean"], loss.mean(), "mean")
    close(out["plain"], plain, "no weight")
    close(out["plain-mean"], plain.mean(), "no weight, mean")
    grad_scale = float(np.max(np.abs(grad))) * 2.0
    close(out["grad-none"], np.asarray(cotangent)[:, None] * grad, "grad none", grad_scale)
    dz, dt, dw = out["grad-mean"]
    close(dz, grad / count, "grad mean")
    # ∂L/∂t = w (ℓ_k - ℓ_{k+1}), ∂L/∂w = L / w: forward differences of the oracle's loss
    if dtype == jnp.float32:
        step = 1e-6
        nudged = np.clip(rounded[1] + step, 0, BINS - 1)
        low = np.minimum(np.floor(rounded[1]), BINS - 2)
        inside = (rounded[1] - low > 2 * step) & (rounded[1] + step < low + 1)
        ahead, _ = _oracle(rounded[0], nudged, rounded[2])
        slope = (ahead - loss)[inside] / (nudged - rounded[1])[inside] / count
        assert_close(np.asarray(dt)[inside], slope, rtol=1e-4, atol=1e-4, what="dt")
        unweighted, _ = _oracle(rounded[0], rounded[1], 1.0)
        close(dw, unweighted / count, "dw")


def test_axis_not_last_fewer_rows_than_a_block_and_vmap():
    """Bins on axis 1 (moved last by a transpose), 6 rows (padded to a block of 8), and
    `vmap(grad)` over 3 problems of 9 rows (a partial last block), against the oracle."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5, 2))
    target = np.array([[0.0, 4.0], [2.5, 3.0], [0.25, 3.999]])
    stacked = rng.normal(size=(3, 9, BINS))
    targets = rng.uniform(0, BINS - 1, size=(3, 9))

    def run(z, t, zs, ts):
        loss = mlj.distribution_focal_loss
        with mlj.engine("pallas"):
            value, grad = jax.value_and_grad(lambda z: loss(z, t, axis=1, reduction="sum"))(z)
            batched = jax.vmap(jax.grad(lambda z, t: loss(z, t, reduction="sum")))(zs, ts)
        return value, grad, batched

    value, grad, batched = jax.jit(run, compiler_options=FAST)(
        *(jnp.asarray(a, jnp.float32) for a in (logits, target, stacked, targets))
    )
    expected, expected_grad = _oracle(logits, target, 1.0, axis=1)
    assert_close(value, expected.sum(), rtol=F32, atol=F32, what="loss, axis 1")
    assert_close(grad, expected_grad, rtol=F32, atol=F32, what="gradient, axis 1")
    expected_batched = np.stack(
        [_oracle(z, t, 1.0)[1] for z, t in zip(stacked, targets, strict=True)]
    )
    assert_close(batched, expected_batched, rtol=F32, atol=F32, what="vmap(grad)")


def test_bad_target_is_nan_under_a_trace_and_checked_raises():
    z = jnp.zeros((9, BINS), jnp.float32)
    bad = jnp.asarray([0.0, 1.0, 2.0, -0.5, 4.0, BINS - 0.5, np.nan, 7.0, 15.0], jnp.float32)
    with mlj.engine("pallas"):
        loss = jax.jit(
            lambda z, t: mlj.distribution_focal_loss(z, t, reduction="none"), compiler_options=FAST
        )
        value = np.asarray(loss(z, bad))
        assert np.all(np.isnan(value[[3, 5, 6]])), value  # never a clamp
        assert np.allclose(np.delete(value, [3, 5, 6]), np.log(BINS), rtol=1e-6)
        with pytest.raises(Exception, match=r"target must lie in \[0, 15\]"):
            mlj.checked(jax.jit(lambda z, t: mlj.distribution_focal_loss(z, t)))(z, bad)


def test_runs_the_kernels_only_under_pallas():
    z, t = jnp.zeros((8, BINS)), jnp.full(8, 2.5)
    for name, count in (("pallas", 2), ("xla", 0), ("auto", 0)):
        with mlj.engine(name):
            text = str(jax.make_jaxpr(jax.value_and_grad(mlj.distribution_focal_loss))(z, t))
        assert text.count("pallas_call") == count, name
        assert ("multiloss_distribution_forward" in text) == bool(count)


def test_cost_model_dfl_row(monkeypatch):
    """benchmarks/pallas_costs.py's DFL row on the CUDA lowering (33600×16, float32 and
    bfloat16): 2 kernels, 3 logits-sized passes (no widened copy of bfloat16 logits: the
    bytes halve), a few small operations around them."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pallas_costs
    from harness import DFL, DFL_FULL, Shape

    (shape,) = DFL_FULL
    widths = {}
    for dtype in ("float32", "bfloat16"):
        rows = pallas_costs.measure(DFL, Shape(shape.name, shape.logits, dtype=dtype), cpu=False)
        (row,) = [row for row in rows if row.implementation.endswith(pallas_costs.PALLAS)]
        assert (row.gpu_kernels, row.gpu_passes) == (2, 3), row
        assert row.gpu_other_ops <= 4, row
        widths[dtype] = row.gpu_bytes
    logits = 33600 * 16
    assert widths["float32"] - widths["bfloat16"] == 3 * 2 * logits, widths


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_kernels_lower_for_gpu_and_tpu(platform):
    """The DFL kernels lower for Triton (GPU) and Mosaic (TPU) on this CPU, float32 and
    bfloat16, with a weight and a partial last row block: two custom calls per
    value_and_grad (what the compilers then do needs the device)."""
    from multiloss.jax._engine import lowering_for

    kernel = "tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton"
    for dtype in (jnp.float32, jnp.bfloat16):
        z = jax.ShapeDtypeStruct((60, BINS), dtype)
        t = w = jax.ShapeDtypeStruct((60,), jnp.float32)
        step = jax.value_and_grad(lambda z, t, w: mlj.distribution_focal_loss(z, t, weight=w))
        with mlj.engine("pallas"), lowering_for(platform):
            lowered = jax.jit(step).trace(z, t, w).lower(lowering_platforms=(platform,))
        assert lowered.as_text().count(f"custom_call @{kernel}") == 2, dtype
