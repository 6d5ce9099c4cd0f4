"""Reading the JSON files users write (architectures, search spaces)."""
from __future__ import annotations

import json


def read_json(path, what):
    """The parsed contents of ``path``; a ValueError naming ``what`` and the
    file when it cannot be read or is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{what} {path!r} is not JSON: {exc}") from None
