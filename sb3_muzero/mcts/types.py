"""Inputs and outputs of the batched search.

``B`` is the batch of independent trees (one per environment), ``A`` the number of discrete actions
and ``N = num_simulations + 1`` the number of nodes a tree can hold (node index == simulation index,
the root is node 0).
"""

from typing import Any, Callable, NamedTuple

import numpy as np

Array = Any  # numpy array or torch tensor (on the CUDA backend, a torch tensor on the GPU)


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

    action: np.ndarray  # [B] int64, chosen from the root visit counts (see ``temperature``)
    visit_counts: Array  # [B, A] int32, visits of each root child; a row sums to num_simulations
    root_value: Array  # [B] float64, mean value of the root: (root value + every backed-up return) / N(root)
    q_values: Array  # [B, A] float64, Q of each root child (reward + discount * child mean value), 0 if unvisited


class Tree(NamedTuple):
    """Dense storage of a batch of search trees (numpy arrays on the CPU, CuPy arrays on the GPU).

    As in mctx, the statistics of a node's children are also kept in the node's own row
    (``children_*``, ``[B, N, A]``), so that selection reads one row per node. Selection scores only
    the visited children and the best unvisited one (see :mod:`sb3_muzero.mcts.backends.cpu`), hence
    ``visited_actions`` and ``best_unvisited``. A node's row is written when the node is created;
    rows of nodes that do not exist yet hold garbage.
    """

    node_visits: Array  # [B, N] int32, N(node)
    node_value_sum: Array  # [B, N] float64, W(node): sum of the returns backed up through the node
    node_reward: Array  # [B, N] float64, r(node): reward of the transition from the parent into the node
    parent: Array  # [B, N] int32, parent node index (-1 for the root)
    action_from_parent: Array  # [B, N] int32, action that leads from the parent to the node (-1 for the root)
    children_index: Array  # [B, N, A] int32, node index of each child, -1 if not expanded
    children_prior: Array  # [B, N, A] float64, P(node, a)
    children_visits: Array  # [B, N, A] int32, N(child), 0 if not expanded
    children_q: Array  # [B, N, A] float64, Q(node, a) = r(child) + discount * W(child) / N(child), 0 if unvisited
    children_prior_term: Array  # [B, N, A] float64, P(node, a) / (1 + N(child)): the PUCT prior term before exploration
    visited_actions: Array  # [B, N, A] int32, actions of the visited children, in order of first visit
    num_visited: Array  # [B, N] int32, number of visited children
    best_unvisited: Array  # [B, N] int32, the (legal) unvisited child of largest prior, lowest index on ties; -1 if none
    root_legal: Array  # [B, A] bool, legal actions at the root
    min_max: Array  # [B, 2] float64, smallest and largest Q backed up in the tree so far
    leaf_parent: Array  # [B] int32, output of selection: the node whose child gets expanded
    leaf_action: Array  # [B] int64, output of selection: the action leading to the new node

    @property
    def batch_size(self) -> int:
        return self.node_visits.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.node_visits.shape[1]

    @property
    def num_actions(self) -> int:
        return self.children_index.shape[2]
