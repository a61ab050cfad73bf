#!/usr/bin/env bash
# The CUDA path on a real GPU in one call (issue 20), from the repository root:
#
#     bash benchmarks/gpu_check.sh [--dry-run] [--pack] [OUT_DIR]
#
# On a machine with CUDA and the project's dependencies already installed (no registry
# needed), it installs gradbench without dependencies, then runs, each step under its own
# time budget, cut to what is left of TOTAL_BUDGET_S (440 s; a step still running 15 s
# after its SIGINT is killed, so the script ends within 8 minutes):
#
#   1. the tests marked cuda (tests/test_cuda.py), with a JUnit XML;
#   2. the engine against its anchors on the GPU (benchmarks/gpu_anchors.py): D = 16,
#      N = 10^6, 10^7, 10^8 and D = 1024, N = 65536, 2^18, 10^6;
#   3. gradbench compare --device cuda on the default suite (CSV, JSON, Markdown);
#   4. the model objectives at n = 10^5, one compare each, and one gradbench train run;
#   5. a summary, gpu-<device>.md (device, driver, versions, the command, each step's exit
#      code and wall time, the tables), to commit as results/gpu-<device>.md.
#
# A failed or timed-out step is recorded and the next one runs; the exit code is 1 when any
# step failed. A step past its budget gets SIGINT first, so compare, train and the anchors
# write what they finished. Every step's files are in OUT_DIR/files; the summary and the
# main CSVs (gpu-<device>-anchors.csv, gpu-<device>-default.csv) beside them.
#
# GPU_CHECK_COMMIT names the commit in the summary where the checkout has no .git;
# GPU_CHECK_BUDGET_S replaces TOTAL_BUDGET_S.
# OUT_DIR defaults to $OUT. --pack (the default when OUT_DIR is $OUT) replaces files/ by
# gpu-<device>-files.tar.gz, so that OUT_DIR holds four files. --dry-run runs the same
# steps on the CPU at tiny sizes, so CI proves the script works (tests/test_gpu_check.py).
set -uo pipefail
repository=$(cd "$(dirname "$0")/.." && pwd) || exit 2

export PYTHONUNBUFFERED=1
# JAX would otherwise take 75% of the GPU's memory at its first call, beside torch's.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PYTHON=${PYTHON:-python3}
TOTAL_BUDGET_S=${GPU_CHECK_BUDGET_S:-440}
MODEL_OBJECTIVES=(bayes-logreg vae-gaussian vae-bernoulli policy-mdp)

usage() {
  sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

dry_run=0
pack=""
out_dir=""
for argument in "$@"; do
  case "$argument" in
    --dry-run) dry_run=1 ;;
    --pack) pack=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option $argument" >&2; exit 2 ;;
    *) out_dir=$argument ;;
  esac
done
if [[ -z "$out_dir" ]]; then
  if [[ -z "${OUT:-}" ]]; then
    echo "gpu_check: give an output directory, or set OUT" >&2
    exit 2
  fi
  out_dir=$OUT
  pack=${pack:-1}
fi
mkdir -p "$out_dir/files" || exit 2
out_dir=$(cd "$out_dir" && pwd) || exit 2
files=$out_dir/files
cd "$repository" || exit 2
command_line="bash benchmarks/gpu_check.sh $*"

# Sizes: the issue's on the GPU, tiny on the CPU for --dry-run.
if ((dry_run)); then
  device=cpu
  export JAX_PLATFORMS=cpu
  anchor_options=(--cells '16:2000,1024:256' --loop-samples 20 --repeats 1)
  default_suite=(gaussian-square bernoulli-toy -n 2000)
  model_options=(-n 200 -e reinforce -e rloo --reference-estimator reparam)
  train_options=(-e reparam -e reinforce --steps 10 --eval-every 5 --seeds 1 -n 200)
else
  device=cuda
  anchor_options=(--loop-samples 2000 --repeats 3)
  default_suite=()
  model_options=(-n 100000)
  # As benchmarks/training_runs.sh's first run, comparable with results/train-logreg.csv.
  train_options=(-e reparam -e reinforce -e optimal-baseline -e mvd --steps 200 --eval-every 20
    --seeds 3 -n 2000)
fi
train_options+=(--batch 16 --optimizer adam --lr 0.01)

# References are estimated afresh, in a cache of this run's own (not part of the output).
GRADBENCH_CACHE_DIR=$(mktemp -d)
export GRADBENCH_CACHE_DIR
trap 'rm -rf "$GRADBENCH_CACHE_DIR"' EXIT

started=$(date +%s)
deadline=$((started + TOTAL_BUDGET_S))
: >"$files/steps.tsv"
failures=0

# run_step NAME BUDGET_S COMMAND...: run the program COMMAND with its output in
# files/NAME.log (and on stdout), SIGINT after the budget (cut to what is left of
# TOTAL_BUDGET_S) and SIGKILL 15 s later; record NAME, exit code, wall seconds and budget in
# files/steps.tsv.
run_step() {
  local name=$1 budget=$2
  shift 2
  local left=$((deadline - $(date +%s)))
  ((budget > left)) && budget=$left
  local rc wall start
  echo "=== $name (budget ${budget} s): $*"
  start=$(date +%s.%N)
  if ((budget < 5)); then
    echo "gpu_check: no time left for $name" | tee "$files/$name.log"
    rc=124
  else
    timeout -s INT -k 15 "$budget" "$@" 2>&1 | tee "$files/$name.log"
    rc=${PIPESTATUS[0]}
  fi
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$wall" "$budget" >>"$files/steps.tsv"
  echo "=== $name: exit $rc in $wall s"
  ((rc == 0)) || failures=$((failures + 1))
}

# Step 0: gradbench itself, editable and without dependencies (they are on the machine),
# unless this checkout is already what Python imports.
install_step() {
  if "$PYTHON" -c "$INSTALLED_HERE_PY" "$PWD/src" 2>/dev/null; then
    echo "gradbench is installed from this checkout" >"$files/install.log"
    printf 'install\t0\t0.0\t0\n' >>"$files/steps.tsv"
  else
    run_step install 60 "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation \
      --no-index -e .
  fi
}
INSTALLED_HERE_PY='
import importlib.metadata, os, sys
import gradbench
importlib.metadata.version("gradbench")
here = os.path.realpath(sys.argv[1]) + os.sep
sys.exit(not os.path.realpath(gradbench.__file__).startswith(here))
'

# The versions and the device, as "key: value" lines in files/environment.txt.
environment_step() {
  run_step environment 30 "$PYTHON" -c "$ENVIRONMENT_PY"
  grep -E '^(python|torch|device|device memory|jax): ' "$files/environment.log" \
    >"$files/environment.txt"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
      sed 's/^/nvidia-smi: /' >>"$files/environment.txt"
  fi
  local commit=${GPU_CHECK_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
  echo "commit: $commit" >>"$files/environment.txt"
}
ENVIRONMENT_PY='
import platform, torch
print("python:", platform.python_version())
print("torch:", torch.__version__, "CUDA", torch.version.cuda)
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print("device:", props.name)
    print("device memory:", f"{props.total_memory / 2**30:.1f} GiB,",
          props.multi_processor_count, "multiprocessors")
else:
    print("device: cpu")
try:
    import jax
    print("jax:", jax.__version__, "on", jax.default_backend(), jax.devices())
except ImportError:
    print("jax: not installed")
'

# Step 1: the tests marked cuda (they skip without CUDA, as in the dry run).
cuda_tests_step() {
  run_step cuda-tests 75 "$PYTHON" -m pytest -m cuda tests/test_cuda.py -q \
    -p no:cacheprovider --junitxml="$files/cuda-tests.xml"
}

# Step 2: the engine, its estimates, the closed form, torch.func, JAX and the hand loop.
anchors_step() {
  run_step anchors 110 "$PYTHON" benchmarks/gpu_anchors.py --device "$device" \
    "${anchor_options[@]}" --csv "$files/anchors.csv" --markdown "$files/anchors.md"
}

# Step 3: the default suite (every objective; tiny and two of them in the dry run).
default_suite_step() {
  run_step default-suite 100 "$PYTHON" -m gradbench compare "${default_suite[@]}" \
    --device "$device" --csv "$files/default.csv" --json "$files/default.json" \
    --markdown "$files/default.md" --overwrite
}

# Step 4a: each model objective at n = 10^5 (every estimator), one compare each.
model_steps() {
  local objective
  for objective in "${MODEL_OBJECTIVES[@]}"; do
    run_step "model-$objective" 30 "$PYTHON" -m gradbench compare "$objective" \
      "${model_options[@]}" --device "$device" --csv "$files/model-$objective.csv" \
      --json "$files/model-$objective.json" --markdown "$files/model-$objective.md" \
      --overwrite
  done
}

# Step 4b: one training run of bayes-logreg.
train_step() {
  run_step train 45 "$PYTHON" -m gradbench train bayes-logreg "${train_options[@]}" \
    --device "$device" --csv "$files/train.csv" --basket-csv "$files/train-basket.csv" \
    --json "$files/train.json" --overwrite
}

# The value of "key: ..." in files/environment.txt.
environment_value() {
  sed -n "s/^$1: //p" "$files/environment.txt" 2>/dev/null | head -1
}

# A file's contents, or a line saying it is missing.
include() {
  if [[ -s "$1" ]]; then cat "$1"; else echo "(no $(basename "$1"): the step did not write it)"; fi
}

# Step 5: gpu-<device>.md, the record of the whole run.
write_summary() {
  local summary=$1 name rc wall budget
  {
    local device_name
    device_name=$(environment_value device)
    echo "# gradbench on ${device_name:-an unknown device}: issue 20's GPU check"
    echo
    echo "Made by \`$command_line\` in $(($(date +%s) - started)) s on $(date -u +%F)."
    echo
    echo '```'
    include "$files/environment.txt"
    echo '```'
    echo
    echo "## Steps"
    echo
    echo "| step | exit | wall s | budget s |"
    echo "|---|---:|---:|---:|"
    while IFS=$'\t' read -r name rc wall budget; do
      echo "| $name | $rc$( ((rc == 124)) && echo ' (timed out)') | $wall | $budget |"
    done <"$files/steps.tsv"
    echo
    echo "Failed steps: $failures."
    while IFS=$'\t' read -r name rc _ _; do
      ((rc == 0)) && continue
      printf '\nThe log of %s ends:\n\n```\n' "$name"
      tail -n 20 "$files/$name.log"
      echo '```'
    done <"$files/steps.tsv"
    echo
    echo "## Tests marked cuda"
    echo
    echo '```'
    grep -o '<testsuite [^>]*' "$files/cuda-tests.xml" 2>/dev/null |
      grep -o '\(tests\|failures\|errors\|skipped\|time\)="[^"]*"' | tr '\n' ' '
    echo
    tail -n 30 "$files/cuda-tests.log" 2>/dev/null
    echo '```'
    echo
    echo "## The engine against its anchors"
    echo
    include "$files/anchors.md"
    echo
    echo "## The default suite"
    echo
    include "$files/default.md"
    echo
    echo "## The model objectives (${model_options[*]})"
    for objective in "${MODEL_OBJECTIVES[@]}"; do
      echo
      include "$files/model-$objective.md"
    done
    echo
    echo "## Training: bayes-logreg ${train_options[*]}"
    echo
    echo '```'
    include "$files/train.log"
    echo '```'
  } >"$summary"
}

install_step
environment_step
cuda_tests_step
anchors_step
default_suite_step
model_steps
train_step

# gpu-<device>.md beside the main CSVs, named after the device ("NVIDIA H200": nvidia-h200).
slug=$(environment_value device | tr '[:upper:] ' '[:lower:]-' | tr -cd 'a-z0-9.-')
prefix=$out_dir/gpu-${slug:-unknown}
write_summary "$prefix.md"
for table in anchors default; do
  [[ -f "$files/$table.csv" ]] && cp "$files/$table.csv" "$prefix-$table.csv"
done
if [[ -n "$pack" ]]; then
  tar -czf "$prefix-files.tar.gz" -C "$out_dir" files && rm -rf "$files"
fi
echo "gpu_check: $failures step(s) failed; summary in $prefix.md ($(($(date +%s) - started)) s)"
((failures == 0))
