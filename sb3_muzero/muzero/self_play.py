"""One self-play step, shared by MuZero's own loop and the distributed actors: search, then what the replay stores.

:func:`search_step` runs the search with root noise from a batch of observations; :func:`make_transition` turns the
env's answer into the :class:`Transition` that :meth:`~sb3_muzero.replay.MuZeroReplayBuffer.add` takes.
"""

from typing import Any, NamedTuple, Optional, Union

import numpy as np

from sb3_muzero.common.nonfinite import searchable_observations, steps_to_store
from sb3_muzero.mcts.roots import to_numpy
from sb3_muzero.muzero.policies import MuZeroPolicy

Observations = Union[np.ndarray, dict[str, np.ndarray]]


class SearchedStep(NamedTuple):
    """The search's answer for a batch of ``n_envs`` observations."""

    actions: np.ndarray  # [n_envs] int, the actions to take (visit-count temperature)
    policy_target: np.ndarray  # [n_envs, A] float32, the search's policy target (SearchResult.policy_target)
    root_values: np.ndarray  # [n_envs] float32, the root search values


class Transition(NamedTuple):
    """One vector step as the replay stores it: the arguments of ``MuZeroReplayBuffer.add``, in its order.

    A chunk of ``T`` steps has the same fields with a leading time axis (``[T, n_envs, ...]``).
    """

    observations: Observations  # [n_envs, *obs_shape] (or a dict of those), the observations searched from
    actions: np.ndarray  # [n_envs]
    rewards: np.ndarray  # [n_envs]
    policies: np.ndarray  # [n_envs, A] the search's policy targets
    root_values: np.ndarray  # [n_envs]
    terminated: np.ndarray  # [n_envs] bool
    truncated: np.ndarray  # [n_envs] bool
    final_values: np.ndarray  # [n_envs] predicted value of the observation a time limit cut off (0 elsewhere)
    keep: Optional[np.ndarray]  # [n_envs] bool, the steps that may be stored (None: all)


def search_step(policy: MuZeroPolicy, observations: Observations, temperature: float, on_nonfinite: str,
                timestep: int) -> SearchedStep:  # fmt: skip
    """Search with root noise from ``observations`` [n_envs, ...]; ``on_nonfinite`` and ``timestep`` as in
    :func:`sb3_muzero.common.nonfinite.searchable_observations`."""
    policy.set_training_mode(False)
    tensor, _ = policy.obs_to_tensor(searchable_observations(observations, on_nonfinite, timestep))
    result = policy.run_search(tensor, temperature=temperature, add_noise=True)
    root_values = to_numpy(result.root_value).astype(np.float32)
    return SearchedStep(np.asarray(result.action), to_numpy(result.policy_target), root_values)


def policy_entropy(policy_target: np.ndarray) -> np.ndarray:
    """[n_envs] entropy of each policy target [n_envs, A]."""
    logs = np.log(np.where(policy_target > 0, policy_target, 1.0))
    return -(policy_target * logs).sum(axis=1)


def make_transition(
    policy: MuZeroPolicy,
    observations: Observations,
    searched: SearchedStep,
    rewards: np.ndarray,
    dones: np.ndarray,
    infos: list[dict[str, Any]],
    on_nonfinite: str,
    timestep: int,
) -> Transition:
    """The replay's record of one vector step: searched from ``observations``, the env answered ``rewards``, ``dones``
    and ``infos`` (SB3's ``TimeLimit.truncated`` and ``terminal_observation``)."""
    truncated = np.array([done and info.get("TimeLimit.truncated", False) for done, info in zip(dones, infos)], dtype=bool)
    terminated = np.logical_and(dones, np.logical_not(truncated))
    keep = steps_to_store(observations, rewards, truncated, infos, on_nonfinite, timestep)
    final_values = _final_values(policy, truncated, infos)
    actions = executed_actions(searched.actions, infos)
    return Transition(observations, actions, np.asarray(rewards), searched.policy_target,
                      searched.root_values, terminated, truncated, final_values, keep)  # fmt: skip


def executed_actions(actions: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
    """The actions [n_envs] the envs took: the chosen ones, except where an env's info names another
    (``"executed_action"``: :func:`~sb3_muzero.make_atari_vec_env` presses FIRE after a lost life)."""
    replaced = [(index, info["executed_action"]) for index, info in enumerate(infos) if "executed_action" in info]
    if not replaced:
        return actions
    actions = np.array(actions, copy=True)
    for index, action in replaced:
        actions[index] = action
    return actions


def _final_values(policy: MuZeroPolicy, truncated: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
    """Predicted values [n_envs] of the observations a time limit cut off (0 elsewhere), to bootstrap from."""
    final_values = np.zeros(len(truncated), dtype=np.float32)
    indices = [i for i in np.flatnonzero(truncated) if infos[i].get("terminal_observation") is not None]
    if indices:
        observations = [infos[i]["terminal_observation"] for i in indices]
        if isinstance(observations[0], dict):
            stacked = {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
        else:
            stacked = np.stack(observations)
        policy.set_training_mode(False)
        tensor, _ = policy.obs_to_tensor(stacked)
        final_values[indices] = to_numpy(policy.value(tensor))
    return final_values
