"""The per-call overhead of a small call, before and after a change, side by side.

Two source trees (``--before`` and ``--after``, each a folder holding a ``multiloss``
package: say a ``git archive`` of ``main`` and the working tree) are each imported in a
worker process of their own, limited to one thread (``--threads`` for more); the workers
then time the same step in turn, A B A B … (the order swapped every round), so that drift
on a shared machine hits both alike. The step: ``multiloss.torch.cross_entropy`` forward +
backward of float32 logits of shape 64×10 (``--shape`` for another), class-index targets.
The median of each side's per-call times is reported, and the median of the per-round
ratios after/before.

    python benchmarks/call_overhead.py --before /tmp/main --after .
    python benchmarks/call_overhead.py --before /tmp/main --after . --rounds 41 --json r.json
    python benchmarks/call_overhead.py --before /tmp/main --after . --threads 2
    python benchmarks/call_overhead.py --quick          # this tree against itself, smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_WORKER = r"""
import os, sys, time
import torch
rows, classes, inner, threads = (int(v) for v in sys.argv[1:5])
torch.set_num_threads(threads)
import multiloss.torch as mt
generator = torch.Generator().manual_seed(0)
logits = torch.randn(rows, classes, generator=generator, requires_grad=True)
target = torch.randint(0, classes, (rows,), generator=generator)

def step():
    mt.cross_entropy(logits, target).backward()
    logits.grad = None

for _ in range(200):
    step()
print(mt.__file__, flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    for _ in range(inner):
        step()
    print((time.perf_counter() - start) / inner, flush=True)
"""


def _worker(tree: Path, shape: tuple[int, int], inner: int, threads: int) -> subprocess.Popen[str]:
    count = str(threads)
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
    }
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(shape[0]), str(shape[1]), str(inner), count],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tree,  # `-c` puts the working folder first on sys.path
    )


def _time(worker: subprocess.Popen[str]) -> float:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write("go\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def measure(
    before: Path, after: Path, shape: tuple[int, int], rounds: int, inner: int, threads: int = 1
) -> dict[str, Any]:
    """Per-call seconds of each side (lists, one entry per round) and their ratios."""
    workers = {
        "before": _worker(before, shape, inner, threads),
        "after": _worker(after, shape, inner, threads),
    }
    try:
        files = {}
        for name, worker in workers.items():
            assert worker.stdout is not None
            files[name] = worker.stdout.readline().strip()
        seconds: dict[str, list[float]] = {"before": [], "after": []}
        for index in range(rounds):
            order = ("before", "after") if index % 2 == 0 else ("after", "before")
            for name in order:
                seconds[name].append(_time(workers[name]))
    finally:
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(timeout=60)
    ratios = [a / b for a, b in zip(seconds["after"], seconds["before"], strict=True)]
    return {
        "files": files,
        "shape": shape,
        "threads": threads,
        "seconds": seconds,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, default=ROOT)
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument("--shape", default="64x10", help="rows x classes (default 64x10)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--inner", type=int, default=200, help="calls per timed block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 20 calls")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args(argv)
    rounds, inner = (3, 20) if args.quick else (args.rounds, args.inner)
    rows, classes = (int(v) for v in args.shape.lower().replace("×", "x").split("x"))
    result = measure(args.before, args.after, (rows, classes), rounds, inner, args.threads)
    before = statistics.median(result["seconds"]["before"])
    after = statistics.median(result["seconds"]["after"])
    threads = f"{args.threads} thread" + ("s" if args.threads > 1 else "")
    print(
        f"cross_entropy {rows}x{classes} forward+backward, {threads}, {rounds} rounds interleaved"
    )
    print("| tree | per call (median) |")
    print("|---|---|")
    print(f"| before ({result['files']['before']}) | {before * 1e6:.1f} µs |")
    print(f"| after ({result['files']['after']}) | {after * 1e6:.1f} µs |")
    ratio = statistics.median(result["ratios"])
    print(f"after / before, median of the per-round ratios: {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    status = main()
    print(f"({time.perf_counter() - start:.0f} s)")
    sys.exit(status)
