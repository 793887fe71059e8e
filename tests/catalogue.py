"""The bad-input catalogue (docs/semantics.md, "Bad input"), written once: calls that must
fail, with the exception the NumPy backend raises, which every backend raises too, with
the same message.

Each case holds NumPy data and Python options; a test moves the arrays into its backend.
Softmax cases give no ``axis`` unless that is what is wrong: the torch test passes
``axis=1`` (PyTorch's convention), the others keep the default -1. Both are the class axis
of 2-d logits, and the 3-d (spatial) cases are wrong under either.

Who iterates it:

* ``tests/test_core_bad_input.py``: the core, in every namespace of the ``xp`` fixture;
* ``tests/test_torch_values.py``: ``multiloss.torch`` against ``multiloss.numpy``;
* ``tests/test_jax_errors.py``: ``multiloss.jax`` against ``multiloss.numpy``, eager and
  under ``jit`` (errors known while tracing) or on concrete arrays (value checks).

The core's own tests (``tests/test_core_bad_input.py``) also vary each check over more bad
values and both forms of a weight; this is the list every backend runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest


@dataclass(frozen=True)
class BadInput:
    """One call that must fail."""

    kind: str
    """What is wrong, in a few words (the case's id is ``<loss>-<kind>``)."""
    name: str
    """The loss (:data:`multiloss._core.LOSSES`)."""
    logits: np.ndarray
    target: np.ndarray
    options: Mapping[str, Any] = field(default_factory=dict)
    error: type[Exception] = ValueError
    """The exception's type."""
    values: str | None = None
    """What the check reads the values of, which abstract (traced) data does not have:
    ``"target"`` (class indices), ``"weights"`` (a weight's entries), ``"hyperparameters"``
    (a hyperparameter given as a 0-d array: docs/semantics.md, Schedules), or None (a
    check of shapes, dtypes and Python options only, made while tracing too)."""

    @property
    def id(self) -> str:
        return f"{self.name}-{self.kind}"


_RNG = np.random.default_rng(3)
Z = _RNG.normal(size=(4, 3))
"""Logits: 4 samples of 3 classes."""
Y = np.array([0, 2, 1, 1])
"""Class indices for Z."""
P = _RNG.dirichlet(np.ones(3), size=4)
"""Probabilities for Z."""
B = _RNG.integers(0, 2, size=(4, 3)).astype(np.float64)
"""Binary targets for Z."""

CE, FL = "cross_entropy", "focal_loss"
BCE, SFL = "binary_cross_entropy", "sigmoid_focal_loss"
PL, ASL = "poly_loss", "asymmetric_loss"
DFL = "distribution_focal_loss"
T = np.array([0.0, 1.5, 2.0, 0.25])
"""Positions among the 3 bins of Z (2.0, the last bin, is valid)."""
VFL, QFL = "varifocal_loss", "quality_focal_loss"
Q = np.where(B > 0, _RNG.uniform(0.1, 0.9, size=B.shape), 0.0)
"""IoU-like soft targets for Z (0 for a negative)."""
NAN, INF = math.nan, math.inf

_H = "hyperparameters"

CATALOGUE: list[BadInput] = [
    # ------------------------------------------------------------------ class indices
    BadInput("index-too-large", CE, Z, np.array([0, 3, 1, 1]), values="target"),
    BadInput("index-negative", FL, Z, np.array([0, -1, 1, 1]), values="target"),
    BadInput(
        "index-uint64-wraps-to-ignore-index",
        CE,
        Z,
        np.array([0, 2**64 - 100, 1, 1], dtype=np.uint64),
        values="target",
    ),
    BadInput("float-class-indices", CE, Z, Y.astype(np.float64), error=TypeError),
    BadInput("bool-class-indices", CE, Z, np.array([True, False, True, True]), error=TypeError),
    BadInput("bool-class-indices", FL, Z, Y.astype(bool), error=TypeError),
    BadInput("one-hot-integer-target", CE, Z, np.eye(3, dtype=np.int64)[Y]),
    # ------------------------------------------------------------------ logits
    BadInput("integer-logits", CE, Z.astype(np.int64), Y, error=TypeError),
    BadInput("bool-logits", FL, np.zeros((4, 3), dtype=bool), Y, error=TypeError),
    BadInput("bool-logits", SFL, Z > 0, B, error=TypeError),
    BadInput("no-classes", CE, np.zeros((4, 0)), Y),
    BadInput("0-d-logits", FL, np.array(1.0), np.array(0)),
    # ------------------------------------------------------------------ shapes
    BadInput("batch-shape", CE, Z, Y[:3]),
    BadInput("batch-shape", FL, Z, Y[:3]),
    BadInput("spatial-shape", FL, _RNG.normal(size=(2, 3, 4)), np.zeros((2, 5), np.int64)),
    BadInput("spatial-shape", CE, Z.reshape(2, 2, 3), Y.reshape(2, 2)[:, :1]),
    BadInput("probability-shape", CE, Z, P[:, :2]),
    BadInput("sigmoid-target-shape", SFL, Z, np.ones((4, 2))),
    BadInput("sigmoid-target-shape", BCE, Z, B[:, :2]),
    # ------------------------------------------------------------------ weights
    BadInput("weight-length", CE, Z, Y, {"weight": [1.0, 2.0]}),
    BadInput("weight-rank", CE, Z, Y, {"weight": [[1.0], [1.0], [1.0]]}),
    BadInput("alpha-too-short", FL, Z, Y, {"alpha": [1.0, 2.0]}),
    BadInput("alpha-too-long", FL, Z, Y, {"alpha": [0.1, 0.2, 0.3, 0.4]}),
    BadInput("pos-weight-shape", BCE, Z, B, {"pos_weight": [1.0, 2.0]}),
    BadInput("weight-not-numbers", CE, Z, Y, {"weight": "abc"}, TypeError),
    BadInput("weight-negative", CE, Z, Y, {"weight": [1.0, -2.0, 1.0]}, values="weights"),
    BadInput("weight-nan", CE, Z, Y, {"weight": [1.0, NAN, 1.0]}, values="weights"),
    BadInput("weight-inf", CE, Z, Y, {"weight": [1.0, INF, 1.0]}, values="weights"),
    BadInput("alpha-negative", FL, Z, Y, {"alpha": [-1.0, 1.0, 1.0]}, values="weights"),
    BadInput("alpha-nan", FL, Z, Y, {"alpha": [1.0, NAN, 1.0]}, values="weights"),
    BadInput("alpha-inf", FL, Z, Y, {"alpha": [INF, 1.0, 1.0]}, values="weights"),
    BadInput("pos-weight-negative", BCE, Z, B, {"pos_weight": [1.0, -1, 1]}, values="weights"),
    BadInput("pos-weight-inf", BCE, Z, B, {"pos_weight": [INF]}, values="weights"),
    BadInput("weight-nan", BCE, Z, B, {"weight": [NAN]}, values="weights"),
    BadInput("weight-inf", BCE, Z, B, {"weight": [INF]}, values="weights"),
    # ------------------------------------------------------------------ hyperparameters
    BadInput("smoothing-above-1", CE, Z, Y, {"label_smoothing": 1.5}),
    BadInput("smoothing-negative", FL, Z, Y, {"label_smoothing": -0.1}),
    BadInput("smoothing-nan", CE, Z, Y, {"label_smoothing": NAN}),
    BadInput("smoothing-inf", CE, Z, Y, {"label_smoothing": INF}),
    BadInput("smoothing-not-number", CE, Z, Y, {"label_smoothing": "0.1"}, TypeError),
    BadInput("gamma-negative", FL, Z, Y, {"gamma": -1.0}),
    BadInput("gamma-negative", SFL, Z, B, {"gamma": -0.5}),
    BadInput("gamma-nan", FL, Z, Y, {"gamma": NAN}),
    BadInput("gamma-nan", SFL, Z, B, {"gamma": NAN}),
    BadInput("gamma-inf", FL, Z, Y, {"gamma": INF}),
    BadInput("gamma-inf", SFL, Z, B, {"gamma": INF}),
    BadInput("gamma-not-number", FL, Z, Y, {"gamma": "2"}, TypeError),
    BadInput("gamma-bool", SFL, Z, B, {"gamma": True}, TypeError),
    BadInput("scalar-alpha-above-1", FL, Z, Y, {"alpha": 1.5}),
    BadInput("scalar-alpha-negative", SFL, Z, B, {"alpha": -0.5}),
    BadInput("alpha-bool", SFL, Z, B, {"alpha": True}, TypeError),
    BadInput("reduction", CE, Z, Y, {"reduction": "avg"}),
    BadInput("reduction-None", BCE, Z, B, {"reduction": None}),
    BadInput("reduction", BCE, Z, B, {"reduction": "max"}),
    BadInput("axis-out-of-range", CE, Z, Y, {"axis": 2}),
    BadInput("axis-out-of-range", FL, Z, Y, {"axis": 2}),
    BadInput("axis-not-integer", FL, Z, Y, {"axis": 1.0}, TypeError),
    BadInput("axis-not-integer", CE, Z, Y, {"axis": 1.0}, TypeError),
    BadInput("ignore-index-with-probabilities", CE, Z, P, {"ignore_index": 1}),
    BadInput("ignore-index-not-integer", CE, Z, Y, {"ignore_index": 1.5}, TypeError),
    BadInput("ignore-index-bool", FL, Z, Y, {"ignore_index": True}, TypeError),
    # ------------------------------------------------------------------ z-loss, soft-capping
    BadInput("z-loss-negative", CE, Z, Y, {"z_loss": -1.0}),
    BadInput("z-loss-negative", PL, Z, Y, {"z_loss": -1e-4}),
    BadInput("z-loss-nan", FL, Z, Y, {"z_loss": NAN}),
    BadInput("z-loss-inf", CE, Z, Y, {"z_loss": INF}),
    BadInput("z-loss-not-number", CE, Z, Y, {"z_loss": "0.1"}, TypeError),
    BadInput("z-loss-bool", FL, Z, Y, {"z_loss": True}, TypeError),
    BadInput("softcap-zero", CE, Z, Y, {"softcap": 0.0}),
    BadInput("softcap-negative", FL, Z, Y, {"softcap": -5.0}),
    BadInput("softcap-inf", PL, Z, Y, {"softcap": INF}),
    BadInput("softcap-nan", CE, Z, Y, {"softcap": NAN}),
    BadInput("softcap-bool", CE, Z, Y, {"softcap": True}, TypeError),
    BadInput("softcap-not-number", PL, Z, Y, {"softcap": "30"}, TypeError),
    # ------------------------------------------------------------------ poly loss
    BadInput("epsilon-below-minus-1", PL, Z, Y, {"epsilon": -1.5}),
    BadInput("epsilon-nan", PL, Z, Y, {"epsilon": NAN}),
    BadInput("epsilon-inf", PL, Z, Y, {"epsilon": INF}),
    BadInput("epsilon-not-number", PL, Z, Y, {"epsilon": "2"}, TypeError),
    BadInput("gamma-negative", PL, Z, Y, {"gamma": -0.5}),
    BadInput("gamma-nan", PL, Z, Y, {"gamma": NAN}),
    BadInput("index-too-large", PL, Z, np.array([0, 3, 1, 1]), values="target"),
    BadInput("alpha-too-short", PL, Z, Y, {"alpha": [1.0, 2.0]}),
    BadInput("alpha-negative", PL, Z, Y, {"alpha": [-1.0, 1.0, 1.0]}, values="weights"),
    BadInput("scalar-alpha-above-1", PL, Z, Y, {"alpha": 1.5}),
    BadInput("probability-shape", PL, Z, P[:, :2]),
    BadInput("reduction", PL, Z, Y, {"reduction": "avg"}),
    # ------------------------------------------------------------------ asymmetric loss
    BadInput("clip-negative", ASL, Z, B, {"clip": -0.1}),
    BadInput("clip-one", ASL, Z, B, {"clip": 1.0}),
    BadInput("clip-nan", ASL, Z, B, {"clip": NAN}),
    BadInput("clip-bool", ASL, Z, B, {"clip": True}, TypeError),
    BadInput("gamma-pos-negative", ASL, Z, B, {"gamma_pos": -1.0}),
    BadInput("gamma-pos-nan", ASL, Z, B, {"gamma_pos": NAN}),
    BadInput("gamma-neg-negative", ASL, Z, B, {"gamma_neg": -0.5}),
    BadInput("gamma-neg-nan", ASL, Z, B, {"gamma_neg": NAN}),
    BadInput("gamma-neg-inf", ASL, Z, B, {"gamma_neg": INF}),
    BadInput("sigmoid-target-shape", ASL, Z, B[:, :2]),
    # ------------------------------------------------------------------ 0-d array hyperparameters
    # (docs/semantics.md, Schedules): checked where their values can be read, with the
    # message of the Python number; a test moves the array into its backend.
    BadInput("gamma-negative-0d-array", FL, Z, Y, {"gamma": np.asarray(-1.0)}, values=_H),
    BadInput("gamma-nan-0d-array", SFL, Z, B, {"gamma": np.asarray(NAN)}, values=_H),
    BadInput("gamma-inf-0d-array", PL, Z, Y, {"gamma": np.asarray(INF)}, values=_H),
    BadInput("epsilon-below-minus-1-0d-array", PL, Z, Y, {"epsilon": np.asarray(-2.0)}, values=_H),
    BadInput(
        "smoothing-above-1-0d-array", CE, Z, Y, {"label_smoothing": np.asarray(1.5)}, values=_H
    ),
    BadInput("z-loss-negative-0d-array", FL, Z, Y, {"z_loss": np.asarray(-0.1)}, values=_H),
    BadInput("softcap-zero-0d-array", CE, Z, Y, {"softcap": np.asarray(0.0)}, values=_H),
    BadInput("scalar-alpha-above-1-0d-array", SFL, Z, B, {"alpha": np.asarray(1.5)}, values=_H),
    BadInput("gamma-neg-negative-0d-array", ASL, Z, B, {"gamma_neg": np.asarray(-0.5)}, values=_H),
    BadInput("clip-one-0d-array", ASL, Z, B, {"clip": np.asarray(1.0)}, values=_H),
    BadInput("vfl-alpha-above-1-0d-array", VFL, Z, Q, {"alpha": np.asarray(1.5)}, values=_H),
    BadInput("vfl-gamma-negative-0d-array", VFL, Z, Q, {"gamma": np.asarray(-1.0)}, values=_H),
    BadInput("beta-negative-0d-array", QFL, Z, Q, {"beta": np.asarray(-0.5)}, values=_H),
    BadInput("beta-nan-0d-array", QFL, Z, Q, {"beta": np.asarray(NAN)}, values=_H),
    BadInput(
        "vfl-smoothing-negative-0d-array",
        VFL,
        Z,
        Q,
        {"label_smoothing": np.asarray(-0.1)},
        values=_H,
    ),
    BadInput(
        "bce-smoothing-above-1-0d-array",
        BCE,
        Z,
        B,
        {"label_smoothing": np.asarray(1.5)},
        values=_H,
    ),
    BadInput("beta-1d-array", QFL, Z, Q, {"beta": np.asarray([2.0])}),
    BadInput("gamma-1d-array", FL, Z, Y, {"gamma": np.asarray([2.0])}),
    BadInput("gamma-bool-0d-array", SFL, Z, B, {"gamma": np.asarray(True)}, TypeError),
    BadInput("bool-logits", ASL, Z > 0, B, error=TypeError),
    BadInput("reduction", ASL, Z, B, {"reduction": "batchmean"}),
    # ------------------------------------------------------------ distribution focal loss
    BadInput("bin-target-above-last", DFL, Z, np.array([0.0, 2.5, 1.0, 1.0]), values="target"),
    BadInput("bin-target-negative", DFL, Z, np.array([0.0, 1.0, -0.5, 1.0]), values="target"),
    BadInput("bin-target-nan", DFL, Z, np.array([0.0, NAN, 1.0, 1.0]), values="target"),
    BadInput("bin-target-integer", DFL, Z, Y, error=TypeError),
    BadInput("bin-target-shape", DFL, Z, P),
    BadInput("one-bin", DFL, Z[:, :1], T * 0),
    BadInput("weight-negative", DFL, Z, T, {"weight": [1.0, -1.0, 1.0, 1.0]}, values="weights"),
    BadInput("weight-shape", DFL, Z, T, {"weight": [1.0, 1.0]}),
    BadInput("reduction", DFL, Z, T, {"reduction": "avg"}),
    # ------------------------------------------------------------------ element-wise options
    BadInput("smoothing-above-1", BCE, Z, B, {"label_smoothing": 1.5}),
    BadInput("smoothing-negative", SFL, Z, B, {"label_smoothing": -0.1}),
    BadInput("smoothing-nan", ASL, Z, B, {"label_smoothing": NAN}),
    BadInput("smoothing-above-1", VFL, Z, Q, {"label_smoothing": 2.0}),
    BadInput("smoothing-not-number", QFL, Z, Q, {"label_smoothing": "0.1"}, TypeError),
    BadInput("ignore-index-not-integer", BCE, Z, B, {"ignore_index": 1.5}, TypeError),
    BadInput("ignore-index-bool", VFL, Z, Q, {"ignore_index": True}, TypeError),
    BadInput("class-alpha-length", SFL, Z, B, {"alpha": [0.25, 0.5]}),
    BadInput("class-alpha-above-1", SFL, Z, B, {"alpha": [0.25, 1.5, 0.5]}, values="weights"),
    BadInput("class-alpha-nan", SFL, Z, B, {"alpha": [0.25, NAN, 0.5]}, values="weights"),
    BadInput("pos-weight-negative", SFL, Z, B, {"pos_weight": [1.0, -1, 1]}, values="weights"),
    BadInput("weight-shape", ASL, Z, B, {"weight": [1.0, 2.0]}),
    BadInput("pos-weight-inf", QFL, Z, Q, {"pos_weight": [INF]}, values="weights"),
    # ------------------------------------------------------------------ varifocal, quality focal
    BadInput("target-above-1", VFL, Z, Q + 1.0, values="target"),
    BadInput("target-negative", QFL, Z, Q - 0.5, values="target"),
    BadInput("target-nan", VFL, Z, np.where(B > 0, NAN, 0.0), values="target"),
    BadInput("alpha-above-1", VFL, Z, Q, {"alpha": 1.5}),
    BadInput("alpha-sequence", VFL, Z, Q, {"alpha": [0.75, 0.75, 0.75]}, TypeError),
    BadInput("gamma-negative", VFL, Z, Q, {"gamma": -1.0}),
    BadInput("beta-negative", QFL, Z, Q, {"beta": -0.5}),
    BadInput("beta-nan", QFL, Z, Q, {"beta": NAN}),
    BadInput("beta-bool", QFL, Z, Q, {"beta": True}, TypeError),
    BadInput("sigmoid-target-shape", QFL, Z, Q[:, :2]),
    BadInput("reduction", VFL, Z, Q, {"reduction": "avg"}),
]
"""Every case; ids (``case.id``) are unique."""

assert len({case.id for case in CATALOGUE}) == len(CATALOGUE), "duplicate ids"


def params(cases: list[BadInput] = CATALOGUE) -> list[Any]:
    """The cases as ``pytest.param``, with their ids."""
    return [pytest.param(case, id=case.id) for case in cases]


# ---------------------------------------------------------------------- the variants

_SHAPE_KINDS = ("shape", "logits", "no-classes", "one-hot", "0-d")
"""Cases about the logits' own shape or dtype: the variants take no logits (the fused
heads take an input and a projection, whose checks name them), so these do not apply."""


def variant_cases(variant: str) -> list[BadInput]:
    """The catalogue's cases that apply to a `variant` of a softmax loss
    (``"linear"``: the fused head of `input @ eye(C)`, whose logits are the case's;
    ``"vocab_parallel"``: one rank holding every class): every backend raises them with
    the plain loss's exception and message."""
    from multiloss._core import LOSSES

    cases = []
    for case in CATALOGUE:
        loss = LOSSES[case.name]
        if variant not in loss.variants or case.logits.ndim != 2 or "axis" in case.options:
            continue
        if any(kind in case.kind for kind in _SHAPE_KINDS):
            continue
        if "d-array" in case.kind:
            continue  # the variants take Python numbers only (their own refusal of arrays)
        if variant == "vocab_parallel":
            if case.target.dtype.kind in "fb" or "softcap" in case.options:
                continue  # class indices only (its own refusal of others); no softcap
            if "label_smoothing" in case.options and not loss.sharded_smoothing:
                continue  # refused as NotImplementedError before its value is read
        cases.append(case)
    return cases
