"""Train a small detection-style classification head with BCE, sigmoid focal and varifocal loss.

A dense detector scores every anchor for every class; about 1 % of the anchors lie on an
object, and on those the target is not 1 but the quality of the anchor's box, an IoU-like
score in (0, 1]. This example makes such data on the fly (anchor features: a class
prototype scaled by the anchor's quality, plus noise; background anchors: noise alone),
trains the same two-layer head from the same initial weights with three losses of
`multiloss.torch`, each divided by a detector's own normaliser
(docs/semantics.md, Detection normalisers):

* ``binary_cross_entropy`` against the soft scores, divided by their sum clamped at 1
  (ultralytics' ``target_scores_sum``);
* ``sigmoid_focal_loss`` (α = 0.25, γ = 2) against the one-hot classes of the positives,
  divided by the number of positives clamped at 1 (mmdetection's ``avg_factor``);
* ``varifocal_loss`` (α = 0.75, γ = 2) against the soft scores, divided by the same count,

and prints, on held-out anchors, each loss's first and final value, the average precision
of the anchor-class scores (how well the positives are ranked above everything else;
chance is the positives' share, about 0.3 %) and the recall of the positives among the top
P scores (P the number of positives).

    python examples/detection_head.py --steps 60
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

import multiloss.torch as mt

CLASSES, FEATURES, HIDDEN = 4, 16, 32
POSITIVE_RATE = 0.01
PROTOTYPES = torch.roll(
    torch.linspace(-1.0, 1.0, CLASSES * FEATURES).reshape(CLASSES, FEATURES).sin() * 3.0, 3, 1
)
"""One feature direction per class (fixed)."""


def make_anchors(anchors: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Features (anchors, FEATURES), the soft target scores (anchors, CLASSES): quality
    q ∈ (0, 1] at the positive anchor's class, 0 elsewhere, and the one-hot classes."""
    positive = torch.rand(anchors, generator=generator) < POSITIVE_RATE
    label = torch.randint(0, CLASSES, (anchors,), generator=generator)
    quality = 0.2 + 0.8 * torch.rand(anchors, generator=generator)  # IoU-like, in (0.2, 1]
    x = torch.randn(anchors, FEATURES, generator=generator)
    x = x + positive[:, None] * quality[:, None] * PROTOTYPES[label]
    one_hot = torch.zeros(anchors, CLASSES)
    one_hot[positive, label[positive]] = 1.0
    return x, one_hot * quality[:, None], one_hot


def head(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, CLASSES))
    with torch.no_grad():  # RetinaNet's prior: every anchor starts at p = 0.01
        model[-1].bias.fill_(-4.595)
    return model


def bce(logits: Tensor, scores: Tensor, one_hot: Tensor) -> Tensor:
    return mt.binary_cross_entropy(logits, scores, normalizer=scores.sum().clamp(min=1.0))


def focal(logits: Tensor, scores: Tensor, one_hot: Tensor) -> Tensor:
    positives = one_hot.sum().clamp(min=1.0)
    return mt.sigmoid_focal_loss(logits, one_hot, alpha=0.25, gamma=2.0, normalizer=positives)


def varifocal(logits: Tensor, scores: Tensor, one_hot: Tensor) -> Tensor:
    positives = one_hot.sum().clamp(min=1.0)
    return mt.varifocal_loss(logits, scores, alpha=0.75, gamma=2.0, normalizer=positives)


LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "binary_cross_entropy": bce,
    "sigmoid_focal_loss": focal,
    "varifocal_loss": varifocal,
}


def average_precision(scores: Tensor, positive: Tensor) -> float:
    """The mean, over the positives, of the precision among the scores ranked at or above
    each positive (every anchor-class pair is one item)."""
    order = torch.argsort(scores.reshape(-1), descending=True)
    hits = positive.reshape(-1)[order].to(torch.float64)
    precision = torch.cumsum(hits, 0) / torch.arange(1, hits.numel() + 1)
    return float((precision * hits).sum() / hits.sum().clamp(min=1.0))


def recall_at_positives(scores: Tensor, positive: Tensor) -> float:
    """The share of the positives among the P highest scores (P the positives' count)."""
    count = int(positive.sum())
    top = torch.topk(scores.reshape(-1), count).indices
    return float(positive.reshape(-1)[top].sum() / max(count, 1))


def train(
    loss_name: str, steps: int, anchors: int, seed: int = 0, lr: float = 1e-2
) -> dict[str, float]:
    """Train a fresh head (the same initial weights for every loss) and evaluate it."""
    loss_fn = LOSSES[loss_name]
    model = head(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.Generator().manual_seed(seed + 1)
    held_out = make_anchors(anchors, torch.Generator().manual_seed(seed + 2))
    losses = []
    for _ in range(steps):
        x, scores, one_hot = make_anchors(anchors, data)
        loss = loss_fn(model(x), scores, one_hot)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        x, scores, one_hot = held_out
        logits = model(x)
        first = float(loss_fn(head(seed)(x), scores, one_hot))
        final = float(loss_fn(logits, scores, one_hot))
        positive = one_hot > 0
        return {
            "first": first,
            "final": final,
            "train_first": losses[0],
            "train_last": losses[-1],
            "ap": average_precision(logits.sigmoid(), positive),
            "recall": recall_at_positives(logits.sigmoid(), positive),
            "chance": float(positive.to(torch.float64).mean()),
        }


def main(
    steps: int = 60,
    anchors: int = 8192,
    losses: Sequence[str] = tuple(LOSSES),
    verbose: bool = True,
) -> dict[str, dict[str, float]]:
    results = {name: train(name, steps, anchors) for name in losses}
    if verbose:
        print(
            f"{anchors} anchors x {CLASSES} classes, ~{POSITIVE_RATE:.0%} positives, {steps} steps"
        )
        print(f"{'loss':<22}{'first':>8}{'final':>8}{'AP':>8}{'recall@P':>10}")
        for name, r in results.items():
            print(
                f"{name:<22}{r['first']:>8.4f}{r['final']:>8.4f}{r['ap']:>8.3f}{r['recall']:>10.3f}"
            )
        chance = next(iter(results.values()))["chance"] if results else 0.0
        print(f"(chance AP: {chance:.4f})")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--anchors", type=int, default=8192)
    arguments = parser.parse_args()
    main(steps=arguments.steps, anchors=arguments.anchors)
