"""The functional API of [`multiloss.torch`][multiloss.torch]: validation, then one autograd
Function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._core import (
    LOSSES,
    Loss,
    SoftmaxConfig,
    apply_normalizer,
    hyper,
    prepare_call,
    split_normalizer,
)
from .._core.element_options import folds_target
from ._autograd import LossFunction, LossSpec, function
from ._namespace import (
    NO_TORCHSCRIPT,
    XP,
    all_concrete,
    check_logits,
    check_target,
    compute_dtype,
    is_tracing,
    refuse_torchscript,
)
from .engine import kernel_loss

Weights = Tensor | Sequence[float] | None


def run_loss(loss: Loss, logits: Tensor, target: Tensor, options: dict[str, Any]) -> Tensor:
    """Validate (the core's `prepare_call` of the loss's record), then run the chosen
    engine (`_run_engine`)."""
    if torch.jit.is_tracing():
        raise NotImplementedError(NO_TORCHSCRIPT)
    check_logits(logits)
    check_target(target)
    if loss.has_class_axis and options["axis"] is None:
        # PyTorch's convention: classes on axis 1 of (N, C, d1..dk), on axis 0 of (C,).
        options["axis"] = 0 if logits.ndim == 1 else loss.class_axis["torch"]
    normalizer = split_normalizer(options)
    weights = [options[name] for name in loss.weights]
    tracing = is_tracing()
    check_values = not tracing and all_concrete(logits, target, *weights)
    _, config, operands = prepare_call(
        loss,
        logits,
        target,
        options,
        check_values=check_values,
        convert_logits=False,
        cache_static=not tracing,
    )
    if not isinstance(config, SoftmaxConfig) and folds_target(
        options.get("ignore_index"), options.get("label_smoothing")
    ):
        # the element-wise losses' target as prepared (ignore_index and label smoothing
        # folded in), whose gradient reaches the user's target through autograd
        target = operands.target
    result = _run_engine(config, logits, target, operands, weights, normalizer is None)
    if normalizer is not None:
        checkable = not tracing and all_concrete(normalizer)
        result = apply_normalizer(XP, result, normalizer, check_values=checkable)
    return result if result.dtype == logits.dtype else result.to(logits.dtype)


def _run_engine(
    config: Any,
    logits: Tensor,
    target: Tensor,
    operands: Any,
    weights: list[Any],
    keep_dtype: bool,
) -> Tensor:
    """The engine hook: the Triton kernels where the engine chosen (`engine`) runs them
    (the loss in the logits' dtype with `keep_dtype`), else the eager plans' autograd
    Function (the loss in the compute dtype)."""
    kernel_result = kernel_loss(
        config, logits, operands, (logits, target, *weights), keep_dtype=keep_dtype
    )
    if kernel_result is not None:
        return kernel_result
    weight, pos_weight = getattr(operands, "weight", None), getattr(operands, "pos_weight", None)
    if weight is None:
        weight = getattr(operands, "class_weight", None)
    spec = LossSpec(config, compute_dtype(logits), operands.target.dtype)
    outputs = function(LossFunction).apply(
        spec,
        logits,
        target,
        weight,
        pos_weight,
        operands.logits.detach(),
        operands.target.detach(),
        _stacked_hyperparameters(config, operands.hyper),
    )
    result: Tensor = outputs[0]
    return result


def _stacked_hyperparameters(config: Any, arrays: tuple[Tensor, ...]) -> Tensor | None:
    """The hyperparameters given as tensors, stacked into one input of the autograd Function
    (None where there are none). A derivative with respect to one is refused by name
    (docs/semantics.md, Schedules): a tensor that requires grad under grad mode."""
    if not arrays:
        return None
    if torch.is_grad_enabled():
        for name, array in zip(hyper.names(config), arrays, strict=True):
            if array.requires_grad:
                raise NotImplementedError(hyper.refusal(name))
    return torch.stack(arrays)


# ---------------------------------------------------------------------------------------
# The losses


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Tensor = 0.0,
    z_loss: float | Tensor = 0.0,
    softcap: float | Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Softmax cross-entropy, with the semantics of `torch.nn.functional.cross_entropy`.

    Per element, with ℓ = log_softmax(z) along `axis` and q the target distribution (the
    one-hot of a class index, or the given probabilities; label smoothing ε makes it
    $(1-\varepsilon)\,q + \varepsilon/C$):

    $$
    L = -\sum_k q_k \, w_k \, \log p_k
    $$

    Args:
        logits: `(N, C, d1..dk)` or unbatched `(C,)` unnormalised scores, any floating
            dtype (16-bit is computed in float32 and returned in its own dtype).
        target: class indices of any integer dtype, shaped like `logits` without the class
            axis, or class probabilities (floating, shaped like `logits`).
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`,
            0 for an unbatched `(C,)` input.
        weight: per-class weights w, a length-C tensor or sequence; None weights every
            class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted.
        reduction: `"mean"` ($\sum w_{y_i} \ell_i / \sum w_{y_i}$ over counted elements for
            class indices, divided by the element count for probabilities), `"sum"` or
            `"none"` (per element, class axis removed). A mean over nothing is 0.0 with
            a zero gradient, where PyTorch gives NaN.
        label_smoothing: ε in [0, 1]. A 0-d tensor too, for a schedule without
            recompiling ([Schedules][schedules]); so may `z_loss` and `softcap` be.
        z_loss: λ ≥ 0 of the z-loss (PaLM; Liger-Kernel's `lse_square_scale`): each
            counted element adds $\lambda\,\omega_i\,(\log\sum_k e^{z_k})^2$, with
            $\omega_i = w_{y_i}$ for class indices with `weight`, 1 otherwise; it enters
            the mean like the element's own loss.
        softcap: c > 0 of logit soft-capping (Gemma 2): the logits become
            $c \tanh(z / c)$ before anything else, and the gradient carries
            $1 - \tanh^2(z / c)$; None (the default) leaves them as they are.
        normalizer: for `"mean"` only: divide the sum by this number (0-d; for
            example the all-reduced [`count_targets`][multiloss.torch.count_targets] of every
            micro-batch and rank) instead of the call's own denominator, so that the
            parts of a batch add up to the whole batch's mean ([Global
            normalisation][global-normalisation]); 0 gives 0. None (the default): the
            call's own denominator.

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element (class
            axis removed) for `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`,
            float or bool class indices, a hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter (the full list is under
            [Bad input][bad-input]); a wrong value (a class index out of range, a negative
            weight) only where values are checked: CPU tensors, nothing tracing.
        NotImplementedError: under `torch.jit.trace`: TorchScript is not supported (use
            `torch.compile`).

    Examples:
        >>> import torch
        >>> from multiloss.torch import cross_entropy
        >>> logits = torch.zeros(1, 2)
        >>> round(cross_entropy(logits, torch.tensor([1])).item(), 6)  # log 2
        0.693147
    """
    options = {
        "axis": axis,
        "weight": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["cross_entropy"], logits, target, options)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    gamma: float | Tensor = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Tensor = 0.0,
    z_loss: float | Tensor = 0.0,
    softcap: float | Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    $$
    L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k
    $$

    For a class-index target t this is $-\alpha_t (1-p_t)^\gamma \log p_t$. γ = 0 with no
    alpha is exactly [`cross_entropy`][multiloss.torch.cross_entropy]. The gradient is the
    closed form $p_k \sum_j c_j A_j - c_k A_k$ with $A = u^\gamma (1 - \gamma p \ell / u)$,
    $u = 1 - p$: no negative power of u, so it is finite for 0 < γ < 1 at $p_t = 1$.

    Args:
        logits: `(N, C, d1..dk)` or unbatched `(C,)` unnormalised scores, any floating
            dtype (16-bit is computed in float32 and returned in its own dtype).
        target: class indices of any integer dtype, shaped like `logits` without the class
            axis, or class probabilities (floating, shaped like `logits`).
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`,
            0 for an unbatched `(C,)` input.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted.
        label_smoothing: ε in [0, 1]: the target distribution becomes
            $(1-\varepsilon)\,q + \varepsilon/C$.
        z_loss: λ ≥ 0 of PaLM's z-loss: each counted element adds
            $\lambda\,(\log\sum_k e^{z_k})^2$ (alpha does not weight it).
        softcap: c > 0 of Gemma 2's logit soft-capping: the logits become
            $c \tanh(z / c)$ before anything else; None (the default) leaves them as
            they are.
        gamma: focusing parameter γ ≥ 0; a 0-d tensor too, for a schedule without
            recompiling ([Schedules][schedules]), as may every float option be.
        alpha: None (no weighting); C per-class weights (a tensor or sequence); or a scalar
            α in [0, 1] that weights class 0 (background) by 1-α and every other class by
            α (RetinaNet, kornia, MONAI).
        reduction: `"mean"` divides by the number of counted (not ignored) elements, not
            by the sum of the α; `"sum"`; `"none"`. A mean over nothing is 0.0.
        normalizer: for `"mean"` only: divide the sum by this number (0-d) instead of the
            call's own denominator, for gradient accumulation and data parallel (see
            [`cross_entropy`][multiloss.torch.cross_entropy]); None: the call's own.

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element (class
            axis removed) for `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`,
            float or bool class indices, a hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter (the full list is under
            [Bad input][bad-input]); a wrong value (a class index out of range, a negative
            weight) only where values are checked: CPU tensors, nothing tracing.
        NotImplementedError: under `torch.jit.trace`: TorchScript is not supported (use
            `torch.compile`).

    References:
        Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
        ICCV 2017, [arXiv:1708.02002](https://arxiv.org/abs/1708.02002).

    Examples:
        >>> import math, torch
        >>> from multiloss.torch import focal_loss
        >>> logits = torch.log(torch.tensor([[0.9, 0.1]], dtype=torch.float64))
        >>> loss = focal_loss(logits, torch.tensor([0]), gamma=2.0)
        >>> math.isclose(loss.item(), -(0.1**2) * math.log(0.9))
        True
    """
    options = {
        "axis": axis,
        "gamma": gamma,
        "alpha": alpha,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
        "z_loss": z_loss,
        "softcap": softcap,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["focal_loss"], logits, target, options)


def poly_loss(
    logits: Tensor,
    target: Tensor,
    *,
    axis: int | None = None,
    epsilon: float | Tensor = 2.0,
    gamma: float | Tensor = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Tensor = 0.0,
    z_loss: float | Tensor = 0.0,
    softcap: float | Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""PolyLoss, Poly-1 (Leng et al., ICLR 2022): focal loss plus ε · (1 - p)^(γ+1).

    $$
    L = \sum_k q_k \, \alpha_k \left( -(1 - p_k)^\gamma \log p_k
        + \varepsilon \, (1 - p_k)^{\gamma + 1} \right)
    $$

    γ = 0 is cross-entropy plus $\varepsilon (1 - p_t)$ (optax's
    `poly_loss_cross_entropy` for probability targets); γ > 0 the Poly-1 focal form.

    Args:
        logits: `(N, C, d1..dk)` or unbatched `(C,)` unnormalised scores, any floating
            dtype (16-bit is computed in float32 and returned in its own dtype).
        target: class indices of any integer dtype, shaped like `logits` without the class
            axis, or class probabilities (floating, shaped like `logits`).
        axis: the class axis; None (the default) follows PyTorch: 1 for `(N, C, ...)`,
            0 for an unbatched `(C,)` input.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted.
        label_smoothing: ε in [0, 1]: the target distribution becomes
            $(1-\varepsilon)\,q + \varepsilon/C$.
        z_loss: λ ≥ 0 of PaLM's z-loss: each counted element adds
            $\lambda\,(\log\sum_k e^{z_k})^2$ (alpha does not weight it).
        softcap: c > 0 of Gemma 2's logit soft-capping: the logits become
            $c \tanh(z / c)$ before anything else; None (the default) leaves them as
            they are.
        epsilon: ε ≥ -1 (the loss stays ≥ 0; a 0-d tensor too, as may every float
            option be: [Schedules][schedules]); the default 2.0 is the paper's ImageNet
            value and optax's default (the paper uses -1 for detection).
        gamma: focusing parameter γ ≥ 0 (0: cross-entropy plus ε (1 − p_t)).
        alpha: None (no weighting); C per-class weights; or a scalar α in [0, 1] that
            weights class 0 (background) by 1-α and every other class by α.
        reduction: `"mean"` divides by the number of counted (not ignored) elements;
            `"sum"`; `"none"`. A mean over nothing is 0.0.
        normalizer: for `"mean"` only: divide the sum by this number (0-d) instead of the
            call's own denominator, for gradient accumulation and data parallel (see
            [`cross_entropy`][multiloss.torch.cross_entropy]); None: the call's own.

    Returns:
        The loss, in the logits' dtype, as for [`focal_loss`][multiloss.torch.focal_loss].

    Raises:
        TypeError: as for [`focal_loss`][multiloss.torch.focal_loss].
        ValueError: as for [`focal_loss`][multiloss.torch.focal_loss]; ε < -1.
        NotImplementedError: under `torch.jit.trace`.

    References:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
        Functions", ICLR 2022, [arXiv:2204.12511](https://arxiv.org/abs/2204.12511).

    Examples:
        >>> import torch
        >>> from multiloss.torch import poly_loss
        >>> logits = torch.zeros(1, 2)
        >>> round(poly_loss(logits, torch.tensor([1]), epsilon=1.0).item(), 6)  # log 2 + 0.5
        1.193147
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
        "softcap": softcap,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["poly_loss"], logits, target, options)


def binary_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Tensor = 0.0,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Sigmoid cross-entropy on logits, with the semantics of `nn.BCEWithLogitsLoss`.

    $$
    L = -w \left[ p_w \, y \log \sigma(x) + (1 - y) \log (1 - \sigma(x)) \right]
    $$

    computed as `w·(pw·y·softplus(-x) + (1-y)·softplus(x))`, finite for any finite logit.

    Args:
        logits: any shape.
        target: the logits' shape; probabilities in [0, 1] (integer or bool 0/1 accepted).
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements), `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.torch.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`, a
            hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter (the full list is under
            [Bad input][bad-input]); a wrong value (a negative weight) only where values are
            checked: CPU tensors, nothing tracing.
        NotImplementedError: under `torch.jit.trace`: TorchScript is not supported (use
            `torch.compile`).

    Examples:
        >>> import torch
        >>> from multiloss.torch import binary_cross_entropy
        >>> round(binary_cross_entropy(torch.zeros(1), torch.ones(1)).item(), 6)  # log 2
        0.693147
    """
    options = {
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["binary_cross_entropy"], logits, target, options)


def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor | Weights = 0.25,
    gamma: float | Tensor = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Tensor = 0.0,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al. 2017), as `torchvision.ops.sigmoid_focal_loss`.

    $$
    \begin{gathered}
    L = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \\
    p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)
    \end{gathered}
    $$

    Args:
        logits: any shape (e.g. `(N, C)` multi-label scores or `(N, A, C)` anchors).
        target: the logits' shape, in [0, 1].
        alpha: α in [0, 1], a per-class vector $\alpha_c$ (length C, the last axis: $\alpha_c$
            on positives, $1 - \alpha_c$ on negatives), or None for no $\alpha_t$ weighting.
            A scalar α and γ may be 0-d tensors, for a schedule without recompiling
            ([Schedules][schedules]).
        gamma: focusing parameter γ ≥ 0.
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` (over all elements, torchvision's default is `"none"`),
            `"sum"` or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.torch.cross_entropy].

    Returns:
        The loss, in the logits' dtype: 0-d for `"mean"` and `"sum"`, per element for
            `"none"`.

    Raises:
        TypeError: the wrong kind of input: logits that are not a floating `torch.Tensor`, a
            hyperparameter that is not a number.
        ValueError: a wrong shape or hyperparameter (the full list is under
            [Bad input][bad-input]); a wrong value (a negative weight) only where values are
            checked: CPU tensors, nothing tracing.
        NotImplementedError: under `torch.jit.trace`: TorchScript is not supported (use
            `torch.compile`).

    References:
        Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
        ICCV 2017, [arXiv:1708.02002](https://arxiv.org/abs/1708.02002).

    Examples:
        >>> import torch
        >>> from multiloss.torch import sigmoid_focal_loss
        >>> round(sigmoid_focal_loss(torch.zeros(1), torch.ones(1), alpha=None).item(), 6)
        0.173287
    """
    options = {
        "alpha": alpha,
        "gamma": gamma,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["sigmoid_focal_loss"], logits, target, options)


def asymmetric_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma_pos: float | Tensor = 0.0,
    gamma_neg: float | Tensor = 4.0,
    clip: float | Tensor = 0.05,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Tensor = 0.0,
    reduction: str = "mean",
    normalizer: Tensor | float | None = None,
) -> Tensor:
    r"""Asymmetric Loss for multi-label classification (Ridnik et al., ICCV 2021).

    Per element, with $p = \sigma(x)$ and $p_m = \max(p - \mathrm{clip}, 0)$:

    $$
    L = -y \, (1 - p)^{\gamma_+} \log p - (1 - y) \, p_m^{\gamma_-} \log(1 - p_m)
    $$

    computed from the logits, with the gradient through the focusing weights.

    Args:
        logits: any shape, one logit per label, any floating dtype.
        target: the logits' shape, real numbers in [0, 1].
        gamma_pos: γ+ ≥ 0, focusing of the positive term. γ± and clip may be 0-d
            tensors, for a schedule without recompiling ([Schedules][schedules]).
        gamma_neg: γ- ≥ 0, focusing of the negative term.
        clip: margin in [0, 1): negatives with $p \le$ clip contribute 0.
        weight: per-element weight, broadcast to the logits' shape.
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing.
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras.
        reduction: `"mean"` over all elements, `"sum"` (what timm's
            `AsymmetricLossMultiLabel` returns) or `"none"`.
        normalizer: as in [`cross_entropy`][multiloss.torch.cross_entropy].

    Returns:
        The loss, in the logits' dtype.

    Raises:
        TypeError: logits that are not a floating `torch.Tensor`, a hyperparameter that is
            not a number.
        ValueError: γ± < 0, clip outside [0, 1), a target of another shape, an unknown
            `reduction`.
        NotImplementedError: under `torch.jit.trace`.

    References:
        Ridnik et al., "Asymmetric Loss for Multi-Label Classification", ICCV 2021,
        [arXiv:2009.14119](https://arxiv.org/abs/2009.14119).

    Examples:
        >>> import torch
        >>> from multiloss.torch import asymmetric_loss
        >>> logits, target = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
        >>> round(asymmetric_loss(logits, target).item(), 4)  # (log 2 + 0.45⁴ · -log 0.55) / 2
        0.3588
    """
    options = {
        "gamma_pos": gamma_pos,
        "gamma_neg": gamma_neg,
        "clip": clip,
        "weight": weight,
        "pos_weight": pos_weight,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
        "normalizer": normalizer,
    }
    return run_loss(LOSSES["asymmetric_loss"], logits, target, options)


refuse_torchscript(
    cross_entropy,
    focal_loss,
    poly_loss,
    binary_cross_entropy,
    sigmoid_focal_loss,
    asymmetric_loss,
)
