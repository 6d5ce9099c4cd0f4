"""Layer benchmarks: forward + backward, parametrized by backend and size."""
import numpy as np

from xpnn.layers import (batchnorm_backward_alt, batchnorm_forward, conv_backward_fast,
                         conv_forward_fast, max_pool_backward_fast, max_pool_forward_fast,
                         spatial_batchnorm_backward, spatial_batchnorm_forward)

from .common import BACKENDS, arr, sync, use

CONV_SIZES = ["50x3x32x32-f32k7", "64x64x16x16-f128k3"]


class Conv:
    params = (BACKENDS, CONV_SIZES)
    param_names = ["backend", "size"]

    def setup(self, name, size):
        use(name)
        r = np.random.RandomState(0)
        if size == "50x3x32x32-f32k7":
            xs, ws, self.p = (50, 3, 32, 32), (32, 3, 7, 7), {"stride": 1, "pad": 3}
        else:
            xs, ws, self.p = (64, 64, 16, 16), (128, 64, 3, 3), {"stride": 1, "pad": 1}
        self.x, self.w, self.b = arr(r.randn(*xs)), arr(r.randn(*ws)), arr(r.randn(ws[0]))
        out, self.cache = conv_forward_fast(self.x, self.w, self.b, self.p)
        self.dout = arr(r.randn(*out.shape))
        sync()

    def time_forward(self, name, size):
        conv_forward_fast(self.x, self.w, self.b, self.p)
        sync()

    def time_forward_backward(self, name, size):
        out, cache = conv_forward_fast(self.x, self.w, self.b, self.p)
        conv_backward_fast(self.dout, cache)
        sync()


class MaxPool:
    params = (BACKENDS, ["2x2s2", "3x3s2"])
    param_names = ["backend", "window"]

    def setup(self, name, window):
        use(name)
        k = 2 if window == "2x2s2" else 3
        self.p = {"pool_height": k, "pool_width": k, "stride": 2}
        r = np.random.RandomState(0)
        self.x = arr(r.randn(100, 16, 32, 32))
        out, _ = max_pool_forward_fast(self.x, self.p)
        self.dout = arr(r.randn(*out.shape))
        sync()

    def time_forward_backward(self, name, window):
        out, cache = max_pool_forward_fast(self.x, self.p)
        max_pool_backward_fast(self.dout, cache)
        sync()


class BatchNorm:
    params = (BACKENDS, ["256x512", "64x32x16x16"])
    param_names = ["backend", "shape"]

    def setup(self, name, shape):
        use(name)
        r = np.random.RandomState(0)
        dims = tuple(int(s) for s in shape.split("x"))
        self.x, self.dout = arr(r.randn(*dims)), arr(r.randn(*dims))
        self.g, self.b = arr(np.ones(dims[1])), arr(np.zeros(dims[1]))
        self.spatial = len(dims) == 4
        sync()

    def time_forward_backward(self, name, shape):
        if self.spatial:
            out, cache = spatial_batchnorm_forward(self.x, self.g, self.b, {"mode": "train"})
            spatial_batchnorm_backward(self.dout, cache)
        else:
            out, cache = batchnorm_forward(self.x, self.g, self.b, {"mode": "train"})
            batchnorm_backward_alt(self.dout, cache)
        sync()
