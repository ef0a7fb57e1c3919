"""SB3's tests/test_callbacks.py, ported to MuZero (shorter runs), and MuZero's own CheckpointCallback.

Not ported: ``test_eval_success_logging`` (HER on BitFlippingEnv, whose MultiBinary goal dicts MuZero does
not take) and the multi-env ``StopTrainingOnMaxEpisodes`` check SB3 runs for A2C and PPO only (Pendulum).
"""

import os
import pickle

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common import callbacks as sb3_callbacks
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    EvalCallback,
    EveryNTimesteps,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnNoModelImprovement,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_muzero import CheckpointCallback, MuZero, latest_checkpoint
from sb3_muzero.common.callbacks import find_checkpoints
from tests.helpers import SMALL

ENV_ID = "CartPole-v1"


def test_callbacks(tmp_path):
    log_folder = tmp_path / "logs/callbacks/"
    model = MuZero("MlpPolicy", ENV_ID, **SMALL)

    checkpoint_callback = sb3_callbacks.CheckpointCallback(save_freq=100, save_path=log_folder)
    muzero_checkpoint_callback = CheckpointCallback(save_freq=100, save_path=log_folder, name_prefix="muzero")

    eval_env = gym.make(ENV_ID)
    # Stop training if the performance is good enough, or if it does not improve
    callback_on_best = StopTrainingOnRewardThreshold(reward_threshold=1000, verbose=1)
    callback_no_model_improvement = StopTrainingOnNoModelImprovement(max_no_improvement_evals=10, min_evals=1, verbose=1)
    eval_callback = EvalCallback(
        eval_env,
        callback_on_new_best=callback_on_best,
        callback_after_eval=callback_no_model_improvement,
        best_model_save_path=log_folder,
        log_path=log_folder,
        eval_freq=100,
        n_eval_episodes=2,
        warn=False,
    )
    # Equivalent to checkpoint_callback, event-driven
    checkpoint_on_event = sb3_callbacks.CheckpointCallback(save_freq=1, save_path=log_folder, name_prefix="event")
    event_callback = EveryNTimesteps(n_steps=100, callback=checkpoint_on_event)

    callback_max_episodes = StopTrainingOnMaxEpisodes(max_episodes=100, verbose=1)

    callback = CallbackList(
        [checkpoint_callback, muzero_checkpoint_callback, eval_callback, event_callback, callback_max_episodes]
    )
    model.learn(200, callback=callback)

    # access to local variables
    assert model.env.observation_space.contains(callback.locals["new_obs"][0])
    assert isinstance(callback.globals, dict)
    # the child callbacks were called
    assert checkpoint_callback.locals["new_obs"] is callback.locals["new_obs"]
    assert event_callback.locals["new_obs"] is callback.locals["new_obs"]
    assert checkpoint_on_event.locals["new_obs"] is callback.locals["new_obs"]
    # the callbacks' counters match the model's
    assert event_callback.num_timesteps == model.num_timesteps
    assert event_callback.n_calls == model.num_timesteps

    saved = set(os.listdir(log_folder))
    assert {"rl_model_100_steps.zip", "rl_model_200_steps.zip", "event_100_steps.zip", "best_model.zip"} <= saved
    assert {"muzero_100_steps.zip", "muzero_replay_buffer_100_steps.npz", "muzero_200_steps.zip"} <= saved
    assert "evaluations.npz" in saved

    model.learn(100, callback=None)
    # a list of callbacks becomes a CallbackList
    model.learn(100, callback=[checkpoint_callback, eval_callback])
    # a function becomes a callback (the old way of doing callbacks)
    model.learn(100, callback=lambda _locals, _globals: True)
    # with a progress bar
    model.learn(100, callback=[checkpoint_callback], progress_bar=True)


def test_eval_callback_vec_env():
    """The eval callback does not crash with a VecEnv to evaluate on."""
    n_eval_envs = 3
    train_env = IdentityEnv(ep_length=20)
    eval_env = DummyVecEnv([lambda: IdentityEnv(ep_length=20)] * n_eval_envs)
    model = MuZero("MlpPolicy", train_env, seed=0, gamma=0.5, td_steps=1, learning_rate=3e-3, **SMALL)

    eval_callback = EvalCallback(eval_env, eval_freq=100, n_eval_episodes=n_eval_envs, warn=False)
    model.learn(200, callback=eval_callback)
    assert eval_callback.n_calls == 200
    assert 0.0 <= eval_callback.last_mean_reward <= 20.0  # SB3's A2C reaches 100 of 100 after 300 steps


def test_eval_callback_logs_are_written_with_the_correct_timestep(tmp_path):
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, **SMALL)
    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=1)
    eval_callback = EvalCallback(eval_env, eval_freq=50, n_eval_episodes=1, log_path=str(tmp_path), warn=False)
    model.learn(200, callback=eval_callback)

    evaluations = np.load(tmp_path / "evaluations.npz")
    # eval_freq counts calls, one per vector step of 2 envs
    np.testing.assert_array_equal(evaluations["timesteps"], [100, 200])


def test_checkpoint_additional_info(tmp_path):
    # MuZero refuses VecNormalize(norm_reward=True) (its targets need the rewards as they are); SB3 uses the default
    env = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]), norm_reward=False)
    checkpoint_callback = sb3_callbacks.CheckpointCallback(
        save_freq=100, save_path=tmp_path, save_replay_buffer=True, save_vecnormalize=True, verbose=2
    )
    model = MuZero("MlpPolicy", env, **SMALL)
    model.learn(100, callback=checkpoint_callback)

    assert os.path.exists(tmp_path / "rl_model_100_steps.zip")
    assert os.path.exists(tmp_path / "rl_model_replay_buffer_100_steps.pkl")
    assert os.path.exists(tmp_path / "rl_model_vecnormalize_100_steps.pkl")
    # Load the saved files
    model = MuZero.load(tmp_path / "rl_model_100_steps.zip", env=env)
    model.load_replay_buffer(tmp_path / "rl_model_replay_buffer_100_steps.pkl")
    VecNormalize.load(tmp_path / "rl_model_vecnormalize_100_steps.pkl", DummyVecEnv([lambda: gym.make(ENV_ID)]))


def test_callbacks_stop_training():
    class StopAfter(BaseCallback):
        def _on_step(self) -> bool:
            return self.n_calls < 30

    model = MuZero("MlpPolicy", ENV_ID, **SMALL)
    model.learn(200, callback=StopAfter())
    assert model.num_timesteps == 30


# --- sb3_muzero.CheckpointCallback ------------------------------------------------------------------


def test_muzero_checkpoint_saves_between_two_steps(tmp_path):
    """Each checkpoint holds every step up to its timestep in its replay buffer (SB3's too: MuZero stores a step
    before the callbacks see it)."""
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, train_freq=3, **SMALL)
    sb3_checkpoint = sb3_callbacks.CheckpointCallback(5, str(tmp_path), "sb3", save_replay_buffer=True)
    model.learn(60, callback=[CheckpointCallback(5, str(tmp_path), save_vecnormalize=True), sb3_checkpoint])

    checkpoints = find_checkpoints(str(tmp_path))
    # due every 5 calls (10 steps), saved at the next rollout start (rollouts are 3 calls, 6 steps, long) or at the end
    assert [checkpoint.num_timesteps for checkpoint in checkpoints] == [12, 24, 30, 42, 54, 60]
    for checkpoint in checkpoints:
        loaded = MuZero.load(checkpoint.model_path)
        loaded.load_replay_buffer(checkpoint.replay_buffer_path)
        assert loaded.num_timesteps == loaded.replay_buffer.size == checkpoint.num_timesteps
        assert checkpoint.vecnormalize_path is None  # no VecNormalize to save
    sb3_checkpoint_model = MuZero.load(tmp_path / "sb3_10_steps.zip")
    sb3_checkpoint_model.load_replay_buffer(tmp_path / "sb3_replay_buffer_10_steps.pkl")
    assert sb3_checkpoint_model.replay_buffer.size == sb3_checkpoint_model.num_timesteps == 10
    assert latest_checkpoint(str(tmp_path)) == checkpoints[-1]


def test_muzero_checkpoint_keeps_the_last_ones(tmp_path):
    model = MuZero("MlpPolicy", ENV_ID, **SMALL)
    model.learn(50, callback=CheckpointCallback(10, str(tmp_path), keep_last=2))
    assert sorted(os.listdir(tmp_path)) == [
        "rl_model_40_steps.zip",
        "rl_model_50_steps.zip",
        "rl_model_replay_buffer_40_steps.npz",
        "rl_model_replay_buffer_50_steps.npz",
    ]


def test_muzero_checkpoint_refuses_envs_that_cannot_be_saved(tmp_path):
    env = Monitor(gym.make(ENV_ID), filename=str(tmp_path / "monitor"))  # holds an open file
    model = MuZero("MlpPolicy", env, **SMALL)
    with pytest.raises(
        ValueError, match="The envs cannot be saved with the model: the wrapper Monitor of env 0 does not pickle"
    ):
        model.learn(10, callback=CheckpointCallback(5, str(tmp_path), save_env=True))
    normalized = MuZero("MlpPolicy", VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]), norm_reward=False), **SMALL)
    with pytest.raises(ValueError, match="A VecNormalize env cannot be saved in the model file"):
        normalized.learn(10, callback=CheckpointCallback(5, str(tmp_path), save_env=True))
    with pytest.raises(ValueError, match="A VecNormalize env cannot be saved in the model file"):
        normalized.save(tmp_path / "model.zip", include=["env"])
    with pytest.raises(ValueError, match="save_freq must be an integer >= 1, got 0"):
        CheckpointCallback(0, str(tmp_path))
    with pytest.raises(ValueError, match="keep_last must be None or an integer >= 1, got 0"):
        CheckpointCallback(5, str(tmp_path), keep_last=0)


def test_muzero_checkpoint_saves_vecnormalize_atomically(tmp_path):
    env = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]), norm_reward=False)
    model = MuZero("MlpPolicy", env, **SMALL)
    model.learn(20, callback=CheckpointCallback(10, str(tmp_path), save_vecnormalize=True))
    checkpoint = latest_checkpoint(str(tmp_path))
    assert checkpoint.num_timesteps == 20
    with open(checkpoint.vecnormalize_path, "rb") as file:
        statistics = pickle.load(file)
    np.testing.assert_array_equal(statistics.obs_rms.mean, env.obs_rms.mean)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]
