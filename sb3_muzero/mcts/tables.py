"""Tables computed once per search and read by every backend's kernels.

Each is computed on the host, by one function for all backends, so that ``log``, ``sqrt`` and ``pow``
give the same bits whatever device runs the search.
"""

import functools
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


def considered_visits(num_considered: int, num_simulations: int) -> list[int]:
    """The visit count Sequential Halving expects of the root action it visits at each simulation, with
    ``num_considered`` actions considered at the start (Danihelka et al., 2022; mctx's ``seq_halving``).

    The simulations are split into phases of about ``num_simulations / (ceil(log2(num_considered)) * k)`` visits of
    each of the ``k`` actions still considered (at least one); after each phase the best half stays (at least two).
    With one action (or none) the sequence is 0, 1, 2, ...

    :return: ``num_simulations`` visit counts
    """
    if num_considered <= 1:
        return list(range(num_simulations))
    phases_estimate = math.ceil(math.log2(num_considered))
    sequence: list[int] = []
    visits = [0] * num_considered
    considered = num_considered
    while len(sequence) < num_simulations:
        visits_per_action = max(1, int(num_simulations / (phases_estimate * considered)))
        for _ in range(visits_per_action):
            sequence.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    return sequence[:num_simulations]


@functools.lru_cache(maxsize=16)
def considered_visits_table(max_considered_actions: int, num_simulations: int) -> np.ndarray:
    """[max_considered_actions + 1, num_simulations] int32: row ``m`` is :func:`considered_visits` of ``m`` actions,
    the row of a tree with ``m`` actions considered. Kept between searches (read-only)."""
    rows = [considered_visits(m, num_simulations) for m in range(max_considered_actions + 1)]
    table = np.array(rows, dtype=np.int32).reshape(max_considered_actions + 1, num_simulations)
    table.flags.writeable = False
    return table
