"""Audio file loading that equals ``librosa.load``, and lengths-aware batching of waveforms.

Decoding is done by soundfile (libsndfile) and resampling by soxr in its high-quality mode, the
same calls librosa 0.11 makes, so the samples are identical to ``librosa.load``. librosa itself is
not imported. Formats libsndfile cannot read (m4a/aac, ...) raise :class:`AudioLoadError`; there is
no audioread fallback.
"""

from __future__ import annotations

import os
import re
import sys
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
import soxr
import torch

from ._validation import _describe, check_nonnegative, check_positive
from .errors import AudioLoadError, ParameterError

__all__ = ["load", "load_batch"]

PathLike = Union[str, "os.PathLike[str]"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

# libsndfile reads past damage silently (a truncated WAV just comes back shorter, a damaged Ogg
# page is skipped), but it notes the damage in its log; these are the notes that mean lost audio.
_DAMAGE_NOTES = (
    "corrupted bitstream",
    "ended unexpectedly",
    "lacks an end-of-stream",
    "reports a hole",
)
_DATA_SIZE_NOTE = re.compile(r"^\s*data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.IGNORECASE | re.MULTILINE)
# sizes streaming writers put in a header they never go back to fix; not a sign of truncation
_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFFFFFFFFFF)


def _check_path(path) -> str:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}: {_describe(path)}")
    return os.fspath(path)


def _sndfile_path(path: str) -> Union[str, bytes]:
    """``path`` as soundfile can open it.

    soundfile encodes a ``str`` path strictly, so a Linux file name whose bytes are not valid UTF-8
    (which Python holds as surrogate escapes, ``os.fsdecode``) raised ``UnicodeEncodeError``; such a
    name is given as its bytes (``os.fsencode``), every other one unchanged (on Windows soundfile opens
    ``str`` paths as wide strings).
    """
    if sys.platform != "win32":
        try:
            path.encode(sys.getfilesystemencoding())
        except UnicodeEncodeError:
            return os.fsencode(path)
    return path


def _check_args(sr, offset, duration, dtype) -> None:
    if sr is not None:
        check_positive(sr, "sr")
    check_nonnegative(offset, "offset")
    if duration is not None:
        check_positive(duration, "duration")
    if dtype not in _NUMPY_DTYPES:
        raise ParameterError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def _damage(log: str) -> Optional[str]:
    """The reason a libsndfile log says audio was lost, or None."""
    for match in _DATA_SIZE_NOTE.finditer(log):
        declared, actual = int(match.group(1)), int(match.group(2))
        if declared not in _PLACEHOLDER_SIZES and actual < declared:
            return (f"truncated data: the header declares {declared} bytes of audio but the file holds "
                    f"only {actual}")
    lowered = log.lower()
    for note in _DAMAGE_NOTES:
        if note in lowered:
            line = next(line.strip() for line in log.splitlines() if note in line.lower())
            return f"corrupt or truncated data (libsndfile: {line!r})"
    return None


def _check_file(path: str) -> None:
    """The failures every decoder shares: a missing path, a directory, an unreadable or empty file."""
    if not os.path.exists(path):
        raise AudioLoadError(path, "file not found")
    if os.path.isdir(path):
        raise AudioLoadError(path, "is a directory, not an audio file")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise AudioLoadError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if size == 0:
        raise AudioLoadError(path, "empty file (0 bytes)")


def _decode(path: str, offset: float, duration: Optional[float], np_dtype) -> Tuple[np.ndarray, int]:
    """Read ``path`` as librosa's ``__soundfile_load`` does: ``(channels, n)`` or ``(n,)`` and the native rate."""
    _check_file(path)
    try:
        sf_desc = sf.SoundFile(_sndfile_path(path))
    except sf.LibsndfileError as exc:
        text = str(exc.error_string if hasattr(exc, "error_string") else exc)
        if "not recognised" in text.lower() or "unimplemented format" in text.lower():
            reason = f"unsupported format, not an audio file, or a damaged header (libsndfile: {text})"
        elif "system error" in text.lower():
            reason = f"cannot be opened (libsndfile: {text})"
        else:
            reason = f"corrupt or unreadable audio header (libsndfile: {text})"
        raise AudioLoadError(path, reason) from exc
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise AudioLoadError(path, f"cannot be opened: {exc}") from exc

    with sf_desc:
        sr_native = int(sf_desc.samplerate)
        total = int(sf_desc.frames)
        damage = _damage(sf_desc.extra_info)
        if damage is not None:
            raise AudioLoadError(path, damage)
        if total <= 0:
            raise AudioLoadError(path, f"the file holds no audio samples (0 frames at {sr_native} Hz)")
        start = int(offset * sr_native) if offset else 0
        if start >= total:
            raise AudioLoadError(
                path,
                f"no samples to read: offset={offset!r} s is at or past the end of the file "
                f"({total} samples = {total / sr_native:.6g} s at {sr_native} Hz)",
            )
        frames = int(duration * sr_native) if duration is not None else -1
        if frames == 0:
            raise AudioLoadError(
                path, f"no samples to read: duration={duration!r} s is shorter than one sample at {sr_native} Hz"
            )
        try:
            if start:
                sf_desc.seek(start)
            y = sf_desc.read(frames=frames, dtype=np_dtype, always_2d=False).T
        except (sf.SoundFileError, RuntimeError) as exc:
            raise AudioLoadError(path, f"corrupt or truncated data (libsndfile: {exc})") from exc
        damage = _damage(sf_desc.extra_info)
    if damage is not None:
        raise AudioLoadError(path, damage)
    if y.shape[-1] == 0:
        raise AudioLoadError(path, f"no samples could be decoded (offset={offset!r}, duration={duration!r})")
    if not np.isfinite(y).all():
        raise AudioLoadError(path, "corrupt data: the audio contains NaN or infinite samples")
    return y, sr_native


def _resample(y: np.ndarray, orig_sr: float, target_sr: float) -> np.ndarray:
    """``librosa.resample(y, orig_sr, target_sr, res_type='soxr_hq')``: soxr per channel, then fixed length."""
    if orig_sr == target_sr:
        return y
    n_out = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    flat = y.reshape(-1, y.shape[-1])
    rows = [soxr.resample(row, orig_sr, target_sr, quality="soxr_hq") for row in flat]
    out = np.zeros((flat.shape[0], n_out), dtype=y.dtype)
    for out_row, row in zip(out, rows):
        n = min(n_out, row.shape[-1])  # soxr may be a sample short or long of ceil(n * ratio)
        out_row[:n] = row[:n]
    return out.reshape(y.shape[:-1] + (n_out,))


def _load_numpy(path: str, sr, mono: bool, offset: float, duration, np_dtype):
    y, sr_native = _decode(path, offset, duration, np_dtype)
    if mono and y.ndim > 1:
        # librosa.to_mono: a plain mean over the channel axis, in the decoded dtype
        y = np.mean(y, axis=tuple(range(y.ndim - 1)))
    if sr is not None:
        y = _resample(y, sr_native, sr)
        sr_out = sr
    else:
        sr_out = sr_native
    return np.ascontiguousarray(y, dtype=np_dtype), sr_out


def load(
    path: PathLike,
    *,
    sr: Optional[float] = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: Optional[float] = None,
    dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, int]:
    """Load an audio file as a float waveform tensor; equals ``librosa.load`` (``res_type='soxr_hq'``).

    Reading starts at sample ``int(offset * native_sr)`` and takes ``int(duration * native_sr)``
    samples, as librosa does. Channels are averaged for ``mono``; the result is then resampled with
    soxr's high-quality mode to exactly ``ceil(n * sr / native_sr)`` samples.

    Unlike librosa, damage that libsndfile reads past (a WAV whose header promises more audio than
    the file holds, a broken Ogg page) and reads that come back empty raise
    :class:`~ser_gpu.errors.AudioLoadError` instead of returning a short or empty array.

    Args:
        path (str | os.PathLike): audio file in a format libsndfile reads (wav, flac, ogg, mp3, aiff, ...).
        sr (float | None, default 22050): target sample rate; ``None`` keeps the file's native rate.
        mono (bool, default True): average all channels into one.
        offset (float, default 0.0): start reading this many seconds into the file (>= 0).
        duration (float | None, default None): read at most this many seconds (> 0); ``None`` reads to the end.
        dtype (torch.dtype, default torch.float32): ``torch.float32`` or ``torch.float64``; decoding
            and resampling happen in this precision, like librosa's ``dtype`` argument.

    Returns:
        ``(y, sr)``: ``y`` of shape ``(time,)`` (mono, or a single-channel file) or
        ``(channels, time)`` (``mono=False``), on the CPU; ``sr`` the sample rate of ``y``.

    Raises:
        AudioLoadError: missing, empty, corrupt, truncated or unsupported file; nothing to read.
        ParameterError: a bad argument.
    """
    path = _check_path(path)
    _check_args(sr, offset, duration, dtype)
    y, sr_out = _load_numpy(path, sr, bool(mono), offset, duration, _NUMPY_DTYPES[dtype])
    return torch.from_numpy(y), sr_out


def load_batch(
    paths: Sequence[PathLike],
    *,
    sr: Optional[float] = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: Optional[float] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Load several files into one zero-padded batch; each row equals ``librosa.load`` of its file.

    Args:
        paths (sequence of str | os.PathLike): the files, at least one.
        sr, mono, offset, duration, dtype: as in :func:`load`, applied to every file. With
            ``sr=None`` all files must share one native rate.
        device (str | torch.device | None): where the batch is put (default: CPU).

    Returns:
        ``(y, lengths)``: ``y`` of shape ``(B, T)`` (or ``(B, channels, T)`` with ``mono=False``,
        where all files must have the same channel count), zero beyond each file's length,
        ``T = max(lengths)``; ``lengths`` int64 of shape ``(B,)``: valid samples per file.

    Raises:
        AudioLoadError: for the first file that cannot be loaded (the message starts with its path).
        ParameterError: a bad argument, or files that cannot share one batch.
    """
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence):
        raise ParameterError(f"paths must be a list of file paths, got {type(paths).__name__}: {_describe(paths)}")
    if len(paths) == 0:
        raise ParameterError("paths must hold at least one file path, got an empty list []")
    paths = [_check_path(p) for p in paths]
    _check_args(sr, offset, duration, dtype)
    np_dtype = _NUMPY_DTYPES[dtype]

    waves: List[np.ndarray] = []
    rates = []
    for path in paths:
        y, sr_out = _load_numpy(path, sr, bool(mono), offset, duration, np_dtype)
        waves.append(y)
        rates.append(sr_out)
    if len(set(rates)) > 1:
        listing = ", ".join(f"{p}: {r} Hz" for p, r in zip(paths, rates))
        raise ParameterError(f"sr=None keeps each file's native rate, but the rates differ ({listing}); "
                             f"pass a target sr to resample them to one rate")
    channel_shapes = {w.shape[:-1] for w in waves}
    if len(channel_shapes) > 1:
        listing = ", ".join(f"{p}: {w.shape[0] if w.ndim > 1 else 1} channel(s)" for p, w in zip(paths, waves))
        raise ParameterError(f"mono=False needs the same channel count in every file, got {listing}")

    lengths = torch.tensor([w.shape[-1] for w in waves], dtype=torch.int64)
    batch = torch.zeros((len(waves),) + waves[0].shape[:-1] + (int(lengths.max()),), dtype=dtype)
    for row, w in zip(batch, waves):
        row[..., : w.shape[-1]] = torch.from_numpy(w)
    return batch.to(device), lengths.to(device)
