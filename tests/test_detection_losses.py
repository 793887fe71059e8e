"""Issue 24, the sigmoid side: `weight`, `pos_weight`, `ignore_index`, `label_smoothing` on
every element-wise loss, a per-class `alpha` for sigmoid focal, and the varifocal and
quality focal losses.

Every number is checked against a formula written here (float64 NumPy or torch autograd of
a peer's formula: ultralytics, mmdetection, kornia, MONAI, Keras, timm; their packages do
not install beside torch 2.13), never against the library itself. The generic grids
(tests/losses.py's ALL: values, mpmath accuracy, second order, bad input, every backend)
cover the two new losses through tests/detection_oracles.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from detection_oracles import np_quality_focal_loss, np_varifocal_loss
from oracles import mp_sigmoid_focal_loss, np_asymmetric_loss, np_sigmoid_focal_loss

import multiloss
import multiloss.numpy as mln
from multiloss._core import LOSSES

torch = pytest.importorskip("torch")
import multiloss.torch as mt  # noqa: E402

F = torch.nn.functional
ELEMENT_WISE = tuple(name for name, loss in LOSSES.items() if not loss.has_class_axis)
RNG = np.random.default_rng(24)
X = RNG.normal(scale=3.0, size=(6, 5))
HARD = (RNG.uniform(size=(6, 5)) < 0.4).astype(np.float64)
SOFT = np.where(HARD > 0, RNG.uniform(0.1, 0.95, size=(6, 5)), 0.0)
"""IoU-like soft targets: 0 for a negative, in (0, 1) for a positive."""


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bce(x, y, pw=1.0):
    """-pw·y·log σ(x) - (1 - y)·log(1 - σ(x)), float64."""
    return pw * y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)


def _per_element(name, x, y, **options):
    """The oracle's per-element loss of an element-wise loss (no weights)."""
    if name == "binary_cross_entropy":
        return _bce(x, y)
    oracle = {
        "sigmoid_focal_loss": np_sigmoid_focal_loss,
        "asymmetric_loss": np_asymmetric_loss,
        "varifocal_loss": np_varifocal_loss,
        "quality_focal_loss": np_quality_focal_loss,
    }[name]
    return oracle(x, y, reduction="none", **options)[0]


def _target(name):
    return SOFT if name in ("varifocal_loss", "quality_focal_loss") else HARD


def _torch(array, grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


# ------------------------------------------------------------------ ignore_index


@pytest.mark.parametrize("name", ELEMENT_WISE)
def test_ignore_index_drops_elements_from_the_value_the_gradient_and_the_mean(name):
    target = np.where(RNG.uniform(size=X.shape) < 0.3, 255.0, _target(name))
    counted = target != 255
    reference = np.where(counted, _per_element(name, X, np.where(counted, target, 0.0)), 0.0)
    loss, grad = getattr(mln, f"{name}_value_and_grad")(X, target, ignore_index=255)
    np.testing.assert_allclose(loss, reference.sum() / counted.sum(), rtol=1e-13)
    assert np.all(grad[~counted] == 0)
    none = getattr(mln, name)(X, target, ignore_index=255, reduction="none")
    np.testing.assert_allclose(none, reference, rtol=1e-13, atol=0)
    # the mask recipe: target = where(mask, target, ignore_index)
    recipe = getattr(mln, name)(X, np.where(counted, target, -1), ignore_index=-1)
    np.testing.assert_allclose(recipe, loss, rtol=1e-15)


@pytest.mark.parametrize("name", ELEMENT_WISE)
def test_every_element_ignored_gives_zero_and_a_zero_gradient(name):
    logits = _torch(X, grad=True)
    loss = getattr(mt, name)(logits, torch.full(X.shape, -1.0), ignore_index=-1)
    loss.backward()
    assert loss.item() == 0.0 and bool(torch.all(logits.grad == 0))


# ------------------------------------------------------------------ label smoothing


def test_label_smoothing_is_keras_binary_crossentropy():
    # Keras BinaryCrossentropy(from_logits=True, label_smoothing=ε): y·(1 - ε) + ε/2, then
    # the mean over every element.
    epsilon = 0.2
    smoothed = HARD * (1 - epsilon) + 0.5 * epsilon
    ours = mln.binary_cross_entropy(X, HARD, label_smoothing=epsilon)
    np.testing.assert_allclose(ours, _bce(X, smoothed).mean(), rtol=1e-14)


def test_timm_smoothing_is_a_target_recipe():
    # timm BinaryCrossEntropy(smoothing=ε) of class indices over C classes: one-hot
    # on 1 - ε + ε/C, off ε/C, then BCEWithLogits' mean.
    epsilon, classes = 0.1, X.shape[1]
    labels = RNG.integers(0, classes, size=X.shape[0])
    off = epsilon / classes
    timm_target = np.full(X.shape, off)
    timm_target[np.arange(X.shape[0]), labels] = 1.0 - epsilon + off
    timm = _bce(X, timm_target).mean()
    one_hot = np.eye(classes)[labels]
    recipe = mln.binary_cross_entropy(X, one_hot * (1 - epsilon) + epsilon / classes)
    np.testing.assert_allclose(recipe, timm, rtol=1e-14)


@pytest.mark.parametrize("name", ELEMENT_WISE)
def test_label_smoothing_replaces_the_target(name):
    epsilon = 0.3
    target = _target(name)
    smoothed = target * (1 - epsilon) + 0.5 * epsilon
    ours = getattr(mln, name)(X, target, label_smoothing=epsilon, reduction="none")
    if name == "varifocal_loss":  # the weights read q as given, the cross-entropy q smoothed
        p = _sigmoid(X)
        reference = np.where(target > 0, target, 0.75 * p**2) * _bce(X, smoothed)
    else:
        reference = _per_element(name, X, smoothed)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-300)


# ------------------------------------------------------------------ weight, pos_weight, α


def test_kornia_binary_focal_with_weight_and_pos_weight():
    # kornia.losses.binary_focal_loss_with_logits(pred, target, alpha, gamma, "mean",
    # pos_weight=(C,), weight=(C,)) on (N, C, H, W): per class along axis 1,
    # pos_weight·α·(1-p)^γ·y·(-log p) + (1-α)·p^γ·(1-y)·(-log(1-p)), times weight.
    shape, alpha, gamma = (2, 3, 2, 2), 0.3, 1.5
    x = RNG.normal(scale=2.0, size=shape)
    y = (RNG.uniform(size=shape) < 0.5).astype(np.float64)
    weight, pos_weight = RNG.uniform(0.5, 2, size=3), RNG.uniform(0.5, 3, size=3)
    z, t = _torch(x, grad=True), _torch(y)
    w, pw = _torch(weight).view(3, 1, 1), _torch(pos_weight).view(3, 1, 1)
    p = torch.sigmoid(z)
    positive = -alpha * pw * (1 - p) ** gamma * t * F.logsigmoid(z)
    negative = -(1 - alpha) * p**gamma * (1 - t) * F.logsigmoid(-z)
    kornia = (w * (positive + negative)).mean()
    (kornia_grad,) = torch.autograd.grad(kornia, z)
    zz = _torch(x, grad=True)
    ours = mt.sigmoid_focal_loss(zz, t, alpha=alpha, gamma=gamma, weight=w, pos_weight=pw)
    ours.backward()
    torch.testing.assert_close(ours, kornia, rtol=1e-13, atol=0)
    torch.testing.assert_close(zz.grad, kornia_grad, rtol=1e-12, atol=1e-15)


def _peer_check(peer, ours_fn, x, *args):
    """Values and gradients of a peer's torch formula and ours, both float64."""
    z = _torch(x, grad=True)
    value = peer(z, *args)
    (grad,) = torch.autograd.grad(value, z)
    zz = _torch(x, grad=True)
    mine = ours_fn(zz, *args)
    mine.backward()
    torch.testing.assert_close(mine, value, rtol=1e-13, atol=1e-300)
    torch.testing.assert_close(zz.grad, grad, rtol=1e-11, atol=1e-15)


ALPHA = np.array([0.1, 0.25, 0.5, 0.75, 0.9])


def test_per_class_alpha_is_ultralytics_focal_loss():
    # ultralytics FocalLoss(gamma, alpha=tensor of C)(pred, label): BCE·(1 - p_t)^γ·
    # (y·α_c + (1 - y)(1 - α_c)), then .mean(1).sum()
    def ultralytics(z, label, alpha):
        p = z.sigmoid()
        p_t = label * p + (1 - label) * (1 - p)
        loss = F.binary_cross_entropy_with_logits(z, label, reduction="none")
        loss = loss * (1.0 - p_t) ** 2.0 * (label * alpha + (1 - label) * (1 - alpha))
        return loss.mean(1).sum()

    def ours(z, label, alpha):
        return mt.sigmoid_focal_loss(z, label, alpha=alpha, reduction="none").mean(1).sum()

    _peer_check(ultralytics, ours, X, _torch(HARD), _torch(ALPHA))
    # a scalar α is the constant vector
    scalar = mln.sigmoid_focal_loss_value_and_grad(X, SOFT, alpha=0.3)
    vector = mln.sigmoid_focal_loss_value_and_grad(X, SOFT, alpha=[0.3] * 5)
    np.testing.assert_allclose(vector[0], scalar[0], rtol=1e-15)
    np.testing.assert_allclose(vector[1], scalar[1], rtol=1e-15)


def test_monai_sigmoid_focal_is_the_pos_weight_recipe():
    # MONAI 1.6 FocalLoss(use_softmax=False, gamma, alpha=(C,)): BCE·(1 - p_t)^γ with α_c
    # on positives and 1 on negatives (issue 24): alpha=None, pos_weight=α.
    def monai(z, label, alpha):
        loss = F.binary_cross_entropy_with_logits(z, label, reduction="none")
        modulating = torch.exp(2.0 * F.logsigmoid(-z * (label * 2 - 1)))
        return (modulating * loss * (label * alpha + (1 - label))).mean()

    def ours(z, label, alpha):
        return mt.sigmoid_focal_loss(z, label, alpha=None, gamma=2.0, pos_weight=alpha)

    _peer_check(monai, ours, X, _torch(HARD), _torch(ALPHA))


def test_asymmetric_loss_weights_its_positive_term():
    weight, pos_weight = RNG.uniform(0.5, 2, size=5), RNG.uniform(0.5, 3, size=5)
    y = RNG.uniform(size=X.shape)
    positive = np_asymmetric_loss(X, np.ones_like(X), gamma_pos=1.0, reduction="none")[0]
    negative = np_asymmetric_loss(X, np.zeros_like(X), gamma_pos=1.0, reduction="none")[0]
    reference = weight * (pos_weight * y * positive + (1 - y) * negative)
    ours = mln.asymmetric_loss(
        X, y, gamma_pos=1.0, weight=weight, pos_weight=pos_weight, reduction="none"
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-13)


# ------------------------------------------------------------------ varifocal, quality focal


def test_varifocal_is_mmdetection_and_ultralytics():
    # mmdetection varifocal_loss(pred, target, iou_weighted=True, reduction="none"):
    # BCE(x, q)·(q·[q > 0] + α·|σ - q|^γ·[q ≤ 0]); ultralytics VarifocalLoss()(x, q, label):
    # weight α·σ^γ·(1 - label) + q·label, BCE·weight, .mean(1).sum(). Neither detaches the
    # weight, so the gradient runs through α σ^γ, as ours does.
    def mmdet(z, q):
        focal = q * (q > 0) + 0.75 * (z.sigmoid() - q).abs().pow(2.0) * (q <= 0)
        return (F.binary_cross_entropy_with_logits(z, q, reduction="none") * focal).sum()

    def ultralytics(z, q):
        label = (q > 0).to(q.dtype)
        weight = 0.75 * z.sigmoid().pow(2.0) * (1 - label) + q * label
        loss = F.binary_cross_entropy_with_logits(z, q, reduction="none") * weight
        return loss.mean(1).sum()

    _peer_check(mmdet, lambda z, q: mt.varifocal_loss(z, q, reduction="sum"), X, _torch(SOFT))

    def ours(z, q):
        return mt.varifocal_loss(z, q, reduction="none").mean(1).sum()

    _peer_check(ultralytics, ours, X, _torch(SOFT))


def test_quality_focal_is_mmdetection():
    # mmdetection quality_focal_loss(pred, (label, score), beta): every class as a negative
    # (BCE(x, 0)·σ^β), the label's class BCE(x, score)·|score - σ|^β; summed over classes.
    # Label C is the background.
    classes = X.shape[1]
    labels = torch.tensor([0, 3, 5, 1, 5, 4])
    scores = torch.tensor([0.9, 0.4, 0.0, 0.7, 0.0, 0.55], dtype=torch.float64)

    def mmdet(z, labels, scores):
        sigma = z.sigmoid()
        loss = F.binary_cross_entropy_with_logits(z, torch.zeros_like(z), reduction="none")
        loss = loss * sigma.pow(2.0)
        pos = ((labels >= 0) & (labels < classes)).nonzero().squeeze(1)
        index = labels[pos]
        positive = F.binary_cross_entropy_with_logits(z[pos, index], scores[pos], reduction="none")
        loss = loss.index_put((pos, index), positive * (scores[pos] - sigma[pos, index]).abs() ** 2)
        return loss.sum(1)

    def ours(z, labels, scores):
        dense = torch.zeros(z.shape, dtype=z.dtype)
        keep = labels < classes
        dense[keep.nonzero().squeeze(1), labels[keep]] = scores[keep]
        return mt.quality_focal_loss(z, dense, reduction="none").sum(1)

    def total(function):
        return lambda z, labels, scores: function(z, labels, scores).sum()

    _peer_check(total(mmdet), total(ours), X, labels, scores)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_quality_focal_of_hard_targets_is_sigmoid_focal(beta):
    x = np.concatenate([X.ravel(), [40.0, -40.0, 300.0, -300.0]])
    y = np.concatenate([HARD.ravel(), [1.0, 0.0, 1.0, 0.0]])
    ours = mln.quality_focal_loss_value_and_grad(x, y, beta=beta, reduction="none")
    focal = mp_sigmoid_focal_loss(x, y, alpha=None, gamma=beta, reduction="none")
    np.testing.assert_allclose(ours[0], focal[0], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(ours[1], focal[1], rtol=1e-12, atol=1e-300)


def test_saturated_logits_stay_finite():
    """γ, β < 1 and q ∈ {0, 1} at saturated logits: finite values, gradients, curvatures."""
    x = torch.tensor([-800.0, -60.0, -17.0, 0.0, 17.0, 60.0, 800.0], dtype=torch.float64)
    x = x.repeat(3)
    q = torch.tensor([0.0] * 7 + [1.0] * 7 + [0.4] * 7, dtype=torch.float64)
    for function in (
        functools.partial(mt.varifocal_loss, gamma=0.5),
        functools.partial(mt.quality_focal_loss, beta=0.5),
        functools.partial(mt.quality_focal_loss, beta=1.5),
    ):
        z = x.clone().requires_grad_()
        loss = function(z, q, reduction="sum")
        (grad,) = torch.autograd.grad(loss, z, create_graph=True)
        (curvature,) = torch.autograd.grad(grad.sum(), z)
        for value in (loss, grad, curvature):
            assert bool(torch.all(torch.isfinite(value)))


@pytest.mark.parametrize("name", ["varifocal_loss", "quality_focal_loss"])
def test_gradcheck_and_gradgradcheck(name):
    x = _torch(np.concatenate([X[:2].ravel(), [-12.0, 12.0]]), grad=True)
    q = torch.cat([_torch(SOFT[:2].ravel()), torch.tensor([0.0, 1.0], dtype=torch.float64)])
    own = {"gamma": 0.5} if name == "varifocal_loss" else {"beta": 1.5}
    weight = torch.linspace(0.5, 1.5, x.numel(), dtype=torch.float64)

    def loss(z):
        return getattr(mt, name)(
            z, q, weight=weight, pos_weight=2.0, label_smoothing=0.1, ignore_index=None, **own
        )

    assert torch.autograd.gradcheck(loss, (x,))
    assert torch.autograd.gradgradcheck(loss, (x,))
    # first order with respect to the target, the weight and pos_weight
    qq = _torch(np.clip(SOFT[:2].ravel(), 0.2, 0.9), grad=True)
    w = _torch(np.ones(qq.shape[0]), grad=True)
    xx = x.detach()[: qq.shape[0]]
    assert torch.autograd.gradcheck(
        lambda t, w: getattr(mt, name)(xx, t, weight=w, pos_weight=w * 2, **own), (qq, w)
    )


@pytest.mark.parametrize("name", ["varifocal_loss", "quality_focal_loss"])
def test_jax_check_grads_to_second_order(name):
    jax = pytest.importorskip("jax")
    from jax.test_util import check_grads

    import multiloss.jax as mlj

    q = jax.numpy.asarray(np.concatenate([SOFT[:2].ravel(), [0.0, 1.0]]))  # float64 (conftest)
    x = jax.numpy.asarray(np.concatenate([X[:2].ravel(), [-12.0, 12.0]]))
    own = {"gamma": 0.5} if name == "varifocal_loss" else {"beta": 2.0}
    function = functools.partial(
        getattr(mlj, name), target=q, pos_weight=2.0, label_smoothing=0.1, **own
    )
    check_grads(function, (x,), order=2, modes=("fwd", "rev"))


def test_target_outside_the_unit_interval_under_jit_is_nan():
    jax = pytest.importorskip("jax")
    import multiloss.jax as mlj

    target = SOFT.copy()
    target[0, 0] = 1.5
    loss = jax.jit(mlj.quality_focal_loss)(X.astype(np.float32), target.astype(np.float32))
    assert np.isnan(float(loss))
    # ignore_index passes the range check
    target[0, 0] = 255
    ok = jax.jit(functools.partial(mlj.varifocal_loss, ignore_index=255))(X, target)
    assert np.isfinite(float(ok))


@pytest.mark.parametrize("name", ELEMENT_WISE)
def test_every_face_agrees(name):
    """NumPy, torch, JAX and the top-level dispatch give one number for every option."""
    jax = pytest.importorskip("jax")
    import multiloss.jax as mlj

    target = np.where(RNG.uniform(size=X.shape) < 0.2, -1.0, _target(name))
    options = {
        "weight": list(RNG.uniform(0.5, 2, size=5)),
        "pos_weight": [2.0, 1.0, 0.5, 1.0, 3.0],
        "ignore_index": -1,
        "label_smoothing": 0.1,
    }
    if name == "sigmoid_focal_loss":
        options["alpha"] = list(ALPHA)
    expected = getattr(mln, name)(X, target, **options)
    jax_value = getattr(mlj, name)(jax.numpy.asarray(X), jax.numpy.asarray(target), **options)
    torch_value = getattr(mt, name)(_torch(X), _torch(target), **options)
    top = getattr(multiloss, name)(X, target, **options)
    for value in (jax_value, torch_value.item(), top):
        np.testing.assert_allclose(float(value), expected, rtol=1e-13)


# ------------------------------------------------------------------ engines


def test_torch_kernel_engine_takes_the_folded_options_and_the_new_losses(monkeypatch):
    """Every element-wise loss with ignore_index, smoothing, a per-class α, weight and
    pos_weight runs the Triton sigmoid kernel (the options arrive folded into target and
    weight; the varifocal loss's smoothing is a kernel flag); a hyperparameter given as a
    tensor keeps the eager plans."""
    pytest.importorskip("triton")
    from multiloss.torch._triton import sigmoid as kernels

    calls = []
    original = kernels.sigmoid_loss

    def counted(*args, **kwargs):
        calls.append(type(args[0]).__name__)
        return original(*args, **kwargs)

    monkeypatch.setattr(kernels, "sigmoid_loss", counted)
    x = torch.tensor(X, dtype=torch.float32)
    target = torch.tensor(np.where(SOFT == 0, HARD, SOFT), dtype=torch.float32)
    target[0, 0] = 255
    cases = [
        ("binary_cross_entropy", {"ignore_index": 255, "label_smoothing": 0.1}, True),
        ("sigmoid_focal_loss", {"alpha": list(ALPHA), "ignore_index": 255}, True),
        ("asymmetric_loss", {"label_smoothing": 0.1}, True),
        ("asymmetric_loss", {"ignore_index": 255}, True),  # folded into a weight
        ("asymmetric_loss", {"pos_weight": [2.0] * 5}, True),
        ("varifocal_loss", {"ignore_index": 255, "label_smoothing": 0.1}, True),
        ("quality_focal_loss", {"ignore_index": 255}, True),
        ("asymmetric_loss", {"pos_weight": [2.0] * 5, "gamma_neg": torch.tensor(4.0)}, False),
    ]
    for name, options, kernel in cases:
        calls.clear()
        eager = getattr(mt, name)(x, target, **options)
        with mt.engine("triton"):
            ours = getattr(mt, name)(x, target, **options)
        assert bool(calls) == kernel, name
        torch.testing.assert_close(ours, eager, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["varifocal_loss", "quality_focal_loss"])
def test_pallas_engine_runs_the_new_losses(name):
    jax = pytest.importorskip("jax")
    pytest.importorskip("jax.experimental.pallas")
    import multiloss.jax as mlj

    x, q = X.astype(np.float32), SOFT.astype(np.float32)
    options = {"pos_weight": [2.0] * 5, "label_smoothing": 0.1}
    expected = getattr(mln, f"{name}_value_and_grad")(x, q, **options)
    function = jax.jit(jax.value_and_grad(functools.partial(getattr(mlj, name), **options)))
    with mlj.engine("pallas"):
        loss, grad = function(x, q)
    np.testing.assert_allclose(float(loss), expected[0], rtol=2e-6)
    np.testing.assert_allclose(np.asarray(grad), expected[1], rtol=2e-5, atol=1e-7)


PARITY_TESTS = {
    "kornia-binary-focal-weights": test_kornia_binary_focal_with_weight_and_pos_weight,
    "ultralytics-focal-alpha": test_per_class_alpha_is_ultralytics_focal_loss,
    "monai-sigmoid-focal-alpha": test_monai_sigmoid_focal_is_the_pos_weight_recipe,
    "keras-bce-label-smoothing": test_label_smoothing_is_keras_binary_crossentropy,
    "timm-bce-smoothing": test_timm_smoothing_is_a_target_recipe,
    "mmdet-varifocal": test_varifocal_is_mmdetection_and_ultralytics,
    "ultralytics-varifocal": test_varifocal_is_mmdetection_and_ultralytics,
    "mmdet-quality-focal": test_quality_focal_is_mmdetection,
}
"""The rows of docs/parity.md that this file reproduces (tests/test_parity.py checks)."""
