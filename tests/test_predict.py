"""SB3's tests/test_predict.py, ported to MuZero.

SB3 runs ``test_predict`` on Pendulum-v1 too: its Box actions are refused by MuZero (see
``test_continuous_actions_are_refused``), so only CartPole-v1 is predicted on.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_muzero import MuZero
from tests.helpers import SMALL


class SubClassedBox(spaces.Box):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


class CustomSubClassedSpaceEnv(gym.Env):
    def __init__(self):
        super().__init__()
        self.observation_space = SubClassedBox(-1, 1, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)  # SB3 uses a SubClassedBox: continuous actions, not for MuZero

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, bool(self.np_random.random() > 0.5), False, {}


def test_auto_wrap():
    """A gym env is wrapped into a VecEnv."""
    env = gym.make("CartPole-v1")
    model = MuZero("MlpPolicy", env, **SMALL)
    model.learn(100)


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_predict(device):
    if device == "cuda" and not th.cuda.is_available():
        pytest.skip("CUDA not available")
    env_id = "CartPole-v1"
    model = MuZero("MlpPolicy", env_id, device=device, **SMALL)
    assert get_device(device).type == model.policy.device.type

    env = gym.make(env_id)
    vec_env = DummyVecEnv([lambda: gym.make(env_id), lambda: gym.make(env_id)])

    obs, _ = env.reset()
    action, _ = model.predict(obs)
    assert isinstance(action, np.ndarray)
    assert action.shape == env.action_space.shape
    assert env.action_space.contains(action)

    vec_env_obs = vec_env.reset()
    action, _ = model.predict(vec_env_obs)
    assert isinstance(action, np.ndarray)
    assert action.shape[0] == vec_env_obs.shape[0]

    # sampled from the visit counts (SB3 checks DQN's epsilon-greedy exploration here)
    action, _ = model.predict(obs, deterministic=False)
    assert action.shape == env.action_space.shape
    assert env.action_space.contains(action)
    action, _ = model.predict(vec_env_obs, deterministic=False)
    assert action.shape[0] == vec_env_obs.shape[0]


def test_discrete_observations_predict():
    """A Discrete observation, not vectorized, does not crash predict (SB3's test_dqn_epsilon_greedy)."""
    env = IdentityEnv(2)
    model = MuZero("MlpPolicy", env, **SMALL)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=False)
    assert env.action_space.contains(action)


def test_subclassed_space_env():
    env = CustomSubClassedSpaceEnv()
    model = MuZero("MlpPolicy", env, **SMALL)
    model.learn(100)
    obs, _ = env.reset()
    env.step(model.predict(obs)[0])


def test_continuous_actions_are_refused():
    """Pendulum-v1, which SB3 predicts on with its continuous-action algorithms."""
    with pytest.raises(ValueError, match="supports Discrete action spaces only"):
        MuZero("MlpPolicy", "Pendulum-v1")
