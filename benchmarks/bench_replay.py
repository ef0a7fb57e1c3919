"""Memory per stored Atari step and the time to sample a training batch from the MuZero replay.

    python benchmarks/bench_replay.py

Fills a replay of ``--size`` steps with 84x84x4 frame stacks (random frames, episodes of random length,
8 envs), then times ``sample`` of ``--batch`` unrolls of K=5 steps with their targets (n-step values,
rewards, policies, masks, importance weights, rebuilt frame stacks), with and without the next
observations the consistency loss needs. One thread; median over ``--repeats`` after a warm-up. Prints
one JSON line per case.
"""

import argparse
import json

import numpy as np
from gymnasium import spaces
from timing import median_ms

from sb3_muzero.replay import MuZeroReplayBuffer

FRAME_SHAPE = (84, 84)
STACK = 4
NUM_ACTIONS = 18
N_ENVS = 8


def filled_replay(size: int, rng: np.random.Generator) -> MuZeroReplayBuffer:
    """A replay of ``size`` steps of frame-stacked observations, written the way self-play writes them."""
    space = spaces.Box(0, 255, (STACK, *FRAME_SHAPE), np.uint8)
    replay = MuZeroReplayBuffer(size, space, spaces.Discrete(NUM_ACTIONS), gamma=0.997, alpha=0.6, frame_stack=STACK)
    stacks = np.zeros((N_ENVS, STACK, *FRAME_SHAPE), np.uint8)
    for _ in range(size // N_ENVS):
        frames = rng.integers(0, 255, size=(N_ENVS, 1, *FRAME_SHAPE), dtype=np.uint8)
        stacks = np.concatenate([stacks[:, 1:], frames], axis=1)
        done = rng.random(N_ENVS) < 0.002
        replay.add(
            stacks,
            rng.integers(NUM_ACTIONS, size=N_ENVS),
            rng.random(N_ENVS, dtype=np.float32),
            rng.dirichlet(np.ones(NUM_ACTIONS), size=N_ENVS).astype(np.float32),
            rng.standard_normal(N_ENVS, dtype=np.float32),
            done,
            np.zeros(N_ENVS, bool),
        )
        stacks[done] = 0
    replay.update_priorities(np.arange(size), rng.random(size))
    return replay


def time_sample(replay: MuZeroReplayBuffer, batch: int, with_next: bool, repeats: int, rng: np.random.Generator) -> float:
    """Median milliseconds of one ``sample`` call."""
    return median_ms(lambda: replay.sample(batch, 5, 10, 0.4, rng, with_next_observations=with_next), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="steps in the replay")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import numba

    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    replay = filled_replay(args.size, rng)
    frame_bytes = int(np.prod(FRAME_SHAPE))
    print(json.dumps(dict(bytes_per_step=replay.bytes_per_step(), frame_bytes=frame_bytes,
                          ratio_to_frame=round(replay.bytes_per_step() / frame_bytes, 4),
                          gib_per_million_steps=round(replay.bytes_per_step() * 1e6 / 2**30, 2))))  # fmt: skip
    for with_next in (False, True):
        ms = time_sample(replay, args.batch, with_next, args.repeats, rng)
        print(json.dumps(dict(batch=args.batch, unroll_steps=5, next_observations=with_next, ms_per_sample=round(ms, 3))))


if __name__ == "__main__":
    main()
