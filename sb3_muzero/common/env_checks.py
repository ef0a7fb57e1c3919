"""Checks of the envs a model is given or saved with."""

from typing import Any, Optional

import cloudpickle
import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, unwrap_vec_normalize


def check_env_spaces(env: VecEnv, observation_space: Optional[spaces.Space], action_space: Optional[spaces.Space]) -> None:
    """Refuse an env whose spaces are not the model's (``None``: not known, not checked).

    :raise ValueError: saying which space differs, the env's and the model's
    """
    for name, env_space, model_space in (
        ("observation", env.observation_space, observation_space),
        ("action", env.action_space, action_space),
    ):
        if model_space is not None and env_space != model_space:
            raise ValueError(
                f"The env's {name} space {env_space} is not the model's {model_space}: the model's networks are built "
                f"for its own spaces; use an env with {name} space {model_space}"
            )


def check_env_can_be_saved(env: Optional[VecEnv], try_pickling: bool = False) -> None:
    """Refuse envs that would not come back from a model file: none, a ``VecNormalize`` (it leaves its inner env out
    when pickled) and, with ``try_pickling``, envs that do not pickle (a ``SubprocVecEnv``, SB3's ``VecEnvWrapper``s,
    open files), naming the part that does not; envs that describe themselves (``plain_description``, e.g.
    ``make_atari_vec_env``'s) are not pickled.

    :raise ValueError: saying why and what to do instead
    """
    if env is None:
        raise ValueError("The model has no env to save")
    if unwrap_vec_normalize(env) is not None:
        raise ValueError(
            "A VecNormalize env cannot be saved in the model file (it does not pickle the env it wraps). Save its "
            "statistics (CheckpointCallback(save_vecnormalize=True), VecNormalize.save) and pass the env to load(env=...)"
        )
    if try_pickling and not hasattr(type(env), "plain_description"):
        try:
            cloudpickle.dumps(env)
        except Exception:
            part, error = _unpicklable_part(env)
            raise ValueError(
                f"The envs cannot be saved with the model: {part} does not pickle ({type(error).__name__}: {error}). "
                "Save the model without the envs (no include=['env'], CheckpointCallback without save_env) and pass "
                "env=... to MuZero.load: the envs start new episodes, everything else continues"
            ) from error


def _unpicklable_part(env: VecEnv) -> tuple[str, Exception]:
    """(a description of the innermost part of ``env`` that does not pickle, the error pickling it raised).

    The parts are the ``VecEnvWrapper`` layers, the ``VecEnv`` under them and, for a ``DummyVecEnv``, each env with
    its gymnasium wrappers; each layer is tried after the layers it wraps.
    """
    layers: list[tuple[str, Any]] = []  # outermost first
    while isinstance(env, VecEnvWrapper):
        layers.append((f"the wrapper {type(env).__name__} (around {type(env.venv).__name__})", env))
        env = env.venv
    layers.append((f"the VecEnv {type(env).__name__}", env))
    if isinstance(env, DummyVecEnv):
        for index, sub_env in enumerate(env.envs):
            while isinstance(sub_env, gym.Wrapper):
                layers.append((f"the wrapper {type(sub_env).__name__} of env {index}", sub_env))
                sub_env = sub_env.env
            layers.append((f"env {index} ({type(sub_env).__name__})", sub_env))
    for description, layer in reversed(layers):
        try:
            cloudpickle.dumps(layer)
        except Exception as error:
            return description, error
    return f"the VecEnv {type(env).__name__}", RuntimeError("it failed to pickle once and pickled when tried again")
