r"""Vocabulary-parallel losses over `torch.distributed`: the class axis sharded across ranks.

Megatron-LM's tensor-parallel convention: each of the R ranks of a process group holds a
contiguous, equal slice of the C classes, in rank order (rank r the classes
$[rC/R, (r+1)C/R)$), and the same target of *global* class indices. Each rank returns the
same global loss, and its backward pass the gradient with respect to its own slice.
Slices of unequal width are refused, never a silently wrong loss: the first all-reduce
carries each rank's width, so every rank raises the same `ValueError` (CPU tensors), or
returns NaN where values are not read (CUDA, `torch.compile`).

The forward pass makes two `torch.distributed.all_reduce` calls on the group (a MAX of the
row max, then one SUM of a stacked tensor of row sums), the backward pass none; what is
kept between them is O(N) per rank besides the local logits. The math is the core's
(`multiloss._core.vocab_parallel`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._core import LOSSES, Loss
from .._core.vocab_parallel import (
    VocabParallelConfig,
    VocabParallelOperands,
    VocabParallelResiduals,
    prepare_vocab_parallel,
    vocab_parallel_forward,
    vocab_parallel_vjp,
)
from ._namespace import (
    XP,
    check_logits,
    check_target,
    compute_dtype,
    refuse_torchscript,
    values_readable,
)

Weights = Tensor | list[float] | tuple[float, ...] | None


@dataclass(frozen=True)
class _Collectives:
    """`torch.distributed.all_reduce` on one group (in place, on the core's temporaries)."""

    group: Any
    rank: int
    size: int

    def max(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        x = x.contiguous()
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)
        return x

    def sum(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        x = x.contiguous()
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=self.group)
        return x


def _collectives(group: Any) -> _Collectives:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "the vocabulary-parallel losses need torch.distributed initialised "
            "(torch.distributed.init_process_group), with the ranks that share the class "
            "axis in `group` (None: the default group)"
        )
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of `group`")
    return _Collectives(group, rank, dist.get_world_size(group))


@dataclass(frozen=True)
class _Spec:
    config: VocabParallelConfig
    collectives: _Collectives
    compute_dtype: torch.dtype
    kernels: bool = False
    """The shard's row statistics by the softmax kernels (:func:`_kernel_partials`)."""


def kernels_for(logits: Tensor, config: VocabParallelConfig) -> bool:
    """Whether the forward pass reads the shard with the kernels' one-pass row statistics:
    2-d logits with the classes last, no label smoothing, the dtypes the kernels serve,
    where the fused head's rule (the engine's choice, eager execution) gives them."""
    from ._linear import kernels_for as engine_gives_kernels

    simple = logits.ndim == 2 and config.axis == 1 and not config.label_smoothing
    return simple and engine_gives_kernels(logits)


def _kernel_partials(logits: Tensor, target: Tensor, offset: Any) -> tuple[Tensor, Tensor, Tensor]:
    """The core's `partials` by the kernels' ``row_partials``: one read of the shard."""
    from ._triton.softmax import row_partials

    row_max, sum_exp, target_logit = row_partials(logits, target.to(torch.int64), int(offset))
    return (
        row_max.to(logits.dtype)[:, None],
        sum_exp.to(logits.dtype)[:, None],
        target_logit.to(logits.dtype)[:, None],
    )


def _outputs(residuals: VocabParallelResiduals, like: Tensor) -> tuple[Tensor, ...]:
    """The residuals as Function outputs, an absent one (None) as an empty 1-d tensor (a
    shape no residual has: they keep the class axis, or are 0-d)."""
    return tuple(like.new_empty((0,)) if r is None else r for r in residuals)


def _residuals(saved: tuple[Tensor, ...]) -> VocabParallelResiduals:
    return VocabParallelResiduals(*(None if t.ndim == 1 and t.shape[0] == 0 else t for t in saved))


class _VocabParallelLoss(torch.autograd.Function):
    """One vocabulary-parallel loss: forward with the core's two all-reduces, backward
    with the core's closed form and no collective. Inputs: the spec, the local logits as
    given (saved for backward), the same in the compute dtype (forward reads those), the
    class indices and the class weight. Outputs: the loss, then the residuals."""

    @staticmethod
    def forward(
        spec: _Spec,
        logits: Tensor,
        compute_logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
    ) -> tuple[Tensor, ...]:
        operands = VocabParallelOperands(compute_logits, target, weight)
        partials = _kernel_partials if spec.kernels else None
        loss, residuals = vocab_parallel_forward(
            XP, spec.config, operands, spec.collectives, partials
        )
        return (loss, *_outputs(residuals, like=loss))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        spec, logits, _, target, weight = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(logits, target, weight, *output[1:])
        ctx.spec = spec
        ctx.set_materialize_grads(False)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
        if grad_loss is None or not ctx.needs_input_grad[1]:
            return (None,) * 5
        spec: _Spec = ctx.spec
        logits, target, weight, *saved = ctx.saved_tensors
        operands = VocabParallelOperands(logits.to(spec.compute_dtype), target, weight)
        grad = vocab_parallel_vjp(
            XP, spec.config, operands, _residuals(tuple(saved)), grad_loss.to(spec.compute_dtype)
        )
        return None, grad.to(logits.dtype), None, None, None


def _refuse_weight_gradient(name: str, weight: object) -> None:
    if isinstance(weight, Tensor) and weight.requires_grad and torch.is_grad_enabled():
        raise NotImplementedError(
            f"the vocabulary-parallel losses give no gradient with respect to {name}: its "
            f"classes are spread over the ranks, and so would be its gradient; pass "
            f"{name}.detach() (or a tensor that does not require grad)"
        )


def _run(loss: Loss, logits: Tensor, target: Tensor, group: Any, options: dict[str, Any]) -> Tensor:
    """One vocabulary-parallel call: prepared by the core (:func:`prepare_vocab_parallel`),
    then run by the autograd Function with this group's collectives: the place where an
    engine executes a prepared vocabulary-parallel call."""
    check_logits(logits)
    check_target(target)
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        raise NotImplementedError("the vocabulary-parallel losses do not support TorchScript")
    name = loss.class_vector or "weight"
    _refuse_weight_gradient(name, options[name])
    collectives = _collectives(group)
    check_values = values_readable(logits, target, options[name], options["normalizer"])
    _, config, operands, scale = prepare_vocab_parallel(
        loss, logits, target, size=collectives.size, check_values=check_values, **options
    )
    config = replace(config, shards_checked=check_values)  # unequal slices: raise, or NaN
    spec = _Spec(config, collectives, compute_dtype(logits), kernels_for(logits, config))
    outputs = _VocabParallelLoss.apply(
        spec, logits, operands.logits.detach(), operands.target, operands.class_weight
    )
    result: Tensor = outputs[0]
    if scale is not None:  # the normaliser folded into the mean's scale
        result = result * scale
    return result if result.dtype == logits.dtype else result.to(logits.dtype)


def vocab_parallel_cross_entropy(
    local_logits: Tensor,
    target: Tensor,
    *,
    group: Any = None,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Cross-entropy over classes sharded across the ranks of `group` (Megatron-LM).

    Rank r of the R ranks of `group` passes its slice of the logits, the classes
    $[rC_l, (r+1)C_l)$ with $C_l$ = `local_logits.shape[axis]` and $C = R\,C_l$, and the
    same target of global class indices on every rank. The loss is that of
    [`cross_entropy`][multiloss.torch.cross_entropy] on the whole logits (PyTorch's
    semantics, $\varepsilon/C$ label smoothing with the global C):

    $$
    L_i = -(1-\varepsilon)\, w_{t_i} \log p_{t_i}
          - \frac{\varepsilon}{C} \sum_{k} w_k \log p_k
          + \lambda\, \omega_i \Big(\log \sum_k e^{z_k}\Big)^2
    $$

    with $\omega_i = w_{t_i}$ (1 without `weight`), the same value on every rank; the
    gradient is that of the local slice.

    Collectives: two `torch.distributed.all_reduce` calls on `group` in the forward
    pass, a MAX of the row max and one SUM of a stacked tensor of row sums
    ($\sum_k e^{z_k - m}$, the target logit, and where needed $w_t$, $\sum_k w_k z_k$
    and $\sum_k w_k$); none in the backward pass, which keeps the row max, log-sum-exp
    and target log-probability (O(N) per rank). Nothing is read back to the host on the
    way (class indices and weights are checked for CPU tensors only; on a GPU an
    out-of-range index gives NaN for its element). 16-bit logits are computed in
    float32; loss and gradient come back in the logits' dtype.

    Args:
        local_logits: this rank's slice of the logits, classes along `axis`, any
            floating dtype.
        target: global class indices in $[0, C)$ (or `ignore_index`), of any integer
            dtype, the logits' shape without the class axis; the same on every rank.
            Probability targets are not offered (TypeError).
        group: the process group of the ranks that share the class axis (the
            tensor-parallel group); None is the default group.
        axis: the class axis, -1 (the last, Megatron's `[s, b, v/R]`) by default.
        weight: per-class weights, either this rank's slice (length $C_l$) or the whole
            vector (length $C$), told apart by length (the same where R = 1). A tensor
            that requires grad is refused (NotImplementedError): no gradient with
            respect to the weight is provided.
        ignore_index: class indices equal to it contribute nothing and are not counted.
        reduction: `"mean"` ($\sum_i w_{t_i} L_i / \sum_i w_{t_i}$ over the counted
            elements; a mean over nothing is 0.0), `"sum"` or `"none"`.
        label_smoothing: ε in [0, 1].
        z_loss: λ ≥ 0 of the z-loss.
        normalizer: a number or 0-d tensor (only with `"mean"`): the sum is divided by
            it instead of by this call's own denominator (a data-parallel batch's global
            count, see `multiloss._core.count_targets`); differentiable as a tensor.

    Returns:
        The global loss, in the logits' dtype, the same on every rank: 0-d for `"mean"`
            and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: logits that are not a floating tensor; a target that is not of
            integer dtype; a hyperparameter of the wrong type.
        ValueError: shapes that do not match, a weight of neither length, a hyperparameter
            out of range; for CPU tensors a class index outside $[0, C)$ or a negative
            weight.
        NotImplementedError: a weight that requires grad; TorchScript.
        RuntimeError: `torch.distributed` is not initialised.

    Examples:
        A single-process gloo group (world size 1, every class local), against the
        unsharded loss:

        >>> import torch, torch.distributed as dist
        >>> from multiloss.torch import cross_entropy
        >>> from multiloss.torch.distributed import vocab_parallel_cross_entropy
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
        >>> target = torch.tensor([0, 2])
        >>> loss = vocab_parallel_cross_entropy(logits, target, label_smoothing=0.1)
        >>> bool(torch.isclose(loss, cross_entropy(logits, target, label_smoothing=0.1)))
        True
        >>> loss.backward()
        >>> logits.grad.shape
        torch.Size([2, 3])
        >>> dist.destroy_process_group()

        On R ranks each passes its slice, e.g. with Megatron's tensor-parallel group:
        `vocab_parallel_cross_entropy(logits[..., r*Cl:(r+1)*Cl], target, group=tp_group)`.
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "normalizer": normalizer,
    }
    return _run(LOSSES["cross_entropy"], local_logits, target, group, options)


def vocab_parallel_focal_loss(
    local_logits: Tensor,
    target: Tensor,
    *,
    group: Any = None,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Softmax focal loss over classes sharded across the ranks of `group`.

    The loss of [`focal_loss`][multiloss.torch.focal_loss] on the whole logits, for
    class-index targets, from each rank's slice as in
    [`vocab_parallel_cross_entropy`][multiloss.torch.distributed.vocab_parallel_cross_entropy]:

    $$
    L_i = -\alpha_{t_i} (1 - p_{t_i})^\gamma \log p_{t_i}
          + \lambda \Big(\log \sum_k e^{z_k}\Big)^2
    $$

    and its gradient $\alpha_t A_t (p - \mathrm{onehot}_t)$ on the local slice,
    $A = u^\gamma (1 - \gamma p \ell / u)$, $u = 1 - p_t$. Collectives: the same two
    all-reduces in the forward pass (the focal term needs only $p_t$), none in the
    backward pass.

    Args:
        local_logits: as in `vocab_parallel_cross_entropy`.
        target: as there.
        group: as there.
        axis: as there.
        gamma: focusing parameter γ ≥ 0 (0 with no alpha is cross-entropy).
        alpha: None; C per-class weights (the whole vector, length $C$, or this rank's
            slice, length $C_l$); or a scalar α in [0, 1], which weights class 0 (on rank
            0) by 1-α and every other class by α. No gradient with respect to it.
        ignore_index: as there.
        reduction: `"mean"` divides by the number of counted elements (not by Σα);
            `"sum"`; `"none"`.
        label_smoothing: only 0: with the focal term the smoothed loss is not linear in
            the log-sum-exp, so it would need a third all-reduce in the forward pass and
            a collective in the backward pass; anything else raises NotImplementedError.
        z_loss: λ ≥ 0 of the z-loss, $\omega_i = 1$ (alpha does not weight it).
        normalizer: as there.

    Returns:
        The global loss, in the logits' dtype, the same on every rank.

    Raises:
        TypeError: as there.
        ValueError: as there.
        NotImplementedError: `label_smoothing` > 0; an `alpha` tensor that requires grad.
        RuntimeError: `torch.distributed` is not initialised.

    Examples:
        >>> import torch, torch.distributed as dist
        >>> from multiloss.torch import focal_loss
        >>> from multiloss.torch.distributed import vocab_parallel_focal_loss
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> loss = vocab_parallel_focal_loss(logits, target, gamma=2.0, alpha=0.25)
        >>> bool(torch.isclose(loss, focal_loss(logits, target, gamma=2.0, alpha=0.25)))
        True
        >>> dist.destroy_process_group()
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "normalizer": normalizer,
    }
    return _run(LOSSES["focal_loss"], local_logits, target, group, options)


def vocab_parallel_poly_loss(
    local_logits: Tensor,
    target: Tensor,
    *,
    group: Any = None,
    axis: int = -1,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""PolyLoss (Poly-1) over classes sharded across the ranks of `group`.

    The loss of [`poly_loss`][multiloss.torch.poly_loss] on the whole logits, for
    class-index targets, from each rank's slice as in
    [`vocab_parallel_focal_loss`][multiloss.torch.distributed.vocab_parallel_focal_loss]
    (the same two all-reduces in the forward pass, none in the backward pass: the term
    needs only $p_t$):

    $$
    L_i = \alpha_{t_i} \left( -(1 - p_{t_i})^\gamma \log p_{t_i}
          + \varepsilon (1 - p_{t_i})^{\gamma + 1} \right)
          + \lambda \Big(\log \sum_k e^{z_k}\Big)^2
    $$

    Args:
        local_logits: as in `vocab_parallel_cross_entropy`.
        target: as there.
        group: as there.
        axis: as there.
        epsilon: ε ≥ -1, as in [`poly_loss`][multiloss.torch.poly_loss].
        gamma: focusing parameter γ ≥ 0.
        alpha: as in `vocab_parallel_focal_loss`.
        ignore_index: as there.
        reduction: as in `vocab_parallel_focal_loss`.
        label_smoothing: only 0, as in `vocab_parallel_focal_loss`.
        z_loss: as in `vocab_parallel_focal_loss`.
        normalizer: as there.

    Returns:
        The global loss, in the logits' dtype, the same on every rank.

    Raises:
        TypeError: as there.
        ValueError: as there; ε < -1.
        NotImplementedError: `label_smoothing` > 0; an `alpha` tensor that requires grad.
        RuntimeError: `torch.distributed` is not initialised.

    Examples:
        >>> import torch, torch.distributed as dist
        >>> from multiloss.torch import poly_loss
        >>> from multiloss.torch.distributed import vocab_parallel_poly_loss
        >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> loss = vocab_parallel_poly_loss(logits, target, epsilon=1.0)
        >>> bool(torch.isclose(loss, poly_loss(logits, target, epsilon=1.0)))
        True
        >>> dist.destroy_process_group()
    """
    options = {
        "axis": axis,
        "epsilon": epsilon,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "normalizer": normalizer,
    }
    return _run(LOSSES["poly_loss"], local_logits, target, group, options)


refuse_torchscript(
    vocab_parallel_cross_entropy, vocab_parallel_focal_loss, vocab_parallel_poly_loss
)

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_focal_loss", "vocab_parallel_poly_loss"]
