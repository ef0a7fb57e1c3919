"""Env steps per second of SB3's Atari stack and of ``make_atari_vec_env``, random actions, one run.

    python benchmarks/bench_atari_env.py --env-id BreakoutNoFrameskip-v4 --n-envs 8

SB3: ``VecFrameStack(make_atari_env(env_id, n_envs), 4)`` (``DummyVecEnv``, ``Monitor``, ``AtariWrapper``;
needs OpenCV, ``pip install opencv-python``). Ours: ``make_atari_vec_env(env_id, n_envs)`` with its defaults,
plus one more contender per ``--num-threads`` value given. All see uniformly random actions and are warmed
up; then the timed chunks of ``--chunk-steps`` vector steps take turns (SB3, ours, ...) ``--chunks`` times,
so that a change in the shared machine's load hits every contender alike. Reported: the median chunk,
as env steps per second (``n_envs`` env steps per vector step), and the median CPU seconds the process
used per second (``cpu_s_per_s``: near 2 when ale-py's two threads got both cores of a 2-core machine,
near 1 when other work held a core). Prints one JSON line per contender and a
last line with the ratio ours (defaults) / SB3.
"""

import argparse
import functools
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from sb3_muzero.envs import make_atari_vec_env


def make_sb3_env(env_id: str, n_envs: int) -> VecEnv:
    """SB3's documented Atari setup."""
    try:
        import cv2  # noqa: F401  (SB3's AtariWrapper resizes frames with OpenCV)
    except ImportError as error:
        raise SystemExit("SB3's AtariWrapper needs OpenCV: pip install opencv-python") from error
    import ale_py
    import gymnasium
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gymnasium.register_envs(ale_py)
    return VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=0), n_stack=4)


@dataclass
class Contender:
    """One env implementation under test and its timed chunks."""

    impl: str
    env: VecEnv
    extra: dict[str, Any] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)
    cpu_loads: list[float] = field(default_factory=list)

    def __post_init__(self):
        self.rng = np.random.default_rng(0)
        self.env.reset()

    def run(self, num_steps: int) -> tuple[float, float]:
        """Step ``num_steps`` times with random actions.

        :return: env steps per second, and CPU seconds this process used per second (about 1 for a
            single-threaded env, up to the number of cores for a threaded one that gets them).
        """
        actions = self.rng.integers(self.env.action_space.n, size=(num_steps, self.env.num_envs))
        began, cpu_began = time.perf_counter(), time.process_time()
        for step_actions in actions:
            self.env.step(step_actions)
        seconds = time.perf_counter() - began
        return num_steps * self.env.num_envs / seconds, (time.process_time() - cpu_began) / seconds

    def run_timed_chunk(self, num_steps: int) -> None:
        rate, cpu_load = self.run(num_steps)
        self.rates.append(rate)
        self.cpu_loads.append(cpu_load)

    def record(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "env_id": args.env_id,
            "n_envs": args.n_envs,
            **self.extra,
            "steps_per_s": round(statistics.median(self.rates), 1),
            "chunk_steps_per_s": [round(rate, 1) for rate in self.rates],
            "cpu_s_per_s": round(statistics.median(self.cpu_loads), 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=200, help="vector steps before timing")
    parser.add_argument("--chunk-steps", type=int, default=250, help="vector steps per timed chunk")
    parser.add_argument("--chunks", type=int, default=7)
    parser.add_argument("--num-threads", type=int, nargs="*", default=[], help="extra contenders with these thread counts")
    args = parser.parse_args()

    make_ours = functools.partial(make_atari_vec_env, args.env_id, args.n_envs, seed=0)
    ours = make_ours()
    contenders = [
        Contender("sb3_make_atari_env+VecFrameStack", make_sb3_env(args.env_id, args.n_envs)),
        Contender("sb3_muzero.make_atari_vec_env", ours, {"num_threads": ours.num_threads}),
    ]
    for num_threads in args.num_threads:
        contenders.append(
            Contender("sb3_muzero.make_atari_vec_env", make_ours(num_threads=num_threads), {"num_threads": num_threads})
        )
    for contender in contenders:
        contender.run(args.warmup_steps)
    for _ in range(args.chunks):
        for contender in contenders:
            contender.run_timed_chunk(args.chunk_steps)
    for contender in contenders:
        print(json.dumps(contender.record(args)), flush=True)
        contender.env.close()
    sb3_rate, ours_rate = (statistics.median(contender.rates) for contender in contenders[:2])
    print(json.dumps({"ratio": "make_atari_vec_env / sb3", "n_envs": args.n_envs, "speedup": round(ours_rate / sb3_rate, 2)}))


if __name__ == "__main__":
    main()
