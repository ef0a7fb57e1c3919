"""SB3's own identity check on ten actions, with MuZero (SB3's upstream ``tests/test_identity.py``).

SB3 checks its discrete algorithms with ``IdentityEnv(10)`` in a ``DummyVecEnv`` (reward 1 for the action equal to
the observation, 100 steps per episode), ``gamma=0.4``, ``seed=3``, DQN's budget of 4,000 steps with
``learning_starts=0``, then ``evaluate_policy(..., n_eval_episodes=20, reward_threshold=90)``. The tests below run
exactly that with MuZero's defaults otherwise: PUCT with its default 25 simulations, and Gumbel at its defaults with
10 simulations, one per action, so that Sequential Halving's first phase visits all ten actions and the deterministic
evaluation acts on the completed Q values of every action.

Neither passes. Measured on the 2-core VM (2026-12-02), one training each, the same numbers every run:

- PUCT (25 simulations): mean reward 60.65. In 4 of the 10 states (0, 2, 5 and 8) the correct action was taken in 0,
  0, 4 and 6 of about 400 visits; in the other states the reward model learned it (predicted reward 0.78 to 1.09 for
  the correct action, about 0.05 for the others) and the policy follows it.
- Gumbel (10 simulations): mean reward 39.35. In 5 states (0, 4, 5, 6 and 9) the correct action was never taken; the
  reward model predicts 1.0 for the correct action in the five others and 0.0 in these five.

So the cause is exploration, not a learning bug: the reward model learns the reward of every (state, action) it sees,
and nothing in the search is optimistic about an action never tried. Its Q equals the others' up to the model's
noise, and both searches stretch Q differences to a fixed range (PUCT's min-max normalisation, Gumbel's rescaled
sigma of 5.1 logits with 50 + 1 visits) before adding exploration (a prior term, Gumbel noise of scale at most 1), so
the same wrong action wins every time. Also measured with Gumbel: 2 simulations, 50.2; 4, 16.75; 1, 26.5; 10 with one
unrolled step, 50.65; with the Gumbel noise kept at scale 1 (``temperature_final=1.0``): 10 simulations, 47.8, and 2
simulations, 50.2 with the reward model right in all ten states but the policy in four.

The check is marked ``xfail(strict=True)``: a change that makes it pass turns it into a failure, to be unmarked. The
measured cause is asserted by ``test_the_identity_check_fails_on_states_whose_action_was_never_tried``.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_muzero import MuZero

NUM_ACTIONS = 10
SEARCHES = {
    "puct-25": dict(search_algorithm="puct", num_simulations=25),
    "gumbel-10": dict(search_algorithm="gumbel", num_simulations=NUM_ACTIONS),
}

pytestmark = pytest.mark.slow  # two trainings of about two minutes each on the 2-core VM


@pytest.fixture(scope="module", params=list(SEARCHES))
def trained(request) -> tuple[MuZero, DummyVecEnv]:
    """SB3's identity setting: IdentityEnv(10), gamma 0.4, seed 3, 4,000 steps from the first step on."""
    th.set_num_threads(1)
    env = DummyVecEnv([lambda: IdentityEnv(NUM_ACTIONS)])
    model = MuZero("MlpPolicy", env, gamma=0.4, seed=3, learning_starts=0, **SEARCHES[request.param]).learn(4000)
    return model, env


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="exploration: see the module docstring")
def test_sb3_identity_check_on_ten_actions(trained):
    model, env = trained
    evaluate_policy(model, env, n_eval_episodes=20, reward_threshold=90)


def predicted_rewards(model: MuZero) -> np.ndarray:
    """[state, action] the reward model's prediction for every state and action."""
    observations, _ = model.policy.obs_to_tensor(np.arange(NUM_ACTIONS))
    with th.no_grad():
        latent, _, _ = model.policy.initial_inference(observations)
        rewards = [
            model.policy.to_scalar(model.policy.recurrent_inference(latent, th.full((NUM_ACTIONS,), a))[1])
            for a in range(NUM_ACTIONS)
        ]
    return th.stack(rewards, dim=1).numpy()


def test_the_identity_check_fails_on_states_whose_action_was_never_tried(trained):
    """Where the replay holds rewarded steps of a state, the reward model predicts the correct action's reward; some
    states have (almost) none, and there the model predicts nothing, so the evaluation cannot act right."""
    model, _ = trained
    buffer = model.replay_buffer
    states = buffer.observations[""][: model.num_timesteps].reshape(-1).astype(int)
    rewarded = np.bincount(states[buffer.rewards[: model.num_timesteps].reshape(-1) > 0.5], minlength=NUM_ACTIONS)
    correct_reward = predicted_rewards(model).diagonal()
    learned, untried = rewarded >= 100, rewarded <= 10
    assert learned.any() and untried.any() and (learned | untried).sum() >= 8
    assert (correct_reward[learned] > 0.6).all() and (np.abs(correct_reward[untried]) < 0.2).all()
