"""Train a small Flax (nnx) classifier with focal loss on an imbalanced data set.

Three Gaussian blobs in 2-d with class counts 100:10:1 (made on the fly), a two-layer MLP,
optax Adam, and :func:`multiloss.jax.focal_loss` (γ = 2, α = inverse class frequency)
inside an ``nnx.jit`` train step. At the end it prints the recall of every class on a
balanced held-out set.

    python examples/flax_focal.py --steps 300
    python examples/flax_focal.py --steps 300 --gamma 0 --no-alpha   # plain cross-entropy

Plain cross-entropy sacrifices the rare classes (recall ~0.98 / 0.46 / 0.15 after 300
steps); focal loss with α weighting buys them back (~0.78 / 0.78 / 0.66).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import multiloss.jax as mlj

CLASS_COUNTS = (2000, 200, 20)  # 100 : 10 : 1
CENTRES = ((0.0, 0.0), (2.0, 0.5), (0.5, 2.0))


def make_data(key: jax.Array, counts: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Points around CENTRES (unit variance, overlapping), `counts[c]` of class c."""
    keys = jax.random.split(key, len(counts))
    xs, ys = [], []
    for label, (count, centre, k) in enumerate(zip(counts, CENTRES, keys, strict=True)):
        xs.append(jnp.asarray(centre) + jax.random.normal(k, (count, 2)))
        ys.append(jnp.full((count,), label, dtype=jnp.int32))
    return jnp.concatenate(xs), jnp.concatenate(ys)


class MLP(nnx.Module):
    def __init__(self, features: int, hidden: int, classes: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(features, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.gelu(self.hidden(x)))


@functools.partial(nnx.jit, static_argnames=("gamma",))
def train_step(
    model: MLP,
    optimizer: nnx.Optimizer,
    x: jax.Array,
    y: jax.Array,
    alpha: jax.Array | None,
    *,
    gamma: float,
) -> jax.Array:
    def loss_fn(model: MLP) -> jax.Array:
        # gamma is static (a Python float); alpha, a length-C array, is traced.
        return mlj.focal_loss(model(x), y, gamma=gamma, alpha=alpha)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def recall_per_class(model: MLP, x: jax.Array, y: jax.Array, classes: int) -> list[float]:
    predicted = jnp.argmax(model(x), axis=-1)
    return [
        float(jnp.sum((predicted == c) & (y == c)) / jnp.maximum(jnp.sum(y == c), 1))
        for c in range(classes)
    ]


def main(
    steps: int = 300,
    *,
    gamma: float = 2.0,
    balance: bool = True,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Train for `steps` full-batch steps; returns the final loss and per-class recall.

    `balance` weights class c by α_c = min(counts) / counts[c] (inverse frequency).
    """
    data_key, test_key, model_key = jax.random.split(jax.random.key(seed), 3)
    x, y = make_data(data_key, CLASS_COUNTS)
    x_test, y_test = make_data(test_key, (500,) * len(CLASS_COUNTS))
    classes = len(CLASS_COUNTS)
    model = MLP(2, 32, classes, rngs=nnx.Rngs(model_key))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    alpha = jnp.asarray([min(CLASS_COUNTS) / c for c in CLASS_COUNTS]) if balance else None
    loss = jnp.nan
    for step in range(steps):
        loss = train_step(model, optimizer, x, y, alpha, gamma=gamma)
        if verbose and (step % max(steps // 5, 1) == 0 or step == steps - 1):
            print(f"step {step:5d}  focal loss (gamma={gamma:g}) {float(loss):.5f}")
    recall = recall_per_class(model, x_test, y_test, classes)
    if verbose:
        counts = ":".join(str(c) for c in CLASS_COUNTS)
        print(f"recall per class on a balanced test set (train counts {counts}):")
        for c, r in enumerate(recall):
            print(f"  class {c}: {r:.3f}")
    return {"loss": float(loss), "recall": recall}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (full batch)")
    parser.add_argument("--gamma", type=float, default=2.0, help="focusing parameter; 0 is CE")
    parser.add_argument(
        "--no-alpha", action="store_true", help="no inverse-frequency class weights"
    )
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(
        arguments.steps,
        gamma=arguments.gamma,
        balance=not arguments.no_alpha,
        seed=arguments.seed,
    )
