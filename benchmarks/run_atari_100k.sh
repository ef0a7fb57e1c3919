#!/usr/bin/env bash
# Breakout, 100,000 env steps, 3 seeds of MuZero, DQN and PPO, one run after the other (each run uses the 2 cores):
#     nohup bash benchmarks/run_atari_100k.sh benchmarks/results/breakout_100k > breakout_100k.log 2>&1 &
# Seeds go round the algorithms (MuZero 0, DQN 0, PPO 0, MuZero 1, ...), so that a stopped series stays balanced.
# Runs already in OUT (a JSON-lines file with the final evaluation at 100,000 steps) are skipped.
set -u
out=${1:-benchmarks/results/breakout_100k}
env_id=${ENV_ID:-BreakoutNoFrameskip-v4}
python=${PYTHON:-python}
mkdir -p "$out"
for seed in 0 1 2; do
  for algo in muzero dqn ppo; do
    file="$out/${algo}_${env_id}_${seed}.jsonl"
    if [ -f "$file" ] && "$python" -c "import json, sys; sys.exit(json.loads(open('$file').read().splitlines()[-1])['env_steps'] < 100000)"; then
      echo "skip $algo seed $seed: done"
      continue
    fi
    rm -f "$file"
    echo "$(date -u +%FT%TZ) start $algo seed $seed, load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$python" benchmarks/atari.py --algo "$algo" --env "$env_id" --steps 100000 --seed "$seed" --out "$out" --threads 2
    echo "$(date -u +%FT%TZ) end $algo seed $seed (exit $?)"
  done
done
"$python" benchmarks/atari.py --plot "$out/breakout_100k.png" "$out"
