"""Atari games as one Stable-Baselines3 ``VecEnv``, stepped by ale-py's native multithreaded vector env.

    env = make_atari_vec_env("BreakoutNoFrameskip-v4", n_envs=8, seed=0)
    obs = env.reset()                                  # uint8 [8, 4, 84, 84]
    obs, rewards, dones, infos = env.step(actions)     # actions: int [8]

What a user of SB3's ``make_atari_env(env_id)`` + ``VecFrameStack(env, 4)`` (``DummyVecEnv``, ``Monitor``,
``AtariWrapper`` with its defaults) gets, computed in C++ threads instead of Python wrappers:

Observations
    uint8, channel-first ``[n_envs, frame_stack, screen_size, screen_size]`` (default ``[n, 4, 84, 84]``):
    grayscale frames resized with area interpolation, each the pixel-wise maximum of the last two emulator
    frames of a step, the oldest frame first. Channel-first already, so SB3 does not transpose them.
Steps
    An action is repeated for ``frame_skip`` emulator frames (default 4), with sticky actions
    (``repeat_action_probability``) applied per frame by the emulator. A game starts with up to
    ``noop_max - 1`` no-op frames and, where the game has FIRE, one FIRE frame.
Rewards
    float32, the sign of the game reward when ``clip_reward`` (default), else the game reward.
Episodes
    With ``terminal_on_life_loss`` (default) losing a life ends the training episode (``done``) without
    resetting the game, as SB3's ``EpisodicLifeEnv``: the game goes on, and the frame stack starts over
    (older frames read 0) as ``VecFrameStack`` does after a ``done``. Game over and the time limit
    (``max_episode_steps`` agent steps) end the game: that env is reset in the same ``step``.
    With ``fire_on_life_loss`` (default), in games that need FIRE to go on after a lost life (FIRE is their
    action 1, as SB3's ``FireResetEnv`` checks), the first step after a lost life presses FIRE in place of
    the agent's action, and its info says so: ``"executed_action"``. SB3's ``AtariWrapper`` does the same
    with an extra FIRE step on the reset that follows the life loss; without it an untrained agent can
    wait for the ball until the time limit.
Infos (one dict per env, as ``DummyVecEnv`` builds them)
    ``"TimeLimit.truncated"`` in every info: True when the time limit, not the game, ended the episode.
    On ``done``: ``"terminal_observation"`` (``[frame_stack, screen_size, screen_size]`` uint8), the last
    observation of the episode. When a game ends (game over or time limit, not a lost life):
    ``"episode": {"r": game score (unclipped, whole game), "l": agent steps in the game, "t": seconds since
    the env was built}``, as SB3's ``Monitor`` reports under ``AtariWrapper``, so ``rollout/ep_rew_mean``
    is the real game score.

Where it differs from SB3's Python stack, because ale-py's vector env works this way:

* max-pooling is over grayscale frames (SB3 pools the RGB frames, then converts them); ALE's grayscale
  palette itself gives the values of OpenCV's RGB-to-gray conversion on Breakout's frames;
* a game starts with 0 to ``noop_max - 1`` no-op frames (SB3: 1 to ``noop_max``) and presses FIRE for one
  frame (SB3: a FIRE step and a step of action 2, ``frame_skip`` frames each);
* after a lost life the game goes on from the current frame, with no no-op step in between, and FIRE takes
  the place of the agent's next action (SB3: a FIRE step and a step of action 2 on the reset after the life
  loss, which the agent does not see);
* ``episode["l"]`` counts agent steps (SB3's ``Monitor`` sits below the frame skip and counts emulator
  frames, no-op and FIRE frames included);
* step infos carry no ``lives`` or frame numbers (for an env reset in that step ale-py reports the values
  after the reset); ``get_attr("lives")`` gives the current lives;
* if a life is lost in the very step that reaches the time limit, the step reads as a truncation
  (``TimeLimit.truncated`` True), where SB3 reports a termination.
"""

from __future__ import annotations

import difflib
import itertools
import os
import time
import warnings
from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from sb3_muzero.common.files import CorruptFileError
from sb3_muzero.common.numbers import is_int

ATARI_ENTRY_POINT = "ale_py.env:AtariEnv"
SUPPORTED_ID_FORMS = "'<Game>NoFrameskip-v4' (e.g. 'BreakoutNoFrameskip-v4') or 'ALE/<Game>-v5' (e.g. 'ALE/Breakout-v5')"
# ALE seeds and frame counters are C ints; seed -1 asks ale-py to keep an env's random state.
INT32_LIMIT = 2**31
KEEP_RANDOM_STATE = -1
MIN_ALE_PY_VERSION = (0, 12)  # same-step autoreset with "final_obs" in the vector env's infos
FIRE_ACTION = 1  # in the minimal action set of every game that has FIRE


def _import_ale_py():
    """Import ale-py (a version with same-step autoreset in its vector env), or explain how to install it."""
    install_hint = 'pip install "sb3-muzero[atari]" (or pip install "ale-py>=0.12")'
    try:
        import ale_py
    except ImportError as error:
        raise ImportError(f"Atari environments need ale-py: {install_hint}") from error
    version = ale_py.__version__
    if _release_numbers(version) < MIN_ALE_PY_VERSION:
        minimum = ".".join(map(str, MIN_ALE_PY_VERSION))
        raise ImportError(f"Atari environments need ale-py >= {minimum}, found {version}: {install_hint}")
    return ale_py


def _release_numbers(version: str) -> tuple[int, ...]:
    """``"0.12.1+8a8fafb"`` -> ``(0, 12, 1)``."""
    numbers = []
    for part in version.split("+")[0].split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


@dataclass(frozen=True)
class AtariGame:
    """What an environment id selects: the ROM and the defaults of its gymnasium registration."""

    env_id: str
    game: str
    repeat_action_probability: float
    max_num_frames_per_episode: int


@dataclass(frozen=True)
class AtariOptions:
    """Preprocessing and vectorisation settings (keyword arguments of ``make_atari_vec_env``).

    ``repeat_action_probability`` and ``max_episode_steps`` default (None) to the id's registration:
    sticky actions 0.0 for ``*NoFrameskip-v4`` and 0.25 for ``ALE/*-v5``; 108,000 emulator frames, i.e.
    ``108000 // frame_skip`` agent steps. ``num_threads`` None uses one thread per available CPU core,
    at most ``n_envs``.
    """

    frame_skip: int = 4
    noop_max: int = 30
    fire_on_reset: bool = True
    fire_on_life_loss: bool = True
    terminal_on_life_loss: bool = True
    clip_reward: bool = True
    repeat_action_probability: Optional[float] = None
    max_episode_steps: Optional[int] = None
    full_action_space: bool = False
    screen_size: int = 84
    frame_stack: int = 4
    num_threads: Optional[int] = None


SUPPORTED_OPTIONS = tuple(field.name for field in fields(AtariOptions))


def resolve_atari_id(env_id: str) -> AtariGame:
    """Map a gymnasium Atari id (``*NoFrameskip-v4`` or ``ALE/*-v5`` style) to its game and defaults."""
    _import_ale_py()  # registers the Atari ids with gymnasium
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string such as {SUPPORTED_ID_FORMS}, got {type(env_id).__name__}")
    spec = gymnasium.registry.get(env_id)
    if spec is None or spec.entry_point != ATARI_ENTRY_POINT:
        what = "an unknown environment id" if spec is None else "not an Atari (ale-py) environment"
        suggestions = difflib.get_close_matches(env_id, _supported_ids(), n=3)
        hint = f" Did you mean {' or '.join(map(repr, suggestions))}?" if suggestions else ""
        raise ValueError(f"{env_id!r} is {what}; expected {SUPPORTED_ID_FORMS}.{hint}")
    kwargs = spec.kwargs
    if not isinstance(kwargs.get("frameskip"), int) or kwargs.get("obs_type", "rgb") != "rgb":
        registered = f"frameskip={kwargs.get('frameskip')!r}, obs_type={kwargs.get('obs_type', 'rgb')!r}"
        raise ValueError(
            f"{env_id!r} is registered with {registered}; this env applies its own fixed frame skip to the screen, "
            f"use {SUPPORTED_ID_FORMS}"
        )
    return AtariGame(
        env_id=env_id,
        game=kwargs["game"],
        repeat_action_probability=float(kwargs.get("repeat_action_probability", 0.0)),
        max_num_frames_per_episode=int(kwargs.get("max_num_frames_per_episode") or 108_000),
    )


def _supported_ids() -> list[str]:
    """Registered Atari ids with a fixed frame skip."""
    return [
        env_id
        for env_id, spec in gymnasium.registry.items()
        if spec.entry_point == ATARI_ENTRY_POINT and isinstance(spec.kwargs.get("frameskip"), int)
    ]


def parse_options(options: dict[str, Any], game: AtariGame) -> AtariOptions:
    """Check the keyword options and fill the id-dependent defaults."""
    unknown = sorted(set(options) - set(SUPPORTED_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; supported options: {', '.join(SUPPORTED_OPTIONS)}")
    parsed = AtariOptions(**options)
    for name in ("frame_skip", "screen_size", "frame_stack"):
        _check_int(name, getattr(parsed, name), minimum=1)
    _check_int("noop_max", parsed.noop_max, minimum=0)
    for name in ("fire_on_reset", "fire_on_life_loss", "terminal_on_life_loss", "clip_reward", "full_action_space"):
        _check_bool(name, getattr(parsed, name))
    repeat_action_probability = parsed.repeat_action_probability
    if repeat_action_probability is None:
        repeat_action_probability = game.repeat_action_probability
    _check_probability("repeat_action_probability", repeat_action_probability)
    max_episode_steps = parsed.max_episode_steps
    if max_episode_steps is None:
        max_episode_steps = game.max_num_frames_per_episode // parsed.frame_skip
    _check_int("max_episode_steps", max_episode_steps, minimum=1, maximum=(INT32_LIMIT - 1) // parsed.frame_skip)
    if parsed.num_threads is not None:
        _check_int("num_threads", parsed.num_threads, minimum=1)
    return AtariOptions(
        frame_skip=int(parsed.frame_skip),
        noop_max=int(parsed.noop_max),
        fire_on_reset=bool(parsed.fire_on_reset),
        fire_on_life_loss=bool(parsed.fire_on_life_loss),
        terminal_on_life_loss=bool(parsed.terminal_on_life_loss),
        clip_reward=bool(parsed.clip_reward),
        repeat_action_probability=float(repeat_action_probability),
        max_episode_steps=int(max_episode_steps),
        full_action_space=bool(parsed.full_action_space),
        screen_size=int(parsed.screen_size),
        frame_stack=int(parsed.frame_stack),
        num_threads=None if parsed.num_threads is None else int(parsed.num_threads),
    )


def _check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> None:
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bounds}, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")


def _check_probability(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {value!r} ({type(value).__name__})")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _default_num_threads(n_envs: int) -> int:
    """One worker thread per CPU core this process may use, at most one per env."""
    try:
        available_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available_cores = os.cpu_count() or 1
    return max(1, min(n_envs, available_cores))


def make_atari_vec_env(env_id: str, n_envs: int, seed: Optional[int] = None, **options: Any) -> AtariVecEnv:
    """Build ``n_envs`` copies of an Atari game as one SB3 ``VecEnv`` (see the module docstring).

    :param env_id: ``'<Game>NoFrameskip-v4'`` (no sticky actions by default) or ``'ALE/<Game>-v5'``
        (sticky actions 0.25 by default).
    :param n_envs: number of games stepped together.
    :param seed: seeds the first reset: env ``i`` gets ``seed + i``; None for random seeds.
    :param options: ``frame_skip=4, noop_max=30, fire_on_reset=True, fire_on_life_loss=True, terminal_on_life_loss=True,
        clip_reward=True, repeat_action_probability=<id default>, max_episode_steps=<108000 // frame_skip>,
        full_action_space=False, screen_size=84, frame_stack=4, num_threads=<CPU cores, at most n_envs>``.
    :return: the vectorised env; observations uint8 ``[n_envs, frame_stack, screen_size, screen_size]``.
    """
    game = resolve_atari_id(env_id)
    _check_int("n_envs", n_envs, minimum=1)
    if seed is not None and not is_int(seed):
        raise TypeError(f"seed must be an int or None, got {seed!r} ({type(seed).__name__})")
    env = AtariVecEnv(game, int(n_envs), parse_options(options, game))
    if seed is not None:
        env.seed(int(seed))
        env.action_space.seed(int(seed))
    return env


class AtariVecEnv(VecEnv):
    """SB3 ``VecEnv`` over ``ale_py.vector_env.AtariVectorEnv``; build it with ``make_atari_vec_env``.

    ale-py runs with same-step autoreset and without its own life-loss or reward-clipping handling: its
    ``episodic_life`` resets the whole game on every lost life, and clipped rewards cannot give the game
    score. This class follows the lives, clips rewards and keeps the per-game statistics itself.
    """

    def __init__(self, game: AtariGame, n_envs: int, options: AtariOptions):
        _import_ale_py()
        from ale_py.vector_env import AtariVectorEnv

        self.game = game
        self.options = options
        num_threads = options.num_threads or _default_num_threads(n_envs)
        self._vector_env = AtariVectorEnv(
            game.game,
            n_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=options.max_episode_steps * options.frame_skip,
            repeat_action_probability=options.repeat_action_probability,
            full_action_space=options.full_action_space,
            autoreset_mode="SameStep",
            img_height=options.screen_size,
            img_width=options.screen_size,
            grayscale=True,
            stack_num=options.frame_stack,
            frameskip=options.frame_skip,
            maxpool=True,
            noop_max=options.noop_max,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=options.fire_on_reset,
        )
        self._ale = self._vector_env.ale
        self.num_threads = num_threads
        self._action_meanings = [action.name for action in self._ale.get_action_set()]
        # FIRE after a lost life where the game needs it (SB3's FireResetEnv test: FIRE is action 1 of 3 or more).
        self._fires_after_life_loss = (
            options.fire_on_life_loss and len(self._action_meanings) >= 3 and self._action_meanings[FIRE_ACTION] == "FIRE"
        )
        self._fire_pending = np.zeros(n_envs, dtype=bool)  # envs whose next step presses FIRE
        self._fired = np.zeros(n_envs, dtype=bool)  # envs where FIRE replaced the agent's action in the step in flight
        self._paddle_strength = np.ones(n_envs, dtype=np.float32)
        self._lives = np.zeros(n_envs, dtype=np.int32)
        self._episode_returns = np.zeros(n_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(n_envs, dtype=np.int64)
        # Leading frame-stack slots per env that still hold frames from before the last lost life.
        self._frames_before_life_loss = np.zeros(n_envs, dtype=np.int64)
        self._start_time = time.time()
        self._closed = False
        self._was_reset = False
        observation_space = spaces.Box(0, 255, (options.frame_stack, options.screen_size, options.screen_size), dtype=np.uint8)
        super().__init__(n_envs, observation_space, spaces.Discrete(len(self._action_meanings)))

    @property
    def frame_stack(self) -> int:
        """Frames stacked along the first observation axis; MuZero's replay stores each frame once."""
        return self.options.frame_stack

    # ----------------------------------------------------------------------------------- stepping

    def reset(self) -> np.ndarray:
        """Start a new game in every env (with the seeds set by ``seed()``, if any).

        :return: observations, uint8 ``[n_envs, frame_stack, screen_size, screen_size]``.
        """
        self._check_open()
        self._drop_step_in_flight()
        ale_seeds = [KEEP_RANDOM_STATE if seed is None else int(seed) % INT32_LIMIT for seed in self._seeds]
        observations, ale_info = self._in_env_order(*self._ale.reset(list(range(self.num_envs)), ale_seeds))
        self._lives = ale_info["lives"]
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self._frames_before_life_loss[:] = 0
        self._fire_pending[:] = False
        self._fired[:] = False
        self.reset_infos = [{"lives": lives} for lives in self._lives.tolist()]
        self._reset_seeds()
        self._reset_options()
        self._was_reset = True
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        """Send one action per env, int ``[n_envs]``; the emulators start at once, in C++ threads."""
        if not self._was_reset:
            self._check_open()
            raise RuntimeError(f"call reset() on this {type(self).__name__} before step()")
        actions = self._checked_actions(actions)
        self._drop_step_in_flight()
        self._fired[:] = self._fire_pending
        if self._fire_pending.any():
            actions = np.where(self._fire_pending, FIRE_ACTION, actions)
            self._fire_pending[:] = False
        self._ale.send(actions, self._paddle_strength)
        self._step_in_flight = True

    def step_wait(self) -> VecEnvStepReturn:
        """Wait for the step sent by ``step_async``.

        :return: observations uint8 ``[n_envs, frame_stack, screen_size, screen_size]``, rewards float32
            ``[n_envs]``, dones bool ``[n_envs]``, one info dict per env.
        """
        observations, game_rewards, terminated, truncated, ale_info = self._in_env_order(*self._ale.recv())
        self._step_in_flight = False
        self._episode_returns += game_rewards
        self._episode_lengths += 1
        game_over = terminated | truncated
        lives = ale_info["lives"]  # after the reset for the envs whose game ended
        life_lost = (lives < self._lives) & (lives > 0) & ~game_over
        if self._fires_after_life_loss:
            self._fire_pending |= life_lost
        if self.options.terminal_on_life_loss:
            dones = game_over | life_lost
        else:
            life_lost = None
            dones = game_over
        self._lives = lives
        rewards = np.sign(game_rewards, dtype=np.float32) if self.options.clip_reward else game_rewards.astype(np.float32)
        infos = [{"TimeLimit.truncated": flag} for flag in truncated.tolist()]
        for index in np.flatnonzero(self._fired).tolist():
            infos[index]["executed_action"] = FIRE_ACTION
        if dones.any():
            self._end_episodes(observations, infos, game_over, life_lost, ale_info)
        if self._frames_before_life_loss.any():
            self._blank_frames_before_life_loss(observations)
        return observations, rewards, dones, infos

    def _checked_actions(self, actions: np.ndarray) -> np.ndarray:
        """The actions as an int array ``[n_envs]``; a clear error for anything else."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            if actions.size != self.num_envs:
                raise ValueError(f"expected {self.num_envs} actions (one per env), got an array of shape {actions.shape}")
            actions = actions.reshape(self.num_envs)
        if actions.dtype != np.int64 and actions.dtype != np.int32:
            if not np.issubdtype(actions.dtype, np.integer):
                raise TypeError(f"actions must be integers (Discrete action space), got dtype {actions.dtype}")
            actions = actions.astype(np.int64)
        if actions.min() < 0 or actions.max() >= self.action_space.n:
            raise ValueError(f"actions must be in [0, {self.action_space.n - 1}], got {actions.tolist()}")
        return actions

    def _end_episodes(
        self,
        observations: np.ndarray,
        infos: list[dict[str, Any]],
        game_over: np.ndarray,
        life_lost: Optional[np.ndarray],
        ale_info: dict[str, np.ndarray],
    ) -> None:
        """Add terminal observations and game statistics to the infos of the envs whose episode ended.

        :param observations: uint8 ``[n_envs, stack, h, w]``, already the new games' first observations
            where a game ended; ``ale_info["final_obs"]`` holds the last observations of those games.
        """
        for index in np.flatnonzero(game_over).tolist():
            infos[index]["terminal_observation"] = ale_info["final_obs"][index].copy()
            infos[index]["episode"] = {
                "r": round(float(self._episode_returns[index]), 6),
                "l": int(self._episode_lengths[index]),
                "t": round(time.time() - self._start_time, 6),
            }
        self._episode_returns[game_over] = 0.0
        self._episode_lengths[game_over] = 0
        self._frames_before_life_loss[game_over] = 0  # ale-py cleared the frame stack of a new game
        if life_lost is not None:
            for index in np.flatnonzero(life_lost).tolist():
                infos[index]["terminal_observation"] = observations[index].copy()
            self._frames_before_life_loss[life_lost] = self.options.frame_stack - 1

    def _blank_frames_before_life_loss(self, observations: np.ndarray) -> None:
        """Zero the stacked frames that predate the current episode, as ``VecFrameStack`` does after a done."""
        for index in np.flatnonzero(self._frames_before_life_loss).tolist():
            observations[index, : self._frames_before_life_loss[index]] = 0
        np.subtract(
            self._frames_before_life_loss, 1, out=self._frames_before_life_loss, where=self._frames_before_life_loss > 0
        )

    # ----------------------------------------------------------- steps in flight, results in env order

    _step_in_flight = False  # a step_async whose results step_wait has not received yet

    def _drop_step_in_flight(self) -> None:
        """Receive (and drop) the results of a ``step_async`` that ``step_wait`` never received, e.g. because an
        interrupt came in between: ale-py queues results, so without this every later ``step_wait`` would return the
        results of the step before its own. The games, lives and scores stay right; the dropped step's observation,
        reward and infos are lost."""
        if self._step_in_flight:
            warnings.warn(
                f"{type(self).__name__}: the previous step_async was never followed by step_wait (interrupted?); its "
                "results are received now and dropped, so that the next step_wait returns the results of its own step"
            )
            self.step_wait()

    def _in_env_order(self, *results: Any) -> tuple[Any, ...]:
        """ale-py's results (arrays ``[n_envs, ...]`` and an info dict of such arrays) in env order, by the
        ``env_id`` ale-py reports with them.

        :raise RuntimeError: the results are not one per env
        """
        env_ids = np.asarray(results[-1]["env_id"])
        if np.array_equal(env_ids, np.arange(self.num_envs)):
            return results
        if not np.array_equal(np.sort(env_ids), np.arange(self.num_envs)):
            raise RuntimeError(
                f"ale-py returned results for envs {env_ids.tolist()}, expected one for each of {self.num_envs}"
            )
        order = np.argsort(env_ids)
        info = {key: np.asarray(value)[order] for key, value in results[-1].items()}
        return (*(np.asarray(result)[order] for result in results[:-1]), info)

    # ----------------------------------------------------------------------- saved with a model

    PLAIN_KIND = "atari_vec_env"
    # Why a model saved with include=["env"] does not continue these games (MuZero.load warns with it).
    resume_limitation = (
        "ale-py's vector env cannot save or restore the emulators' states, so the games start anew (seeded from the "
        "model's seed) and the replay starts new episodes; everything else continues exactly"
    )

    def plain_description(self) -> dict[str, Any]:
        """What ``model.save(path, include=["env"])`` stores of this env: the id, the number of envs and the options
        (not the emulators' states, see :attr:`resume_limitation`)."""
        options = {name: getattr(self.options, name) for name in SUPPORTED_OPTIONS}
        return {"env_id": self.game.env_id, "n_envs": self.num_envs, "options": options}

    @classmethod
    def from_plain_description(cls, description: dict[str, Any]) -> AtariVecEnv:
        """A new env with the settings of a :meth:`plain_description` (checked as ``make_atari_vec_env`` checks them).

        :raise CorruptFileError: the description lacks a part
        """
        options = description.get("options")
        if not isinstance(options, dict) or "env_id" not in description or "n_envs" not in description:
            raise CorruptFileError(f"an Atari env description needs env_id, n_envs and options, got {sorted(description)}")
        return make_atari_vec_env(description["env_id"], description["n_envs"], **options)

    # ------------------------------------------------------------------------- VecEnv attributes

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-env values of ``lives``, ``env_id``, ``game``, ``spec``, ``render_mode``, ``action_meanings``,
        the observation and action spaces and every option (``frame_skip``, ``clip_reward``, ...)."""
        env_indices = self._checked_indices(indices)
        if attr_name == "lives":
            return [int(self._lives[index]) for index in env_indices]
        shared = self._shared_attributes()
        if attr_name not in shared:
            raise AttributeError(
                f"{type(self).__name__} has no per-env attribute {attr_name!r}; supported: {', '.join(['lives', *shared])}"
            )
        return [shared[attr_name] for _ in env_indices]

    def _shared_attributes(self) -> dict[str, Any]:
        """Attributes with one value for all envs."""
        single_observation_space = getattr(self, "observation_space", None)
        return {
            "env_id": self.game.env_id,
            "game": self.game.game,
            "spec": gymnasium.registry[self.game.env_id],
            "render_mode": None,
            "action_meanings": list(self._action_meanings),
            "observation_space": single_observation_space,
            "action_space": getattr(self, "action_space", None),
            **{name: getattr(self.options, name) for name in SUPPORTED_OPTIONS},
            "num_threads": self.num_threads,
        }

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Not supported: the settings are fixed when ale-py builds its emulators."""
        raise NotImplementedError(
            f"set_attr({attr_name!r}) is not supported: {type(self).__name__} settings are fixed when the native ALE "
            f"vector env is built; create a new env with make_atari_vec_env(..., {attr_name}=...) instead"
        )

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Only ``get_action_meanings`` (as ``AtariEnv.get_action_meanings``): the envs are not Python objects."""
        env_indices = self._checked_indices(indices)
        if method_name == "get_action_meanings" and not method_args and not method_kwargs:
            return [list(self._action_meanings) for _ in env_indices]
        raise NotImplementedError(
            f"env_method({method_name!r}) is not supported: the games run inside ale-py's C++ vector env; "
            "supported: get_action_meanings()"
        )

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """True for SB3's ``Monitor`` (or its bases): this env reports ``Monitor``'s per-game statistics, so
        ``evaluate_policy`` uses the real game scores. False for any other wrapper."""
        is_monitor = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class)
        return [is_monitor for _ in self._checked_indices(indices)]

    def _checked_indices(self, indices: VecEnvIndices) -> list[int]:
        env_indices = list(self._get_indices(indices))
        for index in env_indices:
            if not -self.num_envs <= index < self.num_envs:
                raise IndexError(f"env index {index} out of range for {self.num_envs} envs")
        return env_indices

    def get_images(self) -> Sequence[Optional[np.ndarray]]:
        raise NotImplementedError("rendering is not supported: ale-py's vector env exposes only the preprocessed observations")

    def render(self, mode: Optional[str] = None) -> Optional[np.ndarray]:
        return self.get_images()  # raises

    def close(self) -> None:
        """Stop ale-py's worker threads and free the emulators; the env cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._was_reset = False
            self._vector_env.close()
            self._vector_env = None
            self._ale = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")
