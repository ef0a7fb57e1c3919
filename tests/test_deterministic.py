"""SB3's tests/test_deterministic.py, ported to MuZero: the same seed gives the same actions and rewards.

SB3's action-noise variant is for continuous actions (TD3, SAC): not ported.
"""

import numpy as np
import torch as th

from sb3_muzero import MuZero
from tests.helpers import SMALL, assert_same_parameters

N_STEPS_TRAINING = 100
SEED = 0


def test_deterministic_training_common():
    results = [[], []]
    rewards = [[], []]
    models = []
    for i in range(2):
        model = MuZero("MlpPolicy", "CartPole-v1", seed=SEED, target_update_interval=20, **SMALL)
        model.learn(N_STEPS_TRAINING)
        env = model.get_env()
        obs = env.reset()
        for _ in range(50):
            action, _ = model.predict(obs, deterministic=False)
            obs, reward, _, _ = env.step(action)
            results[i].append(action)
            rewards[i].append(reward)
        models.append(model)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(rewards[0], rewards[1])
    # more than SB3 checks: the learned parameters are the same, bit for bit
    assert_same_parameters(*models)


def test_another_seed_gives_another_run():
    """The check above can fail: a different seed changes the networks."""
    first = MuZero("MlpPolicy", "CartPole-v1", seed=SEED, **SMALL)
    second = MuZero("MlpPolicy", "CartPole-v1", seed=SEED + 1, **SMALL)
    assert not all(th.equal(a, b) for a, b in zip(first.policy.parameters(), second.policy.parameters()))
