"""python -m sb3_muzero.inspect: the numbers in its pictures are the episode's, computed here another way."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from sb3_muzero import MuZero
from sb3_muzero.inspect import episode_figure, play_episode, save_gif, tree_edges, tree_figure

GAMMA = 0.9


@pytest.fixture(scope="module")
def model():
    return MuZero("MlpPolicy", "CartPole-v1", num_simulations=12, gamma=GAMMA, seed=0,
                  policy_kwargs=dict(net_arch=[16], latent_dim=8))  # fmt: skip


def replay(model, seed: int):
    """The same deterministic episode played with gymnasium's env and ``predict``: observations, actions, rewards."""
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    observation, _ = env.reset(seed=seed)
    first_frame = env.render()
    observations, actions, rewards, done = [], [], [], False
    while not done:
        action, _ = model.predict(observation, deterministic=True)
        observations.append(observation)
        actions.append(int(action))
        observation, reward, terminated, truncated, _ = env.step(int(action))
        rewards.append(reward)
        done = terminated or truncated
    return np.array(observations), np.array(actions), np.array(rewards), first_frame


def line(figure, label_start: str) -> np.ndarray:
    (found,) = [line for axes in figure.axes for line in axes.lines if line.get_label().startswith(label_start)]
    return np.asarray(found.get_ydata())


def test_the_episode_picture_shows_the_episodes_returns_values_rewards_and_policies(model):
    record = play_episode(model, "CartPole-v1", seed=3, tree_step=None)
    observations, actions, rewards, _ = replay(model, seed=3)
    np.testing.assert_array_equal(record.actions, actions)
    figure = episode_figure(record)
    returns = [sum(GAMMA**k * reward for k, reward in enumerate(rewards[t:])) for t in range(len(rewards))]
    np.testing.assert_allclose(line(figure, "real discounted return"), returns, rtol=1e-12)
    np.testing.assert_array_equal(line(figure, "real reward"), rewards)
    policy = model.policy
    with th.no_grad():
        obs = th.as_tensor(observations)
        latent, logits, value_logits = policy.initial_inference(obs)
        _, reward_logits = policy.dynamics(latent, th.as_tensor(actions))
        np.testing.assert_allclose(line(figure, "network value"), policy.to_scalar(value_logits).numpy(), rtol=1e-5)
        np.testing.assert_allclose(line(figure, "predicted reward"), policy.to_scalar(reward_logits).numpy(), rtol=1e-5)
        searches = [policy.run_search(obs[t : t + 1], temperature=0.0, add_noise=False) for t in range(len(obs))]
    np.testing.assert_allclose(line(figure, "search root value"), [float(s.root_value[0]) for s in searches], rtol=1e-12)
    network_image, search_image = (axes.images[0].get_array() for axes in figure.axes if axes.images)
    np.testing.assert_allclose(network_image.T, th.softmax(logits.double(), dim=-1).numpy(), rtol=1e-6)
    visits = np.array([s.visit_counts[0] for s in searches], dtype=np.float64)
    np.testing.assert_allclose(search_image.T, visits / 12)


def test_the_tree_picture_is_the_search_tree_at_that_step(model):
    record = play_episode(model, "CartPole-v1", seed=3, tree_step=2)
    observations, _, _, _ = replay(model, seed=3)
    search = model.policy.run_search(th.as_tensor(observations[2:3]), temperature=0.0, add_noise=False)
    edges = tree_edges(record.tree, GAMMA)
    root, first_level = edges[0], [edge for edge in edges if edge.depth == 1]
    assert root.visits == 13 and [edge.visits for edge in first_level] == [n for n in search.visit_counts[0] if n > 0]
    np.testing.assert_allclose([edge.q for edge in first_level], search.q_values[0][search.visit_counts[0] > 0], rtol=1e-12)
    for index, edge in enumerate(edges):  # a node's visits: its expansion (or the root's first visit) plus its children's
        children = [child for child in edges if child.parent == index]
        assert edge.visits == 1 + sum(child.visits for child in children)
        if children:  # drawn above the middle of its children
            assert edge.x == (children[0].x + children[-1].x) / 2
    texts = [text.get_text() for text in tree_figure(record).axes[0].texts]
    assert len(texts) == len(edges) and texts[0].startswith(f"root\nN {root.visits}")
    assert sorted(texts[1:]) == sorted(f"a {e.action}\nN {e.visits}\nQ {e.q:.3g}\nP {e.prior:.2f}" for e in edges[1:])


def test_the_gif_has_one_frame_per_step_from_the_first_state(model, tmp_path):
    pytest.importorskip("pygame")
    from PIL import Image

    record = play_episode(model, "CartPole-v1", seed=3, tree_step=None)
    _, actions, _, first_frame = replay(model, seed=3)
    gif = Image.open(save_gif(record.frames, tmp_path / "episode.gif", fps=25))
    assert len(record.frames) == len(actions)
    durations = []  # Pillow merges identical neighbouring frames into one of their summed duration
    for index in range(gif.n_frames):
        gif.seek(index)
        durations.append(gif.info["duration"])
    assert sum(durations) == 40 * len(actions)
    np.testing.assert_array_equal(record.frames[0], first_frame)


def test_atari_episodes_end_at_a_lost_life_or_max_steps_and_show_the_observations(tmp_path):
    from sb3_muzero import make_atari_vec_env

    env = make_atari_vec_env("BreakoutNoFrameskip-v4", n_envs=1, seed=0)
    env_model = MuZero("CnnPolicy", env, num_simulations=2, buffer_size=100, policy_kwargs=dict(channels=4, num_blocks=1))
    record = play_episode(env_model, "BreakoutNoFrameskip-v4", seed=0, tree_step=1, max_steps=30)
    assert len(record.rewards) <= 30 and record.ended in ("terminated", "max steps")
    assert record.frames[0].shape == (84, 84) and len(record.frames) == len(record.rewards)
    assert record.network_policy.shape == (len(record.rewards), 4)
    assert sum(edge.visits for edge in tree_edges(record.tree, env_model.gamma) if edge.depth == 1) == 2


def test_the_command_writes_the_three_pictures_and_refuses_a_missing_model(model, tmp_path):
    model.save(tmp_path / "model.zip")
    command = [sys.executable, "-m", "sb3_muzero.inspect", str(tmp_path / "model.zip"), "--env", "CartPole-v1",
               "--tree-step", "1", "--out", str(tmp_path / "pictures")]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    for name in ("episode.png", "tree.png", "episode.gif"):
        assert (tmp_path / "pictures" / name).stat().st_size > 1000, name
    missing = subprocess.run([sys.executable, "-m", "sb3_muzero.inspect", "nothing.zip", "--env", "CartPole-v1"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert missing.returncode == 2 and "no such model file: nothing.zip" in missing.stderr
