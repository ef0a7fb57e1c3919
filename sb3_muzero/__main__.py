"""``python -m sb3_muzero``: train MuZero on CartPole-v1 (or ``--env``), save it, print its evaluation.

    python -m sb3_muzero                                      # CartPole-v1, 20,000 steps, a few minutes on a CPU
    python -m sb3_muzero --env BreakoutNoFrameskip-v4 -n 100000
    python -m sb3_muzero --env Acrobot-v1 --seed 1 --save-path acrobot.zip

The settings are the env's section of the package's ``hyperparams/muzero.yml`` (the ones rl-zoo3 uses;
``atari`` for Atari ids, which are built with :func:`sb3_muzero.make_atari_vec_env`; ``default`` for other
ids). Prints the mean training return every ``--log-interval`` env steps, then a deterministic evaluation
(``predict(deterministic=True)``) over ``--eval-episodes`` episodes, and saves the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

DEFAULT_ENV = "CartPole-v1"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_muzero", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default=DEFAULT_ENV, help="gymnasium env id (default: %(default)s)")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="env steps (default: the yml section's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1, Atari: torch's)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--log-interval", type=int, default=2_000, help="env steps between progress lines")
    parser.add_argument("--save-path", default=None, help="where to save the model (default: muzero_<env>.zip)")
    args = parser.parse_args(argv)
    if ":" not in args.env and not _is_atari(args.env):
        import gymnasium

        try:
            gymnasium.spec(args.env)
        except gymnasium.error.Error as error:
            parser.error(f"--env {args.env!r}: {error}")
    return args


def _is_atari(env_id: str) -> bool:
    from sb3_muzero.hyperparams import is_atari_id

    return is_atari_id(env_id)


def make_env(env_id: str, n_envs: int, seed: int, atari: bool):
    """The training (or evaluation) VecEnv: ale-py's vector env for Atari ids, else SB3's ``make_vec_env``."""
    if atari:
        from sb3_muzero import make_atari_vec_env

        return make_atari_vec_env(env_id, n_envs=n_envs, seed=seed)
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_id, n_envs=n_envs, seed=seed)


def main(argv: Optional[list[str]] = None) -> float:
    """Train, save and evaluate; returns the evaluation's mean return."""
    args = parse_args(argv)
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_muzero import MuZero
    from sb3_muzero.hyperparams import muzero_settings

    atari = _is_atari(args.env)
    th.set_num_threads(args.threads or (th.get_num_threads() if atari else 1))
    settings = muzero_settings(args.env)
    n_timesteps = args.n_timesteps or settings.n_timesteps
    print(f"MuZero on {args.env}: {n_timesteps:,} env steps, {settings.n_envs} envs, section {settings.section!r} "
          f"of muzero.yml, seed {args.seed}", flush=True)  # fmt: skip

    class PrintProgress(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_line, self.start = args.log_interval, time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_line:
                self.next_line += args.log_interval
                returns = [info["r"] for info in self.model.ep_info_buffer]
                mean = f"{sum(returns) / len(returns):.1f}" if returns else "n/a"
                print(f"  {self.num_timesteps:>8,} steps  {time.perf_counter() - self.start:7.1f} s  "
                      f"mean training return (last {len(returns)} episodes): {mean}", flush=True)  # fmt: skip
            return True

    env = make_env(args.env, settings.n_envs, args.seed, atari)
    model = MuZero(settings.policy, env, seed=args.seed, device=args.device, **settings.kwargs)
    model.learn(n_timesteps, callback=PrintProgress())
    save_path = args.save_path or f"muzero_{args.env.replace('/', '_')}.zip"
    model.save(save_path)
    eval_env = make_env(args.env, 1, args.seed + 10_000, atari)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Saved {save_path}. Evaluation over {args.eval_episodes} episodes (deterministic): {mean:.2f} +/- {std:.2f}")
    return float(mean)


if __name__ == "__main__":
    main(sys.argv[1:])
