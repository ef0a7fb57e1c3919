"""Cost of Atari networks on this machine: milliseconds per gradient step and per search, network by network.

    python benchmarks/bench_atari_network.py
    python benchmarks/bench_atari_network.py --config "dict(channels=32, num_blocks=1)" \
        --config "dict(encoder='strided', channels=32)" --batch-size 32 --sims 8 --rounds 3
    python benchmarks/bench_atari_network.py --config "dict(encoder='strided', channels=32, num_blocks=1)" --mixed-precision

For each ``--config`` (``CnnPolicy`` keyword arguments), builds ``MuZero("CnnPolicy", make_atari_vec_env(...))``
with the ``atari`` section of ``hyperparams/muzero.yml`` (``--set`` overrides), fills its replay with
``--fill`` env steps of random play (uniform policy targets), then times, in rounds that alternate between
the configurations (so that the machine's load falls on all of them alike; with ``--mixed-precision`` each
configuration twice, with ``mixed_precision`` off and on):

- ``gradient_ms``: one gradient step (``_gradient_step`` on a sampled batch of ``--batch-size`` unrolls:
  targets, forward, backward, optimizer step, priorities), median over ``--repeats``;
- ``search_ms``: one batched search over the ``n_envs`` observations (``policy.run_search``, ``--sims``
  simulations), median over ``--repeats``.

Prints one JSON line per configuration with the medians over the rounds, the parameter count and the
latent's shape.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch as th

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.hyperparams import muzero_settings, parse_overrides

DEFAULT_CONFIGS = ("dict(channels=32, num_blocks=1)", "dict(encoder='strided', channels=32, num_blocks=1)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--config", action="append", help="CnnPolicy keyword arguments, as dict(...)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MuZero hyperparameter overrides")
    parser.add_argument("--batch-size", type=int, default=None, help="unrolls per gradient step (default: the section's)")
    parser.add_argument("--sims", type=int, default=None, help="simulations per search (default: the section's)")
    parser.add_argument("--fill", type=int, default=400, help="env steps of random play in the replay")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--mixed-precision", action="store_true", help="time each configuration without and with it")
    args = parser.parse_args()
    if min(args.fill, args.repeats, args.rounds, args.threads) < 1:
        parser.error("--fill, --repeats, --rounds and --threads must be >= 1")
    return args


def build(env_id: str, policy_kwargs: dict, overrides: dict, fill: int) -> MuZero:
    """A model with the ``atari`` section's settings and ``fill`` steps of random play in its replay."""
    settings = muzero_settings(env_id)
    env = make_atari_vec_env(env_id, n_envs=settings.n_envs, seed=0)
    kwargs = {**settings.kwargs, **overrides, "policy_kwargs": policy_kwargs}
    model = MuZero(settings.policy, env, seed=0, device="cpu", **kwargs)
    rng = np.random.default_rng(0)
    observations = env.reset()
    num_actions = env.action_space.n
    uniform = np.full((env.num_envs, num_actions), 1.0 / num_actions, dtype=np.float32)
    model.replay_buffer.start_new_episodes(env.num_envs)
    for _ in range(max(1, fill // env.num_envs)):
        actions = rng.integers(num_actions, size=env.num_envs)
        next_observations, rewards, dones, infos = env.step(actions)
        truncated = np.array([info["TimeLimit.truncated"] for info in infos])
        model.replay_buffer.add(observations, actions, rewards, uniform, np.zeros(env.num_envs, np.float32),
                                dones & ~truncated, truncated)  # fmt: skip
        observations = next_observations
    model._last_obs = observations
    return model


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    th.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.sims:
        overrides["num_simulations"] = args.sims
    precisions = [False, True] if args.mixed_precision else [overrides.pop("mixed_precision", False)]
    configs = [(config, mixed) for config in args.config or list(DEFAULT_CONFIGS) for mixed in precisions]
    models = [build(args.env_id, eval(config, {"dict": dict}), {**overrides, "mixed_precision": mixed}, args.fill)
              for config, mixed in configs]  # fmt: skip
    timings = [dict(gradient=[], search=[]) for _ in configs]
    for _ in range(args.rounds):
        for model, timing in zip(models, timings):
            batch_size = args.batch_size or model.batch_size

            def gradient_step(model=model, batch_size=batch_size):
                model.policy.set_training_mode(True)
                sample = model.replay_buffer.sample(
                    batch_size, model.num_unroll_steps, model.td_steps, 1.0, model.replay_rng,
                    with_next_observations=model.consistency_loss_coef > 0,
                    with_bootstrap_observations=model.target_policy is not None,
                )  # fmt: skip
                model._gradient_step(sample)

            def search(model=model):
                model.policy.set_training_mode(False)
                observations, _ = model.policy.obs_to_tensor(model._last_obs)
                model.policy.run_search(observations, temperature=1.0, add_noise=True)

            gradient_step()  # warm-up
            search()
            timing["gradient"].append(median_ms(gradient_step, args.repeats))
            timing["search"].append(median_ms(search, args.repeats))
    for (config, mixed), model, timing in zip(configs, models, timings):
        line = dict(
            config=config,
            mixed_precision=mixed,
            gradient_ms=round(statistics.median(timing["gradient"]), 1),
            search_ms=round(statistics.median(timing["search"]), 1),
            batch_size=args.batch_size or model.batch_size,
            sims=model.num_simulations,
            n_envs=model.n_envs,
            parameters=sum(p.numel() for p in model.policy.parameters()),
            latent_shape=list(model.policy.features_extractor.latent_shape),
            threads=args.threads,
        )
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
