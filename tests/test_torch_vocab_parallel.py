"""multiloss.torch.distributed: vocabulary-parallel losses over two gloo ranks.

One pair of worker processes (``torch.distributed`` over gloo on 127.0.0.1, a free port
chosen here) runs every case: each rank holds half of the classes, and its loss and the
gradient of its slice must equal, in float64 to 1e-12, both the unsharded
``multiloss.torch`` loss and a naive float64 formula written below (torch autograd through
``logsumexp``, not the core). The workers count ``torch.distributed.all_reduce`` calls:
two in each forward pass, none in the backward pass. The parent checks that both ranks
returned the same loss, bit for bit. Bad input is checked in this process on a
single-rank gloo group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    r"""
    import datetime, json, math, sys, traceback
    import torch
    import torch.distributed as dist
    import multiloss.torch as mlt
    from multiloss.torch.distributed import (
        vocab_parallel_cross_entropy, vocab_parallel_focal_loss,
    )

    rank, port = int(sys.argv[1]), int(sys.argv[2])
    R = 2
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=R,
        timeout=datetime.timedelta(seconds=60),
    )
    CALLS = {"n": 0}
    _all_reduce = dist.all_reduce

    def counting_all_reduce(*args, **kwargs):
        CALLS["n"] += 1
        return _all_reduce(*args, **kwargs)

    dist.all_reduce = counting_all_reduce  # the module looks it up at call time

    def naive(z, t, kind, axis=-1, weight=None, alpha=None, gamma=0.0, ignore_index=-100,
              reduction="mean", label_smoothing=0.0, z_loss=0.0, normalizer=None):
        # The loss and d(sum of loss)/dz from the textbook formulas, in float64.
        z = z.detach().to(torch.float64).requires_grad_(True)
        zm = torch.movedim(z, axis, -1)
        C = zm.shape[-1]
        lse = torch.logsumexp(zm, dim=-1)
        log_p = zm - lse[..., None]
        counted = t != ignore_index
        safe = torch.where(counted, t, torch.zeros_like(t))
        log_p_t = torch.gather(log_p, -1, safe[..., None])[..., 0]
        eps = label_smoothing
        if kind == "ce":
            w = torch.ones(C, dtype=torch.float64) if weight is None else weight
            w_t = w[safe]
            per = -(1 - eps) * w_t * log_p_t - (eps / C) * (log_p * w).sum(-1)
            omega = w_t if weight is not None else torch.ones_like(w_t)
            denominator = (w_t * counted).sum() if weight is not None else counted.sum()
        else:
            if alpha is None:
                a = torch.ones(C, dtype=torch.float64)
            elif isinstance(alpha, float):
                a = torch.tensor([1 - alpha] + [alpha] * (C - 1), dtype=torch.float64)
            else:
                a = alpha
            p_t = torch.exp(log_p_t)
            per = -a[safe] * (1 - p_t) ** gamma * log_p_t
            omega = torch.ones_like(p_t)
            denominator = counted.sum()
        per = per + z_loss * omega * lse**2
        per = torch.where(counted, per, torch.zeros_like(per))
        if reduction == "none":
            loss = per
        elif reduction == "sum":
            loss = per.sum()
        elif normalizer is not None:
            n = float(normalizer)
            loss = per.sum() / n if n else per.sum() * 0.0
        else:
            loss = per.sum() / denominator if denominator > 0 else per.sum() * 0.0
        (grad,) = torch.autograd.grad(loss.sum(), z)
        return loss.detach(), grad

    gen = torch.Generator().manual_seed(0)
    C, Cl = 10, 5
    lo, hi = rank * Cl, (rank + 1) * Cl

    def logits(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * 3

    z2 = logits(9, C)
    t2 = torch.randint(0, C, (9,), generator=gen)
    t2[[1, 5]] = -100
    z3 = logits(2, 3, C)
    t3 = torch.randint(0, C, (2, 3), generator=gen)
    t3[0, 1] = -100
    z_axis1 = logits(2, C, 3)
    t_axis1 = torch.randint(0, C, (2, 3), generator=gen)
    weight = torch.rand(C, generator=gen, dtype=torch.float64) + 0.25
    all_ignored = torch.full((9,), -100)

    CASES = []  # (name, kind, z, t, options): the unsharded options, "sharded" marks a slice

    def case(name, kind, z, t, **options):
        CASES.append((name, kind, z, t, options))

    for reduction in ("mean", "sum", "none"):
        r = reduction
        case(f"ce-{r}", "ce", z2, t2, reduction=r)
        case(f"ce-weight-whole-{r}", "ce", z2, t2, weight=weight, reduction=r)
        case(f"ce-weight-sharded-{r}", "ce", z2, t2, weight="sharded", reduction=r)
        case(f"ce-smoothing-{r}", "ce", z2, t2, label_smoothing=0.2, reduction=r)
        case(f"ce-smoothing-weight-whole-{r}", "ce", z2, t2, weight=weight,
             label_smoothing=0.15, reduction=r)
        case(f"ce-smoothing-weight-sharded-{r}", "ce", z2, t2, weight="sharded",
             label_smoothing=0.15, reduction=r)
        case(f"ce-zloss-{r}", "ce", z2, t2, z_loss=0.01, reduction=r)
        case(f"ce-zloss-weight-smoothing-{r}", "ce", z2, t2, weight="sharded", z_loss=0.05,
             label_smoothing=0.1, reduction=r)
        case(f"ce-3d-{r}", "ce", z3, t3, weight=weight, reduction=r)
        case(f"ce-axis1-{r}", "ce", z_axis1, t_axis1, axis=1, label_smoothing=0.1,
             weight="sharded", reduction=r)
        for gamma in (0.0, 0.5, 2.0):
            case(f"focal-{gamma}-{r}", "focal", z2, t2, gamma=gamma, reduction=r)
            case(f"focal-{gamma}-alpha-scalar-{r}", "focal", z2, t2, gamma=gamma,
                 alpha=0.25, reduction=r)
            case(f"focal-{gamma}-alpha-whole-{r}", "focal", z2, t2, gamma=gamma,
                 alpha=weight, reduction=r)
            case(f"focal-{gamma}-alpha-sharded-{r}", "focal", z2, t2, gamma=gamma,
                 alpha="sharded", z_loss=0.02, reduction=r)
        case(f"ce-all-ignored-{r}", "ce", z2, all_ignored, weight=weight,
             label_smoothing=0.1, z_loss=0.1, reduction=r)
        case(f"focal-all-ignored-{r}", "focal", z2, all_ignored, alpha=0.25, reduction=r)
    case("ce-ignore-index-3", "ce", z2, torch.where(t2 < 0, 3, t2), ignore_index=3,
         weight=weight, label_smoothing=0.1)
    case("ce-normalizer-number", "ce", z2, t2, weight="sharded", label_smoothing=0.1,
         normalizer=17.0)
    case("ce-normalizer-tensor", "ce", z3, t3, z_loss=0.01,
         normalizer=torch.tensor(11, dtype=torch.int64))
    case("focal-normalizer", "focal", z2, t2, gamma=2.0, alpha=weight,
         normalizer=torch.tensor(5.0, dtype=torch.float64))
    case("ce-normalizer-zero", "ce", z2, t2, normalizer=0.0)

    failures, losses, counts = [], {}, {"forward": [], "backward": []}

    def close(name, what, got, expected, tol=1e-12):
        if not torch.allclose(got, expected, rtol=tol, atol=tol, equal_nan=False):
            diff = (got - expected).abs().max().item()
            failures.append(f"{name}: {what} differs by {diff:.3g}")

    for name, kind, z, t, options in CASES:
        try:
            options = dict(options)
            key = "weight" if kind == "ce" else "alpha"
            sharded = isinstance(options.get(key), str)
            if sharded:
                options[key] = weight
            axis = options.get("axis", -1)
            local_weight = options.get(key)
            if sharded:
                local_weight = weight[lo:hi]
            local = torch.narrow(z, axis, lo, Cl).clone().requires_grad_(True)
            function = vocab_parallel_cross_entropy if kind == "ce" else vocab_parallel_focal_loss
            before = CALLS["n"]
            loss = function(local, t, **{**options, key: local_weight})
            counts["forward"].append(CALLS["n"] - before)
            before = CALLS["n"]
            loss.sum().backward()
            counts["backward"].append(CALLS["n"] - before)
            grad = local.grad
            losses[name] = [float(v).hex() for v in loss.detach().reshape(-1)]

            expected_loss, expected_grad = naive(z, t, kind, **options)
            close(name, "loss vs naive", loss.detach(), expected_loss)
            close(name, "grad vs naive", grad, torch.narrow(expected_grad, axis, lo, Cl))

            full = z.clone().requires_grad_(True)
            unsharded = mlt.cross_entropy if kind == "ce" else mlt.focal_loss
            reference_options = dict(options, axis=axis)
            normalizer = reference_options.pop("normalizer", None)
            if normalizer is not None:
                reference_options["reduction"] = "sum"
            reference = unsharded(full, t, **reference_options)
            if normalizer is not None:
                reference = reference / float(normalizer) if float(normalizer) else reference * 0
            reference.sum().backward()
            close(name, "loss vs unsharded", loss.detach(), reference.detach())
            close(name, "grad vs unsharded", grad, torch.narrow(full.grad, axis, lo, Cl))
            if "all-ignored" in name and (loss.abs().max() != 0 or grad.abs().max() != 0):
                failures.append(f"{name}: not zero over nothing ({loss}, {grad.abs().max()})")
        except Exception:
            failures.append(f"{name}: {traceback.format_exc()}")

    # 16-bit logits: computed in float32, returned (loss and gradient) in float16.
    z16 = z2.to(torch.float16)
    local = z16[:, lo:hi].clone().requires_grad_(True)
    loss = vocab_parallel_cross_entropy(local, t2, label_smoothing=0.1, weight=weight)
    loss.backward()
    full = z16.clone().requires_grad_(True)
    reference = mlt.cross_entropy(full, t2, axis=-1, label_smoothing=0.1, weight=weight)
    reference.backward()
    if loss.dtype != torch.float16 or local.grad.dtype != torch.float16:
        failures.append(f"float16: dtypes {loss.dtype}, {local.grad.dtype}")
    close("float16", "loss", loss.float(), reference.float(), tol=1e-3)
    close("float16", "grad", local.grad.float(), full.grad[:, lo:hi].float(), tol=1e-3)
    losses["float16"] = [float(loss).hex()]

    # Bad input on two ranks: raised before any collective, the same on both.
    errors = {}
    for label, call in {
        "out-of-range": lambda: vocab_parallel_cross_entropy(
            z2[:, lo:hi], torch.where(t2 == 4, 10, t2)),
        "negative": lambda: vocab_parallel_focal_loss(
            z2[:, lo:hi], torch.where(t2 == 4, -3, t2)),
        "weight-length": lambda: vocab_parallel_cross_entropy(
            z2[:, lo:hi], t2, weight=weight[:7]),
    }.items():
        before = CALLS["n"]
        try:
            call()
        except ValueError as error:
            errors[label] = str(error)
        else:
            failures.append(f"{label}: no error")
        if CALLS["n"] != before:
            failures.append(f"{label}: collectives before the error")

    dist.barrier()
    dist.destroy_process_group()
    print("RESULT " + json.dumps(
        {"failures": failures, "losses": losses, "counts": counts, "errors": errors,
         "cases": len(CASES)}
    ))
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def two_ranks() -> list[dict]:
    """Run the worker on ranks 0 and 1; their parsed results."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    if sys.platform.startswith("linux"):
        environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), str(port)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stdout[-3000:] + stderr[-6000:]
            lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            assert lines, stdout[-3000:] + stderr[-3000:]
            outputs.append(json.loads(lines[-1][len("RESULT ") :]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


def test_values_and_gradients_equal_unsharded_and_naive(two_ranks):
    for rank, result in enumerate(two_ranks):
        assert result["failures"] == [], f"rank {rank}:\n" + "\n".join(result["failures"])
        assert result["cases"] >= 75


def test_every_rank_returns_the_same_loss_bit_for_bit(two_ranks):
    first, second = (result["losses"] for result in two_ranks)
    assert first.keys() == second.keys()
    assert {name: value for name, value in first.items() if second[name] != value} == {}


def test_two_all_reduces_forward_none_backward(two_ranks):
    for result in two_ranks:
        assert set(result["counts"]["forward"]) == {2}
        assert set(result["counts"]["backward"]) == {0}


def test_bad_values_raise_on_every_rank_before_any_collective(two_ranks):
    for result in two_ranks:
        errors = result["errors"]
        assert "target" in errors["out-of-range"] and "[0, 10)" in errors["out-of-range"]
        assert "10" in errors["out-of-range"].split(":")[-1]
        assert "-3" in errors["negative"]
        assert "(10,)" in errors["weight-length"] and "(5,)" in errors["weight-length"]


# ------------------------------------------------------------------ single process: bad input


@pytest.fixture
def one_rank():
    """A single-process gloo group (in-process store: no port)."""
    if dist.is_initialized():
        pytest.skip("a default process group is already initialised in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_without_a_process_group_the_error_says_so():
    from multiloss.torch.distributed import vocab_parallel_cross_entropy

    if dist.is_initialized():
        pytest.skip("a default process group is already initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        vocab_parallel_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_one_rank_is_the_unsharded_loss(one_rank):
    from multiloss.torch import cross_entropy
    from multiloss.torch.distributed import vocab_parallel_cross_entropy

    z = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 5, -100, 2])
    loss = vocab_parallel_cross_entropy(z, t, label_smoothing=0.1, z_loss=0.01)
    (grad,) = torch.autograd.grad(loss, z)
    expected = cross_entropy(z, t, axis=-1, label_smoothing=0.1, z_loss=0.01)
    (expected_grad,) = torch.autograd.grad(expected, z)
    torch.testing.assert_close(loss, expected, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("function", "arguments", "error", "match"),
    [
        ("ce", {"target": torch.tensor([0.0, 1.0])}, TypeError, "class indices only"),
        ("focal", {"target": torch.tensor([True, False])}, TypeError, "integers"),
        ("ce", {"target": torch.tensor([[0, 1]])}, ValueError, "shape without the class axis"),
        ("ce", {"logits": torch.zeros(2, 3, dtype=torch.int64)}, TypeError, "floating"),
        ("ce", {"logits": [[0.0, 1.0, 2.0]]}, TypeError, "torch.Tensor"),
        ("ce", {"logits": torch.zeros(2, 0)}, ValueError, "at least one class"),
        ("ce", {"target": torch.tensor([0, 3])}, ValueError, r"out of range \[0, 3\)"),
        ("ce", {"weight": [1.0, 2.0]}, ValueError, r"shape \(3,\)"),
        ("ce", {"weight": [1.0, -2.0, 1.0]}, ValueError, "non-negative"),
        ("ce", {"reduction": "avg"}, ValueError, "reduction"),
        ("ce", {"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ("ce", {"z_loss": -1.0}, ValueError, "z_loss"),
        ("ce", {"normalizer": 4.0, "reduction": "sum"}, ValueError, "normalizer"),
        ("ce", {"normalizer": torch.ones(2)}, ValueError, "0-d"),
        ("ce", {"normalizer": -1.0}, ValueError, "normalizer"),
        ("ce", {"axis": 2}, ValueError, "axis"),
        ("ce", {"ignore_index": 1.5}, TypeError, "ignore_index"),
        ("focal", {"gamma": -1.0}, ValueError, "gamma"),
        ("focal", {"alpha": 1.5}, ValueError, "alpha"),
        ("focal", {"label_smoothing": 0.1}, NotImplementedError, "label_smoothing.*all-reduce"),
        ("focal", {"label_smoothing": 2.0}, ValueError, "label_smoothing"),
        (
            "ce",
            {"weight": torch.ones(3, requires_grad=True)},
            NotImplementedError,
            "no gradient with respect to weight",
        ),
        (
            "focal",
            {"alpha": torch.ones(3, requires_grad=True)},
            NotImplementedError,
            "alpha.detach",
        ),
    ],
)
def test_bad_input_is_refused_clearly(one_rank, function, arguments, error, match):
    from multiloss.torch.distributed import (
        vocab_parallel_cross_entropy,
        vocab_parallel_focal_loss,
    )

    arguments = dict(arguments)
    logits = arguments.pop("logits", torch.zeros(2, 3))
    target = arguments.pop("target", torch.tensor([0, 2]))
    call = vocab_parallel_cross_entropy if function == "ce" else vocab_parallel_focal_loss
    with pytest.raises(error, match=match):
        call(logits, target, **arguments)


def test_a_weight_that_needs_no_gradient_is_accepted(one_rank):
    from multiloss.torch.distributed import vocab_parallel_cross_entropy

    weight = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        loss = vocab_parallel_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 2]), weight=weight)
    assert torch.isclose(loss, torch.log(torch.tensor(3.0)))
    loss = vocab_parallel_cross_entropy(
        torch.zeros(2, 3), torch.tensor([0, 2]), weight=weight.detach()
    )
    assert torch.isclose(loss, torch.log(torch.tensor(3.0)))


def test_the_gradient_is_not_differentiable_again(one_rank):
    from multiloss.torch.distributed import vocab_parallel_cross_entropy

    z = torch.randn(2, 3, requires_grad=True)
    loss = vocab_parallel_cross_entropy(z, torch.tensor([0, 2]))
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|does not require grad"):
        grad.sum().backward()
