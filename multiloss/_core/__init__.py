"""The loss math, written once against the Python array API standard.

No framework is imported here: every function takes arrays of any namespace that
``array_api_compat.array_namespace`` recognises (NumPy, array-api-strict, PyTorch, JAX, …).

Layers:

* :data:`LOSSES` (:mod:`.registry`): one record per loss, the only list of losses;
* ``prepare_call(LOSSES[name], logits, target, options)`` (:mod:`.prepare`), one function
  for every loss's plain call, validates it (docs/semantics.md, Bad input) from the
  loss's record and returns ``(xp, config, operands)``: the namespace, a static hashable
  config and the operand arrays in the compute dtype (the fused head's and the
  vocabulary-parallel call's: :func:`.linear.prepare_linear`,
  :func:`.vocab_parallel.prepare_vocab_parallel`);
* a family per kind of loss (:data:`.softmax.SOFTMAX`, :data:`.sigmoid.SIGMOID`), named by
  the config (``config.family``), with the loss, its vector-Jacobian product, its
  Hessian-vector product and directional derivative, and the derivatives with respect to
  targets and weights, each in closed form; the softmax family's per-class term is
  pluggable (:mod:`.terms`) and its few hot kernels replaceable (:mod:`.kernels`);
* the functions below run a prepared call through its family.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ._reduce import normalizer_scale, split_normalizer
from .asymmetric import ASYMMETRIC, AsymmetricConfig, AsymmetricOperands
from .class_weights import class_balanced_weights, inverse_frequency_weights
from .counting import count_elements, count_targets
from .detection import QUALITY_FOCAL, VARIFOCAL, QualityFocalConfig, VarifocalConfig
from .distribution import (
    DISTRIBUTION,
    DistributionConfig,
    DistributionOperands,
)
from .family import Family
from .kernels import GENERIC, GENERIC_SIGMOID, SigmoidKernels, SoftmaxKernels
from .linear import LinearCall, prepare_linear, run_linear
from .prepare import prepare_call
from .registry import LOSSES, Loss
from .sigmoid import SIGMOID, SigmoidConfig, SigmoidOperands
from .softmax import SOFTMAX, SoftmaxConfig, SoftmaxOperands, SoftmaxResiduals

Array = Any
Prepared = tuple[
    Any,
    SoftmaxConfig
    | SigmoidConfig
    | AsymmetricConfig
    | VarifocalConfig
    | QualityFocalConfig
    | DistributionConfig,
    SoftmaxOperands | SigmoidOperands | AsymmetricOperands | DistributionOperands,
]


def _keyword_form(loss: Loss) -> Any:
    def prepare(
        logits: Array,
        target: Array,
        *,
        check_values: bool = True,
        convert_logits: bool = True,
        cache_static: bool = False,
        **options: Any,
    ) -> Prepared:
        return prepare_call(
            loss,
            logits,
            target,
            options,
            check_values=check_values,
            convert_logits=convert_logits,
            cache_static=cache_static,
        )

    prepare.__name__ = prepare.__qualname__ = f"prepare_{loss.name}"
    return prepare


PREPARE = {name: _keyword_form(loss) for name, loss in LOSSES.items()}
"""Every loss's plain-call preparation in keyword form, by name: ``PREPARE[name](logits,
target, **options)`` is :func:`prepare_call` of ``LOSSES[name]`` (for tests and
interactive use; the adapters call :func:`prepare_call`)."""


Kernels = SoftmaxKernels | SigmoidKernels | None
"""The seam's kernels for a call's family (:mod:`.kernels`); None: the generic ones."""


def forward(prepared: Prepared, kernels: Kernels = None) -> tuple[Array, Any]:
    """The reduced loss in the compute dtype, and the residuals that :func:`vjp` needs."""
    xp, config, operands = prepared
    if kernels is None:
        return config.family.forward(xp, config, operands)
    return config.family.forward(xp, config, operands, kernels)


def vjp(prepared: Prepared, residuals: Any, cotangent: Array, kernels: Kernels = None) -> Array:
    """cotangent · ∂loss/∂logits in the compute dtype."""
    xp, config, operands = prepared
    if kernels is None:
        return config.family.vjp(xp, config, operands, residuals, cotangent)
    return config.family.vjp(xp, config, operands, residuals, cotangent, kernels)


def operand_vjp(prepared: Prepared, cotangent: Array, wanted: Collection[str]) -> dict[str, Array]:
    """cotangent · ∂loss/∂operand for each operand field in `wanted` (among the family's
    ``differentiable``), each with the operand's shape, in the compute dtype."""
    xp, config, operands = prepared
    return config.family.operand_vjp(xp, config, operands, cotangent, wanted)


def operand_jvp(prepared: Prepared, tangents: Mapping[str, Array]) -> Array:
    """The tangent of the reduced loss along tangents of operands other than the logits."""
    xp, config, operands = prepared
    return config.family.operand_jvp(xp, config, operands, tangents)


def mean_denominator(prepared: Prepared) -> Array:
    """The 0-d denominator by which ``"mean"`` divides the sum of a prepared call (for an
    adapter that sums the call in parts and reduces once)."""
    xp, config, operands = prepared
    return config.family.denominator(xp, config, operands)


def loss_shape(prepared: Prepared) -> tuple[int, ...]:
    """The shape of the reduced loss of a prepared call."""
    _, config, operands = prepared
    return config.family.loss_shape(config, tuple(operands.logits.shape))


def loss_value(prepared: Prepared, dtype: Any, normalizer: Any = None) -> Array:
    """Run a prepared call; the loss is returned in `dtype` (the input's), divided by
    `normalizer` where one is given (the call's reduction then ``"sum"``:
    :func:`split_normalizer`)."""
    xp = prepared[0]
    loss, _ = forward(prepared)
    loss = apply_normalizer(xp, loss, normalizer, check_values=True)
    return xp.astype(loss, dtype)


def loss_value_and_grad(
    prepared: Prepared, dtype: Any, kernels: Kernels = None, normalizer: Any = None
) -> tuple[Array, Array]:
    """The loss and the gradient of its sum with respect to the logits, both in `dtype`;
    `normalizer` as in :func:`loss_value`.

    For ``reduction="none"`` the gradient of the sum is every element's own gradient,
    because each element's loss depends only on its own logits.
    """
    xp = prepared[0]
    loss, residuals = forward(prepared, kernels)
    cotangent = xp.ones_like(loss)
    if normalizer is not None:  # d(sum · s) = s · d(sum), from one scale
        cotangent = apply_normalizer(xp, cotangent, normalizer, check_values=True)
        loss = loss * cotangent
    grad = vjp(prepared, residuals, cotangent, kernels)
    return xp.astype(loss, dtype), xp.astype(grad, dtype)


def apply_normalizer(xp: Any, total: Array, normalizer: Any, *, check_values: bool) -> Array:
    """The sum `total` of a call divided by its given `normalizer` (none: `total` itself),
    in `total`'s dtype (the compute dtype: a 16-bit sum is never formed); the loss's "mean"
    over a whole batch of which the call is a part (docs/semantics.md, Global
    normalisation)."""
    if normalizer is None:
        return total
    return total * normalizer_scale(xp, normalizer, total, check_values=check_values)


__all__ = [
    "ASYMMETRIC",
    "DISTRIBUTION",
    "GENERIC",
    "GENERIC_SIGMOID",
    "LOSSES",
    "PREPARE",
    "QUALITY_FOCAL",
    "SIGMOID",
    "SOFTMAX",
    "VARIFOCAL",
    "AsymmetricConfig",
    "AsymmetricOperands",
    "DistributionConfig",
    "DistributionOperands",
    "Family",
    "LinearCall",
    "Loss",
    "QualityFocalConfig",
    "SigmoidConfig",
    "SigmoidKernels",
    "SigmoidOperands",
    "SoftmaxConfig",
    "SoftmaxKernels",
    "SoftmaxOperands",
    "SoftmaxResiduals",
    "VarifocalConfig",
    "apply_normalizer",
    "class_balanced_weights",
    "count_elements",
    "count_targets",
    "forward",
    "inverse_frequency_weights",
    "loss_shape",
    "loss_value",
    "loss_value_and_grad",
    "mean_denominator",
    "operand_jvp",
    "operand_vjp",
    "prepare_call",
    "prepare_linear",
    "run_linear",
    "split_normalizer",
    "vjp",
]
