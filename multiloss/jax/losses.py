"""The losses of `multiloss.jax`: validation at trace time, then the custom rule."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from .._core import (
    DISTRIBUTION,
    LOSSES,
    Loss,
    _checks,
    apply_normalizer,
    hyper,
    prepare_call,
    split_normalizer,
)
from .._core.policy import values_readable
from ._autodiff import custom_loss
from ._engine import uses_kernels
from ._pallas import loss as pallas_loss
from ._validation import (
    as_jax,
    as_jax_weight,
    check_host_labels,
    check_hyperparameters,
    debug_checks,
    is_host_data,
    is_tracer,
    require_static,
)

Array = jax.Array
Weights = Array | np.ndarray | Sequence[float] | None


def run_loss(loss: Loss, logits: Any, target: Any, options: dict[str, Any]) -> Array:
    """Validate (at trace time), then run the custom_jvp loss of the registry's `loss`."""
    static, weights = loss.static, loss.weights
    normalizer = as_jax_weight(split_normalizer(options))
    require_static(**{key: options[key] for key in static})
    if "ignore_index" in options:  # an integer target holds class indices
        check_host_labels(logits, target, options)
    logits, target = as_jax(logits), as_jax(target)
    originals = {key: options[key] for key in weights}
    for key in weights + loss.hyperparameters:  # a NumPy array becomes a JAX array
        options[key] = as_jax_weight(options[key])
    # The kernels read 16-bit logits as they are (no float32 copy): engine hook
    prepare = functools.partial(
        prepare_call, loss, logits, target, options, convert_logits=not uses_kernels()
    )
    # The backend policy decides (values_readable: no tracer among what was given); the
    # core then reads only what the policy can read (the labels and a weight as given, a
    # Python sequence as it is), never an array that it converted under a trace itself.
    check_values = values_readable(target, *(options[key] for key in weights))
    _, config, operands = prepare(check_values=check_values)
    if uses_kernels() and config.family is DISTRIBUTION:  # its preparation always widens
        operands = operands._replace(logits=logits)
    unchecked = None  # None: checked already; else the weights to check at run time
    if not check_values:
        unchecked = []
        for index, (key, weight) in enumerate(zip(weights, operands[2:], strict=False), 2):
            if weight is None:
                continue
            if is_host_data(originals[key]):  # known now, whatever the core made of it
                host = np.asarray(originals[key], dtype=np.float64)
                _checks.check_weight_values(np, key, host)
            elif not is_tracer(weight):
                # A concrete array, also one captured by jit, scan or checkpoint: its values
                # are known while tracing (the namespace's own operations would be staged).
                _checks.check_weight_values(np, key, np.asarray(weight, dtype=np.float64))
            else:
                unchecked.append((key, index))
        check_hyperparameters(options, loss.hyperparameters, hyper.names(config))
    total = _call_loss(config, operands, unchecked)
    checkable = normalizer is not None and not is_tracer(normalizer)
    total = apply_normalizer(jax.numpy, total, normalizer, check_values=checkable)
    return total.astype(logits.dtype)


def explicit_mesh_axes(array: Any) -> tuple[Any, tuple[str, ...]]:
    """The mesh of `array`'s sharding type and its Explicit axes (none outside explicit
    sharding, and on JAX versions without it)."""
    axis_type = getattr(getattr(jax, "sharding", None), "AxisType", None)
    sharding = getattr(jax.typeof(array), "sharding", None) if axis_type else None
    mesh = getattr(sharding, "mesh", None)
    if axis_type is None or mesh is None or getattr(mesh, "empty", True):
        return None, ()
    names = tuple(
        name
        for name, kind in zip(mesh.axis_names, mesh.axis_types, strict=True)
        if kind == axis_type.Explicit
    )
    return mesh, names


def _call_loss(config: Any, operands: Any, unchecked: list[tuple[str, int]] | None) -> Array:
    """The custom_jvp loss, after the run-time checks of `debug_checks` (if
    `unchecked` is not None); on arrays sharded over Explicit mesh axes, in Auto mode.

    Under explicit sharding ("sharding in types") JAX refuses operations whose output
    sharding it cannot infer, such as gathering the target logit or class weight with a
    batch-sharded index, or mixing sharded masks with replicated constants. Inside
    `jax.sharding.auto_axes` XLA's sharding propagation decides instead; the loss
    comes out replicated ("mean"/"sum") or sharded like the logits ("none").
    """
    run = functools.partial(_checked_loss, config, unchecked)
    mesh, axes = explicit_mesh_axes(operands.logits)
    if not axes:
        return run(operands)
    spec = tuple(jax.typeof(operands.logits).sharding.spec)
    spec += (None,) * (operands.logits.ndim - len(spec))
    spec = config.family.loss_shape(config, spec)  # the loss's axes, in the logits' terms
    out_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
    return jax.sharding.auto_axes(run, axes=axes, out_sharding=out_sharding)(operands)


def _checked_loss(config: Any, unchecked: list[tuple[str, int]] | None, operands: Any) -> Array:
    if unchecked is not None:
        debug_checks(config, operands, tuple(unchecked))
    # The engine hook (multiloss.jax.engine): the Pallas kernels where chosen while tracing,
    # for static hyperparameters (an array one takes XLA: the kernels specialise on them).
    if uses_kernels() and not operands.hyper:
        return pallas_loss(config, operands)
    return custom_loss(config, operands)


def cross_entropy(
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    weight: Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Array = 0.0,
    z_loss: float | Array = 0.0,
    softcap: float | Array | None = None,
    normalizer: Array | float | None = None,
) -> Array:
    r"""Softmax cross-entropy, with the semantics of `torch.nn.functional.cross_entropy`.

    With $\ell = \log \operatorname{softmax}(z)$ along `axis` and the target distribution $q$
    (the one-hot of a class index, or the given probabilities; label smoothing $\varepsilon$
    makes it $(1-\varepsilon)\,q + \varepsilon/C$), each element's loss is

    $$
    L = -\sum_k q_k \, w_k \, \log p_k
    $$

    and its gradient $p \sum_k q_k w_k - q \odot w$. For class indices and no smoothing this is
    `optax.softmax_cross_entropy_with_integer_labels` (which has no weights, `ignore_index` or
    smoothing).

    Under `jit` an out-of-range class index gives NaN for its element; see
    [`checked`][multiloss.jax.checked].

    Args:
        logits: unnormalised scores, any rank ≥ 1, classes along `axis`; float16, bfloat16
            (computed in float32 inside), float32 or float64.
        target: integer class indices (the logits' shape without `axis`) or class
            probabilities (the logits' shape, floating).
        axis: the class axis (static).
        weight: per-class weights $w$ (length $C$): a JAX or NumPy array (may be traced) or a
            sequence; None weights every class by 1.
        ignore_index: class-index targets equal to it contribute nothing and are not counted
            (static).
        reduction: `"mean"` ($\sum w_{y_i} \ell_i / \sum w_{y_i}$ over counted elements for
            class indices; divided by the element count for probabilities), `"sum"` or
            `"none"` (per element, class axis removed). A mean over nothing is 0.0 with a zero
            gradient (not NaN).
        label_smoothing: $\varepsilon \in [0, 1]$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        z_loss: $\lambda \ge 0$ of the z-loss (a number or a 0-d array, as is
            `label_smoothing`): each counted element adds
            $\lambda\,\omega_i\,(\log\sum_k e^{z_k})^2$, $\omega_i = w_{y_i}$ for class
            indices with `weight`, 1 otherwise.
        softcap: $c > 0$ of logit soft-capping (a number or a 0-d array): the logits
            become $c \tanh(z/c)$ first; None leaves them.
        normalizer: for `"mean"` only: divide the sum by this number (0-d; for
            example the all-reduced [`count_targets`][multiloss.jax.count_targets] of every
            micro-batch and rank) instead of the call's own denominator, so that the
            parts of a batch add up to the whole batch's mean ([Global
            normalisation][global-normalisation]); 0 gives 0. None (the default): the
            call's own denominator.

    Returns:
        The loss in the logits' dtype: 0-d, or the per-element losses for `"none"`.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit (integer or
            bool logits, float or bool class indices, a weight that is not numbers), or a
            static option (`axis`, `ignore_index`, `reduction`) given as a traced array.
        ValueError: at trace time, for shapes that do not match or a hyperparameter out of
            range; when the arrays are concrete, also for a class index out of range or a
            negative or non-finite weight.
        NotImplementedError: a derivative with respect to a hyperparameter given as an
            array ([Schedules][schedules]).

    References:
        PyTorch `torch.nn.CrossEntropyLoss`; Szegedy et al., "Rethinking the Inception
        Architecture for Computer Vision", CVPR 2016 (label smoothing).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from multiloss.jax import cross_entropy
        >>> logits = jnp.array([[0.0, 0.0], [2.0, 0.0]])
        >>> round(float(cross_entropy(logits, jnp.array([1, 0]))), 6)  # (log 2 + 0.126928) / 2
        0.410038
        >>> loss_fn = jax.jit(cross_entropy, static_argnames=("label_smoothing",))
        >>> round(float(loss_fn(logits, jnp.array([1, 0]), label_smoothing=0.1)), 6)
        0.460038
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
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    gamma: float | Array = 2.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Array = 0.0,
    z_loss: float | Array = 0.0,
    softcap: float | Array | None = None,
    normalizer: Array | float | None = None,
) -> Array:
    r"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    $$
    L = -\sum_k q_k \, \alpha_k \, (1 - p_k)^\gamma \log p_k
    $$

    For a class-index target $t$ this is $-\alpha_t (1-p_t)^\gamma \log p_t$; $\gamma = 0$ with
    no alpha is exactly [`cross_entropy`][multiloss.jax.cross_entropy]. The factor
    $(1-p_t)^\gamma$ turns down well-classified examples: with $\gamma = 2$, $p_t = 0.9$ is
    weighted by 0.01.

    The gradient is $p_k \sum_j c_j A_j - c_k A_k$ with $A = u^\gamma (1 - \gamma p \ell / u)$,
    $u = 1 - p$, $c = q \alpha$: no negative power of $u$, so it is finite for $0 < \gamma < 1$
    at $p_t = 1$, and so is the Hessian (a closed form as well).

    Args:
        logits, target, axis, ignore_index, label_smoothing, softcap: as in
            [`cross_entropy`][multiloss.jax.cross_entropy].
        z_loss: as in [`cross_entropy`][multiloss.jax.cross_entropy], with
            $\omega_i = 1$ (alpha does not weight it).
        gamma: focusing parameter $\gamma \ge 0$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        alpha: None (no weighting); $C$ per-class weights (array, may be traced, or sequence);
            or a scalar $\alpha \in [0, 1]$ (a number, or a 0-d array: traced, and
            differentiable) that weights class 0 (background) by $1-\alpha$ and every
            other class by $\alpha$ (RetinaNet, kornia, MONAI).
        reduction: `"mean"` divides by the number of counted (not ignored) elements, not by
            $\sum \alpha$; `"sum"`; `"none"`. A mean over nothing is 0.0.
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss in the logits' dtype.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit (integer or
            bool logits, float or bool class indices, a weight that is not numbers), or a
            static option (`axis`, `ignore_index`, `reduction`) given as a traced array.
        ValueError: at trace time, for shapes that do not match or a hyperparameter out of
            range; when the arrays are concrete, also for a class index out of range or a
            negative or non-finite weight.
        NotImplementedError: a derivative with respect to a hyperparameter given as an
            array ([Schedules][schedules]).

    References:
        Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.

    Examples:
        >>> import functools, jax, jax.numpy as jnp
        >>> from multiloss.jax import focal_loss
        >>> logits = jnp.log(jnp.array([[0.9, 0.1]]))
        >>> round(float(focal_loss(logits, jnp.array([0]), gamma=2.0)), 8)  # 0.01 · -log 0.9
        0.00105361
        >>> loss_fn = jax.jit(functools.partial(focal_loss, gamma=0.5, alpha=[0.25, 0.75]))
        >>> round(float(jax.grad(loss_fn)(logits, jnp.array([0]))[0, 0]), 6)
        -0.011654
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
    logits: Array,
    target: Array,
    *,
    axis: int = -1,
    epsilon: float | Array = 2.0,
    gamma: float | Array = 0.0,
    alpha: float | Weights = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float | Array = 0.0,
    z_loss: float | Array = 0.0,
    softcap: float | Array | None = None,
    normalizer: Array | float | None = None,
) -> Array:
    r"""PolyLoss, Poly-1 (Leng et al., ICLR 2022).

    $$
    L = \sum_k q_k \, \alpha_k \left( -(1 - p_k)^\gamma \log p_k
        + \varepsilon \, (1 - p_k)^{\gamma + 1} \right)
    $$

    With $\gamma = 0$, a probability target and no alpha this is
    `optax.poly_loss_cross_entropy`: $\mathrm{CE} + \varepsilon (1 - \sum_k y_k p_k)$.

    The other arguments (`logits`, `target`, `axis`, `alpha`, `ignore_index`,
    `reduction`, `label_smoothing`, `z_loss`, `softcap`) are as in
    [`focal_loss`][multiloss.jax.focal_loss].

    Args:
        epsilon: $\varepsilon \ge -1$ (a number or a 0-d array); the default 2.0 is the
            paper's ImageNet value and optax's default.
        gamma: focusing parameter $\gamma \ge 0$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss in the logits' dtype.

    Raises:
        TypeError: as for [`focal_loss`][multiloss.jax.focal_loss].
        ValueError: as for [`focal_loss`][multiloss.jax.focal_loss]; $\varepsilon < -1$.

    References:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
        Functions", ICLR 2022, arXiv:2204.12511.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import poly_loss
        >>> round(float(poly_loss(jnp.zeros((1, 2)), jnp.array([1]), epsilon=1.0)), 6)
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
    logits: Array,
    target: Array,
    *,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Array = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Sigmoid cross-entropy on logits, with the semantics of `torch.nn.BCEWithLogitsLoss`.

    $$
    L = -w \left[ p_w \, y \log \sigma(x) + (1 - y) \log (1 - \sigma(x)) \right]
    $$

    computed as `w·(pw·y·softplus(-x) + (1-y)·softplus(x))`, finite for any finite logit.
    Without weights it is `optax.sigmoid_binary_cross_entropy`.

    Args:
        logits: any shape (multi-label: one logit per class).
        target: the logits' shape; probabilities in [0, 1] (integer or bool 0/1 accepted).
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-$C$
            vector weights the last axis, as in PyTorch; may be traced).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing (static).
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras; a number or a 0-d
            array ([Schedules][schedules]).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"` (static).
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss in the logits' dtype (the logits' shape for `"none"`).

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit (integer or
            bool logits, a weight that is not numbers).
        ValueError: at trace time, for shapes that do not match (a target of another shape, a
            weight that does not broadcast) or an unknown `reduction`; when the arrays are
            concrete, also for a negative or non-finite weight.

    References:
        PyTorch `torch.nn.BCEWithLogitsLoss`; optax `sigmoid_binary_cross_entropy`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import binary_cross_entropy
        >>> round(float(binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))), 6)  # log 2
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
    logits: Array,
    target: Array,
    *,
    alpha: float | Array | Weights = 0.25,
    gamma: float | Array = 2.0,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Array = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Sigmoid focal loss, with the semantics of `torchvision.ops.sigmoid_focal_loss`.

    $$
    \begin{gathered}
    L = \alpha_t \, (1 - p_t)^\gamma \, \mathrm{BCE}(x, y), \\
    p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)
    \end{gathered}
    $$

    With `reduction="none"` this is `optax.sigmoid_focal_loss`; unlike optax's, the gradient and
    Hessian are finite for $0 < \gamma < 1$ at saturated logits.

    Args:
        logits, target: as in [`binary_cross_entropy`][multiloss.jax.binary_cross_entropy].
        alpha: $\alpha \in [0, 1]$ (a number, or a 0-d array traced without recompiling:
            [Schedules][schedules]), a per-class vector $\alpha_c$ (length C, the last
            axis; may be traced), or None for no $\alpha_t$ weighting.
        gamma: focusing parameter $\gamma \ge 0$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch) (may be traced).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing (static).
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras; a number or a 0-d
            array ([Schedules][schedules]).
        reduction: `"mean"` (over all elements), `"sum"` or `"none"` (static).
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss in the logits' dtype.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit (integer or
            bool logits, an `alpha` or `gamma` that is neither a real number nor a 0-d array).
        NotImplementedError: a derivative with respect to `alpha` or `gamma` given as an
            array ([Schedules][schedules]).
        ValueError: at trace time, for a target of another shape, $\alpha$ outside [0, 1], a
            negative, infinite or NaN $\gamma$, or an unknown `reduction`.

    References:
        Lin et al., ICCV 2017 (arXiv:1708.02002); torchvision `ops.sigmoid_focal_loss`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import sigmoid_focal_loss
        >>> x, y = jnp.array([0.0]), jnp.array([1.0])
        >>> round(float(sigmoid_focal_loss(x, y, alpha=None)), 6)  # 0.5² · log 2
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
    logits: Array,
    target: Array,
    *,
    gamma_pos: float | Array = 0.0,
    gamma_neg: float | Array = 4.0,
    clip: float | Array = 0.05,
    weight: Weights = None,
    pos_weight: Weights = None,
    ignore_index: int | None = None,
    label_smoothing: float | Array = 0.0,
    reduction: str = "mean",
    normalizer: Array | float | None = None,
) -> Array:
    r"""Asymmetric Loss for multi-label classification (Ridnik et al., ICCV 2021).

    Per element, with $p = \sigma(x)$ and $p_m = \max(p - \mathrm{clip}, 0)$:

    $$
    L = -y \, (1 - p)^{\gamma_+} \log p - (1 - y) \, p_m^{\gamma_-} \log(1 - p_m)
    $$

    computed from the logits, with the gradient through the focusing weights.

    Args:
        logits: any shape, one logit per label.
        target: the logits' shape, real numbers in [0, 1].
        gamma_pos: $\gamma_+ \ge 0$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        gamma_neg: $\gamma_- \ge 0$
            (a number, or a 0-d array traced without recompiling: [Schedules][schedules]).
        clip: margin in [0, 1) (a number or a 0-d array): negatives with $p \le$ clip contribute 0.
        weight: per-element weight, broadcast to the logits' shape (may be traced).
        pos_weight: weight of the positive term, broadcast to the logits' shape (a length-C
            vector weights the last axis, as in PyTorch) (may be traced).
        ignore_index: a target value whose elements contribute 0 (value and gradient) and
            are not counted by `"mean"`; None (the default) ignores nothing (static).
        label_smoothing: $\varepsilon \in [0, 1]$: the target becomes
            $y (1 - \varepsilon) + \varepsilon / 2$, as in Keras; a number or a 0-d
            array ([Schedules][schedules]).
        reduction: `"mean"` over all elements, `"sum"` or `"none"` (static).
        normalizer: as in [`cross_entropy`][multiloss.jax.cross_entropy].

    Returns:
        The loss in the logits' dtype.

    Raises:
        TypeError: at trace time, for a dtype or argument type that does not fit.
        ValueError: at trace time: $\gamma_\pm < 0$, clip outside [0, 1), shapes that do
            not match.

    References:
        Ridnik et al., "Asymmetric Loss for Multi-Label Classification", ICCV 2021,
        arXiv:2009.14119.

    Examples:
        >>> import jax.numpy as jnp
        >>> from multiloss.jax import asymmetric_loss
        >>> round(float(asymmetric_loss(jnp.array([0.0]), jnp.array([1.0]))), 6)  # log 2
        0.693147
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
