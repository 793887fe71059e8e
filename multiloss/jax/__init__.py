r"""JAX adapter: jit-able losses whose derivatives come from the closed forms of the core.

The losses of `multiloss` as pure functions of `jax.Array`s, class axis -1 by default
(the optax convention), every hyperparameter keyword-only so that it can be made static
under `jax.jit` (`static_argnames=...` or `functools.partial`).

Besides the six losses: [`linear_cross_entropy`][multiloss.jax.linear_cross_entropy] and
[`linear_focal_loss`][multiloss.jax.linear_focal_loss], the output projection and the loss
fused over chunks of tokens ([Large vocabularies][large-vocabularies]);
[`count_targets`][multiloss.jax.count_targets] and
[`count_elements`][multiloss.jax.count_elements], the mean's count for the `normalizer=`
of every loss ([Distributed training][distributed-training]); and the vocabulary-parallel
losses of [`multiloss.jax.distributed`][multiloss.jax.distributed].

## Derivatives

Each loss is a `jax.custom_jvp` whose rule is the core's closed-form gradient
$G = \partial\,\mathrm{loss} / \partial\,\mathrm{logits}$ (the math page, docs/math.md:
[Gradient][gradient]): the JVP along a tangent $t$ is $\langle G, t \rangle$, and JAX
transposes that for reverse mode. So `jax.grad`, `jax.value_and_grad`, `jax.vjp`, `jax.jvp`,
`jax.jacfwd`, `jax.jacrev` and `jax.hessian` all work, and reverse mode costs what a
`custom_vjp` would: XLA compiles `jit(value_and_grad(...))` of both to the same fusions,
with the same temporary memory (between forward and backward one array of the logits' size
is kept either way: the logits for a `custom_vjp`, $G$ here). $G$ is itself a `custom_jvp`
whose rule is the core's closed-form Hessian-vector product, so second derivatives are
finite where automatic differentiation of $G$ is not (focal losses with $0 < \gamma < 1$ at
saturated logits, $p_t = 1$: $\frac{d}{du} u^\gamma$ is infinite there). Third and higher
derivatives are JAX's automatic derivatives of that closed form.

A probability target, a sigmoid target, `weight`, a per-class `alpha` array and
`pos_weight` are differentiable to first order too (closed forms beside the
gradients in the core's family modules, contracted with their tangents in the same rule). A second
derivative through them raises `NotImplementedError`; wrap them in `jax.lax.stop_gradient`
or close over them where one is taken.

## Dtypes

float16 and bfloat16 logits are computed in float32 inside, and the loss (and the gradient)
come back in the input dtype. float64 works when the user has enabled `jax_enable_x64`; this
module never changes JAX's configuration.

## Bad input

Shape, dtype and hyperparameter errors raise at trace time, under `jit` too, with the
messages of every other backend (`TypeError`/`ValueError`; the semantics page,
docs/semantics.md: [Bad input][bad-input]). Values (class indices in range, weights
non-negative and finite) are checked eagerly when the arrays are concrete, and so are
weights held in concrete arrays that a traced function captures. Traced values cannot
be: an out-of-range class index gives a NaN loss (and NaN gradient) for its element, never
a silent clamp or wrap. To turn that into an error, run the function through
[`checked`][multiloss.jax.checked] (or `jax.experimental.checkify.checkify` yourself): the
losses then check class indices and weights at run time.
[`validate_labels`][multiloss.jax.validate_labels] does the label check alone.

## Sharding and transformations

The losses are ordinary JAX computations: they work under `vmap`, `scan`, `checkpoint`,
`shard_map`, and on arrays sharded with `jax.sharding.NamedSharding` over the batch or the
class axis (a `"mean"` over a sharded batch becomes an all-reduce). With Explicit mesh axes
(sharding in types, the default of `jax.make_mesh`) the loss runs inside
`jax.sharding.auto_axes`, so that XLA places the gathers of target logits and weights; the
loss comes back replicated (`"mean"`/`"sum"`) or sharded like the logits without the class
axis (`"none"`), the gradient sharded like the logits.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from multiloss.jax import focal_loss
    >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    >>> labels = jnp.array([0, 1])
    >>> loss_fn = jax.jit(focal_loss, static_argnames=("gamma",))
    >>> round(float(loss_fn(logits, labels, gamma=2.0)), 5)
    0.05509
    >>> grad = jax.grad(focal_loss)(logits, labels)
    >>> grad.shape
    (2, 3)
"""

from __future__ import annotations

from .._backends import missing_backend, public_names

try:
    import jax  # noqa: F401
except ImportError as error:
    raise missing_backend(__name__, "JAX", "jax") from error

from .._core.counting import count_elements, count_targets
from ._detection import distribution_focal_loss, quality_focal_loss, varifocal_loss
from ._engine import engine
from ._validation import checked, validate_labels
from .linear import linear_cross_entropy, linear_focal_loss, linear_poly_loss
from .losses import (
    asymmetric_loss,
    binary_cross_entropy,
    cross_entropy,
    focal_loss,
    poly_loss,
    sigmoid_focal_loss,
)

__all__ = [
    "asymmetric_loss",
    "binary_cross_entropy",
    "checked",
    "count_elements",
    "count_targets",
    "cross_entropy",
    "distribution_focal_loss",
    "engine",
    "focal_loss",
    "linear_cross_entropy",
    "linear_focal_loss",
    "linear_poly_loss",
    "poly_loss",
    "quality_focal_loss",
    "sigmoid_focal_loss",
    "validate_labels",
    "varifocal_loss",
]


def __dir__() -> list[str]:
    """The public names only (docs/api: what the module offers)."""
    return public_names(__all__, "distributed", "linear", "losses")
