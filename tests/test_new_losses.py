"""Issue 13: z-loss, logit soft-capping, PolyLoss and Asymmetric Loss.

* accuracy against the 50-digit mpmath oracles (``tests/oracles.py``, issue 13 section), in
  units of eps · (1 + |reference|) of the input dtype, loss and every gradient entry,
  float32 and float64, in every namespace (JAX every third case), on the inputs rounded
  to the dtype first (the bound of ``tests/test_core_accuracy.py``: 5 eps);
* the closed-form Hessian-vector product against mpmath's derivative of the oracle's
  gradient; ``gradcheck`` / ``gradgradcheck`` (torch, float64) and ``check_grads`` (JAX,
  order 2, forward and reverse) over a grid with γ < 1, ε < 0, clip = 0 and saturated
  logits;
* no NaN or inf for finite logits (a deterministic grid of extreme logits, and hypothesis);
* parity: optax's ``poly_loss_cross_entropy``; Liger-Kernel's z-loss (``lse_square_scale``,
  written here); soft-capping against automatic differentiation of the capped reference
  (torch autograd, ``jax.grad`` of optax); timm's ``AsymmetricLossMultiLabel`` (written
  here: timm needs a torchvision that does not install beside torch 2.13);
* the torch modules, the top-level dispatch and the backends agree.

Parity row ids (for docs/parity.md): see :data:`PARITY_TESTS` at the end.
"""

from __future__ import annotations

import functools

import catalogue
import mpmath
import numpy as np
import oracles
import pytest
from backends import XP_NAMES, assert_close, assert_eps, namespace, run_numpy, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from multiloss import _core
from multiloss._core import second_order

ULP_BOUND = {"float64": 5.0, "float32": 5.0}
DTYPES = ("float64", "float32")
F64 = {"rtol": 1e-12, "atol": 1e-14}

# ----------------------------------------------------------------------------- problems


def _softmax_logits() -> np.ndarray:
    """Rows of 4 logits: random ones and hard ones (saturated, p_t near 1 and 0)."""
    rng = np.random.default_rng(13)
    rows = [rng.normal(scale=3.0, size=4) for _ in range(5)]
    rows += [
        np.array(row, dtype=np.float64)
        for row in (
            [30, 0, -30, 1],
            [100, -100, 0, 5],
            [1e4, -1e4, 0, 1],
            [-1e4, 1e4, 0, 1],
            [12, 0, 0, 0],
            [36.7, 0, 0, 0],
            [1e-8, 0, 0, 0],
            [0, 0, 0, 0],
            [40, 39.5, -3, 0],
            [5e-3, 0, -5e-3, 1e-3],
        )
    ]
    return np.stack(rows)


def _softmax_problem(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Class indices (each row with the target at its largest logit, its smallest and a
    fixed column; two rows ignored) or probabilities (Dirichlet, and one-hot rows)."""
    logits = _softmax_logits()
    count = len(logits)
    if kind == "indices":
        target = np.concatenate(
            [np.argmax(logits, axis=1), np.argmin(logits, axis=1), np.arange(count) % 4]
        )
        target[[3, count + 7]] = -100
        return np.concatenate([logits, logits, logits]), target
    rng = np.random.default_rng(5)
    soft = rng.dirichlet(np.full(4, 0.5), size=count)
    hard = np.eye(4)[np.argmin(logits, axis=1)]
    return np.concatenate([logits, logits]), np.concatenate([soft, hard])


def _asymmetric_problem() -> tuple[np.ndarray, np.ndarray]:
    """Logits from tiny to saturated, near the clip's kink σ(x) = 0.05 too, each with
    targets 1, 0 and 0.3."""
    rng = np.random.default_rng(4)
    x = np.concatenate(
        [
            rng.normal(scale=4.0, size=8),
            [0, 1e-8, -1e-8, 0.5, -0.5, -2.5, -2.9, -3.0, -4.0, 20, -20, 36.8, -36.8],
            [100, -100, 1e4, -1e4],
        ]
    )
    count = x.size
    y = np.concatenate([np.ones(count), np.zeros(count), np.full(count, 0.3)])
    return np.concatenate([x, x, x]), y


def _inputs(name: str, kind: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The problem rounded to `dtype` (held in float64 for the oracle)."""
    if name == "asymmetric_loss":
        logits, target = _asymmetric_problem()
    else:
        logits, target = _softmax_problem(kind)
    if target.dtype.kind == "f":
        target = target.astype(dtype).astype(np.float64)
    return logits.astype(dtype).astype(np.float64), target


def _configs():
    """(loss, target kind, options)."""
    w = [0.3, 1.0, 2.0, 0.5]
    yield "cross_entropy", "indices", {"z_loss": 1e-4}
    yield "cross_entropy", "indices", {"z_loss": 0.1, "weight": w}
    yield "cross_entropy", "indices", {"softcap": 5.0}
    yield "cross_entropy", "indices", {"softcap": 30.0}
    yield "cross_entropy", "indices", {"softcap": 30.0, "z_loss": 1e-3, "label_smoothing": 0.1}
    yield "cross_entropy", "probabilities", {"z_loss": 1e-2, "softcap": 5.0, "weight": w}
    yield "focal_loss", "indices", {"gamma": 2.0, "z_loss": 1e-3}
    yield "focal_loss", "indices", {"gamma": 0.5, "softcap": 5.0}
    yield "focal_loss", "indices", {"gamma": 2.0, "alpha": 0.25, "softcap": 30.0, "z_loss": 1e-2}
    yield "focal_loss", "probabilities", {"gamma": 0.5, "z_loss": 1e-3, "softcap": 30.0}
    for epsilon in (2.0, 1.0, -1.0, -0.5):
        for gamma in (0.0, 0.5, 2.0):
            yield "poly_loss", "indices", {"epsilon": epsilon, "gamma": gamma}
    yield "poly_loss", "indices", {"epsilon": -1.0, "gamma": 0.5, "alpha": 0.25,
                                   "label_smoothing": 0.1}  # fmt: skip
    yield "poly_loss", "indices", {"epsilon": 2.0, "gamma": 2.0, "alpha": w}
    yield "poly_loss", "indices", {"epsilon": 1.0, "z_loss": 1e-3, "softcap": 5.0}
    yield "poly_loss", "probabilities", {"epsilon": 2.0}
    yield "poly_loss", "probabilities", {"epsilon": -0.5, "gamma": 2.0, "label_smoothing": 0.1}
    yield "poly_loss", "probabilities", {"epsilon": -1.0, "gamma": 0.5, "alpha": w,
                                         "z_loss": 1e-2, "softcap": 30.0}  # fmt: skip
    for gamma_pos in (0.0, 1.0):
        for gamma_neg in (0.0, 0.5, 4.0):
            for clip in (0.0, 0.05):
                options = {"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "clip": clip}
                yield "asymmetric_loss", "multi-label", options
    # a small clip: 1 - p_m = σ(-x) + clip, exact from the logits, not 1 - (σ(x) - clip)
    yield "asymmetric_loss", "multi-label", {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 1e-6}


def _config_id(name, kind, options):
    return "-".join([name, kind, *(f"{k}={v}" for k, v in options.items())])


CONFIGS = [
    pytest.param(name, kind, options, id=_config_id(name, kind, options))
    for name, kind, options in _configs()
]


def _option_items(options: dict) -> tuple:
    return tuple(
        sorted((key, tuple(v) if isinstance(v, list) else v) for key, v in options.items())
    )


@functools.cache
def _reference(name, kind, option_items, dtype, reduction):
    logits, target = _inputs(name, kind, dtype)
    return oracles.MPMATH_EXT[name](logits, target, reduction=reduction, **dict(option_items))


def _with_namespaces(params, jax_every=3):
    """Each param in every namespace; JAX (eager: every operation compiled anew per shape
    and option set) every third one."""
    for index, param in enumerate(params):
        for xp_name in XP_NAMES:
            if xp_name != "jax" or index % jax_every == 0:
                yield pytest.param(xp_name, *param.values, id=f"{xp_name}-{param.id}")


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("xp_name", "name", "kind", "options"), list(_with_namespaces(CONFIGS)))
def test_elementwise_accuracy(xp_name, name, kind, options, dtype):
    logits, target = _inputs(name, kind, dtype)
    loss, grad = run_numpy(
        namespace(xp_name), name, logits, target, dtype=dtype, reduction="none", **options
    )
    ref_loss, ref_grad = _reference(name, kind, _option_items(options), dtype, "none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    bound = ULP_BOUND[dtype] + _capping_allowance(options)
    assert_eps(loss, ref_loss, dtype, bound, "loss")
    assert_eps(grad, ref_grad, dtype, bound, "grad")


def _capping_allowance(options):
    """Soft-capped logits z' = c·tanh(z/c) are an intermediate of the dtype: rounding them
    (|δz'| ≤ ulp(c)/2 ≤ c·eps/2, and a tanh within a few ulps: XLA's float32 tanh is off by
    up to 4) moves the loss by up to |δz'| · Σ_k |∂L/∂z'_k| ≤ 2|δz'|: 2c eps more, in the
    units of assert_eps. Measured: 11.4 eps for c = 30 in JAX float32, 1.5 eps elsewhere."""
    softcap = options.get("softcap")
    return 0.0 if softcap is None else 2.0 * softcap


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kind", "options"), CONFIGS[::3])
def test_reduced_accuracy(name, kind, options, dtype, reduction):
    """A reduction adds one rounding per element at most; the mean's denominators (Σ w_t
    for weighted cross-entropy, the counted elements otherwise) as without z-loss."""
    logits, target = _inputs(name, kind, dtype)
    loss, grad = run_numpy(np, name, logits, target, dtype=dtype, reduction=reduction, **options)
    ref_loss, ref_grad = _reference(name, kind, _option_items(options), dtype, reduction)
    allowance = _capping_allowance(options)
    assert_eps(loss, ref_loss, dtype, 2 * ULP_BOUND[dtype] + allowance, "loss")
    assert_eps(grad, ref_grad, dtype, ULP_BOUND[dtype] + allowance, "grad")


def test_numpy_oracles_agree_with_mpmath():
    """The two oracles of each new loss agree on moderate inputs (a check of the oracles)."""
    rng = np.random.default_rng(21)
    z = rng.normal(scale=3.0, size=(5, 4))
    t = np.array([0, 3, -100, 1, 2])
    y = rng.dirichlet(np.ones(4), size=5)
    for name, options in (
        ("cross_entropy", {"z_loss": 0.1, "softcap": 4.0, "weight": [0.5, 1, 2, 0.3]}),
        ("focal_loss", {"gamma": 0.5, "alpha": 0.25, "z_loss": 0.01, "softcap": 3.0}),
        ("poly_loss", {"epsilon": -0.5, "gamma": 2.0, "alpha": [0.5, 1, 2, 0.3],
                       "label_smoothing": 0.2, "z_loss": 0.1, "softcap": 4.0}),
    ):  # fmt: skip
        for target in (t, y):
            for reduction in ("none", "mean", "sum"):
                a = oracles.NUMPY_EXT[name](z, target, reduction=reduction, **options)
                b = oracles.MPMATH_EXT[name](z, target, reduction=reduction, **options)
                assert_close(a[0], b[0], rtol=1e-13, atol=1e-14, what=f"{name} loss")
                assert_close(a[1], b[1], rtol=1e-13, atol=1e-14, what=f"{name} grad")
    x = np.linspace(-20, 20, 17)
    for target in (np.ones(17), np.zeros(17), np.full(17, 0.3)):
        for options in ({"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.0}, {"clip": 0.2}):
            a = oracles.np_asymmetric_loss(x, target, reduction="none", **options)
            b = oracles.mp_asymmetric_loss(x, target, reduction="none", **options)
            assert_close(a[0], b[0], rtol=1e-13, atol=1e-14, what="asymmetric loss")
            assert_close(a[1], b[1], rtol=1e-13, atol=1e-14, what="asymmetric grad")


def test_mpmath_gradients_are_the_derivatives_of_the_values():
    """The oracles' closed-form gradients against ``mpmath.diff`` of their values."""
    with mpmath.workdps(50):
        z = [mpmath.mpf(v) for v in (1.5, -0.5, 3.0, 0.25)]
        c = [0.1, 0.6, 0.2, 0.1]
        for kind, gamma, epsilon in (("poly", 0.5, -1.0), ("poly", 0.0, 2.0), ("focal", 2.0, 0)):
            options = {"kind": kind, "gamma": gamma, "epsilon": epsilon, "z_loss": 0.3,
                       "z_weight": 2, "softcap": 2.0}  # fmt: skip
            _, grad = oracles.mp_softmax_ext_row(z, c, **options)
            for j in range(4):

                def value(h, j=j, options=options):
                    moved = [v + (h if k == j else 0) for k, v in enumerate(z)]
                    return oracles.mp_softmax_ext_row(moved, c, **options)[0]

                assert abs(mpmath.diff(value, 0) - grad[j]) < mpmath.mpf(10) ** -40
        for x in (-20, -3.1, -2.5, -0.3, 0.0, 1.0, 7.0, 30.0):
            for y in (0.0, 1.0, 0.3):
                for options in (
                    {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},
                    {"gamma_pos": 0.5, "gamma_neg": 0.5, "clip": 0.0},
                    {"gamma_pos": 0.0, "gamma_neg": 0.0, "clip": 0.2},
                ):
                    _, grad = oracles.mp_asymmetric_element(x, y, **options)
                    numeric = mpmath.diff(
                        lambda v, y=y, options=options: oracles.mp_asymmetric_value(
                            v, y, **options
                        ),
                        mpmath.mpf(x),
                    )
                    assert abs(numeric - grad) < mpmath.mpf(10) ** -40 * (1 + abs(grad))


# ----------------------------------------------------------------------------- semantics


def test_z_loss_mean_over_nothing_is_zero():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, -1.0]])
    target = np.array([-100, -100])
    for name in ("cross_entropy", "focal_loss", "poly_loss"):
        loss, grad = run_numpy(np, name, logits, target, z_loss=0.1, softcap=2.0)
        assert float(loss) == 0.0 and np.all(grad == 0.0)


def test_z_loss_is_weighted_by_the_class_weight_only_for_cross_entropy():
    """ω_i = w_{y_i} for weighted cross-entropy with class indices; α weights no z term."""
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, -1.0], [2.0, 2.0, 2.0]])
    target = np.array([0, 2, 1])
    lse = np.log(np.sum(np.exp(logits), axis=1))
    w = [0.5, 2.0, 4.0]
    for name, options, omega in (
        ("cross_entropy", {"weight": w}, np.array([0.5, 4.0, 2.0])),
        ("focal_loss", {"alpha": w, "gamma": 2.0}, np.ones(3)),
        ("poly_loss", {"alpha": w, "epsilon": 1.0}, np.ones(3)),
    ):
        with_z, _ = run_numpy(np, name, logits, target, reduction="none", z_loss=0.5, **options)
        without, _ = run_numpy(np, name, logits, target, reduction="none", **options)
        assert_close(with_z - without, 0.5 * omega * lse**2, **F64, what=name)
        mean, _ = run_numpy(np, name, logits, target, z_loss=0.5, **options)
        denominator = np.sum(omega) if name == "cross_entropy" else 3.0
        assert_close(mean, np.sum(with_z) / denominator, **F64, what=name)


def test_poly_gamma_zero_is_cross_entropy_plus_epsilon_one_minus_p():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 5)) * 2
    target = rng.integers(0, 5, size=6)
    ce, _ = run_numpy(np, "cross_entropy", logits, target, reduction="none")
    poly, _ = run_numpy(np, "poly_loss", logits, target, reduction="none", epsilon=1.5)
    p_t = np.exp(oracles.log_softmax(logits))[np.arange(6), target]
    assert_close(poly, ce + 1.5 * (1 - p_t), **F64, what="poly = CE + ε(1 - p_t)")
    # ε = 0 with γ is the focal loss
    for gamma in (0.5, 2.0):
        poly, poly_grad = run_numpy(np, "poly_loss", logits, target, epsilon=0.0, gamma=gamma)
        focal, focal_grad = run_numpy(np, "focal_loss", logits, target, gamma=gamma)
        assert_close(poly, focal, **F64, what="poly ε=0 = focal")
        assert_close(poly_grad, focal_grad, **F64, what="poly ε=0 = focal (grad)")


def test_asymmetric_loss_reductions_and_special_cases():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 5)) * 3
    y = (rng.uniform(size=(4, 5)) < 0.4).astype(np.float64)
    per, per_grad = run_numpy(np, "asymmetric_loss", x, y, reduction="none")
    mean, mean_grad = run_numpy(np, "asymmetric_loss", x, y)  # defaults: 0, 4, 0.05, mean
    total, total_grad = run_numpy(np, "asymmetric_loss", x, y, reduction="sum")
    ref, ref_grad = oracles.mp_asymmetric_loss(x, y, reduction="none")
    assert_close(per, ref, **F64, what="defaults γ+=0, γ-=4, clip=0.05")
    assert_close(mean, np.sum(per) / per.size, **F64, what="mean over all elements")
    assert_close(total, np.sum(per), **F64, what="sum")
    assert_close(mean_grad, per_grad / per.size, **F64, what="mean grad")
    assert_close(total_grad, per_grad, **F64, what="sum grad")
    assert_close(per_grad, ref_grad, **F64, what="grad")
    # γ± = 0 and clip = 0: binary cross-entropy
    bce, bce_grad = run_numpy(np, "binary_cross_entropy", x, y, reduction="none")
    options = {"gamma_pos": 0.0, "gamma_neg": 0.0, "clip": 0.0, "reduction": "none"}
    asl, asl_grad = run_numpy(np, "asymmetric_loss", x, y, **options)
    assert_close(asl, bce, **F64, what="ASL(0, 0, 0) = BCE")
    assert_close(asl_grad, bce_grad, **F64, what="ASL(0, 0, 0) = BCE (grad)")
    # a negative with σ(x) ≤ clip contributes nothing
    loss, grad = run_numpy(np, "asymmetric_loss", np.array([-5.0, -3.0]), np.zeros(2),
                           reduction="none", clip=0.05)  # fmt: skip
    assert np.all(loss == 0) and np.all(grad == 0)


# ----------------------------------------------------------------------------- second order

HVP_CASES = [
    pytest.param(name, kind, options, id=_config_id(name, kind, options))
    for name, kind, options in (
        ("poly_loss", "indices", {"epsilon": -1.0, "gamma": 0.5}),
        ("poly_loss", "indices", {"epsilon": 2.0, "gamma": 2.0, "alpha": 0.25,
                                  "label_smoothing": 0.1}),
        ("poly_loss", "probabilities", {"epsilon": -0.5, "gamma": 0.0, "z_loss": 0.1,
                                        "softcap": 3.0}),
        ("cross_entropy", "indices", {"z_loss": 0.1, "softcap": 5.0, "weight": [0.5, 1, 2, 3]}),
        ("focal_loss", "indices", {"gamma": 0.5, "z_loss": 0.05, "softcap": 2.0}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 0.5, "gamma_neg": 0.5, "clip": 0.0}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 0.0, "gamma_neg": 2.0, "clip": 0.2}),
    )
]  # fmt: skip


def _small_problem(name, kind):
    rng = np.random.default_rng(31)
    if name == "asymmetric_loss":
        x = np.array([[-8.0, -4.0, -1.5, 0.0], [0.7, 2.0, 5.0, 12.0], [-30, 30, -100, 100]])
        y = np.array([[0, 1, 0.3, 1], [0, 0, 1, 0.3], [0, 1, 1, 0]], dtype=np.float64)
        return x, y
    logits = np.concatenate([rng.normal(scale=2.0, size=(3, 4)), [[30.0, 0.0, -30.0, 1.0]]])
    if kind == "indices":
        return logits, np.array([0, 3, -100, 0])
    return logits, rng.dirichlet(np.ones(4), size=4)


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(("name", "kind", "options"), HVP_CASES)
def test_hessian_vector_product_matches_mpmath(name, kind, options, reduction):
    logits, target = _small_problem(name, kind)
    tangent = np.random.default_rng(1).normal(size=logits.shape)
    prepared = _core.PREPARE[name](logits, target, reduction=reduction, **options)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = np.asarray(second_order.hessian_vector_product(prepared, tangent))
    _, reference = oracles.MPMATH_EXT[name](
        logits, target, reduction=reduction, tangent=tangent, **options
    )
    assert np.all(np.isfinite(result))
    assert_eps(result, reference, "float64", 8, "H·t")


SECOND_ORDER_GRID = [
    pytest.param(name, kind, options, id=_config_id(name, kind, options))
    for name, kind, options in (
        ("poly_loss", "indices", {"epsilon": -1.0, "gamma": 0.5}),
        ("poly_loss", "indices", {"epsilon": -0.5, "gamma": 2.0, "alpha": [0.5, 1, 2, 0.3],
                                  "label_smoothing": 0.1}),
        ("poly_loss", "probabilities", {"epsilon": 2.0}),
        ("poly_loss", "indices", {"epsilon": 1.0, "gamma": 0.5, "z_loss": 1e-3, "softcap": 30.0}),
        ("cross_entropy", "indices", {"z_loss": 0.1, "softcap": 5.0, "weight": [0.5, 1, 2, 3]}),
        ("cross_entropy", "probabilities", {"z_loss": 0.01, "label_smoothing": 0.2}),
        ("focal_loss", "indices", {"gamma": 0.5, "z_loss": 0.01, "softcap": 3.0, "alpha": 0.25}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.0}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.05}),
        ("asymmetric_loss", "multi-label", {"gamma_pos": 0.5, "gamma_neg": 0.0, "clip": 0.0}),
    )
]  # fmt: skip


def _second_order_problem(name, kind, options):
    """Small float64 problems with moderately saturated logits; ±100 (and ±1e4 under a
    soft cap, which bounds the z-loss's lse) where finite differences stay exact enough."""
    logits, target = _small_problem(name, kind)
    if name != "asymmetric_loss":
        big = 1e4 if options.get("softcap") else 100.0 if not options.get("z_loss") else 12.0
        logits = np.concatenate([logits, [[big, -big, 0.0, 1.0]]])
        if kind == "indices":
            target = np.concatenate([target, [1]])
        else:
            target = np.concatenate([target, [[0.1, 0.7, 0.1, 0.1]]])
    return logits, target


@pytest.mark.parametrize(("name", "kind", "options"), SECOND_ORDER_GRID)
def test_torch_gradcheck_and_gradgradcheck(name, kind, options):
    torch = pytest.importorskip("torch")
    mt = pytest.importorskip("multiloss.torch")
    logits, target = _second_order_problem(name, kind, options)
    z = torch.tensor(logits, requires_grad=True)
    y = torch.tensor(target)
    axis = {} if name == "asymmetric_loss" else {"axis": -1}

    def loss(z):
        return getattr(mt, name)(z, y, reduction="sum", **axis, **options)

    tolerance = {"eps": 1e-6, "atol": 1e-6, "rtol": 1e-5}
    assert torch.autograd.gradcheck(loss, (z,), **tolerance)
    assert torch.autograd.gradgradcheck(loss, (z,), **tolerance)


@pytest.mark.parametrize(("name", "kind", "options"), [SECOND_ORDER_GRID[i] for i in (0, 3, 6, 8)])
def test_jax_check_grads_order_2(name, kind, options):
    jax = pytest.importorskip("jax")
    mlj = pytest.importorskip("multiloss.jax")
    from jax.test_util import check_grads

    logits, target = _second_order_problem(name, kind, options)
    y = jax.numpy.asarray(target)
    loss = jax.jit(lambda z: getattr(mlj, name)(z, y, reduction="sum", **options))
    check_grads(loss, (jax.numpy.asarray(logits),), order=2, modes=("fwd", "rev"))


# ----------------------------------------------------------------------------- properties

EXTREME_SOFTMAX = np.array(
    [[1e4, -1e4, 0.0, 1.0], [-1e4, 1e4, 1e4, -1e4], [800.0, 0, 0, 0], [1e-300, 0, 0, -1e-300],
     [100.0, -100.0, 100.0, 0], [-36.7, 0, 0, 0], [0, 0, 0, 0]]
)  # fmt: skip
EXTREME_SIGMOID = np.array(
    [1e4, -1e4, 800.0, -800.0, 100.0, -100.0, 36.8, -36.8, -2.9444389791664403, 0.0, 1e-300,
     3e38, -3e38]
)  # fmt: skip

PROPERTY_GRID = [
    *(("poly_loss", {"epsilon": e, "gamma": g})
      for e in (-1.0, -0.5, 2.0) for g in (0.0, 0.5, 2.0)),
    ("poly_loss", {"epsilon": -1.0, "gamma": 0.5, "alpha": 0.25, "label_smoothing": 0.1,
                   "z_loss": 1e-4, "softcap": 30.0}),
    ("cross_entropy", {"z_loss": 1e-4}),
    ("cross_entropy", {"z_loss": 1e-4, "softcap": 5.0, "weight": [0.5, 1, 2, 3],
                       "label_smoothing": 0.1}),
    ("focal_loss", {"gamma": 0.5, "z_loss": 1e-4, "softcap": 30.0}),
    *(("asymmetric_loss", {"gamma_pos": gp, "gamma_neg": gn, "clip": c})
      for gp in (0.0, 0.5, 1.0) for gn in (0.0, 0.5, 4.0) for c in (0.0, 0.05)),
]  # fmt: skip


@pytest.mark.parametrize("xp_name", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "options"), PROPERTY_GRID, ids=lambda v: str(v))
def test_finite_and_non_negative_at_extreme_logits(name, options, dtype, xp_name):
    """No NaN or inf for finite logits (up to ±1e4 in the softmax rows, where every true
    loss is representable in float32 also with the z-loss; up to ±3e38 element-wise), and
    loss ≥ 0 (ε ≥ -1 keeps the poly loss ≥ 0)."""
    if name == "asymmetric_loss":
        x = np.tile(EXTREME_SIGMOID, 3)
        n = EXTREME_SIGMOID.size
        targets = [np.concatenate([np.ones(n), np.zeros(n), np.full(n, 0.3)])]
    else:
        x = np.concatenate([EXTREME_SOFTMAX] * 4)
        n = len(EXTREME_SOFTMAX)
        targets = [np.repeat(np.arange(4), n)]
        targets.append(np.tile(np.array([[0.7, 0.1, 0.1, 0.1]]), (4 * n, 1)))
    for target in targets:
        loss, grad = run_numpy(
            namespace(xp_name), name, x, target, dtype=dtype, reduction="none", **options
        )
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (loss, grad)
        assert np.all(loss >= 0), loss


_finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40)
@given(
    logits=st.lists(_finite, min_size=12, max_size=12),
    labels=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    epsilon=st.floats(-1.0, 5.0),
    gamma=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]),
    z_loss=st.sampled_from([0.0, 1e-4, 0.1]),
    softcap=st.sampled_from([None, 1.0, 30.0]),
    smoothing=st.sampled_from([0.0, 0.1]),
)
def test_poly_property(logits, labels, epsilon, gamma, z_loss, softcap, smoothing):
    options = {"epsilon": epsilon, "gamma": gamma, "z_loss": z_loss, "softcap": softcap,
               "label_smoothing": smoothing, "reduction": "none"}  # fmt: skip
    z = np.array(logits).reshape(3, 4)
    loss, grad = run_numpy(np, "poly_loss", z, np.array(labels), **options)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(loss >= 0)


@settings(max_examples=30)
@given(
    logits=st.lists(_finite, min_size=6, max_size=6),
    targets=st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0, 1), min_size=6, max_size=6),
    gamma_pos=st.floats(0.0, 5.0),
    gamma_neg=st.floats(0.0, 5.0),
    clip=st.sampled_from([0.0, 0.05, 0.5]) | st.floats(0.0, 0.99),
)
def test_asymmetric_property(logits, targets, gamma_pos, gamma_neg, clip):
    options = {"gamma_pos": gamma_pos, "gamma_neg": gamma_neg, "clip": clip}
    x, y = np.array(logits), np.array(targets)
    loss, grad = run_numpy(np, "asymmetric_loss", x, y, reduction="none", **options)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(loss >= 0)


# ----------------------------------------------------------------------------- parity


def _torch():
    return pytest.importorskip("torch")


def _jax():
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    if not jax.config.jax_enable_x64:
        pytest.skip("float64 JAX is needed to compare with the float64 reference")
    return jax


def _parity_data():
    rng = np.random.default_rng(20240613)
    logits = rng.normal(size=(6, 5)) * 2.5
    labels = rng.integers(0, 5, size=6)
    probabilities = rng.dirichlet(np.ones(5), size=6)
    return logits, labels, probabilities


@pytest.mark.parametrize("target_kind", ["probabilities", "indices"])
@pytest.mark.parametrize("epsilon", [2.0, 1.0, -1.0])
def test_optax_poly_loss_cross_entropy(target_kind, epsilon):
    """optax's poly_loss_cross_entropy (CE + ε(1 - Σ y p)) = poly_loss with γ = 0; class
    indices as one-hot labels. multiloss.numpy and multiloss.jax, values and gradients."""
    jax = _jax()
    import optax

    import multiloss.jax as mlj
    import multiloss.numpy as mln

    logits, labels, probabilities = _parity_data()
    target = probabilities if target_kind == "probabilities" else labels
    optax_labels = probabilities if target_kind == "probabilities" else np.eye(5)[labels]

    def peer(z):
        return optax.losses.poly_loss_cross_entropy(z, optax_labels, epsilon=epsilon)

    z = jax.numpy.asarray(logits)
    value, grad = peer(z), jax.grad(lambda z: peer(z).sum())(z)
    ours, ours_grad = mln.poly_loss_value_and_grad(logits, target, epsilon=epsilon,
                                                   reduction="none")  # fmt: skip
    assert_close(ours, value, **F64, what="numpy value")
    assert_close(ours_grad, grad, **F64, what="numpy grad")
    y = jax.numpy.asarray(target)
    jax_value = mlj.poly_loss(z, y, epsilon=epsilon, reduction="none")
    jax_grad = jax.grad(lambda z: mlj.poly_loss(z, y, epsilon=epsilon, reduction="sum"))(z)
    assert_close(jax_value, value, **F64, what="jax value")
    assert_close(jax_grad, grad, **F64, what="jax grad")
    # the mean is optax's mean over examples
    assert_close(mln.poly_loss(logits, target, epsilon=epsilon), np.mean(value), **F64)


def liger_cross_entropy_with_z_loss(torch, logits, target, *, lse_square_scale, ignore_index):
    """Liger-Kernel's cross-entropy with ``lse_square_scale`` (its definition, written here
    in plain torch): loss_i = CE_i + λ·lse_i² per non-ignored element, mean over them."""
    counted = target != ignore_index
    lse = torch.logsumexp(logits, dim=-1)
    safe = torch.where(counted, target, torch.zeros_like(target))
    log_p_t = torch.gather(logits, -1, safe[:, None])[:, 0] - lse
    per = torch.where(counted, -log_p_t + lse_square_scale * lse**2, torch.zeros_like(lse))
    return per.sum() / counted.sum()


@pytest.mark.parametrize("scale", [1e-4, 0.1])
def test_liger_z_loss(scale):
    torch = _torch()
    import multiloss.torch as mt

    logits, labels, _ = _parity_data()
    labels[[1, 4]] = -100
    z = torch.tensor(logits, requires_grad=True)
    y = torch.tensor(labels)
    peer = liger_cross_entropy_with_z_loss(torch, z, y, lse_square_scale=scale, ignore_index=-100)
    (peer_grad,) = torch.autograd.grad(peer, z)
    ours = mt.cross_entropy(z, y, z_loss=scale, axis=-1)
    (ours_grad,) = torch.autograd.grad(ours, z)
    assert_close(to_numpy(ours), to_numpy(peer), **F64, what="value")
    assert_close(to_numpy(ours_grad), to_numpy(peer_grad), **F64, what="grad")
    # the same in the reference
    import multiloss.numpy as mln

    value, grad = mln.cross_entropy_value_and_grad(logits, labels, z_loss=scale)
    assert_close(value, to_numpy(peer), **F64, what="numpy value")
    assert_close(grad, to_numpy(peer_grad), **F64, what="numpy grad")


@pytest.mark.parametrize("cap", [1.0, 5.0, 30.0])
def test_softcap_against_torch_autograd_of_the_capped_reference(cap):
    """multiloss.torch's closed form against autograd of F.cross_entropy(c·tanh(z/c)):
    the backward must carry the factor 1 - tanh²(z/c)."""
    torch = _torch()
    F = torch.nn.functional
    import multiloss.torch as mt

    logits, labels, probabilities = _parity_data()
    logits = logits * cap  # enough of them well inside the saturated part
    for target in (labels, probabilities):
        z = torch.tensor(logits, requires_grad=True)
        y = torch.tensor(target)
        for options, peer_of in (
            ({}, lambda zc, y: F.cross_entropy(zc, y, reduction="sum")),
            ({"label_smoothing": 0.1},
             lambda zc, y: F.cross_entropy(zc, y, reduction="sum", label_smoothing=0.1)),
        ):  # fmt: skip
            peer = peer_of(cap * torch.tanh(z / cap), y)
            (peer_grad,) = torch.autograd.grad(peer, z)
            ours = mt.cross_entropy(z, y, softcap=cap, reduction="sum", axis=-1, **options)
            (ours_grad,) = torch.autograd.grad(ours, z)
            assert_close(to_numpy(ours), to_numpy(peer), **F64, what="value")
            assert_close(to_numpy(ours_grad), to_numpy(peer_grad), **F64, what="grad")


@pytest.mark.parametrize("cap", [1.0, 5.0, 30.0])
def test_softcap_against_jax_grad_of_optax_on_capped_logits(cap):
    jax = _jax()
    jnp = jax.numpy
    import optax

    import multiloss.jax as mlj

    logits, labels, probabilities = _parity_data()
    z = jnp.asarray(logits * cap)
    for name, ours_of, peer_of in (
        (
            "cross_entropy",
            lambda z: mlj.cross_entropy(z, jnp.asarray(labels), softcap=cap, reduction="sum"),
            lambda zc: optax.softmax_cross_entropy_with_integer_labels(zc, labels).sum(),
        ),
        (
            "poly_loss",
            lambda z: mlj.poly_loss(z, jnp.asarray(probabilities), softcap=cap, epsilon=2.0,
                                    reduction="sum"),
            lambda zc: optax.losses.poly_loss_cross_entropy(zc, probabilities).sum(),
        ),
    ):  # fmt: skip

        def peer(z, peer_of=peer_of):
            return peer_of(cap * jnp.tanh(z / cap))

        assert_close(ours_of(z), peer(z), **F64, what=f"{name} value")
        assert_close(jax.grad(ours_of)(z), jax.grad(peer)(z), **F64, what=f"{name} grad")


def timm_asymmetric_loss_multi_label(torch, x, y, *, gamma_neg=4.0, gamma_pos=1.0, clip=0.05,
                                     eps=1e-8, disable_torch_grad_focal_loss=False):  # fmt: skip
    """timm's ``AsymmetricLossMultiLabel.forward`` (timm/loss/asymmetric_loss.py), written
    out in float64 (timm does not install here): probabilities clamped at eps, the
    negatives' probability shifted by clip, the focusing weight differentiated through
    unless ``disable_torch_grad_focal_loss``; the negated sum."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(not disable_torch_grad_focal_loss):
            pt0 = xs_pos * y
            pt1 = xs_neg * (1 - y)
            pt = pt0 + pt1
            one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, one_sided_gamma)
        loss = loss * one_sided_w
    return -loss.sum()


TIMM_OPTIONS = [
    {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},  # timm's defaults
    {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},  # the paper's (multiloss's defaults)
    {"gamma_pos": 0.0, "gamma_neg": 2.0, "clip": 0.2},
    {"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.0},
    {"gamma_pos": 0.0, "gamma_neg": 0.0, "clip": 0.0},
]


@pytest.mark.parametrize("options", TIMM_OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_timm_asymmetric_loss(options):
    """timm's AsymmetricLossMultiLabel (negated sum) = asymmetric_loss(reduction="sum") for
    binary targets and |x| < 15, where timm's eps clamps do not bite; gradients through the
    focusing weights (timm's default disable_torch_grad_focal_loss=False)."""
    torch = _torch()
    import multiloss.numpy as mln
    import multiloss.torch as mt

    rng = np.random.default_rng(9)
    x = np.clip(rng.normal(size=(8, 6)) * 5, -14.5, 14.5)
    y = (rng.uniform(size=(8, 6)) < 0.4).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y)
    peer = timm_asymmetric_loss_multi_label(torch, xt, yt, **options)
    (peer_grad,) = torch.autograd.grad(peer, xt)
    tolerance = {"rtol": 1e-8, "atol": 1e-12}
    ours = mt.asymmetric_loss(xt, yt, reduction="sum", **options)
    (ours_grad,) = torch.autograd.grad(ours, xt)
    assert_close(to_numpy(ours), to_numpy(peer), **tolerance, what="torch value")
    assert_close(to_numpy(ours_grad), to_numpy(peer_grad), **tolerance, what="torch grad")
    value, grad = mln.asymmetric_loss_value_and_grad(x, y, reduction="sum", **options)
    assert_close(value, to_numpy(peer), **tolerance, what="numpy value")
    assert_close(grad, to_numpy(peer_grad), **tolerance, what="numpy grad")


def test_timm_detached_focusing_weight_differs():
    """With disable_torch_grad_focal_loss=True timm's gradient drops the weight's
    derivative: the values agree, the gradients do not (multiloss differentiates fully)."""
    torch = _torch()
    import multiloss.torch as mt

    x = torch.tensor([[-1.0, 0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    options = {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}
    peer = timm_asymmetric_loss_multi_label(
        torch, x, y, disable_torch_grad_focal_loss=True, **options
    )
    (peer_grad,) = torch.autograd.grad(peer, x)
    ours = mt.asymmetric_loss(x, y, reduction="sum", **options)
    (ours_grad,) = torch.autograd.grad(ours, x)
    assert_close(to_numpy(ours), to_numpy(peer), rtol=1e-12, atol=1e-14, what="value")
    assert np.max(np.abs(to_numpy(ours_grad) - to_numpy(peer_grad))) > 1e-3


# ----------------------------------------------------------------------------- adapters


def _torch_problem(name, dtype="float64", ignore_index=None):
    torch = _torch()
    rng = np.random.default_rng(12)
    if name == "asymmetric_loss":
        x = rng.normal(size=(4, 3, 2)) * 3
        y = (rng.uniform(size=(4, 3, 2)) < 0.4).astype(np.float64)
        return torch.tensor(x).to(getattr(torch, dtype)), torch.tensor(y).to(getattr(torch, dtype))
    logits = rng.normal(size=(4, 3, 2)) * 3  # class axis 1
    labels = rng.integers(0, 3, size=(4, 2))
    if ignore_index is not None:
        labels[0, 1] = ignore_index
    return torch.tensor(logits).to(getattr(torch, dtype)), torch.tensor(labels)


MODULE_CASES = [
    ("PolyLoss", "poly_loss", {}),
    ("PolyLoss", "poly_loss", {"epsilon": -0.5, "gamma": 0.5, "alpha": [0.25, 0.5, 1.0],
                               "ignore_index": 255, "reduction": "sum",
                               "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 5.0}),
    ("CrossEntropyLoss", "cross_entropy", {"z_loss": 1e-2, "softcap": 5.0, "ignore_index": 255}),
    ("CrossEntropyLoss", "cross_entropy", {"weight": [0.5, 1.0, 2.0], "z_loss": 0.1,
                                           "ignore_index": 255, "reduction": "none"}),
    ("FocalLoss", "focal_loss", {"gamma": 0.5, "alpha": 0.25, "z_loss": 1e-2, "softcap": 3.0,
                                 "ignore_index": 255}),
    ("AsymmetricLoss", "asymmetric_loss", {}),
    ("AsymmetricLoss", "asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 0.5, "clip": 0.0,
                                           "reduction": "sum"}),
]  # fmt: skip


MODULE_IDS = [f"{case[0]}-{index}" for index, case in enumerate(MODULE_CASES)]


@pytest.mark.parametrize(("module", "function", "options"), MODULE_CASES, ids=MODULE_IDS)
def test_torch_modules_agree_with_the_functions(module, function, options):
    torch = _torch()
    import multiloss.torch as mt

    logits, target = _torch_problem(function, ignore_index=options.get("ignore_index"))
    z1 = logits.clone().requires_grad_()
    z2 = logits.clone().requires_grad_()
    loss_module = getattr(mt, module)(**options)
    from_module = loss_module(z1, target)
    from_function = getattr(mt, function)(z2, target, **options)
    assert from_module.shape == from_function.shape
    assert torch.equal(from_module.detach(), from_function.detach())
    (g1,) = torch.autograd.grad(from_module.sum(), z1)
    (g2,) = torch.autograd.grad(from_function.sum(), z2)
    assert torch.equal(g1, g2)


def test_torch_module_defaults_match_the_spec():
    _torch()
    import multiloss.torch as mt

    poly, asl = mt.PolyLoss(), mt.AsymmetricLoss()
    assert (poly.epsilon, poly.gamma, poly.z_loss, poly.softcap) == (2.0, 0.0, 0.0, None)
    assert (asl.gamma_pos, asl.gamma_neg, asl.clip) == (0.0, 4.0, 0.05)
    for module in (mt.CrossEntropyLoss(), mt.FocalLoss()):
        assert (module.z_loss, module.softcap) == (0.0, None)


DISPATCH_CASES = [
    ("poly_loss", {"epsilon": -0.5, "gamma": 0.5, "z_loss": 1e-3, "softcap": 5.0}),
    ("asymmetric_loss", {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.1}),
    ("cross_entropy", {"z_loss": 1e-3, "softcap": 5.0}),
    ("focal_loss", {"gamma": 2.0, "z_loss": 1e-3, "softcap": 30.0}),
]


@pytest.mark.parametrize(("name", "options"), DISPATCH_CASES, ids=[c[0] for c in DISPATCH_CASES])
def test_top_level_dispatch_agrees_with_every_backend(name, options):
    import multiloss
    import multiloss.numpy as mln

    rng = np.random.default_rng(17)
    logits = rng.normal(size=(5, 4)) * 3
    if name == "asymmetric_loss":
        target = (rng.uniform(size=(5, 4)) < 0.4).astype(np.float64)
    else:
        target = rng.integers(0, 4, size=5)
    reference = getattr(mln, name)(logits, target, reduction="none", **options)
    numpy_value = getattr(multiloss, name)(logits, target, reduction="none", **options)
    assert_close(numpy_value, reference, **F64, what="numpy")
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    # torch's class axis is 1: (N, C) logits have their classes there too
    value = getattr(multiloss, name)(torch.tensor(logits), torch.tensor(target),
                                     reduction="none", **options)  # fmt: skip
    assert isinstance(value, torch.Tensor)
    direct = getattr(mt, name)(torch.tensor(logits), torch.tensor(target), reduction="none",
                               **options)  # fmt: skip
    assert torch.equal(value, direct)
    assert_close(to_numpy(value), reference, **F64, what="torch")
    jax = pytest.importorskip("jax")
    import multiloss.jax as mlj

    value = getattr(multiloss, name)(jax.numpy.asarray(logits), jax.numpy.asarray(target),
                                     reduction="none", **options)  # fmt: skip
    assert isinstance(value, jax.Array)
    direct = getattr(mlj, name)(jax.numpy.asarray(logits), jax.numpy.asarray(target),
                                reduction="none", **options)  # fmt: skip
    assert np.array_equal(np.asarray(value), np.asarray(direct))
    assert_close(np.asarray(value), reference, **F64, what="jax")


def test_numpy_grad_functions():
    import multiloss.numpy as mln

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 4)) * 3
    labels = rng.integers(0, 4, size=5)
    binary = (rng.uniform(size=(5, 4)) < 0.4).astype(np.float64)
    for name, target, options in (
        ("poly_loss", labels, {"epsilon": -1.0, "gamma": 0.5}),
        ("asymmetric_loss", binary, {"gamma_pos": 1.0, "clip": 0.0}),
    ):
        for reduction in ("none", "mean", "sum"):
            kwargs = {"reduction": reduction, **options}
            value = getattr(mln, name)(logits, target, **kwargs)
            grad = getattr(mln, f"{name}_grad")(logits, target, **kwargs)
            both = getattr(mln, f"{name}_value_and_grad")(logits, target, **kwargs)
            ref_value, ref_grad = oracles.MPMATH_EXT[name](logits, target, **kwargs)
            assert_eps(value, ref_value, "float64", 5, name)
            assert_eps(grad, ref_grad, "float64", 5, name)
            assert np.array_equal(both[0], value) and np.array_equal(both[1], grad)


BACKEND_CASES = [
    ("poly_loss", "indices", {"epsilon": -0.5, "gamma": 0.5, "alpha": 0.25}),
    ("poly_loss", "probabilities", {"epsilon": 2.0, "z_loss": 1e-3, "softcap": 5.0}),
    ("cross_entropy", "indices", {"z_loss": 1e-2, "softcap": 30.0, "weight": [1.0, 2, 0.5, 1]}),
    ("asymmetric_loss", "multi-label", {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}),
]


@pytest.mark.parametrize(("name", "kind", "options"), BACKEND_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in BACKEND_CASES])  # fmt: skip
def test_numpy_torch_and_jax_agree(name, kind, options):
    """multiloss.numpy, multiloss.torch and multiloss.jax (the adapters, not the core),
    float64 values and gradients of the sum, axis -1 everywhere."""
    import multiloss.numpy as mln

    logits, target = _small_problem(name, kind)
    axis = {} if name == "asymmetric_loss" else {"axis": -1}
    reference = getattr(mln, f"{name}_value_and_grad")(logits, target, reduction="none",
                                                       **axis, **options)  # fmt: skip
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    z = torch.tensor(logits, requires_grad=True)
    value = getattr(mt, name)(z, torch.tensor(target), reduction="none", **axis, **options)
    (grad,) = torch.autograd.grad(value.sum(), z)
    assert_close(to_numpy(value), reference[0], **F64, what="torch value")
    assert_close(to_numpy(grad), reference[1], **F64, what="torch grad")
    jax = pytest.importorskip("jax")
    import multiloss.jax as mlj

    y = jax.numpy.asarray(target)

    def function(z):
        return getattr(mlj, name)(z, y, reduction="none", **axis, **options)

    z = jax.numpy.asarray(logits)
    assert_close(np.asarray(function(z)), reference[0], **F64, what="jax value")
    grad = jax.grad(lambda z: function(z).sum())(z)
    assert_close(np.asarray(grad), reference[1], **F64, what="jax grad")


def test_jax_jit_static_hyperparameters():
    """The new hyperparameters are static Python values: jit works with them closed over."""
    jax = pytest.importorskip("jax")
    import multiloss.jax as mlj

    logits, target = _small_problem("poly_loss", "indices")
    eager = mlj.poly_loss(logits, target, epsilon=-0.5, gamma=0.5, z_loss=0.1, softcap=3.0)
    jitted = jax.jit(
        lambda z, y: mlj.poly_loss(z, y, epsilon=-0.5, gamma=0.5, z_loss=0.1, softcap=3.0)
    )(logits, target)
    assert_close(np.asarray(jitted), np.asarray(eager), **F64, what="jit")
    x, y = _small_problem("asymmetric_loss", "multi-label")
    eager = mlj.asymmetric_loss(x, y, gamma_pos=1.0, clip=0.1)
    jitted = jax.jit(lambda x, y: mlj.asymmetric_loss(x, y, gamma_pos=1.0, clip=0.1))(x, y)
    assert_close(np.asarray(jitted), np.asarray(eager), **F64, what="jit")


NEW_OPTIONS = ("z_loss", "softcap", "epsilon", "clip", "gamma_pos", "gamma_neg")
NEW_BAD_INPUT = [
    case
    for case in catalogue.CATALOGUE
    if case.name in ("poly_loss", "asymmetric_loss") or set(case.options) & set(NEW_OPTIONS)
]


@pytest.mark.parametrize("case", catalogue.params(NEW_BAD_INPUT))
def test_bad_input_names_the_argument(case):
    """The catalogue's cases of issue 13 (every backend runs them, tests/catalogue.py):
    the exception, with the argument named and, for a bad value, the value shown."""
    import multiloss.numpy as mln

    with pytest.raises(case.error) as info:
        getattr(mln, case.name)(case.logits, case.target, **case.options)
    message = str(info.value)
    if case.options:
        ((key, value),) = case.options.items()
        assert key in message, message
        if key in NEW_OPTIONS:  # a 0-d array's value is shown as a number
            shown = repr(float(value)) if isinstance(value, np.ndarray) else repr(value)
            assert shown in message, message
    if case.kind.startswith("clip-") and case.error is ValueError:
        assert "clip must be in [0, 1)" in message, message
    if case.kind == "softcap-zero":
        assert "softcap must be > 0" in message, message


PARITY_TESTS = {
    "optax-poly-loss": test_optax_poly_loss_cross_entropy,
    "liger-z-loss": test_liger_z_loss,
    "softcap-torch-autograd": test_softcap_against_torch_autograd_of_the_capped_reference,
    "softcap-optax-autodiff": test_softcap_against_jax_grad_of_optax_on_capped_logits,
    "timm-asl": test_timm_asymmetric_loss,
    "timm-asl-detached-weight": test_timm_detached_focusing_weight_differs,
}
"""The parity rows of issue 13 and the test reproducing each (for docs/parity.md)."""
