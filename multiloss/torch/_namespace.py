"""The array namespace the core computes with on torch tensors, and the adapter's backend
policy (:data:`POLICY`: is a call traced, may a tensor's values be read now).

The core's arithmetic runs on ``array_api_compat.torch`` with a few functions replaced
(:data:`XP`): not fast paths, but fixes so that the same operations trace under
``torch.compile`` (no ``math.isnan`` on a symbolic bound, no specialisation on a symbolic
size) and batch under the legacy vmap of ``is_grads_batched``, and the few the core calls
most often bound straight to the torch function they wrap (the same operation without
the wrapper's Python work on every call: small calls pay it per operation). Which
kernels a call runs is its execution plan's (:mod:`._plans`).
"""

from __future__ import annotations

import numbers
import types
from typing import Any

import torch
from array_api_compat import array_namespace
from torch import Tensor, nn

from .._core import _checks
from .._core.policy import BackendPolicy, register_backend

_COMPAT = array_namespace(torch.empty(0))
"""The array-API namespace of torch tensors (``array_api_compat.torch``)."""


_COMPUTE_DTYPES = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float32 for 16-bit floating tensors, the tensor's own dtype otherwise (the core's
    rule, ``_checks.compute_dtype``, as one look-up)."""
    return _COMPUTE_DTYPES.get(tensor.dtype, tensor.dtype)


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


def _where(condition: Tensor, x1: Any, x2: Any, /) -> Tensor:
    """``where`` as ``torch.where``, which promotes its operands (a Python number does not
    promote a tensor) as the standard asks; array_api_compat's wrapper only adds Python
    work on every call. A Python number where the condition holds, into a floating tensor
    of the condition's shape (the core's guards, ``where(c == 0, 0.0, c · v)``), is
    ``masked_fill``: the same result in one operation (``torch.where`` first makes the
    number a tensor)."""
    if (
        type(x1) is float
        and isinstance(x2, Tensor)
        and x2.is_floating_point()
        and condition.shape == x2.shape
    ):
        return torch.masked_fill(x2, condition, x1)
    return torch.where(condition, x1, x2)


def _squeeze(x: Tensor, /, axis: int | tuple[int, ...]) -> Tensor:
    """``squeeze`` of one axis as ``torch.squeeze`` where that axis has size 1 (the only use
    the core makes of it); otherwise array_api_compat's, which raises."""
    if isinstance(axis, int) and x.shape[axis] == 1:
        return torch.squeeze(x, axis)
    return _COMPAT.squeeze(x, axis=axis)


def _expand_dims(x: Tensor, /, *, axis: int = 0) -> Tensor:
    """``expand_dims`` as ``torch.unsqueeze`` (the same view)."""
    return torch.unsqueeze(x, axis)


def _sum(x: Tensor, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tensor:
    """``sum`` of a floating tensor as ``torch.sum`` (the same reduction); of other dtypes,
    array_api_compat's (the standard's accumulation dtypes)."""
    if dtype is None and x.is_floating_point():
        if axis is None:
            return torch.sum(x)
        return torch.sum(x, dim=axis, keepdim=keepdims)
    return _COMPAT.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)


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
    expand_dims=_expand_dims,
    squeeze=_squeeze,
    sum=_sum,
    take_along_axis=_take_along_axis,
    where=_where,
)
"""What the core computes with on torch tensors."""


def any_functorch(*tensors: Tensor | None) -> bool:
    """Whether any of the tensors is seen through ``torch.func`` or the legacy vmap
    (:func:`is_functorch`); with no functorch transform active, only the legacy batching
    can apply, which is one check per tensor instead of two."""
    present = [t for t in tensors if t is not None]
    if torch._C._are_functorch_transforms_active():
        return any(is_functorch(t) for t in present)
    return any(torch._C._functorch.is_legacy_batchedtensor(t) for t in present)


def is_functorch(tensor: Tensor) -> bool:
    """A tensor seen through a ``torch.func`` transform, or batched by autograd itself
    (``torch.autograd.grad(..., is_grads_batched=True)``, which uses the legacy vmap)."""
    functorch = torch._C._functorch
    return functorch.is_functorch_wrapped_tensor(tensor) or functorch.is_legacy_batchedtensor(
        tensor
    )


# ---------------------------------------------------------------------------------------
# The backend policy: the one place where the adapter decides whether values are read.


def is_tracing() -> bool:
    """Whether ``torch.compile``, ``torch.jit.trace`` or TorchScript is tracing now."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def is_concrete(tensor: Tensor) -> bool:
    """A plain CPU tensor whose values can be read without a device sync or a trace (not a
    ``torch.func`` or fake tensor)."""
    if tensor.device.type != "cpu" or is_functorch(tensor):
        return False
    return not isinstance(tensor, torch._subclasses.FakeTensor)


def values_readable(*values: object) -> bool:
    """Whether the value checks (docs/semantics.md, Bad input) run for a call with these
    arguments: nothing traces, and every tensor among them is concrete (:func:`is_concrete`).
    The policy's answer (:data:`POLICY`), here without the generic look-up (every small
    call asks it)."""
    return not is_tracing() and all_concrete(*values)


def all_concrete(*values: object) -> bool:
    """Whether every tensor among `values` is concrete (:func:`is_concrete`), for a caller
    that knows already that nothing traces."""
    return all(is_concrete(t) for t in values if isinstance(t, Tensor))


def _host(tensor: Tensor) -> tuple[Any, Tensor]:
    return XP, tensor


POLICY = BackendPolicy("torch", is_tracing, is_concrete, _host)
"""The torch adapter's backend policy, registered with the core for tensors."""

for _tensor_type in (Tensor, nn.Parameter):
    # the core then finds XP for a tensor by one look-up (no array_api_compat type checks
    # for torch.compile to trace), and the policy beside it
    _checks.register_namespace(_tensor_type, XP)
register_backend(POLICY, (Tensor, nn.Parameter), subclasses=True)


def check_logits(logits: object, name: str = "logits") -> None:
    """`logits` must be a tensor (a target or weight of another backend is refused by the
    core, with its message)."""
    if not isinstance(logits, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor for multiloss.torch; got "
            f"{type(logits).__module__}.{type(logits).__name__}"
        )


def check_target(target: object) -> None:
    """A target that is not a tensor (a NumPy array, a list: multiloss.jax takes them) is
    refused with the fix."""
    if not isinstance(target, Tensor):
        kind = f"{type(target).__module__}.{type(target).__name__}"
        problem = (  # an array of another backend, or not an array at all (a list)
            f"arrays of different backends cannot be mixed (logits: torch.Tensor, target: {kind})"
            if hasattr(target, "__array_namespace__") or hasattr(target, "__array__")
            else f"target must be a torch.Tensor for multiloss.torch; got {kind}"
        )
        raise TypeError(f"{problem}: convert it with torch.as_tensor(target, device=logits.device)")


NO_TORCHSCRIPT = (
    "multiloss.torch does not support TorchScript (torch.jit.script, torch.jit.trace): its "
    "losses are Python autograd Functions, which TorchScript can neither compile nor trace; "
    "use torch.compile (or torch.export) instead"
)


def _refuse_torchscript() -> None:
    raise NotImplementedError(NO_TORCHSCRIPT)


def refuse_torchscript(*functions: Any) -> None:
    """Make ``torch.jit.script`` of these public functions (directly, or of a module whose
    code calls them) raise ``NotImplementedError(NO_TORCHSCRIPT)``: TorchScript calls an
    object's ``__prepare_scriptable__`` before compiling it, for functions too."""
    for function in functions:
        function.__prepare_scriptable__ = _refuse_torchscript
