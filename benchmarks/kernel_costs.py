"""The kernel engine's cost on ``meta`` tensors beside today's eager plans and the peers, and
issue #21's cost-model targets, met or missed.

    python benchmarks/kernel_costs.py                 # every benchmark shape, markdown
    python benchmarks/kernel_costs.py --shapes 8192   # the shapes whose name holds a word
    python benchmarks/kernel_costs.py --json out.json # also every count as JSON

Each row is one forward + backward counted by :func:`cost_model.count_torch` on meta tensors
of the shape (nothing is computed; it runs anywhere in seconds): *kernels*, *bytes*, *passes*
(reads + writes of logits-sized data: tensors of at least the logits' element count; the
reads of a logits-sized target are shown apart and the pass targets do not count them),
*held*
(bytes of logits-sized tensors saved for backward beyond the logits themselves) and the
*modelled* time kernels × 5 µs + bytes / 3.35 TB/s, with its ratio to the family's
reference (``F.cross_entropy`` for the softmax family; for the sigmoid family
``F.binary_cross_entropy_with_logits``, torchvision's sigmoid focal formula, timm's ASL
formula or mmdetection's varifocal formula, each for its own loss; the quality focal loss
against ``F.binary_cross_entropy_with_logits``). multiloss rows run under
``multiloss.torch.engine("eager")`` (today's plans, as a GPU runs them) and
``engine("triton")`` (the kernel engine: on meta tensors its custom operators' fake
implementations, each one kernel; the varifocal and quality focal rows add the traced
check of their target, in [0, 1], that meta tensors leave to the preparation: a NaN folded
into a logits-sized weight where values cannot be read). Without the engine
(``multiloss.torch.engine`` absent, or ``triton`` not importable) the kernel rows say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cost_model import Cost, count_torch
from harness import ASL_FULL, DFL_FULL, POLY_FULL, SIGMOID_FULL, SOFTMAX_FULL, Shape
from report import format_bytes, format_ratio, format_seconds
from torch_impls import chosen_engine, engine_available

LossFn = Callable[[Any, Any], Any]

SOFTMAX_REFERENCE = "F.cross_entropy"
BCE_REFERENCE = "F.binary_cross_entropy_with_logits"
FOCAL_REFERENCE = "torchvision sigmoid focal (formula)"
ASL_REFERENCE = "textbook ASL (timm formula)"
VFL_REFERENCE = "textbook VFL (mmdetection formula)"
DFL_REFERENCE = "ultralytics DFL (formula)"
LARGE_NUMEL = 8192 * 1000
"""Softmax shapes of at least this many logits are held to the tighter time target."""


@dataclass(frozen=True)
class Variant:
    """One implementation of one loss: how to call it and what it is held to."""

    name: str
    loss: str
    """The loss it computes ("CE", "focal", "poly", "BCE", "sigmoid focal", "ASL", "VFL",
    "QFL", "DFL")."""
    engine: str | None
    """multiloss's engine ("eager", "triton"), or None for a peer."""
    target: str
    """"index" (class indices), "probs" (probability targets), "multilabel" or "bins"
    (the distribution focal loss's positions, the logits' shape without axis 1)."""
    make: Callable[[Shape], LossFn]
    reference: str
    smoothing: bool = False


@dataclass
class Counted:
    """A variant's counts at one shape (or why it has none)."""

    shape: str
    name: str
    loss: str
    engine: str | None
    target: str
    reference: str
    smoothing: bool
    kernels: int | None = None
    bytes: int | None = None
    passes: int | None = None
    """Reads + writes of logits-sized tensors other than the target."""
    target_passes: int | None = None
    """Reads of a logits-sized target (probability or multi-label targets)."""
    held: int | None = None
    modelled_seconds: float | None = None
    modelled_ratio: float | None = None
    by_kernel: dict[str, int] = field(default_factory=dict)
    why: str = ""


# --------------------------------------------------------------------------------------
# The variants


def _ignore(shape: Shape) -> int:
    return shape.ignore_index if shape.ignore_index is not None else -100


def softmax_variants() -> list[Variant]:
    """The softmax family's rows: the reference, the textbook peers, and multiloss's CE,
    focal and poly (class indices), smoothing and probability targets, per engine."""
    import torch.nn.functional as F
    from torch_impls import POLY_EPSILON, textbook_focal, textbook_poly

    import multiloss.torch as mt

    ref = SOFTMAX_REFERENCE
    rows = [
        Variant(
            ref,
            "CE",
            None,
            "index",
            lambda s: lambda z, y: F.cross_entropy(z, y, ignore_index=_ignore(s)),
            ref,
        ),
        Variant(
            "textbook focal γ=2", "focal", None, "index", lambda s: textbook_focal(_ignore(s)), ref
        ),
        Variant(
            "textbook PolyLoss ε=2",
            "poly",
            None,
            "index",
            lambda s: textbook_poly(s.ignore_index),
            ref,
        ),
    ]
    for engine in ("eager", "triton"):
        suffix = ", kernels" if engine == "triton" else ", eager"
        rows += [
            Variant(
                "multiloss CE" + suffix,
                "CE",
                engine,
                "index",
                lambda s: lambda z, y: mt.cross_entropy(z, y, ignore_index=_ignore(s)),
                ref,
            ),
            Variant(
                "multiloss focal γ=2" + suffix,
                "focal",
                engine,
                "index",
                lambda s: lambda z, y: mt.focal_loss(z, y, gamma=2.0, ignore_index=_ignore(s)),
                ref,
            ),
            Variant(
                "multiloss poly ε=2" + suffix,
                "poly",
                engine,
                "index",
                lambda s: (
                    lambda z, y: mt.poly_loss(z, y, epsilon=POLY_EPSILON, ignore_index=_ignore(s))
                ),
                ref,
            ),
            Variant(
                "multiloss CE, smoothing 0.1" + suffix,
                "CE",
                engine,
                "index",
                lambda s: (
                    lambda z, y: mt.cross_entropy(
                        z, y, ignore_index=_ignore(s), label_smoothing=0.1
                    )
                ),
                ref,
                smoothing=True,
            ),
            Variant(
                "multiloss focal γ=2, smoothing 0.1" + suffix,
                "focal",
                engine,
                "index",
                lambda s: (
                    lambda z, y: mt.focal_loss(
                        z, y, gamma=2.0, ignore_index=_ignore(s), label_smoothing=0.1
                    )
                ),
                ref,
                smoothing=True,
            ),
            Variant(
                "multiloss CE, probability targets" + suffix,
                "CE",
                engine,
                "probs",
                lambda s: lambda z, y: mt.cross_entropy(z, y),
                ref,
            ),
            Variant(
                "multiloss focal γ=2, probability targets" + suffix,
                "focal",
                engine,
                "probs",
                lambda s: lambda z, y: mt.focal_loss(z, y, gamma=2.0),
                ref,
            ),
        ]
    return rows


def sigmoid_variants() -> list[Variant]:
    """The sigmoid family's rows: each loss's reference and multiloss's BCE, sigmoid focal,
    ASL, varifocal and quality focal loss per engine."""
    import torch.nn.functional as F
    from detection_impls import VFL_ALPHA, VFL_GAMMA, textbook_varifocal
    from torch_impls import (
        ASL_CLIP,
        ASL_GAMMA_NEG,
        ASL_GAMMA_POS,
        timm_asymmetric,
        torchvision_sigmoid_focal,
    )

    import multiloss.torch as mt

    rows = [
        Variant(
            BCE_REFERENCE,
            "BCE",
            None,
            "multilabel",
            lambda s: F.binary_cross_entropy_with_logits,
            BCE_REFERENCE,
        ),
        Variant(
            FOCAL_REFERENCE,
            "sigmoid focal",
            None,
            "multilabel",
            lambda s: torchvision_sigmoid_focal,
            FOCAL_REFERENCE,
        ),
        Variant(
            ASL_REFERENCE, "ASL", None, "multilabel", lambda s: timm_asymmetric(), ASL_REFERENCE
        ),
        Variant(
            VFL_REFERENCE, "VFL", None, "multilabel", lambda s: textbook_varifocal, VFL_REFERENCE
        ),
    ]
    for engine in ("eager", "triton"):
        suffix = ", kernels" if engine == "triton" else ", eager"
        rows += [
            Variant(
                "multiloss BCE" + suffix,
                "BCE",
                engine,
                "multilabel",
                lambda s: lambda z, y: mt.binary_cross_entropy(z, y),
                BCE_REFERENCE,
            ),
            Variant(
                "multiloss sigmoid focal γ=2" + suffix,
                "sigmoid focal",
                engine,
                "multilabel",
                lambda s: lambda z, y: mt.sigmoid_focal_loss(z, y),
                FOCAL_REFERENCE,
            ),
            Variant(
                "multiloss ASL" + suffix,
                "ASL",
                engine,
                "multilabel",
                lambda s: (
                    lambda z, y: mt.asymmetric_loss(
                        z, y, gamma_pos=ASL_GAMMA_POS, gamma_neg=ASL_GAMMA_NEG, clip=ASL_CLIP
                    )
                ),
                ASL_REFERENCE,
            ),
            Variant(
                "multiloss VFL" + suffix,
                "VFL",
                engine,
                "multilabel",
                lambda s: lambda z, y: mt.varifocal_loss(z, y, alpha=VFL_ALPHA, gamma=VFL_GAMMA),
                VFL_REFERENCE,
            ),
            Variant(
                "multiloss QFL β=2" + suffix,
                "QFL",
                engine,
                "multilabel",
                lambda s: lambda z, y: mt.quality_focal_loss(z, y),
                BCE_REFERENCE,
            ),
        ]
    return rows


def dfl_variants() -> list[Variant]:
    """The distribution focal loss's rows: ultralytics' formula and multiloss's DFL per
    engine."""
    from detection_impls import ultralytics_dfl

    import multiloss.torch as mt

    rows = [Variant(DFL_REFERENCE, "DFL", None, "bins", lambda s: ultralytics_dfl, DFL_REFERENCE)]
    for engine in ("eager", "triton"):
        suffix = ", kernels" if engine == "triton" else ", eager"
        rows.append(
            Variant(
                "multiloss DFL" + suffix,
                "DFL",
                engine,
                "bins",
                lambda s: lambda z, t: mt.distribution_focal_loss(z, t),
                DFL_REFERENCE,
            )
        )
    return rows


def softmax_shapes() -> list[Shape]:
    """Every softmax and poly benchmark shape, once."""
    return list({s.name: s for s in SOFTMAX_FULL + POLY_FULL}.values())


def sigmoid_shapes() -> list[Shape]:
    """Every BCE, sigmoid focal and ASL benchmark shape, once."""
    return list({s.name: s for s in SIGMOID_FULL + ASL_FULL}.values())


# --------------------------------------------------------------------------------------
# Counting


def meta_operands(shape: Shape, target: str) -> tuple[Any, Any]:
    """Meta logits (requiring grad) and a meta target of the kind asked for."""
    import torch

    dtype = getattr(torch, shape.dtype)
    logits = torch.empty(shape.logits, dtype=dtype, device="meta", requires_grad=True)
    if target == "bins":
        positions = shape.logits[:1] + shape.logits[2:]
        return logits, torch.empty(positions, dtype=torch.float32, device="meta")
    if target == "index":
        labels = torch.empty(shape.logits[:1] + shape.logits[2:], dtype=torch.int64, device="meta")
        return logits, labels
    return logits, torch.empty(shape.logits, dtype=torch.float32, device="meta")


def held_for_backward(step: Callable[[], Any], inputs: tuple[Any, ...], full_numel: int) -> int:
    """Bytes of the logits-sized tensors saved for backward while `step()` runs forward,
    each storage once, the `inputs`' own storages not counted."""
    import torch

    own = {t.untyped_storage()._cdata for t in inputs}
    held: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in own and tensor.numel() >= full_numel:
            held[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(held.values())


def count_variant(variant: Variant, shape: Shape) -> Counted:
    """One forward + backward of `variant` at `shape`, on meta tensors."""
    import math

    counted = Counted(
        shape.name,
        variant.name,
        variant.loss,
        variant.engine,
        variant.target,
        variant.reference,
        variant.smoothing,
    )
    full = math.prod(shape.logits)
    try:
        loss_fn = variant.make(shape)
        logits, target = meta_operands(shape, variant.target)

        def forward() -> Any:
            with chosen_engine(variant.engine):
                return loss_fn(logits, target)

        def step() -> None:
            with chosen_engine(variant.engine):
                loss_fn(logits, target).backward()

        counted.held = held_for_backward(forward, (logits, target), full)
        apart = (target,) if variant.target != "index" else ()
        cost: Cost = count_torch(step, full_numel=full, apart=apart)
    except Exception as error:
        counted.why = f"{type(error).__name__}: {error}"[:200]
        return counted
    counted.kernels, counted.bytes = cost.kernels, cost.bytes
    counted.passes = cost.passes - cost.target_passes
    counted.target_passes = cost.target_passes
    counted.modelled_seconds = cost.modelled_seconds
    counted.by_kernel = dict(cost.by_kernel)
    return counted


def count_all(shapes: list[Shape], variants: list[Variant]) -> list[Counted]:
    """Every variant at every shape, with its modelled ratio to its reference's."""
    rows: list[Counted] = []
    for shape in shapes:
        here = [count_variant(v, shape) for v in variants]
        modelled = {c.name: c.modelled_seconds for c in here}
        for c in here:
            reference = modelled.get(c.reference)
            if c.modelled_seconds is not None and reference:
                c.modelled_ratio = c.modelled_seconds / reference
        rows += here
    return rows


# --------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Verdict:
    target: str
    met: bool | None
    """None: not evaluated (the row has no count)."""
    detail: str


def _shape_numel(name: str) -> int:
    import math

    for shape in softmax_shapes() + sigmoid_shapes():
        if shape.name == name:
            return math.prod(shape.logits)
    return 0


def _check(ok: bool, value: str) -> tuple[bool, str]:
    return ok, value


def verdicts(rows: list[Counted]) -> list[Verdict]:
    """Issue #21's cost-model targets over the kernel engine's rows, one verdict each
    (target, met?, the values that decide it)."""
    found: list[Verdict] = []
    # issue #21 set no targets for the detection losses (issue #24's): their rows are
    # counted in the tables only
    detection = ("VFL", "QFL", "DFL")
    kernel_rows = [r for r in rows if r.engine == "triton" and r.loss not in detection]
    for r in kernel_rows:
        where = f"{r.name} at {r.shape}"
        if r.kernels is None or r.passes is None:
            found.append(Verdict(f"{where}: counted", None, r.why))
            continue
        checks: list[tuple[str, bool, str]] = []
        softmax = r.loss in ("CE", "focal", "poly")
        if softmax and r.target == "index" and not r.smoothing:
            checks.append(("≤ 4 kernels", r.kernels <= 4, f"{r.kernels} kernels"))
            checks.append(("≤ 3 passes", r.passes <= 3, f"{r.passes} passes"))
            if r.modelled_ratio is not None:
                limit = 0.5 if _shape_numel(r.shape) >= LARGE_NUMEL else 0.8
                checks.append(
                    (
                        f"modelled ≤ {limit}× {SOFTMAX_REFERENCE}",
                        r.modelled_ratio <= limit,
                        f"{r.modelled_ratio:.2f}×",
                    )
                )
        elif softmax:
            checks.append(("≤ 4 passes", r.passes <= 4, f"{r.passes} passes"))
        else:
            checks.append(("≤ 4 kernels", r.kernels <= 4, f"{r.kernels} kernels"))
            limit = {"BCE": 0.6, "sigmoid focal": 0.3, "ASL": 0.3}.get(r.loss)
            if r.modelled_ratio is not None and limit is not None:
                checks.append(
                    (
                        f"modelled ≤ {limit}× {r.reference}",
                        r.modelled_ratio <= limit,
                        f"{r.modelled_ratio:.2f}×",
                    )
                )
        checks.append(("nothing logits-sized held", r.held == 0, format_bytes(r.held)))
        for target, ok, value in checks:
            found.append(Verdict(f"{where}: {target}", ok, value))
    return found


# --------------------------------------------------------------------------------------
# Tables


def passes_text(r: Counted) -> str:
    """The passes, and the target's reads apart where there are any ("3 + 2 target")."""
    if r.passes is None:
        return "–"
    return f"{r.passes} + {r.target_passes} target" if r.target_passes else str(r.passes)


def _cells(r: Counted) -> list[str]:
    if r.kernels is None:
        return [r.name, "–", "–", "–", "–", "–", r.why or "–"]
    return [
        r.name,
        str(r.kernels),
        format_bytes(r.bytes),
        passes_text(r),
        format_bytes(r.held),
        format_seconds(r.modelled_seconds),
        format_ratio(r.modelled_ratio),
    ]


def full_table(rows: list[Counted]) -> list[str]:
    """One markdown table per shape: every row's counts."""
    lines: list[str] = []
    for shape in dict.fromkeys(r.shape for r in rows):
        lines += ["", f"#### {shape}", ""]
        lines.append("| implementation | kernels | bytes | passes | held | modelled | ratio |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r.shape == shape):
            lines.append("| " + " | ".join(_cells(r)) + " |")
    return lines


def summary_table(rows: list[Counted]) -> list[str]:
    """One line per shape and multiloss loss: the kernel engine's kernels, bytes, passes
    and modelled ratio, the eager plan's beside them (kernels engine / eager)."""
    lines = [
        "| shape | loss | reference | kernels | bytes | passes | modelled ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.engine != "triton":
            continue
        eager_name = r.name.replace(", kernels", ", eager")
        eager = next((e for e in rows if e.shape == r.shape and e.name == eager_name), None)

        def pair(kernel: str, today: str) -> str:
            return f"{kernel} ({today})"

        if r.kernels is None:
            continue
        e_kernels = "–" if eager is None or eager.kernels is None else str(eager.kernels)
        e_passes = "–" if eager is None else passes_text(eager)
        e_ratio = format_ratio(None if eager is None else eager.modelled_ratio)
        lines.append(
            "| "
            + " | ".join(
                [
                    r.shape,
                    r.name.removeprefix("multiloss ").removesuffix(", kernels"),
                    r.reference,
                    pair(str(r.kernels), e_kernels),
                    format_bytes(r.bytes),
                    pair(passes_text(r), e_passes),
                    pair(format_ratio(r.modelled_ratio), e_ratio),
                ]
            )
            + " |"
        )
    return lines


def verdict_lines(found: list[Verdict]) -> list[str]:
    """The targets grouped: how many met, and every miss with its values."""
    met = sum(v.met is True for v in found)
    missed = [v for v in found if v.met is False]
    unknown = [v for v in found if v.met is None]
    lines = [f"Targets: {met} met, {len(missed)} missed, {len(unknown)} not counted."]
    lines += [f"- MISSED {v.target}: {v.detail}" for v in missed]
    lines += [f"- not counted: {v.target}: {v.detail}" for v in unknown[:5]]
    if len(unknown) > 5:
        lines.append(f"- … {len(unknown) - 5} more not counted")
    return lines


def markdown(rows: list[Counted], found: list[Verdict]) -> str:
    lines = [
        "# The kernel engine on meta tensors",
        "",
        "Forward + backward, counted by `benchmarks/cost_model.py` (`count_torch`). "
        "*kernels (eager)*: the kernel engine's, today's eager plan's in parentheses; "
        "*passes*: reads + writes of logits-sized tensors (a probability or multi-label "
        "target's reads apart: *+ n target*); *held*: logits-sized bytes saved "
        "for backward beyond the logits; *modelled ratio*: kernels × 5 µs + bytes / 3.35 TB/s "
        "over the reference's.",
        "",
        "## Summary (kernel engine, eager plan in parentheses)",
        "",
        *summary_table(rows),
        "",
        "## Targets",
        "",
        *verdict_lines(found),
        "",
        "## Every row",
        *full_table(rows),
    ]
    return "\n".join(lines) + "\n"


def _find(rows: list[Counted], shape: str, name: str) -> Counted | None:
    return next((r for r in rows if r.shape == shape and r.name == name), None)


def _brief(r: Counted | None, passes: bool = True) -> str:
    """ "kernels / passes / ratio" of a row ("–" where it has no count)."""
    if r is None or r.kernels is None:
        return "–"
    middle = f" / {passes_text(r).replace(' target', 't').replace(' + ', '+')}" if passes else ""
    return f"{r.kernels}{middle} / {format_ratio(r.modelled_ratio)}"


def docs_tables(rows: list[Counted]) -> list[str]:
    """The two compact tables of docs/benchmarks.md: per softmax shape, CE, focal and poly
    (kernel engine, eager plan in parentheses), focal with smoothing and CE with
    probability targets; per sigmoid shape, BCE, sigmoid focal and ASL."""
    lines = [
        "| shape | CE: kernels / passes / modelled (eager) | focal γ=2 | poly ε=2 "
        "| focal γ=2, smoothing 0.1 | CE, probability targets |",
        "|---|---|---|---|---|---|",
    ]
    softmax = [r.shape for r in rows if r.loss in ("CE", "focal", "poly")]
    for shape in dict.fromkeys(softmax):
        cells = [shape]
        for loss in ("CE", "focal γ=2", "poly ε=2"):
            kernel = _find(rows, shape, f"multiloss {loss}, kernels")
            eager = _find(rows, shape, f"multiloss {loss}, eager")
            cells.append(f"{_brief(kernel)} ({_brief(eager)})")
        for name in ("focal γ=2, smoothing 0.1", "CE, probability targets"):
            cells.append(_brief(_find(rows, shape, f"multiloss {name}, kernels")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| shape | BCE: kernels / modelled vs `F.binary_cross_entropy_with_logits` (eager) "
        "| sigmoid focal γ=2 vs torchvision's formula | ASL vs timm's formula |",
        "|---|---|---|---|",
    ]
    sigmoid = [r.shape for r in rows if r.loss in ("BCE", "sigmoid focal", "ASL")]
    for shape in dict.fromkeys(sigmoid):
        cells = [shape]
        for loss in ("BCE", "sigmoid focal γ=2", "ASL"):
            kernel = _find(rows, shape, f"multiloss {loss}, kernels")
            eager = _find(rows, shape, f"multiloss {loss}, eager")
            cells.append(f"{_brief(kernel, False)} ({_brief(eager, False)})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--shapes", default="", help="comma-separated words a shape's name holds")
    parser.add_argument("--family", choices=("softmax", "sigmoid", "dfl", "both"), default="both")
    parser.add_argument("--json", type=Path, default=None, help="also write every count here")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here too")
    parser.add_argument(
        "--docs", action="store_true", help="print only the compact tables of docs/benchmarks.md"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    words = [w.strip() for w in args.shapes.split(",") if w.strip()]

    def chosen(shapes: list[Shape]) -> list[Shape]:
        return [s for s in shapes if not words or any(w in s.name for w in words)]

    rows: list[Counted] = []
    if args.family in ("softmax", "both"):
        rows += count_all(chosen(softmax_shapes()), softmax_variants())
    if args.family in ("sigmoid", "both"):
        rows += count_all(chosen(sigmoid_shapes()), sigmoid_variants())
    if args.family in ("dfl", "both"):
        rows += count_all(chosen(DFL_FULL), dfl_variants())
    found = verdicts(rows)
    why = engine_available()
    text = markdown(rows, found)
    if args.docs:
        text = "\n".join([*docs_tables(rows), "", *verdict_lines(found)]) + "\n"
    if why:
        text = text.replace("\n## Summary", f"\nNote: {why}.\n\n## Summary", 1)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        record = {"rows": [asdict(r) for r in rows], "targets": [asdict(v) for v in found]}
        args.json.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
