"""Validation of the detection losses' calls (:mod:`.detection`): the ``prepare_<loss>``
step of the varifocal and quality focal losses, the sigmoid family's preparation with a
target checked to lie in [0, 1] (see :mod:`.prepare`)."""

from __future__ import annotations

from typing import Any

from . import _checks, element_options
from .detection import QualityFocalConfig, VarifocalConfig
from .prepare import prepare_sigmoid
from .sigmoid import SigmoidOperands

Array = Any
Namespace = Any


def prepare_varifocal_loss(
    logits: Array,
    target: Array,
    *,
    alpha: object = 0.75,
    gamma: object = 2.0,
    weight: object = None,
    pos_weight: object = None,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, VarifocalConfig, SigmoidOperands]:
    """Validate the arguments of :func:`varifocal_loss` (α in [0, 1], γ ≥ 0, a target in
    [0, 1]); the smoothing stays with the family, which applies it to the cross-entropy's
    target only. The other arguments as in :func:`prepare_binary_cross_entropy`."""
    alpha = _checks.check_real_number("alpha", alpha, low=0.0, high=1.0)
    gamma = _checks.check_real_number("gamma", gamma, low=0.0)
    epsilon = element_options.check_label_smoothing(label_smoothing)
    xp, sigmoid_config, operands = prepare_sigmoid(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
        ignore_index=ignore_index,
        unit_target=True,
        smooth_target=False,
    )
    return xp, VarifocalConfig(alpha, gamma, epsilon, sigmoid_config.reduction), operands


def prepare_quality_focal_loss(
    logits: Array,
    target: Array,
    *,
    beta: object = 2.0,
    weight: object = None,
    pos_weight: object = None,
    ignore_index: object = None,
    label_smoothing: object = 0.0,
    reduction: object = "mean",
    check_values: bool = True,
    convert_logits: bool = True,
    cache_static: bool = False,
) -> tuple[Namespace, QualityFocalConfig, SigmoidOperands]:
    """Validate the arguments of :func:`quality_focal_loss` (β ≥ 0, a target in [0, 1]);
    the other arguments as in :func:`prepare_binary_cross_entropy`."""
    beta = _checks.check_real_number("beta", beta, low=0.0)
    xp, sigmoid_config, operands = prepare_sigmoid(
        logits,
        target,
        weight=weight,
        pos_weight=pos_weight,
        gamma=0.0,
        alpha=None,
        reduction=reduction,
        check_values=check_values,
        convert_logits=convert_logits,
        cache_static=cache_static,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        unit_target=True,
    )
    return xp, QualityFocalConfig(beta, sigmoid_config.reduction), operands


__all__ = ["prepare_quality_focal_loss", "prepare_varifocal_loss"]
