"""What to tell a user whose backend is not installed."""

from __future__ import annotations


def missing_backend(module: str, package: str, extra: str) -> ImportError:
    """The error for importing `module` (``multiloss.torch``) without `package` installed."""
    return ImportError(
        f"{module} needs {package}, which is not installed: from a multiloss checkout, "
        f'pip install ".[{extra}]" (after a release: pip install "multiloss[{extra}]")'
    )


def public_names(public: list[str], *submodules: str) -> list[str]:
    """What ``dir()`` of a public module lists: its ``__all__`` and its public submodules,
    not what it imported for itself (``annotations``, ``torch``, …)."""
    return sorted({*public, *submodules})
