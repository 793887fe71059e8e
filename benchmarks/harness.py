"""What every benchmark group shares: the shapes, the data, the interleaved timer and the
record of one implementation's measurements."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Shape:
    """A benchmark shape: the logits' shape in the torch layout (class axis 1)."""

    name: str
    logits: tuple[int, ...]
    ignore_index: int | None = None
    dtype: str = "float32"


SOFTMAX = "softmax"
POLY = "poly"
BCE = "bce"
SIGMOID_FOCAL = "sigmoid focal"
ASL = "asl"
DFL = "dfl"
VARIFOCAL = "varifocal"
COMPILED = "compiled"
RECOMPILE = "recompile"
"""Group kinds. ``softmax`` and ``poly`` (PolyLoss, Poly-1) take class-index targets;
``bce``, ``sigmoid focal`` and ``asl`` (the asymmetric loss) take multi-label 0/1 targets;
``dfl`` (the distribution focal loss) takes positions in [0, n - 1.01] among the n bins of
axis 1; ``varifocal`` takes soft scores (a quality in (0, 1] on 5 % of the entries, 0
elsewhere); ``compiled`` times softmax losses under ``torch.compile``; ``recompile`` times
nothing: it counts the graphs ``torch.compile(dynamic=True)`` of multiloss CE compiles
across batch sizes."""
SIGMOID_KINDS = (BCE, SIGMOID_FOCAL, ASL, VARIFOCAL)
KINDS = (SOFTMAX, POLY, BCE, SIGMOID_FOCAL, ASL, DFL, VARIFOCAL, COMPILED, RECOMPILE)
DETECTION_KINDS = (DFL, VARIFOCAL)
"""Torch-only kinds of issue 24 (their peers' formulas are written in torch)."""
POSITIVE_RATE = 0.05
"""The share of 1s in the sigmoid groups' targets (independent Bernoulli draws)."""

SOFTMAX_FULL = [
    Shape("32×10", (32, 10)),
    Shape("64×10", (64, 10)),
    Shape("256×100", (256, 100)),
    Shape("512×1000", (512, 1000)),
    Shape("65536×10", (65536, 10)),
    Shape("8192×1000", (8192, 1000)),
    Shape("1024×32000", (1024, 32000)),
    Shape("8×21×128×128, ignore 255", (8, 21, 128, 128), ignore_index=255),
    Shape("8192×1000 bfloat16", (8192, 1000), dtype="bfloat16"),
]
SOFTMAX_LARGE = [
    Shape("8192×32000", (8192, 32000)),
    Shape("16384×128256 bfloat16", (16384, 128256), dtype="bfloat16"),
]
"""Issue #21's GPU shapes (``run.py --large``): 1 GiB of float32 logits, 4 GiB of bfloat16."""
SOFTMAX_QUICK = [
    Shape("512×10", (512, 10)),
    Shape("64×1000", (64, 1000)),
    Shape("2×5×16×16, ignore 255", (2, 5, 16, 16), ignore_index=255),
    Shape("64×1000 bfloat16", (64, 1000), dtype="bfloat16"),
]
SIGMOID_FULL = [
    Shape("256×80", (256, 80)),
    Shape("65536×80", (65536, 80)),
    Shape("8192×1000", (8192, 1000)),
]
SIGMOID_QUICK = [Shape("64×80", (64, 80))]
POLY_FULL = [Shape("256×100", (256, 100)), Shape("8192×1000", (8192, 1000))]
POLY_QUICK = [Shape("64×100", (64, 100))]
ASL_FULL = [Shape("256×80", (256, 80)), Shape("65536×80", (65536, 80))]
ASL_QUICK = [Shape("64×80", (64, 80))]
DFL_FULL = [Shape("33600×16 (8400 anchors × 4 sides)", (33600, 16))]
DFL_QUICK = [Shape("64×16", (64, 16))]
VARIFOCAL_FULL = [Shape("65536×80", (65536, 80))]
VARIFOCAL_QUICK = [Shape("64×80", (64, 80))]
COMPILED_FULL = [Shape("64×10", (64, 10)), Shape("8192×1000", (8192, 1000))]
COMPILED_QUICK = [Shape("64×10", (64, 10))]


def shapes_for(kind: str, quick: bool, large: bool = False) -> list[Shape]:
    """The shapes a group kind runs at, in quick or full mode (`large`: the softmax kind
    also at :data:`SOFTMAX_LARGE`)."""
    if kind == SOFTMAX:
        return (SOFTMAX_QUICK if quick else SOFTMAX_FULL) + (SOFTMAX_LARGE if large else [])
    if kind == POLY:
        return POLY_QUICK if quick else POLY_FULL
    if kind == ASL:
        return ASL_QUICK if quick else ASL_FULL
    if kind == DFL:
        return DFL_QUICK if quick else DFL_FULL
    if kind == VARIFOCAL:
        return VARIFOCAL_QUICK if quick else VARIFOCAL_FULL
    if kind in SIGMOID_KINDS:
        return SIGMOID_QUICK if quick else SIGMOID_FULL
    if kind == COMPILED:
        return COMPILED_QUICK if quick else COMPILED_FULL
    # the recompilation check: at the largest compiled shape (the first one selected)
    return (COMPILED_QUICK if quick else COMPILED_FULL)[::-1]


@dataclass(frozen=True)
class Group:
    """Implementations timed side by side: one backend, one loss kind, one shape."""

    backend: str
    kind: str
    shape: Shape


@dataclass(frozen=True)
class Settings:
    """How a group is measured; the same for every group of a run."""

    rounds: int
    budget: float
    """Seconds per measurement (a step is repeated to fill it)."""
    device: str = "cpu"


@dataclass
class Measurement:
    """One implementation of one group at one thread count, with its cost-model counts."""

    backend: str
    group: str
    shape: str
    implementation: str
    reference: str
    threads: int = 1
    device: str = "cpu"
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    memory_bytes: int | None = None
    memory_kind: str = ""
    peak_bytes: int | None = None
    """Device memory: peak allocated during one step beyond what was allocated before it
    (``torch.cuda.max_memory_allocated``); None on the CPU."""
    ops: int | None = None
    kernels: int | None = None
    bytes_accessed: int | None = None
    modelled_seconds: float | None = None
    modelled_ratio: float | None = None
    """Modelled time over the group reference's modelled time."""
    cost_kind: str = ""
    note: str = ""

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")


def set_modelled_ratios(measurements: list[Measurement]) -> None:
    """Each measurement's modelled time over its reference's, within one group."""
    modelled = {m.implementation: m.modelled_seconds for m in measurements}
    for m in measurements:
        reference = modelled.get(m.reference)
        if m.modelled_seconds is not None and reference:
            m.modelled_ratio = m.modelled_seconds / reference


def target_shape(kind: str, shape: Shape) -> tuple[int, ...]:
    """The target's shape: the logits' for the sigmoid kinds, without the class axis else."""
    if kind in SIGMOID_KINDS:
        return shape.logits
    return shape.logits[:1] + shape.logits[2:]


def make_data(shape: Shape, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits (torch layout) and a target: class indices (10 % ignored where the
    shape has an ignore index), or multi-label 0/1 floats with 5 % ones."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape.logits, dtype=np.float32) * 2
    if kind == DFL:  # ultralytics' range: at most n - 1 - 0.01
        bins = shape.logits[1]
        return logits, rng.uniform(0, bins - 1.01, size=target_shape(kind, shape)).astype(
            np.float32
        )
    if kind == VARIFOCAL:  # an IoU-like quality on the positives
        positive = rng.random(shape.logits) < POSITIVE_RATE
        quality = rng.uniform(0.05, 1.0, size=shape.logits)
        return logits, (positive * quality).astype(np.float32)
    if kind in SIGMOID_KINDS:
        return logits, (rng.random(shape.logits) < POSITIVE_RATE).astype(np.float32)
    num_classes = shape.logits[1]
    target = rng.integers(0, num_classes, size=target_shape(kind, shape))
    if shape.ignore_index is not None:
        target = np.where(rng.random(target.shape) < 0.1, shape.ignore_index, target)
    return logits, target


def _no_sync() -> None:
    pass


def interleaved(
    steps: dict[str, Callable[[], Any]],
    reference: str,
    rounds: int,
    budget: float,
    progress: Callable[[], None],
    synchronize: Callable[[], None] = _no_sync,
) -> dict[str, tuple[list[float], list[float]]]:
    """Time each step interleaved; per round, each step's time and its ratio to the reference.

    A step is called `inner` times per measurement, with `inner` chosen in the warm-up so
    that one measurement lasts about `budget` seconds. `synchronize` waits for the device
    (a no-op on the CPU) before the clock starts and before it stops. `progress` is called
    once per round.
    """
    inner = {}
    for name, step in steps.items():
        step()  # warm-up (compilation, allocator)
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        once = max(time.perf_counter() - start, 1e-6)
        inner[name] = max(1, int(budget / once))
    names = list(steps)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            step, count = steps[name], inner[name]
            synchronize()
            start = time.perf_counter()
            for _ in range(count):
                step()
            synchronize()
            seconds[name].append((time.perf_counter() - start) / count)
        progress()
    return {
        name: (
            seconds[name],
            [s / r for s, r in zip(seconds[name], seconds[reference], strict=True)],
        )
        for name in names
    }
