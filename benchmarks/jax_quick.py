"""Quick JAX benchmark: multiloss against optax, jitted forward + backward, float32.

For each shape (N×C, classes last) it compiles ``jax.jit(jax.value_and_grad(f))`` for

* A: ``optax.softmax_cross_entropy_with_integer_labels(z, y).mean()`` (the reference),
* B: ``multiloss.jax.cross_entropy(z, y)``,
* C: ``multiloss.jax.focal_loss(z, y, gamma=2.0)``,

warms each up, then times them interleaved in one process (A B C, B C A, C A B, …: the
order rotates every round) and reports each one's median time, the median over rounds of
its per-round time ratio to A, and its compiled temporary memory
(``compiled.memory_analysis().temp_size_in_bytes``). A textbook focal loss
(log_softmax → gather → (1 - p_t)^γ, differentiated by JAX) is timed the same way against
A in a run of its own. Timing ratios, not absolute times, carry over between machines.

    python benchmarks/jax_quick.py            # the three shapes of DESIGN.md section 8
    python benchmarks/jax_quick.py --quick    # tiny shapes: a smoke test for CI
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import multiloss.jax as mlj

FULL_SHAPES = ((65536, 10), (8192, 1000), (1024, 32000))
QUICK_SHAPES = ((512, 10), (64, 100), (16, 1000))


def textbook_focal(z: jax.Array, y: jax.Array, gamma: float = 2.0) -> jax.Array:
    """log_softmax → gather → (1 - p_t)^γ, differentiated by JAX (the usual hand-written one)."""
    log_p = jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), y[:, None], axis=-1)[:, 0]
    return jnp.mean(-((1.0 - jnp.exp(log_p)) ** gamma) * log_p)


REFERENCE = "optax CE"


def implementations() -> dict[str, Callable[[jax.Array, jax.Array], jax.Array]]:
    """The functions timed together, the reference first."""
    return {
        REFERENCE: lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
        "multiloss CE": lambda z, y: mlj.cross_entropy(z, y),
        "multiloss focal γ=2": lambda z, y: mlj.focal_loss(z, y, gamma=2.0),
    }


def separate_peers() -> dict[str, Callable[[jax.Array, jax.Array], jax.Array]]:
    """Timed against the reference in runs of their own: their 7-250 MiB of temporaries
    slow down whatever runs next (optax by up to 30% at 1024×32000 in our runs)."""
    return {"textbook focal γ=2 (autodiff)": textbook_focal}


def _interleaved(
    functions: dict[str, Callable[..., Any]], logits: jax.Array, labels: jax.Array,
    rounds: int, warmup: int,
) -> tuple[dict[str, Any], dict[str, list[float]]]:  # fmt: skip
    compiled = {
        name: jax.jit(jax.value_and_grad(fn)).lower(logits, labels).compile()
        for name, fn in functions.items()
    }
    for function in compiled.values():
        for _ in range(warmup):
            jax.block_until_ready(function(logits, labels))
    seconds: dict[str, list[float]] = {name: [] for name in compiled}
    names = list(compiled)
    for round_ in range(rounds):
        shift = round_ % len(names)  # each one follows each other equally often
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            jax.block_until_ready(compiled[name](logits, labels))
            seconds[name].append(time.perf_counter() - start)
    return compiled, seconds


def measure(
    shape: tuple[int, int], rounds: int, warmup: int, seed: int = 0
) -> list[dict[str, Any]]:
    n, c = shape
    key_z, key_y = jax.random.split(jax.random.key(seed))
    logits = jax.random.normal(key_z, (n, c), dtype=jnp.float32) * 3.0
    labels = jax.random.randint(key_y, (n,), 0, c, dtype=jnp.int32)
    reference = implementations()[REFERENCE]
    groups = [implementations()] + [
        {REFERENCE: reference, name: peer} for name, peer in separate_peers().items()
    ]
    rows = []
    for index, group in enumerate(groups):
        compiled, seconds = _interleaved(group, logits, labels, rounds, warmup)
        for name, function in compiled.items():
            if index and name == REFERENCE:
                continue
            ratios = [t / r for t, r in zip(seconds[name], seconds[REFERENCE], strict=True)]
            rows.append(
                {
                    "shape": f"{n}×{c}",
                    "name": name,
                    "ms": 1e3 * statistics.median(seconds[name]),
                    "ratio": statistics.median(ratios),
                    "temp": function.memory_analysis().temp_size_in_bytes,
                }
            )
    return rows


def _bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | implementation | median ms | time ÷ optax CE | XLA temp memory |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['shape']} | {row['name']} | {row['ms']:.2f} | {row['ratio']:.2f}× "
            f"| {_bytes(row['temp'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few rounds (CI)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per shape")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per function")
    arguments = parser.parse_args(argv)
    shapes = QUICK_SHAPES if arguments.quick else FULL_SHAPES
    rounds = arguments.rounds or (3 if arguments.quick else 25)
    rows = [row for shape in shapes for row in measure(shape, rounds, arguments.warmup)]
    text = table(rows)
    devices = jax.devices()
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, {devices[0].platform} "
        f"×{len(devices)}, float32, jit(value_and_grad), {rounds} interleaved rounds\n"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
