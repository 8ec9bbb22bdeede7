"""RAVDESS file names: ``MM-VV-EE-II-SS-RR-AA.wav`` -> a :class:`Clip` with its emotion label and actor.

RAVDESS (Livingstone & Russo, 2018) names every file by seven two-digit fields: modality
(01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity
(01 normal, 02 strong), statement (01, 02), repetition (01, 02) and actor (01-24; odd male, even
female). The emotion is the third field, as in the original system.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

from .._cli import AUDIO_EXTENSIONS, NoMatchingFiles, find_files
from .._validation import _describe
from ..errors import ParameterError

__all__ = ["EMOTIONS", "Clip", "parse_ravdess_name", "scan_corpus"]

PathLike = Union[str, "os.PathLike[str]"]

#: The eight RAVDESS emotions; label ``i`` is emotion code ``i + 1`` (01 neutral ... 08 surprised).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

_N_FIELDS = 7


@dataclass(frozen=True)
class Clip:
    """One corpus file and what its RAVDESS name says about it.

    Attributes:
        path: the audio file.
        label: emotion label in ``0..7`` (index into :data:`EMOTIONS`; the name's emotion code minus 1).
        actor: actor number (RAVDESS: 1-24, odd male, even female).
        modality, vocal_channel, intensity, statement, repetition: the other fields of the name, as
            integers (1 when not known).
    """

    path: Path
    label: int
    actor: int
    modality: int = 3
    vocal_channel: int = 1
    intensity: int = 1
    statement: int = 1
    repetition: int = 1

    @property
    def emotion(self) -> str:
        """The emotion's name, ``EMOTIONS[label]``."""
        return EMOTIONS[self.label]


def parse_ravdess_name(path: PathLike) -> Optional[Clip]:
    """Parse a RAVDESS file name ``MM-VV-EE-II-SS-RR-AA.ext`` into a :class:`Clip`.

    Only the file name is read (not the file). The stem must hold exactly seven ``-``-separated
    non-negative integers, and the third (the emotion) must be a known code 01-08.

    Args:
        path (str | os.PathLike): the file; its directory and extension are not checked.

    Returns:
        A :class:`Clip`, or ``None`` when the name carries no known emotion code (wrong number of
        fields, a field that is not a number, or an emotion code outside 01-08).
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}: {_describe(path)}")
    path = Path(path)
    fields = path.stem.split("-")
    # isdecimal rejects signs, spaces and non-ASCII digit look-alikes that int() would accept
    if len(fields) != _N_FIELDS or not all(f.isascii() and f.isdecimal() for f in fields):
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = (int(f) for f in fields)
    if not 1 <= emotion <= len(EMOTIONS):
        return None
    return Clip(path=path, label=emotion - 1, actor=actor, modality=modality, vocal_channel=channel,
                intensity=intensity, statement=statement, repetition=repetition)


def _as_dirs(data_dirs) -> List[Path]:
    if isinstance(data_dirs, bytes):
        data_dirs = os.fsdecode(data_dirs)
    if isinstance(data_dirs, (str, os.PathLike)):
        data_dirs = [data_dirs]  # one directory given on its own
    if not isinstance(data_dirs, Sequence) or isinstance(data_dirs, (bytes, bytearray)):
        raise ParameterError(f"data_dirs must be a list of directories, got {type(data_dirs).__name__}: "
                             f"{_describe(data_dirs)}")
    if len(data_dirs) == 0:
        raise ParameterError("data_dirs must name at least one directory, got an empty list []")
    dirs = []
    for d in data_dirs:
        if isinstance(d, bytes):
            d = os.fsdecode(d)
        if not isinstance(d, (str, os.PathLike)):
            raise ParameterError(f"data_dirs must hold paths, got {type(d).__name__}: {_describe(d)}")
        p = Path(d).expanduser()
        if not p.exists():
            raise ParameterError(f"data directory {str(d)!r} does not exist")
        if not p.is_dir():
            raise ParameterError(f"data directory {str(d)!r} is not a directory")
        dirs.append(p)
    return dirs


def scan_corpus(data_dirs: Sequence[PathLike]) -> List[Clip]:
    """Find the RAVDESS-named audio files under one or more directories, searched recursively.

    The audio files (:data:`ser_gpu._cli.AUDIO_EXTENSIONS`, any case) are found by the one rule of
    :func:`ser_gpu._cli.find_files` (recursive, links followed without loops, a file reached twice
    listed once, each directory must hold at least one audio file) and parsed with
    :func:`parse_ravdess_name`; those whose names carry no known emotion code are skipped and
    counted in one ``UserWarning`` (with an example name).

    Args:
        data_dirs (sequence of str | os.PathLike): directories (a single path is accepted too),
            e.g. a RAVDESS root holding ``Actor_01/`` ... ``Actor_24/``.

    Returns:
        The clips, sorted by path.

    Raises:
        ParameterError: an empty list, a directory that does not exist or is not a directory, a
            directory without any audio file, or no valid RAVDESS-named audio file in any of them.
    """
    dirs = _as_dirs(data_dirs)
    clips, skipped = [], []
    try:
        files = find_files(dirs, what="audio", argument="data directory")
    except NoMatchingFiles as exc:
        raise ParameterError(
            f"no valid RAVDESS-named audio file (MM-VV-EE-II-SS-RR-AA with emotion code 01-08, "
            f"extensions {', '.join(AUDIO_EXTENSIONS)}) found under {str(exc.directory)!r}; "
            f"0 audio file(s) skipped for their names (the directory holds no audio file)"
        ) from None
    for p in files:
        clip = parse_ravdess_name(p)
        if clip is None:
            skipped.append(p)
        else:
            clips.append(clip)
    listing = ", ".join(repr(str(d)) for d in dirs)
    if not clips:
        raise ParameterError(
            f"no valid RAVDESS-named audio file (MM-VV-EE-II-SS-RR-AA with emotion code 01-08, "
            f"extensions {', '.join(AUDIO_EXTENSIONS)}) found under {listing}; "
            f"{len(skipped)} audio file(s) skipped for their names"
            + (f", e.g. {skipped[0].name!r}" if skipped else "")
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} audio file(s) under {listing} whose names carry no RAVDESS emotion "
            f"code (expected MM-VV-EE-II-SS-RR-AA with EE in 01-08), e.g. {skipped[0].name!r}",
            UserWarning,
            stacklevel=2,
        )
    clips.sort(key=lambda c: str(c.path))
    return clips
