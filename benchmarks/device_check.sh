#!/usr/bin/env bash
# Device check (issues #12, #21): on a machine with an NVIDIA GPU, in under 5 minutes,
#   1. the CUDA tests with the Triton kernels compiled (TRITON_INTERPRET=0): tests/test_cuda.py
#      (values against PyTorch, no host sync, a training step in a CUDA graph: through the
#      default engine, which is the kernel engine on CUDA) and tests/test_triton_cuda.py (the
#      kernel engine against the eager plans, float32/float16/bfloat16, no host sync under
#      torch.cuda.set_sync_debug_mode("error"), a CUDA-graph training step, compile
#      fullgraph, the fused head); then the interpreter's kernel suites (tests/test_triton_*.py)
#      on CUDA tensors, in what is left of 60 s (a timeout there is reported, not a failure);
#      then
#   2. the benchmark on CUDA (benchmarks/run.py --device cuda): the kernel engine, the eager
#      plans, F.cross_entropy, the textbook formulas and Liger-Kernel where it imports; its
#      table is printed last, with benchmarks/linear_head_device.py's (the fused head against
#      the unfused head and Liger-Kernel's fused linear cross-entropy) if time is left.
#
#   bash benchmarks/device_check.sh            # from anywhere; it works in the repository root
#   bash benchmarks/device_check.sh --plan     # print what it would run, run nothing
#   bash benchmarks/device_check.sh --dry-run  # the same steps with a CPU-only torch
#
# Outputs, under "${OUT:-/tmp/device_check}": env.txt (python, torch, triton, GPU), tests.log,
# bench.log, bench/benchmarks.md and bench/benchmarks.json, summary.txt.
#
# Python: the first of $PYTHON, .venv/bin/python, python3, /opt/torch/.venv/bin/python3,
# python whose torch was built with CUDA and sees a GPU; none: it says so and exits 2.
# The machine may have no network: a missing pure-Python dependency (array-api-compat, say)
# is taken from wheels in .whl/ (pip install --no-index) or from a carried
# .venv/lib/python3*/site-packages/<package>; still missing: exit 3. Liger-Kernel joins the
# benchmark if its wheel is in .whl/ (installed without its dependencies).
#
# Environment: DEVICE_CHECK_SECONDS (the whole run's deadline, 285), DEVICE_CHECK_TEST_SECONDS
# (120), DEVICE_CHECK_EXTRA_SECONDS (60, the kernel suites), BENCH_BACKENDS (torch), BENCH_KINDS ("softmax,sigmoid focal,bce"), BENCH_ARGS (more
# run.py arguments, e.g. "--shapes 8192"),
# DEVICE_CHECK_DRY_RUN=1 or --dry-run (accept a CPU-only torch: tests on the CPU, benchmark
# --device cpu --quick; to check the script itself on a machine without a GPU),
# DEVICE_CHECK_PLAN=1 or --plan (print the test and benchmark commands and exit 0).
# Exit status: 0 all passed; 1 tests or benchmark failed; 2 no CUDA torch; 3 a dependency is
# missing.

for argument in "$@"; do
  case $argument in
  --dry-run) DEVICE_CHECK_DRY_RUN=1 ;;
  --plan) DEVICE_CHECK_PLAN=1 ;;
  *)
    echo "device check: unknown argument $argument (--dry-run, --plan)" >&2
    exit 64
    ;;
  esac
done

set -uo pipefail

START=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-/tmp/device_check}"
mkdir -p "$OUT/bench"
DEADLINE=${DEVICE_CHECK_SECONDS:-285}
TEST_SECONDS=${DEVICE_CHECK_TEST_SECONDS:-120}
EXTRA_SECONDS=${DEVICE_CHECK_EXTRA_SECONDS:-60}
BENCH_BACKENDS=${BENCH_BACKENDS:-torch}
BENCH_ARGS_GIVEN=${BENCH_ARGS+yes}
BENCH_ARGS=${BENCH_ARGS:---large --shapes 64×10,8192×1000,8192×32000,16384×128256,65536×80 --no-compiled --rounds 3 --budget 0.05 --threads 1 --in-process}
DRY_RUN=${DEVICE_CHECK_DRY_RUN:-0}
PLAN=${DEVICE_CHECK_PLAN:-0}
SITE="${TMPDIR:-/tmp}/device_check_site"

export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false # conftest.py imports JAX: no GPU memory for it

say() { printf 'device check: %s\n' "$*"; }
elapsed() { echo $((SECONDS - START)); }
left() { echo $((DEADLINE - (SECONDS - START))); }

# --------------------------------------------------------------------------- 1. python + torch

PROBE='
import sys
try:
    import torch
except Exception as error:
    print(f"no torch ({type(error).__name__}: {error})"); sys.exit(1)
built = torch.version.cuda
if built is None:
    print(f"torch {torch.__version__} built without CUDA"); sys.exit(1)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (CUDA {built}) sees no GPU"); sys.exit(1)
print(f"torch {torch.__version__} (CUDA {built}), {torch.cuda.get_device_name(0)}")
'
PY=""
declare -a TRIED=()
for candidate in "${PYTHON:-}" .venv/bin/python python3 /opt/torch/.venv/bin/python3 python; do
  [ -n "$candidate" ] || continue
  path=$(command -v "$candidate" 2>/dev/null) || continue
  [[ $path == /* ]] || path="$ROOT/$path"
  report=$(timeout 90 "$path" -c "$PROBE" 2>&1)
  status=$?
  report=${report##*$'\n'} # its last line
  TRIED+=("$path: $report")
  if [ "$status" -eq 0 ]; then
    PY=$path
    break
  fi
  if [ "$DRY_RUN" = 1 ] && [[ $report == torch* ]]; then
    PY=$path
    say "dry run: taking $path without CUDA ($report)"
    break
  fi
done
if [ -z "$PY" ] && [ "$PLAN" = 1 ]; then
  PY=$(command -v python3 || echo python3)
  say "plan: no CUDA torch found; the commands below name $PY"
fi
if [ -z "$PY" ]; then
  say "FAILED: no Python with a CUDA-enabled torch that sees a GPU. Tried:"
  if [ ${#TRIED[@]} -eq 0 ]; then
    echo "  (no python found)"
  else
    printf '  %s\n' "${TRIED[@]}"
  fi
  echo "Run this on a machine with an NVIDIA GPU and PyTorch built with CUDA, or point"
  echo "\$PYTHON at such an interpreter."
  exit 2
fi
say "python: $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"

# --------------------------------------------------------------------------- 2. the commands

has_cuda() { "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; }
ON_CPU=0
[ "$DRY_RUN" = 1 ] && ! has_cuda && ON_CPU=1

# The tests: compiled Triton (TRITON_INTERPRET=0). First the CUDA files; then the kernel
# suites written for the interpreter (tests/test_triton_*.py), which run on CUDA tensors when
# the interpreter is off: a second pytest with its own budget, whose timeout is reported but
# does not fail the check (their CPU run in CI is what holds them to the oracles).
TEST_FILES=(tests/test_cuda.py tests/test_triton_cuda.py)
EXTRA_FILES=()
for file in tests/test_triton_*.py; do
  [ -e "$file" ] && [ "$file" != tests/test_triton_cuda.py ] && EXTRA_FILES+=("$file")
done
TEST_ENV=(JAX_PLATFORMS=cpu TRITON_INTERPRET=0 MULTILOSS_TEST_DEVICE=cuda)
if [ "$ON_CPU" = 1 ]; then # the value tests of test_cuda.py on the CPU; the rest skips
  TEST_ENV=(JAX_PLATFORMS=cpu MULTILOSS_TEST_DEVICE=cpu)
  EXTRA_FILES=()
fi
TEST_CMD=("$PY" -m pytest "${TEST_FILES[@]}" -p no:cacheprovider -q -rfEs
  --durations=5)
EXTRA_CMD=("$PY" -m pytest "${EXTRA_FILES[@]}" -p no:cacheprovider -q -rfE -x)

BENCH_KINDS=${BENCH_KINDS:-softmax,sigmoid focal,bce}
device=cuda
bench_extra=()
if [ "$ON_CPU" = 1 ]; then
  device=cpu
  bench_extra=(--quick)
  # the GPU shapes do not exist in quick mode: the CPU smoke test runs every quick shape
  [ -n "$BENCH_ARGS_GIVEN" ] || BENCH_ARGS="--rounds 1 --threads 1"
fi
read -r -a user_args <<<"$BENCH_ARGS"
BENCH_CMD=("$PY" benchmarks/run.py --device "$device" --backends "$BENCH_BACKENDS"
  --kinds "$BENCH_KINDS" --out "$OUT/bench" --no-plot "${bench_extra[@]}" "${user_args[@]}")

HEAD_CMD=("$PY" benchmarks/linear_head_device.py --device "$device" --rounds 5
  --json "$OUT/bench/linear_head.json")
[ "$ON_CPU" = 1 ] && HEAD_CMD+=(--quick)

if [ "$PLAN" = 1 ]; then
  say "plan (nothing run):"
  echo "tests: env ${TEST_ENV[*]} ${TEST_CMD[*]}"
  [ ${#EXTRA_FILES[@]} -eq 0 ] || echo "kernel suites: env ${TEST_ENV[*]} ${EXTRA_CMD[*]}"
  echo "benchmark: ${BENCH_CMD[*]}"
  echo "fused head: ${HEAD_CMD[*]}"
  exit 0
fi

# --------------------------------------------------------------------------- 3. dependencies

export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
missing() { # the import names among "$@" that $PY cannot import
  "$PY" - "$@" <<'EOF'
import importlib.util, sys
def absent(name):
    try:
        return importlib.util.find_spec(name) is None
    except Exception:
        return True
print(" ".join(name for name in sys.argv[1:] if absent(name)))
EOF
}
NEEDED=(numpy array_api_compat pytest hypothesis)
read -r -a absent <<<"$(missing "${NEEDED[@]}")"
if [ ${#absent[@]} -gt 0 ]; then
  say "not importable: ${absent[*]}; looking in .whl/ and a carried .venv"
  mkdir -p "$SITE"
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl || say "pip could not install the wheels in .whl/"
  fi
  read -r -a still <<<"$(missing "${absent[@]}")"
  for name in "${still[@]}"; do
    for copy in .venv/lib/python3*/site-packages/"$name"; do
      if [ -d "$copy" ] && [ ! -e "$SITE/$name" ]; then
        ln -s "$ROOT/$copy" "$SITE/$name" && say "using $copy"
      fi
    done
  done
  read -r -a absent <<<"$(missing "${NEEDED[@]}")"
  if [ ${#absent[@]} -gt 0 ]; then
    say "FAILED: still not importable: ${absent[*]}"
    echo "Bring them as wheels in .whl/ (pip download --no-deps --only-binary=:all: NAME==VERSION"
    echo "-d .whl, on a machine with a network) or carry .venv/lib/python3*/site-packages/NAME."
    exit 3
  fi
fi
if compgen -G ".whl/liger_kernel*.whl" >/dev/null && [ -n "$(missing liger_kernel)" ]; then
  mkdir -p "$SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    .whl/liger_kernel*.whl || say "pip could not install Liger-Kernel from .whl/"
fi

{
  echo "python: $PY"
  "$PY" - <<'EOF'
import platform, torch, numpy
import multiloss
print(f"python {platform.python_version()}, numpy {numpy.__version__}, torch {torch.__version__}"
      f" (CUDA {torch.version.cuda}), multiloss {multiloss.__version__} from {multiloss.__file__}")
for name in ("triton", "liger_kernel"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as error:
        print(f"{name}: not importable ({type(error).__name__})")
if torch.cuda.is_available():
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        print(f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
              f"capability {props.major}.{props.minor}")
EOF
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
say "setup done after $(elapsed) s"

# --------------------------------------------------------------------------- 4. the CUDA tests

budget=$(left)
[ "$budget" -gt "$TEST_SECONDS" ] && budget=$TEST_SECONDS
say "tests: ${TEST_FILES[*]} with ${TEST_ENV[*]} (at most $budget s)"
env "${TEST_ENV[@]}" timeout --kill-after=10 "$budget" "${TEST_CMD[@]}" 2>&1 |
  tee "$OUT/tests.log"
TESTS_STATUS=${PIPESTATUS[0]}
echo
TESTS_LINE=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$OUT/tests.log" | tail -n 1)
[ "$TESTS_STATUS" -eq 124 ] && TESTS_LINE="timed out after $budget s; $TESTS_LINE"
say "tests: exit $TESTS_STATUS after $(elapsed) s: $TESTS_LINE"

EXTRA_STATUS=0
EXTRA_LINE="none"
if [ ${#EXTRA_FILES[@]} -gt 0 ]; then
  budget=$(($(left) - 90)) # the benchmark keeps at least 90 s
  [ "$budget" -gt "$EXTRA_SECONDS" ] && budget=$EXTRA_SECONDS
  if [ "$budget" -ge 20 ]; then
    say "kernel suites on CUDA: ${EXTRA_FILES[*]} (at most $budget s)"
    env "${TEST_ENV[@]}" timeout --kill-after=10 "$budget" "${EXTRA_CMD[@]}" \
      >"$OUT/kernel_suites.log" 2>&1
    EXTRA_STATUS=$?
    EXTRA_LINE=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$OUT/kernel_suites.log" |
      tail -n 1)
    if [ "$EXTRA_STATUS" -eq 124 ] || [ "$EXTRA_STATUS" -eq 137 ]; then
      EXTRA_LINE="timed out after $budget s (not a failure): $EXTRA_LINE"
      EXTRA_STATUS=0
    elif [ "$EXTRA_STATUS" -ne 0 ]; then
      tail -n 30 "$OUT/kernel_suites.log"
    fi
    say "kernel suites: exit $EXTRA_STATUS after $(elapsed) s: $EXTRA_LINE"
  fi
fi

# --------------------------------------------------------------------------- 5. the benchmark

budget=$(($(left) - 5))
BENCH_STATUS=0
if [ "$budget" -lt 30 ]; then
  say "benchmark: skipped, only $budget s left of the ${DEADLINE} s"
  BENCH_STATUS=124
else
  say "benchmark: ${BENCH_CMD[*]:1} (at most $budget s)"
  timeout --kill-after=10 "$budget" "${BENCH_CMD[@]}" >"$OUT/bench.log" 2>&1
  BENCH_STATUS=$?
  if [ "$BENCH_STATUS" -ne 0 ]; then
    say "benchmark: exit $BENCH_STATUS; the end of bench.log:"
    tail -n 25 "$OUT/bench.log"
  fi
fi

HEAD_STATUS=0
budget=$(($(left) - 5))
if [ "$budget" -ge 20 ]; then
  say "fused head: ${HEAD_CMD[*]:1} (at most $budget s)"
  timeout --kill-after=10 "$budget" "${HEAD_CMD[@]}" >"$OUT/bench/linear_head.md" 2>"$OUT/head.log"
  HEAD_STATUS=$?
  [ "$HEAD_STATUS" -eq 0 ] || tail -n 15 "$OUT/head.log"
else
  say "fused head: skipped, only $budget s left"
fi

# --------------------------------------------------------------------------- 6. summary, table

{
  echo "device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed) s"
  head -n 3 "$OUT/env.txt"
  echo "tests: exit $TESTS_STATUS: $TESTS_LINE"
  echo "kernel suites on CUDA: exit $EXTRA_STATUS: $EXTRA_LINE"
  echo "benchmark: exit $BENCH_STATUS (device $device)"
  echo "fused head benchmark: exit $HEAD_STATUS (not a failure of the check)"
} >"$OUT/summary.txt"
echo
if [ -s "$OUT/bench/benchmarks.md" ] && [ "$BENCH_STATUS" -eq 0 ]; then
  cat "$OUT/bench/benchmarks.md"
else
  echo "(no benchmark table: see $OUT/bench.log)"
fi
[ -s "$OUT/bench/linear_head.md" ] && cat "$OUT/bench/linear_head.md"
echo
cat "$OUT/summary.txt"
if [ "$TESTS_STATUS" -eq 0 ] && [ "$EXTRA_STATUS" -eq 0 ] && [ "$BENCH_STATUS" -eq 0 ]; then
  say "PASSED in $(elapsed) s; outputs in $OUT"
  exit 0
fi
say "FAILED in $(elapsed) s; outputs in $OUT"
exit 1
