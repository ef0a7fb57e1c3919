#!/usr/bin/env bash
# Every GPU check in one run, for a fresh GPU machine that has torch, CuPy, Numba and JAX but not the SB3 stack:
#
#   bash benchmarks/gpu_check.sh OUT_FOLDER             # on the GPU machine, from the repository's root
#   bash benchmarks/gpu_check.sh OUT_FOLDER --dry-run   # anywhere: tiny sizes, CPU backend (CI runs this)
#
# First, where the repository has a .whl/ folder (gathered here by `bash ../shared/tools/gpu-wheels.sh mctx==0.0.71`:
# SB3, gymnasium, ale-py, rl-zoo3, optuna and their small dependencies, and mctx), installs those wheels into
# /tmp/site. Then runs the steps below one after the other, each under its own time limit (`timeout`), each writing
# its output to OUT_FOLDER/<step>.log; OUT_FOLDER/summary.jsonl gets one JSON line per step (exit status, seconds,
# limit) and OUT_FOLDER/results.jsonl every JSON line the benchmarks printed. A step that fails or runs out of time
# does not stop the next ones. Before the first step it prints the planned GPU time: the sum of the GPU limits.
#
# Steps: the tests marked gpu (the CUDA backend against the reference and Numba); bench_mcts.py on the CUDA backend
# and bench_mctx.py (mctx's muzero_policy on the same GPU; skipped with a message where mctx is missing) for B in
# 8..4096 and A in {4, 18}, 50 simulations; bench_search_overhead.py with the Atari network at B=256; a Breakout
# training with the GPU settings in ATARI_GPU_SETTINGS below (env steps/s and gradient steps/s after a warm-up).
set -u

# The GPU settings of Breakout's training: changes to the `atari` section of hyperparams/muzero.yml.
ATARI_GPU_SETTINGS=(n_envs=64 num_simulations=50 batch_size=256 replay_ratio=0.125 learning_starts=5000
  "policy_kwargs=dict(channels=64, num_blocks=1)")

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: bash benchmarks/gpu_check.sh OUT_FOLDER [--dry-run]" >&2
  exit 2
fi
out=$1
dry_run=0
if [ "${2:-}" = "--dry-run" ]; then
  dry_run=1
elif [ $# -gt 1 ]; then
  echo "gpu_check.sh: unknown argument '$2' (supported: --dry-run)" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$out"
out=$(cd "$out" && pwd)
: >"$out/summary.jsonl"
: >"$out/results.jsonl"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
python=${PYTHON:-python3}

if ls .whl/*.whl >/dev/null 2>&1; then
  echo "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into /tmp/site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    echo "gpu_check.sh: installing the wheels failed; going on with what is installed" >&2
  export PYTHONPATH=/tmp/site:$root${PYTHONPATH:+:$PYTHONPATH}
else
  echo "no wheels in .whl/: using the installed packages"
  export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
fi

# Seconds each step may take on the GPU machine; their sum is the planned GPU time (printed; under 9 minutes).
gpu_limits=(tests=75 bench_mcts=45 bench_mctx=75 search_overhead=45 training=240)
if [ $dry_run = 1 ]; then
  backend=cpu device=cpu
  limits=(tests=300 bench_mcts=60 bench_mctx=60 search_overhead=60 training=90)
  mcts_sizes=(--batches 8 --actions 4 --sims 4 --repeats 2)
  overhead_sizes=(--batch 2 --sims 2 --channels 4 --repeats 1 --threads 1)
  training=(--seconds 8 --warmup-seconds 2 --threads 1 --set n_envs=2 num_simulations=2 buffer_size=2000
    learning_starts=50 batch_size=8 "policy_kwargs=dict(channels=4, num_blocks=1)")
else
  backend=cuda device=cuda
  limits=("${gpu_limits[@]}")
  mcts_sizes=(--batches 8 64 256 1024 4096 --actions 4 18 --sims 50)
  overhead_sizes=(--batch 256 --sims 50)
  training=(--seconds 200 --warmup-seconds 50 --set "${ATARI_GPU_SETTINGS[@]}")
fi
declare -A limit
for item in "${limits[@]}"; do
  limit[${item%=*}]=${item#*=}
done
planned=0
for item in "${gpu_limits[@]}"; do
  planned=$((planned + ${item#*=}))
done
echo "planned GPU time: ${planned} s ($((planned / 60)) min $((planned % 60)) s), the sum of the ${#gpu_limits[@]} steps' limits"
[ $dry_run = 1 ] && echo "dry run: tiny sizes on the CPU, each step under its dry-run limit"
echo "output in $out"

# run_step NAME COMMAND...: COMMAND under NAME's time limit, its output in NAME.log, its JSON lines in results.jsonl.
run_step() {
  local name=$1 seconds=${limit[$1]} start status elapsed
  shift
  echo "== $name (at most $seconds s): $*"
  start=$(date +%s%N)
  timeout --kill-after=10 "$seconds" "$@" >"$out/$name.log" 2>&1
  status=$?
  elapsed=$((($(date +%s%N) - start) / 1000000))
  grep -h '^{' "$out/$name.log" >>"$out/results.jsonl"
  grep -h '^{' "$out/$name.log"
  tail -n 3 "$out/$name.log" | grep -v '^{'
  printf '{"step": "%s", "status": %d, "timed_out": %s, "seconds": %d.%03d, "limit_s": %d}\n' "$name" "$status" \
    "$([ $status = 124 ] || [ $status = 137 ] && echo true || echo false)" $((elapsed / 1000)) $((elapsed % 1000)) \
    "$seconds" | tee -a "$out/summary.jsonl"
}

"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1 | tee "$out/machine.log"
"$python" -c "import cupy; print('cupy', cupy.__version__)" >>"$out/machine.log" 2>&1
run_step tests "$python" -m pytest tests -m gpu -q -p no:cacheprovider --continue-on-collection-errors
run_step bench_mcts "$python" benchmarks/bench_mcts.py --backend "$backend" "${mcts_sizes[@]}"
run_step bench_mctx "$python" benchmarks/bench_mctx.py "${mcts_sizes[@]}"
run_step search_overhead "$python" benchmarks/bench_search_overhead.py --device "$device" "${overhead_sizes[@]}"
run_step training "$python" benchmarks/bench_training.py --env BreakoutNoFrameskip-v4 --device "$device" "${training[@]}"
failed=$(grep -c '"status": [^0]' "$out/summary.jsonl")
echo "done: $failed of ${#limits[@]} steps failed or ran out of time; results in $out/results.jsonl"
[ "$failed" = 0 ]
