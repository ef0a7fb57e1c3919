"""A chunk: consecutive vector steps of one actor's envs, with their search statistics, sent to the learner in one piece.

An actor sends a chunk as the return value of one Ray call, so the learner gets all of it or nothing (an actor that
dies while making a chunk loses it whole); :func:`add_chunk` then writes it to the replay in one go.
"""

from typing import Any, NamedTuple

import numpy as np

from sb3_muzero.muzero.self_play import Observations, Transition
from sb3_muzero.replay import MuZeroReplayBuffer

# The entries of an env's info dict the learner reads (SB3's episode statistics); the rest stays with the actor.
LEARNER_INFO_KEYS = ("episode", "is_success")


class Chunk(NamedTuple):
    """``T`` vector steps of one actor's ``n_envs`` envs."""

    actor: int  # the actor's index
    steps: Transition  # every field [T, n_envs, ...] (observations: or a dict of those); keep [T, n_envs] bool
    infos: list[list[dict[str, Any]]]  # [T][n_envs] the LEARNER_INFO_KEYS entries of the env's infos
    weights_version: int  # the learner's gradient steps when the weights the actor searched with were sent
    fresh_start: bool  # the first chunk since the actor (re)started: its envs began new episodes
    busy_s: float  # seconds the actor spent making the chunk (searches, env steps, loading weights)

    @property
    def num_steps(self) -> int:
        return len(self.steps.actions)

    @property
    def n_envs(self) -> int:
        return self.steps.actions.shape[1]

    @property
    def env_steps(self) -> int:
        return self.num_steps * self.n_envs

    def dones(self, t: int) -> np.ndarray:
        """[n_envs] bool, the episodes step ``t`` ended."""
        return np.logical_or(self.steps.terminated[t], self.steps.truncated[t])


def learner_infos(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of one step's infos the learner reads (small: no terminal observations)."""
    return [{key: info[key] for key in LEARNER_INFO_KEYS if key in info} for info in infos]


def copy_observations(observations: Observations) -> Observations:
    """A copy of a batch of observations (some VecEnvs, such as VecFrameStack, return the same buffer every step)."""
    if isinstance(observations, dict):
        return {key: np.array(value, copy=True) for key, value in observations.items()}
    return np.array(observations, copy=True)


def stack_transitions(transitions: list[Transition]) -> Transition:
    """``T`` transitions of ``n_envs`` envs as one :class:`Transition` of arrays [T, n_envs, ...] (``keep`` filled)."""
    first = transitions[0]
    n_envs = len(first.actions)
    keep = np.stack([np.ones(n_envs, bool) if step.keep is None else step.keep for step in transitions])
    if isinstance(first.observations, dict):
        observations = {key: np.stack([step.observations[key] for step in transitions]) for key in first.observations}
    else:
        observations = np.stack([step.observations for step in transitions])
    arrays = [np.stack([np.asarray(step[field]) for step in transitions]) for field in range(1, len(first) - 1)]
    return Transition(observations, *arrays, keep)


def transition_at(steps: Transition, t: int) -> Transition:
    """Step ``t`` of stacked transitions [T, n_envs, ...]."""
    observations = steps.observations
    observations = (
        {key: value[t] for key, value in observations.items()} if isinstance(observations, dict) else observations[t]
    )
    return Transition(observations, *(array[t] for array in steps[1:]))


def add_chunk(replay: MuZeroReplayBuffer, chunk: Chunk, streams: np.ndarray, stored_at_update: int = 0) -> None:
    """Write every step of ``chunk`` to ``replay``, the actor's envs continuing the replay's ``streams`` [n_envs]
    (new episodes if the actor has just (re)started); ``stored_at_update`` is the learner's gradient steps so far."""
    if chunk.fresh_start:
        replay.end_episodes(streams)
    for t in range(chunk.num_steps):
        replay.add(*transition_at(chunk.steps, t), streams=streams, stored_at_update=stored_at_update)
