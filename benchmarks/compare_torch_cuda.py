"""GPU throughput: xpnn on CuPy vs PyTorch CUDA (eager, cuDNN), one process.

    python benchmarks/compare_torch_cuda.py [--batches 64,256,1024] [--repeat 20]
    python benchmarks/compare_torch_cuda.py --cpu-check   # same code, NumPy vs torch CPU, tiny

A train step is forward + backward + Adam update, float32. Prints images/s
for each library and the ratio xpnn / PyTorch (higher is better; the aim is
>= 0.5 at batch 256), plus the device, driver, CUDA, CuPy and PyTorch versions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def torch_models(torch, which):
    nn = torch.nn
    if which == "three_layer":  # conv7x7(32)-relu-pool-fc100-relu-fc10
        return nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(),
                             nn.Linear(100, 10))
    layers, c = [], 3
    for block in ((32, 32), (64, 64)):
        for f in block:
            layers += [nn.Conv2d(c, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU()]
            c = f
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 8 * 8, 256),
                         nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 10))


def xpnn_model(which):
    from xpnn.models import ConvNet, ThreeLayerConvNet
    if which == "three_layer":
        return ThreeLayerConvNet(dtype=np.float32, weight_scale=1e-2)
    return ConvNet(input_dim=(3, 32, 32), conv_blocks=((32, 32), (64, 64)), hidden_dims=(256,),
                   batchnorm=True, dtype=np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--cpu-check", action="store_true",
                    help="run the same code on NumPy and torch CPU at batch 8 (no GPU needed)")
    args = ap.parse_args(argv)

    import torch

    from xpnn import backend
    from xpnn.optim import adam

    name = "numpy" if args.cpu_check else "cupy"
    backend.set_backend(name)
    dev = torch.device("cpu" if args.cpu_check else "cuda")
    batches = [8] if args.cpu_check else [int(b) for b in args.batches.split(",")]
    repeat = 2 if args.cpu_check else args.repeat

    def sync():
        backend.synchronize()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        cp = backend.cupy_module()
        props = cp.cuda.runtime.getDeviceProperties(0)
        print(f"# device {props['name'].decode()}, driver {cp.cuda.runtime.driverGetVersion()}, "
              f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}, CuPy {cp.__version__}, "
              f"torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}), "
              f"{time.strftime('%Y-%m-%d')}")
    else:
        print(f"# CPU check: NumPy vs torch {torch.__version__} CPU, batch 8")
    print(f"{'model':12s} {'batch':>6s} {'xpnn img/s':>11s} {'torch img/s':>12s} {'ratio':>6s}")
    r = np.random.RandomState(0)
    for which in ("three_layer", "deep_convnet"):
        for B in batches:
            X = r.randn(B, 3, 32, 32).astype(np.float32)
            y = r.randint(10, size=B)
            model = xpnn_model(which)
            Xd, yd = backend.to_device(X), backend.to_device(y)
            configs = {k: {"learning_rate": 1e-3} for k in model.params}

            def x_step():
                loss, grads = model.loss(Xd, yd)
                for k, w in model.params.items():
                    model.params[k], configs[k] = adam(w, grads[k], configs[k])

            tm = torch_models(torch, which).to(dev)
            opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            Xt, yt = torch.tensor(X, device=dev), torch.tensor(y, device=dev)

            def t_step():
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(tm(Xt), yt).backward()
                opt.step()

            def timed(fn):
                fn()
                sync()
                t = time.perf_counter()
                fn()
                sync()
                return time.perf_counter() - t

            xs, ts = [], []
            for _ in range(repeat):
                xs.append(timed(x_step))
                ts.append(timed(t_step))
            xi, ti = B / statistics.median(xs), B / statistics.median(ts)
            print(f"{which:12s} {B:6d} {xi:11.0f} {ti:12.0f} {xi / ti:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
