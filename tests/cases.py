"""Deterministic test problems covering every option of the four losses.

Each case is ``(name, logits, target, options)`` with NumPy data; options hold Python
lists and numbers or NumPy arrays (which the tests move into the namespace under test).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

REDUCTIONS = ("none", "mean", "sum")


def _hard_target(rng, logits_shape, axis, num_classes, *, ignore=None, count=1):
    """Class indices of the logits' shape without `axis`; `count` of them set to `ignore`."""
    shape = tuple(np.delete(np.array(logits_shape), axis))
    target = rng.integers(0, num_classes, size=shape)
    if ignore is not None and target.size:
        flat = target.reshape(-1)
        flat[rng.choice(flat.size, size=min(count, flat.size), replace=False)] = ignore
    return target


def _soft_target(rng, logits_shape, axis):
    moved = np.moveaxis(np.empty(logits_shape), axis, -1).shape
    probabilities = rng.dirichlet(np.ones(moved[-1]), size=moved[:-1])
    return np.moveaxis(probabilities, -1, axis)


def _softmax(rng, name, shape, axis, *, target="hard", ignore=None, ident="", **options) -> Any:
    logits = rng.normal(scale=2.5, size=shape)
    num_classes = shape[axis]
    if target == "hard":
        tgt = _hard_target(rng, shape, axis, num_classes, ignore=ignore, count=2)
    else:
        tgt = _soft_target(rng, shape, axis)
    options = {"axis": axis, **options}
    if ignore is not None and ignore != -100:
        options["ignore_index"] = ignore
    return pytest.param((name, logits, tgt, options), id=f"{name}-{ident}")


def _sigmoid(rng, name, shape, *, target="hard", ident="", **options) -> Any:
    logits = rng.normal(scale=3.0, size=shape)
    if target == "hard":
        tgt = (rng.uniform(size=shape) < 0.4).astype(np.float64)
    elif target == "int":
        tgt = (rng.uniform(size=shape) < 0.4).astype(np.int64)
    elif target == "bool":
        tgt = rng.uniform(size=shape) < 0.4
    else:
        tgt = rng.uniform(size=shape)
    return pytest.param((name, logits, tgt, options), id=f"{name}-{ident}")


def softmax_cases() -> list[Any]:
    rng = np.random.default_rng(20240601)
    ce, fl = "cross_entropy", "focal_loss"
    w4 = [0.5, 2.0, 1.0, 0.25]
    return [
        # shapes and axes
        _softmax(rng, ce, (6, 4), -1, ident="2d", ignore=-100),
        _softmax(rng, ce, (4, 6), 0, ident="2d-axis0"),
        _softmax(rng, ce, (2, 4, 3, 2), 1, ident="kdim-axis1", ignore=-100),
        _softmax(rng, ce, (2, 3, 2, 4), -1, ident="kdim-axis-1"),
        _softmax(rng, ce, (4,), -1, ident="unbatched"),
        _softmax(rng, ce, (6, 1), -1, ident="one-class"),
        # options
        _softmax(rng, ce, (6, 4), -1, ident="weight", weight=w4, ignore=-100),
        _softmax(rng, ce, (6, 4), -1, ident="weight-array", weight=np.array(w4)),
        _softmax(rng, ce, (6, 4), -1, ident="ignore-in-range", ignore=1, weight=w4),
        _softmax(rng, ce, (6, 4), -1, ident="smoothing", label_smoothing=0.1, ignore=-100),
        _softmax(
            rng, ce, (2, 4, 3, 2), 1, ident="kdim-weight-smoothing", weight=w4,
            label_smoothing=0.3, ignore=2,
        ),
        _softmax(rng, ce, (6, 4), -1, ident="probabilities", target="soft"),
        _softmax(
            rng, ce, (2, 4, 3, 2), 1, ident="probabilities-weight-smoothing", target="soft",
            weight=w4, label_smoothing=0.2,
        ),
        _softmax(rng, ce, (6, 4), -1, ident="full-smoothing", label_smoothing=1.0),
        # focal
        _softmax(rng, fl, (6, 4), -1, ident="gamma0", gamma=0.0, ignore=-100),
        _softmax(rng, fl, (6, 4), -1, ident="gamma0.25", gamma=0.25),
        _softmax(rng, fl, (6, 4), -1, ident="gamma0.5", gamma=0.5, ignore=-100),
        _softmax(rng, fl, (6, 4), -1, ident="gamma2", gamma=2.0),
        _softmax(rng, fl, (6, 4), -1, ident="gamma5", gamma=5.0),
        _softmax(rng, fl, (2, 4, 3, 2), 1, ident="kdim-axis1", gamma=2.0, ignore=-100),
        _softmax(rng, fl, (2, 3, 2, 4), -1, ident="kdim-axis-1", gamma=1.0),
        _softmax(rng, fl, (6, 4), -1, ident="alpha-scalar", alpha=0.25, ignore=-100),
        _softmax(rng, fl, (6, 4), -1, ident="alpha-list", alpha=w4, gamma=1.5),
        _softmax(rng, fl, (6, 4), -1, ident="alpha-array", alpha=np.array(w4), gamma=3.0),
        _softmax(rng, fl, (6, 4), -1, ident="ignore-in-range", ignore=0, alpha=0.75),
        _softmax(rng, fl, (6, 4), -1, ident="smoothing", label_smoothing=0.1, gamma=2.0),
        _softmax(
            rng, fl, (6, 4), -1, ident="smoothing-alpha-gamma0.5", label_smoothing=0.2,
            alpha=w4, gamma=0.5, ignore=-100,
        ),
        _softmax(rng, fl, (6, 4), -1, ident="probabilities", target="soft", gamma=2.0),
        _softmax(
            rng, fl, (2, 4, 3, 2), 1, ident="probabilities-alpha-smoothing", target="soft",
            alpha=0.3, label_smoothing=0.1, gamma=0.75,
        ),
        _softmax(rng, fl, (4,), -1, ident="unbatched", gamma=2.0),
        _softmax(rng, fl, (6, 1), -1, ident="one-class", gamma=0.5),
    ]  # fmt: skip


def sigmoid_cases() -> list[Any]:
    rng = np.random.default_rng(20240602)
    bce, sfl = "binary_cross_entropy", "sigmoid_focal_loss"
    return [
        _sigmoid(rng, bce, (6, 4), ident="hard"),
        _sigmoid(rng, bce, (6, 4), ident="soft", target="soft"),
        _sigmoid(rng, bce, (6, 4), ident="int-target", target="int"),
        _sigmoid(rng, bce, (6, 4), ident="bool-target", target="bool"),
        _sigmoid(rng, bce, (6, 4), ident="weight-elementwise", weight=rng.uniform(size=(6, 4))),
        _sigmoid(rng, bce, (6, 4), ident="weight-row", weight=rng.uniform(size=(6, 1))),
        _sigmoid(rng, bce, (6, 4), ident="weight-list", weight=[0.5, 1.0, 2.0, 0.0]),
        _sigmoid(rng, bce, (6, 4), ident="pos-weight", pos_weight=[1.0, 2.0, 0.5, 3.0]),
        _sigmoid(
            rng, bce, (2, 3, 4), ident="3d-pos-weight-weight", target="soft",
            pos_weight=np.array([1.0, 2.0, 0.5, 3.0]), weight=rng.uniform(size=(3, 1)),
        ),
        _sigmoid(rng, bce, (4,), ident="1d"),
        _sigmoid(rng, bce, (), ident="0d"),
        _sigmoid(rng, sfl, (6, 4), ident="default"),
        _sigmoid(rng, sfl, (6, 4), ident="alpha-none", alpha=None),
        _sigmoid(rng, sfl, (6, 4), ident="gamma0", gamma=0.0, alpha=0.5),
        _sigmoid(rng, sfl, (6, 4), ident="gamma0.5", gamma=0.5),
        _sigmoid(rng, sfl, (6, 4), ident="gamma5-alpha0.75", gamma=5.0, alpha=0.75),
        _sigmoid(rng, sfl, (6, 4), ident="soft", target="soft", gamma=2.0, alpha=0.3),
        _sigmoid(rng, sfl, (2, 3, 4), ident="3d-alpha0", alpha=0.0, gamma=1.0),
        _sigmoid(rng, sfl, (6, 4), ident="int-target", target="int"),
    ]  # fmt: skip


ALL_CASES = softmax_cases() + sigmoid_cases()
