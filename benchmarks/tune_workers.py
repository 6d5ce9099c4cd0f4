"""Wall time of one ``xpnn tune`` search run by one worker against the same
search run by two workers sharing a study in a real PostgreSQL server.

    python benchmarks/tune_workers.py [--pairs 3] [--trials 30] [--epochs 3]

Each run is a fresh study (a new name) in one throwaway server (Debian's
``postgresql``, as the tests start it), in rounds of: one worker with every
core for its BLAS threads, one worker with one thread, two workers
(``--workers 2`` gives each cores // 2 threads). Reported: the median wall
time of each, and the median and min-max of the per-round ratios two
workers / one (lower is better). Needs ``pip install -e ".[test]"``
(psycopg) and PostgreSQL.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def run(url, study, workers, trials, epochs, out, threads=None):
    cmd = [sys.executable, "-m", "xpnn.cli", "tune", "--storage", url, "--study", study,
           "--trials", str(trials), "--epochs", str(epochs), "--workers", str(workers),
           "--out", out, "--no-plots", "--no-report"]
    env = dict(os.environ)
    if workers == 1:  # --workers K sets its workers' threads itself
        n = str(threads or os.cpu_count() or 1)
        env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}{res.stderr}")
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("trial ")]
    return wall, len(lines), sum("pruned" in ln for ln in lines)


def main():
    import tempfile
    import pg_server
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    reason = pg_server.missing_reason()
    if reason:
        raise SystemExit(f"cannot start PostgreSQL: {reason}")
    server = pg_server.Server()
    out = tempfile.mkdtemp(prefix="xpnn-tune-bench-")
    names = {"one worker, all threads": (1, None), "one worker, 1 thread": (1, 1),
             "two workers": (2, None)}
    walls = {k: [] for k in names}
    try:
        for i in range(a.pairs):
            for k, (w, th) in names.items():
                wall, n, pruned = run(server.url, f"{w}-{th}-{i}", w, a.trials, a.epochs, out,
                                      th)
                walls[k].append(wall)
                print(f"round {i + 1}: {k}: {wall:.1f} s ({n} trials, {pruned} pruned)",
                      flush=True)
    finally:
        server.stop()
    import numpy
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, NumPy {numpy.__version__}, "
          f"{time.strftime('%Y-%m-%d')}; {a.trials} trials x {a.epochs} epochs on digits")
    for k, v in walls.items():
        print(f"{k}: median {statistics.median(v):.1f} s (min {min(v):.1f}, max {max(v):.1f})")
    for k in ("one worker, all threads", "one worker, 1 thread"):
        r = [t / o for t, o in zip(walls["two workers"], walls[k])]
        print(f"two workers / {k}: {statistics.median(r):.2f} (min {min(r):.2f}, "
              f"max {max(r):.2f}) over {a.pairs} rounds")


if __name__ == "__main__":
    main()
