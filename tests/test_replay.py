"""The MuZero replay: targets against a slow per-episode reference, priorities, eviction, frame stacks, memory."""

import numpy as np
import pytest
from gymnasium import spaces

from sb3_muzero.replay import MuZeroReplayBuffer, SumTree

GAMMA = 0.9


class EpisodeLog:
    """What was added, per env and episode, to compute the expected targets the slow way."""

    def __init__(self, n_envs: int):
        self.episodes: list[list[dict]] = []
        self.current = [None] * n_envs
        self.slot_to_step: dict[int, tuple[int, int]] = {}

    def add(self, env: int, slot: int, step: dict) -> None:
        if self.current[env] is None:
            self.episodes.append([])
            self.current[env] = len(self.episodes) - 1
        episode = self.episodes[self.current[env]]
        self.slot_to_step[slot] = (self.current[env], len(episode))
        episode.append(step)
        if step["terminated"] or step["truncated"]:
            self.current[env] = None

    def cut(self, env: int) -> None:
        """A step of ``env`` was left out: its episode stops here, still running, and the next step starts another."""
        self.current[env] = None

    def ended(self, episode: list[dict]) -> bool:
        return episode[-1]["terminated"] or episode[-1]["truncated"]

    def n_step_return(self, episode: list[dict], u: int, td_steps: int) -> float:
        value = 0.0
        for i in range(td_steps):
            step = episode[u + i]
            if u + i == len(episode) - 1 and not self.ended(episode):
                return value + GAMMA**i * step["root_value"]
            value += GAMMA**i * step["reward"]
            if step["terminated"]:
                return value
            if step["truncated"]:
                return value + GAMMA ** (i + 1) * step["final_value"]
        return value + GAMMA**td_steps * episode[u + td_steps]["root_value"]

    def expected(self, slot: int, num_unroll_steps: int, td_steps: int) -> dict:
        episode_index, start = self.slot_to_step[slot]
        episode = self.episodes[episode_index]
        last = episode[-1]
        out = {key: [] for key in ("value", "value_mask", "policy_mask", "reward", "reward_mask", "action")}
        for k in range(num_unroll_steps + 1):
            u = start + k
            if u < len(episode):
                value, value_mask, policy_mask = self.n_step_return(episode, u, td_steps), 1.0, 1.0
            elif last["terminated"]:
                value, value_mask, policy_mask = 0.0, 1.0, 0.0
            elif last["truncated"] and u == len(episode):
                value, value_mask, policy_mask = last["final_value"], 1.0, 0.0
            else:
                value, value_mask, policy_mask = 0.0, 0.0, 0.0
            out["value"].append(value)
            out["value_mask"].append(value_mask)
            out["policy_mask"].append(policy_mask)
            if k < num_unroll_steps:
                if u < len(episode):
                    out["reward"].append(episode[u]["reward"])
                    out["reward_mask"].append(1.0)
                    out["action"].append(episode[u]["action"])
                else:
                    out["reward"].append(0.0)
                    out["reward_mask"].append(1.0 if last["terminated"] else 0.0)
                    out["action"].append(None)
        return out


def fill(buffer: MuZeroReplayBuffer, n_envs: int, num_steps: int, rng: np.random.Generator, end_probability=0.15,
         skip_probability=0.0, streams=None, log=None):  # fmt: skip
    """Add random steps with random terminations and truncations (and, at ``skip_probability``, steps left out of the
    buffer with ``keep``); returns the log (``log``, if given, with the steps of env ``i`` logged as stream
    ``streams[i]``, and written to the buffer's stream ``streams[i]``)."""
    log = EpisodeLog(n_envs) if log is None else log
    stream = np.arange(n_envs) if streams is None else np.asarray(streams)
    num_actions = buffer.num_actions
    for _ in range(num_steps):
        ends = rng.random(n_envs) < end_probability
        terminated = ends & (rng.random(n_envs) < 0.5)
        truncated = ends & ~terminated
        step = dict(
            observations=rng.standard_normal((n_envs, 3)).astype(np.float32),
            actions=rng.integers(num_actions, size=n_envs),
            rewards=rng.standard_normal(n_envs).astype(np.float32),
            policies=rng.dirichlet(np.ones(num_actions), size=n_envs).astype(np.float32),
            root_values=rng.standard_normal(n_envs).astype(np.float32),
            terminated=terminated,
            truncated=truncated,
            final_values=rng.standard_normal(n_envs).astype(np.float32),
        )
        keep = rng.random(n_envs) >= skip_probability if skip_probability > 0 else None
        slots = buffer.add(**step, keep=keep, streams=streams)
        for env in np.flatnonzero(keep is not None and ~keep):
            log.cut(stream[env])
        for env, slot in zip(np.arange(n_envs) if keep is None else np.flatnonzero(keep), slots):
            log.add(stream[env], int(slot), {
                "action": int(step["actions"][env]), "reward": float(step["rewards"][env]),
                "root_value": float(step["root_values"][env]), "final_value": float(step["final_values"][env]),
                "terminated": bool(terminated[env]), "truncated": bool(truncated[env]),
            })  # fmt: skip
    return log


def make_buffer(size=1000, num_actions=3, **kwargs) -> MuZeroReplayBuffer:
    space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    return MuZeroReplayBuffer(size, space, spaces.Discrete(num_actions), gamma=GAMMA, **kwargs)


@pytest.mark.parametrize(
    "n_envs, num_unroll_steps, td_steps, skip_probability", [(1, 5, 3, 0.0), (3, 5, 10, 0.0), (4, 2, 1, 0.0), (3, 4, 3, 0.1)]
)
def test_unroll_targets_match_the_per_episode_reference(n_envs, num_unroll_steps, td_steps, skip_probability):
    rng = np.random.default_rng(n_envs)
    buffer = make_buffer(size=600)
    log = fill(buffer, n_envs, 400 // n_envs, rng, skip_probability=skip_probability)  # ends with episodes running
    assert_targets_match_the_reference(buffer, log, num_unroll_steps, td_steps, rng)


def assert_targets_match_the_reference(buffer, log, num_unroll_steps, td_steps, rng):
    slots = np.arange(buffer.size)
    sample = buffer.unroll(slots, num_unroll_steps, td_steps, rng)
    for i, slot in enumerate(slots):
        expected = log.expected(int(slot), num_unroll_steps, td_steps)
        np.testing.assert_allclose(sample.value_targets[i], expected["value"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(sample.value_mask[i], expected["value_mask"])
        np.testing.assert_array_equal(sample.policy_mask[i], expected["policy_mask"])
        np.testing.assert_allclose(sample.reward_targets[i], expected["reward"], rtol=1e-6)
        np.testing.assert_array_equal(sample.reward_mask[i], expected["reward_mask"])
        known = [k for k, action in enumerate(expected["action"]) if action is not None]
        np.testing.assert_array_equal(sample.actions[i, known], [expected["action"][k] for k in known])
        episode, start = log.slot_to_step[int(slot)]
        positions = [log.slot_to_step[int(u)] if u >= 0 else None for u in sample.unroll_slots[i]]
        assert positions == [(episode, start + k) if expected["policy_mask"][k] else None for k in range(len(positions))]
    assert (sample.policy_targets[sample.policy_mask == 0] == 0).all()
    assert sample.value_mask.min() == 0 and sample.reward_mask.min() == 0  # the grid covers masked steps


def test_n_step_returns_with_a_horizon_per_slot_match_the_per_episode_reference():
    rng = np.random.default_rng(5)
    buffer = make_buffer(size=300)
    log = fill(buffer, 3, 100, rng)
    slots = np.arange(buffer.size)
    horizons = rng.integers(1, 12, size=len(slots))
    returns = buffer.n_step_returns(slots, horizons)
    for slot, horizon, partial, discount, value in zip(slots, horizons, *returns[:3]):
        episode, start = log.slot_to_step[int(slot)]
        expected = log.n_step_return(log.episodes[episode], start, int(horizon))
        assert partial + discount * value == pytest.approx(expected, rel=1e-5, abs=1e-5)
    same = buffer.unroll(slots, 0, 4, rng)
    fixed = buffer.n_step_returns(slots, np.full(len(slots), 4))
    np.testing.assert_array_equal(fixed.bootstrap_slot, same.bootstrap_slot[:, 0])
    np.testing.assert_array_equal(fixed.partial, same.value_partial[:, 0])
    with pytest.raises(ValueError, match="written slots"):
        buffer.n_step_returns(np.array([buffer.size]), np.array([3]))


def test_writers_that_take_turns_continue_their_own_streams():
    """Two actors' chunks (3 and 2 envs, 1-4 steps each) written in random turns: every env's episodes go on in its own
    stream, so the targets are those of the per-episode reference, and a step left out cuts only its own stream."""
    rng = np.random.default_rng(7)
    buffer = make_buffer(size=600)
    buffer.start_new_episodes(5)
    log = EpisodeLog(5)
    actor_streams = [np.array([0, 1, 2]), np.array([3, 4])]
    while buffer.size < 400:
        streams = actor_streams[rng.integers(2)]
        fill(buffer, len(streams), int(rng.integers(1, 5)), rng, skip_probability=0.05, streams=streams, log=log)
    assert_targets_match_the_reference(buffer, log, 4, 3, rng)
    for streams in ([0, 5], [1, 1], [0]):
        with pytest.raises(ValueError, match="streams must be 2 distinct stream indices in \\[0, 5\\)"):
            buffer.add(np.zeros((2, 3), np.float32), np.zeros(2, int), np.zeros(2), np.full((2, 3), 1 / 3), np.zeros(2),
                       np.zeros(2, bool), np.zeros(2, bool), streams=np.array(streams))  # fmt: skip


def test_hand_computed_targets_across_a_termination():
    """Rewards 1, 2, 3 then termination; gamma 0.9, two-step returns, three-step unroll from the first step."""
    buffer = make_buffer()
    for t, (reward, value) in enumerate([(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]):
        buffer.add(np.zeros((1, 3)), np.array([t]), np.array([reward]), np.full((1, 3), 1 / 3), np.array([value]),
                   np.array([t == 2]), np.array([False]))  # fmt: skip
    sample = buffer.unroll(np.array([0]), 3, 2, np.random.default_rng(0))
    np.testing.assert_allclose(sample.value_targets[0], [1 + 0.9 * 2 + 0.81 * 30, 2 + 0.9 * 3, 3, 0], rtol=1e-6)
    np.testing.assert_array_equal(sample.value_mask[0], [1, 1, 1, 1])  # the step after termination is absorbing
    np.testing.assert_array_equal(sample.policy_mask[0], [1, 1, 1, 0])
    np.testing.assert_allclose(sample.reward_targets[0], [1, 2, 3])
    np.testing.assert_array_equal(sample.actions[0], [0, 1, 2])


def test_hand_computed_targets_after_a_truncation_bootstrap_the_final_value():
    buffer = make_buffer()
    buffer.add(np.zeros((1, 3)), np.array([1]), np.array([1.0]), np.full((1, 3), 1 / 3), np.array([5.0]),
               np.array([False]), np.array([False]))  # fmt: skip
    buffer.add(np.zeros((1, 3)), np.array([2]), np.array([2.0]), np.full((1, 3), 1 / 3), np.array([6.0]),
               np.array([False]), np.array([True]), final_values=np.array([100.0]))  # fmt: skip
    sample = buffer.unroll(np.array([0]), 3, 5, np.random.default_rng(0))
    np.testing.assert_allclose(sample.value_targets[0, :3], [1 + 0.9 * 2 + 0.81 * 100, 2 + 0.9 * 100, 100], rtol=1e-6)
    np.testing.assert_array_equal(sample.value_mask[0], [1, 1, 1, 0])  # after the final state nothing is known
    np.testing.assert_array_equal(sample.reward_mask[0], [1, 1, 0])


def test_sampling_frequencies_follow_priorities_and_weights_correct_for_them():
    buffer = make_buffer(size=8, alpha=1.0)
    fill(buffer, 1, 8, np.random.default_rng(0), end_probability=0.0)
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 1.0, 8.0])
    buffer.update_priorities(np.arange(8), priorities)
    rng = np.random.default_rng(1)
    counts = np.zeros(8)
    for _ in range(400):
        sample = buffer.sample(64, 1, 1, beta=0.5, rng=rng)
        counts += np.bincount(sample.slots, minlength=8)
    expected = priorities / priorities.sum()
    chi_square = ((counts - expected * counts.sum()) ** 2 / (expected * counts.sum())).sum()
    assert chi_square < 24.3  # 99.9% quantile with 7 degrees of freedom
    sample = buffer.sample(64, 1, 1, beta=0.5, rng=rng)
    probability = buffer.priorities.get(sample.slots) / buffer.priorities.total
    expected_weights = (8 * probability) ** -0.5
    np.testing.assert_allclose(sample.weights, expected_weights / expected_weights.max(), rtol=1e-5)


def test_alpha_zero_samples_uniformly_and_new_steps_get_the_largest_priority():
    buffer = make_buffer(size=4, alpha=0.0)
    fill(buffer, 1, 3, np.random.default_rng(0), end_probability=0.0)
    buffer.update_priorities(np.arange(3), np.array([100.0, 1.0, 0.01]))
    np.testing.assert_allclose(buffer.priorities.get(np.arange(3)), 1.0)
    buffer = make_buffer(size=4, alpha=1.0)
    fill(buffer, 1, 2, np.random.default_rng(0), end_probability=0.0)
    buffer.update_priorities(np.arange(2), np.array([7.0, 1.0]))
    fill(buffer, 1, 1, np.random.default_rng(0), end_probability=0.0)
    assert buffer.priorities.get(np.array([2]))[0] == pytest.approx(7.0)


def test_oldest_steps_are_evicted_first_and_unrolls_never_cross_into_newer_data():
    buffer = make_buffer(size=10)
    log = fill(buffer, 2, 30, np.random.default_rng(0), end_probability=0.0)  # one long episode per env
    assert buffer.size == 10
    slots = np.arange(10)
    stored_steps = sorted(log.slot_to_step[int(s)][1] for s in slots)
    assert stored_steps == [25, 25, 26, 26, 27, 27, 28, 28, 29, 29]  # the newest five steps of each env
    sample = buffer.unroll(slots, 5, 3, np.random.default_rng(0))
    # The newest step of each env has its own transition, but nothing after it is known yet.
    newest = [i for i, s in enumerate(slots) if log.slot_to_step[int(s)][1] == 29]
    assert (sample.reward_mask[newest, 0] == 1).all() and (sample.reward_mask[newest, 1:] == 0).all()
    assert (sample.policy_mask[newest, 1:] == 0).all() and (sample.value_mask[newest, 1:] == 0).all()
    np.testing.assert_allclose(sample.value_targets[newest, 0], buffer.root_values[slots[newest]])


def test_changing_the_number_of_envs_starts_new_episodes():
    buffer = make_buffer(size=100)
    fill(buffer, 2, 5, np.random.default_rng(0), end_probability=0.0)
    fill(buffer, 3, 5, np.random.default_rng(1), end_probability=0.0)
    sample = buffer.unroll(np.arange(buffer.size), 1, 1, np.random.default_rng(0))
    # The last steps of the 2-env episodes have no successor: the 3-env steps belong to new episodes.
    assert sample.reward_mask[[8, 9], 0].tolist() == [1.0, 1.0]
    assert sample.value_mask[[8, 9], 1].tolist() == [0.0, 0.0]
    assert len(set(buffer.episode_id[:25].tolist())) == 5


def frame_stacked_steps(rng, n_envs, num_steps, stack=4, nonzero_first=False):
    """Observations as VecFrameStack gives them: [n_envs, stack, 6, 5] uint8, zero padding at episode starts."""
    stacks = np.zeros((n_envs, stack, 6, 5), np.uint8)
    episode_start = np.ones(n_envs, bool)
    for _ in range(num_steps):
        frames = rng.integers(1, 255, size=(n_envs, 1, 6, 5), dtype=np.uint8)
        stacks = np.where(episode_start[:, None, None, None], 0, stacks)
        if nonzero_first:
            stacks[episode_start] = rng.integers(1, 255, size=stacks[episode_start].shape, dtype=np.uint8)
        stacks = np.concatenate([stacks[:, 1:], frames], axis=1)
        done = rng.random(n_envs) < 0.2
        yield stacks.copy(), done
        episode_start = done


@pytest.mark.parametrize("nonzero_first", [False, True])
def test_frame_stacks_are_rebuilt_exactly_from_single_frames(nonzero_first):
    space = spaces.Box(0, 255, (4, 6, 5), np.uint8)
    buffer = MuZeroReplayBuffer(64, space, spaces.Discrete(2), gamma=GAMMA, frame_stack=4)
    assert buffer.observations[""].shape == (64, 1, 6, 5)
    rng = np.random.default_rng(0)
    added = {}
    for observations, done in frame_stacked_steps(rng, 3, 50, nonzero_first=nonzero_first):
        n = len(done)
        slots = buffer.add(
            observations, np.zeros(n, int), np.zeros(n), np.full((n, 2), 0.5), np.zeros(n), done, np.zeros(n, bool)
        )
        added.update({int(slot): observations[i] for i, slot in enumerate(slots)})
    live = np.flatnonzero(buffer.priorities.get(np.arange(64)) > 0)
    assert len(live) > 40
    rebuilt = buffer.observations_at(live)
    for slot, observation in zip(live, rebuilt):
        np.testing.assert_array_equal(observation, added[int(slot)])


def test_observations_that_are_not_frame_stacks_are_refused():
    space = spaces.Box(0, 255, (4, 6, 5), np.uint8)
    buffer = MuZeroReplayBuffer(64, space, spaces.Discrete(2), gamma=GAMMA, frame_stack=4)
    first, second = np.random.default_rng(0).integers(0, 255, size=(2, 1, 4, 6, 5), dtype=np.uint8)
    buffer.add(first, [0], [0.0], [[0.5, 0.5]], [0.0], [False], [False])
    with pytest.raises(ValueError, match="not frame stacks"):
        buffer.add(second, [0], [0.0], [[0.5, 0.5]], [0.0], [False], [False])


def test_an_atari_step_costs_at_most_1_1_frames_and_oversized_buffers_are_refused():
    space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    buffer = MuZeroReplayBuffer(1000, space, spaces.Discrete(18), gamma=0.997, frame_stack=4)
    assert buffer.bytes_per_step() <= 1.1 * 84 * 84
    arrays = [value for value in vars(buffer).values() if isinstance(value, np.ndarray) and len(value) == 1000]
    allocated = sum(array.nbytes for array in arrays) + buffer.observations[""].nbytes + buffer.priorities.tree.nbytes
    assert allocated / 1000 <= buffer.bytes_per_step()  # the estimate covers what is really allocated
    with pytest.raises(MemoryError, match="force_memory=True"):
        MuZeroReplayBuffer(10**12, space, spaces.Discrete(18), gamma=0.997, frame_stack=4)


def test_dict_observations_are_stored_per_key():
    space = spaces.Dict({"image": spaces.Box(0, 255, (2, 3), np.uint8), "vector": spaces.Box(-1, 1, (4,), np.float32)})
    buffer = MuZeroReplayBuffer(10, space, spaces.Discrete(2), gamma=GAMMA)
    observations = {"image": np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "vector": np.ones((2, 4), np.float32)}
    slots = buffer.add(observations, [0, 1], [0.0, 0.0], np.full((2, 2), 0.5), [0.0, 0.0], [False, False], [False, False])
    stored = buffer.observations_at(slots)
    np.testing.assert_array_equal(stored["image"], observations["image"])
    np.testing.assert_array_equal(stored["vector"], observations["vector"])


def test_sum_tree_total_and_proportional_lookup():
    tree = SumTree(5)
    tree.update(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == pytest.approx(10.0)
    masses = np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    slots = np.empty(len(masses), np.int64)
    from sb3_muzero.replay.sum_tree import _sum_tree_find

    _sum_tree_find(tree.tree, tree.leaf_offset, masses, slots)
    np.testing.assert_array_equal(slots, [0, 0, 2, 2, 3, 3, 4, 4])


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="buffer_size must be a positive integer"):
        make_buffer(size=-5)
    with pytest.raises(ValueError, match="frame_stack"):
        MuZeroReplayBuffer(10, spaces.Box(0, 1, (3,)), spaces.Discrete(2), gamma=GAMMA, frame_stack=4)
