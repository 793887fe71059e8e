"""The fused linear head (multiloss.torch.linear) against the unfused head and PyTorch's own
chunked `F.linear_cross_entropy`: time per forward+backward step and peak extra memory.

Each implementation runs in a fresh subprocess per round (rounds interleave the
implementations, A B C A B C …, so that drift on a shared machine hits all alike). A worker
allocates the inputs, warms up with one full step, returns freed heap memory to the system
(``malloc_trim``) and resets the resident-set high-water mark (``/proc/self/clear_refs``),
then times its steps; the peak extra memory is VmHWM after the first timed step minus VmRSS
before it: everything a step allocates at once (logits, their gradient, the gradients of the
input and the projection, temporaries), nothing held before it.

Two memory columns: glibc's default heap (its threshold for mapping a buffer rises to 32 MiB
once one is freed, so smaller buffers come from a heap that keeps what fragmentation leaves
behind: this varies from run to run by up to a gradient's size), and, in one more worker
per implementation, ``MALLOC_MMAP_THRESHOLD_=1048576`` (every buffer of 1 MiB or more
mapped, and unmapped when freed: the peak of what the step holds at once, the same every
run). Times are those under the default heap.

    python benchmarks/linear_head.py                       # the two shapes, 2 threads
    python benchmarks/linear_head.py --quick               # a small shape, a smoke test
    python benchmarks/linear_head.py --extra --out r.json  # also chunk sizes, recompute

Targets (float32): peak extra ≤ the gradients' size + 1/8 of the logits' size; time ≤ 1.1×
the unfused head and ≤ 0.5× F.linear_cross_entropy (chunked); focal ≤ 1.1× cross-entropy.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHAPES = [(2048, 512, 65536), (4096, 1024, 32000)]
QUICK_SHAPES = [(512, 64, 4096)]
IMPLEMENTATIONS = ["naive", "torch_chunked", "multiloss_ce", "multiloss_focal"]
EXTRA = ["multiloss_ce_recompute", "multiloss_ce_c128", "multiloss_ce_c512", "multiloss_ce_c1024"]
LABELS = {
    "naive": "naive: h @ W.T + F.cross_entropy",
    "torch_chunked": "F.linear_cross_entropy (chunked options)",
    "multiloss_ce": "multiloss linear_cross_entropy",
    "multiloss_focal": "multiloss linear_focal_loss γ=2",
    "multiloss_ce_recompute": "multiloss CE, recompute in backward ('none' → mean)",
    "multiloss_ce_c128": "multiloss CE, chunk_size=128",
    "multiloss_ce_c512": "multiloss CE, chunk_size=512",
    "multiloss_ce_c1024": "multiloss CE, chunk_size=1024",
}
SLOW = {"torch_chunked"}
"""Implementations that time one step per round (10–30 s a step here)."""


# ---------------------------------------------------------------------------------------
# The worker: one implementation, one shape, in its own process


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def _release_and_reset() -> int:
    """Return freed heap memory to the system, reset the high-water mark; VmRSS in KiB."""
    with contextlib.suppress(OSError):  # not glibc: the baseline may hold freed memory
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    return _status()["VmRSS"]


def _step_function(name: str) -> Any:
    import torch
    import torch.nn.functional as F

    from multiloss.torch.linear import linear_cross_entropy, linear_focal_loss

    def naive(h: Any, w: Any, t: Any) -> Any:
        return F.cross_entropy(h @ w.T, t)

    def torch_chunked(h: Any, w: Any, t: Any) -> Any:
        options = torch.nn.LinearCrossEntropyOptions()
        return F.linear_cross_entropy(h, w, t, options=options)

    def recompute(h: Any, w: Any, t: Any) -> Any:
        per_token = linear_cross_entropy(h, w, t, reduction="none")
        return per_token.sum() / (t != -100).sum()

    functions = {
        "naive": naive,
        "torch_chunked": torch_chunked,
        "multiloss_ce": linear_cross_entropy,
        "multiloss_focal": lambda h, w, t: linear_focal_loss(h, w, t, gamma=2.0),
        "multiloss_ce_recompute": recompute,
    }
    if name.startswith("multiloss_ce_c"):
        size = int(name.removeprefix("multiloss_ce_c"))
        return lambda h, w, t: linear_cross_entropy(h, w, t, chunk_size=size)
    return functions[name]


def worker(name: str, shape: tuple[int, int, int], steps: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    tokens, features, classes = shape
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(tokens, features, generator=generator).requires_grad_()
    w = (torch.randn(classes, features, generator=generator) * features**-0.5).requires_grad_()
    t = torch.randint(0, classes, (tokens,), generator=generator)
    t[::17] = -100  # a few ignored tokens
    step = _step_function(name)

    def run() -> tuple[float, float]:
        h.grad = w.grad = None
        start = time.perf_counter()
        loss = step(h, w, t)
        loss.backward()
        elapsed = time.perf_counter() - start
        return elapsed, float(loss.detach())

    run()  # warm-up: libraries, thread pools, kernels' buffers
    h.grad = w.grad = None
    before = _release_and_reset()
    first, loss = run()
    peak_extra = _status()["VmHWM"] - before
    times = [first]
    for _ in range(steps - 1):
        times.append(run()[0])
    return {
        "implementation": name,
        "shape": list(shape),
        "threads": threads,
        "times_s": times,
        "peak_extra_mib": peak_extra / 1024,
        "loss": loss,
    }


# ---------------------------------------------------------------------------------------
# The driver


MAPPED = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
"""The environment of the memory-only worker (see the module docstring)."""


def _spawn(
    name: str,
    shape: tuple[int, int, int],
    steps: int,
    threads: int,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--shape",
        ",".join(map(str, shape)),
        "--steps",
        str(steps),
        "--threads",
        str(threads),
    ]
    env = None if environment is None else {**os.environ, **environment}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {shape} failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mib(shape: tuple[int, int, int]) -> tuple[float, float]:
    """The float32 logits' size and the gradients' size (input and projection), in MiB."""
    tokens, features, classes = shape
    return tokens * classes * 4 / 2**20, (tokens + classes) * features * 4 / 2**20


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    shapes = QUICK_SHAPES if args.quick else SHAPES
    names = IMPLEMENTATIONS + (EXTRA if args.extra else [])
    rows = []
    for shape in shapes:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        mapped = {}
        for name in names:
            mapped[name] = _spawn(name, shape, 1, args.threads, MAPPED)["peak_extra_mib"]
            print(f"# {shape} mapped: {name} {mapped[name]:.0f} MiB", file=sys.stderr, flush=True)
        for round_ in range(args.rounds):
            for name in names:
                steps = 1 if name in SLOW else args.steps
                result = _spawn(name, shape, steps, args.threads)
                results[name].append(result)
                print(
                    f"# {shape} round {round_ + 1}: {name} {result['times_s']} s, "
                    f"{result['peak_extra_mib']:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        logits, grads = _mib(shape)
        for name in names:
            times = [t for r in results[name] for t in r["times_s"]]
            rows.append(
                {
                    "implementation": name,
                    "label": LABELS[name],
                    "shape": list(shape),
                    "threads": args.threads,
                    "median_s": statistics.median(times),
                    "times_s": times,
                    "peak_extra_mib": statistics.median(r["peak_extra_mib"] for r in results[name]),
                    "peak_extra_mib_runs": [r["peak_extra_mib"] for r in results[name]],
                    "peak_extra_mapped_mib": mapped[name],
                    "logits_mib": logits,
                    "grads_mib": grads,
                    "memory_target_mib": grads + logits / 8,
                    "loss": results[name][0]["loss"],
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for shape in dict.fromkeys(tuple(r["shape"]) for r in rows):
        group = [r for r in rows if tuple(r["shape"]) == shape]
        by_name = {r["implementation"]: r for r in group}
        naive, chunked = by_name["naive"]["median_s"], by_name["torch_chunked"]["median_s"]
        ce = by_name["multiloss_ce"]["median_s"]
        first = group[0]
        lines += [
            "",
            f"N={shape[0]}, D={shape[1]}, V={shape[2]}, float32, {first['threads']} threads "
            f"(logits {first['logits_mib']:.0f} MiB, gradients {first['grads_mib']:.0f} MiB, "
            f"memory target {first['memory_target_mib']:.0f} MiB)",
            "",
            "| implementation | time / step | ÷ naive | ÷ F.linear_cross_entropy | ÷ multiloss CE "
            "| peak extra, buffers mapped | peak extra, default heap (runs) | loss |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            t = r["median_s"]
            runs = ", ".join(f"{m:.0f}" for m in r["peak_extra_mib_runs"])
            lines.append(
                f"| {r['label']} | {t:.2f} s | {t / naive:.2f}× | {t / chunked:.2f}× "
                f"| {t / ce:.2f}× | {r['peak_extra_mapped_mib']:.0f} MiB "
                f"| {r['peak_extra_mib']:.0f} MiB ({runs}) | {r['loss']:.5f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, one round")
    parser.add_argument("--extra", action="store_true", help="also chunk sizes and recompute")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per worker")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        shape = tuple(int(s) for s in args.shape.split(","))
        print(json.dumps(worker(args.worker, shape, args.steps, args.threads)))  # type: ignore[arg-type]
        return
    if args.quick:
        args.rounds = 1
    rows = measure(args)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
