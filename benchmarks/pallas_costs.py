"""The Pallas engine's cost beside the XLA engine's and optax's, per benchmark shape.

Two counts per implementation of ``jax.jit(jax.value_and_grad(loss))``:

* **XLA:CPU, compiled** (every implementation): the optimized HLO's entry computation,
  counted as :func:`cost_model.count_xla` counts (each fusion, custom call, while loop, …
  one kernel; bytes from XLA's cost analysis, and those bytes in logits-sized passes:
  bytes / the logits' bytes). For the XLA engine and optax this is their plan (XLA:GPU's
  fusion heuristics differ, so their GPU counts may differ by a few). On this CPU the
  Pallas kernels run in the interpreter, so each is a ``while`` loop here and the bytes
  are the interpreter's, not a GPU's: the CPU-compiled HLO is **not** representative of
  the kernel engine on a GPU (no custom calls in it), and is shown for completeness.
* **CUDA, lowered** (the Pallas engine): the StableHLO that ``jax.jit(...).trace(...)
  .lower(lowering_platforms=("cuda",))`` produces on this machine (no GPU needed;
  `multiloss.jax._engine.lowering_for` makes the kernels compile for Triton instead of
  the interpreter). Each kernel is one ``__gpu$xla.gpu.triton`` custom call; their bytes are
  their operands and results (each read or written once), and the passes are the
  logits-sized ones among them. What XLA:GPU fuses the few small operations outside the
  kernels into cannot be counted without its compiler (not in a CPU jaxlib): they are
  listed as "other ops" (StableHLO operations on per-row vectors and scalars, besides
  constants and reshapes). XLA's and optax's fusions on a GPU cannot be counted here for
  the same reason.

Run: ``python benchmarks/pallas_costs.py [--quick] [--json PATH]`` (prints a Markdown table).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cost_model import count_xla
from harness import (
    ASL,
    ASL_FULL,
    ASL_QUICK,
    BCE,
    DFL,
    DFL_FULL,
    DFL_QUICK,
    POLY,
    POLY_FULL,
    POLY_QUICK,
    SIGMOID_FOCAL,
    SIGMOID_FULL,
    SIGMOID_KINDS,
    SIGMOID_QUICK,
    SOFTMAX,
    SOFTMAX_FULL,
    SOFTMAX_QUICK,
    Shape,
)

LARGE = [
    Shape("8192×32000", (8192, 32000)),
    Shape("8192×32000 bfloat16", (8192, 32000), dtype="bfloat16"),
    Shape("16384×128256", (16384, 128256)),
    Shape("16384×128256 bfloat16", (16384, 128256), dtype="bfloat16"),
]
"""The shapes of issue 23's GPU targets."""

GROUPS_FULL = [
    (SOFTMAX, SOFTMAX_FULL + LARGE),
    (POLY, POLY_FULL),
    (BCE, SIGMOID_FULL),
    (SIGMOID_FOCAL, SIGMOID_FULL),
    (ASL, ASL_FULL),
    (DFL, DFL_FULL),
]
GROUPS_QUICK = [
    (SOFTMAX, SOFTMAX_QUICK),
    (POLY, POLY_QUICK),
    (BCE, SIGMOID_QUICK),
    (SIGMOID_FOCAL, SIGMOID_QUICK),
    (ASL, ASL_QUICK),
    (DFL, DFL_QUICK),
]
PALLAS = " (pallas)"

_TYPE = re.compile(r"tensor<((?:\d+x)*)(bf16|f16|f32|f64|i1|i8|i32|i64)>")
_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "f64": 8, "i1": 1, "i8": 1, "i32": 4, "i64": 8}
_FREE = {"constant", "reshape", "broadcast_in_dim", "convert"}


@dataclass
class Row:
    group: str
    shape: str
    implementation: str
    cpu_kernels: int
    cpu_bytes: int
    cpu_passes: float | None = None
    gpu_kernels: int | None = None
    gpu_bytes: int | None = None
    gpu_passes: int | None = None
    gpu_other_ops: int | None = None


def logits_shape(kind: str, shape: Shape) -> tuple[int, ...]:
    """The JAX layout: classes last for the softmax groups."""
    if kind in SIGMOID_KINDS:
        return shape.logits
    return shape.logits[:1] + shape.logits[2:] + shape.logits[1:2]


def abstract_arguments(kind: str, shape: Shape) -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp

    dims = logits_shape(kind, shape)
    logits = jax.ShapeDtypeStruct(dims, getattr(jnp, shape.dtype))
    if kind in SIGMOID_KINDS:
        return logits, jax.ShapeDtypeStruct(dims, jnp.float32)
    if kind == DFL:  # a position in [0, n - 1] per row
        return logits, jax.ShapeDtypeStruct(dims[:-1], jnp.float32)
    return logits, jax.ShapeDtypeStruct(dims[:-1], jnp.int32)


def with_pallas(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` traced under `multiloss.jax.engine("pallas")`."""
    import multiloss.jax as mlj

    def traced(z: Any, y: Any) -> Any:
        with mlj.engine("pallas"):
            return function(z, y)

    return traced


def textbook_dfl(z: Any, y: Any) -> Any:
    """The distribution focal loss as the detectors write it: the cross-entropies against
    the bins left and right of the target, weighted by the distances (mean over rows)."""
    import jax
    import jax.numpy as jnp

    left = jnp.minimum(jnp.floor(y), z.shape[-1] - 2).astype(jnp.int32)
    log_p = jax.nn.log_softmax(z, axis=-1)
    low = jnp.take_along_axis(log_p, left[:, None], axis=-1)[:, 0]
    high = jnp.take_along_axis(log_p, left[:, None] + 1, axis=-1)[:, 0]
    return -jnp.mean((left + 1 - y) * low + (y - left) * high)


def implementations(kind: str, shape: Shape) -> dict[str, Callable[..., Any]]:
    """optax's (or the textbook's) reference first, then multiloss on XLA and on Pallas."""
    from jax_impls import jax_implementations

    if kind == DFL:
        import multiloss.jax as mlj

        functions = {
            "textbook DFL (two gathered log-softmax terms)": textbook_dfl,
            "multiloss DFL": lambda z, y: mlj.distribution_focal_loss(z, y),
        }
    else:
        functions = dict(jax_implementations(kind, shape))
    for name in [name for name in functions if name.startswith("multiloss")]:
        functions[name + PALLAS] = with_pallas(functions[name])
    return functions


def tensor_bytes(text: str) -> list[tuple[int, int]]:
    """(elements, bytes) of every tensor type in `text`."""
    found = []
    for dims, kind in _TYPE.findall(text):
        elements = math.prod(int(d) for d in dims.split("x") if d)
        found.append((elements, elements * _BYTES[kind]))
    return found


_DEFINITION = re.compile(r"^\s*(%[\w.\-]+)(?::\d+)? = ")
_REFERENCE = re.compile(r"%[\w.\-]+")


def _main_lines(text: str) -> list[str]:
    """The body of the module's `@main` function, one instruction a line."""
    lines, inside = [], False
    for line in text.splitlines():
        if "func.func public @main" in line:
            inside = True
            continue
        if inside and line.strip() == "}":
            break
        if inside:
            lines.append(line)
    return lines


def count_lowered(text: str, logits_elements: int) -> tuple[int, int, int, int]:
    """(kernels, bytes, logits-sized passes, live other ops) of a CUDA-lowered module.

    Other ops: the operations of `@main` outside the kernels that the results depend on
    (dead code, such as the label checks that only `checkify` keeps, is not counted),
    besides constants, reshapes, broadcasts and converts, which XLA folds into what
    consumes them; a call of a private function counts one.
    """
    lines = _main_lines(text)
    live: set[str] = set()
    kernels = passes = size = other = 0
    for line in reversed(lines):
        if line.strip().startswith(("return", "stablehlo.return", "func.return")):
            live.update(_REFERENCE.findall(line))
            continue
        match = _DEFINITION.match(line)
        if not match or match.group(1) not in live:
            continue
        operands = line[match.end() :]
        live.update(name.split("#")[0] for name in _REFERENCE.findall(operands))
        if "stablehlo.custom_call @__gpu$xla.gpu.triton" in line:
            kernels += 1
            for elements, nbytes in tensor_bytes(line[line.rindex("} : (") :]):
                size += nbytes
                passes += elements >= logits_elements
            continue
        op = re.search(r"(?:stablehlo|chlo|func)\.([a-z_]+)|\bcall\b", operands)
        name = op.group(1) if op and op.group(1) else "call"
        if name not in _FREE:
            other += 1
            for elements, _ in tensor_bytes(operands):
                passes += elements >= logits_elements and name not in ("reduce",)
    return kernels, size, passes, other


def measure(kind: str, shape: Shape, *, gpu: bool = True, cpu: bool = True) -> list[Row]:
    """The rows of one shape: every implementation compiled for XLA:CPU (unless `cpu` is
    False: then only the Pallas engine's, lowered for CUDA, with -1 for the CPU counts)."""
    import jax

    from multiloss.jax._engine import lowering_for

    arguments = abstract_arguments(kind, shape)
    elements = math.prod(arguments[0].shape)
    rows = []
    for name, function in implementations(kind, shape).items():
        if not cpu and not name.endswith(PALLAS):
            continue
        step = jax.value_and_grad(function)
        if cpu:
            cost = count_xla(jax.jit(step).lower(*arguments).compile())
            logits_bytes = elements * arguments[0].dtype.itemsize
            passes = round(cost.bytes / logits_bytes, 1)
            row = Row(kind, shape.name, name, cost.kernels, cost.bytes, passes)
        else:
            row = Row(kind, shape.name, name, -1, -1)
        if gpu and name.endswith(PALLAS):
            fresh = jax.value_and_grad(lambda z, y, f=function: f(z, y))  # not the CPU trace
            with lowering_for("cuda"):
                lowered = jax.jit(fresh).trace(*arguments).lower(lowering_platforms=("cuda",))
            counted = count_lowered(lowered.as_text(), elements)
            row.gpu_kernels, row.gpu_bytes, row.gpu_passes, row.gpu_other_ops = counted
        rows.append(row)
    return rows


def _gb(value: int | None) -> str:
    return (
        "–"
        if value is None
        else f"{value / 1e9:.3g} GB"
        if value >= 1e8
        else f"{value / 1e6:.3g} MB"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| group | shape | implementation | XLA:CPU kernels | XLA:CPU bytes | XLA:CPU passes "
        "| CUDA kernels | CUDA kernel bytes | logits passes | other ops |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gpu = (
            ["–"] * 4
            if r.gpu_kernels is None
            else [str(r.gpu_kernels), _gb(r.gpu_bytes), str(r.gpu_passes), str(r.gpu_other_ops)]
        )
        lines.append(
            f"| {r.group} | {r.shape} | {r.implementation} | {r.cpu_kernels} "
            f"| {_gb(r.cpu_bytes)} | {'–' if r.cpu_passes is None else r.cpu_passes} | "
            + " | ".join(gpu)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small shapes only")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--kind", action="append", help="only these groups (repeatable)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for kind, shapes in GROUPS_QUICK if args.quick else GROUPS_FULL:
        if args.kind and kind not in args.kind:
            continue
        for shape in shapes:
            rows.extend(measure(kind, shape))
            print(table(rows[-3:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
