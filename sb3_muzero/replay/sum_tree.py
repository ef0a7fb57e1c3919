"""Priorities of the replay's slots in a sum tree: O(log n) updates and proportional, stratified sampling."""

import math

import numba
import numpy as np

from sb3_muzero.common.jit import JIT_OPTIONS


@numba.njit(**JIT_OPTIONS)
def _sum_tree_update(tree, leaf_offset, slots, priorities) -> None:
    """Set leaf ``slots[i]`` to ``priorities[i]`` and refresh the sums above it. ``tree``: [2 * leaf_offset]."""
    for i in range(slots.shape[0]):
        node = leaf_offset + slots[i]
        tree[node] = priorities[i]
        node //= 2
        while node >= 1:
            tree[node] = tree[2 * node] + tree[2 * node + 1]
            node //= 2


@numba.njit(**JIT_OPTIONS)
def _sum_tree_find(tree, leaf_offset, masses, out_slots) -> None:
    """For each mass in [0, total), the leaf where the cumulative priority passes it."""
    for i in range(masses.shape[0]):
        mass = masses[i]
        node = 1
        while node < leaf_offset:
            left = 2 * node
            if mass < tree[left] or tree[left + 1] <= 0.0:
                node = left
            else:
                mass -= tree[left]
                node = left + 1
        out_slots[i] = node - leaf_offset


class SumTree:
    """Priorities of ``capacity`` slots with O(log n) update and proportional sampling."""

    def __init__(self, capacity: int):
        self.leaf_offset = self.leaves_for(capacity)
        self.tree = np.zeros(2 * self.leaf_offset, dtype=np.float64)  # tree[1] is the total

    @staticmethod
    def leaves_for(capacity: int) -> int:
        """Leaves of the tree: the power of two at or above ``capacity``."""
        return 1 << max(1, math.ceil(math.log2(max(capacity, 2))))

    @classmethod
    def bytes_for(cls, capacity: int) -> int:
        return 2 * cls.leaves_for(capacity) * np.dtype(np.float64).itemsize

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def update(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        _sum_tree_update(self.tree, self.leaf_offset, np.asarray(slots, np.int64), np.asarray(priorities, np.float64))

    def get(self, slots: np.ndarray) -> np.ndarray:
        return self.tree[self.leaf_offset + np.asarray(slots)]

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``batch_size`` slots, one per equal slice of the priority mass (stratified)."""
        masses = (np.arange(batch_size) + rng.random(batch_size)) * (self.total / batch_size)
        slots = np.empty(batch_size, dtype=np.int64)
        _sum_tree_find(self.tree, self.leaf_offset, np.minimum(masses, np.nextafter(self.total, 0)), slots)
        return slots
