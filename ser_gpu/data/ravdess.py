"""RAVDESS file names: ``MM-VV-EE-II-SS-RR-AA.wav`` -> a :class:`Clip` with its emotion label and actor.

The other corpora (CREMA-D, TESS, SAVEE, EmoDB) and the directory scan are in :mod:`ser_gpu.data.corpora`.

RAVDESS (Livingstone & Russo, 2018) names every file by seven two-digit fields: modality
(01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), intensity
(01 normal, 02 strong), statement (01, 02), repetition (01, 02) and actor (01-24; odd male, even
female). The emotion is the third field, as in the original system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .._validation import _describe
from ..errors import ParameterError

__all__ = ["EMOTIONS", "Clip", "parse_ravdess_name"]

PathLike = Union[str, "os.PathLike[str]"]

#: The eight RAVDESS emotions; label ``i`` is emotion code ``i + 1`` (01 neutral ... 08 surprised).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

_N_FIELDS = 7
# each field's codes: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech,
# 02 song), emotion, intensity, statement, repetition, actor (two digits)
_RANGES = ((1, 3), (1, 2), (1, len(EMOTIONS)), (1, 2), (1, 2), (1, 2), (1, 99))


@dataclass(frozen=True)
class Clip:
    """One corpus file and what its name says about it.

    Attributes:
        path: the audio file.
        label: emotion label in ``0..7`` (index into :data:`EMOTIONS`; for RAVDESS the name's emotion
            code minus 1, for other corpora their emotion mapped as in :mod:`ser_gpu.data.corpora`).
        actor: the speaker's number within its corpus (RAVDESS: 1-24, odd male, even female).
        modality, vocal_channel, intensity, statement, repetition: the other fields of a RAVDESS
            name, as integers (1 when not known, and for other corpora).
        corpus: the corpus whose naming scheme the name follows (``"ravdess"``, ``"crema-d"``,
            ``"tess"``, ``"savee"``, ``"emodb"``; :data:`ser_gpu.data.corpora.CORPORA`).
        speaker: the speaker id, unique across corpora (``"ravdess:12"``, ``"tess:OAF"``, ...);
            when not given, ``f"{corpus}:{actor:02d}"``.
    """

    path: Path
    label: int
    actor: int
    modality: int = 3
    vocal_channel: int = 1
    intensity: int = 1
    statement: int = 1
    repetition: int = 1
    corpus: str = "ravdess"
    speaker: Optional[str] = None

    def __post_init__(self):
        if self.speaker is None:
            actor = f"{self.actor:02d}" if isinstance(self.actor, int) else str(self.actor)
            object.__setattr__(self, "speaker", f"{self.corpus}:{actor}")

    @property
    def emotion(self) -> str:
        """The emotion's name, ``EMOTIONS[label]``."""
        return EMOTIONS[self.label]


def parse_ravdess_name(path: PathLike) -> Optional[Clip]:
    """Parse a RAVDESS file name ``MM-VV-EE-II-SS-RR-AA.ext`` into a :class:`Clip`.

    Only the file name is read (not the file). The stem must hold exactly seven ``-``-separated
    two-digit fields within RAVDESS's codes: modality 01-03, vocal channel 01-02, emotion 01-08,
    intensity, statement and repetition 01-02, actor 01-99 (RAVDESS has 24; the synthetic corpus
    may have more), so a name that merely has seven numbers (``2024-01-05-10-30-00-00``) is not
    taken for a recording.

    Args:
        path (str | os.PathLike): the file; its directory and extension are not checked.

    Returns:
        A :class:`Clip` (sung files, vocal channel 02, included: :func:`ser_gpu.data.scan_corpus`
        skips them), or ``None`` when the name is not a RAVDESS name (wrong number of fields, a field
        that is not two digits, or a code outside the ranges above).
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}: {_describe(path)}")
    path = Path(path)
    fields = path.stem.split("-")
    # isdecimal rejects signs, spaces and non-ASCII digit look-alikes that int() would accept
    if len(fields) != _N_FIELDS or not all(len(f) == 2 and f.isascii() and f.isdecimal() for f in fields):
        return None
    values = tuple(int(f) for f in fields)
    if not all(lo <= v <= hi for v, (lo, hi) in zip(values, _RANGES)):
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = values
    return Clip(path=path, label=emotion - 1, actor=actor, modality=modality, vocal_channel=channel,
                intensity=intensity, statement=statement, repetition=repetition)
