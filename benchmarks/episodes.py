"""How often saved models fail: many deterministic episodes per model, played at once.

    python benchmarks/episodes.py logs/muzero/CartPole-v1_1/CartPole-v1.zip --episodes 100

rl-zoo3's final evaluation plays 5 episodes, so a model that fails one episode in 20 misses a goal of 475 in up
to 23% of evaluations (1 - 0.95 ** 5). This script measures that rate: it plays ``--episodes`` episodes of
``--env`` at once (one per env of a vector env seeded ``--seed``, ``--seed + 1``, ...; one batched search per
step), each model with ``predict(deterministic=True)``, and prints one JSON line per model: ``mean_return``,
``min_return``, ``below_threshold`` (episodes with a return below ``--threshold``), ``episodes`` and ``wall_s``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_muzero import MuZero
from sb3_muzero.common.numbers import refuse_options_below


def episode_returns(model_path: str, env_id: str, episodes: int, seed: int) -> np.ndarray:
    """The returns [episodes] of the first deterministic episode of each env, env ``i`` reset with seed ``seed + i``."""
    model = MuZero.load(model_path, device="cpu")
    env = make_vec_env(env_id, n_envs=episodes, seed=seed)
    observations = env.reset()
    returns = np.zeros(episodes)
    finished = np.zeros(episodes, dtype=bool)
    while not finished.all():
        actions, _ = model.predict(observations, deterministic=True)
        observations, rewards, dones, _ = env.step(actions)
        returns += np.where(finished, 0.0, rewards)
        finished |= dones
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="saved MuZero models (.zip)")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=10_000, help="reset seed of the first env")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    refuse_options_below(parser, (("--episodes", args.episodes, 1), ("--threads", args.threads, 1)))
    missing = [path for path in args.models if not Path(path).is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    th.set_num_threads(args.threads)
    for path in args.models:
        start = time.perf_counter()
        returns = episode_returns(path, args.env, args.episodes, args.seed)
        line = dict(
            model=path,
            env=args.env,
            episodes=args.episodes,
            mean_return=round(float(returns.mean()), 2),
            min_return=float(returns.min()),
            below_threshold=int((returns < args.threshold).sum()),
            threshold=args.threshold,
            wall_s=round(time.perf_counter() - start, 1),
        )
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
