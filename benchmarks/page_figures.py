"""The figures of docs/benchmarks.md, drawn from the tables of its "Full tables" section.

    python benchmarks/page_figures.py            # writes docs/assets/benchmarks-*.png

One figure per question a user asks: PyTorch against `F.cross_entropy`, JAX against
optax, and the other losses against their references. Each bar is the median ratio of a
group's table at one thread (below 1: faster than the reference).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
ASSETS = ROOT / "docs" / "assets"
RATIO = "ratio, 1 thread"
REFERENCES = {
    "poly": "CE",
    "bce": "F.bce_with_logits / optax",
    "sigmoid focal": "torchvision / optax",
    "asl": "the timm formula",
}
"""Each kind's reference, in short, for the labels (the tables name them in full)."""


@dataclass(frozen=True)
class Group:
    backend: str
    kind: str
    shape: str
    reference: str
    ratios: dict[str, float]


def read_groups(page: Path = PAGE) -> list[Group]:
    """Every `### backend, kind: shape; reference R` table of the page's full tables."""
    text = page.read_text(encoding="utf-8")
    groups = []
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        match = re.match(r"(torch|jax), (.+?): (.+?); reference (.+)$", heading.strip())
        if match is None:
            continue
        lines = [line for line in body.splitlines() if line.startswith("| ")]
        if not lines:
            continue
        columns = [cell.strip() for cell in lines[0].strip("|").split("|")]
        if RATIO not in columns:
            continue
        ratios = {}
        for line in lines[1:]:
            cells = dict(
                zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=False)
            )
            value = cells.get(RATIO, "").rstrip("×")
            if re.fullmatch(r"[0-9.]+", value):
                ratios[cells["implementation"]] = float(value)
        backend, kind, shape, reference = match.groups()
        groups.append(Group(backend, kind.split(" (")[0], shape, reference, ratios))
    return groups


def _bars(axes, labels: list[str], series: dict[str, list[float | None]], title: str) -> None:
    """Horizontal grouped bars on a log axis, a line at 1, each bar's value written."""
    import matplotlib.ticker
    import numpy as np

    rows = np.arange(len(labels))
    height = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        positions = rows - 0.4 + height * (i + 0.5)
        shown = [v if v is not None else np.nan for v in values]
        axes.barh(positions, shown, height, label=name, color=f"C{i}")
        for y, v in zip(positions, values, strict=True):
            if v is not None:
                axes.text(v * 1.04, y, f"{v:.2f}×", va="center", fontsize=10)
    axes.axvline(1.0, color="black", linewidth=1)
    axes.set_xscale("log")
    known = [v for values in series.values() for v in values if v is not None]
    axes.set_xlim(min(known) / 1.15, max(known) * 1.3)
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}×")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(plain)
    axes.tick_params(axis="x", which="minor", labelsize=9)
    axes.set_yticks(rows, labels)
    axes.invert_yaxis()
    axes.set_xlabel("time ÷ reference's time (log scale; left of the line: faster)")
    axes.figure.suptitle(title, x=0.01, ha="left")
    axes.grid(axis="x", alpha=0.3, which="both")
    axes.legend(loc="lower right", fontsize=11)


def draw(groups: list[Group], out: Path = ASSETS) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12})

    def softmax(backend: str) -> list[Group]:
        return [g for g in groups if g.backend == backend and g.kind == "softmax"]

    paths = []
    torch_rows = {
        "multiloss CE": "multiloss CE",
        "multiloss focal γ=2": "multiloss focal γ=2",
        "textbook focal γ=2": "textbook focal γ=2",
    }
    questions = [
        (
            "benchmarks-torch.png",
            softmax("torch"),
            torch_rows,
            "PyTorch, CPU, 1 thread: forward + backward against F.cross_entropy",
        ),
        (
            "benchmarks-jax.png",
            softmax("jax"),
            {"multiloss CE": "multiloss CE", "multiloss focal γ=2": "multiloss focal γ=2"},
            "JAX, CPU, 1 thread: jit(value_and_grad) against optax's integer-label CE",
        ),
    ]
    for name, chosen, rows, title in questions:
        figure, axes = plt.subplots(figsize=(11, 0.24 * len(chosen) * len(rows) + 1.5))
        labels = [g.shape for g in chosen]
        series = {label: [g.ratios.get(key) for g in chosen] for label, key in rows.items()}
        _bars(axes, labels, series, title)
        figure.tight_layout()
        paths.append(out / name)
        figure.savefig(paths[-1], dpi=100)
        plt.close(figure)

    # The other losses: each multiloss row against its group's reference.
    others = [g for g in groups if g.kind in ("poly", "bce", "sigmoid focal", "asl")]
    labels, torch_values, jax_values = [], [], []
    for kind in ("poly", "bce", "sigmoid focal", "asl"):
        shapes = list(dict.fromkeys(g.shape for g in others if g.kind == kind))
        for shape in shapes:
            pair = {g.backend: g for g in others if g.kind == kind and g.shape == shape}
            labels.append(f"{kind} {shape}, vs {REFERENCES[kind]}")
            for backend, values in (("torch", torch_values), ("jax", jax_values)):
                group = pair.get(backend)
                mine = None
                if group is not None:
                    mine = next(
                        (v for k, v in group.ratios.items() if k.startswith("multiloss")), None
                    )
                values.append(mine)
    figure, axes = plt.subplots(figsize=(11, 0.48 * len(labels) + 1.5))
    _bars(
        axes,
        labels,
        {"torch": torch_values, "jax": jax_values},
        "PolyLoss, BCE, sigmoid focal, ASL, CPU, 1 thread: each against its group's reference",
    )
    figure.tight_layout()
    paths.append(out / "benchmarks-other-losses.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    return paths


def main() -> int:
    groups = read_groups()
    if not groups:
        print(f"no benchmark tables found in {PAGE}", file=sys.stderr)
        return 1
    for path in draw(groups):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
