"""The benchmark suite: multiloss against its peers, forward + backward, time, memory and a
modelled accelerator cost.

Run ``python benchmarks/run.py`` (``--quick`` for the smoke test CI runs). It writes, into
``--out`` (default ``benchmarks/results``): ``benchmarks.md`` (the tables), ``benchmarks.json``
(every raw timing and count) and ``benchmarks.png`` (time ratio per thread count, memory and
modelled ratio, per shape and implementation).

Method (docs/benchmarks.md, "Method"): every implementation of a group (backend, loss kind,
shape) runs forward + backward on the same logits; after a warm-up, the implementations are
timed interleaved (A B C A B C …, the order rotated each round) for several rounds; each
round gives every implementation a ratio to the group's reference measured beside it, and
the table shows the median ratio. Each group runs once per thread count (``--threads``), in
a new process limited to that many threads (``--in-process`` to run them all in this one),
so that one group's allocations do not shape the next one's timings. Absolute times drift on
shared machines; ratios measured side by side do not (as much).

Memory: for torch, the bytes saved for backward beyond the logits (saved-tensor hooks, each
storage counted once, the logits' own storage not counted), and on CUDA the peak allocated
during a step; for JAX, XLA's temporary buffer size of the compiled forward + backward
(``compiled.memory_analysis()``). Cost model (``cost_model.py``): kernels and bytes of one
forward + backward, torch's counted on meta tensors, JAX's read from the compiled HLO, and
the modelled time kernels × 5 µs + bytes / 3.35 TB/s.

The modules: ``harness.py`` (shapes, data, timer, records), ``torch_impls.py`` and
``jax_impls.py`` (the groups), ``cost_model.py``, ``report.py`` (table, JSON, plot).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    COMPILED,
    DETECTION_KINDS,
    KINDS,
    RECOMPILE,
    Group,
    Measurement,
    Settings,
    shapes_for,
)
from report import json_record, markdown, plot, versions

BACKENDS = ("torch", "jax")
TORCH_ONLY_KINDS = (COMPILED, RECOMPILE, *DETECTION_KINDS)
Notes = list[dict[str, Any]]


@dataclass(frozen=True)
class Batch:
    """Groups measured in one process at one thread count."""

    backend: str
    threads: int
    groups: tuple[Group, ...]


def run_group(
    group: Group, settings: Settings, progress: Callable[[], None]
) -> tuple[list[Measurement], Notes]:
    """Measure one group in this process (its threads already set)."""
    if group.backend == "torch":
        from torch_impls import run_torch_group

        return run_torch_group(group, settings, progress)
    from jax_impls import run_jax_group

    return run_jax_group(group, settings, progress)


def set_threads(backend: str, threads: int) -> None:
    """torch: ``torch.set_num_threads``; JAX: the process's CPU affinity and XLA flags, which
    take effect only before jax is first imported (:func:`jax_impls.configure_threads`)."""
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif "jax" not in sys.modules:
        from jax_impls import configure_threads

        configure_threads(threads)


def _batch_worker(batch: Batch, settings: Settings, messages: Any) -> None:
    """The child process's side of :func:`run_batch_in_a_new_process`."""
    try:
        set_threads(batch.backend, batch.threads)
        for group in batch.groups:
            measurements, notes = run_group(group, settings, lambda: messages.put(("tick",)))
            messages.put(("group", measurements, notes))
        messages.put(("done",))
    except BaseException:  # reported to the parent, which raises
        messages.put(("error", traceback.format_exc()))


def run_batch_in_a_new_process(
    batch: Batch, settings: Settings, progress: Callable[[], None]
) -> tuple[list[Measurement], Notes]:
    """A batch in a fresh interpreter, so that what an earlier group allocated (MONAI takes
    up to 625 MiB at 1024×32000) does not change the allocator's state, and with it the page
    faults, of the next one, and so that JAX's thread pools are sized for this batch; the
    implementations within a group still run side by side in one process."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    worker = context.Process(target=_batch_worker, args=(batch, settings, messages))
    worker.start()
    results: list[Measurement] = []
    notes: Notes = []
    try:
        while True:
            message = messages.get()
            if message[0] == "tick":
                progress()
            elif message[0] == "group":
                results += message[1]
                notes += message[2]
            elif message[0] == "done":
                return results, notes
            else:
                names = ", ".join(f"{g.kind} {g.shape.name}" for g in batch.groups)
                raise RuntimeError(
                    f"{batch.backend} at {batch.threads} thread(s), {names} failed:\n{message[1]}"
                )
    finally:
        worker.join()


def run_batch_in_process(
    batch: Batch, settings: Settings, progress: Callable[[], None]
) -> tuple[list[Measurement], Notes]:
    affinity = os.sched_getaffinity(0)
    set_threads(batch.backend, batch.threads)
    results: list[Measurement] = []
    notes: Notes = []
    try:
        for group in batch.groups:
            measured, noted = run_group(group, settings, progress)
            results += measured
            notes += noted
    finally:  # XLA's threads keep the affinity they started with; the rest of the run not
        os.sched_setaffinity(0, affinity)
    return results, notes


def select_groups(
    backends: Sequence[str],
    kinds: Sequence[str],
    quick: bool,
    words: Sequence[str],
    large: bool = False,
) -> list[Group]:
    """Every (backend, kind, shape) group asked for; `words` keeps the shapes whose name
    contains one of them; `large` adds the softmax kind's GPU shapes."""
    groups = []
    for backend in backends:
        for kind in kinds:
            if backend != "torch" and kind in TORCH_ONLY_KINDS:
                continue
            chosen = [
                shape
                for shape in shapes_for(kind, quick, large)
                if not words or any(word in shape.name for word in words)
            ]
            if kind == RECOMPILE:  # one check, at the largest shape chosen
                chosen = chosen[:1]
            groups += [Group(backend, kind, shape) for shape in chosen]
    return groups


def plan_batches(
    groups: list[Group], thread_counts: list[int], one_process_per_backend: bool
) -> list[Batch]:
    """Each group at each thread count (the recompilation check at the first only): one
    batch per group and thread count, or one per backend and thread count."""

    def at(threads: int, chosen: list[Group]) -> tuple[Group, ...]:
        first = threads == thread_counts[0]
        return tuple(g for g in chosen if first or g.kind != RECOMPILE)

    batches = []
    if one_process_per_backend:
        for backend in dict.fromkeys(g.backend for g in groups):
            for threads in thread_counts:
                chosen = at(threads, [g for g in groups if g.backend == backend])
                if chosen:
                    batches.append(Batch(backend, threads, chosen))
        return batches
    for group in groups:
        for threads in thread_counts:
            chosen = at(threads, [group])
            if chosen:
                batches.append(Batch(group.backend, threads, chosen))
    return batches


def _comma_list(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def _thread_counts(text: str) -> list[int]:
    counts = [int(word) for word in _comma_list(text)]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be positive integers: {text!r}")
    return list(dict.fromkeys(counts))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny shapes, one process per backend and thread count, no compiled groups: "
        "a smoke test",
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (7; quick 2)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds per measurement (0.15; quick 0.002)"
    )
    parser.add_argument("--backends", default="torch,jax", help="comma-separated (torch,jax)")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated group kinds ({','.join(KINDS)}); all by default",
    )
    parser.add_argument(
        "--shapes",
        default="",
        help="only the shapes whose name contains one of these comma-separated words "
        "(e.g. '8192,bfloat16' or '64×10,256×80'); all by default",
    )
    parser.add_argument(
        "--threads",
        type=_thread_counts,
        default=None,
        help="comma-separated CPU thread counts, each group timed at each "
        "(default '1,2' on the CPU, '1' on another device)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device of the torch groups (e.g. cuda); JAX groups run only where jax "
        "sees a GPU when it is not 'cpu'",
    )
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the torch.compile groups and the recompilation check (default: on, off in --quick)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="also the softmax kind's GPU shapes (8192×32000, 16384×128256 bfloat16)",
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
        help="run every group in this process (default: a new process per group and thread "
        "count; JAX then runs at the first thread count only)",
    )
    args = parser.parse_args(argv)
    args.backends = _comma_list(args.backends)
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}; choose torch, jax")
    args.kinds = _comma_list(args.kinds)
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s): {', '.join(sorted(unknown))}; choose {', '.join(KINDS)}")
    if args.compiled is None:
        args.compiled = not args.quick
    if not args.compiled:
        args.kinds = [kind for kind in args.kinds if kind not in (COMPILED, RECOMPILE)]
    if args.threads is None:
        args.threads = [1, 2] if args.device == "cpu" else [1]
    return args


def _jax_sees_an_accelerator() -> bool:
    import jax

    return jax.default_backend() != "cpu"


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    settings = Settings(
        rounds=args.rounds or (2 if args.quick else 7),
        budget=args.budget or (0.002 if args.quick else 0.15),
        device=args.device,
    )
    notes: Notes = []
    backends = list(args.backends)
    if args.device != "cpu" and "jax" in backends and not _jax_sees_an_accelerator():
        backends.remove("jax")
        notes.append({"text": f"JAX groups skipped: jax sees no accelerator ({args.device})."})
    if args.in_process and "jax" in backends and len(args.threads) > 1:
        notes.append(
            {
                "text": "in-process: JAX's thread pools are sized once, so JAX groups run at "
                f"{args.threads[0]} thread(s) only."
            }
        )
    groups = select_groups(backends, args.kinds, args.quick, _comma_list(args.shapes), args.large)
    batches = plan_batches(groups, args.threads, one_process_per_backend=args.quick)
    if args.in_process:
        batches = [b for b in batches if b.backend != "jax" or b.threads == args.threads[0]]

    header: dict[str, Any] = {
        "versions": versions(),
        "device": args.device,
        "threads": args.threads,
        "rounds": settings.rounds,
        "budget": settings.budget,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "command": " ".join(sys.argv),
    }
    print(", ".join(f"{k} {v}" for k, v in header["versions"].items()))
    print(
        f"device {args.device}; threads {args.threads} (of {os.cpu_count()} CPUs); "
        f"rounds: {settings.rounds}; budget: {settings.budget}s; "
        f"{len(groups)} groups in {len(batches)} runs"
    )
    if args.warm_malloc:
        # glibc reads these when a process starts: they apply to the new processes of the
        # groups; with --in-process, set them in the environment before running instead.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 30)
        os.environ["MALLOC_TRIM_THRESHOLD_"] = str(1 << 30)
    header["malloc"] = "warm (glibc thresholds pinned at 1 GiB)" if args.warm_malloc else "default"
    print(f"malloc: {header['malloc']}")

    bar = ProgressBar(sum(len(batch.groups) for batch in batches) * settings.rounds)
    runner = run_batch_in_process if args.in_process else run_batch_in_a_new_process
    results: list[Measurement] = []
    header["notes"] = notes
    for batch in batches:
        measured, noted = runner(batch, settings, bar.update_one)
        results += measured
        notes += noted
        write_outputs(_grouped(results), header, args.out)  # what is done so far survives
    bar.close()
    results = _grouped(results)
    table = write_outputs(results, header, args.out)
    if not args.no_plot and results:
        plot(results, args.out / "benchmarks.png")
    print(table)
    print(
        f"written: {args.out / 'benchmarks.md'}, benchmarks.json"
        + ("" if args.no_plot or not results else ", benchmarks.png")
    )
    return 0


def write_outputs(results: list[Measurement], header: dict[str, Any], out: Path) -> str:
    """Write benchmarks.md and benchmarks.json into `out`; return the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results, header)
    (out / "benchmarks.md").write_text(table, encoding="utf-8")
    record = json_record(results, header)
    (out / "benchmarks.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return table


def _grouped(results: list[Measurement]) -> list[Measurement]:
    """The measurements with each group's thread counts side by side (stable order)."""
    keys = dict.fromkeys((m.backend, m.group, m.shape) for m in results)
    order = {key: index for index, key in enumerate(keys)}
    return sorted(results, key=lambda m: (order[(m.backend, m.group, m.shape)], m.threads))


class ProgressBar:
    """tqdm when it is installed, else nothing; one step per group and round."""

    def __init__(self, total: int) -> None:
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, desc="group rounds", ncols=80, file=sys.stderr)

    def update_one(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


if __name__ == "__main__":
    raise SystemExit(main())
