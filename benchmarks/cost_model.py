"""What an accelerator would pay for one forward + backward: kernels launched and bytes moved.

**PyTorch** (:func:`count_torch`): a ``TorchDispatchMode`` sees every aten operation that a
call dispatches, backward included. On a GPU each operation that computes something is one
kernel launch and moves its operands' bytes through memory; views (``expand``,
``unsqueeze``, ``detach``, …), empty allocations and Python numbers wrapped as 0-d tensors
launch nothing. Run on ``meta`` tensors, nothing is computed, so the count is exact and
costs no time on this machine (and value checks that read a tensor's entries, which
multiloss runs on concrete CPU tensors only, are not counted, and where multiloss chooses
its path by device type a meta tensor takes a non-CPU device's: what runs is what a GPU runs).

* ``ops``: every aten operation dispatched (views included);
* ``kernels``: the operations that launch a kernel on a GPU;
* ``bytes``: bytes read + written by those kernels: each tensor argument and result once
  (an expanded or broadcast input counts its storage, not its view's size; an in-place
  operation reads and writes its tensor, so counts it twice);
* ``passes`` (where ``full_numel`` is given, the logits' element count): the reads and
  writes of logits-sized data, each tensor argument or result of a kernel whose storage
  holds at least ``full_numel`` elements counting one (so a kernel that reads the logits
  and writes a gradient is two passes); ``target_passes``: those of them that are the
  storage of a tensor given in ``apart`` (a probability target: read, not logits-sized
  work of the loss's own).

A custom operator (``torch.library.custom_op``, e.g. ``torch.ops.multiloss.*``) is one
kernel, named ``namespace::name`` in ``by_kernel``: the dispatch mode sees the operator, not
what its implementation (or, on meta tensors, its fake implementation) runs inside, and its
bytes are its tensor arguments and results once. What autograd runs around it counts as
for any other call: the ``ones_like`` that seeds backward, and the ``zeros`` it fills for an
output's missing gradient (unless the operator's ``setup_context`` turns that off with
``ctx.set_materialize_grads(False)``).

**JAX** (:func:`count_xla`): the optimized HLO of a compiled function (``compiled.as_text()``
of ``jax.jit(f).lower(...).compile()``). Its entry computation is the sequence of what the
runtime launches: each top-level instruction is one kernel, except those in
:data:`XLA_FREE_OPCODES` (parameters, constants, tuples and their elements, bitcasts,
scheduling barriers: they move no data) and the ``-done``/``-update`` halves of asynchronous
pairs (their ``-start`` counts). A ``fusion``, ``custom-call``, ``reduce``, ``dot``, ``copy``,
``scatter``, … each counts one; a ``while``, ``conditional`` or ``call`` counts one, its body
not expanded. ``ops`` is every instruction of the entry computation, the free ones included;
``bytes`` is XLA's own ``compiled.cost_analysis()["bytes accessed"]``. The counts are those
of the backend the function was compiled for (XLA:CPU here fuses differently from XLA:GPU).

Modelled time (:meth:`Cost.modelled_seconds`): kernels × :data:`LAUNCH_SECONDS` + bytes /
:data:`BYTES_PER_SECOND`, a GPU where every kernel pays its launch and then streams its bytes
at the memory's full bandwidth (no compute bound, no caches, no overlap between kernels).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LAUNCH_SECONDS = 5e-6
"""Time to launch one kernel on a GPU, roughly (eager PyTorch's per-operation overhead)."""
BYTES_PER_SECOND = 3.35e12
"""H100 SXM HBM3 bandwidth, 3.35 TB/s."""

_NO_KERNEL = frozenset(
    {
        "detach",
        "alias",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "lift_fresh",
        "scalar_tensor",
        "_local_scalar_dense",
    }
)
"""Torch operations that launch no kernel besides views: allocations without a fill, 0-d
tensors made from a Python number (a host-side wrapped number on a GPU)."""

XLA_FREE_OPCODES = frozenset(
    {
        "parameter",
        "constant",
        "tuple",
        "get-tuple-element",
        "bitcast",
        "after-all",
        "add-dependency",
        "opt-barrier",
        "partition-id",
        "replica-id",
    }
)
"""HLO opcodes of the entry computation that launch no kernel: they name, group or
reinterpret buffers, or order the schedule, without moving data."""


def modelled_seconds(kernels: int, bytes_accessed: float) -> float:
    """kernels × 5 µs + bytes / 3.35 TB/s."""
    return kernels * LAUNCH_SECONDS + bytes_accessed / BYTES_PER_SECOND


@dataclass
class Cost:
    """Counts of one call: see the module's docstring for what each one counts."""

    ops: int = 0
    kernels: int = 0
    bytes: int = 0
    by_kernel: Counter[str] = field(default_factory=Counter)
    passes: int = 0
    target_passes: int = 0

    @property
    def modelled_seconds(self) -> float:
        return modelled_seconds(self.kernels, self.bytes)


def _tensor_bytes(value: Any) -> int:
    import torch

    if not isinstance(value, torch.Tensor):
        return 0
    size = value.numel() * value.element_size()
    try:
        return min(size, value.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):
        return size


def _tensor_elements(value: Any) -> int:
    """Elements of a tensor's view, at most those its storage holds (0 for a non-tensor)."""
    import torch

    if not isinstance(value, torch.Tensor):
        return 0
    return _tensor_bytes(value) // max(value.element_size(), 1)


def kernel_name(func: Any) -> str:
    """An aten operation's name (``exp``), another namespace's as ``namespace::name``."""
    name: str = func.overloadpacket.__name__
    namespace = getattr(func, "namespace", "aten")
    return name if namespace == "aten" else f"{namespace}::{name}"


def count_torch(
    step: Callable[[], Any], full_numel: int | None = None, apart: tuple[Any, ...] = ()
) -> Cost:
    """The cost of running `step()` (typically a loss on meta tensors and its backward);
    `full_numel`: the logits' element count, for ``passes``; `apart`: tensors whose
    storage's passes are also counted in ``target_passes``."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    cost = Cost()
    apart_storages = {t.untyped_storage()._cdata for t in apart}

    class _Counting(TorchDispatchMode):
        def __torch_dispatch__(
            self,
            func: Any,
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            result = func(*args, **(kwargs or {}))
            cost.ops += 1
            name = kernel_name(func)
            if func.is_view or name in _NO_KERNEL:
                return result
            cost.kernels += 1
            cost.by_kernel[name] += 1
            leaves = tree_leaves((args, kwargs or {})) + tree_leaves(result)
            cost.bytes += sum(_tensor_bytes(leaf) for leaf in leaves)
            if full_numel:
                full = [leaf for leaf in leaves if _tensor_elements(leaf) >= full_numel]
                cost.passes += len(full)
                cost.target_passes += sum(
                    leaf.untyped_storage()._cdata in apart_storages for leaf in full
                )
            return result

    with _Counting():
        step()
    return cost


_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\s([a-z][a-z0-9\-]*)\(")


def entry_opcodes(hlo_text: str) -> list[str]:
    """The opcode of every instruction of the HLO module's entry computation, in order."""
    opcodes: list[str] = []
    inside = False
    for line in hlo_text.splitlines():
        if not inside:
            inside = line.startswith("ENTRY ")
            continue
        if line.startswith("}"):
            break
        match = _INSTRUCTION.match(line)
        if match:
            opcodes.append(match.group(1))
    if not inside:
        raise ValueError("no ENTRY computation in the HLO text")
    return opcodes


def is_xla_kernel(opcode: str) -> bool:
    """Whether a top-level HLO instruction launches a kernel (the rule in the docstring)."""
    if opcode in XLA_FREE_OPCODES:
        return False
    return not opcode.endswith(("-done", "-update"))


def count_hlo(hlo_text: str, bytes_accessed: float = 0.0) -> Cost:
    """Kernels and ops of an optimized HLO module's entry computation; `bytes_accessed`
    as XLA's cost analysis reports it."""
    cost = Cost(bytes=int(bytes_accessed))
    for opcode in entry_opcodes(hlo_text):
        cost.ops += 1
        if is_xla_kernel(opcode):
            cost.kernels += 1
            cost.by_kernel[opcode] += 1
    return cost


def count_xla(compiled: Any) -> Cost:
    """The cost of a compiled JAX function (``jax.jit(f).lower(*args).compile()``)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jaxlib: one dict per computation
        analysis = analysis[0] if analysis else {}
    return count_hlo(compiled.as_text(), float((analysis or {}).get("bytes accessed", 0.0)))
