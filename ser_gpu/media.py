"""Decoding of any audio or video file to a mono waveform, whole or window by window.

Files that libsndfile reads (wav, flac, ogg, mp3, aiff, ...) go through :func:`ser_gpu.io.load`, so
they equal ``librosa.load`` sample for sample. Everything else (video containers, m4a/aac, wma,
opus, ...) is decoded by the ffmpeg binary that moviepy depends on (``imageio_ffmpeg``), run as a
subprocess that writes 32-bit float PCM at the file's native rate to a pipe; the channels are then
averaged and the result resampled with soxr's high-quality mode, the same steps :func:`ser_gpu.io.load`
takes. (librosa's own fallback for such files, audioread, also runs ffmpeg at the native rate but
reads 16-bit PCM; here the samples keep ffmpeg's float precision.)

Long files: :func:`load_media` reads only the span asked for (``offset``/``duration``: a seek in
libsndfile, ``-ss``/``-t`` in ffmpeg), and :func:`iter_windows` walks a whole file of any length in
fixed windows with one decoder, holding at most one window and one read block in memory.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import subprocess
import tempfile
from typing import Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import soundfile as sf
import torch

from . import io as _io
from ._cli import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, is_media, is_video  # noqa: F401 - re-exported
from ._validation import check_positive
from .errors import AudioLoadError, ParameterError

__all__ = [
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaWindow",
    "is_media",
    "is_video",
    "load_media",
    "media_duration",
    "iter_windows",
    "ffmpeg_exe",
]


_PREROLL = 10.0  # seconds decoded and dropped before an ffmpeg seek target (see _FFmpegPCM)
_READ_FRAMES = 1 << 16  # native-rate frames per read while streaming: 256 KiB per channel
_FFMPEG_PREFIX = re.compile(r"^(?:\[[^\]]*@\s*(?:0x)?[0-9a-fA-F]+\]\s*)+")
_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d*)?)")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?:\s*Audio:")
_NO_AUDIO_NOTE = "matches no streams"


@functools.lru_cache(maxsize=1)
def _find_ffmpeg() -> Optional[str]:
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return None


def ffmpeg_exe() -> Optional[str]:
    """Path of the ffmpeg binary that moviepy uses (``imageio_ffmpeg.get_ffmpeg_exe()``), or None.

    ``IMAGEIO_FFMPEG_EXE`` in the environment selects another binary, as it does for moviepy.
    """
    return _find_ffmpeg()


def _condense(stderr: str, limit: int = 300) -> str:
    """ffmpeg's error log as one line: '[demuxer @ 0x..]' prefixes, repeats and echoes of the path dropped."""
    lines: List[str] = []
    for raw in stderr.splitlines():
        line = _FFMPEG_PREFIX.sub("", raw.strip()).strip()
        if not line or line.startswith("Last message repeated") or "file:" in line:
            continue  # "file:" lines only repeat the path the message already starts with
        cause = line.rsplit(": ", 1)[-1]
        if any(cause in kept for kept in lines):
            continue  # ffmpeg repeats one cause at each level ("Error opening input(s): ...")
        lines.append(line)
    text = "; ".join(lines) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _soundfile_reads(path: str) -> bool:
    """Whether libsndfile opens ``path``; video containers are not even tried."""
    if is_video(path):
        return False
    try:
        sf.info(_io._sndfile_path(path))
    except Exception:  # noqa: BLE001 - any refusal just means "let ffmpeg try"
        return False
    return True


def _require_ffmpeg(path: str) -> str:
    exe = ffmpeg_exe()
    if exe is None:
        raise AudioLoadError(path, "libsndfile cannot read this format and no ffmpeg binary was found "
                                   "(install moviepy / imageio-ffmpeg, or set IMAGEIO_FFMPEG_EXE)")
    return exe


def _ffmpeg_failure(path: str, stderr: str, sndfile_tried: bool) -> AudioLoadError:
    if _NO_AUDIO_NOTE in stderr:
        return AudioLoadError(path, "has no audio track")
    lead = "cannot be decoded by libsndfile or ffmpeg" if sndfile_tried else "cannot be decoded"
    return AudioLoadError(path, f"{lead} (ffmpeg: {_condense(stderr)})")


class _FFmpegPCM:
    """An ffmpeg subprocess decoding the first audio track of a file to float32 WAV on a pipe.

    ``open()`` parses the WAV header (native rate and channel count); ``read(n)`` returns up to
    ``n`` frames as ``(channels, frames)`` float32, empty at the end; ``close()`` checks how ffmpeg
    ended. stderr goes to a temporary file so a chatty decoder can never block on a full pipe.
    """

    def __init__(self, path: str, *, offset: float = 0.0, duration: Optional[float] = None,
                 sndfile_tried: bool = False):
        self.path = path
        self.sndfile_tried = sndfile_tried
        args = [_require_ffmpeg(path), "-nostdin", "-hide_banner", "-loglevel", "error"]
        # A seek in the container (-ss before -i) is fast but lands a few ms off with some codecs
        # (aac: 128-544 samples in tests); a seek in the output (-ss after -i) decodes and drops
        # everything before it and is sample-exact. Far into a file, jump to _PREROLL s before
        # the offset and decode only that much.
        seek_in = offset - _PREROLL if offset > _PREROLL else 0.0
        if seek_in:
            args += ["-ss", repr(seek_in)]
        # 'file:' keeps ':' in a file name from being read as a protocol such as 'http:'
        args += ["-i", "file:" + os.path.abspath(path)]
        if offset - seek_in:
            args += ["-ss", repr(offset - seek_in)]
        if duration is not None:
            args += ["-t", repr(float(duration))]
        args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
                 "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise AudioLoadError(path, f"cannot run ffmpeg ({args[0]}): {exc}") from exc
        self.sr = 0
        self.channels = 0
        self._pending = b""

    def _read_exact(self, n: int) -> bytes:
        data = self._proc.stdout.read(n)
        return data if data is not None else b""

    def open(self) -> "_FFmpegPCM":
        head = self._read_exact(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            self.close()  # raises with ffmpeg's reason when ffmpeg failed
            raise AudioLoadError(self.path, "ffmpeg produced no audio (no WAV header on its output)")
        while True:
            chunk = self._read_exact(8)
            if len(chunk) < 8:
                self.close()
                raise AudioLoadError(self.path, "ffmpeg produced no audio samples")
            tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if tag == b"data":
                break  # size is a placeholder on a pipe: read to the end
            body = self._read_exact(size + (size & 1))
            if tag == b"fmt ":
                if len(body) < 16:
                    self.close()
                    raise AudioLoadError(self.path, "ffmpeg wrote a malformed WAV header")
                _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if bits != 32 or channels < 1 or rate < 1:
                    self.close()
                    raise AudioLoadError(self.path, f"ffmpeg wrote unexpected PCM ({channels} ch, {rate} Hz, "
                                                    f"{bits} bit)")
                self.sr, self.channels = int(rate), int(channels)
        if not self.sr:
            self.close()
            raise AudioLoadError(self.path, "ffmpeg wrote a WAV stream without a format chunk")
        return self

    def read(self, frames: int) -> np.ndarray:
        frame_bytes = 4 * self.channels
        want = frames * frame_bytes - len(self._pending)
        data = self._pending + (self._read_exact(want) if want > 0 else b"")
        usable = len(data) - len(data) % frame_bytes
        self._pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<f4")
        return samples.reshape(-1, self.channels).T.astype(np.float32)

    def close(self, *, check: bool = True) -> None:
        proc = self._proc
        if proc.poll() is None and not check:
            proc.kill()  # the caller stopped early: don't decode the rest of a long file
        proc.stdout.close()
        rc = proc.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        if check and rc != 0:
            raise _ffmpeg_failure(self.path, stderr, self.sndfile_tried)
        if check and stderr.strip():
            # ffmpeg decodes past damage (a cut-off file just ends early) but logs it at error
            # level; like io.load with libsndfile's damage notes, lost audio is an error
            raise AudioLoadError(self.path, f"corrupt or truncated data (ffmpeg: {_condense(stderr)})")

    def __enter__(self) -> "_FFmpegPCM":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._stderr.closed:
            self.close(check=False)


def _ffmpeg_decode(path: str, offset: float, duration: Optional[float], sndfile_tried: bool):
    """``(channels, n)`` float32 at the native rate, and that rate, for the requested span."""
    with _FFmpegPCM(path, offset=offset, duration=duration, sndfile_tried=sndfile_tried) as dec:
        dec.open()
        blocks = []
        while True:
            block = dec.read(_READ_FRAMES)
            if block.shape[-1] == 0:
                break
            blocks.append(block)
        dec.close()
    y = np.concatenate(blocks, axis=-1) if blocks else np.zeros((dec.channels, 0), np.float32)
    if duration is not None:
        # the span librosa/io would read: int(duration * sr) samples, whatever ffmpeg's -t rounding
        y = y[:, : int(duration * dec.sr)]
    return y, dec.sr


def _no_samples(path: str, offset: float, duration) -> AudioLoadError:
    if offset:
        try:
            total = media_duration(path)
        except AudioLoadError:
            total = None
        if total is not None and offset >= total:
            return AudioLoadError(path, f"no samples to read: offset={offset!r} s is at or past the end of "
                                        f"the file ({total:.6g} s)")
    return AudioLoadError(path, f"no samples could be decoded (offset={offset!r}, duration={duration!r})")


def _finish(y: np.ndarray, sr_native: int, sr, np_dtype) -> np.ndarray:
    """Mono mean (``librosa.to_mono``), soxr HQ resampling (``librosa.resample``), as ``io.load``."""
    y = y.astype(np_dtype, copy=False)
    y = np.mean(y, axis=0) if y.shape[0] > 1 else y[0]
    if sr is not None:
        y = _io._resample(y, sr_native, sr)
    return np.ascontiguousarray(y, dtype=np_dtype)


def load_media(
    path,
    *,
    sr: Optional[float] = 22050,
    offset: float = 0.0,
    duration: Optional[float] = None,
    dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, int]:
    """Load the (first) audio track of an audio or video file as a mono waveform tensor.

    Equals ``librosa.load(path, sr=sr, offset=offset, duration=duration)`` (``res_type='soxr_hq'``)
    for every file libsndfile reads: those go through :func:`ser_gpu.io.load`. Other files (video
    containers, m4a/aac, ...), and files libsndfile opens but then fails to decode (where librosa
    falls back to audioread), are decoded by ffmpeg at their native rate in float32, averaged over
    channels and resampled with soxr HQ exactly as :func:`ser_gpu.io.load` resamples.

    Only the requested span is returned, and no more than it is held in memory: reading starts at
    sample ``int(offset * native_sr)`` (a seek in libsndfile; in ffmpeg a container seek to 10 s
    before the offset, then decoding up to it, which gave the same samples as a decode from the
    start in the tests) and keeps ``int(duration * native_sr)`` samples. A long file can thus be
    read window by window; :func:`iter_windows` does it in one pass.

    Args:
        path (str | os.PathLike): audio or video file.
        sr (float | None, default 22050): target sample rate; ``None`` keeps the native rate.
        offset (float, default 0.0): start this many seconds into the file (>= 0).
        duration (float | None, default None): read at most this many seconds (> 0); ``None`` reads to the end.
        dtype (torch.dtype, default torch.float32): ``torch.float32`` or ``torch.float64``.

    Returns:
        ``(y, sr)``: ``y`` of shape ``(time,)`` on the CPU; ``sr`` the rate of ``y``.

    Raises:
        AudioLoadError: missing, empty, corrupt or undecodable file; a file without an audio track
            (the reason says ``"has no audio track"``); nothing to read at ``offset``. The message
            starts with the path and is one line (ffmpeg's log condensed).
        ParameterError: a bad argument.
    """
    path = _io._check_path(path)
    _io._check_args(sr, offset, duration, dtype)
    _io._check_file(path)
    if _soundfile_reads(path):
        try:
            return _io.load(path, sr=sr, mono=True, offset=offset, duration=duration, dtype=dtype)
        except AudioLoadError as exc:
            # librosa.load falls back to audioread (ffmpeg) when libsndfile itself fails to read;
            # io's own verdicts (damage notes, nothing at offset) carry no libsndfile cause and stand
            if not isinstance(exc.__cause__, (sf.SoundFileError, RuntimeError)):
                raise
    y, sr_native = _ffmpeg_decode(path, float(offset), duration, sndfile_tried=not is_video(path))
    if y.shape[-1] == 0:
        raise _no_samples(path, float(offset), duration)
    if not np.isfinite(y).all():
        raise AudioLoadError(path, "corrupt data: the audio contains NaN or infinite samples")
    y = _finish(y, sr_native, sr, _io._NUMPY_DTYPES[dtype])
    return torch.from_numpy(y), (sr if sr is not None else sr_native)


def _probe(path: str) -> str:
    """ffmpeg's description of the input (``ffmpeg -i path``), or AudioLoadError if it cannot open it."""
    exe = _require_ffmpeg(path)
    proc = subprocess.run([exe, "-nostdin", "-hide_banner", "-i", "file:" + os.path.abspath(path)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #" not in text:  # with no output file ffmpeg always fails; only a missing "Input #" is fatal
        errors = "\n".join(line for line in text.splitlines() if "output file" not in line.lower())
        raise _ffmpeg_failure(path, errors, sndfile_tried=not is_video(path))
    return text


def media_duration(path) -> float:
    """Length of a file's audio in seconds, without decoding it (when the container says it).

    libsndfile formats: ``frames / samplerate`` (exact). Others: the container duration ffmpeg
    reports (10 ms resolution; for a few stream formats ffmpeg estimates it from the bitrate); a
    container that states none is decoded once, in blocks, to count its samples.

    Raises:
        AudioLoadError: as :func:`load_media`, including ``"has no audio track"``.
    """
    path = _io._check_path(path)
    _io._check_file(path)
    if _soundfile_reads(path):
        info = sf.info(_io._sndfile_path(path))
        return info.frames / info.samplerate
    text = _probe(path)
    if not _AUDIO_STREAM.search(text):
        raise AudioLoadError(path, "has no audio track")
    match = _DURATION.search(text)
    if match:
        h, m, s = match.groups()
        return int(h) * 3600 + int(m) * 60 + float(s)
    n = 0
    with _FFmpegPCM(path, sndfile_tried=not is_video(path)) as dec:
        dec.open()
        while True:
            block = dec.read(_READ_FRAMES)
            if block.shape[-1] == 0:
                break
            n += block.shape[-1]
        dec.close()
    return n / dec.sr


class MediaWindow(NamedTuple):
    """One window of :func:`iter_windows`: its span in seconds of the file and its samples."""

    start: float
    """seconds from the start of the file to the window's first sample"""
    end: float
    """seconds from the start of the file to just after the window's last sample"""
    y: torch.Tensor
    """mono waveform at the requested rate ``[shape=(time,)]``"""


def _sndfile_blocks(path: str, np_dtype) -> Iterator:
    """Yield the native rate, then ``(channels, n)`` blocks, from libsndfile, checking for damage as io does."""
    with sf.SoundFile(_io._sndfile_path(path)) as f:
        damage = _io._damage(f.extra_info)
        if damage is not None:
            raise AudioLoadError(path, damage)
        if f.frames <= 0:
            raise AudioLoadError(path, f"the file holds no audio samples (0 frames at {f.samplerate} Hz)")
        yield int(f.samplerate)
        while True:
            try:
                block = f.read(frames=_READ_FRAMES, dtype=np_dtype, always_2d=True).T
            except (sf.SoundFileError, RuntimeError) as exc:
                raise AudioLoadError(path, f"corrupt or truncated data (libsndfile: {exc})") from exc
            if block.shape[-1] == 0:
                break
            yield block
        damage = _io._damage(f.extra_info)
        if damage is not None:
            raise AudioLoadError(path, damage)


def _ffmpeg_blocks(path: str, np_dtype) -> Iterator:
    with _FFmpegPCM(path, sndfile_tried=not is_video(path)) as dec:
        dec.open()
        yield dec.sr
        while True:
            block = dec.read(_READ_FRAMES)
            if block.shape[-1] == 0:
                break
            yield block.astype(np_dtype, copy=False)
        dec.close()


def iter_windows(
    path,
    *,
    sr: Optional[float] = 22050,
    window_seconds: float = 3.0,
    hop_seconds: Optional[float] = None,
    dtype: torch.dtype = torch.float32,
) -> Iterator[MediaWindow]:
    """Walk a file of any length in fixed windows, decoding it once, in bounded memory.

    Windows start at ``0, hop, 2 hop, ...`` (in native-rate samples: ``int(window_seconds * native_sr)``
    long, ``int(hop_seconds * native_sr)`` apart). Every window that fits is yielded; after the last
    full one, the rest of the file (if any sample is not yet covered) comes as one shorter window, so
    a file shorter than ``window_seconds`` is a single window. Each window is averaged over channels
    and resampled on its own, so it equals ``load_media(path, sr=sr, offset=start, duration=window)``
    where the decoder is sample-exact (libsndfile formats, and the ffmpeg formats tested), read in
    one pass instead of one seek per window.

    Memory: one window plus one read block (65536 native frames) at any time, whatever the file's length.

    Args:
        path (str | os.PathLike): audio or video file.
        sr (float | None, default 22050): rate of the yielded windows; ``None`` keeps the native rate.
        window_seconds (float, default 3.0): window length (> 0).
        hop_seconds (float | None, default None): distance between window starts (> 0); ``None``
            means ``window_seconds`` (no overlap). Larger than ``window_seconds`` skips audio.
        dtype (torch.dtype, default torch.float32): ``torch.float32`` or ``torch.float64``.

    Yields:
        :class:`MediaWindow` ``(start, end, y)``: ``y`` of shape ``(time,)``.

    Raises:
        ParameterError: a bad argument (at the call; a window or hop shorter than one sample at
            the file's native rate at the first ``next()``).
        AudioLoadError: as :func:`load_media`: a missing or empty file at the call; a file that cannot
            be decoded at the first ``next()``; damage found part-way through when it is reached.
    """
    path = _io._check_path(path)
    _io._check_args(sr, 0.0, None, dtype)
    check_positive(window_seconds, "window_seconds")
    hop_seconds = window_seconds if hop_seconds is None else check_positive(hop_seconds, "hop_seconds")
    _io._check_file(path)
    # checked above, at the call; decoding starts at the first next()
    return _windows(path, sr, float(window_seconds), float(hop_seconds), _io._NUMPY_DTYPES[dtype])


def _windows(path: str, sr, window_seconds: float, hop_seconds: float, np_dtype) -> Iterator[MediaWindow]:
    blocks = _sndfile_blocks(path, np_dtype) if _soundfile_reads(path) else _ffmpeg_blocks(path, np_dtype)
    try:
        sr_native = next(blocks)
        win = int(window_seconds * sr_native)
        hop = int(hop_seconds * sr_native)
        if win < 1 or hop < 1:
            bad = ("window_seconds", window_seconds) if win < 1 else ("hop_seconds", hop_seconds)
            raise ParameterError(f"{bad[0]} must cover at least one sample at the file's {sr_native} Hz, "
                                 f"got {bad[1]!r}")
        buf = None  # samples from native index `pos` on, never more than one window + one block
        pos = 0
        start = 0  # native index of the next window
        covered = 0  # native index just after the last yielded sample
        for block in blocks:
            if not np.isfinite(block).all():
                raise AudioLoadError(path, "corrupt data: the audio contains NaN or infinite samples")
            buf = block if buf is None else np.concatenate([buf, block], axis=-1)
            while True:
                if start > pos:  # samples before the next window are no longer needed
                    drop = min(start - pos, buf.shape[-1])
                    buf, pos = buf[:, drop:], pos + drop
                if start + win > pos + buf.shape[-1]:
                    break
                # a copy, so a yielded window never keeps the read buffer alive
                piece = buf[:, start - pos: start - pos + win].copy()
                yield MediaWindow(start / sr_native, (start + win) / sr_native,
                                  torch.from_numpy(_finish(piece, sr_native, sr, np_dtype)))
                covered = start + win
                start += hop
        total = pos + (0 if buf is None else buf.shape[-1])
        if total == 0:
            raise AudioLoadError(path, "no samples could be decoded")
        if covered < total and start < total:
            piece = buf[:, start - pos:].copy()
            yield MediaWindow(start / sr_native, total / sr_native,
                              torch.from_numpy(_finish(piece, sr_native, sr, np_dtype)))
    finally:
        blocks.close()  # stops ffmpeg when the caller leaves the loop early
