"""The common SER corpora by file name, each mapped onto the eight RAVDESS labels.

Five naming schemes are read (only the file name, never the file):

========  ===========================  ============================================================
corpus    file name                    fields
========  ===========================  ============================================================
ravdess   ``03-01-05-01-02-01-12.wav``  seven numbers; the third is the emotion, the last the actor
crema-d   ``1001_DFA_ANG_XX.wav``       speaker (4 digits), sentence (one of 12 codes), emotion, level
tess      ``OAF_back_angry.wav``        speaker OAF/YAF, word, emotion word
savee     ``DC_a01.wav``                speaker DC/JE/JK/KL, emotion code and sentence number (also
                                       ``DC/a01.wav``, the layout of the SAVEE download)
emodb     ``03a01Fa.wav``               speaker (2 digits), text (a/b + 2 digits), emotion, version
========  ===========================  ============================================================

Every emotion maps onto :data:`EMOTIONS` (:data:`LABEL_MAPS`) except EmoDB's boredom
(*Langeweile*, ``L``), which has no RAVDESS counterpart: such files are skipped and counted
(:func:`scan_corpus` warns, naming the count per corpus and emotion), as are RAVDESS's sung files
(vocal channel 02: its song recordings unpack into the same ``Actor_XX`` folders as the speech).
TESS's pleasant surprise (``ps``) is taken as ``surprised``. Emotions a corpus does not record (calm
outside RAVDESS, surprised in CREMA-D and EmoDB) are simply absent. Two files the corpora ship
misnamed are read as meant: CREMA-D's ``1040_ITH_SAD_X`` (level ``X`` for ``XX``) and TESS's
``OA_bite_neutral`` (``OA`` for ``OAF``).

Detection (:func:`parse_corpus_name` without ``corpus``) tries the schemes in the fixed order of
:data:`CORPORA` and takes the first that accepts the name. The schemes differ in separator and
field count (7 fields split by ``-``; 4, 3 and 2 fields split by ``_``; one field of 7 characters,
or SAVEE's own layout: a folder named for the speaker and a 3-4 character name such as ``a01``),
so no name is accepted by two of them and the order never decides in practice; it only makes the
rule deterministic. RAVDESS, SAVEE and EmoDB codes are matched as published (case-sensitive);
CREMA-D codes and TESS words in any case. The extension is not read, nor the directory, except that
a SAVEE name without its speaker prefix (``a01.wav``) is taken from a folder named for the speaker
(``DC/``, as the SAVEE download holds them).

One recording in several formats under one data directory (the same corpus, speaker and name with
another extension, e.g. CREMA-D's ``AudioWAV/`` and ``AudioMP3/`` copies; a file belongs to the first
data directory given that reaches it) is one clip: :func:`scan_corpus` keeps the files of the format
that comes first in :data:`ser_gpu._cli.AUDIO_EXTENSIONS` (wav, flac, ... before mp3; ``.aif`` and
``.aiff``, ``.oga`` and ``.ogg`` are one format), so a random split cannot put one recording in two
sets, and counts the others in its warning. Files of one name in the same format (``clean/`` and
``noisy/`` versions, or a copied folder) are all kept, and the warning says how many names repeat;
files under different data directories (a real corpus and the synthetic one, which share RAVDESS
names) are all kept.

Speaker ids are unique across corpora: ``"ravdess:12"``, ``"crema-d:1001"``, ``"tess:OAF"``,
``"savee:DC"``, ``"emodb:03"``; ``--split actor`` holds out whole speakers by this id.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

from .._cli import AUDIO_EXTENSIONS, NoMatchingFiles, find_files_with_origin
from .._validation import _describe
from ..errors import ParameterError
from .ravdess import EMOTIONS, Clip, parse_ravdess_name

__all__ = ["CORPORA", "CORPUS_TITLES", "LABEL_MAPS", "parse_corpus_name", "detect_corpus", "scan_corpus",
           "check_corpus", "speaker_sex", "corpus_table", "sorted_corpora"]

PathLike = Union[str, "os.PathLike[str]"]

#: Corpus names, in the order detection tries them.
CORPORA = ("ravdess", "crema-d", "tess", "savee", "emodb")

#: How each corpus is written in messages and tables.
CORPUS_TITLES = {"ravdess": "RAVDESS", "crema-d": "CREMA-D", "tess": "TESS", "savee": "SAVEE", "emodb": "EmoDB"}

#: The name patterns, for messages.
_PATTERNS = {
    "ravdess": "MM-VV-EE-II-SS-RR-AA, two digits each within RAVDESS's codes, e.g. 03-01-05-01-02-01-12",
    "crema-d": "SSSS_SEN_EMO_LV, e.g. 1001_DFA_ANG_XX",
    "tess": "OAF|YAF_word_emotion, e.g. OAF_back_angry",
    "savee": "DC|JE|JK|KL_<code><nn>, e.g. DC_a01, or DC/a01",
    "emodb": "<speaker nn><text a|b nn><emotion><version>, e.g. 03a01Fa",
}

#: Each corpus's emotion codes -> the RAVDESS emotion name (:data:`EMOTIONS`), or ``None``: skipped.
LABEL_MAPS: Dict[str, Dict[str, Optional[str]]] = {
    "ravdess": {f"{i + 1:02d}": name for i, name in enumerate(EMOTIONS)},
    "crema-d": {"NEU": "neutral", "HAP": "happy", "SAD": "sad", "ANG": "angry", "FEA": "fearful",
                "DIS": "disgust"},
    "tess": {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry", "fear": "fearful",
             "disgust": "disgust", "ps": "surprised"},
    "savee": {"n": "neutral", "h": "happy", "sa": "sad", "a": "angry", "f": "fearful", "d": "disgust",
              "su": "surprised"},
    "emodb": {"N": "neutral", "F": "happy", "T": "sad", "W": "angry", "A": "fearful", "E": "disgust",
              "L": None},
}

#: What a skipped code means, for the warning.
_SKIPPED_MEANING = {("emodb", "L"): "boredom"}
#: Files of a known corpus skipped for something other than their emotion: (corpus, code) -> why.
_SKIPPED_OTHER = {("ravdess", "song"): "sung (vocal channel 02; the speech files are channel 01)"}

_CREMA_SENTENCES = frozenset("IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI".split())
_CREMA_LEVELS = frozenset(("LO", "MD", "HI", "XX", "X"))  # X: 1040_ITH_SAD_X, shipped so
_CREMA_X = re.compile(r"_x$")  # that X level, as XX when recordings are compared
_TESS_SPEAKERS = ("OAF", "YAF")
_TESS_MISNAMED = {"OA": "OAF"}  # OAF_neutral/OA_bite_neutral.wav: shipped so
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_NAME = re.compile(r"(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)([0-9]{2})")
_EMODB_NAME = re.compile(r"([0-9]{2})([ab][0-9]{2})([A-Z])([a-z])")
_CREMA_NAME = re.compile(r"([0-9]{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{1,2})")
_TESS_NAME = re.compile(r"([A-Za-z]{2,3})_([A-Za-z]+)_([A-Za-z]+)")

# Sex of each speaker, where the corpus documents it: --split actor interleaves the sexes of a corpus
# as it always did for RAVDESS (odd actors male, even female). CREMA-D's is not in its file names.
_EMODB_SEX = {3: "m", 8: "f", 9: "f", 10: "m", 11: "m", 12: "m", 13: "f", 14: "f", 15: "m", 16: "f"}


class _Skip(NamedTuple):
    """A name of a known corpus that is skipped and counted: an emotion with no RAVDESS label
    (:data:`_SKIPPED_MEANING`) or another reason (:data:`_SKIPPED_OTHER`: RAVDESS song)."""

    corpus: str
    code: str


_Parsed = Union[Clip, _Skip, None]


def _clip(path: Path, corpus: str, code: str, actor: int, speaker: str) -> _Parsed:
    emotion = LABEL_MAPS[corpus][code]
    if emotion is None:
        return _Skip(corpus, code)
    return Clip(path=path, label=EMOTIONS.index(emotion), actor=actor, corpus=corpus,
                speaker=f"{corpus}:{speaker}")


def _ravdess(path: Path) -> _Parsed:
    clip = parse_ravdess_name(path)
    if clip is not None and clip.vocal_channel == 2:
        return _Skip("ravdess", "song")
    return clip


def _crema(path: Path) -> _Parsed:
    m = _CREMA_NAME.fullmatch(path.stem)
    if m is None:
        return None
    speaker, sentence, emotion, level = m.group(1), *(g.upper() for g in m.groups()[1:])
    if sentence not in _CREMA_SENTENCES or level not in _CREMA_LEVELS or emotion not in LABEL_MAPS["crema-d"]:
        return None
    return _clip(path, "crema-d", emotion, int(speaker), speaker)


def _tess(path: Path) -> _Parsed:
    m = _TESS_NAME.fullmatch(path.stem)
    if m is None:
        return None
    speaker, emotion = m.group(1).upper(), m.group(3).lower()
    speaker = _TESS_MISNAMED.get(speaker, speaker)
    if speaker not in _TESS_SPEAKERS or emotion not in LABEL_MAPS["tess"]:
        return None
    return _clip(path, "tess", emotion, _TESS_SPEAKERS.index(speaker) + 1, speaker)


def _savee(path: Path) -> _Parsed:
    m = _SAVEE_NAME.fullmatch(path.stem)
    if m is None:
        return None
    # DC_a01.wav, or DC/a01.wav (the SAVEE download's layout; abspath: a data directory given as ".")
    speaker = m.group(1) or Path(os.path.abspath(path)).parent.name
    if speaker not in _SAVEE_SPEAKERS:
        return None
    return _clip(path, "savee", m.group(2), _SAVEE_SPEAKERS.index(speaker) + 1, speaker)


def _emodb(path: Path) -> _Parsed:
    m = _EMODB_NAME.fullmatch(path.stem)
    if m is None or m.group(3) not in LABEL_MAPS["emodb"]:
        return None
    return _clip(path, "emodb", m.group(3), int(m.group(1)), m.group(1))


_PARSERS: Dict[str, Callable[[Path], _Parsed]] = {
    "ravdess": _ravdess, "crema-d": _crema, "tess": _tess, "savee": _savee, "emodb": _emodb}


def check_corpus(corpus) -> Optional[str]:
    """``None``/``'auto'`` -> ``None`` (detect per file); a corpus name (any case) -> its name in :data:`CORPORA`."""
    if corpus is None:
        return None
    if not isinstance(corpus, str):
        raise ParameterError(f"corpus must be one of {('auto',) + CORPORA} or None, got {_describe(corpus)}")
    name = corpus.strip().lower()
    if name == "auto":
        return None
    if name not in CORPORA:
        raise ParameterError(f"corpus must be one of {('auto',) + CORPORA}, got {corpus!r}")
    return name


def _as_path(path) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}: {_describe(path)}")
    return Path(path)


def _parse(path: Path, corpus: Optional[str]) -> _Parsed:
    if corpus is not None:
        return _PARSERS[corpus](path)
    for name in CORPORA:
        parsed = _PARSERS[name](path)
        if parsed is not None:
            return parsed
    return None


def parse_corpus_name(path: PathLike, corpus: Optional[str] = None) -> Optional[Clip]:
    """Parse a file name of any known corpus (or of ``corpus``) into a :class:`Clip`.

    Args:
        path (str | os.PathLike): the file; only its name (without extension) is read.
        corpus (str | None): one of :data:`CORPORA` to read the name by that scheme only;
            ``None`` or ``'auto'`` tries every scheme in the order of :data:`CORPORA`.

    Returns:
        A :class:`Clip` with ``corpus``, ``speaker`` (unique across corpora), ``actor`` (the
        speaker's number within its corpus: RAVDESS/CREMA-D/EmoDB the number in the name, TESS
        OAF=1, YAF=2, SAVEE DC=1, JE=2, JK=3, KL=4) and ``label`` (:data:`LABEL_MAPS`); ``None`` for
        a name no scheme accepts, for an emotion without a RAVDESS label (EmoDB boredom) and for
        RAVDESS's sung files (vocal channel 02).
    """
    parsed = _parse(_as_path(path), check_corpus(corpus))
    return parsed if isinstance(parsed, Clip) else None


def detect_corpus(path: PathLike) -> Optional[str]:
    """The corpus whose naming scheme accepts ``path``'s name (first in :data:`CORPORA` order), or ``None``.

    A name of a known corpus that is skipped (EmoDB boredom, RAVDESS song) still names its corpus.
    """
    parsed = _parse(_as_path(path), None)
    return None if parsed is None else parsed.corpus


def speaker_sex(corpus: str, actor: int) -> Optional[str]:
    """``'m'``, ``'f'`` or ``None`` (not known from the name) for a speaker of ``corpus``.

    RAVDESS: odd actors male, even female; TESS: both speakers female; SAVEE: all four male; EmoDB:
    its documentation's list (03, 10, 11, 12, 15 male; 08, 09, 13, 14, 16 female); CREMA-D: not in
    the name (``None``).
    """
    if corpus == "ravdess":
        return "m" if actor % 2 == 1 else "f"
    if corpus == "tess":
        return "f"
    if corpus == "savee":
        return "m"
    if corpus == "emodb":
        return _EMODB_SEX.get(actor)
    return None


# ------------------------------------------------------------------------------------------ scanning

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


def _corpus_per_dir(corpus, n_dirs: int) -> List[Optional[str]]:
    if corpus is None or isinstance(corpus, str):
        return [check_corpus(corpus)] * n_dirs
    if not isinstance(corpus, Sequence):
        raise ParameterError(f"corpus must be a corpus name, 'auto', None or a list of them, got {_describe(corpus)}")
    names = [check_corpus(c) for c in corpus]
    if len(names) == 0:
        return [None] * n_dirs
    if len(names) == 1:
        return names * n_dirs
    if len(names) != n_dirs:
        raise ParameterError(f"corpus must name one corpus for all data directories or one per directory "
                             f"({n_dirs}), got {len(names)}: {list(corpus)!r}")
    return names


def _expected(corpora: Sequence[Optional[str]]) -> str:
    """'RAVDESS-named audio file (...)' for the schemes in play, for the 'nothing found' message."""
    wanted = list(CORPORA) if None in corpora else [c for c in CORPORA if c in corpora]
    first, rest = wanted[0], wanted[1:]
    text = f"{CORPUS_TITLES[first]}-named audio file ({_PATTERNS[first]}, extensions {', '.join(AUDIO_EXTENSIONS)})"
    if rest:
        text += " nor one named like " + ", ".join(f"{CORPUS_TITLES[c]} ({_PATTERNS[c]})" for c in rest)
    return text


def scan_corpus(data_dirs: Sequence[PathLike], *, corpus=None) -> List[Clip]:
    """Find the audio files named like a known corpus under one or more directories, searched recursively.

    The audio files (:data:`ser_gpu._cli.AUDIO_EXTENSIONS`, any case) are found by the one rule of
    :func:`ser_gpu._cli.find_files` (recursive, links followed without loops, a file reached twice
    listed once, each directory must hold at least one audio file). Each name is read by its
    corpus's scheme (:func:`parse_corpus_name`): detected per file, or forced by ``corpus``. Files
    whose names no scheme accepts, files whose emotion has no RAVDESS label (EmoDB boredom),
    RAVDESS's sung files, and the copies of a recording in a worse format under the same data
    directory (see the module docstring) are skipped and counted in one ``UserWarning`` (each kind
    counted, with an example name), which also counts the names kept more than once in one format.

    Args:
        data_dirs (sequence of str | os.PathLike): directories (a single path is accepted too),
            e.g. a RAVDESS root holding ``Actor_01/`` ... ``Actor_24/``; directories of different
            corpora may be mixed, and one directory may hold several corpora.
        corpus (str | sequence of str | None): ``None`` or ``'auto'`` detects the corpus of each
            file; one name of :data:`CORPORA` reads every file by that scheme; a list with one name
            (or ``'auto'``) per directory reads each directory's files by its own (a file reached
            from two directories takes the first's).

    Returns:
        The clips, sorted by path.

    Raises:
        ParameterError: an empty list, a directory that does not exist or is not a directory, a
            directory without any audio file, a bad ``corpus``, or no usable named audio file at all.
    """
    dirs = _as_dirs(data_dirs)
    per_dir = _corpus_per_dir(corpus, len(dirs))
    try:
        found = find_files_with_origin(dirs, what="audio", argument="data directory")
    except NoMatchingFiles as exc:
        raise ParameterError(
            f"no valid {_expected(per_dir)} found under {str(exc.directory)!r}; "
            f"0 audio file(s) skipped for their names (the directory holds no audio file)"
        ) from None
    files = [p for p, _ in found]
    root_of = dict(found)  # the directory that reached each file first: its scheme, its recordings' group
    scheme_of = {p: per_dir[root_of[p]] for p in files}
    clips: List[Clip] = []
    unnamed: List[Path] = []
    unmapped: Dict[_Skip, List[Path]] = {}
    for p in files:
        parsed = _parse(p, scheme_of[p])
        if isinstance(parsed, Clip):
            clips.append(parsed)
        elif isinstance(parsed, _Skip):
            unmapped.setdefault(parsed, []).append(p)
        else:
            unnamed.append(p)
    clips, copies, repeated = _one_format_per_recording(clips, root_of)
    listing = ", ".join(repr(str(d)) for d in dirs)
    n_skipped = len(unnamed) + sum(map(len, unmapped.values())) + len(copies)
    if not clips:
        example = (unnamed or [p for ps in unmapped.values() for p in ps] or [None])[0]
        raise ParameterError(
            f"no valid {_expected(per_dir)} found under {listing}; "
            f"{n_skipped} audio file(s) skipped for their names"
            + (f", e.g. {example.name!r}" if example is not None else "")
            + (f" ({_describe_unmapped(unmapped)})" if unmapped else "")
        )
    parts = []
    if n_skipped:
        if unnamed:
            schemes = {scheme_of[p] for p in unnamed}
            if len(schemes) == 1 and None not in schemes:
                (only,) = schemes
                what = f"are not {CORPUS_TITLES[only]} names (expected {_PATTERNS[only]})"
            elif schemes == {None}:
                what = ("follow no known corpus's naming scheme (" + "; ".join(
                    f"{CORPUS_TITLES[c]} {_PATTERNS[c]}" for c in CORPORA) + ")")
            else:
                what = "are not named like their directory's corpus (--corpus) or any known corpus"
            parts.append(f"{len(unnamed)} whose names {what}, e.g. {unnamed[0].name!r}")
        if unmapped:
            parts.append(_describe_unmapped(unmapped))
        if copies:
            copy, kept = copies[0]
            parts.append(f"{len(copies)} file(s) holding a recording found in a better format under the same data "
                         f"directory (same corpus, speaker and name; kept: the first format of "
                         f"{', '.join(AUDIO_EXTENSIONS[:3])}, ...), e.g. {str(copy.path)!r} (kept {str(kept.path)!r})")
    if repeated:  # kept, but the user should know
        a, b = sorted(str(c.path) for c in repeated[0])[:2]
        parts.append(f"kept: {len(repeated)} recording name(s) found more than once in one format under one "
                     f"data directory (versions such as clean/ and noisy/, or a copied folder: each file is a "
                     f"clip, and --split random may put one recording's files in both sets), e.g. {a!r} and {b!r}")
    if parts:
        warnings.warn((f"skipped {n_skipped} audio file(s) under {listing}: " if n_skipped else
                       f"under {listing}: ") + "; ".join(parts), UserWarning, stacklevel=2)
    clips.sort(key=lambda c: str(c.path))
    return clips


def _describe_unmapped(unmapped: Dict[_Skip, List[Path]]) -> str:
    def why(s: _Skip) -> str:
        if (s.corpus, s.code) in _SKIPPED_OTHER:
            return _SKIPPED_OTHER[s.corpus, s.code]
        return (f"of {_SKIPPED_MEANING.get((s.corpus, s.code), s.code)!r} (code {s.code!r}), an emotion with no "
                f"RAVDESS label")

    return "; ".join(f"{len(paths)} {CORPUS_TITLES[s.corpus]} file(s) {why(s)}, e.g. {paths[0].name!r}"
                     for s, paths in sorted(unmapped.items()))


def _recording(clip: Clip):
    """What makes two files one recording: corpus speaker and name, in any case, as meant (SAVEE's and
    TESS's name without its speaker prefix, which ``clip.speaker`` holds as read: SAVEE's folder layout
    leaves the prefix out, TESS ships an ``OA_`` for ``OAF_``; CREMA-D's level ``X`` as ``XX``)."""
    stem = clip.path.stem.lower()
    if clip.corpus == "savee":
        stem = stem.split("_")[-1]
    elif clip.corpus == "tess":  # speaker_word_emotion
        stem = stem.split("_", 1)[1]
    elif clip.corpus == "crema-d":
        stem = _CREMA_X.sub("_xx", stem)
    return clip.speaker, stem


_SAME_FORMAT = {".aif": ".aiff", ".oga": ".ogg"}  # two spellings of one format


def _one_format_per_recording(clips: List[Clip], root_of: Dict[Path, int]):
    """``(kept, dropped, repeated)``: of the files of one recording (:func:`_recording`) under one data
    directory (``root_of``: its index) in several formats, those of the format that comes first in
    :data:`AUDIO_EXTENSIONS` are kept; ``dropped`` pairs each file of another format with a kept one.
    Files of the same format are all kept (versions of a recording, or copies: not read to tell);
    ``repeated`` lists each such group of two or more kept files."""
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}

    def fmt(clip: Clip) -> int:
        suffix = clip.path.suffix.lower()
        return rank.get(_SAME_FORMAT.get(suffix, suffix), len(rank))

    best: Dict[tuple, Clip] = {}  # (data directory, recording) -> its first file in the best format
    for clip in sorted(clips, key=lambda c: (fmt(c), str(c.path))):
        best.setdefault((root_of[clip.path], _recording(clip)), clip)
    kept, dropped = [], []
    groups: Dict[tuple, List[Clip]] = {}
    for clip in clips:
        key = (root_of[clip.path], _recording(clip))
        if fmt(clip) == fmt(best[key]):
            kept.append(clip)
            groups.setdefault(key, []).append(clip)
        else:
            dropped.append((clip, best[key]))
    return kept, dropped, [group for group in groups.values() if len(group) > 1]


# ----------------------------------------------------------------------------------------- the table

def sorted_corpora(names) -> List[str]:
    """The distinct corpus names in ``names``, in :data:`CORPORA` order (others after, alphabetically)."""
    return sorted(set(names), key=lambda c: (c not in CORPORA, CORPORA.index(c) if c in CORPORA else 0, c))


def corpus_table(clips: Sequence[Clip]) -> str:
    """Clips per corpus (rows) and emotion (columns) as a text table, with totals.

    A ``-`` marks an emotion the corpus does not record (:data:`LABEL_MAPS`); a corpus not in
    :data:`CORPORA` shows counts everywhere.
    """
    counts = Counter((getattr(c, "corpus", "ravdess"), int(c.label)) for c in clips)
    present = sorted_corpora(k[0] for k in counts)
    heads = [e[:9] for e in EMOTIONS]
    width = max([7] + [len(CORPUS_TITLES.get(c, c)) for c in present]) + 2
    lines = [f"{'corpus':<{width}}" + "".join(f"{h:>10}" for h in heads) + f"{'total':>10}"]
    for c in present:
        recorded = {e for e in LABEL_MAPS[c].values() if e is not None} if c in LABEL_MAPS else set(EMOTIONS)
        cells = [str(counts[(c, i)]) if (e in recorded or counts[(c, i)]) else "-" for i, e in enumerate(EMOTIONS)]
        total = sum(counts[(c, i)] for i in range(len(EMOTIONS)))
        lines.append(f"{CORPUS_TITLES.get(c, c):<{width}}" + "".join(f"{x:>10}" for x in cells) + f"{total:>10}")
    if len(present) > 1:
        totals = [sum(counts[(c, i)] for c in present) for i in range(len(EMOTIONS))]
        lines.append(f"{'total':<{width}}" + "".join(f"{x:>10}" for x in totals) + f"{sum(totals):>10}")
    return "\n".join(lines)
