"""The layout holds: which code path runs is decided in xpnn.backend alone.

Outside ``xpnn/backend/`` no module may compare anything with a backend's
name, branch on ``get_backend()``, ``backend_of()``, ``is_host()``,
``owner()`` or ``common_backend()``, or import a backend's private modules
(``_cuda``, ``_cudnn``, ``_cython``, ``_host``): a question that differs
between backends is a property of the Backend, and a fast op is a method of
its Kernels. Each rule is checked on planted code first, so the test cannot
pass by finding nothing.
"""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "xpnn"
BACKEND_NAMES = {"numpy", "cupy", "array_api_strict"}
PRIVATE = {"_cuda", "_cudnn", "_cython", "_host"}
ASKS_WHICH = {"get_backend", "backend_of", "is_host", "owner", "common_backend"}


def _called(node):
    """The function names called anywhere inside ``node``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            yield f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)


def _strings(node):
    """String constants of a comparison operand (also inside a tuple, list
    or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for e in node.elts:
            yield from _strings(e)


def violations(source: str, where: str = "<code>") -> list[str]:
    """Every place in ``source`` that decides a code path by backend."""
    out = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [a.name for a in node.names]
            bad = {part for m in mods for part in m.split(".")} & PRIVATE
            if bad:
                out.append(f"{line}: imports a backend's private module {sorted(bad)}")
        elif isinstance(node, ast.Compare):
            names = {s for operand in [node.left, *node.comparators]
                     for s in _strings(operand)} & BACKEND_NAMES
            if names:
                out.append(f"{line}: compares with a backend's name {sorted(names)}")
        tests = []
        if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            tests.append(node.test)
        elif isinstance(node, ast.comprehension):
            tests.extend(node.ifs)
        for t in tests:
            asked = set(_called(t)) & ASKS_WHICH
            if asked:
                out.append(f"{line}: branches on {sorted(asked)}")
    return out


@pytest.mark.parametrize("code", [
    'if backend.get_backend() == "numpy":\n    pass',
    'x = 1 if name != "cupy" else 2',
    'ok = b in ("numpy", "array_api_strict")',
    'if backend.is_host(x):\n    pass',
    'while not backend.backend_of(v):\n    pass',
    'y = [v for v in vs if is_host(v)]',
    'assert owner(a) is owner(b)',
    'from .layers import _cuda',
    'from ..backend.cupy._cudnn import forward',
    'import xpnn.backend.numpy._host',
    'from xpnn.backend.numpy import _cython',
])
def test_the_rules_catch_planted_code(code):
    assert violations(code), code


@pytest.mark.parametrize("code", [
    'name = backend.get_backend()\nprint(f"backend {name}")',
    'return own or backend.get_backend()',
    'moved = backend.to_device(x, backend.backend_of(like))',
    'if backend.get(name).readback_is_free:\n    pass',
    'fast = backend.kernels(x).relu_backward(d, x)\nif fast is not None:\n    pass',
    'parser.add_argument("--backend", choices=backend.VALID_BACKENDS)',
    'from ._util import check_int',
])
def test_the_rules_leave_the_allowed_alone(code):
    assert violations(code) == [], code


def test_no_module_outside_the_backend_decides_a_code_path_by_backend():
    found = []
    checked = 0
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        if rel.parts[:2] == ("xpnn", "backend"):
            continue
        checked += 1
        found += violations(path.read_text(), str(rel))
    assert checked > 30  # the whole package was read
    assert found == [], "\n".join(found)


def test_the_backend_package_holds_every_backend_and_its_private_modules():
    base = ROOT / "backend"
    for part in ("_base.py", "numpy/__init__.py", "numpy/conv.py", "numpy/_host.py",
                 "numpy/_cython/im2col.pyx", "cupy/__init__.py", "cupy/_cuda.py",
                 "cupy/_cudnn.py", "cupy/_update.py", "strict.py"):
        assert (base / part).is_file(), part
    strays = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
              if p.stem in PRIVATE and base not in p.parents]
    assert strays == []


def test_masks_are_the_models_alone():
    """The Solver and the network engine know nothing of pruning masks: the
    model applies them (xpnn.nn.model)."""
    for rel in ("solver.py", "nn/network.py", "nn/layers.py", "nn/sequential.py"):
        text = (ROOT / rel).read_text()
        assert not re.search(r"\bmasks\b|prune_kinds|apply_masks", text), rel


# ---------------------------------------------------------------- no import cycles
def _module_name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root=ROOT):
    """module -> the xpnn modules it imports (anywhere in it: inside
    functions too), from the source text; an imported name that is a module
    counts as that module."""
    files = {_module_name(p): p for p in root.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != mod}
        graph[mod] = deps
    return graph


def cycles(graph):
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_reads_relative_and_lazy_imports():
    g = import_graph()
    assert "xpnn.backend" in g["xpnn.layers.conv"]                  # from ..backend import
    assert "xpnn.layers._columns" in g["xpnn.layers.conv"]          # from ._columns import
    assert "xpnn.nn" in g["xpnn.models.registry"]                   # inside a function
    assert "xpnn.backend.numpy.conv" in g["xpnn.backend.numpy"]     # from . import conv


def test_no_import_cycles_among_xpnn_modules():
    found = cycles(import_graph())
    assert found == [], "\n".join(" <-> ".join(c) for c in found)
