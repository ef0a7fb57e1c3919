"""Checks of the envs a model is given or saved with."""

from typing import Optional

import cloudpickle
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize


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
    when pickled) and, with ``try_pickling``, envs that do not pickle (a ``SubprocVecEnv``, open files).

    :raise ValueError: saying why and what to do instead
    """
    if env is None:
        raise ValueError("The model has no env to save")
    if unwrap_vec_normalize(env) is not None:
        raise ValueError(
            "A VecNormalize env cannot be saved in the model file (it does not pickle the env it wraps). Save its "
            "statistics (CheckpointCallback(save_vecnormalize=True), VecNormalize.save) and pass the env to load(env=...)"
        )
    if try_pickling:
        try:
            cloudpickle.dumps(env)
        except Exception as error:
            raise ValueError(
                f"Saving the envs needs envs that can be pickled, and {env} cannot: {error}. Use a DummyVecEnv of envs "
                "that pickle, or do not save the envs (a resumed run then starts new episodes)"
            ) from error
