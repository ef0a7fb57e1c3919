"""The interface every search backend provides: the steps the driver (:mod:`sb3_muzero.mcts.driver`) calls.

A backend is a module (or an object) with these members. ``Tree`` stands for the backend's own storage
of a batch of trees, ``Array`` for its arrays: numpy arrays on the CPU backend, torch tensors and CuPy
arrays on the GPU's.
"""

from typing import Any, Optional, Protocol, Union, runtime_checkable

import numpy as np

from sb3_muzero.mcts.types import GumbelSelection

Array = Any
TreeStorage = Any


@runtime_checkable
class SearchBackend(Protocol):
    """What the driver needs of a backend; see :mod:`sb3_muzero.mcts.backends.cpu` for the reference implementation."""

    ON_DEVICE: bool  # True: init_roots reads the root inputs where they lie; False: it gets the driver's host copies

    def new_tree(self, batch_size: int, num_nodes: int, num_actions: int, device=None) -> TreeStorage:
        """Storage for ``batch_size`` trees of ``num_nodes`` nodes over ``num_actions`` actions (may be reused)."""

    def exploration_table(self, num_nodes: int, pb_c_init: float, pb_c_base: float, device=None) -> Array:
        """PUCT's selection: [num_nodes + 1] float64, :func:`sb3_muzero.mcts.tables.exploration_table`, where the
        kernels read it."""

    def gumbel_selection(self, selection: GumbelSelection, device=None) -> GumbelSelection:
        """Gumbel's selection: the host's (:func:`sb3_muzero.mcts.roots.gumbel_selection`) where the kernels read it."""

    def init_roots(
        self,
        tree: TreeStorage,
        prior_logits: Array,
        root_value: Array,
        legal: np.ndarray,
        noise: Optional[np.ndarray],
        noise_fraction: float,
        selection: Union[Array, GumbelSelection],
    ) -> tuple[Array, Array]:
        """Write the roots (logits [B, A], value [B], legal [B, A] bool, PUCT's noise [B, A] or None) and select the
        first leaves by ``selection`` (:meth:`exploration_table` or :meth:`gumbel_selection`); return (parent node [B]
        int32, action [B] int64) of the nodes the first simulation expands."""

    def expand_and_select(
        self,
        tree: TreeStorage,
        new_node: int,
        reward: Array,
        value: Array,
        prior_logits: Array,
        gamma: float,
        selection: Union[Array, GumbelSelection],
        select_next: bool,
    ) -> tuple[Array, Array]:
        """Expand the selected leaves as node ``new_node`` with the model's reward [B], value [B] and logits [B, A],
        back the values up, select the next leaves (if ``select_next``) by ``selection``; return them as
        :meth:`init_roots` does."""

    def read_root(self, tree: TreeStorage) -> tuple[Array, Array, Array]:
        """Root visit counts [B, A] int32, root value [B] float64 and root child Q values [B, A] float64."""

    def choose_action(
        self, rng: np.random.Generator, visit_counts: Array, temperature: float, num_simulations: int
    ) -> np.ndarray:
        """PUCT: [B] int64 host actions from the root visit counts [B, A], as
        :func:`sb3_muzero.mcts.action_choice.choose_action`."""

    def visit_distribution(self, visit_counts: Array) -> Array:
        """PUCT's policy target [B, A] float32: :func:`sb3_muzero.mcts.action_choice.visit_distribution`."""

    def gumbel_choice(self, tree: TreeStorage, selection: GumbelSelection) -> tuple[np.ndarray, Array]:
        """Gumbel: [B] int64 host actions (the Sequential Halving winners) and policy targets [B, A] float32."""

    def to_numpy(self, array: Array) -> np.ndarray:
        """A host copy (or view) of one of the backend's arrays."""
