"""The torch adapter's native passes work a cache-sized slab at a time on large inputs:
they must give PyTorch's numbers on every layout that gets split."""

from __future__ import annotations

import pytest
from losses import SIGMOID, SOFTMAX, has_class_axis

torch = pytest.importorskip("torch")

import multiloss.torch as mt  # noqa: E402
from multiloss._core import LOSSES  # noqa: E402
from multiloss._core import SIGMOID as SIGMOID_FAMILY  # noqa: E402
from multiloss.torch import _CHUNK_ELEMENTS  # noqa: E402


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((700, 1000), 1),  # rows split along dim 0; fused kernels (C >= 32)
        ((60000, 10), 1),  # few classes, class axis last: element-wise passes
        ((3, 7, 200, 200), 1),  # (N, C, H, W): one image per slab; fused kernels
        ((20000, 10, 4), 1),  # class axis inner but short trailing dims: element-wise
        ((1000, 700), 0),  # class axis 0: split along dim 1 (strided slabs)
        ((5, 300, 400), -1),  # class axis last, 3-d
    ],
)
@pytest.mark.parametrize("loss", SOFTMAX)
def test_chunked_native_path_matches_pytorch(shape, axis, loss) -> None:
    assert torch.Size(shape).numel() > 2 * _CHUNK_ELEMENTS
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    logits.requires_grad_()
    moved = logits.movedim(axis, 1)  # PyTorch's layout; the other dimensions keep their order
    target_shape = moved.shape[:1] + moved.shape[2:]
    target = torch.randint(0, shape[axis], target_shape, generator=generator)
    target = torch.where(torch.rand(target_shape, generator=generator) < 0.1, 7, target)

    # focal loss with γ = 0 and PolyLoss with ε = 0 are cross-entropy (the same count
    # mean without class weights)
    options = {"focal_loss": {"gamma": 0.0}, "poly_loss": {"epsilon": 0.0}}.get(loss, {})
    ours = getattr(mt, loss)(logits, target, axis=axis, ignore_index=7, **options)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    reference = torch.nn.functional.cross_entropy(moved, target, ignore_index=7)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(ours, reference, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-12, atol=1e-17)


def _textbook_focal(logits, target, gamma):
    """-(1 - p_t)^γ · log p_t per element, by autograd-able PyTorch operations."""
    log_p_t = torch.log_softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    return -((1 - log_p_t.exp()) ** gamma) * log_p_t


@pytest.mark.parametrize("shape", [(64, 40), (4, 40, 8, 8), (64, 10)])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
def test_batched_backward_after_a_native_forward(shape, gamma) -> None:
    """The fused native forward does not form the row max and log-sum-exp; a backward
    that takes the generic path (here batched cotangents, ``is_grads_batched``) recomputes
    them. Every batched gradient must be the textbook one for its cotangent."""
    generator = torch.Generator().manual_seed(2)
    logits = (torch.randn(shape, generator=generator, dtype=torch.float64) * 3).requires_grad_()
    target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=generator)
    loss = mt.focal_loss(logits, target, gamma=gamma, reduction="none")
    reference_logits = logits.detach().requires_grad_()
    reference_loss = _textbook_focal(reference_logits, target, gamma)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-12, atol=1e-15)

    cotangents = torch.randn((3, *loss.shape), generator=generator, dtype=torch.float64)
    (batched,) = torch.autograd.grad(loss, logits, cotangents, is_grads_batched=True)
    for cotangent, gradient in zip(cotangents, batched, strict=True):
        (reference,) = torch.autograd.grad(
            reference_loss, reference_logits, cotangent, retain_graph=True
        )
        torch.testing.assert_close(gradient, reference, rtol=1e-10, atol=1e-13)


SLABBED = tuple(name for name in SIGMOID if LOSSES[name].family is SIGMOID_FAMILY)
"""The losses whose large calls the slab plan splits (the sigmoid family's)."""


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", SLABBED)
def test_chunked_sigmoid_losses_match_the_formula(loss, reduction) -> None:
    """Large sigmoid calls run slab by slab; the numbers are those of the naive formula
    (torchvision's sigmoid focal loss, ``BCEWithLogitsLoss``), values and gradients."""
    shape = (300, 4, 500)
    assert torch.Size(shape).numel() > 2 * _CHUNK_ELEMENTS
    generator = torch.Generator().manual_seed(1)
    logits = (torch.randn(shape, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    if loss == "binary_cross_entropy":
        weight = torch.rand(4, 1, generator=generator, dtype=torch.float64)
        pos_weight = torch.rand(500, generator=generator, dtype=torch.float64) * 3
        ours = mt.binary_cross_entropy(
            logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction
        )
        reference = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, weight=weight, pos_weight=pos_weight, reduction=reduction
        )
    else:
        ours = mt.sigmoid_focal_loss(logits, target, alpha=0.3, gamma=1.5, reduction=reduction)
        p = torch.sigmoid(logits)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        elements = (0.3 * target + 0.7 * (1 - target)) * bce * (1 - p_t) ** 1.5
        reference = {"mean": elements.mean(), "sum": elements.sum(), "none": elements}[reduction]
    cotangent = torch.rand(ours.shape, generator=generator, dtype=torch.float64)
    (ours_grad,) = torch.autograd.grad(ours, logits, cotangent)
    (reference_grad,) = torch.autograd.grad(reference, logits, cotangent)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize(
    ("loss", "shape"),
    [
        ("cross_entropy", (600, 1000)),  # fused kernels
        ("focal_loss", (3, 7, 200, 200)),  # fused kernels, class axis inner
        ("cross_entropy", (60000, 10)),  # element-wise passes
        ("binary_cross_entropy", (600, 1000)),  # sigmoid slabs
        ("sigmoid_focal_loss", (600, 1000)),
    ],
)
def test_16_bit_logits_are_computed_in_float32_slab_by_slab(loss, shape, dtype) -> None:
    """16-bit logits are not copied to float32 as a whole: each slab is. The numbers are
    those of the same call on the logits converted to float32 (loss in float32, returned
    in the input dtype; gradient rounded to the input dtype)."""
    dtype = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(3)
    wide = (torch.randn(shape, generator=generator) * 3).to(dtype).float()
    if has_class_axis(loss):
        target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=generator)
    else:
        target = (torch.rand(shape, generator=generator) < 0.1).float()
    narrow = wide.to(dtype).requires_grad_()
    wide.requires_grad_()
    ours = getattr(mt, loss)(narrow, target)
    reference = getattr(mt, loss)(wide, target)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours, reference.to(dtype), rtol=0, atol=0)
    ours.backward()
    reference.backward()
    assert narrow.grad.dtype == dtype
    torch.testing.assert_close(narrow.grad, wide.grad.to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("loss", ["varifocal_loss", "quality_focal_loss"])
def test_chunked_detection_losses_match_their_oracles(loss) -> None:
    """The varifocal and quality focal losses share the sigmoid family's operands, and so
    its slab plan: a large call's value and gradient are the float64 oracle's."""
    from detection_oracles import np_quality_focal_loss, np_varifocal_loss

    shape = (300, 4, 500)
    assert torch.Size(shape).numel() > 2 * _CHUNK_ELEMENTS
    generator = torch.Generator().manual_seed(3)
    logits = (torch.randn(shape, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    target = target * (torch.rand(shape, generator=generator) < 0.3)
    pos_weight = torch.rand(500, generator=generator, dtype=torch.float64) * 3
    ours = getattr(mt, loss)(logits, target, pos_weight=pos_weight)
    (grad,) = torch.autograd.grad(ours, logits)
    oracle = np_varifocal_loss if loss == "varifocal_loss" else np_quality_focal_loss
    ref, ref_grad = oracle(logits.detach().numpy(), target.numpy(), pos_weight=pos_weight.numpy())
    torch.testing.assert_close(ours.item(), ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, torch.from_numpy(ref_grad), rtol=1e-9, atol=1e-15)
