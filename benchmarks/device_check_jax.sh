#!/usr/bin/env bash
# Device check for JAX (issue #23): on a machine whose JAX sees an NVIDIA GPU, in under
# 5 minutes (a 280 s deadline),
#   1. the Pallas engine's tests (tests/test_pallas.py) with the kernels compiled by Triton
#      on the GPU (float32, bfloat16, float64), then
#   2. the benchmark benchmarks/pallas_device.py: jit(value_and_grad) of optax's
#      cross-entropy, multiloss on the XLA engine and on the Pallas engine at 8192×32000
#      and 16384×128256, float32 and bfloat16 (time, × optax, GB/s over 3 passes, the
#      kernels' difference from the XLA engine); its table is printed last.
#
#   bash benchmarks/device_check_jax.sh            # from anywhere; it works in the repository root
#   bash benchmarks/device_check_jax.sh --plan     # print what it would run, run nothing
#   bash benchmarks/device_check_jax.sh --dry-run  # the same steps with a CPU-only JAX
#
# The tests leave out the ones that never touch the GPU (the 8-device subprocess runs and
# the cost model's lowering on the CPU, about a minute: CI runs them).
#
# Outputs, under "${OUT:-/tmp/device_check_jax}": env.txt, tests.log, bench.log,
# bench.md, bench.json, summary.txt.
#
# Python: the first of $PYTHON, python3, /opt/torch/.venv/bin/python3, python whose JAX has a
# GPU backend; none: it says so and exits 2. A missing pure-Python dependency of multiloss
# (array-api-compat, say) is taken from wheels in .whl/ (pip install --no-index); still
# missing: exit 3.
#
# Environment: DEVICE_CHECK_SECONDS (the whole run's deadline, 280), DEVICE_CHECK_TEST_SECONDS
# (140), BENCH_ARGS (extra pallas_device.py arguments), DEVICE_CHECK_DRY_RUN=1 (accept a
# CPU-only JAX: the tests interpreted, the benchmark --quick; to check this script on a
# machine without a GPU; also --dry-run), DEVICE_CHECK_PLAN=1 or --plan (print the test and
# benchmark commands and exit 0).
# Exit status: 0 all passed; 1 tests or benchmark failed; 2 no GPU JAX; 3 a dependency is
# missing.

for argument in "$@"; do
    case $argument in
    --dry-run) DEVICE_CHECK_DRY_RUN=1 ;;
    --plan) DEVICE_CHECK_PLAN=1 ;;
    *)
        echo "device check (jax): unknown argument $argument (--dry-run, --plan)" >&2
        exit 64
        ;;
    esac
done

set -uo pipefail

START=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-/tmp/device_check_jax}"
mkdir -p "$OUT"
DEADLINE=${DEVICE_CHECK_SECONDS:-280}
TEST_SECONDS=${DEVICE_CHECK_TEST_SECONDS:-140}
BENCH_ARGS=${BENCH_ARGS:-}
DRY_RUN=${DEVICE_CHECK_DRY_RUN:-0}
PLAN=${DEVICE_CHECK_PLAN:-0}
SITE="${TMPDIR:-/tmp}/device_check_jax_site"

export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false # the tests and torch share the GPU's memory

say() { printf 'device check (jax): %s\n' "$*"; }
left() { echo $((DEADLINE - (SECONDS - START))); }

PROBE='
import sys
try:
    import jax
except Exception as error:
    print(f"no jax ({type(error).__name__}: {error})"); sys.exit(1)
backend = jax.default_backend()
if backend != "gpu" and "'"$DRY_RUN"'" != "1":
    print(f"jax {jax.__version__} has no GPU backend ({backend})"); sys.exit(1)
print(f"jax {jax.__version__} on {backend}: {jax.devices()[0].device_kind}")
'

PY=""
for candidate in ${PYTHON:-} python3 /opt/torch/.venv/bin/python3 python; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if report=$("$candidate" -c "$PROBE" 2>&1); then
        PY=$candidate
        say "python: $candidate ($report)"
        break
    fi
    say "skipping $candidate: $report"
done
if [ -z "$PY" ] && [ "$PLAN" = 1 ]; then
    PY=python3
    say "plan: no python with a GPU JAX found; the commands below name $PY"
fi
if [ -z "$PY" ]; then
    say "no python with a GPU JAX"
    exit 2
fi

TEST_CMD=("$PY" -m pytest tests/test_pallas.py -q -p no:cacheprovider -x --durations=5
    -k "not devices and not cost_model")
BENCH_FLAGS=()
[ "$DRY_RUN" = "1" ] && BENCH_FLAGS=(--quick --repeat 3)
# shellcheck disable=SC2206
BENCH_CMD=("$PY" benchmarks/pallas_device.py "${BENCH_FLAGS[@]}" $BENCH_ARGS --json "$OUT/bench.json")
if [ "$PLAN" = 1 ]; then
    say "plan (nothing run):"
    echo "tests (limit ${TEST_SECONDS}s): timeout $TEST_SECONDS ${TEST_CMD[*]}"
    echo "benchmark (the time left of ${DEADLINE}s): ${BENCH_CMD[*]}"
    exit 0
fi

# ------------------------------------------------------------------ dependencies of multiloss
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import multiloss.jax, optax, pytest, mpmath, hypothesis" 2>/dev/null; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .whl/*.whl && export PYTHONPATH="$PYTHONPATH:$SITE"
    fi
fi
if ! missing=$("$PY" -c "import multiloss.jax, optax, pytest, mpmath, hypothesis" 2>&1); then
    say "a dependency is missing: $(echo "$missing" | tail -1)"
    exit 3
fi
{
    echo "python: $PY"
    "$PY" -c "$PROBE"
    "$PY" -c "import jax, jaxlib, optax; print('jaxlib', jaxlib.__version__, 'optax', optax.__version__)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} >"$OUT/env.txt" 2>&1

# -------------------------------------------------------------------------------- 1. tests
status=0
say "tests (limit ${TEST_SECONDS}s)"
timeout "$TEST_SECONDS" "${TEST_CMD[@]}" >"$OUT/tests.log" 2>&1
tests=$?
tail -n 15 "$OUT/tests.log"
[ "$tests" -eq 0 ] || status=1

# ---------------------------------------------------------------------------- 2. benchmark
budget=$(left)
if [ "$budget" -lt 30 ]; then
    say "no time left for the benchmark (${budget}s)"
    status=1
else
    say "benchmark (limit ${budget}s): ${BENCH_CMD[*]}"
    timeout "$budget" "${BENCH_CMD[@]}" >"$OUT/bench.md" 2>"$OUT/bench.log"
    bench=$?
    [ "$bench" -eq 0 ] || { status=1; tail -n 20 "$OUT/bench.log"; }
    cat "$OUT/bench.md"
fi

{
    echo "tests exit $tests; benchmark exit ${bench:-none}; $((SECONDS - START)) s"
    grep -E "passed|failed|error" "$OUT/tests.log" | tail -n 1
} | tee "$OUT/summary.txt"
exit $status
