"""The fused linear head and the vocabulary-parallel losses on the softmax kernels, in
Triton's interpreter on CPU tensors (small shapes): the same loss and gradients as the
eager plans, and as independent oracles (``F.cross_entropy`` and textbook formulas on the
whole float64 logits).

The kernel path is forced by monkeypatching the engine's choice (``_linear.kernels_for``,
``distributed.kernels_for``) so that these tests do not depend on which engine "auto"
picks on a CPU tensor; a spy checks that the kernels ran.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports the kernels

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402
from multiloss.torch import _linear, distributed  # noqa: E402

if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("the kernels need TRITON_INTERPRET=1 or a CUDA device", allow_module_level=True)
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:triton.runtime.interpreter")


def _generator(seed: int) -> Any:
    return torch.Generator().manual_seed(seed)


def _randn(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> Any:
    return (torch.randn(shape, generator=_generator(seed), dtype=torch.float64) * scale).to(DEVICE)


@pytest.fixture
def kernel_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The fused head on the kernels; the list counts the chunks the kernels ran."""
    calls: list[int] = []
    step = _linear._kernel_step

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return step(*args, **kwargs)

    monkeypatch.setattr(_linear, "_kernel_step", spy)
    return calls


def _head_run(
    kernels: bool,
    monkeypatch: pytest.MonkeyPatch,
    loss: str,
    x: Any,
    weight: Any,
    bias: Any,
    target: Any,
    **options: Any,
) -> tuple[Any, ...]:
    monkeypatch.setattr(_linear, "kernels_for", lambda _: kernels)
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, weight, bias)]
    fn = mt.linear_cross_entropy if loss == "CE" else mt.linear_focal_loss
    value = fn(leaves[0], leaves[1], target, linear_bias=leaves[2], **options)
    cotangent = torch.linspace(0.5, 1.5, value.numel(), dtype=value.dtype, device=DEVICE)
    value.backward(cotangent.reshape(value.shape))
    return (value.detach(), *(leaf.grad for leaf in leaves))


def _oracle(
    loss: str, x: Any, weight: Any, bias: Any, target: Any, **options: Any
) -> tuple[Any, ...]:
    """F.cross_entropy, or the textbook focal loss, on the whole float64 logits."""
    leaves = [t.detach().double().clone().requires_grad_(True) for t in (x, weight, bias)]
    logits = leaves[0] @ leaves[1].T + leaves[2]
    reduction = options.get("reduction", "mean")
    ignore = options.get("ignore_index", -100)
    if loss == "CE":
        value = F.cross_entropy(
            logits,
            target,
            ignore_index=ignore,
            reduction=reduction,
            label_smoothing=options.get("label_smoothing", 0.0),
        )
    else:
        gamma = options["gamma"]
        counted = target != ignore
        safe = torch.where(counted, target, 0)
        log_p_t = F.log_softmax(logits, dim=1).gather(1, safe[:, None])[:, 0]
        per_row = torch.where(counted, -((1 - log_p_t.exp()) ** gamma) * log_p_t, 0.0)
        value = {"sum": per_row.sum(), "none": per_row}.get(
            reduction, per_row.sum() / counted.sum()
        )
    cotangent = torch.linspace(0.5, 1.5, value.numel(), dtype=value.dtype, device=DEVICE)
    value.backward(cotangent.reshape(value.shape))
    return (value.detach(), *(leaf.grad for leaf in leaves))


HEAD_CASES = {
    "CE mean ignore": ("CE", {"ignore_index": 3}),
    "CE sum smoothing": ("CE", {"reduction": "sum", "label_smoothing": 0.1}),
    "CE none": ("CE", {"reduction": "none"}),
    "focal γ=2 mean ignore": ("focal", {"gamma": 2.0, "ignore_index": 3}),
    "focal γ=0.5 none": ("focal", {"gamma": 0.5, "reduction": "none"}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", HEAD_CASES)
def test_the_fused_head_on_the_kernels(
    case: str, dtype: Any, monkeypatch: pytest.MonkeyPatch, kernel_steps: list[int]
) -> None:
    loss, options = HEAD_CASES[case]
    tokens, features, classes = 70, 16, 300
    x = _randn((tokens, features), 1).to(dtype)
    weight = _randn((classes, features), 2, 0.5).to(dtype)
    bias = _randn((classes,), 3, 0.5).to(dtype)
    target = torch.randint(0, classes, (tokens,), generator=_generator(4)).to(DEVICE)
    target[::7] = 3
    run = (x, weight, bias, target)
    got = _head_run(True, monkeypatch, loss, *run, chunk_size=32, **options)
    # 70 tokens in chunks of 32: every chunk on the kernels ("none": again in backward)
    steps = 6 if options.get("reduction") == "none" else 3
    assert len(kernel_steps) == steps
    eager = _head_run(False, monkeypatch, loss, *run, chunk_size=32, **options)
    assert len(kernel_steps) == steps
    oracle = _oracle(loss, *run, **options)
    # float32: to the core's bounds; float16: the oracle on the same (upcast) values, the
    # loss and the gradients rounded to float16 once and summed over chunks
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (5e-3, 5e-3)
    for found, same, expected in zip(got, eager, oracle, strict=True):
        assert found.dtype == same.dtype and found.shape == same.shape
        scale = float(expected.abs().max())
        for other in (same, expected):
            torch.testing.assert_close(
                found.double(), other.double(), rtol=rtol, atol=atol * max(scale, 1.0)
            )


def test_the_fused_head_with_probability_targets_on_the_kernels(
    monkeypatch: pytest.MonkeyPatch, kernel_steps: list[int]
) -> None:
    x, weight, bias = _randn((40, 8), 5).float(), _randn((50, 8), 6).float(), _randn((50,), 7)
    bias = bias.float()
    target = torch.softmax(_randn((40, 50), 8, 2.0), dim=1).float()
    got = _head_run(True, monkeypatch, "CE", x, weight, bias, target, chunk_size=16)
    assert kernel_steps
    leaves = [t.double().clone().requires_grad_(True) for t in (x, weight, bias)]
    expected = F.cross_entropy(leaves[0] @ leaves[1].T + leaves[2], target.double())
    expected.backward(torch.tensor(0.5, dtype=torch.float64))  # _head_run's cotangent
    torch.testing.assert_close(got[0].double(), expected.detach(), rtol=1e-5, atol=1e-6)
    for found, leaf in zip(got[1:], leaves, strict=True):
        torch.testing.assert_close(found.double(), leaf.grad, rtol=1e-5, atol=1e-6)


def test_the_fused_head_keeps_the_plans_for_float64_and_without_the_engine() -> None:
    x = torch.zeros((4, 3), dtype=torch.float64)
    assert not _linear.kernels_for(x)
    assert _linear.kernels_for(x.float()) in (True, False)  # the engine's choice, if any
