"""Env steps MuZero needs to solve CartPole-v1, with the CartPole-v1 settings of hyperparams/muzero.yml.

    python benchmarks/cartpole.py --seeds 3
    python benchmarks/cartpole.py --seeds 3 --variant puct50 \
        --variant gumbel8 search_algorithm=gumbel num_simulations=8 \
        --variant gumbel2 search_algorithm=gumbel num_simulations=2
    python benchmarks/cartpole.py --seeds 3 --variant stored --variant reanalyse reanalyse_ratio=1.0 stop_at=3000

Trains one model per seed and evaluates it deterministically (10 episodes, ``predict(deterministic=True)``)
every 1,000 env steps. Torch runs on one thread (``--threads``): the networks are small, and more threads only
add synchronisation. Prints per seed one JSON line: ``env_steps_to_475`` (the first evaluation with a
mean return >= 475, null if none within the budget), ``wall_s`` (training time until the run stops, evaluations
excluded), ``eval_s`` and the evaluation history; then a summary line with the medians. A run stops at its first
evaluation >= 475 (with ``--full-budget``: it goes on), at its variant's ``stop_at`` (below), or at the end of the
budget (the yml's ``n_timesteps``, or ``--n-timesteps``).

``--variant NAME KEY=VALUE ...`` (repeated) compares settings in one invocation: every seed is trained once per
variant, the variants taking turns (seed 0 of each, then seed 1 of each, ...), so that a slower or busier moment of
the machine falls on all of them alike; each run's line names its variant, and a summary line per variant follows.
A variant's settings go on top of the section and of ``--set``; a variant without settings is the section itself.
``stop_at=N`` in a variant stops that variant's runs at N env steps, not a MuZero setting: a costly variant can stop
where it could no longer meet its goal while the others run to the end. Its learning-rate schedule stays that of the
whole budget (the section's ``lin_1e-3`` decays over ``n_timesteps``), so that up to N it trains exactly as it would
without ``stop_at``. The budget itself, which sets that schedule, is common to all variants (``--n-timesteps``, or
``n_timesteps`` in ``--set``): a variant with a budget of its own would learn with another schedule.
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
from sb3_muzero.common.numbers import is_int, refuse_options_below
from sb3_muzero.hyperparams import muzero_settings, parse_overrides

THRESHOLD = 475.0


class EvaluateEvery(BaseCallback):
    """Deterministic evaluation every ``every`` env steps; stops training at the first mean >= threshold (when
    ``stop_at_threshold``), and at ``stop_at`` env steps (when given)."""

    def __init__(self, every: int, n_episodes: int, seed: int, stop_at_threshold: bool, stop_at: int | None = None):
        super().__init__()
        self.every, self.n_episodes, self.stop_at_threshold, self.stop_at = every, n_episodes, stop_at_threshold, stop_at
        self.eval_env = make_vec_env("CartPole-v1", n_envs=n_episodes, seed=10_000 + seed)
        self.next_eval = every
        self.history: list[tuple[int, float]] = []
        self.steps_to_threshold = None
        self.eval_seconds = 0.0

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.every
            self._evaluate()
            if self.steps_to_threshold is not None and self.stop_at_threshold:
                return False
        return self.stop_at is None or self.num_timesteps < self.stop_at

    def _evaluate(self) -> None:
        start = time.perf_counter()
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True)
        self.eval_seconds += time.perf_counter() - start
        self.history.append((self.num_timesteps, round(float(mean), 1)))
        print(f"  {self.num_timesteps} env steps: eval mean {mean:.1f}", file=sys.stderr, flush=True)
        if mean >= THRESHOLD and self.steps_to_threshold is None:
            self.steps_to_threshold = self.num_timesteps


def run(seed: int, stop_at_threshold: bool, overrides: dict, n_timesteps: int, stop_at: int | None = None) -> dict:
    """One training run of the section with ``overrides``: ``n_timesteps`` is the budget its learning-rate schedule
    spans, ``stop_at`` (at most the budget) where it stops at the latest."""
    settings = muzero_settings("CartPole-v1")
    env = make_vec_env("CartPole-v1", n_envs=settings.n_envs, seed=seed)
    model = MuZero(settings.policy, env, seed=seed, **{**settings.kwargs, **overrides})
    callback = EvaluateEvery(1000, 10, seed, stop_at_threshold, stop_at)
    start = time.perf_counter()
    model.learn(n_timesteps, callback=callback)
    total = time.perf_counter() - start
    return dict(
        seed=seed,
        env_steps_to_475=callback.steps_to_threshold,
        wall_s=round(total - callback.eval_seconds, 1),
        eval_s=round(callback.eval_seconds, 1),
        env_steps=model.num_timesteps,
        evaluations=callback.history,
    )


def parse_variants(parser: argparse.ArgumentParser, variants: list[list[str]]) -> dict[str, list[str]]:
    """``--variant NAME KEY=VALUE ...`` items as {name: settings}; without any, the section alone (named "section")."""
    if not variants:
        return {"section": []}
    parsed: dict[str, list[str]] = {}
    for name, *items in variants:
        if "=" in name or any("=" not in item for item in items):
            parser.error(f"--variant takes a NAME, then KEY=VALUE items, got {[name, *items]}")
        if name in parsed:
            parser.error(f"--variant {name!r} is given twice")
        parsed[name] = items
    return parsed


def whole_number(parser: argparse.ArgumentParser, what: str, value) -> int | None:
    """A number of env steps as an int (a whole float such as the yml's 2e4 too); None stays None."""
    if value is None or (is_int(value) and value >= 1):
        return value
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return int(value)
    parser.error(f"{what} must be a positive whole number, got {value!r}")


def stopping_points(
    parser: argparse.ArgumentParser, budget: int, common_stop: int | None, variant_overrides: dict[str, dict]
) -> dict[str, int | None]:
    """Each variant's ``stop_at`` (popped from its settings; ``--set``'s where it has none), at most the budget."""
    stops = {}
    for name, overrides in variant_overrides.items():
        if "n_timesteps" in overrides:
            parser.error(f"--variant {name!r} sets n_timesteps, the budget, which is common to all variants (its "
                         "learning-rate schedule spans it); stop a variant early with stop_at=N instead")  # fmt: skip
        stop = whole_number(parser, f"stop_at of --variant {name!r}", overrides.pop("stop_at", common_stop))
        if stop is not None and stop > budget:
            parser.error(f"stop_at of --variant {name!r} is {stop}, beyond the budget of {budget} env steps")
        stops[name] = stop
    return stops


def summary(runs: list[dict]) -> dict:
    """The medians over runs: env steps to 475 (null if the median run never got there) and training wall time."""
    steps = [r["env_steps_to_475"] if r["env_steps_to_475"] is not None else np.inf for r in runs]
    medians = dict(
        median_env_steps_to_475=statistics.median(steps), median_wall_s=statistics.median(r["wall_s"] for r in runs)
    )
    return {key: (None if value == np.inf else value) for key, value in medians.items()}


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
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME [KEY=VALUE ...]",
        help="a named set of settings to compare (repeat for several; the variants take turns seed by seed)",
    )
    args = parser.parse_args()
    refuse_options_below(
        parser, (("--seeds", args.seeds, 1), ("--threads", args.threads, 1), ("--n-timesteps", args.n_timesteps, 1))
    )
    variants = parse_variants(parser, args.variant)
    try:
        common = parse_overrides(args.set)
        variant_overrides = {name: parse_overrides(items) for name, items in variants.items()}
    except ValueError as error:
        parser.error(str(error))
    default_budget = args.n_timesteps or muzero_settings("CartPole-v1").n_timesteps
    budget = whole_number(parser, "n_timesteps of --set", common.pop("n_timesteps", default_budget))
    common_stop = whole_number(parser, "stop_at of --set", common.pop("stop_at", None))
    stops = stopping_points(parser, budget, common_stop, variant_overrides)
    variant_overrides = {name: {**common, **overrides} for name, overrides in variant_overrides.items()}
    th.set_num_threads(args.threads)
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name, items in variants.items():
            result = run(seed, not args.full_budget, variant_overrides[name], budget, stops[name])
            results[name].append(result)
            print(json.dumps({"variant": name, "settings": items, **result}), flush=True)
    for name, runs in results.items():
        print(json.dumps({"variant": name, "settings": variants[name], **summary(runs)}), flush=True)


if __name__ == "__main__":
    main()
