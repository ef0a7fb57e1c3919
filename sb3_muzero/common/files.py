"""Files that are never half-written, and clear errors for files that cannot be read.

Every save goes to a temporary file in the destination's folder (``.<name>.<pid>.<random>.partial``),
which is flushed, synced to disk and then renamed over the destination in one step
(:func:`os.replace`). A process killed during a save therefore leaves the previous file as it was,
plus a stray ``.partial`` file; the next successful save to the same path removes the stray files of
that path whose process is gone. File-like objects (``io.BytesIO``, open files) are written in place:
there is nothing to rename.
"""

import contextlib
import io
import os
import pathlib
import re
import secrets
import zipfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Union

PathOrFile = Union[str, os.PathLike, io.BufferedIOBase]

PARTIAL_SUFFIX = ".partial"
# What zipfile raises for damaged archives: damaged headers (an unknown compression method, the encryption flag)
# give NotImplementedError and RuntimeError.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, RuntimeError)


class CorruptFileError(ValueError):
    """A saved file cannot be read: it is truncated, damaged, or lacks a part it needs."""


def with_suffix(path: Union[str, os.PathLike], suffix: str) -> pathlib.Path:
    """``path`` with ``.suffix`` appended when it has no suffix (what SB3 does for ``.zip`` and ``.pkl``)."""
    path = pathlib.Path(path)
    return path if path.suffix or not suffix else pathlib.Path(f"{path}.{suffix}")


def existing_file(path: Union[str, os.PathLike], suffix: str) -> pathlib.Path:
    """``path``, or ``path.suffix`` when only that exists (as SB3's loaders look them up)."""
    path = pathlib.Path(path)
    if path.is_file():
        return path
    suffixed = pathlib.Path(f"{path}.{suffix}")
    if suffix and suffixed.is_file():
        return suffixed
    tried = f"'{path}'" + (f" or '{suffixed}'" if suffix else "")
    raise FileNotFoundError(f"No file at {tried}")


@contextlib.contextmanager
def atomic_write(path: PathOrFile, suffix: str = "") -> Iterator[BinaryIO]:
    """Open ``path`` (``.suffix`` added if it has none) for binary writing; it is replaced only once the
    ``with`` block completes. If the block raises, or the process dies, the previous file stays intact."""
    if isinstance(path, io.IOBase):
        yield path  # type: ignore[misc]
        return
    target = with_suffix(path, suffix)
    if target.is_dir():
        raise IsADirectoryError(f"Cannot save to '{target}': it is a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(target.parent)
    remove_stray_partial_files(target)


def remove_stray_partial_files(target: pathlib.Path) -> list[pathlib.Path]:
    """Remove the temporary files that saves to ``target`` left behind when their process was killed: those named
    ``.<target name>.<pid>.<8 hex digits>.partial`` whose process no longer runs. Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{8}}{re.escape(PARTIAL_SUFFIX)}")
    removed = []
    for candidate in target.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and not _process_runs(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _process_runs(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _sync_folder(folder: pathlib.Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def readable(path: PathOrFile, suffix: str) -> Iterator[tuple[BinaryIO, str]]:
    """(open binary file, its name for messages); a file-like object is rewound to where it was afterwards."""
    if isinstance(path, io.IOBase):
        start = path.tell()
        try:
            yield path, getattr(path, "name", type(path).__name__)  # type: ignore[misc]
        finally:
            path.seek(start)
        return
    file_path = existing_file(path, suffix)
    with open(file_path, "rb") as file:
        yield file, str(file_path)


def check_zip_archive(path: PathOrFile, suffix: str, required_members: Iterable[str], what: str) -> None:
    """Refuse a zip archive that is truncated, fails a CRC check or lacks one of ``required_members``.

    :raise CorruptFileError: naming the file and what is wrong with it
    :raise FileNotFoundError: if there is no such file
    """
    with readable(path, suffix) as (file, name):
        try:
            with zipfile.ZipFile(file) as archive:
                damaged = archive.testzip()
                missing = sorted(set(required_members) - set(archive.namelist()))
        except ZIP_READ_ERRORS as error:
            raise CorruptFileError(f"Cannot read {what} '{name}': the file is truncated or corrupt ({error})") from error
    if damaged is not None:
        raise CorruptFileError(f"Cannot read {what} '{name}': its part {damaged!r} is damaged (CRC check failed)")
    if missing:
        raise CorruptFileError(f"Cannot read {what} '{name}': it lacks {missing}; it is incomplete or not a {what}")
