"""Which engine runs the losses: fused Triton kernels or the eager plans.

* ``"auto"`` (the default): the Triton kernels for CUDA tensors (ROCm included) where
  `triton` imports, the eager plans everywhere else;
* ``"triton"``: the kernels wherever they can run: CUDA tensors; CPU tensors in Triton's
  interpreter (only when the environment variable ``TRITON_INTERPRET=1`` was set before
  `triton` was first imported); ``meta`` tensors, which run the custom operators' fake
  implementations (shapes only, for counting). Anything else raises a `RuntimeError`
  that says why;
* ``"eager"``: the eager plans (PyTorch operations over the array-API core) always.

The kernels take the softmax family's losses, the distribution focal loss (with its
`weight`, bins along any axis) and the element-wise ones: binary cross-entropy, the
sigmoid focal loss, the Asymmetric Loss, the varifocal and quality focal losses, each with
`weight`, `pos_weight` and the options folded into them (``ignore_index``,
``label_smoothing``, a per-class α). Under every engine some calls keep the eager plans,
which have what the kernels lack: float64 logits of the softmax family and of the
distribution focal loss (their kernels compute in float32), a hyperparameter given as a
tensor (the kernels specialise on its value), a gradient with respect to a target or a
weight, forward-mode AD and the `torch.func` transforms. A second derivative
(``create_graph=True``) through a kernel call is taken by the eager plans' closed forms.

Choose with the context manager [`engine`][multiloss.torch.engine.engine] or, for the
whole process, [`set_engine`][multiloss.torch.engine.set_engine]. Nothing here imports
`triton` before a kernel is needed.

Examples:
    >>> import torch
    >>> import multiloss.torch as mt
    >>> with mt.engine("eager"):
    ...     loss = mt.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]))
    >>> mt.get_engine()
    'auto'
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .._core import (
    AsymmetricConfig,
    DistributionConfig,
    QualityFocalConfig,
    SigmoidConfig,
    SoftmaxConfig,
    VarifocalConfig,
)

ENGINES = ("auto", "triton", "eager")
"""The engine names."""

_current = "auto"
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}; got {name!r}")
    return name


def get_engine() -> str:
    """The engine chosen now: ``"auto"``, ``"triton"`` or ``"eager"``."""
    return _current


def set_engine(name: str) -> None:
    """Choose the engine of every later call in this process (see the module docstring).

    Raises:
        ValueError: an unknown name.
    """
    global _current
    _current = _check_name(name)


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Run the loss calls inside the block on engine `name`, then restore the previous one.

    Args:
        name: ``"auto"``, ``"triton"`` or ``"eager"`` (see the module docstring).

    Raises:
        ValueError: an unknown name.

    Examples:
        >>> import torch
        >>> import multiloss.torch as mt
        >>> with mt.engine("eager"):
        ...     mt.focal_loss(torch.zeros(1, 2), torch.tensor([1])).shape
        torch.Size([])
    """
    global _current
    previous, _current = _current, _check_name(name)
    try:
        yield
    finally:
        _current = previous


@functools.cache
def triton_available() -> bool:
    """Whether `triton` can be imported (found on the path; not imported here)."""
    return importlib.util.find_spec("triton") is not None


def interpreter_active() -> bool:
    """Whether the kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` was set when
    the kernels were defined, which imports `triton`)."""
    from triton.runtime.interpreter import InterpretedFunction

    from ._triton import _softmax_kernels

    return isinstance(_softmax_kernels.reduce_kernel, InterpretedFunction)


def kernels_for(logits: Tensor, *, float64: bool = False) -> bool:
    """Whether a call on `logits` runs the Triton kernels under the engine chosen now.

    The fused head and the vocabulary-parallel losses ask this too. Static facts only:
    the engine, the device type and the dtype (float32 and 16-bit; float64 too with
    `float64`, for kernels that compute in it: the sigmoid family's).

    Raises:
        RuntimeError: engine ``"triton"`` where the kernels cannot run: no `triton`, a CPU
            tensor without the interpreter, a device Triton does not serve.
    """
    name = _current
    dtypes = (*_KERNEL_DTYPES, torch.float64) if float64 else _KERNEL_DTYPES
    if name == "eager" or logits.dtype not in dtypes:
        return False
    device = logits.device.type
    if name == "auto":
        return device == "cuda" and triton_available()
    if not triton_available():
        raise RuntimeError(
            'engine("triton") needs the triton package, which is not installed; install '
            'it (pip install triton) or use engine("eager")'
        )
    if device in ("cuda", "meta"):
        return True
    if device == "cpu":
        if interpreter_active():
            return True
        raise RuntimeError(
            'engine("triton") runs on CPU tensors only in Triton\'s interpreter, which is '
            "off: set the environment variable TRITON_INTERPRET=1 before triton is first "
            'imported, move the tensors to a CUDA device, or use engine("eager")'
        )
    raise RuntimeError(
        f'engine("triton") has no kernels for {device} tensors (CUDA, and CPU in '
        f'Triton\'s interpreter, only); use engine("eager")'
    )


def _eager_only(tensors: Sequence[object]) -> bool:
    """Calls the kernels do not take: a gradient wanted for a target or weight, or a
    ``torch.func`` transform or forward-mode AD that could see the call."""
    from ._autograd import tangents_possible
    from ._namespace import any_functorch

    present = [t for t in tensors if isinstance(t, Tensor)]
    if any(t.requires_grad for t in present[1:]):
        return True
    if torch.compiler.is_compiling():  # no transform or dual level reaches a compiled call
        return False
    return tangents_possible() or any_functorch(*present)


_SIGMOID_KERNEL_CONFIGS = (SigmoidConfig, AsymmetricConfig, VarifocalConfig, QualityFocalConfig)


def _has_kernel(config: Any, operands: Any) -> bool:
    """Whether the sigmoid kernels compute this element-wise call: binary cross-entropy,
    sigmoid focal, the Asymmetric Loss, the varifocal and quality focal losses, each with
    `weight` and `pos_weight` (ignore_index, label smoothing and a per-class α arrive
    folded into the target and weight; the varifocal loss's smoothing is a kernel flag)."""
    del operands
    return isinstance(config, _SIGMOID_KERNEL_CONFIGS)


def kernel_loss(
    config: Any,
    logits: Tensor,
    operands: Any,
    given: Sequence[object],
    *,
    keep_dtype: bool,
) -> Tensor | None:
    """The reduced loss from the kernels, or None where the call keeps the eager plans.

    `operands` are the core's prepared operands (logits still in their own dtype);
    `given` the call's tensors as the user gave them (logits first), which decide whether
    a gradient other than the logits' is wanted.
    """
    # the softmax family and the distribution focal loss compute in float32 only
    softmax = isinstance(config, (SoftmaxConfig, DistributionConfig))
    if operands.hyper:  # a hyperparameter given as a tensor: the kernels specialise on it
        return None
    if _current == "eager" or not kernels_for(logits, float64=not softmax):
        return None
    if not (softmax or _has_kernel(config, operands)):
        return None
    if _eager_only(given):
        return None
    if isinstance(config, DistributionConfig):
        from ._triton.distribution import distribution_loss

        return distribution_loss(
            config, logits, operands.target, operands.weight, keep_dtype=keep_dtype
        )
    if isinstance(config, SoftmaxConfig):
        from ._triton.softmax import softmax_loss

        return softmax_loss(
            config, logits, operands.target, operands.class_weight, keep_dtype=keep_dtype
        )
    from ._triton.sigmoid import sigmoid_loss

    weight, pos_weight = getattr(operands, "weight", None), getattr(operands, "pos_weight", None)
    result: Tensor = sigmoid_loss(
        config, logits, operands.target, weight, pos_weight, keep_dtype=keep_dtype
    )
    return result


__all__ = [
    "ENGINES",
    "engine",
    "get_engine",
    "interpreter_active",
    "kernels_for",
    "set_engine",
    "triton_available",
]
