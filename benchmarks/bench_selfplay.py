"""Self-play speed on Atari: env steps per second of search + env, no training.

    python benchmarks/bench_selfplay.py --env-id BreakoutNoFrameskip-v4 --n-envs 8 --sims 50 --device auto

Builds ``MuZero("CnnPolicy", make_atari_vec_env(env_id, n_envs))`` with the default network (untrained)
and then, ``--steps`` times, does what ``learn`` does to pick actions: one batched search over all
envs (initial inference, ``--sims`` recurrent inferences, the tree on the chosen backend, root noise,
visit-count temperature 1), then one step of the vector env. The replay and gradient steps are left
out. After ``--warmup`` such steps, prints one JSON line: env steps per second (``n_envs`` env steps
per vector step) and the median milliseconds per vector step spent in the search and in the env.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch as th

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.mcts.backends import get_backend


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--steps", type=int, default=50, help="timed vector steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed vector steps first")
    parser.add_argument("--device", default="auto", help="torch device of the network: auto, cpu, cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        th.set_num_threads(args.threads)
    env = make_atari_vec_env(args.env_id, n_envs=args.n_envs, seed=0)
    model = MuZero("CnnPolicy", env, num_simulations=args.sims, buffer_size=1_000, device=args.device, seed=0)
    policy = model.policy
    policy.set_training_mode(False)
    observations = env.reset()
    search_seconds, env_seconds = [], []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        with th.no_grad():
            tensor, _ = policy.obs_to_tensor(observations)
            actions = np.asarray(policy.run_search(tensor, temperature=1.0, add_noise=True).action)
        searched = time.perf_counter()
        observations, _, _, _ = env.step(actions)
        stepped = time.perf_counter()
        if step >= args.warmup:
            search_seconds.append(searched - start)
            env_seconds.append(stepped - searched)
    env.close()
    total_seconds = sum(search_seconds) + sum(env_seconds)
    print(
        json.dumps(
            dict(
                bench="selfplay",
                env_id=args.env_id,
                n_envs=args.n_envs,
                sims=args.sims,
                device=str(model.device),
                backend=get_backend(policy.search_settings.search_backend, tensor).__name__.rsplit(".", 1)[-1],
                torch_threads=th.get_num_threads(),
                vector_steps=args.steps,
                env_steps_per_s=round(args.n_envs * args.steps / total_seconds, 2),
                search_ms_median=round(1e3 * statistics.median(search_seconds), 3),
                env_ms_median=round(1e3 * statistics.median(env_seconds), 3),
                machine=platform.processor() or platform.machine(),
            )
        )
    )


if __name__ == "__main__":
    main()
