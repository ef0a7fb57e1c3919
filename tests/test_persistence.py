"""A run is never lost: exact resumption, saves that are never half-written, damaged files refused untouched."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_muzero import CheckpointCallback, CorruptFileError, MuZero
from sb3_muzero.common.callbacks import find_checkpoints
from sb3_muzero.common.generators import generator_attributes
from sb3_muzero.replay import MuZeroReplayBuffer, load_replay, save_replay
from tests.helpers import SMALL, assert_same_parameters, assert_same_replay


@pytest.fixture(autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """Python's own SIGINT handler during each test: a shell that starts pytest in the background (``cmd &``,
    ``nohup``) leaves SIGINT ignored, and the Ctrl-C tests send it to this process."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
TOTAL_STEPS = 120
CHECKPOINT_STEPS = 60


class DropoutExtractor(BaseFeaturesExtractor):
    """Flatten then dropout: training draws from torch's generator, so resuming must restore it."""

    def __init__(self, observation_space: spaces.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.dropout = nn.Dropout(0.1)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.dropout(th.flatten(observations, 1))


# Gumbel MuZero with settings other than the defaults, so that a reload that lost them would show.
GUMBEL = dict(search_algorithm="gumbel", max_considered_actions=3, gumbel_c_visit=30.0, gumbel_c_scale=0.2,
              gumbel_min_q_range=0.5)  # fmt: skip
GUMBEL_KEYS = tuple(GUMBEL)
# Reanalyse of half of each batch, with the off-policy correction: one more reader of the replay's generator and ages.
REANALYSE = dict(reanalyse_ratio=0.5, reanalyse_age_per_td_step=2)


def make_run(**overrides) -> MuZero:
    """A run that uses every piece of state a resumption needs: CartPole cut at 15 steps (terminations and
    truncations, random starts from the envs' generators), schedules of learning rate, temperature and beta,
    fractional gradient steps, a target network, dropout."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=3, env_kwargs=dict(max_episode_steps=15))
    policy_kwargs = dict(SMALL["policy_kwargs"], features_extractor_class=DropoutExtractor)
    settings = {**SMALL, "policy_kwargs": policy_kwargs, **overrides}
    return MuZero("MlpPolicy", env, seed=1, learning_rate=LinearSchedule(1e-3, 0.0, 1.0), temperature_final=0.3,
                  prioritized_replay_beta=0.4, target_update_interval=5, **settings)  # fmt: skip


def assert_same_run(first: MuZero, second: MuZero) -> None:
    """Parameters, optimizer, replay, counters, envs and generators all bit-identical."""
    assert_same_parameters(first, second)
    assert_same_replay(first.replay_buffer, second.replay_buffer)
    for name in ("num_timesteps", "_n_updates", "_episode_num", "_pending_gradient_steps", "temperature"):
        assert getattr(first, name) == getattr(second, name), name
    np.testing.assert_array_equal(first._last_obs, second._last_obs)
    np.testing.assert_array_equal(first.env.get_attr("state"), second.env.get_attr("state"))
    assert first.env.unwrapped._seeds == second.env.unwrapped._seeds  # the seeds of the next reset()
    assert generator_attributes(first) == generator_attributes(second)
    assert {"search_rng", "replay_rng", "reanalyse_rng"} <= set(generator_attributes(first))
    for name in generator_attributes(first):
        assert getattr(first, name).bit_generator.state == getattr(second, name).bit_generator.state, name


RESUME_IN_A_NEW_PROCESS = """
import sys
import torch as th
from sb3_muzero import MuZero
model = MuZero.load(sys.argv[1], allow_unsafe_pickle=True)  # the envs come from the file (pickled: our own file)
model.load_replay_buffer(sys.argv[2])
model.learn(int(sys.argv[3]) - model.num_timesteps, reset_num_timesteps=False)
model.save(sys.argv[4], include=["env"])
model.save_replay_buffer(sys.argv[5])
"""


@pytest.mark.parametrize("settings", [{}, REANALYSE], ids=["stored_targets", "reanalyse"])
def test_a_run_resumed_from_a_checkpoint_in_a_new_process_is_bit_identical(tmp_path, settings):
    th.set_num_threads(1)
    uninterrupted = make_run(**settings).learn(TOTAL_STEPS)

    checkpointed = make_run(**settings).learn(
        TOTAL_STEPS, callback=CheckpointCallback(CHECKPOINT_STEPS // 2, str(tmp_path), save_env=True)
    )
    assert_same_run(uninterrupted, checkpointed)  # saving does not disturb the run

    # As if the run had died after the checkpoint: a new process resumes from the files alone
    checkpoint = next(c for c in find_checkpoints(str(tmp_path)) if c.num_timesteps == CHECKPOINT_STEPS)
    final_model, final_replay = tmp_path / "resumed.zip", tmp_path / "resumed.npz"
    arguments = [checkpoint.model_path, checkpoint.replay_buffer_path, str(TOTAL_STEPS), str(final_model), str(final_replay)]
    subprocess.run([sys.executable, "-c", RESUME_IN_A_NEW_PROCESS, *arguments], cwd=REPOSITORY, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"})  # fmt: skip

    resumed = MuZero.load(final_model, allow_unsafe_pickle=True)
    resumed.load_replay_buffer(final_replay)
    assert resumed.num_timesteps == TOTAL_STEPS
    assert_same_run(uninterrupted, resumed)


@pytest.mark.parametrize("search", [{}, GUMBEL, {**GUMBEL, **REANALYSE}], ids=["puct", "gumbel", "gumbel_reanalyse"])
def test_a_run_reloaded_with_its_own_env_object_continues_bit_identically(tmp_path, search):
    """learn + save + load(env=the same env, force_reset=False) + learn == learn + learn, for the same seed."""
    th.set_num_threads(1)
    reference = make_run(**search).learn(CHECKPOINT_STEPS)
    reference.learn(TOTAL_STEPS - CHECKPOINT_STEPS, reset_num_timesteps=False)

    interrupted = make_run(**search).learn(CHECKPOINT_STEPS)
    interrupted.save(tmp_path / "model.zip")
    interrupted.save_replay_buffer(tmp_path / "replay.npz")
    np.random.seed(123)  # whatever happens in between: the saved generator states win
    th.manual_seed(123)
    resumed = MuZero.load(tmp_path / "model.zip", env=interrupted.get_env(), force_reset=False)
    resumed.load_replay_buffer(tmp_path / "replay.npz")
    assert resumed.policy.search_rng is resumed.search_rng
    assert resumed.search_settings == resumed.policy.search_settings == interrupted.search_settings
    resumed.learn(TOTAL_STEPS - CHECKPOINT_STEPS, reset_num_timesteps=False)
    assert_same_run(reference, resumed)


def write_model_file_without(source: pathlib.Path, target: pathlib.Path, keys: tuple[str, ...]) -> dict:
    """Copy the model file ``source`` to ``target`` without ``keys`` in its data, as a file written before they
    existed; returns the data of ``source``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    members["data"] = json.dumps({key: value for key, value in data.items() if key not in keys}).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, contents in members.items():
            archive.writestr(name, contents)
    return data


def test_gumbel_settings_survive_model_and_policy_files(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **{**SMALL, **GUMBEL})
    model.save(tmp_path / "model.zip")
    model.policy.save(tmp_path / "policy.pth")
    loaded = MuZero.load(tmp_path / "model.zip")
    assert {key: getattr(loaded, key) for key in GUMBEL_KEYS} == GUMBEL
    assert loaded.policy.search_settings == model.search_settings
    assert type(model.policy).load(tmp_path / "policy.pth").search_settings == model.search_settings


def test_model_and_policy_files_written_before_gumbel_load_as_puct(tmp_path):
    """Files of the format before ``search_algorithm`` existed (without Gumbel's keys) load with the defaults."""
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.save(tmp_path / "model.zip")
    data = write_model_file_without(tmp_path / "model.zip", tmp_path / "earlier.zip", GUMBEL_KEYS)
    assert all(key in data for key in GUMBEL_KEYS)
    loaded = MuZero.load(tmp_path / "earlier.zip")
    assert loaded.search_settings == model.search_settings and loaded.search_algorithm == "puct"

    saved = {"state_dict": model.policy.state_dict(), "data": model.policy._get_constructor_parameters()}
    saved["data"]["search_settings"] = {key: value for key, value in saved["data"]["search_settings"].items()
                                        if key not in GUMBEL_KEYS}  # fmt: skip
    th.save(saved, tmp_path / "earlier_policy.pth")
    assert type(model.policy).load(tmp_path / "earlier_policy.pth").search_settings == model.search_settings


def test_policy_target_smoothing_survives_a_save_and_earlier_files_load_without_it(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, policy_target_smoothing=0.15, **SMALL)
    model.save(tmp_path / "model.zip")
    assert MuZero.load(tmp_path / "model.zip").policy_target_smoothing == 0.15
    assert "policy_target_smoothing" in write_model_file_without(tmp_path / "model.zip", tmp_path / "earlier.zip",
                                                                 ("policy_target_smoothing",))  # fmt: skip
    assert MuZero.load(tmp_path / "earlier.zip").policy_target_smoothing == 0.0


def test_mixed_precision_survives_a_save_and_earlier_files_load_without_it(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, mixed_precision=True, **SMALL)
    model.save(tmp_path / "model.zip")
    assert MuZero.load(tmp_path / "model.zip").mixed_precision is True
    earlier = tmp_path / "earlier.zip"
    assert "mixed_precision" in write_model_file_without(tmp_path / "model.zip", earlier, ("mixed_precision",))
    assert MuZero.load(tmp_path / "earlier.zip").mixed_precision is False


def test_a_model_loaded_onto_a_new_env_starts_new_episodes_and_keeps_everything_else(tmp_path):
    model = make_run().learn(60)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "replay.npz")
    env = make_vec_env("CartPole-v1", n_envs=2, seed=7, env_kwargs=dict(max_episode_steps=15))
    resumed = MuZero.load(tmp_path / "model.zip", env=env)
    resumed.load_replay_buffer(tmp_path / "replay.npz")
    assert resumed._last_obs is None and resumed.num_timesteps == 60 and resumed._n_updates == model._n_updates
    resumed.learn(20, reset_num_timesteps=False)
    first_new = resumed.replay_buffer.step_in_episode[60:62]
    np.testing.assert_array_equal(first_new, [0, 0])  # the new env's first steps start episodes


# --- never half-written -------------------------------------------------------------------------------


def large_replay(capacity: int) -> MuZeroReplayBuffer:
    """A full replay of image-like observations (about 50 MB for 12_000 slots), the same for the same capacity."""
    rng = np.random.default_rng(0)
    buffer = MuZeroReplayBuffer(capacity, spaces.Box(0, 255, (64, 64), np.uint8), spaces.Discrete(4), gamma=0.99)
    n_envs = 500
    for _ in range(capacity // n_envs):
        ends = rng.random(n_envs) < 0.02
        buffer.add(rng.integers(0, 255, (n_envs, 64, 64), dtype=np.uint8), rng.integers(4, size=n_envs),
                   rng.standard_normal(n_envs), rng.dirichlet(np.ones(4), n_envs), rng.standard_normal(n_envs),
                   ends, np.zeros(n_envs, bool))  # fmt: skip
    buffer.update_priorities(np.arange(capacity), rng.random(capacity))
    return buffer


SAVE_FOREVER = """
import sys, time
from sb3_muzero.replay import save_replay
from tests.test_persistence import large_replay
buffer = large_replay(int(sys.argv[2]))
start = time.monotonic()
save_replay(buffer, sys.argv[1])
print(time.monotonic() - start, flush=True)
while True:
    print("saving", flush=True)
    save_replay(buffer, sys.argv[1])
"""


def test_a_process_killed_while_saving_leaves_the_previous_replay_intact(tmp_path):
    capacity = 12_000
    path = tmp_path / "replay.npz"
    child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path), str(capacity)], cwd=REPOSITORY,
                             env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        save_duration = float(child.stdout.readline())
        assert child.stdout.readline().strip() == "saving"
        time.sleep(save_duration / 3)  # well into the second save
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # the survivor is the complete first save
    assert_same_replay(load_replay(path, spaces.Box(0, 255, (64, 64), np.uint8), spaces.Discrete(4)), large_replay(capacity))
    # and the kill came in the middle of a save: its temporary file is still there
    assert list(tmp_path.glob(".replay.npz.*.partial"))


def test_a_save_that_fails_midway_leaves_the_previous_model_intact(tmp_path, monkeypatch):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.save(tmp_path / "model.zip")
    before = (tmp_path / "model.zip").read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(th, "save", fail)  # SB3 writes the parameters with th.save, after the data
    with pytest.raises(OSError, match="disk full"):
        model.learn(50).save(tmp_path / "model.zip")
    assert (tmp_path / "model.zip").read_bytes() == before
    assert os.listdir(tmp_path) == ["model.zip"]  # no temporary file left behind
    MuZero.load(tmp_path / "model.zip")


# --- damaged files --------------------------------------------------------------------------------------


def truncate(path: pathlib.Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte_of(path: pathlib.Path, member: str) -> None:
    """Damage the stored data of one member of a zip archive, leaving its structure intact."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    content = bytearray(path.read_bytes())
    header = info.header_offset  # a local file header: 30 bytes, then the name and the extra field, then the data
    name_length = int.from_bytes(content[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(content[header + 28 : header + 30], "little")
    data_start = header + 30 + name_length + extra_length
    content[data_start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_model_file_is_refused_and_changes_nothing(tmp_path, damage):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(40)
    path = tmp_path / "model.zip"
    model.save(path)
    if damage == "truncated":
        truncate(path)
    else:
        flip_a_byte_of(path, "policy.pth")

    with pytest.raises(CorruptFileError, match=f"Cannot read model '{path}'"):
        MuZero.load(path)
    other = MuZero("MlpPolicy", "CartPole-v1", seed=1, **SMALL)
    before = {
        name: {key: value.clone() for key, value in state.items()} for name, state in [("policy", other.policy.state_dict())]
    }
    with pytest.raises(CorruptFileError, match=str(path)):
        other.set_parameters(path)
    assert all(th.equal(value, other.policy.state_dict()[key]) for key, value in before["policy"].items())


def test_a_parameter_set_that_fails_halfway_is_rolled_back():
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, target_update_interval=10, **SMALL).learn(40)
    before = {
        name: {k: v.clone() for k, v in state.items()} for name, state in model.get_parameters().items() if "optim" not in name
    }
    other = MuZero("MlpPolicy", "CartPole-v1", seed=1, target_update_interval=0, **SMALL).get_parameters()  # no target network
    with pytest.raises(ValueError, match="Names of parameters do not match"):
        model.set_parameters(other, exact_match=True)  # SB3 would have loaded "policy" before failing
    after = model.get_parameters()
    for name, state in before.items():
        assert all(th.equal(value, after[name][key]) for key, value in state.items()), name


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty"])
def test_a_damaged_replay_file_is_refused_and_the_current_replay_stays(tmp_path, damage):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(60)
    path = tmp_path / "replay.npz"
    model.save_replay_buffer(path)
    if damage == "truncated":
        truncate(path)
    elif damage == "flipped":
        flip_a_byte_of(path, "observations[0].npy")
    else:
        path.write_bytes(b"")
    current = model.replay_buffer
    contents_before = MuZeroReplayBuffer.__new__(MuZeroReplayBuffer)
    vars(contents_before).update(vars(current))

    with pytest.raises(CorruptFileError, match=f"Cannot read replay buffer '{path}'"):
        model.load_replay_buffer(path)
    assert model.replay_buffer is current
    assert_same_replay(current, contents_before)


def test_a_damaged_policy_file_is_refused(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    path = tmp_path / "policy.pth"
    model.policy.save(path)
    truncate(path)
    with pytest.raises(CorruptFileError, match=f"Cannot read policy '{path}'"):
        type(model.policy).load(path)


def test_files_of_something_else_are_refused_as_replay_buffers(tmp_path):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    save_to_pkl(tmp_path / "sb3.pkl", {"observations": np.zeros(3)})
    with pytest.raises(ValueError, match=r"not an sb3-muzero replay buffer file .*SB3's pickled replay buffers"):
        model.load_replay_buffer(tmp_path / "sb3.pkl")
    model.save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match="not an sb3-muzero replay buffer file: it has no '_header'"):
        model.load_replay_buffer(tmp_path / "model.zip")
    np.savez(tmp_path / "other.npz", _header=np.array('{"format": "sb3-muzero-replay", "version": 99}'))
    with pytest.raises(ValueError, match=r"format version 99 .* reads format version 1"):
        model.load_replay_buffer(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="missing"):
        model.load_replay_buffer(tmp_path / "missing")


# --- the replay file format -------------------------------------------------------------------------------


def test_frame_stacked_and_dict_replays_round_trip_and_go_on_as_before(tmp_path):
    rng = np.random.default_rng(0)
    stacked = MuZeroReplayBuffer(50, spaces.Box(0, 255, (4, 6, 6), np.uint8), spaces.Discrete(3), gamma=0.9, frame_stack=4)
    dict_space = spaces.Dict({"a": spaces.Box(0, 1, (2,), np.float32), "b": spaces.Box(0, 9, (3,), np.int64)})
    with_dicts = MuZeroReplayBuffer(50, dict_space, spaces.Discrete(3), gamma=0.9)
    for buffer, observe in [
        (stacked, lambda: rng.integers(1, 255, (2, 4, 6, 6), dtype=np.uint8)),  # first stacks with older frames kept aside
        (with_dicts, lambda: {key: np.stack([space.sample() for _ in range(2)]) for key, space in dict_space.items()}),
    ]:
        for _ in range(30):
            done = rng.random(2) < 0.3
            buffer.add(observe(), rng.integers(3, size=2), rng.random(2), np.full((2, 3), 1 / 3), rng.random(2), done, ~done)
        save_replay(buffer, tmp_path / "replay")
        loaded = load_replay(tmp_path / "replay.npz", buffer.observation_space, buffer.action_space)
        assert_same_replay(buffer, loaded)
        # sampling and adding go on the same way
        first, second = (b.sample(8, 3, 2, 0.5, np.random.default_rng(1)) for b in (buffer, loaded))
        np.testing.assert_array_equal(first.value_targets, second.value_targets)
        step = (
            observe(),
            np.zeros(2, int),
            np.ones(2),
            np.full((2, 3), 1 / 3),
            np.ones(2),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
        buffer.add(*step)
        loaded.add(*step)
        assert_same_replay(buffer, loaded)
    assert stacked.first_stacks  # the side table was saved and loaded too


# --- Ctrl-C ---------------------------------------------------------------------------------------------------


class CountingEnv(gym.Env):
    """Observation [t, env index] at step t of an episode of 6 steps; the step from observation t is rewarded t + 1, so
    every true transition has reward == observation[0] + 1. On request, sends the process a SIGINT (Ctrl-C) at the
    end of its ``interrupt_at``-th step (the step itself done)."""

    observation_space = spaces.Box(0, 10, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, index: int = 0, interrupt_at: int = 0):
        self.index, self.interrupt_at, self.calls = index, interrupt_at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        reward = float(self.t + 1)
        self.t += 1
        self.calls += 1
        if self.calls == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return self._observation(), reward, False, self.t == 6, {}

    def _observation(self):
        return np.array([self.t, self.index], np.float32)


class InterruptAfter(BaseCallback):
    """Raises KeyboardInterrupt in its ``calls``-th ``on_step``, as a Ctrl-C during a callback (an evaluation) does."""

    def __init__(self, calls: int):
        super().__init__()
        self.calls = calls

    def _on_step(self) -> bool:
        if self.n_calls == self.calls:
            raise KeyboardInterrupt
        return True


def interrupt_while_storing(model: MuZero, call: int) -> None:
    """SIGINT at the start of the ``call``-th replay write (as Ctrl-C landing right after env.step)."""
    add, calls = model.replay_buffer.add, [0]

    def add_interrupted(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return add(*args, **kwargs)

    model.replay_buffer.add = add_interrupted


@pytest.mark.parametrize("where", ["in a callback", "while storing", "inside env.step"])
def test_an_interrupted_learn_goes_on_with_true_transitions_only(where):
    envs = DummyVecEnv([lambda: CountingEnv(0, interrupt_at=9 if where == "inside env.step" else 0), lambda: CountingEnv(1)])
    model = MuZero("MlpPolicy", envs, seed=0, **{**SMALL, "learning_starts": 10})
    callback = InterruptAfter(9) if where == "in a callback" else None
    if where == "while storing":
        interrupt_while_storing(model, 9)
    with pytest.raises(KeyboardInterrupt):
        model.learn(100, callback=callback)
    vars(model.replay_buffer).pop("add", None)
    # the state left behind is consistent: every counted step is stored, and the last observations are the envs' own
    assert model.num_timesteps == model.replay_buffer.size == 18
    np.testing.assert_array_equal(model._last_obs, [[env.t, env.index] for env in envs.envs])
    model.learn(30, reset_num_timesteps=False)
    buffer = model.replay_buffer
    observations, rewards = buffer.observations[""][: buffer.size], buffer.rewards[: buffer.size]
    np.testing.assert_array_equal(rewards, observations[:, 0] + 1)  # only true transitions
    assert model.num_timesteps == buffer.size == 48


def test_interrupts_deferred_holds_a_ctrl_c_until_the_block_is_done_and_a_second_one_goes_through():
    from sb3_muzero.common.interrupts import interrupts_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the rest of the block")
    assert done == ["the rest of the block"]
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            done.append("not reached")
    assert done == ["the rest of the block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- stray temporary files, damaged zip headers ----------------------------------------------------------------


def test_the_next_save_removes_the_temporary_files_of_killed_saves_of_that_path(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    stray = tmp_path / f".model.zip.{dead_pid}.0123abcd.partial"
    of_a_running_save = tmp_path / f".model.zip.{os.getppid()}.89abcdef.partial"  # our parent runs
    of_another_file = tmp_path / f".other.zip.{dead_pid}.0123abcd.partial"
    not_ours = tmp_path / f".model.zip.{dead_pid}.partial"
    for path in (stray, of_a_running_save, of_another_file, not_ours):
        path.write_bytes(b"half a file")
    MuZero("MlpPolicy", "CartPole-v1", **SMALL).save(tmp_path / "model.zip")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["model.zip", of_a_running_save.name, of_another_file.name, not_ours.name]
    )


def set_header_field(path: pathlib.Path, member: str, field: str) -> None:
    """Damage a zip's headers of ``member`` (local and central): compression method 97, or the encryption flag."""
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(member).header_offset
    content = bytearray(path.read_bytes())
    offsets = [local + 6]  # the local header's flags at +6, method at +8
    start = 0
    while (central := content.find(b"PK\x01\x02", start)) >= 0:  # central directory entries: flags at +8, method at +10
        name_length = int.from_bytes(content[central + 28 : central + 30], "little")
        if content[central + 46 : central + 46 + name_length].decode() == member:
            offsets.append(central + 8)
        start = central + 4
    for offset in offsets:
        if field == "method":
            content[offset + 2 : offset + 4] = (97).to_bytes(2, "little")
        else:
            content[offset] |= 0x01
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("field", ["method", "encryption"])
def test_damaged_zip_headers_are_corrupt_files(tmp_path, field):
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(40)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "replay.npz")
    set_header_field(tmp_path / "model.zip", "policy.pth", field)
    set_header_field(tmp_path / "replay.npz", "rewards.npy", field)
    with pytest.raises(CorruptFileError, match="Cannot read model"):
        MuZero.load(tmp_path / "model.zip")
    with pytest.raises(CorruptFileError, match="Cannot read replay buffer"):
        model.load_replay_buffer(tmp_path / "replay.npz")
