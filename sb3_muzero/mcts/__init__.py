"""Batched MuZero tree search: one driver, a Numba CPU backend and a CuPy CUDA backend.

Read top-down: :mod:`~sb3_muzero.mcts.driver` (the simulation loop) imports root preparation
(:mod:`~sb3_muzero.mcts.roots`), the action choice (:mod:`~sb3_muzero.mcts.action_choice`), tables
(:mod:`~sb3_muzero.mcts.tables`), the backends and the settings (:mod:`~sb3_muzero.mcts.settings`); none
of them imports the driver.
"""

from sb3_muzero.mcts.driver import search
from sb3_muzero.mcts.settings import SearchSettings
from sb3_muzero.mcts.types import RecurrentFn, RecurrentOutput, RootInput, SearchResult, Tree

__all__ = ["RecurrentFn", "RecurrentOutput", "RootInput", "SearchResult", "SearchSettings", "Tree", "search"]
