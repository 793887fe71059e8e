"""The benchmark suite's outputs: the markdown tables, the JSON record and the plot."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from cost_model import BYTES_PER_SECOND, LAUNCH_SECONDS
from harness import ASL, BCE, COMPILED, DFL, POLY, SIGMOID_FOCAL, VARIFOCAL, Measurement

KIND_TITLES = {
    POLY: "poly (PolyLoss, Poly-1, ε = 2)",
    BCE: "bce (multi-label 0/1 targets, 5 % ones)",
    SIGMOID_FOCAL: "sigmoid focal (multi-label 0/1 targets, 5 % ones)",
    ASL: "asl (asymmetric loss, γ- = 4, clip 0.05; multi-label 0/1 targets, 5 % ones)",
    DFL: "dfl (distribution focal loss; positions in [0, n - 1.01] among n bins)",
    VARIFOCAL: "varifocal (α = 0.75, γ = 2; IoU-like soft scores on 5 % of the entries)",
    COMPILED: "compiled (torch.compile, default inductor)",
}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("multiloss", "numpy", "torch", "jax", "jaxlib", "optax", "kornia", "monai"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def format_bytes(count: float | None) -> str:
    if count is None:
        return "–"
    if count < 1024:
        return f"{count:.0f} B"
    if count < 2**20:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 2**20:.2f} MiB"


def format_seconds(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}×"


def _threads_label(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


def group_keys(results: list[Measurement]) -> list[tuple[str, str, str]]:
    """(backend, kind, shape) of every group, in the order measured."""
    return list(dict.fromkeys((m.backend, m.group, m.shape) for m in results))


def _row_cells(rows: list[Measurement], thread_counts: list[int], peak: bool) -> list[str]:
    by_threads = {m.threads: m for m in rows}
    cells = [rows[0].implementation]
    for threads in thread_counts:
        m = by_threads.get(threads)
        cells += (
            [format_ratio(m.median_ratio), format_seconds(m.median_seconds)] if m else ["–"] * 2
        )
    costed = next((m for m in rows if m.kernels is not None), rows[0])
    cells.append(format_bytes(rows[0].memory_bytes))
    if peak:
        cells.append(format_bytes(rows[0].peak_bytes))
    if costed.kernels is None:
        cells += ["n/a"] * 4
    else:
        cells += [
            str(costed.kernels),
            format_bytes(costed.bytes_accessed),
            format_seconds(costed.modelled_seconds),
            format_ratio(costed.modelled_ratio),
        ]
    return cells


def group_table(rows: list[Measurement]) -> list[str]:
    """One group's markdown table: a ratio and a time column per thread count, memory, and
    the cost model's columns."""
    thread_counts = sorted({m.threads for m in rows})
    peak = any(m.peak_bytes is not None for m in rows)
    header = ["implementation"]
    for threads in thread_counts:
        header += [f"ratio, {_threads_label(threads)}", f"time, {_threads_label(threads)}"]
    header.append("memory")
    if peak:
        header.append("peak")
    header += ["kernels", "bytes", "modelled", "modelled ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(m.implementation for m in rows):
        cells = _row_cells([m for m in rows if m.implementation == name], thread_counts, peak)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(results: list[Measurement], header: dict[str, Any]) -> str:
    lines = ["# multiloss benchmarks", ""]
    lines.append(
        ", ".join(f"{key} {value}" for key, value in header["versions"].items())
        + f"; device {header['device']}"
        + f"; threads {', '.join(map(str, header['threads']))} (of {header['cpu_count']} CPUs)"
        + f"; {header['rounds']} interleaved rounds"
        + f"; malloc {header.get('malloc', 'default')}"
        + (" (quick mode: tiny shapes, no meaning for speed)" if header["quick"] else "")
    )
    lines.append("")
    lines.append(
        "Forward + backward. *ratio, n threads*: median over rounds of time / reference time "
        "measured in the same round, the group timed in a process limited to n threads "
        "(< 1 is faster than the reference; the reference is named in each heading). "
        "*memory*: torch, bytes saved for backward beyond the logits; JAX, XLA temporary "
        "buffers of the compiled step. *kernels*, *bytes*: kernels launched and bytes read + "
        "written by one forward + backward (torch: counted on meta tensors, views, "
        "allocations and wrapped Python numbers launch nothing; JAX: top-level kernel "
        "instructions of the optimized HLO and XLA's bytes accessed). *modelled*: kernels × "
        f"{LAUNCH_SECONDS * 1e6:g} µs + bytes / {BYTES_PER_SECOND / 1e12:g} TB/s; *modelled "
        "ratio*: to the reference's modelled time. n/a: not modelled (torch.compile)."
    )
    for note in header.get("notes", []):
        lines += ["", f"Note: {note['text']}"]
    for backend, kind, shape in group_keys(results):
        rows = [m for m in results if (m.backend, m.group, m.shape) == (backend, kind, shape)]
        title = KIND_TITLES.get(kind, kind)
        lines += ["", f"## {backend}, {title}: {shape}; reference {rows[0].reference}", ""]
        lines += group_table(rows)
    return "\n".join(lines) + "\n"


def json_record(results: list[Measurement], header: dict[str, Any]) -> dict[str, Any]:
    return {
        "header": header,
        "measurements": [
            asdict(m) | {"median_ratio": m.median_ratio, "median_seconds": m.median_seconds}
            for m in results
        ],
    }


def plot(results: list[Measurement], path: Path) -> None:
    """Per (backend, kind) a row of panels: time / reference at each thread count, memory,
    and modelled time / the reference's modelled time, per shape and implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys((m.backend, m.group) for m in results))
    thread_counts = sorted({m.threads for m in results})
    panels = [*(("ratio", t) for t in thread_counts), ("memory", 0), ("modelled", 0)]
    figure, axes = plt.subplots(
        len(families), len(panels), figsize=(5.5 * len(panels), 4.2 * len(families)), squeeze=False
    )
    for row, (backend, kind) in enumerate(families):
        chosen = [m for m in results if (m.backend, m.group) == (backend, kind)]
        shapes = list(dict.fromkeys(m.shape for m in chosen))
        names = list(dict.fromkeys(m.implementation for m in chosen))
        width = 0.8 / len(names)
        for column, (panel, threads) in enumerate(panels):
            axis = axes[row][column]
            for index, name in enumerate(names):
                values = []
                for shape in shapes:
                    match = [m for m in chosen if m.shape == shape and m.implementation == name]
                    if panel == "ratio":
                        match = [m for m in match if m.threads == threads]
                    values.append(_plotted(match[0], panel) if match else np.nan)
                positions = np.arange(len(shapes)) + index * width
                axis.bar(positions, values, width, label=name)
            title = {
                "ratio": f"time / reference, {_threads_label(threads)}",
                "memory": "memory (MiB)",
                "modelled": "modelled time / reference's",
            }[panel]
            axis.set_title(f"{backend}, {kind}: {title}", fontsize=9)
            axis.set_xticks(np.arange(len(shapes)) + 0.4 - width / 2)
            axis.set_xticklabels(shapes, rotation=20, ha="right", fontsize=8)
            axis.grid(axis="y", alpha=0.3)
            if panel != "memory":
                axis.set_yscale("log")
                axis.axhline(1.0, color="black", linewidth=0.8)
            if panel == "modelled" and all(m.modelled_ratio is None for m in chosen):
                axis.text(0.5, 0.5, "n/a", transform=axis.transAxes, ha="center")
        axes[row][0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plotted(m: Measurement, panel: str) -> float:
    if panel == "ratio":
        return m.median_ratio
    if panel == "memory":
        return (m.memory_bytes or 0) / 2**20
    return m.modelled_ratio if m.modelled_ratio is not None else np.nan
