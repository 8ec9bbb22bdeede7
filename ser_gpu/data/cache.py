"""Decoded, resampled and trimmed waveforms, computed once per file and kept in an on-disk cache.

Each file is loaded as ``librosa.load(path, sr=sr)`` (:func:`ser_gpu.media.load_media`, the decoder
every tool shares: libsndfile, else ffmpeg for m4a/aac/...) and trimmed as
``librosa.effects.trim(y, top_db=top_db)`` (:func:`ser_gpu.functional.trim`), the preprocessing of
the original system. The result is stored in ``cache_dir`` under a name derived from the file's
resolved path and the settings; the entry also records the file's size and ``mtime_ns``, so a file
that changed on disk is decoded again and its entry replaced.
"""

from __future__ import annotations

import hashlib
import io as _stdio
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from .._atomic import atomic_write
from .._validation import _describe, check_nonnegative, check_positive
from ..errors import AudioLoadError, ParameterError
from ..functional.effects import trim as _trim
from ..media import load_media as load  # the one decoder of every tool (libsndfile, else ffmpeg)
from .ravdess import Clip

__all__ = ["default_cache_dir", "load_waveforms"]

PathLike = Union[str, "os.PathLike[str]"]

# bump when the stored format or the preprocessing changes, so old entries are never reused
_CACHE_VERSION = 1


def _cache_root() -> Path:
    env = os.environ.get("SER_GPU_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ser_gpu"


def default_cache_dir() -> Path:
    """Where :func:`load_waveforms` keeps its cache: ``$SER_GPU_CACHE/waveforms``, else
    ``$XDG_CACHE_HOME/ser_gpu/waveforms``, else ``~/.cache/ser_gpu/waveforms``."""
    return _cache_root() / "waveforms"


def _settings(sr: float, trim: bool, top_db: float) -> dict:
    return {"version": _CACHE_VERSION, "sr": float(sr), "trim": bool(trim),
            "top_db": float(top_db) if trim else None, "dtype": "float32"}


def _entry_path(cache_dir: Path, resolved: str, settings: dict) -> Path:
    key = json.dumps({"path": resolved, **settings}, sort_keys=True)
    return cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".npz")


def _read_entry(entry: Path, meta_want: dict) -> Optional[np.ndarray]:
    """The cached waveform if ``entry`` exists, is intact and matches ``meta_want``; else None."""
    try:
        with np.load(entry, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta != meta_want:
                return None
            y = data["y"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None  # a damaged or foreign entry is a miss; it is overwritten below
    if y.dtype != np.float32 or y.ndim != 1 or y.size == 0:
        return None
    return y


def _write_entry(entry: Path, y: np.ndarray, meta: dict) -> None:
    def write(fh):
        buf = _stdio.BytesIO()  # np.savez seeks; build the archive in memory, then write it once
        np.savez(buf, y=y, meta=np.array(json.dumps(meta, sort_keys=True)))
        fh.write(buf.getvalue())

    atomic_write(entry, write)


def _decode(path: Path, sr: float, trim: bool, top_db: float) -> np.ndarray:
    y, _ = load(path, sr=sr, dtype=torch.float32)
    if trim:
        y, _ = _trim(y, top_db=top_db)
    # a copy: the trimmed tensor is a view that would keep the whole untrimmed signal alive
    return np.array(y.numpy(), dtype=np.float32, copy=True)


def load_waveforms(
    clips: Sequence[Clip],
    *,
    sr: float = 22050,
    trim: bool = True,
    top_db: float = 20.0,
    cache_dir: Optional[PathLike] = None,
    cache: bool = True,
    progress: bool = True,
) -> Tuple[List[torch.Tensor], List[Clip]]:
    """Load every clip's waveform as the original system did, decoding each file only once.

    Each file equals ``librosa.effects.trim(librosa.load(path, sr=sr)[0], top_db=top_db)[0]``
    (mono, soxr-resampled, float32). The first call stores it in ``cache_dir``; later calls read it
    back as long as the file's resolved path, size and modification time (``mtime_ns``) and the
    settings are unchanged. Cache entries are written atomically, so an interrupted run never leaves
    a half-written entry; a damaged entry is simply decoded again.

    Files that cannot be read (missing, empty, corrupt, unsupported format) are skipped and counted
    in one ``UserWarning`` naming the first of them and its reason.

    Args:
        clips (sequence of Clip): the files, e.g. from :func:`scan_corpus`.
        sr (float, default 22050): target sample rate (Hz).
        trim (bool, default True): trim leading and trailing silence.
        top_db (float, default 20.0): trim threshold in dB below the loudest frame (>= 0).
        cache_dir (str | os.PathLike | None): cache directory, created when missing; default
            :func:`default_cache_dir`. If it cannot be created or written, loading goes on
            without the cache (with a warning).
        cache (bool, default True): False decodes every file and neither reads nor writes the cache.
        progress (bool, default True): show a tqdm bar.

    Returns:
        ``(waves, kept)``: ``waves`` a list of 1-D float32 CPU tensors ``[shape=(time,)]``, one per
        readable clip, in the order of ``clips``; ``kept`` the clips they belong to.

    Raises:
        ParameterError: an empty ``clips``, an element that is not a :class:`Clip`, or a bad setting.
        AudioLoadError: none of the files could be read (the message names the first and why).
    """
    if isinstance(clips, (str, bytes, os.PathLike)) or not isinstance(clips, Sequence):
        raise ParameterError(f"clips must be a list of Clip, got {type(clips).__name__}: {_describe(clips)}")
    if len(clips) == 0:
        raise ParameterError("clips must hold at least one Clip, got an empty list []")
    for c in clips:
        if not isinstance(c, Clip):
            raise ParameterError(f"clips must hold Clip objects (see scan_corpus), got {type(c).__name__}: "
                                 f"{_describe(c)}")
    sr = check_positive(sr, "sr")
    top_db = check_nonnegative(top_db, "top_db")
    settings = _settings(sr, trim, top_db)

    root = None
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            warnings.warn(f"waveform cache directory {str(root)!r} cannot be created ({exc}); "
                          f"loading without a cache", UserWarning, stacklevel=2)
            root = None

    waves: List[torch.Tensor] = []
    kept: List[Clip] = []
    failed: List[Tuple[Path, str]] = []
    write_error: Optional[str] = None
    bar = tqdm(clips, desc="loading audio", unit="file", disable=not progress, leave=False)
    for clip in bar:
        path = Path(clip.path)
        y = None
        entry = meta = None
        if root is not None:
            try:
                st = path.stat()
                resolved = str(path.resolve())
            except OSError:
                st = None  # let the decoder report the problem in its own words
            if st is not None:
                meta = {"path": resolved, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **settings}
                entry = _entry_path(root, resolved, settings)
                y = _read_entry(entry, meta)
        if y is None:
            try:
                y = _decode(path, sr, trim, top_db)
            except AudioLoadError as exc:
                failed.append((path, exc.reason))
                continue
            if entry is not None and write_error is None:
                try:
                    _write_entry(entry, y, meta)
                except OSError as exc:
                    write_error = f"{entry}: {exc}"  # warn once, keep loading
        waves.append(torch.from_numpy(y))
        kept.append(clip)
    bar.close()

    if write_error is not None:
        warnings.warn(f"could not write to the waveform cache ({write_error}); later runs will decode "
                      f"the files again", UserWarning, stacklevel=2)
    if not waves:
        first, reason = failed[0]
        raise AudioLoadError(first, f"none of the {len(clips)} audio file(s) could be read; this one: {reason}")
    if failed:
        first, reason = failed[0]
        warnings.warn(f"skipped {len(failed)} of {len(clips)} audio file(s) that could not be read, "
                      f"e.g. {str(first)!r}: {reason}", UserWarning, stacklevel=2)
    return waves, kept
