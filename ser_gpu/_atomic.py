"""Atomic file writes: write to a temporary file beside the target, then ``os.replace`` it.

A crash mid-write never leaves a half-written output, and an existing file is only replaced by a
complete one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, IO

__all__ = ["atomic_write", "save_npy", "save_json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file, then move it onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


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
