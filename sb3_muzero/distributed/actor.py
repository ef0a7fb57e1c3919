"""A self-play actor: its own envs and its own copy of the network; it searches, steps and returns chunks of steps.

:class:`SelfPlayActor` is plain Python: :mod:`sb3_muzero.distributed.learner` runs it as a Ray actor (one process
each, restarted by Ray if it dies), and tests can run it in their own process. Its methods are called by the learner
only: ``describe`` once, then ``collect`` again and again. Every call names the learner's newest weights (a
reference into Ray's object store, which Ray copies to a node once); the actor loads them when they are newer
than its own, so a new or restarted actor is never without weights.
"""

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from sb3_muzero.distributed.chunk import Chunk, copy_observations, learner_infos, stack_transitions
from sb3_muzero.muzero.policies import MuZeroPolicy
from sb3_muzero.muzero.self_play import make_transition, search_step

Weights = dict[str, np.ndarray]


@dataclass(frozen=True)
class ActorSpec:
    """What every actor is built from; Ray pickles it into each actor."""

    make_env: Callable[..., VecEnv]  # called as make_env(seed=seed)
    make_policy: Callable[[], MuZeroPolicy]  # a new, untrained policy of the model's class and settings
    on_nonfinite: str  # MuZero's on_nonfinite
    torch_threads: int = 1  # torch threads of the actor's network calls


class ActorDescription(NamedTuple):
    """What the learner checks and records about an actor once it has started."""

    n_envs: int
    observation_space: spaces.Space
    action_space: spaces.Space
    vec_normalize: bool  # the envs are wrapped in a VecNormalize (not supported with actors)
    node_id: Optional[str]  # the Ray node the actor runs on (None outside Ray)
    pid: int  # its process (a new one after a restart)


def policy_weights(policy: MuZeroPolicy) -> Weights:
    """The policy's state (parameters and buffers) as CPU numpy arrays, which Ray ships without copying."""
    return {name: tensor.detach().cpu().numpy() for name, tensor in policy.state_dict().items()}


class SelfPlayActor:
    """Steps its own envs with searches of its own copy of the network.

    :param spec: how to build the envs and the network
    :param index: the actor's index (in its chunks)
    :param seed: seeds its envs and its search (None: random); a copy restarted by Ray starts from the same seeds
    """

    def __init__(self, spec: ActorSpec, index: int, seed: Optional[int]):
        th.set_num_threads(spec.torch_threads)
        self.spec, self.index = spec, index
        self.env = spec.make_env(seed=seed)
        self.policy = spec.make_policy().to(get_device("auto"))
        self.policy.search_rng = np.random.default_rng(seed)
        self.weights_version = -1  # no weights yet: the first collect brings them
        self.last_obs = copy_observations(self.env.reset())
        self.fresh_start = True

    def describe(self) -> ActorDescription:
        context = _ray_context()
        node_id = context.get_node_id() if context is not None else None
        return ActorDescription(self.env.num_envs, self.env.observation_space, self.env.action_space,
                                unwrap_vec_normalize(self.env) is not None, node_id, os.getpid())  # fmt: skip

    def collect(self, num_steps: int, temperature: float, timestep: int, weights_version: int, weights: Weights) -> Chunk:
        """Search and step all envs ``num_steps`` times; return the steps as one chunk.

        :param temperature: the visit-count temperature of the actions
        :param timestep: the learner's env steps so far (named in the error about a non-finite observation)
        :param weights_version: the learner's gradient steps when ``weights`` were made
        :param weights: the learner's newest weights (from :func:`policy_weights`), loaded if newer than the actor's
        """
        start = time.perf_counter()
        if weights_version != self.weights_version:
            self._load(weights_version, weights)
        transitions, infos = [], []
        for _ in range(num_steps):
            observations = self.last_obs
            searched = search_step(self.policy, observations, temperature, self.spec.on_nonfinite, timestep)
            new_obs, rewards, dones, step_infos = self.env.step(searched.actions)
            transitions.append(make_transition(self.policy, observations, searched, rewards, dones, step_infos,
                                               self.spec.on_nonfinite, timestep))  # fmt: skip
            infos.append(learner_infos(step_infos))
            self.last_obs = copy_observations(new_obs)
            timestep += self.env.num_envs
        chunk = Chunk(self.index, stack_transitions(transitions), infos, self.weights_version, self.fresh_start,
                      time.perf_counter() - start)  # fmt: skip
        self.fresh_start = False
        return chunk

    def _load(self, weights_version: int, weights: Weights) -> None:
        # Copies: Ray's arrays are read-only views of its object store.
        self.policy.load_state_dict({name: th.tensor(array) for name, array in weights.items()})
        self.weights_version = weights_version


def _ray_context():
    """Ray's runtime context when this runs inside a Ray actor, else None (no Ray import: Ray's workers have it)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return context if context.get_actor_id() is not None else None
