"""First-order derivatives with respect to the non-logit inputs, in PyTorch and JAX.

A probability ``target``, a cross-entropy ``weight``, a per-class focal ``alpha``, and the
binary cross-entropy ``target``, ``weight`` and ``pos_weight`` (any broadcastable shape), and
the sigmoid focal ``target`` get gradients. Checked here, all in float64:

* the oracles themselves: naive torch formulas written from the math, against
  ``F.cross_entropy``, ``F.binary_cross_entropy_with_logits``, the torchvision stand-in
  of ``tests/peers.py`` and the NumPy oracle of ``tests/oracles.py``;
* ``multiloss.torch`` backward against PyTorch's autograd of the reference formulas
  (``F.cross_entropy`` where PyTorch differentiates the argument, the naive formula where it
  does not: PyTorch refuses a gradient for a class-index cross-entropy ``weight`` and for
  the BCE ``weight``/``pos_weight``), for every input at once and for each alone;
* forward mode (``torch.func.jvp`` with tangents on the weights and targets) against
  ``torch.func.jvp`` of the naive formulas (not of ``F.cross_entropy``, whose forward-mode
  derivative with respect to a class-index ``weight`` is silently zero in torch 2.13);
* double backward through a non-logit input raises ``NotImplementedError`` naming it;
  double backward through the logits alone still works;
* ``multiloss.jax``: ``jax.grad`` (eager and under ``jax.jit``) and ``jax.jvp`` with respect
  to the same inputs against the torch oracle values; second order through them raises;
* the zero-denominator decision: a ``"mean"`` with nothing to average (every counted
  weight 0, every element ignored, an empty batch) is 0.0 with zero gradients, where
  PyTorch gives NaN.

JAX runs with float64 on for the whole session (``tests/conftest.py``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import backends
import numpy as np
import oracles
import pytest
from losses import class_weight, has_class_axis
from peers import torchvision_sigmoid_focal_loss

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402

try:
    import jax
    import jax.numpy as jnp

    import multiloss.jax as mj
except ImportError:  # pragma: no cover - jax is in the test extra
    jax = jnp = mj = None

needs_jax = pytest.mark.skipif(jax is None, reason="jax is not installed")

# torch.func.jvp of the torch references warns about torch.jit.script (torch 2.13)
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

FORWARD_MODE_FOR_OPERANDS = True
"""Whether forward mode (``torch.func.jvp``/``jax.jvp``) with a tangent on a target or a
weight is offered. It is (commit 9048626), and these tests check the JVP against the
reference. Were it withdrawn, False makes the same tests check for a
``NotImplementedError`` that names the input instead."""

RTOL, ATOL = 1e-10, 1e-12
C = 4


def assert_close(actual, expected, what=""):
    """float64 agreement to rtol 1e-10, atol 1e-12 (torch tensors or NumPy/JAX arrays), NaN
    equal to nothing, as in ``torch.testing.assert_close`` (:func:`backends.assert_close`)."""
    actual, expected = backends.to_numpy(actual), backends.to_numpy(expected)
    assert actual.dtype == np.float64, (what, actual.dtype)
    backends.assert_close(actual, expected, rtol=RTOL, atol=ATOL, what=what, equal_nan=False)


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _name_pattern(name: str) -> str:
    """A regex for `name` as a word of its own ('weight' does not match 'pos_weight')."""
    return rf"(?<![\w]){name}(?![\w])"


# ======================================================================= naive torch oracles
# Class axis 1 (PyTorch's (N, C, d1..dk) convention); float64; differentiable in every
# argument by PyTorch's own autograd (reverse and forward mode).


def naive_softmax_loss(
    z,
    target,
    *,
    gamma=0.0,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    weighted_mean=False,
):
    """L_i = -Σ_k q_k w_k (1-p_k)^γ log p_k with q = (1-ε)·(one-hot or probabilities) + ε/C.

    ``"mean"``: Σ_i w_{y_i} for class indices with `weighted_mean` and a weight (PyTorch's
    weighted cross-entropy), else the number of counted elements (class indices) or of all
    elements (probabilities).
    """
    num_classes = z.shape[1]
    log_p = torch.log_softmax(z, dim=1)
    class_shape = [1] * z.ndim
    class_shape[1] = num_classes
    w = torch.ones(num_classes, dtype=z.dtype) if weight is None else weight
    eps = label_smoothing
    if target.dtype.is_floating_point:
        q = (1.0 - eps) * target + eps / num_classes
    else:
        counted = target != ignore_index
        safe = torch.where(counted, target, 0)
        one_hot = F.one_hot(safe, num_classes).movedim(-1, 1).to(z.dtype)
        q = ((1.0 - eps) * one_hot + eps / num_classes) * counted.unsqueeze(1)
    focus = (1.0 - log_p.exp()) ** gamma if gamma != 0 else 1.0
    per = -(q * w.reshape(class_shape) * focus * log_p).sum(dim=1)
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if target.dtype.is_floating_point:
        return per.sum() / per.numel()
    if weighted_mean and weight is not None:
        return per.sum() / (w[safe] * counted).sum()
    return per.sum() / counted.sum()


def naive_cross_entropy(z, target, *, weight=None, **options):
    """``F.cross_entropy`` written out (differentiable in `weight` for class indices too)."""
    return naive_softmax_loss(z, target, weight=weight, weighted_mean=True, **options)


def naive_focal(z, target, *, gamma, alpha=None, **options):
    """Softmax focal loss; a scalar α weights class 0 by 1-α and the others by α."""
    if alpha is not None and not torch.is_tensor(alpha):
        alpha = torch.tensor(oracles.scalar_alpha_vector(alpha, z.shape[1]), dtype=z.dtype)
    return naive_softmax_loss(z, target, gamma=gamma, weight=alpha, **options)


def _reduce(per, reduction):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.mean()


def naive_bce(x, y, *, weight=None, pos_weight=None, reduction="mean"):
    """w·(pw·y·softplus(-x) + (1-y)·softplus(x)), weights broadcast to the logits' shape."""
    pw = 1.0 if pos_weight is None else pos_weight
    w = 1.0 if weight is None else weight
    per = w * (pw * y * F.softplus(-x) + (1 - y) * F.softplus(x))
    per = torch.broadcast_to(per, x.shape)
    return _reduce(per, reduction)


def naive_sigmoid_focal(x, y, *, alpha=0.25, gamma=2.0, reduction="mean"):
    """torchvision's α_t (1-p_t)^γ BCE with softplus for the BCE."""
    p = torch.sigmoid(x)
    ce = y * F.softplus(-x) + (1 - y) * F.softplus(x)
    p_t = p * y + (1 - p) * (1 - y)
    per = ce * (1 - p_t) ** gamma if gamma != 0 else ce
    if alpha is not None:
        per = (alpha * y + (1 - alpha) * (1 - y)) * per
    return _reduce(per, reduction)


# ======================================================================= the cases


@dataclass(frozen=True)
class SoftmaxCase:
    """One softmax configuration: logits shape (class axis 1), target kind and options."""

    shape: tuple[int, ...]
    target: str  # "indices", "probs" (rows sum to 1) or "raw" (each entry in [0, 1])
    weight: bool = False
    ignore_index: int | None = None
    smoothing: float = 0.0
    reduction: str = "mean"

    def options(self) -> dict:
        options = {"reduction": self.reduction, "label_smoothing": self.smoothing}
        if self.ignore_index is not None:
            options["ignore_index"] = self.ignore_index
        return options


def softmax_data(case: SoftmaxCase, name: str) -> dict[str, np.ndarray | None]:
    """NumPy data of a case: logits z, target t, weight w (or None), cotangent v.

    Class-index targets with an ignore_index have some elements ignored and at least one
    counted; weights are in [0.2, 2] so that no "mean" has a zero denominator.
    """
    rng = _rng(name)
    z = rng.normal(size=case.shape) * 1.5
    batch = (case.shape[0], *case.shape[2:])
    if case.target == "indices":
        t = rng.integers(0, C, size=batch)
        if case.ignore_index is not None:
            flat = t.reshape(-1)
            flat[0] = case.ignore_index
            flat[1::3] = case.ignore_index
            flat[-1] = (case.ignore_index + 1) % C if 0 <= case.ignore_index < C else 1
    elif case.target == "probs":
        t = np.moveaxis(rng.dirichlet(np.ones(C), size=batch), -1, 1)
    else:
        t = rng.uniform(size=case.shape)
    w = rng.uniform(0.2, 2.0, size=C) if case.weight else None
    v = rng.normal(size=batch) if case.reduction == "none" else np.array(1.0)
    return {"z": z, "t": t, "w": w, "v": v}


CE_CASES = {
    "indices, mean": SoftmaxCase((5, C), "indices"),
    "indices, weight, mean": SoftmaxCase((5, C), "indices", weight=True),
    "indices, weight, ignore 1, smoothing, mean": SoftmaxCase(
        (6, C), "indices", weight=True, ignore_index=1, smoothing=0.2
    ),
    "indices, weight, sum": SoftmaxCase((5, C), "indices", weight=True, reduction="sum"),
    "indices, weight, ignore -100, none": SoftmaxCase(
        (6, C), "indices", weight=True, ignore_index=-100, reduction="none"
    ),
    "indices K-dim, weight, ignore 2, none": SoftmaxCase(
        (2, C, 3, 2), "indices", weight=True, ignore_index=2, reduction="none"
    ),
    "indices K-dim, weight, smoothing, mean": SoftmaxCase(
        (2, C, 3, 2), "indices", weight=True, smoothing=0.1
    ),
    "probs, mean": SoftmaxCase((5, C), "probs"),
    "probs, weight, smoothing, mean": SoftmaxCase((5, C), "probs", weight=True, smoothing=0.1),
    "probs, weight, sum": SoftmaxCase((5, C), "probs", weight=True, reduction="sum"),
    "probs K-dim, weight, none": SoftmaxCase((2, C, 3, 2), "probs", weight=True, reduction="none"),
    "probs K-dim, smoothing, mean": SoftmaxCase((2, C, 3, 2), "probs", smoothing=0.3),
    "unnormalised probs, weight, mean": SoftmaxCase((5, C), "raw", weight=True),
}

FOCAL_CASES = {
    "indices, alpha, mean": SoftmaxCase((5, C), "indices", weight=True),
    "indices, alpha, ignore 1, smoothing, mean": SoftmaxCase(
        (6, C), "indices", weight=True, ignore_index=1, smoothing=0.2
    ),
    "indices K-dim, alpha, ignore 2, none": SoftmaxCase(
        (2, C, 3, 2), "indices", weight=True, ignore_index=2, reduction="none"
    ),
    "probs, alpha, smoothing, mean": SoftmaxCase((5, C), "probs", weight=True, smoothing=0.1),
    "probs K-dim, alpha, sum": SoftmaxCase((2, C, 3, 2), "probs", weight=True, reduction="sum"),
    "probs, no alpha, none": SoftmaxCase((5, C), "probs", reduction="none"),
    "unnormalised probs, alpha, mean": SoftmaxCase((5, C), "raw", weight=True),
}
FOCAL_GAMMAS = [0.0, 0.5, 2.0]

# (weight shape, pos_weight shape) for logits of shape (N, C) = (4, 3), or (2, 4, 3)
BCE_SHAPES = {
    "plain": ((4, 3), None, None),
    "weight (C,)": ((4, 3), (3,), None),
    "weight (N,1)": ((4, 3), (4, 1), None),
    "weight (N,C)": ((4, 3), (4, 3), None),
    "weight (1,)": ((4, 3), (1,), None),
    "pos_weight (C,)": ((4, 3), None, (3,)),
    "pos_weight (N,1)": ((4, 3), None, (4, 1)),
    "pos_weight (N,C)": ((4, 3), None, (4, 3)),
    "weight (N,C), pos_weight (C,)": ((4, 3), (4, 3), (3,)),
    "weight (N,1), pos_weight (N,C)": ((4, 3), (4, 1), (4, 3)),
    "3-d, weight (A,1), pos_weight (C,)": ((2, 4, 3), (4, 1), (3,)),
}
REDUCTIONS = ["mean", "sum", "none"]


def sigmoid_data(shape, weight_shape, pos_weight_shape, reduction, name):
    """Logits x, targets y in [0, 1] with some exact 0s and 1s, weights in [0.2, 2]."""
    rng = _rng(name)
    x = rng.normal(size=shape) * 2.0
    y = rng.uniform(size=shape)
    y.reshape(-1)[::5] = 1.0
    y.reshape(-1)[2::7] = 0.0
    w = None if weight_shape is None else rng.uniform(0.2, 2.0, size=weight_shape)
    pw = None if pos_weight_shape is None else rng.uniform(0.2, 3.0, size=pos_weight_shape)
    v = rng.normal(size=shape) if reduction == "none" else np.array(1.0)
    return {"x": x, "y": y, "w": w, "pw": pw, "v": v}


# ======================================================================= torch helpers


def _leaves(data: dict, wrt) -> dict:
    """torch float64/int64 tensors of the NumPy data; those named in `wrt` require grad."""
    tensors = {}
    for name, value in data.items():
        if value is None:
            tensors[name] = None
            continue
        tensor = torch.tensor(value)
        if name in wrt:
            tensor.requires_grad_()
        tensors[name] = tensor
    return tensors


def torch_value_and_grads(function, data: dict, wrt, cotangent: str = "v"):
    """function(**tensors) and the VJP with the cotangent data[cotangent] of every input in
    `wrt` (PyTorch autograd of whatever `function` is)."""
    tensors = _leaves({k: v for k, v in data.items() if k != cotangent}, wrt)
    value = function(**tensors)
    inputs = [tensors[name] for name in wrt]
    grads = torch.autograd.grad(value, inputs, grad_outputs=torch.tensor(data[cotangent]))
    return value.detach(), dict(zip(wrt, grads, strict=True))


def _subsets(wrt: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every input at once, then each non-logit input alone (logits not requiring grad)."""
    subsets = [wrt]
    subsets += [(name,) for name in wrt if name not in ("z", "x")]
    return subsets


def compare(ours, reference, data, wrt, what):
    value, grads = torch_value_and_grads(ours, data, wrt)
    expected_value, expected_grads = torch_value_and_grads(reference, data, wrt)
    assert_close(value, expected_value, f"{what}: value")
    for name in wrt:
        assert_close(grads[name], expected_grads[name], f"{what}: gradient of {name}")


def _ce_wrt(case: SoftmaxCase) -> tuple[str, ...]:
    wrt = ("z", "t") if case.target != "indices" else ("z",)
    return (*wrt, "w") if case.weight else wrt


def _torch_ce(case):
    def ours(z, t, w):
        return mt.cross_entropy(z, t, weight=w, **case.options())

    def reference(z, t, w):
        if w is not None and w.requires_grad and not t.dtype.is_floating_point:
            # PyTorch refuses: "'nll_loss_forward' is not differentiable w.r.t. 'weight'"
            return naive_cross_entropy(z, t, weight=w, **case.options())
        return F.cross_entropy(z, t, weight=w, **case.options())

    return ours, reference


def _torch_focal(case, gamma):
    def ours(z, t, w):
        return mt.focal_loss(z, t, gamma=gamma, alpha=w, **case.options())

    def reference(z, t, w):
        return naive_focal(z, t, gamma=gamma, alpha=w, **case.options())

    return ours, reference


def _torch_bce(reduction):
    def ours(x, y, w, pw):
        return mt.binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction=reduction)

    def reference(x, y, w, pw):
        if (w is not None and w.requires_grad) or (pw is not None and pw.requires_grad):
            # PyTorch refuses gradients for weight and pos_weight
            return naive_bce(x, y, weight=w, pos_weight=pw, reduction=reduction)
        return F.binary_cross_entropy_with_logits(
            x, y, weight=w, pos_weight=pw, reduction=reduction
        )

    return ours, reference


def _bce_wrt(data) -> tuple[str, ...]:
    return ("x", "y", *(name for name in ("w", "pw") if data[name] is not None))


# ======================================================================= the oracles


@pytest.mark.parametrize("case_id", list(CE_CASES))
def test_naive_cross_entropy_is_pytorchs(case_id):
    """The naive formula equals F.cross_entropy: value and every gradient PyTorch gives."""
    case = CE_CASES[case_id]
    data = softmax_data(case, case_id)
    wrt = ("z", "t") if case.target != "indices" else ("z",)
    if case.target != "indices" and case.weight:
        wrt += ("w",)

    def naive(z, t, w):
        return naive_cross_entropy(z, t, weight=w, **case.options())

    def pytorch(z, t, w):
        return F.cross_entropy(z, t, weight=w, **case.options())

    compare(naive, pytorch, data, wrt, case_id)


@pytest.mark.parametrize("case_id", list(FOCAL_CASES))
def test_naive_focal_at_gamma_0_is_weighted_cross_entropy(case_id):
    """γ = 0: Σ_k q_k α_k (-log p_k) is F.cross_entropy(weight=α) per element ("none");
    with no α also its "mean" (with α the focal mean divides by the count, not by Σα)."""
    case = FOCAL_CASES[case_id]
    data = softmax_data(case, case_id)
    data["v"] = _rng(case_id + "v").normal(size=(case.shape[0], *case.shape[2:]))
    wrt = ("z",) + (("t", "w") if case.target != "indices" else ())
    wrt = tuple(name for name in wrt if data[name] is not None)
    options = {**case.options(), "reduction": "none"}

    def naive(z, t, w):
        return naive_focal(z, t, gamma=0.0, alpha=w, **options)

    def pytorch(z, t, w):
        return F.cross_entropy(z, t, weight=w, **options)

    compare(naive, pytorch, data, wrt, case_id)
    if case.weight:
        return
    data["v"] = np.array(1.0)
    options["reduction"] = "mean"
    compare(naive, pytorch, data, wrt, case_id)


@pytest.mark.parametrize("gamma", FOCAL_GAMMAS)
@pytest.mark.parametrize("case_id", list(FOCAL_CASES))
def test_naive_focal_is_the_numpy_oracle(case_id, gamma):
    """The naive torch focal loss equals tests/oracles.np_focal_loss (value, logit grad)."""
    case = FOCAL_CASES[case_id]
    data = softmax_data(case, case_id)
    options = case.options()
    z = torch.tensor(data["z"], requires_grad=True)
    w = None if data["w"] is None else torch.tensor(data["w"])
    loss = naive_focal(z, torch.tensor(data["t"]), gamma=gamma, alpha=w, **options)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    alpha = None if data["w"] is None else list(data["w"])
    expected, expected_grad = oracles.np_focal_loss(
        data["z"], data["t"], axis=1, gamma=gamma, alpha=alpha, **options
    )
    torch.testing.assert_close(
        loss.detach(), torch.tensor(np.asarray(expected)), rtol=1e-12, atol=1e-14
    )
    torch.testing.assert_close(grad, torch.as_tensor(expected_grad), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape_id", list(BCE_SHAPES))
def test_naive_bce_is_pytorchs(shape_id, reduction):
    shape, weight_shape, pos_weight_shape = BCE_SHAPES[shape_id]
    data = sigmoid_data(shape, weight_shape, pos_weight_shape, reduction, shape_id)

    def naive(x, y, w, pw):
        return naive_bce(x, y, weight=w, pos_weight=pw, reduction=reduction)

    def pytorch(x, y, w, pw):
        return F.binary_cross_entropy_with_logits(
            x, y, weight=w, pos_weight=pw, reduction=reduction
        )

    compare(naive, pytorch, data, ("x", "y"), shape_id)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, None], ids=["alpha 0.25", "no alpha"])
@pytest.mark.parametrize("gamma", FOCAL_GAMMAS)
def test_naive_sigmoid_focal_is_torchvisions(gamma, alpha, reduction):
    data = sigmoid_data((4, 3), None, None, reduction, f"sf{gamma}{alpha}{reduction}")

    def naive(x, y, w, pw):
        return naive_sigmoid_focal(x, y, alpha=alpha, gamma=gamma, reduction=reduction)

    def torchvision(x, y, w, pw):
        a = -1.0 if alpha is None else alpha
        return torchvision_sigmoid_focal_loss(x, y, alpha=a, gamma=gamma, reduction=reduction)

    compare(naive, torchvision, data, ("x", "y"), "sigmoid focal")


# ======================================================================= torch: backward


@pytest.mark.parametrize("case_id", list(CE_CASES))
def test_torch_cross_entropy_gradients(case_id):
    case = CE_CASES[case_id]
    data = softmax_data(case, case_id)
    ours, reference = _torch_ce(case)
    for wrt in _subsets(_ce_wrt(case)):
        compare(ours, reference, data, wrt, f"{case_id}, wrt {wrt}")


@pytest.mark.parametrize("gamma", FOCAL_GAMMAS)
@pytest.mark.parametrize("case_id", list(FOCAL_CASES))
def test_torch_focal_gradients(case_id, gamma):
    case = FOCAL_CASES[case_id]
    data = softmax_data(case, case_id)
    ours, reference = _torch_focal(case, gamma)
    for wrt in _subsets(_ce_wrt(case)):
        compare(ours, reference, data, wrt, f"{case_id}, gamma {gamma}, wrt {wrt}")


@pytest.mark.parametrize("case_id", ["probs, no alpha, none", "probs, alpha, smoothing, mean"])
def test_torch_focal_scalar_alpha_target_gradient(case_id):
    """A scalar α (a constant vector) with a probability target requiring grad."""
    case = FOCAL_CASES[case_id]
    data = {**softmax_data(case, case_id), "w": None}

    def ours(z, t, w):
        return mt.focal_loss(z, t, gamma=1.5, alpha=0.25, **case.options())

    def reference(z, t, w):
        return naive_focal(z, t, gamma=1.5, alpha=0.25, **case.options())

    for wrt in (("z", "t"), ("t",)):
        compare(ours, reference, data, wrt, f"{case_id}, wrt {wrt}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape_id", list(BCE_SHAPES))
def test_torch_bce_gradients(shape_id, reduction):
    shape, weight_shape, pos_weight_shape = BCE_SHAPES[shape_id]
    data = sigmoid_data(shape, weight_shape, pos_weight_shape, reduction, shape_id)
    ours, reference = _torch_bce(reduction)
    for wrt in _subsets(_bce_wrt(data)):
        compare(ours, reference, data, wrt, f"{shape_id}, {reduction}, wrt {wrt}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, None], ids=["alpha 0.25", "no alpha"])
@pytest.mark.parametrize("gamma", FOCAL_GAMMAS)
def test_torch_sigmoid_focal_gradients(gamma, alpha, reduction):
    data = sigmoid_data((2, 4, 3), None, None, reduction, f"tsf{gamma}{alpha}{reduction}")

    def ours(x, y, w, pw):
        return mt.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction=reduction)

    def reference(x, y, w, pw):
        return naive_sigmoid_focal(x, y, alpha=alpha, gamma=gamma, reduction=reduction)

    for wrt in (("x", "y"), ("y",)):
        compare(ours, reference, data, wrt, f"wrt {wrt}")


def test_torch_weight_gradient_accumulates_in_a_training_step():
    """.backward() fills .grad of a learnable weight (as a meta-learned class weight would)."""
    data = softmax_data(CE_CASES["indices, weight, mean"], "step")
    z = torch.tensor(data["z"], requires_grad=True)
    w = torch.tensor(data["w"], requires_grad=True)
    t = torch.tensor(data["t"])
    for _ in range(2):
        mt.cross_entropy(z, t, weight=w).backward()
    z_ref = torch.tensor(data["z"], requires_grad=True)
    w_ref = torch.tensor(data["w"], requires_grad=True)
    naive_cross_entropy(z_ref, t, weight=w_ref).backward()
    assert_close(w.grad, 2 * w_ref.grad, "weight .grad after two backward calls")
    assert_close(z.grad, 2 * z_ref.grad, "logits .grad after two backward calls")


# ======================================================================= torch: forward mode
# PENDING DECISION: see FORWARD_MODE_FOR_OPERANDS.


def _jvp_cases():
    """(id, ours, reference, data, names with a tangent)."""
    cases = []
    for case_id in (
        "indices, weight, ignore 1, smoothing, mean",
        "probs K-dim, weight, none",
        "indices K-dim, weight, smoothing, mean",
    ):
        case = CE_CASES[case_id]

        def ours(z, t, w, case=case):
            return mt.cross_entropy(z, t, weight=w, **case.options())

        def reference(z, t, w, case=case):
            return naive_cross_entropy(z, t, weight=w, **case.options())

        cases.append((f"ce {case_id}", ours, reference, softmax_data(case, case_id), case))
    for case_id in ("indices, alpha, ignore 1, smoothing, mean", "probs, alpha, smoothing, mean"):
        case = FOCAL_CASES[case_id]

        def ours(z, t, w, case=case):
            return mt.focal_loss(z, t, gamma=0.5, alpha=w, **case.options())

        def reference(z, t, w, case=case):
            return naive_focal(z, t, gamma=0.5, alpha=w, **case.options())

        cases.append((f"focal {case_id}", ours, reference, softmax_data(case, case_id), case))
    return cases


JVP_CASES = {case[0]: case[1:] for case in _jvp_cases()}


def _tangents(data, names, seed):
    rng = _rng(seed)
    return {name: rng.normal(size=np.shape(data[name])) for name in names}


def _torch_jvp(function, data, names, tangents):
    fixed = {k: None if v is None else torch.tensor(v) for k, v in data.items() if k != "v"}

    def partial(*primals):
        return function(**{**fixed, **dict(zip(names, primals, strict=True))})

    primals = tuple(fixed[name] for name in names)
    return torch.func.jvp(partial, primals, tuple(torch.tensor(tangents[n]) for n in names))


def _check_forward_mode(ours, reference, data, names, what):
    tangents = _tangents(data, names, what)
    expected_value, expected_tangent = _torch_jvp(reference, data, names, tangents)
    if not FORWARD_MODE_FOR_OPERANDS:
        operand = next(name for name in names if name not in ("z", "x"))
        with pytest.raises(NotImplementedError, match=_USER[operand]):
            _torch_jvp(ours, data, names, tangents)
        return
    value, tangent = _torch_jvp(ours, data, names, tangents)
    assert_close(value, expected_value, f"{what}: jvp value")
    assert_close(tangent, expected_tangent, f"{what}: jvp tangent")


_USER = {"t": "target", "y": "target", "w": "(weight|alpha)", "pw": "pos_weight"}


@pytest.mark.parametrize("case_id", list(JVP_CASES))
def test_torch_forward_mode_softmax(case_id):
    ours, reference, data, case = JVP_CASES[case_id]
    names = ("z", "w") if case.target == "indices" else ("z", "t", "w")
    for subset in dict.fromkeys((names, names[1:], ("w",))):
        _check_forward_mode(ours, reference, data, subset, f"{case_id}, tangents on {subset}")


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_forward_mode_sigmoid(reduction):
    data = sigmoid_data((4, 3), (4, 1), (3,), reduction, "fwd sigmoid")

    def ours_bce(x, y, w, pw):
        return mt.binary_cross_entropy(x, y, weight=w, pos_weight=pw, reduction=reduction)

    def reference_bce(x, y, w, pw):
        return naive_bce(x, y, weight=w, pos_weight=pw, reduction=reduction)

    for names in (("x", "y", "w", "pw"), ("y",), ("w",), ("pw",)):
        _check_forward_mode(ours_bce, reference_bce, data, names, f"bce, tangents on {names}")

    def ours_focal(x, y, w, pw):
        return mt.sigmoid_focal_loss(x, y, gamma=2.0, reduction=reduction)

    def reference_focal(x, y, w, pw):
        return naive_sigmoid_focal(x, y, gamma=2.0, reduction=reduction)

    for names in (("x", "y"), ("y",)):
        _check_forward_mode(ours_focal, reference_focal, data, names, f"sigmoid focal {names}")


# ======================================================================= torch: second order


def _double_backward_calls():
    """(loss id, operand name, function of (z, operand), z, operand value)."""
    soft = softmax_data(CE_CASES["probs, weight, smoothing, mean"], "2nd")
    hard = softmax_data(CE_CASES["indices, weight, mean"], "2nd")
    sig = sigmoid_data((4, 3), (4, 1), (3,), "mean", "2nd")
    t_hard = torch.tensor(hard["t"])
    w = torch.tensor(soft["w"])
    y, sw, pw = torch.tensor(sig["y"]), torch.tensor(sig["w"]), torch.tensor(sig["pw"])
    return {
        "cross_entropy weight": (
            "weight",
            lambda z, a: mt.cross_entropy(z, t_hard, weight=a),
            hard["z"],
            hard["w"],
        ),
        "cross_entropy target": (
            "target",
            lambda z, a: mt.cross_entropy(z, a, weight=w, label_smoothing=0.1),
            soft["z"],
            soft["t"],
        ),
        "focal_loss alpha": (
            "alpha",
            lambda z, a: mt.focal_loss(z, t_hard, gamma=2.0, alpha=a),
            hard["z"],
            hard["w"],
        ),
        "focal_loss target": (
            "target",
            lambda z, a: mt.focal_loss(z, a, gamma=0.5, alpha=w),
            soft["z"],
            soft["t"],
        ),
        "binary_cross_entropy target": (
            "target",
            lambda x, a: mt.binary_cross_entropy(x, a, weight=sw, pos_weight=pw),
            sig["x"],
            sig["y"],
        ),
        "binary_cross_entropy weight": (
            "weight",
            lambda x, a: mt.binary_cross_entropy(x, y, weight=a, pos_weight=pw),
            sig["x"],
            sig["w"],
        ),
        "binary_cross_entropy pos_weight": (
            "pos_weight",
            lambda x, a: mt.binary_cross_entropy(x, y, weight=sw, pos_weight=a),
            sig["x"],
            sig["pw"],
        ),
        "sigmoid_focal_loss target": (
            "target",
            lambda x, a: mt.sigmoid_focal_loss(x, a, gamma=2.0),
            sig["x"],
            sig["y"],
        ),
    }


DOUBLE_BACKWARD = _double_backward_calls()


@pytest.mark.parametrize("call_id", list(DOUBLE_BACKWARD))
@pytest.mark.parametrize("first", ["logits", "operand"], ids=["d/dz first", "d/doperand first"])
def test_torch_double_backward_through_an_operand_is_refused(call_id, first):
    name, function, z_data, operand_data = DOUBLE_BACKWARD[call_id]
    z = torch.tensor(z_data, requires_grad=True)
    operand = torch.tensor(operand_data, requires_grad=True)
    with pytest.raises(NotImplementedError, match=_name_pattern(name)):
        loss = function(z, operand)
        (grad,) = torch.autograd.grad(loss, z if first == "logits" else operand, create_graph=True)
        torch.autograd.grad(grad.sum(), (z, operand), allow_unused=True)


@pytest.mark.parametrize("call_id", list(DOUBLE_BACKWARD))
def test_torch_first_order_through_an_operand_still_works(call_id):
    """The same calls without create_graph: a plain backward fills both .grad."""
    _, function, z_data, operand_data = DOUBLE_BACKWARD[call_id]
    z = torch.tensor(z_data, requires_grad=True)
    operand = torch.tensor(operand_data, requires_grad=True)
    function(z, operand).backward()
    assert z.grad is not None and operand.grad is not None
    assert torch.all(torch.isfinite(z.grad)) and torch.all(torch.isfinite(operand.grad))


def test_torch_double_backward_through_the_logits_alone_still_works():
    data = softmax_data(CE_CASES["indices, weight, ignore 1, smoothing, mean"], "hessian")
    z, t, w = (torch.tensor(data[k]) for k in "ztw")

    def ours(z):
        return mt.cross_entropy(z, t, weight=w, ignore_index=1, label_smoothing=0.2)

    def reference(z):
        return F.cross_entropy(z, t, weight=w, ignore_index=1, label_smoothing=0.2)

    expected = torch.autograd.functional.hessian(reference, z)
    assert_close(torch.autograd.functional.hessian(ours, z), expected, "hessian")
    sig = sigmoid_data((4, 3), (4, 1), (3,), "mean", "hessian")
    x, y, sw, pw = (torch.tensor(sig[k]) for k in ("x", "y", "w", "pw"))
    assert_close(
        torch.autograd.functional.hessian(
            lambda x: mt.binary_cross_entropy(x, y, weight=sw, pos_weight=pw), x
        ),
        torch.autograd.functional.hessian(
            lambda x: F.binary_cross_entropy_with_logits(x, y, weight=sw, pos_weight=pw), x
        ),
        "bce hessian",
    )


# ======================================================================= zero denominators

ZERO_MEANS = {
    # (loss, logits shape, target, weight or alpha requiring grad, options)
    "counted weights all 0": ("cross_entropy", (3, C), [0, 1, 0], [0.0, 0.0, 2.0, 1.0], {}),
    "counted weights all 0, ignore": (
        "cross_entropy",
        (3, C),
        [0, 2, 1],
        [0.0, 0.0, 2.0, 1.0],
        {"ignore_index": 2},
    ),
    "every element ignored": ("cross_entropy", (3, C), [-100] * 3, [0.5, 1.0, 2.0, 1.0], {}),
    "every element ignored, smoothing": (
        "cross_entropy",
        (3, C),
        [3, 3, 3],
        [0.5, 1.0, 2.0, 1.0],
        {"ignore_index": 3, "label_smoothing": 0.1},
    ),
    "focal, every element ignored": ("focal_loss", (3, C), [-100] * 3, [0.5, 1, 2, 1], {}),
    "empty batch, probabilities": ("cross_entropy", (0, C), "probs", [0.5, 1.0, 2.0, 1.0], {}),
    # Σ w_{y_i} = 0 while the smoothing term Σ_k ε/C·w_k·(-log p_k) is not 0: by the decision
    # "a weighted mean over a zero weight sum is 0.0" (today multiloss returns the sum here).
    "counted weights all 0, smoothing": (
        "cross_entropy",
        (3, C),
        [0, 1, 0],
        [0.0, 0.0, 2.0, 1.0],
        {"label_smoothing": 0.1},
    ),
}


def _zero_mean_data(zero_id):
    loss, shape, target, weight, options = ZERO_MEANS[zero_id]
    rng = _rng(zero_id)
    z = rng.normal(size=shape)
    t = rng.dirichlet(np.ones(C), size=shape[0]) if target == "probs" else np.array(target)
    if target == "probs":
        t = t.reshape(shape)
    return loss, z, t, np.array(weight, dtype=np.float64), options


@pytest.mark.parametrize("zero_id", list(ZERO_MEANS))
def test_torch_mean_over_nothing_is_zero_with_zero_gradients(zero_id):
    loss, z_data, t_data, w_data, options = _zero_mean_data(zero_id)
    z = torch.tensor(z_data, requires_grad=True)
    t = torch.tensor(t_data, requires_grad=t_data.dtype.kind == "f")
    w = torch.tensor(w_data, requires_grad=True)
    key = "weight" if loss == "cross_entropy" else "alpha"
    value = getattr(mt, loss)(z, t, **{key: w}, **options)
    inputs = {"logits": z, key: w}
    if t.requires_grad:
        inputs["target"] = t
    grads = torch.autograd.grad(value, tuple(inputs.values()))
    assert value.item() == 0.0, f"{zero_id}: mean over nothing gave {value.item()}"
    for (name, tensor), grad in zip(inputs.items(), grads, strict=True):
        assert grad.shape == tensor.shape, (name, grad.shape)
        assert torch.count_nonzero(grad) == 0, f"{zero_id}: {name} gradient {grad}"


# ======================================================================= JAX
# Under jax.jit unless a test says "eager": a first eager call compiles each primitive on its
# own (about 2 s per configuration here), a jitted one compiles the whole function (0.3 s).


def _jax_call(loss, options):
    """A function of the same keyword names as the torch helpers (z, t, w / x, y, w, pw)."""
    if has_class_axis(loss):
        key = class_weight(loss)

        def softmax(z, t, w):
            return getattr(mj, loss)(z, t, axis=1, **{key: w}, **options)

        return softmax
    if loss == "binary_cross_entropy":

        def bce(x, y, w, pw):
            return mj.binary_cross_entropy(x, y, weight=w, pos_weight=pw, **options)

        return bce

    def sigmoid_focal(x, y, w, pw):
        return mj.sigmoid_focal_loss(x, y, **options)

    return sigmoid_focal


def _jax_arrays(data):
    return {k: None if v is None else jnp.asarray(v) for k, v in data.items() if k != "v"}


def jax_value_and_grads(function, data, wrt, *, jit=True):
    """function(**arrays) and the VJP with cotangent data["v"] for the inputs in `wrt`."""
    arrays = _jax_arrays(data)
    cotangent = jnp.asarray(data["v"])

    def scalar(diff, rest):
        value = function(**diff, **rest)
        return jnp.sum(value * cotangent), value

    grad = jax.grad(scalar, has_aux=True)
    if jit:
        grad = jax.jit(grad)
    diff = {name: arrays[name] for name in wrt}
    rest = {name: value for name, value in arrays.items() if name not in wrt}
    grads, value = grad(diff, rest)
    return value, grads


def jax_compare(function, reference, data, wrt, what, *, jit=True):
    """JAX gradients against the torch oracle's."""
    expected_value, expected_grads = torch_value_and_grads(reference, data, wrt)
    value, grads = jax_value_and_grads(function, data, wrt, jit=jit)
    what = f"{what}{', jit' if jit else ', eager'}"
    assert value.dtype == jnp.float64, "float64 is off in JAX (tests/conftest.py)"
    assert_close(value, expected_value, f"{what}: value")
    for name in wrt:
        assert_close(grads[name], expected_grads[name], f"{what}: gradient of {name}")


@needs_jax
@pytest.mark.parametrize(
    "case_id",
    [
        "indices, weight, ignore 1, smoothing, mean",
        "indices K-dim, weight, ignore 2, none",
        "probs, weight, smoothing, mean",
        "probs K-dim, weight, none",
    ],
)
def test_jax_cross_entropy_gradients(case_id):
    case = CE_CASES[case_id]
    data = softmax_data(case, case_id)
    _, reference = _torch_ce(case)
    function = _jax_call("cross_entropy", case.options())
    jax_compare(function, reference, data, _ce_wrt(case), case_id)


@needs_jax
@pytest.mark.parametrize(
    ("case_id", "gamma"),
    [("indices, alpha, ignore 1, smoothing, mean", 0.5), ("probs K-dim, alpha, sum", 2.0)],
)
def test_jax_focal_gradients(case_id, gamma):
    case = FOCAL_CASES[case_id]
    data = softmax_data(case, case_id)
    _, reference = _torch_focal(case, gamma)
    function = _jax_call("focal_loss", {"gamma": gamma, **case.options()})
    jax_compare(function, reference, data, _ce_wrt(case), f"{case_id}, gamma {gamma}")


@needs_jax
@pytest.mark.parametrize(
    ("shape_id", "reduction"),
    [
        ("weight (N,1), pos_weight (N,C)", "mean"),
        ("3-d, weight (A,1), pos_weight (C,)", "none"),
        ("weight (1,)", "sum"),
    ],
)
def test_jax_bce_gradients(shape_id, reduction):
    shape, weight_shape, pos_weight_shape = BCE_SHAPES[shape_id]
    data = sigmoid_data(shape, weight_shape, pos_weight_shape, reduction, shape_id)
    _, reference = _torch_bce(reduction)
    function = _jax_call("binary_cross_entropy", {"reduction": reduction})
    jax_compare(function, reference, data, _bce_wrt(data), f"{shape_id}, {reduction}")


@needs_jax
@pytest.mark.parametrize(("alpha", "reduction"), [(0.25, "mean"), (None, "none")])
def test_jax_sigmoid_focal_gradients(alpha, reduction):
    data = sigmoid_data((2, 4, 3), None, None, reduction, f"jsf{alpha}{reduction}")
    options = {"alpha": alpha, "gamma": 2.0, "reduction": reduction}
    function = _jax_call("sigmoid_focal_loss", options)

    def reference(x, y, w, pw):
        return naive_sigmoid_focal(x, y, **options)

    jax_compare(function, reference, data, ("x", "y"), "sigmoid focal")


@needs_jax
def test_jax_gradients_eager():
    """Outside jit (one configuration: each costs seconds of op-by-op compilation): every
    input at once, and each operand alone (logits not differentiated)."""
    case_id = "probs, weight, smoothing, mean"
    case = CE_CASES[case_id]
    data = softmax_data(case, case_id)
    _, reference = _torch_ce(case)
    function = _jax_call("cross_entropy", case.options())
    for wrt in (("z", "t", "w"), ("w",), ("t",)):
        jax_compare(function, reference, data, wrt, f"{case_id}, wrt {wrt}", jit=False)


def _jax_jvp(function, data, names, tangents):
    fixed = _jax_arrays(data)

    @jax.jit
    def jvp(primals, tangents):
        def partial(*primals):
            return function(**{**fixed, **dict(zip(names, primals, strict=True))})

        return jax.jvp(partial, primals, tangents)

    return jvp(tuple(fixed[n] for n in names), tuple(jnp.asarray(tangents[n]) for n in names))


def _jax_forward_mode_cases():
    """(id) -> (function, torch reference, data, names with a tangent)."""
    ce_id, focal_id = "indices, weight, ignore 1, smoothing, mean", "probs, alpha, smoothing, mean"
    _, ce_reference, ce_data, ce_case = JVP_CASES[f"ce {ce_id}"]
    _, focal_reference, focal_data, focal_case = JVP_CASES[f"focal {focal_id}"]
    ce = _jax_call("cross_entropy", ce_case.options())
    focal = _jax_call("focal_loss", {"gamma": 0.5, **focal_case.options()})
    sig = sigmoid_data((4, 3), (4, 1), (3,), "none", "jax fwd sigmoid")

    def bce_reference(x, y, w, pw):
        return naive_bce(x, y, weight=w, pos_weight=pw, reduction="none")

    def sigmoid_focal_reference(x, y, w, pw):
        return naive_sigmoid_focal(x, y, gamma=0.5, reduction="mean")

    bce = _jax_call("binary_cross_entropy", {"reduction": "none"})
    sigmoid_focal = _jax_call("sigmoid_focal_loss", {"gamma": 0.5, "reduction": "mean"})
    return {
        f"ce {ce_id}, on z, w": (ce, ce_reference, ce_data, ("z", "w")),
        f"ce {ce_id}, on w": (ce, ce_reference, ce_data, ("w",)),
        f"focal {focal_id}, on z, t, w": (focal, focal_reference, focal_data, ("z", "t", "w")),
        "bce none, on x, y, w, pw": (bce, bce_reference, sig, ("x", "y", "w", "pw")),
        "sigmoid focal, on y": (sigmoid_focal, sigmoid_focal_reference, sig, ("y",)),
    }


JAX_FORWARD_MODE = _jax_forward_mode_cases() if jax is not None else {}


@needs_jax
@pytest.mark.parametrize("case_id", list(JAX_FORWARD_MODE) or ["no jax"])
def test_jax_forward_mode(case_id):
    """PENDING DECISION: see FORWARD_MODE_FOR_OPERANDS."""
    function, reference, data, names = JAX_FORWARD_MODE[case_id]
    tangents = _tangents(data, names, case_id)
    expected_value, expected_tangent = _torch_jvp(reference, data, names, tangents)
    if not FORWARD_MODE_FOR_OPERANDS:
        operand = next(name for name in names if name not in ("z", "x"))
        with pytest.raises(NotImplementedError, match=_USER[operand]):
            _jax_jvp(function, data, names, tangents)
        return
    value, tangent = _jax_jvp(function, data, names, tangents)
    assert_close(value, expected_value, f"{case_id}: jvp value")
    assert_close(tangent, expected_tangent, f"{case_id}: jvp tangent")


def _jax_second_order_calls():
    """(id) -> (operand name, loss, data, key of the operand, options, mode)."""
    soft = softmax_data(CE_CASES["probs, weight, smoothing, mean"], "jax 2nd")
    hard = softmax_data(CE_CASES["indices, weight, mean"], "jax 2nd")
    sig = sigmoid_data((4, 3), (4, 1), (3,), "mean", "jax 2nd")
    smoothing = {"label_smoothing": 0.1}
    rows = [
        ("cross_entropy", "weight", hard, "w", {}, "hessian"),
        ("cross_entropy", "weight", hard, "w", {}, "mixed"),
        ("cross_entropy", "weight", hard, "w", {}, "mixed, eager"),
        ("cross_entropy", "weight", hard, "w", {}, "jacfwd of grad"),
        ("cross_entropy", "target", soft, "t", smoothing, "mixed"),
        ("focal_loss", "alpha", hard, "w", {"gamma": 2.0}, "mixed"),
        ("focal_loss", "target", soft, "t", {"gamma": 0.5}, "hessian"),
        ("binary_cross_entropy", "target", sig, "y", {}, "jacfwd of grad"),
        ("binary_cross_entropy", "weight", sig, "w", {}, "hessian"),
        ("binary_cross_entropy", "pos_weight", sig, "pw", {}, "mixed"),
        ("sigmoid_focal_loss", "target", sig, "y", {"gamma": 2.0}, "hessian"),
    ]
    return {
        f"{loss} {name}, {mode}": (name, loss, data, key, options, mode)
        for loss, name, data, key, options, mode in rows
    }


JAX_SECOND_ORDER = _jax_second_order_calls()


@needs_jax
@pytest.mark.parametrize("call_id", list(JAX_SECOND_ORDER))
def test_jax_second_order_through_an_operand_is_refused(call_id):
    """jax.hessian w.r.t. the operand; "mixed": d/d(operand) of Σ ∂loss/∂logits; jacfwd of
    the gradient w.r.t. the operand, differentiated w.r.t. the logits."""
    name, loss, data, key, options, mode = JAX_SECOND_ORDER[call_id]
    function = _jax_call(loss, options)
    arrays = _jax_arrays(data)
    logits = "z" if "z" in arrays else "x"

    def scalar(z, operand):
        return jnp.sum(function(**{**arrays, logits: z, key: operand}))

    if mode == "hessian":
        second = jax.hessian(scalar, argnums=1)
    elif mode.startswith("mixed"):

        def second(z, operand):
            return jax.grad(lambda a: jnp.sum(jax.grad(scalar)(z, a)))(operand)

    else:
        second = jax.jacfwd(jax.grad(scalar, argnums=1), argnums=0)
    if not mode.endswith("eager"):
        second = jax.jit(second)
    with pytest.raises(NotImplementedError, match=_name_pattern(name)):
        second(arrays[logits], arrays[key])


@needs_jax
def test_jax_second_order_through_the_logits_with_a_constant_weight_still_works():
    data = softmax_data(CE_CASES["indices, weight, ignore 1, smoothing, mean"], "jax hessian")
    z, t, w = (jnp.asarray(data[k]) for k in "ztw")
    options = {"ignore_index": 1, "label_smoothing": 0.2}
    got = jax.jit(jax.hessian(lambda z: mj.cross_entropy(z, t, axis=1, weight=w, **options)))(z)
    t_torch, w_torch = torch.tensor(data["t"]), torch.tensor(data["w"])
    expected = torch.autograd.functional.hessian(
        lambda z: F.cross_entropy(z, t_torch, weight=w_torch, **options), torch.tensor(data["z"])
    )
    assert_close(got, expected, "hessian with a constant weight")


@needs_jax
@pytest.mark.parametrize(
    "zero_id",
    [
        "counted weights all 0",
        "every element ignored",
        "focal, every element ignored",
        "empty batch, probabilities",
        "counted weights all 0, smoothing",
    ],
)
def test_jax_mean_over_nothing_is_zero_with_zero_gradients(zero_id):
    """Under jit (the reduction is the core's, the same eager)."""
    loss, z_data, t_data, w_data, options = _zero_mean_data(zero_id)
    key = "weight" if loss == "cross_entropy" else "alpha"
    soft = t_data.dtype.kind == "f"

    def function(z, w, t):
        return getattr(mj, loss)(z, t, axis=1, **{key: w}, **options)

    argnums = (0, 1, 2) if soft else (0, 1)
    value_and_grad = jax.jit(jax.value_and_grad(function, argnums=argnums))
    value, grads = value_and_grad(jnp.asarray(z_data), jnp.asarray(w_data), jnp.asarray(t_data))
    assert float(value) == 0.0, f"{zero_id}: mean over nothing gave {float(value)}"
    for name, grad in zip(("logits", key, "target"), grads, strict=False):
        assert not np.any(np.asarray(grad)), f"{zero_id}: {name} gradient {grad}"
