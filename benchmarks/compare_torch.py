"""Speed of xpnn (NumPy backend) relative to PyTorch CPU, measured
alternately in one process with the same thread count.

    python benchmarks/compare_torch.py [--threads 2] [--repeat 15]

Prints one row per case: median times and the ratio xpnn / PyTorch (lower
is better) with the targets. PyTorch is a benchmark-only dependency
(``pip install -e ".[bench]"``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def _set_threads(n):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args(argv)
    _set_threads(args.threads)  # before NumPy/OpenBLAS and torch load
    os.environ["XPNN_BACKEND"] = "numpy"  # a CPU comparison, whatever the shell says

    import numpy as np
    import torch
    import torch.nn.functional as F

    import xpnn
    from xpnn.layers import (batchnorm_backward_alt, batchnorm_forward, conv_backward_fast,
                             conv_backward_naive, conv_forward_fast, conv_forward_naive,
                             max_pool_backward_fast, max_pool_forward_fast,
                             spatial_batchnorm_backward, spatial_batchnorm_forward)
    from xpnn.layers._kernels import has_compiled
    from xpnn.models import ThreeLayerConvNet

    torch.set_num_threads(args.threads)
    r = np.random.RandomState(0)

    def timed(fn, repeat):
        fn()  # warm-up
        out = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return out

    def compare(xp_fn, t_fn, repeat=args.repeat):
        """Alternate xpnn and torch; return the two medians. ``timed`` runs
        each library once untimed before its timed call, so neither pays
        for the other's threads still spinning down."""
        xs, ts = [], []
        for _ in range(repeat):
            xs += timed(xp_fn, 1)
            ts += timed(t_fn, 1)
        return statistics.median(xs), statistics.median(ts)

    def tt(a, grad=False):
        return torch.tensor(a, requires_grad=grad)

    cases = {}

    # ThreeLayerConvNet train step (course defaults), float32
    def three_layer():
        N = 50
        X = r.randn(N, 3, 32, 32).astype(np.float32)
        y = r.randint(10, size=N)
        model = ThreeLayerConvNet(dtype=np.float32, weight_scale=1e-2)
        P = {k: tt(np.asarray(v), True) for k, v in model.params.items()}
        Xt, yt = tt(X), torch.tensor(y)

        def x_step():
            model.loss(X, y)

        def t_step():
            for p in P.values():
                p.grad = None
            h = F.max_pool2d(F.relu(F.conv2d(Xt, P["W1"], P["b1"], padding=3)), 2)
            h = F.relu(h.reshape(N, -1) @ P["W2"] + P["b2"])
            loss = F.cross_entropy(h @ P["W3"] + P["b3"], yt)
            loss.backward()
        return compare(x_step, t_step), 2.0
    cases["three_layer_convnet_step"] = three_layer

    def conv():
        x = r.randn(64, 64, 16, 16).astype(np.float32)
        w = r.randn(128, 64, 3, 3).astype(np.float32)
        b = r.randn(128).astype(np.float32)
        dout = r.randn(64, 128, 16, 16).astype(np.float32)
        xt, wt, bt, dt = tt(x, True), tt(w, True), tt(b, True), tt(dout)

        def x_fn():
            out, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
            conv_backward_fast(dout, cache)

        def t_fn():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, padding=1).backward(dt)
        return compare(x_fn, t_fn), 1.6
    cases["conv_64x64x16x16_w128x3x3"] = conv

    def pool():
        x = r.randn(100, 3, 32, 32).astype(np.float32)
        dout = r.randn(100, 3, 16, 16).astype(np.float32)
        p = {"pool_height": 2, "pool_width": 2, "stride": 2}
        xt, dt = tt(x, True), tt(dout)

        def x_fn():
            out, cache = max_pool_forward_fast(x, p)
            max_pool_backward_fast(dout, cache)

        def t_fn():
            xt.grad = None
            F.max_pool2d(xt, 2).backward(dt)
        return compare(x_fn, t_fn), 1.5
    cases["maxpool_2x2_100x3x32x32"] = pool

    def batchnorm_case(shape, fwd, bwd):
        """Batch norm fwd+bwd on ``shape``; channels on axis 1."""
        def run():
            x = r.randn(*shape).astype(np.float32)
            C = shape[1]
            g, be = np.ones(C, np.float32), np.zeros(C, np.float32)
            dout = r.randn(*shape).astype(np.float32)
            xt, gt, bt, dt = tt(x, True), tt(g, True), tt(be, True), tt(dout)

            def x_fn():
                out, cache = fwd(x, g, be, {"mode": "train"})
                bwd(dout, cache)

            def t_fn():
                xt.grad = gt.grad = bt.grad = None
                F.batch_norm(xt, None, None, gt, bt, training=True).backward(dt)
            return compare(x_fn, t_fn), 1.5
        return run
    cases["batchnorm_256x512"] = batchnorm_case((256, 512), batchnorm_forward,
                                                batchnorm_backward_alt)
    cases["spatial_batchnorm_64x32x16x16"] = batchnorm_case(
        (64, 32, 16, 16), spatial_batchnorm_forward, spatial_batchnorm_backward)

    def float64_vs_course():
        """float64 ThreeLayerConvNet step: xpnn vs the course reference
        algorithm (benchmarks/course_reference.py); target: not slower."""
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import course_reference as ref
        N = 50
        X = r.randn(N, 3, 32, 32)
        y = r.randint(10, size=N)
        model = ThreeLayerConvNet(dtype=np.float64, weight_scale=1e-2)
        params = {k: np.asarray(v) for k, v in model.params.items()}
        loss_ref, g_ref = ref.three_layer_step(params, X, y, 7)
        loss, g = model.loss(X, y)
        assert abs(float(loss) - loss_ref) < 1e-10 * abs(loss_ref)  # same computation
        return compare(lambda: model.loss(X, y), lambda: ref.three_layer_step(params, X, y, 7)), 1.0
    cases["three_layer_f64_vs_course_ref"] = float64_vs_course

    def naive_vs_fast():
        x = r.randn(100, 3, 31, 31)
        w = r.randn(25, 3, 3, 3)
        b = r.randn(25)
        p = {"stride": 2, "pad": 1}
        dout = r.randn(100, 25, 16, 16)

        def naive():
            out, c = conv_forward_naive(x, w, b, p)
            conv_backward_naive(dout, c)

        def fast():
            out, c = conv_forward_fast(x, w, b, p)
            conv_backward_fast(dout, c)
        tn = statistics.median(timed(naive, 1))
        tf = statistics.median(timed(fast, 15))
        return (tn, tf), None
    cases["naive_over_fast_conv_f64"] = naive_vs_fast

    selected = args.only.split(",") if args.only else list(cases)
    print(f"# xpnn {xpnn.__version__} (compiled im2col: {has_compiled()}), numpy "
          f"{np.__version__}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"# {platform.machine()}, {os.cpu_count()} cores visible, {args.threads} threads, "
          f"float32 unless noted, median of {args.repeat}, {time.strftime('%Y-%m-%d')}")
    print(f"{'case':34s} {'xpnn ms':>9s} {'peer ms':>9s} {'ratio':>7s} {'target':>7s}")
    print("# peer: PyTorch CPU, except *_vs_course_ref (the course reference algorithm) and "
          "naive_over_fast (xpnn's own naive loops over its fast layers)")
    ok = True
    for name in selected:
        (a, b), target = cases[name]()
        if target is None:  # naive / fast speed-up
            print(f"{name:34s} {a * 1e3:9.1f} {b * 1e3:9.2f} {a / b:6.0f}x {'>=1000x':>7s}")
            ok &= a / b >= 1000
        else:
            print(f"{name:34s} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:6.2f}x {target:6.1f}x")
            ok &= a / b <= target
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
