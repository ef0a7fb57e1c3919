"""One test per row of the README's "Bad input" table: each refusal names what was given and what is expected."""

import re

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_muzero import CorruptFileError, MuZero
from tests.helpers import SMALL

ALL_FAULTS = ("observation", "reward", "final observation")


class FlakyEnv(gym.Env):
    """Episodes of 8 steps cut by a time limit, with on request a NaN observation at step 3, an inf reward at step 6
    and a NaN final observation at step 8."""

    observation_space = spaces.Box(-1, 1, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, faults: tuple[str, ...] = ()):
        self.faults = faults

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.steps += 1
        observation = np.full(3, 0.1 * self.steps, np.float32)
        if (self.steps, "observation") in self._faulty() or (self.steps, "final observation") in self._faulty():
            observation[1] = np.nan
        reward = np.inf if (self.steps, "reward") in self._faulty() else 1.0
        return observation, reward, False, self.steps == 8, {}

    def _faulty(self) -> set[tuple[int, str]]:
        return {
            (step, fault)
            for step, fault in ((3, "observation"), (6, "reward"), (8, "final observation"))
            if fault in self.faults
        }


def flaky_envs(faults: tuple[str, ...] = ALL_FAULTS) -> DummyVecEnv:
    """Env 0 is fine, env 1 has ``faults``."""
    return DummyVecEnv([FlakyEnv, lambda: FlakyEnv(faults)])


def cartpole_model(**kwargs) -> MuZero:
    return MuZero("MlpPolicy", "CartPole-v1", **{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("num_simulations", 0, "num_simulations must be an integer >= 1, got 0"),
        ("gamma", 1.5, "gamma must be in (0.0, 1.0], got 1.5"),
        ("num_unroll_steps", 0, "num_unroll_steps must be an integer >= 1, got 0"),
        ("td_steps", 0, "td_steps must be an integer >= 1, got 0"),
        ("buffer_size", -1, "buffer_size must be an integer >= 1, got -1"),
        ("replay_ratio", float("inf"), "replay_ratio must be in (0.0, inf), got inf"),
        ("temperature_initial", float("inf"), "temperature_initial must be in [0.0, inf), got inf"),
        ("temperature_final", float("nan"), "temperature_final must be in [0.0, inf), got nan"),
        ("policy_target_smoothing", 1.5, "policy_target_smoothing must be in [0.0, 1.0], got 1.5"),
        ("mixed_precision", "yes", "mixed_precision must be True or False, got 'yes'"),
        ("learning_rate", -1e-3, "learning_rate gives -0.001 at progress_remaining=1.0: learning rates must be finite"),
        ("learning_rate", LinearSchedule(1e-3, -1e-4, 1.0), "learning_rate gives -0.0001 at progress_remaining=0.0"),
        ("policy_kwargs", dict(net_arch=[0]), "net_arch sizes must be integers >= 1, got [0] for the representation"),
    ],
)
def test_invalid_hyperparameters(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cartpole_model(**{name: value})


def test_gamma_zero_is_outside_the_interval():
    with pytest.raises(ValueError, match=re.escape("gamma must be in (0.0, 1.0], got 0.0")):
        cartpole_model(gamma=0.0)


def test_support_size_below_one():
    with pytest.raises(ValueError, match="support_size must be an integer >= 1, got 0"):
        cartpole_model(policy_kwargs=dict(support_size=0))


def test_max_grad_norm_may_be_infinite_no_clipping():
    assert cartpole_model(max_grad_norm=float("inf")).max_grad_norm == float("inf")


def test_a_support_too_large_is_refused_with_the_memory_it_needs():
    expected = "support_size must be at most 10000 (which covers values up to +-7.3e+06), got 1000000: each value and "
    with pytest.raises(ValueError, match=re.escape(expected) + r".*2,000,001 bins \(7.6 MiB in float32\).*GiB"):
        cartpole_model(policy_kwargs=dict(support_size=10**6))


@pytest.mark.skipif(th.cuda.is_available(), reason="a GPU is there")
def test_device_cuda_without_a_gpu_warns():
    with pytest.warns(UserWarning, match="device='cuda' asks for a GPU, but torch sees none"):
        model = cartpole_model(device="cuda")
    assert model.device.type == "cpu"


class HugeRewardEnv(FlakyEnv):
    """Finite but huge rewards."""

    def __init__(self, reward: float):
        super().__init__()
        self.reward = reward

    def step(self, action):
        observation, _, terminated, truncated, info = super().step(action)
        return observation, self.reward, terminated, truncated, info


@pytest.mark.parametrize(
    "reward, value_representation, cause",
    [
        (1e38, "categorical", r"its value targets are not finite"),  # their n-step sums overflow float32
        (1e30, "scalar", r"its loss is inf, its gradients not finite"),  # squared errors overflow float32
    ],
)
def test_an_update_that_would_make_the_parameters_nan_is_refused_with_a_hint_at_the_rewards(
    reward, value_representation, cause
):
    policy_kwargs = dict(SMALL["policy_kwargs"], value_representation=value_representation)
    model = MuZero("MlpPolicy", HugeRewardEnv(reward), **{**SMALL, "policy_kwargs": policy_kwargs})
    expected = rf"Update 1 would make the parameters or priorities NaN or infinite \({cause}\).* rewards up to {reward:.4g}"
    with pytest.raises(FloatingPointError, match=expected.replace("+", r"\+")):
        model.learn(64)
    assert all(th.isfinite(parameter).all() for parameter in model.policy.parameters())
    assert np.isfinite(model.replay_buffer.priorities.tree).all()


def test_cnn_policy_needs_images():
    with pytest.raises(ValueError, match=re.escape("CnnPolicy needs image observations [C, H, W] (or [H, W, C]), got Box(")):
        MuZero("CnnPolicy", FlakyEnv(), **SMALL)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'; supported: adam, adamw, sgd"):
        cartpole_model(optimizer="rmsprop")


def test_unknown_policy_name():
    with pytest.raises(ValueError, match="Unknown policy 'LstmPolicy'; supported: MlpPolicy, CnnPolicy, MultiInputPolicy"):
        MuZero("LstmPolicy", "CartPole-v1")


def test_unsupported_observation_space():
    env = IdentityEnv(space=spaces.Tuple([spaces.Discrete(2), spaces.Discrete(2)]))
    env.action_space = spaces.Discrete(2)
    with pytest.raises(ValueError, match=r"MuZero supports Box, Discrete, .* observations.*; got Tuple\(Discrete\(2\)"):
        MuZero("MlpPolicy", env)


def test_unsupported_action_space():
    with pytest.raises(
        ValueError, match=r"MuZero supports Discrete action spaces only, got Box\(-2.0, 2.0, \(1,\), float32\)"
    ):
        MuZero("MlpPolicy", "Pendulum-v1")


@pytest.mark.parametrize(
    "what, timestep, detail",
    [
        ("observation", 6, "1 of 3 entries not finite, the first nan at (1,)"),
        ("reward", 12, "inf"),
        ("final observation", 16, "1 of 3 entries not finite, the first nan at (1,)"),
    ],
)
def test_nonfinite_env_output_is_refused_naming_the_env(what, timestep, detail):
    model = MuZero("MlpPolicy", flaky_envs(faults=(what,)), **SMALL)
    expected = f"Env 1 returned a non-finite {what} at timestep {timestep} ({detail}); MuZero needs finite"
    with pytest.raises(ValueError, match=re.escape(expected)):
        model.learn(64)


def test_nonfinite_steps_are_skipped_on_request_and_training_goes_on():
    model = MuZero("MlpPolicy", flaky_envs(), on_nonfinite="skip", **SMALL)
    model.learn(64)
    buffer = model.replay_buffer
    # env 1 leaves out, per 8-step episode, the step from its NaN observation, the inf reward and the NaN final observation
    assert buffer.size == 64 - 3 * (32 // 8)
    assert np.isfinite(buffer.observations[""][: buffer.size]).all() and np.isfinite(buffer.rewards[: buffer.size]).all()
    assert np.isfinite(buffer.final_values[: buffer.size]).all()
    assert model._n_updates > 0
    assert all(np.isfinite(parameter.detach().numpy()).all() for parameter in model.policy.parameters())


def test_unknown_nonfinite_mode():
    with pytest.raises(ValueError, match="Unknown on_nonfinite 'ignore'; supported: raise, skip"):
        cartpole_model(on_nonfinite="ignore")


def test_model_loaded_onto_an_env_with_another_action_space(tmp_path):
    model = MuZero("MlpPolicy", FlakyEnv(), **SMALL)
    model.save(tmp_path / "model.zip")
    other_actions = FlakyEnv()
    other_actions.action_space = spaces.Discrete(4)
    expected = "The env's action space Discrete(4) is not the model's Discrete(2)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        MuZero.load(tmp_path / "model.zip", env=other_actions)
    with pytest.raises(ValueError, match=re.escape(expected)):
        model.set_env(other_actions)


def test_replay_buffer_of_other_observations(tmp_path):
    cartpole_model().save_replay_buffer(tmp_path / "cartpole.npz")
    model = MuZero("MlpPolicy", flaky_envs(), **SMALL)
    expected = (
        f"The replay buffer in '{tmp_path / 'cartpole.npz'}' stores observations (Box([-4.8"
        ".*) with shape (4,) float32 for key ''; this model's observation space Box(-1.0, 1.0, (3,), float32) needs "
        "shape (3,) float32"
    )
    with pytest.raises(ValueError, match=re.escape(expected).replace(re.escape(".*"), ".*")):
        model.load_replay_buffer(tmp_path / "cartpole.npz")


def test_damaged_model_file(tmp_path):
    path = tmp_path / "model.zip"
    cartpole_model().save(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=re.escape(f"Cannot read model '{path}': the file is truncated or corrupt")):
        MuZero.load(path)
