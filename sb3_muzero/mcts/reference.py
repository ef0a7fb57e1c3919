"""The reference search: slow, one tree at a time, in plain Python, following the MuZero pseudocode.

It defines the behaviour every backend must reproduce (see :mod:`sb3_muzero.mcts.driver` for the
semantics, including where they differ from the pseudocode). Only tests, debugging and the tree picture of
``python -m sb3_muzero.inspect`` (:func:`search_tree`) should use it.
"""

import math
from typing import Optional

import numpy as np

from sb3_muzero.mcts.action_choice import choose_action
from sb3_muzero.mcts.roots import check_root, dirichlet_noise, legal_mask, to_numpy
from sb3_muzero.mcts.settings import DEFAULT_SEARCH_SETTINGS, SearchSettings
from sb3_muzero.mcts.types import RecurrentFn, RootInput, SearchResult


class Node:
    """One node of one tree. A node is expanded once it has children."""

    def __init__(self, prior: float):
        self.prior = prior
        self.visit_count = 0
        self.value_sum = 0.0
        self.reward = 0.0
        self.latent = None
        self.children: dict[int, Node] = {}

    def expanded(self) -> bool:
        return len(self.children) > 0

    def value(self) -> float:
        return self.value_sum / self.visit_count


class MinMaxStats:
    """The range of Q values backed up in one tree."""

    def __init__(self):
        self.minimum = math.inf
        self.maximum = -math.inf

    def update(self, q: float) -> None:
        self.minimum = min(self.minimum, q)
        self.maximum = max(self.maximum, q)

    def normalize(self, q: float) -> float:
        if self.maximum > self.minimum:
            return (q - self.minimum) * (1.0 / (self.maximum - self.minimum))
        return 0.0


def search(
    root: RootInput,
    recurrent_fn: RecurrentFn,
    settings: SearchSettings = DEFAULT_SEARCH_SETTINGS,
    *,
    rng: np.random.Generator,
    temperature: float = 0.0,
    add_noise: bool = False,
    legal_actions_mask: Optional[np.ndarray] = None,
) -> SearchResult:
    """Same arguments and result as :func:`sb3_muzero.mcts.driver.search`, computed one tree at a time
    (``settings.search_backend`` is not read).

    ``recurrent_fn`` is called with batches of one.
    """
    prior_logits, root_value = check_root(root, temperature)
    gamma = settings.gamma
    legal = legal_mask(legal_actions_mask, prior_logits.shape)
    noise_fraction = settings.root_exploration_fraction if add_noise else 0.0
    noise = dirichlet_noise(rng, settings.root_dirichlet_alpha, legal) if noise_fraction > 0 else None
    batch_size, num_actions = prior_logits.shape
    visit_counts = np.zeros((batch_size, num_actions), dtype=np.int32)
    search_value = np.zeros(batch_size, dtype=np.float64)
    q_values = np.zeros((batch_size, num_actions), dtype=np.float64)
    for b in range(batch_size):
        legal_actions = [a for a in range(num_actions) if legal[b, a]]
        tree_root = search_tree(prior_logits[b], float(root_value[b]), root.latent[b : b + 1], legal_actions,
                                None if noise is None else noise[b], noise_fraction, recurrent_fn, settings)  # fmt: skip
        search_value[b] = tree_root.value()
        for action, child in tree_root.children.items():
            if child.visit_count > 0:
                visit_counts[b, action] = child.visit_count
                q_values[b, action] = child.reward + gamma * child.value()
    action = choose_action(rng, visit_counts, temperature)
    return SearchResult(action, visit_counts, search_value, q_values)


def search_tree(prior_logits, value: float, latent, legal_actions: list[int], noise, noise_fraction: float,
                recurrent_fn: RecurrentFn, settings: SearchSettings) -> Node:  # fmt: skip
    """One tree: the root (logits [A], value, latent [1, ...]) expanded over ``legal_actions``, with ``noise`` [A]
    (or None) mixed into its priors, after ``settings.num_simulations`` simulations; returns the root ``Node``."""
    tree_root = Node(prior=1.0)
    expand_node(tree_root, legal_actions, prior_logits, latent)
    tree_root.visit_count = 1
    tree_root.value_sum = value
    if noise is not None:
        add_exploration_noise(tree_root, noise, noise_fraction)
    min_max_stats = MinMaxStats()
    num_actions = len(prior_logits)
    for _ in range(settings.num_simulations):
        run_simulation(tree_root, recurrent_fn, num_actions, settings.gamma, settings.pb_c_init, settings.pb_c_base,
                       min_max_stats)  # fmt: skip
    return tree_root


def run_simulation(root, recurrent_fn, num_actions, gamma, pb_c_init, pb_c_base, min_max_stats) -> None:
    """Select down to an unexpanded node, expand it with one model step, back up its value."""
    node = root
    search_path = [node]
    while node.expanded():
        action, node = select_child(node, gamma, pb_c_init, pb_c_base, min_max_stats)
        search_path.append(node)
    parent = search_path[-2]
    output = recurrent_fn(parent.latent, np.array([action], dtype=np.int64))
    expand_node(node, list(range(num_actions)), to_numpy(output.prior_logits)[0], output.latent)
    node.reward = float(to_numpy(output.reward)[0])
    backpropagate(search_path, float(to_numpy(output.value)[0]), gamma, min_max_stats)


def select_child(node, gamma, pb_c_init, pb_c_base, min_max_stats):
    """The (action, child) with the highest PUCT score; the lowest action wins ties."""
    best_action, best_child, best_score = None, None, -math.inf
    for action in sorted(node.children):
        child = node.children[action]
        score = ucb_score(node, child, gamma, pb_c_init, pb_c_base, min_max_stats)
        if best_child is None or score > best_score:
            best_action, best_child, best_score = action, child, score
    return best_action, best_child


def ucb_score(parent, child, gamma, pb_c_init, pb_c_base, min_max_stats) -> float:
    exploration = (math.log((parent.visit_count + pb_c_base + 1) / pb_c_base) + pb_c_init) * math.sqrt(parent.visit_count)
    if child.visit_count > 0:
        value_score = min_max_stats.normalize(child.reward + gamma * child.value())
    else:
        value_score = 0.0
    return exploration * (child.prior / (1 + child.visit_count)) + value_score


def expand_node(node, actions, logits, latent) -> None:
    """Give ``node`` its latent and one child per action, with the softmax of ``logits`` over ``actions``."""
    node.latent = latent
    largest = max(float(logits[a]) for a in actions)
    exps = {a: math.exp(float(logits[a]) - largest) for a in actions}
    total = 0.0
    for a in actions:
        total += exps[a]
    inverse_total = 1.0 / total
    for a in actions:
        node.children[a] = Node(prior=exps[a] * inverse_total)


def add_exploration_noise(node, noise, noise_fraction) -> None:
    for action, child in node.children.items():
        child.prior = child.prior * (1 - noise_fraction) + float(noise[action]) * noise_fraction


def backpropagate(search_path, value, gamma, min_max_stats) -> None:
    for node in reversed(search_path):
        node.value_sum += value
        node.visit_count += 1
        if node is not search_path[0]:
            min_max_stats.update(node.reward + gamma * node.value())
        value = node.reward + gamma * value
