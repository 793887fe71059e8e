"""The undo handle of `multiloss.torch.hf.install` and `multiloss.torch.hf.fuse`: entries
of dicts and attributes of objects that were replaced, and what they held before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Installed:
    """What [`install`][multiloss.torch.hf.install] (or [`fuse`][multiloss.torch.hf.fuse])
    replaced, and its undo.

    `uninstall()` puts every replaced entry back (a second call does nothing); as a
    context manager, the `with` block's end uninstalls. Undo in the reverse order of
    installing: uninstalling while a later installation over the same entries is in place
    raises `RuntimeError`.

    Attributes:
        losses: the installed functions, by `LOSS_MAPPING` key (or `"forward"`).
    """

    def __init__(
        self,
        replaced: list[tuple[Any, str, Any, Any]],
        after_uninstall: Callable[[], None] | None = None,
    ) -> None:
        self._replaced = replaced
        self._after_uninstall = after_uninstall
        self.losses = {key: new for _, key, _, new in replaced}

    @property
    def installed(self) -> bool:
        """Whether the replacements are in place (not yet uninstalled)."""
        return bool(self._replaced)

    def uninstall(self) -> None:
        """Put back what was replaced."""
        for container, key, _, new in self._replaced:
            current = get_entry(container, key)
            if current is not new:
                raise RuntimeError(
                    f"cannot uninstall {key!r}: it was replaced again since ({current!r}); "
                    f"uninstall in the reverse order of installing"
                )
        for container, key, previous, _ in reversed(self._replaced):
            set_entry(container, key, previous)
        self._replaced = []
        if self._after_uninstall is not None:
            self._after_uninstall()

    def __enter__(self) -> Installed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        state = "installed" if self.installed else "uninstalled"
        return f"<multiloss.torch.hf.Installed {state}: {', '.join(self.losses)}>"


ABSENT = object()
"""An attribute that was not set on the instance (its class's is used): undo deletes."""


def get_entry(container: Any, key: str) -> Any:
    """`container[key]` of a dict, the attribute `key` of anything else."""
    return container[key] if isinstance(container, dict) else getattr(container, key)


def set_entry(container: Any, key: str, value: Any) -> None:
    """Set `container[key]` of a dict, the attribute `key` of anything else (deleted
    for `ABSENT`)."""
    if isinstance(container, dict):
        container[key] = value
    elif value is ABSENT:
        delattr(container, key)
    else:
        setattr(container, key, value)
