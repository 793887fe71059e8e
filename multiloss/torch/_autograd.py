"""The autograd Functions: one call of a loss, with the core's closed-form derivatives.

Each call is one ``torch.autograd.Function`` (``setup_context`` style, so ``torch.func``
and ``torch.compile`` accept it) whose backward is the core's vector-Jacobian product;
the gradient is itself a differentiable Function whose backward is the core's closed-form
Hessian-vector product; forward mode comes from the same closed forms through twin
Functions that define ``jvp`` (``torch.compile`` cannot trace those). How and why:
docs/torch-adapter.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad

from .. import _core
from .._core import SOFTMAX, SigmoidConfig, SoftmaxConfig, SoftmaxResiduals, second_order
from .._core.hyper import bound, names, refusal
from . import _native, _plans
from ._namespace import XP


@dataclass(frozen=True)
class LossSpec:
    """The static part of one call: the core's config and the dtypes the core works in.

    A dataclass, not a tuple, so that ``torch.func`` sees it as one opaque argument.
    """

    config: SoftmaxConfig | SigmoidConfig
    compute_dtype: torch.dtype
    target_dtype: torch.dtype


def _prepared(
    spec: LossSpec,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    pos_weight: Tensor | None,
    *others: Tensor | None,
    first_order: bool = False,
    hyper: Tensor | None = None,
) -> tuple[tuple[Any, Any, Any], _plans.Plan]:
    """The core's ``(xp, config, operands)`` from tensors saved as the user gave them, and
    the call's execution plan (:func:`._plans.choose`).

    The logits and target are converted as the core's ``prepare`` step converts them (to
    the compute dtype, class indices to the index dtype); the weights already were.
    `others` are the further tensors of the computation, which choose the plan too.
    For the loss and its gradient (`first_order`), 16-bit logits stay 16-bit where the
    plan's passes convert them as they go (:func:`._native.takes_16_bit`): no float32
    copy of the whole logits is made. `hyper` holds the hyperparameters given as tensors
    (the config's markers, in order: :mod:`multiloss._core.hyper`), bound into the config.
    """
    plan = _plans.choose(logits, target, weight, pos_weight, *others)
    if logits.dtype != spec.compute_dtype and not (
        first_order and _native.takes_16_bit(plan, spec.config, logits)
    ):
        logits = logits.to(spec.compute_dtype)
    if target.dtype != spec.target_dtype:
        target = target.to(spec.target_dtype)
    config = spec.config
    if hyper is not None:
        config = bound(XP, config, tuple(hyper.unbind()))
    family = config.family
    count = len(family.operands._fields) - 1  # type: ignore[attr-defined]  # not hyper
    fields = (logits, target, weight, pos_weight)[:count]
    return (XP, config, family.operands(*fields)), plan


def _unit_cotangent(spec: LossSpec, loss_shape: torch.Size, like: Tensor) -> Tensor:
    """Ones shaped like the loss: the cotangent whose vjp is the unit gradient G."""
    return torch.ones(loss_shape, dtype=spec.compute_dtype, device=like.device)


def _per_element(spec: LossSpec, cotangent: Tensor) -> Tensor:
    """The cotangent of the loss, broadcastable against the logits."""
    return spec.config.family.logits_cotangent(XP, spec.config, cotangent)


def _hessian_times(spec: LossSpec, prepared: Any, cotangent: Tensor, tangent: Tensor) -> Tensor:
    """cotangent · H · tangent, from the core's closed-form Hessian-vector product."""
    hvp = second_order.hessian_vector_product(prepared, tangent.to(spec.compute_dtype))
    return hvp * _per_element(spec, cotangent)


def _operand_fields(spec: LossSpec) -> tuple[str | None, str | None, str | None]:
    """The core's operand fields behind the ``target``, ``weight`` and ``pos_weight``
    inputs of :class:`LossFunction` (None where the family has no such operand)."""
    fields = spec.config.family.differentiable
    return (*fields, None, None)[:3]  # type: ignore[return-value]


def _refuse_second_order(
    spec: LossSpec, target: object, weight: object, pos_weight: object
) -> None:
    """Second derivatives through the target and the weights are not provided: refuse
    where one of them has a tangent or needs a gradient (not None, not False)."""
    softmax = spec.config.family is SOFTMAX
    names = ("target", "weight (or alpha)" if softmax else "weight", "pos_weight")
    for name, tangent in zip(names, (target, weight, pos_weight), strict=True):
        if tangent is not None and tangent is not False:
            raise NotImplementedError(
                f"second derivatives through {name} are not provided: the closed forms give "
                f"first-order gradients with respect to {name} and second-order ones with "
                f"respect to the logits only; detach {name} for create_graph=True, "
                f"gradgradcheck, torch.func.hessian and the like"
            )


def _operand_grads(
    spec: LossSpec, ctx: Any, grad_loss: Tensor, inputs: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """cotangent · ∂loss/∂(target, weight, pos_weight), for those that need a gradient."""
    fields = _operand_fields(spec)
    needs = ctx.needs_input_grad[2:5]
    wanted = [field for field, need in zip(fields, needs, strict=True) if need and field]
    if not wanted:
        return None, None, None
    logits, target, weight, pos_weight, hyper = inputs
    assert logits is not None and target is not None  # saved by forward, never None
    if torch.is_grad_enabled():  # create_graph=True
        _refuse_second_order(spec, *needs)
    prepared, _ = _prepared(spec, logits, target, weight, pos_weight, grad_loss, hyper=hyper)
    grads = _core.operand_vjp(prepared, grad_loss.to(spec.compute_dtype), wanted)
    return tuple(  # type: ignore[return-value]
        None if field not in grads or tensor is None else grads[field].to(tensor.dtype)
        for field, tensor in zip(fields, (target, weight, pos_weight), strict=True)
    )


def _residual_outputs(residuals: SoftmaxResiduals | None, like: Tensor) -> tuple[Tensor, ...]:
    """The softmax residuals as ``Function`` outputs (so that ``setup_context`` can save
    them), an absent one (None: not computed, or not needed for this config) as an empty
    1-d tensor, a shape no residual has (they keep the class axis, or are 0-d)."""
    if residuals is None:
        return ()
    return tuple(like.new_empty((0,)) if r is None else r for r in residuals)


def _saved_residuals(saved: Sequence[Tensor]) -> SoftmaxResiduals | None:
    """The inverse of :func:`_residual_outputs`."""
    if not saved:
        return None
    absent = [t.ndim == 1 and t.shape[0] == 0 for t in saved]
    return SoftmaxResiduals(*(None if a else t for a, t in zip(absent, saved, strict=True)))


class LossFunction(torch.autograd.Function):
    """One loss with the core's closed-form backward.

    Inputs: the spec; the logits, the target and the weights (``weight`` or ``alpha`` and
    ``pos_weight``) as saved for backward (logits and target as the user gave them); the
    logits (in their own dtype) and target already converted by the core's ``prepare``
    step, which forward alone uses; the hyperparameters given as tensors, stacked (None
    where there are none; never differentiated: the caller refuses that). Outputs: the
    loss, then the residuals of the softmax losses (not differentiable).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: LossSpec,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
        pos_weight: Tensor | None,
        compute_logits: Tensor,
        compute_target: Tensor,
        hyper: Tensor | None,
    ) -> tuple[Tensor, ...]:
        prepared, plan = _prepared(
            spec, compute_logits, compute_target, weight, pos_weight, first_order=True, hyper=hyper
        )
        loss, residuals = _native.forward(prepared, plan)
        return (loss, *_residual_outputs(residuals, like=loss))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        spec, logits, target, weight, pos_weight, _, _, hyper = inputs
        residuals = output[1:]
        ctx.mark_non_differentiable(*residuals)
        ctx.save_for_backward(logits, target, weight, pos_weight, hyper, *residuals)
        ctx.spec = spec
        ctx.loss_shape = output[0].shape
        # the residual outputs get no gradient: no zeros materialised for them
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
        if grad_loss is None:
            return (None,) * 8
        spec: LossSpec = ctx.spec
        logits, target, weight, pos_weight, hyper, *saved = ctx.saved_tensors
        operand_grads = _operand_grads(
            spec, ctx, grad_loss, (logits, target, weight, pos_weight, hyper)
        )
        if not ctx.needs_input_grad[1]:
            grad = None
        elif torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable, also through
            # the residuals, which depend on the logits. Its derivative is the core's
            # closed-form Hessian-vector product (finite also for 0 < γ < 1 at p_t = 1).
            grad = function(LossGradient).apply(
                spec, grad_loss, logits, target, weight, pos_weight, hyper
            )
        else:
            prepared, plan = _prepared(
                spec, logits, target, weight, pos_weight, grad_loss, first_order=True, hyper=hyper
            )
            residuals = _saved_residuals(saved)
            grad = _native.vjp(prepared, residuals, grad_loss, plan)
            if grad.dtype != logits.dtype:
                grad = grad.to(logits.dtype)
        return None, grad, *operand_grads, None, None, None


class LossFunctionForwardMode(LossFunction):
    """:class:`LossFunction` with forward-mode AD (``torch.func.jvp``, ``jacfwd``, dual tensors).

    A separate class because ``torch.compile`` does not trace an ``autograd.Function``
    that defines ``jvp``; it is used only outside compilation.
    """

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        LossFunction.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[1:5], inputs[7], *output[1:])
        ctx.set_materialize_grads(False)  # a missing tangent stays None, not zeros

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> tuple[Tensor | None, ...]:
        _, logits_t, *operand_tangents, _, _, hyper_t = tangents
        spec: LossSpec = ctx.spec
        if hyper_t is not None:
            raise NotImplementedError(refusal(", ".join(names(spec.config))))
        logits, target, weight, pos_weight, hyper, *saved = ctx.saved_tensors
        residual_tangents = (None,) * len(saved)
        given = {
            field: t.to(spec.compute_dtype)
            for field, t in zip(_operand_fields(spec), operand_tangents, strict=True)
            if field is not None and t is not None
        }
        if logits_t is None and not given:
            return (None, *residual_tangents)
        prepared, plan = _prepared(spec, logits, target, weight, pos_weight, hyper=hyper)
        tangent = _core.operand_jvp(prepared, given) if given else None
        if logits_t is not None:
            residuals = _saved_residuals(saved)
            unit = _core.vjp(
                prepared,
                residuals,
                _unit_cotangent(spec, ctx.loss_shape, logits),
                plan.kernels(spec.config.family),
            )
            logit_part = second_order.directional_derivative(
                prepared, unit, logits_t.to(spec.compute_dtype)
            )
            tangent = logit_part if tangent is None else tangent + logit_part
        return (tangent, *residual_tangents)


class LossGradient(torch.autograd.Function):
    """The gradient cotangent · ∂loss/∂logits as a differentiable function of both.

    Used by :class:`LossFunction` when a graph is built through its backward. Forward recomputes
    the residuals; backward is ⟨G, v⟩ for the cotangent and cotangent · H·v for the
    logits, both from the core (``second_order``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: LossSpec,
        cotangent: Tensor,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
        pos_weight: Tensor | None,
        hyper: Tensor | None,
    ) -> Tensor:
        prepared, plan = _prepared(spec, logits, target, weight, pos_weight, cotangent, hyper=hyper)
        kernels = plan.kernels(spec.config.family)
        _, residuals = _core.forward(prepared, kernels)
        return _core.vjp(prepared, residuals, cotangent, kernels).to(logits.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        spec, cotangent, logits, target, weight, pos_weight, hyper = inputs
        ctx.save_for_backward(cotangent, logits, target, weight, pos_weight, hyper)
        ctx.spec = spec

    @staticmethod
    def backward(ctx: Any, grad_grad: Tensor | None) -> tuple[Tensor | None, ...]:
        if grad_grad is None:
            return (None,) * 7
        spec: LossSpec = ctx.spec
        cotangent, logits, target, weight, pos_weight, hyper = ctx.saved_tensors
        prepared, plan = _prepared(spec, logits, target, weight, pos_weight, hyper=hyper)
        grad_cotangent = grad_logits = None
        if ctx.needs_input_grad[1]:
            kernels = plan.kernels(spec.config.family)
            _, residuals = _core.forward(prepared, kernels)
            unit = _core.vjp(prepared, residuals, torch.ones_like(cotangent), kernels)
            grad_cotangent = second_order.directional_derivative(
                prepared, unit, grad_grad.to(spec.compute_dtype)
            )
        if ctx.needs_input_grad[2]:
            grad_logits = _hessian_times(spec, prepared, cotangent, grad_grad).to(logits.dtype)
        return None, grad_cotangent, grad_logits, None, None, None, None


class LossGradientForwardMode(LossGradient):
    """:class:`LossGradient` with forward-mode AD (``torch.func.hessian``)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        LossGradient.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[1:])
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, *tangents: Tensor | None) -> Tensor | None:
        _, cotangent_t, logits_t, target_t, weight_t, pos_weight_t, hyper_t = tangents
        spec: LossSpec = ctx.spec
        _refuse_second_order(spec, target_t, weight_t, pos_weight_t)
        if hyper_t is not None:
            raise NotImplementedError(refusal(", ".join(names(spec.config))))
        cotangent, logits, target, weight, pos_weight, hyper = ctx.saved_tensors
        prepared, plan = _prepared(spec, logits, target, weight, pos_weight, hyper=hyper)
        result = None
        if cotangent_t is not None:  # the gradient is linear in the cotangent
            kernels = plan.kernels(spec.config.family)
            _, residuals = _core.forward(prepared, kernels)
            result = _core.vjp(prepared, residuals, cotangent_t, kernels)
        if logits_t is not None:
            curvature = _hessian_times(spec, prepared, cotangent, logits_t)
            result = curvature if result is None else result + curvature
        return None if result is None else result.to(logits.dtype)


_FORWARD_MODE = {LossFunction: LossFunctionForwardMode, LossGradient: LossGradientForwardMode}


for _class in (LossFunction, LossGradient):
    # ``Function.apply`` binds its arguments to ``inspect.signature(forward)`` on every
    # call; a signature stored on the function is returned at once instead of re-parsed.
    _class.forward.__signature__ = inspect.signature(_class.forward)  # type: ignore[union-attr]


def tangents_possible() -> bool:
    """Whether a forward-mode tangent can reach a call made now: a dual level of
    ``torch.autograd.forward_ad`` is open, or a ``torch.func`` transform (``jvp``,
    ``jacfwd``, ``hessian``) is active. A tangent exists only on inputs made inside one."""
    return forward_ad._current_level >= 0 or torch._C._are_functorch_transforms_active()


def function(base: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """`base`, or its forward-mode variant where a tangent can reach the call and nothing is
    compiling (the variant's extra context costs about 40 µs a call: small calls feel it)."""
    if torch.compiler.is_compiling() or not tangents_possible():
        return base
    return _FORWARD_MODE[base]
