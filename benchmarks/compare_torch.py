"""Speed of xpnn (NumPy backend) relative to PyTorch CPU, measured as a
user experiences it: each library in its own fresh process, alternating
xpnn / peer, same thread count, per-step time after warm-up.

    python benchmarks/compare_torch.py [--threads 2] [--pairs 5] [--steps 15]
    python benchmarks/compare_torch.py --only three_layer_convnet_step,challenge_net_step

One row per case: the median per-step times of each library (median over
pairs), the ratio xpnn / peer (lower is better) as the median of the
pairwise ratios with their min-max, the peak resident memory of each
process, and the target. Cases ending in ``_busy_core`` run while another
process keeps one core busy (it stops itself); cases ending in
``_on_torch`` run xpnn on its torch backend (torch's CPU kernels under
xpnn's layers), the cost of xpnn's layering. Two libraries in one
process disturb each other's thread pools and allocators, so every
measurement here is a separate process. The xpnn process imports xpnn
before NumPy (as ``xpnn train`` does), so OpenBLAS's threads wait the way
xpnn sets (OPENBLAS_THREAD_TIMEOUT, xpnn/backend/numpy/_host.py). PyTorch is a
benchmark-only dependency (``pip install -e ".[bench]"``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# case: (peer, target ratio, busy core)
CASES = {
    "three_layer_convnet_step": ("torch", 1.0, False),
    "challenge_net_step": ("torch", 1.0, False),
    "conv_64x64x16x16_w128x3x3": ("torch", 1.6, False),
    "maxpool_2x2_100x3x32x32": ("torch", 1.5, False),
    "batchnorm_256x512": ("torch", 1.5, False),
    "spatial_batchnorm_64x32x16x16": ("torch", 1.5, False),
    "three_layer_f64_vs_course_ref": ("course", 1.0, False),
    "captioning_lstm_step": ("torch", 1.0, False),
    "knn_no_loops_5000x500_f64": ("torch", 1.0, False),
    "three_layer_convnet_step_busy_core": ("torch", None, True),
    "challenge_net_step_busy_core": ("torch", None, True),
    # xpnn on its torch backend (torch's CPU kernels) against plain PyTorch:
    # the cost of xpnn's layering over the same convolutions
    "three_layer_convnet_step_on_torch": ("torch", 1.2, False),
    "challenge_net_step_on_torch": ("torch", 1.2, False),
}


# ------------------------------------------------------------------ one library, one process
def _build(case, lib, threads):
    """The step function of ``case`` for ``lib`` ('xpnn', 'torch' or
    'course'), importing only that library."""
    import numpy as np
    r = np.random.RandomState(0)
    base = case.replace("_busy_core", "").replace("_on_torch", "")
    f64 = base == "three_layer_f64_vs_course_ref"
    dt = np.float64 if f64 else np.float32
    if lib == "torch":
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(threads)

        def t(a, grad=False):
            return torch.tensor(a, requires_grad=grad)
    if base in ("three_layer_convnet_step", "challenge_net_step", "three_layer_f64_vs_course_ref"):
        challenge = base == "challenge_net_step"
        N = 64 if challenge else 50
        X = r.randn(N, 3, 32, 32).astype(dt)
        y = r.randint(6 if challenge else 10, size=N)
        if lib == "torch":
            nn = torch.nn
            if challenge:
                layers, c = [], 3
                for f in (64, 128, 256):
                    layers += [nn.Conv2d(c, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU(),
                               nn.MaxPool2d(2)]
                    c = f
                m = nn.Sequential(*layers, nn.Flatten(), nn.Linear(4096, 512),
                                  nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 6))
            else:
                m = nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(),
                                  nn.Linear(100, 10))
            Xt, yt = t(X), torch.tensor(y)

            def step():
                m.zero_grad(set_to_none=True)
                F.cross_entropy(m(Xt), yt).backward()
            return step
        from xpnn.models import ConvNet, ThreeLayerConvNet
        if challenge:
            model = ConvNet(input_dim=(3, 32, 32), conv_blocks=((64,), (128,), (256,)),
                            hidden_dims=(512,), num_classes=6, batchnorm=True, dtype=dt)
        else:
            model = ThreeLayerConvNet(dtype=dt, weight_scale=1e-2)
        if lib == "course":
            sys.path.insert(0, HERE)
            import course_reference as ref
            params = {k: np.asarray(v) for k, v in model.params.items()}
            return lambda: ref.three_layer_step(params, X, y, 7)
        from xpnn import backend
        Xd, yd = backend.to_device(X), backend.to_device(y)   # as they are on NumPy
        return lambda: model.loss(Xd, yd)
    if base == "conv_64x64x16x16_w128x3x3":
        x, w = r.randn(64, 64, 16, 16).astype(dt), r.randn(128, 64, 3, 3).astype(dt)
        b, dout = r.randn(128).astype(dt), r.randn(64, 128, 16, 16).astype(dt)
        if lib == "torch":
            xt, wt, bt, dtt = t(x, True), t(w, True), t(b, True), t(dout)

            def step():
                xt.grad = wt.grad = bt.grad = None
                F.conv2d(xt, wt, bt, padding=1).backward(dtt)
            return step
        from xpnn.layers import conv_backward_fast, conv_forward_fast

        def step():
            conv_backward_fast(dout, conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[1])
        return step
    if base == "maxpool_2x2_100x3x32x32":
        x, dout = r.randn(100, 3, 32, 32).astype(dt), r.randn(100, 3, 16, 16).astype(dt)
        if lib == "torch":
            xt, dtt = t(x, True), t(dout)

            def step():
                xt.grad = None
                F.max_pool2d(xt, 2).backward(dtt)
            return step
        from xpnn.layers import max_pool_backward_fast, max_pool_forward_fast
        p = {"pool_height": 2, "pool_width": 2, "stride": 2}
        return lambda: max_pool_backward_fast(dout, max_pool_forward_fast(x, p)[1])
    if base == "captioning_lstm_step":
        # the LSTM captioning notebook's sizes: 25 captions of 17 words (16
        # steps), PCA image features 512, word vectors 256, hidden 512, 1004 words
        N, T, V, D, W, H = 25, 16, 1004, 512, 256, 512
        feats = r.randn(N, D).astype(np.float32)
        caps = r.randint(3, V, size=(N, T + 1))
        caps[:, 0] = 1
        caps[:, -3:] = 0        # some <NULL> padding, which the loss skips
        if lib == "torch":
            proj, emb = torch.nn.Linear(D, H), torch.nn.Embedding(V, W)
            lstm, vocab = torch.nn.LSTM(W, H, batch_first=True), torch.nn.Linear(H, V)
            mods = (proj, emb, lstm, vocab)
            ft, cin, cout = t(feats), torch.tensor(caps[:, :-1]), torch.tensor(caps[:, 1:])

            def step():
                for m in mods:
                    m.zero_grad(set_to_none=True)
                h0 = proj(ft)[None]
                out, _ = lstm(emb(cin), (h0, torch.zeros_like(h0)))
                scores = vocab(out).reshape(N * T, V)
                loss = F.cross_entropy(scores, cout.reshape(-1), ignore_index=0,
                                       reduction="sum") / N
                loss.backward()
            return step
        from xpnn.models import CaptioningRNN
        words = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
        model = CaptioningRNN(words, input_dim=D, wordvec_dim=W, hidden_dim=H,
                              cell_type="lstm", dtype=np.float32)
        return lambda: model.loss(feats, caps)
    if base == "knn_no_loops_5000x500_f64":
        # the kNN notebook: 5,000 training and 500 test CIFAR-10 images, float64
        Xtr, Xte = r.rand(5000, 3072) * 255, r.rand(500, 3072) * 255
        if lib == "torch":
            tr, te = torch.tensor(Xtr), torch.tensor(Xte)
            return lambda: torch.cdist(te, tr)
        from xpnn.models import KNearestNeighbor
        clf = KNearestNeighbor()
        clf.train(Xtr, r.randint(10, size=5000))
        return lambda: clf.compute_distances_no_loops(Xte)
    shape = (256, 512) if base == "batchnorm_256x512" else (64, 32, 16, 16)
    x, dout = r.randn(*shape).astype(dt), r.randn(*shape).astype(dt)
    g, be = np.ones(shape[1], dt), np.zeros(shape[1], dt)
    if lib == "torch":
        xt, gt, bt, dtt = t(x, True), t(g, True), t(be, True), t(dout)

        def step():
            xt.grad = gt.grad = bt.grad = None
            F.batch_norm(xt, None, None, gt, bt, training=True).backward(dtt)
        return step
    from xpnn import layers as L
    fwd, bwd = ((L.batchnorm_forward, L.batchnorm_backward_alt) if len(shape) == 2 else
                (L.spatial_batchnorm_forward, L.spatial_batchnorm_backward))
    return lambda: bwd(dout, fwd(x, g, be, {"mode": "train"})[1])


def step_times(step, steps, after_warmup=None):
    """Seconds of each of ``steps`` calls of ``step``, after 3 untimed ones
    (first-touch pages, thread pools, caches); ``after_warmup()`` runs in
    between (e.g. to reset counters)."""
    for _ in range(3):
        step()
    if after_warmup is not None:
        after_warmup()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def worker(case, lib, steps, threads):
    if os.environ.get("XPNN_BENCH_IMPORT") == "numpy-first":
        import numpy  # noqa: F401  (as a notebook does: OpenBLAS keeps its own thread wait)
    if lib == "xpnn":
        # xpnn before NumPy (unless --numpy-first), as `xpnn train` and any
        # script that imports xpnn first: it sets how OpenBLAS's threads wait
        # (see xpnn/backend/numpy/_host.py); the NumPy-only course peer keeps
        # OpenBLAS's own setting
        import xpnn  # noqa: F401
        if case.endswith("_on_torch"):
            import torch
            torch.set_num_threads(threads)
            xpnn.backend.set_backend("torch", device="cpu")
    times = step_times(_build(case, lib, threads), steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": 1e3 * statistics.median(times), "peak_mb": peak_mb}


# ------------------------------------------------------------------ the parent
def _env(threads):
    env = dict(os.environ, XPNN_BACKEND="numpy")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _run(case, lib, steps, threads):
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", case, lib,
                          str(steps), str(threads)], capture_output=True, text=True,
                         env=_env(threads), timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"{case} / {lib} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _busy(seconds):
    """A competing process that keeps one core busy, and stops by itself."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _naive_over_fast():
    """The course's naive-vs-fast cell (xpnn's own loops over its fast
    layers, float64): in-process, one library."""
    import numpy as np
    from xpnn.layers import (conv_backward_fast, conv_backward_naive, conv_forward_fast,
                             conv_forward_naive)
    r = np.random.RandomState(0)
    x, w, b = r.randn(100, 3, 31, 31), r.randn(25, 3, 3, 3), r.randn(25)
    p, dout = {"stride": 2, "pad": 1}, r.randn(100, 25, 16, 16)
    t = time.perf_counter()
    conv_backward_naive(dout, conv_forward_naive(x, w, b, p)[1])
    naive = time.perf_counter() - t
    fast = []
    for _ in range(15):
        t = time.perf_counter()
        conv_backward_fast(dout, conv_forward_fast(x, w, b, p)[1])
        fast.append(time.perf_counter() - t)
    return naive, statistics.median(fast)


def _blas_kernels() -> str:
    """Which OpenBLAS kernels NumPy runs here, and whether the environment
    chose them (OPENBLAS_CORETYPE overrides OpenBLAS's own choice)."""
    from threadpoolctl import threadpool_info
    libs = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} kernels"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return (", ".join(libs) or "no BLAS found") + (
        f" (set by the environment: {forced})" if forced else " (OpenBLAS's own choice)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=5, help="alternating xpnn / peer processes")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per process")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive/fast conv row")
    ap.add_argument("--numpy-first", action="store_true",
                    help="every process imports NumPy before anything else, as a notebook "
                         "does (xpnn's OpenBLAS thread-wait setting then comes too late)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        case, lib, steps, threads = args.worker
        print(json.dumps(worker(case, lib, int(steps), int(threads))))
        return 0
    os.environ.update(_env(args.threads))
    if args.numpy_first:
        os.environ["XPNN_BENCH_IMPORT"] = "numpy-first"
    import numpy as np
    import torch
    import xpnn
    from xpnn.backend.numpy import has_compiled
    selected = args.only.split(",") if args.only else list(CASES)
    unknown = [c for c in selected if c not in CASES and c != "naive_over_fast_conv_f64"]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    print(f"# xpnn {xpnn.__version__} (compiled im2col: {has_compiled()}), numpy "
          f"{np.__version__}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"# {platform.machine()}, {os.cpu_count()} cores visible, {args.threads} threads, "
          f"float32 unless noted, {time.strftime('%Y-%m-%d')}; each library in its own "
          f"process, {args.pairs} alternating pairs, median of {args.steps} steps after warm-up"
          f"{'; NumPy imported first' if args.numpy_first else ''}")
    print(f"# {_blas_kernels()}")
    print(f"{'case':36s} {'xpnn ms':>8s} {'peer ms':>8s} {'ratio':>6s} {'min-max':>11s} "
          f"{'xpnn MB':>8s} {'peer MB':>8s} {'target':>7s}")
    print("# peer: PyTorch CPU, except *_vs_course_ref (the course reference algorithm); "
          "*_busy_core: another process keeps one core busy meanwhile; *_on_torch: xpnn on "
          "its torch backend")
    ok = True
    slowdown = {}
    for case in selected:
        if case == "naive_over_fast_conv_f64":
            continue
        peer, target, busy = CASES[case]
        xs, ps, ratios = [], [], []
        for _ in range(args.pairs):
            hog = _busy(600) if busy else None
            try:
                x, p = _run(case, "xpnn", args.steps, args.threads), \
                    _run(case, peer, args.steps, args.threads)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            xs.append(x)
            ps.append(p)
            ratios.append(x["ms"] / p["ms"])
        xm = statistics.median(v["ms"] for v in xs)
        pm = statistics.median(v["ms"] for v in ps)
        ratio = statistics.median(ratios)
        slowdown[case] = (xm, pm)
        tgt = f"{target:6.1f}x" if target else "   -   "
        print(f"{case:36s} {xm:8.2f} {pm:8.2f} {ratio:5.2f}x {min(ratios):5.2f}-"
              f"{max(ratios):4.2f} {max(v['peak_mb'] for v in xs):8.0f} "
              f"{max(v['peak_mb'] for v in ps):8.0f} {tgt}", flush=True)
        if target:
            ok &= ratio <= target
    for case in selected:
        if case.endswith("_busy_core") and case.replace("_busy_core", "") in slowdown:
            (bx, bp), (qx, qp) = slowdown[case], slowdown[case.replace("_busy_core", "")]
            print(f"# {case}: one busy core slows xpnn {bx / qx:.1f}x, PyTorch {bp / qp:.1f}x")
    if not args.no_naive and (args.only is None or "naive_over_fast_conv_f64" in selected):
        naive, fast = _naive_over_fast()
        print(f"{'naive_over_fast_conv_f64':36s} {naive * 1e3:8.1f} {fast * 1e3:8.2f} "
              f"{naive / fast:5.0f}x faster (target >= 1000x)")
        ok &= naive / fast >= 1000
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
