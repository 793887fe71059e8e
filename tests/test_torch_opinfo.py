"""multiloss.torch on PyTorch's own test samples (the OpInfo database of torch.testing).

For every sample of the OpInfos ``nn.functional.cross_entropy`` and
``nn.functional.binary_cross_entropy_with_logits`` (float64, ``requires_grad=True``), the
sample is mapped onto :func:`multiloss.torch.cross_entropy` /
:func:`multiloss.torch.binary_cross_entropy` and the value and the gradient of every input
that requires grad (the input, a floating target, a weight, a pos_weight) are compared
with PyTorch's autograd of the same call on the same tensors. Weights are made
non-negative (``abs``): multiloss refuses negative weights by design. A ``"mean"`` with
nothing to average is NaN in PyTorch and 0.0 in multiloss (documented difference): there
the value is checked to be 0.0 and the gradients are not compared.

The samples' weights never require grad (PyTorch cannot differentiate the class-index
cross-entropy weight, nor the BCE weight and pos_weight); the cross-entropy samples with
probability targets and a weight, where PyTorch can, are also run with the weight
requiring grad ("weight requires grad").

``torch.testing._internal`` imports ``expecttest``, a test-only dependency of PyTorch; the
module is skipped without it. Its import changes two pieces of global state, which are put
back: it loads a hypothesis profile of its own ("dev": 10 examples, not derandomised) and
freezes ``torch.backends`` flags (``disable_global_flags``). The samples are drawn with
fixed seeds, inside ``torch.random.fork_rng``.

``MULTILOSS_OPINFO_DETACH=1`` detaches targets and weights (values and logit gradients
only): what could be checked before multiloss differentiated the non-logit inputs.
"""

from __future__ import annotations

import math
import os
import random
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip(
    "expecttest", reason="torch.testing._internal needs expecttest (pip install expecttest)"
)
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402

CE = "nn.functional.cross_entropy"
BCE = "nn.functional.binary_cross_entropy_with_logits"

EXPECTED_COUNTS = {CE: 21, BCE: 26}
"""Samples per OpInfo, observed with torch 2.13.0+cpu (float64, requires_grad=True)."""

EXPECTED_WITH_A_GRADIENT_TARGET = {CE: 10, BCE: 26}
"""Samples whose target requires grad (probability targets): those raised
NotImplementedError before multiloss differentiated the target."""

DETACH_OPERANDS = os.environ.get("MULTILOSS_OPINFO_DETACH") == "1"

RTOL, ATOL = 1e-10, 1e-12


def _import_op_db():
    """``op_db``, the seconds its import took, and the global state it changes (restored):
    the hypothesis profile and whether torch.backends flags are frozen, as before."""
    try:
        from hypothesis import settings
    except ImportError:  # pragma: no cover - hypothesis is in the test extra
        settings = None
    profile = settings.get_current_profile_name() if settings is not None else None
    frozen = torch.backends.flags_frozen()
    start = time.perf_counter()
    try:
        from torch.testing._internal.common_methods_invocations import op_db
    except ImportError as error:  # pragma: no cover - depends on the installed torch
        pytest.skip(f"torch.testing._internal is not importable: {error}", allow_module_level=True)
    finally:
        if settings is not None:
            settings.load_profile(profile)
        if not frozen:  # undo disable_global_flags() (the flag lives in the functions' globals)
            torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
    return op_db, time.perf_counter() - start, (profile, frozen)


def _draw_samples(op_db, name):
    """The op's float64 samples, drawn with fixed seeds without disturbing the global RNGs."""
    (op,) = [op for op in op_db if op.name == name and op.variant_test_name == ""]
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random.seed(0)
        try:
            return list(op.sample_inputs("cpu", torch.float64, requires_grad=True))
        finally:
            random.setstate(state)


OP_DB, IMPORT_SECONDS, STATE_BEFORE = _import_op_db()
SAMPLES = {name: _draw_samples(OP_DB, name) for name in (CE, BCE)}


def _describe(value):
    if torch.is_tensor(value):
        kind = "float" if value.is_floating_point() else "int"
        grad = " grad" if value.requires_grad else ""
        return f"{kind}{tuple(value.shape)}{grad}"
    return repr(value)


def _sample_id(index, sample):
    parts = [f"{index:02d}", f"input{tuple(sample.input.shape)}"]
    parts += [f"target {_describe(arg)}" for arg in sample.args]
    parts += [f"{key}={_describe(value)}" for key, value in sample.kwargs.items()]
    return " ".join(parts)


def _cases(name):
    """(sample index, variant) pairs with readable ids."""
    cases, ids = [], []
    for index, sample in enumerate(SAMPLES[name]):
        cases.append((index, "as given"))
        ids.append(_sample_id(index, sample))
        target = sample.args[0]
        if name == CE and target.is_floating_point() and "weight" in sample.kwargs:
            cases.append((index, "weight requires grad"))
            ids.append(f"{_sample_id(index, sample)}, weight requires grad")
    return cases, ids


# ----------------------------------------------------------------------------- the mapping

CE_KEYWORDS = {"weight", "ignore_index", "reduction", "label_smoothing"}
BCE_KEYWORDS = {"weight", "pos_weight", "reduction"}


def _leaf(tensor, requires_grad):
    """A fresh leaf with the values of `tensor` (a sample's tensors are shared by tests)."""
    return tensor.detach().clone().requires_grad_(requires_grad)


def _arguments(name, sample, variant):
    """input, target and keyword arguments of the call, as fresh leaves.

    Weights become non-negative; the target keeps the sample's requires_grad (only a
    floating target can have it), unless MULTILOSS_OPINFO_DETACH=1.
    """
    assert len(sample.args) == 1, f"expected (input, target), got {len(sample.args)} args"
    allowed = CE_KEYWORDS if name == CE else BCE_KEYWORDS
    assert set(sample.kwargs) <= allowed, f"unmapped keywords {set(sample.kwargs) - allowed}"
    logits = _leaf(sample.input, sample.input.requires_grad)
    (target,) = sample.args
    target = _leaf(target, target.requires_grad and not DETACH_OPERANDS)
    kwargs = {}
    for key, value in sample.kwargs.items():
        if torch.is_tensor(value):
            wanted = value.requires_grad or (key == "weight" and variant == "weight requires grad")
            value = value.detach().abs().requires_grad_(wanted and not DETACH_OPERANDS)
        kwargs[key] = value
    return logits, target, kwargs


def _nothing_to_average(kwargs, expected):
    return kwargs.get("reduction", "mean") == "mean" and math.isnan(expected.item())


def _check(name, index, variant):
    sample = SAMPLES[name][index]
    logits, target, kwargs = _arguments(name, sample, variant)
    ours = mt.cross_entropy if name == CE else mt.binary_cross_entropy
    theirs = F.cross_entropy if name == CE else F.binary_cross_entropy_with_logits
    expected = theirs(logits, target, **kwargs)
    value = ours(logits, target, **kwargs)
    if _nothing_to_average(kwargs, expected):
        assert value.item() == 0.0, f"a mean over nothing is 0.0 in multiloss; got {value}"
        return
    torch.testing.assert_close(value, expected, rtol=RTOL, atol=ATOL, msg="value")
    named = {"input": logits, "target": target, **kwargs}
    wrt = {key: t for key, t in named.items() if torch.is_tensor(t) and t.requires_grad}
    assert wrt, "nothing requires grad"
    generator = torch.Generator().manual_seed(index)
    cotangent = torch.randn(expected.shape, generator=generator, dtype=expected.dtype)
    grads = torch.autograd.grad(value, tuple(wrt.values()), cotangent)
    expected_grads = torch.autograd.grad(expected, tuple(wrt.values()), cotangent)
    for key, grad, expected_grad in zip(wrt, grads, expected_grads, strict=True):
        torch.testing.assert_close(
            grad, expected_grad, rtol=RTOL, atol=ATOL, msg=f"gradient of {key}"
        )


CE_CASES, CE_IDS = _cases(CE)
BCE_CASES, BCE_IDS = _cases(BCE)


@pytest.mark.parametrize(("index", "variant"), CE_CASES, ids=CE_IDS)
def test_cross_entropy_sample(index, variant):
    _check(CE, index, variant)


@pytest.mark.parametrize(("index", "variant"), BCE_CASES, ids=BCE_IDS)
def test_binary_cross_entropy_with_logits_sample(index, variant):
    _check(BCE, index, variant)


def test_sample_counts(record_property):
    """The OpInfos still have the samples this file was written against (torch 2.13)."""
    counts = {name: len(samples) for name, samples in SAMPLES.items()}
    with_gradient_target = {
        name: sum(s.args[0].is_floating_point() and s.args[0].requires_grad for s in samples)
        for name, samples in SAMPLES.items()
    }
    record_property("opinfo_samples", counts)
    record_property("op_db_import_seconds", round(IMPORT_SECONDS, 2))
    print(f"OpInfo samples {counts}; op_db import {IMPORT_SECONDS:.2f} s")
    assert counts == EXPECTED_COUNTS
    assert with_gradient_target == EXPECTED_WITH_A_GRADIENT_TARGET


def test_importing_op_db_left_hypothesis_and_backend_flags_alone():
    from hypothesis import settings

    assert (settings.get_current_profile_name(), torch.backends.flags_frozen()) == STATE_BEFORE
