"""Self-play actors on Ray against the single-process loop: env steps/s, updates/s, weight lag and per-step costs.

    python benchmarks/distributed.py --env-steps 20000

For each env (CartPole-v1 with its section of hyperparams/muzero.yml; BreakoutNoFrameskip-v4 with the atari section,
the CPU settings), trains a new model for ``--env-steps`` env steps in one process, then with 1, 2 and 4 actors
(``--actors``), each actor stepping the section's ``n_envs`` envs. Every run has the same settings except
``learning_starts`` (``--learning-starts``, so that short runs train) and ``buffer_size`` (at most the run's env steps,
so that the Atari replay fits in memory). Torch runs on one thread in the learner and in each actor.

Prints one JSON line per run:

- ``env_steps_per_s``, ``updates_per_s``: over the training time ``wall_s`` (for actors: from the moment every actor
  had built its envs; Ray's and the actors' start-up is ``startup_s``);
- ``weight_lag_mean``, ``weight_lag_max``: gradient steps between the weights a chunk was searched with and the
  learner's when it took the chunk in (0 in one process);
- the per-step costs of the scaling model in docs/ARCHITECTURE.md: ``acting_ms_per_env_step`` (search and env step:
  in one process the time outside ``train``, with actors the actors' busy time), ``train_ms_per_update`` (one
  gradient step, sampling included), ``sample_ms_per_update`` (the replay's part of it), ``replay_add_ms_per_env_step``
  (writing the replay), ``intake_ms_per_env_step`` (with actors: taking chunks in, replay writes and callbacks
  included), ``learner_wait_fraction`` (with actors: the learner's time spent waiting for chunks).
"""

import argparse
import json
import time
from typing import Any, Callable

import torch as th

from sb3_muzero import MuZero
from sb3_muzero.__main__ import make_env
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.hyperparams import is_atari_id, muzero_settings

ENVS = ("CartPole-v1", "BreakoutNoFrameskip-v4")


class TimedMuZero(MuZero):
    """MuZero that adds up the seconds its learner spends training, collecting, sampling and writing the replay."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self.seconds = dict(train=0.0, collect=0.0, sample=0.0, replay_add=0.0)
        self.replay_buffer.sample = self._timed(self.replay_buffer.sample, "sample")
        self.replay_buffer.add = self._timed(self.replay_buffer.add, "replay_add")

    def _timed(self, function: Callable, key: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start

        return timed

    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        self._timed(super().train, "train")(gradient_steps, batch_size)

    def collect_rollouts(self, *args: Any, **kwargs: Any):
        return self._timed(super().collect_rollouts, "collect")(*args, **kwargs)


def run(env_id: str, actors: int, env_steps: int, learning_starts: int, seed: int) -> dict[str, Any]:
    settings = muzero_settings(env_id)
    kwargs = dict(settings.kwargs, learning_starts=learning_starts, buffer_size=min(settings.kwargs["buffer_size"], env_steps))
    env = make_env(env_id, settings.n_envs, seed, is_atari_id(env_id))
    model = TimedMuZero(settings.policy, env, seed=seed, actors=actors, **kwargs)
    start = time.perf_counter()
    model.learn(env_steps)
    wall = time.perf_counter() - start
    stats = model.actor_stats.summary() if actors else None
    startup = stats["startup_s"] if stats else 0.0
    wall -= startup
    steps, updates, seconds = model.num_timesteps, max(model._n_updates, 1), model.seconds
    acting_s = sum(stats["actor_busy_s"]) if stats else seconds["collect"] - seconds["replay_add"]
    result = dict(
        env=env_id,
        actors=actors,
        envs_per_actor=settings.n_envs,
        env_steps=steps,
        updates=model._n_updates,
        wall_s=round(wall, 2),
        startup_s=round(startup, 2),
        env_steps_per_s=round(steps / wall, 1),
        updates_per_s=round(model._n_updates / wall, 1),
        weight_lag_mean=round(stats["mean_weight_lag"], 1) if stats else 0,
        weight_lag_max=stats["max_weight_lag"] if stats else 0,
        acting_ms_per_env_step=round(1e3 * acting_s / steps, 3),
        train_ms_per_update=round(1e3 * seconds["train"] / updates, 3),
        sample_ms_per_update=round(1e3 * seconds["sample"] / updates, 3),
        replay_add_ms_per_env_step=round(1e3 * seconds["replay_add"] / steps, 4),
    )
    if stats:
        result.update(
            intake_ms_per_env_step=round(1e3 * stats["intake_s"] / steps, 4),
            learner_wait_fraction=round(stats["wait_s"] / wall, 3),
            actor_env_steps=stats["actor_env_steps"],
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-steps", type=int, default=20_000, help="env steps per run")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4], help="the numbers of actors to compare")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), help="env ids (their muzero.yml sections)")
    parser.add_argument("--learning-starts", type=int, default=1000, help="env steps before training starts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    refuse_options_below(
        parser,
        (
            ("--env-steps", args.env_steps, 1),
            ("--actors", min(args.actors), 1),
            ("--learning-starts", args.learning_starts, 0),
        ),
    )
    th.set_num_threads(1)
    for env_id in args.envs:
        for actors in [0, *args.actors]:
            print(json.dumps(run(env_id, actors, args.env_steps, args.learning_starts, args.seed)), flush=True)


if __name__ == "__main__":
    main()
