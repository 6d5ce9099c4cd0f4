"""Does import order change xpnn's speed? The same xpnn step in fresh
processes, in turn: NumPy imported first (a notebook; OpenBLAS's parallel
work on xpnn's pool), NumPy first with XPNN_NO_BLAS_TUNING=1 (OpenBLAS's
own threads, which spin ~0.1 s after each product), and xpnn first (`xpnn
train`; OPENBLAS_THREAD_TIMEOUT=15). Ratios to xpnn-first, median of the
rounds with their range.

    python benchmarks/import_order.py --rounds 6 --busy-core
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WAYS = {
    "numpy first": {"XPNN_BENCH_IMPORT": "numpy-first"},
    "numpy first, no pool": {"XPNN_BENCH_IMPORT": "numpy-first", "XPNN_NO_BLAS_TUNING": "1"},
    "xpnn first": {},
}


def _step_ms(case, way, steps, threads):
    env = {k: v for k, v in os.environ.items()
           if k not in ("XPNN_BENCH_IMPORT", "XPNN_NO_BLAS_TUNING", "OPENBLAS_THREAD_TIMEOUT")}
    env.update(WAYS[way], XPNN_BACKEND="numpy", OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, os.path.join(HERE, "compare_torch.py"), "--worker",
                          case, "xpnn", str(steps), str(threads)],
                         capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"{case} / {way} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])["ms"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="three_layer_convnet_step,challenge_net_step")
    ap.add_argument("--rounds", type=int, default=5, help="processes per way, in turn")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--busy-core", action="store_true",
                    help="another process keeps one core busy meanwhile")
    args = ap.parse_args(argv)
    import numpy as np
    import xpnn
    print(f"# xpnn {xpnn.__version__}, numpy {np.__version__}, python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores visible, "
          f"{args.threads} threads, {time.strftime('%Y-%m-%d')}; {args.rounds} rounds, median "
          f"of {args.steps} steps per process{'; one core busy' if args.busy_core else ''}")
    busy = None
    if args.busy_core:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for case in args.cases.split(","):
            ms = {way: [] for way in WAYS}
            for _ in range(args.rounds):
                for way in WAYS:
                    ms[way].append(_step_ms(case, way, args.steps, args.threads))
            base = ms["xpnn first"]
            for way, vals in ms.items():
                ratios = [v / b for v, b in zip(vals, base)]
                print(f"{case:28s} {way:22s} {statistics.median(vals):8.2f} ms  "
                      f"{statistics.median(ratios):5.2f}x xpnn-first "
                      f"({min(ratios):.2f}-{max(ratios):.2f})")
    finally:
        if busy is not None:
            busy.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
