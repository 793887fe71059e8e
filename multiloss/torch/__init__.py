"""PyTorch adapter: functional losses and `nn.Module` criteria over the closed-form core.

The losses of [`multiloss`](multiloss.md) for `torch.Tensor` inputs, with autograd:

* functional: [`cross_entropy`][multiloss.torch.cross_entropy],
  [`focal_loss`][multiloss.torch.focal_loss], [`poly_loss`][multiloss.torch.poly_loss],
  [`binary_cross_entropy`][multiloss.torch.binary_cross_entropy],
  [`sigmoid_focal_loss`][multiloss.torch.sigmoid_focal_loss],
  [`asymmetric_loss`][multiloss.torch.asymmetric_loss],
  [`varifocal_loss`][multiloss.torch.varifocal_loss],
  [`quality_focal_loss`][multiloss.torch.quality_focal_loss],
  [`distribution_focal_loss`][multiloss.torch.distribution_focal_loss] (class axis 1, the
  `(N, C, d1..dk)` convention of `torch.nn.functional.cross_entropy`; an unbatched `(C,)`
  input works too);
* modules: [`CrossEntropyLoss`][multiloss.torch.CrossEntropyLoss],
  [`FocalLoss`][multiloss.torch.FocalLoss], [`PolyLoss`][multiloss.torch.PolyLoss],
  [`BCEWithLogitsLoss`][multiloss.torch.BCEWithLogitsLoss],
  [`SigmoidFocalLoss`][multiloss.torch.SigmoidFocalLoss],
  [`AsymmetricLoss`][multiloss.torch.AsymmetricLoss],
  [`VarifocalLoss`][multiloss.torch.VarifocalLoss],
  [`QualityFocalLoss`][multiloss.torch.QualityFocalLoss],
  [`DistributionFocalLoss`][multiloss.torch.DistributionFocalLoss], with the argument names of
  `nn.CrossEntropyLoss` and `nn.BCEWithLogitsLoss`; `weight`, a per-class `alpha` and
  `pos_weight` are buffers (they follow `.to(device, dtype)`, live in `state_dict`, pickle
  and deepcopy);
* large vocabularies: [`linear_cross_entropy`][multiloss.torch.linear_cross_entropy],
  [`linear_focal_loss`][multiloss.torch.linear_focal_loss] and their modules
  [`LinearCrossEntropyLoss`][multiloss.torch.LinearCrossEntropyLoss],
  [`LinearFocalLoss`][multiloss.torch.LinearFocalLoss]: the output projection and the
  loss fused, a chunk of tokens at a time ([Large vocabularies][large-vocabularies]);
* the mean's count: [`count_targets`][multiloss.torch.count_targets],
  [`count_elements`][multiloss.torch.count_elements] (the `normalizer=` of every loss;
  [Distributed training][distributed-training]), and the vocabulary-parallel losses of
  [`multiloss.torch.distributed`][multiloss.torch.distributed].

The modules call the functional API, which calls `multiloss._core`: no loss formula is
written here. Derivatives (first and second order, forward mode, with respect to the
logits and, to first order, the targets and weights), `torch.func` and `torch.compile`,
dtypes, devices and the execution plans:
[How the PyTorch adapter works][how-the-pytorch-adapter-works].

Examples:
    >>> import torch
    >>> from multiloss.torch import FocalLoss, cross_entropy
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
    >>> target = torch.tensor([0, 2])
    >>> loss = cross_entropy(logits, target)
    >>> bool(torch.isclose(loss, torch.nn.functional.cross_entropy(logits, target)))
    True
    >>> FocalLoss(gamma=2.0, alpha=[0.25, 0.5, 0.25])(logits, target).backward()
    >>> logits.grad.shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from .._backends import missing_backend, public_names

try:
    import torch  # noqa: F401
except ImportError as error:
    raise missing_backend(__name__, "PyTorch", "torch") from error

from .._core.counting import count_elements, count_targets
from ._detection import distribution_focal_loss, quality_focal_loss, varifocal_loss
from ._element_modules import (
    AsymmetricLoss,
    BCEWithLogitsLoss,
    QualityFocalLoss,
    SigmoidFocalLoss,
    VarifocalLoss,
)
from ._native import CHUNK_ELEMENTS as _CHUNK_ELEMENTS  # noqa: F401  (the slab passes' tests)
from .engine import engine, get_engine, set_engine
from .functional import (
    asymmetric_loss,
    binary_cross_entropy,
    cross_entropy,
    focal_loss,
    poly_loss,
    sigmoid_focal_loss,
)
from .linear import (
    LinearCrossEntropyLoss,
    LinearFocalLoss,
    linear_cross_entropy,
    linear_focal_loss,
    linear_poly_loss,
)
from .modules import CrossEntropyLoss, DistributionFocalLoss, FocalLoss, PolyLoss

__all__ = [
    "AsymmetricLoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "DistributionFocalLoss",
    "FocalLoss",
    "LinearCrossEntropyLoss",
    "LinearFocalLoss",
    "PolyLoss",
    "QualityFocalLoss",
    "SigmoidFocalLoss",
    "VarifocalLoss",
    "asymmetric_loss",
    "binary_cross_entropy",
    "count_elements",
    "count_targets",
    "cross_entropy",
    "distribution_focal_loss",
    "engine",
    "focal_loss",
    "get_engine",
    "linear_cross_entropy",
    "linear_focal_loss",
    "linear_poly_loss",
    "poly_loss",
    "quality_focal_loss",
    "set_engine",
    "sigmoid_focal_loss",
    "varifocal_loss",
]


def __dir__() -> list[str]:
    """The public names only (docs/api: what the module offers)."""
    return public_names(__all__, "distributed", "functional", "linear", "modules")
