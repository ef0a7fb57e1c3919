"""Inputs and outputs of the batched search.

``B`` is the batch of independent trees (one per environment), ``A`` the number of discrete actions
and ``N = num_simulations + 1`` the number of nodes a tree can hold (node index == simulation index,
the root is node 0).
"""

from typing import Any, Callable, NamedTuple

import numpy as np

Array = Any  # numpy array or torch tensor (on the CUDA backend, a torch tensor on the GPU)

# NODE_DTYPE's best_unvisited of a node whose priors are not computed yet (search.cu defines the same value).
PRIORS_PENDING = -2
# Gumbel's constants, mctx's (search.cu defines the same values): the least prior a visited child weighs in the
# mixed value (the smallest normal float64), the least score of a root action Sequential Halving considers.
TINY = float(np.finfo(np.float64).tiny)
LOW_SCORE = -1e9

# One node of a tree, in one 64-byte cache line (search.cu's struct Node, field for field).
NODE_DTYPE = np.dtype(
    [
        ("value_sum", np.float64),  # W(node): sum of the returns backed up through the node
        ("reward", np.float64),  # r(node): reward of the transition from the parent into the node
        ("prior", np.float64),  # P(parent, a) of the action a that leads to the node (0 for the root)
        ("best_unvisited_prior", np.float64),  # the prior of best_unvisited (-1 if none or pending)
        ("visits", np.int32),  # N(node)
        ("parent", np.int32),  # parent node index (-1 for the root)
        ("slot_in_parent", np.int32),  # the node's slot in its parent's row of Tree.visited (-1 for the root)
        ("num_visited", np.int32),  # number of visited children: the slots in use in the node's row of Tree.visited
        # the (legal) unvisited child of largest prior, lowest index on ties; -1 if none; PRIORS_PENDING while
        # the node's row of Tree.unvisited_prior holds logits
        ("best_unvisited", np.int32),
        ("unused", np.int32, (3,)),
    ],
    align=True,
)

# A visited child, kept in its parent's row in order of first visit (search.cu's struct VisitedChild): 32 bytes, so
# that selection reads everything it needs of the children from the parent's row, never the children's nodes.
VISITED_DTYPE = np.dtype(
    [
        ("q", np.float64),  # Q(node, a) = r(child) + discount * W(child) / N(child)
        # PUCT: P(node, a) / (1 + N(child)), the prior term before exploration, refreshed during backup;
        # Gumbel: P(node, a), the prior factor of the improved policy
        ("prior_term", np.float64),
        ("action", np.int32),  # a
        ("child", np.int32),  # the child's node index
        ("visits", np.int32),  # N(child), refreshed during backup
    ],
    align=True,
)


class RootInput(NamedTuple):
    """The network's initial inference for every tree of the batch."""

    prior_logits: Array  # [B, A] policy logits at the root
    value: Array  # [B] value estimate of the root state
    latent: Array  # [B, ...] latent state of the root (numpy array or torch tensor)


class RecurrentOutput(NamedTuple):
    """What ``recurrent_fn(latent [B, ...], action [B])`` returns: one step of the learned model."""

    reward: Array  # [B] reward of the transition into the new state
    value: Array  # [B] value estimate of the new state
    prior_logits: Array  # [B, A] policy logits at the new state
    latent: Array  # [B, ...] latent of the new state


RecurrentFn = Callable[[Array, Array], RecurrentOutput]


class SearchResult(NamedTuple):
    """What a search returns for every tree of the batch.

    ``action`` is a host numpy array on every backend. The root statistics are numpy arrays on the CPU
    backend, and torch tensors on the latent's GPU on the CUDA backend, where only the actions leave
    the device.
    """

    action: np.ndarray  # [B] int64, the action to act with (PUCT: from the visit counts, see ``temperature``;
    #                     Gumbel: the Sequential Halving winner)
    visit_counts: Array  # [B, A] int32, visits of each root child; a row sums to num_simulations
    root_value: Array  # [B] float64, mean value of the root: (root value + every backed-up return) / N(root)
    q_values: Array  # [B, A] float64, Q of each root child (reward + discount * child mean value), 0 if unvisited
    policy_target: Array  # [B, A] float32, the improved policy the network learns (a row sums to 1, 0 for illegal
    #                       actions). PUCT: the visit distribution N(a) / sum N; Gumbel: softmax(logits + sigma(completed Q))


class GumbelSelection(NamedTuple):
    """What Gumbel MuZero's selection reads besides the tree, prepared on the host once per search
    (:func:`sb3_muzero.mcts.roots.gumbel_selection`); on the CUDA backend, device copies of the arrays."""

    considered_visits: Array  # [max_considered_actions + 1, num_simulations] int32, Sequential Halving's table
    num_considered: Array  # [B] int32, min(max_considered_actions, legal actions of the tree): its row of the table
    gumbel_logits: Array  # [B, A] float64, gumbel + root_logits: the root's Gumbel noise (0 without noise) plus its logits
    root_logits: Array  # [B, A] float64, root logits minus their largest legal one (illegal actions: -inf)
    c_visit: float  # sigma(q) = (c_visit + max_b N(b)) * c_scale * (q - lo) / max(hi - lo, min_q_range)
    c_scale: float
    min_q_range: float


class Tree(NamedTuple):
    """Dense storage of a batch of search trees (numpy arrays on the CPU, CuPy arrays on the GPU, where the record
    arrays are held as their bytes: see :func:`sb3_muzero.mcts.kernels.as_records`).

    Every node is one record of ``nodes`` (``NODE_DTYPE``, a cache line). A node's visited children are
    kept in the node's own row of ``visited``, in order of first visit: slot ``k`` (``VISITED_DTYPE``,
    slots ``0 .. num_visited - 1`` in use) holds the k-th visited child's action, node index, Q, visits and
    prior term, so that selection reads one row per node, never looks a child up by action and never reads the
    children's nodes.
    Selection scores only the visited children and the best unvisited one (see
    :mod:`sb3_muzero.mcts.backends.cpu`). A new node's priors are computed when selection first passes
    through it: until then its row of ``unvisited_prior`` holds the model's logits and its
    ``best_unvisited`` is ``PRIORS_PENDING``. A node is written when it is created; nodes that do not
    exist yet, and slots not in use, hold garbage.
    """

    nodes: Array  # [B, N] NODE_DTYPE, the statistics and links of every node
    visited: Array  # [B, N, A] VISITED_DTYPE, slot k: the k-th visited child of the node
    unvisited_prior: Array  # [B, N, A] float64, P(node, a) while child a is unvisited (and, at the root, legal),
    #                         -1 once visited (or illegal); the model's logits while the node's priors are pending
    raw_value: Array  # [B, N] float64, the network's value of the node (the root value, or the model's value when
    #                   the node was expanded); Gumbel searches only (its mixed value reads it)
    min_max: Array  # [B, 2] float64, smallest and largest Q backed up in the tree so far
    scratch: Array  # [B, A] float64, working memory of one selection step; Gumbel searches only (the improved-policy
    #                 weights of a node's visited children, in slot order)
    leaf_parent: Array  # [B] int32, output of selection: the node whose child gets expanded
    leaf_action: Array  # [B] int64, output of selection: the action leading to the new node

    @property
    def batch_size(self) -> int:
        return self.nodes.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.nodes.shape[1]

    @property
    def num_actions(self) -> int:
        return self.unvisited_prior.shape[2]
