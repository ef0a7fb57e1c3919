"""Where the time of Atari training goes: search, env, replay and gradient steps, and the top functions.

    python benchmarks/profile_atari.py --steps 800 --learning-starts 200
    python benchmarks/profile_atari.py --section atari --set policy_kwargs="dict(encoder='dqn')" --top 25

Trains ``MuZero`` on ``make_atari_vec_env`` (the env ``python -m sb3_muzero`` uses) with one section of
``hyperparams/muzero.yml`` (``--section``; ``--set key=value`` overrides, values read as Python literals or
rl-zoo3's strings), for ``--steps`` env steps after ``--learning-starts`` steps of collection (so that the
profile covers gradient steps). Prints one JSON line with the wall time of each phase (seconds and share
of the learning time): ``search`` (``policy.run_search``: networks and tree), ``env`` (the vector env's
steps), ``replay_add``, ``replay_sample`` and ``gradient`` (``_gradient_step``: targets, forward, backward,
optimizer, priorities), ``other`` (the rest of SB3's loop, callbacks and logging). With ``--top N`` it also
prints the N functions of largest own time under cProfile (which slows Python-heavy code down a little).
"""

import argparse
import cProfile
import io
import json
import platform
import pstats
import time
from collections import defaultdict
from typing import Any, Callable

import torch as th

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.hyperparams import muzero_settings, parse_overrides


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--section", default=None, help="muzero.yml section (default: the env's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameter overrides")
    parser.add_argument("--steps", type=int, default=800, help="env steps profiled after the collection steps")
    parser.add_argument("--learning-starts", type=int, default=200, help="env steps collected before training")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=0, help="also print the N functions of largest own time (cProfile)")
    args = parser.parse_args()
    if args.steps < 1 or args.learning_starts < 0 or args.threads < 1:
        parser.error("--steps and --threads must be >= 1, --learning-starts >= 0")
    return args


class PhaseTimer:
    """Wall time spent inside wrapped methods, by phase name (nested calls counted once, in the outer phase)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, owner: Any, method: str, phase: str) -> None:
        original: Callable = getattr(owner, method)

        def timed(*args, **kwargs):
            if self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.depth -= 1

        setattr(owner, method, timed)


def main() -> None:
    args = parse_args()
    th.set_num_threads(args.threads)
    settings = muzero_settings(args.env_id if args.section is None else args.section)
    kwargs = {**settings.kwargs, **parse_overrides(args.set), "learning_starts": args.learning_starts}
    env = make_atari_vec_env(args.env_id, n_envs=settings.n_envs, seed=args.seed)
    model = MuZero(settings.policy, env, seed=args.seed, device="cpu", **kwargs)
    model.learn(args.learning_starts)  # collection, compilation and first allocations, not profiled

    timer = PhaseTimer()
    timer.wrap(model.policy, "run_search", "search")
    timer.wrap(model.env, "step_wait", "env")
    timer.wrap(model.replay_buffer, "add", "replay_add")
    timer.wrap(model.replay_buffer, "sample", "replay_sample")
    timer.wrap(model, "_gradient_step", "gradient")
    profiler = cProfile.Profile() if args.top else None
    updates_before = model._n_updates
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    model.learn(args.steps, reset_num_timesteps=False)
    if profiler:
        profiler.disable()
    total = time.perf_counter() - start

    phases = dict(timer.seconds)
    phases["other"] = total - sum(phases.values())
    line = dict(
        env_id=args.env_id,
        section=settings.section,
        overrides=args.set,
        env_steps=args.steps,
        gradient_steps=model._n_updates - updates_before,
        seconds=round(total, 2),
        env_steps_per_s=round(args.steps / total, 2),
        phases={name: dict(s=round(seconds, 2), share=round(seconds / total, 3)) for name, seconds in phases.items()},
        threads=args.threads,
        machine=platform.processor() or platform.machine(),
        cpus=th.get_num_threads(),
    )
    print(json.dumps(line), flush=True)
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(args.top)
        print(stream.getvalue())


if __name__ == "__main__":
    main()
