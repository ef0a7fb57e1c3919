"""Prioritized replay for MuZero: self-play steps stored once, K-step unrolls sampled with a sum tree.

Layout
------
A flat ring of ``capacity`` slots, written in order, one slot per env step (``n_envs`` slots per
vector step). Each slot knows its episode (``episode_id``), its step in that episode
(``step_in_episode``) and the slots of the same env right before and after it (``previous_slot``,
``next_slot``), so an unroll follows its own episode whatever the number of envs was when it was
written. A link is trusted only if the linked slot still holds the expected (episode, step): the
ring overwrites the oldest slots first.

For frame-stacked image observations (``frame_stack > 1``, channel-first ``[stack * C, H, W]``)
only the newest ``C`` channels of each step are stored; stacks are rebuilt at sample time from the
previous slots of the same episode, with zeros before the episode's first step (what SB3's
``VecFrameStack`` and ALE's vector env give). A first observation whose older frames are not zero
is kept whole in a small side table.

Targets (MuZero paper, appendix G)
----------------------------------
For a sampled slot ``t`` and ``k = 0..K``, with ``u = t + k``:

- value target ``z_u = sum_{i < n} gamma^i r_{u+i} + gamma^n v_{u+n}`` where ``v`` is the stored root
  search value (or a target network's value, see :class:`ReplaySample`), ``n = td_steps``. It stops
  early at the end of the episode: no bootstrap after a termination, ``gamma^(i+1) v_final`` after a
  truncation (``v_final`` stored when the step was added), and at the newest stored step of an
  episode still running.
- reward target ``r_{u-1}`` (k >= 1), policy target the root visit distribution of ``u``.
- Past a termination the steps are absorbing: reward 0, value 0, policy loss masked. Past a
  truncation, or past the newest stored step, every loss is masked.

Priorities are ``p^alpha``; new steps get the largest priority seen so far. Sampling is stratified
over the priority mass, importance weights ``(N P(i))^-beta`` are normalised by the batch maximum.
"""

import math
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import psutil
from gymnasium import spaces

from sb3_muzero.common.files import CorruptFileError
from sb3_muzero.common.numbers import is_int
from sb3_muzero.replay import targets, validation
from sb3_muzero.replay.sum_tree import SumTree

ObservationBatch = Union[np.ndarray, dict[str, np.ndarray]]


class NStepReturns(NamedTuple):
    """The n-step returns of stored slots [M]: ``value target = partial + discount * bootstrap_value``."""

    partial: np.ndarray  # [M] float32, discounted reward sum
    discount: np.ndarray  # [M] float32, gamma^m of the bootstrap term, 0 if none
    bootstrap_value: np.ndarray  # [M] float32, stored value the return bootstraps from
    bootstrap_slot: np.ndarray  # [M] int64, slot whose observation gives the bootstrap value, -1 if not stored


class ReplaySample(NamedTuple):
    """A batch of ``B`` K-step unrolls, everything as numpy arrays.

    ``value_target = value_partial + bootstrap_discount * bootstrap_value``; to bootstrap from a target
    network instead of the stored search values, recompute ``bootstrap_value`` where
    ``bootstrap_slot >= 0`` from ``bootstrap_observations``, the observations of those slots.
    """

    observations: ObservationBatch  # [B, *obs_shape] at the sampled slots
    actions: np.ndarray  # [B, K] int64, actions taken (random where past the episode end)
    reward_targets: np.ndarray  # [B, K] float32, r_{t+k} for the transition into unroll step k+1
    reward_mask: np.ndarray  # [B, K] float32
    value_partial: np.ndarray  # [B, K+1] float32, discounted reward sum of the n-step return
    bootstrap_discount: np.ndarray  # [B, K+1] float32, gamma^m of the bootstrap term, 0 if none
    bootstrap_value: np.ndarray  # [B, K+1] float32, stored value the return bootstraps from
    bootstrap_slot: np.ndarray  # [B, K+1] int64, slot whose observation gives the bootstrap value, -1 if not stored
    value_mask: np.ndarray  # [B, K+1] float32
    policy_targets: np.ndarray  # [B, K+1, A] float32, root visit distributions (0 where masked)
    policy_mask: np.ndarray  # [B, K+1] float32
    root_values: np.ndarray  # [B] float32, stored search value at the sampled slot
    weights: np.ndarray  # [B] float32, importance sampling weights, max 1
    slots: np.ndarray  # [B] int64, sampled slots (for priority updates)
    unroll_slots: np.ndarray  # [B, K+1] int64, the slot of each unroll step (slots[b] first), -1 past the stored steps
    next_observations: Optional[ObservationBatch]  # [B, K, *obs_shape] at t+1..t+K (if asked), zeros where masked
    next_observation_mask: Optional[np.ndarray]  # [B, K] float32
    # [M, *obs_shape] (if asked): the observations at bootstrap_slot[bootstrap_slot >= 0], in that (row-major) order
    bootstrap_observations: Optional[ObservationBatch] = None

    @property
    def value_targets(self) -> np.ndarray:
        """[B, K+1] float32, n-step value targets from the stored bootstrap values."""
        return self.value_partial + self.bootstrap_discount * self.bootstrap_value


def _rows(observations: ObservationBatch, rows: np.ndarray) -> ObservationBatch:
    """The observations of ``rows`` of a batch [n, ...] (or of each part of a dict of batches)."""
    if isinstance(observations, dict):
        return {key: np.asarray(value)[rows] for key, value in observations.items()}
    return np.asarray(observations)[rows]


class MuZeroReplayBuffer:
    """Prioritized MuZero replay (see the module docstring for layout and targets).

    :param buffer_size: number of env steps kept (the oldest are overwritten first)
    :param observation_space: the env's observation space (Box, Discrete, MultiBinary, MultiDiscrete or Dict of those)
    :param action_space: the env's Discrete action space
    :param gamma: discount factor of the n-step returns
    :param alpha: priority exponent (0 = uniform sampling)
    :param frame_stack: number of frames stacked along the first axis of image observations (1 = no stacking)
    :param priority_epsilon: added to every priority so that no step is never sampled
    :param force_memory: allocate even if the buffer would not fit in the available memory
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        gamma: float,
        alpha: float = 1.0,
        frame_stack: int = 1,
        priority_epsilon: float = 1e-6,
        force_memory: bool = False,
    ):
        if not is_int(buffer_size) or buffer_size < 1:
            raise ValueError(f"buffer_size must be a positive integer, got {buffer_size!r}")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"The replay stores Discrete actions only, got {action_space}")
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        self.capacity = int(buffer_size)
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_actions = int(action_space.n)
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.priority_epsilon = float(priority_epsilon)
        self.frame_stack = self._check_frame_stack(observation_space, frame_stack)

        required = self.bytes_per_step() * self.capacity
        available = psutil.virtual_memory().available
        if required > available and not force_memory:
            raise MemoryError(
                f"A replay of {self.capacity:,} steps needs {required / 2**30:.2f} GiB "
                f"({self.bytes_per_step():,} bytes per step), but only {available / 2**30:.2f} GiB is available. "
                "Use a smaller buffer_size, or pass replay_buffer_kwargs=dict(force_memory=True) to allocate anyway."
            )
        self._allocate()

    # --- state, as files store it ------------------------------------------------------------------

    SPACES = ("observation_space", "action_space")  # given by the model when a buffer is rebuilt, not stored
    # Per-step arrays that files of earlier versions lack; such a buffer gets them filled with their fill value (for
    # stored_at_update, 0: its steps count as stored before the first gradient step, the oldest they can be).
    ADDED_LATER = ("stored_at_update",)

    def state(self) -> dict[str, Any]:
        """Every attribute but the spaces, as plain values: scalars, numpy arrays and dicts of arrays (each sum tree
        as its array, under ``"<name>.tree"``). :meth:`from_state` rebuilds the buffer from it."""
        state: dict[str, Any] = {}
        for name, value in vars(self).items():
            if name in self.SPACES:
                continue
            if isinstance(value, SumTree):
                state[f"{name}.tree"] = value.tree
            else:
                state[name] = value
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], observation_space: spaces.Space, action_space: spaces.Space,
                   source: str, described: dict[str, str]) -> "MuZeroReplayBuffer":  # fmt: skip
        """The buffer of a :meth:`state`, for a model with these spaces, after checking that it is one this code writes.

        :param source: where the state comes from, for messages (e.g. a quoted file name)
        :param described: ``observation_space``, ``action_space`` and ``package_version`` as the source describes them
        :raise ValueError: the state is not for these spaces, or from an incompatible version
        :raise CorruptFileError: the state is inconsistent
        """
        state = dict(state)
        validation.check_scalars(state, source)
        try:
            reference = cls(1, observation_space, action_space, gamma=state["gamma"], frame_stack=state["frame_stack"])
        except ValueError as error:
            raise ValueError(f"The replay buffer in {source} does not fit this model: {error}") from error
        steps = state.get("episode_id")  # as many steps as the file has (its layout is checked below)
        for name in cls.ADDED_LATER:
            if name not in state and isinstance(steps, np.ndarray) and steps.ndim == 1:
                shape, dtype, fill = reference._per_step_arrays()[name]
                state[name] = np.full((len(steps), *shape), fill, dtype=dtype)
        validation.check_kinds(state, reference.state(), source)
        buffer = cls.__new__(cls)
        for name in [name for name in state if name.endswith(".tree")]:
            tree = SumTree.__new__(SumTree)
            tree.tree = state.pop(name)
            tree.leaf_offset = len(tree.tree) // 2
            state[name[: -len(".tree")]] = tree
        vars(buffer).update(state)
        buffer.observation_space, buffer.action_space = observation_space, action_space
        buffer._check_spaces_against(reference, source, described)
        buffer._check_layout_against(reference, source, described)
        validation.check_contents(buffer, source)
        return buffer

    def _check_spaces_against(self, reference: "MuZeroReplayBuffer", source: str, described: dict[str, str]) -> None:
        """The stored observations and actions are those of the reference's spaces."""
        stored_keys, expected_keys = set(getattr(self, "observations", {})), set(reference._stored_observation_spaces())
        if stored_keys != expected_keys:
            raise ValueError(
                f"The replay buffer in {source} stores observations ({described['observation_space']}) under the keys "
                f"{sorted(stored_keys)}; this model's observation space {reference.observation_space} has "
                f"{sorted(expected_keys)}"
            )
        for key, (shape, dtype) in reference._stored_observation_spaces().items():
            stored = getattr(self, "observations", {}).get(key)
            if stored is None or stored.shape[1:] != shape or stored.dtype != dtype:
                found = "nothing" if stored is None else f"shape {stored.shape[1:]} {stored.dtype}"
                raise ValueError(
                    f"The replay buffer in {source} stores observations ({described['observation_space']}) with {found} "
                    f"for key {key!r}; this model's observation space {reference.observation_space} needs shape "
                    f"{shape} {dtype}"
                )
        if self.num_actions != reference.num_actions:
            raise ValueError(
                f"The replay buffer in {source} stores {self.num_actions} actions ({described['action_space']}); "
                f"this model's action space is {reference.action_space}"
            )

    def _check_layout_against(self, reference: "MuZeroReplayBuffer", source: str, described: dict[str, str]) -> None:
        """The same attributes as the reference, each with one entry per slot where it should."""
        missing, unknown = sorted(set(vars(reference)) - set(vars(self))), sorted(set(vars(self)) - set(vars(reference)))
        if missing or unknown:
            raise ValueError(
                f"The replay buffer in {source} was written by an incompatible sb3-muzero ({described['package_version']}): "
                f"missing attributes {missing}, unknown attributes {unknown}"
            )
        per_slot = [(attribute, getattr(self, attribute), value) for attribute, value in vars(reference).items()
                    if isinstance(value, np.ndarray) and len(value) == reference.capacity]  # fmt: skip
        per_slot += [
            (f"observations[{key!r}]", self.observations[key], value) for key, value in reference.observations.items()
        ]
        for label, loaded, expected in per_slot:
            if loaded.dtype != expected.dtype or loaded.shape != (self.capacity, *expected.shape[1:]):
                raise CorruptFileError(
                    f"The replay buffer in {source} is inconsistent: {label} has shape {loaded.shape} {loaded.dtype}, "
                    f"expected {(self.capacity, *expected.shape[1:])} {expected.dtype}"
                )
        if any(tree.leaf_offset < self.capacity for tree in vars(self).values() if isinstance(tree, SumTree)):
            raise CorruptFileError(f"The replay buffer in {source} is inconsistent: a sum tree is smaller than its capacity")

    # --- layout ----------------------------------------------------------------------------------

    @staticmethod
    def _check_frame_stack(observation_space: spaces.Space, frame_stack: int) -> int:
        if frame_stack == 1:
            return 1
        shape = getattr(observation_space, "shape", None)
        if not isinstance(observation_space, spaces.Box) or shape is None or len(shape) != 3 or shape[0] % frame_stack:
            raise ValueError(
                f"frame_stack={frame_stack} needs channel-first image observations [stack * C, H, W] with a first axis "
                f"divisible by the stack, got {observation_space}"
            )
        return frame_stack

    def _stored_observation_spaces(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shape and dtype of what one slot stores per observation key (one frame when frames are stacked)."""

        def stored(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
            if isinstance(space, spaces.Discrete):
                return (), np.dtype(np.int64)
            return tuple(space.shape), np.dtype(space.dtype)

        if isinstance(self.observation_space, spaces.Dict):
            return {key: stored(space) for key, space in self.observation_space.spaces.items()}
        shape, dtype = stored(self.observation_space)
        if self.frame_stack > 1:
            shape = (shape[0] // self.frame_stack, *shape[1:])
        return {"": (shape, dtype)}

    def _per_step_arrays(self) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
        """Every per-step array: name -> (shape of one step, dtype, fill value)."""
        action_dtype = np.dtype(np.uint8 if self.num_actions <= 256 else np.int32)
        return {
            "actions": ((), action_dtype, 0),
            "rewards": ((), np.dtype(np.float32), 0),
            "root_values": ((), np.dtype(np.float32), 0),
            "final_values": ((), np.dtype(np.float32), 0),  # value of the state after a truncation
            "policies": ((self.num_actions,), np.dtype(np.float32), 0),
            "terminated": ((), np.dtype(np.bool_), 0),
            "truncated": ((), np.dtype(np.bool_), 0),
            "episode_id": ((), np.dtype(np.int64), -1),
            "step_in_episode": ((), np.dtype(np.int32), -1),
            "previous_slot": ((), np.dtype(np.int32), -1),
            "next_slot": ((), np.dtype(np.int32), -1),
            "stored_at_update": ((), np.dtype(np.int64), 0),  # the learner's gradient steps when the step was stored
        }

    def bytes_per_step(self) -> int:
        """Memory one stored env step takes, everything included (observations, targets, links, priorities)."""
        stored = list(self._stored_observation_spaces().values()) + [
            (shape, dtype) for shape, dtype, _ in self._per_step_arrays().values()
        ]
        per_step = sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in stored)
        return per_step + math.ceil(SumTree.bytes_for(self.capacity) / self.capacity)

    def _allocate(self) -> None:
        capacity = self.capacity
        self.observations = {
            key: np.zeros((capacity, *shape), dtype=dtype) for key, (shape, dtype) in self._stored_observation_spaces().items()
        }
        for name, (shape, dtype, fill) in self._per_step_arrays().items():
            setattr(self, name, np.full((capacity, *shape), fill, dtype=dtype))
        self.priorities = SumTree(capacity)
        self.first_stacks: dict[int, np.ndarray] = {}  # slot -> full first observation, when its older frames are not zero
        self.position = 0  # next slot to write
        self.size = 0
        self.max_priority = 1.0
        self.next_episode_id = 0
        # Per env: the slot of its last stored step (or -1) and whether that step ended its episode.
        self.stream_last_slot = np.zeros(0, dtype=np.int64)
        self.stream_episode = np.zeros(0, dtype=np.int64)
        self.stream_step = np.zeros(0, dtype=np.int64)

    # --- writing ---------------------------------------------------------------------------------

    def start_new_episodes(self, n_envs: int) -> None:
        """Forget where each env's episode stands: the next step of every env starts a new episode.

        Called when the envs are reset outside of the buffer's view (new env, ``reset_num_timesteps``). ``n_envs`` is
        the number of streams: one per env of the vector env, or, for distributed actors, one per env of every actor
        (``add(..., streams=...)`` says which streams a step continues).
        """
        self.stream_last_slot = np.full(n_envs, -1, dtype=np.int64)
        self.stream_episode = np.full(n_envs, -1, dtype=np.int64)
        self.stream_step = np.full(n_envs, -1, dtype=np.int64)

    def add(
        self,
        observations: ObservationBatch,
        actions: np.ndarray,
        rewards: np.ndarray,
        policies: np.ndarray,
        root_values: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_values: Optional[np.ndarray] = None,
        keep: Optional[np.ndarray] = None,
        streams: Optional[np.ndarray] = None,
        stored_at_update: int = 0,
    ) -> np.ndarray:
        """Store one step of every env: the observation searched from and what followed.

        :param observations: [n_envs, *obs_shape] (or a dict of those)
        :param actions: [n_envs] actions taken
        :param rewards: [n_envs] rewards received
        :param policies: [n_envs, A] the search's policy targets (PUCT: root visit distributions)
        :param root_values: [n_envs] root search values
        :param terminated: [n_envs] bool, the step ended the episode in a terminal state
        :param truncated: [n_envs] bool, the step ended the episode by a time limit (not terminated)
        :param final_values: [n_envs] value of the state after a truncation (read where ``truncated``)
        :param keep: [n_envs] bool, the envs whose step to store (default: all); an env whose step is left out
            starts a new episode with its next stored step
        :param streams: [n_envs] the stream (the sequence of steps of one env) each row continues, for a replay fed
            by several vector envs (distributed actors: see :meth:`start_new_episodes`); default: row ``i`` is
            stream ``i``, and a new number of envs starts new episodes in every stream
        :param stored_at_update: the learner's number of gradient steps so far (a step's age in the replay, which
            reanalyse's off-policy correction reads, is counted from it)
        :return: [number of steps stored] the slots written
        """
        if not (is_int(stored_at_update) and stored_at_update >= 0):
            raise ValueError(
                f"stored_at_update must be an integer >= 0 (a number of gradient steps), got {stored_at_update!r}"
            )
        n_envs = len(actions)
        if streams is None:
            if len(self.stream_last_slot) != n_envs:
                self.start_new_episodes(n_envs)
            streams = np.arange(n_envs)
        else:
            streams = self._check_streams(streams, n_envs)
        rows = np.arange(n_envs) if keep is None else np.flatnonzero(keep)
        if len(rows) < n_envs:
            self.end_episodes(np.delete(streams, rows))
            observations = _rows(observations, rows)
            actions, rewards, policies, root_values, terminated, truncated = (
                np.asarray(array)[rows] for array in (actions, rewards, policies, root_values, terminated, truncated)
            )
            final_values = None if final_values is None else np.asarray(final_values)[rows]
        envs = streams[rows]
        slots = (self.position + np.arange(len(envs))) % self.capacity
        self._forget(slots)

        new_episode = self.stream_episode[envs] < 0
        episode = np.where(new_episode, self.next_episode_id + np.cumsum(new_episode) - 1, self.stream_episode[envs])
        self.next_episode_id += int(new_episode.sum())
        step = np.where(new_episode, 0, self.stream_step[envs] + 1)
        previous = np.where(new_episode, -1, self.stream_last_slot[envs])

        self._write_observations(slots, observations, new_episode, previous)
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.policies[slots] = policies
        self.root_values[slots] = root_values
        self.terminated[slots] = terminated
        self.truncated[slots] = np.logical_and(truncated, np.logical_not(terminated))
        self.final_values[slots] = 0.0 if final_values is None else np.where(self.truncated[slots], final_values, 0.0)
        self.stored_at_update[slots] = stored_at_update
        self.episode_id[slots] = episode
        self.step_in_episode[slots] = step
        self.previous_slot[slots] = previous
        self.next_slot[slots] = -1
        linked = previous >= 0
        self.next_slot[previous[linked]] = slots[linked]
        self.priorities.update(slots, np.full(len(slots), self.max_priority))

        done = np.logical_or(terminated, truncated)
        self.stream_last_slot[envs] = slots
        self.stream_episode[envs] = np.where(done, -1, episode)
        self.stream_step[envs] = np.where(done, -1, step)
        self.position = int((self.position + len(slots)) % self.capacity)
        self.size = min(self.size + len(slots), self.capacity)
        return slots

    def end_episodes(self, streams: np.ndarray) -> None:
        """The next stored step of each of ``streams`` starts a new episode (its env was reset, or its actor lost)."""
        self.stream_last_slot[streams] = -1
        self.stream_episode[streams] = -1
        self.stream_step[streams] = -1

    def _check_streams(self, streams: np.ndarray, n_envs: int) -> np.ndarray:
        streams = np.asarray(streams, dtype=np.int64)
        n_streams = len(self.stream_last_slot)
        in_range = streams.shape == (n_envs,) and bool(np.all((streams >= 0) & (streams < n_streams)))
        if not in_range or len(np.unique(streams)) != n_envs:
            raise ValueError(
                f"streams must be {n_envs} distinct stream indices in [0, {n_streams}) (start_new_episodes sets the "
                f"number of streams), got {streams.tolist()}"
            )
        return streams

    def _forget(self, slots: np.ndarray) -> None:
        """Before overwriting ``slots``: drop their side-table entries and the stacks that need them."""
        for slot in slots[np.isin(slots, list(self.first_stacks))] if self.first_stacks else ():
            del self.first_stacks[int(slot)]
        if self.frame_stack > 1:
            # Steps whose stacks reach back into the overwritten slots can no longer be rebuilt: never sample them.
            written = slots[self.step_in_episode[slots] >= 0]
            stale = np.empty((len(written), self.frame_stack - 1), dtype=np.int64)
            targets.successors(self.next_slot, self.episode_id, self.step_in_episode, written.astype(np.int64),
                        self.frame_stack - 1, stale)  # fmt: skip
            stale = stale[stale >= 0]
            self.priorities.update(stale, np.zeros(len(stale)))

    def _write_observations(self, slots, observations, new_episode, previous) -> None:
        if isinstance(self.observation_space, spaces.Dict):
            for key, stored in self.observations.items():
                stored[slots] = observations[key]
            return
        observations = np.asarray(observations)
        if self.frame_stack == 1:
            self.observations[""][slots] = observations
            return
        channels = observations.shape[1] // self.frame_stack
        self.observations[""][slots] = observations[:, -channels:]
        older = observations[:, :-channels]
        for env in np.flatnonzero(new_episode):
            if older[env].any():
                self.first_stacks[int(slots[env])] = observations[env].copy()
        continuing = np.flatnonzero(~new_episode)
        if len(continuing):
            expected = np.empty((len(continuing), *observations.shape[1:]), dtype=observations.dtype)
            self._stack(previous[continuing], expected)
            if not np.array_equal(expected[:, channels:], older[continuing]):
                raise ValueError(
                    f"Observations are not frame stacks of {self.frame_stack} frames along their first axis: the older "
                    "frames of a step differ from the newer frames of the step before. Use frame_stack=1 for this env."
                )

    # --- reading ---------------------------------------------------------------------------------

    def _stack(self, slots: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Rebuild the frame stacks [len(slots), stack * C, H, W] of ``slots``."""
        frames = self.observations[""]
        targets.stack_frames(frames.reshape(len(frames), -1), self.previous_slot, self.episode_id, self.step_in_episode,
                      np.asarray(slots, np.int64), self.frame_stack, out.reshape(len(out), -1))  # fmt: skip
        for b, slot in enumerate(slots):
            if self.first_stacks:
                self._patch_first_stack(int(slot), out[b])
        return out

    def _patch_first_stack(self, slot: int, stack: np.ndarray) -> None:
        """Replace the zero padding of ``stack`` by the stored first stack of its episode, if there is one."""
        steps_back = 0
        while slot >= 0 and self.step_in_episode[slot] > 0 and steps_back < self.frame_stack:
            slot, steps_back = int(self.previous_slot[slot]), steps_back + 1
        first = self.first_stacks.get(slot) if slot >= 0 and self.step_in_episode[slot] == 0 else None
        if first is not None and steps_back < self.frame_stack:
            channels = stack.shape[0] // self.frame_stack
            padding = (self.frame_stack - 1 - steps_back) * channels
            stack[:padding] = first[steps_back * channels : steps_back * channels + padding]

    def observations_at(self, slots: np.ndarray) -> ObservationBatch:
        """The observations [len(slots), *obs_shape] the search saw at ``slots`` (stacks rebuilt)."""
        slots = np.asarray(slots, np.int64)
        if isinstance(self.observation_space, spaces.Dict):
            return {key: stored[slots] for key, stored in self.observations.items()}
        if self.frame_stack == 1:
            return self.observations[""][slots]
        out = np.empty((len(slots), *self.observation_space.shape), dtype=self.observation_space.dtype)
        return self._stack(slots, out)

    def sample(
        self,
        batch_size: int,
        num_unroll_steps: int,
        td_steps: int,
        beta: float,
        rng: np.random.Generator,
        with_next_observations: bool = False,
        with_bootstrap_observations: bool = False,
    ) -> ReplaySample:
        """``batch_size`` slots by priority, with importance weights and the targets of their unrolls: everything a
        gradient step needs (the observations that follow, for a consistency loss, and those that the value targets
        bootstrap from, for a target network, if asked)."""
        if self.size == 0 or self.priorities.total <= 0:
            raise RuntimeError("Cannot sample from an empty replay buffer")
        slots = self.priorities.sample(batch_size, rng)
        probabilities = self.priorities.get(slots) / self.priorities.total
        weights = (self.size * probabilities) ** (-beta)
        sample = self.unroll(slots, num_unroll_steps, td_steps, rng, with_next_observations)
        if with_bootstrap_observations:
            stored = sample.bootstrap_slot[sample.bootstrap_slot >= 0]
            sample = sample._replace(bootstrap_observations=self.observations_at(stored))
        return sample._replace(weights=(weights / weights.max()).astype(np.float32))

    def unroll(
        self,
        slots: np.ndarray,
        num_unroll_steps: int,
        td_steps: int,
        rng: np.random.Generator,
        with_next_observations: bool = False,
    ) -> ReplaySample:
        """The ``num_unroll_steps``-step unrolls from ``slots`` [B] with their targets (weights 1)."""
        slots = np.asarray(slots, np.int64)
        batch_size = len(slots)
        shape = (batch_size, num_unroll_steps + 1)
        actions = np.empty((batch_size, num_unroll_steps), np.int64)
        rewards, reward_mask = np.empty(actions.shape, np.float32), np.empty(actions.shape, np.float32)
        partial, discount, bootstrap = np.empty(shape, np.float32), np.empty(shape, np.float32), np.empty(shape, np.float32)
        bootstrap_slot, value_mask = np.empty(shape, np.int64), np.empty(shape, np.float32)
        policy_slot, next_slot = np.empty(shape, np.int64), np.empty(actions.shape, np.int64)
        random_actions = rng.integers(self.num_actions, size=actions.shape)
        targets.unroll_targets(slots, num_unroll_steps, td_steps, self.gamma, self.actions, self.rewards, self.root_values,
                        self.final_values, self.terminated, self.truncated, self.next_slot, self.episode_id,
                        self.step_in_episode, random_actions, actions, rewards, reward_mask, partial, discount, bootstrap,
                        bootstrap_slot, value_mask, policy_slot, next_slot)  # fmt: skip

        policy_mask = (policy_slot >= 0).astype(np.float32)
        next_observations = next_mask = None
        if with_next_observations:
            next_mask = (next_slot >= 0).astype(np.float32)
            next_observations = self._observations_or_zeros(next_slot)
        return ReplaySample(
            observations=self.observations_at(slots),
            actions=actions,
            reward_targets=rewards,
            reward_mask=reward_mask,
            value_partial=partial,
            bootstrap_discount=discount,
            bootstrap_value=bootstrap,
            bootstrap_slot=bootstrap_slot,
            value_mask=value_mask,
            policy_targets=self.policies[np.maximum(policy_slot, 0)] * policy_mask[..., None],
            policy_mask=policy_mask,
            root_values=self.root_values[slots],
            weights=np.ones(batch_size, np.float32),
            slots=slots,
            unroll_slots=policy_slot,
            next_observations=next_observations,
            next_observation_mask=next_mask,
        )

    def n_step_returns(self, slots: np.ndarray, td_steps: np.ndarray) -> NStepReturns:
        """The ``td_steps[i]``-step return from each written slot ``slots[i]`` [M], as the value targets of
        :meth:`unroll` compute it (for horizons that differ from slot to slot)."""
        slots, td_steps = np.asarray(slots, np.int64), np.asarray(td_steps, np.int64)
        written = (slots >= 0) & (slots < self.capacity)
        if slots.shape != td_steps.shape or slots.ndim != 1 or not (written.all() and (self.episode_id[slots] >= 0).all()):
            raise ValueError(f"n_step_returns takes written slots [M] and their horizons [M], got {slots} and {td_steps}")
        if (td_steps < 1).any():
            raise ValueError(f"td_steps must be >= 1, got {td_steps}")
        returns = NStepReturns(*(np.empty(len(slots), dtype) for dtype in (np.float32, np.float32, np.float32, np.int64)))
        targets.n_step_returns(slots, td_steps, self.gamma, self.rewards, self.root_values, self.final_values,
                               self.terminated, self.truncated, self.next_slot, self.episode_id, self.step_in_episode,
                               *returns)  # fmt: skip
        return returns

    def _observations_or_zeros(self, slots: np.ndarray) -> ObservationBatch:
        """Observations at ``slots`` [B, K] (zeros where the slot is -1), shaped [B, K, *obs_shape]."""
        flat = slots.reshape(-1)
        observations = self.observations_at(np.maximum(flat, 0))

        def shaped(array: np.ndarray) -> np.ndarray:
            array = array.copy()
            array[flat < 0] = 0
            return array.reshape(*slots.shape, *array.shape[1:])

        if isinstance(observations, dict):
            return {key: shaped(value) for key, value in observations.items()}
        return shaped(observations)

    def update_priorities(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of ``slots`` from new errors (``|search value - target|``), raised to ``alpha``."""
        priorities = (np.abs(np.asarray(priorities, np.float64)) + self.priority_epsilon) ** self.alpha
        self.priorities.update(slots, priorities)
        self.max_priority = max(self.max_priority, float(priorities.max()))
