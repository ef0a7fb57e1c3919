"""rl-zoo3's training envs, built again inside each actor of ``-params actors:N``.

rl-zoo3's training env cannot be shipped to an actor as it is (its ``Monitor`` writes to a log file), so the
registration gives MuZero an ``actor_env`` that builds the same envs the way rl-zoo3 does
(``ExperimentManager.create_envs``: the env's section wrappers, frame stacking, channel-first images), without the
log files: the actors' episodes reach the learner's logger through their infos instead.
"""

from typing import Any, Optional

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

# What ExperimentManager.create_envs reads from the manager, besides the seed.
MANAGER_ATTRIBUTES = (
    "env_name",
    "env_kwargs",
    "eval_env_kwargs",
    "env_wrapper",
    "vec_env_class",
    "vec_env_kwargs",
    "vec_env_wrapper",
    "monitor_kwargs",
    "frame_stack",
    "normalize",
    "normalize_kwargs",
    "trained_agent",
)


class ZooActorEnv:
    """``actor_env(seed=...)``: ``n_envs`` training envs as rl-zoo3's ``manager`` makes them (pickles for Ray).

    :param manager: rl-zoo3's ``ExperimentManager`` of the run
    :param n_envs: envs per actor (rl-zoo3's ``n_envs``)
    """

    def __init__(self, manager: Any, n_envs: int):
        self.settings = {name: getattr(manager, name) for name in MANAGER_ATTRIBUTES}
        self.spec = gym.spec(manager.env_name.gym_id)  # also registers it in an actor that lacks --gym-packages
        self.n_envs = n_envs

    def __call__(self, seed: Optional[int] = None) -> VecEnv:
        import rl_zoo3.import_envs  # noqa: F401  (rl-zoo3's env registrations, Atari's among them)
        from rl_zoo3.exp_manager import ExperimentManager

        if self.spec.id not in gym.registry:
            gym.registry[self.spec.id] = self.spec
        manager = ExperimentManager.__new__(ExperimentManager)
        vars(manager).update(self.settings, seed=seed, verbose=0)
        return manager.create_envs(self.n_envs, no_log=True)
