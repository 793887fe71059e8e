"""Which engine runs the JAX losses: XLA's fusion of the core's closed forms, or Pallas kernels.

`engine(name)` is a context manager; the engine in force **while a function is traced** is
the one its compiled code uses (a `jax.jit` function traced under `engine("pallas")` keeps
the kernels when it is called later outside the block, and vice versa: JAX's compilation
cache does not know about the setting).

Names:

- `"auto"` (the default): XLA on every platform. The kernels become the default of a
  platform only once a measurement on that platform's accelerator shows them ahead of
  XLA; none has been taken yet (no GPU or TPU was lent to the rounds that wrote them).
  For GPUs it is `benchmarks/device_check_jax.sh` on an H100 (cross-entropy at
  8192×32000 and 16384×128256, float32 and bfloat16, against the XLA engine and optax):
  ahead of XLA at all four, `_KERNEL_DEFAULT["gpu"]` and `["cuda"]` become True.
- `"xla"`: the core's closed forms, fused by XLA (the adapter's path since the start).
- `"pallas"`: the Pallas kernels of `multiloss.jax._pallas` for the softmax family
  (cross-entropy, focal, poly) and the sigmoid family (BCE, sigmoid focal, asymmetric),
  for the plain losses, the fused linear head's chunks and the vocabulary-parallel losses
  (without label smoothing). On a CPU they run in Pallas's interpreter (`interpret=True`), which is
  how CI tests them; on a GPU they lower through Triton, on a TPU through Mosaic. Reverse
  mode only (a `custom_vjp`): forward mode and second derivatives raise a TypeError that
  says to trace them under `"xla"`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import jax

ENGINES = ("auto", "pallas", "xla")
"""The engine names `engine` accepts."""

_ENGINE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "multiloss_jax_engine", default="auto"
)

_KERNEL_DEFAULT: dict[str, bool] = {
    "cpu": False,
    "gpu": False,
    "cuda": False,
    "rocm": False,
    "tpu": False,
}
"""Whether `"auto"` picks the kernels on a platform: only where a measurement showed them
ahead of XLA (none yet: see the module docstring)."""


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Run the JAX losses traced inside the block with the engine `name`.

    Args:
        name: `"auto"` (XLA everywhere until a GPU or TPU measurement shows the kernels
            ahead), `"pallas"` (the Pallas kernels; interpreted on a CPU) or `"xla"`.

    Raises:
        ValueError: for another name.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import multiloss.jax as mlj
        >>> logits, labels = jnp.zeros((8, 128)), jnp.zeros(8, dtype=jnp.int32)
        >>> with mlj.engine("pallas"):
        ...     loss = jax.jit(mlj.cross_entropy)(logits, labels)
        >>> round(float(loss), 5)  # log 128
        4.85203
    """
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {name!r}")
    token = _ENGINE.set(name)
    try:
        yield
    finally:
        _ENGINE.reset(token)


def current_engine() -> str:
    """The engine name in force now (`"auto"` outside any `engine` block)."""
    return _ENGINE.get()


def uses_kernels() -> bool:
    """Whether a loss traced now runs the Pallas kernels (the engine, and for `"auto"` the
    default backend's platform)."""
    name = _ENGINE.get()
    if name == "auto":
        return _KERNEL_DEFAULT.get(jax.default_backend(), False)
    return name == "pallas"


_TARGET: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "multiloss_jax_kernel_target", default=None
)


@contextlib.contextmanager
def lowering_for(platform: str) -> Iterator[None]:
    """Trace the kernels for `platform` (`"cuda"`, `"rocm"`, `"tpu"`) whatever the default
    backend is: for lowering on a machine without that device (the cost model's
    `jax.jit(f).trace(...).lower(lowering_platforms=(platform,))`). Not for running."""
    token = _TARGET.set(platform)
    try:
        yield
    finally:
        _TARGET.reset(token)


def _platform() -> str:
    return _TARGET.get() or jax.default_backend()


def kernel_platform() -> str:
    """The platform the kernels traced now are for (`lowering_for`'s, else the default
    backend's): a cache key of traces that hold kernels, besides `uses_kernels`."""
    return _platform()


def interpret() -> bool:
    """Whether the kernels must run in Pallas's interpreter: on any platform but GPU and TPU."""
    return _platform() not in ("gpu", "cuda", "rocm", "tpu")


def lowers_for_tpu() -> bool:
    """Whether the kernels being traced lower through Mosaic (TPU), which takes no masked
    loads: the kernels then mask by selection inside the block's VMEM tile."""
    return _platform() == "tpu"


def compiler_params() -> Any:
    """The `pallas_call` compiler parameters of the platform: Triton's on a GPU (JAX's
    default GPU lowering is Mosaic GPU, whose kernels are written differently), Mosaic's
    defaults on a TPU, none in the interpreter."""
    if _platform() in ("gpu", "cuda", "rocm"):
        from jax.experimental.pallas import triton as pallas_triton

        return pallas_triton.CompilerParams(num_warps=8, num_stages=1)
    return None


__all__ = [
    "ENGINES",
    "compiler_params",
    "current_engine",
    "engine",
    "interpret",
    "kernel_platform",
    "lowering_for",
    "lowers_for_tpu",
    "uses_kernels",
]
