"""The states of every random generator a run draws from, to save with a model and put back on load.

A run draws from Python's ``random``, NumPy's global generator, torch's CPU (and CUDA) generators,
the ``numpy.random.Generator`` attributes of the algorithm (for MuZero: the search's, the replay
sampling's and reanalyse's noise), the action space's generator, and the envs. The envs' own
generators travel with the envs (see :class:`~sb3_muzero.muzero.persistence.PersistenceMixin`); what
is recorded here for them is the seeds a :class:`~stable_baselines3.common.vec_env.VecEnv` holds for
its next ``reset()``, which ``load`` would otherwise overwrite when it reseeds.
"""

import random
from typing import Any, Optional

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecEnv

STATE_VERSION = 1


def generator_attributes(owner: Any) -> list[str]:
    """Names of the ``numpy.random.Generator`` attributes of ``owner``."""
    return [name for name, value in vars(owner).items() if isinstance(value, np.random.Generator)]


def capture_generator_states(algorithm: Any) -> dict[str, Any]:
    """Everything :func:`restore_generator_states` needs, as plain picklable values."""
    cuda = th.cuda.get_rng_state_all() if th.cuda.is_available() and th.cuda.is_initialized() else None
    return {
        "version": STATE_VERSION,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
        "torch_cuda": cuda,
        "generators": {name: getattr(algorithm, name).bit_generator.state for name in generator_attributes(algorithm)},
        "action_space": algorithm.action_space.np_random.bit_generator.state,
        "env_reset_seeds": _pending_reset_seeds(algorithm.env),
    }


def restore_generator_states(algorithm: Any, states: dict[str, Any], env_continues: bool) -> None:
    """Put the generators of ``algorithm`` (and the global ones) back as :func:`capture_generator_states` found them.

    Generators are set in place, so objects that share them (the policy shares the search generator) keep
    sharing them. ``env_continues``: the env goes on from where it was saved (it is not reset before the
    next step), so the reset seeds it held are put back too.
    """
    if states.get("version") != STATE_VERSION:
        raise ValueError(f"Unknown generator state version {states.get('version')!r}; this package reads {STATE_VERSION}")
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    if states["torch_cuda"] is not None and th.cuda.is_available() and th.cuda.device_count() == len(states["torch_cuda"]):
        th.cuda.set_rng_state_all(states["torch_cuda"])
    for name, state in states["generators"].items():
        generator = getattr(algorithm, name, None)
        if not isinstance(generator, np.random.Generator):
            generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
            setattr(algorithm, name, generator)
        generator.bit_generator.state = state
    algorithm.action_space.np_random.bit_generator.state = states["action_space"]
    if env_continues and states["env_reset_seeds"] is not None and algorithm.env is not None:
        algorithm.env.unwrapped._seeds = list(states["env_reset_seeds"])


def _pending_reset_seeds(env: Optional[VecEnv]) -> Optional[list[Optional[int]]]:
    seeds = getattr(env.unwrapped, "_seeds", None) if env is not None else None
    return None if seeds is None else list(seeds)
