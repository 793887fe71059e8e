"""Hyperparameters as data (docs/semantics.md, Schedules): every float hyperparameter given
as a 0-d array of the logits' backend.

* accuracy: the general path (no integer powers, no γ = 0 shortcut) against the same
  mpmath oracles and eps bounds as the static path (tests/test_core_accuracy.py,
  tests/test_new_losses.py), γ = 0 and γ < 1 at saturated logits included;
* JAX: one compilation for a 20-step schedule, vmap and scan over the hyperparameter,
  checkify for a traced value out of range, the derivative refused by name, XLA instead
  of the Pallas kernels; optax's own tests of traced hyperparameters through a shim;
* torch: one graph under ``torch.compile(fullgraph=True)`` for a 20-step schedule (the
  function and a module's buffer), the derivative refused by name, the eager plans
  instead of the Triton kernels;
* the fused heads and the vocabulary-parallel losses refuse arrays, naming the argument.
"""

from __future__ import annotations

import types

import numpy as np
import oracles
import pytest
import test_core_accuracy as accuracy
import test_new_losses as new_losses
from backends import assert_close, assert_eps, namespace, run_numpy

from multiloss import _core
from multiloss._core import LOSSES, second_order

SCHEDULE = np.linspace(0.0, 3.0, 20)
"""A 20-step γ schedule, from 0 (cross-entropy given as an array) through γ < 1."""


def _as_arrays(name: str, options: dict) -> dict:
    """`options` with every float hyperparameter of the loss as a 0-d NumPy array (which
    `run_numpy` moves into the namespace under test)."""
    hyper = LOSSES[name].hyperparameters
    return {
        key: np.asarray(value) if key in hyper and isinstance(value, (int, float)) else value
        for key, value in options.items()
    }


# ----------------------------------------------------------------------------- accuracy

_NAMESPACES = ("numpy", "torch")
"""The general path is the core's, whatever the namespace (JAX runs it traced: the
schedule tests below hold it to the static calls)."""


def _params(configs):
    for param in configs:
        for xp_name in _NAMESPACES:
            yield pytest.param(xp_name, *param.values, id=f"{xp_name}-{param.id}")


def _wanted(param_id: str) -> bool:
    if not param_id.startswith(("focal_loss-gamma", "sigmoid_focal_loss")):
        return False
    plain = "alpha" not in param_id or "alpha=None" in param_id
    return plain or "gamma=0.0-" in param_id or "gamma=0.5-" in param_id


_ACCURACY_CONFIGS = [param for param in accuracy.CONFIGS if _wanted(param.id)]
"""Focal γ of every kind (0, < 1, integers) at saturated logits; with α and label
smoothing at γ = 0 and 0.5; the sigmoid focal loss's γ (α = None) and its α (γ = 0, 0.5)."""


@pytest.mark.parametrize("dtype", accuracy.DTYPES)
@pytest.mark.parametrize(("xp_name", "name", "options"), list(_params(_ACCURACY_CONFIGS)))
def test_array_hyperparameters_accuracy(xp_name, name, options, dtype):
    """Focal γ ∈ {0, 0.25, 0.5, 1, 2, 5} (saturated logits, p_t near 1 and 0), label
    smoothing, the sigmoid focal loss's α and γ: as arrays, within the static path's
    bound of the 50-digit oracle."""
    logits, target = accuracy._inputs(name, dtype)
    loss, grad = run_numpy(
        namespace(xp_name), name, logits, target, dtype=dtype, reduction="none",
        **_as_arrays(name, options),
    )  # fmt: skip
    ref_loss, ref_grad = accuracy._reference(name, accuracy._option_items(options), dtype, "none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_eps(loss, ref_loss, dtype, accuracy.ULP_BOUND[dtype], "loss")
    assert_eps(grad, ref_grad, dtype, accuracy.ULP_BOUND[dtype], "grad")


@pytest.mark.parametrize("dtype", new_losses.DTYPES)
@pytest.mark.parametrize(
    ("xp_name", "name", "kind", "options"), list(_params(new_losses.CONFIGS[::3]))
)
def test_array_hyperparameters_accuracy_of_the_newer_options(xp_name, name, kind, options, dtype):
    """Poly ε and γ, z-loss, soft-capping, the Asymmetric Loss's γ± and clip (clip = 0 given
    as an array included): as arrays, within the static path's bounds."""
    logits, target = new_losses._inputs(name, kind, dtype)
    loss, grad = run_numpy(
        namespace(xp_name), name, logits, target, dtype=dtype, reduction="none",
        **_as_arrays(name, options),
    )  # fmt: skip
    ref_loss, ref_grad = new_losses._reference(
        name, kind, new_losses._option_items(options), dtype, "none"
    )
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    bound = new_losses.ULP_BOUND[dtype] + new_losses._capping_allowance(options)
    assert_eps(loss, ref_loss, dtype, bound, "loss")
    assert_eps(grad, ref_grad, dtype, bound, "grad")


def test_array_hyperparameters_second_order():
    """The Hessian-vector product of the general path against mpmath (γ < 1 and γ = 0)."""
    logits, target = accuracy._inputs("focal_loss", "float64")
    tangent = np.random.default_rng(5).normal(size=logits.shape)
    for gamma in (0.0, 0.5, 2.0):
        prepared = _core.PREPARE["focal_loss"](
            logits, target, gamma=np.asarray(gamma), reduction="sum"
        )
        with np.errstate(invalid="ignore", divide="ignore"):  # the discarded sides
            got = second_order.hessian_vector_product(prepared, tangent)
        _, expected = oracles.mp_focal_loss(
            logits, target, gamma=gamma, reduction="sum", tangent=tangent
        )
        assert_eps(got, expected, "float64", 2 * accuracy.ULP_BOUND["float64"], "hvp")


# ----------------------------------------------------------------------------- JAX

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
import multiloss.jax as mlj  # noqa: E402

_Z = np.random.default_rng(7).normal(scale=3.0, size=(6, 5)).astype(np.float32)
_Y = np.array([0, 4, 2, 1, 3, 0])
_B = (np.random.default_rng(8).random((6, 5)) < 0.4).astype(np.float32)


def _static(name, logits, target, **options):
    """The static call (Python numbers: the specialised paths) in the NumPy namespace,
    float32 like the arrays under test: (loss, gradient of the loss with respect to the
    logits)."""
    target = np.asarray(target)
    return run_numpy(np, name, np.asarray(logits), target, dtype="float32", **options)


def test_jax_schedule_compiles_once():
    """A 20-step γ (and label smoothing, z-loss) schedule: one trace, one compilation,
    each step's values and gradients those of the static call."""
    traces = []

    @jax.jit
    def step(z, y, gamma):
        traces.append(gamma)
        options = {"gamma": gamma, "label_smoothing": gamma / 30, "z_loss": gamma / 300}
        return jax.value_and_grad(mlj.focal_loss)(z, y, **options)

    for index, gamma in enumerate(SCHEDULE):
        value, grad = step(_Z, _Y, jnp.float32(gamma))
        if index % 4:
            continue  # every step runs; every 4th is held to the static call
        options = {"gamma": float(gamma), "label_smoothing": gamma / 30, "z_loss": gamma / 300}
        expected = _static("focal_loss", _Z, _Y, **options)
        assert_close(value, expected[0], rtol=1e-5, atol=1e-7, what=f"loss at γ={gamma}")
        assert_close(grad, expected[1], rtol=1e-5, atol=1e-7, what=f"grad at γ={gamma}")
    assert len(traces) == 1
    assert step._cache_size() == 1


def test_jax_vmap_and_scan_over_hyperparameters():
    gammas = jnp.asarray([0.0, 0.5, 2.0], dtype=jnp.float32)
    batched = jax.vmap(lambda g: mlj.sigmoid_focal_loss(_Z, _B, gamma=g, alpha=g / 4))(gammas)
    expected = [
        _static("sigmoid_focal_loss", _Z, _B, gamma=float(g), alpha=float(g) / 4)[0] for g in gammas
    ]
    assert_close(batched, np.asarray(expected), rtol=1e-5, atol=1e-7, what="vmap")

    def body(carry, hyper):
        epsilon, gamma = hyper
        return carry + 1, mlj.poly_loss(_Z, _Y, epsilon=epsilon, gamma=gamma)

    count, scanned = jax.lax.scan(body, 0, (gammas - 1.0, gammas))
    expected = [
        _static("poly_loss", _Z, _Y, epsilon=float(g) - 1.0, gamma=float(g))[0] for g in gammas
    ]
    assert int(count) == len(gammas)
    assert_close(scanned, np.asarray(expected), rtol=1e-5, atol=1e-7, what="scan")


def test_jax_asymmetric_and_softcap_schedules():
    asl = jax.jit(lambda g, c: mlj.asymmetric_loss(_Z, _B, gamma_pos=g / 4, gamma_neg=g, clip=c))
    for gamma, clip in ((0.0, 0.0), (0.5, 0.05), (4.0, 0.0), (2.0, 0.2)):
        options = {"gamma_pos": gamma / 4, "gamma_neg": gamma, "clip": clip}
        expected = _static("asymmetric_loss", _Z, _B, **options)[0]
        got = asl(jnp.float32(gamma), jnp.float32(clip))
        assert_close(got, expected, rtol=1e-5, atol=1e-7, what=f"asl γ-={gamma} clip={clip}")
    capped = jax.jit(lambda c: mlj.cross_entropy(_Z, _Y, softcap=c))
    for cap in (1.0, 5.0, 30.0):
        expected = _static("cross_entropy", _Z, _Y, softcap=cap)[0]
        assert_close(capped(jnp.float32(cap)), expected, rtol=1e-5, atol=1e-7, what=f"cap {cap}")
    assert asl._cache_size() == 1 and capped._cache_size() == 1


_ONE_OF_EACH = {
    "focal_loss": {"gamma": 2.0, "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 5.0},
    "poly_loss": {"epsilon": 1.0},
    "sigmoid_focal_loss": {"alpha": 0.25, "gamma": 2.0},
    "asymmetric_loss": {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},
    "varifocal_loss": {"alpha": 0.75, "gamma": 2.0, "label_smoothing": 0.1},
    "quality_focal_loss": {"beta": 2.0},
}
"""Hyperparameters whose derivative is refused by name (those the config holds; a label
smoothing folded into the target is differentiated: test_folded_label_smoothing_*)."""


def _call(module, name, z, hyper_name, value, others):
    target = _Y if LOSSES[name].has_class_axis else _B
    options = {**others, hyper_name: value}
    return getattr(module, name)(z, target, **options)


@pytest.mark.parametrize(
    ("name", "hyper_name"),
    [(name, key) for name, options in _ONE_OF_EACH.items() for key in options],
)
def test_jax_derivative_with_respect_to_a_hyperparameter_is_refused(name, hyper_name):
    """Never a silent zero: jax.grad with respect to the hyperparameter raises, naming it;
    the gradient with respect to the logits under the same traced value is given."""
    others = _ONE_OF_EACH[name]
    value = jnp.float32(others[hyper_name])
    with pytest.raises(NotImplementedError, match=f"derivative with respect to {hyper_name} "):
        jax.grad(lambda h: _call(mlj, name, _Z, hyper_name, h, others))(value)
    grad = jax.jit(jax.grad(lambda z, h: _call(mlj, name, z, hyper_name, h, others)))(_Z, value)
    target = _Y if LOSSES[name].has_class_axis else _B
    expected = _static(name, _Z, target, **others)[1]
    assert_close(grad, expected, rtol=1e-5, atol=1e-7, what="gradient of the logits")


def test_jax_traced_out_of_range_is_nan_and_checked_reports_it():
    from jax.experimental import checkify

    step = jax.jit(lambda z, y, g, s: mlj.focal_loss(z, y, gamma=g, label_smoothing=s))
    assert np.isnan(step(_Z, _Y, jnp.float32(-1.0), jnp.float32(0.1)))
    assert np.isnan(step(_Z, _Y, jnp.float32(2.0), jnp.float32(1.5)))
    checked = mlj.checked(step)
    assert np.isfinite(checked(_Z, _Y, jnp.float32(2.0), jnp.float32(0.1)))
    with pytest.raises(checkify.JaxRuntimeError, match=r"gamma must be finite and >= 0"):
        checked(_Z, _Y, jnp.float32(-1.0), jnp.float32(0.1))
    with pytest.raises(checkify.JaxRuntimeError, match=r"label_smoothing must be in \[0, 1\]"):
        checked(_Z, _Y, jnp.float32(2.0), jnp.float32(1.5))
    clip = jax.jit(lambda c: mlj.asymmetric_loss(_Z, _B, clip=c))
    with pytest.raises(checkify.JaxRuntimeError, match=r"clip must be in \[0, 1\)"):
        mlj.checked(clip)(jnp.float32(1.0))


def test_jax_array_hyperparameters_take_xla_instead_of_pallas():
    """The Pallas kernels specialise on the hyperparameters: an array one runs on XLA."""

    def jaxpr(gamma):
        with mlj.engine("pallas"):
            return str(jax.make_jaxpr(lambda z: mlj.focal_loss(z, _Y, gamma=gamma))(_Z))

    assert "pallas_call" in jaxpr(2.0)
    assert "pallas_call" not in jaxpr(jnp.float32(2.0))


# optax's own tests of traced hyperparameters (its `jax.jit(loss)(..., gamma=0.0)` traces
# gamma, alpha and epsilon), run unchanged against a shim with optax's signatures.


def _shim() -> types.ModuleType:
    shim = types.ModuleType("optax_classification_shim")

    def sigmoid_focal_loss(logits, labels, alpha=None, gamma=2.0):
        return mlj.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none")

    def poly_loss_cross_entropy(logits, labels, epsilon=2.0, axis=-1, where=None):
        if where is not None:  # optax's mask: not a hyperparameter, not shimmed
            raise NotImplementedError("where")
        return mlj.poly_loss(logits, labels, epsilon=epsilon, gamma=0.0, axis=axis,
                             reduction="none")  # fmt: skip

    def softmax_cross_entropy(logits, labels, axis=-1):
        return mlj.cross_entropy(logits, labels, axis=axis, reduction="none")

    def sigmoid_binary_cross_entropy(logits, labels):
        return mlj.binary_cross_entropy(logits, labels, reduction="none")

    for function in (
        sigmoid_focal_loss,
        poly_loss_cross_entropy,
        softmax_cross_entropy,
        sigmoid_binary_cross_entropy,
    ):
        setattr(shim, function.__name__, function)
    return shim


def _optax_source():
    pytest.importorskip("absl")
    return pytest.importorskip("optax.losses._classification_test")


_OPTAX_CLASSES = {
    "SigmoidFocalLossTest": (),
    "PolyLossTest": ("test_mask", "test_axis"),  # `where` and 3-d probabilities: no shim
}


def _optax_params():
    try:
        source = _optax_source()
    except pytest.skip.Exception:
        return []
    params = []
    for class_name, skipped in _OPTAX_CLASSES.items():
        cls = getattr(source, class_name)
        for name in sorted(dir(cls)):
            if name.startswith("test") and not name.startswith(skipped):
                params.append(pytest.param(class_name, name, id=f"{class_name}.{name}"))
    return params


@pytest.mark.parametrize(("class_name", "method"), _optax_params())
def test_optax_traced_hyperparameter_tests_through_a_shim(monkeypatch, class_name, method):
    """optax's test, unchanged, its `_classification` module replaced by the shim for the
    duration of the test."""
    import unittest

    source = _optax_source()
    monkeypatch.setattr(source, "_classification", _shim())
    result = unittest.TestResult()
    getattr(source, class_name)(method).run(result)
    problems = result.errors + result.failures
    assert not problems, problems[0][1]
    assert result.testsRun == 1


# ----------------------------------------------------------------------------- torch

torch = pytest.importorskip("torch")
import multiloss.torch as mt  # noqa: E402

_TZ = torch.from_numpy(_Z)
_TY = torch.from_numpy(_Y)
_TB = torch.from_numpy(_B)


def test_torch_compile_one_graph_for_a_schedule():
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()

    @torch.compile(backend=counter, fullgraph=True)
    def step(z, y, gamma):
        return mt.focal_loss(z, y, gamma=gamma, label_smoothing=gamma / 30, z_loss=gamma / 300)

    for index, gamma in enumerate(SCHEDULE):
        got = step(_TZ, _TY, torch.tensor(gamma, dtype=torch.float32))
        if index % 4:
            continue  # every step runs; every 4th is held to the static call
        expected = mt.focal_loss(
            _TZ, _TY, gamma=float(gamma), label_smoothing=gamma / 30, z_loss=gamma / 300
        )
        assert_close(got, expected, rtol=2e-6, atol=1e-7, what=f"γ={gamma}")
    assert counter.frame_count == 1


def test_torch_module_schedule_through_a_buffer():
    """`FocalLoss(gamma=torch.tensor(...))` holds γ as a buffer: updated in place (or
    assigned a new 0-d tensor) at every step, the compiled module is traced once."""
    from torch._dynamo.testing import CompileCounter

    criterion = mt.FocalLoss(gamma=torch.tensor(0.0))
    assert "gamma" in dict(criterion.named_buffers())
    counter = CompileCounter()
    compiled = torch.compile(criterion, backend=counter, fullgraph=True)
    logits = _TZ.clone().requires_grad_()
    for step, gamma in enumerate(SCHEDULE):
        if step % 2:
            criterion.gamma.fill_(float(gamma))
        else:
            criterion.gamma = torch.tensor(float(gamma))
        loss = compiled(logits, _TY)
        (grad,) = torch.autograd.grad(loss, logits)
        expected = mt.focal_loss(logits, _TY, gamma=float(gamma))
        (expected_grad,) = torch.autograd.grad(expected, logits)
        assert_close(loss.detach(), expected.detach(), rtol=2e-6, atol=1e-7, what=f"γ={gamma}")
        assert_close(grad, expected_grad, rtol=2e-5, atol=1e-7, what=f"grad γ={gamma}")
    assert counter.frame_count == 1
    assert mt.FocalLoss(gamma=2.0).gamma == 2.0  # a number stays a number


@pytest.mark.parametrize(
    ("name", "hyper_name"),
    [(name, key) for name, options in _ONE_OF_EACH.items() for key in options],
)
def test_torch_derivative_with_respect_to_a_hyperparameter_is_refused(name, hyper_name):
    others = _ONE_OF_EACH[name]
    value = torch.tensor(others[hyper_name], requires_grad=True)
    target = _TY if LOSSES[name].has_class_axis else _TB
    with pytest.raises(NotImplementedError, match=f"derivative with respect to {hyper_name} "):
        getattr(mt, name)(_TZ, target, **{**others, hyper_name: value})
    with torch.no_grad():  # no derivative wanted: accepted
        got = getattr(mt, name)(_TZ, target, **{**others, hyper_name: value})
    expected = getattr(mt, name)(_TZ, target, **others)
    assert_close(got, expected, rtol=2e-6, atol=1e-7, what=name)


def test_torch_array_hyperparameters_never_read_by_the_host():
    """On `meta` tensors (whose values cannot be read, like a GPU's without a sync) every
    loss with every hyperparameter a 0-d tensor runs forward and backward without one op
    that reads a value to the host (`item`, `bool`: aten._local_scalar_dense)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    def meta(value):
        return torch.tensor(value, device="meta")

    logits = torch.randn(6, 5, device="meta", requires_grad=True)
    labels = torch.zeros(6, dtype=torch.long, device="meta")
    binary = torch.zeros(6, 5, device="meta")
    calls = [
        ("focal_loss", labels, {"gamma": 0.5, "label_smoothing": 0.1, "z_loss": 1e-3,
                                "softcap": 5.0}),
        ("poly_loss", labels, {"epsilon": 1.0, "gamma": 2.0}),
        ("sigmoid_focal_loss", binary, {"gamma": 0.5, "alpha": 0.3}),
        ("asymmetric_loss", binary, {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.0,
                                     "label_smoothing": 0.1}),
        ("varifocal_loss", binary, {"alpha": 0.75, "gamma": 0.5, "label_smoothing": 0.1}),
        ("quality_focal_loss", binary, {"beta": 1.5, "label_smoothing": 0.1}),
        ("binary_cross_entropy", binary, {"label_smoothing": 0.1}),
    ]  # fmt: skip
    with mt.engine("eager"), Recorder() as recorder:
        for name, target, options in calls:
            loss = getattr(mt, name)(logits, target, **{k: meta(v) for k, v in options.items()})
            loss.backward()
    assert recorder.ops
    assert not [op for op in recorder.ops if "_local_scalar_dense" in op or "item" in op]


def test_softmax_scalar_alpha_as_an_array_is_differentiated():
    """The softmax losses' scalar α given as a 0-d tensor becomes the class vector
    [1 - α, α, …] by the backend's operations, so its derivative is the class weight's
    closed form: against torch's autograd of a naive float64 reference."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 0, 3, 1])
    for name, options in (("focal_loss", {"gamma": 2.0}), ("poly_loss", {"epsilon": 1.0})):
        alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        (got,) = torch.autograd.grad(getattr(mt, name)(logits, target, alpha=alpha, **options),
                                     alpha)  # fmt: skip
        reference = alpha.detach().clone().requires_grad_()
        vector = torch.where(torch.arange(4) == 0, 1 - reference, reference)
        p_t = torch.softmax(logits, 1).gather(1, target[:, None])[:, 0]
        term = -((1 - p_t) ** options.get("gamma", 0.0)) * torch.log(p_t)
        if name == "poly_loss":
            term = term + options["epsilon"] * (1 - p_t)
        naive = (vector[target] * term).mean()
        (expected,) = torch.autograd.grad(naive, reference)
        assert_close(got, expected, rtol=1e-12, atol=1e-14, what=f"{name} d/dα")
    jax_grad = jax.grad(lambda a: mlj.focal_loss(_Z, _Y, alpha=a))(jnp.float32(0.3))
    assert np.isfinite(jax_grad) and jax_grad != 0


def test_torch_kernels_leave_array_hyperparameters_to_the_eager_plans():
    pytest.importorskip("triton")
    from test_triton_engine import ran_kernels

    logits = _TZ.clone().requires_grad_()
    with mt.engine("triton"):
        assert ran_kernels(mt.focal_loss(logits, _TY, gamma=2.0))
        assert not ran_kernels(mt.focal_loss(logits, _TY, gamma=torch.tensor(2.0)))
        assert not ran_kernels(
            mt.sigmoid_focal_loss(logits, _TB, gamma=torch.tensor(2.0)), family="sigmoid"
        )


# ------------------------------------------------------- detection losses, label smoothing

_Q = np.where(_B > 0, np.random.default_rng(9).random((6, 5)), 0.0).astype(np.float32)
"""An IoU-aware soft target: q > 0 on the positives, 0 on the negatives."""
_SATURATED = np.array([[-30.0, -8.0, -1.0, 0.0, 0.5, 3.0, 12.0, 40.0]] * 3)
_SOFT = np.array([[0.0, 0.3, 1.0, 0.5, 0.0, 0.9, 1.0, 0.0], [1.0] * 8, [0.0] * 8])

_DETECTION_CASES = [
    ("varifocal_loss", {"alpha": 0.6, "gamma": gamma, "label_smoothing": 0.1})
    for gamma in (0.0, 0.5, 2.0)
] + [
    ("quality_focal_loss", {"beta": beta, "label_smoothing": smoothing})
    for beta, smoothing in ((0.0, 0.0), (0.5, 0.1), (1.0, 0.0), (1.5, 0.2), (2.0, 0.0), (3.0, 0.1))
] + [
    (name, {"label_smoothing": 0.2})
    for name in ("binary_cross_entropy", "sigmoid_focal_loss", "asymmetric_loss")
]  # fmt: skip
"""γ = 0 and β = 0 (the shortcuts), β < 1, 1 ≤ β < 2 and β ≥ 2 (the three forms of the
focusing factor's derivatives), and every element-wise loss's label smoothing."""


@pytest.mark.parametrize("xp_name", _NAMESPACES)
@pytest.mark.parametrize(("name", "options"), _DETECTION_CASES, ids=lambda v: str(v))
def test_detection_and_smoothing_arrays_equal_the_static_calls(xp_name, name, options):
    """Values and gradients (float64, saturated logits, soft and 0/1 targets) of the general
    path, within a few ulp of the static path's (itself held to the oracles in
    tests/test_detection_losses.py); the Hessian-vector product of the detection losses."""
    xp = namespace(xp_name)
    arrays = {key: np.asarray(value) for key, value in options.items()}
    got = run_numpy(xp, name, _SATURATED, _SOFT, dtype="float64", reduction="none", **arrays)
    expected = run_numpy(xp, name, _SATURATED, _SOFT, dtype="float64", reduction="none",
                         **options)  # fmt: skip
    assert np.all(np.isfinite(got[0])) and np.all(np.isfinite(got[1]))
    assert_close(got[0], expected[0], rtol=1e-13, atol=1e-300, what="loss")
    assert_close(got[1], expected[1], rtol=1e-13, atol=1e-300, what="grad")
    if name not in ("varifocal_loss", "quality_focal_loss") or xp_name != "numpy":
        return
    tangent = np.random.default_rng(4).normal(size=_SATURATED.shape)
    hvps = [
        second_order.hessian_vector_product(
            _core.PREPARE[name](_SATURATED, _SOFT, reduction="sum", **given), tangent
        )
        for given in (arrays, options)
    ]
    assert_close(hvps[0], hvps[1], rtol=1e-12, atol=1e-300, what="hvp")


def test_jax_detection_schedule_compiles_once():
    """A 20-step schedule of the varifocal γ (with α and ε) and the quality focal β (with
    ε): one trace, one compilation; every 4th step held to the static call."""
    traces = []

    @jax.jit
    def step(z, q, value):
        traces.append(value)
        vfl = jax.value_and_grad(mlj.varifocal_loss)(
            z, q, alpha=0.5 + value / 8, gamma=value, label_smoothing=value / 30
        )
        qfl = jax.value_and_grad(mlj.quality_focal_loss)(
            z, q, beta=value, label_smoothing=value / 30
        )
        return vfl, qfl

    for index, value in enumerate(SCHEDULE):
        got = step(_Z, _Q, jnp.float32(value))
        if index % 4:
            continue
        smoothing = float(value) / 30
        expected = (
            _static("varifocal_loss", _Z, _Q, alpha=0.5 + float(value) / 8, gamma=float(value),
                    label_smoothing=smoothing),
            _static("quality_focal_loss", _Z, _Q, beta=float(value), label_smoothing=smoothing),
        )  # fmt: skip
        for (value_got, grad_got), (value_expected, grad_expected) in zip(
            got, expected, strict=True
        ):
            assert_close(value_got, value_expected, rtol=1e-5, atol=1e-7, what=f"loss {value}")
            assert_close(grad_got, grad_expected, rtol=1e-5, atol=1e-6, what=f"grad {value}")
    assert len(traces) == 1
    assert step._cache_size() == 1


def test_jax_detection_and_folded_smoothing_out_of_range_are_nan_and_checked():
    from jax.experimental import checkify

    vfl = jax.jit(lambda z, q, g: mlj.varifocal_loss(z, q, gamma=g))
    qfl = jax.jit(lambda z, q, b: mlj.quality_focal_loss(z, q, beta=b))
    bce = jax.jit(lambda z, q, s: mlj.binary_cross_entropy(z, q, label_smoothing=s))
    assert np.isnan(vfl(_Z, _Q, jnp.float32(-1.0)))
    assert np.isnan(qfl(_Z, _Q, jnp.float32(-0.5)))
    assert np.isnan(bce(_Z, _B, jnp.float32(1.5)))
    assert np.isfinite(mlj.checked(bce)(_Z, _B, jnp.float32(0.1)))
    for fn, target, value, message in (
        (vfl, _Q, -1.0, r"gamma must be finite and >= 0"),
        (qfl, _Q, -0.5, r"beta must be finite and >= 0"),
        (bce, _B, 1.5, r"label_smoothing must be in \[0, 1\]"),  # folded into the target
    ):
        with pytest.raises(checkify.JaxRuntimeError, match=message):
            mlj.checked(fn)(_Z, target, jnp.float32(value))


def _naive_smoothed(name, logits, target, epsilon):
    """A naive float64 reference in torch's ops, for autodiff with respect to ε: the binary
    cross-entropy of the smoothed target s = y (1 - ε) + ε/2, and the quality focal loss
    |s - σ|^β times it (β = 2)."""
    s = target * (1 - epsilon) + epsilon / 2
    p = torch.sigmoid(logits)
    bce = -(s * torch.log(p) + (1 - s) * torch.log1p(-p))
    return (bce if name == "binary_cross_entropy" else (s - p).abs() ** 2 * bce).mean()


@pytest.mark.parametrize("name", ["binary_cross_entropy", "quality_focal_loss"])
def test_folded_label_smoothing_is_differentiated(name):
    """ε given as a 0-d array is folded into the target by the backend's own operations,
    so its derivative is autodiff's of the folding times the loss's derivative with
    respect to the target: against autodiff of a naive float64 reference (torch and JAX)."""
    logits = torch.from_numpy(_Z).double()
    target = torch.from_numpy(_Q).double()
    epsilon = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    (got,) = torch.autograd.grad(getattr(mt, name)(logits, target, label_smoothing=epsilon),
                                 epsilon)  # fmt: skip
    reference = epsilon.detach().clone().requires_grad_()
    (expected,) = torch.autograd.grad(_naive_smoothed(name, logits, target, reference), reference)
    assert_close(got, expected, rtol=1e-10, atol=1e-14, what=f"{name} d/dε (torch)")
    jax_grad = jax.grad(lambda e: getattr(mlj, name)(_Z, _Q, label_smoothing=e))(jnp.float32(0.1))
    assert_close(jax_grad, expected.numpy(), rtol=2e-4, atol=1e-6, what=f"{name} d/dε (JAX)")


def test_torch_compile_one_graph_for_a_detection_schedule():
    """torch.compile(fullgraph=True): one graph for a 20-step schedule of the varifocal γ
    (α, ε) and the quality focal β (ε) given as 0-d tensors, held to the static calls."""
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    target = torch.from_numpy(_Q)

    @torch.compile(backend=counter, fullgraph=True)
    def step(z, q, value):
        vfl = mt.varifocal_loss(
            z, q, alpha=0.5 + value / 8, gamma=value, label_smoothing=value / 30
        )
        return vfl, mt.quality_focal_loss(z, q, beta=value, label_smoothing=value / 30)

    for index, value in enumerate(SCHEDULE):
        got = step(_TZ, target, torch.tensor(value, dtype=torch.float32))
        if index % 4:
            continue
        smoothing = value / 30
        expected = (
            mt.varifocal_loss(_TZ, target, alpha=0.5 + value / 8, gamma=float(value),
                              label_smoothing=smoothing),
            mt.quality_focal_loss(_TZ, target, beta=float(value), label_smoothing=smoothing),
        )  # fmt: skip
        for a, b in zip(got, expected, strict=True):
            assert_close(a, b, rtol=5e-6, atol=1e-7, what=f"schedule step {value}")
    assert counter.frame_count == 1


def test_torch_criteria_keep_detection_and_smoothing_tensors_as_buffers():
    """The criteria hold a 0-d tensor as a buffer (the same value as the number's), a
    number as a float."""
    target = torch.from_numpy(_Q)
    criteria = [
        (mt.VarifocalLoss, {"alpha": 0.6, "gamma": 1.5, "label_smoothing": 0.1}),
        (mt.QualityFocalLoss, {"beta": 1.5, "label_smoothing": 0.1}),
        (mt.BCEWithLogitsLoss, {"label_smoothing": 0.1}),
        (mt.SigmoidFocalLoss, {"label_smoothing": 0.1}),
        (mt.AsymmetricLoss, {"label_smoothing": 0.1}),
    ]
    for cls, options in criteria:
        tensors = cls(**{key: torch.tensor(value) for key, value in options.items()})
        assert set(options) <= set(dict(tensors.named_buffers())), cls.__name__
        numbers = cls(**options)
        assert all(isinstance(getattr(numbers, key), float) for key in options)
        assert_close(tensors(_TZ, target), numbers(_TZ, target), rtol=2e-6, atol=1e-7,
                     what=cls.__name__)  # fmt: skip


def test_torch_kernels_read_a_folded_label_smoothing_as_data():
    """A label smoothing tensor is folded into the target, which the sigmoid kernels read
    as data: they run (and agree with the eager plans); one that requires grad takes the
    eager plans, as a target that does; the detection losses keep the eager plans."""
    pytest.importorskip("triton")
    from test_triton_engine import ran_kernels

    logits = _TZ.clone().requires_grad_()
    epsilon = torch.tensor(0.1)
    with mt.engine("triton"):
        kernel = mt.sigmoid_focal_loss(logits, _TB, label_smoothing=epsilon)
        assert ran_kernels(kernel, family="sigmoid")
        wanted = epsilon.clone().requires_grad_()
        assert not ran_kernels(mt.binary_cross_entropy(logits, _TB, label_smoothing=wanted),
                               family="sigmoid")  # fmt: skip
        assert not ran_kernels(
            mt.quality_focal_loss(logits, _TB, beta=torch.tensor(2.0)), family="sigmoid"
        )
    with mt.engine("eager"):
        eager = mt.sigmoid_focal_loss(logits, _TB, label_smoothing=0.1)
    assert_close(kernel.detach(), eager.detach(), rtol=1e-6, atol=1e-7, what="kernels")


# ----------------------------------------------------------------------------- variants


def test_fused_heads_and_vocabulary_parallel_losses_refuse_arrays():
    message = r"gamma must be a Python number here.*plain losses only"
    x, w = torch.randn(6, 4), torch.randn(5, 4)
    with pytest.raises(TypeError, match=message):
        mt.linear_focal_loss(x, w, _TY, gamma=torch.tensor(2.0))
    with pytest.raises(TypeError, match=message.replace("gamma", "label_smoothing")):
        mt.linear_cross_entropy(x, w, _TY, label_smoothing=torch.tensor(0.1))
    import multiloss.jax.linear as jax_linear

    with pytest.raises(TypeError, match=message):
        jax_linear.linear_focal_loss(jnp.asarray(x.numpy()), jnp.asarray(w.numpy()), _Y,
                                     gamma=jnp.float32(2.0))  # fmt: skip
