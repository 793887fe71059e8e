"""The fused linear head: a softmax loss of ``input @ linear_weight.T + linear_bias``, a chunk
of tokens at a time, with the core's loss and gradient on each chunk.

At no time does more than one chunk of logits (and its gradient, written over it) exist.
For ``"mean"`` and ``"sum"`` the gradients with respect to the input, the projection and
its bias are formed in the forward pass (dlogits_c → dX_c = dlogits_c · W,
dW += dlogits_cᵀ · X_c, accumulated in float32 for 16-bit inputs): three matrix products,
as many as the unfused computation, and backward only scales them by the loss's cotangent.
For ``"none"`` (a cotangent per token) the forward pass keeps nothing beyond its inputs and
backward recomputes each chunk's logits. Every option's math is the core's (:mod:`.._core`):
the whole call is validated by the core's ``prepare`` step (on a stand-in for the logits
with their shape and dtype), which also gives the ``"mean"``'s denominator over the whole
target; each block of a chunk runs the core's forward and vjp through the torch adapter's
plans (:mod:`._plans`, :mod:`._native`). Where the fused Function cannot serve a call
(``torch.func`` transforms, forward-mode AD, gradients for the target or the class weights,
``create_graph=True``) :func:`unfused` computes the same loss through the adapter's ordinary
Function. The public functions and modules are in :mod:`.linear`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._core import Loss, SoftmaxConfig, SoftmaxOperands, prepare_linear
from .._core.linear import (  # noqa: F401  (the rule and its constants, here as before)
    CHUNK_FRACTION,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_ROWS,
    automatic_chunk_size,
)
from . import _native, _plans
from ._autograd import LossFunction, LossSpec, function, tangents_possible
from ._namespace import (
    NO_TORCHSCRIPT,
    XP,
    any_functorch,
    compute_dtype,
    values_readable,
)
from .engine import kernels_for as engine_gives_kernels

Normalizer = Tensor | float | None


BLOCKS_PER_CHUNK = 4
"""In eager execution the core's passes run over this many row blocks of a chunk, each
block's gradient written over its logits: the temporaries of a pass are a block's, not a
chunk's."""


@dataclass(frozen=True)
class LinearSpec:
    """The static part of one fused call (hashable: a compiler guards on it as a constant)."""

    config: SoftmaxConfig
    """The core's config of the whole call (its reduction as given)."""
    chunk_size: int
    needs: tuple[bool, bool, bool]
    """Whether the gradient with respect to input, linear_weight and linear_bias is wanted
    (known when the call is made: requires_grad with grad mode on)."""
    kernels: bool = False
    """Each chunk's loss and gradient by the softmax kernels (:func:`kernels_for`)."""


def kernels_for(x: Tensor) -> bool:
    """Whether the fused head runs its chunks on the softmax kernels: where the engine
    chosen (``multiloss.torch.engine``) gives this input to the kernels (for the dtypes
    they serve: float64 keeps the plans), in eager execution (under a compiler the chunks
    stay on the plans), on real tensors (the row functions launch kernels: a meta tensor
    keeps the plans)."""
    if x.device.type == "meta" or torch.compiler.is_compiling():
        return False
    return engine_gives_kernels(x)


def _logits(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None) -> Tensor:
    """x · Wᵀ (+ b) in one kernel, into `out` where given."""
    if out is None:
        return torch.mm(x, weight.t()) if bias is None else torch.addmm(bias, x, weight.t())
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


_FLOAT32_PRODUCT_DEVICES = ("cuda", "meta")
"""Devices whose 16-bit matrix product can return float32 (``torch.mm(..., out_dtype=)``;
``meta`` too, so that the path can be traced here)."""


def _accumulate_product(total: Tensor, gradient: Tensor, x: Tensor) -> None:
    """total += gradientᵀ · x, `total` in float32 for 16-bit inputs: on CUDA by the 16-bit
    product with a float32 result; on the CPU by a float32 product of the 16-bit factors
    (both as accurate as the unfused 16-bit product, or more: nothing is rounded to 16
    bits before the sum); elsewhere each chunk's 16-bit product, summed in float32."""
    if total.dtype == gradient.dtype:
        total.addmm_(gradient.t(), x)
    elif gradient.device.type in _FLOAT32_PRODUCT_DEVICES:
        total.add_(torch.mm(gradient.t(), x, out_dtype=total.dtype))
    elif gradient.device.type == "cpu":
        total.addmm_(gradient.t().to(total.dtype), x.to(total.dtype))
    else:
        total.add_(torch.mm(gradient.t(), x))


def _blocks(rows: int) -> list[tuple[int, int]]:
    """Row blocks of a chunk for the core's passes: `BLOCKS_PER_CHUNK` of them in eager
    execution, the whole chunk under a compiler (no loop for it to unroll)."""
    if torch.compiler.is_compiling() or rows < 2 * BLOCKS_PER_CHUNK:
        return [(0, rows)]
    step = math.ceil(rows / BLOCKS_PER_CHUNK)
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def _prepared(config: SoftmaxConfig, logits: Tensor, target: Tensor, class_weight: Any) -> Any:
    """The core's ``(xp, config, operands)`` of a block and its plan; 16-bit logits stay
    16-bit where the plan's passes convert them as they go (as in :mod:`._autograd`)."""
    plan = _plans.choose(logits, target, class_weight)
    if plan is _plans.SLAB_PLAN:
        # a block bounds the temporaries already: whole-block passes, a few kernels each
        # (the slab passes' many small ones were 2x slower on a busy 2-core machine)
        plan = _plans.WHOLE_PLAN
    if logits.dtype != compute_dtype(logits) and not _native.takes_16_bit(plan, config, logits):
        logits = logits.to(compute_dtype(logits))
    return (XP, config, SoftmaxOperands(logits, target, class_weight)), plan


def _chunk(
    config: SoftmaxConfig,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    class_weight: Tensor | None,
    cotangent: Tensor | None,
    grads: tuple[Tensor | None, Tensor | None, Tensor | None],
    buffer: Tensor | None,
    kernels: bool = False,
) -> list[Tensor]:
    """One chunk: its logits, the core's loss of each block and, where `cotangent` is
    given, its gradient written over the block's logits; then the chunk's share of the
    gradients `grads` (dX rows written, dW and db accumulated). Returns the blocks' losses.
    The logits go into `buffer` where given (eager execution: one allocation for all the
    chunks, none of the allocator's fragmentation between them); a function of its own so
    that every other buffer of the chunk is freed before the next chunk's logits are made.
    With `kernels` (and a `buffer`) the softmax kernels replace the core's passes."""
    per_token = config.reduction == "none"
    logits = _logits(x, weight, bias, None if buffer is None else buffer[: x.shape[0]])
    if kernels:
        losses = [_kernel_step(config, logits, target, class_weight, cotangent)]
        if cotangent is not None:
            _projection_gradients(logits, x, weight, grads)
        return losses
    blocks = _blocks(x.shape[0])
    losses = []
    for begin, end in blocks:
        block = logits[begin:end]
        prepared, plan = _prepared(config, block, target[begin:end], class_weight)
        loss, residuals = _native.forward(prepared, plan)
        losses.append(loss)
        if cotangent is None:
            continue
        seed = cotangent[begin:end] if per_token else cotangent
        gradient = _native.vjp(prepared, residuals, seed.to(compute_dtype(x)), plan)
        if len(blocks) == 1:
            logits = gradient.to(x.dtype)
        else:  # each block's gradient over its logits: one chunk-sized buffer
            block.copy_(gradient)
        del prepared, residuals, gradient
    if cotangent is None:
        return losses
    _projection_gradients(logits, x, weight, grads)
    return losses


def _projection_gradients(
    gradient: Tensor,
    x: Tensor,
    weight: Tensor,
    grads: tuple[Tensor | None, Tensor | None, Tensor | None],
) -> None:
    """A chunk's share of dX (its rows written), dW and db (accumulated) from the chunk's
    logits' gradient."""
    grad_x, grad_w, grad_b = grads
    if grad_x is not None:
        torch.mm(gradient, weight, out=grad_x)
    if grad_w is not None:
        _accumulate_product(grad_w, gradient, x)
    if grad_b is not None:
        grad_b.add_(torch.sum(gradient, dim=0, dtype=grad_b.dtype))


def _kernel_step(
    config: SoftmaxConfig,
    logits: Tensor,
    target: Tensor,
    class_weight: Tensor | None,
    cotangent: Tensor | None,
) -> Tensor:
    """A chunk on the softmax kernels: one forward pass (the rows' losses, log-sum-exp and
    factor, in float32) and, where `cotangent` is given, one backward pass writing the
    gradient over the chunk's logits (the head's own buffer, read by nothing else).
    Returns the chunk's summed loss (``"sum"``) or its rows' losses (``"none"``)."""
    from ._triton.softmax import row_backward, row_forward

    rows, lse, factor, _ = row_forward(logits, target, class_weight, config=config)
    if cotangent is not None:
        row_backward(
            logits, target, class_weight, lse, factor, cotangent, config=config, out=logits
        )
    return rows if config.reduction == "none" else rows.sum()


def run_chunks(
    spec: LinearSpec,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    class_weight: Tensor | None,
    cotangent: Tensor | None,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The loss of every chunk and, for the wanted `needs`, the cotangent's gradients.

    `x` is (M, D), `target` (M,) class indices or (M, V) probabilities as prepared by the
    core. The chunks are summed (``"mean"``/``"sum"``: the config's reduction becomes
    ``"sum"`` and `cotangent` is the 0-d cotangent of that sum) or concatenated
    (``"none"``: `cotangent` has one entry per token). Returns the summed or per-token loss
    in the compute dtype, then dX (x's dtype), dW and db (float32 for 16-bit weights).
    """
    per_token = spec.config.reduction == "none"
    config = replace(spec.config, axis=1, reduction="none" if per_token else "sum")
    dtype = compute_dtype(x)
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device) if needs[0] else None
    grad_w = None
    if needs[1]:
        grad_w = torch.zeros(weight.shape, dtype=compute_dtype(weight), device=weight.device)
    grad_b = None
    if needs[2] and bias is not None:
        grad_b = torch.zeros(bias.shape, dtype=compute_dtype(bias), device=bias.device)
    seed = cotangent if any(needs) else None
    buffer = None
    if not torch.compiler.is_compiling() and x.shape[0] > 0:
        size = (min(spec.chunk_size, x.shape[0]), weight.shape[0])
        buffer = torch.empty(size, dtype=x.dtype, device=x.device)
    losses = []
    for start in range(0, x.shape[0], spec.chunk_size):
        rows = slice(start, start + spec.chunk_size)
        losses += _chunk(
            config,
            x[rows],
            weight,
            bias,
            target[rows],
            class_weight,
            None if seed is None else seed[rows] if per_token else seed,
            (None if grad_x is None else grad_x[rows], grad_w, grad_b),
            buffer,
            spec.kernels and buffer is not None,
        )
    if per_token:
        loss = torch.cat(losses) if losses else x.new_zeros((0,), dtype=dtype)
    else:
        loss = torch.stack(losses).sum() if losses else x.new_zeros((), dtype=dtype)
    return loss, grad_x, grad_w, grad_b


def unfused(
    spec: LinearSpec,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    class_weight: Tensor | None,
    scale: Tensor | None,
) -> Tensor:
    """The same loss unfused: the whole logits, then the adapter's ordinary autograd
    Function (:class:`._autograd.LossFunction`), which every transform and higher derivative
    supports. In the compute dtype."""
    logits = F.linear(x, weight, bias)
    per_token = spec.config.reduction == "none"
    config = replace(spec.config, axis=1, reduction="none" if per_token else "sum")
    loss_spec = LossSpec(config, compute_dtype(logits), target.dtype)
    outputs = function(LossFunction).apply(
        loss_spec, logits, target, class_weight, None, logits.detach(), target.detach(), None
    )
    loss: Tensor = outputs[0]
    return loss if scale is None else loss * scale


class FusedLinearLoss(torch.autograd.Function):
    """The fused linear head with the core's softmax loss (see the module docstring).

    Inputs: the spec; x (M, D), W (V, D), b (V,) or None as the user gave them; the target
    and class weights as prepared by the core (not differentiated here: the caller runs
    :func:`unfused` where they need a gradient); the 0-d scale of ``"mean"`` (None for
    ``"sum"`` and ``"none"``). Output: the loss in the compute dtype.

    For ``"mean"`` and ``"sum"`` forward forms dX, dW and db, and backward scales them by
    the cotangent, in place (no second copy of dW), the first time; a second backward
    through the same graph (``retain_graph=True``) recomputes them chunk by chunk, as
    ``"none"`` always does with its tokens' cotangents. Where a graph is recorded through
    backward (``create_graph=True``) it differentiates :func:`unfused` instead, whose
    gradient is itself differentiable (the whole logits then exist, in backward only).

    The old ``forward(ctx, ...)`` form, so that the gradients formed in forward can be kept
    on the context and released by the backward that consumes them; ``torch.func``
    transforms never reach this Function (they take :func:`unfused`).
    """

    @staticmethod
    def forward(
        ctx: Any,
        spec: LinearSpec,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        class_weight: Tensor | None,
        scale: Tensor | None,
    ) -> Tensor:
        ctx.spec = spec
        ctx.formed = None
        inputs = (x, weight, bias, target, class_weight, scale)
        if spec.config.reduction == "none":
            ctx.save_for_backward(*inputs)
            loss, _, _, _ = run_chunks(
                spec, x, weight, bias, target, class_weight, None, (False, False, False)
            )
            return loss
        cotangent = scale if scale is not None else x.new_ones((), dtype=compute_dtype(x))
        total, grad_x, grad_w, grad_b = run_chunks(
            spec, x, weight, bias, target, class_weight, cotangent, spec.needs
        )
        formed = (
            grad_x,
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None or bias is None else grad_b.to(bias.dtype),
        )
        if torch.compiler.is_compiling():  # saved as the compiler traces them
            ctx.save_for_backward(*inputs, *formed)
        else:  # kept until a backward consumes them
            ctx.save_for_backward(*inputs)
            ctx.formed = formed
        return total if scale is None else total * scale

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        spec: LinearSpec = ctx.spec
        x, weight, bias, target, class_weight, scale, *saved = ctx.saved_tensors
        inputs = (x, weight, bias)
        needs = (
            bool(ctx.needs_input_grad[1]),
            bool(ctx.needs_input_grad[2]),
            bias is not None and bool(ctx.needs_input_grad[3]),
        )
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            wanted = [t for t, need in zip(inputs, needs, strict=True) if need]
            loss = unfused(spec, x, weight, bias, target, class_weight, scale)
            found = iter(torch.autograd.grad(loss, wanted, grad_loss, create_graph=True))
            return None, *(next(found) if need else None for need in needs), None, None, None
        formed, ctx.formed = ctx.formed, None
        if saved:  # compiled: scaled out of place, the saved tensors stay as they are
            results = [None if g is None else g * grad_loss for g in saved]
        elif formed is not None and all(
            g is not None for g, need in zip(formed, needs, strict=True) if need
        ):
            results = [None if g is None else g.mul_(grad_loss) for g in formed]
        else:  # "none", or a second backward through the graph: each chunk again
            cotangent = grad_loss if scale is None else grad_loss * scale
            _, *recomputed = run_chunks(
                spec, x, weight, bias, target, class_weight, cotangent, needs
            )
            results = list(recomputed)
        grads = [
            None if r is None or not need or like is None else r.to(like.dtype)
            for r, need, like in zip(results, needs, inputs, strict=True)
        ]
        return None, *grads, None, None, None


# ---------------------------------------------------------------------------------------
# Validation


def _check_tensors(input: object, linear_weight: object, linear_bias: object) -> None:
    """What only the torch adapter asks of the projection: tensors, on the input's device
    (shapes and dtypes are the core's to check, with the catalogue's messages)."""
    for name, value in (
        ("input", input),
        ("linear_weight", linear_weight),
        ("linear_bias", linear_bias),
    ):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor; got "
                f"{type(value).__module__}.{type(value).__name__}"
            )
    assert isinstance(input, Tensor)
    for name, value in (("linear_weight", linear_weight), ("linear_bias", linear_bias)):
        if isinstance(value, Tensor) and value.device != input.device:
            raise ValueError(f"{name} is on {value.device}, the input on {input.device}")


def _requires_grad(value: object) -> bool:
    return isinstance(value, Tensor) and value.requires_grad


# ---------------------------------------------------------------------------------------
# One call


def linear_loss(
    loss: Loss,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    options: dict[str, Any],
) -> Tensor:
    """One fused call: prepared by the core (:func:`.._core.prepare_linear`: every check,
    the normaliser folded into the mean's scale, the chunk plan), then run by the fused
    Function, or by :func:`unfused` where it cannot serve (transforms, operand gradients).
    The place where an engine executes a prepared fused-head call."""
    if torch.jit.is_tracing():
        raise NotImplementedError(NO_TORCHSCRIPT)
    _check_tensors(input, linear_weight, linear_bias)
    check_values = values_readable(input, target, options.get(loss.class_vector or ""))
    call = prepare_linear(
        loss, input, linear_weight, target, linear_bias, options, check_values=check_values
    )
    grad = torch.is_grad_enabled()
    spec = LinearSpec(
        config=call.config,
        chunk_size=call.chunk_size,
        needs=(
            grad and input.requires_grad,
            grad and linear_weight.requires_grad,
            grad and linear_bias is not None and linear_bias.requires_grad,
        ),
        kernels=kernels_for(input),
    )
    weights, scale = call.class_weight, call.scale
    args = (spec, call.x, linear_weight, linear_bias, call.target, weights, scale)
    transformed = not torch.compiler.is_compiling() and (
        tangents_possible() or any_functorch(input, linear_weight, linear_bias, target)
    )
    operand_grads = grad and any(map(_requires_grad, (call.target, weights, scale)))
    fused = not (transformed or operand_grads)
    result = FusedLinearLoss.apply(*args) if fused else unfused(*args)
    if call.reduction == "none":
        result = result.reshape(call.batch_shape)
    return result if result.dtype == input.dtype else result.to(input.dtype)
