"""What every backend is: a :class:`Backend` (where arrays live and how they
move) and a :class:`Kernels` object (the fast ops it has).

A backend module (``numpy/``, ``cupy/``, ``strict.py``) subclasses both and
overrides only what differs: the base ``Kernels`` answers None to every op,
which tells the layer to run its portable array-API code, so a backend with
no kernels at all (array-api-strict) is complete as it is.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: device-to-host copies made so far; every backend's ``to_host`` counts its
#: real copies here (the GPU tests read it to prove a step reads nothing back)
transfers = {"to_host": 0}


class KernelState:
    """Base of what a backend's kernel keeps in a layer's cache for its own
    backward (a convolution's padded input on the host, a cuDNN marker on a
    GPU): the layer passes it back to the same backend and never reads it.
    Where the backend then declines (returns None), the portable path
    rebuilds what it needs from the layer's inputs."""
    __slots__ = ()


class Kernels:
    """The fast ops of one backend. Each method returns None, meaning "run
    the portable array-API path", unless the backend overrides it; an
    override also returns None for arrays it does not serve (a dtype it has
    no kernel for, a kernel switched off). The layer functions call each op
    at most once, through ``xpnn.backend.kernels(*arrays)``.

    Shapes follow the layer functions: ``x`` (N, C, H, W), ``w`` (F, C, kh,
    kw); columns ``cols`` are (C*kh*kw, N*Ho*Wo), row ``(c*kh + i)*kw + j``,
    column ``n*Ho*Wo + oy*Wo + ox``."""

    # ---------------------------------------------------- predicates
    def fuses(self, *arrays) -> bool:
        """Whether this backend's fused kernels serve all of ``arrays``."""
        return False

    def update_all_applies(self, *arrays) -> bool:
        """Whether :meth:`update_all` runs for these arrays (when it does, it
        must not decline: the caller has prepared the state for it)."""
        return False

    # ---------------------------------------------------- convolution
    def im2col(self, xpad, kh, kw, stride, Ho, Wo):
        """Columns of an already padded input."""
        return None

    def col2im(self, dcols, N, C, Hp, Wp, kh, kw, stride, Ho, Wo):
        """The padded input's gradient (N, C, Hp, Wp) from the columns' one,
        overlapping windows summed."""
        return None

    def conv_forward(self, x, w, b, stride, pad, Ho, Wo):
        """(out (N, F, Ho, Wo), saved): ``saved`` is the column matrix (which
        the portable backward uses as is) or a :class:`KernelState` for this
        backend's :meth:`conv_backward`."""
        return None

    def conv_backward(self, dout, x, w, saved, stride, pad, Ho, Wo, need_dx):
        """(dx or None when not ``need_dx``, dw, db) from what
        :meth:`conv_forward` saved; dout is in the layer's dtype."""
        return None

    def conv_input_grad(self, dcols, N, C, H, W, kh, kw, stride, pad, Ho, Wo):
        """The unpadded input gradient (N, C, H, W) from the column gradient."""
        return None

    # ---------------------------------------------------- pooling
    def max_pool_forward(self, x, ph, pw, stride, Ho, Wo):
        """(out, idx): idx holds each window's first maximum as a flat index
        into its (H, W) plane; :meth:`max_pool_backward` reads it."""
        return None

    def max_pool_backward(self, dout, idx, H, W, ph, pw, stride):
        """The input gradient from :meth:`max_pool_forward`'s idx. A backend
        whose forward ran must serve its backward."""
        return None

    def max_pool_relu_forward(self, x, ph, pw, stride, Ho, Wo):
        """(ReLU(max pool(x)), idx) in one pass."""
        return None

    def max_pool_relu_backward(self, dout, idx, out, H, W, ph, pw, stride):
        """Backward of :meth:`max_pool_relu_forward` given its output."""
        return None

    # ---------------------------------------------------- elementwise
    def relu_backward(self, dout, x):
        return None

    def channel_affine(self, u, a, b, v=None, k=None):
        """``a*u + b (+ k*v)`` with coefficients per channel (axis 1 of u)."""
        return None

    def channel_dot(self, a, b):
        """Per-channel sum of ``a * b`` for (N, C) or (N, C, L) arrays."""
        return None

    # ---------------------------------------------------- batch norm, loss
    def bn_train_forward(self, x, gamma, beta, running_mean, running_var, eps, momentum):
        """Training-mode batch norm over every axis but 1: (out, mean, var,
        inv_std, new running_mean, new running_var)."""
        return None

    def bn_train_backward(self, dout, x, mean, gamma, inv_std):
        """(dx, dgamma, dbeta) of :meth:`bn_train_forward`."""
        return None

    def step_product(self, w, transpose=False):
        """A function ``h -> h @ w`` (``h @ w.T`` when ``transpose``) for the
        few rows (N, H) of every step of one sequence, prepared once for it
        (a backend may pack w); None: the portable ``h @ w``."""
        return None

    def rnn_step_forward(self, xa, t, hw):
        """A tanh RNN's h_t = tanh(xa[:, t] + hw) from the input part xa (N, T,
        H) of every step and hw = h_{t-1} @ Wh."""
        return None

    def rnn_step_backward(self, dh, t, dnext, out):
        """(dh[:, t] + dnext) * (1 - out[:, t]**2): the step's pre-activation
        gradient, from the upstream dh and the hidden states out (N, T, H)."""
        return None

    def lstm_step_forward(self, xa, t, hw, c_prev):
        """(h, c_next, (i, f, o, g, tanh(c_next))) of an LSTM step from the
        input part xa (N, T, 4H), hw = h_{t-1} @ Wh and c_prev."""
        return None

    def lstm_step_backward(self, dh, t, dh_next, dc_next, c_prev, gates):
        """(da (N, 4H), dc_prev) of an LSTM step: the gates' pre-activation
        gradient and the cell gradient passed back, from the upstream dh (N,
        T, H) at step t, the gradients from the step after and ``gates`` as
        :meth:`lstm_step_forward` returned them. dc_prev may carry the
        gradient in the first H columns of a wider array (what this method
        takes back as the next call's dc_next)."""
        return None

    def scatter_add_rows(self, idx, values, rows):
        """(rows, D) zeros with ``values[...]`` (idx.shape + (D,)) added to
        row ``idx[...]`` (repeated indices summed): a word embedding's
        weight gradient."""
        return None

    def softmax_loss(self, x, y):
        """(loss, dx) of softmax cross-entropy; the labels are checked."""
        return None

    # ---------------------------------------------------- update rules
    def update(self, rule, w, dw, state, config):
        """One step of update rule ``rule`` (an :class:`xpnn.optim.UpdateRule`,
        its counter advanced in ``config``) on one parameter whose state
        arrays are ``state``: (new w, *new state arrays)."""
        return None

    def update_all(self, rule, ws, dws, states, config):
        """The step on every parameter at once (their configs agree with
        ``config``; ``states`` holds one list per state key): (new ws,
        [new arrays per state key]). Called only where
        :meth:`update_all_applies` and the rule has a kernel."""
        return None


class Backend:
    """One array library: where its arrays live, how they move to and from
    the host, how it draws random numbers, and its :class:`Kernels`.

    Everything that differs between backends is a method or an attribute
    here, so code outside ``xpnn.backend`` never asks which backend it is
    on: it asks the backend."""

    #: the name users give (XPNN_BACKEND, set_backend)
    name = ""
    #: the top-level module of this library's array types
    array_module = ""
    #: reading a value back costs nothing (host memory): a loss is checked
    #: for NaN before the update, and loss functions check label ranges on
    #: every call. Off the host each read waits for the device, so the
    #: Solver checks every print_every steps and trusts labels it checked.
    readback_is_free = False
    kernels = Kernels()

    def load(self, device=None) -> None:
        """Import the library and prove it works (RuntimeError saying why).
        ``device``: where a backend has several (torch), which one."""
        if device is not None:
            raise ValueError(f"the {self.name} backend has no choice of device (device="
                             f"{device!r}); only the torch backend takes one")

    def namespace(self):
        """The array-API namespace of this backend."""
        raise NotImplementedError

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library."""
        return type(x).__module__.split(".", 1)[0] == self.array_module

    def resident(self, x: Any) -> bool:
        """Whether ``x`` (owned) is already where :meth:`from_host` puts arrays."""
        return True

    def to_host(self, x: Any) -> np.ndarray:
        """A NumPy copy of ``x`` (owned); counted in ``transfers``."""
        raise NotImplementedError

    def from_host(self, a: np.ndarray) -> Any:
        """``a`` as an array of this backend (never counted as a read-back)."""
        raise NotImplementedError

    def random_uniform(self, shape: tuple, seed=None) -> Any:
        """Uniform [0, 1) float64 samples of ``shape``. Every backend draws
        from NumPy's global RandomState (reseeded first when ``seed`` is
        given), in the course's order, so seeded notebooks repeat."""
        if seed is not None:
            np.random.seed(seed)
        # a 0-d shape gives a float: keep an array
        return self.from_host(np.asarray(np.random.rand(*shape)))

    def take_rows(self, X, idx: np.ndarray):
        """Rows ``idx`` (a NumPy index array) of X, an array of this backend."""
        return self.namespace().take(X, self.from_host(idx), axis=0)

    def read_floats(self, values: list) -> list:
        """0-d arrays of this backend as Python floats, with one copy."""
        xp = self.namespace()
        return [float(v) for v in self.to_host(xp.stack([xp.reshape(v, ()) for v in values]))]

    def label_range(self, y) -> tuple:
        """(min, max) of an integer array, with one copy."""
        xp = self.namespace()
        lo_hi = self.to_host(xp.stack([xp.min(y), xp.max(y)]))
        return int(lo_hi[0]), int(lo_hi[1])

    def synchronize(self) -> None:
        """Wait for queued work (asynchronous backends)."""

    def free_memory(self):
        """Bytes free where this backend's arrays live; None: as much as the
        host has (data sets stay whole)."""
        return None

    def __repr__(self):
        return f"<xpnn backend {self.name}>"
