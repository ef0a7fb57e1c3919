"""Batched MuZero tree search: one API, a Numba CPU backend and a CuPy CUDA backend."""

from sb3_muzero.mcts.search import search
from sb3_muzero.mcts.types import RecurrentFn, RecurrentOutput, RootInput, SearchResult, Tree

__all__ = ["RecurrentFn", "RecurrentOutput", "RootInput", "SearchResult", "Tree", "search"]
