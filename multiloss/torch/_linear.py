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

import importlib
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _core
from .._core import SoftmaxConfig, SoftmaxOperands, _checks
from .._core._reduce import mean_scale
from . import _native, _plans
from ._autograd import _Loss, _Spec, _tangents_possible, function
from ._namespace import XP, any_functorch, compute_dtype
from .functional import _NO_TORCHSCRIPT, _is_tracing, _values_checkable

Normalizer = Tensor | float | None

MAX_CHUNK_BYTES = 32 << 20
"""The float32 logits of one automatic chunk take at most this much (32 MiB)."""
CHUNK_FRACTION = 16
"""… and at most 1/16 of the whole call's logits, …"""
MIN_CHUNK_ROWS = 192
"""… but at least this many tokens, or all of them: each chunk's matrix products read the
whole projection, which fewer tokens do not amortise (measured at N=2048, D=512, V=65536,
2 threads: 1.04-1.09x the unfused time with 128 tokens a chunk, 0.92-0.94x with 192,
0.91-0.95x with 256, whose chunk alone would be 1/8 of the logits)."""
BLOCKS_PER_CHUNK = 4
"""In eager execution the core's passes run over this many row blocks of a chunk, each
block's gradient written over its logits: the temporaries of a pass are a block's, not a
chunk's."""


def automatic_chunk_size(tokens: int, num_classes: int) -> int:
    """The tokens per chunk when `chunk_size` is None: the largest count whose float32
    logits take at most 1/`CHUNK_FRACTION` of the whole call's and `MAX_CHUNK_BYTES`, but
    at least `MIN_CHUNK_ROWS` (or every token, if there are fewer)."""
    by_fraction = math.ceil(tokens / CHUNK_FRACTION)
    by_bytes = MAX_CHUNK_BYTES // (4 * max(num_classes, 1))
    rows = max(min(by_fraction, by_bytes), MIN_CHUNK_ROWS)
    return max(1, min(rows, tokens))


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


KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
"""The logits' dtypes the softmax kernels serve (float64 stays on the eager plans)."""


def kernels_for(x: Tensor) -> bool:
    """Whether the fused head runs its chunks on the softmax kernels: where the engine
    chosen (``multiloss.torch.engine``) gives this input to the kernels, for the dtypes
    they serve, in eager execution (under a compiler the chunks stay on the plans), on
    real tensors (the row functions launch kernels: a meta tensor keeps the plans)."""
    if x.dtype not in KERNEL_DTYPES or x.device.type == "meta" or torch.compiler.is_compiling():
        return False
    try:  # the module (the package's attribute of that name is the context manager)
        engine = importlib.import_module(".engine", __package__)
    except ImportError:  # no engine module: today's plans only
        return False
    choose = getattr(engine, "kernels_for", None)
    return bool(choose(x)) if choose is not None else False


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
    Function (:class:`._autograd._Loss`), which every transform and higher derivative
    supports. In the compute dtype."""
    logits = F.linear(x, weight, bias)
    per_token = spec.config.reduction == "none"
    config = replace(spec.config, axis=1, reduction="none" if per_token else "sum")
    loss_spec = _Spec(config, compute_dtype(logits), target.dtype)
    outputs = function(_Loss).apply(
        loss_spec, logits, target, class_weight, None, logits.detach(), target.detach()
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


def _check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor; got {type(value).__module__}.{type(value).__name__}"
        )
    if not value.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype; got {value.dtype}")
    return value


def _check_projection(input: object, linear_weight: object, linear_bias: object) -> None:
    """The shapes, dtypes and devices of the projection (the loss's own arguments are the
    core's to check)."""
    x = _check_tensor("input", input)
    weight = _check_tensor("linear_weight", linear_weight)
    if x.ndim == 0:
        raise ValueError("input must have a feature axis, shape (..., in_features); got 0-d")
    if weight.ndim != 2:
        raise ValueError(
            f"linear_weight must be 2-d, (num_classes, in_features) as the weight of "
            f"torch.nn.Linear; got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(
            f"linear_weight must have in_features = input.shape[-1] = {x.shape[-1]} columns; "
            f"got linear_weight of shape {tuple(weight.shape)} for input of shape "
            f"{tuple(x.shape)}"
        )
    if weight.shape[0] == 0:
        raise ValueError("linear_weight must have at least one row (one per class); got 0")
    tensors = {"linear_weight": weight}
    if linear_bias is not None:
        bias = _check_tensor("linear_bias", linear_bias)
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(
                f"linear_bias must have shape (num_classes,) = ({weight.shape[0]},), one "
                f"entry per row of linear_weight; got {tuple(bias.shape)}"
            )
        tensors["linear_bias"] = bias
    for name, tensor in tensors.items():
        if tensor.dtype != x.dtype:
            raise TypeError(f"{name} must have the input's dtype {x.dtype}; got {tensor.dtype}")
        if tensor.device != x.device:
            raise ValueError(f"{name} is on {tensor.device}, the input on {x.device}")


def _requires_grad(value: object) -> bool:
    return isinstance(value, Tensor) and value.requires_grad


# ---------------------------------------------------------------------------------------
# One call


def linear_loss(
    prepare: Any,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    class_weight: object,
    normalizer: Normalizer,
    chunk_size: object,
    options: dict[str, Any],
) -> Tensor:
    """Validate (the projection here, the loss by the core's `prepare` over the whole
    target), then run the fused Function, or :func:`.unfused` where it cannot."""
    if torch.jit.is_tracing():
        raise NotImplementedError(_NO_TORCHSCRIPT)
    _check_projection(input, linear_weight, linear_bias)
    chunk = _checks.check_chunk_size(chunk_size)
    num_classes, features = linear_weight.shape
    batch_shape = tuple(input.shape[:-1])
    tracing = _is_tracing()
    check_values = not tracing and _values_checkable(input, target, class_weight)
    # The logits' shape and dtype without their values: the core validates the target and
    # the options against them, and counts the mean's denominator over the whole target.
    logits_like = input.new_empty(()).expand(*batch_shape, num_classes)
    prepared = prepare(
        logits_like,
        target,
        axis=-1,
        check_values=check_values,
        convert_logits=False,
        cache_static=not tracing,
        **options,
    )
    _, config, operands = prepared
    dtype = compute_dtype(input)
    scale = None
    if normalizer is not None:
        like = input.new_empty((), dtype=dtype)
        given = _checks.check_normalizer(
            XP, normalizer, config.reduction, like, check_values=check_values
        )
        scale = mean_scale(XP, given)
    elif config.reduction == "mean":
        scale = mean_scale(XP, _core.mean_denominator(prepared))
    tokens = math.prod(batch_shape)
    x = input.reshape(tokens, features)
    flat_target = operands.target.reshape((tokens, num_classes) if not config.hard_target else -1)
    if chunk is None:
        chunk = automatic_chunk_size(tokens, num_classes)
    grad = torch.is_grad_enabled()
    spec = LinearSpec(
        config=config,
        chunk_size=max(1, min(chunk, tokens)),
        needs=(
            grad and input.requires_grad,
            grad and linear_weight.requires_grad,
            grad and linear_bias is not None and linear_bias.requires_grad,
        ),
        kernels=kernels_for(input),
    )
    weights = operands.class_weight
    args = (spec, x, linear_weight, linear_bias, flat_target, weights, scale)
    transformed = not torch.compiler.is_compiling() and (
        _tangents_possible() or any_functorch(input, linear_weight, linear_bias, target)
    )
    operand_grads = grad and any(map(_requires_grad, (flat_target, weights, scale)))
    fused = not (transformed or operand_grads)
    loss = FusedLinearLoss.apply(*args) if fused else unfused(*args)
    if config.reduction == "none":
        loss = loss.reshape(batch_shape)
    return loss if loss.dtype == input.dtype else loss.to(input.dtype)
