"""multiloss demo: which loss for an imbalanced problem, on the same data in PyTorch and
JAX/Flax, with a check that NumPy, PyTorch and JAX agree.

Four losses are compared, each a remedy a practitioner reaches for: plain cross-entropy
(the baseline), cross-entropy with the class-balanced weights of Cui et al. (2019), focal
loss (γ = 2) with those weights as its α, and Poly-1 (Leng et al. 2022, ε = 1) with the same
α. The data set is made on the fly: three classes at 100:10:1 in two dimensions, Gaussian
blobs that overlap. A small MLP is trained full-batch with Adam in each backend (PyTorch
with the `multiloss.torch` modules, at one thread, the stable setting for a model this
small; JAX/Flax with optax and the `multiloss.jax` functions) and evaluated on a held-out
set drawn from the same distribution. Each run prints its per-class recall and precision,
its balanced accuracy, and a takeaway computed from those numbers against plain
cross-entropy in the same backend.

The agreement check covers every loss, PolyLoss (with the z-loss and logit soft-capping)
and the Asymmetric Loss included: the same batches in every backend against the NumPy
float64 reference.

The figure (matplotlib) shows the run: per-class recall per loss, the held-out balanced
accuracy during training, and the focal loss against the probability of the true class.
Progress bars use tqdm when it is installed (from a checkout, `pip install ".[demo]"`).
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

from . import class_balanced_weights, inverse_frequency_weights
from . import numpy as reference
from ._agreement import (  # noqa: F401 (re-exported: `multiloss check` and the demo run it)
    AGREEMENT_CASES,
    AGREEMENT_DTYPES,
    AGREEMENT_RUNNERS,
    TOLERANCES,
    Agreement,
    cross_backend_agreement,
    format_agreement,
)

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
TORCH_THREADS = 1
"""PyTorch's intra-op threads while training: a 2-32-32-3 MLP on 1,110 rows takes a few
milliseconds a step at one thread, and 10-20 times that, swinging with the machine's load,
when OpenMP threads contend for it."""
CB_BETA = 0.999
"""β of the class-balanced weights (Cui et al. 2019: effective number (1 - β^n) / (1 - β))."""
EVAL_EVERY = 10
"""Steps between two points of the training curves (held-out balanced accuracy)."""


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
    [`inverse_frequency_weights`][multiloss.inverse_frequency_weights] of the label counts)."""
    counts = np.bincount(labels, minlength=num_classes)
    return [float(w) for w in inverse_frequency_weights(counts)]


def cb_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """The class-balanced weights of Cui et al. (2019) at β = CB_BETA, summing to C
    ([`class_balanced_weights`][multiloss.class_balanced_weights] of the label counts)."""
    counts = np.bincount(labels, minlength=num_classes)
    return [float(w) for w in class_balanced_weights(counts, beta=CB_BETA)]


BASELINE = "cross-entropy"


def loss_settings(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """The four losses compared, by display name: loss function name, options, and the
    mathtext label of the figure."""
    weights = cb_weights(dataset.train_y, dataset.num_classes)
    return {
        BASELINE: {"loss": "cross_entropy", "options": {}, "label": r"CE"},
        "class-balanced CE": {
            "loss": "cross_entropy",
            "options": {"weight": weights},
            "label": r"CE, $w_c$ class-balanced",
        },
        "focal γ=2, CB α": {
            "loss": "focal_loss",
            "options": {"gamma": 2.0, "alpha": weights},
            "label": r"focal $\gamma=2$, $\alpha_c = w_c$",
        },
        "Poly-1 ε=1, CB α": {
            "loss": "poly_loss",
            "options": {"epsilon": 1.0, "alpha": weights},
            "label": r"Poly-1 $\varepsilon=1$, $\alpha_c = w_c$",
        },
    }


@dataclass(frozen=True)
class Trained:
    """What a trainer returns: the held-out predictions, the training curve (held-out
    balanced accuracy at `curve_steps`) and the seconds spent in training steps."""

    predicted: np.ndarray
    curve_steps: np.ndarray
    curve: np.ndarray
    seconds: float


@dataclass(frozen=True)
class RunResult:
    backend: str
    loss_name: str
    recall: np.ndarray
    precision: np.ndarray
    seconds: float
    curve_steps: np.ndarray
    curve: np.ndarray

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


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """The mean of the per-class recalls."""
    return float(np.mean(per_class_scores(predicted, truth, num_classes)[0]))


def curve_points(steps: int) -> list[int]:
    """The steps after which the training curve is sampled: every EVAL_EVERY, and the last."""
    points = list(range(EVAL_EVERY, steps + 1, EVAL_EVERY))
    return points if points and points[-1] == steps else [*points, steps]


def _progress(steps: int, label: str | None) -> Iterator[int]:
    """range(steps), with a tqdm progress bar labelled `label` (None: no bar) when tqdm is
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
) -> Trained:
    """Train the MLP with a `multiloss.torch` module at TORCH_THREADS threads.

    `label` labels the progress bar; None shows none.
    """
    import torch

    from . import torch as multiloss_torch

    modules = {
        "cross_entropy": multiloss_torch.CrossEntropyLoss,
        "focal_loss": multiloss_torch.FocalLoss,
        "poly_loss": multiloss_torch.PolyLoss,
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(2, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, dataset.num_classes),
        )
        criterion = modules[loss](**options)
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        x, y = torch.from_numpy(dataset.train_x), torch.from_numpy(dataset.train_y)
        test_x = torch.from_numpy(dataset.test_x)

        def predict() -> np.ndarray:
            with torch.no_grad():
                return model(test_x).argmax(dim=1).numpy()

        points, curve, seconds = set(curve_points(steps)), [], 0.0
        for step in _progress(steps, label):
            start = time.perf_counter()
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
            seconds += time.perf_counter() - start
            if step + 1 in points:
                curve.append(balanced_accuracy(predict(), dataset.test_y, dataset.num_classes))
        return Trained(predict(), np.array(sorted(points)), np.array(curve), seconds)
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _jax_parts() -> tuple[type[Any], Any, Callable[..., Any]]:
    """The Flax MLP class, the optax optimizer and the jitted prediction, made once per
    process.

    `nnx.jit` caches a compiled step against the structure of its arguments, the class and
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

    @nnx.jit
    def predict(model: nnx.Module, x: jax.Array) -> jax.Array:
        return jnp.argmax(model(x), axis=1)

    return MLP, optax.adam(LEARNING_RATE), predict


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
) -> Trained:
    """Train the MLP with Flax (nnx), optax and a `multiloss.jax` loss, jit-compiled.

    `label` labels the progress bar; None shows none.
    """
    import jax.numpy as jnp
    from flax import nnx

    mlp, adam, predict_jit = _jax_parts()
    model = mlp(dataset.num_classes, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, adam, wrt=nnx.Param)
    step_function = _jax_train_step(loss, options)
    x, y = jnp.asarray(dataset.train_x), jnp.asarray(dataset.train_y)
    test_x = jnp.asarray(dataset.test_x)

    def predict() -> np.ndarray:
        return np.asarray(predict_jit(model, test_x))

    points, curve, seconds = set(curve_points(steps)), [], 0.0
    for step in _progress(steps, label):
        start = time.perf_counter()
        step_function(model, optimizer, x, y).block_until_ready()
        seconds += time.perf_counter() - start
        if step + 1 in points:
            curve.append(balanced_accuracy(predict(), dataset.test_y, dataset.num_classes))
    return Trained(predict(), np.array(sorted(points)), np.array(curve), seconds)


TRAINERS: dict[str, Callable[..., Trained]] = {
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
    """Train every loss setting in every backend, timing each run's training steps.

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
            trained = trainer(dataset, setting["loss"], setting["options"], steps, seed, label)
            recall, precision = per_class_scores(
                trained.predicted, dataset.test_y, dataset.num_classes
            )
            results.append(
                RunResult(
                    backend,
                    display_name,
                    recall,
                    precision,
                    trained.seconds,
                    trained.curve_steps,
                    trained.curve,
                )
            )
    return results


def takeaway(result: RunResult, baseline: RunResult) -> str:
    """One line on what a run's numbers show, against plain cross-entropy in its backend:
    the rarest class's recall, the majority's, and the balanced accuracy."""
    rare, major = int(np.argmin(CLASS_COUNTS)), int(np.argmax(CLASS_COUNTS))
    rare_recall, major_recall = result.recall[rare], result.recall[major]
    if result is baseline:
        verdict = (
            "the rare class is mostly missed"
            if rare_recall < 0.5 * major_recall
            else "the rare class is found about as often as the majority"
        )
        return (
            f"baseline: balanced accuracy {result.balanced_accuracy:.3f}; recall of the "
            f"majority class {major} {major_recall:.2f}, of the rarest class {rare} "
            f"{rare_recall:.2f}: {verdict}" + _peak(result)
        )
    gain = result.balanced_accuracy - baseline.balanced_accuracy
    rare_change = rare_recall - baseline.recall[rare]
    major_change = major_recall - baseline.recall[major]
    if rare_change > 0.01 and major_change < -0.01:
        verdict = "trades majority recall for rare-class recall"
    elif rare_change > 0.01:
        verdict = "finds more of the rare class at no cost to the majority"
    elif rare_change < -0.01:
        verdict = "finds less of the rare class than plain CE"
    else:
        verdict = "does not change the rare class's recall"
    net = "a net gain" if gain > 0.005 else "a net loss" if gain < -0.005 else "no net change"
    return (
        f"balanced accuracy {result.balanced_accuracy:.3f} ({gain:+.3f} against plain CE, "
        f"{net}): {verdict} (class {rare} {baseline.recall[rare]:.2f} → {rare_recall:.2f}, "
        f"class {major} {baseline.recall[major]:.2f} → {major_recall:.2f})" + _peak(result)
    )


def _peak(result: RunResult) -> str:
    """A note when the training curve peaked well before the end (0.02 above the final
    balanced accuracy): the held-out numbers fell while training went on."""
    if len(result.curve) == 0:
        return ""
    best = int(np.argmax(result.curve))
    if result.curve[best] - result.curve[-1] < 0.02:
        return ""
    return (
        f"; it peaked at {result.curve[best]:.3f} at step {result.curve_steps[best]} and fell "
        f"after (overfitting the {min(CLASS_COUNTS)} rare examples: stop early)"
    )


def summary(results: list[RunResult]) -> str:
    """The last line: each backend's best loss by balanced accuracy, and whether the
    backends agree on it."""
    best = {}
    for backend in dict.fromkeys(r.backend for r in results):
        runs = [r for r in results if r.backend == backend]
        best[backend] = max(runs, key=lambda r: r.balanced_accuracy)
    parts = [f"{backend}: {r.loss_name} ({r.balanced_accuracy:.3f})" for backend, r in best.items()]
    text = "Best balanced accuracy, " + "; ".join(parts)
    if len(best) > 1:
        same = len({r.loss_name for r in best.values()}) == 1
        text += (
            " (the backends agree)"
            if same
            else " (the backends differ: their initialisations and float arithmetic differ, "
            "and a 10-example class is noisy)"
        )
    return text


def format_results(results: list[RunResult], num_classes: int) -> str:
    """One markdown table per backend (per-class recall and precision, balanced accuracy,
    the seconds of its training steps), each run's takeaway below it."""
    header = (
        ["loss"]
        + [f"recall {c}" for c in range(num_classes)]
        + [f"precision {c}" for c in range(num_classes)]
        + ["balanced acc.", "train time"]
    )
    blocks = []
    for backend in dict.fromkeys(r.backend for r in results):
        runs = [r for r in results if r.backend == backend]
        baseline = next((r for r in runs if r.loss_name == BASELINE), runs[0])
        threads = f", {TORCH_THREADS} thread" if backend == "torch" else ", jit-compiled"
        lines = [f"{backend}{threads}:", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        for r in runs:
            cells = (
                [r.loss_name]
                + [f"{v:.3f}" for v in r.recall]
                + [f"{v:.3f}" for v in r.precision]
                + [f"{r.balanced_accuracy:.3f}", f"{r.seconds:.1f} s"]
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {r.loss_name}: {takeaway(r, baseline)}" for r in runs]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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


def write_figure(path: Path, results: list[RunResult], labels: dict[str, str]) -> Path:
    """The run in three panels: held-out recall per class and loss (bars: the first
    backend; dots: the second), held-out balanced accuracy during training (solid: the
    first backend; dashed: the second), and the focal loss against $p_t$ for each γ of
    GAMMAS (Lin et al. 2017, Fig. 1). `labels` maps a display name to its mathtext label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(r.backend for r in results))
    names = list(dict.fromkeys(r.loss_name for r in results))
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    styles = dict(zip(backends, ("-", "--"), strict=False))
    figure, (bars, curves, focal) = plt.subplots(
        1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.25, 1.1, 1]}
    )
    num_classes, width = len(CLASS_COUNTS), 0.8 / max(len(names), 1)
    classes = np.arange(num_classes)
    for i, name in enumerate(names):
        offset = classes + (i - (len(names) - 1) / 2) * width
        for backend in backends:
            run = next((r for r in results if r.backend == backend and r.loss_name == name), None)
            if run is None:
                continue
            if backend == backends[0]:
                bars.bar(offset, run.recall, width, color=colors[name], label=labels[name])
            else:
                bars.plot(offset, run.recall, "o", color="black", markersize=4)
            curves.plot(
                run.curve_steps,
                run.curve,
                styles[backend],
                color=colors[name],
                label=labels[name] if backend == backends[0] else None,
            )
    tick_labels = [f"class {c}\n$n = {n}$" for c, n in enumerate(CLASS_COUNTS)]
    marker_note = f" (dots: {backends[1]})" if len(backends) > 1 else ""
    bars.set(
        xticks=classes,
        xticklabels=tick_labels,
        ylim=(0, 1.05),
        ylabel="held-out recall",
        title=f"Recall per class, {backends[0]}{marker_note}" if backends else "Recall",
    )
    bars.legend(fontsize=8, loc="upper right")
    curve_note = " (solid: " + ", dashed: ".join(backends) + ")" if len(backends) > 1 else ""
    curves.set(
        xlabel="training step",
        ylabel="held-out balanced accuracy",
        title=f"Training curves{curve_note}",
    )
    curves.legend(fontsize=8, loc="lower right")
    p_t, focal_values = focal_curves()
    for gamma, loss in focal_values.items():
        focal.plot(p_t, loss, label=rf"$\gamma = {gamma:g}$")
    focal.set(
        xlabel=r"probability of the true class $p_t$",
        ylabel="loss",
        ylim=(0, 5),
        title=r"Focal loss $-(1 - p_t)^{\gamma}\,\log p_t$",
    )
    focal.legend(fontsize=8)
    for axes in (bars, curves, focal):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
