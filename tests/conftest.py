"""Shared test configuration.

* JAX (if installed) runs with float64 enabled for the whole session, so that float64
  oracles can be compared; tests that need float32 ask for it explicitly. The library
  itself never changes JAX's configuration.
* Triton's kernels run in its interpreter (``TRITON_INTERPRET=1``) unless the
  environment says otherwise.
* PyTorch runs on one thread (``OMP_NUM_THREADS=1`` unless the environment says
  otherwise), in the test process and in the processes it starts. The
  tests' arrays are tiny, and the README's command runs one pytest worker per core: with
  a team of OpenMP threads per worker, a worker's threads wait for cores the other worker
  holds, and an operation on a 3×4 tensor took 20 ms instead of 2 µs on a busy machine.
* JAX keeps the programs it compiles in a persistent cache,
  ``.pytest_cache/jax-compilation-cache`` (unless ``JAX_COMPILATION_CACHE_DIR`` says
  where), shared by the workers of a run and the processes they start, and kept from run
  to run (emptied at the start of a run once it passes 1 GiB). The tests still trace and
  lower every program; only XLA's compilation of a program compiled before, with the same
  JAX, flags and devices, is read back instead of redone: on a second run the JAX-heavy
  files take half the CPU time, and a first run already gains (programs compiled again
  under new function objects within the run are read back).
* Hypothesis has a derandomised ``ci`` profile (the default) and a ``long`` profile:
  ``HYPOTHESIS_PROFILE=long pytest``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# The Triton kernels run in Triton's interpreter on this CPU (read when triton defines a
# kernel, so before anything imports it); a CUDA run sets TRITON_INTERPRET=0.
os.environ.setdefault("TRITON_INTERPRET", "1")
# One thread per worker (see above): read when torch starts, so before anything imports it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# JAX's persistent compilation cache (see above), read when jax is imported. Every program
# is kept: the tests' programs compile in a fraction of a second each, below JAX's default
# threshold of a second. JAX's own size bound is not used: it scans the whole directory at
# each write, which made a first run 40% slower.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest
from backends import XP_NAMES, namespace
from hypothesis import HealthCheck, settings
from slow_tests import is_slow

JAX_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"
JAX_CACHE_LIMIT = 2**30

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

try:
    import jax
except ImportError:  # pragma: no cover - jax is in the test extra
    jax = None
else:
    jax.config.update("jax_enable_x64", True)


# --------------------------------------------------------------------------- the xp fixture


@pytest.fixture(params=XP_NAMES)
def xp(request):
    """The array namespace under test: numpy, array_api_strict, torch (through
    ``array_api_compat.torch``) or ``jax.numpy``; skipped where the backend is missing.
    Use ``backends.asarray`` / ``backends.to_numpy`` to move NumPy data in and out."""
    return namespace(request.param)


# ------------------------------------------------------------------------ pytest-xdist

# The README's test command runs the suite in parallel (`-n auto --dist loadgroup`). The
# tests of a module with an expensive module-scoped fixture (a docs build, worker
# processes, an sdist build) are kept in one worker, so that the fixture runs once.
ONE_WORKER_MODULES = frozenset(
    {
        "test_docs",
        "test_jax_linear",
        "test_packaging",
        "test_torch_ddp",
        "test_torch_vocab_parallel",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    """Empty the JAX cache once it has grown past its limit (programs of older code pile
    up there), before the workers start: in the controller of an xdist run, or in the one
    process of a run without workers."""
    if hasattr(config, "workerinput") or os.environ["JAX_COMPILATION_CACHE_DIR"] != str(JAX_CACHE):
        return
    if JAX_CACHE.is_dir():
        size = sum(entry.stat().st_size for entry in os.scandir(JAX_CACHE) if entry.is_file())
        if size > JAX_CACHE_LIMIT:
            shutil.rmtree(JAX_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in ONE_WORKER_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
        if is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
