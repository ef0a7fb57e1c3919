"""The reference search: slow, one tree at a time, in plain Python, following the MuZero pseudocode
(PUCT) and the Gumbel MuZero paper (Gumbel).

It defines the behaviour every backend must reproduce (see :mod:`sb3_muzero.mcts.driver` for the
semantics, including where they differ from the pseudocode). Only tests, debugging and the tree picture of
``python -m sb3_muzero.inspect`` (:func:`search_tree`) should use it.
"""

import math
from typing import Optional

import numpy as np

from sb3_muzero.mcts.action_choice import choose_action, visit_distribution
from sb3_muzero.mcts.roots import check_root, dirichlet_noise, gumbel_selection, legal_mask, to_numpy
from sb3_muzero.mcts.settings import DEFAULT_SEARCH_SETTINGS, SearchSettings
from sb3_muzero.mcts.types import LOW_SCORE, TINY, GumbelSelection, RecurrentFn, RootInput, SearchResult


class Node:
    """One node of one tree. A node is expanded once it has children."""

    def __init__(self, prior: float):
        self.prior = prior
        self.visit_count = 0
        self.value_sum = 0.0
        self.reward = 0.0
        self.raw_value = 0.0  # the network's value of the node when it was expanded
        self.index = 0  # the simulation that expanded the node (the root: 0), so the order of first visits
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
    gumbel = settings.search_algorithm == "gumbel"
    noise_fraction = settings.root_exploration_fraction if add_noise and not gumbel else 0.0
    noise = dirichlet_noise(rng, settings.root_dirichlet_alpha, legal) if noise_fraction > 0 else None
    selection = gumbel_selection(rng, settings, prior_logits, legal, temperature) if gumbel else None
    batch_size, num_actions = prior_logits.shape
    visit_counts = np.zeros((batch_size, num_actions), dtype=np.int32)
    search_value = np.zeros(batch_size, dtype=np.float64)
    q_values = np.zeros((batch_size, num_actions), dtype=np.float64)
    gumbel_actions = np.zeros(batch_size, dtype=np.int64)
    gumbel_policy = np.zeros((batch_size, num_actions), dtype=np.float32)
    for b in range(batch_size):
        legal_actions = [a for a in range(num_actions) if legal[b, a]]
        select = PuctRule(settings) if selection is None else GumbelRule(selection, b, num_actions)
        root_noise = None if noise is None else noise[b]
        tree_root = search_tree(prior_logits[b], float(root_value[b]), root.latent[b : b + 1], legal_actions, root_noise,
                                noise_fraction, recurrent_fn, settings, select)  # fmt: skip
        search_value[b] = tree_root.value()
        for action, child in tree_root.children.items():
            if child.visit_count > 0:
                visit_counts[b, action] = child.visit_count
                q_values[b, action] = child.reward + gamma * child.value()
        if selection is not None:
            gumbel_actions[b], gumbel_policy[b] = select.act(tree_root, gamma), select.policy_target(tree_root, gamma)
    if selection is not None:
        return SearchResult(gumbel_actions, visit_counts, search_value, q_values, gumbel_policy)
    action = choose_action(rng, visit_counts, temperature)
    return SearchResult(action, visit_counts, search_value, q_values, visit_distribution(visit_counts))


def search_tree(prior_logits, value: float, latent, legal_actions: list[int], noise, noise_fraction: float,
                recurrent_fn: RecurrentFn, settings: SearchSettings, select=None) -> Node:  # fmt: skip
    """One tree: the root (logits [A], value, latent [1, ...]) expanded over ``legal_actions``, with ``noise`` [A]
    (or None) mixed into its priors, after ``settings.num_simulations`` simulations; returns the root ``Node``.

    :param select: the selection rule; default: the settings' search without noise (PUCT, or Gumbel without
        Gumbel noise)
    """
    num_actions = len(prior_logits)
    if select is None and settings.search_algorithm == "gumbel":
        legal = np.isin(np.arange(num_actions), legal_actions)[None]
        selection = gumbel_selection(np.random.default_rng(0), settings, np.asarray(prior_logits)[None], legal, 0.0)
        select = GumbelRule(selection, 0, num_actions)  # temperature 0: no draw from the generator
    select = select or PuctRule(settings)
    tree_root = Node(prior=1.0)
    expand_node(tree_root, legal_actions, prior_logits, latent)
    tree_root.visit_count = 1
    tree_root.value_sum = tree_root.raw_value = value
    if noise is not None:
        add_exploration_noise(tree_root, noise, noise_fraction)
    for simulation in range(1, settings.num_simulations + 1):
        run_simulation(tree_root, simulation, recurrent_fn, num_actions, settings.gamma, select)
    return tree_root


def run_simulation(root, simulation, recurrent_fn, num_actions, gamma, select) -> None:
    """Select down to an unexpanded node, expand it with one model step, back up its value.

    :param select: ``select(node, gamma) -> (action, child)``, the selection rule
    """
    node = root
    search_path = [node]
    while node.expanded():
        action, node = select(node, gamma)
        search_path.append(node)
    parent = search_path[-2]
    output = recurrent_fn(parent.latent, np.array([action], dtype=np.int64))
    expand_node(node, list(range(num_actions)), to_numpy(output.prior_logits)[0], output.latent)
    node.reward = float(to_numpy(output.reward)[0])
    node.raw_value = float(to_numpy(output.value)[0])
    node.index = simulation
    backpropagate(search_path, node.raw_value, gamma, select.min_max_stats)


class PuctRule:
    """MuZero's selection: PUCT over one tree's min-max normalised Q values."""

    def __init__(self, settings: SearchSettings):
        self.pb_c_init, self.pb_c_base = settings.pb_c_init, settings.pb_c_base
        self.min_max_stats = MinMaxStats()

    def __call__(self, node, gamma):
        return select_child(node, gamma, self.pb_c_init, self.pb_c_base, self.min_max_stats)


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


class GumbelRule:
    """Gumbel MuZero's selection in one tree: Sequential Halving with Gumbel at the root, the deterministic selection
    of the paper below it; and the action and policy target it gives at the end."""

    def __init__(self, selection: GumbelSelection, b: int, num_actions: int):
        self.considered_visits = selection.considered_visits[selection.num_considered[b]]
        self.gumbel_logits, self.root_logits = selection.gumbel_logits[b], selection.root_logits[b]
        self.c_visit, self.c_scale, self.min_q_range = selection.c_visit, selection.c_scale, selection.min_q_range
        self.num_actions = num_actions
        self.min_max_stats = MinMaxStats()  # updated by the backup, read by PUCT only

    def __call__(self, node, gamma):
        sigma = self.sigma(node, gamma)
        if node.index == 0:
            simulation = node.visit_count - 1  # the root's first visit is the network's value
            action = self.root_action(node, self.considered_visits[simulation], sigma)
        else:
            action = interior_action(node, sigma)
        return action, node.children[action]

    def sigma(self, node, gamma) -> list[float]:
        """sigma(completed Q) of every action of ``node`` (at the root, illegal actions count as unvisited)."""
        return completed_q_sigma(node, self.num_actions, gamma, self.c_visit, self.c_scale, self.min_q_range)

    def root_action(self, root, considered_visit: int, sigma: list[float]) -> int:
        """The legal action with ``considered_visit`` visits of largest max(LOW_SCORE, (gumbel + logit) + sigma)."""
        best_action, best_score = None, -math.inf
        for action in sorted(root.children):
            if root.children[action].visit_count != considered_visit:
                continue
            score = max(LOW_SCORE, self.gumbel_logits[action] + sigma[action])
            if best_action is None or score > best_score:
                best_action, best_score = action, score
        return best_action

    def act(self, root, gamma) -> int:
        """The Sequential Halving winner: the best of the most visited actions."""
        most_visits = max(child.visit_count for child in root.children.values())
        return self.root_action(root, most_visits, self.sigma(root, gamma))

    def policy_target(self, root, gamma) -> np.ndarray:
        """[A] float32: softmax over the legal actions of logits + sigma(completed Q), 0 for illegal actions."""
        sigma = self.sigma(root, gamma)
        legal = sorted(root.children)
        improved = {a: self.root_logits[a] + sigma[a] for a in legal}
        largest = max(improved.values())
        exps = {a: math.exp(improved[a] - largest) for a in legal}
        total = 0.0
        for a in legal:
            total += exps[a]
        policy = np.zeros(self.num_actions, dtype=np.float32)
        for a in legal:
            policy[a] = exps[a] / total
        return policy


def completed_q_sigma(node, num_actions, gamma, c_visit, c_scale, min_q_range) -> list[float]:
    """sigma of the completed, rescaled Q value of every action of ``node``.

    Visited children keep their Q; every other action (unvisited, or illegal at the root) gets the mixed value
    (v(node) + sum N * (sum p Q / sum p)) / (sum N + 1), with sums over the visited children in the order of their
    first visits and p = max(prior, TINY). Then ((c_visit + max N) * c_scale) * ((q - lo) / max(hi - lo, min_q_range))
    with lo, hi the extremes of the completed Q values of all ``num_actions`` actions.
    """
    visited = sorted(((child.index, a, child) for a, child in node.children.items() if child.visit_count > 0))
    q = {a: child.reward + gamma * child.value() for _, a, child in visited}
    mixed_value = node.raw_value
    if visited:
        total_visits = sum(child.visit_count for _, _, child in visited)
        weighted_q, mass = 0.0, 0.0
        for _, a, child in visited:
            prior = max(child.prior, TINY)
            weighted_q += prior * q[a]
            mass += prior
        mixed_value = (node.raw_value + total_visits * (weighted_q / mass)) / (total_visits + 1)
    completed = [q.get(a, mixed_value) for a in range(num_actions)]
    low, high = min(completed), max(completed)
    most_visits = max((child.visit_count for _, _, child in visited), default=0)
    scale = (c_visit + most_visits) * c_scale
    span = max(high - low, min_q_range)
    return [scale * ((value - low) / span) for value in completed]


def interior_action(node, sigma: list[float]) -> int:
    """The action of largest pi(a) - N(a) / (1 + sum N), pi = softmax(logits + sigma), lowest index on ties.

    pi is computed from the priors: pi(a) = P(a) exp(sigma(a) - s) / Z with s = max sigma, Z the sum of the visited
    children's terms (in the order of their first visits) plus U exp(sigma_u - s), U the sum of the unvisited
    children's priors (in action order), sigma_u their common sigma.
    """
    top = max(sigma)
    visited = sorted(((child.index, a, child) for a, child in node.children.items() if child.visit_count > 0))
    unvisited = [a for a in sorted(node.children) if node.children[a].visit_count == 0]
    normaliser = 0.0
    for _, a, child in visited:
        normaliser += child.prior * math.exp(sigma[a] - top)
    if unvisited:
        unvisited_mass = 0.0
        for a in unvisited:
            unvisited_mass += node.children[a].prior
        normaliser += unvisited_mass * math.exp(sigma[unvisited[0]] - top)
    total_visits = sum(child.visit_count for _, _, child in visited)
    best_action, best_score = None, -math.inf
    for action in sorted(node.children):
        child = node.children[action]
        improved = child.prior * math.exp(sigma[action] - top) / normaliser
        score = improved - child.visit_count / (1 + total_visits)
        if best_action is None or score > best_score:
            best_action, best_score = action, score
    return best_action
