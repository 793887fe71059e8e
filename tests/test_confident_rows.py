"""Confident rows (p_t → 1): the loss of a class-index softmax loss relatively exact in
every backend, against the 50-digit mpmath oracle.

A row whose target leads the other logits by a margin M has lse - z_t ≈ Σ_{k≠t} e^{z_k - z_t},
far below eps once M is past about 17 (float32) or 37 (float64): formed as (z_t - m) - L
it is 0 there. The core forms it as log1p of the sum over the other classes
(:func:`multiloss._core.kernels.target_log_p_from_others`), and so do PyTorch's whole-tensor
and slab passes; the Triton kernels do the same (``tests/test_triton_softmax.py``).

The logits are multiples of 1/8 of modest size, so every difference z_k - z_t is exact in
both dtypes and the oracle's answer is what an exact computation gives: the bound is then a
few eps of the loss itself (relative), not of 1 + |loss| as in ``test_core_accuracy.py``.
(For other logits the rounding of z_k - z_t alone costs |z_k - z_t|·eps/2 relatively: the
loss's own condition number.)

Run as a script, the file prints the worst relative errors (in eps) per backend.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
import oracles
import pytest
from backends import EPS, namespace, run_numpy

MARGINS = (4.0, 8.0, 12.0, 18.0, 24.0, 30.0, 40.0, 50.0, 64.0, 80.0)
GAMMAS = (0.0, 0.5, 2.0)
BOUND = 6.0
"""Relative error, in eps of the dtype, of the loss and of the target's gradient entry."""
GRAD_BOUND = 12.0
"""Relative error, in eps, of every gradient entry (the others are p_k: e^{z_k - lse})."""


def confident_problem() -> tuple[np.ndarray, np.ndarray]:
    """Rows of 6 logits, the target leading by each margin: at column 0, at column 3 (a
    runner-up at M - 1/8 elsewhere, a tie-free row), and a row whose target ties with
    another class at the max (p_t ≈ 1/2, the other branch)."""
    rows, target = [], []
    for margin in MARGINS:
        rows.append([margin, 0.0, -1.0, 0.5, -2.25, 0.125])
        target.append(0)
        rows.append([-0.5, 1.0, 0.25, margin + 1.0, -3.0, 0.875])
        target.append(3)
    rows.append([2.0, 2.0, -1.0, 0.5, 0.0, -0.25])
    target.append(0)
    rows.append([2.0, 30.0, -1.0, 0.5, 0.0, -0.25])  # p_t tiny: the non-confident branch
    target.append(0)
    return np.array(rows, dtype=np.float64), np.array(target)


@functools.cache
def reference(name: str, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    logits, target = confident_problem()
    if name == "cross_entropy":
        return oracles.MPMATH[name](logits, target, reduction="none")
    return oracles.MPMATH[name](logits, target, gamma=gamma, reduction="none")


def relative_eps(actual, expected, dtype: str) -> float:
    """max |actual - expected| / max(eps · |expected|, tiny), elementwise, with tiny the
    dtype's smallest normal number (a focal loss of e^{-80}·(e^{-40})^γ is below float32's
    range: 0 there is as right as it can be)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.maximum(EPS[dtype] * np.abs(expected), np.finfo(dtype).tiny)
    return float(np.max(np.abs(actual - expected) / scale))


def _options(name: str, gamma: float) -> dict:
    return {} if name == "cross_entropy" else {"gamma": gamma}


def core_run(xp_name: str, name: str, gamma: float, dtype: str, jit: bool = False):
    logits, target = confident_problem()
    return run_numpy(
        namespace(xp_name), name, logits, target, dtype=dtype, jit=jit, reduction="none",
        **_options(name, gamma),
    )  # fmt: skip


def torch_run(plan: str, name: str, gamma: float, dtype: str):
    """Through ``multiloss.torch`` on a forced eager plan ("generic", "whole", "slab")."""
    import torch

    import multiloss.torch as mt
    from multiloss.torch import _plans

    logits, target = confident_problem()
    z = torch.tensor(logits, dtype=getattr(torch, dtype), requires_grad=True)
    with _plans.forced(plan), mt.engine("eager"):
        loss = getattr(mt, name)(z, torch.tensor(target), reduction="none", **_options(name, gamma))
        (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach().double().numpy(), grad.double().numpy()


def errors(loss, grad, name: str, gamma: float, dtype: str) -> tuple[float, float, float]:
    """(loss, target gradient entry, every gradient entry) relative errors in eps."""
    ref_loss, ref_grad = reference(name, gamma)
    _, target = confident_problem()
    rows = np.arange(target.size)
    return (
        relative_eps(loss, ref_loss, dtype),
        relative_eps(grad[rows, target], ref_grad[rows, target], dtype),
        relative_eps(grad, ref_grad, dtype),
    )


def check(loss, grad, name: str, gamma: float, dtype: str) -> None:
    loss_error, target_error, grad_error = errors(loss, grad, name, gamma, dtype)
    assert loss_error <= BOUND, f"loss: {loss_error:.3g} eps of {dtype}"
    assert target_error <= BOUND, f"target gradient entry: {target_error:.3g} eps of {dtype}"
    assert grad_error <= GRAD_BOUND, f"gradient: {grad_error:.3g} eps of {dtype}"


CASES = [("cross_entropy", 0.0)] + [("focal_loss", gamma) for gamma in GAMMAS]
CASE_IDS = [f"{name}-{gamma}" for name, gamma in CASES]
DTYPES = ("float32", "float64")


def test_the_problem_is_confident():
    """The rows do what they are for: the float32 loss of the first one at M = 18 would be
    0 as (z_t - m) - L, and every difference z_k - z_t is exact in float32."""
    logits, target = confident_problem()
    z = logits.astype(np.float32)
    row = z[6]
    assert row[0] == 18.0 and target[6] == 0
    naive = -((row[0] - row.max()) - np.log(np.sum(np.exp(row - row.max()))))
    assert naive == 0.0
    assert np.array_equal((z - z.max(axis=1, keepdims=True)).astype(np.float64),
                          logits - logits.max(axis=1, keepdims=True))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "gamma"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict", "torch"])
def test_core(xp_name, name, gamma, dtype):
    """The core's generic path, in NumPy, the strict namespace and PyTorch."""
    pytest.importorskip(xp_name)
    check(*core_run(xp_name, name, gamma, dtype), name, gamma, dtype)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(("name", "gamma"), [CASES[0], CASES[2]], ids=CASE_IDS[::2][:2])
def test_core_jax(name, gamma, jit):
    """JAX (float32 without x64), eagerly and under ``jax.jit``."""
    pytest.importorskip("jax")
    check(*core_run("jax", name, gamma, "float32", jit=jit), name, gamma, "float32")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "gamma"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("plan", ["generic", "whole", "slab"])
def test_torch_plans(plan, name, gamma, dtype):
    """``multiloss.torch`` on each eager plan with CPU tensors (the whole-tensor and slab
    passes replace the core's ``target_log_softmax``; on a GPU the whole-tensor plan keeps
    its two fused kernels, accurate in absolute terms)."""
    pytest.importorskip("torch")
    check(*torch_run(plan, name, gamma, dtype), name, gamma, dtype)


def test_torch_whole_plan_without_a_confident_row(monkeypatch):
    """A call without a confident row keeps the whole-tensor plan's two fused kernels on the
    CPU too (its relatively exact form is not run), and they are relatively exact there:
    targets behind the row max by each margin, and targets at the max with p_t ≤ 0.61
    (multiloss.torch._whole.CONFIDENT)."""
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt
    from multiloss.torch import _plans, _whole

    rows, target = [], []
    for margin in MARGINS:
        rows.append([margin, 0.0, -1.0, 0.5, -2.25, 0.125])  # t = 1, behind by the margin
        target.append(1)
    rows.append([1.0, 1.0, 0.875, 1.0, 1.25, 1.0])  # t at the max, p_t ≈ 0.22
    target.append(4)
    rows.append([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # a tie of six: p_t = 1/6
    target.append(2)
    rows.append([0.0, 0.0, 0.0, 0.0, 0.0, 1.5])  # t at the max, p_t ≈ 0.47 (ℓ_t ≈ -0.75)
    target.append(5)
    logits, labels = np.array(rows), np.array(target)

    def refused(*args):
        raise AssertionError("the relatively exact form ran for a call without confident rows")

    monkeypatch.setattr(_whole, "_exact_target_log_softmax", refused)
    ref_loss, ref_grad = oracles.MPMATH["cross_entropy"](logits, labels, reduction="none")
    for dtype in DTYPES:
        z = torch.tensor(logits, dtype=getattr(torch, dtype), requires_grad=True)
        with _plans.forced("whole"), mt.engine("eager"):
            loss = mt.cross_entropy(z, torch.tensor(labels), reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), z)
        assert relative_eps(loss.detach().double().numpy(), ref_loss, dtype) <= BOUND
        assert relative_eps(grad.double().numpy(), ref_grad, dtype) <= GRAD_BOUND


def test_torch_slab_plan_across_slabs():
    """The slab passes over several cache-sized slabs: 40000 rows of 16 classes, the
    confident rows among random ones, against the float64 generic path's log1p form."""
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt
    from multiloss.torch import _plans

    rng = np.random.default_rng(5)
    logits = np.round(rng.normal(scale=2.0, size=(40000, 16)) * 8) / 8
    target = rng.integers(0, 16, size=40000)
    rows = rng.choice(40000, size=200, replace=False)
    logits[rows, target[rows]] = 18.0 + 8.0 * rng.integers(0, 8, size=200)
    others = np.exp(logits - logits[np.arange(40000), target][:, None])
    others[np.arange(40000), target] = 0.0
    expected = np.log1p(np.sum(others, axis=1))
    # float64's exp/log1p on exact differences: the reference for the float32 rows where
    # the sum is tiny is accurate to a few float64 eps, far below float32's
    z = torch.tensor(logits, dtype=torch.float32)
    assert z.numel() > 2 * mt._CHUNK_ELEMENTS
    with _plans.forced("slab"), mt.engine("eager"), torch.no_grad():
        loss = mt.cross_entropy(z, torch.tensor(target), reduction="none").double().numpy()
    confident = expected < 1e-6
    assert confident.sum() >= 150
    assert relative_eps(loss[confident], expected[confident], "float32") <= BOUND
    assert relative_eps(loss, expected, "float32") <= 64  # the rest: random rows


def _report() -> None:  # pragma: no cover - a script's printout
    runs = {}
    for xp_name in ("numpy", "torch", "array_api_strict"):
        runs[f"core {xp_name}"] = lambda n, g, d, x=xp_name: core_run(x, n, g, d)
    runs["core jax"] = lambda n, g, d: core_run("jax", n, g, "float32")
    for plan in ("generic", "whole", "slab"):
        runs[f"torch {plan}"] = lambda n, g, d, p=plan: torch_run(p, n, g, d)
    for label, run in runs.items():
        for dtype in DTYPES:
            if label == "core jax" and dtype == "float64":
                continue
            worst = np.zeros(3)
            for name, gamma in CASES:
                worst = np.maximum(worst, errors(*run(name, gamma, dtype), name, gamma, dtype))
            print(f"{label:24s} {dtype}: loss {worst[0]:.3g}, target entry {worst[1]:.3g}, "
                  f"gradient {worst[2]:.3g} eps")  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    _report()
