"""Every value of a replay buffer read from a file, checked before anything uses it.

The replay's Numba kernels index arrays with the stored links and slots, with bounds checks off: a file
with consistent CRCs but a crafted ``next_slot`` could make them read or write outside the arrays. So
:meth:`~sb3_muzero.replay.buffer.MuZeroReplayBuffer.from_state` checks, with :func:`check_scalars` before
it builds anything and :func:`check_contents` once the arrays have their shapes and dtypes, that each value
is one the buffer itself could have written (the invariants below). A value that is not raises
:class:`~sb3_muzero.common.files.CorruptFileError` naming the field.

Invariants: ``0 <= position < capacity``, ``0 <= size <= capacity``, and while the ring is not full,
``position == size`` with exactly the slots below ``size`` written (``episode_id >= 0`` there, -1
elsewhere, ``step_in_episode`` likewise); actions in ``[0, num_actions)``; ``stored_at_update >= 0``; episode ids below
``next_episode_id``; links and stream slots in ``[-1, capacity)``; rewards, values, visit distributions
(>= 0) and float observations finite; a sum tree of the right size whose leaves are finite, >= 0, 0 past
``capacity`` and on unwritten slots, and whose inner nodes are the exact sums of their children (which
is how updates leave them); first frame stacks on first steps of episodes.
"""

import math
from typing import Any, Callable

import numpy as np

from sb3_muzero.common.files import CorruptFileError
from sb3_muzero.common.numbers import is_int
from sb3_muzero.replay.sum_tree import SumTree


def _integer(minimum: int) -> Callable[[Any], bool]:
    return lambda value: is_int(value) and value >= minimum


def _real(low: float, high: float, low_open: bool) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        return math.isfinite(value) and (low < value if low_open else low <= value) and value <= high

    return check


# Header values: name -> (check, what is expected). position and size are checked against capacity afterwards.
SCALARS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "capacity": (_integer(1), "an integer >= 1"),
    "num_actions": (_integer(1), "an integer >= 1"),
    "frame_stack": (_integer(1), "an integer >= 1"),
    "position": (_integer(0), "an integer >= 0"),
    "size": (_integer(0), "an integer >= 0"),
    "next_episode_id": (_integer(0), "an integer >= 0"),
    "gamma": (_real(0.0, 1.0, True), "a number in (0, 1]"),
    "alpha": (_real(0.0, math.inf, False), "a finite number >= 0"),
    "priority_epsilon": (_real(0.0, math.inf, False), "a finite number >= 0"),
    "max_priority": (_real(0.0, math.inf, True), "a finite number > 0"),
}
STREAMS = ("stream_last_slot", "stream_episode", "stream_step")


def _refuse(source: str, field: str, problem: str) -> CorruptFileError:
    return CorruptFileError(f"The replay buffer in {source} is inconsistent: {field} {problem}")


def check_scalars(state: dict[str, Any], source: str) -> None:
    """The header values of ``state`` that are present have the types and ranges of :data:`SCALARS`.

    :raise CorruptFileError: naming the first field that does not
    """
    for name, (check, expected) in SCALARS.items():
        if name in state and not check(state[name]):
            raise _refuse(source, name, f"is {state[name]!r}, expected {expected}")
    capacity = state.get("capacity")
    if is_int(capacity):
        if is_int(state.get("position")) and state["position"] >= capacity:
            raise _refuse(source, "position", f"is {state['position']}, expected < capacity {capacity}")
        if is_int(state.get("size")) and state["size"] > capacity:
            raise _refuse(source, "size", f"is {state['size']}, expected <= capacity {capacity}")


def check_kinds(state: dict[str, Any], expected: dict[str, Any], source: str) -> None:
    """Each value of ``state`` is of the kind its namesake in ``expected`` (a reference buffer's state) is: an array
    (of at least one dimension), a dict of arrays, or a scalar. Missing and unknown names are left to the caller.

    :raise CorruptFileError: naming the first field that is not
    """

    def kind(value: Any) -> str:
        if isinstance(value, np.ndarray):
            return "an array" if value.ndim >= 1 else "a 0-d array"
        if isinstance(value, dict):
            return "a dict of arrays" if all(isinstance(item, np.ndarray) for item in value.values()) else "a dict"
        return "a scalar"

    for name, value in state.items():
        if name in expected and kind(value) != kind(expected[name]):
            raise _refuse(source, name, f"is {kind(value)}, expected {kind(expected[name])}")


def check_contents(buffer: Any, source: str) -> None:
    """Every array of ``buffer`` (shapes and dtypes already checked) holds values the buffer could have written.

    :raise CorruptFileError: naming the first field that does not
    """
    capacity = buffer.capacity
    written = _check_written_slots(buffer, source)
    _in_range(source, "actions", buffer.actions, 0, buffer.num_actions)
    _in_range(source, "episode_id", buffer.episode_id, -1, buffer.next_episode_id)
    _in_range(source, "stored_at_update", buffer.stored_at_update, 0, np.iinfo(np.int64).max)
    for name in ("previous_slot", "next_slot"):
        _in_range(source, name, getattr(buffer, name), -1, capacity)
    for name in ("rewards", "root_values", "final_values", "policies"):
        _finite(source, name, getattr(buffer, name))
    if (buffer.policies < 0).any():
        raise _refuse(source, "policies", "has negative visit probabilities")
    for key, observations in buffer.observations.items():
        if np.issubdtype(observations.dtype, np.inexact):
            _finite(source, f"observations[{key!r}]", observations)
    _check_streams(buffer, source)
    _check_priorities(buffer, written, source)
    _check_first_stacks(buffer, source)


def _check_written_slots(buffer: Any, source: str) -> np.ndarray:
    """[capacity] bool, the slots written so far (checked against ``size`` and ``position``)."""
    written = buffer.episode_id >= 0
    if not np.array_equal(written, buffer.step_in_episode >= 0) or (buffer.step_in_episode < -1).any():
        raise _refuse(source, "step_in_episode", "does not mark the same slots as written as episode_id")
    if buffer.size < buffer.capacity:
        if buffer.position != buffer.size:
            raise _refuse(source, "position", f"is {buffer.position}, expected size {buffer.size} (the ring is not full)")
        expected = np.arange(buffer.capacity) < buffer.size
    else:
        expected = np.ones(buffer.capacity, dtype=bool)
    if not np.array_equal(written, expected):
        raise _refuse(source, "episode_id", f"marks {int(written.sum())} slots as written, expected the first {buffer.size}")
    return written


def _check_streams(buffer: Any, source: str) -> None:
    lengths = set()
    for name in STREAMS:
        stream = getattr(buffer, name)
        if not isinstance(stream, np.ndarray) or stream.ndim != 1 or stream.dtype != np.int64:
            raise _refuse(source, name, f"is {type(stream).__name__} {getattr(stream, 'shape', '')}, expected int64 [n_envs]")
        lengths.add(len(stream))
    if len(lengths) > 1:
        raise _refuse(source, ", ".join(STREAMS), f"have different lengths {sorted(lengths)}")
    _in_range(source, "stream_last_slot", buffer.stream_last_slot, -1, buffer.capacity)
    _in_range(source, "stream_episode", buffer.stream_episode, -1, buffer.next_episode_id)
    _in_range(source, "stream_step", buffer.stream_step, -1, np.iinfo(np.int32).max)


def _check_priorities(buffer: Any, written: np.ndarray, source: str) -> None:
    tree = buffer.priorities.tree
    leaves = SumTree.leaves_for(buffer.capacity)
    if tree.dtype != np.float64 or tree.shape != (2 * leaves,):
        raise _refuse(source, "priorities", f"has shape {tree.shape} {tree.dtype}, expected ({2 * leaves},) float64")
    _finite(source, "priorities", tree)
    if (tree < 0).any():
        raise _refuse(source, "priorities", "has negative priorities")
    slots = tree[leaves:]
    if slots[buffer.capacity :].any() or slots[: buffer.capacity][~written].any():
        raise _refuse(source, "priorities", "gives a priority to a slot that holds no step")
    if not np.array_equal(tree[1:leaves], tree[2 : 2 * leaves : 2] + tree[3 : 2 * leaves : 2]):
        raise _refuse(source, "priorities", "has sums that are not the sums of their children")


def _check_first_stacks(buffer: Any, source: str) -> None:
    shape, dtype = tuple(buffer.observation_space.shape or ()), buffer.observation_space.dtype
    for slot, stack in buffer.first_stacks.items():
        if not (is_int(slot) and 0 <= slot < buffer.capacity and buffer.step_in_episode[slot] == 0):
            raise _refuse(source, "first_stacks", f"has an entry for slot {slot!r}, which holds no first step")
        if not isinstance(stack, np.ndarray) or stack.shape != shape or stack.dtype != dtype:
            found = f"{getattr(stack, 'shape', None)} {getattr(stack, 'dtype', type(stack).__name__)}"
            raise _refuse(source, f"first_stacks[{slot}]", f"is {found}, expected {shape} {dtype}")


def _in_range(source: str, name: str, values: np.ndarray, low: int, high: int) -> None:
    """``low <= values < high`` everywhere."""
    if values.size and (values.min() < low or values.max() >= high):
        raise _refuse(source, name, f"holds {values.min()}..{values.max()}, expected values in [{low}, {high})")


def _finite(source: str, name: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise _refuse(source, name, "holds NaN or infinite values")
