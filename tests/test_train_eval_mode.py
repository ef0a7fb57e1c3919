"""SB3's tests/test_train_eval_mode.py, ported to MuZero: BatchNorm statistics and dropout follow the mode.

The features extractor (SB3's) puts a BatchNorm and a dropout in front of MuZero's representation network:
training updates the statistics; collecting (the search) and predicting leave them as they are, and
predictions repeat themselves. A2C/PPO rollout-buffer variants are on-policy: not ported.
"""

import gymnasium as gym
import numpy as np
import torch as th
import torch.nn as nn
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_muzero import MuZero
from tests.helpers import SMALL


class FlattenBatchNormDropoutExtractor(BaseFeaturesExtractor):
    """Flattens the input, then batch normalization and dropout."""

    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.flatten = nn.Flatten()
        self.batch_norm = nn.BatchNorm1d(self._features_dim)
        self.dropout = nn.Dropout(0.5)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.dropout(self.batch_norm(self.flatten(observations)))


POLICY_KWARGS = dict(
    net_arch=[16, 16], latent_dim=16, support_size=5, features_extractor_class=FlattenBatchNormDropoutExtractor
)


def batch_norm_stats(model: MuZero) -> list[th.Tensor]:
    """Bias and running mean of the policy's BatchNorm, and of the target network's when there is one."""
    policies = [model.policy] + ([model.target_policy] if model.target_policy is not None else [])
    stats = []
    for policy in policies:
        batch_norm = policy.features_extractor.batch_norm
        stats += [batch_norm.bias.clone(), batch_norm.running_mean.clone()]
    return stats


def make_model(**kwargs) -> MuZero:
    settings = {**SMALL, "policy_kwargs": POLICY_KWARGS, "seed": 1, **kwargs}
    return MuZero("MlpPolicy", "CartPole-v1", **settings)


def test_muzero_train_with_batch_norm():
    model = make_model(learning_starts=0, target_update_interval=100_000)  # the target network is not refreshed
    bias_before, running_mean_before, target_bias_before, target_running_mean_before = batch_norm_stats(model)

    model.learn(total_timesteps=100)
    bias_after, running_mean_after, target_bias_after, target_running_mean_after = batch_norm_stats(model)

    assert ~th.isclose(bias_before, bias_after).all()
    assert ~th.isclose(running_mean_before, running_mean_after).all()
    # No update of the target network
    assert th.isclose(target_bias_before, target_bias_after).all()
    assert th.isclose(target_running_mean_before, target_running_mean_after).all()

    # A copy to the target network takes the running statistics along
    model.target_update_interval = 1
    model.train(gradient_steps=4, batch_size=model.batch_size)
    bias, running_mean, target_bias, target_running_mean = batch_norm_stats(model)
    assert th.equal(bias, target_bias) and th.equal(running_mean, target_running_mean)


def test_offpolicy_collect_rollout_batch_norm():
    """Collecting steps (a search per step) leaves the statistics unchanged (no training: learning_starts not reached)."""
    model = make_model(learning_starts=1000, train_freq=1)
    batch_norm_stats_before = batch_norm_stats(model)
    model.learn(total_timesteps=100)
    assert model._n_updates == 0 and model.replay_buffer.size == 100
    for param_before, param_after in zip(batch_norm_stats_before, batch_norm_stats(model)):
        assert th.isclose(param_before, param_after).all()


def test_predict_with_dropout_batch_norm():
    model = make_model(learning_starts=0)
    batch_norm_stats_before = batch_norm_stats(model)

    env = model.get_env()
    observation = env.reset()
    first_prediction, _ = model.predict(observation, deterministic=True)
    for _ in range(5):
        prediction, _ = model.predict(observation, deterministic=True)
        np.testing.assert_allclose(first_prediction, prediction)

    for param_before, param_after in zip(batch_norm_stats_before, batch_norm_stats(model)):
        assert th.isclose(param_before, param_after).all()
