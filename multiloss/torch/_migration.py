"""Errors that carry the migration: the keywords of older PyTorch losses and of the focal
loss classes copied from blogs, refused with the keywords to write instead."""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

_Init = TypeVar("_Init", bound=Callable[..., None])
_LEGACY_KEYWORDS = ("size_average", "reduce")


def _legacy_reduction(legacy: dict[str, object]) -> str:
    """The `reduction` that PyTorch's deprecated `size_average` / `reduce` meant
    (`torch.nn._reduction.legacy_get_string`'s rule: None counts as True)."""
    size_average, reduce = legacy.get("size_average"), legacy.get("reduce")
    if reduce is not None and not reduce:
        return "none"
    return "mean" if size_average is None or size_average else "sum"


def migration_errors(source: str, *legacy_order: str) -> Callable[[_Init], _Init]:
    """Wrap a criterion's `__init__` so that PyTorch's removed `size_average` / `reduce`
    and hyperparameters given by position raise a `TypeError` that names the keywords to
    write. `legacy_order` is the positional order of `source`, the class a user comes from
    (`torch.nn`'s, or the focal loss class copied from blogs); the signature itself is
    unchanged (`functools.wraps`)."""

    def decorate(init: _Init) -> _Init:
        parameters = list(inspect.signature(init).parameters.values())[1:]
        positional = sum(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)

        @functools.wraps(init)
        def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> None:
            name = type(self).__name__
            legacy = {key: kwargs.pop(key) for key in _LEGACY_KEYWORDS if key in kwargs}
            if len(args) > positional:
                named = dict(zip(legacy_order, args, strict=False))
                # PyTorch's positional None means "not given"; a value overrides reduction
                given = {k: named.pop(k) for k in _LEGACY_KEYWORDS if k in named}
                legacy.update({k: v for k, v in given.items() if v is not None})
                if legacy:  # PyTorch: the legacy pair overrides `reduction`
                    named.pop("reduction", None)
                keywords = [f"{key}={value!r}" for key, value in named.items()]
                if legacy:
                    keywords.append(f"reduction={_legacy_reduction(legacy)!r}")
                message = (
                    f"{name}() takes {positional or 'no'} positional argument"
                    f"{'' if positional == 1 else 's'} but {len(args)} were given; its "
                    f"hyperparameters are keyword-only: {name}({', '.join(keywords)}) (read "
                    f"in {source}'s order: {', '.join(legacy_order)})"
                )
                if isinstance(named.get("alpha"), numbers.Real):
                    message += f"; {_SCALAR_ALPHA_NOTE}"
                raise TypeError(message)
            if legacy:
                raise TypeError(
                    f"{name}() does not take {' or '.join(legacy)} (deprecated in PyTorch "
                    f"since 0.4): write reduction={_legacy_reduction(legacy)!r}, what "
                    + ", ".join(f"{key}={value!r}" for key, value in legacy.items())
                    + " meant"
                )
            init(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


_SCALAR_ALPHA_NOTE = (
    "a scalar alpha weights class 0 by 1 - alpha and the other classes by alpha here "
    "(RetinaNet's rule), while the focal loss class copied from blogs weights class 0 by "
    "alpha: pass alpha=[a, 1 - a] for that class's numbers (docs/migration.md)"
)
