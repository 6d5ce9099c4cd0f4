#!/usr/bin/env bash
# The whole GPU verification, one command, well under 9 minutes on one GPU:
#
#   bash benchmarks/gpu_check.sh            # results and summary.md in $OUT (default gpu_check_out/)
#
# 1. versions (nvidia-smi, CUDA, CuPy, PyTorch) and the Cython build in place;
# 2. the test suite with XPNN_BACKEND=cupy (the default backend on the GPU,
#    and every backend-parametrized test on numpy, array-api-strict and cupy);
# 3. `xpnn train --backend cupy` with a checkpoint per epoch, a resume from
#    epoch 1 that must end with the same loss history, and `xpnn prune`;
# 4. launch counts per step (fused kernels on and off);
# 5. images/s against PyTorch CUDA in FP32 and in TF32.
#
# GPU_CHECK_BACKEND=numpy runs the same steps on the CPU (launch counts and
# the GPU comparison replaced by the comparison's --cpu-check), to check this
# script itself where there is no GPU.
#
# On a machine without a registry, first run benchmarks/gpu_wheels.sh where
# pip works and bring the .whl/ folder along: it is installed from here.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
B="${GPU_CHECK_BACKEND:-cupy}"
SUMMARY="$OUT/summary.md"
export PYTHONUNBUFFERED=1
: > "$SUMMARY"
failed=0

run_step() {  # name, timeout (s), command...
    local name="$1" limit="$2"; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && failed=1
    printf '| %s | %s | %d s | %s |\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")" \
        $((SECONDS - t0)) "$(grep -v '^\s*$' "$OUT/$name.log" | tail -1 | cut -c1-120)" >> "$SUMMARY"
    return $rc
}

if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/xpnn-site .whl/*.whl && export PYTHONPATH="/tmp/xpnn-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$ROOT:${PYTHONPATH:-}"

{
    echo "# xpnn GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null)"
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/    /'
    "$PY" - <<'PYEOF' 2>&1 | sed 's/^/    /'
import platform
print("python", platform.python_version())
try:
    import cupy as cp
    print("cupy", cp.__version__, "CUDA runtime", cp.cuda.runtime.runtimeGetVersion(),
          "driver", cp.cuda.runtime.driverGetVersion())
except Exception as exc:
    print("cupy unavailable:", exc)
try:
    import torch
    print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())
except Exception as exc:
    print("torch unavailable:", exc)
PYEOF
    echo
    echo "| step | result | time | last line |"
    echo "|---|---|---|---|"
} >> "$SUMMARY"

run_step build 300 "$PY" setup.py build_ext --inplace
run_step backend 120 "$PY" -c "from xpnn import backend; backend.set_backend('$B'); print('$B backend ok')"
run_step suite 420 env XPNN_BACKEND="$B" "$PY" -m pytest -q -p no:cacheprovider -x tests
RUN="$OUT/train"
run_step train 180 "$PY" -m xpnn train --backend "$B" --epochs 3 --checkpoint "$RUN/full"
run_step resume 180 "$PY" -m xpnn train --backend "$B" --epochs 3 --resume "$RUN/full_epoch_1.npz" \
    --checkpoint "$RUN/resumed"
run_step resume_equal 60 "$PY" - "$RUN/full_epoch_3.npz" "$RUN/resumed_epoch_3.npz" <<'PYEOF'
import sys
from xpnn.checkpoint import load_npz
a, b = (load_npz(p)[0]["loss_history"] for p in sys.argv[1:3])
assert a == b, f"resumed loss history differs: {len(a)} vs {len(b)} entries"
print(f"resumed run equals the uninterrupted one ({len(a)} losses)")
PYEOF
run_step prune 180 "$PY" -m xpnn prune --backend "$B" --checkpoint "$RUN/full_epoch_3.npz" \
    --plot "$OUT/prune.png"
if [ "$B" = cupy ]; then
    run_step launches 240 "$PY" benchmarks/count_launches.py --json "$OUT/launches.json"
    run_step compare 420 "$PY" benchmarks/compare_torch_cuda.py --pairs 1 --steps 30 \
        --json "$OUT/compare.json"
else
    run_step compare 120 "$PY" benchmarks/compare_torch_cuda.py --cpu-check --json "$OUT/compare.json"
fi

{
    echo
    echo '## launch counts'; echo '```'; cat "$OUT/launches.log" 2>/dev/null; echo '```'
    echo '## xpnn vs PyTorch CUDA'; echo '```'; cat "$OUT/compare.log" 2>/dev/null; echo '```'
} >> "$SUMMARY"
cat "$SUMMARY"
exit $failed
