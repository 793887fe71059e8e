"""The fused linear head on a GPU: multiloss's chunked head on the kernel engine and on the
eager plans, against the unfused head (``F.linear`` + ``F.cross_entropy``) and, where
``liger_kernel`` imports, Liger-Kernel's fused linear cross-entropy (issue #21's target:
≤ 1.0× Liger's time at the same peak memory or less).

    python benchmarks/linear_head_device.py --device cuda           # 4096×2048×32000 bfloat16
    python benchmarks/linear_head_device.py --device cpu --quick    # a smoke test, no meaning

Each implementation is timed interleaved with the others (A B C A B C …, median over
rounds, forward + backward with respect to the input and the projection, synchronised
before and after); the peak memory is ``torch.cuda.max_memory_allocated`` during one step
beyond what was allocated before it (None off CUDA). Writes a markdown table to stdout and,
with ``--json``, every timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHAPE = (4096, 2048, 32000)
QUICK_SHAPE = (256, 32, 1000)
Step = Callable[[], None]


def implementations(x: Any, weight: Any, target: Any) -> dict[str, Step]:
    """Forward + backward of each implementation on the same inputs, by name; the unfused
    head (the reference) first."""
    import torch.nn.functional as F

    import multiloss.torch as mt

    def zero() -> None:
        x.grad = None
        weight.grad = None

    def unfused() -> None:
        zero()
        F.cross_entropy(F.linear(x, weight).float(), target).backward()

    def multiloss(engine: str) -> Step:
        def step() -> None:
            zero()
            with mt.engine(engine):
                mt.linear_cross_entropy(x, weight, target).backward()

        return step

    steps: dict[str, Step] = {"unfused: F.linear + F.cross_entropy": unfused}
    if x.device.type == "cuda":
        steps["multiloss linear_cross_entropy, kernels"] = multiloss("triton")
    steps["multiloss linear_cross_entropy, eager"] = multiloss("eager")
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except Exception:  # not installed, or no GPU build of its dependencies
        return steps
    if x.device.type == "cuda":
        liger = LigerFusedLinearCrossEntropyLoss()

        def liger_step() -> None:
            zero()
            out = liger(weight, x, target)
            (out[0] if isinstance(out, tuple) else out).backward()

        steps["Liger-Kernel fused linear CE"] = liger_step
    return steps


def synchronizer(device: Any) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def peak_bytes(step: Step, device: Any) -> int | None:
    import torch

    if device.type != "cuda":
        return None
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def measure(
    device_name: str, shape: tuple[int, int, int], dtype: str, rounds: int
) -> list[dict[str, Any]]:
    """Each implementation's median time, its ratio to the unfused head's and its peak."""
    import torch

    device = torch.device(device_name)
    tokens, features, classes = shape
    generator = torch.Generator(device=device).manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    x = torch.randn((tokens, features), generator=generator, device=device)
    x = x.to(torch_dtype).requires_grad_(True)
    weight = torch.randn((classes, features), generator=generator, device=device) * 0.02
    weight = weight.to(torch_dtype).requires_grad_(True)
    target = torch.randint(0, classes, (tokens,), generator=generator, device=device)
    steps = implementations(x, weight, target)
    synchronize = synchronizer(device)
    for step in steps.values():  # warm-up: compile the kernels, fill the allocator
        step()
    synchronize()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            synchronize()
            start = time.perf_counter()
            steps[name]()
            synchronize()
            seconds[name].append(time.perf_counter() - start)
    reference = statistics.median(seconds[names[0]])
    return [
        {
            "implementation": name,
            "device": device_name,
            "shape": f"{tokens}×{features}×{classes} {dtype}",
            "seconds": seconds[name],
            "median_seconds": statistics.median(seconds[name]),
            "ratio": statistics.median(seconds[name]) / reference,
            "peak_bytes": peak_bytes(steps[name], device),
        }
        for name in names
    ]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"## fused linear head, {rows[0]['shape']} on {rows[0]['device']}",
        "",
        "| implementation | time | ratio to unfused | peak |",
        "|---|---|---|---|",
    ]
    for row in rows:
        peak = "–" if row["peak_bytes"] is None else f"{row['peak_bytes'] / 2**20:.0f} MiB"
        lines.append(
            f"| {row['implementation']} | {row['median_seconds'] * 1e3:.2f} ms | "
            f"{row['ratio']:.2f}× | {peak} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="a tiny shape: a smoke test")
    parser.add_argument("--dtype", default=None, help="bfloat16 on CUDA, float32 elsewhere")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    rows = measure(args.device, QUICK_SHAPE if args.quick else SHAPE, dtype, args.rounds)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
