"""The tests marked `slow` (by tests/conftest.py), left out of the quick subset:

    python -m pytest -n auto --dist loadgroup -m "not slow"

The full run (the README's test command, CI) runs them all. A test is slow when it takes
several seconds on a 2-core CPU and repeats what a quicker test checks for every loss and
backend: end-to-end runs (the demo, the benchmarks, the docs build), worker processes
(DDP, vocabulary parallel, the 8-device JAX runs), long property searches and the
exhaustive parametrisations. The durations beside them were measured with
`--durations` in a full run with `-n 2` on a loaded 2-core machine (load 8-12).
"""

from __future__ import annotations

SLOW: tuple[str, ...] = ()
"""Node-id prefixes: a test whose node id starts with one of them is slow."""


def is_slow(nodeid: str) -> bool:
    return nodeid.startswith(SLOW)
