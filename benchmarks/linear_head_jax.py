"""The fused linear head + loss in JAX against the unfused optax step (issue #14).

For each shape (N tokens, D features, V classes; float32), one jitted
``value_and_grad`` step with respect to the input and the weight:

* ``optax (unfused)``: ``optax.softmax_cross_entropy_with_integer_labels(x @ W.T, y).mean()``,
  which holds the N×V logits and their gradient;
* ``multiloss linear_cross_entropy`` and ``multiloss linear_focal_loss`` (γ = 2), a chunk
  of tokens at a time.

Reported: the median time per step over interleaved rounds (A B C A B C …, see
``harness.interleaved``) and its ratio to optax's in the same round, and the compiled
program's temporary memory (``compiled.memory_analysis().temp_size_in_bytes``) and its
ratio to optax's. Targets: time ≤ 1.2× and temporary memory ≤ 1/8 of the unfused step.

Usage::

    .venv/bin/python benchmarks/linear_head_jax.py [--threads 2] [--rounds 5]
        [--shapes 2048x512x65536,4096x1024x32000] [--chunk-size T] [--out results.json]
    .venv/bin/python benchmarks/linear_head_jax.py --quick   # small shapes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import interleaved
from jax_impls import configure_threads

DEFAULT_SHAPES = "2048x512x65536,4096x1024x32000"
QUICK_SHAPES = "256x64x4096"
TIME_TARGET, MEMORY_TARGET = 1.2, 1 / 8
REFERENCE = "optax (unfused)"


def _shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        n, d, v = (int(part) for part in item.lower().split("x"))
        shapes.append((n, d, v))
    return shapes


def _steps(
    n: int, d: int, v: int, chunk_size: int | None
) -> tuple[dict[str, Any], dict[str, Callable[[], Any]], dict[str, Any]]:
    """The compiled steps of one shape, a call of each, and each one's loss value."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from multiloss.jax.linear import linear_cross_entropy, linear_focal_loss

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
    w = jnp.asarray((rng.normal(size=(v, d)) / np.sqrt(d)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, v, size=n).astype(np.int32))

    def unfused(x: Any, w: Any) -> Any:
        return optax.softmax_cross_entropy_with_integer_labels(x @ w.T, y).mean()

    def fused_ce(x: Any, w: Any) -> Any:
        return linear_cross_entropy(x, w, y, chunk_size=chunk_size)

    def fused_focal(x: Any, w: Any) -> Any:
        return linear_focal_loss(x, w, y, gamma=2.0, chunk_size=chunk_size)

    functions = {
        REFERENCE: unfused,
        "multiloss linear_cross_entropy": fused_ce,
        "multiloss linear_focal_loss": fused_focal,
    }
    compiled = {
        name: jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(x, w).compile()
        for name, f in functions.items()
    }
    calls = {
        name: (lambda step=step: jax.block_until_ready(step(x, w)))
        for name, step in compiled.items()
    }
    values = {name: float(call()[0]) for name, call in calls.items()}
    return compiled, calls, values


def measure(
    shape: tuple[int, int, int], rounds: int, chunk_size: int | None
) -> list[dict[str, Any]]:
    from multiloss.jax.linear import chunk_rows

    n, d, v = shape
    compiled, calls, values = _steps(n, d, v, chunk_size)
    memory = {
        name: int(step.memory_analysis().temp_size_in_bytes) for name, step in compiled.items()
    }
    timings = interleaved(calls, REFERENCE, rounds, budget=0.0, progress=lambda: None)
    rows = []
    for name in calls:
        seconds, ratios = timings[name]
        row = {
            "shape": {"N": n, "D": d, "V": v},
            "implementation": name,
            "chunk_size": None if name == REFERENCE else chunk_size or chunk_rows(n, v),
            "median_s": statistics.median(seconds),
            "seconds": seconds,
            "time_ratio": statistics.median(ratios),
            "temp_bytes": memory[name],
            "memory_ratio": memory[name] / memory[REFERENCE],
            "loss": values[name],
        }
        if name != REFERENCE:
            row["time_target_met"] = row["time_ratio"] <= TIME_TARGET
            row["memory_target_met"] = row["memory_ratio"] <= MEMORY_TARGET
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| N×D×V | implementation | chunk | step (ms) | × optax | temp (MiB) | × optax | targets |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        shape = "{N}×{D}×{V}".format(**row["shape"])
        met = ""
        if "time_target_met" in row:
            met = " ".join(
                ("✓" if row[key] else "✗") + label
                for key, label in (("time_target_met", " time"), ("memory_target_met", " memory"))
            )
        lines.append(
            f"| {shape} | {row['implementation']} | {row['chunk_size'] or '—'} | "
            f"{row['median_s'] * 1e3:.0f} | {row['time_ratio']:.2f} | "
            f"{row['temp_bytes'] / 2**20:.1f} | {row['memory_ratio']:.3f} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="XLA CPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--shapes", default=None, help=f"NxDxV,... (default {DEFAULT_SHAPES})")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: automatic")
    parser.add_argument("--quick", action="store_true", help=f"shapes {QUICK_SHAPES}, 2 rounds")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    configure_threads(args.threads)  # before jax is imported
    import jax

    shapes = _shapes(args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES))
    rounds = 2 if args.quick and args.rounds == 5 else args.rounds
    rows = []
    for shape in shapes:
        rows.extend(measure(shape, rounds, args.chunk_size))
    text = table(rows)
    print(text)
    if args.out is not None:
        header = {
            "benchmark": "linear_head_jax",
            "dtype": "float32",
            "step": "jit(value_and_grad) w.r.t. input and weight",
            "threads": args.threads,
            "rounds": rounds,
            "jax": jax.__version__,
            "device": str(jax.devices()[0].device_kind),
            "machine": platform.machine(),
            "targets": {"time_ratio": TIME_TARGET, "memory_ratio": MEMORY_TARGET},
        }
        args.out.write_text(json.dumps({"header": header, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
