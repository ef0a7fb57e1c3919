"""Env steps MuZero needs to solve CartPole-v1, with the CartPole-v1 settings of hyperparams/muzero.yml.

    python benchmarks/cartpole.py --seeds 3

Trains one model per seed and evaluates it deterministically (10 episodes, ``predict(deterministic=True)``)
every 1,000 env steps. Torch runs on one thread (``--threads``): the networks are small, and more threads only
add synchronisation. Prints per seed one JSON line: ``env_steps_to_475`` (the first evaluation with a
mean return >= 475, null if none within the budget), ``wall_s`` (training time until the run stops, evaluations
excluded), ``eval_s`` and the evaluation history; then a summary line with the medians. A run stops at its first
evaluation >= 475, or with ``--full-budget`` at the end of the whole budget (the yml's ``n_timesteps``, or
``--n-timesteps``).
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_muzero import MuZero
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.hyperparams import muzero_settings, parse_overrides

THRESHOLD = 475.0


class EvaluateEvery(BaseCallback):
    """Deterministic evaluation every ``every`` env steps; stops training at the first mean >= threshold."""

    def __init__(self, every: int, n_episodes: int, seed: int, stop_at_threshold: bool):
        super().__init__()
        self.every, self.n_episodes, self.stop_at_threshold = every, n_episodes, stop_at_threshold
        self.eval_env = make_vec_env("CartPole-v1", n_envs=n_episodes, seed=10_000 + seed)
        self.next_eval = every
        self.history: list[tuple[int, float]] = []
        self.steps_to_threshold = None
        self.eval_seconds = 0.0

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.every
        start = time.perf_counter()
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True)
        self.eval_seconds += time.perf_counter() - start
        self.history.append((self.num_timesteps, round(float(mean), 1)))
        print(f"  {self.num_timesteps} env steps: eval mean {mean:.1f}", file=sys.stderr, flush=True)
        if mean >= THRESHOLD and self.steps_to_threshold is None:
            self.steps_to_threshold = self.num_timesteps
            return not self.stop_at_threshold
        return True


def run(seed: int, stop_at_threshold: bool, overrides: dict, n_timesteps: int | None = None) -> dict:
    settings = muzero_settings("CartPole-v1")
    env = make_vec_env("CartPole-v1", n_envs=settings.n_envs, seed=seed)
    model = MuZero(settings.policy, env, seed=seed, **{**settings.kwargs, **overrides})
    callback = EvaluateEvery(1000, 10, seed, stop_at_threshold)
    start = time.perf_counter()
    model.learn(settings.n_timesteps if n_timesteps is None else n_timesteps, callback=callback)
    total = time.perf_counter() - start
    return dict(
        seed=seed,
        env_steps_to_475=callback.steps_to_threshold,
        wall_s=round(total - callback.eval_seconds, 1),
        eval_s=round(callback.eval_seconds, 1),
        env_steps=model.num_timesteps,
        evaluations=callback.history,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--full-budget", action="store_true", help="keep training after reaching 475")
    parser.add_argument("--n-timesteps", type=int, default=None, help="training budget (default: the yml's n_timesteps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting: a Python literal, or lin_<value> for learning_rate",
    )
    args = parser.parse_args()
    refuse_options_below(
        parser, (("--seeds", args.seeds, 1), ("--threads", args.threads, 1), ("--n-timesteps", args.n_timesteps, 1))
    )
    try:
        overrides = parse_overrides(args.set)
    except ValueError as error:
        parser.error(str(error))
    th.set_num_threads(args.threads)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        results.append(run(seed, not args.full_budget, overrides, args.n_timesteps))
        print(json.dumps(results[-1]), flush=True)
    steps = [r["env_steps_to_475"] if r["env_steps_to_475"] is not None else np.inf for r in results]
    summary = dict(
        median_env_steps_to_475=statistics.median(steps), median_wall_s=statistics.median(r["wall_s"] for r in results)
    )
    print(json.dumps({key: (None if value == np.inf else value) for key, value in summary.items()}), flush=True)


if __name__ == "__main__":
    main()
