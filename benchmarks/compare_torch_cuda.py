"""GPU throughput: xpnn on CuPy vs PyTorch CUDA, each library in its own
process, at the same precision.

    python benchmarks/compare_torch_cuda.py                      # FP32 and TF32, batch 64/256/1024
    python benchmarks/compare_torch_cuda.py --precision fp32 --batches 256 --pairs 3
    python benchmarks/compare_torch_cuda.py --cpu-check          # the same code on NumPy / torch CPU
    python benchmarks/compare_torch_cuda.py --json out.json      # the rows, for gpu_check.sh

A train step is forward + backward + Adam update on a fixed batch, float32
weights. Precision is the same on both sides: ``fp32`` is plain IEEE FP32
(torch: TF32 off for matmul and cuDNN; CuPy: CUPY_TF32 unset), ``tf32`` lets
both use TF32 tensor cores (torch: TF32 on; CuPy: CUPY_TF32=1, set before
CuPy loads). Each measurement runs in a fresh process (two libraries in one
process share a device allocator, streams and host threads and disturb
each other); the two libraries alternate, A B A B, ``--pairs`` times. In a
process: ``--warmup`` steps, then ``--steps`` steps each timed with CUDA
events; the figure is the median step time. Printed: images/s of each
library (median over pairs), the ratio xpnn / PyTorch (higher is better) and
the min-max of the pairwise ratios, with the device, driver, CUDA, CuPy and
PyTorch versions and the date.

Nets: ``three_layer`` (the course ThreeLayerConvNet: conv7x7 32 - ReLU -
pool - affine 100 - ReLU - affine 10) and ``challenge`` (the seeds' CINIC
challenge net: 3 x [conv3x3 - BN - ReLU - pool] with 64/128/256 filters,
affine 512 - BN - ReLU, affine 6).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

NETS = ("three_layer", "challenge")


# ------------------------------------------------------------------ models
def torch_model(torch, net):
    nn = torch.nn
    if net == "three_layer":
        return nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(),
                             nn.Linear(100, 10))
    layers, c = [], 3
    for f in (64, 128, 256):
        layers += [nn.Conv2d(c, f, 3, padding=1), nn.BatchNorm2d(f), nn.ReLU(), nn.MaxPool2d(2)]
        c = f
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 512),
                         nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 6))


def xpnn_model(net):
    import numpy as np
    from xpnn.models import ConvNet, ThreeLayerConvNet
    if net == "three_layer":
        return ThreeLayerConvNet(dtype=np.float32, weight_scale=1e-2)
    return ConvNet(input_dim=(3, 32, 32), conv_blocks=((64,), (128,), (256,)),
                   hidden_dims=(512,), num_classes=6, batchnorm=True, dtype=np.float32)


def num_classes(net):
    return 10 if net == "three_layer" else 6


# ------------------------------------------------------------------ one measurement
def worker(lib, net, batch, precision, steps, warmup, cpu):
    """Time one library in this process; returns a dict for the parent."""
    import numpy as np
    r = np.random.RandomState(0)
    X = r.randn(batch, 3, 32, 32).astype(np.float32)
    y = r.randint(num_classes(net), size=batch)
    if lib == "xpnn":
        from xpnn import backend
        from xpnn.optim import adam
        backend.set_backend("numpy" if cpu else "cupy")
        model = xpnn_model(net)
        Xd, yd = backend.to_device(X), backend.to_device(y)
        configs = {k: {"learning_rate": 1e-3} for k in model.params}

        def step():
            _, grads = model.loss(Xd, yd)
            for k, w in model.params.items():
                model.params[k], configs[k] = adam(w, grads[k], configs[k])
        if cpu:
            timer = _host_timer
        else:
            cp = backend.cupy_module()
            timer = _event_timer(cp.cuda.Event, lambda a, b: cp.cuda.get_elapsed_time(a, b),
                                 cp.cuda.get_current_stream().synchronize)
        info = {"cupy": None if cpu else backend.cupy_module().__version__}
        if not cpu:
            from xpnn.backend.cupy import _cudnn
            info["conv"] = "cuDNN" if _cudnn.available() else \
                f"im2col + cuBLAS (cuDNN: {_cudnn.status()[1]})"
    else:
        import torch
        if not cpu:
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        dev = torch.device("cpu" if cpu else "cuda")
        tm = torch_model(torch, net).to(dev)
        opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        Xt, yt = torch.tensor(X, device=dev), torch.tensor(y, device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(tm(Xt), yt).backward()
            opt.step()
        if cpu:
            timer = _host_timer
        else:
            timer = _event_timer(lambda: torch.cuda.Event(enable_timing=True),
                                 lambda a, b: a.elapsed_time(b), torch.cuda.synchronize)
        info = {"torch": torch.__version__}
    for _ in range(warmup):
        step()
    ms = timer(step, steps)
    return {"lib": lib, "net": net, "batch": batch, "precision": precision,
            "ms": statistics.median(ms), "ms_min": min(ms), "ms_max": max(ms), **info}


def _host_timer(step, steps):
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def _event_timer(make_event, elapsed, sync):
    def timer(step, steps):
        sync()
        events = [make_event() for _ in range(steps + 1)]
        events[0].record()
        for i in range(steps):  # queued back to back, as in training
            step()
            events[i + 1].record()
        events[-1].synchronize()
        return [elapsed(events[i], events[i + 1]) for i in range(steps)]
    return timer


# ------------------------------------------------------------------ parent
def _spawn(lib, net, batch, precision, steps, warmup, cpu):
    env = dict(os.environ)
    env.pop("CUPY_TF32", None)
    if precision == "tf32":
        env["CUPY_TF32"] = "1"  # read when CuPy loads
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, net, str(batch),
           precision, str(steps), str(warmup)] + (["--cpu-check"] if cpu else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"{lib} {net} batch {batch} {precision} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _versions(cpu):
    if cpu:
        import numpy
        return f"CPU check: NumPy {numpy.__version__} vs torch CPU, {time.strftime('%Y-%m-%d')}"
    code = ("import cupy as cp, torch, json; p = cp.cuda.runtime.getDeviceProperties(0); "
            "print(json.dumps([p['name'].decode(), cp.cuda.runtime.driverGetVersion(), "
            "cp.cuda.runtime.runtimeGetVersion(), cp.__version__, torch.__version__, "
            "torch.version.cuda, torch.backends.cudnn.version()]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        return f"versions unavailable: {res.stderr.strip().splitlines()[-1:]}"
    name, drv, rt, cupy_v, torch_v, torch_cuda, cudnn = json.loads(res.stdout)
    return (f"device {name}, driver {drv}, CUDA runtime {rt}, CuPy {cupy_v}, torch {torch_v} "
            f"(CUDA {torch_cuda}, cuDNN {cudnn}), {time.strftime('%Y-%m-%d')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--precision", default="fp32,tf32", help="fp32, tf32 or both")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=3, help="alternating A B process pairs")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--cpu-check", action="store_true",
                    help="run the same code on NumPy and torch CPU, tiny (no GPU needed)")
    ap.add_argument("--worker", nargs=6, metavar=("LIB", "NET", "BATCH", "PREC", "STEPS",
                                                  "WARMUP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        lib, net, batch, prec, steps, warm = args.worker
        print(json.dumps(worker(lib, net, int(batch), prec, int(steps), int(warm),
                                args.cpu_check)))
        return 0

    cpu = args.cpu_check
    batches = [4] if cpu else [int(b) for b in args.batches.split(",")]
    precisions = ["fp32"] if cpu else args.precision.split(",")
    steps, warmup, pairs = (2, 1, 1) if cpu else (args.steps, args.warmup, args.pairs)
    print(f"# {_versions(cpu)}")
    print(f"# each library in its own process, {pairs} alternating pair(s), {warmup} warm-up "
          f"+ {steps} timed steps each, median step time")
    print(f"{'net':12s} {'prec':5s} {'batch':>6s} {'xpnn img/s':>11s} {'torch img/s':>12s} "
          f"{'ratio':>6s} {'range':>11s}")
    rows, conv_paths = [], set()
    for net in args.nets.split(","):
        for prec in precisions:
            for B in batches:
                xs, ts = [], []
                for _ in range(pairs):
                    res = _spawn("xpnn", net, B, prec, steps, warmup, cpu)
                    xs.append(res["ms"])
                    if res.get("conv") and res["conv"] not in conv_paths:
                        conv_paths.add(res["conv"])
                        print(f"# xpnn convolutions: {res['conv']}", flush=True)
                    ts.append(_spawn("torch", net, B, prec, steps, warmup, cpu)["ms"])
                ratios = [t / x for x, t in zip(xs, ts)]  # images/s ratio = time ratio inverted
                xi, ti = B * 1e3 / statistics.median(xs), B * 1e3 / statistics.median(ts)
                row = {"net": net, "precision": prec, "batch": B, "xpnn_img_s": xi,
                       "torch_img_s": ti, "ratio": xi / ti, "ratio_min": min(ratios),
                       "ratio_max": max(ratios)}
                rows.append(row)
                print(f"{net:12s} {prec:5s} {B:6d} {xi:11.0f} {ti:12.0f} {xi / ti:6.2f} "
                      f"{min(ratios):5.2f}-{max(ratios):4.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"versions": _versions(cpu), "conv": sorted(conv_paths), "rows": rows},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
