"""multiloss.torch modules: construction, buffers, serialisation, compilation, doctests."""

from __future__ import annotations

import copy
import doctest
import io
import math
import pickle

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402

ALL_MODULES = {
    "CrossEntropyLoss": lambda: mt.CrossEntropyLoss([0.5, 1.0, 2.0], ignore_index=255),
    "FocalLoss per-class alpha": lambda: mt.FocalLoss(gamma=1.5, alpha=[0.25, 0.5, 1.0]),
    "FocalLoss scalar alpha": lambda: mt.FocalLoss(gamma=2.0, alpha=0.25, label_smoothing=0.1),
    "BCEWithLogitsLoss": lambda: mt.BCEWithLogitsLoss([1.0, 0.5, 2.0], pos_weight=[2.0, 1, 1]),
    "SigmoidFocalLoss": lambda: mt.SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="sum"),
}
BUFFERS = {
    "CrossEntropyLoss": {"weight"},
    "FocalLoss per-class alpha": {"alpha"},
    "FocalLoss scalar alpha": set(),
    "BCEWithLogitsLoss": {"weight", "pos_weight"},
    "SigmoidFocalLoss": set(),
}


def inputs(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 2, generator=generator).to(dtype)
    labels = torch.randint(0, 3, (4, 2), generator=generator)
    binary = (torch.randn(4, 3, 2, generator=generator) > 0).to(dtype)
    return logits, labels, binary


def run(name, module, dtype=torch.float32):
    logits, labels, binary = inputs(dtype)
    if name.startswith(("BCE", "Sigmoid")):
        # the length-3 weights of the BCE module weight the last axis: use (…, 3) logits
        return module(logits.transpose(1, 2), binary.transpose(1, 2))
    return module(logits, labels)


# ------------------------------------------------------------------ construction


def test_repr_is_readable():
    assert repr(mt.CrossEntropyLoss()) == (
        "CrossEntropyLoss(ignore_index=-100, reduction='mean', label_smoothing=0.0)"
    )
    assert repr(mt.FocalLoss(alpha=[0.25, 0.75], axis=-1)) == (
        "FocalLoss(gamma=2.0, alpha=[0.25, 0.75], ignore_index=-100, reduction='mean', "
        "label_smoothing=0.0, axis=-1)"
    )
    assert repr(mt.FocalLoss(alpha=torch.ones(20))) == (
        "FocalLoss(gamma=2.0, alpha=<tensor of shape (20,), torch.float32>, ignore_index=-100, "
        "reduction='mean', label_smoothing=0.0)"
    )
    assert repr(mt.BCEWithLogitsLoss([1.0, 2.0], reduction="sum")) == (
        "BCEWithLogitsLoss(weight=[1.0, 2.0], reduction='sum')"
    )
    assert repr(mt.SigmoidFocalLoss(alpha=None)) == (
        "SigmoidFocalLoss(alpha=None, gamma=2.0, reduction='mean')"
    )


BAD_HYPERPARAMETERS = {
    "negative weight": (lambda: mt.CrossEntropyLoss([1.0, -1.0]), ValueError, "non-negative"),
    "NaN weight": (lambda: mt.CrossEntropyLoss([1.0, math.nan]), ValueError, "non-negative"),
    "2-d weight": (lambda: mt.CrossEntropyLoss(torch.ones(2, 2)), ValueError, "one entry"),
    "string weight": (lambda: mt.CrossEntropyLoss("abc"), TypeError, "sequence of numbers"),
    "bool weight": (lambda: mt.CrossEntropyLoss(torch.ones(2, dtype=bool)), TypeError, "real"),
    "ignore_index float": (lambda: mt.CrossEntropyLoss(ignore_index=1.5), TypeError, "integer"),
    "reduction": (lambda: mt.FocalLoss(reduction="avg"), ValueError, "reduction"),
    "smoothing": (lambda: mt.FocalLoss(label_smoothing=2.0), ValueError, "label_smoothing"),
    "gamma": (lambda: mt.FocalLoss(gamma=-1.0), ValueError, "gamma"),
    "gamma NaN": (lambda: mt.SigmoidFocalLoss(gamma=math.nan), ValueError, "gamma"),
    "scalar alpha": (lambda: mt.FocalLoss(alpha=1.5), ValueError, "alpha"),
    "negative alpha": (lambda: mt.FocalLoss(alpha=[0.5, -0.5]), ValueError, "non-negative"),
    "sigmoid alpha": (lambda: mt.SigmoidFocalLoss(alpha=2.0), ValueError, "alpha"),
    "pos_weight": (lambda: mt.BCEWithLogitsLoss(pos_weight=[-1.0]), ValueError, "pos_weight"),
    "axis": (lambda: mt.CrossEntropyLoss(axis=1.0), TypeError, "axis"),
}


@pytest.mark.parametrize("case", list(BAD_HYPERPARAMETERS))
def test_hyperparameters_are_validated_at_construction(case):
    build, error, message = BAD_HYPERPARAMETERS[case]
    with pytest.raises(error, match=message):
        build()


def test_integer_weights_become_floating_buffers():
    module = mt.CrossEntropyLoss(torch.tensor([1, 2, 3]))
    assert module.weight.dtype == torch.get_default_dtype()
    # a sequence is kept exactly, in float64, and converted to the logits' compute dtype
    # at each call, as the functional form converts it (issue 20)
    assert mt.FocalLoss(alpha=[1, 2, 3]).alpha.dtype == torch.float64


# ------------------------------------------------------------------ buffers


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_buffers_are_registered_and_follow_to(name):
    module = ALL_MODULES[name]()
    assert {key for key, _ in module.named_buffers()} == BUFFERS[name]
    assert set(module.state_dict()) == BUFFERS[name]
    module = module.to(torch.float64)
    for buffer in module.buffers():
        assert buffer.dtype == torch.float64
    value = run(name, module, torch.float64)
    assert value.dtype == torch.float64
    meta = module.to("meta")
    for buffer in meta.buffers():
        assert buffer.device.type == "meta"
    logits, labels, binary = (tensor.to("meta") for tensor in inputs(torch.float64))
    if name.startswith(("BCE", "Sigmoid")):
        assert meta(logits.transpose(1, 2), binary.transpose(1, 2)).device.type == "meta"
    else:
        assert meta(logits, labels).device.type == "meta"


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_half_precision_module(name):
    module = ALL_MODULES[name]().half()
    value = run(name, module, torch.float16)
    assert value.dtype == torch.float16 and math.isfinite(value.item())


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_state_dict_round_trip(name):
    module = ALL_MODULES[name]()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    fresh = ALL_MODULES[name]()
    for tensor in fresh.buffers():
        tensor.mul_(3.0)  # different values, to be overwritten
    fresh.load_state_dict(state)
    assert torch.equal(run(name, fresh), run(name, module))


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_pickle_and_deepcopy(name):
    module = ALL_MODULES[name]()
    expected = run(name, module)
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert repr(clone) == repr(module)
        assert torch.equal(run(name, clone), expected)
        for mine, theirs in zip(clone.buffers(), module.buffers(), strict=True):
            assert torch.equal(mine, theirs) and mine.data_ptr() != theirs.data_ptr()


def test_class_axis_option():
    logits, labels, _ = inputs(torch.float64)
    channels_last = logits.movedim(1, -1).contiguous()
    for module, moved in (
        (mt.FocalLoss(alpha=[0.5, 1.0, 2.0]), mt.FocalLoss(alpha=[0.5, 1.0, 2.0], axis=-1)),
        (
            mt.CrossEntropyLoss(label_smoothing=0.1),
            mt.CrossEntropyLoss(label_smoothing=0.1, axis=2),
        ),
    ):
        torch.testing.assert_close(moved(channels_last, labels), module(logits, labels))


def test_unbatched_input():
    logits, target = torch.randn(5, dtype=torch.float64), torch.tensor(3)
    torch.testing.assert_close(
        mt.CrossEntropyLoss()(logits, target), F.cross_entropy(logits, target)
    )
    torch.testing.assert_close(
        mt.FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target)
    )


def test_a_training_step():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    criterion = mt.FocalLoss(gamma=2.0, alpha=[0.5, 1.0, 1.0])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


# ------------------------------------------------------------------ compile (inductor)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_compiled_module_gives_the_eager_numbers():
    criterion = mt.FocalLoss(gamma=2.0, alpha=[0.5, 1.0, 2.0, 1.0], ignore_index=255)
    compiled = torch.compile(criterion, fullgraph=True)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 4, 3, generator=generator)
    target = torch.randint(0, 4, (4, 3), generator=generator)
    target[0, 0] = 255
    eager_z, compiled_z = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    eager, result = criterion(eager_z, target), compiled(compiled_z, target)
    eager.backward()
    result.backward()
    torch.testing.assert_close(result, eager)
    torch.testing.assert_close(compiled_z.grad, eager_z.grad)


# ------------------------------------------------------------------ docstrings


def test_docstring_examples_run():
    # multiloss.torch is a package: its functions' and modules' examples live in its modules
    attempted = failed = 0
    for module in (mt, mt.functional, mt.modules):
        result = doctest.testmod(
            module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        attempted, failed = attempted + result.attempted, failed + result.failed
    assert attempted >= 8
    assert failed == 0


def test_docstrings_state_formula_and_reference():
    for function in (mt.focal_loss, mt.sigmoid_focal_loss, mt.FocalLoss, mt.SigmoidFocalLoss):
        assert "Lin et al" in function.__doc__
    for item in (
        mt.cross_entropy,
        mt.focal_loss,
        mt.binary_cross_entropy,
        mt.sigmoid_focal_loss,
        mt.CrossEntropyLoss,
        mt.FocalLoss,
        mt.BCEWithLogitsLoss,
        mt.SigmoidFocalLoss,
    ):
        assert ">>>" in item.__doc__, item
