"""What every xpnn model is, apart from how it computes: its ``params``
(the dict the Solver updates), ``reg``, ``dtype``, batch-norm ``bn_params``
(running statistics), its pruning masks, and the moves of all of them
between backends.

The masks belong to the model, as torch's pruning keeps a module's mask on
the module: ``params`` is a :class:`MaskedParams` dict, which multiplies
every value assigned to a masked entry (an update rule's result, a restored
checkpoint) by its mask, so pruned entries stay exactly zero however the
params are changed. Nothing that updates the params (the Solver, a
notebook's own loop) needs to know about masks.
"""
from __future__ import annotations

import numpy as np

from .. import backend

__all__ = ["DeviceModel", "MaskedParams"]


class MaskedParams(dict):
    """A params dict that applies pruning masks on assignment:
    ``params[name] = value`` stores ``value * masks[name]`` where ``name``
    is masked. ``masks`` is the model's mask dict (shared, not copied)."""

    def __init__(self, items=(), masks=None):
        super().__init__()
        self.masks = {} if masks is None else masks
        self.update(items)

    def __setitem__(self, name, value):
        mask = self.masks.get(name)
        super().__setitem__(name, value if mask is None else value * mask)

    def update(self, *args, **kwargs):
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def setdefault(self, name, value=None):
        if name not in self:
            self[name] = value
        return self[name]


class DeviceModel:
    """What every xpnn model shares: ``params`` (the dict the Solver
    updates, masks applied), ``reg``, ``dtype``, the batch-norm
    ``bn_params`` (running statistics), ``masks`` and ``prune_kinds``
    (:mod:`xpnn.prune`), and the moves of all of them between backends."""

    #: set by subclasses: the constructor arguments, for checkpoints
    init_kwargs: dict
    #: False: the data is cast to the model's dtype (xpnn's models); True:
    #: a wider data type is kept, as the course's NumPy code promotes (the
    #: course editions' models)
    promote_input = False

    def __init__(self, reg=0.0, dtype=np.float32):
        self.reg = float(reg)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating type (float32 or float64), got {dtype!r}")
        self._masks: dict = {}
        self._params = MaskedParams(masks=self._masks)
        self.prune_kinds: dict = {}
        self.bn_params: list[dict] = []

    # ------------------------------------------------------------ params and masks
    @property
    def params(self) -> MaskedParams:
        """Parameter name -> array (``W1``, ``b1``... or ``0.W``...)."""
        return self._params

    @params.setter
    def params(self, value):
        self._params = MaskedParams(value, self._masks)

    @property
    def masks(self) -> dict:
        """Pruning masks (0/1 arrays on the params' backend) by param name;
        empty when nothing is pruned. Assigning masks applies them."""
        return self._masks

    @masks.setter
    def masks(self, value):
        self._masks = dict(value)
        self._params.masks = self._masks
        for name in self._masks:
            if name in self._params:
                self._params[name] = self._params[name]

    def _finish_init(self):
        """Cast params to the model dtype and move them to the active backend."""
        self.params = backend.to_device(
            {k: np.asarray(v).astype(self.dtype) for k, v in self.params.items()})
        for p in self.bn_params:
            for key in ("running_mean", "running_var"):
                if key in p:
                    p[key] = backend.to_device(np.asarray(p[key]).astype(self.dtype))

    # ------------------------------------------------------------ device moves
    def _sync_device(self):
        """Forgiving boundary: params assigned from NumPy (as notebooks do)
        are moved to the active backend, once, with the running statistics
        and the masks (an array already there is kept as it is)."""
        for k, m in self._masks.items():
            self._masks[k] = backend.to_device(m)
        for k, v in self.params.items():
            moved = backend.to_device(v)
            if moved is not v:
                self.params[k] = moved
            self._check_param_dtype(k, moved)
        for p in self.bn_params:
            for key in ("running_mean", "running_var"):
                if key in p:
                    p[key] = backend.to_device(p[key])

    def _check_param_dtype(self, name, value):
        """Warn, once per param and dtype, about a param assigned with another
        float type than the model's (a float64 ``W1`` in a float32 model makes
        every layer after it, and the updates, run in float64)."""
        got = backend.dtype_name(value)
        if got == self.dtype.name or not got.startswith(("float", "bfloat")) \
                or self.promote_input:   # the course's promotion: params follow the data
            return
        seen = self.__dict__.setdefault("_dtype_warned", set())
        if (name, got) not in seen:
            seen.add((name, got))
            import warnings
            warnings.warn(
                f"params[{name!r}] is {got} but the model is {self.dtype.name}: from that "
                f"layer on the model computes (and the Solver updates) in {got}. Assign "
                f"it with .astype(np.{self.dtype.name}), or build the model with "
                f"dtype=np.{got}", RuntimeWarning, stacklevel=4)

    def to_device(self, name=None):
        """Move params, normalisation running statistics and pruning masks
        to a backend."""
        with backend.use_backend(name or backend.get_backend()):
            self._sync_device()
        return self

    def _input(self, X, y):
        xp = backend.namespace()
        X = backend.to_device(X)
        if getattr(self, "index_input", False):   # word indices stay integers
            if not xp.isdtype(X.dtype, "integral"):
                raise TypeError(f"this model's first layer reads word indices: X must hold "
                                f"integers, got dtype {X.dtype}")
            return xp, X, None if y is None else backend.to_device(y)
        dtype = self.dtype
        if self.promote_input:   # as NumPy promotes: float64 data stays float64
            dtype = np.result_type(np.dtype(backend.dtype_name(X)), dtype)
        # no copy (no GPU launch) when X already has that type
        X = xp.astype(X, getattr(xp, dtype.name), copy=False)
        if y is not None:
            y = backend.to_device(y)
        return xp, X, y
