"""The core against the peers it follows: ``torch.nn.functional.cross_entropy`` for every
cross-entropy option, ``binary_cross_entropy_with_logits`` for BCE, the torchvision sigmoid
focal formula and a textbook softmax focal loss written with torch autograd, and optax's
sigmoid losses. Values and gradients (the peers' autograd), float64."""

from __future__ import annotations

import numpy as np
import pytest
from backends import asarray, assert_eps, namespace, run_core, to_numpy
from cases import REDUCTIONS, sigmoid_cases, softmax_cases
from peers import torchvision_sigmoid_focal_loss

torch = pytest.importorskip("torch")
F = torch.nn.functional

# eps of float64 · (1 + |reference|); measured worst 3.7 eps (the peers round too)
BOUND = 8


def _torch_value_and_grad(function, logits, reduction):
    """A peer's loss and ∂Σloss/∂logits through torch autograd."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = function(z)
    loss.sum().backward()
    return loss.detach().numpy(), z.grad.numpy()


def _core_on_torch(name, logits, target, **options):
    xp = namespace("torch")
    moved = {
        key: asarray(xp, value) if isinstance(value, np.ndarray) else value
        for key, value in options.items()
    }
    loss, grad = run_core(name, asarray(xp, logits), asarray(xp, target), **moved)
    assert isinstance(loss, torch.Tensor)
    return to_numpy(loss), to_numpy(grad)


def _tensor(value):
    return None if value is None else torch.tensor(np.asarray(value), dtype=torch.float64)


# ----------------------------------------------------------------------------- cross-entropy


CE_CASES = [case for case in softmax_cases() if case.values[0][0] == "cross_entropy"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CE_CASES)
def test_cross_entropy_matches_torch(case, reduction):
    _, logits, target, options = case
    # torch's class axis is 1 (0 for unbatched input); move ours there. Class indices
    # have no class axis, so they need no moving.
    axis = options.get("axis", -1) % logits.ndim
    torch_axis = 1 if logits.ndim > 1 else 0
    logits_t = np.moveaxis(logits, axis, torch_axis)
    hard = np.issubdtype(target.dtype, np.integer)
    target_t = target if hard else np.moveaxis(target, axis, torch_axis)

    def peer(z):
        return F.cross_entropy(
            z,
            torch.tensor(target_t),
            weight=_tensor(options.get("weight")),
            ignore_index=options.get("ignore_index", -100),
            reduction=reduction,
            label_smoothing=options.get("label_smoothing", 0.0),
        )

    ref_loss, ref_grad = _torch_value_and_grad(peer, logits_t, reduction)
    ref_grad = np.moveaxis(ref_grad, torch_axis, axis)
    loss, grad = _core_on_torch("cross_entropy", logits, target, reduction=reduction, **options)
    assert_eps(loss, ref_loss, "float64", BOUND, "loss")
    assert_eps(grad, ref_grad, "float64", BOUND, "grad")


def test_mean_over_nothing_differs_from_torch_by_design():
    """PyTorch gives NaN (pytorch#70348); the core gives 0.0 with a zero gradient."""
    logits = np.array([[1.0, 2.0], [0.5, 0.0]])
    target = np.array([-100, -100])
    ref_loss, _ = _torch_value_and_grad(
        lambda z: F.cross_entropy(z, torch.tensor(target)), logits, "mean"
    )
    assert np.isnan(ref_loss)
    loss, grad = _core_on_torch("cross_entropy", logits, target)
    assert float(loss) == 0.0 and np.all(grad == 0)


# ----------------------------------------------------------------------------- softmax focal


def _textbook_focal(z, target, gamma, alpha, ignore_index, reduction):
    """log_softmax → gather → (1 - p_t)^γ, as the peers write it (torch autograd)."""
    log_p = F.log_softmax(z, dim=1)
    counted = target != ignore_index
    safe = torch.where(counted, target, torch.zeros_like(target))
    log_p_t = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p_t.exp()) ** gamma) * log_p_t
    if alpha is not None:
        loss = _tensor(alpha)[safe] * loss
    loss = torch.where(counted, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / counted.sum()


FOCAL_OPTIONS = [
    {"gamma": 2.0},
    {"gamma": 0.5, "alpha": [0.25, 0.75, 0.75, 0.75]},
    {"gamma": 1.0, "alpha": [0.1, 0.2, 0.3, 0.4]},
    {"gamma": 5.0},
    {"gamma": 3.0, "ignore_index": 2},
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", FOCAL_OPTIONS, ids=str)
def test_focal_loss_matches_textbook_torch(options, reduction):
    rng = np.random.default_rng(21)
    logits = rng.normal(scale=2.0, size=(2, 4, 3, 5))  # (N, C, d1, d2), class axis 1
    target = rng.integers(0, 4, size=(2, 3, 5))
    target[0, 0, :2] = options.get("ignore_index", -100)
    ignore_index = options.get("ignore_index", -100)
    gamma, alpha = options["gamma"], options.get("alpha")

    def peer(z):
        return _textbook_focal(z, torch.tensor(target), gamma, alpha, ignore_index, reduction)

    ref_loss, ref_grad = _torch_value_and_grad(peer, logits, reduction)
    loss, grad = _core_on_torch(
        "focal_loss", logits, target, axis=1, reduction=reduction, **options
    )
    assert_eps(loss, ref_loss, "float64", BOUND, "loss")
    assert_eps(grad, ref_grad, "float64", BOUND, "grad")


def test_scalar_alpha_is_retinanet_background_weighting():
    """Scalar α: class 0 (background) weighted 1-α, every other class α (kornia, MONAI)."""
    rng = np.random.default_rng(22)
    logits = rng.normal(size=(2, 3, 4))
    target = rng.integers(0, 3, size=(2, 4))
    target[0, 0], target[1, 1] = 0, 0

    def peer(z):
        return _textbook_focal(z, torch.tensor(target), 2.0, [0.75, 0.25, 0.25], -100, "none")

    ref_loss, ref_grad = _torch_value_and_grad(peer, logits, "none")
    loss, grad = _core_on_torch("focal_loss", logits, target, axis=1, alpha=0.25, reduction="none")
    assert_eps(loss, ref_loss, "float64", BOUND, "loss")
    assert_eps(grad, ref_grad, "float64", BOUND, "grad")


# ----------------------------------------------------------------------------- sigmoid losses


BCE_CASES = [case for case in sigmoid_cases() if case.values[0][0] == "binary_cross_entropy"]
SFL_CASES = [case for case in sigmoid_cases() if case.values[0][0] == "sigmoid_focal_loss"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", BCE_CASES)
def test_binary_cross_entropy_matches_torch(case, reduction):
    _, logits, target, options = case

    def peer(z):
        return F.binary_cross_entropy_with_logits(
            z,
            torch.tensor(np.asarray(target, dtype=np.float64)),
            weight=_tensor(options.get("weight")),
            pos_weight=_tensor(options.get("pos_weight")),
            reduction=reduction,
        )

    ref_loss, ref_grad = _torch_value_and_grad(peer, logits, reduction)
    loss, grad = _core_on_torch(
        "binary_cross_entropy", logits, target, reduction=reduction, **options
    )
    assert_eps(loss, ref_loss, "float64", BOUND, "loss")
    assert_eps(grad, ref_grad, "float64", BOUND, "grad")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", SFL_CASES)
def test_sigmoid_focal_loss_matches_torchvision(case, reduction):
    _, logits, target, options = case
    alpha = options.get("alpha", 0.25)
    gamma = options.get("gamma", 2.0)

    def peer(z):
        y = torch.tensor(np.asarray(target, dtype=np.float64))
        return torchvision_sigmoid_focal_loss(
            z, y, -1.0 if alpha is None else alpha, gamma, reduction
        )

    ref_loss, ref_grad = _torch_value_and_grad(peer, logits, reduction)
    loss, grad = _core_on_torch(
        "sigmoid_focal_loss", logits, target, reduction=reduction, **options
    )
    assert_eps(loss, ref_loss, "float64", BOUND, "loss")
    assert_eps(grad, ref_grad, "float64", BOUND, "grad")


@pytest.mark.parametrize("case", BCE_CASES[:4] + SFL_CASES)
def test_sigmoid_losses_match_optax(case):
    """optax.sigmoid_binary_cross_entropy / sigmoid_focal_loss, per element, with jax.grad."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jnp = namespace("jax")
    name, logits, target, options = case
    y = jnp.asarray(np.asarray(target, dtype=np.float64))
    if name == "binary_cross_entropy":

        def peer(z):
            return optax.sigmoid_binary_cross_entropy(z, y)

    else:

        def peer(z):
            return optax.sigmoid_focal_loss(
                z, y, alpha=options.get("alpha", 0.25), gamma=options.get("gamma", 2.0)
            )

    z = jnp.asarray(logits)
    ref_loss = np.asarray(peer(z))
    ref_grad = np.asarray(jax.grad(lambda z: jnp.sum(peer(z)))(z))
    loss, grad = run_core(name, z, y, reduction="none", **options)
    assert_eps(to_numpy(loss), ref_loss, "float64", BOUND, "loss")
    assert_eps(to_numpy(grad), ref_grad, "float64", BOUND, "grad")
