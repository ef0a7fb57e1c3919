"""Files from someone else: loading a model or policy file never runs code from it, and still reads earlier files."""

import base64
import collections
import json
import pathlib
import re
import zipfile

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_muzero import CorruptFileError, MuZero
from sb3_muzero.common.generators import capture_generator_states
from sb3_muzero.muzero.persistence import GENERATOR_STATES
from sb3_muzero.muzero.policies import MuZeroPolicy
from tests.helpers import SMALL, assert_same_parameters

ENV_ID = "CartPole-v1"


class WritesAFile:
    """Unpickled, it creates the file at ``path`` (``open(path, "w")``): the stand-in for any code a pickle can run."""

    def __init__(self, path: pathlib.Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def rewrite_data(path: pathlib.Path, change) -> None:
    """Rewrite the ``data`` member of a model file with ``change(entries)``; the zip stays valid (CRCs match)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    entries = json.loads(members["data"])
    change(entries)
    members["data"] = json.dumps(entries).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def sb3_pickle_entry(value) -> dict:
    """An entry as SB3 (and sb3-muzero before plain data) writes what JSON cannot hold."""
    return {":type:": str(type(value)), ":serialized:": base64.b64encode(cloudpickle.dumps(value)).decode()}


def tagged_pickle(value) -> dict:
    """An entry as sb3-muzero writes a value that has no plain form (read only with allow_unsafe_pickle=True)."""
    return {":plain:": "pickle", "type": str(type(value)), "data": base64.b64encode(cloudpickle.dumps(value)).decode()}


def round_trip(value):
    """``value`` written as plain data, through JSON, and rebuilt."""
    from sb3_muzero.common.plain_data import from_plain, to_plain

    return from_plain(json.loads(json.dumps(to_plain(value))))


class SampleEnv(gym.Env):
    """Random observations of ``observation_space``, 2 actions, reward 1 for action 0, episodes of 10 steps."""

    action_space = spaces.Discrete(2)

    def __init__(self, observation_space: spaces.Space):
        self.observation_space = observation_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.steps += 1
        return self.observation_space.sample(), float(action == 0), False, self.steps >= 10, {}


def refusal_of(load) -> str:
    """The message of the ValueError ``load()`` raises ("" if it raises none)."""
    try:
        load()
    except ValueError as error:
        return str(error)
    except Exception:
        pass
    return ""


def saved_model(tmp_path: pathlib.Path) -> tuple[MuZero, pathlib.Path]:
    model = MuZero("MlpPolicy", ENV_ID, seed=0, **SMALL).learn(40)
    path = tmp_path / "model.zip"
    model.save(path)
    return model, path


# --- a model file that carries code ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["observation_space", "lr_schedule", "policy_class", "_last_obs"])
@pytest.mark.parametrize("written_as", ["pickle entry of earlier versions", "tagged pickle"])
@pytest.mark.parametrize("with_env", [False, True])
def test_a_model_file_that_carries_code_is_refused_without_running_it(tmp_path, entry, written_as, with_env):
    _, path = saved_model(tmp_path)
    marker = tmp_path / "the code ran"
    crafted = (sb3_pickle_entry if written_as.startswith("pickle") else tagged_pickle)(WritesAFile(marker))
    rewrite_data(path, lambda entries: entries.update({entry: crafted}))
    env = DummyVecEnv([lambda: gym.make(ENV_ID)]) if with_env else None
    refusal = refusal_of(lambda: MuZero.load(path, env=env))
    assert not marker.exists(), "the file's code ran"
    assert re.search(rf"Cannot load model .*its entry '{entry}'.*allow_unsafe_pickle=True", refusal)


def test_a_policy_file_that_carries_code_is_refused_without_running_it(tmp_path):
    model, _ = saved_model(tmp_path)
    marker = tmp_path / "the code ran"
    path = tmp_path / "policy.pth"
    th.save({"state_dict": model.policy.state_dict(), "data": {"observation_space": WritesAFile(marker)}}, path)
    refusal = refusal_of(lambda: MuZeroPolicy.load(path))
    assert not marker.exists(), "the file's code ran"
    assert re.search(r"Cannot load policy .*io.open.*allow_unsafe_pickle=True", refusal)


def test_allow_unsafe_pickle_reads_pickles_and_runs_them(tmp_path):
    """The opt-in does what it says: for files one trusts, such as one's own files with pickled envs."""
    _, path = saved_model(tmp_path)
    marker = tmp_path / "the code ran"
    rewrite_data(path, lambda entries: entries.update({"payload": tagged_pickle(WritesAFile(marker))}))
    MuZero.load(path, allow_unsafe_pickle=True)
    assert marker.exists()


def test_classes_a_file_names_are_torch_modules_or_optimizers_of_imported_modules_only(tmp_path):
    _, path = saved_model(tmp_path)
    system = {":plain:": "class", "module": "os", "name": "system"}
    rewrite_data(path, lambda entries: entries["policy_kwargs"].update(activation_fn=system))
    with pytest.raises(ValueError, match=r"os\.system, which is not a torch module or optimizer class"):
        MuZero.load(path)
    not_imported = {":plain:": "class", "module": "a_module_nobody_imported", "name": "Layer"}
    rewrite_data(path, lambda entries: entries["policy_kwargs"].update(activation_fn=not_imported))
    with pytest.raises(ValueError, match="whose module is not imported; loading never imports a module a file names"):
        MuZero.load(path)


def test_a_malformed_entry_is_a_corrupt_file(tmp_path):
    _, path = saved_model(tmp_path)
    rewrite_data(path, lambda entries: entries.update(observation_space={":plain:": "space", "space": "Box"}))
    with pytest.raises(CorruptFileError, match="its entry 'observation_space' is malformed"):
        MuZero.load(path)
    array = {":plain:": "ndarray", "dtype": "O", "shape": [1], "data": base64.b64encode(bytes(8)).decode()}
    rewrite_data(path, lambda entries: entries.update(_last_obs=array))
    with pytest.raises(CorruptFileError, match="arrays of numbers and bools only"):
        MuZero.load(path)


# --- what files hold now ---------------------------------------------------------------------------------------


def test_saved_models_and_policies_hold_no_pickle(tmp_path):
    image_env = DummyVecEnv([lambda: SampleEnv(spaces.Box(0, 255, (1, 12, 12), np.uint8))])
    dict_env = DummyVecEnv([lambda: SampleEnv(spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(0, 1, (3,))}))])
    models = [
        MuZero("MlpPolicy", ENV_ID, seed=0, learning_rate=LinearSchedule(1e-3, 0.0, 1.0), **SMALL),
        MuZero("CnnPolicy", image_env, seed=0, num_simulations=4, policy_kwargs=dict(channels=4, head_hidden=[8])),
        MuZero("MultiInputPolicy", dict_env, seed=0, **SMALL),
    ]
    for index, model in enumerate(models):
        model.learn(10)
        model.save(tmp_path / f"model{index}.zip")
        model.policy.save(tmp_path / f"policy{index}.pth")
        with zipfile.ZipFile(tmp_path / f"model{index}.zip") as archive:
            data = archive.read("data").decode()
        assert ":serialized:" not in data and '"pickle"' not in data
        loaded = MuZero.load(tmp_path / f"model{index}.zip")
        assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
        assert_same_parameters(model, loaded)
        for key, value in (model._last_obs if isinstance(model._last_obs, dict) else {"": model._last_obs}).items():
            np.testing.assert_array_equal(loaded._last_obs[key] if key else loaded._last_obs, value)
        assert loaded.ep_info_buffer == model.ep_info_buffer and loaded.train_freq == model.train_freq
        assert loaded.lr_schedule(0.3) == model.lr_schedule(0.3)
        assert th.load(tmp_path / f"policy{index}.pth", weights_only=True)  # torch's safe loader reads all of it
        policy = type(model.policy).load(tmp_path / f"policy{index}.pth")
        assert policy.observation_space == model.observation_space


@pytest.mark.parametrize(
    "value",
    [
        spaces.Box(np.array([-1.0, -np.inf], np.float32), np.array([2.5, np.inf], np.float32), dtype=np.float32),
        spaces.Box(0, 255, (4, 6, 6), np.uint8),
        spaces.Discrete(5, start=-2),
        spaces.MultiDiscrete([3, 4], start=[1, 0]),
        spaces.MultiBinary([2, 3]),
        spaces.Dict({"a": spaces.Box(0, 1, (2,)), "b": spaces.Discrete(3)}),
        FloatSchedule(LinearSchedule(1e-3, 1e-5, 0.5)),
        ConstantSchedule(0.25),
        TrainFreq(4, TrainFrequencyUnit.EPISODE),
        collections.deque([{"r": 1.5, "l": 3, "t": 0.1}], maxlen=100),
        (3, (1, 2), None),
        {1: "int key", "text": np.float32(0.5)},
        th.arange(5, dtype=th.uint8),
        nn.Tanh,
        MuZeroPolicy,
    ],
    ids=lambda value: type(value).__name__,
)
def test_plain_data_round_trips(value):
    rebuilt = round_trip(value)
    if isinstance(value, th.Tensor):
        assert th.equal(rebuilt, value)
    elif callable(value) and not isinstance(value, type):
        assert type(rebuilt) is type(value) and [rebuilt(p) for p in (1.0, 0.7, 0.0)] == [value(p) for p in (1.0, 0.7, 0.0)]
    else:
        assert rebuilt == value and type(rebuilt) is type(value)


def test_rl_zoo3_linear_schedules_round_trip():
    from rl_zoo3.utils import linear_schedule

    schedule = FloatSchedule(linear_schedule(3e-4))
    rebuilt = round_trip(schedule)
    assert type(rebuilt.value_schedule) is type(schedule.value_schedule) and rebuilt(0.4) == schedule(0.4)


# --- files of earlier versions ---------------------------------------------------------------------------------


def save_as_earlier_versions(model: MuZero, path: pathlib.Path) -> None:
    """The file the previous version wrote: SB3's own ``save`` (pickled entries), with the generator states."""
    setattr(model, GENERATOR_STATES, capture_generator_states(model))
    BaseAlgorithm.save(model, path)
    delattr(model, GENERATOR_STATES)


def test_model_and_policy_files_of_earlier_versions_still_load(tmp_path):
    model = MuZero("MlpPolicy", ENV_ID, seed=0, policy_kwargs=dict(SMALL["policy_kwargs"], activation_fn=nn.Tanh),
                   **{key: value for key, value in SMALL.items() if key != "policy_kwargs"}).learn(40)  # fmt: skip
    save_as_earlier_versions(model, tmp_path / "earlier.zip")
    with zipfile.ZipFile(tmp_path / "earlier.zip") as archive:
        assert ":serialized:" in archive.read("data").decode()
    loaded = MuZero.load(tmp_path / "earlier.zip")
    assert_same_parameters(model, loaded)
    assert loaded.observation_space == model.observation_space and loaded.policy.activation_fn is nn.Tanh
    assert loaded.search_rng.bit_generator.state == model.search_rng.bit_generator.state
    np.testing.assert_array_equal(loaded._last_obs, model._last_obs)
    observation = gym.make(ENV_ID).reset(seed=0)[0]
    assert loaded.predict(observation, deterministic=True)[0] == model.predict(observation, deterministic=True)[0]

    BasePolicy.save(model.policy, tmp_path / "earlier_policy.pth")  # SB3's: torch.save of pickled arguments
    policy = MuZeroPolicy.load(tmp_path / "earlier_policy.pth")
    assert policy.activation_fn is nn.Tanh and policy.observation_space == model.observation_space


def test_earlier_files_with_a_function_in_them_need_the_opt_in_or_custom_objects(tmp_path):
    model = MuZero("MlpPolicy", ENV_ID, seed=0, learning_rate=lambda progress: 1e-3 * progress, **SMALL)
    save_as_earlier_versions(model, tmp_path / "earlier.zip")
    with pytest.raises(ValueError, match=r"its entry 'learning_rate': it is a pickle .*written by SB3 or an earlier"):
        MuZero.load(tmp_path / "earlier.zip")
    loaded = MuZero.load(tmp_path / "earlier.zip", allow_unsafe_pickle=True)
    assert loaded.lr_schedule(0.5) == model.lr_schedule(0.5)
    constant = dict(learning_rate=0.0, lr_schedule=lambda _: 0.0)  # what rl-zoo3's enjoy passes
    assert MuZero.load(tmp_path / "earlier.zip", custom_objects=constant).learning_rate == 0.0


class Calls:
    """Pickles as a call of ``function(*args)``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize(
    "payload",
    [
        Calls(eval, "1 + 1"),
        Calls(getattr, np, "save"),
        Calls(np.ndarray, (2,), "O"),
        np.array([None, 1], dtype=object),
        collections.deque([Calls(print, "hello")]),
        {"nested": [Calls(exec, "x = 1")]},
    ],
    ids=["eval", "getattr", "ndarray call", "object array", "inside a deque", "nested"],
)
def test_the_allowlist_unpickler_refuses_calls_and_python_objects(payload):
    from sb3_muzero.common.legacy_pickle import RefusedPickle, restricted_loads

    with pytest.raises(RefusedPickle):
        restricted_loads(cloudpickle.dumps(payload))


def test_the_allowlist_unpickler_reads_the_data_files_of_earlier_versions_held():
    from sb3_muzero.common.legacy_pickle import restricted_loads

    values = [np.arange(6, dtype=np.float32).reshape(2, 3), spaces.Box(-1, 1, (2,)), spaces.Discrete(3, seed=1),
              FloatSchedule(LinearSchedule(1.0, 0.0, 0.5)), TrainFreq(2, TrainFrequencyUnit.STEP),
              collections.deque([{"r": 1.0}], maxlen=5), th.arange(4), np.random.default_rng(3), nn.ReLU]  # fmt: skip
    for value in values:
        rebuilt = restricted_loads(cloudpickle.dumps(value))
        if isinstance(value, (np.ndarray, th.Tensor)):
            assert (rebuilt == value).all()
        elif isinstance(value, np.random.Generator):
            assert rebuilt.bit_generator.state == value.bit_generator.state
        elif isinstance(value, FloatSchedule):
            assert rebuilt(0.7) == value(0.7)
        else:
            assert rebuilt == value
