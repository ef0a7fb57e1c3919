"""Seconds per 500 env steps over one CartPole-v1 training run with the section of hyperparams/muzero.yml.

    python benchmarks/training_pace.py --env-steps 4000
    python benchmarks/training_pace.py --env-steps 4000 --checkout before=/path/to/older/checkout

Prints one JSON line per 500 env steps: the checkout, the env steps, the seconds since the previous line (training and
search; no evaluations), the gradient steps so far and the mean length of the last 100 training episodes. The
gradient steps per env step are constant (the section's ``replay_ratio``), so a pace that grows over a run is a
gradient step that gets slower. With ``--checkout NAME=PATH`` (repeated) each checkout runs this script's loop with
its own package, one after the other, in a subprocess of its own; without, the package this script imports.
Torch on one thread.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def measure(name: str, env_steps: int, seed: int) -> None:
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_muzero import MuZero
    from sb3_muzero.hyperparams import muzero_settings

    th.set_num_threads(1)
    settings = muzero_settings("CartPole-v1")
    env = make_vec_env("CartPole-v1", n_envs=settings.n_envs, seed=seed)
    model = MuZero(settings.policy, env, seed=seed, **settings.kwargs)

    class Pace(BaseCallback):
        def __init__(self):
            super().__init__()
            self.last, self.next_line = time.perf_counter(), 500

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_line:
                now = time.perf_counter()
                lengths = [info["l"] for info in self.model.ep_info_buffer]
                line = dict(checkout=name, env_steps=self.num_timesteps, seconds=round(now - self.last, 2),
                            gradient_steps=self.model._n_updates,
                            mean_episode_length=round(sum(lengths) / max(1, len(lengths)), 1))  # fmt: skip
                print(json.dumps(line), flush=True)
                self.last, self.next_line = now, self.next_line + 500
            return True

    model.learn(env_steps, callback=Pace())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--name", default="this", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.env_steps < 500:
        parser.error(f"--env-steps must be >= 500, got {args.env_steps}")
    if not args.checkout:
        measure(args.name, args.env_steps, args.seed)
        return
    for checkout in args.checkout:
        name, _, path = checkout.partition("=")
        if not path or not os.path.isdir(path):
            parser.error(f"--checkout takes NAME=PATH with an existing folder, got {checkout!r}")
        command = [sys.executable, __file__, "--env-steps", str(args.env_steps), "--seed", str(args.seed), "--name", name]
        subprocess.run(command, env={**os.environ, "PYTHONPATH": os.path.abspath(path)}, check=True)


if __name__ == "__main__":
    main()
