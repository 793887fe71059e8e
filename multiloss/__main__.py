"""``python -m multiloss``: the same as the ``multiloss`` console script."""

from .cli import main

raise SystemExit(main())
