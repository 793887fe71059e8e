"""Execution plans: which of the seam's kernels one call runs, chosen from static facts.

A plan picks primitives; the math is the core's, the same on every plan. The choice
reads only static facts of the call (device type, size, whether ``torch.compile``,
``torch.func`` or a graph being recorded is involved), never tensor values:

* ``generic``, under ``torch.compile``, autograd recording (``create_graph=True``) and
  where the Function sees ``torch.func`` batched tensors (``vmap``): the core's
  array-API operations, which the compiler fuses and the transforms see as plain
  operations;
* ``whole``, on every other device (CUDA, MPS, XPU, ``meta``, …) and for CPU calls of at
  most `SMALL_ELEMENTS` logits: whole-tensor fused passes (:mod:`._whole`), a small,
  fixed number of kernels whatever the shape, no host synchronisation;
* ``slab``, for larger CPU calls in plain eager execution: cache-sized slab passes
  (:mod:`._native`), with the whole-tensor sigmoid kernels inside each slab.

Tests force a plan on CPU tensors with :func:`forced` to check every plan against the
oracles; the ``generic`` plan is kept wherever it is required, forced or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .._core import (
    DISTRIBUTION,
    GENERIC,
    GENERIC_SIGMOID,
    SOFTMAX,
    Family,
    SigmoidKernels,
    SoftmaxKernels,
)
from . import _native, _whole
from ._namespace import any_functorch

SMALL_ELEMENTS = 1 << 16
"""CPU calls with at most this many logits take the whole-tensor plan: they fit in cache,
so slabs gain nothing, and fewer kernels mean less per-call overhead."""


@dataclass(frozen=True)
class Plan:
    """The kernels of one execution plan."""

    name: str
    softmax: SoftmaxKernels
    sigmoid: SigmoidKernels
    slabs: bool
    """Whether large calls are split into cache-sized slabs (:mod:`._native`)."""

    def kernels(self, family: Family) -> SoftmaxKernels | SigmoidKernels:
        """The seam's kernels for a call of `family` (the element-wise families, sigmoid
        and asymmetric, take the sigmoid kernels; the distribution focal loss the softmax
        ones, whole-tensor where this plan splits hard-target passes into slabs: it reads
        only their fused ``log_softmax``)."""
        if family is SOFTMAX:
            return self.softmax
        if family is DISTRIBUTION:
            return _whole.WHOLE if self.slabs else self.softmax
        return self.sigmoid


GENERIC_PLAN = Plan("generic", GENERIC, GENERIC_SIGMOID, slabs=False)
WHOLE_PLAN = Plan("whole", _whole.WHOLE, _whole.WHOLE_SIGMOID, slabs=False)
SLAB_PLAN = Plan("slab", _native.NATIVE, _whole.WHOLE_SIGMOID, slabs=True)
PLANS = {plan.name: plan for plan in (GENERIC_PLAN, WHOLE_PLAN, SLAB_PLAN)}

_forced: Plan | None = None


@contextlib.contextmanager
def forced(name: str) -> Iterator[None]:
    """Run the calls inside on plan `name` wherever a plan is free to choose (tests)."""
    global _forced
    previous, _forced = _forced, PLANS[name]
    try:
        yield
    finally:
        _forced = previous


def choose(logits: Tensor, *others: Tensor | None) -> Plan:
    """The plan of a call whose logits (as the core computes with them) are `logits`;
    `others` are the call's other tensors (a ``torch.func`` wrapper on any of them
    requires the generic plan)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return GENERIC_PLAN
    if any_functorch(logits, *others):
        return GENERIC_PLAN
    if _forced is not None:
        return _forced
    if logits.device.type != "cpu" or logits.numel() <= SMALL_ELEMENTS:
        return WHOLE_PLAN
    return SLAB_PLAN
