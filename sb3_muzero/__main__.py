"""``python -m sb3_muzero``: train MuZero on CartPole-v1 (or ``--env``), save it, print its evaluation.

    python -m sb3_muzero                                      # CartPole-v1, 20,000 steps, a few minutes on a CPU
    python -m sb3_muzero --env BreakoutNoFrameskip-v4 -n 100000
    python -m sb3_muzero --env Acrobot-v1 --seed 1 --save-path acrobot.zip

The settings are the env's section of the package's ``hyperparams/muzero.yml`` (the ones rl-zoo3 uses;
``atari`` for Atari ids, which are built with :func:`sb3_muzero.make_atari_vec_env`; ``default`` for other
ids). Every ``--eval-freq`` env steps, prints the mean training return and a deterministic evaluation
(``predict(deterministic=True)``, ``--eval-episodes`` episodes, an env of its own) and keeps the best
evaluated model in ``<save path>_best.zip``, as rl-zoo3 keeps ``best_model.zip``. At the end, saves the final
model and prints a deterministic evaluation of the final and of the best model over
``--final-eval-episodes`` new episodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import gymnasium
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.hyperparams import is_atari_id, muzero_settings

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
    parser.add_argument("--eval-freq", type=int, default=2_000, help="env steps between evaluations (0: none)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation during training")
    parser.add_argument("--final-eval-episodes", type=int, default=10, help="episodes of the final evaluation")
    parser.add_argument("--save-path", default=None, help="where to save the model (default: muzero_<env>.zip)")
    args = parser.parse_args(argv)
    refuse_options_below(parser, (("-n", args.n_timesteps, 1), ("--eval-freq", args.eval_freq, 0),
                                  ("--eval-episodes", args.eval_episodes, 1),
                                  ("--final-eval-episodes", args.final_eval_episodes, 1)))  # fmt: skip
    if ":" not in args.env and not is_atari_id(args.env):
        try:
            gymnasium.spec(args.env)
        except gymnasium.error.Error as error:
            parser.error(f"--env {args.env!r}: {error}")
    return args


def make_env(env_id: str, n_envs: int, seed: int, atari: bool):
    """The training (or evaluation) VecEnv: ale-py's vector env for Atari ids, else SB3's ``make_vec_env``."""
    if atari:
        return make_atari_vec_env(env_id, n_envs=n_envs, seed=seed)
    return make_vec_env(env_id, n_envs=n_envs, seed=seed)


def main(argv: Optional[list[str]] = None) -> float:
    """Train, save and evaluate; returns the final evaluation's mean return (of the best model, if evaluated)."""
    args = parse_args(argv)
    atari = is_atari_id(args.env)
    th.set_num_threads(args.threads or (th.get_num_threads() if atari else 1))
    settings = muzero_settings(args.env)
    if settings.env_options and not atari:  # Atari's wrapper and frame stack are what make_atari_vec_env does
        raise SystemExit(
            f"The {settings.section!r} section of muzero.yml sets {sorted(settings.env_options)}, which python -m sb3_muzero "
            f"does not apply; train this env with python -m rl_zoo3.train --algo muzero --env {args.env}"
        )
    n_timesteps = args.n_timesteps or settings.n_timesteps
    print(f"MuZero on {args.env}: {n_timesteps:,} env steps, {settings.n_envs} envs, section {settings.section!r} "
          f"of muzero.yml, seed {args.seed}", flush=True)  # fmt: skip
    save_path = Path(args.save_path or f"muzero_{args.env.replace('/', '_')}.zip")
    best_path = save_path.with_name(f"{save_path.stem}_best.zip")
    env = make_env(args.env, settings.n_envs, args.seed, atari)
    model = MuZero(settings.policy, env, seed=args.seed, device=args.device, **settings.kwargs)
    progress = EvaluateAndReport(make_env(args.env, 1, args.seed + 10_000, atari), args.eval_freq, args.eval_episodes,
                                 best_path)  # fmt: skip
    model.learn(n_timesteps, callback=progress)
    model.save(save_path)

    def final_env():  # the same episodes for each model evaluated
        return make_env(args.env, 1, args.seed + 20_000, atari)

    label = f"Final model ({model.num_timesteps:,} steps), saved as {save_path}"
    mean = report(model, final_env(), args.final_eval_episodes, label)
    if progress.best_mean is not None:
        best = MuZero.load(best_path, device=args.device)
        label = f"Best model (eval {progress.best_mean:.1f} at {best.num_timesteps:,} steps), saved as {best_path}"
        mean = report(best, final_env(), args.final_eval_episodes, label)
    return mean


def report(model, env, n_episodes: int, label: str) -> float:
    """Print ``label`` and the mean +/- std of ``n_episodes`` deterministic episodes of ``model`` in ``env``."""
    mean, std = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True)
    print(f"{label}: evaluation over {n_episodes} episodes (deterministic): {mean:.2f} +/- {std:.2f}", flush=True)
    return float(mean)


class EvaluateAndReport(BaseCallback):
    """Every ``eval_freq`` env steps: print the mean training return and a deterministic evaluation over
    ``n_episodes`` episodes; save the model to ``best_path`` when that evaluation is the best so far
    (as rl-zoo3 keeps ``best_model.zip``). ``eval_freq`` 0: no evaluations and no progress lines."""

    def __init__(self, eval_env, eval_freq: int, n_episodes: int, best_path: Path):
        super().__init__()
        self.eval_env, self.eval_freq, self.n_episodes, self.best_path = eval_env, eval_freq, n_episodes, best_path
        self.next_eval = eval_freq
        self.best_mean: Optional[float] = None
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.eval_freq
        returns = [info["r"] for info in self.model.ep_info_buffer]
        training = f"{sum(returns) / len(returns):.1f}" if returns else "n/a"
        mean, std = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True)
        if self.best_mean is None or mean > self.best_mean:
            self.best_mean = float(mean)
            self.model.save(self.best_path)
        print(f"  {self.num_timesteps:>9,} steps {time.perf_counter() - self.start:8.1f} s   training return "
              f"(last {len(returns)} episodes) {training:>6}   eval {mean:6.1f} +/- {std:5.1f}", flush=True)  # fmt: skip
        return True


if __name__ == "__main__":
    main(sys.argv[1:])
