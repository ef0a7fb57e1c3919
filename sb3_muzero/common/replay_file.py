"""MuZero replay buffers on disk: one uncompressed ``.npz`` archive, read back without unpickling anything.

Layout of the archive (a zip of ``.npy`` arrays, written by :func:`numpy.savez`):

- ``_header``: a JSON string with the format name and version, the package version, the buffer's
  scalar attributes (capacity, position, size, gamma, alpha, frame_stack, max_priority, ...), the keys
  of its dict attributes and its spaces (for messages);
- one member per numpy array attribute (``actions``, ``rewards``, ``episode_id``, ..., the streams);
- ``<name>.tree`` for each sum tree (the priorities);
- ``<name>[<i>]`` for the ``i``-th entry of each dict attribute (``observations[0]`` holds the
  observations of the first key, ``first_stacks[0]`` the first full frame stack).

Attributes are found by walking the buffer's ``__dict__``, so an attribute added to the buffer later is
saved without a change here; one of a kind this module does not know stops the save with a clear error.
The zip's CRC checks catch damaged files while they are read; the loaded buffer replaces the model's
only once it has been read and checked completely.
"""

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any, Union

import numpy as np
from gymnasium import spaces

from sb3_muzero.common.files import CorruptFileError, PathOrFile, atomic_write, readable
from sb3_muzero.replay import MuZeroReplayBuffer, SumTree

FORMAT = "sb3-muzero-replay"
VERSION = 1
SUFFIX = "npz"
HEADER = "_header"
SPACE_ATTRIBUTES = ("observation_space", "action_space")
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
    """(JSON header, arrays by member name) of every attribute of ``buffer``."""
    scalars: dict[str, Scalar] = {}
    dict_keys: dict[str, list[Union[int, str]]] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(buffer).items():
        if name in SPACE_ATTRIBUTES:
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, SumTree):
            arrays[f"{name}.tree"] = value.tree
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
        "package_version": _package_version(),
        "observation_space": str(buffer.observation_space),
        "action_space": str(buffer.action_space),
        "scalars": scalars,
        "dict_keys": dict_keys,
    }
    return header, arrays


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _package_version() -> str:
    from sb3_muzero import __version__

    return __version__


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
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
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
    """Rebuild the buffer, checked against one freshly made for the model's spaces."""
    scalars = header["scalars"]
    try:
        reference = MuZeroReplayBuffer(1, observation_space, action_space, gamma=scalars["gamma"],
                                       frame_stack=scalars["frame_stack"])  # fmt: skip
    except ValueError as error:
        raise ValueError(f"The replay buffer in '{name}' does not fit this model: {error}") from error
    buffer = MuZeroReplayBuffer.__new__(MuZeroReplayBuffer)
    vars(buffer).update(scalars)
    buffer.observation_space, buffer.action_space = observation_space, action_space
    for attribute, keys in header["dict_keys"].items():
        setattr(buffer, attribute, {key: arrays.pop(f"{attribute}[{index}]") for index, key in enumerate(keys)})
    for member in [member for member in arrays if member.endswith(".tree")]:
        tree = SumTree.__new__(SumTree)
        tree.tree = arrays.pop(member)
        tree.leaf_offset = len(tree.tree) // 2
        setattr(buffer, member[: -len(".tree")], tree)
    vars(buffer).update(arrays)
    _check_spaces(buffer, reference, header, name)
    _check_layout(buffer, reference, header, name)
    return buffer


def _check_spaces(buffer: MuZeroReplayBuffer, reference: MuZeroReplayBuffer, header: dict[str, Any], name: str) -> None:
    """The stored observations and actions are those of the model's spaces."""
    for key, (shape, dtype) in reference._stored_observation_spaces().items():
        stored = getattr(buffer, "observations", {}).get(key)
        if stored is None or stored.shape[1:] != shape or stored.dtype != dtype:
            found = "nothing" if stored is None else f"shape {stored.shape[1:]} {stored.dtype}"
            raise ValueError(
                f"The replay buffer in '{name}' stores observations ({header['observation_space']}) with {found} "
                f"for key {key!r}; this model's observation space {reference.observation_space} needs shape {shape} {dtype}"
            )
    if buffer.num_actions != reference.num_actions:
        raise ValueError(
            f"The replay buffer in '{name}' stores {buffer.num_actions} actions ({header['action_space']}); "
            f"this model's action space is {reference.action_space}"
        )


def _check_layout(buffer: MuZeroReplayBuffer, reference: MuZeroReplayBuffer, header: dict[str, Any], name: str) -> None:
    """The same attributes as a buffer this code makes, each with one entry per slot where it should."""
    missing, unknown = sorted(set(vars(reference)) - set(vars(buffer))), sorted(set(vars(buffer)) - set(vars(reference)))
    if missing or unknown:
        raise ValueError(
            f"The replay buffer in '{name}' was written by an incompatible sb3-muzero ({header['package_version']}): "
            f"missing attributes {missing}, unknown attributes {unknown}"
        )
    per_slot = [(attribute, getattr(buffer, attribute), value) for attribute, value in vars(reference).items()
                if isinstance(value, np.ndarray) and len(value) == reference.capacity]  # fmt: skip
    per_slot += [(f"observations[{key!r}]", buffer.observations[key], value) for key, value in reference.observations.items()]
    for label, loaded, expected in per_slot:
        if loaded.dtype != expected.dtype or loaded.shape != (buffer.capacity, *expected.shape[1:]):
            raise CorruptFileError(
                f"The replay buffer in '{name}' is inconsistent: {label} has shape {loaded.shape} {loaded.dtype}, "
                f"expected {(buffer.capacity, *expected.shape[1:])} {expected.dtype}"
            )
    if any(tree.leaf_offset < buffer.capacity for tree in vars(buffer).values() if isinstance(tree, SumTree)):
        raise CorruptFileError(f"The replay buffer in '{name}' is inconsistent: a sum tree is smaller than its capacity")
