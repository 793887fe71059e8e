"""Errors that carry the migration (issue 22): PyTorch's removed `size_average` / `reduce`,
hyperparameters given by position (`torch.nn`'s order, the blog focal loss's), the scalar
alpha convention in `FocalLoss`'s `repr`, and the fix for a target that is not a tensor."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mt = pytest.importorskip("multiloss.torch")

LEGACY = [
    # (build, the keywords the message must name)
    (lambda: mt.FocalLoss(gamma=2, size_average=False), ["reduction='sum'", "size_average"]),
    (lambda: mt.FocalLoss(size_average=True), ["reduction='mean'"]),
    (lambda: mt.CrossEntropyLoss(reduce=False), ["reduction='none'", "reduce=False"]),
    (lambda: mt.CrossEntropyLoss(size_average=False, reduce=True), ["reduction='sum'"]),
    (lambda: mt.BCEWithLogitsLoss(size_average=None, reduce=None), ["reduction='mean'"]),
    (lambda: mt.PolyLoss(reduce=False), ["reduction='none'"]),
    (lambda: mt.SigmoidFocalLoss(size_average=False), ["reduction='sum'"]),
    (lambda: mt.AsymmetricLoss(reduce=False), ["reduction='none'"]),
]


@pytest.mark.parametrize("case", range(len(LEGACY)))
def test_size_average_and_reduce_name_the_reduction(case: int) -> None:
    build, expected = LEGACY[case]
    with pytest.raises(TypeError, match="deprecated in PyTorch") as error:
        build()
    for text in expected:
        assert text in str(error.value)


def test_legacy_rule_is_pytorchs() -> None:
    """The reduction named is PyTorch's own translation of the pair."""
    from torch.nn import _reduction

    for size_average in (None, True, False):
        for reduce in (None, True, False):
            if size_average is None and reduce is None:
                continue
            expected = _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
            with pytest.raises(TypeError, match=f"reduction='{expected}'"):
                mt.CrossEntropyLoss(size_average=size_average, reduce=reduce)


POSITIONAL = [
    # the blog focal loss: FocalLoss(gamma, alpha, size_average)
    (lambda: mt.FocalLoss(2.0, [0.25, 0.75]), "FocalLoss(gamma=2.0, alpha=[0.25, 0.75])"),
    (lambda: mt.FocalLoss(2.0, 0.25, False), "FocalLoss(gamma=2.0, alpha=0.25, reduction='sum')"),
    # torch.nn.CrossEntropyLoss(weight, size_average, ignore_index, reduce, reduction, ...)
    (
        lambda: mt.CrossEntropyLoss(None, None, 255),
        "CrossEntropyLoss(weight=None, ignore_index=255)",
    ),
    (
        lambda: mt.BCEWithLogitsLoss(None, None, None, "sum"),
        "BCEWithLogitsLoss(weight=None, reduction='sum')",
    ),
    (
        lambda: mt.CrossEntropyLoss(None, False, 255),
        "CrossEntropyLoss(weight=None, ignore_index=255, reduction='sum')",
    ),
    (lambda: mt.PolyLoss(1.0), "PolyLoss(epsilon=1.0)"),
    (lambda: mt.SigmoidFocalLoss(0.5, 1.0), "SigmoidFocalLoss(alpha=0.5, gamma=1.0)"),
    (lambda: mt.AsymmetricLoss(4.0, 1.0), "AsymmetricLoss(gamma_neg=4.0, gamma_pos=1.0)"),
]


@pytest.mark.parametrize("case", range(len(POSITIONAL)))
def test_positional_hyperparameters_name_the_keywords(case: int) -> None:
    build, expected = POSITIONAL[case]
    with pytest.raises(TypeError, match="keyword-only") as error:
        build()
    assert expected in str(error.value)


def test_a_positional_scalar_alpha_warns_of_the_convention() -> None:
    with pytest.raises(TypeError, match=r"alpha=\[a, 1 - a\]"):
        mt.FocalLoss(2.0, 0.25)


def test_the_keyword_calls_and_signatures_are_unchanged() -> None:
    assert mt.CrossEntropyLoss([1.0, 2.0]).weight.tolist() == [1.0, 2.0]
    assert mt.BCEWithLogitsLoss([1.0]).weight.tolist() == [1.0]
    assert "gamma" in inspect.signature(mt.FocalLoss).parameters
    assert "size_average" not in inspect.signature(mt.CrossEntropyLoss).parameters


def test_scalar_alpha_repr_shows_the_class_weights() -> None:
    assert "alpha=0.25 (class 0: 0.75, others: 0.25)" in repr(mt.FocalLoss(alpha=0.25))
    assert "alpha=0.1 (class 0: 0.9, others: 0.1)" in repr(mt.PolyLoss(alpha=0.1))
    assert "alpha=[0.25, 0.75]," in repr(mt.FocalLoss(alpha=[0.25, 0.75]))


def test_scalar_alpha_is_what_the_repr_says() -> None:
    """The rule in the repr, checked against per-class weights and a naive float64 sum."""
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(16, 3)) * 2, dtype=torch.float64)
    target = torch.tensor(rng.integers(0, 3, size=16))
    scalar = mt.FocalLoss(gamma=2.0, alpha=0.25, reduction="sum")(logits, target)
    per_class = mt.FocalLoss(gamma=2.0, alpha=[0.75, 0.25, 0.25], reduction="sum")(logits, target)
    p = torch.softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    weights = torch.where(target == 0, 0.75, 0.25).double()
    naive = -(weights * (1 - p) ** 2 * torch.log(p)).sum()
    torch.testing.assert_close(scalar, per_class, rtol=1e-12, atol=0)
    torch.testing.assert_close(scalar, naive, rtol=1e-12, atol=0)


@pytest.mark.parametrize("target", [np.array([0, 1, 2]), [0, 1, 2]], ids=["numpy", "list"])
@pytest.mark.parametrize("loss", ["cross_entropy", "focal_loss", "poly_loss"])
def test_a_target_that_is_not_a_tensor_gets_the_fix(loss: str, target: object) -> None:
    logits = torch.zeros(3, 4)
    with pytest.raises(TypeError, match=r"torch\.as_tensor\(target, device=logits\.device\)"):
        getattr(mt, loss)(logits, target)
    expected = "different backends" if isinstance(target, np.ndarray) else "must be a torch"
    with pytest.raises(TypeError, match=expected):
        mt.CrossEntropyLoss()(logits, target)
