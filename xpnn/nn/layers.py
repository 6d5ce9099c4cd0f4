"""Layer objects over the layer functions of :mod:`xpnn.layers`.

A layer object knows its parameter names and shapes, infers its output shape
from its input shape, runs ``forward``/``backward`` by calling the layer
functions, counts its multiply-adds, and declares how its output channels
follow its input's (:attr:`Layer.channels`), which is all that structured
pruning and ``shrink`` need to know of it. It holds no arrays itself: its
parameters live in the flat ``params`` dict of the model it belongs to (the
dict the Solver updates), and ``layer.W`` reads and writes that dict, so the
two never drift apart.

A new layer is one class here (with its forward/backward functions in
:mod:`xpnn.layers` when they are new) and one row in the tests' table of
layer cases (``tests/layer_cases.py``), which gives it gradient, dtype,
backend, JSON and shrink tests.
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import layers as L
from ..layers import conv as _conv
from ..layers.pooling import _max_pool_relu_backward as _pool_relu_backward
from ..layers.pooling import _max_pool_relu_forward as _pool_relu_forward
from ..layers._util import check_int, check_number, pad_hw, xp_of, zeros_like_shape

__all__ = ["Layer", "layer_from_spec", "layer_class", "Conv2d", "Linear", "BatchNorm2d",
           "BatchNorm1d", "LayerNorm", "GroupNorm",
           "ReLU", "LeakyReLU", "ELU", "PReLU", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "Dropout", "Flatten", "Residual", "Embedding", "RNN", "LSTM", "TemporalAffine"]


def _pair(name, v, minimum):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        return check_int(name, v[0], minimum), check_int(name, v[1], minimum)
    v = check_int(name, v, minimum)
    return v, v


def _unused_rows(sizes, kernel, stride, pad):
    """(rows, columns) of the input itself (not its padding) past the last
    window under the floor rule: what a summary says is never looked at.
    A window narrower than its stride skips rows anyway, by design: 0."""
    return tuple(max(0, (n + 2 * pad - k) % stride - pad) if k >= stride else 0
                 for n, k in zip(sizes, kernel))


def _floor_out(size, k, stride, pad=0):
    return (size + 2 * pad - k) // stride + 1


class Layer:
    """Base class. Subclasses set ``param_shapes`` in :meth:`build` (local
    name -> (shape, initialiser)), implement :meth:`forward` and
    :meth:`backward`, and declare :attr:`channels`.
    ``forward(x, train) -> (out, cache)``;
    ``backward(dout, cache) -> (dx, {local name: grad})``."""

    #: local parameter names that are weights (L2-regularised, He-initialised)
    weights: tuple = ()
    #: how the output's channels (axis 1; a Linear's units) follow the
    #: input's, for structured pruning and shrink:
    #: "new": a weight layer whose outputs are channels of their own, each
    #: made from every input channel (Conv2d, Linear);
    #: "same": output channel c comes from input channel c alone
    #: (activations, pooling, dropout, batch norm, Flatten);
    #: "all": each output reads statistics over every channel (layer and
    #: group norm), so the channels it gets must all stay;
    #: None (undeclared): shrink refuses a model holding the layer.
    channels: str | None = None
    #: for "same": the params a zero input channel needs masked to give a zero
    #: output channel (a batch norm maps zero to beta - gamma * mean / std);
    #: None: a zero channel does not stay zero at all (a sigmoid gives 0.5)
    zero_needs: tuple | None = ()
    #: for "new": the weight's axis of output channels, and what one is called
    out_dim: int | None = None
    unit = "channel"
    #: the constructor arguments that size a parameter: none can exceed the
    #: number of values of the parameter it sizes, so a checkpoint whose
    #: stored layer declares one larger than the values the file holds is
    #: refused before anything is allocated (xpnn.checkpoint)
    size_args: tuple = ()

    def __init__(self):
        object.__setattr__(self, "_model", None)
        object.__setattr__(self, "_names", {})
        self.param_shapes: dict = {}
        self.in_shape = self.out_shape = None

    # ------------------------------------------------ parameters in the model's dict
    def _bind(self, model, prefix, names=None):
        """Attach to ``model``: local parameter ``k`` is ``params[prefix + k]``,
        or ``params[names[k]]`` where ``names`` gives one (``W1``...)."""
        names = names or {}
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_names", {k: names.get(k, f"{prefix}{k}")
                                            for k in self.param_shapes})

    def __getattr__(self, name):
        names = object.__getattribute__(self, "_names")
        if name in names:
            return object.__getattribute__(self, "_model").params[names[name]]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in self.__dict__.get("_names", {}):
            self._model.params[self._names[name]] = value
        else:
            object.__setattr__(self, name, value)

    def p(self, name):
        """The array behind local parameter ``name``."""
        return self._model.params[self._names[name]]

    @property
    def param_names(self):
        """Local name -> the name in the model's ``params``."""
        return dict(self._names)

    # ------------------------------------------------ shapes and cost
    def in_shape_out(self, in_shape):
        """Build for ``in_shape``, remember both shapes, return the output's."""
        self.in_shape = tuple(int(d) for d in in_shape)
        self.out_shape = tuple(int(d) for d in self.build(self.in_shape))
        return self.out_shape

    def build(self, in_shape):
        """Check ``in_shape`` (per sample, no batch axis), declare parameters,
        return the output shape."""
        return in_shape

    def macs(self):
        """Multiply-adds per sample of the forward pass (convolutions and
        matrix products; elementwise work is not counted)."""
        return 0

    def children(self):
        return []

    def new_bn_param(self):
        """This layer's entry in the model's ``bn_params`` (a normalisation
        layer's running statistics), or None for a layer without one."""
        return None

    # ------------------------------------------------ channels: pruning and shrink
    @property
    def num_outputs(self):
        """A "new" layer's number of output channels (or units)."""
        return self.out_shape[0]

    def trace_channels(self, tracer, space):
        """Tell ``tracer`` (xpnn.prune's) which channel space this layer reads
        and which it writes, by :attr:`channels`; return the written one."""
        if self.channels == "same":
            if self.zero_needs is None:
                tracer.keep_whole(space, f"passes through {self!r}, which does not map a zero "
                                         "channel to zero")
            return tracer.record(self, space, space)
        if self.channels == "new":
            return tracer.record(self, space, tracer.new(self.num_outputs))
        if self.channels == "all":
            tracer.keep_whole(space, self.whole_reason())
            return tracer.record(self, space, space)
        raise ValueError(f"{self!r} declares no channel rule (Layer.channels: 'new', 'same' or "
                         "'all'), so shrink cannot tell which of its channels follow which")

    def whole_reason(self):
        """Why a layer of channel rule "all" keeps every channel it gets."""
        return (f"feeds {self!r}, whose statistics span all its channels: removing pruned "
                "ones would change the others' outputs")

    def shrunk_spec(self, keep_in, keep_out, in_size):
        """This layer's spec with only the channels ``keep_in`` of its input
        and ``keep_out`` of its output (index arrays; None: all of them);
        ``in_size`` is the input's channel count."""
        return self.spec()

    def shrunk_param(self, local, arr, keep_in, keep_out, in_size):
        """The part of param (or running statistic) ``local`` that stays."""
        return arr

    def spec(self):
        """This layer as JSON-ready data (type and constructor arguments)."""
        return {"type": type(self).__name__, **self.config()}

    def config(self):
        return {}

    def __repr__(self):
        """Required arguments by position, the others only when not default."""
        sig = inspect.signature(type(self).__init__).parameters
        args = []
        for k, v in self.config().items():
            par = sig.get(k)
            if par is None or par.default is inspect.Parameter.empty:
                args.append(repr(v))
            elif v != par.default:
                args.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def _mismatch(self, what):
        return ValueError(f"{self!r}: {what}")


class Conv2d(Layer):
    """2-D convolution, ``W`` (out, in, kh, kw), ``b`` (out,). Output size
    follows PyTorch's floor rule: rows or columns that no full window reaches
    are not used (a 3x3 stride-2 pad-1 conv maps 16x16 to 8x8)."""

    size_args = ("in_channels", "out_channels", "kernel_size")

    weights = ("W",)
    channels = "new"
    out_dim = 0
    unit = "filter"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.in_channels = check_int("Conv2d: in_channels", in_channels, 1)
        self.out_channels = check_int("Conv2d: out_channels", out_channels, 1)
        self.kernel_size = _pair("Conv2d: kernel_size", kernel_size, 1)
        self.stride = check_int("Conv2d: stride", stride, 1)
        self.padding = check_int("Conv2d: padding", padding, 0)

    def config(self):
        kh, kw = self.kernel_size
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": kh if kh == kw else [kh, kw], "stride": self.stride,
                "padding": self.padding}

    def build(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.in_channels:
            raise self._mismatch(f"expects input (C={self.in_channels}, H, W), got {in_shape}")
        C, H, W = in_shape
        (kh, kw), s, p = self.kernel_size, self.stride, self.padding
        if H + 2 * p < kh or W + 2 * p < kw:
            raise self._mismatch(f"a {kh}x{kw} kernel does not fit the padded input "
                                 f"{H + 2 * p}x{W + 2 * p}")
        Ho, Wo = _floor_out(H, kh, s, p), _floor_out(W, kw, s, p)
        # padded rows/columns beyond the last window: cropped before the conv
        self._crop = (H + 2 * p - kh) % s, (W + 2 * p - kw) % s
        self.unused = _unused_rows((H, W), (kh, kw), s, p)
        fan_in = C * kh * kw
        self.param_shapes = {"W": ((self.out_channels, C, kh, kw), ("normal", fan_in)),
                             "b": ((self.out_channels,), ("zeros",))}
        self._macs = self.out_channels * Ho * Wo * fan_in
        return (self.out_channels, Ho, Wo)

    def macs(self):
        return self._macs

    def forward(self, x, train):
        p, (eh, ew) = self.padding, self._crop
        if not (eh or ew):
            return L.conv_forward_fast(x, self.p("W"), self.p("b"),
                                       {"stride": self.stride, "pad": p})
        xp = xp_of(x=x)
        xpad = pad_hw(xp, x, p)
        xc = xpad[:, :, :xpad.shape[2] - eh, :xpad.shape[3] - ew]
        out, cache = L.conv_forward_fast(xc, self.p("W"), self.p("b"),
                                         {"stride": self.stride, "pad": 0})
        return out, (cache, tuple(x.shape))

    def shrunk_spec(self, keep_in, keep_out, in_size):
        spec = self.spec()
        if keep_in is not None:
            spec["in_channels"] = len(keep_in)
        if keep_out is not None:
            spec["out_channels"] = len(keep_out)
        return spec

    def shrunk_param(self, local, arr, keep_in, keep_out, in_size):
        arr = arr if keep_out is None else arr[keep_out]
        return arr[:, keep_in] if local == "W" and keep_in is not None else arr

    def backward(self, dout, cache, need_dx=True):
        """``need_dx=False`` (a network's first layer): dx is None, and the
        matmul and col2im that make it are skipped."""
        p, (eh, ew) = self.padding, self._crop
        if not (eh or ew):
            dx, dw, db = _conv.conv_backward_fast_params(dout, cache, need_dx=need_dx)
            return dx, {"W": dw, "b": db}
        inner, shape = cache
        dxc, dw, db = _conv.conv_backward_fast_params(dout, inner, need_dx=need_dx)
        if dxc is None:
            return None, {"W": dw, "b": db}
        xp = xp_of(dout=dout)
        N, C, H, W = shape
        dxp = zeros_like_shape(xp, dxc, (N, C, H + 2 * p, W + 2 * p))
        dxp[:, :, :dxc.shape[2], :dxc.shape[3]] = dxc
        return dxp[:, :, p:p + H, p:p + W], {"W": dw, "b": db}


class Linear(Layer):
    """Fully connected: ``x.reshape(N, in) @ W + b`` with ``W`` stored
    (in, out) as the course stores it. Flattens its input itself."""

    size_args = ("in_features", "out_features")

    weights = ("W",)
    channels = "new"
    out_dim = 1
    unit = "unit"

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features = check_int("Linear: in_features", in_features, 1)
        self.out_features = check_int("Linear: out_features", out_features, 1)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def build(self, in_shape):
        n = int(np.prod(in_shape))
        if n != self.in_features:
            raise self._mismatch(f"expects {self.in_features} input features, got input "
                                 f"{in_shape} ({n} features)")
        self.param_shapes = {"W": ((n, self.out_features), ("normal", n)),
                             "b": ((self.out_features,), ("zeros",))}
        return (self.out_features,)

    def macs(self):
        return self.in_features * self.out_features

    def shrunk_spec(self, keep_in, keep_out, in_size):
        spec = self.spec()
        if keep_in is not None:  # a flattened input: each channel is a block of features
            spec["in_features"] = len(keep_in) * (self.in_features // in_size)
        if keep_out is not None:
            spec["out_features"] = len(keep_out)
        return spec

    def shrunk_param(self, local, arr, keep_in, keep_out, in_size):
        if local == "W" and keep_in is not None:
            block = self.in_features // in_size
            arr = arr[(keep_in[:, None] * block + np.arange(block)[None, :]).ravel()]
        if keep_out is None:
            return arr
        return arr[:, keep_out] if local == "W" else arr[keep_out]

    def forward(self, x, train):
        return L.affine_forward(x, self.p("W"), self.p("b"))

    def backward(self, dout, cache):
        dx, dw, db = L.affine_backward(dout, cache)
        return dx, {"W": dw, "b": db}


class _Norm(Layer):
    """gamma/beta of shape (C,); batch norms keep running statistics in the
    model's ``bn_params`` (what checkpoints store)."""

    size_args = ("num_features",)

    ndim = None
    running = True
    channels = "same"
    zero_needs = ("gamma", "beta")

    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_int(f"{name}: num_features", num_features, 1)
        self.eps = check_number(f"{name}: eps", eps, 0.0, low_inclusive=False)
        self.momentum = check_number(f"{name}: momentum", momentum, 0.0, 1.0)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def build(self, in_shape):
        if len(in_shape) != self.ndim or in_shape[0] != self.num_features:
            want = "(C, H, W)" if self.ndim == 3 else "(D,)"
            raise self._mismatch(f"expects input {want} with {self.num_features} features on "
                                 f"the first axis, got {in_shape}")
        C = self.num_features
        self.param_shapes = {"gamma": ((C,), ("ones",)), "beta": ((C,), ("zeros",))}
        return in_shape

    @property
    def bn_param(self):
        return self._model.bn_params[self._bn_index]

    @property
    def running_mean(self):
        return self.bn_param.get("running_mean")

    @property
    def running_var(self):
        return self.bn_param.get("running_var")

    def new_bn_param(self):
        C = self.num_features
        return {"mode": "train", "eps": self.eps, "momentum": self.momentum,
                "running_mean": np.zeros(C), "running_var": np.zeros(C)}

    def shrunk_spec(self, keep_in, keep_out, in_size):
        spec = self.spec()
        if keep_in is not None:
            spec["num_features"] = len(keep_in)
        return spec

    def shrunk_param(self, local, arr, keep_in, keep_out, in_size):
        return arr if keep_in is None else arr[keep_in]


class _BatchNorm(_Norm):
    """Batch statistics in training, the running ones at test time."""

    def forward(self, x, train):
        bp = self.bn_param
        bp["mode"] = "train" if train else "test"
        return self._fwd(x, self.p("gamma"), self.p("beta"), bp)

    def backward(self, dout, cache):
        dx, dg, db = self._bwd(dout, cache)
        return dx, {"gamma": dg, "beta": db}


class BatchNorm2d(_BatchNorm):
    """Per-channel batch norm of (C, H, W) inputs."""
    ndim = 3
    _fwd = staticmethod(L.spatial_batchnorm_forward)
    _bwd = staticmethod(L.spatial_batchnorm_backward)


class BatchNorm1d(_BatchNorm):
    """Batch norm of (D,) features."""
    ndim = 1
    _fwd = staticmethod(L.batchnorm_forward)
    _bwd = staticmethod(L.batchnorm_backward_alt)


class LayerNorm(_Norm):
    ndim = 1
    running = False
    channels = "all"

    def __init__(self, num_features, eps=1e-5):
        super().__init__(num_features, eps)

    def config(self):
        return {"num_features": self.num_features, "eps": self.eps}

    def whole_reason(self):
        return ("feeds a layer norm, whose statistics span all its channels: removing pruned "
                "ones would change the others' outputs")

    def new_bn_param(self):
        return {}  # no running statistics; the entry keeps the course's one-per-norm layout

    def forward(self, x, train):
        return L.layernorm_forward(x, self.p("gamma"), self.p("beta"), {"eps": self.eps})

    def backward(self, dout, cache):
        dx, dg, db = L.layernorm_backward(dout, cache)
        return dx, {"gamma": dg, "beta": db}


class GroupNorm(Layer):
    """Group normalisation of (C, H, W) inputs over ``num_groups`` groups of
    channels; ``gamma``/``beta`` of shape (1, C, 1, 1), as the course's
    spatial_groupnorm takes them."""

    size_args = ("num_groups", "num_channels")

    channels = "all"

    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        self.num_groups = check_int("GroupNorm: num_groups", num_groups, 1)
        self.num_channels = check_int("GroupNorm: num_channels", num_channels, 1)
        self.eps = check_number("GroupNorm: eps", eps, 0.0, low_inclusive=False)
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} is not divisible by "
                             f"num_groups={num_groups}")

    def config(self):
        return {"num_groups": self.num_groups, "num_channels": self.num_channels,
                "eps": self.eps}

    def build(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.num_channels:
            raise self._mismatch(f"expects input (C={self.num_channels}, H, W), got {in_shape}")
        C = self.num_channels
        self.param_shapes = {"gamma": ((1, C, 1, 1), ("ones",)),
                             "beta": ((1, C, 1, 1), ("zeros",))}
        return in_shape

    def whole_reason(self):
        return ("feeds a group norm, whose statistics span all its channels: removing pruned "
                "ones would change the others' outputs")

    def forward(self, x, train):
        return L.spatial_groupnorm_forward(x, self.p("gamma"), self.p("beta"), self.num_groups,
                                           {"eps": self.eps})

    def backward(self, dout, cache):
        dx, dg, db = L.spatial_groupnorm_backward(dout, cache)
        return dx, {"gamma": dg, "beta": db}


class ReLU(Layer):
    channels = "same"

    def forward(self, x, train):
        return L.relu_forward(x)

    def backward(self, dout, cache):
        return L.relu_backward(dout, cache), {}


class LeakyReLU(Layer):
    channels = "same"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = check_number("LeakyReLU: negative_slope", negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}

    def forward(self, x, train):
        return L.leaky_relu_forward(x, self.negative_slope)

    def backward(self, dout, cache):
        return L.leaky_relu_backward(dout, cache), {}


class ELU(Layer):
    channels = "same"

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = check_number("ELU: alpha", alpha, 0.0)

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, x, train):
        return L.elu_forward(x, self.alpha)

    def backward(self, dout, cache):
        return L.elu_backward(dout, cache), {}


class PReLU(Layer):
    """Leaky ReLU with a learnt slope ``a``: one shared (``num_parameters=1``)
    or one per channel (``num_parameters=C``), starting at ``init``."""

    size_args = ("num_parameters",)

    channels = "same"

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.num_parameters = check_int("PReLU: num_parameters", num_parameters, 1)
        self.init = check_number("PReLU: init", init)

    def config(self):
        return {"num_parameters": self.num_parameters, "init": self.init}

    def build(self, in_shape):
        if self.num_parameters != 1 and in_shape[0] != self.num_parameters:
            raise self._mismatch(f"has {self.num_parameters} slopes but its input {in_shape} "
                                 f"has {in_shape[0]} channels")
        self.param_shapes = {"a": ((self.num_parameters,), ("full", self.init))}
        return in_shape

    def shrunk_spec(self, keep_in, keep_out, in_size):
        spec = self.spec()
        if keep_in is not None and self.num_parameters > 1:
            spec["num_parameters"] = len(keep_in)
        return spec

    def shrunk_param(self, local, arr, keep_in, keep_out, in_size):
        return arr if keep_in is None or self.num_parameters == 1 else arr[keep_in]

    def forward(self, x, train):
        return L.prelu_forward(x, self.p("a"))

    def backward(self, dout, cache):
        dx, da = L.prelu_backward(dout, cache)
        return dx, {"a": da}


class _Pool(Layer):
    channels = "same"
    #: zeros added on each side of H and W before pooling
    padding = 0

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(f"{name}: kernel_size", kernel_size, 1)
        self.stride = self.kernel_size[0] if stride is None else \
            check_int(f"{name}: stride", stride, 1)

    def config(self):
        kh, kw = self.kernel_size
        return {"kernel_size": kh if kh == kw else [kh, kw],
                "stride": None if self.stride == kh else self.stride}

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise self._mismatch(f"expects input (C, H, W), got {in_shape}")
        C, H, W = in_shape
        (kh, kw), s, p = self.kernel_size, self.stride, self.padding
        if H + 2 * p < kh or W + 2 * p < kw:
            raise self._mismatch(f"a {kh}x{kw} window does not fit the input {H}x{W}" +
                                 (f" padded by {p}" if p else ""))
        self.pool_param = {"pool_height": kh, "pool_width": kw, "stride": s}
        self.unused = _unused_rows((H, W), (kh, kw), s, p)
        return (C, _floor_out(H, kh, s, p), _floor_out(W, kw, s, p))


class MaxPool2d(_Pool):
    """Max pooling; ``stride`` defaults to the window size; floor rule."""

    def forward(self, x, train):
        return L.max_pool_forward_fast(x, self.pool_param)

    def backward(self, dout, cache):
        return L.max_pool_backward_fast(dout, cache), {}


class AvgPool2d(_Pool):
    """Average pooling; ``stride`` defaults to the window size; floor rule.
    ``padding`` adds that many zeros on each side of H and W first, and they
    count in every mean (PyTorch's default, ``count_include_pad=True``); at
    most half the window, as PyTorch allows."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride)
        self.padding = check_int("AvgPool2d: padding", padding, 0)
        kh, kw = self.kernel_size
        if 2 * self.padding > min(kh, kw):
            raise ValueError(f"AvgPool2d: padding {self.padding} is more than half the {kh}x{kw} "
                             "window; at most half (a window would otherwise average padding "
                             "alone)")

    def config(self):
        # padding only when there is some: a spec written before it existed
        # (a checkpoint's architecture) stays the same spec
        return {**super().config(), **({"padding": self.padding} if self.padding else {})}

    def forward(self, x, train):
        p = self.padding
        if p:
            x = pad_hw(xp_of(x=x), x, p)
        return L.avg_pool_forward(x, self.pool_param)

    def backward(self, dout, cache):
        dx, p = L.avg_pool_backward(dout, cache), self.padding
        if p:
            dx = dx[:, :, p:dx.shape[2] - p, p:dx.shape[3] - p]
        return dx, {}


class GlobalAvgPool2d(Layer):
    """Mean over each channel's H x W: (C, H, W) -> (C,)."""

    channels = "same"

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise self._mismatch(f"expects input (C, H, W), got {in_shape}")
        return (in_shape[0],)

    def forward(self, x, train):
        return L.global_avg_pool_forward(x)

    def backward(self, dout, cache):
        return L.global_avg_pool_backward(dout, cache), {}


class Dropout(Layer):
    """Inverted dropout, given by keyword only, as the probability a unit is
    dropped (``Dropout(drop=0.2)``, PyTorch's meaning) or kept
    (``Dropout(keep=0.8)``, the course's ``p``). Identity at test time."""

    channels = "same"

    def __init__(self, *args, drop=None, keep=None):
        super().__init__()
        if args or (drop is None) == (keep is None):
            raise TypeError("Dropout takes exactly one of drop= (probability of DROPPING a "
                            "unit, as PyTorch's p) or keep= (probability of KEEPING it, as "
                            f"the course's p), by keyword; got positional {args!r}, "
                            f"drop={drop!r}, keep={keep!r}")
        if drop is not None:
            keep = 1.0 - check_number("Dropout: drop", drop, 0.0, 1.0, high_inclusive=False)
        self.keep = check_number("Dropout: keep", keep, 0.0, 1.0, low_inclusive=False)

    def config(self):
        return {"keep": self.keep}

    def __repr__(self):
        return f"Dropout(keep={self.keep:g})"

    def forward(self, x, train):
        shared = getattr(self._model, "dropout_param", None)
        if shared:  # a course model's one dict for all its dropout layers (p, seed)
            shared["mode"] = "train" if train else "test"
            return L.dropout_forward(x, shared)
        if not train or self.keep == 1.0:
            return x, None
        return L.dropout_forward(x, {"mode": "train", "p": self.keep})

    def backward(self, dout, cache):
        return (dout if cache is None else L.dropout_backward(dout, cache)), {}


class Flatten(Layer):
    """(C, H, W) -> (C*H*W,): each channel becomes a block of features,
    which a following Linear's shrink follows."""

    channels = "same"

    def build(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, train):
        return xp_of(x=x).reshape(x, (x.shape[0], -1)), tuple(x.shape)

    def backward(self, dout, cache):
        return xp_of(dout=dout).reshape(dout, cache), {}


# ------------------------------------------------------------------ sequences
# A sequence is (T, D) per sample: T time steps of D features. These layers
# declare no channel rule (their features are the last axis, not axis 1),
# so shrink refuses a model holding one (unstructured pruning of their weights works).

def _sequence(layer, in_shape, size, what):
    if len(in_shape) != 2 or in_shape[1] != size:
        raise layer._mismatch(f"expects sequences (T, {size}) of {what}, got input {in_shape}")


class Embedding(Layer):
    """Word vectors: integer indices (T,) in [0, num_embeddings) -> (T,
    embedding_dim), rows of ``W`` (num_embeddings, embedding_dim), drawn N(0,
    1) as ``torch.nn.Embedding`` draws them (or N(0, weight_scale^2)). Takes
    the model's input as it is (integers); it must be the first layer."""

    size_args = ("num_embeddings", "embedding_dim")

    weights = ("W",)
    takes_indices = True

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings = check_int("Embedding: num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("Embedding: embedding_dim", embedding_dim, 1)

    def config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}

    def build(self, in_shape):
        if len(in_shape) != 1:
            raise self._mismatch(f"expects word indices (T,) per sample, got input {in_shape}")
        # He's sqrt(2 / fan_in) with fan_in 2 is 1: N(0, 1) unless weight_scale says otherwise
        self.param_shapes = {"W": ((self.num_embeddings, self.embedding_dim), ("normal", 2))}
        return (in_shape[0], self.embedding_dim)

    def forward(self, x, train):
        return L.word_embedding_forward(x, self.p("W"))

    def backward(self, dout, cache):
        return None, {"W": L.word_embedding_backward(dout, cache)}


class _Recurrent(Layer):
    """A recurrent layer over (T, input_size) sequences from a zero state,
    returning every step's hidden state (T, hidden_size)."""

    size_args = ("input_size", "hidden_size")

    weights = ("Wx", "Wh")
    gates = 1
    _forward = _backward = None

    def __init__(self, input_size, hidden_size):
        super().__init__()
        name = type(self).__name__
        self.input_size = check_int(f"{name}: input_size", input_size, 1)
        self.hidden_size = check_int(f"{name}: hidden_size", hidden_size, 1)

    def config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def build(self, in_shape):
        _sequence(self, in_shape, self.input_size, "features")
        D, H, k = self.input_size, self.hidden_size, self.gates
        self.param_shapes = {"Wx": ((D, k * H), ("normal", D)), "Wh": ((H, k * H), ("normal", H)),
                             "b": ((k * H,), ("zeros",))}
        return (in_shape[0], H)

    def macs(self):
        T = self.in_shape[0] if self.in_shape else 1
        return T * self.gates * self.hidden_size * (self.input_size + self.hidden_size)

    def forward(self, x, train):
        xp = xp_of(x=x)
        h0 = zeros_like_shape(xp, x, (x.shape[0], self.hidden_size))
        return type(self)._forward(x, h0, self.p("Wx"), self.p("Wh"), self.p("b"))

    def backward(self, dout, cache):
        dx, _, dWx, dWh, db = type(self)._backward(dout, cache)
        return dx, {"Wx": dWx, "Wh": dWh, "b": db}


class RNN(_Recurrent):
    """A tanh RNN: ``h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b)``, h_0 = 0;
    Wx (input_size, H), Wh (H, H). As ``torch.nn.RNN(batch_first=True)`` with
    ``weight_ih_l0 = Wx.T``, ``weight_hh_l0 = Wh.T`` and ``b = b_ih + b_hh``."""

    _forward = staticmethod(L.rnn_forward)
    _backward = staticmethod(L.rnn_backward)


class LSTM(_Recurrent):
    """An LSTM, h_0 = c_0 = 0; Wx (input_size, 4H), Wh (H, 4H), b (4H,) hold
    the input, forget and output gates and the candidate in that order (i,
    f, o, g), as the course does. ``torch.nn.LSTM(batch_first=True)`` orders
    them i, f, g, o: its ``weight_ih_l0`` is Wx.T with the last two blocks of
    H swapped (likewise ``weight_hh_l0`` from Wh, and ``b_ih + b_hh`` from b)."""

    gates = 4
    _forward = staticmethod(L.lstm_forward)
    _backward = staticmethod(L.lstm_backward)


class TemporalAffine(Layer):
    """The same fully connected layer at every step: (T, in_features) ->
    (T, out_features), ``W`` (in, out), ``b`` (out,) (as ``torch.nn.Linear``
    on the last axis, whose weight is W.T)."""

    size_args = ("in_features", "out_features")

    weights = ("W",)

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features = check_int("TemporalAffine: in_features", in_features, 1)
        self.out_features = check_int("TemporalAffine: out_features", out_features, 1)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}

    def build(self, in_shape):
        _sequence(self, in_shape, self.in_features, "features")
        self.param_shapes = {"W": ((self.in_features, self.out_features),
                                   ("normal", self.in_features)),
                             "b": ((self.out_features,), ("zeros",))}
        return (in_shape[0], self.out_features)

    def macs(self):
        T = self.in_shape[0] if self.in_shape else 1
        return T * self.in_features * self.out_features

    def forward(self, x, train):
        return L.temporal_affine_forward(x, self.p("W"), self.p("b"))

    def backward(self, dout, cache):
        dx, dw, db = L.temporal_affine_backward(dout, cache)
        return dx, {"W": dw, "b": db}


class Residual(Layer):
    """``body(x) + shortcut(x)``: ``body`` a layer or a list of layers,
    ``shortcut`` None (the identity) or a layer / list of layers, e.g. a 1x1
    strided Conv2d where the body changes the shape."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = list(body) if isinstance(body, (list, tuple)) else [body]
        self.shortcut = [] if shortcut is None else (
            list(shortcut) if isinstance(shortcut, (list, tuple)) else [shortcut])
        for layer in self.body + self.shortcut:
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual: {layer!r} is not an xpnn.nn layer")
        if not self.body:
            raise ValueError("Residual needs a body of at least one layer")

    def children(self):
        return [("body", i, layer) for i, layer in enumerate(self.body)] + \
            [("shortcut", i, layer) for i, layer in enumerate(self.shortcut)]

    def config(self):
        return {"body": [la.spec() for la in self.body],
                "shortcut": [la.spec() for la in self.shortcut] or None}

    def __repr__(self):
        sc = "identity" if not self.shortcut else self.shortcut
        return f"Residual(body={self.body}, shortcut={sc})"

    def build(self, in_shape):
        a = b = in_shape
        for layer in self.body:
            a = layer.in_shape_out(a)
        for layer in self.shortcut:
            b = layer.in_shape_out(b)
        if tuple(a) != tuple(b):
            raise self._mismatch(f"body gives {a} but the shortcut gives {b}; they must match "
                                 "to be added (use a strided 1x1 Conv2d as the shortcut)")
        return a

    def macs(self):
        return sum(la.macs() for la in self.body + self.shortcut)

    def trace_channels(self, tracer, space):
        """The add ties the body's output channels to the shortcut's (to the
        input's, with the identity shortcut): one space."""
        a = tracer.trace(self.body, space)
        b = tracer.trace(self.shortcut, space)
        return tracer.union(a, b)

    def forward(self, x, train):
        a, ca = _run(self.body, x, train)
        b, cb = _run(self.shortcut, x, train)
        return a + b, (ca, cb)

    def backward(self, dout, cache):
        ca, cb = cache
        da, grads = _back(self.body, dout, ca)
        db, g2 = _back(self.shortcut, dout, cb)
        grads.update(g2)
        return da + db, grads


def _pool_first(layers, i):
    """Whether ``layers[i]`` is a ReLU that feeds a max pooling: the pair is
    run as pooling then ReLU. A maximum commutes with a non-decreasing
    function, so the output and every gradient are the same (up to the sign
    of a zero) and the ReLU touches a quarter of the values."""
    return (type(layers[i]) is ReLU and i + 1 < len(layers)
            and isinstance(layers[i + 1], MaxPool2d))


def _run(layers, x, train):
    caches = [None] * len(layers)
    i = 0
    while i < len(layers):
        if _pool_first(layers, i):
            if type(layers[i + 1]) is MaxPool2d:  # both in one kernel on a GPU
                x, caches[i + 1] = _pool_relu_forward(x, layers[i + 1].pool_param)
                caches[i] = x   # the ReLU's cache: > 0 exactly where its input is
            else:
                x, caches[i + 1] = layers[i + 1].forward(x, train)
                x, caches[i] = layers[i].forward(x, train)
            i += 2
            continue
        x, caches[i] = layers[i].forward(x, train)
        i += 1
    return x, caches


def _back(layers, dout, caches, need_input_grad=True):
    """Backward through ``layers`` (in the order :func:`_run` ran them);
    grads keyed by the model's param names. ``need_input_grad=False``: a
    first Conv2d skips its input gradient (the returned gradient is then
    None)."""
    grads = {}
    i = len(layers) - 1
    while i >= 0:
        if i >= 1 and _pool_first(layers, i - 1):
            if type(layers[i]) is MaxPool2d:
                dout = _pool_relu_backward(dout, caches[i - 1], caches[i])
            else:
                dout, _ = layers[i - 1].backward(dout, caches[i - 1])
                dout, _ = layers[i].backward(dout, caches[i])
            i -= 2
            continue
        layer, c = layers[i], caches[i]
        if i == 0 and not need_input_grad and isinstance(layer, Conv2d):
            dout, g = layer.backward(dout, c, need_dx=False)
        else:
            dout, g = layer.backward(dout, c)
        for k, v in g.items():
            if k in layer._names:
                grads[layer._names[k]] = v
            else:  # a container's grads are already model names
                grads[k] = v
        i -= 1
    return dout, grads


def layer_class(kind):
    """The layer class a spec's ``"type"`` names (``"Conv2d"``), or None."""
    if not isinstance(kind, str) or kind not in __all__ or kind in _NOT_LAYERS:
        return None
    return globals().get(kind)


_NOT_LAYERS = ("Layer", "layer_from_spec", "layer_class")


def layer_from_spec(spec, where="layer"):
    """A layer from its :meth:`Layer.spec` data (JSON): ``{"type": "Conv2d",
    "in_channels": 3, ...}``; Residual bodies and shortcuts nest. Bad data
    is a ValueError naming ``where`` and what was wrong."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"{where}: expected an object with a \"type\" such as "
                         f"{{\"type\": \"ReLU\"}}, got {spec!r}")
    kind = spec["type"]
    cls = layer_class(kind)
    if cls is None:
        known = ", ".join(n for n in __all__ if n not in _NOT_LAYERS)
        raise ValueError(f"{where}: unknown layer type {kind!r}; known: {known}")
    args = {k: v for k, v in spec.items() if k != "type"}
    if cls is Residual:
        body = args.pop("body", None)
        shortcut = args.pop("shortcut", None)
        if not isinstance(body, list) or (shortcut is not None and not isinstance(shortcut, list)):
            raise ValueError(f"{where}: a Residual needs \"body\": [layers] and optionally "
                             f"\"shortcut\": [layers], got {spec!r}")
        args["body"] = [layer_from_spec(s, f"{where}.body.{i}") for i, s in enumerate(body)]
        args["shortcut"] = None if not shortcut else \
            [layer_from_spec(s, f"{where}.shortcut.{i}") for i, s in enumerate(shortcut)]
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"{where}: {kind}: {exc}") from None
