"""Atomic file writes: write to a temporary file beside the target, then ``os.replace`` it.

A crash mid-write never leaves a half-written output, and an existing file is only replaced by a
complete one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

__all__ = ["atomic_write", "atomic_output", "atomic_link", "save_npy", "save_json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_beside(path: Path):
    """``(fd, name)`` of a new temporary file beside ``path``: ``.<name>.<random>.tmp`` (what a run's
    start removes when a killed save left one, ser_gpu.train); a name longer than 200 bytes is cut
    there, so that any name the file system takes has a temporary name it takes too."""
    name = path.name
    while len(os.fsencode(name)) > 200:  # whole characters: a cut one would not be valid UTF-8
        name = name[:-1]
    return tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")


def _move_into_place(tmp, path: Path) -> None:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    os.replace(tmp, path)


def atomic_write(path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file, then move it onto ``path``."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """The name of a new empty temporary file beside ``path``, for a writer that needs a name (another
    program, e.g. ffmpeg); when the block ends normally the file is synced and moved onto ``path``,
    when it raises the file is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    try:
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _move_into_place(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_link(source, target) -> Path:
    """Atomically make ``target`` a hard link to ``source`` (a copy, written with :func:`atomic_write`,
    where links are refused: another filesystem, or one without them). Replacing ``source`` later
    leaves ``target`` as it is."""
    source, target = Path(source), Path(target)
    fd, tmp = _temporary_beside(target)
    os.close(fd)
    try:
        os.unlink(tmp)  # the name only: os.link makes the file
        try:
            os.link(source, tmp)
        except OSError:
            with open(source, "rb") as src:
                return atomic_write(target, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def save_npy(path, array) -> Path:
    import numpy as np

    return atomic_write(path, lambda fh: np.save(fh, array))


def _finite(data):
    """``data`` with every non-finite float (NaN, ±inf) replaced by None, recursively."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def save_json(path, data) -> Path:
    """``data`` as indented JSON, always valid: a non-finite float is written as ``null``."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))
