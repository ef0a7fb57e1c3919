"""Atari training speed, end to end, of several checkouts of sb3-muzero and of rl-zoo3's DQN, alternating.

    python benchmarks/atari_speed.py --checkout before=/tmp/a82cacf --checkout after=. --dqn --rounds 2

For each ``--checkout LABEL=PATH`` (a folder with an ``sb3_muzero`` package, imported from there), trains MuZero
on ``make_atari_vec_env(--env, n_envs of the section)`` with that checkout's own ``atari`` section of
``hyperparams/muzero.yml``: first ``--learning-starts`` env steps of collection (untimed: it fills the replay; the
same number for every checkout), then ``--steps`` env steps of search, env steps and gradient steps together,
timed. With ``--dqn``, also SB3's DQN with rl-zoo3's ``atari`` hyperparameters on SB3's Atari stack
(``make_atari_env`` + ``VecFrameStack(4)``), timed the same way after its own ``--learning-starts`` steps. The
measurements take turns, round by round, each in a fresh process, so the machine's load falls on all alike.

Prints one JSON line per measurement (label, round, env steps/s, gradient steps, seconds, the load average
before it), then one summary line: the median env steps/s of each label and the ratios to the first checkout and
to DQN.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from sb3_muzero.common.numbers import refuse_options_below

MEASURE = r"""
import json, sys, time
import torch as th
kind, env_id, learning_starts, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
th.set_num_threads(threads)
if kind == "muzero":
    from sb3_muzero import MuZero, make_atari_vec_env
    from sb3_muzero.hyperparams import muzero_settings
    settings = muzero_settings(env_id)
    kwargs = {**settings.kwargs, "learning_starts": learning_starts}
    model = MuZero(settings.policy, make_atari_vec_env(env_id, n_envs=settings.n_envs, seed=0), seed=0, device="cpu", **kwargs)
else:
    import ale_py, gymnasium, yaml, rl_zoo3, pathlib
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack
    gymnasium.register_envs(ale_py)
    hyperparams = yaml.safe_load((pathlib.Path(rl_zoo3.__file__).parent / "hyperparams" / "dqn.yml").read_text())["atari"]
    for key in ("env_wrapper", "frame_stack", "n_timesteps"):
        hyperparams.pop(key)
    hyperparams["learning_starts"] = learning_starts
    env = VecFrameStack(make_atari_env(env_id, n_envs=hyperparams.pop("n_envs", 1), seed=0), n_stack=4)
    model = DQN(env=env, seed=0, device="cpu", **hyperparams)
model.learn(learning_starts)
updates = model._n_updates
start = time.perf_counter()
model.learn(steps, reset_num_timesteps=False)
seconds = time.perf_counter() - start
print(json.dumps(dict(env_steps_per_s=round(steps / seconds, 2), seconds=round(seconds, 1),
                      gradient_steps=int(model._n_updates - updates))))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", action="append", required=True, metavar="LABEL=PATH", help="a checkout to measure")
    parser.add_argument("--dqn", action="store_true", help="also measure rl-zoo3's DQN")
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--learning-starts", type=int, default=1000, help="untimed collection steps first")
    parser.add_argument("--steps", type=int, default=800, help="timed MuZero env steps")
    parser.add_argument("--dqn-steps", type=int, default=4000, help="timed DQN env steps")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    options = ("--learning-starts", "--steps", "--dqn-steps", "--rounds", "--threads")
    refuse_options_below(parser, [(option, getattr(args, option[2:].replace("-", "_")), 1) for option in options])
    for item in args.checkout:
        _, separator, path = item.partition("=")
        if not separator or not os.path.isdir(os.path.join(path, "sb3_muzero")):
            parser.error(f"--checkout {item!r}: expected LABEL=PATH of a folder with an sb3_muzero package")
    return args


def measure(kind: str, path: str, args: argparse.Namespace) -> dict:
    steps = args.steps if kind == "muzero" else args.dqn_steps
    command = [sys.executable, "-c", MEASURE, kind, args.env, str(args.learning_starts), str(steps), str(args.threads)]
    environment = {**os.environ, "PYTHONPATH": os.path.abspath(path) if path else os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False,
                            cwd=os.path.abspath(path) if path else None)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{kind} at {path or 'installed'} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    runs = [(label, "muzero", path) for label, _, path in (item.partition("=") for item in args.checkout)]
    if args.dqn:
        runs.append(("dqn", "dqn", ""))
    speeds: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    for round_index in range(args.rounds):
        for label, kind, path in runs:
            load = os.getloadavg()[0]
            line = dict(label=label, round=round_index, load_before=round(load, 2), **measure(kind, path, args))
            speeds[label].append(line["env_steps_per_s"])
            print(json.dumps(line), flush=True)
    medians = {label: statistics.median(values) for label, values in speeds.items()}
    first = runs[0][0]
    summary = dict(median_env_steps_per_s=medians, threads=args.threads, date=time.strftime("%Y-%m-%d"))
    summary["ratio_to_" + first] = {label: round(value / medians[first], 2) for label, value in medians.items()}
    if args.dqn:
        summary["ratio_to_dqn"] = {label: round(value / medians["dqn"], 3) for label, value in medians.items()}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
