"""The kernel engine on a CUDA device (compiled Triton, ``TRITON_INTERPRET=0``): values and
gradients against the eager plans on the same device, bfloat16 included; no host sync;
a training step captured in a CUDA graph; ``torch.compile(fullgraph=True)``.

Every test is marked ``cuda`` and skipped without a CUDA device or without the kernel
engine (``multiloss.torch.engine``); ``benchmarks/device_check.sh`` runs them on a machine
with a GPU. The interpreter tests (``tests/test_triton_*.py``) hold the kernels to the
independent oracles on the CPU; here the same kernels, compiled for the GPU, are held to
the eager plans (themselves held to the oracles): float32 to 1e-5, float16 and bfloat16
logits against float32 eager on the same (upcast) values to the 16-bit dtype's precision.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import multiloss.torch as mt  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
ENGINE = getattr(mt, "engine", None)
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device"),
    pytest.mark.skipif(ENGINE is None, reason="multiloss.torch.engine does not exist"),
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
        reason="the device check compiles the kernels: TRITON_INTERPRET must be 0",
    ),
]

LossFn = Callable[[Any, Any], Any]


def _generator(seed: int) -> Any:
    return torch.Generator().manual_seed(seed)


def _randn(shape: tuple[int, ...], seed: int, scale: float = 3.0) -> Any:
    return (torch.randn(shape, generator=_generator(seed)) * scale).cuda()


def _labels(shape: tuple[int, ...], classes: int, seed: int, ignore: int | None) -> Any:
    target = torch.randint(0, classes, shape, generator=_generator(seed))
    if ignore is not None:
        target[torch.rand(shape, generator=_generator(seed + 1)) < 0.1] = ignore
    return target.cuda()


def _multilabel(shape: tuple[int, ...], seed: int) -> Any:
    return (torch.rand(shape, generator=_generator(seed)) < 0.05).float().cuda()


def _probabilities(shape: tuple[int, ...], seed: int) -> Any:
    return torch.softmax(_randn(shape, seed), dim=1)


SOFTMAX: dict[str, tuple[LossFn, str, tuple[int, ...]]] = {
    "CE": (lambda z, y: mt.cross_entropy(z, y), "index", (256, 1000)),
    "CE ignore weight smoothing z-loss": (
        lambda z, y: mt.cross_entropy(
            z,
            y,
            ignore_index=7,
            weight=torch.linspace(0.5, 1.5, z.shape[1], device=z.device),
            label_smoothing=0.1,
            z_loss=1e-4,
        ),
        "ignore 7",
        (256, 1000),
    ),
    "CE probabilities": (lambda z, y: mt.cross_entropy(z, y), "probs", (128, 500)),
    "CE sum 8x70000 (split rows)": (
        lambda z, y: mt.cross_entropy(z, y, reduction="sum"),
        "index",
        (8, 70000),
    ),
    "CE none 4x21x16x16": (
        lambda z, y: mt.cross_entropy(z, y, reduction="none"),
        "index",
        (4, 21, 16, 16),
    ),
    "focal γ=2 α=0.25": (
        lambda z, y: mt.focal_loss(z, y, gamma=2.0, alpha=0.25),
        "index",
        (256, 1000),
    ),
    "focal γ=0.5 smoothing": (
        lambda z, y: mt.focal_loss(z, y, gamma=0.5, label_smoothing=0.1),
        "index",
        (256, 1000),
    ),
    "poly ε=2": (lambda z, y: mt.poly_loss(z, y, epsilon=2.0), "index", (256, 1000)),
}
SIGMOID: dict[str, tuple[LossFn, tuple[int, ...]]] = {
    "BCE pos_weight": (
        lambda z, y: mt.binary_cross_entropy(
            z, y, pos_weight=torch.full((z.shape[1],), 3.0, device=z.device)
        ),
        (256, 80),
    ),
    "sigmoid focal": (lambda z, y: mt.sigmoid_focal_loss(z, y), (256, 80)),
    "ASL": (lambda z, y: mt.asymmetric_loss(z, y, gamma_neg=4.0, clip=0.05), (256, 80)),
}
CASES: dict[str, tuple[LossFn, str, tuple[int, ...]]] = {
    **SOFTMAX,
    **{name: (fn, "multilabel", shape) for name, (fn, shape) in SIGMOID.items()},
    # the distribution focal loss: 4 box sides of 2100 anchors, 16 bins along axis 1
    "DFL weight": (
        lambda z, t: mt.distribution_focal_loss(z, t, weight=torch.linspace(0, 2, 4).cuda()),
        "bins",
        (2100, 16, 4),
    ),
}
TOLERANCE = {
    torch.float32: (1e-5, 1e-6),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def _target(kind: str, shape: tuple[int, ...], seed: int) -> Any:
    if kind == "bins":  # positions in [0, n - 1], the bin axis (1) dropped
        positions = torch.rand(shape[:1] + shape[2:], generator=_generator(seed))
        return (positions * (shape[1] - 1)).cuda()
    if kind == "probs":
        return _probabilities(shape, seed)
    if kind == "multilabel":
        return _multilabel(shape, seed)
    ignore = 7 if kind == "ignore 7" else None
    return _labels(shape[:1] + shape[2:], shape[1], seed, ignore)


def _value_and_grad(engine: str, loss_fn: LossFn, logits: Any, target: Any) -> tuple[Any, Any]:
    leaf = logits.detach().clone().requires_grad_(True)
    assert ENGINE is not None
    with ENGINE(engine):
        loss = loss_fn(leaf, target)
        cotangent = torch.linspace(0.5, 1.5, loss.numel(), device=loss.device).reshape(loss.shape)
        loss.backward(cotangent.to(loss.dtype))
    return loss.detach(), leaf.grad


def _custom_ops(loss_fn: LossFn, logits: Any, target: Any) -> set[str]:
    """The ``multiloss::`` operators a forward + backward dispatches (the kernels ran)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: set[str] = set()

    class _Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func.namespace == "multiloss":
                seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    leaf = logits.detach().clone().requires_grad_(True)
    assert ENGINE is not None
    with _Seen(), ENGINE("triton"):
        loss_fn(leaf, target).sum().backward()
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", CASES)
def test_kernels_match_the_eager_plans_on_cuda(name: str, dtype: Any) -> None:
    loss_fn, kind, shape = CASES[name]
    logits = _randn(shape, 1).to(dtype)
    target = _target(kind, shape, 2)
    assert _custom_ops(loss_fn, logits, target), "no multiloss:: operator ran"
    loss, grad = _value_and_grad("triton", loss_fn, logits, target)
    reference = logits.float()  # 16-bit: float32 eager on the same values
    expected_loss, expected_grad = _value_and_grad("eager", loss_fn, reference, target)
    assert grad.dtype == dtype and torch.isfinite(grad).all()
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(loss.float(), expected_loss.float(), rtol=rtol, atol=atol)
    scale = float(expected_grad.abs().max())
    torch.testing.assert_close(grad.float(), expected_grad, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("name", ["CE ignore weight smoothing z-loss", "focal γ=2 α=0.25", "ASL"])
def test_no_host_sync_with_the_kernels(name: str) -> None:
    loss_fn, kind, shape = CASES[name]
    logits = _randn(shape, 3)
    target = _target(kind, shape, 4)
    _value_and_grad("triton", loss_fn, logits, target)  # warm-up: compile, allocate
    leaf = logits.detach().clone().requires_grad_(True)
    torch.cuda.synchronize()
    assert ENGINE is not None
    torch.cuda.set_sync_debug_mode("error")
    try:
        with ENGINE("triton"):
            loss = loss_fn(leaf, target)
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).all() and torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize(
    ("criterion", "kind"),
    [
        (lambda: mt.CrossEntropyLoss(label_smoothing=0.1, ignore_index=255), "index"),
        (lambda: mt.FocalLoss(gamma=2.0), "index"),
        (lambda: mt.SigmoidFocalLoss(), "multilabel"),
    ],
    ids=["CE", "focal", "sigmoid focal"],
)
def test_a_training_step_with_the_kernels_in_a_cuda_graph(criterion: Any, kind: str) -> None:
    """Warm-up on a side stream, capture, replay on new data: the parameters move as the
    same eager-engine step moves them."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 300))
    model = model.cuda()
    eager_model = copy.deepcopy(model)
    loss_of, eager_loss_of = criterion().cuda(), criterion().cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    eager_optimizer = torch.optim.SGD(eager_model.parameters(), lr=0.1)
    batches = [
        (_randn((512, 32), 10 + i, 1.0), _target(kind, (512, 300), 20 + i)) for i in range(6)
    ]
    static_x, static_y = torch.empty_like(batches[0][0]), torch.empty_like(batches[0][1])
    assert ENGINE is not None

    def step(net: Any, loss_fn: Any, opt: Any, x: Any, y: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), ENGINE("triton"):
        for x, y in batches[:2]:
            static_x.copy_(x)
            static_y.copy_(y)
            step(model, loss_of, optimizer, static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    with ENGINE("eager"):
        for x, y in batches[:2]:
            step(eager_model, eager_loss_of, eager_optimizer, x, y)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph), ENGINE("triton"):
        static_loss = loss_of(model(static_x), static_y)
        static_loss.backward()
        optimizer.step()
    for x, y in batches[2:]:
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        with ENGINE("eager"):
            eager_loss = step(eager_model, eager_loss_of, eager_optimizer, x, y)
        torch.cuda.synchronize()
        torch.testing.assert_close(static_loss, eager_loss, rtol=1e-4, atol=1e-5)
        for replayed, eager in zip(model.parameters(), eager_model.parameters(), strict=True):
            torch.testing.assert_close(replayed, eager, rtol=1e-4, atol=1e-5)


def test_compiled_fullgraph_over_the_kernels_with_ignore_index() -> None:
    """Liger #1338: the loss under ``torch.compile`` with ``ignore_index`` is eager's."""
    logits = _randn((256, 1000), 5)
    target = _labels((256,), 1000, 6, ignore=-100)

    def loss_fn(z: Any, y: Any) -> Any:
        return mt.focal_loss(z, y, gamma=2.0, ignore_index=-100)

    assert ENGINE is not None
    with ENGINE("triton"):
        compiled = torch.compile(loss_fn, fullgraph=True)
        leaf = logits.detach().clone().requires_grad_(True)
        loss = compiled(leaf, target)
        loss.backward(torch.full_like(loss, 0.5))  # _value_and_grad's cotangent of a 0-d loss
    expected_loss, expected_grad = _value_and_grad("eager", loss_fn, logits, target)
    torch.testing.assert_close(loss.detach(), expected_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(leaf.grad, expected_grad, rtol=1e-5, atol=1e-7)


def test_the_fused_head_on_the_kernels_matches_the_eager_head() -> None:
    x = _randn((600, 64), 7, 1.0)
    weight = _randn((3000, 64), 8, 0.1)
    target = _labels((600,), 3000, 9, ignore=None)
    results = []
    assert ENGINE is not None
    for engine in ("triton", "eager"):
        xs, ws = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        with ENGINE(engine):
            loss = mt.linear_focal_loss(xs, ws, target, gamma=2.0, chunk_size=256)
            loss.backward()
        results.append((loss.detach(), xs.grad, ws.grad))
    for got, expected in zip(*results, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
