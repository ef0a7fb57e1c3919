"""SB3's tests/test_spaces.py, ported to MuZero: the observation spaces it takes, and the action spaces it refuses.

MuZero takes Discrete actions only: where SB3 trains on Box actions (``test_float64_action_space``,
``test_sde_multi_dim``), the action space here is Discrete and the float64 cases are observations.
SB3's algorithms refuse unsupported action spaces with an AssertionError (``supported_action_spaces``);
MuZero raises a ValueError with what it was given and what it takes (an assert vanishes under ``python -O``).
"""

from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.spaces.space import Space
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_muzero import MuZero
from tests.helpers import SMALL

BOX_SPACE_FLOAT64 = spaces.Box(low=-1, high=1, shape=(2,), dtype=np.float64)
BOX_SPACE_FLOAT32 = spaces.Box(low=-1, high=1, shape=(2,), dtype=np.float32)
DISCRETE_ACTIONS = spaces.Discrete(4)


@dataclass
class DummyEnv(gym.Env):
    observation_space: Space
    action_space: Space

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            super().reset(seed=seed)
        return self.observation_space.sample(), {}


class DummyMultidimensionalAction(DummyEnv):
    def __init__(self):
        super().__init__(BOX_SPACE_FLOAT32, spaces.Box(low=-1, high=1, shape=(2, 2), dtype=np.float32))


class DummyMultiBinary(DummyEnv):
    def __init__(self, n):
        super().__init__(spaces.MultiBinary(n), DISCRETE_ACTIONS)


class DummyMultiDiscreteSpace(DummyEnv):
    def __init__(self, nvec):
        super().__init__(spaces.MultiDiscrete(nvec), DISCRETE_ACTIONS)


@pytest.mark.parametrize(
    "env", [DummyMultiDiscreteSpace([4, 3]), DummyMultiBinary(8), DummyMultiBinary((3, 2)), DummyMultidimensionalAction()]
)
def test_env(env):
    # the envs used for testing are valid
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env", [DummyMultiDiscreteSpace([4, 3]), DummyMultiBinary(8), DummyMultiBinary((3, 2))])
def test_identity_spaces(env):
    """MultiDiscrete and MultiBinary observations."""
    env = gym.wrappers.TimeLimit(env, max_episode_steps=100)
    model = MuZero("MlpPolicy", env, gamma=0.5, seed=1, **SMALL)
    model.learn(total_timesteps=60)
    evaluate_policy(model, env, n_eval_episodes=1, warn=False)


@pytest.mark.parametrize("env", ["Pendulum-v1", "CartPole-v1", DummyMultidimensionalAction()])
def test_action_spaces(env):
    if env == "CartPole-v1":
        MuZero("MlpPolicy", env, **SMALL)
    else:
        with pytest.raises(ValueError, match="MuZero supports Discrete action spaces only, got Box"):
            MuZero("MlpPolicy", env)


def test_discrete_obs_space():
    env = make_vec_env("Taxi-v4", n_envs=2, seed=0)
    MuZero("MlpPolicy", env, buffer_size=1000, **SMALL).learn(64)


@pytest.mark.parametrize(
    "obs_space",
    [
        BOX_SPACE_FLOAT32,
        BOX_SPACE_FLOAT64,
        spaces.Dict({"a": BOX_SPACE_FLOAT32, "b": BOX_SPACE_FLOAT32}),
        spaces.Dict({"a": BOX_SPACE_FLOAT32, "b": BOX_SPACE_FLOAT64}),
    ],
)
def test_float64_observation_space(obs_space):
    env = gym.wrappers.TimeLimit(DummyEnv(obs_space, DISCRETE_ACTIONS), max_episode_steps=200)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    model = MuZero(policy, env, **{**SMALL, "learning_starts": 40})
    model.learn(64)
    initial_obs, _ = env.reset()
    action, _ = model.predict(initial_obs, deterministic=False)
    assert action.dtype == env.action_space.dtype


@pytest.mark.parametrize(
    "action_space", [spaces.MultiBinary([2, 3]), spaces.MultiBinary(3), spaces.MultiDiscrete([2, 3]), BOX_SPACE_FLOAT64]
)
def test_unsupported_action_spaces(action_space):
    env = DummyEnv(BOX_SPACE_FLOAT32, action_space)
    with pytest.raises(ValueError, match=r"MuZero supports Discrete action spaces only, got (MultiBinary|MultiDiscrete|Box)"):
        MuZero("MlpPolicy", env)


@pytest.mark.parametrize(
    "obs_space",
    [
        spaces.Tuple([BOX_SPACE_FLOAT32, BOX_SPACE_FLOAT32]),
        spaces.Dict({"a": BOX_SPACE_FLOAT32, "b": spaces.Discrete(3)}),
    ],
)
def test_unsupported_observation_spaces(obs_space):
    env = DummyEnv(obs_space, DISCRETE_ACTIONS)
    policy = "MultiInputPolicy" if isinstance(obs_space, spaces.Dict) else "MlpPolicy"
    with pytest.raises(ValueError, match="MuZero supports Box, Discrete, MultiDiscrete and MultiBinary observations"):
        MuZero(policy, env)


def test_frame_stacked_dict_observations():
    """SB3's VecFrameStack over Dict observations (SB3's test_vec_envs): the stacks are stored whole."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    from sb3_muzero.muzero.muzero import detect_frame_stack

    dict_space = spaces.Dict(
        {"position": spaces.Box(-1, 1, (2,), np.float32), "image": spaces.Box(0, 255, (1, 36, 36), np.uint8)}
    )
    env = VecFrameStack(DummyVecEnv([lambda: DummyEnv(dict_space, DISCRETE_ACTIONS)]), n_stack=3)
    assert detect_frame_stack(env) == 1
    model = MuZero("MultiInputPolicy", env, **SMALL).learn(40)
    assert model.replay_buffer.observations["image"].shape[1:] == (3, 36, 36)
