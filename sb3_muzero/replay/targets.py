"""The replay's Numba kernels: walking episodes through the slot links, n-step value targets, unroll targets and
frame stacks (see :mod:`sb3_muzero.replay.buffer` for the layout and the targets they compute)."""

import numba
import numpy as np

from sb3_muzero.common.jit import JIT_OPTIONS


@numba.njit(**JIT_OPTIONS)
def slot_after(next_slot, episode_id, step_in_episode, slot, steps):
    """The slot ``steps`` steps after ``slot`` in its episode, or -1 if not stored (yet, or any more)."""
    for _ in range(steps):
        following = next_slot[slot]
        if following < 0:
            return -1
        if episode_id[following] != episode_id[slot] or step_in_episode[following] != step_in_episode[slot] + 1:
            return -1
        slot = following
    return slot


@numba.njit(**JIT_OPTIONS)
def n_step_return(slot, td_steps, gamma, rewards, root_values, final_values, terminated, truncated, next_slot,
                   episode_id, step_in_episode):  # fmt: skip
    """(discounted reward sum, bootstrap discount, bootstrap value, bootstrap slot or -1) of the n-step return at ``slot``."""
    partial = 0.0
    discount = 1.0
    for _ in range(td_steps):
        following = -1
        if not terminated[slot] and not truncated[slot]:
            following = slot_after(next_slot, episode_id, step_in_episode, slot, 1)
            if following < 0:  # the newest stored step of a running episode: bootstrap from it
                return partial, discount, root_values[slot], slot
        partial += discount * rewards[slot]
        discount *= gamma
        if terminated[slot]:
            return partial, 0.0, 0.0, -1
        if truncated[slot]:
            return partial, discount, final_values[slot], -1
        slot = following
    return partial, discount, root_values[slot], slot


@numba.njit(**JIT_OPTIONS)
def n_step_returns(slots, td_steps, gamma, rewards, root_values, final_values, terminated, truncated, next_slot,
                   episode_id, step_in_episode, out_partial, out_discount, out_bootstrap,
                   out_bootstrap_slot) -> None:  # fmt: skip
    """:func:`n_step_return` of each stored slot ``slots[i]`` with its own horizon ``td_steps[i]``, into the outputs [M]."""
    for i in range(slots.shape[0]):
        out_partial[i], out_discount[i], out_bootstrap[i], out_bootstrap_slot[i] = n_step_return(
            slots[i], td_steps[i], gamma, rewards, root_values, final_values, terminated, truncated, next_slot,
            episode_id, step_in_episode,
        )  # fmt: skip


# States of an unroll step that has no stored slot.
UNKNOWN = -1  # past a truncation's final state, or past the newest stored step: no target
ABSORBING = -2  # past a termination: reward 0, value 0
AFTER_TRUNCATION = -3  # the state a truncation left: its value is the stored final value


@numba.njit(**JIT_OPTIONS)
def unroll_targets(start_slots, num_unroll_steps, td_steps, gamma, actions, rewards, root_values, final_values,
                    terminated, truncated, next_slot, episode_id, step_in_episode, random_actions,
                    out_actions, out_reward, out_reward_mask, out_partial, out_discount, out_bootstrap, out_bootstrap_slot,
                    out_value_mask, out_policy_slot, out_next_slot) -> None:  # fmt: skip
    """Targets of every unroll step of every sampled slot (see the module docstring).

    Unroll step ``k`` is either a stored slot (>= 0) or one of the states ``UNKNOWN``, ``ABSORBING``,
    ``AFTER_TRUNCATION``; the transition to step ``k + 1`` follows from it.
    """
    for b in range(start_slots.shape[0]):
        state = start_slots[b]
        truncated_slot = -1
        for k in range(num_unroll_steps + 1):
            partial, discount, bootstrap, bootstrap_slot, value_mask = 0.0, 0.0, 0.0, -1, 0.0
            if state >= 0:
                partial, discount, bootstrap, bootstrap_slot = n_step_return(
                    state, td_steps, gamma, rewards, root_values, final_values, terminated, truncated, next_slot,
                    episode_id, step_in_episode,
                )  # fmt: skip
                value_mask = 1.0
            elif state == ABSORBING:
                value_mask = 1.0
            elif state == AFTER_TRUNCATION:
                discount, bootstrap, value_mask = 1.0, final_values[truncated_slot], 1.0
            out_partial[b, k] = partial
            out_discount[b, k] = discount
            out_bootstrap[b, k] = bootstrap
            out_bootstrap_slot[b, k] = bootstrap_slot
            out_value_mask[b, k] = value_mask
            out_policy_slot[b, k] = state if state >= 0 else -1
            if k > 0:
                out_next_slot[b, k - 1] = state if state >= 0 else -1
            if k == num_unroll_steps:
                break

            # The transition from unroll step k to k + 1.
            if state >= 0:
                out_actions[b, k] = actions[state]
                out_reward[b, k] = rewards[state]
                out_reward_mask[b, k] = 1.0
                if terminated[state]:
                    state = ABSORBING
                elif truncated[state]:
                    truncated_slot, state = state, AFTER_TRUNCATION
                else:
                    following = slot_after(next_slot, episode_id, step_in_episode, state, 1)
                    state = following if following >= 0 else UNKNOWN
            else:
                out_actions[b, k] = random_actions[b, k]
                out_reward[b, k] = 0.0
                out_reward_mask[b, k] = 1.0 if state == ABSORBING else 0.0
                if state == AFTER_TRUNCATION:
                    state = UNKNOWN


@numba.njit(**JIT_OPTIONS)
def successors(next_slot, episode_id, step_in_episode, slots, steps, out) -> None:
    """out[i, j] = the slot j + 1 steps after slots[i] in its episode, or -1.  out: [len(slots), steps]"""
    for i in range(slots.shape[0]):
        for j in range(steps):
            out[i, j] = slot_after(next_slot, episode_id, step_in_episode, slots[i], j + 1)


@numba.njit(**JIT_OPTIONS)
def stack_frames(frames, previous_slot, episode_id, step_in_episode, slots, stack, out) -> None:
    """out[b] = the ``stack`` newest frames up to ``slots[b]``, oldest first, zeros before the episode start.

    ``frames``: [capacity, F] (one frame per row, flattened); ``out``: [B, stack * F].
    """
    frame_size = frames.shape[1]
    for b in np.argsort(slots):  # in slot order: neighbouring reads, far fewer TLB and cache misses than random order
        slot = slots[b]
        for i in range(stack):  # i = 0 is the newest frame
            start = (stack - 1 - i) * frame_size
            if slot >= 0 and step_in_episode[slot] >= 0:
                out[b, start : start + frame_size] = frames[slot]
                if step_in_episode[slot] == 0:
                    slot = -1
                else:
                    earlier = previous_slot[slot]
                    valid = earlier >= 0 and episode_id[earlier] == episode_id[slot]
                    valid = valid and step_in_episode[earlier] == step_in_episode[slot] - 1
                    slot = earlier if valid else -1
            else:
                out[b, start : start + frame_size] = 0
