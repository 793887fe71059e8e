"""Issue 24: the distribution focal loss and the detection normalisers.

* values and gradients against an independent float64 formula that forms the two-hot
  target explicitly (in every face: NumPy with ``*_grad``, torch functional and module,
  JAX, the top-level dispatch), targets on bin edges (t integer, t = 0, t = n - 1);
* accuracy against 50-digit mpmath, loss and gradient in units of eps · (1 + |reference|),
  float32 and float64, on the inputs rounded to the dtype;
* the closed-form second order: ``gradcheck`` / ``gradgradcheck`` (torch, float64) and
  ``check_grads`` (JAX, order 2, forward and reverse), the Hessian-vector product against
  ``torch.func.hessian`` of the explicit formula; first order in the target and weight;
* bad targets: an error naming the argument and the values (catalogue, tests/catalogue.py),
  NaN under a JAX trace, which ``multiloss.jax.checked`` turns into an error;
* parity with ultralytics' ``DFLoss`` (with its ``BboxLoss`` weighting and
  ``target_scores_sum``) and mmdetection's ``distribution_focal_loss`` (``weight``,
  ``avg_factor``), both written here from their published definitions (neither package
  installs beside torch 2.13);
* the detection normalisers of docs/semantics.md: mmdetection's ``avg_factor`` (positives
  counted, summed over ranks, clamped at 1) and ultralytics' ``target_scores_sum``, on
  sigmoid focal loss, BCE and DFL.

Parity row ids (docs/parity.md): :data:`PARITY_TESTS` at the end.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from backends import XP_NAMES, asarray, assert_close, assert_eps, namespace, run_core, to_numpy

import multiloss
import multiloss.numpy as mn

torch = pytest.importorskip("torch")
import multiloss.torch as mt  # noqa: E402

F64 = {"rtol": 1e-12, "atol": 1e-14}


# ------------------------------------------------------------------ independent formulas


def two_hot(target: np.ndarray, bins: int) -> np.ndarray:
    """The explicit two-hot distribution of continuous targets (float64, one row each)."""
    rows = np.zeros((target.size, bins))
    for i, t in enumerate(np.ravel(target)):
        low = min(math.floor(t), bins - 2)
        rows[i, low] += low + 1 - t
        rows[i, low + 1] += t - low
    return rows.reshape(*np.shape(target), bins)


def oracle(z: np.ndarray, t: np.ndarray, weight=None, reduction="mean"):
    """Cross-entropy against the explicit two-hot target, bins on the last axis: the
    loss and the gradient of its sum, float64."""
    z = np.asarray(z, dtype=np.float64)
    log_p = z - z.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    c = two_hot(np.asarray(t, dtype=np.float64), z.shape[-1])
    w = np.ones(np.shape(t)) if weight is None else np.broadcast_to(weight, np.shape(t))
    per = -w * (c * log_p).sum(-1)
    grad = w[..., None] * (np.exp(log_p) - c)
    if reduction == "none":
        return per, grad
    scale = 1.0 / per.size if reduction == "mean" else 1.0
    return per.sum() * scale, grad * scale


def problem(rows=6, bins=5, seed=0):
    """Logits and targets with every kind of bin position: t = 0, t integer, t = n - 1,
    interior and close to an edge."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(rows, bins))
    t = np.array([0.0, 1.0, bins - 1.0, 2.5, 0.999, bins - 1.001][:rows])
    return z, t


# ------------------------------------------------------------------ values, every face


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_numpy_matches_the_explicit_two_hot(reduction):
    z, t = problem()
    w = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0])
    for weight in (None, w):
        loss, grad = mn.distribution_focal_loss_value_and_grad(
            z, t, weight=weight, reduction=reduction
        )
        ref_loss, ref_grad = oracle(z, t, weight, reduction)
        assert_close(loss, ref_loss, **F64, what="loss")
        assert_close(grad, ref_grad, **F64, what="grad")
        only = mn.distribution_focal_loss_grad(z, t, weight=weight, reduction=reduction)
        assert_close(only, ref_grad, **F64, what="grad alone")


@pytest.mark.parametrize("xp_name", XP_NAMES)
def test_the_core_in_every_namespace(xp_name):
    """The core itself on each array namespace (array-api-strict included): value and
    gradient against the oracle, float32 (JAX without x64) or float64."""
    xp = namespace(xp_name)
    dtype = "float32" if xp_name == "jax" else "float64"
    z, t = problem()
    w = np.linspace(0.5, 2.0, 6)
    loss, grad = run_core(
        "distribution_focal_loss",
        asarray(xp, z, dtype),
        asarray(xp, t, dtype),
        weight=asarray(xp, w, dtype),
        reduction="sum",
    )
    ref_loss, ref_grad = oracle(z, t, w, "sum")
    tolerance = {"rtol": 3e-6, "atol": 3e-6} if dtype == "float32" else F64
    assert_close(to_numpy(loss), ref_loss, **tolerance, what=xp_name)
    assert_close(to_numpy(grad), ref_grad, **tolerance, what=xp_name)


def test_last_bin_puts_all_mass_there_and_reads_no_bin_beyond():
    z = np.array([[0.0, 1.0, 2.0], [5.0, -3.0, 0.5]])
    loss = mn.distribution_focal_loss(z, np.array([2.0, 2.0]), reduction="none")
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert_close(loss, -log_p[:, 2], **F64)
    grad = mn.distribution_focal_loss_grad(z, np.array([2.0, 2.0]), reduction="sum")
    assert_close(grad, np.exp(log_p) - np.array([0.0, 0.0, 1.0]), **F64)


def test_torch_jax_and_dispatch_agree_with_the_oracle():
    import jax.numpy as jnp

    import multiloss.jax as mj

    z, t = problem()
    w = np.linspace(0.5, 2.0, 6)
    ref_loss, ref_grad = oracle(z, t, w)
    # torch: (N, n) with the bins on axis 1 (PyTorch's convention), and (N, n, d) layouts
    zt = torch.tensor(z, requires_grad=True)
    loss = mt.distribution_focal_loss(zt, torch.tensor(t), weight=torch.tensor(w))
    loss.backward()
    assert_close(loss.detach().numpy(), ref_loss, **F64, what="torch")
    assert_close(zt.grad.numpy(), ref_grad, **F64, what="torch grad")
    spatial = torch.tensor(z.T[None].copy())  # (1, n, 6): bins on axis 1
    module = mt.DistributionFocalLoss()
    value = module(spatial, torch.tensor(t)[None], weight=torch.tensor(w)[None])
    assert_close(value.numpy(), ref_loss, **F64, what="module, (N, n, d)")
    assert repr(module) == "DistributionFocalLoss(reduction='mean')"
    # JAX (x64 is off: float32), the top-level dispatch of each backend
    value = mj.distribution_focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(t), weight=w)
    assert_close(np.asarray(value), ref_loss, rtol=2e-6, atol=2e-6, what="jax")
    assert_close(multiloss.distribution_focal_loss(z, t, weight=w), ref_loss, **F64)
    top = multiloss.distribution_focal_loss(
        torch.tensor(z), torch.tensor(t), weight=torch.tensor(w)
    )
    assert_close(top.numpy(), ref_loss, **F64, what="dispatch, torch")


def test_the_criterion_takes_the_registry_options_and_weight_per_call():
    """DistributionFocalLoss: the registry's `reduction` (default "mean") at construction;
    `weight` (the registry's other option) and `normalizer` with each call, as
    ultralytics' and mmdetection's criteria take their weights."""
    import inspect

    from multiloss._core import LOSSES

    defaults = LOSSES["distribution_focal_loss"].defaults()
    init = inspect.signature(mt.DistributionFocalLoss.__init__).parameters
    assert init["reduction"].default == defaults["reduction"]
    forward = inspect.signature(mt.DistributionFocalLoss.forward).parameters
    assert forward["weight"].default is defaults["weight"] and forward["normalizer"].default is None
    z, t = problem()
    w = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    value = mt.DistributionFocalLoss(reduction="sum")(torch.tensor(z), torch.tensor(t), weight=w)
    assert_close(value.numpy(), oracle(z, t, w.numpy(), "sum")[0], **F64)


def test_engine_triton_keeps_the_eager_plans_for_float64_dfl():
    """The DFL kernels compute in float32 (tests/test_triton_distribution.py): under
    engine("triton") float64 logits keep the eager plans (in Triton's interpreter here),
    with the oracle's numbers."""
    z, t = problem()
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    with mt.engine("triton"):
        loss = mt.distribution_focal_loss(zt, torch.tensor(t))
    assert loss.grad_fn is not None and "LossFunction" in type(loss.grad_fn).__name__
    loss.backward()
    ref_loss, ref_grad = oracle(z, t)
    assert_close(loss.detach().numpy(), ref_loss, **F64)
    assert_close(zt.grad.numpy(), ref_grad, **F64)


@pytest.mark.parametrize("plan", ["generic", "whole", "slab"])
def test_every_torch_plan_and_16_bit_logits(plan):
    from multiloss.torch import _plans

    z, t = problem()
    ref_loss, ref_grad = oracle(z, t)
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.bfloat16, 2e-2)):
        zt = torch.tensor(z, dtype=dtype, requires_grad=True)
        with _plans.forced(plan):
            loss = mt.distribution_focal_loss(zt, torch.tensor(t))
            loss.backward()
        assert loss.dtype == dtype
        what = f"{plan}, {dtype}"
        assert_close(loss.detach().double().numpy(), ref_loss, rtol=tolerance, atol=tolerance)
        assert_close(zt.grad.double().numpy(), ref_grad, rtol=tolerance, atol=tolerance, what=what)


# ------------------------------------------------------------------ accuracy (mpmath)


def _mp_reference(z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element loss and gradient, 50 digits, on the given (rounded) inputs."""
    with mpmath.workdps(50):
        losses, grads = [], []
        for row, ti in zip(z, t, strict=True):
            row = [mpmath.mpf(float(v)) for v in row]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))
            c = [mpmath.mpf(0)] * len(row)
            ti = mpmath.mpf(float(ti))
            low = min(int(mpmath.floor(ti)), len(row) - 2)
            c[low] += low + 1 - ti
            c[low + 1] += ti - low
            losses.append(float(-mpmath.fsum(ck * (v - lse) for ck, v in zip(c, row, strict=True))))
            grads.append([float(mpmath.exp(v - lse) - ck) for ck, v in zip(c, row, strict=True)])
    return np.array(losses), np.array(grads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_accuracy_in_eps_against_mpmath(dtype):
    rng = np.random.default_rng(24)
    z = np.concatenate(
        [
            rng.normal(scale=3.0, size=(6, 8)),
            [[40.0, 0, 0, 0, 0, 0, 0, -40.0], [1e4, -1e4, 0, 0, 0, 0, 0, 0]],
            [[0.0] * 8, [30.0, 29.5, -3, 0, 0, 0, 0, 1]],
        ]
    ).astype(dtype)
    t = np.array([0.0, 7.0, 3.0, 0.3, 6.999, 4.5, 0.01, 0.5, 2.25, 0.0]).astype(dtype)
    ref_loss, ref_grad = _mp_reference(z, t)
    loss, grad = mn.distribution_focal_loss_value_and_grad(z, t, reduction="none", dtype=None)
    assert_eps(loss, ref_loss, dtype, 5.0, what="loss")
    assert_eps(grad, ref_grad, dtype, 5.0, what="grad")
    zt = torch.tensor(z, requires_grad=True)
    value = mt.distribution_focal_loss(zt, torch.tensor(t), reduction="none")
    value.sum().backward()
    assert_eps(value.detach().numpy(), ref_loss, dtype, 5.0, what="torch loss")
    assert_eps(zt.grad.numpy(), ref_grad, dtype, 5.0, what="torch grad")
    assert np.isfinite(loss).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_nan_for_finite_logits(dtype):
    """Extreme finite logits (up to the dtype's largest) with targets on every kind of
    position: the loss is never NaN (inf only where the exact loss overflows the dtype),
    the gradient always finite."""
    big = float(np.finfo(dtype).max)
    rows = [
        [big, -big, 0.0, 1.0],
        [-big, big, 0.0, 1.0],
        [1e4, -1e4, 1e4, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [-30.0, 30.0, -30.0, 30.0],
        [big / 2, big / 2, -big / 2, 0.0],
    ]
    z = np.array([row for row in rows for _ in range(4)], dtype=dtype)
    t = np.tile(np.array([0.0, 1.0, 3.0, 1.5], dtype=dtype), len(rows))
    loss, grad = mn.distribution_focal_loss_value_and_grad(z, t, reduction="none", dtype=None)
    assert not np.isnan(loss).any() and np.isfinite(grad).all()
    assert np.isfinite(loss[8:]).all()  # no overflow below |z| = 1e4 and big / 2 pairs
    zt = torch.tensor(z, requires_grad=True)
    value = mt.distribution_focal_loss(zt, torch.tensor(t), reduction="none")
    (g,) = torch.autograd.grad(value, zt, torch.ones_like(value))  # inf rows included
    assert not torch.isnan(value).any() and torch.isfinite(g).all()
    assert_close(g.numpy(), grad, **F64, what="torch grad")


# ------------------------------------------------------------------ derivatives


def _edge_problem():
    z, t = problem()
    return torch.tensor(z, requires_grad=True), torch.tensor(t)  # t = 0, 1, 4, 2.5, ...


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_and_gradgradcheck_with_targets_on_bin_edges(reduction):
    z, t = _edge_problem()
    w = torch.linspace(0.5, 2.0, 6, dtype=torch.float64, requires_grad=True)

    def f(z, w):
        return mt.distribution_focal_loss(z, t, weight=w, reduction=reduction)

    assert torch.autograd.gradcheck(f, (z, w))
    assert torch.autograd.gradgradcheck(lambda z: f(z, w.detach()), (z,))


def test_hessian_vector_product_is_the_softmax_family_hessian():
    z, t = _edge_problem()
    w = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    c = torch.tensor(two_hot(t.numpy(), 5))
    v = torch.tensor(np.random.default_rng(2).normal(size=(6, 5)))

    def hvp(loss, z):
        (g,) = torch.autograd.grad(loss, z, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), z)
        return h

    ours = hvp(mt.distribution_focal_loss(z, t, weight=w), z)
    # cross-entropy against the explicit two-hot target, differentiated twice by autograd
    theirs = hvp(-(w[:, None] * c * torch.log_softmax(z, dim=1)).sum() / 6, z)
    assert_close(ours.numpy(), theirs.numpy(), **F64, what="H·v")


def test_first_order_in_the_target_between_edges():
    z = torch.randn(5, 6, dtype=torch.float64)
    t = torch.tensor([0.25, 1.5, 2.75, 4.1, 4.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mt.distribution_focal_loss(z, t), (t,))


def test_jax_check_grads_to_order_two_on_bin_edges():
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    import multiloss.jax as mj

    z, t = problem()
    t, w = jnp.asarray(t, jnp.float32), jnp.arange(1.0, 7.0)

    @jax.jit
    def f(z):
        per = mj.distribution_focal_loss(z, t, weight=w, reduction="none")
        return per * jnp.arange(1.0, 7.0)  # "none", each element with its own cotangent

    check_grads(
        f,
        (jnp.asarray(z, jnp.float32),),
        order=2,
        modes=("fwd", "rev"),
        eps=1e-2,
        atol=2e-3,
        rtol=2e-3,
    )


# ------------------------------------------------------------------ bad targets


def test_a_bad_target_names_the_argument_and_its_values():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 3\].*got \[3.5\]"):
        mn.distribution_focal_loss(z, np.array([0.0, 3.5, 1.0]))
    with pytest.raises(ValueError, match=r"got \[nan\]"):
        mt.distribution_focal_loss(torch.zeros(3, 4), torch.tensor([0.0, math.nan, 1.0]))
    with pytest.raises(TypeError, match="no class indices"):
        mt.distribution_focal_loss(torch.zeros(3, 4), torch.tensor([0, 1, 2]))


def test_a_traced_bad_target_is_nan_and_checked_raises():
    import jax
    import jax.numpy as jnp

    import multiloss.jax as mj

    z = jnp.zeros((3, 4))
    step = jax.jit(lambda z, t: mj.distribution_focal_loss(z, t, reduction="none"))
    values = np.asarray(step(z, jnp.array([0.0, 3.5, 1.0])))
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()  # never a clamp
    assert np.isnan(np.asarray(step(z, jnp.array([0.0, jnp.nan, 1.0])))[1])
    with pytest.raises(Exception, match=r"target must lie in \[0, 3\].*3\.5"):
        mj.checked(step)(z, jnp.array([0.0, 3.5, 1.0]))
    mj.checked(step)(z, jnp.array([0.0, 3.0, 1.0]))  # the last bin is valid


# ------------------------------------------------------------------ peers (written here)


def ultralytics_dfl(pred_dist, target, reg_max):
    """ultralytics' ``DFLoss.__call__`` (utils/loss.py), from its published definition:
    clamps the target to [0, reg_max - 1 - 0.01] (in place there), splits it into the left
    and right bins with weights (tl + 1 - t) and (t - tl), and returns the mean over the
    last axis (the 4 sides) of the two cross-entropies, keepdim."""
    target = target.clamp(0, reg_max - 1 - 0.01)
    left = target.long()
    right = left + 1
    wl = right - target
    wr = 1 - wl
    ce = torch.nn.functional.cross_entropy
    return (
        ce(pred_dist, left.view(-1), reduction="none").view(left.shape) * wl
        + ce(pred_dist, right.view(-1), reduction="none").view(left.shape) * wr
    ).mean(-1, keepdim=True)


def test_ultralytics_dfloss_with_bbox_loss_weighting():
    """ultralytics' BboxLoss: DFLoss(pred_dist[fg].view(-1, reg_max), target_ltrb[fg]) times
    the per-anchor weight (the anchor's target score sum), summed, divided by
    target_scores_sum. multiloss: the (P, 4, reg_max) logits, the same clamp (made
    explicit), the weight broadcast over the 4 sides and normalizer = 4 · target_scores_sum
    (ultralytics' mean over the 4 sides)."""
    rng = np.random.default_rng(5)
    positives, reg_max = 7, 16
    logits = torch.tensor(rng.normal(size=(positives * 4, reg_max)), requires_grad=True)
    target = torch.tensor(rng.uniform(0, reg_max - 1, size=(positives, 4)))
    target[0, 0], target[1, 2] = 15.0, 0.0  # 15.0 is clamped to 14.99 by ultralytics
    weight = torch.tensor(rng.uniform(0.1, 1.0, size=(positives, 1)))
    target_scores_sum = max(float(weight.sum()), 1.0)
    theirs = (ultralytics_dfl(logits, target, reg_max) * weight).sum() / target_scores_sum
    clamped = target.clamp(0, reg_max - 1 - 0.01)
    ours = mt.distribution_focal_loss(
        logits.view(positives, 4, reg_max),
        clamped,
        axis=-1,
        weight=weight,
        normalizer=4 * target_scores_sum,
    )
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), **F64, what="value")
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    (g_ours,) = torch.autograd.grad(ours, logits)
    assert_close(g_ours.numpy(), g_theirs.numpy(), **F64, what="grad")
    # Without the clamp, t = 15 (the last bin of 16) is valid here and differs.
    unclamped = mt.distribution_focal_loss(
        logits.view(positives, 4, reg_max),
        target,
        axis=-1,
        weight=weight,
        normalizer=4 * target_scores_sum,
    )
    assert abs(float(unclamped.detach()) - float(theirs.detach())) > 1e-6


def mmdet_dfl(pred, label, weight=None, reduction="mean", avg_factor=None):
    """mmdetection's ``distribution_focal_loss`` under its ``weighted_loss`` decorator:
    per element CE(left)·(right - t) + CE(right)·(t - left), times ``weight``, then
    "mean" divides the sum by the element count, or by ``avg_factor + eps`` (float32 eps)
    where one is given; "sum" with ``avg_factor`` is an error there."""
    left = label.long()
    right = left + 1
    ce = torch.nn.functional.cross_entropy
    loss = ce(pred, left, reduction="none") * (right.float() - label) + ce(
        pred, right, reduction="none"
    ) * (label - left.float())
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return loss.mean() if reduction == "mean" else loss.sum()
    return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)


def test_mmdet_distribution_focal_loss_weight_and_avg_factor():
    rng = np.random.default_rng(6)
    n, bins = 12, 9
    pred = torch.tensor(rng.normal(size=(n, bins)), requires_grad=True)
    label = torch.tensor(rng.uniform(0, bins - 1.1, size=n))  # mmdet's coder clamps to n - 1.1
    label[3] = 4.0
    weight = torch.tensor(rng.uniform(0, 1, size=n))
    for kwargs, options in (
        ({}, {}),
        ({"weight": weight}, {"weight": weight}),
        ({"weight": weight, "reduction": "sum"}, {"weight": weight, "reduction": "sum"}),
    ):
        theirs = mmdet_dfl(pred, label, **kwargs)
        ours = mt.distribution_focal_loss(pred, label, **options)
        assert_close(ours.detach().numpy(), theirs.detach().numpy(), **F64, what=str(kwargs))
    avg_factor = 4.0 * 3  # GFL: 4 sides of 3 positives
    theirs = mmdet_dfl(pred, label, weight, avg_factor=avg_factor)
    ours = mt.distribution_focal_loss(pred, label, weight=weight, normalizer=avg_factor)
    # mmdet adds float32's eps to the denominator: a relative 1e-8 here
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-8, atol=0)


# ------------------------------------------------------------------ detection normalisers


def mmdet_sigmoid_focal(pred, target, alpha=0.25, gamma=2.0, avg_factor=None):
    """mmdetection's ``py_sigmoid_focal_loss`` (one-hot target, reduction "mean") with
    ``weight_reduce_loss``'s ``avg_factor``: sum / (avg_factor + float32 eps)."""
    p = pred.sigmoid()
    pt = (1 - p) * target + p * (1 - target)
    focal = (alpha * target + (1 - alpha) * (1 - target)) * pt.pow(gamma)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return (loss * focal).sum() / (avg_factor + torch.finfo(torch.float32).eps)


def test_mmdet_avg_factor_counted_summed_over_ranks_and_clamped():
    """avg_factor = max(Σ_ranks num_pos, 1): each rank counts its positives, the counts
    are all-reduced (summed; mmdetection's reduce_mean then divides by the world size, and
    its heads divide the summed loss accordingly), clamped at 1. Two ranks are simulated
    by splitting the batch; their losses add up to the whole batch's."""
    rng = np.random.default_rng(7)
    anchors, classes = 64, 5
    x = torch.tensor(rng.normal(size=(anchors, classes)))
    labels = np.full(anchors, classes)  # background
    labels[[3, 17, 40, 41, 60]] = [0, 2, 2, 4, 1]
    y = torch.zeros(anchors, classes, dtype=torch.float64)
    fg = torch.tensor(labels < classes)
    y[fg, torch.tensor(labels[labels < classes])] = 1.0
    ranks = [slice(0, 32), slice(32, 64)]
    counts = [fg[r].sum() for r in ranks]  # each rank's count; all_reduce(SUM) gives:
    avg_factor = torch.clamp(sum(counts).to(torch.float64), min=1.0)
    assert float(avg_factor) == 5.0
    theirs = mmdet_sigmoid_focal(x, y, avg_factor=float(avg_factor))
    parts = [
        mt.sigmoid_focal_loss(x[r], y[r], alpha=0.25, gamma=2.0, normalizer=avg_factor)
        for r in ranks
    ]
    assert_close(sum(parts).numpy(), theirs.numpy(), rtol=1e-7, atol=0)
    # No positive anywhere: the clamp keeps the denominator at 1 (the loss is the sum).
    none = torch.clamp(torch.tensor(0.0, dtype=torch.float64), min=1.0)
    empty = mt.sigmoid_focal_loss(x, torch.zeros_like(y), normalizer=none)
    ref = mt.sigmoid_focal_loss(x, torch.zeros_like(y), reduction="sum")
    assert_close(empty.numpy(), ref.numpy(), **F64)


def test_ultralytics_target_scores_sum():
    """ultralytics v8DetectionLoss: cls = BCE(pred_scores, target_scores).sum() /
    max(target_scores.sum(), 1); soft (IoU-aligned) scores on the positives."""
    rng = np.random.default_rng(8)
    anchors, classes = 200, 4
    x = torch.tensor(rng.normal(size=(2, anchors, classes)))
    scores = torch.zeros(2, anchors, classes, dtype=torch.float64)
    scores[0, 5, 1], scores[1, 77, 3], scores[1, 120, 0] = 0.83, 0.41, 0.66
    target_scores_sum = max(scores.sum(), 1)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    theirs = bce(x, scores).sum() / target_scores_sum
    ours = mt.binary_cross_entropy(x, scores, normalizer=target_scores_sum)
    assert_close(ours.numpy(), theirs.numpy(), **F64)
    assert float(target_scores_sum) == pytest.approx(1.9)
    few = torch.zeros_like(scores)
    few[0, 9, 2] = 0.4  # one weak positive: the sum 0.4 is clamped to 1
    theirs = bce(x, few).sum() / max(few.sum(), 1)
    ours = mt.binary_cross_entropy(x, few, normalizer=torch.clamp(few.sum(), min=1.0))
    assert_close(ours.numpy(), theirs.numpy(), **F64)


PARITY_TESTS = {
    "ultralytics-dfl": test_ultralytics_dfloss_with_bbox_loss_weighting,
    "mmdet-dfl": test_mmdet_distribution_focal_loss_weight_and_avg_factor,
    "mmdet-avg-factor": test_mmdet_avg_factor_counted_summed_over_ranks_and_clamped,
    "ultralytics-target-scores-sum": test_ultralytics_target_scores_sum,
}
"""The rows of docs/parity.md that this module reproduces."""
