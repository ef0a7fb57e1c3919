"""Replay files from someone else: every header value and index array is checked on load, and no crafted file crashes
the process (a seeded fuzz of header values and index arrays, run in a subprocess so that a crash shows as one)."""

import io
import json
import os
import pathlib
import subprocess
import sys
import traceback
from typing import Any, Callable

import numpy as np
import pytest
from gymnasium import spaces

from sb3_muzero import CorruptFileError
from sb3_muzero.replay import MuZeroReplayBuffer, load_replay, save_replay
from tests.helpers import assert_same_replay

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
FUZZ_SEED, FUZZ_CASES = 2024, 600
CAPACITY = 40
VECTOR_SPACE, ACTIONS = spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(3)
IMAGE_SPACE = spaces.Box(0, 255, (4, 5, 5), np.uint8)  # 2 stacked frames of 2 channels


def vector_replay(rng: np.random.Generator) -> MuZeroReplayBuffer:
    """2 envs, terminations and truncations, written past the end of the ring."""
    buffer = MuZeroReplayBuffer(CAPACITY, VECTOR_SPACE, ACTIONS, gamma=0.9)
    for _ in range(35):
        ends = rng.random((2, 2)) < 0.15
        buffer.add(rng.uniform(-1, 1, (2, 3)).astype(np.float32), rng.integers(3, size=2), rng.normal(size=2),
                   np.full((2, 3), 1 / 3, np.float32), rng.normal(size=2), ends[0], ends[1], rng.normal(size=2))  # fmt: skip
    return buffer


def stacked_replay(rng: np.random.Generator) -> MuZeroReplayBuffer:
    """Frame-stacked images (one frame stored per step), some episodes starting with older frames kept aside."""
    buffer = MuZeroReplayBuffer(CAPACITY, IMAGE_SPACE, ACTIONS, gamma=0.9, frame_stack=2)
    previous = np.zeros((2, 2, 5, 5), np.uint8)
    starts = np.ones(2, bool)
    for _ in range(30):
        frames = rng.integers(1, 255, (2, 2, 5, 5), dtype=np.uint8)
        older = np.where(starts[:, None, None, None], rng.integers(0, 2, (2, 1, 1, 1)) * frames, previous)
        terminated = rng.random(2) < 0.2
        buffer.add(np.concatenate([older, frames], axis=1), rng.integers(3, size=2), rng.normal(size=2),
                   np.full((2, 3), 1 / 3, np.float32), rng.normal(size=2), terminated, np.zeros(2, bool))  # fmt: skip
        previous, starts = frames, terminated
    return buffer


def archive(buffer: MuZeroReplayBuffer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of the buffer's file."""
    file = io.BytesIO()
    save_replay(buffer, file)
    file.seek(0)
    with np.load(file, allow_pickle=False) as contents:
        arrays = {name: contents[name] for name in contents.files}
    return json.loads(str(arrays.pop("_header"))), arrays


def crafted_file(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> io.BytesIO:
    """An archive of these parts, with consistent CRCs."""
    file = io.BytesIO()
    np.savez(file, _header=np.array(json.dumps(header)), **arrays)
    file.seek(0)
    return file


def hostile_integers(dtype: np.dtype) -> list[int]:
    info = np.iinfo(dtype)
    return [-2, -1, 0, 1, CAPACITY - 1, CAPACITY, CAPACITY + 1, 2**30, info.min, info.max]


HOSTILE_FLOATS = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e300, -1e-300]
HOSTILE_SCALARS = [-1, 0, 1, 2, CAPACITY - 1, CAPACITY, CAPACITY + 1, 2**30, 2**62, 0.5, 1.5, float("nan"),
                   float("inf"), -float("inf"), None, True, "text", [1]]  # fmt: skip


def mutate(rng: np.random.Generator, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """Change one header value or index array entry (or an array's shape, a member, a dict key); say what."""
    kind = rng.choice(["scalar", "element", "element", "array", "shape", "dict_key", "member"])
    if kind == "scalar":
        name = str(rng.choice(sorted(header["scalars"])))
        header["scalars"][name] = HOSTILE_SCALARS[rng.integers(len(HOSTILE_SCALARS))]
        return f"header {name} = {header['scalars'][name]!r}"
    name = str(rng.choice(sorted(arrays)))
    array = arrays[name]
    if kind == "element" and array.size and array.dtype != np.bool_:
        values = hostile_integers(array.dtype) if array.dtype.kind in "iu" else HOSTILE_FLOATS
        index = tuple(int(rng.integers(size)) for size in array.shape)
        value = values[rng.integers(len(values))]
        with np.errstate(over="ignore", invalid="ignore"):
            array[index] = np.asarray(value).astype(array.dtype) if array.dtype.kind in "iu" else value
        return f"{name}{list(index)} = {value!r}"
    if kind == "array" and array.dtype.kind in "iu":
        arrays[name] = rng.integers(-1, CAPACITY, size=array.shape).astype(array.dtype)
        return f"{name} = random slots"
    if kind == "shape":
        arrays[name] = array.reshape(-1)[: max(array.size - 1, 0)] if rng.random() < 0.5 else np.zeros((), array.dtype)
        return f"{name} reshaped to {arrays[name].shape}"
    if kind == "dict_key" and header["dict_keys"].get("first_stacks"):
        keys = header["dict_keys"]["first_stacks"]
        keys[int(rng.integers(len(keys)))] = [-1, CAPACITY, 2**40, "x", 1.5][rng.integers(5)]
        return f"first_stacks keys = {keys}"
    del arrays[name]
    return f"{name} removed"


def exercise(buffer: MuZeroReplayBuffer, rng: np.random.Generator) -> None:
    """What training does with a loaded buffer: sample, update priorities, add steps, save and load again."""
    sample = buffer.sample(16, 3, 4, 0.5, rng, with_next_observations=True, with_bootstrap_observations=True)
    buffer.update_priorities(sample.slots, rng.random(16))
    n_envs = max(len(buffer.stream_last_slot), 1)
    observations = np.stack([buffer.observation_space.sample() for _ in range(n_envs)])
    if buffer.frame_stack > 1:
        observations[:] = 0
    buffer.add(observations, np.zeros(n_envs, np.int64), np.zeros(n_envs), np.full((n_envs, 3), 1 / 3, np.float32),
               np.zeros(n_envs), np.zeros(n_envs, bool), np.zeros(n_envs, bool))  # fmt: skip
    file = io.BytesIO()
    save_replay(buffer, file)
    file.seek(0)
    load_replay(file, buffer.observation_space, buffer.action_space)


def fuzz_replay_files(seed: int, cases: int) -> None:
    """Load ``cases`` crafted files (the first: the next_slot of 2**30 that made the Numba unroll crash); print a
    JSON summary: how many were refused (CorruptFileError, ValueError naming the field), how many loaded and
    worked, and every other outcome, which is a bug."""
    rng = np.random.default_rng(seed)
    bases: list[tuple[Callable, spaces.Space]] = [(vector_replay, VECTOR_SPACE), (stacked_replay, IMAGE_SPACE)]
    parts = [(archive(make(np.random.default_rng(seed))), space) for make, space in bases]
    outcomes: dict[str, Any] = {"refused": 0, "worked": 0, "bugs": []}
    for case in range(cases):
        (header, arrays), space = parts[case % len(parts)]
        header, arrays = json.loads(json.dumps(header)), {name: array.copy() for name, array in arrays.items()}
        if case == 0:
            arrays["next_slot"][0] = 2**30
            change = "next_slot[0] = 2**30"
        else:
            change = mutate(rng, header, arrays)
        try:
            buffer = load_replay(crafted_file(header, arrays), space, ACTIONS)
        except (CorruptFileError, ValueError):
            outcomes["refused"] += 1
            continue
        except Exception:
            outcomes["bugs"].append(f"load, {change}: {traceback.format_exc(limit=1)}")
            continue
        try:
            exercise(buffer, rng)
            outcomes["worked"] += 1
        except Exception:
            outcomes["bugs"].append(f"use, {change}: {traceback.format_exc(limit=2)}")
    print(json.dumps(outcomes))


def test_no_crafted_replay_file_crashes_the_process_or_loads_inconsistent():
    """A seeded property test over header values and index arrays, in a subprocess: a crash would kill it."""
    command = f"from tests.test_replay_files import fuzz_replay_files; fuzz_replay_files({FUZZ_SEED}, {FUZZ_CASES})"
    result = subprocess.run([sys.executable, "-c", command], cwd=REPOSITORY, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, f"the process died (return code {result.returncode}): {result.stderr[-2000:]}"
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcomes["bugs"] == []
    assert outcomes["refused"] + outcomes["worked"] == FUZZ_CASES
    assert outcomes["refused"] > FUZZ_CASES // 2 and outcomes["worked"] > 10  # both outcomes are exercised


@pytest.mark.parametrize(
    "field, change",
    [
        ("gamma", lambda header, arrays: header["scalars"].update(gamma=float("nan"))),
        ("size", lambda header, arrays: header["scalars"].update(size=CAPACITY + 1)),
        ("position", lambda header, arrays: header["scalars"].update(position=CAPACITY)),
        ("max_priority", lambda header, arrays: header["scalars"].update(max_priority=-1.0)),
        ("capacity", lambda header, arrays: header["scalars"].update(capacity="40")),
        ("priorities", lambda header, arrays: arrays["priorities.tree"].__setitem__(-1, np.nan)),
        ("priorities", lambda header, arrays: arrays["priorities.tree"].__setitem__(-1, -1.0)),
        ("actions", lambda header, arrays: arrays["actions"].__setitem__(3, 7)),
        ("next_slot", lambda header, arrays: arrays["next_slot"].__setitem__(0, CAPACITY)),
        ("previous_slot", lambda header, arrays: arrays["previous_slot"].__setitem__(5, -2)),
        ("episode_id", lambda header, arrays: arrays["episode_id"].__setitem__(2, 10**6)),
        ("stream_last_slot", lambda header, arrays: arrays["stream_last_slot"].__setitem__(0, 2**40)),
        ("rewards", lambda header, arrays: arrays["rewards"].__setitem__(1, np.inf)),
        ("policies", lambda header, arrays: arrays["policies"].__setitem__((1, 0), -0.5)),
        ("stored_at_update", lambda header, arrays: arrays["stored_at_update"].__setitem__(4, -1)),
    ],
)
def test_each_inconsistent_value_is_refused_naming_its_field(field, change):
    header, arrays = archive(vector_replay(np.random.default_rng(0)))
    change(header, arrays)
    with pytest.raises(CorruptFileError, match=rf"is inconsistent: {field} "):
        load_replay(crafted_file(header, arrays), VECTOR_SPACE, ACTIONS)


def test_files_written_before_the_steps_ages_were_stored_load_with_every_step_stored_at_update_0():
    buffer = vector_replay(np.random.default_rng(0))
    buffer.stored_at_update[:] = np.arange(CAPACITY) + 3
    header, arrays = archive(buffer)
    del arrays["stored_at_update"]
    loaded = load_replay(crafted_file(header, arrays), VECTOR_SPACE, ACTIONS)
    assert loaded.stored_at_update.dtype == np.int64 and (loaded.stored_at_update == 0).all()
    buffer.stored_at_update[:] = 0
    assert_same_replay(buffer, loaded)
