"""`jax.numpy` for the inside of a kernel: the core's functions run on it unchanged.

Mosaic (TPU) lowers no `expm1` and no `log1p`; this namespace gives both, written from
`exp` and `log` with the classic corrections that keep them accurate to a few ulp near 0
(Kahan's `expm1` and Goldberg's `log1p`: the rounding error of `exp(x)` or `1 + x` is
divided out by the same rounded quantity), and delegates everything else to `jax.numpy`.
The kernels use it on every platform, so the interpreter runs exactly what a TPU runs.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp


def expm1(x: Any) -> Any:
    """e^x - 1, accurate near 0 (Kahan): (u - 1) · x / log u with u = e^x rounded."""
    u = jnp.exp(x)
    shifted = u - 1.0
    log_u = jnp.log(jnp.where(shifted == 0, 2.0, u))
    ratio = shifted * (x / jnp.where(shifted == 0, 1.0, log_u))
    # u = 1: x itself (|x| below half an ulp of 1); u = 0 or inf: -1 or inf, as rounded
    exact = (shifted == -1.0) | jnp.isinf(u)
    return jnp.where(shifted == 0, x, jnp.where(exact, shifted, ratio))


def log1p(x: Any) -> Any:
    """log(1 + x), accurate near 0 (Goldberg): log(u) · x / (u - 1) with u = 1 + x rounded."""
    u = 1.0 + x
    shifted = u - 1.0
    safe = jnp.where(shifted == 0, 1.0, shifted)
    ratio = jnp.log(u) * (x / safe)
    return jnp.where(shifted == 0, x, jnp.where(jnp.isinf(u), u, ratio))


class _KernelNumpy:
    """`jax.numpy` with :func:`expm1` and :func:`log1p` replaced (see the module docstring)."""

    expm1 = staticmethod(expm1)
    log1p = staticmethod(log1p)

    def __getattr__(self, name: str) -> Any:
        return getattr(jnp, name)


xp = _KernelNumpy()
"""The namespace the kernels hand to the core's functions."""
