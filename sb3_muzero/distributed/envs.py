"""How each actor gets its envs, and which envs can be shipped to an actor.

Every actor builds its own envs by calling a factory as ``make_env(seed=seed)``. The factory is, in this order:

- the model's ``actor_env``: any function that returns a VecEnv and that Ray can pickle, e.g.
  ``functools.partial(make_vec_env, "CartPole-v1", n_envs=8, wrapper_class=...)``;
- for an env of :func:`~sb3_muzero.envs.make_atari_vec_env` (not wrapped further): the same call with the same
  arguments (ale-py's native vector env cannot be pickled, but it can be rebuilt);
- for any other VecEnv: a pickled copy of the model's env, reseeded. This needs envs that pickle: a
  ``DummyVecEnv`` of Python envs, such as SB3 builds from an env id or ``make_vec_env`` builds without
  ``monitor_dir``. A ``SubprocVecEnv``, a ``Monitor`` writing to a file or an env holding other open handles
  cannot be shipped, and are refused with a message saying to pass ``actor_env``.

``VecNormalize`` is refused in every case: each actor would keep its own running statistics, and the learner
normalizes the observations it trains on with its own.
"""

import dataclasses
import functools
from typing import Any, Callable, Optional

import cloudpickle
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from sb3_muzero.envs.atari import AtariVecEnv, make_atari_vec_env

EnvFactory = Callable[..., VecEnv]

HOW_TO_SHIP = (
    "pass actor_env=<a function actor_env(seed=...) -> VecEnv that Ray can pickle>, e.g. "
    "functools.partial(make_vec_env, 'CartPole-v1', n_envs=8). Envs that ship as they are: a DummyVecEnv of envs "
    "that pickle (an env id, make_vec_env without monitor_dir) and make_atari_vec_env's env"
)
VEC_NORMALIZE_REFUSED = (
    "actors do not support VecNormalize: each actor would keep its own running statistics of the observations, "
    "and the learner would normalize with another"
)


def actor_env_factory(env: Optional[VecEnv], actor_env: Optional[EnvFactory], actors: int) -> EnvFactory:
    """The factory every actor builds its envs with (see the module docstring).

    :param env: the model's env
    :param actor_env: the model's ``actor_env`` (None: ship ``env``)
    :param actors: the number of actors (for messages)
    :raise ValueError: the env cannot be shipped, or is a VecNormalize
    """
    if env is not None and unwrap_vec_normalize(env) is not None:
        raise ValueError(VEC_NORMALIZE_REFUSED)
    if actor_env is not None:
        _check_pickles(actor_env, f"actor_env={actor_env!r}", actors)
        return actor_env
    if env is None:
        raise ValueError(f"actors={actors} needs an env to copy to each actor, or actor_env=...; the model has no env")
    if isinstance(env, AtariVecEnv):
        options = dataclasses.asdict(env.options)
        return functools.partial(make_atari_vec_env, env.game.env_id, env.num_envs, **options)
    return CopiedVecEnv(_check_pickles(env, f"the env {env}", actors))


class CopiedVecEnv:
    """A pickled VecEnv that each call unpickles and reseeds: the model's own envs, copied to an actor."""

    def __init__(self, pickled: bytes):
        self.pickled = pickled

    def __call__(self, seed: Optional[int] = None) -> VecEnv:
        env = cloudpickle.loads(self.pickled)
        env.seed(seed)
        return env


def _check_pickles(value: Any, what: str, actors: int) -> bytes:
    try:
        return cloudpickle.dumps(value)
    except Exception as error:
        raise ValueError(f"actors={actors} needs envs Ray can ship to the actors, and {what} cannot be pickled "
                         f"({type(error).__name__}: {error}); {HOW_TO_SHIP}") from error  # fmt: skip
