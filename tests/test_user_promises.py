"""Regression tests for what a new user hit first (each failed before its fix).

* class weights held in a concrete ``jax.Array`` and captured by ``jit``, ``scan`` or
  ``checkpoint``;
* ``torch.compile(fullgraph=True)`` with a changing float hyperparameter, with
  ``dynamic=True``, and without warnings from the core's type checks;
* labels too large for the index dtype: refused with the values as given, never wrapped;
* one error type for ``alpha=True``, an infinite weight refused like a NaN one, TorchScript
  refused with one clear error, ``checked`` under ``jit``;
* shape errors that say what the mistake most likely is.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import multiloss.numpy as mn

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

import multiloss.jax as mj  # noqa: E402
import multiloss.torch as mt  # noqa: E402

F = torch.nn.functional

LOGITS = np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5], [0.2, 0.2, 0.2], [-2.0, 1.5, 0.4]])
LABELS = np.array([0, 1, 2, 1])
WEIGHT = np.array([1.0, 2.0, 3.0])
BINARY = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [0.2, 0.8, 0.0], [1.0, 1.0, 0.0]])


# ------------------------------------------------------------ JAX: weights captured by a trace

# (loss, weight keyword, target): every array-valued weight option
CAPTURED = [
    ("cross_entropy", "weight", LABELS),
    ("focal_loss", "alpha", LABELS),
    ("binary_cross_entropy", "weight", BINARY),
    ("binary_cross_entropy", "pos_weight", BINARY),
]


def _closure(name, key, weight):
    function = getattr(mj, name)
    return lambda x, t: function(x, t, **{key: weight})


@pytest.mark.parametrize(("name", "key", "target"), CAPTURED)
def test_captured_concrete_weight_works_under_jit_scan_and_checkpoint(name, key, target):
    weight = jnp.asarray(WEIGHT)  # a concrete jax.Array, closed over
    x, t = jnp.asarray(LOGITS), jnp.asarray(target)
    loss = _closure(name, key, weight)
    expected = float(getattr(mn, name)(LOGITS, target, **{key: WEIGHT}))

    assert float(jax.jit(loss)(x, t)) == pytest.approx(expected, rel=1e-12)
    assert float(jax.checkpoint(loss)(x, t)) == pytest.approx(expected, rel=1e-12)

    def body(carry, _):
        return carry + loss(x, t), None

    total, _ = jax.lax.scan(body, jnp.zeros(()), None, length=3)
    assert float(total) == pytest.approx(3 * expected, rel=1e-12)
    grad = jax.jit(jax.grad(loss))(x, t)
    np.testing.assert_allclose(grad, getattr(mn, f"{name}_grad")(LOGITS, target, **{key: WEIGHT}))


@pytest.mark.parametrize(("name", "key", "target"), CAPTURED)
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_captured_concrete_bad_weight_is_still_refused(name, key, target, bad):
    weight = jnp.asarray([1.0, bad, 3.0])
    loss = _closure(name, key, weight)
    for transform in (jax.jit, jax.checkpoint):
        with pytest.raises(ValueError, match=rf"{key} must be non-negative and finite"):
            transform(loss)(jnp.asarray(LOGITS), jnp.asarray(target))


# -------------------------------------------------------- torch.compile with changing floats


def _compile(function, **options):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    return torch.compile(function, fullgraph=True, backend="aot_eager", **options)


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


SCHEDULES = [  # (name, call with the changing value v, values)
    ("focal gamma", lambda x, t, v: mt.focal_loss(x, t, gamma=v), (2.0, 1.5, 0.5)),
    ("focal scalar alpha", lambda x, t, v: mt.focal_loss(x, t, alpha=v), (0.25, 0.5)),
    ("label smoothing", lambda x, t, v: mt.cross_entropy(x, t, label_smoothing=v), (0.0, 0.1)),
    ("focal smoothing", lambda x, t, v: mt.focal_loss(x, t, label_smoothing=v), (0.1, 0.2)),
]


@pytest.mark.parametrize(("name", "call", "values"), SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_compiled_loss_follows_a_float_schedule(name, call, values):
    x = torch.tensor(LOGITS, requires_grad=True)
    t = torch.tensor(LABELS)
    compiled = _compile(call)
    for value in values:
        loss = compiled(x, t, value)
        (grad,) = torch.autograd.grad(loss, x)
        (expected_grad,) = torch.autograd.grad(call(x, t, value), x)
        torch.testing.assert_close(loss, call(x, t, value), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)


def test_compiled_sigmoid_focal_gamma_schedule_and_module_attribute():
    x, y = torch.tensor(LOGITS, requires_grad=True), torch.tensor(BINARY)
    compiled = _compile(lambda x, y, g: mt.sigmoid_focal_loss(x, y, gamma=g))
    for gamma in (2.0, 1.5):
        expected = mt.sigmoid_focal_loss(x, y, gamma=gamma)
        torch.testing.assert_close(compiled(x, y, gamma), expected, rtol=1e-12, atol=1e-14)
    criterion = mt.FocalLoss(gamma=2.0)
    compiled_module = _compile(criterion)
    t = torch.tensor(LABELS)
    for gamma in (2.0, 1.0, 0.5):  # a γ schedule on the module
        criterion.gamma = gamma
        expected = mt.focal_loss(x, t, gamma=gamma)
        torch.testing.assert_close(compiled_module(x, t), expected, rtol=1e-12, atol=1e-14)


def test_compiled_schedule_recompiles_no_more_than_f_cross_entropy():
    """A new float value specialises the graph, as it does for F.cross_entropy (both hit
    Dynamo's recompile limit alike on a long schedule); multiloss adds no recompilation."""
    x, t = torch.tensor(LOGITS, requires_grad=True), torch.tensor(LABELS)
    counts = {}
    for label, function in (("ours", mt.cross_entropy), ("torch", F.cross_entropy)):
        compiled = _compile(lambda x, t, s, f=function: f(x, t, label_smoothing=s))
        for smoothing in (0.0, 0.1, 0.2):
            compiled(x, t, smoothing).backward()
        counts[label] = _graphs()
    assert counts["torch"] >= 1
    assert counts["ours"] <= counts["torch"]


@pytest.mark.parametrize(
    ("name", "target"),
    [("cross_entropy", "labels"), ("focal_loss", "labels"), ("sigmoid_focal_loss", "binary")],
)
def test_compiled_with_dynamic_shapes_runs_and_stays_dynamic(name, target):
    function = getattr(mt, name)
    compiled = _compile(lambda x, t: function(x, t), dynamic=True)
    for rows in (4, 7):
        rng = np.random.default_rng(rows)
        x = torch.tensor(rng.normal(size=(rows, 3)), requires_grad=True)
        if target == "labels":
            t = torch.tensor(rng.integers(0, 3, rows))
        else:
            t = torch.tensor(rng.uniform(size=(rows, 3)))
        loss = compiled(x, t)
        torch.testing.assert_close(loss, function(x, t), rtol=1e-12, atol=1e-14)
        loss.backward()
    assert _graphs() == 1  # the batch size and the class count stayed symbolic


def test_first_compilation_prints_no_warnings():
    x, t = torch.tensor(LOGITS, requires_grad=True), torch.tensor(LABELS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _compile(lambda x, t: mt.focal_loss(x, t, alpha=0.25))(x, t).backward()
        _compile(lambda x, y: mt.binary_cross_entropy(x, y))(x, torch.tensor(BINARY)).backward()
    assert [str(w.message) for w in caught] == []


# ------------------------------------------------------------ labels too large for the index


TOO_LARGE = [  # (dtype, labels): each wraps, in the cast to the index dtype, onto -100 or 1
    (np.uint64, [0, 2**64 - 100, 1]),
    (np.uint64, [0, 2**64 - 2**32 + 1, 1]),
    (np.uint64, [0, 2**63, 1]),
]


@pytest.mark.parametrize(("dtype", "labels"), TOO_LARGE)
def test_numpy_and_torch_refuse_unsigned_labels_that_would_wrap(dtype, labels):
    target = np.array(labels, dtype=dtype)
    message = rf"out of range \[0, 3\).*\[{labels[1]}\]"
    with pytest.raises(ValueError, match=message):
        mn.cross_entropy(LOGITS[:3], target)
    with pytest.raises(ValueError, match=message):
        mt.focal_loss(torch.tensor(LOGITS[:3]), torch.tensor(target))


def test_jax_refuses_labels_too_large_for_int32_without_x64():
    logits = LOGITS[:3]
    with jax.enable_x64(False):
        cases = [
            jnp.asarray(np.array([0, 2**32 - 100, 1], dtype=np.uint32)),  # would be -100
            jnp.asarray(np.array([0, 2**32 - 1, 1], dtype=np.uint32)),
            np.array([0, 2**32 - 100, 1], dtype=np.int64),  # NumPy int64 given to JAX
            np.array([0, 2**31 + 1, 1], dtype=np.int64),
            [0, 2**40, 1],  # a list whose int does not fit
        ]
        for target in cases:
            shown = int(np.asarray(target)[1])
            with pytest.raises(ValueError, match=rf"target has class indices.*\[{shown}\]"):
                mj.cross_entropy(jnp.asarray(logits, dtype=jnp.float32), target)
        # in range, they are accepted, also as int64 NumPy labels
        loss = mj.cross_entropy(jnp.asarray(logits, jnp.float32), np.array([0, 2, 1]))
        assert float(loss) == pytest.approx(float(mn.cross_entropy(logits, [0, 2, 1])), 1e-6)


def test_torch_unsigned_labels_in_range_are_accepted():
    for dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64):
        loss = mt.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS).to(dtype))
        torch.testing.assert_close(
            loss, F.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS))
        )


# ------------------------------------------------------------------------ consistency


def test_alpha_true_raises_the_same_error_in_function_and_module():
    x, t = torch.tensor(LOGITS), torch.tensor(LABELS)
    with pytest.raises(TypeError, match="alpha must be a real number; got True") as functional:
        mt.focal_loss(x, t, alpha=True)
    with pytest.raises(TypeError, match="alpha must be a real number; got True") as module:
        mt.FocalLoss(alpha=True)
    assert str(functional.value) == str(module.value)


@pytest.mark.parametrize(
    ("name", "key", "target"),
    [*CAPTURED, ("focal_loss", "alpha", LABELS)],
)
def test_infinite_weight_is_refused_in_every_backend(name, key, target):
    weight = [1.0, math.inf, 1.0]
    with pytest.raises(ValueError, match=rf"{key} must be non-negative and finite.*inf"):
        getattr(mn, name)(LOGITS, target, **{key: weight})
    with pytest.raises(ValueError, match=rf"{key} must be non-negative and finite.*inf"):
        getattr(mt, name)(torch.tensor(LOGITS), torch.tensor(target), **{key: weight})
    with pytest.raises(ValueError, match=rf"{key} must be non-negative and finite.*inf"):
        getattr(mj, name)(jnp.asarray(LOGITS), jnp.asarray(target), **{key: jnp.asarray(weight)})


def test_torchscript_is_refused_with_one_clear_error():
    x, t = torch.tensor(LOGITS), torch.tensor(LABELS)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(3, 3)
            self.criterion = mt.CrossEntropyLoss()

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.criterion(self.head(x), t)

    attempts = [
        lambda: torch.jit.script(mt.FocalLoss()),
        lambda: torch.jit.script(Model()),
        lambda: torch.jit.trace(mt.SigmoidFocalLoss(), (x, torch.tensor(BINARY))),
        lambda: torch.jit.trace(Model().double(), (x, t)),
        lambda: torch.jit.trace(lambda x, t: mt.cross_entropy(x, t), (x, t)),
    ]
    for attempt in attempts:
        with pytest.raises(NotImplementedError, match=r"not support TorchScript.*torch\.compile"):
            attempt()


def test_checked_inside_jit_names_the_right_order():
    checked_first = mj.checked(jax.jit(mj.cross_entropy))
    assert float(checked_first(jnp.zeros((2, 3)), jnp.array([0, 2]))) == pytest.approx(math.log(3))
    with pytest.raises(TypeError, match=r"checked\(jax\.jit\(fn\)\)"):
        jax.jit(mj.checked(mj.cross_entropy))(jnp.zeros((2, 3)), jnp.array([0, 2]))


# --------------------------------------------------------------------- errors that explain


def _messages(logits, target, **options):
    """The ValueError message of cross_entropy in each backend (NumPy's axis: torch's)."""
    messages = []
    calls = [
        lambda: mn.cross_entropy(logits, target, **options),
        lambda: mt.cross_entropy(torch.tensor(logits), torch.tensor(target), **options),
        lambda: mj.cross_entropy(jnp.asarray(logits), jnp.asarray(target), **options),
    ]
    for call in calls:
        with pytest.raises(ValueError) as error:
            call()
        messages.append(str(error.value))
    return messages


def test_one_hot_integer_target_is_named():
    one_hot = np.eye(3, dtype=np.int64)[LABELS]
    for message in _messages(LOGITS, one_hot, axis=1):
        assert "looks one-hot" in message
        assert "target.argmax(axis=1)" in message
        assert "floating probability target" in message


def test_channels_last_logits_suggest_axis_minus_one():
    logits = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
    target = np.zeros((2, 5, 5), dtype=np.int64)
    for message in _messages(logits, target, axis=1):
        assert "channels-last" in message
        assert "axis=-1" in message
    # the suggestion is right: with axis=-1 the call works
    np.testing.assert_allclose(
        mt.cross_entropy(torch.tensor(logits), torch.tensor(target), axis=-1).item(),
        F.cross_entropy(torch.tensor(logits).permute(0, 3, 1, 2), torch.tensor(target)).item(),
    )


def test_one_dimensional_logits_point_to_the_binary_losses():
    logits, target = np.array([0.5, -1.0, 2.0]), np.array([1, 0, 1])
    for message in _messages(logits, target, axis=0):
        assert "one unbatched sample of 3 classes" in message
        assert "binary_cross_entropy" in message


def test_weighted_mean_over_zero_weight_with_smoothing_is_zero():
    """Σ w_{y_i} = 0 but the smoothing term is not: the mean is 0.0 by definition (was the
    sum), with a zero gradient, in every backend (found by tests/test_operand_gradients.py)."""
    target, weight = np.array([0, 1, 0, 1]), [0.0, 0.0, 2.0]
    loss, grad = mn.cross_entropy_value_and_grad(LOGITS, target, weight=weight, label_smoothing=0.1)
    assert loss == 0.0 and not grad.any()
    x = torch.tensor(LOGITS, requires_grad=True)
    mt.cross_entropy(x, torch.tensor(target), weight=weight, label_smoothing=0.1).backward()
    assert not x.grad.any()
    value = mj.cross_entropy(jnp.asarray(LOGITS), target, weight=weight, label_smoothing=0.1)
    assert float(value) == 0.0
