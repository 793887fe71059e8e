"""JAX on a GPU: the Pallas engine against the XLA engine and optax, timed.

Each implementation is ``jax.jit(jax.value_and_grad(loss))`` on device arrays (class
indices, "mean"); the time is the median of `--repeat` calls after a warm-up, each waited
for with ``block_until_ready``. Beside it: the ratio to optax's time, the bandwidth counted
over 3 passes of the logits (read forward, read + write backward: what a fused
cross-entropy needs at least) and its share of `--peak` bytes/s, and the largest
difference of the kernels' loss and gradient from the XLA engine's (the numbers checked).

    python benchmarks/pallas_device.py                 # the GPU shapes of issue 23
    python benchmarks/pallas_device.py --quick         # small shapes (the CPU: interpreted)

Run by ``benchmarks/device_check_jax.sh``; prints a Markdown table (and ``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [
    ((8192, 32000), "float32"),
    ((8192, 32000), "bfloat16"),
    ((16384, 128256), "float32"),
    ((16384, 128256), "bfloat16"),
]
QUICK = [((64, 1024), "float32"), ((64, 1000), "bfloat16")]


def implementations() -> dict[str, Any]:
    import jax.numpy as jnp
    import optax

    import multiloss.jax as mlj

    def pallas(function: Any) -> Any:
        def traced(z: Any, y: Any) -> Any:
            with mlj.engine("pallas"):
                return function(z, y)

        return traced

    def xla(function: Any) -> Any:
        def traced(z: Any, y: Any) -> Any:
            with mlj.engine("xla"):
                return function(z, y)

        return traced

    def ce(z: Any, y: Any) -> Any:
        return mlj.cross_entropy(z, y)

    def focal(z: Any, y: Any) -> Any:
        return mlj.focal_loss(z, y, gamma=2.0)

    def optax_ce(z: Any, y: Any) -> Any:
        return optax.softmax_cross_entropy_with_integer_labels(z, y).mean().astype(jnp.float32)

    return {
        "optax CE": optax_ce,
        "multiloss CE (xla)": xla(ce),
        "multiloss CE (pallas)": pallas(ce),
        "multiloss focal γ=2 (xla)": xla(focal),
        "multiloss focal γ=2 (pallas)": pallas(focal),
    }


def measure(shape: tuple[int, int], dtype: str, repeat: int, peak: float) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    key_z, key_y = jax.random.split(jax.random.key(0))
    logits = (2.0 * jax.random.normal(key_z, shape, jnp.float32)).astype(dtype)
    labels = jax.random.randint(key_y, shape[:1], 0, shape[1], jnp.int32)
    rows: list[dict[str, Any]] = []
    results: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    for name, function in implementations().items():
        step = jax.jit(jax.value_and_grad(function))
        try:
            out = jax.block_until_ready(step(logits, labels))  # compile + warm-up
        except Exception as error:  # report and go on with the others
            rows.append(
                {
                    "shape": f"{shape[0]}×{shape[1]}",
                    "dtype": dtype,
                    "name": name,
                    "error": f"{type(error).__name__}: {str(error)[:300]}",
                }
            )
            continue
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            jax.block_until_ready(step(logits, labels))
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
        outputs[name] = (float(out[0]), out[1])
        del out
    reference = results.get("optax CE")
    passes = 3 * logits.size * logits.dtype.itemsize
    for name, seconds in results.items():
        row = {
            "shape": f"{shape[0]}×{shape[1]}",
            "dtype": dtype,
            "name": name,
            "ms": seconds * 1e3,
            "vs_optax": seconds / reference if reference else None,
            "gbps_3_passes": passes / seconds / 1e9,
            "of_peak": passes / seconds / peak,
        }
        if name.endswith("(pallas)"):
            twin = name.replace("(pallas)", "(xla)")
            if twin in outputs:
                value, grad = outputs[name]
                value_ref, grad_ref = outputs[twin]
                row["loss_diff"] = abs(value - value_ref)
                diff = jnp.max(jnp.abs(grad.astype(jnp.float32) - grad_ref.astype(jnp.float32)))
                row["grad_diff"] = float(diff)
                row["grad_scale"] = float(jnp.max(jnp.abs(grad_ref.astype(jnp.float32))))
        rows.append(row)
    del logits, labels, outputs
    np.asarray(0)  # nothing kept
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | dtype | implementation | ms | × optax | GB/s (3 passes) | of peak "
        "| |loss − xla| | max |grad − xla| / max |grad| |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['dtype']} | {r['name']} | error: {r['error']} |")
            continue
        ratio = "–" if r["vs_optax"] is None else f"{r['vs_optax']:.2f}"
        loss = f"{r['loss_diff']:.2g}" if "loss_diff" in r else ""
        grad = f"{r['grad_diff'] / max(r['grad_scale'], 1e-30):.2g}" if "grad_diff" in r else ""
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['name']} | {r['ms']:.3f} | {ratio} "
            f"| {r['gbps_3_passes']:.0f} | {100 * r['of_peak']:.0f} % | {loss} | {grad} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (any platform)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--peak", type=float, default=3.35e12, help="HBM bytes/s (H100 SXM)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import jax

    print(f"jax {jax.__version__}, {jax.default_backend()}: {jax.devices()[0].device_kind}")
    rows: list[dict[str, Any]] = []
    for shape, dtype in QUICK if args.quick else SHAPES:
        rows.extend(measure(shape, dtype, args.repeat, args.peak))
        print(table(rows).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
