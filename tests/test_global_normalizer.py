"""Global normalisation: the parts of a batch, each divided by the whole batch's count, add up
to the whole batch's mean (docs/semantics.md, Global normalisation; docs/distributed.md).

A loss's ``"mean"`` is Σ_i L_i / D. A batch split into micro-batches × ranks, each part
called with ``normalizer=`` the whole batch's D, gives losses that add up to the whole
batch's mean and gradients that, put back together, are the whole batch's gradient, also
when the parts count differently many targets. Tested here:

* for every loss and option (class weights, ``ignore_index``, label smoothing, probability
  targets, focal γ/α, poly ε, z-loss, softcap, BCE weight/pos_weight, sigmoid focal α/γ,
  asymmetric γ±/clip), in ``multiloss.numpy`` (the loss and its ``*_grad``),
  ``multiloss.torch`` (autograd) and ``multiloss.jax`` (``jax.grad``), float64 to 1e-12
  and float32 to a few eps (relative), over splits with uneven counts: a part whose
  targets are all ignored, an empty part, parts of one row. The global count is the sum of
  the parts' ``count_targets`` / ``count_elements``, and equals the whole batch's;
* the whole batch's mean twice: the library's plain ``reduction="mean"``, and oracles that
  do not use the library (the naive float64 formulas of ``tests/oracles.py`` for every
  case, ``F.cross_entropy`` and ``F.binary_cross_entropy_with_logits``);
* bad ``normalizer`` and ``count_targets`` input; a normaliser of 0; float16 and bfloat16
  logits with a sum that would overflow 16 bits; a normaliser that requires grad
  (d loss / d n = -loss / n); ``jax.jit`` with a traced normaliser; ``torch.compile``.

``pytest -s`` prints the largest deviations seen, per backend and dtype.
"""

from __future__ import annotations

import functools
import itertools
import operator
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from oracles import (
    np_asymmetric_loss,
    np_binary_cross_entropy,
    np_cross_entropy_ext,
    np_focal_loss_ext,
    np_poly_loss,
    np_sigmoid_focal_loss,
)

import multiloss
import multiloss.numpy as mln

try:
    import torch
    import torch.nn.functional as F

    import multiloss.torch as mlt
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = F = mlt = None
try:
    import jax
    import jax.numpy as jnp

    import multiloss.jax as mlj
except ImportError:  # pragma: no cover - jax is in the test extra
    jax = jnp = mlj = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
needs_jax = pytest.mark.skipif(jax is None, reason="jax is not installed")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small calls at one thread: with two, tiny torch operations take milliseconds here."""
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------
# The batch, its splits and the cases

N, C, D, L = 12, 5, 3, 4  # rows, classes, a spatial axis, labels of the sigmoid losses
IGNORED_ROWS = (3, 4, 5, 9)  # every target of these rows is ignore_index
SPLITS = {
    # part boundaries along the batch axis; micro-batches of 2 or 3 ranks, flattened
    "2x2-one-part-all-ignored": (0, 3, 6, 10, 12),  # counted rows 3, 0, 3, 2
    "2x2-empty-part": (0, 5, 5, 11, 12),  # an empty micro-batch, a one-row one
    "3x2-uneven": (0, 1, 4, 6, 7, 8, 12),
}
# multiloss.jax runs jitted, as it is trained: static shapes, one compilation per shape, so
# equal micro-batches (a compilation costs ~0.5 s here, an eager call of a new shape more)
JAX_SPLITS = {
    "index": {"2x2-one-part-all-ignored": (0, 3, 6, 9, 12)},  # counted rows 3, 0, 3, 2
    "probabilities": {"2x1": (0, 6, 12)},
    "elements": {"2x1": (0, 6, 12)},
}
WEIGHT = [0.3, 1.7, 0.55, 2.2, 1.1]  # class weights whose sums are not exact
ALPHA = [0.25, 1.0, 0.6, 2.0, 0.9]
POS_WEIGHT = [0.5, 1.0, 2.5, 1.5]
ROW_WEIGHT = np.linspace(0.2, 1.9, N)[:, None]  # a per-row BCE weight, split with the rows


@dataclass(frozen=True)
class Case:
    id: str
    loss: str
    options: dict[str, Any] = field(default_factory=dict)
    target: str = "index"  # "index", "probabilities" (softmax) or "elements" (sigmoid)
    spatial: bool = False  # (N, C, D) logits, classes on axis 1
    hard: bool = False  # 0/1 targets of a sigmoid loss
    sliced: tuple[str, ...] = ()  # options with one entry per row, split with the batch


CASES = [
    Case("ce", "cross_entropy"),
    Case("ce-weight", "cross_entropy", {"weight": WEIGHT}),
    Case("ce-ignore-index-2", "cross_entropy", {"ignore_index": 2}),
    Case(
        "ce-weight-ignore-index-smoothing",
        "cross_entropy",
        {"weight": WEIGHT, "ignore_index": -1, "label_smoothing": 0.2},
    ),
    Case("ce-smoothing", "cross_entropy", {"label_smoothing": 0.1}),
    Case("ce-z-loss-softcap", "cross_entropy", {"z_loss": 1e-2, "softcap": 4.0}),
    Case("ce-weight-z-loss", "cross_entropy", {"weight": WEIGHT, "z_loss": 1e-3}),
    Case("ce-spatial-weight", "cross_entropy", {"axis": 1, "weight": WEIGHT}, spatial=True),
    Case(
        "ce-probabilities-smoothing-z-loss",
        "cross_entropy",
        {"label_smoothing": 0.1, "z_loss": 1e-3},
        target="probabilities",
    ),
    Case("ce-probabilities-weight", "cross_entropy", {"weight": WEIGHT}, target="probabilities"),
    Case("focal", "focal_loss", {"gamma": 2.0}),
    Case("focal-gamma-half-scalar-alpha", "focal_loss", {"gamma": 0.5, "alpha": 0.25}),
    Case(
        "focal-alpha-smoothing-z-loss-softcap",
        "focal_loss",
        {"gamma": 1.5, "alpha": ALPHA, "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 5.0},
    ),
    Case("focal-spatial-alpha", "focal_loss", {"axis": 1, "alpha": ALPHA}, spatial=True),
    Case(
        "focal-probabilities",
        "focal_loss",
        {"gamma": 2.0, "alpha": ALPHA},
        target="probabilities",
    ),
    Case("poly", "poly_loss"),
    Case(
        "poly-focal-alpha-softcap",
        "poly_loss",
        {"epsilon": -0.5, "gamma": 1.0, "alpha": ALPHA, "softcap": 3.0},
    ),
    Case(
        "poly-probabilities-z-loss",
        "poly_loss",
        {"epsilon": 1.0, "z_loss": 1e-3, "label_smoothing": 0.05},
        target="probabilities",
    ),
    Case("bce", "binary_cross_entropy", target="elements", hard=True),
    Case("bce-pos-weight", "binary_cross_entropy", {"pos_weight": POS_WEIGHT}, target="elements"),
    Case(
        "bce-row-weight-pos-weight",
        "binary_cross_entropy",
        {"weight": ROW_WEIGHT, "pos_weight": POS_WEIGHT},
        target="elements",
        hard=True,
        sliced=("weight",),
    ),
    Case("sigmoid-focal", "sigmoid_focal_loss", target="elements"),
    Case(
        "sigmoid-focal-no-alpha-gamma-half",
        "sigmoid_focal_loss",
        {"alpha": None, "gamma": 0.5},
        target="elements",
        hard=True,
    ),
    Case("asymmetric", "asymmetric_loss", target="elements", hard=True),
    Case(
        "asymmetric-gammas-clip",
        "asymmetric_loss",
        {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.1},
        target="elements",
    ),
    Case(
        "asymmetric-no-clip", "asymmetric_loss", {"gamma_neg": 3.0, "clip": 0.0}, target="elements"
    ),
]

JAX_CASES = {
    # every loss and option once, in float64; float32 for one case of each family (the
    # normaliser is applied outside the loss's custom rule, the same way for every option)
    "ce-weight-ignore-index-smoothing": ("float64", "float32"),
    "ce-z-loss-softcap": ("float64",),
    "ce-probabilities-weight": ("float64",),
    "focal-alpha-smoothing-z-loss-softcap": ("float64", "float32"),
    "poly-focal-alpha-softcap": ("float64",),
    "bce-row-weight-pos-weight": ("float64", "float32"),
    "sigmoid-focal": ("float64",),
    "asymmetric-gammas-clip": ("float64",),
}

ORACLES: dict[str, Callable[..., tuple[Any, np.ndarray]]] = {
    "cross_entropy": np_cross_entropy_ext,
    "focal_loss": np_focal_loss_ext,
    "poly_loss": np_poly_loss,
    "binary_cross_entropy": np_binary_cross_entropy,
    "sigmoid_focal_loss": np_sigmoid_focal_loss,
    "asymmetric_loss": np_asymmetric_loss,
}
"""Naive float64 formulas, written without the library (tests/oracles.py): (loss, grad)."""


def make_batch(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The whole batch's logits (float64) and target, the same for every backend."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    if case.target == "elements":
        logits = rng.normal(size=(N, L)) * 2.5
        if case.hard:
            return logits, (rng.random((N, L)) < 0.4).astype(np.float64)
        return logits, rng.random((N, L))
    shape = (N, C, D) if case.spatial else (N, C)
    logits = rng.normal(size=shape) * 3.0
    if case.target == "probabilities":
        scores = np.exp(rng.normal(size=shape) * 2.0)
        return logits, scores / scores.sum(axis=1, keepdims=True)
    target_shape = (N, D) if case.spatial else (N,)
    target = rng.integers(0, C, size=target_shape)
    ignored = np.zeros(target_shape, dtype=bool)
    ignored[list(IGNORED_ROWS)] = True
    if case.spatial:  # and a few more positions, so that rows count 0 to D targets
        ignored |= rng.random(target_shape) < 0.3
    target[ignored] = case.options.get("ignore_index", -100)
    return logits, target


def split(case: Case, logits, target, bounds) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """The parts (logits, target, options) of a batch between consecutive `bounds`."""
    parts = []
    for start, stop in itertools.pairwise(bounds):
        options = {
            name: value[start:stop] if name in case.sliced else value
            for name, value in case.options.items()
        }
        parts.append((logits[start:stop], target[start:stop], options))
    return parts


def naive_count(case: Case, target: np.ndarray) -> float:
    """The "mean"'s denominator, from its definition."""
    if case.target == "probabilities":
        return float(np.prod(np.delete(target.shape, 1)))
    if case.target == "elements":
        return float(target.size)
    counted = target != case.options.get("ignore_index", -100)
    if case.loss == "cross_entropy" and "weight" in case.options:
        return float(np.sum(np.asarray(case.options["weight"])[target[counted]]))
    return float(np.sum(counted))


# ---------------------------------------------------------------------------------------
# The backends: convert a part, count it, and run a loss to its value and gradient


@dataclass(frozen=True)
class Backend:
    name: str
    module: Any  # multiloss.numpy / multiloss.torch / multiloss.jax
    dtypes: dict[str, Any]
    floats: Callable[[Any, Any], Any]  # (NumPy data, dtype) -> a floating array
    integers: Callable[[np.ndarray], Any]  # NumPy integers -> an array
    to_numpy: Callable[[Any], np.ndarray]
    value_and_grad: Callable[..., tuple[float, np.ndarray]]  # (loss, z, t, **options)

    def convert(self, part, dtype):
        logits, target, options = part
        floating = np.issubdtype(np.asarray(target).dtype, np.floating)
        converted = {
            name: self.floats(value, dtype) if isinstance(value, (list, np.ndarray)) else value
            for name, value in options.items()
        }
        target = self.floats(target, dtype) if floating else self.integers(target)
        return self.floats(logits, dtype), target, converted


def _numpy_value_and_grad(loss, logits, target, **options):
    value = getattr(mln, loss)(logits, target, dtype=None, **options)
    grad = getattr(mln, f"{loss}_grad")(logits, target, dtype=None, **options)
    return float(value), np.asarray(grad, dtype=np.float64)


def _torch_value_and_grad(loss, logits, target, **options):
    leaf = logits.detach().clone().requires_grad_(True)
    value = getattr(mlt, loss)(leaf, target, **options)
    value.backward()
    grad = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
    return value.item(), grad.double().numpy()


_JITTED: dict[tuple, Callable] = {}


def _jax_value_and_grad(loss, logits, target, **options):
    """``jax.jit(jax.value_and_grad(loss))``, the arrays among the options (the normaliser
    included) traced, the rest static; one compilation per loss, options and shape."""
    arrays = {name: value for name, value in options.items() if isinstance(value, jax.Array)}
    static = tuple(sorted((name, value) for name, value in options.items() if name not in arrays))
    key = (loss, static, tuple(sorted(arrays)))
    if key not in _JITTED:

        def value(logits, target, arrays):
            return getattr(mlj, loss)(logits, target, **arrays, **dict(static))

        _JITTED[key] = jax.jit(jax.value_and_grad(value))
    value, grad = _JITTED[key](logits, target, arrays)
    return float(value), np.asarray(grad, dtype=np.float64)


BACKENDS = {
    "numpy": Backend(
        "numpy",
        mln,
        {"float64": np.float64, "float32": np.float32},
        lambda data, dtype: np.asarray(data, dtype=dtype),
        np.asarray,
        np.asarray,
        _numpy_value_and_grad,
    )
}
if torch is not None:
    BACKENDS["torch"] = Backend(
        "torch",
        mlt,
        {"float64": torch.float64, "float32": torch.float32},
        lambda data, dtype: torch.tensor(np.asarray(data), dtype=dtype),
        lambda data: torch.tensor(data),
        lambda array: array.detach().cpu().numpy(),
        _torch_value_and_grad,
    )
if jax is not None:
    BACKENDS["jax"] = Backend(
        "jax",
        mlj,
        {"float64": jnp.float64, "float32": jnp.float32},
        lambda data, dtype: jnp.asarray(np.asarray(data), dtype=dtype),
        jnp.asarray,
        np.asarray,
        _jax_value_and_grad,
    )
BACKEND_NAMES = [
    pytest.param("numpy"),
    pytest.param("torch", marks=needs_torch),
    pytest.param("jax", marks=needs_jax),
]


def count(backend: Backend, case: Case, target, options) -> Any:
    """The part's denominator, as a training loop counts it: ``count_targets`` (with the
    class weight for cross-entropy), or ``count_elements``; jitted in JAX."""
    if case.target != "index":
        class_axis = 1 if case.target == "probabilities" else None
        return backend.module.count_elements(target, class_axis=class_axis)
    weight = options.get("weight") if case.loss == "cross_entropy" else None
    ignore_index = case.options.get("ignore_index", -100)
    if backend.name == "jax":
        return _jax_count(ignore_index)(target, weight)
    return backend.module.count_targets(target, ignore_index=ignore_index, weight=weight)


@functools.cache
def _jax_count(ignore_index: int) -> Callable:
    return jax.jit(
        lambda target, weight: mlj.count_targets(target, ignore_index=ignore_index, weight=weight)
    )


# ---------------------------------------------------------------------------------------
# Tolerances, and the largest deviations seen (printed by `pytest -s`)

EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}
TOLERANCE = {"float64": 1e-12, "float32": 8 * EPS["float32"]}
DEVIATIONS: dict[tuple[str, str, str], list[float]] = {}


def deviation(actual, expected) -> tuple[float, float]:
    """max |actual - expected|, and that divided by max |expected| (normwise relative)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size == 0:
        return 0.0, 0.0
    error = float(np.max(np.abs(actual - expected)))
    scale = float(np.max(np.abs(expected)))
    return error, error / scale if scale else error


def assert_close(actual, expected, tolerance: float, what: str, key=None, where="") -> None:
    """Normwise relative deviation within `tolerance`; recorded under (*key, what)."""
    error, relative = deviation(actual, expected)
    if key is not None:
        seen = DEVIATIONS.setdefault((*key, what), [0.0, 0.0])
        seen[0], seen[1] = max(seen[0], error), max(seen[1], relative)
    assert relative <= tolerance, (
        f"{what} {where}: relative deviation {relative:.3g} > {tolerance:.3g}"
    )


@pytest.fixture(scope="module", autouse=True)
def _print_deviations():
    yield
    if DEVIATIONS:
        print("\nlargest deviations, parts with normalizer vs the whole batch (abs, rel):")
        for (backend, dtype, what), (error, relative) in sorted(DEVIATIONS.items()):
            print(f"  {backend:6} {dtype:8} {what:24} {error:9.2e} {relative:9.2e}")


# ---------------------------------------------------------------------------------------
# The invariance


def run_parts(backend: Backend, case: Case, parts, normalizer) -> tuple[float, np.ndarray]:
    """Σ_parts loss(part, normalizer) and the parts' gradients put back together."""
    extra = {} if normalizer is None else {"normalizer": normalizer}
    results = [
        backend.value_and_grad(case.loss, logits, target, **options, **extra)
        for logits, target, options in parts
    ]
    return sum(value for value, _ in results), np.concatenate([grad for _, grad in results])


INVARIANCE = [
    pytest.param(case, name, dtype, id=f"{case.id}-{name}-{dtype}", marks=marks)
    for case in CASES
    for name, marks in (("numpy", ()), ("torch", needs_torch), ("jax", needs_jax))
    for dtype in ("float64", "float32")
    if name != "jax" or dtype in JAX_CASES.get(case.id, ())
]


@pytest.mark.parametrize("case, backend_name, dtype", INVARIANCE)
def test_parts_add_up_to_the_whole_batch_mean(case: Case, backend_name: str, dtype: str) -> None:
    backend = BACKENDS[backend_name]
    logits, target = make_batch(case)
    whole = backend.convert((logits, target, case.options), backend.dtypes[dtype])
    expected, expected_grad = run_parts(backend, case, [whole], None)  # the plain "mean"
    full_count = backend.to_numpy(count(backend, case, whole[1], whole[2]))
    weighted = case.loss == "cross_entropy" and "weight" in case.options
    assert full_count.shape == ()
    assert full_count.dtype.kind == ("f" if weighted and case.target == "index" else "i")
    assert abs(float(full_count) - naive_count(case, target)) <= 4 * EPS[dtype] * float(
        full_count
    ), (float(full_count), naive_count(case, target))
    if dtype == "float64":  # the whole batch's mean from its definition, without multiloss
        oracle, oracle_grad = ORACLES[case.loss](logits, target, **case.options)
        assert_close(expected, oracle, 1e-12, "mean vs oracle", (backend.name, dtype))
        assert_close(
            expected_grad, oracle_grad, 1e-12, "mean grad vs oracle", (backend.name, dtype)
        )
    tolerance = TOLERANCE[dtype]
    splits = JAX_SPLITS[case.target] if backend.name == "jax" else SPLITS
    for name, bounds in splits.items():
        parts = [
            backend.convert(part, backend.dtypes[dtype])
            for part in split(case, logits, target, bounds)
        ]
        counts = [count(backend, case, part_target, options) for _, part_target, options in parts]
        normalizer = functools.reduce(operator.add, counts)  # the all-reduce of a real run
        global_count = float(backend.to_numpy(normalizer))
        assert abs(global_count - float(full_count)) <= 4 * EPS[dtype] * float(full_count), name
        value, grad = run_parts(backend, case, parts, normalizer)
        key = (backend.name, dtype)
        assert_close(value, expected, tolerance, "loss", key, name)
        assert_close(grad, expected_grad, tolerance, "grad", key, name)
        if dtype == "float64":
            assert_close(value, oracle, 1e-12, "loss vs oracle", key, name)
            assert_close(grad, oracle_grad, 1e-12, "grad vs oracle", key, name)


@pytest.mark.parametrize("case", CASES[:: len(CASES) // 6], ids=lambda case: case.id)
def test_numpy_value_and_grad_take_the_normalizer(case: Case) -> None:
    """``*_value_and_grad`` agrees with the loss and ``*_grad``, normaliser included."""
    logits, target = make_batch(case)
    for logits_part, target_part, options in split(case, logits, target, SPLITS["3x2-uneven"]):
        for normalizer in (7, np.asarray(7.5), np.float32(7.5)):
            value, grad = getattr(mln, f"{case.loss}_value_and_grad")(
                logits_part, target_part, normalizer=normalizer, **options
            )
            expected = _numpy_value_and_grad(
                case.loss, logits_part, target_part, normalizer=normalizer, **options
            )
            assert float(value) == expected[0] and np.array_equal(grad, expected[1])


@pytest.mark.parametrize("name", ["numpy", pytest.param("torch", marks=needs_torch)])
@pytest.mark.parametrize("case", CASES[::3], ids=lambda case: case.id)
def test_dispatch_takes_the_normalizer(case: Case, name: str) -> None:
    """``multiloss.<loss>`` on NumPy arrays (the array-API path, in the input's dtype) and
    on tensors (dispatched to ``multiloss.torch``)."""
    backend = BACKENDS[name]
    logits, target = make_batch(case)
    function = getattr(multiloss, case.loss)
    parts = [
        backend.convert(part, backend.dtypes["float64"])
        for part in split(case, logits, target, SPLITS["2x2-one-part-all-ignored"])
    ]
    normalizer = functools.reduce(operator.add, [count(backend, case, t, o) for _, t, o in parts])
    total = sum(float(function(z, t, normalizer=normalizer, **o)) for z, t, o in parts)
    z, t, options = backend.convert((logits, target, case.options), backend.dtypes["float64"])
    expected = float(function(z, t, **options))
    assert abs(total - expected) <= 1e-12 * expected


# ---------------------------------------------------------------------------------------
# PyTorch's own means


@needs_torch
@pytest.mark.parametrize(
    "options, kind",
    [
        ({}, "index"),
        ({"weight": WEIGHT, "ignore_index": -1, "label_smoothing": 0.1}, "index"),
        ({"weight": WEIGHT}, "spatial"),
        ({"weight": WEIGHT, "label_smoothing": 0.2}, "probabilities"),
        ({"pos_weight": POS_WEIGHT}, "elements"),
        ({"weight": ROW_WEIGHT, "pos_weight": POS_WEIGHT}, "elements"),
    ],
    ids=["ce", "ce-weight-smoothing", "ce-spatial-weight", "ce-probabilities", "bce", "bce-weight"],
)
def test_torch_parts_add_up_to_pytorch_own_mean(options: dict, kind: str) -> None:
    """``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits`` of the whole batch."""
    sigmoid = kind == "elements"
    case = Case(
        f"pytorch-{kind}",
        "binary_cross_entropy" if sigmoid else "cross_entropy",
        options,
        target=kind if kind != "spatial" else "index",
        spatial=kind == "spatial",
        sliced=("weight",) if sigmoid else (),
    )
    logits, target = make_batch(case)
    backend = BACKENDS["torch"]
    z, t, o = backend.convert((logits, target, options), torch.float64)
    z.requires_grad_(True)
    if sigmoid:
        expected = F.binary_cross_entropy_with_logits(z, t, **o)
    else:
        expected = F.cross_entropy(z, t, **o)
    expected.backward()
    for bounds in SPLITS.values():
        parts = [backend.convert(p, torch.float64) for p in split(case, logits, target, bounds)]
        normalizer = functools.reduce(
            operator.add, [count(backend, case, t, o) for _, t, o in parts]
        )
        value, grad = run_parts(backend, case, parts, normalizer)
        assert_close(value, expected.item(), 1e-12, "loss vs PyTorch", ("torch", "float64"))
        assert_close(grad, z.grad.numpy(), 1e-12, "grad vs PyTorch", ("torch", "float64"))


@needs_torch
def test_torch_criteria_take_the_normalizer() -> None:
    """``forward(input, target, *, normalizer=)`` of every criterion: its parts add up to
    its whole batch's mean (class weights as float64 buffers: ``count_targets`` sums in the
    weight's dtype)."""
    criteria = {
        "cross_entropy": mlt.CrossEntropyLoss(weight=WEIGHT, label_smoothing=0.1, z_loss=1e-3),
        "focal_loss": mlt.FocalLoss(gamma=1.5, alpha=ALPHA),
        "poly_loss": mlt.PolyLoss(epsilon=1.0),
        "binary_cross_entropy": mlt.BCEWithLogitsLoss(pos_weight=POS_WEIGHT),
        "sigmoid_focal_loss": mlt.SigmoidFocalLoss(alpha=0.25, gamma=2.0),
        "asymmetric_loss": mlt.AsymmetricLoss(gamma_pos=1.0, clip=0.1),
    }
    backend = BACKENDS["torch"]
    for loss, criterion in criteria.items():
        criterion = criterion.to(torch.float64)
        case = next(case for case in CASES if case.loss == loss)
        logits, target = make_batch(case)
        z, t, _ = backend.convert((logits, target, {}), torch.float64)
        weight = criterion.weight if loss == "cross_entropy" else None
        pieces = [slice(0, 5), slice(5, 6), slice(6, 12)]
        if case.target == "index":
            counts = [mlt.count_targets(t[piece], weight=weight) for piece in pieces]
        else:
            counts = [mlt.count_elements(t[piece]) for piece in pieces]
        normalizer = functools.reduce(operator.add, counts)
        total = sum(criterion(z[piece], t[piece], normalizer=normalizer) for piece in pieces)
        torch.testing.assert_close(total, criterion(z, t), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------
# Bad input

MODULES = {"numpy": mln, "dispatch": multiloss, "torch": mlt, "jax": mlj}
LOSSES = [
    "cross_entropy",
    "focal_loss",
    "poly_loss",
    "binary_cross_entropy",
    "sigmoid_focal_loss",
    "asymmetric_loss",
]
NAMESPACE_NAMES = [
    pytest.param("numpy"),
    pytest.param("dispatch"),
    pytest.param("torch", marks=needs_torch),
    pytest.param("jax", marks=needs_jax),
]


def _array_maker(name: str) -> Callable[..., Any]:
    if name == "torch":
        return lambda value, dtype=None: torch.tensor(value, dtype=dtype or torch.float64)
    if name == "jax":
        return lambda value, dtype=None: jnp.asarray(value, dtype=dtype or jnp.float64)
    return lambda value, dtype=None: np.asarray(value, dtype=dtype or np.float64)


def _small_call(name: str, loss: str) -> tuple[Any, Any]:
    """Logits and a target of backend `name` for `loss` (two rows)."""
    array = _array_maker(name)
    if loss in LOSSES[:3]:
        integers = {"torch": torch.tensor, "jax": jnp.asarray}.get(name, np.asarray)
        return array([[0.5, -1.0, 2.0], [0.0, 0.3, 0.1]]), integers([2, -100])
    return array([[0.5, -1.0], [2.0, 0.0]]), array([[1.0, 0.0], [0.3, 1.0]])


BAD_NORMALIZER = [
    pytest.param(name.values[0], loss, marks=name.marks, id=f"{name.values[0]}-{loss}")
    for name in NAMESPACE_NAMES
    for loss in LOSSES
    # the adapters check a normaliser in one place for every loss: JAX (slow to compile a
    # new shape eagerly) for one loss of each family
    if name.values[0] != "jax" or loss in ("cross_entropy", "binary_cross_entropy")
]


@pytest.mark.parametrize("name, loss", BAD_NORMALIZER)
def test_bad_normalizer_is_refused_naming_it(name: str, loss: str) -> None:
    array = _array_maker(name)
    bool_dtype = torch.bool if name == "torch" else (jnp.bool_ if name == "jax" else np.bool_)
    other = np.asarray(4.0) if name == "torch" else (torch.tensor(4.0) if torch else None)
    bad = [
        ("a negative number", -1, ValueError),
        ("a negative float", -0.5, ValueError),
        ("NaN", float("nan"), ValueError),
        ("inf", float("inf"), ValueError),
        ("a negative 0-d array", array(-2.0), ValueError),
        ("a NaN 0-d array", array(float("nan")), ValueError),
        ("a 2-d array", array([[4.0]]), ValueError),
        ("a 1-d array", array([4.0, 4.0]), ValueError),
        ("a bool array", array(True, bool_dtype), TypeError),
        ("a bool", True, TypeError),
        ("a string", "4", TypeError),
        ("a complex number", 4j, TypeError),
    ]
    if other is not None:
        bad.append(("an array of another backend", other, TypeError))
    function = getattr(MODULES[name], loss)
    logits, target = _small_call(name, loss)
    for what, normalizer, error in bad:
        with pytest.raises(error, match="normalizer") as caught:
            function(logits, target, normalizer=normalizer)
        assert "normalizer" in str(caught.value), what
    for reduction in ("sum", "none"):
        with pytest.raises(ValueError, match=rf"normalizer.*reduction='{reduction}'"):
            function(logits, target, normalizer=3, reduction=reduction)


@needs_torch
def test_torch_criterion_refuses_a_bad_normalizer() -> None:
    logits, target = _small_call("torch", "cross_entropy")
    with pytest.raises(ValueError, match="normalizer"):
        mlt.CrossEntropyLoss()(logits, target, normalizer=torch.tensor(-1.0))
    with pytest.raises(ValueError, match=r"normalizer.*reduction='sum'"):
        mlt.FocalLoss(reduction="sum")(logits, target, normalizer=3)


@pytest.mark.parametrize("name", NAMESPACE_NAMES)
def test_bad_count_input_is_refused_naming_it(name: str) -> None:
    array = _array_maker(name)
    integers = {"torch": torch.tensor, "jax": jnp.asarray}.get(name, np.asarray)
    module = MODULES[name]
    weight = array([1.0, 2.0, 0.5])
    bad = [
        (TypeError, "target", lambda: module.count_targets(array([0.0, 1.0]))),
        (TypeError, "target", lambda: module.count_targets(integers([True, False]))),
        (TypeError, "target", lambda: module.count_targets([0, 1])),
        (
            ValueError,
            "weight",
            lambda: module.count_targets(integers([0, 1]), weight=array([[1.0]])),
        ),
        (
            ValueError,
            "target.*out of range",
            lambda: module.count_targets(integers([0, 3]), weight=weight),
        ),
        (ValueError, "target.*negative", lambda: module.count_targets(integers([0, -3]))),
        (
            ValueError,
            "target.*out of range",
            lambda: module.count_targets(integers([0, -3]), weight=weight),
        ),
        (
            ValueError,
            "weight",
            lambda: module.count_targets(integers([0, 1]), weight=array([1.0, -1.0, 1.0])),
        ),
        (
            ValueError,
            "weight",
            lambda: module.count_targets(integers([0, 1]), weight=array([1.0, np.nan, 1.0])),
        ),
        (TypeError, "ignore_index", lambda: module.count_targets(integers([0]), ignore_index=1.5)),
        (TypeError, "target", lambda: module.count_elements([0.0, 1.0])),
    ]
    for error, message, call in bad:
        with pytest.raises(error, match=message):
            call()
    # ignore_index is never a negative index, and a weight of its own value
    assert int(module.count_targets(integers([0, -100, 2]), ignore_index=-100)) == 2
    assert float(module.count_targets(integers([-1, 2]), ignore_index=-1, weight=weight)) == 0.5


@needs_torch
def test_count_targets_refuses_a_weight_of_another_backend() -> None:
    for target, weight in [
        (torch.tensor([0, 1]), np.ones(2)),
        (np.array([0, 1]), torch.ones(2)),
    ]:
        with pytest.raises(TypeError, match="weight"):
            multiloss.count_targets(target, weight=weight)


def test_count_elements_names_a_bad_class_axis() -> None:
    with pytest.raises(ValueError, match="class_axis"):
        multiloss.count_elements(np.zeros((3, 4)), class_axis=2)


# ---------------------------------------------------------------------------------------
# A normaliser of 0, and the forms a normaliser takes


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_zero_normalizer_gives_zero_with_zero_gradients(name: str, loss: str) -> None:
    """0 (a batch whose every target is ignored, all-reduced) gives 0 and a zero gradient,
    as the mean over nothing does, whatever the part itself holds."""
    backend = BACKENDS[name]
    candidates = [case for case in CASES if case.loss == loss]
    if name == "jax":  # a case, and a part's shape, that the invariance test compiled
        candidates = [case for case in candidates if case.id in JAX_CASES]
    case = candidates[0]
    logits, target = make_batch(case)
    part = (logits, target, case.options)
    if name == "jax":
        part = split(case, logits, target, next(iter(JAX_SPLITS[case.target].values())))[0]
        target = part[1]
    z, t, options = backend.convert(part, backend.dtypes["float64"])
    ignore_index = case.options.get("ignore_index", -100)
    if case.target == "index":  # the count of a batch whose every target is ignored
        ignored = backend.integers(np.full(target.shape, ignore_index))
        zero = count(backend, case, ignored, options)
    else:  # the count of no element
        zero = count(backend, case, t[:0], options)
    assert float(backend.to_numpy(zero)) == 0.0
    value, grad = backend.value_and_grad(loss, z, t, **options, normalizer=zero)
    assert value == 0.0 and not np.any(grad), (value, np.abs(grad).max())
    if case.target == "index" and name != "jax":  # that batch's own mean is 0 too
        value, grad = backend.value_and_grad(loss, z, ignored, **options)
        assert value == 0.0 and not np.any(grad)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_normalizer_forms_agree(name: str) -> None:
    """A Python int or float, and a 0-d integer or floating array of the backend."""
    backend = BACKENDS[name]
    case = CASES[1]  # weighted cross-entropy
    logits, target = make_batch(case)
    z, t, options = backend.convert((logits, target, case.options), backend.dtypes["float64"])
    forms = [
        7,
        7.0,
        backend.integers(np.asarray(7)),
        backend.floats(7.0, backend.dtypes["float64"]),
    ]
    forms.append(backend.floats(7.0, backend.dtypes["float32"]))
    run = backend.value_and_grad
    if name == "jax":  # eagerly: the loss compiles once, the division once per form

        def run(loss, logits, target, **options):
            function = getattr(mlj, loss)
            value, grad = jax.value_and_grad(lambda z: function(z, target, **options))(logits)
            return float(value), np.asarray(grad)

    results = [run(case.loss, z, t, **options, normalizer=n) for n in forms]
    for value, grad in results[1:]:
        assert value == results[0][0] and np.array_equal(grad, results[0][1])
    value = run(case.loss, z, t, **options)[0]
    assert abs(results[0][0] * 7 - value * naive_count(case, target)) <= 1e-12 * value


# ---------------------------------------------------------------------------------------
# 16-bit logits: the sum is never formed in 16 bits


@needs_torch
@pytest.mark.parametrize("loss", ["cross_entropy", "focal_loss", "binary_cross_entropy"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_16_bit_parts_with_a_large_normalizer(dtype: str, loss: str) -> None:
    """4 parts of 512 rows, each row's loss ≈ 60: each part's sum (≈ 31 000) and the whole
    one (≈ 125 000) are past float16's 65 504, and past what bfloat16 adds exactly."""
    torch_dtype = getattr(torch, dtype)
    rows, classes = 2048, 4
    rng = np.random.default_rng(16)
    if loss == "binary_cross_entropy":
        target64 = (rng.random((rows, classes)) < 0.5).astype(np.float64)
        logits64 = np.where(target64 == 1, -30.0, 30.0) + rng.normal(size=(rows, classes))
        target = torch.tensor(target64, dtype=torch_dtype)
    else:
        labels = rng.integers(0, classes, size=rows)
        logits64 = 30.0 + rng.normal(size=(rows, classes))
        logits64[np.arange(rows), labels] = -30.0
        target = torch.tensor(labels)
    logits = torch.tensor(logits64, dtype=torch_dtype)
    exact = logits.double().requires_grad_(True)  # the same (rounded) logits in float64
    reference = getattr(mlt, loss)(exact, target.double() if target.is_floating_point() else target)
    reference.backward()
    eps = torch.finfo(torch_dtype).eps
    parts = torch.arange(rows).chunk(4)
    counter = mlt.count_elements if loss == "binary_cross_entropy" else mlt.count_targets
    normalizer = functools.reduce(operator.add, [counter(target[part]) for part in parts])
    assert normalizer.dtype == torch.int64
    total, grads = 0.0, []
    for part in parts:
        leaf = logits[part].clone().requires_grad_(True)
        value = getattr(mlt, loss)(leaf, target[part], normalizer=normalizer)
        value.backward()
        assert value.dtype == torch_dtype and torch.isfinite(value)
        total += value.item()
        grads.append(leaf.grad.double())
    assert abs(total - reference.item()) <= 4 * eps * reference.item(), (total, reference.item())
    grad = torch.cat(grads)
    assert torch.isfinite(grad).all()
    scale = exact.grad.abs().max()
    assert (grad - exact.grad).abs().max() <= 2 * eps * scale
    # a normaliser far past 16 bits (an int64 count, or a float32 one)
    for big in (torch.tensor(10**6), torch.tensor(1e6, dtype=torch.float32)):
        value = getattr(mlt, loss)(logits, target, normalizer=big)
        expected = reference.item() * normalizer.item() / 1e6
        assert abs(value.item() - expected) <= 2 * eps * expected


@needs_torch
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_count_targets_with_a_16_bit_weight_is_exact(dtype: str) -> None:
    weight = torch.tensor([1.0, 1.0], dtype=getattr(torch, dtype))
    count = mlt.count_targets(torch.zeros(70001, dtype=torch.long), weight=weight)
    assert count.item() == 70001.0


# ---------------------------------------------------------------------------------------
# A normaliser that requires grad: d loss / d n = -loss / n


def _parts_of(case: Case, bounds=SPLITS["2x2-one-part-all-ignored"]):
    logits, target = make_batch(case)
    return logits, target, split(case, logits, target, bounds)


@needs_torch
@pytest.mark.parametrize("loss", LOSSES)
def test_torch_normalizer_gradient(loss: str) -> None:
    backend = BACKENDS["torch"]
    case = next(case for case in CASES if case.loss == loss and case.options)
    logits, target, parts = _parts_of(case)
    parts = [backend.convert(part, torch.float64) for part in parts]
    n = functools.reduce(operator.add, [count(backend, case, t, o) for _, t, o in parts])
    n = n.to(torch.float64).requires_grad_(True)
    leaves = [z.clone().requires_grad_(True) for z, _, _ in parts]
    total = sum(
        getattr(mlt, loss)(leaf, t, normalizer=n, **o)
        for leaf, (_, t, o) in zip(leaves, parts, strict=True)
    )
    total.backward()
    torch.testing.assert_close(n.grad, -total.detach() / n.detach(), rtol=1e-12, atol=0)
    _, expected_grad = run_parts(
        backend, case, [backend.convert((logits, target, case.options), torch.float64)], None
    )
    grad = torch.cat([leaf.grad for leaf in leaves]).numpy()
    assert_close(grad, expected_grad, 1e-12, "grad with n requiring grad")


@needs_jax
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_jax_jit_normalizer_traced_and_differentiated(loss: str) -> None:
    """Under ``jax.jit``, the count and the normaliser traced: the parts add up to the whole
    batch's mean, d/dn = -loss/n; a normaliser's shape is checked at trace time, its value
    (unknown there) is not."""
    case = next(case for case in CASES if case.loss == loss and "weight" in case.options)
    logits, target, _ = _parts_of(case)
    bounds = JAX_SPLITS[case.target][
        "2x2-one-part-all-ignored" if case.target == "index" else "2x1"
    ]
    z, t = jnp.asarray(logits), jnp.asarray(target)
    options = {key: jnp.asarray(value) for key, value in case.options.items()}

    def parts_total(z, t, options, n):
        total = 0.0
        for start, stop in itertools.pairwise(bounds):
            sliced = {k: v[start:stop] if k in case.sliced else v for k, v in options.items()}
            total += getattr(mlj, loss)(z[start:stop], t[start:stop], normalizer=n, **sliced)
        return total

    @jax.jit
    def global_count(t, options):
        if case.target != "index":
            return mlj.count_elements(t)
        parts = [t[start:stop] for start, stop in itertools.pairwise(bounds)]
        ignore_index = case.options.get("ignore_index", -100)
        counts = [
            mlj.count_targets(p, ignore_index=ignore_index, weight=options["weight"]) for p in parts
        ]
        return sum(counts)

    n = global_count(t, options)
    assert abs(float(n) - naive_count(case, target)) <= 1e-12 * float(n)
    value, (grad, dn) = jax.jit(jax.value_and_grad(parts_total, argnums=(0, 3)))(
        z, t, options, n.astype(jnp.float64)
    )
    expected, expected_grad = getattr(mln, f"{loss}_value_and_grad")(logits, target, **case.options)
    assert abs(float(value) - float(expected)) <= 1e-12 * float(expected)
    assert_close(np.asarray(grad), expected_grad, 1e-12, "jit grad", ("jax", "float64"))
    assert abs(float(dn) + float(value) / float(n)) <= 1e-12 * abs(float(dn))
    with pytest.raises(ValueError, match="normalizer must be a 0-d array"):
        jax.jit(parts_total)(z, t, options, jnp.ones((1, 1)))
    # a traced value is not checked (docs/semantics.md): a negative one divides as given
    negative = jax.jit(parts_total)(z, t, options, -n.astype(jnp.float64))
    assert abs(float(negative) + float(value)) <= 1e-12 * float(value)


@pytest.mark.parametrize("name", BACKEND_NAMES[1:])
def test_normalizer_gradient_at_zero_is_zero(name: str) -> None:
    logits, target = np.array([[0.5, -1.0, 2.0]]), np.array([2])
    if name == "torch":
        n = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
        mlt.cross_entropy(torch.tensor(logits), torch.tensor(target), normalizer=n).backward()
        dn = n.grad.item()
    else:
        dn = jax.grad(
            lambda n: mlj.cross_entropy(jnp.asarray(logits), jnp.asarray(target), normalizer=n)
        )(0.0)
    assert float(dn) == 0.0


# ---------------------------------------------------------------------------------------
# torch.compile


@needs_torch
def test_torch_compile_fullgraph_with_a_normalizer_tensor() -> None:
    """One compiled graph (AOT-eager) serves both equal-shape parts: the normaliser is a
    tensor input, its value not baked in; it may require grad."""
    case = CASES[3]  # weighted cross-entropy, ignore_index=-1, label smoothing
    logits, target, parts = _parts_of(case, (0, 6, 12))
    backend = BACKENDS["torch"]
    parts = [backend.convert(part, torch.float64) for part in parts]
    options = parts[0][2]

    @functools.partial(torch.compile, fullgraph=True, backend="aot_eager")
    def part_loss(z, t, n):
        return mlt.cross_entropy(z, t, normalizer=n, **options)

    counts = [mlt.count_targets(t, ignore_index=-1, weight=options["weight"]) for _, t, _ in parts]
    n = (counts[0] + counts[1]).requires_grad_(True)
    leaves = [z.clone().requires_grad_(True) for z, _, _ in parts]
    total = part_loss(leaves[0], parts[0][1], n) + part_loss(leaves[1], parts[1][1], n)
    total.backward()
    expected, expected_grad = run_parts(
        backend, case, [backend.convert((logits, target, case.options), torch.float64)], None
    )
    assert abs(total.item() - expected) <= 1e-12 * expected
    assert_close(
        torch.cat([leaf.grad for leaf in leaves]).numpy(), expected_grad, 1e-12, "compiled grad"
    )
    torch.testing.assert_close(n.grad, -total.detach() / n.detach(), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------
# The JAX recipes of docs/distributed.md on 4 devices

FOUR_DEVICES = """
import sys
from pathlib import Path

sys.path.insert(0, "tests")
from test_docs import imported_modules, python_blocks

import jax

assert jax.device_count() == 4, jax.devices()
blocks = python_blocks(Path("docs/distributed.md"))
first = next(i for i, (_, code) in enumerate(blocks) if "jax" in imported_modules(code))
namespace = {"__name__": "docs_example_distributed"}
for line, code in blocks[first:]:
    exec(compile("\\n" * (line - 1) + code, "docs/distributed.md", "exec"), namespace)
assert len(namespace["xs"].sharding.device_set) == 4
"""


@needs_jax
def test_docs_jax_recipes_on_four_devices() -> None:
    """tests/test_docs.py runs the page on one device; here its JAX blocks run with the
    batch sharded over 4 (simulated CPU) devices, in a fresh interpreter (XLA_FLAGS must be
    set before JAX starts), without x64."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    env["PYTHONPATH"] = str(root)
    result = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_torch
def test_a_numpy_scalar_is_a_number_in_every_backend() -> None:
    """np.int64 / np.float64 (what `int(...)` of a NumPy count forgets) are numbers, taken by
    every backend, not arrays of another backend."""
    logits, target = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0, 1])
    expected = float(multiloss.numpy.cross_entropy(logits, target, reduction="sum")) / 4
    for scalar in (np.int64(4), np.float64(4.0)):
        got = multiloss.torch.cross_entropy(
            torch.tensor(logits), torch.tensor(target), normalizer=scalar
        )
        assert abs(float(got) - expected) < 1e-15
