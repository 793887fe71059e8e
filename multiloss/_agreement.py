"""The cross-backend agreement check of `multiloss demo` and `multiloss check`: the same
batches in every installed backend against the NumPy float64 reference, every loss with
options off their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import numpy as reference
from ._core import LOSSES


@dataclass(frozen=True)
class Agreement:
    """Largest differences from the NumPy float64 reference, per backend and loss."""

    backend: str
    loss: str
    dtype: str
    loss_error: float
    grad_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.loss_error <= self.tolerance and self.grad_error <= self.tolerance


AGREEMENT_CASES: dict[str, dict[str, Any]] = {
    "cross_entropy": {"weight": [0.5, 1.0, 2.0, 1.0, 0.25], "label_smoothing": 0.1},
    "focal_loss": {"gamma": 0.5, "alpha": 0.25, "ignore_index": 4},
    # PolyLoss on top of the focal form (γ < 1), with PaLM's z-loss and Gemma 2's logit
    # soft-capping: the logits (scale 4) reach the cap of 10.
    "poly_loss": {"epsilon": 1.0, "gamma": 0.5, "z_loss": 1e-3, "softcap": 10.0},
    "binary_cross_entropy": {"pos_weight": [1.0, 2.0, 3.0, 0.5, 1.0]},
    "sigmoid_focal_loss": {"alpha": 0.25, "gamma": 2.0},
    # The Asymmetric Loss of multi-label training: γ+ < 1 and the probability margin.
    "asymmetric_loss": {"gamma_pos": 0.5, "gamma_neg": 4.0, "clip": 0.05},
    # The box sides' bins of a detector: an element weight per side, sum reduction.
    "distribution_focal_loss": {"weight": [0.5 * (i % 4) for i in range(32)], "reduction": "sum"},
    # The detection losses with the element-wise options (soft targets in [0, 1]).
    "varifocal_loss": {"gamma": 0.5, "pos_weight": [1.0, 2.0, 3.0, 0.5, 1.0]},
    "quality_focal_loss": {"beta": 1.5, "label_smoothing": 0.1, "weight": [2.0] * 5},
}
"""Every loss with options off their defaults, for the agreement check (the demo's and
``multiloss check``'s): PolyLoss also carries the z-loss and soft-capping, so that the
newer losses are compared across the backends with the older ones."""


def _agreement_batch(loss: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 arrays holding float32 values, so that every backend sees the same numbers."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(32, 5)) * 4.0).astype(np.float32).astype(np.float64)
    if not LOSSES[loss].has_class_axis:  # a sigmoid loss: 0/1 targets of the logits' shape
        return logits, rng.uniform(size=(32, 5)).astype(np.float32).astype(np.float64)
    if LOSSES[loss].family.name == "distribution":  # positions among the 5 bins, edges too
        positions = rng.uniform(0, 4, size=32).astype(np.float32).astype(np.float64)
        positions[:3] = (0.0, 2.0, 4.0)
        return logits, positions
    return logits, rng.integers(0, 5, size=32)


def _torch_value_and_grad(
    loss: str, logits: np.ndarray, target: np.ndarray, options: dict[str, Any]
) -> tuple[float, np.ndarray]:
    import torch

    from . import torch as multiloss_torch

    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    extra = {"axis": -1} if LOSSES[loss].has_class_axis else {}
    value = getattr(multiloss_torch, loss)(z, torch.from_numpy(target), **extra, **options)
    (grad,) = torch.autograd.grad(value, z)
    return float(value.detach()), grad.numpy()


def _jax_value_and_grad(
    loss: str, logits: np.ndarray, target: np.ndarray, options: dict[str, Any]
) -> tuple[float, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from . import jax as multiloss_jax

    function = getattr(multiloss_jax, loss)
    z = jnp.asarray(logits, dtype=jnp.float32)
    y = jnp.asarray(target if target.dtype.kind == "i" else target.astype(np.float32))
    value, grad = jax.jit(jax.value_and_grad(lambda z: function(z, y, **options)))(z)
    return float(value), np.asarray(grad, dtype=np.float64)


AGREEMENT_RUNNERS = {"torch": _torch_value_and_grad, "jax": _jax_value_and_grad}
AGREEMENT_DTYPES = {"torch": "float64", "jax": "float32"}
TOLERANCES = {"float64": 1e-12, "float32": 1e-5}


def cross_backend_agreement(backends: list[str], seed: int = 0) -> list[Agreement]:
    """Evaluate the same batches in every backend and compare with the NumPy reference.

    torch runs in float64 (tolerance 1e-12 relative to 1 + |reference|); JAX in float32,
    its default (1e-5, about 80 float32 eps): the library never switches on JAX's float64.
    """
    results = []
    for loss, options in AGREEMENT_CASES.items():
        logits, target = _agreement_batch(loss, seed)
        ref_value, ref_grad = getattr(reference, f"{loss}_value_and_grad")(
            logits, target, **options
        )
        scale_value = 1.0 + abs(float(ref_value))
        scale_grad = 1.0 + np.abs(ref_grad)
        for backend in backends:
            value, grad = AGREEMENT_RUNNERS[backend](loss, logits, target, options)
            dtype = AGREEMENT_DTYPES[backend]
            results.append(
                Agreement(
                    backend,
                    loss,
                    dtype,
                    abs(value - float(ref_value)) / scale_value,
                    float(np.max(np.abs(grad - ref_grad) / scale_grad)),
                    TOLERANCES[dtype],
                )
            )
    return results


def format_agreement(agreements: list[Agreement]) -> str:
    lines = [
        "| backend | dtype | loss | loss error | gradient error | tolerance | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in agreements:
        lines.append(
            f"| {a.backend} | {a.dtype} | {a.loss} | {a.loss_error:.2e} | {a.grad_error:.2e} "
            f"| {a.tolerance:.0e} | {'yes' if a.ok else 'NO'} |"
        )
    return "\n".join(lines)
