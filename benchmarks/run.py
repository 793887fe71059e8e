"""The benchmark suite: multiloss against its peers, forward + backward, time and memory.

Run ``python benchmarks/run.py`` (``--quick`` for the smoke test CI runs). It writes, into
``--out`` (default ``benchmarks/results``): ``benchmarks.md`` (the tables), ``benchmarks.json``
(every raw timing) and ``benchmarks.png`` (time ratio and memory per shape and implementation).

Method (docs/benchmarks.md, "Method"): every implementation of a group runs forward +
backward on the same logits; after a warm-up, the implementations are timed interleaved
(A B C A B C …, the order rotated each round) for several rounds; each round gives every
implementation a ratio to the group's reference measured beside it, and the table shows the
median ratio.
Each group (backend, loss kind, shape) runs in a new process (``--in-process`` to run them
all in this one), so that one group's allocations do not shape the next one's timings.
Absolute times drift on shared machines; ratios measured side by side do not (as much).

Memory: for torch, the bytes saved for backward beyond the logits (saved-tensor hooks, each
storage counted once, the logits' own storage not counted); for JAX, XLA's temporary
buffer size of the compiled forward + backward (``compiled.memory_analysis()``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

THREADS = 2


@dataclass(frozen=True)
class Shape:
    name: str
    logits: tuple[int, ...]
    """Logits shape in the torch layout (class axis 1)."""
    ignore_index: int | None = None
    dtype: str = "float32"


FULL_SHAPES = [
    Shape("65536×10", (65536, 10)),
    Shape("8192×1000", (8192, 1000)),
    Shape("1024×32000", (1024, 32000)),
    Shape("8×21×128×128, ignore 255", (8, 21, 128, 128), ignore_index=255),
    Shape("8192×1000 bfloat16", (8192, 1000), dtype="bfloat16"),
]
QUICK_SHAPES = [
    Shape("512×10", (512, 10)),
    Shape("64×1000", (64, 1000)),
    Shape("2×5×16×16, ignore 255", (2, 5, 16, 16), ignore_index=255),
    Shape("64×1000 bfloat16", (64, 1000), dtype="bfloat16"),
]
SIGMOID_FULL = [Shape("8192×1000 multi-label", (8192, 1000))]
SIGMOID_QUICK = [Shape("64×100 multi-label", (64, 100))]


@dataclass
class Measurement:
    backend: str
    group: str
    shape: str
    implementation: str
    reference: str
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    memory_bytes: int | None = None
    memory_kind: str = ""
    note: str = ""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")


def make_data(shape: Shape, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits (torch layout) and a target: class indices, or multi-label 0/1."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape.logits, dtype=np.float32) * 2
    if kind == "sigmoid":
        return logits, (rng.random(shape.logits) < 0.05).astype(np.float32)
    num_classes = shape.logits[1]
    target_shape = shape.logits[:1] + shape.logits[2:]
    target = rng.integers(0, num_classes, size=target_shape)
    if shape.ignore_index is not None:
        target = np.where(rng.random(target_shape) < 0.1, shape.ignore_index, target)
    return logits, target


def interleaved(
    steps: dict[str, Callable[[], Any]],
    reference: str,
    rounds: int,
    budget: float,
    progress: Callable[[], None],
) -> dict[str, tuple[list[float], list[float]]]:
    """Time each step interleaved; per round, each step's time and its ratio to the reference.

    A step is called `inner` times per measurement, with `inner` chosen in the warm-up so
    that one measurement lasts about `budget` seconds.
    """
    inner = {}
    for name, step in steps.items():
        step()  # warm-up (compilation, allocator)
        start = time.perf_counter()
        step()
        once = max(time.perf_counter() - start, 1e-6)
        inner[name] = max(1, int(budget / once))
    names = list(steps)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            step, count = steps[name], inner[name]
            start = time.perf_counter()
            for _ in range(count):
                step()
            seconds[name].append((time.perf_counter() - start) / count)
            progress()
    return {
        name: (
            seconds[name],
            [s / r for s, r in zip(seconds[name], seconds[reference], strict=True)],
        )
        for name in names
    }


# --------------------------------------------------------------------------------------
# PyTorch


def torch_implementations(kind: str, shape: Shape) -> dict[str, Callable[..., Any]]:
    """Loss functions (logits, target) -> scalar, by name; the reference comes first."""
    import torch
    import torch.nn.functional as F

    import multiloss.torch as mt

    ignore = shape.ignore_index if shape.ignore_index is not None else -100
    if kind == "sigmoid":

        def torchvision_formula(logits, target):
            # torchvision.ops.sigmoid_focal_loss, written out (it does not install beside
            # torch 2.13.0 here)
            p = torch.sigmoid(logits)
            ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            p_t = p * target + (1 - p) * (1 - target)
            loss = ce * ((1 - p_t) ** 2)
            loss = (0.25 * target + 0.75 * (1 - target)) * loss
            return loss.mean()

        return {
            "F.binary_cross_entropy_with_logits": lambda z, y: F.binary_cross_entropy_with_logits(
                z, y
            ),
            "multiloss BCE": lambda z, y: mt.binary_cross_entropy(z, y),
            "multiloss sigmoid focal γ=2": lambda z, y: mt.sigmoid_focal_loss(z, y),
            "torchvision sigmoid focal (formula)": torchvision_formula,
        }

    def textbook_focal(logits, target):
        log_p = F.log_softmax(logits, dim=1)
        counted = target != ignore
        safe = torch.where(counted, target, 0).unsqueeze(1)
        log_p_t = log_p.gather(1, safe).squeeze(1)
        loss = -((1 - log_p_t.exp()) ** 2) * log_p_t
        return (loss * counted).sum() / counted.sum()

    implementations = {
        "F.cross_entropy": lambda z, y: F.cross_entropy(z, y, ignore_index=ignore),
        "multiloss CE": lambda z, y: mt.cross_entropy(z, y, ignore_index=ignore),
        "multiloss focal γ=2": lambda z, y: mt.focal_loss(z, y, gamma=2.0, ignore_index=ignore),
        "textbook focal γ=2": textbook_focal,
    }
    try:
        import kornia.losses

        implementations["kornia focal γ=2"] = lambda z, y: kornia.losses.focal_loss(
            z, y, alpha=None, gamma=2.0, reduction="mean", ignore_index=ignore
        )
    except ImportError:
        pass
    try:
        from monai.losses import FocalLoss as MonaiFocalLoss

        monai_loss = MonaiFocalLoss(
            use_softmax=True, to_onehot_y=True, gamma=2.0, ignore_index=shape.ignore_index
        )
        implementations["MONAI focal γ=2"] = lambda z, y: monai_loss(z, y.unsqueeze(1))
    except ImportError:
        pass
    return implementations


def torch_saved_bytes(loss_fn: Callable[..., Any], logits: Any, target: Any) -> int:
    """Bytes of the tensors autograd saves for backward, beyond the logits' own storage."""
    import torch

    logits_storage = logits.untyped_storage().data_ptr()
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != logits_storage:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(logits, target)
    del loss
    return sum(storages.values())


def torch_floor(logits: Any) -> Callable[[], Any]:
    """One exp pass and one copy over the same logits: what no loss can beat."""
    import torch

    def step() -> Any:
        return torch.exp(logits), logits.clone()

    return step


def bench_torch(shapes, kind, rounds, budget, progress, results) -> None:
    import torch

    torch.set_num_threads(THREADS)
    for shape in shapes:
        logits_np, target_np = make_data(shape, kind)
        dtype = getattr(torch, shape.dtype)
        logits = torch.from_numpy(logits_np).to(dtype).requires_grad_(True)
        target = torch.from_numpy(target_np)
        implementations = torch_implementations(kind, shape)
        reference = next(iter(implementations))

        def make_step(loss_fn, logits=logits, target=target):
            def step():
                logits.grad = None
                loss_fn(logits, target).backward()

            return step

        steps = {name: make_step(fn) for name, fn in implementations.items()}
        steps["floor: one exp + one copy"] = torch_floor(logits.detach())
        timed = interleaved(steps, reference, rounds, budget, progress)
        for name, (seconds, ratios) in timed.items():
            measurement = Measurement("torch", kind, shape.name, name, reference, seconds, ratios)
            if name in implementations:
                measurement.memory_bytes = torch_saved_bytes(implementations[name], logits, target)
                measurement.memory_kind = "saved for backward beyond the logits"
            results.append(measurement)


# --------------------------------------------------------------------------------------
# JAX


def jax_implementations(kind: str, shape: Shape) -> dict[str, Callable[..., Any]]:
    import jax.numpy as jnp
    import optax

    import multiloss.jax as mj

    if kind == "sigmoid":
        return {
            "optax sigmoid_binary_cross_entropy": lambda z, y: optax.sigmoid_binary_cross_entropy(
                z, y
            ).mean(),
            "multiloss BCE": lambda z, y: mj.binary_cross_entropy(z, y),
            "optax sigmoid_focal_loss": lambda z, y: optax.sigmoid_focal_loss(
                z, y, alpha=0.25, gamma=2.0
            ).mean(),
            "multiloss sigmoid focal γ=2": lambda z, y: mj.sigmoid_focal_loss(z, y),
        }
    ignore = shape.ignore_index

    def optax_ce(z, y):
        if ignore is None:
            return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
        counted = y != ignore
        losses = optax.softmax_cross_entropy_with_integer_labels(z, jnp.where(counted, y, 0))
        return jnp.sum(jnp.where(counted, losses, 0.0)) / jnp.sum(counted)

    ignore_index = -100 if ignore is None else ignore
    return {
        "optax CE (integer labels)": optax_ce,
        "multiloss CE": lambda z, y: mj.cross_entropy(z, y, ignore_index=ignore_index),
        "multiloss focal γ=2": lambda z, y: mj.focal_loss(
            z, y, gamma=2.0, ignore_index=ignore_index
        ),
    }


def bench_jax(shapes, kind, rounds, budget, progress, results) -> None:
    import jax
    import jax.numpy as jnp

    for shape in shapes:
        logits_np, target_np = make_data(shape, kind)
        if kind == "softmax":  # JAX layout: classes last
            logits_np = np.moveaxis(logits_np, 1, -1)
        logits = jnp.asarray(logits_np, dtype=getattr(jnp, shape.dtype))
        target = jnp.asarray(target_np, dtype=jnp.float32 if kind == "sigmoid" else jnp.int32)
        implementations = jax_implementations(kind, shape)
        reference = next(iter(implementations))
        compiled = {
            name: jax.jit(jax.value_and_grad(fn)).lower(logits, target).compile()
            for name, fn in implementations.items()
        }

        def make_step(function, logits=logits, target=target):
            return lambda: jax.block_until_ready(function(logits, target))

        steps = {name: make_step(function) for name, function in compiled.items()}
        floor = jax.jit(lambda z, y: (jnp.exp(z), z + 0)).lower(logits, target).compile()
        steps["floor: one exp + one copy"] = make_step(floor)
        timed = interleaved(steps, reference, rounds, budget, progress)
        for name, (seconds, ratios) in timed.items():
            measurement = Measurement("jax", kind, shape.name, name, reference, seconds, ratios)
            if name in compiled:
                analysis = compiled[name].memory_analysis()
                measurement.memory_bytes = int(analysis.temp_size_in_bytes)
                measurement.memory_kind = "XLA temporary buffers"
            results.append(measurement)


# --------------------------------------------------------------------------------------
# Reporting


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("multiloss", "numpy", "torch", "jax", "jaxlib", "optax", "kornia", "monai"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def format_bytes(count: int | None) -> str:
    if count is None:
        return "–"
    if count < 1024:
        return f"{count} B"
    if count < 2**20:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 2**20:.2f} MiB"


def markdown(results: list[Measurement], header: dict[str, Any]) -> str:
    lines = ["# multiloss benchmarks", ""]
    lines.append(
        ", ".join(f"{key} {value}" for key, value in header["versions"].items())
        + f"; {header['threads']} threads; {header['rounds']} interleaved rounds"
        + f"; malloc {header.get('malloc', 'default')}"
        + (" (quick mode: tiny shapes, no meaning for speed)" if header["quick"] else "")
    )
    lines.append("")
    lines.append(
        "Forward + backward. *ratio*: median over rounds of time / reference time measured "
        "in the same round (< 1 is faster than the reference). *memory*: torch, bytes saved "
        "for backward beyond the logits; JAX, XLA temporary buffers of the compiled step."
    )
    keys = []
    for m in results:
        key = (m.backend, m.group, m.shape)
        if key not in keys:
            keys.append(key)
    for backend, group, shape in keys:
        rows = [m for m in results if (m.backend, m.group, m.shape) == (backend, group, shape)]
        lines += ["", f"## {backend}, {group}: {shape}", ""]
        lines += ["| implementation | ratio | median time | memory |", "|---|---|---|---|"]
        for m in rows:
            lines.append(
                f"| {m.implementation} | {m.median_ratio:.2f}× | "
                f"{m.median_seconds * 1e3:.2f} ms | {format_bytes(m.memory_bytes)} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({m.backend for m in results})
    figure, axes = plt.subplots(len(backends), 2, figsize=(15, 4.8 * len(backends)), squeeze=False)
    for row, backend in enumerate(backends):
        chosen = [m for m in results if m.backend == backend]
        shapes = list(dict.fromkeys(f"{m.group}: {m.shape}" for m in chosen))
        names = list(dict.fromkeys(m.implementation for m in chosen))
        width = 0.8 / len(names)
        for index, name in enumerate(names):
            ratios, memory = [], []
            for shape in shapes:
                match = [
                    m
                    for m in chosen
                    if f"{m.group}: {m.shape}" == shape and m.implementation == name
                ]
                ratios.append(match[0].median_ratio if match else np.nan)
                memory.append((match[0].memory_bytes or 0) / 2**20 if match else np.nan)
            positions = np.arange(len(shapes)) + index * width
            axes[row][0].bar(positions, ratios, width, label=name)
            axes[row][1].bar(positions, memory, width, label=name)
        for column, title in enumerate(
            ("time / reference, log scale (lower is faster)", "memory (MiB)")
        ):
            axis = axes[row][column]
            axis.set_title(f"{backend}: {title}")
            axis.set_xticks(np.arange(len(shapes)) + 0.4 - width / 2)
            axis.set_xticklabels(shapes, rotation=20, ha="right", fontsize=8)
            axis.grid(axis="y", alpha=0.3)
        axes[row][0].set_yscale("log")
        axes[row][0].axhline(1.0, color="black", linewidth=0.8)
        axes[row][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (7; quick 2)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds per measurement (0.15; quick 0.002)"
    )
    parser.add_argument("--backends", default="torch,jax", help="comma-separated (torch,jax)")
    parser.add_argument(
        "--shapes",
        default="",
        help="only the shapes whose name contains one of these comma-separated words "
        "(e.g. '8192,bfloat16'); all by default",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--warm-malloc",
        action="store_true",
        help="pin glibc malloc's mmap and trim thresholds at 1 GiB in the measuring processes, "
        "so that freed memory is reused instead of returned and page-faulted again",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every shape in this process (default: each shape in a new process)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)
    budget = args.budget or (0.002 if args.quick else 0.15)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"torch", "jax"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}; choose torch, jax")
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    sigmoid_shapes = SIGMOID_QUICK if args.quick else SIGMOID_FULL
    words = [word.strip() for word in args.shapes.split(",") if word.strip()]
    if words:
        shapes = [s for s in shapes if any(word in s.name for word in words)]
        sigmoid_shapes = [s for s in sigmoid_shapes if any(word in s.name for word in words)]

    header = {
        "versions": versions(),
        "threads": THREADS,
        "rounds": rounds,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "command": " ".join(sys.argv),
    }
    print(", ".join(f"{k} {v}" for k, v in header["versions"].items()))
    print(f"threads: {THREADS} (of {os.cpu_count()} CPUs); rounds: {rounds}; budget: {budget}s")

    if args.warm_malloc:
        # glibc reads these when a process starts: they apply to the new processes of the
        # groups; with --in-process, set them in the environment before running instead.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 30)
        os.environ["MALLOC_TRIM_THRESHOLD_"] = str(1 << 30)
    header["malloc"] = "warm (glibc thresholds pinned at 1 GiB)" if args.warm_malloc else "default"
    print(f"malloc: {header['malloc']}")
    groups = [
        (backend, kind, shape)
        for backend in backends
        for kind, chosen in (("softmax", shapes), ("sigmoid", sigmoid_shapes))
        for shape in chosen
    ]
    total = sum(rounds * (len(_names(*group)) + 1) for group in groups)
    bar = ProgressBar(total)
    results: list[Measurement] = []
    for group in groups:
        if args.in_process:
            _run_group(*group, rounds, budget, bar.update_one, results)
        else:
            results.extend(_run_group_in_a_new_process(*group, rounds, budget, bar.update_one))
    bar.close()

    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, header)
    (args.out / "benchmarks.md").write_text(table, encoding="utf-8")
    raw = {
        "header": header,
        "measurements": [
            asdict(m) | {"median_ratio": m.median_ratio, "median_seconds": m.median_seconds}
            for m in results
        ],
    }
    (args.out / "benchmarks.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    if not args.no_plot:
        plot(results, args.out / "benchmarks.png")
    print(table)
    print(
        f"written: {args.out / 'benchmarks.md'}, benchmarks.json"
        + ("" if args.no_plot else ", benchmarks.png")
    )
    return 0


RUNNERS = {"torch": bench_torch, "jax": bench_jax}


def _run_group(
    backend: str,
    kind: str,
    shape: Shape,
    rounds: int,
    budget: float,
    progress: Callable[[], None],
    results: list[Measurement],
) -> None:
    RUNNERS[backend]([shape], kind, rounds, budget, progress, results)


def _group_worker(backend, kind, shape, rounds, budget, messages) -> None:
    """The child process's side of :func:`_run_group_in_a_new_process`."""
    try:
        results: list[Measurement] = []
        _run_group(backend, kind, shape, rounds, budget, lambda: messages.put(("tick",)), results)
        messages.put(("done", results))
    except BaseException:  # reported to the parent, which raises
        import traceback

        messages.put(("error", traceback.format_exc()))


def _run_group_in_a_new_process(
    backend: str, kind: str, shape: Shape, rounds: int, budget: float, progress: Callable
) -> list[Measurement]:
    """One shape group in a fresh interpreter, so that what an earlier group allocated
    (MONAI takes up to 625 MiB at 1024×32000) does not change the allocator's state, and
    with it the page faults, of the next group; the implementations within a group still
    run side by side in one process."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    worker = context.Process(
        target=_group_worker, args=(backend, kind, shape, rounds, budget, messages)
    )
    worker.start()
    try:
        while True:
            message = messages.get()
            if message[0] == "tick":
                progress()
            elif message[0] == "done":
                return message[1]
            else:
                raise RuntimeError(f"{backend} {kind} {shape.name} failed:\n{message[1]}")
    finally:
        worker.join()


def _names(backend: str, kind: str, shape: Shape) -> list[str]:
    if backend == "torch":
        return list(torch_implementations(kind, shape))
    return list(jax_implementations(kind, shape))


class ProgressBar:
    """tqdm when it is installed, else nothing."""

    def __init__(self, total: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, desc="measurements", ncols=80, file=sys.stderr)

    def update_one(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
