"""What to tell a user whose backend is not installed."""

from __future__ import annotations


def missing_backend(module: str, package: str, extra: str) -> ImportError:
    """The error for importing `module` (``multiloss.torch``) without `package` installed."""
    return ImportError(
        f"{module} needs {package}, which is not installed: from a multiloss checkout, "
        f'pip install ".[{extra}]" (after a release: pip install "multiloss[{extra}]")'
    )
