"""MuZero, DQN and PPO on an Atari game with a small budget of env steps, evaluated the same way.

    python benchmarks/atari.py --algo muzero --env BreakoutNoFrameskip-v4 --steps 100000 --seed 0 --out runs/
    python benchmarks/atari.py --algo dqn --env BreakoutNoFrameskip-v4 --steps 100000 --seed 0 --out runs/
    python benchmarks/atari.py --plot breakout.png runs/

Training:

- ``muzero``: the ``atari`` section of ``hyperparams/muzero.yml`` (``--set key=value`` overrides it) on
  ``make_atari_vec_env`` (ale-py's vector env: SB3's ``AtariWrapper`` preprocessing, 4 stacked frames);
- ``dqn``, ``ppo``: rl-zoo3's own tuned ``atari`` hyperparameters on SB3's ``make_atari_env`` + ``VecFrameStack(4)``,
  as ``python -m rl_zoo3.train`` builds them, changed only where a small budget makes them meaningless:
  ``learning_starts`` (DQN waits 100,000 steps, 1% of its 10M budget) is scaled to the same 1% of ``--steps``;
  fractions of the budget (DQN's exploration schedule, PPO's linear schedules) scale by themselves. Every
  change is printed.

Evaluation, every ``--eval-every`` env steps and at the end, the same for every algorithm: ``--eval-episodes``
whole games played at once (one env per game, new seeds), ``deterministic=True``, the unclipped game score,
no episode end at a lost life (FIRE is pressed after a lost life, as in training), at most 108,000 frames
(27,000 steps) per game: SB3's ``AtariWrapper(terminal_on_life_loss=False, clip_reward=False)`` and
``VecFrameStack(4)``, the same envs for every algorithm.

Prints (and appends to ``<out>/<algo>_<env>_<seed>.jsonl``) one JSON line per evaluation: env steps, mean and
standard deviation of the scores, the scores, wall seconds since the start (``wall_s``; ``train_s`` leaves the
evaluations out) and training env steps per second. The algorithm's own training log (SB3's logger: losses, and
for MuZero the search's root values and policy target entropy) goes to ``<out>/<algo>_<env>_<seed>.log/progress.csv``.
Progress lines go to stderr at least every 30 seconds. ``--save`` keeps the trained model as ``<out>/<algo>_<env>_<seed>.zip``
(``python -m sb3_muzero.inspect`` draws a MuZero model's predictions against a real game).
``--plot FILE.png DIR`` draws score against env steps for every run in DIR: one colour per algorithm, seeds as
thin lines, their mean thick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_atari_env, make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

ALGOS = ("muzero", "dqn", "ppo")
EVAL_MAX_FRAMES = 108_000  # per game: 27,000 agent steps at frame skip 4
EVAL_SEED_OFFSET = 1_000_000  # evaluation envs get seeds no training env gets
FIRE = 1
PROGRESS_SECONDS = 30.0


# ------------------------------------------------------------------------------------------- evaluation


class FireAfterLifeLoss(gym.Wrapper):
    """Press FIRE after a lost life (in games whose action 1 is FIRE), as training does: SB3's ``AtariWrapper``
    without ``terminal_on_life_loss`` presses it only when a game starts."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.fires = len(meanings) >= 3 and meanings[FIRE] == "FIRE"
        self.lives = 0

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        if self.fires and 0 < lives < self.lives and not (terminated or truncated):
            observation, fire_reward, terminated, truncated, info = self.env.step(FIRE)
            reward += fire_reward
        self.lives = lives
        return observation, reward, terminated, truncated, info


def register_atari_ids() -> None:
    """Make gymnasium know the Atari ids (ale-py registers them when told to)."""
    import ale_py

    gym.register_envs(ale_py)


def make_eval_env(env_id: str, n_games: int, seed: int, max_frames: int = EVAL_MAX_FRAMES) -> VecEnv:
    """``n_games`` envs of whole games with unclipped scores (see the module docstring), channel-last frame stacks."""
    register_atari_ids()

    def wrap(env: gym.Env) -> gym.Env:
        return FireAfterLifeLoss(AtariWrapper(env, terminal_on_life_loss=False, clip_reward=False))

    env = make_vec_env(env_id, n_envs=n_games, seed=seed, wrapper_class=wrap,
                       env_kwargs=dict(max_episode_steps=max_frames))  # fmt: skip
    return VecFrameStack(env, n_stack=4)


def evaluate(model, env_id: str, n_games: int, seed: int, max_frames: int = EVAL_MAX_FRAMES) -> list[float]:
    """The scores of ``n_games`` deterministic games, played at once."""
    env = make_eval_env(env_id, n_games, seed, max_frames)
    try:
        scores, _ = evaluate_policy(model, env, n_eval_episodes=n_games, deterministic=True, return_episode_rewards=True)
    finally:
        env.close()
    return [float(score) for score in scores]


# --------------------------------------------------------------------------------------------- training


def zoo_section(algo: str) -> dict[str, Any]:
    """rl-zoo3's ``atari`` hyperparameters of ``algo`` (its own file, as ``python -m rl_zoo3.train`` reads it)."""
    import rl_zoo3

    path = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    return dict(yaml.safe_load(path.read_text())["atari"])


def linear_schedules(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """rl-zoo3's ``lin_<value>`` strings as linear schedules from ``value`` to 0 over the training."""
    converted = {}
    for key, value in hyperparams.items():
        if isinstance(value, str) and value.startswith("lin_"):
            value = LinearSchedule(float(value[len("lin_") :]), 0.0, 1.0)
        converted[key] = value
    return converted


def build_sb3(algo: str, env_id: str, steps: int, seed: int, say: Callable[[str], None]):
    """DQN or PPO with rl-zoo3's atari hyperparameters, scaled to ``steps`` where they are absolute budgets."""
    from stable_baselines3 import DQN, PPO

    hyperparams = zoo_section(algo)
    for key in ("env_wrapper", "frame_stack"):
        hyperparams.pop(key)
    zoo_budget = int(hyperparams.pop("n_timesteps"))
    n_envs = int(hyperparams.pop("n_envs", 1))
    if "learning_starts" in hyperparams:
        scaled = max(1, round(hyperparams["learning_starts"] * steps / zoo_budget))
        say(f"{algo}: learning_starts {hyperparams['learning_starts']:,} of rl-zoo3's {zoo_budget:,} steps -> {scaled:,} "
            f"of {steps:,} (the same fraction)")  # fmt: skip
        hyperparams["learning_starts"] = scaled
    say(f"{algo}: every other hyperparameter as rl-zoo3's atari section: {hyperparams}")
    register_atari_ids()
    env = VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=seed), n_stack=4)
    model_class = {"dqn": DQN, "ppo": PPO}[algo]
    return model_class(env=env, seed=seed, device="cpu", **linear_schedules(hyperparams))


def build_muzero(env_id: str, seed: int, overrides: dict[str, Any], say: Callable[[str], None]):
    from sb3_muzero import MuZero, make_atari_vec_env
    from sb3_muzero.hyperparams import muzero_settings

    settings = muzero_settings(env_id)
    kwargs = {**settings.kwargs, **overrides}
    say(f"muzero: section {settings.section!r} of muzero.yml, {settings.n_envs} envs, overrides {overrides}")
    env = make_atari_vec_env(env_id, n_envs=settings.n_envs, seed=seed)
    return MuZero(settings.policy, env, seed=seed, device="cpu", **kwargs)


class EvaluateEvery(BaseCallback):
    """Evaluate every ``every`` env steps (see :func:`evaluate`), write a JSON line, and report progress."""

    def __init__(self, every: int, write: Callable[[dict], None], evaluate_now: Callable[[], list[float]]):
        super().__init__()
        self.every, self.write, self.evaluate_now = every, write, evaluate_now
        self.next_eval = every
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.last_progress = self.start

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self.last_progress >= PROGRESS_SECONDS:
            self.last_progress = now
            games = [info["r"] for info in self.model.ep_info_buffer][-10:]
            print(f"  {self.num_timesteps:,} env steps, {self.steps_per_second():.1f} env steps/s, last games "
                  f"{games}", file=sys.stderr, flush=True)  # fmt: skip
        if self.num_timesteps >= self.next_eval:
            self.next_eval += self.every
            self.run_evaluation()
        return True

    def steps_per_second(self) -> float:
        train_seconds = time.perf_counter() - self.start - self.eval_seconds
        return self.num_timesteps / max(train_seconds, 1e-9)

    def run_evaluation(self) -> None:
        start = time.perf_counter()
        scores = self.evaluate_now()
        self.eval_seconds += time.perf_counter() - start
        wall = time.perf_counter() - self.start
        self.write(
            dict(
                env_steps=self.num_timesteps,
                score_mean=round(float(np.mean(scores)), 2),
                score_std=round(float(np.std(scores)), 2),
                scores=scores,
                wall_s=round(wall, 1),
                train_s=round(wall - self.eval_seconds, 1),
                env_steps_per_s=round(self.steps_per_second(), 2),
            )
        )
        self.logger.record("eval/mean_score", float(np.mean(scores)))
        self.logger.dump(self.num_timesteps)  # a row of the training log at every evaluation, whatever else dumps


def train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.algo}_{args.env.replace('/', '_')}_{args.seed}.jsonl"
    th.set_num_threads(args.threads)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    header = dict(algo=args.algo, env=args.env, seed=args.seed, steps=args.steps, eval_every=args.eval_every,
                  eval_episodes=args.eval_episodes, eval_max_frames=args.eval_max_frames, overrides=args.set,
                  threads=args.threads, machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
                  date=time.strftime("%Y-%m-%d"))  # fmt: skip

    def write(line: dict) -> None:
        line = {**header, **line}
        print(json.dumps(line), flush=True)
        with path.open("a") as file:
            file.write(json.dumps(line) + "\n")

    if args.algo == "muzero":
        from sb3_muzero.hyperparams import parse_overrides

        model = build_muzero(args.env, args.seed, parse_overrides(args.set), say)
    else:
        if args.set:
            raise SystemExit("--set changes MuZero's settings only; DQN and PPO use rl-zoo3's")
        model = build_sb3(args.algo, args.env, args.steps, args.seed, say)
    eval_seed = EVAL_SEED_OFFSET + args.seed * 1000

    def evaluate_now() -> list[float]:
        return evaluate(model, args.env, args.eval_episodes, eval_seed, args.eval_max_frames)

    model.set_logger(configure(str(path.with_suffix(".log")), ["csv"]))
    callback = EvaluateEvery(args.eval_every, write, evaluate_now)
    model.learn(args.steps, callback=callback)
    if callback.next_eval - args.eval_every < model.num_timesteps:  # the last evaluation was before the end
        callback.run_evaluation()
    if args.save:
        model_path = path.with_suffix(".zip")
        model.save(model_path)
        say(f"saved {model_path}")


# ----------------------------------------------------------------------------------------------- plotting


def plot(png: str, folder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[str, list[tuple[list[int], list[float]]]] = defaultdict(list)
    env_ids = set()
    for path in sorted(Path(folder).glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            runs[lines[0]["algo"]].append(([line["env_steps"] for line in lines], [line["score_mean"] for line in lines]))
            env_ids.add(lines[0]["env"])
    if not runs:
        raise SystemExit(f"no runs (*.jsonl) in {folder}")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    colours = dict(zip(ALGOS, ("tab:red", "tab:blue", "tab:green")))
    for algo, algo_runs in sorted(runs.items()):
        colour = colours.get(algo, "tab:gray")
        for steps, scores in algo_runs:
            axes.plot(steps, scores, color=colour, linewidth=0.8, alpha=0.5, marker=".")
        common = sorted(set.intersection(*(set(steps) for steps, _ in algo_runs)))
        means = [np.mean([scores[steps.index(step)] for steps, scores in algo_runs]) for step in common]
        axes.plot(common, means, color=colour, linewidth=2.5, marker="o", label=f"{algo} (mean of {len(algo_runs)})")
    axes.set_xlabel("env steps (4 frames each)")
    axes.set_ylabel("game score (deterministic, whole games)")
    axes.set_title(", ".join(sorted(env_ids)))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    print(f"wrote {png}", file=sys.stderr)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS)
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=25_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10, help="games per evaluation")
    parser.add_argument("--eval-max-frames", type=int, default=EVAL_MAX_FRAMES, help="frames per game at most")
    parser.add_argument("--out", default="atari_runs", help="folder of the JSON-lines files")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MuZero hyperparameter overrides")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--save", action="store_true", help="save the trained model to <out>/<algo>_<env>_<seed>.zip")
    parser.add_argument("--plot", nargs=2, metavar=("PNG", "DIR"), help="draw the runs in DIR to PNG instead of training")
    args = parser.parse_args(argv)
    if args.plot is None:
        if args.algo is None:
            parser.error("--algo is needed to train (or --plot PNG DIR to draw)")
        for option, value in (("--steps", args.steps), ("--eval-every", args.eval_every),
                              ("--eval-episodes", args.eval_episodes), ("--eval-max-frames", args.eval_max_frames),
                              ("--threads", args.threads)):  # fmt: skip
            if value < 1:
                parser.error(f"{option} must be >= 1, got {value}")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.plot:
        plot(*args.plot)
    else:
        train(args)


if __name__ == "__main__":
    main()
