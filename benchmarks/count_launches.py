"""CUDA kernel launches per training step of xpnn on CuPy.

    python benchmarks/count_launches.py [--batch 64] [--json out.json] [--top 10]

A step is forward + backward + Adam on ThreeLayerConvNet and the seeds'
CINIC challenge net (see compare_torch_cuda.py), float32. Launches are read
from CUPTI's activity records through PyTorch's profiler, which records
every kernel the process runs (CuPy's included); PyTorch itself runs
nothing here. Each net is counted with xpnn's fused kernels on and with
them off (XPNN_NO_FUSED_KERNELS=1), each count in a fresh process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def count(net, batch, steps):
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from compare_torch_cuda import num_classes, xpnn_model
    from xpnn import backend
    from xpnn.optim import adam

    backend.set_backend("cupy")
    cp = backend.cupy_module()
    r = np.random.RandomState(0)
    X = backend.to_device(r.randn(batch, 3, 32, 32).astype(np.float32))
    y = backend.to_device(r.randint(num_classes(net), size=batch))
    model = xpnn_model(net)
    configs = {k: {"learning_rate": 1e-3} for k in model.params}

    def step():
        _, grads = model.loss(X, y)
        for k, w in model.params.items():
            model.params[k], configs[k] = adam(w, grads[k], configs[k])

    for _ in range(3):  # compile kernels, fill the memory pool
        step()
    cp.cuda.get_current_stream().synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    cp.cuda.get_current_stream().synchronize()
    wall_ms = (time.perf_counter() - t0) * 1e3 / steps
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        cp.cuda.get_current_stream().synchronize()
    kernels = copies = 0
    busy: dict = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        if e.name.startswith(("Memcpy", "Memset")):
            copies += 1
        else:
            kernels += 1
        name = e.name[:60]
        n, us = busy.get(name, (0, 0.0))
        busy[name] = (n + 1, us + e.time_range.elapsed_us())
    top = sorted(busy.items(), key=lambda kv: -kv[1][1])[:12]
    return {"net": net, "batch": batch, "kernels_per_step": kernels / steps,
            "copies_per_step": copies / steps,
            "fused": os.environ.get("XPNN_NO_FUSED_KERNELS") != "1",
            "wall_ms_per_step": wall_ms,
            "gpu_ms_per_step": sum(us for _, us in busy.values()) / steps / 1e3,
            "top_kernels": [{"name": k, "per_step": n / steps, "ms_per_step": us / steps / 1e3}
                            for k, (n, us) in top]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", default=None)
    ap.add_argument("--top", type=int, default=0,
                    help="also list the N kernels that take the most GPU time (fused run)")
    ap.add_argument("--nets", default="three_layer,challenge")
    ap.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(count(args.worker[0], args.batch, args.steps)))
        return 0
    rows = []
    print(f"{'net':12s} {'batch':>5s} {'fused':>6s} {'kernels/step':>13s} {'copies/step':>12s}")
    for net in args.nets.split(","):
        for fused in (False, True):
            env = dict(os.environ)
            env.pop("XPNN_NO_FUSED_KERNELS", None)
            if not fused:
                env["XPNN_NO_FUSED_KERNELS"] = "1"
            res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", net,
                                  "--batch", str(args.batch), "--steps", str(args.steps)],
                                 capture_output=True, text=True, env=env, timeout=600)
            if res.returncode:
                print(f"{net}: failed\n{res.stderr[-2000:]}")
                return 1
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{net:12s} {args.batch:5d} {str(fused):>6s} {row['kernels_per_step']:13.0f} "
                  f"{row['copies_per_step']:12.1f}", flush=True)
            if args.top and fused:
                print(f"    step {row['wall_ms_per_step']:.2f} ms (wall), GPU busy "
                      f"{row['gpu_ms_per_step']:.2f} ms; the kernels that "
                      "take longest (launches and ms per step):")
                for k in row["top_kernels"][:args.top]:
                    print(f"    {k['per_step']:5.1f} {k['ms_per_step']:8.3f}  {k['name']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
