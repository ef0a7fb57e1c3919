"""SB3's tests/test_run.py, ported to MuZero: the algorithm runs with its options and multiple envs.

Not ported: action noise (DDPG, TD3), gSDE, entropy coefficients (SAC), advantage normalization and
clip ranges (A2C, PPO): features of continuous-action or on-policy algorithms.
"""

import gymnasium as gym
import pytest
from stable_baselines3.common.env_util import make_vec_env

from sb3_muzero import MuZero
from tests.helpers import SMALL


@pytest.mark.parametrize("env_id", ["CartPole-v1"])
def test_muzero(env_id):
    model = MuZero("MlpPolicy", env_id, seed=0, verbose=1, buffer_size=500, learning_rate=3e-4, **SMALL)
    model.learn(total_timesteps=100)


@pytest.mark.parametrize("train_freq", [4, (4, "step"), (1, "episode")])
def test_train_freq(tmp_path, train_freq):
    model = MuZero("MlpPolicy", "CartPole-v1", buffer_size=10000, verbose=1, train_freq=train_freq, **SMALL)
    model.learn(total_timesteps=60)
    model.save(tmp_path / "test_save.zip")
    env = model.get_env()
    model = MuZero.load(tmp_path / "test_save.zip", env=env)
    model.learn(total_timesteps=60)
    model = MuZero.load(tmp_path / "test_save.zip", train_freq=train_freq, env=env)
    model.learn(total_timesteps=60)


@pytest.mark.parametrize("train_freq", ["4", ("1", "episode"), "non_sense", (1, "close")])
def test_train_freq_fail(train_freq):
    with pytest.raises(ValueError):
        model = MuZero("MlpPolicy", "CartPole-v1", buffer_size=10000, verbose=1, train_freq=train_freq, **SMALL)
        model.learn(total_timesteps=60)


def test_offpolicy_multi_env():
    def make_env():
        env = gym.make("CartPole-v1")
        # to check that the code handling timeouts runs: CartPole cannot fail within 5 steps
        return gym.wrappers.TimeLimit(env, 5)

    env = make_vec_env(make_env, n_envs=2)
    model = MuZero("MlpPolicy", env, buffer_size=10000, verbose=0, train_freq=5, **{**SMALL, "learning_starts": 40})
    model.learn(total_timesteps=80)
    assert model.replay_buffer.truncated.any()

    # SB3's gradient_steps=-1 does as many gradient steps as transitions collected; MuZero does replay_ratio per
    # transition, so replay_ratio=1 is SB3's check
    train_freq = 3
    model = MuZero("MlpPolicy", env, buffer_size=10000, train_freq=train_freq,
                   **{**SMALL, "learning_starts": 0, "replay_ratio": 1.0})  # fmt: skip
    model.learn(total_timesteps=train_freq)
    assert model.logger.name_to_value["train/n_updates"] == train_freq * env.num_envs
