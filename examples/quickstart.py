"""Quick start: the focal loss and its gradient from the NumPy reference, and the same
numbers from every other installed backend.

Run: ``python examples/quickstart.py``. It prints the worked example of Lin et al. (2017)
and the largest disagreement of loss and gradient between the backends.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from multiloss.numpy import cross_entropy, focal_loss, focal_loss_value_and_grad


def worked_example() -> None:
    print("Focal loss, gamma = 2 (Lin et al. 2017): well-classified examples are turned down")
    print(f"{'p_t':>6} {'(1-p_t)^2':>10} {'cross-entropy':>14} {'focal':>10} {'down-weight':>12}")
    for p_t in (0.6, 0.9, 0.99):
        logits = np.log(np.array([[p_t, 1.0 - p_t]]))
        target = np.array([0])
        ce = float(cross_entropy(logits, target))
        fl = float(focal_loss(logits, target, gamma=2.0))
        print(f"{p_t:>6} {(1 - p_t) ** 2:>10.4g} {ce:>14.4g} {fl:>10.4g} {ce / fl:>11.0f}x")


def cross_backend_agreement() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 5)) * 3
    target = rng.integers(0, 5, size=64)
    options = {"gamma": 0.5, "alpha": [0.1, 0.2, 0.3, 0.2, 0.2], "label_smoothing": 0.1}
    reference_loss, reference_grad = focal_loss_value_and_grad(logits, target, **options)
    print(f"\nNumPy float64 reference: loss {float(reference_loss):.12f}")

    if importlib.util.find_spec("torch") is not None:
        import torch

        from multiloss.torch import focal_loss as torch_focal_loss

        z = torch.tensor(logits, requires_grad=True)
        loss = torch_focal_loss(z, torch.tensor(target), axis=-1, **options)
        loss.backward()
        report("torch", float(loss), z.grad.numpy(), reference_loss, reference_grad)
    if importlib.util.find_spec("jax") is not None:
        import jax

        from multiloss.jax import focal_loss as jax_focal_loss

        def loss_of(z):
            return jax_focal_loss(z, target, **options)

        z = jax.numpy.asarray(logits, dtype=jax.numpy.float32)
        loss, grad = jax.jit(jax.value_and_grad(loss_of))(z)
        report("jax (float32)", float(loss), np.asarray(grad), reference_loss, reference_grad)


def report(name, loss, grad, reference_loss, reference_grad) -> None:
    loss_error = abs(loss - float(reference_loss))
    grad_error = float(np.max(np.abs(grad - reference_grad)))
    print(
        f"{name:>14}: |loss - reference| = {loss_error:.2e}, max |grad - reference| = "
        f"{grad_error:.2e}"
    )


if __name__ == "__main__":
    worked_example()
    cross_backend_agreement()
