"""The MuZero algorithm: losses against an explicit computation, learning on tiny envs, the SB3 surface."""

import csv
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_muzero import MuZero
from sb3_muzero.muzero.support import scalar_to_support
from tests.helpers import SMALL


class TwoStepChainEnv(gym.Env):
    """Start in state 0; action 0 leads to state 1, action 1 to state 2; from state 1 any action earns 1, from
    state 2 nothing, and the episode ends. The reward comes one step after the choice that earns it, so acting
    well needs learned values (n-step targets), not just rewards."""

    observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return self._observation(), {}

    def step(self, action):
        if self.state == 0:
            self.state = 1 if action == 0 else 2
            return self._observation(), 0.0, False, False, {}
        reward = 1.0 if self.state == 1 else 0.0
        return self._observation(), reward, True, False, {}

    def _observation(self) -> np.ndarray:
        return np.eye(3, dtype=np.float32)[self.state]


def first_actions_of(model: MuZero) -> np.ndarray:
    return model.predict(np.eye(3, dtype=np.float32)[[0, 0]], deterministic=True)[0]


@pytest.mark.slow
def test_learns_a_delayed_reward_that_needs_value_targets():
    env = make_vec_env(TwoStepChainEnv, n_envs=4, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, gamma=0.9, td_steps=2, num_unroll_steps=2, temperature_initial=1.0,
                   temperature_final=1.0, learning_rate=3e-3, **{**SMALL, "replay_ratio": 0.5})  # fmt: skip
    model.learn(1200)
    assert (first_actions_of(model) == 0).all()
    value_first, value_good, value_bad = model.policy.value(th.eye(3)).numpy()
    assert value_good > 0.6 and value_bad < 0.3 and value_first > 0.5


@pytest.mark.slow
def test_learns_the_identity_env_and_beats_chance():
    env = make_vec_env(lambda: IdentityEnv(4, ep_length=20), n_envs=4, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, gamma=0.5, td_steps=1, learning_rate=3e-3, **{**SMALL, "replay_ratio": 0.5})
    model.learn(1500)
    mean_reward, _ = evaluate_policy(model, make_vec_env(lambda: IdentityEnv(4, ep_length=20), n_envs=2, seed=1), 4)
    assert mean_reward >= 12  # chance is 5; a broken reward loss or target stays near it


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_self_play_stores_the_policy_target_of_the_search(algorithm):
    """The replay keeps what the search returns as the policy target: PUCT's visit distribution, Gumbel's improved
    policy (which is not the visit distribution)."""
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, search_algorithm=algorithm, **{**SMALL, "learning_starts": 100})
    results = []
    run_search = model.policy.run_search

    def recording_run_search(*args, **kwargs):
        results.append(run_search(*args, **kwargs))
        return results[-1]

    model.policy.run_search = recording_run_search
    model.learn(12)
    stored = model.replay_buffer.policies[:12]
    np.testing.assert_array_equal(stored, np.concatenate([result.policy_target for result in results]))
    visits = np.concatenate([result.visit_counts for result in results]).astype(np.float32)
    visit_distribution = visits / visits.sum(axis=1, keepdims=True)
    assert np.array_equal(stored, visit_distribution) == (algorithm == "puct")


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_loss_matches_an_explicit_per_step_computation(smoothing):
    """With ``policy_target_smoothing`` s the policy targets are (1 - s) * target + s / A where the step has a target."""
    env = make_vec_env(TwoStepChainEnv, n_envs=2, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, num_unroll_steps=2, td_steps=2, value_loss_coef=0.3, reward_loss_coef=0.7,
                   policy_loss_coef=1.1, policy_target_smoothing=smoothing, **SMALL)  # fmt: skip
    model.learn(40)
    sample = model.replay_buffer.sample(6, 2, 2, beta=1.0, rng=np.random.default_rng(0), with_bootstrap_observations=True)
    sample = sample._replace(weights=np.linspace(0.2, 1.0, 6).astype(np.float32))
    policy = model.policy
    policy.set_training_mode(True)

    with th.no_grad():
        expected = 0.0
        for b in range(6):
            obs = th.as_tensor(sample.observations[b : b + 1])
            latent, policy_logits, value_logits = policy.initial_inference(obs)
            total = 0.0
            for k in range(3):
                if k > 0:
                    latent, reward_logits, policy_logits, value_logits = policy.recurrent_inference(
                        latent, th.as_tensor(sample.actions[b : b + 1, k - 1])
                    )
                    reward_target = scalar_to_support(th.tensor([float(sample.reward_targets[b, k - 1])]), 5)
                    reward_ce = -(reward_target * th.log_softmax(reward_logits, -1)).sum().item()
                    total += 0.7 * reward_ce * sample.reward_mask[b, k - 1] / 2
                value_target = scalar_to_support(th.tensor([float(sample.value_targets[b, k])]), 5)
                value_ce = -(value_target * th.log_softmax(value_logits, -1)).sum().item()
                target = th.as_tensor(sample.policy_targets[b, k])
                if sample.policy_mask[b, k] > 0:
                    target = (1 - smoothing) * target + smoothing / len(target)
                policy_ce = -(target * th.log_softmax(policy_logits[0], -1)).sum().item()
                step_scale = 1.0 if k == 0 else 1 / 2
                total += step_scale * (0.3 * value_ce * sample.value_mask[b, k] + 1.1 * policy_ce * sample.policy_mask[b, k])
            expected += sample.weights[b] * total
        expected /= 6
    losses = model._gradient_step(sample)
    assert losses["loss"] == pytest.approx(expected, rel=1e-5)


def test_consistency_loss_trains_the_dynamics_towards_the_encoded_next_latents():
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, consistency_loss_coef=2.0,
                   num_unroll_steps=3, **{**SMALL, "learning_starts": 200})  # fmt: skip
    model.learn(200)  # collection only: the gradient steps below are the first
    sample = model.replay_buffer.sample(
        32, 3, model.td_steps, 1.0, np.random.default_rng(0), with_next_observations=True, with_bootstrap_observations=True
    )
    sample = sample._replace(weights=np.ones(32, np.float32))
    # The loss averages -cos over the K steps (masked): divide by the valid fraction to get a mean similarity.
    valid = sample.next_observation_mask.mean()
    before = -model._gradient_step(sample)["consistency_loss"] / valid
    for _ in range(60):
        after = -model._gradient_step(sample)["consistency_loss"] / valid
    assert valid > 0.5 and after > 0.9 and after > before + 0.1


def test_gradient_entering_the_dynamics_is_halved():
    from sb3_muzero.muzero.latent import scale_gradient

    x = th.ones(3, requires_grad=True)
    (scale_gradient(x, 0.5) * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0)


def test_priorities_are_the_distance_between_search_value_and_target():
    model = MuZero("MlpPolicy", make_vec_env(TwoStepChainEnv, n_envs=2, seed=0), seed=0, **SMALL)
    model.learn(40)
    sample = model.replay_buffer.sample(
        8, model.num_unroll_steps, model.td_steps, 1.0, np.random.default_rng(1), with_bootstrap_observations=True
    )
    model._gradient_step(sample)
    expected = np.abs(sample.root_values - sample.value_targets[:, 0]) + model.replay_buffer.priority_epsilon
    np.testing.assert_allclose(model.replay_buffer.priorities.get(sample.slots), expected, rtol=1e-5)


def test_learn_accepts_a_float_and_predict_handles_single_and_batched_observations():
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **SMALL)
    model.learn(2e2)
    assert model.num_timesteps == 200
    single, _ = model.predict(np.zeros(4, np.float32), deterministic=True)
    batch, _ = model.predict(np.zeros((5, 4), np.float32), deterministic=True)
    assert np.shape(single) == () and single in (0, 1)
    assert batch.shape == (5,) and set(batch.tolist()) <= {0, 1}
    stochastic = {int(model.predict(np.zeros(4, np.float32), deterministic=False)[0]) for _ in range(10)}
    assert stochastic <= {0, 1}


def test_deterministic_predict_repeats_itself():
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **SMALL)
    model.learn(100)
    observations = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    first, _ = model.predict(observations, deterministic=True)
    for _ in range(3):
        np.testing.assert_array_equal(model.predict(observations, deterministic=True)[0], first)


@pytest.mark.parametrize(
    "action_space",
    [spaces.Box(-1, 1, (2,)), spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(3)],
)
def test_unsupported_action_spaces_are_refused(action_space):
    class Env(gym.Env):
        observation_space = spaces.Box(-1, 1, (3,), np.float32)

        def __init__(self):
            self.action_space = action_space

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    with pytest.raises(ValueError, match="supports Discrete action spaces only"):
        MuZero("MlpPolicy", Env())


def test_training_logs_the_sb3_and_search_keys(tmp_path):
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(300, log_interval=1)
    with open(tmp_path / "progress.csv") as file:
        keys = set(next(csv.reader(file)))
    expected = {"rollout/ep_rew_mean", "train/policy_loss", "train/value_loss", "train/reward_loss",
                "train/learning_rate", "time/fps", "search/root_value", "search/policy_target_entropy"}  # fmt: skip
    assert expected <= keys


def test_truncated_episodes_store_the_value_of_their_final_observation():
    env = make_vec_env(lambda: IdentityEnv(3, ep_length=5), n_envs=2, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, **SMALL)
    model.learn(20)
    buffer = model.replay_buffer
    truncated = np.flatnonzero(buffer.truncated[: buffer.size])
    assert len(truncated) == 4 and not buffer.terminated[: buffer.size].any()  # 2 envs x 10 steps, episodes of 5
    assert (buffer.final_values[truncated] != 0).all()


def dict_env() -> gym.Env:
    class DictIdentity(gym.Env):
        observation_space = spaces.Dict({"a": spaces.Box(0, 1, (2,), np.float32), "b": spaces.Box(0, 1, (3,), np.float32)})
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None) -> tuple[Any, dict]:
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), float(action), False, False, {}

    return DictIdentity()


def test_multi_input_policy_trains_on_dict_observations():
    model = MuZero("MultiInputPolicy", make_vec_env(dict_env, n_envs=2, seed=0), seed=0, **SMALL)
    model.learn(100)
    action, _ = model.predict(model.observation_space.sample(), deterministic=True)
    assert action in (0, 1)


class ReplacesOddActions(gym.Wrapper):
    """Takes action 0 whenever the agent chooses an odd action, and says so in the step's info, as
    ``make_atari_vec_env`` does when it presses FIRE after a lost life."""

    def step(self, action):
        executed = 0 if action % 2 else action
        observation, reward, terminated, truncated, info = self.env.step(executed)
        if executed != action:
            info = {**info, "executed_action": executed}
        return observation, reward, terminated, truncated, info


def test_the_replay_stores_the_actions_the_envs_executed():
    env = make_vec_env(lambda: ReplacesOddActions(IdentityEnv(4, ep_length=10)), n_envs=2, seed=0)
    model = MuZero("MlpPolicy", env, seed=0, **{**SMALL, "learning_starts": 1000})
    model.learn(100)
    stored = model.replay_buffer.actions[: model.replay_buffer.size]
    assert len(stored) == 100 and set(stored.tolist()) <= {0, 2}
    assert (stored == 0).sum() > 30  # the odd choices (about half) were stored as the 0 the env took


def test_a_budget_that_never_trains_is_warned_about_with_the_numbers():
    model = MuZero("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, **{**SMALL, "learning_starts": 100})
    with pytest.warns(UserWarning, match="ends at 50 env steps, not past learning_starts=100: it only collects"):
        model.learn(50)
    assert model._n_updates == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.learn(100, reset_num_timesteps=False)  # ends at 150: trains
    assert model._n_updates > 0
