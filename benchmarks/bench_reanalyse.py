"""Cost of reanalyse on this machine: milliseconds to search fresh targets for one batch, both searches.

    python benchmarks/bench_reanalyse.py
    python benchmarks/bench_reanalyse.py --cases cartpole --repeats 5 --set num_simulations=25
    python benchmarks/bench_reanalyse.py --device cuda   # on a GPU: the networks and the search's trees there

For each case, builds the model of its ``hyperparams/muzero.yml`` section (``--set`` overrides) with
``reanalyse_ratio=1`` (and a replay of ``--fill`` steps) and fills its replay with ``--fill`` env steps:

- ``cartpole``: CartPole-v1, ``MlpPolicy``, the ``CartPole-v1`` section (50 simulations, 30-step value targets, a
  target network); the steps come from a simple balancing rule (push towards the side the pole falls to, a random
  action one time in ten), so that episodes last hundreds of steps, as they do once MuZero has learnt;
- ``atari``: BreakoutNoFrameskip-v4, ``CnnPolicy`` with ``encoder='strided'`` (``dict(encoder='strided', channels=32,
  num_blocks=1)``), the ``atari`` section (25 simulations, 10-step targets, a target network); random play.

Then, for PUCT and for Gumbel (the same replay), it samples ``--batch-size`` unrolls of ``--unroll-steps`` steps and
times ``MuZero._reanalyse`` on them (every unroll reanalysed: its policy and bootstrap roots in one batched search)
``--repeats`` times, after a warm-up on 4 unrolls. Prints one JSON line per case and search: the median and the
smallest time in milliseconds, the mean number of roots searched, the settings and the torch threads.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.hyperparams import muzero_settings, parse_overrides

ALGORITHMS = ("puct", "gumbel")
ATARI_ID = "BreakoutNoFrameskip-v4"
WARM_UP_BATCH = 4  # unrolls of the untimed first batch
STRIDED = dict(encoder="strided", channels=32, num_blocks=1)
Rule = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # observations [n_envs, ...] -> actions [n_envs]


def balancing_rule(observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CartPole: push towards the side the pole falls to (angle plus angular velocity), at random one time in ten."""
    actions = (observations[:, 2] + observations[:, 3] > 0).astype(np.int64)
    random = rng.random(len(actions)) < 0.1
    return np.where(random, rng.integers(2, size=len(actions)), actions)


def random_rule(observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Atari: uniformly random actions (the minimal action set of Breakout: 4)."""
    return rng.integers(4, size=len(observations))


def build(case: str, algorithm: str, overrides: dict, device: str) -> tuple[MuZero, Rule]:
    """The case's model (reanalysing every unroll) and the rule that fills its replay."""
    env_id = "CartPole-v1" if case == "cartpole" else ATARI_ID
    settings = muzero_settings(env_id)
    kwargs = {**settings.kwargs, "reanalyse_ratio": 1.0, "search_algorithm": algorithm, **overrides}
    if case == "cartpole":
        env: VecEnv = make_vec_env(env_id, n_envs=settings.n_envs, seed=0)
        rule: Rule = balancing_rule
    else:
        env = make_atari_vec_env(env_id, n_envs=settings.n_envs, seed=0)
        kwargs["policy_kwargs"] = {**STRIDED, **overrides.get("policy_kwargs", {})}
        assert env.action_space.n == 4, f"{env_id} has {env.action_space.n} actions, random_rule draws 4"
        rule = random_rule
    return MuZero(settings.policy, env, seed=0, device=device, **kwargs), rule


def fill(model: MuZero, rule: Rule, env_steps: int) -> None:
    """``env_steps`` steps of ``rule`` in the model's replay (uniform policy targets, root values 0)."""
    env, rng = model.get_env(), np.random.default_rng(0)
    num_actions = env.action_space.n
    uniform = np.full((env.num_envs, num_actions), 1.0 / num_actions, dtype=np.float32)
    observations = env.reset()
    model.replay_buffer.start_new_episodes(env.num_envs)
    for _ in range(max(1, env_steps // env.num_envs)):
        actions = rule(observations, rng)
        next_observations, rewards, dones, infos = env.step(actions)
        truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        model.replay_buffer.add(observations, actions, rewards, uniform, np.zeros(env.num_envs, np.float32),
                                dones & ~truncated, truncated)  # fmt: skip
        observations = next_observations


def time_reanalyse(model: MuZero, batch_size: int, unroll_steps: int, repeats: int) -> dict:
    """Median and smallest milliseconds of ``_reanalyse`` on ``repeats`` fresh batches, after a warm-up on a small one
    (compiling the search's kernels), and the mean number of roots searched."""
    times, roots = [], []
    for size in [min(WARM_UP_BATCH, batch_size)] + [batch_size] * repeats:
        sample = model.replay_buffer.sample(size, unroll_steps, model.td_steps, 1.0, model.replay_rng,
                                            with_bootstrap_observations=False)  # fmt: skip
        start = time.perf_counter()
        _, stats = model._reanalyse(sample)
        times.append((time.perf_counter() - start) * 1e3)
        roots.append(stats["reanalyse_roots"])
    times, roots = times[1:], roots[1:]
    return dict(
        reanalyse_ms=round(statistics.median(times), 1), min_ms=round(min(times), 1), roots=round(float(np.mean(roots)))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=("cartpole", "atari"), default=["cartpole", "atari"])
    parser.add_argument("--batch-size", type=int, default=256, help="unrolls per batch")
    parser.add_argument("--unroll-steps", type=int, default=5, help="K, the steps of each unroll")
    parser.add_argument("--fill", type=int, default=20_000, help="env steps in the replay")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per case and search")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="the networks' device (cuda: the search runs there too)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MuZero hyperparameter overrides")
    args = parser.parse_args()
    refuse_options_below(parser, [(f"--{name.replace('_', '-')}", getattr(args, name), 1)
                                  for name in ("batch_size", "unroll_steps", "fill", "repeats", "threads")])  # fmt: skip
    try:
        overrides = parse_overrides(args.set)
    except ValueError as error:
        parser.error(str(error))
    th.set_num_threads(args.threads)
    for case in args.cases:
        replay = None
        for algorithm in ALGORITHMS:
            settings = {"buffer_size": args.fill + 64, **overrides, "num_unroll_steps": args.unroll_steps}
            model, rule = build(case, algorithm, settings, args.device)
            if replay is None:
                fill(model, rule, args.fill)
                replay = model.replay_buffer
            model.replay_buffer = replay  # both searches on the same steps
            timing = time_reanalyse(model, args.batch_size, args.unroll_steps, args.repeats)
            line = dict(case=case, search_algorithm=algorithm, **timing, batch_size=args.batch_size,
                        num_unroll_steps=args.unroll_steps, num_simulations=model.num_simulations, td_steps=model.td_steps,
                        target_network=model.target_policy is not None, fill=args.fill, repeats=args.repeats,
                        threads=args.threads, device=args.device)  # fmt: skip
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
