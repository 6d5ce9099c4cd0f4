"""Where a training step's milliseconds go, xpnn next to PyTorch CPU, and
how close each comes to the machine's single-precision GEMM peak.

    python benchmarks/profile_step.py [--case three_layer|challenge] [--threads 2]
                                      [--steps 10]

Each library runs in its own process (as compare_torch.py measures them).
xpnn: every layer call the model makes is timed (forward and backward per
layer kind), and the convolutions' padding (on the NumPy host path the
columns are built a chunk at a time inside the convolution, so its rows
include im2col and col2im; other paths list them separately). PyTorch: its own
profiler's self CPU time per operator. Then the step's matrix-product
FLOPs (forward, weight and input gradients) against the measured GEMM rate
of NumPy's BLAS and of PyTorch at the same thread count.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _xpnn_profile(case, steps, threads):
    import numpy as np
    import compare_torch
    from xpnn.layers import conv as conv_mod
    from xpnn import layers as layer_fns
    from xpnn import prune
    step = compare_torch._build(case, "xpnn", threads)
    model = next(c.cell_contents for c in step.__closure__   # the model the step trains
                 if hasattr(c.cell_contents, "params"))
    acc = collections.defaultdict(float)
    stack = []

    def timed(name, fn):
        def wrapper(*a, **k):
            stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t
                inner = stack.pop()
                acc[name] += dt - inner          # exclusive time
                if stack:
                    stack[-1] += dt
        return wrapper

    for name in ("conv_forward_fast", "conv_backward_fast_params", "affine_forward",
                 "affine_backward", "relu_forward", "relu_backward", "max_pool_forward_fast",
                 "max_pool_backward_fast", "spatial_batchnorm_forward",
                 "spatial_batchnorm_backward", "batchnorm_forward", "batchnorm_backward_alt",
                 "softmax_loss"):
        home = layer_fns if hasattr(layer_fns, name) else conv_mod
        setattr(home, name, timed(name, getattr(home, name)))
    for name in ("im2col", "col2im", "pad_hw", "contiguous"):
        setattr(conv_mod, name, timed(f"conv: {name}", getattr(conv_mod, name)))
    totals = compare_torch.step_times(step, steps, after_warmup=acc.clear)
    step_ms = 1e3 * statistics.median(totals)
    scale = 1e3 / steps
    rows = {k: v * scale for k, v in acc.items()}
    rows["other (Python, reg, loss glue)"] = max(0.0, 1e3 * sum(totals) / steps -
                                                  sum(rows.values()))
    macs = _gemm_macs(model, prune)
    return {"step_ms": step_ms, "rows": rows, "gemm_macs": macs * N_OF[case]}


N_OF = {"three_layer_convnet_step": 50, "challenge_net_step": 64}  # compare_torch's batches


def _gemm_macs(model, prune):
    """Matrix-product multiply-adds per sample of one step: forward, weight
    gradient, and input gradient of every layer but the first."""
    return 3 * prune.model_stats(model)["flops"] - model.modules[0].macs()


def _torch_profile(case, steps, threads):
    import torch
    import compare_torch
    step = compare_torch._build(case, "torch", threads)
    totals = compare_torch.step_times(step, steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = collections.defaultdict(float)
    for ev in prof.key_averages():
        rows[ev.key] += ev.self_cpu_time_total / 1e3 / steps   # ms per step
    top = dict(sorted(rows.items(), key=lambda kv: -kv[1])[:12])
    return {"step_ms": 1e3 * statistics.median(totals), "rows": top}


def _gemm_rate(lib, threads):
    """Best GFLOP/s of a float32 2048 x 2048 matmul, in this process."""
    import numpy as np
    n = 2048
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    if lib == "torch":
        import torch
        torch.set_num_threads(threads)
        a, b = torch.from_numpy(a), torch.from_numpy(b)
    best = float("inf")
    for _ in range(6):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def worker(what, case, steps, threads):
    if what == "xpnn":
        import xpnn  # noqa: F401  (before NumPy, as compare_torch's worker: see xpnn/backend/numpy/_host.py)
        out = _xpnn_profile(case, steps, threads)
        out["gemm_gflops"] = _gemm_rate("numpy", threads)
    else:
        out = _torch_profile(case, steps, threads)
        out["gemm_gflops"] = _gemm_rate("torch", threads)
    print(json.dumps(out))


def _run(what, case, steps, threads):
    env = dict(os.environ, XPNN_BACKEND="numpy")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    res = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", what, case,
                          str(steps), str(threads)], capture_output=True, text=True, env=env,
                         timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=("three_layer", "challenge"), default="three_layer")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        what, case, steps, threads = args.worker
        return worker(what, case, int(steps), int(threads))
    case = {"three_layer": "three_layer_convnet_step", "challenge": "challenge_net_step"}[
        args.case]
    x = _run("xpnn", case, args.steps, args.threads)
    t = _run("torch", case, args.steps, args.threads)
    print(f"## {case}, {args.threads} threads, float32, ms per step (median of "
          f"{args.steps})\n")
    print(f"xpnn {x['step_ms']:.1f} ms; PyTorch {t['step_ms']:.1f} ms\n")
    print("| xpnn part | ms | share |\n|---|---:|---:|")
    tot = sum(x["rows"].values())
    for k, v in sorted(x["rows"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.2f} | {100 * v / tot:.0f}% |")
    print("\n| PyTorch operator (self CPU) | ms |\n|---|---:|")
    for k, v in t["rows"].items():
        print(f"| {k} | {v:.2f} |")
    gf = 2 * x["gemm_macs"] / 1e9
    print(f"\nMatrix products per step: {gf:.2f} GFLOP. GEMM peak (float32 2048^2): "
          f"NumPy's BLAS {x['gemm_gflops']:.0f} GFLOP/s, PyTorch {t['gemm_gflops']:.0f} "
          f"GFLOP/s. Whole step as a fraction of that peak: xpnn "
          f"{gf / (x['step_ms'] / 1e3) / x['gemm_gflops']:.0%}, PyTorch "
          f"{gf / (t['step_ms'] / 1e3) / t['gemm_gflops']:.0%}.")


if __name__ == "__main__":
    main()
