"""``python -m xpnn ...`` is the ``xpnn`` command (for an environment where
the package is importable but its console script is not installed)."""
import sys

from .cli import main

sys.exit(main())
