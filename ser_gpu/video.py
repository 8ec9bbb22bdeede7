"""``python -m ser_gpu.video VIDEO_DIR OUT_DIR``: the audio track of every video as a 16-bit wav.

As the original system's ``extract_audio_from_video(video_dir, out_dir)`` (moviepy): each video at
the top level of ``VIDEO_DIR`` becomes ``OUT_DIR/<stem>.wav`` (``<stem>_2.wav``... where the name is
another video's; each wav's comment tag identifies its video, :func:`_output_names`). A video's
existing output is kept unless ``--overwrite``; a video without an audio track, or one that cannot be
read, is reported and skipped while the others still convert. The conversion runs the ffmpeg binary that moviepy ships
(``imageio_ffmpeg``) directly: one process per video, streaming, with no frames decoded.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile as sf
from tqdm import tqdm

from ._atomic import atomic_output
from ._cli import find_files, readable, run_main
from ._validation import _describe, check_positive_int
from .errors import DependencyError, ParameterError
from .io import _sndfile_path
from .media import VIDEO_EXTENSIONS, _condense, _NO_AUDIO_NOTE, ffmpeg_exe

__all__ = ["find_videos", "extract_audio_from_video", "main"]


def find_videos(video_dir) -> List[Path]:
    """The videos to convert: a single file as given, or a directory's top-level videos, sorted.

    :func:`ser_gpu._cli.find_files` with ``recursive=False``: as the original system's
    ``extract_audio_from_video(video_dir, out_dir)``, only the directory's top level is converted
    (its outputs are named by stem in one flat ``out_dir``).

    Raises:
        ParameterError: ``video_dir`` does not exist, or a directory holds no video
            (:data:`ser_gpu.media.VIDEO_EXTENSIONS`, any case).
    """
    if not isinstance(video_dir, (str, os.PathLike)):
        raise ParameterError(f"video_dir must be a directory or video file path, got "
                             f"{type(video_dir).__name__}: {_describe(video_dir)}")
    return find_files([video_dir], extensions=VIDEO_EXTENSIONS, recursive=False, what="video",
                      argument="video_dir")


#: the start of the tag (WAV LIST/INFO comment) that names the video a wav was extracted from
_SOURCE_TAG = "ser_gpu.video source: "


def _source_key(video: Path) -> str:
    """A video's identity across runs: its file name (``a.mp4``). It survives moving or copying the
    videos and re-encoding one in place (``--overwrite`` then replaces its wav), tells apart the
    videos of one stem (``a.mp4``, ``a.mkv``), and writes no directory into a file the user may share.
    A name whose bytes are not valid UTF-8 is written with those bytes escaped (``caf\\xe9.mkv``): the
    tag reads back as the same text (soundfile decodes tags as UTF-8)."""
    return readable(video.name)


def _recorded_source(wav: Path) -> Optional[str]:
    """The video file name in an existing ``wav``'s tag, or None: a wav this command did not write (no
    tag, or not a readable wav)."""
    try:
        with sf.SoundFile(_sndfile_path(str(wav))) as fh:
            comment = fh.comment or ""
    except Exception:  # noqa: BLE001 - any file soundfile refuses carries no tag
        return None
    return comment[len(_SOURCE_TAG):] if comment.startswith(_SOURCE_TAG) else None


def _candidate(stem: str, n: int) -> str:
    return f"{stem}.wav" if n == 1 else f"{stem}_{n}.wav"


def _stems_of(name: str) -> List[str]:
    """The stems, lower-cased, whose candidate names (:func:`_candidate`) may be the file ``name``:
    ``a_2.wav`` is stem ``a_2``'s first and stem ``a``'s second."""
    if not name.lower().endswith(".wav"):
        return []
    base = name[:-4].lower()
    head, sep, tail = base.rpartition("_")
    return [base, head] if sep and re.fullmatch(r"[1-9][0-9]*", tail, flags=re.ASCII) else [base]


def _output_names(videos: Sequence[Path], out: Path) -> List[str]:
    """One wav name per video: ``<stem>.wav``, or ``<stem>_2.wav``, ``_3``... where that name is taken.

    A video whose wav exists (a file of its stem whose tag names exactly this video's file) gets
    that name again, whatever other videos are present. Otherwise the first name that is free: not
    given to another video of this run, and no file of that name exists in any case (``A.wav``
    takes ``a.wav``'s place on the file systems that ignore case), except an untagged ``<stem>.wav``
    of exactly that name (written by an earlier version, or by moviepy as the original system did)
    when this video is the only one of this run with that stem in any case, which is taken for its
    own as before. A wav tagged with another video, or an untagged one two videos could claim, is
    never kept for, nor replaced by, another video.
    """
    stems: Dict[str, int] = {}  # lower-cased stem -> videos of this run with it
    for video in videos:
        stems[video.stem.lower()] = stems.get(video.stem.lower(), 0) + 1
    existing: Dict[str, Optional[str]] = {}  # file name -> the video its tag names (None: untagged)
    if out.is_dir():
        for path in out.iterdir():
            if any(stem in stems for stem in _stems_of(path.name)) and path.is_file():
                existing[path.name] = _recorded_source(path)
    variants: Dict[str, int] = {}  # lower-cased name -> existing files with it
    for name in existing:
        variants[name.lower()] = variants.get(name.lower(), 0) + 1
    own: Dict[Tuple[str, str], str] = {}  # (lower-cased stem, video file name) -> its tagged wav
    for name, source in sorted(existing.items()):
        if source is not None:
            for stem in _stems_of(name):
                own.setdefault((stem, source), name)
    names: List[Optional[str]] = [None] * len(videos)
    used = set()  # lower-cased names given in this run
    for i, video in enumerate(videos):
        name = own.get((video.stem.lower(), _source_key(video)))
        if name is not None and name.lower() not in used:
            names[i] = name
            used.add(name.lower())
    for i, video in enumerate(videos):
        if names[i] is not None:
            continue
        n = 1
        while True:
            name = _candidate(video.stem, n)
            free = name.lower() not in variants
            legacy = (n == 1 and name in existing and existing[name] is None and variants[name.lower()] == 1
                      and stems[video.stem.lower()] == 1)
            if name.lower() not in used and (free or legacy):
                break
            n += 1
        names[i] = name
        used.add(name.lower())
    return names


class _Failed(Exception):
    """Why one video was not converted (reported; the others still convert)."""


def _convert(exe: str, video: Path, target: Path, sr: Optional[int]) -> None:
    """Write ``video``'s first audio track to ``target`` atomically, tagged with its source (raises
    :class:`_Failed` with the reason)."""
    if os.path.getsize(video) == 0:
        raise _Failed("empty file (0 bytes)")
    with atomic_output(target) as tmp:
        args = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-i", "file:" + os.path.abspath(video), "-map", "0:a:0", "-vn", "-sn", "-dn",
                "-c:a", "pcm_s16le", "-metadata", "comment=" + _SOURCE_TAG + _source_key(video)]
        if sr is not None:
            args += ["-ar", str(sr)]
        args += ["-f", "wav", "file:" + str(tmp)]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise _Failed("has no audio track" if _NO_AUDIO_NOTE in stderr else
                          f"cannot be read (ffmpeg: {_condense(stderr)})")
        if stderr.strip():  # ffmpeg converts up to the damage and logs it: no silently short wav
            raise _Failed(f"corrupt or truncated data (ffmpeg: {_condense(stderr)})")
        try:
            frames = sf.info(_sndfile_path(str(tmp))).frames
        except Exception as exc:  # noqa: BLE001 - libsndfile refuses what ffmpeg wrote: reported, not raised
            raise _Failed(f"gave a wav that cannot be read back ({exc})") from None
        if frames == 0:  # the track exists but holds no samples
            raise _Failed("its audio track holds no samples")


def extract_audio_from_video(
    video_dir,
    out_dir,
    *,
    overwrite: bool = False,
    sr: Optional[int] = None,
    progress: bool = True,
) -> Dict:
    """Write the audio track of every video in ``video_dir`` to ``out_dir/<stem>.wav``.

    Equals the original system's moviepy-based ``extract_audio_from_video(video_dir, out_dir)``:
    the top level of ``video_dir`` is scanned (not sub-directories), and an output that already
    exists is kept. Differences: the wav keeps the video's native rate and channel count (moviepy
    wrote 44100 Hz stereo) unless ``sr`` is given; videos without audio or that cannot be read are
    reported instead of stopping the run. Each wav is written to a temporary file in ``out_dir`` and
    moved into place when complete; inputs are never modified or deleted.

    Args:
        video_dir (str | os.PathLike): directory of videos (extensions
            :data:`ser_gpu.media.VIDEO_EXTENSIONS`), or one video file.
        out_dir (str | os.PathLike): where the wavs go; created if needed.
        overwrite (bool, default False): replace outputs that already exist.
        sr (int | None, default None): resample to this rate (ffmpeg's resampler); None keeps the native rate.
        progress (bool, default True): show a tqdm bar (on stderr) when there is more than one video to convert.

    Returns:
        dict with ``written`` (wav paths written), ``skipped_existing`` (wav paths kept as they were),
        ``no_audio`` (video paths without an audio track), ``failed`` (``{video path: reason}``),
        all as strings in the order of the sorted inputs.

    Raises:
        ParameterError: ``video_dir`` missing or without videos, ``out_dir`` not a directory, a bad ``sr``.
        DependencyError: no ffmpeg binary is available.
    """
    if sr is not None:
        sr = check_positive_int(sr, "sr")
    videos = find_videos(video_dir)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ParameterError(f"out_dir must be a directory path, got {type(out_dir).__name__}: {_describe(out_dir)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out_dir {str(out)!r} exists and is not a directory")
    exe = ffmpeg_exe()
    if exe is None:
        raise DependencyError("no ffmpeg binary found: install moviepy (it brings imageio-ffmpeg) "
                              "or point IMAGEIO_FFMPEG_EXE at one")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"out_dir {str(out)!r} cannot be created: {exc.strerror or exc}") from exc

    summary: Dict = {"written": [], "skipped_existing": [], "no_audio": [], "failed": {}}
    todo = []
    for video, name in zip(videos, _output_names(videos, out)):
        target = out / name
        if target.exists() and not overwrite:
            summary["skipped_existing"].append(str(target))
        else:
            todo.append((video, target))
    bar = tqdm(todo, unit="video", desc="audio", disable=not progress or len(todo) < 2, file=sys.stderr)
    for video, target in bar:
        try:
            _convert(exe, video, target, sr)
            reason = None
        except _Failed as exc:
            reason = str(exc)
        except OSError as exc:  # unreadable input, full disk, ...: this video only
            reason = f"cannot be converted: {exc.strerror or exc}"
        if reason is None:
            summary["written"].append(str(target))
        elif reason == "has no audio track":
            summary["no_audio"].append(str(video))
        else:
            summary["failed"][str(video)] = reason
    bar.close()
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ser_gpu.video",
        description="Write the audio track of every video in VIDEO_DIR (top level) to OUT_DIR/<stem>.wav, 16-bit PCM.")
    p.add_argument("video_dir", metavar="VIDEO_DIR", help="directory of videos (top level only), or one video")
    p.add_argument("out_dir", metavar="OUT_DIR", help="where <stem>.wav files are written (created if needed)")
    p.add_argument("--overwrite", action="store_true", help="replace wavs that already exist")
    p.add_argument("--sr", type=int, default=None, help="resample to this rate in Hz (default: keep the native rate)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns 0 when every video was converted or kept, 1 when any failed or had
    no audio, 2 for a usage error."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message; --help exits 0
        return exc.code if isinstance(exc.code, int) else 2
    try:
        summary = extract_audio_from_video(args.video_dir, args.out_dir, overwrite=args.overwrite,
                                           sr=args.sr, progress=not args.quiet)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in summary["written"]:
        print(f"wrote {path}")
    for path in summary["skipped_existing"]:
        print(f"kept existing {path} (use --overwrite to replace it)")
    for path in summary["no_audio"]:
        print(f"skipped {path}: has no audio track", file=sys.stderr)
    for path, reason in summary["failed"].items():
        print(f"failed {path}: {reason}", file=sys.stderr)
    print(f"{len(summary['written'])} written, {len(summary['skipped_existing'])} kept, "
          f"{len(summary['no_audio'])} without audio, {len(summary['failed'])} failed")
    return 1 if summary["no_audio"] or summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
