"""The array namespace the core computes with on torch tensors, and the plan of a call.

The core's arithmetic runs on ``array_api_compat.torch`` with a few functions replaced
(:data:`XP`): not fast paths, but fixes so that the same operations trace under
``torch.compile`` (no ``math.isnan`` on a symbolic bound, no specialisation on a symbolic
size) and batch under the legacy vmap of ``is_grads_batched``. Whether a call may use the
native slab kernels (:mod:`._native`) is decided here from static facts only
(:func:`native_plan`).
"""

from __future__ import annotations

import numbers
import types
from typing import Any

import torch
from array_api_compat import array_namespace
from torch import Tensor, nn

from .._core import _checks

_COMPAT = array_namespace(torch.empty(0))
"""The array-API namespace of torch tensors (``array_api_compat.torch``)."""


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float32 for 16-bit floating tensors, the tensor's own dtype otherwise."""
    return _checks.compute_dtype(_COMPAT, tensor.dtype)


def _take_along_axis(x: Tensor, indices: Tensor, /, *, axis: int = -1) -> Tensor:
    """``take_along_axis`` as one ``torch.gather`` where the standard's broadcasting and
    negative indices are not needed (the core gathers one in-range class per element)."""
    same_shape = indices.ndim == x.ndim and all(
        size == x.shape[dim] for dim, size in enumerate(indices.shape) if dim != axis % x.ndim
    )
    if not same_shape:
        return _COMPAT.take_along_axis(x, indices, axis=axis)
    return torch.gather(x, axis, indices)


def _broadcast_to(x: Tensor, /, shape: tuple[int, ...]) -> Tensor:
    """``broadcast_to`` as ``Tensor.expand`` (the same view), which the legacy vmap of
    ``torch.autograd.grad(..., is_grads_batched=True)`` can batch."""
    return x.expand(shape)


def _clip(x: Tensor, /, min: Any = None, max: Any = None) -> Tensor:
    """``clip`` as ``torch.clamp`` with Python-number bounds: array_api_compat's reads its
    bounds with ``math.isnan``, which ``torch.compile`` cannot trace for a symbolic class
    count (``dynamic=True``)."""
    return torch.clamp(x, min=min, max=max)


def _asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Tensor:
    """``asarray``; a Python number as ``torch.full``, which keeps a symbolic size (the mean's
    element count under ``torch.compile(dynamic=True)``) symbolic instead of specialising
    the graph to it."""
    if isinstance(obj, (numbers.Real, torch.SymInt, torch.SymFloat)) and not isinstance(obj, bool):
        return torch.full((), obj, dtype=dtype, device=device)  # type: ignore[call-overload]
    return _COMPAT.asarray(obj, dtype=dtype, device=device, copy=copy)


def _namespace_with(name: str, **functions: Any) -> types.ModuleType:
    """``array_api_compat.torch`` with some functions replaced or added."""
    namespace = types.ModuleType(f"{__name__}.{name}", _COMPAT.__doc__)
    namespace.__dict__.update(
        (key, value)
        for key, value in vars(_COMPAT).items()
        if not key.startswith("__") or key == "__array_namespace_info__"
    )
    namespace.__dict__.update(functions)
    return namespace


XP = _namespace_with(
    "namespace",
    asarray=_asarray,
    broadcast_to=_broadcast_to,
    clip=_clip,
    take_along_axis=_take_along_axis,
)
"""What the core computes with on torch tensors."""

for _tensor_type in (Tensor, nn.Parameter):
    # the core then finds XP for a tensor by one look-up (no array_api_compat type checks
    # for torch.compile to trace)
    _checks.register_namespace(_tensor_type, XP)


def is_functorch(tensor: Tensor) -> bool:
    """A tensor seen through a ``torch.func`` transform, or batched by autograd itself
    (``torch.autograd.grad(..., is_grads_batched=True)``, which uses the legacy vmap)."""
    functorch = torch._C._functorch
    return functorch.is_functorch_wrapped_tensor(tensor) or functorch.is_legacy_batchedtensor(
        tensor
    )


def native_plan(*tensors: Tensor | None) -> bool:
    """Whether the native slab kernels may run: plain eager execution without a graph being
    recorded. Not where in-place work on temporaries is unsafe or pointless: autograd
    recording, ``torch.func`` transforms, ``torch.compile`` (which fuses the plain
    operations itself)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return False
    return not any(is_functorch(t) for t in tensors if t is not None)
