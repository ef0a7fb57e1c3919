"""Training speed: env steps and gradient steps per second of MuZero's ``learn``, after a warm-up.

    python benchmarks/bench_training.py --env BreakoutNoFrameskip-v4 --seconds 210 --device cuda --set n_envs=64

Trains on ``--env`` with its section of hyperparams/muzero.yml (as ``python -m sb3_muzero`` does: ale-py's vector
env for Atari ids), with ``--set``'s changes, for ``--seconds`` of wall time from the start of ``learn``, and prints
a progress line every 10 s (to stderr). The rates are taken from the first step at which both ``--warmup-seconds``
have passed and the replay holds ``learning_starts`` steps (so that gradient steps run) to the end: compilation,
cuDNN's autotuning and the first searches are left out. Prints one JSON line: ``env_steps_per_s``,
``gradient_steps_per_s``, the env and gradient steps and seconds of the measured stretch, and the settings changed.
"""

import argparse
import json
import sys
import time

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_muzero import MuZero
from sb3_muzero.__main__ import make_env
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.common.progress import ProgressLines
from sb3_muzero.hyperparams import is_atari_id, muzero_settings, parse_overrides


class TimedStretch(BaseCallback):
    """Stops training ``seconds`` after it started; notes (time, env steps, gradient steps) where the measured
    stretch starts (``warmup_seconds`` passed and ``learning_starts`` env steps taken) and at the last step."""

    def __init__(self, seconds: float, warmup_seconds: float, learning_starts: int):
        super().__init__()
        self.seconds, self.warmup_seconds, self.learning_starts = seconds, warmup_seconds, learning_starts
        self.start = 0.0
        self.first = self.last = None

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        now = time.perf_counter()
        point = (now, self.num_timesteps, self.model._n_updates)
        if self.first is None and now - self.start >= self.warmup_seconds and self.num_timesteps >= self.learning_starts:
            self.first = point
        self.last = point
        return now - self.start < self.seconds

    def rates(self) -> dict:
        if self.first is None or self.last[0] <= self.first[0]:
            return dict(env_steps_per_s=None, gradient_steps_per_s=None, measured_s=0.0)
        seconds, env_steps, gradient_steps = (last - first for last, first in zip(self.last, self.first))
        return dict(
            env_steps_per_s=round(env_steps / seconds, 2),
            gradient_steps_per_s=round(gradient_steps / seconds, 2),
            measured_s=round(seconds, 1),
            measured_env_steps=env_steps,
            measured_gradient_steps=gradient_steps,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--seconds", type=float, default=210.0, help="wall time of learn")
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="left out of the rates")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="change a setting of the yml section")
    args = parser.parse_args()
    refuse_options_below(parser, (("--threads", args.threads, 0),))
    try:
        overrides = parse_overrides(args.set)
    except ValueError as error:
        parser.error(str(error))
    if args.threads:
        th.set_num_threads(args.threads)
    settings = muzero_settings(args.env).with_overrides(overrides)
    env = make_env(args.env, settings.n_envs, args.seed, is_atari_id(args.env))
    model = MuZero(settings.policy, env, seed=args.seed, device=args.device, **settings.kwargs)
    stretch = TimedStretch(args.seconds, args.warmup_seconds, model.learning_starts)
    model.learn(10**12, callback=[stretch, ProgressLines(file=sys.stderr)])
    line = dict(bench="training", env=args.env, section=settings.section, set=args.set, n_envs=settings.n_envs,
                device=str(model.device), torch_threads=th.get_num_threads(), **stretch.rates(),
                env_steps=model.num_timesteps, gradient_steps=model._n_updates)  # fmt: skip
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
