"""Forward+backward time and saved-for-backward memory of multiloss.torch against PyTorch.

Timing is a ratio to ``torch.nn.functional.cross_entropy`` measured in the same process,
interleaved (A B A B …) after a warm-up, median of the repetitions (DESIGN.md section 8).
Memory is what autograd holds between forward and backward beyond the logits themselves,
counted through ``torch.autograd.graph.saved_tensors_hooks``, each storage once.

    python benchmarks/torch_quick.py            # the full shapes
    python benchmarks/torch_quick.py --quick    # tiny shapes, a smoke test (no assertion)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import multiloss.torch as mt

IGNORE = 255
GAMMA = 2.0

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def textbook_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """log_softmax → gather → -(1-p_t)^γ log p_t, mean over the counted elements."""
    log_p = F.log_softmax(logits, dim=1)
    counted = target != IGNORE
    safe = torch.where(counted, target, torch.zeros_like(target))
    log_pt = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_pt.exp()) ** GAMMA) * log_pt
    return (loss * counted).sum() / counted.sum()


CANDIDATES: dict[str, Loss] = {
    "F.cross_entropy": lambda x, t: F.cross_entropy(x, t, ignore_index=IGNORE),
    "multiloss CE": lambda x, t: mt.cross_entropy(x, t, ignore_index=IGNORE),
    "multiloss focal": lambda x, t: mt.focal_loss(x, t, gamma=GAMMA, ignore_index=IGNORE),
    "textbook focal": textbook_focal,
}

FULL_SHAPES = [(65536, 10), (8192, 1000), (1024, 32000), (8, 21, 128, 128)]
QUICK_SHAPES = [(256, 10), (64, 100), (16, 1000), (2, 21, 16, 16)]


def make_inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator)
    index_shape = shape[:1] + shape[2:]
    target = torch.randint(0, shape[1], index_shape, generator=generator)
    ignored = torch.rand(index_shape, generator=generator) < 0.1
    target = torch.where(ignored, torch.full_like(target, IGNORE), target)
    return logits.requires_grad_(), target


def step(loss_fn: Loss, logits: torch.Tensor, target: torch.Tensor) -> float:
    start = time.perf_counter()
    loss_fn(logits, target).backward()
    elapsed = time.perf_counter() - start
    logits.grad = None
    return elapsed


def time_ratios(shape: tuple[int, ...], repeats: int, warmup: int, inner: int) -> dict[str, float]:
    logits, target = make_inputs(shape)
    times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for _ in range(warmup):
        for fn in CANDIDATES.values():
            step(fn, logits, target)
    for _ in range(repeats):
        for name, fn in CANDIDATES.items():  # interleaved: A B C D A B C D …
            times[name].append(sum(step(fn, logits, target) for _ in range(inner)) / inner)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["F.cross_entropy"]
    return {"base_ms": base * 1e3, **{name: medians[name] / base for name in CANDIDATES}}


def saved_bytes(loss_fn: Loss, shape: tuple[int, ...]) -> int:
    """Bytes of the storages autograd keeps for backward, the logits' storage excluded."""
    logits, target = make_inputs(shape)
    excluded = logits.untyped_storage().data_ptr()
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(logits, target)
    loss.backward()
    return sum(storages.values())


def human(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    repeats = args.repeats or (3 if args.quick else 15)
    warmup = 1 if args.quick else 3
    print(
        f"torch {torch.__version__}, threads = {torch.get_num_threads()}, float32, "
        f"forward+backward, ignore_index={IGNORE} (~10% of targets), focal γ={GAMMA}, "
        f"median of {repeats} interleaved repetitions"
    )
    print()
    names = [name for name in CANDIDATES if name != "F.cross_entropy"]
    header = (
        ["shape", "F.cross_entropy (ms)"]
        + [f"{name} (× F.ce)" for name in names]
        + [f"saved: {name}" for name in CANDIDATES]
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in shapes:
        numel = 1
        for size in shape:
            numel *= size
        inner = max(1, min(20, 2_000_000 // numel)) if not args.quick else 1
        ratios = time_ratios(shape, repeats, warmup, inner)
        memory = [human(saved_bytes(fn, shape)) for fn in CANDIDATES.values()]
        row = [
            "×".join(map(str, shape)),
            f"{ratios['base_ms']:.2f}",
            *(f"{ratios[name]:.2f}" for name in names),
            *memory,
        ]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
