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


# --------------------------------------------------------------------------------------
# Vocabulary-parallel: the shard's row statistics by the kernels


class _ThreadRanks:
    """Collectives of R ranks run as threads of this process (a fake group): each
    all-reduce waits for every rank's array and returns the reduction of them all."""

    def __init__(self, size: int) -> None:
        import threading

        self.size = size
        self.barrier = threading.Barrier(size)
        self.slots: list[Any] = [None] * size
        self.calls: list[str] = []

    def of(self, rank: int) -> Any:
        ranks = self

        class _Rank:
            def __init__(self) -> None:
                self.rank, self.size = rank, ranks.size

            def _reduce(self, x: Any, how: str) -> Any:
                ranks.slots[rank] = x.clone()
                ranks.barrier.wait()
                stacked = torch.stack(ranks.slots)
                result = stacked.amax(0) if how == "max" else stacked.sum(0)
                ranks.barrier.wait()
                if rank == 0:
                    ranks.calls.append(how)
                return result

            def max(self, x: Any) -> Any:
                return self._reduce(x, "max")

            def sum(self, x: Any) -> Any:
                return self._reduce(x, "sum")

        return _Rank()


def _sharded_forward(
    logits: Any, target: Any, size: int, kernels: bool, **options: Any
) -> tuple[list[Any], _ThreadRanks]:
    """Each rank's loss of the core's vocabulary-parallel forward over its shard, the
    shards' statistics by the kernels (or the generic passes)."""
    import threading

    from multiloss._core import LOSSES
    from multiloss._core.vocab_parallel import prepare_vocab_parallel, vocab_parallel_forward
    from multiloss.torch._namespace import XP

    focal = "gamma" in options
    loss = LOSSES["focal_loss" if focal else "cross_entropy"]
    local = logits.shape[1] // size
    ranks = _ThreadRanks(size)
    losses: list[Any] = [None] * size
    errors: list[BaseException] = []
    one_at_a_time = threading.Lock()  # Triton's interpreter is not thread-safe

    def kernel_partials(*args: Any) -> Any:
        with one_at_a_time:
            return distributed._kernel_partials(*args)

    def run(rank: int) -> None:
        try:
            shard = logits[:, rank * local : (rank + 1) * local].contiguous()
            _, config, operands, _ = prepare_vocab_parallel(
                loss, shard, target, size=size, **options
            )
            partials = kernel_partials if kernels else None
            losses[rank], _ = vocab_parallel_forward(XP, config, operands, ranks.of(rank), partials)
        except BaseException as error:  # reported below
            errors.append(error)
            ranks.barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return losses, ranks


@pytest.mark.parametrize(
    "options",
    [
        {"reduction": "mean", "ignore_index": 3},
        {"reduction": "none", "z_loss": 1e-3},
        {"reduction": "sum", "gamma": 2.0},
        {"reduction": "mean", "weight": torch.linspace(0.5, 1.5, 40).to(DEVICE)},
    ],
    ids=["CE mean ignore", "CE none z-loss", "focal sum", "CE weight"],
)
def test_vocab_parallel_partials_by_the_kernels_on_two_shards(options: dict[str, Any]) -> None:
    logits = _randn((12, 40), 11, 3.0).float()
    logits[0, :20] = -torch.inf  # a row whose first shard is all -inf
    target = torch.randint(0, 40, (12,), generator=_generator(12)).to(DEVICE)
    target[0] = 30
    target[5] = 3
    got, ranks = _sharded_forward(logits, target, 2, True, **options)
    assert ranks.calls == ["max", "sum"]  # still the same two collectives
    generic, _ = _sharded_forward(logits, target, 2, False, **options)
    torch.testing.assert_close(got[0], got[1], rtol=0, atol=0)
    torch.testing.assert_close(got[0], generic[0], rtol=1e-6, atol=1e-6)
    # the unsharded loss, float64 (F.cross_entropy, or the textbook focal loss)
    z = logits.double()
    reduction, ignore = options["reduction"], options.get("ignore_index", -100)
    if "gamma" in options:
        log_p_t = F.log_softmax(z, 1).gather(1, target[:, None])[:, 0]
        expected = (-((1 - log_p_t.exp()) ** 2) * log_p_t).sum()
    else:
        weight = options.get("weight")
        expected = F.cross_entropy(
            z,
            target,
            weight=None if weight is None else weight.double(),
            ignore_index=ignore,
            reduction=reduction,
        )
        if options.get("z_loss"):
            expected = expected + options["z_loss"] * torch.logsumexp(z, 1) ** 2
    torch.testing.assert_close(got[0].double(), expected, rtol=1e-5, atol=1e-6)


def test_the_vocab_parallel_losses_on_the_kernels_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The torch adapter with a single-process gloo group: the kernels' partials chosen,
    the loss and gradient those of the unsharded loss."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("no torch.distributed, or a group is already initialised here")
    used: list[int] = []
    partials = distributed._kernel_partials

    def spy(*args: Any) -> Any:
        used.append(1)
        return partials(*args)

    monkeypatch.setattr(distributed, "_kernel_partials", spy)
    monkeypatch.setattr(_linear, "kernels_for", lambda _: True)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        z = _randn((9, 30), 13, 2.0).float().requires_grad_(True)
        target = torch.randint(0, 30, (9,), generator=_generator(14)).to(DEVICE)
        loss = distributed.vocab_parallel_focal_loss(z, target, gamma=2.0, alpha=0.25)
        loss.backward()
    finally:
        dist.destroy_process_group()
    assert used == [1]
    reference = z.detach().double().requires_grad_(True)
    expected = mt.focal_loss(reference, target, gamma=2.0, alpha=0.25)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad.double(), reference.grad, rtol=1e-5, atol=1e-6)


def test_the_engine_choice_reaches_the_fused_head_and_vocab_parallel(
    kernel_steps: list[int],
) -> None:
    """``engine("triton")`` gives a float32 fused head and a vocabulary-parallel loss to the
    kernels (here, in the interpreter); ``"eager"`` and ``"auto"`` on a CPU tensor do not."""
    x = _randn((40, 8), 21).float()
    weight = _randn((64, 8), 22).float()
    target = torch.randint(0, 64, (40,), generator=_generator(23)).to(DEVICE)
    logits = x @ weight.T
    values = {}
    for name in ("triton", "eager", "auto"):
        before = len(kernel_steps)
        with mt.engine(name):
            values[name] = mt.linear_cross_entropy(x, weight, target, chunk_size=16)
            chosen = distributed.kernels_for(logits, _config(logits, target))
        ran = len(kernel_steps) > before
        on_kernels = name == "triton" or (name == "auto" and DEVICE == "cuda")
        assert ran == on_kernels and chosen == on_kernels, name
    expected = F.cross_entropy(logits.double(), target)
    for value in values.values():
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    with mt.engine("triton"):  # float64 and meta tensors keep the plans
        assert not _linear.kernels_for(x.double())
        assert not _linear.kernels_for(x.to("meta"))


def _config(logits: Any, target: Any) -> Any:
    from multiloss._core import LOSSES
    from multiloss._core.vocab_parallel import prepare_vocab_parallel

    return prepare_vocab_parallel(LOSSES["cross_entropy"], logits, target, size=1)[1]
