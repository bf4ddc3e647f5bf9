"""``python -m shared.cli`` — the same as the ``rapport`` console script."""

from shared.cli import main

raise SystemExit(main())
