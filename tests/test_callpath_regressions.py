"""Regression tests of the bugs found checking `main` as a user would (issue 20), each against
an independent oracle (PyTorch's own functions, NumPy formulas) or the documented promise."""

from __future__ import annotations

import numpy as np
import pytest

import multiloss

# --------------------------------------------------------------------------------------
# JAX


@pytest.fixture
def jx():
    jax = pytest.importorskip("jax")
    return jax


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32"])
@pytest.mark.parametrize("name", ["linear_cross_entropy", "linear_focal_loss"])
def test_jax_fused_head_unsigned_targets_give_finite_gradients(jx, dtype, name):
    """1. The last chunk's padding held ignore_index, which wrapped in an unsigned dtype:
    every dW, db was NaN. The gradient must be the unfused one's."""
    import jax.numpy as jnp

    import multiloss.jax as mj

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(10, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(7,)), jnp.float32)
    labels = rng.integers(0, 7, size=10)
    target = jnp.asarray(labels.astype(dtype))
    fused = getattr(mj, name)
    plain = getattr(mj, name.removeprefix("linear_"))

    def fused_loss(w, b):
        return fused(x, w, target, linear_bias=b, chunk_size=4)

    def unfused_loss(w, b):
        return plain(x @ w.T + b, jnp.asarray(labels))

    got = jx.grad(fused_loss, argnums=(0, 1))(w, b)
    want = jx.grad(unfused_loss, argnums=(0, 1))(w, b)
    for g, r in zip(got, want, strict=True):
        assert bool(jnp.all(jnp.isfinite(g)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=2e-5, atol=2e-6)
    # the issue's own reproduction
    ones = jx.grad(lambda w: mj.linear_cross_entropy(jnp.ones((10, 4)), w, jnp.zeros(10, dtype)))
    assert bool(jnp.all(jnp.isfinite(ones(jnp.ones((7, 4))))))


def _jax_losses():
    return [
        ("cross_entropy", {}),
        ("focal_loss", {}),
        ("poly_loss", {}),
    ]


@pytest.mark.parametrize("wrap", ["jit", "scan", "checkpoint"])
def test_jax_captured_concrete_normalizer(jx, wrap):
    """2. A concrete jax.Array normaliser captured by a trace raised
    TracerBoolConversionError; it is read on the host (and checked there)."""
    import jax.numpy as jnp

    import multiloss.jax as mj

    n = jnp.asarray(7.0)
    target = jnp.array([0, 1, 2, 1])
    logits = jnp.zeros((4, 3))
    x, w = jnp.ones((4, 2)), jnp.zeros((3, 2))
    calls = [
        lambda z: mj.cross_entropy(z, target, normalizer=n),
        lambda z: mj.focal_loss(z, target, normalizer=n),
        lambda z: mj.poly_loss(z, target, normalizer=n),
        lambda z: mj.binary_cross_entropy(z, jnp.zeros((4, 3)), normalizer=n),
        lambda z: mj.linear_cross_entropy(x, w + z[0, 0], target, normalizer=n),
        lambda z: mj.linear_focal_loss(x, w + z[0, 0], target, normalizer=n),
    ]
    for call in calls:
        if wrap == "jit":
            value = jx.jit(call)(logits)
        elif wrap == "scan":

            def body(carry, _, call=call):
                return carry, call(logits)

            value = jx.lax.scan(body, 0.0, None, length=1)[1][0]
        else:
            value = jx.checkpoint(call)(logits)
        expected = call(logits)  # eager: the same number
        np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)
    # the reproduction, against the oracle: sum of -log(1/3) over 4 rows, / 7
    value = jx.jit(lambda z: mj.cross_entropy(z, target, normalizer=n))(logits)
    np.testing.assert_allclose(float(value), 4 * np.log(3.0) / 7, rtol=1e-6)
    bad = jnp.asarray(-1.0)
    with pytest.raises(ValueError, match="normalizer must be non-negative"):
        jx.jit(lambda z: mj.cross_entropy(z, target, normalizer=bad))(logits)


def test_jax_count_targets_of_a_captured_concrete_target(jx):
    """3. count_targets of a concrete array captured by a trace raised
    TracerBoolConversionError, with and without a weight."""
    import jax.numpy as jnp

    import multiloss.jax as mj

    t = jnp.array([0, 1, -100, 2])
    assert int(jx.jit(lambda: mj.count_targets(t))()) == 3
    weight = jnp.array([1.0, 0.5, 2.0])
    assert float(jx.jit(lambda: mj.count_targets(t, weight=weight))()) == 3.5
    assert float(jx.jit(lambda: multiloss.count_targets(t, weight=[1.0, 0.5, 2.0]))()) == 3.5
    negative = jnp.array([0, -3])
    with pytest.raises(ValueError, match="negative class indices"):
        jx.jit(lambda: mj.count_targets(negative))()


def test_jax_checked_catches_fused_head_labels(jx):
    """4. multiloss.jax.checked turns the fused heads' out-of-range labels into an error, as
    docs/semantics.md promises for every loss."""
    import jax.numpy as jnp
    from jax.experimental import checkify

    import multiloss.jax as mj

    x, w = jnp.ones((4, 2)), jnp.ones((3, 2))
    for fused in (mj.linear_cross_entropy, mj.linear_focal_loss):
        step = mj.checked(jx.jit(lambda t, fused=fused: fused(x, w, t)))
        assert np.isfinite(float(step(jnp.array([0, 1, 2, -100]))))
        with pytest.raises(checkify.JaxRuntimeError, match="out of range"):
            step(jnp.array([0, 1, 5, 2]))


def test_jax_count_targets_takes_a_numpy_weight(jx):
    """6. JAX count_targets refused a NumPy weight that the JAX losses accept, and its
    message spoke of "logits"."""
    import jax.numpy as jnp
    import torch

    import multiloss.jax as mj

    t = jnp.array([0, 2, 1])
    assert float(mj.count_targets(t, weight=np.array([1.0, 0.5, 2.0]))) == 3.5
    with pytest.raises(TypeError, match=r"another backend .* than the target$"):
        mj.count_targets(t, weight=torch.ones(3))


# --------------------------------------------------------------------------------------
# NumPy, array-API and the top-level functions


def test_numpy_fused_heads_take_a_numpy_normalizer():
    """5. The NumPy fused heads refused a NumPy 0-d normaliser that the plain NumPy losses
    accept ("an array of another backend")."""
    import multiloss.numpy as mn

    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    target = np.array([0, 1, 3, 2, 1])
    expected = mn.cross_entropy(x @ w.T, target, reduction="sum") / 8.0
    for n in (np.asarray(8.0), np.float64(8.0), np.asarray(8)):
        np.testing.assert_allclose(mn.linear_cross_entropy(x, w, target, normalizer=n), expected)
        np.testing.assert_allclose(
            multiloss.linear_cross_entropy(x, w, target, normalizer=n), expected
        )
        value, _ = mn.linear_cross_entropy_value_and_grad(x, w, target, normalizer=n)
        np.testing.assert_allclose(value, expected)


def test_top_level_fused_heads_run_array_api_arrays_in_their_backend():
    """7. The top-level fused heads sent any array-API array to the NumPy reference: an
    array_api_strict call returned a NumPy array and refused a weight of its own backend."""
    xp = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(2)
    x_np, w_np = rng.normal(size=(6, 3)), rng.normal(size=(5, 3))
    target_np = np.array([0, 4, 1, -100, 2, 3])
    weight_np = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    x, w = xp.asarray(x_np), xp.asarray(w_np)
    target, weight = xp.asarray(target_np), xp.asarray(weight_np)
    got = multiloss.linear_cross_entropy(x, w, target, weight=weight, chunk_size=4)
    assert type(got) is type(x)
    torch = pytest.importorskip("torch")
    oracle = torch.nn.functional.cross_entropy(
        torch.from_numpy(x_np @ w_np.T),
        torch.from_numpy(target_np),
        weight=torch.from_numpy(weight_np),
    )
    np.testing.assert_allclose(float(got), float(oracle), rtol=1e-12)
    focal = multiloss.linear_focal_loss(x, w, target, gamma=0.0, alpha=weight)
    assert type(focal) is type(x)


def test_count_elements_takes_any_integral_class_axis():
    """8. count_elements refused class_axis=np.int64(-1)."""
    assert int(multiloss.count_elements(np.zeros((4, 3)), class_axis=np.int64(-1))) == 4
    with pytest.raises(TypeError, match="class_axis"):
        multiloss.count_elements(np.zeros((4, 3)), class_axis=1.0)


# --------------------------------------------------------------------------------------
# torch


def test_torch_criterion_from_a_list_matches_the_functional_form():
    """Smaller fix: a criterion built from a list stored a float32 buffer: with float64
    logits it differed from the functional form by ~1e-9."""
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    logits = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    weights = [0.1, 0.7, 0.3]
    pairs = [
        (
            mt.CrossEntropyLoss(weight=weights),
            lambda: mt.cross_entropy(logits, target, weight=weights),
        ),
        (mt.FocalLoss(alpha=weights), lambda: mt.focal_loss(logits, target, alpha=weights)),
        (mt.PolyLoss(alpha=weights), lambda: mt.poly_loss(logits, target, alpha=weights)),
    ]
    for criterion, functional in pairs:
        assert criterion(logits, target).item() == functional().item()
    oracle = torch.nn.functional.cross_entropy(
        logits, target, weight=torch.tensor(weights, dtype=torch.float64)
    )
    assert mt.CrossEntropyLoss(weight=weights)(logits, target).item() == pytest.approx(
        oracle.item(), rel=1e-15
    )


def test_torchscript_of_functional_losses_raises_the_promised_error():
    """Smaller fix: torch.jit.script of a functional loss raised TorchScript's
    NotSupportedError; the promise is NotImplementedError pointing to torch.compile."""
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    functions = [getattr(mt, name) for name in mt.__all__ if name[0].islower()]
    for function in functions:
        if function in (mt.count_targets, mt.count_elements):
            continue
        if function in (mt.engine, mt.get_engine, mt.set_engine):
            continue  # the engine's setting, not a loss: nothing a model would script
        with pytest.raises(NotImplementedError, match=r"torch\.compile"):
            torch.jit.script(function)

    class Model(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return mt.cross_entropy(logits, target)

    with pytest.raises(NotImplementedError, match=r"torch\.compile"):
        torch.jit.script(Model())
    compiled = torch.compile(lambda z, t: mt.cross_entropy(z, t), fullgraph=True, backend="eager")
    z, t = torch.zeros(2, 3), torch.tensor([0, 2])
    assert torch.isclose(compiled(z, t), torch.nn.functional.cross_entropy(z, t))


def test_public_modules_list_only_public_names():
    """Smaller fix: dir() of multiloss.torch and multiloss.numpy listed `annotations` and
    `torch`."""
    import importlib

    for name in ("multiloss", "multiloss.numpy", "multiloss.torch", "multiloss.jax"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - backend not installed
            continue
        listed = set(dir(module))
        assert (
            not listed
            & {"annotations", "torch", "jax", "np", "Any", "importlib", "sys"}
            - {
                "torch",
                "jax",
            }
            or name == "multiloss"
        )
        assert "annotations" not in listed
        if name != "multiloss":
            assert "torch" not in listed and "np" not in listed
        assert set(module.__all__) <= listed


_UNEVEN_WORKER = r"""
import datetime, sys
import torch
import torch.distributed as dist
from multiloss.torch.distributed import vocab_parallel_cross_entropy

rank, port = int(sys.argv[1]), int(sys.argv[2])
dist.init_process_group(
    "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
    timeout=datetime.timedelta(seconds=60),
)
logits = torch.arange(30, dtype=torch.float64).reshape(3, 10).sin()
local = logits[:, :4] if rank == 0 else logits[:, 4:]
try:
    vocab_parallel_cross_entropy(local, torch.tensor([1, 5, 7]))
    print("RESULT no error")
except ValueError as error:
    print("RESULT", error)
dist.destroy_process_group()
"""


def test_torch_vocab_parallel_refuses_unequal_slices():
    """9. Ranks holding 4 and 6 of 10 classes returned a silently wrong loss; each rank now
    raises the same error, found by the first all-reduce (still two in the forward pass)."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("torch.distributed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    root = Path(__file__).resolve().parents[1]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _UNEVEN_WORKER, str(rank), str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        line = [x for x in out.splitlines() if x.startswith("RESULT")][-1]
        assert "same number of classes" in line and "between 4 and 6" in line, line


def test_jax_scalar_alpha_and_poly_under_jit_with_a_captured_target():
    """A scalar alpha's class vector is built by the namespace, so under jit it is staged
    even with a concrete (captured) target; its value check must wait, not read a tracer
    (found by the CLI's agreement check after the backend policy landed)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    import multiloss.jax as mj

    z = jnp.asarray([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    y = jnp.asarray([0, 2])
    for loss, options in (("focal_loss", {"alpha": 0.25}), ("poly_loss", {"alpha": 0.25})):
        function = getattr(mj, loss)
        eager = function(z, y, **options)
        jitted = jax.jit(lambda z, f=function, o=options: f(z, y, **o))(z)
        assert abs(float(eager) - float(jitted)) < 1e-6
        p = jax.nn.softmax(z, axis=-1)
        p_t = p[jnp.arange(2), y]
        alpha_t = jnp.where(y == 0, 0.75, 0.25)
        if loss == "focal_loss":
            naive = jnp.mean(-alpha_t * (1 - p_t) ** 2 * jnp.log(p_t))
            assert abs(float(jitted) - float(naive)) < 1e-6


def test_fused_head_normalizer_of_zero_has_a_zero_derivative():
    """One normaliser idiom: the fused heads fold a normaliser into the mean's scale by
    the same safe reciprocal as the plain losses, so a normaliser of 0 gives a loss of 0
    and a derivative of 0 with respect to it (the torch head's was NaN), as the plain
    cross-entropy gives (the oracle: PyTorch's own autograd of 0 · sum)."""
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    x = torch.randn(6, 4, dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    for face in (mt.linear_cross_entropy, mt.linear_focal_loss, mt.linear_poly_loss):
        n = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
        loss = face(x, w, target, normalizer=n)
        dn, dw = torch.autograd.grad(loss, (n, w))
        assert loss.item() == 0.0 and dn.item() == 0.0 and not dw.any(), face.__name__
