"""The detection groups of the PyTorch benchmarks (issue 24): the distribution focal loss
against ultralytics' formula and the varifocal loss against mmdetection's, each written
here from its published definition (neither package installs beside torch 2.13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import DFL

LossFn = Callable[[Any, Any], Any]


def ultralytics_dfl(logits: Any, target: Any) -> Any:
    """ultralytics' ``DFLoss`` (utils/loss.py) as it computes the loss of n bins per box
    side: the target clamped to [0, n - 1.01] (out of place here), two gathered
    cross-entropies weighted by the distances to the neighbouring bins, then the mean (over
    the 4 sides, and here over the anchors too)."""
    import torch.nn.functional as F

    target = target.clamp(0, logits.shape[1] - 1 - 0.01)
    left = target.long()
    right = left + 1
    weight_left = right - target
    weight_right = 1 - weight_left
    return (
        F.cross_entropy(logits, left, reduction="none") * weight_left
        + F.cross_entropy(logits, right, reduction="none") * weight_right
    ).mean()


VFL_ALPHA, VFL_GAMMA = 0.75, 2.0


def textbook_varifocal(logits: Any, target: Any) -> Any:
    """The varifocal loss (Zhang et al. 2021) as mmdetection's ``varifocal_loss`` writes it
    (IoU-weighted): positives (q > 0) weighted by q, negatives by α·σ(x)^γ, times BCE;
    mean-reduced."""
    import torch.nn.functional as F

    p = logits.sigmoid()
    weight = (
        target * (target > 0).float()
        + VFL_ALPHA * (p - target).abs().pow(VFL_GAMMA) * (target <= 0).float()
    )
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).mean()


def detection_implementations(kind: str) -> dict[str, LossFn]:
    """DFL against ultralytics' formula, VFL against mmdetection's; the reference first."""
    import multiloss.torch as mt

    if kind == DFL:
        return {
            "ultralytics DFL (formula)": ultralytics_dfl,
            "multiloss DFL": lambda z, t: mt.distribution_focal_loss(z, t),
        }
    return {
        "textbook VFL (mmdetection formula)": textbook_varifocal,
        "multiloss VFL": lambda z, y: mt.varifocal_loss(z, y, alpha=VFL_ALPHA, gamma=VFL_GAMMA),
    }
