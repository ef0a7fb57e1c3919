"""Tables computed once per search and read by every backend's kernels.

Each is computed on the host, by one function for all backends, so that ``log``, ``sqrt`` and ``pow``
give the same bits whatever device runs the search.
"""

import math

import numba
import numpy as np

from sb3_muzero.common.jit import JIT_OPTIONS
from sb3_muzero.mcts.action_choice import visit_weights


@numba.njit(**JIT_OPTIONS)
def _fill_exploration_table(pb_c_init, pb_c_base, table) -> None:
    """table[n] = (log((n + pb_c_base + 1) / pb_c_base) + pb_c_init) * sqrt(n)."""
    for n in range(table.shape[0]):
        table[n] = (math.log((n + pb_c_base + 1.0) / pb_c_base) + pb_c_init) * math.sqrt(n)


def exploration_table(num_nodes: int, pb_c_init: float, pb_c_base: float) -> np.ndarray:
    """[num_nodes + 1] float64: the PUCT exploration factor for every visit count a node can reach."""
    table = np.empty(num_nodes + 1, dtype=np.float64)
    _fill_exploration_table(float(pb_c_init), float(pb_c_base), table)
    return table


def visit_weight_table(num_simulations: int, temperature: float) -> np.ndarray:
    """[num_simulations, num_simulations + 1] float64: row ``m - 1``, column ``c`` holds the sampling weight of an
    action visited ``c`` times when the row's most visited action has ``m`` visits.

    The weights are computed by :func:`sb3_muzero.mcts.action_choice.visit_weights`, the function
    :func:`~sb3_muzero.mcts.action_choice.choose_action` uses, so a device samples with the same numbers.
    """
    counts = np.arange(num_simulations + 1, dtype=np.float64)[None, :]  # [1, S + 1]
    largest = np.arange(1, num_simulations + 1, dtype=np.float64)[:, None]  # [S, 1]
    with np.errstate(over="ignore"):  # counts above the row's largest overflow; they are never read
        return np.ascontiguousarray(visit_weights(counts, largest, temperature))
