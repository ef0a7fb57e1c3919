"""SB3's tests/test_save_load.py, ported to MuZero: the same calls, and what SB3 asserts about them.

Not ported: ``test_save_load_pytorch_var`` (SAC's entropy coefficient), ``test_warn_buffer``
(``optimize_memory_usage``, which MuZero's replay does not have), ``test_save_load_q_net`` and
``test_save_load_no_target_params`` (DQN's networks and its files from SB3 < 2.4),
``test_save_load_large_model`` (marked expensive in SB3, > 2 GB of weights), gSDE variants (continuous
actions only) and SB3's own tests of ``open_path`` (SB3 code, not the algorithm's).
"""

import base64
import io
import json
import os
import pathlib
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from copy import deepcopy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnv
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_muzero import MuZero
from tests.helpers import SMALL, assert_same_replay

DEVICES = ["auto", "cpu", "cuda"]


def select_env() -> IdentityEnv:
    return IdentityEnv(10)


def test_save_load(tmp_path):
    """'save' and 'load' save and load the model correctly; 'get_parameters' and 'set_parameters' work."""
    env = DummyVecEnv([select_env])
    model = MuZero("MlpPolicy", env, verbose=1, **SMALL)
    model.learn(total_timesteps=100)

    env.reset()
    observations = np.concatenate([env.step([env.action_space.sample()])[0] for _ in range(10)], axis=0)

    # deepcopy to avoid referencing to tensors we are about to modify
    original_params = deepcopy(model.get_parameters())

    # Invalid object names throw errors
    invalid_object_params = deepcopy(original_params)
    invalid_object_params["I_should_not_be_a_valid_object"] = "and_I_am_an_invalid_tensor"
    with pytest.raises(ValueError):
        model.set_parameters(invalid_object_params, exact_match=True)
    with pytest.raises(ValueError):
        model.set_parameters(invalid_object_params, exact_match=False)

    # exact_match catches when an object is missing
    missing_object_params = dict(list(original_params.items())[:-1])
    with pytest.raises(ValueError):
        model.set_parameters(missing_object_params, exact_match=True)

    # exact_match catches when something inside a state dict is missing (PyTorch raises RuntimeError)
    missing_state_dict_tensor_params = {
        object_name: dict(list(original_params[object_name].items())[:-1]) for object_name in original_params
    }
    with pytest.raises(RuntimeError):
        model.set_parameters(missing_state_dict_tensor_params, exact_match=True)

    # Parameters do change (all but the last entry of each state dict, which is left out)
    random_params = {}
    for object_name, params in original_params.items():
        if "optim" in object_name:  # custom layout, not randomized
            random_params[object_name] = params
        else:
            random_params[object_name] = OrderedDict(
                (param_name, th.rand_like(param)) for param_name, param in list(params.items())[:-1]
            )
    model.set_parameters(random_params, exact_match=False)

    new_params = model.get_parameters()
    for object_name in original_params:
        if "optim" in object_name:
            continue
        last_key = list(original_params[object_name].keys())[-1]
        for k in original_params[object_name]:
            if k == last_key:
                assert th.allclose(original_params[object_name][k], new_params[object_name][k])
            else:
                assert not th.allclose(original_params[object_name][k], new_params[object_name][k])

    params = new_params
    selected_actions, _ = model.predict(observations, deterministic=True)

    model.save(tmp_path / "test_save.zip")
    del model

    for device in DEVICES:
        if device == "cuda" and not th.cuda.is_available():
            continue  # SB3 loads onto "cuda" too; there is none here
        model = MuZero.load(str(tmp_path / "test_save.zip"), env=env, device=device)
        assert model.device.type == get_device(device).type
        assert model.policy.device.type == get_device(device).type

        new_params = model.get_parameters()
        for object_name in new_params:
            if "optim" in object_name:
                continue
            for key in params[object_name]:
                assert new_params[object_name][key].device.type == get_device(device).type
                assert th.allclose(params[object_name][key].to("cpu"), new_params[object_name][key].to("cpu"))

        # identical deterministic predictions
        new_selected_actions, _ = model.predict(observations, deterministic=True)
        np.testing.assert_array_equal(selected_actions, new_selected_actions)

        model.learn(total_timesteps=100)
        del model

    os.remove(tmp_path / "test_save.zip")


def test_set_env(tmp_path):
    env = DummyVecEnv([select_env])
    env2 = DummyVecEnv([select_env])
    env3 = select_env()
    env4 = DummyVecEnv([select_env for _ in range(2)])

    model = MuZero("MlpPolicy", env, **{**SMALL, "learning_starts": 50}, train_freq=4)
    model.learn(total_timesteps=64)

    # change env
    model.set_env(env2, force_reset=True)
    assert model._last_obs is None
    model.learn(total_timesteps=64, reset_num_timesteps=True)
    assert model.num_timesteps == 64

    # change env, test wrapping
    model.set_env(env3)
    model.learn(total_timesteps=64)

    # num_envs must be the same for set_env
    with pytest.raises(AssertionError):
        model.set_env(env4)

    # Keep the same env, disable reset
    model.set_env(model.get_env(), force_reset=False)
    assert model._last_obs is not None
    model.learn(total_timesteps=64, reset_num_timesteps=False)
    assert model.num_timesteps == 2 * 64

    current_env = model.get_env()
    model.save(tmp_path / "test_save.zip")
    del model
    # The env kept its state, no reset needed: the number of timesteps goes on
    model = MuZero.load(tmp_path / "test_save.zip", env=current_env, force_reset=False)
    assert model._last_obs is not None
    model.learn(total_timesteps=64, reset_num_timesteps=False)
    assert model.num_timesteps == 3 * 64

    del model
    # Another env: it is reset, the number of timesteps goes on
    model = MuZero.load(tmp_path / "test_save.zip", env=env3, force_reset=True)
    assert model._last_obs is None
    model.learn(total_timesteps=64, reset_num_timesteps=False)
    assert model.num_timesteps == 3 * 64

    del model
    # A different number of envs, through load
    model = MuZero.load(tmp_path / "test_save.zip", env=env4)
    model.learn(total_timesteps=64)
    assert model.n_envs == 2 and model.replay_buffer.stream_last_slot.shape == (2,)

    os.remove(tmp_path / "test_save.zip")


def test_exclude_include_saved_params(tmp_path):
    env = DummyVecEnv([select_env])
    model = MuZero("MlpPolicy", env, verbose=2, **SMALL)

    # exclude works
    model.save(tmp_path / "test_save", exclude=["verbose"])
    del model
    model = MuZero.load(str(tmp_path / "test_save.zip"))
    assert model.verbose != 2

    # include wins over exclude
    model.verbose = 2
    model.save(tmp_path / "test_save", exclude=["verbose"], include=["verbose"])
    del model
    custom_objects = dict(learning_rate=2e-5, dummy=1.0)
    model = MuZero.load(str(tmp_path / "test_save.zip"), custom_objects=custom_objects, print_system_info=True)
    assert model.verbose == 2
    # the custom object was taken into account, and only objects that are there are replaced
    assert model.learning_rate == custom_objects["learning_rate"]
    assert not hasattr(model, "dummy")

    os.remove(tmp_path / "test_save.zip")


def test_save_load_env_cnn(tmp_path):
    """Loading with an env that needs a CnnPolicy (wrapping and observation space check)."""
    env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=2, discrete=True)
    kwargs = dict(buffer_size=100, learning_starts=50, train_freq=4, num_simulations=4,
                  policy_kwargs=dict(channels=8, num_blocks=1, head_channels=2, head_hidden=[8], support_size=3))  # fmt: skip
    model = MuZero("CnnPolicy", env, **kwargs).learn(100)
    model.save(tmp_path / "test_save")
    # loading with env, and training on
    model = MuZero.load(str(tmp_path / "test_save.zip"), env=env, **kwargs).learn(100)
    os.remove(tmp_path / "test_save.zip")


def test_save_load_replay_buffer(tmp_path):
    path = pathlib.Path(tmp_path / "logs/replay_buffer.pkl")
    path.parent.mkdir(exist_ok=True, parents=True)
    model = MuZero("MlpPolicy", select_env(), buffer_size=1000, **{**SMALL, "learning_starts": 60})
    model.learn(100)
    old_replay_buffer = deepcopy(model.replay_buffer)
    model.save_replay_buffer(path)
    model.replay_buffer = None
    model.load_replay_buffer(path)
    # SB3 compares observations, actions, rewards, dones and timeouts; here every array and counter
    assert_same_replay(old_replay_buffer, model.replay_buffer)

    # the loaded buffer is extended (SB3 calls replay_buffer.extend; MuZero's buffer is filled by learn)
    model.learn(40, reset_num_timesteps=False)
    assert model.replay_buffer.size == old_replay_buffer.size + 40


@pytest.mark.parametrize("policy_str", ["MlpPolicy", "CnnPolicy"])
def test_save_load_policy(tmp_path, policy_str):
    """Saving and loading the policy only (gSDE variants are for continuous actions: not ported)."""
    if policy_str == "MlpPolicy":
        env = select_env()
        kwargs = SMALL
    else:
        env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=2, discrete=True)
        policy_kwargs = dict(channels=8, num_blocks=1, head_channels=2, head_hidden=[8], support_size=3)
        kwargs = dict(buffer_size=250, learning_starts=100, num_simulations=4, policy_kwargs=policy_kwargs)

    env = DummyVecEnv([lambda: env])
    model = MuZero(policy_str, env, verbose=1, **kwargs)
    model.learn(total_timesteps=150)

    env.reset()
    observations = np.concatenate([env.step([env.action_space.sample()])[0] for _ in range(10)], axis=0)

    policy = model.policy
    policy_class = policy.__class__

    params = deepcopy(policy.state_dict())
    random_params = {param_name: th.rand_like(param.float()).to(param.dtype) for param_name, param in params.items()}
    policy.load_state_dict(random_params)

    new_params = policy.state_dict()
    for k in params:
        if params[k].is_floating_point():  # BatchNorm-like integer counters cannot be made random
            assert not th.allclose(params[k], new_params[k]), "Parameters did not change as expected."

    params = new_params
    selected_actions, _ = policy.predict(observations, deterministic=True)

    policy.save(tmp_path / "policy.pkl")
    del policy
    policy = policy_class.load(tmp_path / "policy.pkl")

    new_params = policy.state_dict()
    for key in params:
        assert th.allclose(params[key], new_params[key]), "Policy parameters not the same after save and load."

    new_selected_actions, _ = policy.predict(observations, deterministic=True)
    np.testing.assert_array_equal(selected_actions, new_selected_actions)

    os.remove(tmp_path / "policy.pkl")


@pytest.mark.parametrize("pathtype", [str, pathlib.Path])
def test_paths_with_and_without_suffix(tmp_path, pathtype):
    """SB3 adds ``.zip`` (and MuZero ``.npz`` for replay buffers) to a path without suffix, and finds them again."""
    model = MuZero("MlpPolicy", select_env(), **SMALL)
    model.save(pathtype(tmp_path / "model"))
    model.save_replay_buffer(pathtype(tmp_path / "replay"))
    model.save_replay_buffer(pathtype(tmp_path / "replay.custom_ext"))
    assert sorted(os.listdir(tmp_path)) == ["model.zip", "replay.custom_ext", "replay.npz"]
    MuZero.load(pathtype(tmp_path / "model"))
    model.load_replay_buffer(pathtype(tmp_path / "replay"))
    model.load_replay_buffer(pathtype(tmp_path / "replay.custom_ext"))


def test_load_invalid_object(tmp_path):
    """A stored object that does not deserialize gives a warning pointing to custom_objects (a lambda is pickled, so
    the file loads only with allow_unsafe_pickle=True, or with custom_objects in its place)."""
    path = str(tmp_path / "muzero.zip")
    with pytest.warns(UserWarning, match="allow_unsafe_pickle"):
        MuZero("MlpPolicy", select_env(), learning_rate=lambda _: 1.0, **SMALL).save(path)

    with zipfile.ZipFile(path, mode="r") as archive:
        json_data = json.loads(archive.read("data").decode())
        other_members = {name: archive.read(name) for name in archive.namelist() if name != "data"}

    # Intentionally corrupt the learning rate's serialization (a valid zip, an invalid object)
    serialization = json_data["learning_rate"]["data"]
    base64_object = base64.b64decode(serialization.encode())
    json_data["learning_rate"]["data"] = base64.b64encode(base64_object.replace(b"CodeType", b"CodeTyps")).decode()
    with zipfile.ZipFile(path, mode="w") as archive:
        archive.writestr("data", json.dumps(json_data, indent=4))
        for name, content in other_members.items():
            archive.writestr(name, content)

    with pytest.raises(ValueError, match=r"'learning_rate'.*allow_unsafe_pickle=True"):
        MuZero.load(path)
    with pytest.warns(UserWarning, match=r"custom_objects"):
        MuZero.load(path, allow_unsafe_pickle=True)
    with warnings.catch_warnings(record=True) as record:
        MuZero.load(path, custom_objects=dict(learning_rate=lambda _: 1.0, lr_schedule=lambda _: 1.0))
    assert len(record) == 0


def test_target_update_interval(tmp_path):
    """``target_update_interval`` does not change when reloading the model (SB3 GH#1373, for DQN)."""
    env = make_vec_env(env_id="CartPole-v1", n_envs=2)
    model = MuZero("MlpPolicy", env, verbose=1, target_update_interval=100, **SMALL)
    model.save(tmp_path / "muzero_cartpole")
    del model
    model = MuZero.load(tmp_path / "muzero_cartpole")
    os.remove(tmp_path / "muzero_cartpole.zip")
    assert model.target_update_interval == 100
    assert model.target_policy is not None


@pytest.mark.filterwarnings("error")
def test_no_resource_warning(tmp_path):
    """Files are closed after save and load (SB3 GH#1751); file objects passed in stay open."""
    MuZero("MlpPolicy", "CartPole-v1", **SMALL).save(tmp_path / "muzero_cartpole")
    MuZero.load(tmp_path / "muzero_cartpole")

    MuZero("MlpPolicy", "CartPole-v1", **SMALL).save(str(tmp_path / "muzero_cartpole"))
    MuZero.load(str(tmp_path / "muzero_cartpole"))

    with tempfile.TemporaryFile() as fp:
        MuZero("MlpPolicy", "CartPole-v1", **SMALL).save(fp)
        fp.seek(0)
        MuZero.load(fp)
        assert not fp.closed

    model = MuZero("MlpPolicy", "CartPole-v1", buffer_size=200, **SMALL)
    model.save_replay_buffer(tmp_path / "replay")
    model.load_replay_buffer(tmp_path / "replay")

    model.save_replay_buffer(str(tmp_path / "replay"))
    model.load_replay_buffer(str(tmp_path / "replay"))

    with tempfile.TemporaryFile() as fp:
        model.save_replay_buffer(fp)
        fp.seek(0)
        model.load_replay_buffer(fp)
        assert not fp.closed

    buffer = io.BytesIO()
    model.save_replay_buffer(buffer)
    buffer.seek(0)
    model.load_replay_buffer(buffer)


def test_cast_lr_schedule(tmp_path):
    """The learning rate schedule returns a float, before and after save and load (SB3 GH#1900)."""
    model = MuZero("MlpPolicy", "CartPole-v1", learning_rate=lambda t: t * np.sin(1.0), **SMALL)
    assert type(model.lr_schedule(1.0)) is float
    assert np.allclose(model.lr_schedule(0.5), 0.5 * np.sin(1.0))
    with pytest.warns(UserWarning, match="allow_unsafe_pickle"):  # a lambda is pickled
        model.save(tmp_path / "muzero.zip")
    model = MuZero.load(tmp_path / "muzero.zip", allow_unsafe_pickle=True)
    assert type(model.lr_schedule(1.0)) is float
    assert np.allclose(model.lr_schedule(0.5), 0.5 * np.sin(1.0))


def test_save_load_net_arch_none(tmp_path):
    """``net_arch=None`` (the defaults) survives save and load (SB3 GH#1928)."""
    model = MuZero("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=None, latent_dim=8))
    model.save(tmp_path / "muzero.zip")
    loaded = MuZero.load(tmp_path / "muzero.zip")
    assert loaded.policy._layer_sizes() == model.policy._layer_sizes()
    assert all(sizes for sizes in loaded.policy._layer_sizes().values())
    os.remove(tmp_path / "muzero.zip")


@pytest.mark.parametrize("wrapper", ["VecTransposeImage", "VecFrameStack"])
def test_envs_that_cannot_be_saved_are_named_with_what_to_do(tmp_path, wrapper):
    """SB3's VecEnvWrappers do not pickle: the error says which layer and how to save instead."""
    from stable_baselines3.common.vec_env import VecFrameStack

    env = DummyVecEnv([lambda: FakeImageEnv(screen_height=12, screen_width=12, n_channels=1, discrete=True)])
    env = VecFrameStack(env, 2) if wrapper == "VecFrameStack" else env  # MuZero adds VecTransposeImage itself
    model = MuZero("CnnPolicy", env, num_simulations=2, policy_kwargs=dict(channels=4, head_hidden=[8], support_size=3))
    with pytest.raises(ValueError, match=rf"the wrapper {wrapper} \(around .*\) does not pickle .* pass env=\.\.\. to"):
        model.save(tmp_path / "model.zip", include=["env"])
    assert not (tmp_path / "model.zip").exists()
