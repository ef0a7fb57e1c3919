"""python -m sb3_muzero: train MuZero on CartPole-v1 (or --env) until it solves it, save it, evaluate it.

    python -m sb3_muzero                                   # CartPole-v1: stops at a mean return of 475
    python -m sb3_muzero --env BreakoutNoFrameskip-v4 -n 100000
    python -m sb3_muzero --env Acrobot-v1 --seed 1 --save-path acrobot.zip
    python -m sb3_muzero --set num_simulations=25 "policy_kwargs=dict(net_arch=[64])"

The settings are the env's section of the package's hyperparams/muzero.yml (the ones rl-zoo3 uses; "atari" for
Atari ids, which are built with sb3_muzero.make_atari_vec_env; "default" for other ids), with --set's changes.
Training shows SB3's progress bar on a terminal, and a progress line every 10 seconds otherwise. Evaluations
(deterministic, except on Atari as in rl-zoo3; --eval-episodes episodes played at once, one batched search per
step) come every --eval-freq env steps at first and less often as the run goes on (the interval doubles each time
ten intervals have passed); training stops at the first evaluation whose mean reaches the target: the env's reward
threshold (475 for CartPole-v1), or --target. The best evaluated model is kept as <save path>_best.zip, the
training episodes and evaluations are written to <save path>_logs/ (monitor.csv, evaluations.npz; drawn by python
-m sb3_muzero.plot). At the end, the final model is saved and evaluated over --final-eval-episodes new episodes,
and so is the best model if an earlier evaluation was better.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import gymnasium
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_muzero import MuZero, make_atari_vec_env
from sb3_muzero.common.numbers import refuse_options_below
from sb3_muzero.common.progress import DEFAULT_INTERVAL_S, EpisodeLog, ProgressLines
from sb3_muzero.hyperparams import is_atari_id, muzero_settings, parse_overrides

DEFAULT_ENV = "CartPole-v1"
DEFAULT_EVAL_FREQ = 500
DEFAULT_ATARI_EVAL_FREQ = 10_000
# Evaluation games on Atari stop after 18,000 frames (5 minutes of play, DQN's evaluation limit), which bounds the time
# of an evaluation: an early policy that keeps a game going without scoring plays on to the 108,000-frame time limit.
ATARI_EVAL_MAX_STEPS = 18_000 // 4


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sb3_muzero", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default=DEFAULT_ENV, help="gymnasium env id (default: %(default)s)")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="env steps at most (default: the yml section's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1, Atari: torch's)")
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="stop at an evaluation mean of at least this (default: the env's reward threshold, if any)",
    )
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=None,
        help=f"env steps before the first evaluation, and between the early ones (0: none; default: "
        f"{DEFAULT_EVAL_FREQ:,}, Atari {DEFAULT_ATARI_EVAL_FREQ:,})",
    )
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default: %(default)s)")
    parser.add_argument("--final-eval-episodes", type=int, default=20, help="episodes of the final evaluation "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--save-path", default=None, help="where to save the model (default: muzero_<env>.zip)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting of the yml section (a Python literal, or lin_<value> for learning_rate)",
    )
    args = parser.parse_args(argv)
    refuse_options_below(parser, (("-n", args.n_timesteps, 1), ("--eval-freq", args.eval_freq, 0),
                                  ("--eval-episodes", args.eval_episodes, 1),
                                  ("--final-eval-episodes", args.final_eval_episodes, 1)))  # fmt: skip
    try:
        args.overrides = parse_overrides(args.set)
    except ValueError as error:
        parser.error(str(error))
    if ":" not in args.env and not is_atari_id(args.env):
        try:
            gymnasium.spec(args.env)
        except gymnasium.error.Error as error:
            parser.error(f"--env {args.env!r}: {error}")
    return args


def make_env(env_id: str, n_envs: int, seed: int, atari: bool, evaluation: bool = False):
    """The training (or evaluation) VecEnv: ale-py's vector env for Atari ids (for evaluation, with games of at most
    ``ATARI_EVAL_MAX_STEPS`` steps), else SB3's ``make_vec_env``."""
    if atari:
        options = dict(max_episode_steps=ATARI_EVAL_MAX_STEPS) if evaluation else {}
        return make_atari_vec_env(env_id, n_envs=n_envs, seed=seed, **options)
    return make_vec_env(env_id, n_envs=n_envs, seed=seed)


def reward_threshold(env_id: str, atari: bool) -> Optional[float]:
    """The return at which gymnasium counts ``env_id`` as solved (its spec's ``reward_threshold``), if it has one."""
    if atari:  # ale-py's ids have none
        return None
    return gymnasium.spec(env_id).reward_threshold


def main(argv: Optional[list[str]] = None) -> float:
    """Train, save and evaluate; returns the final evaluation's mean return (of the best model, if evaluated)."""
    args = parse_args(argv)
    atari = is_atari_id(args.env)
    th.set_num_threads(args.threads or (th.get_num_threads() if atari else 1))
    settings = muzero_settings(args.env).with_overrides(args.overrides)
    if settings.env_options and not atari:  # Atari's wrapper and frame stack are what make_atari_vec_env does
        raise SystemExit(
            f"The {settings.section!r} section of muzero.yml sets {sorted(settings.env_options)}, which python -m sb3_muzero "
            f"does not apply; train this env with python -m rl_zoo3.train --algo muzero --env {args.env}"
        )
    n_timesteps = args.n_timesteps or settings.n_timesteps
    target = args.target if args.target is not None else reward_threshold(args.env, atari)
    eval_freq = args.eval_freq if args.eval_freq is not None else DEFAULT_ATARI_EVAL_FREQ if atari else DEFAULT_EVAL_FREQ
    deterministic = not atari  # as rl-zoo3 evaluates Atari games
    stop = f"stops at an evaluation of {target:g}" if target is not None and eval_freq else "no target"
    print(f"MuZero on {args.env}: at most {n_timesteps:,} env steps ({stop}), {settings.n_envs} envs, section "
          f"{settings.section!r} of muzero.yml, seed {args.seed}", flush=True)  # fmt: skip
    save_path = Path(args.save_path or f"muzero_{args.env.replace('/', '_')}.zip")
    best_path = save_path.with_name(f"{save_path.stem}_best.zip")
    log_folder = save_path.with_name(f"{save_path.stem}_logs")

    model = MuZero(settings.policy, make_env(args.env, settings.n_envs, args.seed, atari), seed=args.seed,
                   device=args.device, **settings.kwargs)  # fmt: skip
    callbacks = [EpisodeLog(log_folder, args.env)]
    evaluation = None
    if eval_freq > 0:
        eval_env = make_env(args.env, args.eval_episodes, args.seed + 10_000, atari, evaluation=True)  # one per episode
        evaluation = ScheduledEvaluation(eval_env, eval_freq, args.eval_episodes, target, best_path, log_folder,
                                         deterministic)  # fmt: skip
        callbacks.append(evaluation)
    on_terminal = sys.stdout.isatty()
    if not on_terminal:
        callbacks.append(ProgressLines())
    model.learn(n_timesteps, callback=callbacks, progress_bar=on_terminal)
    model.save(save_path)

    def final_env():  # the same episodes for each model evaluated, one env per episode
        return make_env(args.env, args.final_eval_episodes, args.seed + 20_000, atari, evaluation=True)

    label = f"Final model ({model.num_timesteps:,} steps), saved as {save_path}"
    mean = report(MuZero.load(save_path, device=args.device), final_env(), args.final_eval_episodes, label, deterministic)
    if evaluation is not None and evaluation.best_step is not None and evaluation.best_step != model.num_timesteps:
        best = MuZero.load(best_path, device=args.device)
        label = f"Best model (eval {evaluation.best_mean_reward:.1f} at {best.num_timesteps:,} steps), saved as {best_path}"
        mean = report(best, final_env(), args.final_eval_episodes, label, deterministic)
    return mean


def report(model, env, n_episodes: int, label: str, deterministic: bool) -> float:
    """Print ``label`` and the mean +/- std of ``n_episodes`` episodes of ``model`` in ``env``."""
    mean, std = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=deterministic)
    kind = "deterministic" if deterministic else "stochastic"
    print(f"{label}: evaluation over {n_episodes} episodes ({kind}): {mean:.2f} +/- {std:.2f}", flush=True)
    return float(mean)


def next_evaluation(step: int, eval_freq: int) -> int:
    """The env step of the evaluation after the one at ``step``: every ``eval_freq`` steps up to ``10 * eval_freq``,
    then every ``2 * eval_freq`` up to ``20 * eval_freq``, and so on (the interval doubles each time ten intervals
    have passed): frequent while the policy changes fast and evaluations are short, rarer later."""
    interval = eval_freq
    while step >= 10 * interval:
        interval *= 2
    return (step // interval + 1) * interval


class ScheduledEvaluation(EvalCallback):
    """SB3's ``EvalCallback`` at the env steps :func:`next_evaluation` gives, with ``StopTrainingOnRewardThreshold``
    at ``target`` (None: no stop), the best model saved to ``best_path``, ``evaluations.npz`` in ``log_folder``,
    and one printed line per evaluation.

    ``eval_env`` should have one env per episode (``n_episodes`` envs): SB3's ``evaluate_policy`` then plays the
    episodes side by side, with one batched search per step. A long evaluation prints a line every
    ``DEFAULT_INTERVAL_S`` seconds, as training does.
    """

    def __init__(self, eval_env, eval_freq: int, n_episodes: int, target: Optional[float], best_path: Path,
                 log_folder: Path, deterministic: bool = True):  # fmt: skip
        stop = StopTrainingOnRewardThreshold(target, verbose=0) if target is not None else None
        # eval_freq=1: the parent evaluates whenever _on_step lets it run.
        super().__init__(eval_env, callback_on_new_best=stop, n_eval_episodes=n_episodes, eval_freq=1,
                         log_path=str(log_folder), deterministic=deterministic, verbose=0)  # fmt: skip
        self.schedule_freq, self.target, self.best_path = eval_freq, target, best_path
        self.next_eval = eval_freq
        self.best_step: Optional[int] = None
        self.start = self.last_line = 0.0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _log_success_callback(self, locals_: dict, globals_: dict) -> None:
        """Called by ``evaluate_policy`` at every env of every step: also a progress line every few seconds."""
        super()._log_success_callback(locals_, globals_)
        now = time.perf_counter()
        if now - self.last_line >= DEFAULT_INTERVAL_S:
            self.last_line = now
            print(f"  {self.num_timesteps:>9,} env steps {now - self.start:8.1f} s   evaluating: "
                  f"{sum(locals_['episode_counts'])} of {self.n_eval_episodes} episodes done", flush=True)  # fmt: skip

    def _on_step(self) -> bool:
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval = next_evaluation(self.num_timesteps, self.schedule_freq)
        self.last_line = time.perf_counter()
        best_before = self.best_mean_reward
        continue_training = super()._on_step()
        if self.best_mean_reward > best_before:
            self.best_step = self.num_timesteps
            self.model.save(self.best_path)
        results = np.asarray(self.evaluations_results[-1])
        print(f"  {self.num_timesteps:>9,} env steps {time.perf_counter() - self.start:8.1f} s   evaluation over "
              f"{len(results)} episodes: {results.mean():6.1f} +/- {results.std():5.1f}", flush=True)  # fmt: skip
        if not continue_training:
            print(f"  Reached the target {self.target:g}: training stops", flush=True)
        return continue_training


if __name__ == "__main__":
    main(sys.argv[1:])
