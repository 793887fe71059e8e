"""The `multiloss` command line: `multiloss demo` and `multiloss check`.

`multiloss demo` trains a small classifier on an imbalanced data set with cross-entropy,
class-balanced cross-entropy, focal loss and Poly-1 in every installed backend, prints
per-class recall and precision, balanced accuracy and a takeaway per run, the largest
cross-backend disagreement, and writes a figure of the run. `multiloss check` prints the
installed backends and runs a quick agreement and gradient check, exiting non-zero on any
disagreement. `multiloss` alone prints the help and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, demo
from . import numpy as reference

VERSIONED = ("numpy", "array-api-compat", "torch", "jax", "jaxlib", "flax", "optax")
CHECK_DESCRIPTION = (
    "Print the versions of multiloss's dependencies and the installed training backends, "
    "check the NumPy reference gradient against central differences and every backend's "
    "loss and gradient against the NumPy float64 reference; exit 1 on any disagreement."
)

DEMO_DESCRIPTION = (
    "Which loss for an imbalanced problem: plain cross-entropy, class-balanced "
    "cross-entropy, focal loss and Poly-1 on the same 100:10:1 data in PyTorch and JAX/Flax, "
    "with per-class recall, balanced accuracy and a takeaway per run, a check that NumPy, "
    "PyTorch and JAX agree, and a figure of the run."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multiloss",
        description="Cross-entropy and focal losses for PyTorch, JAX/Flax and NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"multiloss {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "demo",
        help="train on an imbalanced data set with four losses and say which helps",
        description=DEMO_DESCRIPTION,
    )
    run.add_argument(
        "--backend",
        choices=["all", *demo.BACKENDS],
        default="all",
        help="train in this backend only (default: every installed one)",
    )
    run.add_argument("--steps", type=_positive_int, default=300, help="training steps (300)")
    run.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (0)")
    run.add_argument(
        "--out",
        type=Path,
        default=Path("multiloss-demo"),
        help="folder for the figure and the results table (./multiloss-demo)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    commands.add_parser(
        "check",
        help="print the installed backends and check that they agree",
        description=CHECK_DESCRIPTION,
    )
    return parser


def _versions() -> list[tuple[str, str]]:
    rows = []
    for name in VERSIONED:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def _finite_difference_check() -> float:
    """Largest relative error of the reference focal gradient against central differences."""
    rng = np.random.default_rng(1)
    logits, target = rng.normal(size=(4, 5)) * 3, rng.integers(0, 5, size=4)
    options: dict[str, Any] = {
        "gamma": 0.5,
        "alpha": [0.2, 0.3, 0.1, 0.2, 0.2],
        "label_smoothing": 0.05,
    }
    grad = reference.focal_loss_grad(logits, target, **options)
    step, worst = 1e-6, 0.0
    for index in np.ndindex(logits.shape):
        shifted = [logits.copy(), logits.copy()]
        shifted[0][index] += step
        shifted[1][index] -= step
        plus, minus = (float(reference.focal_loss(z, target, **options)) for z in shifted)
        numeric = (plus - minus) / (2 * step)
        worst = max(worst, abs(numeric - float(grad[index])) / (1 + abs(numeric)))
    return worst


def run_check() -> int:
    print(f"multiloss {__version__}, Python {sys.version.split()[0]}")
    for name, version in _versions():
        print(f"  {name:<17} {version}")
    backends = demo.installed_backends()
    print(f"training backends: {', '.join(backends) or 'none (NumPy reference only)'}\n")

    gradient_error = _finite_difference_check()
    gradient_ok = gradient_error < 1e-7
    print(
        f"NumPy reference gradient vs central differences: max error {gradient_error:.1e} "
        f"({'ok' if gradient_ok else 'FAILED'})"
    )
    agreements = demo.cross_backend_agreement(backends)
    if agreements:
        print("\nAgreement with the NumPy float64 reference (errors relative to 1 + |reference|):")
        print(demo.format_agreement(agreements))
    ok = gradient_ok and all(a.ok for a in agreements)
    print("\nall checks passed" if ok else "\nDISAGREEMENT: see the table above")
    return 0 if ok else 1


def _install_hint(backends: Sequence[str]) -> str:
    """How to install the extras of ``backends`` (multiloss is not on PyPI yet)."""
    commands = " or ".join(f'pip install ".[{backend}]"' for backend in backends)
    return f"from a multiloss checkout, {commands}"


def run_demo(args: argparse.Namespace) -> int:
    installed = demo.installed_backends()
    if args.backend == "all":
        backends = installed
    elif args.backend in installed:
        backends = [args.backend]
    else:
        print(
            f"multiloss demo: backend {args.backend!r} is not installed "
            f"(installed: {', '.join(installed) or 'none'}); {_install_hint([args.backend])}",
            file=sys.stderr,
        )
        return 2
    if not backends:
        print(
            "multiloss demo: no training backend is installed (torch, or jax with flax and "
            f"optax); {_install_hint(demo.BACKENDS)}",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    dataset = demo.make_dataset(args.seed)
    weights = ", ".join(f"{w:.3f}" for w in demo.cb_weights(dataset.train_y, dataset.num_classes))
    print(
        f"Imbalanced data set: {len(dataset.train_y)} training examples at "
        f"{':'.join(str(n) for n in demo.CLASS_COUNTS)} (classes 0:1:2), "
        f"{len(dataset.test_y)} held out at {':'.join(str(n) for n in demo.TEST_COUNTS)}; "
        f"MLP 2-{demo.HIDDEN}-{demo.HIDDEN}-3, Adam, {args.steps} full-batch steps. "
        f"Class-balanced weights (β = {demo.CB_BETA}): {weights}."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = demo.run_training(
        dataset, backends, args.steps, args.seed, progress=not args.no_progress
    )
    table = demo.format_results(results, dataset.num_classes)
    timing = (
        f"Train time: the training steps only, after an untimed warm-up "
        f"({demo.WARMUP_STEPS} steps per loss: imports, lazy initialisation, JIT "
        f"compilation); torch at {demo.TORCH_THREADS} thread (torch.set_num_threads), "
        "JAX with XLA's own threads: compare times within a backend."
    )
    best = demo.summary(results)
    print(f"\nHeld-out results:\n\n{table}\n\n{timing}\n{best}")
    lines = ["## Training", "", table, "", timing, "", best, ""]
    agreements = demo.cross_backend_agreement(backends, seed=args.seed)
    if agreements:
        table = demo.format_agreement(agreements)
        print("\nLargest disagreement with the NumPy float64 reference, same batches:\n" + table)
        lines += ["## Agreement with the NumPy reference", "", table, ""]
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = {name: s["label"] for name, s in demo.loss_settings(dataset).items()}
    try:
        figure = demo.write_figure(args.out / "demo.png", results, labels)
    except ImportError:
        print("\nmatplotlib is not installed: no figure (pip install matplotlib)")
    else:
        print(f"\nFigure (recall per class, training curves, the focal loss): {figure}")
    print(f"Results table: {args.out / 'results.md'}; done in {time.perf_counter() - start:.1f} s")
    return 0 if all(a.ok for a in agreements) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `multiloss` alone: a request for help, not an error
        parser.print_help()
        return 0
    if args.command == "check":
        return run_check()
    return run_demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
