"""``multiloss demo``: cross-entropy, class-weighted cross-entropy and focal loss on an
imbalanced problem, in every installed backend, plus a cross-backend agreement check and
the focal-loss figure of Lin et al. (2017).

The agreement check covers every loss, PolyLoss (with the z-loss and logit soft-capping)
and the Asymmetric Loss included: the same batches in every backend against the NumPy
float64 reference.

The data set is made on the fly: three classes at 100:10:1 in two dimensions, Gaussian
blobs that overlap (hard examples near the boundaries, easy ones far from them). A small
MLP is trained full-batch with Adam in each backend (PyTorch with the ``multiloss.torch``
modules; JAX/Flax with optax and the ``multiloss.jax`` functions) and evaluated on a
held-out set drawn from the same distribution. The table reports whatever the numbers
show: per-class recall and precision, balanced accuracy, and the final training loss.

The demo needs ``matplotlib`` for the figure and uses ``tqdm`` for progress bars when it
is installed (from a checkout, ``pip install ".[demo]"``).
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import inverse_frequency_weights
from . import numpy as reference
from ._core import LOSSES

CLASS_COUNTS = (1000, 100, 10)
"""Training examples per class: 100:10:1."""
TEST_COUNTS = (2000, 200, 200)
"""Held-out examples per class (more of the rare classes, so their recall is measurable)."""
CENTERS = np.array([[0.0, 0.0], [2.2, 0.8], [0.6, 2.4]])
HIDDEN = 32
LEARNING_RATE = 0.02
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
BACKENDS = ("torch", "jax")
WARMUP_STEPS = 2
"""Untimed steps per loss that warm a backend up before its timed runs (see run_training)."""


@dataclass(frozen=True)
class Dataset:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(CLASS_COUNTS)


def make_dataset(seed: int) -> Dataset:
    """Three overlapping 2-D Gaussian blobs at 100:10:1 (train) and 10:1:1 (test)."""
    rng = np.random.default_rng(seed)

    def draw(counts: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        parts = [rng.normal(loc=CENTERS[c], scale=1.0, size=(n, 2)) for c, n in enumerate(counts)]
        labels = [np.full(n, c, dtype=np.int64) for c, n in enumerate(counts)]
        order = rng.permutation(sum(counts))
        return np.concatenate(parts)[order].astype(np.float32), np.concatenate(labels)[order]

    train_x, train_y = draw(CLASS_COUNTS)
    test_x, test_y = draw(TEST_COUNTS)
    return Dataset(train_x, train_y, test_x, test_y)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """n / (C · n_c): every class carries the same total weight (scikit-learn's 'balanced',
    :func:`multiloss.inverse_frequency_weights` of the label counts)."""
    counts = np.bincount(labels, minlength=num_classes)
    return [float(w) for w in inverse_frequency_weights(counts)]


def loss_settings(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The three losses compared, by display name: (loss function name, options)."""
    weights = balanced_class_weights(dataset.train_y, dataset.num_classes)
    return {
        "cross-entropy": {"loss": "cross_entropy", "options": {}},
        "weighted CE": {"loss": "cross_entropy", "options": {"weight": weights}},
        "focal γ=2": {"loss": "focal_loss", "options": {"gamma": 2.0}},
    }


@dataclass(frozen=True)
class RunResult:
    backend: str
    loss_name: str
    final_loss: float
    recall: np.ndarray
    precision: np.ndarray
    seconds: float

    @property
    def balanced_accuracy(self) -> float:
        return float(np.mean(self.recall))


def per_class_scores(
    predicted: np.ndarray, truth: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class recall and precision (precision 0 for a class never predicted)."""
    recall, precision = np.zeros(num_classes), np.zeros(num_classes)
    for c in range(num_classes):
        true_positive = np.sum((predicted == c) & (truth == c))
        recall[c] = true_positive / max(np.sum(truth == c), 1)
        precision[c] = true_positive / max(np.sum(predicted == c), 1)
    return recall, precision


def _progress(steps: int, label: str | None) -> Iterator[int]:
    """range(steps), with a tqdm progress bar labelled ``label`` (None: no bar) when tqdm is
    installed."""
    if label is not None and importlib.util.find_spec("tqdm") is not None:
        from tqdm import tqdm

        yield from tqdm(range(steps), desc=label, leave=False, ncols=80)
    else:
        yield from range(steps)


def train_torch(
    dataset: Dataset,
    loss: str,
    options: dict[str, Any],
    steps: int,
    seed: int,
    label: str | None,
) -> tuple[float, np.ndarray]:
    """Train the MLP with a ``multiloss.torch`` module; (final loss, test predictions).

    ``label`` labels the progress bar; None shows none.
    """
    import torch

    from . import torch as multiloss_torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, dataset.num_classes),
    )
    criterion: torch.nn.Module
    if loss == "cross_entropy":
        criterion = multiloss_torch.CrossEntropyLoss(**options)
    else:
        criterion = multiloss_torch.FocalLoss(**options)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    x, y = torch.from_numpy(dataset.train_x), torch.from_numpy(dataset.train_y)
    value = torch.zeros(())
    for _ in _progress(steps, label):
        optimizer.zero_grad()
        value = criterion(model(x), y)
        value.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(torch.from_numpy(dataset.test_x)).argmax(dim=1).numpy()
    return float(value.detach()), predicted


@functools.cache
def _jax_parts() -> tuple[type[Any], Any]:
    """The Flax MLP class and the optax optimizer, made once per process.

    ``nnx.jit`` caches a compiled step against the structure of its arguments, the class and
    the optimizer included; sharing them lets a later run reuse the compilation.
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, num_classes: int, rngs: nnx.Rngs) -> None:
            self.hidden1 = nnx.Linear(2, HIDDEN, rngs=rngs)
            self.hidden2 = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
            self.out = nnx.Linear(HIDDEN, num_classes, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.out(jnp.tanh(self.hidden2(jnp.tanh(self.hidden1(x)))))

    return MLP, optax.adam(LEARNING_RATE)


_JAX_STEPS: dict[str, Callable[..., Any]] = {}


def _jax_train_step(loss: str, options: dict[str, Any]) -> Callable[..., Any]:
    """The jitted train step of a loss and its options, built once and kept, so that the
    timed run of a setting reuses what its warm-up compiled."""
    key = f"{loss} {sorted(options.items())}"
    if key not in _JAX_STEPS:
        import jax
        from flax import nnx

        from . import jax as multiloss_jax

        loss_function, bound = getattr(multiloss_jax, loss), dict(options)

        @nnx.jit
        def step(
            model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array
        ) -> jax.Array:
            def objective(model: nnx.Module) -> jax.Array:
                return loss_function(model(x), y, **bound)

            value, grads = nnx.value_and_grad(objective)(model)
            optimizer.update(model, grads)
            return value

        _JAX_STEPS[key] = step
    return _JAX_STEPS[key]


def train_jax(
    dataset: Dataset,
    loss: str,
    options: dict[str, Any],
    steps: int,
    seed: int,
    label: str | None,
) -> tuple[float, np.ndarray]:
    """Train the MLP with Flax (nnx), optax and a ``multiloss.jax`` loss.

    ``label`` labels the progress bar; None shows none.
    """
    import jax.numpy as jnp
    from flax import nnx

    mlp, adam = _jax_parts()
    model = mlp(dataset.num_classes, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, adam, wrt=nnx.Param)
    step = _jax_train_step(loss, options)
    x, y = jnp.asarray(dataset.train_x), jnp.asarray(dataset.train_y)
    value = jnp.zeros(())
    for _ in _progress(steps, label):
        value = step(model, optimizer, x, y)
    predicted = np.asarray(jnp.argmax(model(jnp.asarray(dataset.test_x)), axis=1))
    return float(value), predicted


TRAINERS: dict[str, Callable[..., tuple[float, np.ndarray]]] = {
    "torch": train_torch,
    "jax": train_jax,
}


def installed_backends() -> list[str]:
    """The training backends whose frameworks are importable (jax also needs flax, optax)."""
    needs = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}
    return [
        name
        for name in BACKENDS
        if all(importlib.util.find_spec(module) is not None for module in needs[name])
    ]


def run_training(
    dataset: Dataset, backends: list[str], steps: int, seed: int, progress: bool
) -> list[RunResult]:
    """Train every loss setting in every backend, timing each run.

    Each backend is first warmed up, untimed: every setting trains a throw-away model for
    WARMUP_STEPS steps, which pays the first-call costs (imports, lazy initialisation, JIT
    compilation) that would otherwise fall on the first timed run, so the times compare.
    """
    settings = loss_settings(dataset)
    results = []
    for backend in backends:
        trainer = TRAINERS[backend]
        for setting in settings.values():
            trainer(dataset, setting["loss"], setting["options"], WARMUP_STEPS, seed, None)
        for display_name, setting in settings.items():
            label = f"{backend} · {display_name}" if progress else None
            start = time.perf_counter()
            final_loss, predicted = trainer(
                dataset, setting["loss"], setting["options"], steps, seed, label
            )
            recall, precision = per_class_scores(predicted, dataset.test_y, dataset.num_classes)
            seconds = time.perf_counter() - start
            results.append(RunResult(backend, display_name, final_loss, recall, precision, seconds))
    return results


def format_results(results: list[RunResult], num_classes: int) -> str:
    """A markdown table: per-class recall and precision, balanced accuracy, final loss."""
    header = (
        ["backend", "loss"]
        + [f"recall {c}" for c in range(num_classes)]
        + [f"precision {c}" for c in range(num_classes)]
        + ["balanced acc.", "final loss", "time"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = (
            [r.backend, r.loss_name]
            + [f"{v:.3f}" for v in r.recall]
            + [f"{v:.3f}" for v in r.precision]
            + [f"{r.balanced_accuracy:.3f}", f"{r.final_loss:.4f}", f"{r.seconds:.1f} s"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Agreement:
    """Largest differences from the NumPy float64 reference, per backend and loss."""

    backend: str
    loss: str
    dtype: str
    loss_error: float
    grad_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.loss_error <= self.tolerance and self.grad_error <= self.tolerance


AGREEMENT_CASES: dict[str, dict[str, Any]] = {
    "cross_entropy": {"weight": [0.5, 1.0, 2.0, 1.0, 0.25], "label_smoothing": 0.1},
    "focal_loss": {"gamma": 0.5, "alpha": 0.25, "ignore_index": 4},
    # PolyLoss on top of the focal form (γ < 1), with PaLM's z-loss and Gemma 2's logit
    # soft-capping: the logits (scale 4) reach the cap of 10.
    "poly_loss": {"epsilon": 1.0, "gamma": 0.5, "z_loss": 1e-3, "softcap": 10.0},
    "binary_cross_entropy": {"pos_weight": [1.0, 2.0, 3.0, 0.5, 1.0]},
    "sigmoid_focal_loss": {"alpha": 0.25, "gamma": 2.0},
    # The Asymmetric Loss of multi-label training: γ+ < 1 and the probability margin.
    "asymmetric_loss": {"gamma_pos": 0.5, "gamma_neg": 4.0, "clip": 0.05},
}
"""Every loss with options off their defaults, for the agreement check (the demo's and
``multiloss check``'s): PolyLoss also carries the z-loss and soft-capping, so that the
newer losses are compared across the backends with the older ones."""


def _agreement_batch(loss: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 arrays holding float32 values, so that every backend sees the same numbers."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(32, 5)) * 4.0).astype(np.float32).astype(np.float64)
    if not LOSSES[loss].has_class_axis:  # a sigmoid loss: 0/1 targets of the logits' shape
        return logits, rng.uniform(size=(32, 5)).astype(np.float32).astype(np.float64)
    return logits, rng.integers(0, 5, size=32)


def _torch_value_and_grad(
    loss: str, logits: np.ndarray, target: np.ndarray, options: dict[str, Any]
) -> tuple[float, np.ndarray]:
    import torch

    from . import torch as multiloss_torch

    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    extra = {"axis": -1} if LOSSES[loss].has_class_axis else {}
    value = getattr(multiloss_torch, loss)(z, torch.from_numpy(target), **extra, **options)
    (grad,) = torch.autograd.grad(value, z)
    return float(value.detach()), grad.numpy()


def _jax_value_and_grad(
    loss: str, logits: np.ndarray, target: np.ndarray, options: dict[str, Any]
) -> tuple[float, np.ndarray]:
    import jax
    import jax.numpy as jnp

    from . import jax as multiloss_jax

    function = getattr(multiloss_jax, loss)
    z = jnp.asarray(logits, dtype=jnp.float32)
    y = jnp.asarray(target if target.dtype.kind == "i" else target.astype(np.float32))
    value, grad = jax.jit(jax.value_and_grad(lambda z: function(z, y, **options)))(z)
    return float(value), np.asarray(grad, dtype=np.float64)


AGREEMENT_RUNNERS = {"torch": _torch_value_and_grad, "jax": _jax_value_and_grad}
AGREEMENT_DTYPES = {"torch": "float64", "jax": "float32"}
TOLERANCES = {"float64": 1e-12, "float32": 1e-5}


def cross_backend_agreement(backends: list[str], seed: int = 0) -> list[Agreement]:
    """Evaluate the same batches in every backend and compare with the NumPy reference.

    torch runs in float64 (tolerance 1e-12 relative to 1 + |reference|); JAX in float32,
    its default (1e-5, about 80 float32 eps): the library never switches on JAX's float64.
    """
    results = []
    for loss, options in AGREEMENT_CASES.items():
        logits, target = _agreement_batch(loss, seed)
        ref_value, ref_grad = getattr(reference, f"{loss}_value_and_grad")(
            logits, target, **options
        )
        scale_value = 1.0 + abs(float(ref_value))
        scale_grad = 1.0 + np.abs(ref_grad)
        for backend in backends:
            value, grad = AGREEMENT_RUNNERS[backend](loss, logits, target, options)
            dtype = AGREEMENT_DTYPES[backend]
            results.append(
                Agreement(
                    backend,
                    loss,
                    dtype,
                    abs(value - float(ref_value)) / scale_value,
                    float(np.max(np.abs(grad - ref_grad) / scale_grad)),
                    TOLERANCES[dtype],
                )
            )
    return results


def format_agreement(agreements: list[Agreement]) -> str:
    lines = [
        "| backend | dtype | loss | loss error | gradient error | tolerance | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in agreements:
        lines.append(
            f"| {a.backend} | {a.dtype} | {a.loss} | {a.loss_error:.2e} | {a.grad_error:.2e} "
            f"| {a.tolerance:.0e} | {'yes' if a.ok else 'NO'} |"
        )
    return "\n".join(lines)


def focal_curves(num_points: int = 400) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """Loss against p_t for each γ in GAMMAS, computed with multiloss's focal loss."""
    p_t = np.linspace(0.0, 1.0, num_points + 1)[1:]
    with np.errstate(divide="ignore"):  # p_t = 1: a logit of log 0 = -inf, which is fine
        logits = np.log(np.stack([p_t, 1.0 - p_t], axis=-1))
    target = np.zeros(len(p_t), dtype=np.int64)
    curves = {
        gamma: reference.focal_loss(logits, target, gamma=gamma, reduction="none")
        for gamma in GAMMAS
    }
    return p_t, curves


def write_figure(path: Path) -> Path:
    """Lin et al. (2017) Fig. 1, and the modulating factor (1 - p_t)^γ = FL / CE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_t, curves = focal_curves()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    cross_entropy = curves[0.0]
    for gamma, loss in curves.items():
        left.plot(p_t, loss, label=f"γ = {gamma:g}")
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(cross_entropy > 0, loss / cross_entropy, float(gamma == 0))
        right.plot(p_t, factor, label=f"γ = {gamma:g}")
    left.set(
        xlabel="probability of the true class p_t",
        ylabel="loss",
        ylim=(0, 5),
        title="Focal loss −(1 − p_t)^γ log p_t",
    )
    right.set(
        xlabel="probability of the true class p_t",
        ylabel="(1 − p_t)^γ",
        title="Modulating factor (focal / cross-entropy)",
    )
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
