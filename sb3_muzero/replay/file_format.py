"""MuZero replay buffers on disk: one uncompressed ``.npz`` archive, read back without unpickling anything.

Layout of the archive (a zip of ``.npy`` arrays, written by :func:`numpy.savez`):

- ``_header``: a JSON string with the format name and version, the package version, the buffer's
  scalar attributes (capacity, position, size, gamma, alpha, frame_stack, max_priority, ...), the keys
  of its dict attributes and its spaces (for messages);
- one member per numpy array attribute (``actions``, ``rewards``, ``episode_id``, ..., the streams);
- ``<name>.tree`` for each sum tree (the priorities);
- ``<name>[<i>]`` for the ``i``-th entry of each dict attribute (``observations[0]`` holds the
  observations of the first key, ``first_stacks[0]`` the first full frame stack).

What to write is the buffer's :meth:`~sb3_muzero.replay.buffer.MuZeroReplayBuffer.state` (every attribute as
a scalar, an array or a dict of arrays), and the buffer rebuilds and checks itself from what was read
(:meth:`~sb3_muzero.replay.buffer.MuZeroReplayBuffer.from_state`): this module knows the archive, not the
buffer. The zip's CRC checks catch damaged files while they are read; the loaded buffer replaces the model's
only once it has been read and checked completely.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, Union

import numpy as np
from gymnasium import spaces

from sb3_muzero.common.files import ZIP_READ_ERRORS, CorruptFileError, PathOrFile, atomic_write, readable
from sb3_muzero.replay.buffer import MuZeroReplayBuffer
from sb3_muzero.version import __version__

FORMAT = "sb3-muzero-replay"
VERSION = 1
SUFFIX = "npz"
HEADER = "_header"
ZIP_MAGIC = b"PK\x03\x04"

Scalar = Union[bool, int, float, str, None]


def save_replay(buffer: MuZeroReplayBuffer, path: PathOrFile) -> None:
    """Write ``buffer`` to ``path`` (``.npz`` added if it has no suffix), replacing the file in one step."""
    header, arrays = _encode(buffer)
    with atomic_write(path, SUFFIX) as file:
        np.savez(file, **{HEADER: np.array(json.dumps(header))}, **arrays)


def load_replay(path: PathOrFile, observation_space: spaces.Space, action_space: spaces.Space) -> MuZeroReplayBuffer:
    """Read a buffer written by :func:`save_replay`, for a model with these spaces.

    :raise CorruptFileError: the file is truncated or damaged
    :raise ValueError: the file is not a MuZero replay buffer of this format, or its observations or actions do
        not fit the spaces
    """
    with readable(path, SUFFIX) as (file, name):
        magic = file.read(len(ZIP_MAGIC))
        if len(magic) < len(ZIP_MAGIC):
            raise CorruptFileError(f"Cannot read replay buffer '{name}': the file is truncated ({len(magic)} bytes)")
        if magic != ZIP_MAGIC:
            raise ValueError(
                f"'{name}' is not an sb3-muzero replay buffer file (expected a .npz archive written by "
                "save_replay_buffer; SB3's pickled replay buffers cannot be loaded into MuZero)"
            )
        file.seek(-len(ZIP_MAGIC), os.SEEK_CUR)
        header, arrays = _read(file, name)
    try:
        return _decode(header, arrays, observation_space, action_space, name)
    except KeyError as error:
        raise CorruptFileError(f"Cannot read replay buffer '{name}': it lacks {error}") from error


# --- writing ---------------------------------------------------------------------------------------


def _encode(buffer: MuZeroReplayBuffer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON header, arrays by member name) of the buffer's state."""
    scalars: dict[str, Scalar] = {}
    dict_keys: dict[str, list[Union[int, str]]] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in buffer.state().items():
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, dict):
            dict_keys[name] = [_plain(key) for key in value]
            arrays.update({f"{name}[{index}]": np.asarray(entry) for index, entry in enumerate(value.values())})
        elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
            scalars[name] = _plain(value)
        else:
            raise TypeError(f"Cannot save the replay attribute {name!r} of type {type(value).__name__}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "class": type(buffer).__name__,
        "package_version": __version__,
        "observation_space": str(buffer.observation_space),
        "action_space": str(buffer.action_space),
        "scalars": scalars,
        "dict_keys": dict_keys,
    }
    return header, arrays


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- reading ---------------------------------------------------------------------------------------


def _read(file, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, every array) of the archive; damaged or truncated archives raise :class:`CorruptFileError`."""
    with _reading(name):
        archive = np.load(file, allow_pickle=False)
    with archive:
        with _reading(name):
            header_text = str(archive[HEADER]) if HEADER in archive.files else None
        if header_text is None:
            parts = sorted(archive.files)[:5]
            raise ValueError(f"'{name}' is not an sb3-muzero replay buffer file: it has no {HEADER!r} (its parts: {parts})")
        with _reading(name):
            header = json.loads(header_text)
        _check_format(header, name)
        with _reading(name):
            arrays = {member: archive[member] for member in archive.files if member != HEADER}
    return header, arrays


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Turn what a damaged or truncated archive raises into a :class:`CorruptFileError` naming the file."""
    try:
        yield
    except (*ZIP_READ_ERRORS, ValueError) as error:
        raise CorruptFileError(f"Cannot read replay buffer '{name}': the file is truncated or corrupt ({error})") from error


def _check_format(header: Any, name: str) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"'{name}' is not an sb3-muzero replay buffer file (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ValueError(
            f"'{name}' is a replay buffer of format version {header.get('version')!r} (written by sb3-muzero "
            f"{header.get('package_version')}); this version of sb3-muzero reads format version {VERSION}"
        )


def _decode(header: dict[str, Any], arrays: dict[str, np.ndarray], observation_space: spaces.Space,
            action_space: spaces.Space, name: str) -> MuZeroReplayBuffer:  # fmt: skip
    """The buffer rebuilt from the header and the arrays, checked against the model's spaces."""
    state: dict[str, Any] = dict(header["scalars"])
    for attribute, keys in header["dict_keys"].items():
        state[attribute] = {key: arrays.pop(f"{attribute}[{index}]") for index, key in enumerate(keys)}
    state.update(arrays)
    described = dict(observation_space=header["observation_space"], action_space=header["action_space"],
                     package_version=header["package_version"])  # fmt: skip
    return MuZeroReplayBuffer.from_state(state, observation_space, action_space, f"'{name}'", described)
