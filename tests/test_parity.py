"""The parity table of ``docs/parity.md``, row by row.

Every row maps a peer's call (PyTorch, torchvision, optax, Keras 3, kornia, MONAI, the
blog-style focal-loss class) to the multiloss call that gives the same numbers, or says
where and why the numbers differ. Each row has an id (the first column of the table); this
file reproduces every id:

* rows that agree compare the peer's value and its gradient with respect to the logits
  with ``multiloss.numpy`` in float64 (the peer in float64 where it allows it; MONAI and
  Keras compute in float32, so float32 tolerances there), and again with the adapter the
  table names: ``multiloss.torch`` for PyTorch-based peers, ``multiloss.jax`` for optax and
  Keras;
* rows that differ assert the difference itself (the peer's NaN, its other denominator,
  its clipped value), so that the table is corrected when a peer changes.

torchvision cannot be installed beside torch 2.13 in this environment, so its
``sigmoid_focal_loss`` is written verbatim as a stand-in (``tests/peers.py``).
The blog class is the widely copied ``FocalLoss(gamma, alpha)`` module (log_softmax, gather,
``alpha.gather(target)``, ``-(1 - pt)**gamma * logpt``, ``.mean()``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backends
import numpy as np
import pytest
from peers import torchvision_sigmoid_focal_loss

import multiloss.numpy as ml

torch = pytest.importorskip("torch")
F = torch.nn.functional

PARITY_PAGE = Path(__file__).resolve().parents[1] / "docs" / "parity.md"

B, C, H, W = 2, 4, 3, 5  # segmentation-shaped logits (N, C, H, W)
IGNORE = 255
ALPHA = 0.25
GAMMA = 2.0
EPS = 0.1
CLASS_WEIGHT = [0.5, 2.0, 1.0, 1.5]
ALPHA_VECTOR = [0.125, 0.375, 0.25, 0.25]  # exact in float32, as the blog class stores it

F64 = {"rtol": 1e-11, "atol": 1e-13}
F32 = {"rtol": 2e-5, "atol": 2e-6}


# ------------------------------------------------------------------------------- test data


def _rng() -> np.random.Generator:
    return np.random.default_rng(20240613)


def seg_logits() -> np.ndarray:
    return _rng().normal(size=(B, C, H, W)) * 2.0


def seg_target(ignored: bool = False) -> np.ndarray:
    target = _rng().integers(0, C, size=(B, H, W))
    if ignored:
        target[0, 0, :3] = IGNORE
        target[1, 2, 1] = IGNORE
    return target


def soft_target(axis: int) -> np.ndarray:
    """Class probabilities along `axis` of the segmentation shape (or (N, C) for axis=-1)."""
    shape = (B, C, H, W) if axis == 1 else (6, C)
    raw = _rng().uniform(0.05, 1.0, size=shape)
    return raw / raw.sum(axis=axis, keepdims=True)


def flat_logits() -> np.ndarray:
    return _rng().normal(size=(6, C)) * 2.0


def flat_target() -> np.ndarray:
    return _rng().integers(0, C, size=6)


def binary_logits() -> np.ndarray:
    return _rng().normal(size=(6, C)) * 3.0


def moderate_logits() -> np.ndarray:
    """|logit| below about 3: Keras computes sigmoid losses from float32 probabilities, which
    lose digits as p approaches 0 or 1 (see the keras-clipping row)."""
    return binary_logits() / 3.0


def binary_target() -> np.ndarray:
    return (_rng().uniform(size=(6, C)) < 0.3).astype(np.float64)


def onehot(target: np.ndarray, axis: int = -1) -> np.ndarray:
    eye = np.eye(C)[target]
    return np.moveaxis(eye, -1, axis)


def assert_close(actual: Any, desired: Any, tol: dict[str, float]) -> None:
    """|actual - desired| ≤ atol + rtol · |desired| (:func:`backends.assert_close`), a
    scalar against an array broadcast, as ``numpy.testing.assert_allclose`` does."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    if actual.ndim == 0 or desired.ndim == 0:
        actual, desired = np.broadcast_arrays(actual, desired)
    backends.assert_close(actual, desired, **tol)


# ----------------------------------------------------------------------- peer stand-ins


class BlogFocalLoss(torch.nn.Module):
    """The focal loss class copied across blogs and repositories (clcarwin/focal_loss_pytorch
    and its descendants), in current PyTorch. ``detach_pt=True`` is the original's
    ``pt = Variable(logpt.data.exp())``, which treats (1 - pt)**gamma as a constant."""

    def __init__(
        self,
        gamma: float = 0.0,
        alpha: float | list[float] | None = None,
        size_average: bool = True,
        detach_pt: bool = False,
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha
        if isinstance(alpha, (float, int)):
            self.alpha = torch.tensor([alpha, 1 - alpha])
        if isinstance(alpha, list):
            self.alpha = torch.tensor(alpha)
        self.size_average = size_average
        self.detach_pt = detach_pt

    def forward(self, input: Any, target: Any) -> Any:
        if input.dim() > 2:
            input = input.view(input.size(0), input.size(1), -1)  # N,C,H,W => N,C,H*W
            input = input.transpose(1, 2)  # N,C,H*W => N,H*W,C
            input = input.contiguous().view(-1, input.size(2))  # N,H*W,C => N*H*W,C
        target = target.view(-1, 1)

        logpt = F.log_softmax(input, dim=1)
        logpt = logpt.gather(1, target)
        logpt = logpt.view(-1)
        pt = logpt.detach().exp() if self.detach_pt else logpt.exp()

        if self.alpha is not None:
            at = self.alpha.to(input).gather(0, target.view(-1))
            logpt = logpt * at

        loss = -1 * (1 - pt) ** self.gamma * logpt
        if self.size_average:
            return loss.mean()
        return loss.sum()


# --------------------------------------------------------------- rows that agree: torch


@dataclass(frozen=True)
class TorchRow:
    """A peer computed in PyTorch float64 and the multiloss call of the table.

    ``peer`` and ``ours_torch`` take the logits tensor; ``ours`` takes the logits as a
    NumPy array and returns ``(loss, ∂Σloss/∂logits)`` from the float64 reference.
    ``tol`` is for a float32 peer (MONAI computes in float32 whatever it is given).
    """

    logits: Callable[[], np.ndarray]
    peer: Callable[[Any], Any]
    ours: Callable[[np.ndarray], tuple[Any, Any]]
    ours_torch: Callable[[Any], Any] | None = None
    tol: dict[str, float] | None = None


def _t(array: np.ndarray) -> Any:
    return torch.from_numpy(np.asarray(array))


def _scaled(pair: tuple[Any, Any], factor: float) -> tuple[Any, Any]:
    return pair[0] * factor, pair[1] * factor


def _mlt() -> Any:
    return pytest.importorskip("multiloss.torch")


def _kornia_focal() -> Any:
    return pytest.importorskip("kornia.losses").focal_loss


def _monai_focal(**options: Any) -> Any:
    return pytest.importorskip("monai.losses").FocalLoss(
        use_softmax=True, to_onehot_y=True, **options
    )


def _monai_target(target: np.ndarray) -> Any:
    return _t(target)[:, None]  # MONAI takes class indices as (B, 1, H, W)


T_IGN = seg_target(ignored=True)
T_SEG = seg_target()
PIXELS = B * H * W


TORCH_ROWS: dict[str, TorchRow] = {
    # --- torch.nn.functional.cross_entropy / nn.CrossEntropyLoss
    "ce-indices": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(z, _t(T_SEG)),
        lambda z: ml.cross_entropy_value_and_grad(z, T_SEG, axis=1),
        lambda z: _mlt().CrossEntropyLoss()(z, _t(T_SEG)),
    ),
    "ce-weight": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(z, _t(T_SEG), weight=_t(np.array(CLASS_WEIGHT))),
        lambda z: ml.cross_entropy_value_and_grad(z, T_SEG, axis=1, weight=CLASS_WEIGHT),
        lambda z: _mlt().CrossEntropyLoss(weight=CLASS_WEIGHT)(z, _t(T_SEG)),
    ),
    "ce-ignore-index": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(
            z, _t(T_IGN), weight=_t(np.array(CLASS_WEIGHT)), ignore_index=IGNORE
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, T_IGN, axis=1, weight=CLASS_WEIGHT, ignore_index=IGNORE
        ),
        lambda z: _mlt().CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=IGNORE)(z, _t(T_IGN)),
    ),
    "ce-label-smoothing": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(
            z,
            _t(T_IGN),
            weight=_t(np.array(CLASS_WEIGHT)),
            ignore_index=IGNORE,
            label_smoothing=EPS,
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, T_IGN, axis=1, weight=CLASS_WEIGHT, ignore_index=IGNORE, label_smoothing=EPS
        ),
        lambda z: _mlt().CrossEntropyLoss(
            weight=CLASS_WEIGHT, ignore_index=IGNORE, label_smoothing=EPS
        )(z, _t(T_IGN)),
    ),
    "ce-probabilities": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(
            z, _t(soft_target(1)), weight=_t(np.array(CLASS_WEIGHT)), label_smoothing=EPS
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, soft_target(1), axis=1, weight=CLASS_WEIGHT, label_smoothing=EPS
        ),
        lambda z: _mlt().CrossEntropyLoss(weight=CLASS_WEIGHT, label_smoothing=EPS)(
            z, _t(soft_target(1))
        ),
    ),
    "ce-reduction-none": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(
            z, _t(T_IGN), weight=_t(np.array(CLASS_WEIGHT)), ignore_index=IGNORE, reduction="none"
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, T_IGN, axis=1, weight=CLASS_WEIGHT, ignore_index=IGNORE, reduction="none"
        ),
        lambda z: _mlt().CrossEntropyLoss(
            weight=CLASS_WEIGHT, ignore_index=IGNORE, reduction="none"
        )(z, _t(T_IGN)),
    ),
    "ce-reduction-sum": TorchRow(
        seg_logits,
        lambda z: F.cross_entropy(
            z, _t(T_IGN), weight=_t(np.array(CLASS_WEIGHT)), ignore_index=IGNORE, reduction="sum"
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, T_IGN, axis=1, weight=CLASS_WEIGHT, ignore_index=IGNORE, reduction="sum"
        ),
        lambda z: _mlt().CrossEntropyLoss(
            weight=CLASS_WEIGHT, ignore_index=IGNORE, reduction="sum"
        )(z, _t(T_IGN)),
    ),
    # --- torch.nn.functional.binary_cross_entropy_with_logits / nn.BCEWithLogitsLoss
    "bce-weight-pos-weight": TorchRow(
        binary_logits,
        lambda z: F.binary_cross_entropy_with_logits(
            z,
            _t(binary_target()),
            weight=_t(np.array([[2.0], [1.0], [0.5], [1.0], [1.0], [3.0]])),
            pos_weight=_t(np.array([1.0, 3.0, 0.5, 2.0])),
        ),
        lambda z: ml.binary_cross_entropy_value_and_grad(
            z,
            binary_target(),
            weight=np.array([[2.0], [1.0], [0.5], [1.0], [1.0], [3.0]]),
            pos_weight=[1.0, 3.0, 0.5, 2.0],
        ),
        lambda z: _mlt().BCEWithLogitsLoss(
            weight=_t(np.array([[2.0], [1.0], [0.5], [1.0], [1.0], [3.0]])),
            pos_weight=[1.0, 3.0, 0.5, 2.0],
        )(z, _t(binary_target())),
    ),
    # --- torchvision.ops.sigmoid_focal_loss (verbatim stand-in)
    "torchvision-sigmoid-focal": TorchRow(
        binary_logits,
        lambda z: torchvision_sigmoid_focal_loss(
            z, _t(binary_target()), alpha=ALPHA, gamma=GAMMA, reduction="mean"
        ),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(
            z, binary_target(), alpha=ALPHA, gamma=GAMMA, reduction="mean"
        ),
        lambda z: _mlt().SigmoidFocalLoss(alpha=ALPHA, gamma=GAMMA)(z, _t(binary_target())),
    ),
    "torchvision-reduction-none": TorchRow(
        binary_logits,
        lambda z: torchvision_sigmoid_focal_loss(z, _t(binary_target())),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(z, binary_target(), reduction="none"),
        lambda z: _mlt().sigmoid_focal_loss(z, _t(binary_target()), reduction="none"),
    ),
    "torchvision-alpha-off": TorchRow(
        binary_logits,
        lambda z: torchvision_sigmoid_focal_loss(
            z, _t(binary_target()), alpha=-1, gamma=1.5, reduction="sum"
        ),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(
            z, binary_target(), alpha=None, gamma=1.5, reduction="sum"
        ),
        lambda z: _mlt().sigmoid_focal_loss(
            z, _t(binary_target()), alpha=None, gamma=1.5, reduction="sum"
        ),
    ),
    # --- kornia.losses.focal_loss
    "kornia-none": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(z, _t(T_SEG), ALPHA, GAMMA, reduction="none").sum(1),
        lambda z: ml.focal_loss_value_and_grad(
            z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="none"
        ),
        lambda z: _mlt().focal_loss(z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="none"),
    ),
    "kornia-sum": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(z, _t(T_SEG), ALPHA, GAMMA, reduction="sum"),
        lambda z: ml.focal_loss_value_and_grad(
            z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="sum"
        ),
        lambda z: _mlt().focal_loss(z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="sum"),
    ),
    "kornia-alpha-none": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(z, _t(T_SEG), None, 0.5, reduction="sum"),
        lambda z: ml.focal_loss_value_and_grad(z, T_SEG, axis=1, gamma=0.5, reduction="sum"),
        lambda z: _mlt().focal_loss(z, _t(T_SEG), gamma=0.5, reduction="sum"),
    ),
    "kornia-mean": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(z, _t(T_SEG), ALPHA, GAMMA, reduction="mean"),
        lambda z: _scaled(
            ml.focal_loss_value_and_grad(
                z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="sum"
            ),
            1 / (C * PIXELS),
        ),
        lambda z: (
            _mlt().focal_loss(z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="sum")
            / (C * PIXELS)
        ),
    ),
    "kornia-ignore-index": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(
            z, _t(T_IGN), ALPHA, GAMMA, reduction="mean", ignore_index=IGNORE
        ),
        lambda z: _scaled(
            ml.focal_loss_value_and_grad(
                z, T_IGN, axis=1, alpha=ALPHA, gamma=GAMMA, ignore_index=IGNORE, reduction="sum"
            ),
            1 / (C * PIXELS),
        ),
        lambda z: (
            _mlt().focal_loss(
                z, _t(T_IGN), alpha=ALPHA, gamma=GAMMA, ignore_index=IGNORE, reduction="sum"
            )
            / (C * PIXELS)
        ),
    ),
    "kornia-weight": TorchRow(
        seg_logits,
        lambda z: _kornia_focal()(
            z, _t(T_SEG), ALPHA, GAMMA, reduction="sum", weight=_t(np.array(CLASS_WEIGHT))
        ),
        lambda z: ml.focal_loss_value_and_grad(
            z,
            T_SEG,
            axis=1,
            alpha=list(np.array([1 - ALPHA] + [ALPHA] * (C - 1)) * CLASS_WEIGHT),
            gamma=GAMMA,
            reduction="sum",
        ),
        lambda z: _mlt().focal_loss(
            z,
            _t(T_SEG),
            alpha=list(np.array([1 - ALPHA] + [ALPHA] * (C - 1)) * CLASS_WEIGHT),
            gamma=GAMMA,
            reduction="sum",
        ),
    ),
    # --- MONAI FocalLoss(use_softmax=True, to_onehot_y=True, ...), float32 inside
    "monai-none": TorchRow(
        seg_logits,
        lambda z: _monai_focal(gamma=GAMMA, alpha=ALPHA, reduction="none")(
            z, _monai_target(T_SEG)
        ).sum(1),
        lambda z: ml.focal_loss_value_and_grad(
            z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="none"
        ),
        ours_torch=lambda z: _mlt().focal_loss(
            z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="none"
        ),
        tol=F32,
    ),
    "monai-mean": TorchRow(
        seg_logits,
        lambda z: _monai_focal(gamma=GAMMA, alpha=ALPHA)(z, _monai_target(T_SEG)),
        lambda z: _scaled(
            ml.focal_loss_value_and_grad(
                z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="sum"
            ),
            1 / (C * PIXELS),
        ),
        ours_torch=lambda z: (
            _mlt().focal_loss(z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="sum")
            / (C * PIXELS)
        ),
        tol=F32,
    ),
    "monai-mean-ignore-index": TorchRow(
        seg_logits,
        lambda z: _monai_focal(gamma=GAMMA, alpha=ALPHA, ignore_index=IGNORE)(
            z, _monai_target(T_IGN)
        ),
        lambda z: ml.focal_loss_value_and_grad(
            z, T_IGN, axis=1, alpha=ALPHA, gamma=GAMMA, ignore_index=IGNORE
        ),
        ours_torch=lambda z: _mlt().focal_loss(
            z, _t(T_IGN), alpha=ALPHA, gamma=GAMMA, ignore_index=IGNORE
        ),
        tol=F32,
    ),
    "monai-sum": TorchRow(
        seg_logits,
        lambda z: _monai_focal(gamma=GAMMA, alpha=ALPHA, reduction="sum")(z, _monai_target(T_SEG)),
        lambda z: _scaled(
            ml.focal_loss_value_and_grad(
                z, T_SEG, axis=1, alpha=ALPHA, gamma=GAMMA, reduction="sum"
            ),
            1 / (H * W),
        ),
        ours_torch=lambda z: (
            _mlt().focal_loss(z, _t(T_SEG), alpha=ALPHA, gamma=GAMMA, reduction="sum") / (H * W)
        ),
        tol=F32,
    ),
    "monai-weight": TorchRow(
        seg_logits,
        lambda z: _monai_focal(gamma=GAMMA, alpha=ALPHA_VECTOR, weight=CLASS_WEIGHT)(
            z, _monai_target(T_SEG)
        ),
        lambda z: _scaled(
            ml.focal_loss_value_and_grad(
                z,
                T_SEG,
                axis=1,
                alpha=list(np.array(ALPHA_VECTOR) * CLASS_WEIGHT),
                gamma=GAMMA,
                reduction="sum",
            ),
            1 / (C * PIXELS),
        ),
        ours_torch=lambda z: (
            _mlt().focal_loss(
                z,
                _t(T_SEG),
                alpha=list(np.array(ALPHA_VECTOR) * CLASS_WEIGHT),
                gamma=GAMMA,
                reduction="sum",
            )
            / (C * PIXELS)
        ),
        tol=F32,
    ),
    "monai-probabilities": TorchRow(
        seg_logits,
        lambda z: (
            pytest.importorskip("monai.losses")
            .FocalLoss(use_softmax=True, gamma=GAMMA, alpha=ALPHA_VECTOR, reduction="none")(
                z, _t(soft_target(1))
            )
            .sum(1)
        ),
        lambda z: ml.focal_loss_value_and_grad(
            z, soft_target(1), axis=1, alpha=ALPHA_VECTOR, gamma=GAMMA, reduction="none"
        ),
        ours_torch=lambda z: _mlt().focal_loss(
            z, _t(soft_target(1)), alpha=ALPHA_VECTOR, gamma=GAMMA, reduction="none"
        ),
        tol=F32,
    ),
    # --- the blog-style FocalLoss(gamma, alpha=[α, 1-α])
    "blog-alpha-list": TorchRow(
        lambda: flat_logits()[:, :2],
        lambda z: BlogFocalLoss(gamma=GAMMA, alpha=[ALPHA, 1 - ALPHA])(z, _t(flat_target() % 2)),
        lambda z: ml.focal_loss_value_and_grad(
            z, flat_target() % 2, axis=1, gamma=GAMMA, alpha=[ALPHA, 1 - ALPHA]
        ),
        lambda z: _mlt().FocalLoss(gamma=GAMMA, alpha=[ALPHA, 1 - ALPHA])(z, _t(flat_target() % 2)),
    ),
    "blog-alpha-scalar": TorchRow(
        lambda: flat_logits()[:, :2],
        lambda z: BlogFocalLoss(gamma=GAMMA, alpha=ALPHA)(z, _t(flat_target() % 2)),
        lambda z: ml.focal_loss_value_and_grad(
            z, flat_target() % 2, axis=1, gamma=GAMMA, alpha=[ALPHA, 1 - ALPHA]
        ),
        lambda z: _mlt().FocalLoss(gamma=GAMMA, alpha=[ALPHA, 1 - ALPHA])(z, _t(flat_target() % 2)),
    ),
    "blog-multiclass-sum": TorchRow(
        seg_logits,
        lambda z: BlogFocalLoss(gamma=0.5, alpha=ALPHA_VECTOR, size_average=False)(z, _t(T_SEG)),
        lambda z: ml.focal_loss_value_and_grad(
            z, T_SEG, axis=1, gamma=0.5, alpha=ALPHA_VECTOR, reduction="sum"
        ),
        lambda z: _mlt().FocalLoss(gamma=0.5, alpha=ALPHA_VECTOR, reduction="sum")(z, _t(T_SEG)),
    ),
}


def _torch_value_and_grad(function: Callable[[Any], Any], logits: np.ndarray) -> tuple[Any, Any]:
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = function(z)
    loss.sum().backward()
    return loss.detach().to(torch.float64).numpy(), z.grad.numpy()


@pytest.mark.parametrize("row", sorted(TORCH_ROWS))
def test_torch_based_peer_matches_the_reference(row: str) -> None:
    case = TORCH_ROWS[row]
    logits = case.logits()
    peer_value, peer_grad = _torch_value_and_grad(case.peer, logits)
    value, grad = case.ours(logits)
    tol = case.tol or F64
    assert_close(peer_value, value, tol)
    assert_close(peer_grad, grad, tol)


@pytest.mark.parametrize("row", sorted(r for r in TORCH_ROWS if TORCH_ROWS[r].ours_torch))
def test_torch_based_peer_matches_multiloss_torch(row: str) -> None:
    case = TORCH_ROWS[row]
    logits = case.logits()
    peer_value, peer_grad = _torch_value_and_grad(case.peer, logits)
    value, grad = _torch_value_and_grad(case.ours_torch, logits)
    assert_close(value, peer_value, case.tol or F64)
    assert_close(grad, peer_grad, case.tol or F64)


# ------------------------------------------------------------ rows that differ: PyTorch


def test_ce_all_ignored() -> None:
    """pytorch#70348: a mean over nothing is NaN in PyTorch, 0.0 with zero gradient here."""
    logits = flat_logits()
    target = np.full(6, IGNORE)
    z = torch.tensor(logits, requires_grad=True)
    peer = F.cross_entropy(z, _t(target), ignore_index=IGNORE)
    peer.backward()
    assert math.isnan(peer.item())
    value, grad = ml.cross_entropy_value_and_grad(logits, target, ignore_index=IGNORE)
    assert float(value) == 0.0
    assert not np.any(grad)
    empty = ml.cross_entropy(np.zeros((0, C)), np.zeros(0, dtype=np.int64))
    assert float(empty) == 0.0
    assert math.isnan(F.cross_entropy(torch.zeros(0, C), torch.zeros(0, dtype=torch.long)))


def test_ce_zero_weight_infinite_term() -> None:
    """A class of weight 0 whose logit is -inf: PyTorch 0·inf = NaN, multiloss counts nothing."""
    logits = np.array([[-np.inf, 0.0, 1.0], [0.5, 0.2, 0.1]])
    target = np.array([0, 1])
    weight = [0.0, 1.0, 1.0]
    peer = F.cross_entropy(_t(logits), _t(target), weight=_t(np.array(weight)), reduction="sum")
    assert math.isnan(peer.item())
    value = ml.cross_entropy(logits, target, weight=weight, reduction="sum")
    expected = -np.log(np.exp(0.2) / np.exp([0.5, 0.2, 0.1]).sum())
    assert_close(value, expected, F64)


def test_ce_float16_mean() -> None:
    """A float16 mean whose sum passes 65504: inf in PyTorch, computed in float32 here."""
    logits = np.zeros((2000, 2), dtype=np.float16)
    logits[:, 0] = 40.0
    target = np.ones(2000, dtype=np.int64)
    peer = F.cross_entropy(_t(logits), _t(target))
    assert math.isinf(peer.item())
    value = ml.cross_entropy(logits, target, dtype=None)
    assert value.dtype == np.float16
    assert float(value) == 40.0


# ------------------------------------------------------- rows that differ: γ < 1 NaN


def test_torchvision_gamma_below_one() -> None:
    """(1 - p_t)**γ has an infinite slope at p_t = 1 for γ < 1: NaN gradient in torchvision's
    formula (kornia#918, optax#1267 for the same form); finite and exact here."""
    logits = np.array([-100.0, -100.0, 100.0, 100.0, 40.0, -40.0])
    target = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    z = torch.tensor(logits, requires_grad=True)
    torchvision_sigmoid_focal_loss(z, _t(target), gamma=0.5, reduction="sum").backward()
    saturated = (logits > 0) == (target > 0)
    assert torch.isnan(z.grad[_t(saturated)]).all()
    assert not torch.isnan(z.grad[_t(~saturated)]).any()
    grad = ml.sigmoid_focal_loss_grad(logits, target, gamma=0.5, reduction="sum")
    assert np.all(np.isfinite(grad))
    # Where p_t rounds to 1 the exact gradient is tiny, not NaN: α_t·σ(-|x|)^(γ+1)·(…) ≈ 0.
    assert np.all(np.abs(grad[saturated]) < 1e-20)
    # Away from saturation both agree.
    assert_close(z.grad[_t(~saturated)].numpy(), grad[~saturated], F64)


def test_blog_gamma_below_one() -> None:
    """The blog class differentiates (1 - pt)**γ at pt = 1 for γ < 1: NaN
    (clcarwin/focal_loss_pytorch#13); multiloss is finite there."""
    logits = np.array([[40.0, -40.0], [0.3, -0.2]])
    target = np.array([0, 1])
    z = torch.tensor(logits, requires_grad=True)
    BlogFocalLoss(gamma=0.5)(z, _t(target)).backward()
    assert torch.isnan(z.grad[0]).all()
    grad = ml.focal_loss_grad(logits, target, axis=1, gamma=0.5)
    assert np.all(np.isfinite(grad))
    assert_close(z.grad[1].numpy(), grad[1], F64)


def test_blog_detached_pt() -> None:
    """The original blog class detaches pt: equal loss, but its gradient is
    α_t·(1-p_t)^γ·(p - onehot)/N, which misses the derivative of the modulating factor."""
    logits = seg_logits()
    target = T_SEG
    z = torch.tensor(logits, requires_grad=True)
    loss = BlogFocalLoss(gamma=GAMMA, alpha=ALPHA_VECTOR, detach_pt=True)(z, _t(target))
    loss.backward()
    value, grad = ml.focal_loss_value_and_grad(
        logits, target, axis=1, gamma=GAMMA, alpha=ALPHA_VECTOR
    )
    assert_close(loss.item(), value, F64)
    assert not np.allclose(z.grad.numpy(), grad, rtol=1e-3)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p_t = np.take_along_axis(p, target[:, None], axis=1)
    alpha_t = np.asarray(ALPHA_VECTOR)[target][:, None]
    detached = alpha_t * (1 - p_t) ** GAMMA * (p - onehot(target, axis=1)) / target.size
    assert_close(z.grad.numpy(), detached, F64)
    # γ = 0 is cross-entropy, where the detached factor is 1 and the gradients agree.
    z.grad = None
    BlogFocalLoss(gamma=0.0, alpha=ALPHA_VECTOR, detach_pt=True)(z, _t(target)).backward()
    grad0 = ml.focal_loss_grad(logits, target, axis=1, gamma=0.0, alpha=ALPHA_VECTOR)
    assert_close(z.grad.numpy(), grad0, F64)


# ----------------------------------------------------------------------------------- optax


def _jax() -> tuple[Any, Any]:
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    if not jax.config.jax_enable_x64:  # tests/conftest.py turns it on for the session
        pytest.skip("float64 JAX is needed to compare with the float64 reference")
    return jax, jax.numpy


def _jax_value_and_grad(
    function: Callable[[Any], Any], logits: np.ndarray, dtype: Any = None
) -> tuple[Any, Any]:
    jax, jnp = _jax()
    z = jnp.asarray(logits, dtype=dtype or jnp.float64)
    value = function(z)
    grad = jax.grad(lambda a: function(a).sum())(z)
    return np.asarray(value, dtype=np.float64), np.asarray(grad, dtype=np.float64)


def _optax() -> Any:
    return pytest.importorskip("optax")


@dataclass(frozen=True)
class JaxRow:
    """A peer computed in JAX and the multiloss call of the table, as ``multiloss.numpy``
    (``ours``: logits -> (loss, ∂Σloss/∂logits)) and as ``multiloss.jax`` (``ours_jax``)."""

    logits: Callable[[], np.ndarray]
    peer: Callable[[Any], Any]
    ours: Callable[[np.ndarray], tuple[Any, Any]]
    ours_jax: Callable[[Any], Any]


def _mlj() -> Any:
    return pytest.importorskip("multiloss.jax")


OPTAX_ROWS: dict[str, JaxRow] = {
    "optax-softmax-cross-entropy": JaxRow(
        flat_logits,
        lambda z: _optax().softmax_cross_entropy(z, soft_target(-1)),
        lambda z: ml.cross_entropy_value_and_grad(z, soft_target(-1), reduction="none"),
        lambda z: _mlj().cross_entropy(z, soft_target(-1), reduction="none"),
    ),
    "optax-integer-labels": JaxRow(
        flat_logits,
        lambda z: _optax().softmax_cross_entropy_with_integer_labels(z, flat_target()),
        lambda z: ml.cross_entropy_value_and_grad(z, flat_target(), reduction="none"),
        lambda z: _mlj().cross_entropy(z, flat_target(), reduction="none"),
    ),
    "optax-integer-labels-where": JaxRow(
        flat_logits,
        lambda z: (
            _optax()
            .softmax_cross_entropy_with_integer_labels(
                z, flat_target(), where=np.arange(6) % 3 != 0
            )
            .sum()
            / (np.arange(6) % 3 != 0).sum()
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, np.where(np.arange(6) % 3 != 0, flat_target(), -100)
        ),
        lambda z: _mlj().cross_entropy(z, np.where(np.arange(6) % 3 != 0, flat_target(), -100)),
    ),
    "optax-smooth-labels": JaxRow(
        flat_logits,
        lambda z: _optax().softmax_cross_entropy(
            z, _optax().smooth_labels(onehot(flat_target()), EPS)
        ),
        lambda z: ml.cross_entropy_value_and_grad(
            z, flat_target(), label_smoothing=EPS, reduction="none"
        ),
        lambda z: _mlj().cross_entropy(z, flat_target(), label_smoothing=EPS, reduction="none"),
    ),
    "optax-sigmoid-binary-cross-entropy": JaxRow(
        binary_logits,
        lambda z: _optax().sigmoid_binary_cross_entropy(z, binary_target()),
        lambda z: ml.binary_cross_entropy_value_and_grad(z, binary_target(), reduction="none"),
        lambda z: _mlj().binary_cross_entropy(z, binary_target(), reduction="none"),
    ),
    "optax-sigmoid-focal": JaxRow(
        binary_logits,
        lambda z: _optax().sigmoid_focal_loss(z, binary_target(), alpha=ALPHA, gamma=GAMMA),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(
            z, binary_target(), alpha=ALPHA, gamma=GAMMA, reduction="none"
        ),
        lambda z: _mlj().sigmoid_focal_loss(
            z, binary_target(), alpha=ALPHA, gamma=GAMMA, reduction="none"
        ),
    ),
    "optax-sigmoid-focal-default-alpha": JaxRow(
        binary_logits,
        lambda z: _optax().sigmoid_focal_loss(z, binary_target(), gamma=0.5),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(
            z, binary_target(), alpha=None, gamma=0.5, reduction="none"
        ),
        lambda z: _mlj().sigmoid_focal_loss(
            z, binary_target(), alpha=None, gamma=0.5, reduction="none"
        ),
    ),
}


@pytest.mark.parametrize("row", sorted(OPTAX_ROWS))
def test_optax_matches_the_reference(row: str) -> None:
    case = OPTAX_ROWS[row]
    z = case.logits()
    peer_value, peer_grad = _jax_value_and_grad(case.peer, z)
    value, grad = case.ours(z)
    assert_close(peer_value, value, F64)
    assert_close(peer_grad, grad, F64)


@pytest.mark.parametrize("row", sorted(OPTAX_ROWS))
def test_optax_matches_multiloss_jax(row: str) -> None:
    case = OPTAX_ROWS[row]
    z = case.logits()
    peer_value, peer_grad = _jax_value_and_grad(case.peer, z)
    value, grad = _jax_value_and_grad(case.ours_jax, z)
    assert_close(value, peer_value, F64)
    assert_close(grad, peer_grad, F64)


def test_optax_saturated_sigmoid_focal_gradient_is_finite() -> None:
    """optax#1267 (NaN gradients for γ < 1 at saturated logits) is fixed in optax ≥ 0.2.5
    (log-space focal weight): both are finite and agree there."""
    logits = np.array([-100.0, -100.0, 100.0, 100.0, 40.0, -40.0])
    target = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    peer_value, peer_grad = _jax_value_and_grad(
        lambda z: _optax().sigmoid_focal_loss(z, target, gamma=0.5), logits
    )
    value, grad = ml.sigmoid_focal_loss_value_and_grad(
        logits, target, alpha=None, gamma=0.5, reduction="none"
    )
    assert np.all(np.isfinite(peer_grad))
    assert_close(peer_value, value, F64)
    assert_close(peer_grad, grad, {"rtol": 1e-9, "atol": 1e-300})


def test_optax_integer_labels_shift() -> None:
    """optax's integer-label cross-entropy subtracts the logsumexp at the logits' own scale:
    a shared offset of 1e8 in float32 makes a uniform prediction cost 0 (optax PR #1792).
    multiloss subtracts the row maximum first."""
    _, jnp = _jax()
    optax = _optax()
    logits = np.full((1, 3), 1e8, dtype=np.float32)
    peer = optax.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits), jnp.array([0], dtype=jnp.int32)
    )
    assert float(peer[0]) == 0.0
    ours = ml.cross_entropy(logits, np.array([0]), dtype=None, reduction="none")
    assert ours.dtype == np.float32
    assert abs(float(ours[0]) - math.log(3)) < 1e-6


# ----------------------------------------------------------------------------------- Keras


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    _jax()
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"Keras runs on {keras.backend.backend()}; these rows use its JAX backend")
    return keras


KERAS_ROWS: dict[str, JaxRow] = {
    "keras-categorical-focal": JaxRow(
        flat_logits,
        lambda z: _keras().losses.CategoricalFocalCrossentropy(
            alpha=ALPHA, gamma=GAMMA, from_logits=True, label_smoothing=EPS
        )(onehot(flat_target()).astype(np.float32), z),
        lambda z: ml.focal_loss_value_and_grad(
            z, onehot(flat_target()), alpha=[ALPHA] * C, gamma=GAMMA, label_smoothing=EPS
        ),
        lambda z: _mlj().focal_loss(
            z,
            onehot(flat_target()).astype(np.float32),
            alpha=[ALPHA] * C,
            gamma=GAMMA,
            label_smoothing=EPS,
        ),
    ),
    "keras-binary-focal": JaxRow(
        moderate_logits,
        lambda z: _keras().losses.BinaryFocalCrossentropy(gamma=GAMMA, from_logits=True)(
            binary_target().astype(np.float32), z
        ),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(z, binary_target(), alpha=None, gamma=GAMMA),
        lambda z: _mlj().sigmoid_focal_loss(
            z, binary_target().astype(np.float32), alpha=None, gamma=GAMMA
        ),
    ),
    "keras-binary-focal-class-balancing": JaxRow(
        moderate_logits,
        lambda z: _keras().losses.BinaryFocalCrossentropy(
            apply_class_balancing=True,
            alpha=ALPHA,
            gamma=GAMMA,
            from_logits=True,
            label_smoothing=EPS,
        )(binary_target().astype(np.float32), z),
        lambda z: ml.sigmoid_focal_loss_value_and_grad(
            z, binary_target() * (1 - EPS) + EPS / 2, alpha=ALPHA, gamma=GAMMA
        ),
        lambda z: _mlj().sigmoid_focal_loss(
            z, (binary_target() * (1 - EPS) + EPS / 2).astype(np.float32), alpha=ALPHA, gamma=GAMMA
        ),
    ),
}


@pytest.mark.parametrize("row", sorted(KERAS_ROWS))
def test_keras_matches_the_reference(row: str) -> None:
    case = KERAS_ROWS[row]
    z = case.logits().astype(np.float32)
    _keras()
    peer_value, peer_grad = _jax_value_and_grad(case.peer, z, dtype=np.float32)
    value, grad = case.ours(z.astype(np.float64))
    assert_close(peer_value, value, F32)
    assert_close(peer_grad, grad, F32)


@pytest.mark.parametrize("row", sorted(KERAS_ROWS))
def test_keras_matches_multiloss_jax(row: str) -> None:
    case = KERAS_ROWS[row]
    z = case.logits().astype(np.float32)
    _keras()
    peer_value, peer_grad = _jax_value_and_grad(case.peer, z, dtype=np.float32)
    value, grad = _jax_value_and_grad(case.ours_jax, z, dtype=np.float32)
    assert_close(value, peer_value, F32)
    assert_close(grad, peer_grad, F32)


def test_keras_clipping() -> None:
    """Keras clips probabilities to [1e-7, 1 - 1e-7]: a confidently wrong logit costs at
    most -log(1e-7) ≈ 16.1 and gets no gradient. multiloss never clips."""
    keras = _keras()
    logits = np.array([[20.0, 0.0, 0.0]], dtype=np.float32)
    target = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    loss = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=0.0, from_logits=True)
    peer_value, peer_grad = _jax_value_and_grad(lambda z: loss(target, z), logits, np.float32)
    value, grad = ml.focal_loss_value_and_grad(logits, target, alpha=None, gamma=0.0)
    assert abs(float(peer_value) - (-math.log(1e-7))) < 1e-3
    assert abs(float(value) - (20.0 + math.log(1 + 2 * math.exp(-20.0)))) < 1e-12
    assert not np.any(peer_grad)
    assert_close(grad, [[1.0, -1.0, 0.0]], {"rtol": 0, "atol": 1e-8})
    binary = keras.losses.BinaryFocalCrossentropy(gamma=0.0, from_logits=True)
    peer_value, peer_grad = _jax_value_and_grad(
        lambda z: binary(np.zeros((1, 1), np.float32), z), np.full((1, 1), 30.0, np.float32)
    )
    assert peer_value < 16.2
    assert not np.any(peer_grad)
    value, grad = ml.sigmoid_focal_loss_value_and_grad([[30.0]], [[0.0]], alpha=None, gamma=0.0)
    assert abs(float(value) - 30.0) < 1e-12
    assert abs(float(grad[0, 0]) - 1.0) < 1e-12


# ------------------------------------------------------------------------------ the table


DIFFERENCE_TESTS = {
    "ce-all-ignored": test_ce_all_ignored,
    "ce-zero-weight-inf": test_ce_zero_weight_infinite_term,
    "ce-float16-mean": test_ce_float16_mean,
    "torchvision-gamma-below-one": test_torchvision_gamma_below_one,
    "blog-gamma-below-one": test_blog_gamma_below_one,
    "blog-detached-pt": test_blog_detached_pt,
    "optax-saturated-focal": test_optax_saturated_sigmoid_focal_gradient_is_finite,
    "optax-integer-labels-shift": test_optax_integer_labels_shift,
    "keras-clipping": test_keras_clipping,
}


def table_row_ids() -> list[str]:
    """The ids in the first column of every table row of docs/parity.md."""
    ids = []
    for line in PARITY_PAGE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|", line)
        if match:
            ids.append(match.group(1))
    return ids


def test_every_table_row_has_a_test_and_every_test_a_row() -> None:
    rows = table_row_ids()
    assert len(rows) == len(set(rows)), "duplicate row ids in docs/parity.md"
    from test_distribution_focal import PARITY_TESTS as DETECTION_ROWS  # issue 24
    from test_new_losses import PARITY_TESTS  # the rows of the losses of round 2

    tested = set(TORCH_ROWS) | set(OPTAX_ROWS) | set(KERAS_ROWS) | set(DIFFERENCE_TESTS)
    tested |= set(PARITY_TESTS) | set(DETECTION_ROWS)
    from test_detection_losses import PARITY_TESTS as DETECTION  # issue 24's sigmoid rows

    tested |= set(DETECTION)
    assert set(rows) - tested == set(), "rows of docs/parity.md without a test"
    assert tested - set(rows) == set(), "tests without a row in docs/parity.md"
