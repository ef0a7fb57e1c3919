"""MuZero's prioritized replay: the buffer, its sum tree, the target kernels and the file format.

- :mod:`~sb3_muzero.replay.buffer`: :class:`MuZeroReplayBuffer` (storage, writing, sampling) and :class:`ReplaySample`;
- :mod:`~sb3_muzero.replay.sum_tree`: the priorities;
- :mod:`~sb3_muzero.replay.targets`: the Numba kernels that follow episodes and compute the unrolls' targets;
- :mod:`~sb3_muzero.replay.file_format`: :func:`save_replay` and :func:`load_replay` (``.npz``, no pickle).
"""

from sb3_muzero.replay.buffer import MuZeroReplayBuffer, ObservationBatch, ReplaySample
from sb3_muzero.replay.file_format import load_replay, save_replay
from sb3_muzero.replay.sum_tree import SumTree

__all__ = ["MuZeroReplayBuffer", "ObservationBatch", "ReplaySample", "SumTree", "load_replay", "save_replay"]
