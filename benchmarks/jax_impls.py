"""The JAX groups: multiloss against optax, each loss compiled as
``jax.jit(jax.value_and_grad(loss))``, with the compiled HLO's kernels and bytes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from cost_model import count_xla
from harness import (
    ASL,
    BCE,
    POLY,
    SIGMOID_FOCAL,
    SIGMOID_KINDS,
    Group,
    Measurement,
    Settings,
    Shape,
    interleaved,
    make_data,
    set_modelled_ratios,
)

FLOOR = "floor: one exp + one copy"


def configure_threads(threads: int) -> None:
    """Limit XLA:CPU to `threads` cores; before jax is first imported in the process.

    XLA sizes its CPU thread pools from the process's CPU affinity when its client starts,
    so the process is pinned to its first `threads` allowed CPUs; at one thread Eigen's
    own multi-threading is switched off too (``--xla_cpu_multi_thread_eigen=false``).
    """
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, allowed[: max(1, threads)])
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def jax_threads() -> int:
    """The CPUs this process's XLA thread pools may use (its affinity)."""
    return len(os.sched_getaffinity(0))


POLY_EPSILON = 2.0
ASL_GAMMA_POS, ASL_GAMMA_NEG, ASL_CLIP = 0.0, 4.0, 0.05
"""multiloss's defaults, which the textbook formula uses too (as in torch_impls)."""


def textbook_asymmetric(
    gamma_pos: float = ASL_GAMMA_POS,
    gamma_neg: float = ASL_GAMMA_NEG,
    clip: float = ASL_CLIP,
    eps: float = 1e-8,
) -> Callable[[Any, Any], Any]:
    """The asymmetric loss as timm's ``AsymmetricLossMultiLabel`` writes it, in jnp,
    mean-reduced (:func:`torch_impls.timm_asymmetric`)."""
    import jax
    import jax.numpy as jnp

    def loss(logits: Any, target: Any) -> Any:
        xs_pos = jax.nn.sigmoid(logits)
        xs_neg = jnp.minimum(1 - xs_pos + clip, 1.0)
        los_pos = target * jnp.log(jnp.maximum(xs_pos, eps))
        los_neg = (1 - target) * jnp.log(jnp.maximum(xs_neg, eps))
        pt = xs_pos * target + xs_neg * (1 - target)
        one_sided_gamma = gamma_pos * target + gamma_neg * (1 - target)
        return -jnp.mean((los_pos + los_neg) * jnp.power(1 - pt, one_sided_gamma))

    return loss


def jax_implementations(kind: str, shape: Shape) -> dict[str, Callable[..., Any]]:
    """Loss functions (logits, target) -> scalar, by name; the reference comes first."""
    import jax
    import jax.numpy as jnp
    import optax

    import multiloss.jax as mj

    if kind == BCE:
        return {
            "optax sigmoid_binary_cross_entropy": lambda z, y: optax.sigmoid_binary_cross_entropy(
                z, y
            ).mean(),
            "multiloss BCE": lambda z, y: mj.binary_cross_entropy(z, y),
        }
    if kind == SIGMOID_FOCAL:
        return {
            "optax sigmoid_focal_loss": lambda z, y: optax.sigmoid_focal_loss(
                z, y, alpha=0.25, gamma=2.0
            ).mean(),
            "multiloss sigmoid focal γ=2": lambda z, y: mj.sigmoid_focal_loss(z, y),
        }
    if kind == ASL:
        return {
            "textbook ASL (timm formula)": textbook_asymmetric(),
            "multiloss ASL": lambda z, y: mj.asymmetric_loss(
                z, y, gamma_pos=ASL_GAMMA_POS, gamma_neg=ASL_GAMMA_NEG, clip=ASL_CLIP
            ),
        }
    ignore = shape.ignore_index

    def optax_ce(z: Any, y: Any) -> Any:
        if ignore is None:
            return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
        counted = y != ignore
        losses = optax.softmax_cross_entropy_with_integer_labels(z, jnp.where(counted, y, 0))
        return jnp.sum(jnp.where(counted, losses, 0.0)) / jnp.sum(counted)

    ignore_index = -100 if ignore is None else ignore
    if kind == POLY:

        def optax_poly(z: Any, y: Any) -> Any:
            counted = y != ignore_index
            labels = jax.nn.one_hot(jnp.where(counted, y, 0), z.shape[-1], dtype=z.dtype)
            losses = optax.losses.poly_loss_cross_entropy(z, labels, epsilon=POLY_EPSILON)
            if ignore is None:
                return losses.mean()
            return jnp.sum(jnp.where(counted, losses, 0.0)) / jnp.sum(counted)

        return {
            "optax CE (integer labels)": optax_ce,
            "optax poly_loss_cross_entropy ε=2": optax_poly,
            "multiloss poly ε=2": lambda z, y: mj.poly_loss(
                z, y, epsilon=POLY_EPSILON, ignore_index=ignore_index
            ),
        }
    return {
        "optax CE (integer labels)": optax_ce,
        "multiloss CE": lambda z, y: mj.cross_entropy(z, y, ignore_index=ignore_index),
        "multiloss focal γ=2": lambda z, y: mj.focal_loss(
            z, y, gamma=2.0, ignore_index=ignore_index
        ),
    }


def run_jax_group(
    group: Group, settings: Settings, progress: Callable[[], None]
) -> tuple[list[Measurement], list[dict[str, Any]]]:
    """Measure one JAX group: (measurements, notes)."""
    import jax
    import jax.numpy as jnp

    kind, shape = group.kind, group.shape
    logits_np, target_np = make_data(shape, kind)
    if kind not in SIGMOID_KINDS:  # JAX layout: classes last
        logits_np = np.moveaxis(logits_np, 1, -1)
    logits = jnp.asarray(logits_np, dtype=getattr(jnp, shape.dtype))
    target = jnp.asarray(target_np, dtype=jnp.float32 if kind in SIGMOID_KINDS else jnp.int32)
    implementations = jax_implementations(kind, shape)
    reference = next(iter(implementations))
    compiled = {
        name: jax.jit(jax.value_and_grad(fn)).lower(logits, target).compile()
        for name, fn in implementations.items()
    }
    compiled[FLOOR] = jax.jit(lambda z, y: (jnp.exp(z), z + 0)).lower(logits, target).compile()

    def make_step(function: Any) -> Callable[[], Any]:
        return lambda: jax.block_until_ready(function(logits, target))

    steps = {name: make_step(function) for name, function in compiled.items()}
    timed = interleaved(steps, reference, settings.rounds, settings.budget, progress)
    results = []
    for name, (seconds, ratios) in timed.items():
        m = Measurement(
            backend="jax",
            group=kind,
            shape=shape.name,
            implementation=name,
            reference=reference,
            threads=jax_threads(),
            device=jax.default_backend(),
            seconds=seconds,
            ratios=ratios,
        )
        analysis = compiled[name].memory_analysis() if name in implementations else None
        if analysis is not None:
            m.memory_bytes = int(analysis.temp_size_in_bytes)
            m.memory_kind = "XLA temporary buffers"
        cost = count_xla(compiled[name])
        m.ops, m.kernels, m.bytes_accessed = cost.ops, cost.kernels, cost.bytes
        m.modelled_seconds = cost.modelled_seconds
        m.cost_kind = f"XLA:{jax.default_backend()} optimized HLO, entry computation"
        results.append(m)
    set_modelled_ratios(results)
    return results, []
