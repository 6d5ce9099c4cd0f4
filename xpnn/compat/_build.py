"""Builds an edition's module tree from a table.

An edition (``xpnn.compat.cs231n_2017`` and friends) is a handful of
modules, each a list of names taken from xpnn or from the edition's
variants. Writing each as a file would repeat the same imports fifty times;
instead :func:`install` creates them as module objects and registers them in
``sys.modules`` under their dotted names, which is where the import system
looks for a submodule once its parent is imported. So
``from xpnn.compat.cs231n_2017.classifiers.fc_net import *`` works as it
does for a package on disk.
"""
from __future__ import annotations

import sys
import types

import numpy


def install(edition_module, modules: dict[str, dict], docs: dict[str, str]) -> None:
    """Create ``<edition>.<path>`` for every dotted ``path`` in ``modules``
    (with its parents; the path "" gives the names of the edition itself),
    holding the given names and ``np`` (every course module imports NumPy
    as np and has no ``__all__``, so its star import brings np, and the
    course's own helper files rely on that); ``__all__`` lists the public
    ones, so a star import brings what the course module would."""
    root = edition_module.__name__
    edition_module.__path__ = []  # a package: its submodules are found in sys.modules
    if "" in modules:   # what the edition's own __init__ star-imports
        edition_module.__dict__.update(modules[""])
        edition_module.__all__ = sorted(n for n in modules[""] if not n.startswith("_"))
    for path in sorted((p for p in modules if p), key=lambda p: p.count(".")):
        parent = edition_module
        parts = path.split(".")
        for depth, part in enumerate(parts):
            full = ".".join([root, *parts[:depth + 1]])
            mod = sys.modules.get(full)
            if mod is None:
                mod = types.ModuleType(full, docs.get(
                    ".".join(parts[:depth + 1]),
                    f"The course module {'.'.join(parts[:depth + 1])!r} of this edition, "
                    f"over xpnn: see {root}."))
                mod.__path__ = []
                mod.__package__ = full
                sys.modules[full] = mod
                setattr(parent, part, mod)
            parent = mod
        names = {"np": numpy, **modules[path]}
        parent.__dict__.update(names)
        parent.__all__ = sorted(n for n in names if not n.startswith("_"))
