"""CPU backend: the search kernels compiled with Numba.

Each kernel is a loop over the trees of the batch whose body handles one tree, as one CUDA thread
does in ``kernels/search.cu``. The bodies follow the semantics of :mod:`sb3_muzero.mcts.search`
operation for operation (float64, same order), so results equal the reference search's bit for bit.
The kernels run on one thread and release the GIL. There are two: one writes the roots and selects
the first leaves, the other runs one simulation step per call (expand the selected leaves with the
model's output, back the values up, select the next leaves), so a simulation costs one call.

Two things make selection cheap without changing its result:

- Only the candidates are scored: the visited children, and the unvisited child of largest prior
  (``best_unvisited``). Every unvisited child scores ``exploration * P``, so no other unvisited child
  can win, and the candidates give the same argmax as scoring every child. (The one exception needs
  two priors so close that multiplying them by the exploration factor rounds both to the same
  float64: the full scan would then pick the lower index, the shortcut the larger prior.)
- What does not change while walking down is computed once: ``exploration(N)`` comes from a table
  built per search, the reciprocal of the min-max range once per tree, and ``P / (1 + N(child))`` is
  stored per visited child and refreshed during backup.
"""

import math
from typing import Optional

import numba
import numpy as np

from sb3_muzero.mcts.search import choose_action as choose_action_from_visits
from sb3_muzero.mcts.types import Tree
from sb3_muzero.mcts.workspace import reusable

ON_DEVICE = False  # trees in host memory: init_roots takes the driver's checked host copies of the root

_JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
# Helpers are inlined into the kernels: a call that passes the whole tree would copy every array
# descriptor and update every reference count, which costs more than the helper's work.
_INLINE = dict(inline="always", **_JIT_OPTIONS)


@numba.njit(**_INLINE)
def _write_priors(logits, legal, is_root, prior) -> int:
    """prior[a] = softmax of logits over the legal actions (all actions unless ``is_root``), 0 for illegal ones.

    ``[A] -> [A]``; returns the legal action of largest prior, lowest index on ties.
    """
    num_actions = logits.shape[0]
    largest = -math.inf
    for a in range(num_actions):
        if (not is_root or legal[a]) and logits[a] > largest:
            largest = logits[a]
    total = 0.0
    for a in range(num_actions):
        if not is_root or legal[a]:
            prior[a] = math.exp(logits[a] - largest)
            total += prior[a]
        else:
            prior[a] = 0.0
    inverse_total = 1.0 / total
    best_action = -1
    best_prior = -1.0
    for a in range(num_actions):
        prior[a] = prior[a] * inverse_total
        if (not is_root or legal[a]) and prior[a] > best_prior:
            best_prior = prior[a]
            best_action = a
    return best_action


@numba.njit(**_INLINE)
def _find_best_unvisited(tree, b, node) -> None:
    """Set ``best_unvisited`` of ``node``: the unvisited (at the root: legal) child of largest prior, or -1."""
    best_action = -1
    best_prior = -1.0  # below every prior
    for a in range(tree.children_index.shape[2]):
        unvisited = tree.children_index[b, node, a] < 0 and (node != 0 or tree.root_legal[b, a])
        prior = tree.children_prior[b, node, a] if unvisited else -1.0
        if prior > best_prior:
            best_prior = prior
            best_action = a
    tree.best_unvisited[b, node] = best_action


@numba.njit(**_INLINE)
def _create_node(tree, b, node, parent, action, reward, best_child) -> None:
    """Write the row of a new, unvisited node of tree ``b`` and link it to its parent.

    The caller writes ``children_prior`` first and passes its best (legal) action as ``best_child``.
    Children statistics are written when a child is first visited, so only ``children_index`` is reset.
    """
    tree.parent[b, node] = parent
    tree.action_from_parent[b, node] = action
    tree.node_reward[b, node] = reward
    tree.node_visits[b, node] = 0
    tree.node_value_sum[b, node] = 0.0
    tree.num_visited[b, node] = 0
    tree.best_unvisited[b, node] = best_child
    for a in range(tree.children_index.shape[2]):
        tree.children_index[b, node, a] = -1
    if parent >= 0:
        tree.children_index[b, parent, action] = node
        tree.visited_actions[b, parent, tree.num_visited[b, parent]] = action
        tree.num_visited[b, parent] += 1
        _find_best_unvisited(tree, b, parent)


@numba.njit(**_INLINE)
def _puct_action(tree, b, node, exploration, q_min, q_scale) -> int:
    """The action of largest PUCT score at ``node`` of tree ``b``, lowest index on ties (see module docstring)."""
    best_action = tree.best_unvisited[b, node]
    best_score = -math.inf
    if best_action >= 0:
        best_score = exploration * tree.children_prior[b, node, best_action] + 0.0
    for k in range(tree.num_visited[b, node]):
        a = tree.visited_actions[b, node, k]
        value_score = (tree.children_q[b, node, a] - q_min) * q_scale
        score = exploration * tree.children_prior_term[b, node, a] + value_score
        better = score > best_score or (score == best_score and a < best_action)
        best_score = score if better else best_score
        best_action = a if better else best_action
    return best_action


@numba.njit(**_INLINE)
def _select_leaf(tree, b, exploration_table) -> None:
    """Walk tree ``b`` from the root by PUCT to the first unexpanded child; write its parent and action."""
    q_min = tree.min_max[b, 0]
    q_max = tree.min_max[b, 1]
    if q_max > q_min:
        q_scale = 1.0 / (q_max - q_min)
    else:  # no range yet: every value term is 0
        q_min = 0.0
        q_scale = 0.0
    node = 0
    while True:
        action = _puct_action(tree, b, node, exploration_table[tree.node_visits[b, node]], q_min, q_scale)
        child = tree.children_index[b, node, action]
        if child < 0:
            break
        node = child
    tree.leaf_parent[b] = node
    tree.leaf_action[b] = action


@numba.njit(**_INLINE)
def _backup(tree, b, leaf, value, discount) -> None:
    """Add the discounted return to every node from ``leaf`` up to the root; widen the Q range of tree ``b``."""
    q_min = tree.min_max[b, 0]
    q_max = tree.min_max[b, 1]
    backed_up = value
    node = leaf
    while True:
        tree.node_value_sum[b, node] += backed_up
        tree.node_visits[b, node] += 1
        if node == 0:
            break
        reward = tree.node_reward[b, node]
        visits = tree.node_visits[b, node]
        q = reward + discount * (tree.node_value_sum[b, node] / visits)
        q_min = min(q_min, q)
        q_max = max(q_max, q)
        parent = tree.parent[b, node]
        action = tree.action_from_parent[b, node]
        tree.children_visits[b, parent, action] = visits
        tree.children_q[b, parent, action] = q
        tree.children_prior_term[b, parent, action] = tree.children_prior[b, parent, action] / (1 + visits)
        backed_up = reward + discount * backed_up
        node = parent
    tree.min_max[b, 0] = q_min
    tree.min_max[b, 1] = q_max


@numba.njit(**_JIT_OPTIONS)
def _init_roots_and_select(tree, prior_logits, root_value, legal, noise, noise_fraction, exploration_table) -> None:
    """Write the root (node 0) of every tree, priors with noise and one visit carrying the network value;
    then select the leaves of the first simulation."""
    for b in range(prior_logits.shape[0]):
        for a in range(prior_logits.shape[1]):
            tree.root_legal[b, a] = legal[b, a]
            tree.children_visits[b, 0, a] = 0
            tree.children_q[b, 0, a] = 0.0
        best_child = _write_priors(prior_logits[b], legal[b], True, tree.children_prior[b, 0])
        _create_node(tree, b, 0, -1, -1, 0.0, best_child)
        if noise_fraction > 0.0:
            for a in range(prior_logits.shape[1]):
                if legal[b, a]:
                    mixed = tree.children_prior[b, 0, a] * (1.0 - noise_fraction) + noise[b, a] * noise_fraction
                    tree.children_prior[b, 0, a] = mixed
            _find_best_unvisited(tree, b, 0)
        tree.node_visits[b, 0] = 1
        tree.node_value_sum[b, 0] = root_value[b]
        tree.min_max[b, 0] = math.inf
        tree.min_max[b, 1] = -math.inf
        _select_leaf(tree, b, exploration_table)


@numba.njit(**_JIT_OPTIONS)
def _expand_backup_select(tree, new_node, new_reward, new_value, new_logits, discount, exploration_table, select_next) -> None:
    """One simulation step for every tree: create node ``new_node`` under the selected leaf from the model's
    output, back its value up to the root and, if ``select_next``, select the leaf of the next simulation."""
    for b in range(tree.node_visits.shape[0]):
        best_child = _write_priors(new_logits[b], tree.root_legal[b], False, tree.children_prior[b, new_node])
        _create_node(tree, b, new_node, tree.leaf_parent[b], tree.leaf_action[b], new_reward[b], best_child)
        _backup(tree, b, new_node, new_value[b], discount)
        if select_next:
            _select_leaf(tree, b, exploration_table)


@numba.njit(**_JIT_OPTIONS)
def _read_root(tree, out_visits, out_value, out_q) -> None:
    """Root statistics of every tree: child visits [B, A], root value [B], child Q [B, A] (0 if unvisited)."""
    for b in range(tree.node_visits.shape[0]):
        out_value[b] = tree.node_value_sum[b, 0] / tree.node_visits[b, 0]
        for a in range(tree.children_index.shape[2]):
            out_visits[b, a] = tree.children_visits[b, 0, a]
            out_q[b, a] = tree.children_q[b, 0, a]


@numba.njit(**_JIT_OPTIONS)
def _exploration_table(pb_c_init, pb_c_base, table) -> None:
    """table[n] = (log((n + pb_c_base + 1) / pb_c_base) + pb_c_init) * sqrt(n)."""
    for n in range(table.shape[0]):
        table[n] = (math.log((n + pb_c_base + 1.0) / pb_c_base) + pb_c_init) * math.sqrt(n)


def new_tree(batch_size: int, num_nodes: int, num_actions: int, device=None) -> Tree:
    """Storage for ``batch_size`` trees of ``num_nodes`` nodes over ``num_actions`` actions (reused per thread).

    ``device`` (the latent's) is ignored: the trees live in host memory.
    """
    return reusable(
        ("cpu-tree", batch_size, num_nodes, num_actions), lambda: _allocate_tree(batch_size, num_nodes, num_actions)
    )


def _allocate_tree(batch_size: int, num_nodes: int, num_actions: int) -> Tree:
    nodes = (batch_size, num_nodes)
    children = (batch_size, num_nodes, num_actions)
    return Tree(
        node_visits=np.empty(nodes, dtype=np.int32),
        node_value_sum=np.empty(nodes, dtype=np.float64),
        node_reward=np.empty(nodes, dtype=np.float64),
        parent=np.empty(nodes, dtype=np.int32),
        action_from_parent=np.empty(nodes, dtype=np.int32),
        children_index=np.empty(children, dtype=np.int32),
        children_prior=np.empty(children, dtype=np.float64),
        children_visits=np.empty(children, dtype=np.int32),
        children_q=np.empty(children, dtype=np.float64),
        children_prior_term=np.empty(children, dtype=np.float64),
        visited_actions=np.empty(children, dtype=np.int32),
        num_visited=np.empty(nodes, dtype=np.int32),
        best_unvisited=np.empty(nodes, dtype=np.int32),
        root_legal=np.empty((batch_size, num_actions), dtype=np.bool_),
        min_max=np.empty((batch_size, 2), dtype=np.float64),
        leaf_parent=np.empty(batch_size, dtype=np.int32),
        leaf_action=np.empty(batch_size, dtype=np.int64),
    )


def exploration_table(num_nodes: int, pb_c_init: float, pb_c_base: float, device=None) -> np.ndarray:
    """[num_nodes + 1] float64: the exploration factor for every visit count a node can reach (``device`` is ignored)."""
    table = np.empty(num_nodes + 1, dtype=np.float64)
    _exploration_table(float(pb_c_init), float(pb_c_base), table)
    return table


def init_roots(
    tree: Tree,
    prior_logits: np.ndarray,
    root_value: np.ndarray,
    legal: np.ndarray,
    noise: Optional[np.ndarray],
    noise_fraction: float,
    exploration: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Write the roots (logits [B, A], value [B], legal [B, A] bool, noise [B, A] or None) and select the
    first leaves; returns (parent node [B] int32, action [B] int64) of the nodes the first simulation expands."""
    if noise is None:
        noise, noise_fraction = prior_logits, 0.0  # any [B, A] float array: it is not read
    _init_roots_and_select(
        tree, _host_array(prior_logits), _host_array(root_value), legal, _host_array(noise), float(noise_fraction), exploration
    )
    return tree.leaf_parent, tree.leaf_action


def expand_and_select(
    tree: Tree, new_node: int, reward, value, prior_logits, discount: float, exploration: np.ndarray, select_next: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Expand the selected leaves as node ``new_node`` with the model's reward [B], value [B] and logits [B, A],
    back the values up, and select the next leaves (if ``select_next``); returns them as in :func:`init_roots`."""
    _expand_backup_select(
        tree, new_node, _host_array(reward), _host_array(value), _host_array(prior_logits), float(discount), exploration,
        select_next,
    )  # fmt: skip
    return tree.leaf_parent, tree.leaf_action


def read_root(tree: Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root visit counts [B, A] int32, root value [B] float64 and root child Q values [B, A] float64."""
    visits = np.empty((tree.batch_size, tree.num_actions), dtype=np.int32)
    value = np.empty(tree.batch_size, dtype=np.float64)
    q_values = np.empty((tree.batch_size, tree.num_actions), dtype=np.float64)
    _read_root(tree, visits, value, q_values)
    return visits, value, q_values


def choose_action(rng: np.random.Generator, visit_counts: np.ndarray, temperature: float, num_simulations: int) -> np.ndarray:
    """[B] int64 actions from the root visit counts [B, A]: :func:`sb3_muzero.mcts.search.choose_action`."""
    return choose_action_from_visits(rng, visit_counts, temperature)


def to_numpy(array: np.ndarray) -> np.ndarray:
    return array


def _host_array(array) -> np.ndarray:
    """A model output as a numpy array (torch tensors are moved to the host); the kernels read float32 or float64."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)
