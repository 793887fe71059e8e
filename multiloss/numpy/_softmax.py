"""The NumPy reference of the softmax losses (see :mod:`multiloss.numpy`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._run import Weights, loss_grad, loss_value_and_grad, run_loss


def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Softmax cross-entropy, with the semantics of `torch.nn.functional.cross_entropy`.

    Per element with log-softmax ℓ = log_softmax(z) along `axis` and target distribution q
    (one-hot of a class index, or the given probabilities; label smoothing ε makes it
    $(1-\varepsilon)\,q + \varepsilon/C$):

    $$
    L = -\sum_k q_k \, w_k \, \log p_k
    $$

    Args:
        logits: unnormalised scores, any rank, classes along `axis`.
        target: integer class indices (the logits' shape without `axis`) or class
            probabilities (the logits' shape, floating).
        axis: the class axis.
        weight: per-class weights w (length C); None weights every class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not
            counted (class-index targets only).
        reduction: `"mean"` ($\sum w_{y_i} \ell_i / \sum w_{y_i}$ over counted elements for
            class indices; divided by the element count for probabilities), `"sum"` or
            `"none"` (per element, class axis removed). A mean over nothing is 0.0.
        label_smoothing: ε in [0, 1].
        z_loss: λ ≥ 0 of the z-loss (PaLM): each counted element adds
            $\lambda\,\omega_i\,(\log\sum_k e^{z_k})^2$, with $\omega_i = w_{y_i}$
            for class-index targets with `weight` and 1 otherwise (docs/semantics.md).
        softcap: c > 0 of logit soft-capping (Gemma 2): the logits become
            $c \tanh(z / c)$ before anything else; None (the default) leaves them.
        dtype: computation and result dtype (None keeps the input's).
        normalizer: for `"mean"` only: divide the sum by this number (0-d; for
            example the all-reduced [`count_targets`][multiloss.numpy.count_targets] of every
            micro-batch and rank) instead of the call's own denominator, so that the
            parts of a batch add up to the whole batch's mean ([Global
            normalisation][global-normalisation]); 0 gives 0. None (the default): the
            call's own denominator.

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, float or bool class
            indices, a hyperparameter that is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a class index out of range, a weight of
            the wrong length or negative, or an unknown `reduction` (the full list is
            under [Bad input][bad-input]).

    Examples:
        >>> import numpy as np
        >>> round(float(cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))), 8)  # log 2
        0.69314718
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
    return run_loss("cross_entropy", logits, target, dtype, False, options)


def cross_entropy_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `cross_entropy` with respect to the logits.

    It takes the arguments of [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> cross_entropy_grad(np.array([[0.0, 0.0]]), np.array([1]))
        array([[ 0.5, -0.5]])
    """
    return loss_grad(
        "cross_entropy",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )


def cross_entropy_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `cross_entropy`, from one pass.

    It takes the arguments of [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        The pair `(loss, grad)`: what `cross_entropy` and `cross_entropy_grad` return.

    Examples:
        >>> cross_entropy_value_and_grad(np.array([[0.0, 0.0]]), np.array([1]))
        (array(0.69314718), array([[ 0.5, -0.5]]))
    """
    return loss_value_and_grad(
        "cross_entropy",
        logits,
        target,
        dtype,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )


def focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    $$
    L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k
    $$

    For a class-index target t this is $-\alpha_t (1-p_t)^\gamma \log p_t$; γ = 0 with
    no alpha is exactly [`cross_entropy`][multiloss.numpy.cross_entropy]. The modulating
    factor $(1-p_t)^\gamma$ turns down well-classified examples: with γ = 2, $p_t = 0.9$ is
    weighted by 0.01.

    The gradient is computed as $p_k \sum_j c_j A_j - c_k A_k$ with
    $A = u^\gamma (1 - \gamma p \ell / u)$, $u = 1 - p$, which has no negative power of u:
    finite for 0 < γ < 1 at $p_t = 1$.

    Args:
        logits: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        target: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        axis: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        ignore_index: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        label_smoothing: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        z_loss: as in [`cross_entropy`][multiloss.numpy.cross_entropy] (α does not weight
            it: $\omega_i = 1$).
        softcap: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        dtype: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        gamma: focusing parameter γ ≥ 0.
        alpha: None (no weighting); a sequence of C per-class weights; or a scalar α in
            [0, 1] that weights class 0 (background) by 1-α and every other class by α
            (RetinaNet, kornia, MONAI). The two-class `[α, 1-α]` is the sequence form.
        reduction: `"mean"` divides by the number of counted (not ignored) elements, not
            by Σα; `"sum"`; `"none"`. A mean over nothing is 0.0.
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: the wrong kind of input: integer or bool logits, float or bool class
            indices, a hyperparameter that is not a number, a `dtype` that is not floating.
        ValueError: a wrong value or shape, such as a class index out of range, a weight of
            the wrong length or negative, or an unknown `reduction` (the full list is
            under [Bad input][bad-input]).

    References:
        Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection",
        ICCV 2017, [arXiv:1708.02002](https://arxiv.org/abs/1708.02002).

    Examples:
        >>> import numpy as np
        >>> round(float(focal_loss(np.log(np.array([[0.9, 0.1]])), np.array([0]))), 8)
        0.00105361
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
    return run_loss("focal_loss", logits, target, dtype, False, options)


def focal_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `focal_loss` with respect to the logits.

    It takes the arguments of [`focal_loss`][multiloss.numpy.focal_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> focal_loss_grad(np.array([[0.0, 0.0]]), np.array([1]))
        array([[ 0.2982868, -0.2982868]])
    """
    return loss_grad(
        "focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )


def focal_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    gamma: float = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `focal_loss`, from one pass.

    It takes the arguments of [`focal_loss`][multiloss.numpy.focal_loss].

    Returns:
        The pair `(loss, grad)`: what `focal_loss` and `focal_loss_grad` return.

    Examples:
        >>> focal_loss_value_and_grad(np.array([[0.0, 0.0]]), np.array([1]))
        (array(0.1732868), array([[ 0.2982868, -0.2982868]]))
    """
    return loss_value_and_grad(
        "focal_loss",
        logits,
        target,
        dtype,
        axis=axis,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )


def poly_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""PolyLoss, Poly-1 (Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR 2022).

    $$
    L = \sum_k q_k \, \alpha_k \left( -(1 - p_k)^\gamma \log p_k
        + \varepsilon \, (1 - p_k)^{\gamma + 1} \right)
    $$

    γ = 0 is cross-entropy plus $\varepsilon (1 - p_t)$; with a probability target and no
    α it is optax's `poly_loss_cross_entropy`, $\mathrm{CE} + \varepsilon (1 - \sum_k
    y_k p_k)$. γ > 0 is the paper's Poly-1 form of the focal loss.

    Args:
        logits: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        target: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        axis: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        epsilon: ε ≥ -1, the coefficient of the first polynomial term (ε ≥ -1 keeps the
            loss ≥ 0). The default 2.0 is the paper's value for ImageNet classification,
            and optax's default; the paper uses ε = -1 for detection.
        gamma: focusing parameter γ ≥ 0, as in [`focal_loss`][multiloss.numpy.focal_loss].
        alpha: as in [`focal_loss`][multiloss.numpy.focal_loss].
        ignore_index: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        reduction: as in [`focal_loss`][multiloss.numpy.focal_loss].
        label_smoothing: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        z_loss: as in [`focal_loss`][multiloss.numpy.focal_loss].
        softcap: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        dtype: as in [`cross_entropy`][multiloss.numpy.cross_entropy].
        normalizer: as in [`cross_entropy`][multiloss.numpy.cross_entropy].

    Returns:
        The loss, in `dtype`: 0-d for `"mean"` and `"sum"`, per element for `"none"`.

    Raises:
        TypeError: as in [`focal_loss`][multiloss.numpy.focal_loss].
        ValueError: as in [`focal_loss`][multiloss.numpy.focal_loss]; ε < -1.

    References:
        Leng, Xu, Tan, Sun, Chen, Huang, Zhou, Lu and Anguelov, "PolyLoss: A Polynomial
        Expansion Perspective of Classification Loss Functions", ICLR 2022,
        [arXiv:2204.12511](https://arxiv.org/abs/2204.12511).

    Examples:
        >>> import numpy as np
        >>> z, t = np.log(np.array([[0.5, 0.5]])), np.array([0])
        >>> round(float(poly_loss(z, t, epsilon=1.0)), 8)  # log 2 + 1 · (1 - 0.5)
        1.19314718
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
    return run_loss("poly_loss", logits, target, dtype, False, options)


def poly_loss_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> NDArray[Any]:
    r"""The gradient of `poly_loss` with respect to the logits.

    It takes the arguments of [`poly_loss`][multiloss.numpy.poly_loss].

    Returns:
        $\partial (\sum \mathrm{loss}) / \partial\, \mathrm{logits}$, shaped like the
            logits; for `reduction="none"`, every element's own gradient.

    Examples:
        >>> poly_loss_grad(np.array([[0.0, 0.0]]), np.array([1]), epsilon=1.0)
        array([[ 0.75, -0.75]])
    """
    return loss_grad(
        "poly_loss",
        logits,
        target,
        dtype,
        axis=axis,
        epsilon=epsilon,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )


def poly_loss_value_and_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    axis: int = -1,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    normalizer: ArrayLike | float | None = None,
    dtype: DTypeLike | None = np.float64,
) -> tuple[NDArray[Any], NDArray[Any]]:
    r"""The value and the gradient of `poly_loss`, from one pass.

    It takes the arguments of [`poly_loss`][multiloss.numpy.poly_loss].

    Returns:
        The pair `(loss, grad)`: what `poly_loss` and `poly_loss_grad` return.

    Examples:
        >>> poly_loss_value_and_grad(np.array([[0.0, 0.0]]), np.array([1]), epsilon=1.0)
        (array(1.19314718), array([[ 0.75, -0.75]]))
    """
    return loss_value_and_grad(
        "poly_loss",
        logits,
        target,
        dtype,
        axis=axis,
        epsilon=epsilon,
        gamma=gamma,
        alpha=alpha,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        softcap=softcap,
        normalizer=normalizer,
    )
