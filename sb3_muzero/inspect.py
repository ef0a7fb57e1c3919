"""python -m sb3_muzero.inspect MODEL.zip --env ENV_ID: what a trained model predicts and what its search does.

    python -m sb3_muzero.inspect muzero_CartPole-v1.zip --env CartPole-v1
    python -m sb3_muzero.inspect breakout.zip --env BreakoutNoFrameskip-v4 --tree-step 40 --out breakout_inspect

Plays one deterministic episode (what an evaluation plays: no root noise, the most visited action; for Atari ids
up to the first lost life, the end of an episode in training) in the env seeded --seed, and writes to --out:

  episode.png  per step: the network's value v(o_t), the search's root value and the real discounted return
               G_t = r_t+1 + gamma r_t+2 + ... (up to the episode's end: a truncated episode's last returns miss
               the rest); the reward the dynamics predict for (o_t, a_t) against the real reward; the network's
               policy and the search's visit distribution over the actions;
  tree.png     the search tree at step --tree-step: each visited edge with its action, visits N, Q and prior P;
  episode.gif  the episode's frames (the env's rendering; for Atari ids the last frame of each observation).

Needs matplotlib (pip install torch==2.13.0 -e ".[plots]"). The tree is rebuilt by the reference search
(sb3_muzero.mcts.reference), which agrees with the search backends exactly.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch as th

from sb3_muzero.common.plotting import pyplot, save_figure
from sb3_muzero.hyperparams import is_atari_id
from sb3_muzero.mcts import reference
from sb3_muzero.mcts.roots import to_numpy

DEFAULT_MAX_STEPS = 2_000


@dataclass
class EpisodeRecord:
    """One deterministic episode of a model, step by step (``T`` steps, ``A`` actions)."""

    env_id: str
    gamma: float
    actions: np.ndarray  # [T] the search's actions
    rewards: np.ndarray  # [T] the real reward of each step
    network_value: np.ndarray  # [T] v(o_t) of the representation and prediction networks
    search_value: np.ndarray  # [T] the search's root value
    predicted_reward: np.ndarray  # [T] the reward the dynamics network predicts for (o_t, a_t)
    network_policy: np.ndarray  # [T, A] softmax of the network's policy logits at o_t
    search_policy: np.ndarray  # [T, A] the search's visit counts at o_t, divided by their sum
    ended: str  # "terminated", "truncated" (the env's time limit) or "max steps"
    frames: list[np.ndarray] = field(default_factory=list)  # [T] images [H, W, 3] or [H, W], frame t before action t
    tree_step: Optional[int] = None
    tree: Optional[reference.Node] = None  # the search tree at tree_step (root node)

    @property
    def returns(self) -> np.ndarray:
        """[T] the real discounted returns of the episode (see :func:`discounted_returns`)."""
        return discounted_returns(self.rewards, self.gamma)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum over k >= 0 of gamma^k r[t + k], up to the end of ``rewards`` [T]."""
    returns = np.zeros(len(rewards))
    following = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        following = rewards[t] + gamma * following
        returns[t] = following
    return returns


def make_inspection_env(env_id: str, seed: int):
    """One env to play in: ale-py's vector env for Atari ids (its observations give the frames), else SB3's
    ``make_vec_env`` rendering RGB arrays (None for an env that cannot render)."""
    if is_atari_id(env_id):
        from sb3_muzero import make_atari_vec_env

        return make_atari_vec_env(env_id, n_envs=1, seed=seed)
    from stable_baselines3.common.env_util import make_vec_env

    try:
        return make_vec_env(env_id, n_envs=1, seed=seed, env_kwargs=dict(render_mode="rgb_array"))
    except TypeError:  # an env without render_mode
        return make_vec_env(env_id, n_envs=1, seed=seed)


def frame(env, observation: np.ndarray, atari: bool) -> Optional[np.ndarray]:
    """The picture of the current state: the newest frame of an Atari observation, else the env's rendering."""
    if atari:
        return np.asarray(observation[0, -1])  # [84, 84] grayscale, the last of the stacked frames
    try:
        return env.render()
    except Exception:  # no renderer (pygame missing, no render_mode): no frames, the rest works
        return None


@th.no_grad()
def play_episode(model, env_id: str, seed: int = 0, tree_step: Optional[int] = 0,
                 max_steps: int = DEFAULT_MAX_STEPS) -> EpisodeRecord:  # fmt: skip
    """Play one deterministic episode of ``model`` (as ``predict(deterministic=True)``) and record every step; rebuild
    the search tree at ``tree_step`` (None: none) with the reference search, which must agree with the search's
    visit counts there."""
    policy = model.policy
    policy.set_training_mode(False)
    atari = is_atari_id(env_id)
    env = make_inspection_env(env_id, seed)
    observation = env.reset()
    steps: dict[str, list] = {name: [] for name in ("actions", "rewards", "network_value", "search_value",
                                                     "predicted_reward", "network_policy", "search_policy")}  # fmt: skip
    frames, tree, ended = [], None, "max steps"
    for t in range(max_steps):
        image = frame(env, observation, atari)
        if image is not None:
            frames.append(image)
        obs_tensor, _ = policy.obs_to_tensor(observation)
        root = policy.search_root(obs_tensor)
        result = policy.run_search(obs_tensor, temperature=0.0, add_noise=False)
        action = np.asarray(result.action)
        visits = to_numpy(result.visit_counts)[0].astype(np.float64)
        if t == tree_step:
            tree = search_tree(policy, root)
            tree_visits = [tree.children[a].visit_count for a in range(len(visits))]
            assert np.array_equal(
                tree_visits, visits
            ), f"the reference tree's visits {tree_visits} are not the search's {visits}"
        steps["actions"].append(int(action[0]))
        steps["network_value"].append(float(to_numpy(root.value)[0]))
        steps["search_value"].append(float(to_numpy(result.root_value)[0]))
        steps["predicted_reward"].append(float(to_numpy(policy.search_step(root.latent, action).reward)[0]))
        steps["network_policy"].append(to_numpy(th.softmax(root.prior_logits.double(), dim=-1))[0])
        steps["search_policy"].append(visits / visits.sum())
        observation, reward, done, info = env.step(action)
        steps["rewards"].append(float(reward[0]))
        if done[0]:
            ended = "truncated" if info[0].get("TimeLimit.truncated", False) else "terminated"
            break
    env.close()
    arrays = {name: np.asarray(values) for name, values in steps.items()}
    return EpisodeRecord(env_id=env_id, gamma=float(model.gamma), ended=ended, frames=frames,
                         tree_step=tree_step if tree is not None else None, tree=tree, **arrays)  # fmt: skip


def search_tree(policy, root) -> reference.Node:
    """The tree of a search without noise from ``root`` (a batch of one), built by the reference search."""
    logits = to_numpy(root.prior_logits)[0]
    return reference.search_tree(logits, float(to_numpy(root.value)[0]), root.latent[:1], list(range(len(logits))), None,
                                 0.0, policy.search_step, policy.search_settings)  # fmt: skip


# --- the pictures -------------------------------------------------------------------------------------------------


def episode_figure(record: EpisodeRecord) -> Any:
    """Value, reward and policy panels of ``record`` (see the module docstring); each line has a ``label`` and each
    image the array it shows, for the tests."""
    plt = pyplot()
    steps = np.arange(len(record.rewards))
    figure, (value_axes, reward_axes, network_axes, search_axes) = plt.subplots(
        4, 1, figsize=(11, 11), sharex=True, gridspec_kw=dict(height_ratios=[3, 2, 1.2, 1.2])
    )
    figure.suptitle(f"{record.env_id}: one deterministic episode, {len(steps)} steps ({record.ended}), "
                    f"return {record.rewards.sum():g}")  # fmt: skip
    value_axes.plot(steps, record.returns, label=f"real discounted return (gamma {record.gamma:g})", color="black")
    value_axes.plot(steps, record.network_value, label="network value v(o_t)", color="tab:blue")
    value_axes.plot(steps, record.search_value, label="search root value", color="tab:orange", alpha=0.8)
    value_axes.set_ylabel("value")
    reward_axes.plot(steps, record.rewards, label="real reward", color="black", drawstyle="steps-mid")
    reward_axes.plot(steps, record.predicted_reward, label="predicted reward r(o_t, a_t)", color="tab:green", alpha=0.8)
    reward_axes.set_ylabel("reward")
    for axes, policy, name in ((network_axes, record.network_policy, "network policy"),
                               (search_axes, record.search_policy, "search visits")):  # fmt: skip
        image = axes.imshow(policy.T, aspect="auto", interpolation="nearest", vmin=0.0, vmax=1.0, cmap="viridis",
                            origin="lower", extent=(-0.5, len(steps) - 0.5, -0.5, policy.shape[1] - 0.5))  # fmt: skip
        axes.plot(steps, record.actions, ".", color="white", markersize=2, label="action taken")
        axes.set_ylabel(f"{name}\naction")
        axes.set_yticks(range(policy.shape[1]))
        figure.colorbar(image, ax=axes, pad=0.01, label="probability")
    for axes in (value_axes, reward_axes):
        axes.legend(loc="best", fontsize=8)
        axes.grid(alpha=0.3)
    search_axes.set_xlabel("step t")
    figure.tight_layout()
    return figure


@dataclass
class TreeEdge:
    """One visited edge of the tree picture: the child's place and the numbers written beside it."""

    depth: int  # the child's depth (root children: 1)
    parent: int  # index of the parent edge in the list (-1: the root)
    action: int
    visits: int  # N(child)
    q: float  # Q(parent, action) = r(child) + gamma * W(child) / N(child)
    prior: float  # P(parent, action)
    x: float = 0.0  # horizontal position: leaves in order, a parent above the middle of its children


def tree_edges(root: reference.Node, gamma: float) -> list[TreeEdge]:
    """Every visited edge of the tree, depth first by action, with its layout position."""
    edges: list[TreeEdge] = []
    next_leaf_x = [0.0]

    def visit(node: reference.Node, depth: int, parent: int) -> float:
        children = []
        for action in sorted(node.children):
            child = node.children[action]
            if child.visit_count == 0:
                continue
            edges.append(TreeEdge(depth, parent, action, child.visit_count, child.reward + gamma * child.value(), child.prior))
            index = len(edges) - 1
            edges[index].x = visit(child, depth + 1, index)
            children.append(edges[index].x)
        if not children:
            next_leaf_x[0] += 1.0
            return next_leaf_x[0] - 1.0
        return (children[0] + children[-1]) / 2

    root_x = visit(root, 1, -1)
    edges.insert(0, TreeEdge(0, -1, -1, root.visit_count, root.value(), 1.0, root_x))
    for edge in edges[1:]:  # the root went in first: shift the parent indices
        edge.parent += 1
    return edges


def tree_figure(record: EpisodeRecord) -> Any:
    """The search tree at ``record.tree_step``: an edge's width grows with its visits; the child's box shows the
    action a, the visits N, Q and the prior P."""
    plt = pyplot()
    edges = tree_edges(record.tree, record.gamma)
    leaves = max(edge.x for edge in edges) + 1
    depth = max(edge.depth for edge in edges)
    figure, axes = plt.subplots(figsize=(min(max(8.0, 1.1 * leaves), 60.0), 1.3 * (depth + 1) + 1))
    most = max(edge.visits for edge in edges[1:]) if len(edges) > 1 else 1
    for edge in edges[1:]:
        parent = edges[edge.parent]
        axes.plot([parent.x, edge.x], [-parent.depth, -edge.depth], color="tab:blue", alpha=0.6,
                  linewidth=0.5 + 5.0 * edge.visits / most, zorder=1)  # fmt: skip
    box = dict(boxstyle="round", facecolor="white", edgecolor="gray", alpha=0.9)
    root = edges[0]
    axes.text(root.x, 0, f"root\nN {root.visits}\nV {root.q:.3g}", ha="center", va="center", fontsize=7, bbox=box, zorder=2)
    for edge in edges[1:]:
        axes.text(edge.x, -edge.depth, f"a {edge.action}\nN {edge.visits}\nQ {edge.q:.3g}\nP {edge.prior:.2f}",
                  ha="center", va="center", fontsize=6, bbox=box, zorder=2)  # fmt: skip
    axes.set_xlim(-0.7, leaves - 0.3)
    axes.set_ylim(-depth - 0.7, 0.7)
    axes.axis("off")
    axes.set_title(f"{record.env_id}: the search tree at step {record.tree_step}\n{root.visits - 1} simulations, "
                   f"action taken {record.actions[record.tree_step]}")  # fmt: skip
    figure.tight_layout()
    return figure


def save_gif(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """The frames [H, W, 3] (or [H, W] grayscale) as an animated GIF, ``fps`` frames per second."""
    from PIL import Image

    from sb3_muzero.common.files import atomic_write

    images = [Image.fromarray(np.asarray(image, dtype=np.uint8)) for image in frames]
    with atomic_write(path) as file:
        images[0].save(file, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


# --- the command ----------------------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_muzero.inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("model", help="a saved MuZero model (.zip)")
    parser.add_argument("--env", required=True, help="the gymnasium env id the model was trained on")
    parser.add_argument("--seed", type=int, default=0, help="the env's seed (default: %(default)s)")
    parser.add_argument("--tree-step", type=int, default=0, help="the step whose search tree is drawn (default: 0)")
    parser.add_argument(
        "--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="stop the episode there (default: %(default)s)"
    )
    parser.add_argument("--out", default=None, help="folder of the pictures (default: <model>_inspect)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        parser.error(f"no such model file: {args.model}")
    if args.tree_step < 0 or args.max_steps < 1:
        parser.error(f"--tree-step must be >= 0 and --max-steps >= 1, got {args.tree_step} and {args.max_steps}")
    return args


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    from sb3_muzero import MuZero

    pyplot()  # fail before playing where matplotlib is missing
    model = MuZero.load(args.model, device=args.device, buffer_size=1)
    record = play_episode(model, args.env, args.seed, args.tree_step, args.max_steps)
    out = Path(args.out or Path(args.model).with_suffix("").as_posix() + "_inspect")
    print(f"{args.env}: {len(record.rewards)} steps ({record.ended}), return {record.rewards.sum():g}", flush=True)
    print(f"  {save_figure(episode_figure(record), out / 'episode.png')}: value, reward and policy per step")
    if record.tree is not None:
        print(f"  {save_figure(tree_figure(record), out / 'tree.png')}: the search tree at step {record.tree_step}")
    else:
        print(f"  no tree: the episode ended before step {args.tree_step}")
    if record.frames:
        print(f"  {save_gif(record.frames, out / 'episode.gif')}: {len(record.frames)} frames")
    else:
        print("  no gif: the env does not render (classic control needs pygame)")


if __name__ == "__main__":
    main(sys.argv[1:])
