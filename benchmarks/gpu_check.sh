#!/usr/bin/env bash
# The whole GPU verification, one command, well under 9 minutes on one GPU:
#
#   bash benchmarks/gpu_check.sh            # results and summary.md in $OUT (default gpu_check_out/)
#
# 1. versions (nvidia-smi, CUDA, CuPy, PyTorch) and the Cython build in place;
# 2. the test suite with XPNN_BACKEND=cupy (the default backend on the GPU,
#    and every backend-parametrized test on numpy, array-api-strict and cupy),
#    spread over the machine's cores when pytest-xdist is installed;
# 3. `xpnn train --backend cupy` with a checkpoint per epoch, a resume from
#    epoch 1 that must end with the same loss history, and `xpnn prune`;
# 4. the torch backend's tests on CUDA (XPNN_TEST_TORCH_DEVICE=cuda);
#    launch counts per step (fused kernels on and off);
# 5. images/s against PyTorch CUDA in FP32 and in TF32.
#
# Every step runs under its own time limit and under what is left of the
# whole budget (GPU_CHECK_BUDGET seconds, default 520), so the script ends,
# with its summary, inside one 10-minute call. GPU_CHECK_STEPS (comma-
# separated step names) runs only those steps; GPU_CHECK_PYTEST passes extra
# arguments to the suite (e.g. "-k cupy"); GPU_CHECK_COMPARE replaces the
# comparison's arguments. $OUT receives summary.md, logs.tar.gz (every
# step's log) and the JSON results: few files, as a remote runner returns.
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
LOGS="$OUT/logs"
BUDGET="${GPU_CHECK_BUDGET:-520}"
STEPS="${GPU_CHECK_STEPS:-}"
export PYTHONUNBUFFERED=1
mkdir -p "$LOGS"
: > "$SUMMARY"
failed=0

wanted() {  # is step $1 to run?
    [ -z "$STEPS" ] || [[ ",$STEPS," == *",$1,"* ]]
}

run_step() {  # name, timeout (s), command...
    local name="$1" limit="$2"; shift 2
    wanted "$name" || return 0
    local left=$((BUDGET - SECONDS))
    if [ $left -lt 15 ]; then
        failed=1
        printf '| %s | NOT RUN | 0 s | the %d s budget is spent |\n' "$name" "$BUDGET" >> "$SUMMARY"
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0=$SECONDS
    timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && failed=1
    local result="ok"
    [ $rc -eq 124 ] && result="TIMED OUT (${limit} s)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && result="FAILED ($rc)"
    printf '| %s | %s | %d s | %s |\n' "$name" "$result" $((SECONDS - t0)) \
        "$(grep -v '^\s*$' "$LOGS/$name.log" | tail -1 | cut -c1-120 | tr '|' '/')" >> "$SUMMARY"
    echo "$name: $result after $((SECONDS - t0)) s"
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
if [ "$B" = cupy ]; then
    run_step convolutions 60 "$PY" -c "from xpnn import backend; from xpnn.backend.cupy import _cudnn
backend.set_backend('cupy'); ok, why = _cudnn.status()
print('xpnn convolutions:', 'cuDNN' if ok else 'im2col + cuBLAS', '-', why)"
fi
RUN="${TMPDIR:-/tmp}/xpnn-gpu-train"
rm -rf "$RUN"
run_step train 120 "$PY" -m xpnn train --backend "$B" --epochs 3 --checkpoint "$RUN/full" \
    --plot "$OUT/train.png"
run_step resume 120 "$PY" -m xpnn train --backend "$B" --epochs 3 --resume "$RUN/full_epoch_1.npz" \
    --checkpoint "$RUN/resumed" --plot "$RUN/resumed.png"
run_step resume_equal 60 "$PY" - "$RUN/full_epoch_3.npz" "$RUN/resumed_epoch_3.npz" <<'PYEOF'
import sys
from xpnn.checkpoint import load_npz
a, b = (load_npz(p)[0]["loss_history"] for p in sys.argv[1:3])
assert a == b, f"resumed loss history differs: {len(a)} vs {len(b)} entries"
print(f"resumed run equals the uninterrupted one ({len(a)} losses)")
PYEOF
run_step prune 120 "$PY" -m xpnn prune --backend "$B" --checkpoint "$RUN/full_epoch_3.npz" \
    --plot "$OUT/prune.png"
if [ "$B" = cupy ]; then
    # the torch backend on CUDA: its own tests and every torch-parametrized one
    run_step torch_cuda 150 env XPNN_TEST_TORCH_DEVICE=cuda "$PY" -m pytest -q \
        -p no:cacheprovider -rfEs --tb=short -m "not whole_suite" -k torch tests
    # shellcheck disable=SC2086
    run_step launches 120 "$PY" benchmarks/count_launches.py ${GPU_CHECK_LAUNCHES:---top 10} \
        --json "$OUT/launches.json"
fi
# the suite: every test once, on the GPU where a test takes the default
# backend; the whole-suite re-runs (on the CPU's simulated device) are left to CI
XDIST=()
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n "${GPU_CHECK_WORKERS:-8}")
# shellcheck disable=SC2086
run_step suite 300 env XPNN_BACKEND="$B" "$PY" -m pytest -q -p no:cacheprovider -rfEs \
    --tb=short -m "not whole_suite" "${XDIST[@]}" ${GPU_CHECK_PYTEST:-} tests
if [ "$B" = cupy ]; then
    # shellcheck disable=SC2086
    run_step compare 400 "$PY" benchmarks/compare_torch_cuda.py \
        ${GPU_CHECK_COMPARE:---pairs 1 --steps 30} --json "$OUT/compare.json"
else
    run_step compare 120 "$PY" benchmarks/compare_torch_cuda.py --cpu-check --json "$OUT/compare.json"
fi

{
    echo
    echo '## failures'; echo '```'
    grep -E '^(FAILED|ERROR)' "$LOGS/suite.log" 2>/dev/null | cut -c1-300 | head -60
    grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)' "$LOGS/suite.log" 2>/dev/null
    echo '```'
    echo '## launch counts'; echo '```'; cat "$LOGS/launches.log" 2>/dev/null; echo '```'
    echo '## xpnn vs PyTorch CUDA'; echo '```'; cat "$LOGS/compare.log" 2>/dev/null; echo '```'
} >> "$SUMMARY"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
cat "$SUMMARY"
exit $failed
