"""Env steps per second of SB3's Atari stack and of ``make_atari_vec_env``, random actions, one run.

    python benchmarks/bench_atari_env.py --env-id BreakoutNoFrameskip-v4 --n-envs 8

SB3: ``VecFrameStack(make_atari_env(env_id, n_envs), 4)`` (``DummyVecEnv``, ``Monitor``, ``AtariWrapper``;
needs OpenCV, ``pip install opencv-python``). Ours: ``make_atari_vec_env(env_id, n_envs)`` with its defaults,
plus one line per ``--num-threads`` value given. Both see the same uniformly random actions; each is warmed
up, then timed over ``--chunks`` chunks of ``--chunk-steps`` vector steps, and the median chunk is
reported as env steps per second (``n_envs`` env steps per vector step). Prints one JSON line per
implementation and a last line with the ratio ours / SB3.
"""

import argparse
import functools
import json
import statistics
import time
from typing import Callable

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from sb3_muzero.envs import make_atari_vec_env


def make_sb3_env(env_id: str, n_envs: int) -> VecEnv:
    """SB3's documented Atari setup."""
    import ale_py
    import gymnasium
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gymnasium.register_envs(ale_py)
    return VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=0), n_stack=4)


def steps_per_second(env: VecEnv, warmup_steps: int, chunk_steps: int, chunks: int) -> tuple[float, list[float]]:
    """Median env steps per second over timed chunks of random-action steps, and every chunk's figure."""
    rng = np.random.default_rng(0)
    actions = rng.integers(env.action_space.n, size=(warmup_steps + chunk_steps * chunks, env.num_envs))
    env.reset()
    for step in range(warmup_steps):
        env.step(actions[step])
    rates = []
    for chunk in range(chunks):
        start = warmup_steps + chunk * chunk_steps
        began = time.perf_counter()
        for step in range(start, start + chunk_steps):
            env.step(actions[step])
        rates.append(chunk_steps * env.num_envs / (time.perf_counter() - began))
    return statistics.median(rates), rates


def measure(impl: str, make_env: Callable[[], VecEnv], args: argparse.Namespace, **extra) -> float:
    env = make_env()
    try:
        rate, rates = steps_per_second(env, args.warmup_steps, args.chunk_steps, args.chunks)
    finally:
        env.close()
    record = {"impl": impl, "env_id": args.env_id, "n_envs": args.n_envs, **extra}
    record.update(steps_per_s=round(rate, 1), chunk_steps_per_s=[round(r, 1) for r in rates])
    print(json.dumps(record), flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=200, help="vector steps before timing")
    parser.add_argument("--chunk-steps", type=int, default=250, help="vector steps per timed chunk")
    parser.add_argument("--chunks", type=int, default=7)
    parser.add_argument("--num-threads", type=int, nargs="*", default=[], help="extra runs of ours with these thread counts")
    args = parser.parse_args()

    sb3_rate = measure("sb3_make_atari_env+VecFrameStack", lambda: make_sb3_env(args.env_id, args.n_envs), args)
    default_env = make_atari_vec_env(args.env_id, args.n_envs, seed=0)
    default_threads = default_env.num_threads
    default_env.close()
    ours_rate = measure(
        "sb3_muzero.make_atari_vec_env",
        lambda: make_atari_vec_env(args.env_id, args.n_envs, seed=0),
        args,
        num_threads=default_threads,
    )
    for num_threads in args.num_threads:
        measure(
            "sb3_muzero.make_atari_vec_env",
            functools.partial(make_atari_vec_env, args.env_id, args.n_envs, seed=0, num_threads=num_threads),
            args,
            num_threads=num_threads,
        )
    print(json.dumps({"ratio": "make_atari_vec_env / sb3", "n_envs": args.n_envs, "speedup": round(ours_rate / sb3_rate, 2)}))


if __name__ == "__main__":
    main()
