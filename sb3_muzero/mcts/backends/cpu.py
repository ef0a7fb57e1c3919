"""CPU backend: the search kernels compiled with Numba.

Each kernel is a loop over the trees of the batch whose body handles one tree, as one CUDA thread
does in ``kernels/search.cu``. The bodies follow the semantics of :mod:`sb3_muzero.mcts.driver`
operation for operation (float64, same order), so results equal the reference search's bit for bit.
The kernels run on one thread and release the GIL. There are two: one writes the roots and selects
the first leaves, the other runs one simulation step per call (expand the selected leaves with the
model's output, back the values up, select the next leaves), so a simulation costs one call.

What makes a simulation cheap without changing its result:

- Only the candidates are scored: the visited children, and the unvisited child of largest prior
  (``best_unvisited``). Every unvisited child scores ``exploration * P``, so no other unvisited child
  can win, and the candidates give the same argmax as scoring every child. (The one exception needs
  two priors so close that multiplying them by the exploration factor rounds both to the same
  float64: the full scan would then pick the lower index, the shortcut the larger prior.)
- A node is one cache line, and its visited children sit in its own row of ``visited`` in order of
  first visit, so walking down reads a node and the first slots of its row, without looking children
  up by action, and backing up writes the parent's slot the child knows (``slot_in_parent``). A slot
  holds everything selection reads of the child (Q, visits, the prior term), so scoring a node's
  children never reads the children's own nodes.
- A new node keeps the model's logits; its priors (softmax, best unvisited child) are computed when
  selection first passes through it, so leaves that it never passes through again (about a third
  of the nodes in ``benchmarks/bench_mcts.py``'s searches) cost no ``exp``.
- What does not change while walking down is computed once: ``exploration(N)`` comes from a table
  built per search, the reciprocal of the min-max range once per tree, and ``P / (1 + N(child))`` is
  stored per visited child and refreshed during backup.

The kernels take the tree's arrays one by one, which Numba unboxes several times faster than a named
tuple: a call per simulation makes that count on small batches.

No reference counting in the loops over trees. Numba counts the references of every array variable
(an array view, or an array handed to an inlined helper, is a new one) with atomic updates, and its
pruning pass removes an increment and its decrement only where they pair up: where the variable dies
at one place whatever the path. A helper that takes arrays therefore has one exit and uses its arrays
on every path through it (no early return, no branch that reads other arrays than its sibling: an
empty loop instead); otherwise the counting stays, two atomic updates per array and tree at every
simulation, which cost Gumbel's kernels a fifth of a search's time. ``tests/test_cpu_kernels.py``
checks the compiled kernels for it.

Gumbel MuZero has kernels of its own over the same tree (plus ``raw_value`` and ``scratch``), sharing node
creation, softmax and backup. Below the root they score the same candidates as PUCT's (the visited children
and the unvisited child of largest prior, which is the best unvisited one since the unvisited children share
sigma and N = 0; with the same exception for priors that round to the same score). A Gumbel search keeps
P(node, a) itself in a slot's prior term (its backup does not turn it into PUCT's P / (1 + N)), so that the
completed Q and the improved policy read the slots alone. Gumbel's arrays are indexed with the tree's ``b``
and the loop of the descent is kept in one function.
"""

import math
from typing import Optional, Union

import numba
import numpy as np

from sb3_muzero.common.jit import JIT_OPTIONS
from sb3_muzero.mcts import tables
from sb3_muzero.mcts.action_choice import choose_action as choose_action_from_visits
from sb3_muzero.mcts.action_choice import visit_distribution as visit_distribution_from_visits
from sb3_muzero.mcts.types import (
    LOW_SCORE,
    NODE_DTYPE,
    PRIORS_PENDING,
    TINY,
    VISITED_DTYPE,
    GumbelSelection,
    Tree,
)
from sb3_muzero.mcts.workspace import reusable

ON_DEVICE = False  # trees in host memory: init_roots takes the driver's checked host copies of the root
# Helpers work on one tree's rows (``nodes`` [N], ``visited`` [N, A], ``unvisited_prior`` [N, A],
# ``min_max`` [2]) and are inlined into the kernels.
_INLINE = dict(inline="always", **JIT_OPTIONS)


@numba.njit(**_INLINE)
def _softmax(logits, legal, is_root, prior) -> None:
    """prior[a] = softmax of logits over the legal actions (all actions unless ``is_root``), -1 for illegal ones.

    ``[A] -> [A]``; ``prior`` may be ``logits`` itself (``legal`` is read only at the root).
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
            prior[a] = -1.0
    inverse_total = 1.0 / total
    for a in range(num_actions):
        if not is_root or legal[a]:
            prior[a] = prior[a] * inverse_total


@numba.njit(**_INLINE)
def _find_best_unvisited(node, unvisited_prior) -> None:
    """Set ``best_unvisited`` of the ``node`` record and its prior from the node's ``unvisited_prior`` [A]:
    the unvisited (legal) child of largest prior, lowest index on ties, or -1."""
    best_action = -1
    best_prior = -1.0  # the prior of visited and illegal children
    for a in range(unvisited_prior.shape[0]):
        if unvisited_prior[a] > best_prior:
            best_prior = unvisited_prior[a]
            best_action = a
    node.best_unvisited = best_action
    node.best_unvisited_prior = best_prior


@numba.njit(**_INLINE)
def _create_node(nodes, visited, unvisited_prior, node, parent, action, reward) -> None:
    """Write node ``node`` of one tree, unvisited, and link it to the next free slot of its parent (-1: the root).

    The caller writes the node's ``unvisited_prior`` row first: the root's priors, or a new node's logits.
    """
    record = nodes[node]
    record.parent = parent
    record.reward = reward
    record.visits = 0
    record.value_sum = 0.0
    record.num_visited = 0
    if parent < 0:
        record.slot_in_parent = -1
        record.prior = 0.0
        _find_best_unvisited(record, unvisited_prior[node])
        return
    record.best_unvisited = PRIORS_PENDING
    record.best_unvisited_prior = -1.0
    parent_record = nodes[parent]
    slot = parent_record.num_visited
    record.slot_in_parent = slot
    record.prior = unvisited_prior[parent, action]
    visited[parent, slot].action = action
    visited[parent, slot].child = node
    visited[parent, slot].prior_term = record.prior  # P / (1 + N) with N = 0; Gumbel keeps P
    visited[parent, slot].visits = 0
    parent_record.num_visited = slot + 1
    unvisited_prior[parent, action] = -1.0
    _find_best_unvisited(parent_record, unvisited_prior[parent])


@numba.njit(**_INLINE)
def _select_leaf(nodes, visited, unvisited_prior, min_max, exploration_table) -> tuple[int, int]:
    """Walk one tree from the root by PUCT to the first unexpanded child; return its parent and action.

    At each node the action of largest score wins, lowest index on ties (see the module docstring);
    a node's pending priors are computed on the way.
    """
    q_min = min_max[0]
    q_max = min_max[1]
    if q_max > q_min:
        q_scale = 1.0 / (q_max - q_min)
    else:  # no range yet: every value term is 0
        q_min = 0.0
        q_scale = 0.0
    node = 0
    while True:
        record = nodes[node]
        if record.best_unvisited == PRIORS_PENDING:
            _softmax(unvisited_prior[node], unvisited_prior[node], False, unvisited_prior[node])
            _find_best_unvisited(record, unvisited_prior[node])
        exploration = exploration_table[record.visits]
        best_action = record.best_unvisited
        best_child = -1
        best_score = -math.inf
        if best_action >= 0:
            best_score = exploration * record.best_unvisited_prior + 0.0
        for k in range(record.num_visited):
            child = visited[node, k]
            value_score = (child.q - q_min) * q_scale
            score = exploration * child.prior_term + value_score
            if score > best_score or (score == best_score and child.action < best_action):
                best_score = score
                best_action = child.action
                best_child = child.child
        if best_child < 0:  # the best child is unvisited: the leaf to expand
            return node, best_action
        node = best_child


@numba.njit(**_INLINE)
def _backup(nodes, visited, min_max, leaf, value, discount, puct_prior_terms) -> None:
    """Add the discounted return to every node of one tree from ``leaf`` up to the root; widen its Q range.

    Each parent's slot of the node gets the node's Q and visits, and, if ``puct_prior_terms``, PUCT's prior term
    P / (1 + N) (Gumbel searches keep P there)."""
    q_min = min_max[0]
    q_max = min_max[1]
    backed_up = value
    node = leaf
    while True:
        record = nodes[node]
        record.value_sum += backed_up
        record.visits += 1
        if node == 0:
            break
        reward = record.reward
        visits = record.visits
        q = reward + discount * (record.value_sum / visits)
        q_min = min(q_min, q)
        q_max = max(q_max, q)
        slot = visited[record.parent, record.slot_in_parent]
        slot.q = q
        slot.visits = visits
        if puct_prior_terms:
            slot.prior_term = record.prior / (1 + visits)
        backed_up = reward + discount * backed_up
        node = record.parent
    min_max[0] = q_min
    min_max[1] = q_max


@numba.njit(**_INLINE)
def _create_root(nodes, visited, unvisited_prior, min_max, value) -> None:
    """Write the root (node 0) of one tree from its priors (in ``unvisited_prior[0]``): one visit carrying the
    network's value, an empty Q range."""
    _create_node(nodes, visited, unvisited_prior, 0, -1, -1, 0.0)
    nodes[0].visits = 1
    nodes[0].value_sum = value
    min_max[0] = math.inf
    min_max[1] = -math.inf


@numba.njit(**JIT_OPTIONS)
def _init_roots_and_select(
    nodes, visited, unvisited_prior, min_max, leaf_parent, leaf_action,
    prior_logits, root_value, legal, noise, noise_fraction, exploration_table,
) -> None:  # fmt: skip
    """Write the root (node 0) of every tree, priors with noise and one visit carrying the network value;
    then select the leaves of the first simulation."""
    for b in range(prior_logits.shape[0]):
        _softmax(prior_logits[b], legal[b], True, unvisited_prior[b, 0])
        if noise_fraction > 0.0:
            for a in range(prior_logits.shape[1]):
                if legal[b, a]:
                    mixed = unvisited_prior[b, 0, a] * (1.0 - noise_fraction) + noise[b, a] * noise_fraction
                    unvisited_prior[b, 0, a] = mixed
        _create_root(nodes[b], visited[b], unvisited_prior[b], min_max[b], root_value[b])
        leaf_parent[b], leaf_action[b] = _select_leaf(nodes[b], visited[b], unvisited_prior[b], min_max[b], exploration_table)


@numba.njit(**JIT_OPTIONS)
def _expand_backup_select(
    nodes, visited, unvisited_prior, min_max, leaf_parent, leaf_action,
    new_node, new_reward, new_value, new_logits, discount, exploration_table, select_next,
) -> None:  # fmt: skip
    """One simulation step for every tree: create node ``new_node`` under the selected leaf from the model's
    output, back its value up to the root and, if ``select_next``, select the leaf of the next simulation."""
    for b in range(nodes.shape[0]):
        for a in range(new_logits.shape[1]):
            unvisited_prior[b, new_node, a] = new_logits[b, a]  # the priors are computed when first needed
        _create_node(nodes[b], visited[b], unvisited_prior[b], new_node, leaf_parent[b], leaf_action[b], new_reward[b])
        _backup(nodes[b], visited[b], min_max[b], new_node, new_value[b], discount, True)
        if select_next:
            leaf_parent[b], leaf_action[b] = _select_leaf(
                nodes[b], visited[b], unvisited_prior[b], min_max[b], exploration_table
            )


@numba.njit(**JIT_OPTIONS)
def _read_root(nodes, visited, out_visits, out_value, out_q) -> None:
    """Root statistics of every tree: child visits [B, A], root value [B], child Q [B, A] (0 if unvisited)."""
    for b in range(nodes.shape[0]):
        root = nodes[b, 0]
        out_value[b] = root.value_sum / root.visits
        for a in range(out_visits.shape[1]):
            out_visits[b, a] = 0
            out_q[b, a] = 0.0
        for k in range(root.num_visited):
            child = visited[b, 0, k]
            out_visits[b, child.action] = nodes[b, child.child].visits
            out_q[b, child.action] = child.q


# --- Gumbel MuZero (see the semantics in sb3_muzero.mcts.driver) ---------------------------------------------
# Gumbel's own arrays (raw_value [B, N], scratch [B, A]) and inputs (gumbel, root_logits [B, A]) are indexed with the
# tree's ``b`` instead of being sliced per tree. The helpers that take arrays have one exit and use their arrays on
# every path (see "No reference counting" in the module docstring).


@numba.njit(**_INLINE)
def _completed_q_range(nodes, visited, node_value, node, num_actions, c_visit, c_scale, min_q_range):
    """What sigma(completed Q) of one node's actions needs: (mixed value, low, high, scale, span, sum of visits).

    sigma(q) = scale * ((q - low) / span); the mixed value completes the Q of every unvisited (or illegal) action.
    Reads the node's visited slots only (Q, visits and prior of each child).
    """
    record = nodes[node]
    total_visits = 0
    most_visits = 0
    weighted_q = 0.0
    mass = 0.0
    low = math.inf
    high = -math.inf
    for k in range(record.num_visited):
        slot = visited[node, k]
        total_visits += slot.visits
        most_visits = max(most_visits, slot.visits)
        prior = max(slot.prior_term, TINY)  # a Gumbel search keeps P in prior_term
        weighted_q += prior * slot.q
        mass += prior
        low = min(low, slot.q)
        high = max(high, slot.q)
    mixed_value = node_value
    if record.num_visited > 0:
        mixed_value = (node_value + total_visits * (weighted_q / mass)) / (total_visits + 1)
    if record.num_visited < num_actions:  # some actions are unvisited (or illegal): they take the mixed value
        low = min(low, mixed_value)
        high = max(high, mixed_value)
    scale = (c_visit + most_visits) * c_scale
    span = max(high - low, min_q_range)
    return mixed_value, low, high, scale, span, total_visits


@numba.njit(**_INLINE)
def _gumbel_root_choice(nodes, visited, unvisited_prior, root_value, gumbel_logits, b, considered_visit,
                        c_visit, c_scale, min_q_range) -> tuple[int, int]:  # fmt: skip
    """(action, child node or -1) of the root action Sequential Halving takes among the legal actions with
    ``considered_visit`` visits: the largest max(LOW_SCORE, (gumbel + logit) + sigma), lowest index on ties.

    Two loops, one of which runs empty, rather than two branches: every array is then used on every path.
    """
    num_actions = gumbel_logits.shape[1]
    mixed_value, low, _, scale, span, _ = _completed_q_range(
        nodes, visited, root_value, 0, num_actions, c_visit, c_scale, min_q_range
    )
    best_action = -1
    best_child = -1
    best_score = -math.inf
    unvisited_sigma = scale * ((mixed_value - low) / span)
    for a in range(num_actions if considered_visit == 0 else 0):  # the unvisited legal actions, which share sigma
        if unvisited_prior[0, a] >= 0.0:
            score = max(LOW_SCORE, gumbel_logits[b, a] + unvisited_sigma)
            if score > best_score:
                best_score = score
                best_action = a
    for k in range(nodes[0].num_visited if considered_visit > 0 else 0):
        slot = visited[0, k]
        if slot.visits == considered_visit:
            action = slot.action
            score = max(LOW_SCORE, gumbel_logits[b, action] + scale * ((slot.q - low) / span))
            if score > best_score or (score == best_score and action < best_action):
                best_score = score
                best_action = action
                best_child = slot.child
    return best_action, best_child


@numba.njit(**_INLINE)
def _gumbel_select_leaf(nodes, visited, unvisited_prior, raw_value, scratch, gumbel_logits, b, considered_visit,
                        c_visit, c_scale, min_q_range) -> tuple[int, int]:  # fmt: skip
    """Walk tree ``b`` from the root to the first unexpanded child; return its parent and action.

    At the root, Sequential Halving (:func:`_gumbel_root_choice`); below it the deterministic selection: the largest
    pi(a) - N(a) / (1 + sum N), pi = softmax(logits + sigma), lowest index on ties. Like PUCT's selection it scores
    only the visited children and the unvisited child of largest prior: the unvisited children share sigma and N = 0,
    so no other can score higher. The visited children's P exp(sigma - top) wait in the tree's ``scratch`` row between
    the two passes. A node's pending priors are computed on the way. (The loop body is written out here rather than
    called, and a node without visited children continues rather than returns: see the module docstring on reference
    counting.)
    """
    action, child = _gumbel_root_choice(
        nodes, visited, unvisited_prior, raw_value[b, 0], gumbel_logits, b, considered_visit, c_visit, c_scale, min_q_range
    )
    node = 0
    num_actions = unvisited_prior.shape[1]
    while child >= 0:
        node = child
        record = nodes[node]
        if record.best_unvisited == PRIORS_PENDING:
            _softmax(unvisited_prior[node], unvisited_prior[node], False, unvisited_prior[node])
            _find_best_unvisited(record, unvisited_prior[node])
        if record.num_visited == 0:  # sigma is 0 for every action: pi is the prior
            action = record.best_unvisited
            child = -1
            continue
        mixed_value, low, high, scale, span, total_visits = _completed_q_range(
            nodes, visited, raw_value[b, node], node, num_actions, c_visit, c_scale, min_q_range
        )
        top = scale * ((high - low) / span)  # the largest sigma
        normaliser = 0.0
        for k in range(record.num_visited):
            slot = visited[node, k]
            scratch[b, k] = slot.prior_term * math.exp(scale * ((slot.q - low) / span) - top)
            normaliser += scratch[b, k]
        action = record.best_unvisited
        child = -1
        best_score = -math.inf
        if action >= 0:
            unvisited_mass = 0.0  # the unvisited children's priors in action order (the others hold -1: they add 0)
            for a in range(num_actions):
                unvisited_mass += max(unvisited_prior[node, a], 0.0)
            unvisited_weight = math.exp(scale * ((mixed_value - low) / span) - top)
            normaliser += unvisited_mass * unvisited_weight
            best_score = record.best_unvisited_prior * unvisited_weight / normaliser - 0.0
        denominator = 1 + total_visits
        for k in range(record.num_visited):
            slot = visited[node, k]
            score = scratch[b, k] / normaliser - slot.visits / denominator
            if score > best_score or (score == best_score and slot.action < action):
                best_score = score
                action = slot.action
                child = slot.child
    return node, action


@numba.njit(**JIT_OPTIONS)
def _gumbel_init_roots_and_select(
    nodes, visited, unvisited_prior, raw_value, min_max, scratch, leaf_parent, leaf_action,
    prior_logits, root_value, legal, considered_visits, num_considered, gumbel_logits, root_logits,
    c_visit, c_scale, min_q_range,
) -> None:  # fmt: skip
    """Write the root of every tree (priors over the legal actions, one visit carrying the network value); then
    select the leaves of the first simulation."""
    for b in range(prior_logits.shape[0]):
        _softmax(prior_logits[b], legal[b], True, unvisited_prior[b, 0])
        _create_root(nodes[b], visited[b], unvisited_prior[b], min_max[b], root_value[b])
        raw_value[b, 0] = root_value[b]
        leaf_parent[b], leaf_action[b] = _gumbel_select_leaf(
            nodes[b], visited[b], unvisited_prior[b], raw_value, scratch, gumbel_logits, b,
            considered_visits[num_considered[b], 0], c_visit, c_scale, min_q_range,
        )  # fmt: skip


@numba.njit(**JIT_OPTIONS)
def _gumbel_expand_backup_select(
    nodes, visited, unvisited_prior, raw_value, min_max, scratch, leaf_parent, leaf_action,
    new_node, new_reward, new_value, new_logits, discount,
    considered_visits, num_considered, gumbel_logits, root_logits, c_visit, c_scale, min_q_range, select_next,
) -> None:  # fmt: skip
    """One simulation step for every tree, as :func:`_expand_backup_select`, with Gumbel's selection (which reads
    the considered visit count of the simulation that follows, ``new_node``)."""
    for b in range(nodes.shape[0]):
        for a in range(new_logits.shape[1]):
            unvisited_prior[b, new_node, a] = new_logits[b, a]  # the priors are computed when first needed
        _create_node(nodes[b], visited[b], unvisited_prior[b], new_node, leaf_parent[b], leaf_action[b], new_reward[b])
        raw_value[b, new_node] = new_value[b]
        _backup(nodes[b], visited[b], min_max[b], new_node, new_value[b], discount, False)
        if select_next:
            leaf_parent[b], leaf_action[b] = _gumbel_select_leaf(
                nodes[b], visited[b], unvisited_prior[b], raw_value, scratch, gumbel_logits, b,
                considered_visits[num_considered[b], new_node], c_visit, c_scale, min_q_range,
            )  # fmt: skip


@numba.njit(**_INLINE)
def _gumbel_policy(nodes, visited, raw_value, root_logits, b, c_visit, c_scale, min_q_range, policy) -> None:
    """policy [A] = softmax over the legal actions (finite ``root_logits``) of logits + sigma(completed Q), 0 for
    illegal actions, from the root of tree ``b``."""
    num_actions = root_logits.shape[1]
    mixed_value, low, _, scale, span, _ = _completed_q_range(
        nodes, visited, raw_value[b, 0], 0, num_actions, c_visit, c_scale, min_q_range
    )
    unvisited_sigma = scale * ((mixed_value - low) / span)
    for a in range(num_actions):
        policy[a] = root_logits[b, a] + unvisited_sigma
    for k in range(nodes[0].num_visited):
        slot = visited[0, k]
        policy[slot.action] = root_logits[b, slot.action] + scale * ((slot.q - low) / span)
    largest = -math.inf
    for a in range(num_actions):
        if root_logits[b, a] > -math.inf and policy[a] > largest:
            largest = policy[a]
    total = 0.0
    for a in range(num_actions):
        if root_logits[b, a] > -math.inf:
            policy[a] = math.exp(policy[a] - largest)
            total += policy[a]
        else:
            policy[a] = 0.0
    for a in range(num_actions):
        policy[a] = policy[a] / total


@numba.njit(**JIT_OPTIONS)
def _gumbel_choose(
    nodes, visited, unvisited_prior, raw_value, min_max, scratch, leaf_parent, leaf_action,
    considered_visits, num_considered, gumbel_logits, root_logits, c_visit, c_scale, min_q_range,
    out_action, out_policy,
) -> None:  # fmt: skip
    """The acting action of every tree (the best of the most visited root actions) and its policy target [B, A]."""
    for b in range(nodes.shape[0]):
        most_visits = 0
        for k in range(nodes[b, 0].num_visited):
            most_visits = max(most_visits, visited[b, 0, k].visits)
        out_action[b], _ = _gumbel_root_choice(nodes[b], visited[b], unvisited_prior[b], raw_value[b, 0], gumbel_logits, b,
                                               most_visits, c_visit, c_scale, min_q_range)  # fmt: skip
        _gumbel_policy(nodes[b], visited[b], raw_value, root_logits, b, c_visit, c_scale, min_q_range, out_policy[b])


def new_tree(batch_size: int, num_nodes: int, num_actions: int, device=None) -> Tree:
    """Storage for ``batch_size`` trees of ``num_nodes`` nodes over ``num_actions`` actions (reused per thread).

    ``device`` (the latent's) is ignored: the trees live in host memory.
    """
    return reusable(
        ("cpu-tree", batch_size, num_nodes, num_actions), lambda: _allocate_tree(batch_size, num_nodes, num_actions)
    )


def _allocate_tree(batch_size: int, num_nodes: int, num_actions: int) -> Tree:
    return Tree(
        nodes=np.empty((batch_size, num_nodes), dtype=NODE_DTYPE),
        visited=np.empty((batch_size, num_nodes, num_actions), dtype=VISITED_DTYPE),
        unvisited_prior=np.empty((batch_size, num_nodes, num_actions), dtype=np.float64),
        raw_value=np.empty((batch_size, num_nodes), dtype=np.float64),
        min_max=np.empty((batch_size, 2), dtype=np.float64),
        scratch=np.empty((batch_size, num_actions), dtype=np.float64),
        leaf_parent=np.empty(batch_size, dtype=np.int32),
        leaf_action=np.empty(batch_size, dtype=np.int64),
    )


def exploration_table(num_nodes: int, pb_c_init: float, pb_c_base: float, device=None) -> np.ndarray:
    """[num_nodes + 1] float64: :func:`sb3_muzero.mcts.tables.exploration_table` (``device`` is ignored)."""
    return tables.exploration_table(num_nodes, pb_c_init, pb_c_base)


def gumbel_selection(selection: GumbelSelection, device=None) -> GumbelSelection:
    """The host's Gumbel selection as the kernels read it (``device`` is ignored)."""
    return selection._replace(
        considered_visits=np.ascontiguousarray(selection.considered_visits, dtype=np.int32),
        num_considered=np.ascontiguousarray(selection.num_considered, dtype=np.int32),
        gumbel_logits=np.ascontiguousarray(selection.gumbel_logits, dtype=np.float64),
        root_logits=np.ascontiguousarray(selection.root_logits, dtype=np.float64),
    )


def init_roots(
    tree: Tree,
    prior_logits: np.ndarray,
    root_value: np.ndarray,
    legal: np.ndarray,
    noise: Optional[np.ndarray],
    noise_fraction: float,
    selection: Union[np.ndarray, GumbelSelection],
) -> tuple[np.ndarray, np.ndarray]:
    """Write the roots (logits [B, A], value [B], legal [B, A] bool, noise [B, A] or None) and select the
    first leaves; returns (parent node [B] int32, action [B] int64) of the nodes the first simulation expands.

    :param selection: PUCT's exploration table (:func:`exploration_table`) or Gumbel's :func:`gumbel_selection`
    """
    logits, value = _host_array(prior_logits), _host_array(root_value)
    if isinstance(selection, GumbelSelection):
        _gumbel_init_roots_and_select(*tree, logits, value, legal, *selection)
        return tree.leaf_parent, tree.leaf_action
    if noise is None:
        noise, noise_fraction = prior_logits, 0.0  # any [B, A] float array: it is not read
    _init_roots_and_select(*_puct_arrays(tree), logits, value, legal, _host_array(noise), float(noise_fraction), selection)
    return tree.leaf_parent, tree.leaf_action


def expand_and_select(
    tree: Tree,
    new_node: int,
    reward,
    value,
    prior_logits,
    gamma: float,
    selection: Union[np.ndarray, GumbelSelection],
    select_next: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Expand the selected leaves as node ``new_node`` with the model's reward [B], value [B] and logits [B, A],
    back the values up, and select the next leaves (if ``select_next``) by ``selection`` (as in :func:`init_roots`);
    returns them as :func:`init_roots` does."""
    outputs = (_host_array(reward), _host_array(value), _host_array(prior_logits), float(gamma))
    if isinstance(selection, GumbelSelection):
        _gumbel_expand_backup_select(*tree, new_node, *outputs, *selection, select_next)
    else:
        _expand_backup_select(*_puct_arrays(tree), new_node, *outputs, selection, select_next)
    return tree.leaf_parent, tree.leaf_action


def read_root(tree: Tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root visit counts [B, A] int32, root value [B] float64 and root child Q values [B, A] float64."""
    visits = np.empty((tree.batch_size, tree.num_actions), dtype=np.int32)
    value = np.empty(tree.batch_size, dtype=np.float64)
    q_values = np.empty((tree.batch_size, tree.num_actions), dtype=np.float64)
    _read_root(tree.nodes, tree.visited, visits, value, q_values)
    return visits, value, q_values


def choose_action(rng: np.random.Generator, visit_counts: np.ndarray, temperature: float, num_simulations: int) -> np.ndarray:
    """[B] int64 actions from the root visit counts [B, A]: :func:`sb3_muzero.mcts.action_choice.choose_action`."""
    return choose_action_from_visits(rng, visit_counts, temperature)


def visit_distribution(visit_counts: np.ndarray) -> np.ndarray:
    """PUCT's policy target [B, A] float32: :func:`sb3_muzero.mcts.action_choice.visit_distribution`."""
    return visit_distribution_from_visits(visit_counts)


def gumbel_choice(tree: Tree, selection: GumbelSelection) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel's acting actions [B] int64 (the Sequential Halving winners) and policy targets [B, A] float32."""
    action = np.empty(tree.batch_size, dtype=np.int64)
    policy = np.empty((tree.batch_size, tree.num_actions), dtype=np.float64)
    _gumbel_choose(*tree, *selection, action, policy)
    return action, policy.astype(np.float32)


def _puct_arrays(tree: Tree) -> tuple[np.ndarray, ...]:
    """The arrays of ``tree`` the PUCT kernels read (fewer arguments to unbox per call)."""
    return tree.nodes, tree.visited, tree.unvisited_prior, tree.min_max, tree.leaf_parent, tree.leaf_action


def to_numpy(array: np.ndarray) -> np.ndarray:
    return array


def _host_array(array) -> np.ndarray:
    """A model output as a numpy array (torch tensors are moved to the host); the kernels read float32 or float64."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)
