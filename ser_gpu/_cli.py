"""What the command-line tools share: device choice, the file extensions, and one file finder.

* :func:`resolve_device` turns ``--device`` (``auto``/``cpu``/``cuda[:N]``) into a ``torch.device``.
* :data:`AUDIO_EXTENSIONS` and :data:`VIDEO_EXTENSIONS` are the suffixes the tools look for;
  every one of them is decoded by :func:`ser_gpu.media.load_media` (libsndfile, else ffmpeg), the
  one decoder behind ``train``, ``evaluate``, ``features`` and ``predict``.
* :func:`find_files` is the one rule by which every tool turns its path arguments into files:

  - a path that names a file is taken as given, whatever its extension (the decoder judges it);
  - a directory is searched recursively (``recursive=False``: its top level only), following
    symbolic links to directories but never entering one directory twice, so a link loop ends the
    walk instead of a traceback; a dangling or looping link is not a file and is passed over;
  - of a directory's files those that satisfy the predicate (by default: an extension of the
    given list, any case) are listed, sorted by path;
  - a directory without any such file is an error naming the directory
    (:class:`NoMatchingFiles`, a :class:`~ser_gpu.errors.ParameterError`), as is a path that does
    not exist;
  - a file reached twice (overlapping arguments, links) is listed once, at its first place
    (:func:`find_files_with_origin` also gives the argument that reached it).

* :func:`check_output_file` and :func:`check_output_dir` check an output path before the work
  starts, so a bad ``--plot``/``--out`` never costs a finished evaluation or prediction.
* :func:`run_main` runs a command's ``main`` as its process: any file name can be printed, and the
  command's own warnings print as ``warning: message`` lines; :func:`readable` writes such a name where
  only text can go (plots, the app, tags).
"""

from __future__ import annotations

import codecs
import functools
import io
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import ParameterError

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "CACHE_DIR_HELP", "NoMatchingFiles", "resolve_device",
           "has_extension", "is_audio", "is_video", "is_media", "find_files", "find_files_with_origin",
           "check_output_file", "check_output_dir", "missing_dirs", "remove_empty_dirs", "readable", "run_main",
           "option_error", "option_flags", "with_flags", "setting_flags", "listed_differences"]

PathLike = Union[str, "os.PathLike[str]"]

#: Audio suffixes every tool accepts: libsndfile's formats first, then those ffmpeg decodes.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3", ".m4a",
                    ".aac", ".wma", ".opus", ".weba", ".mka", ".caf", ".au", ".amr", ".ac3", ".mp2", ".aifc")
#: Video containers whose first audio track ``predict`` (and ``ser_gpu.video``) reads through ffmpeg.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")

#: ``--cache-dir``'s help in every command that loads a corpus (train, crossval, evaluate): the default is
#: :func:`ser_gpu.data.cache.default_cache_dir`'s.
CACHE_DIR_HELP = ("waveform cache (default: $SER_GPU_CACHE/waveforms, else $XDG_CACHE_HOME/ser_gpu/waveforms "
                  "or ~/.cache/ser_gpu/waveforms)")


def readable(text: str) -> str:
    """``text`` with the bytes of a file name that are not valid UTF-8 written as ``\\xNN``.

    Python holds such a name (Linux allows any bytes but ``/`` and NUL) with surrogate escapes
    (``os.fsdecode(b"caf\\xe9.wav") == "caf\\udce9.wav"``), which text outside the file system cannot
    carry (a plot title, a web page, a wav tag): ``readable`` gives ``"caf\\xe9.wav"``. Any other lone
    surrogate is backslash-escaped too (``\\ud800``); all other text is returned unchanged.
    """
    return text.encode("utf-8", "ser_gpu.name_bytes").decode("utf-8", "backslashreplace")


def _name_bytes(exc: UnicodeError):
    """Encoding error handler ``ser_gpu.name_bytes`` (for UTF-8): a surrogate escape is written as the
    byte of the file name it stands for (as ``surrogateescape``), any other character the encoding
    lacks as a backslash escape (as ``backslashreplace``). One run of either kind per call."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text, start, end = exc.object, exc.start, exc.end

    def escape(ch: str) -> bool:
        return 0xDC80 <= ord(ch) <= 0xDCFF

    stop = start
    if escape(text[start]):
        while stop < end and escape(text[stop]):
            stop += 1
        return bytes(ord(ch) - 0xDC00 for ch in text[start:stop]), stop
    while stop < end and not escape(text[stop]):
        stop += 1
    return codecs.backslashreplace_errors(UnicodeEncodeError(exc.encoding, text, start, stop, exc.reason))


codecs.register_error("ser_gpu.name_bytes", _name_bytes)


def run_main(main: Callable[[], int]) -> int:
    """``main()``'s exit status, run as a command's process (``python -m ser_gpu.COMMAND``).

    A file name whose bytes are not valid UTF-8 (Python holds it with surrogate escapes) cannot be
    encoded by a standard output whose error handler is ``strict`` (a UTF-8 locale such as
    ``en_US.UTF-8``): a report listing such a file raised ``UnicodeEncodeError`` after the work was
    done. A strict UTF-8 standard output writes those names as their own bytes instead (what
    ``surrogateescape`` does, and Python's default in the C locale: a script reading the output gets the
    real name); a strict one in another encoding writes a backslash escape for what it cannot encode
    (``backslashreplace``). A non-strict handler (``surrogateescape``, ``backslashreplace``, ...) is
    left as it is. Standard error, where the commands' warnings and errors go, escapes such a name as
    Python's ``backslashreplace`` does (``caf\\udce9.wav``).
    """
    out = sys.stdout
    try:
        if isinstance(out, io.TextIOWrapper) and not out.closed and out.errors == "strict":
            utf8 = codecs.lookup(out.encoding).name in ("utf-8", "utf-8-sig")
            out.reconfigure(errors="ser_gpu.name_bytes" if utf8 else "backslashreplace")
    except (ValueError, LookupError, OSError):  # detached, an unknown encoding, a failed flush: as it is
        pass
    shown = warnings.showwarning
    warnings.showwarning = functools.partial(_show_warning, shown)
    try:
        return main()
    finally:
        warnings.showwarning = shown


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _show_warning(default, message, category, filename, lineno, file=None, line=None):
    """A command's own warnings (UserWarning/RuntimeWarning attributed to a line of ser_gpu's code) as
    ``warning: message`` lines on stderr, as its errors are ``error: message``, without Python's file, line and
    source line; other warnings in Python's format (``default``). A warning torch or numpy raise from compiled
    code is attributed to the Python line that called them: where that line is ser_gpu's, it prints as ours."""
    if issubclass(category, (UserWarning, RuntimeWarning)) and os.path.abspath(filename).startswith(_PACKAGE_DIR):
        stream = sys.stderr if file is None else file
        try:
            stream.write(f"warning: {message}\n")
        except (OSError, ValueError):  # a closed or broken stderr: nowhere to say it, as Python's own
            pass
        return
    default(message, category, filename, lineno, file, line)


def option_flags(parser) -> Dict[str, str]:
    """Each of ``parser``'s options by its Python name, with its flag (the first long one):
    ``{"batch_size": "--batch-size", "prefetch": "--no-prefetch", ...}``."""
    return {action.dest: next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            for action in parser._actions if action.option_strings}


def with_flags(names: Iterable[str], flags: Dict[str, str]) -> List[str]:
    """``names`` (settings' Python names) each followed by the flag that sets it, where ``flags``
    (:func:`option_flags`) has one: ``["lr (--lr)", "lr_factor"]``; the library's messages then serve
    both a Python caller and a command-line user."""
    return [f"{n} ({flags[n]})" if n in flags else n for n in names]


def setting_flags(parser) -> Dict[str, str]:
    """:func:`option_flags` of a training command's ``parser``, with ``train_model``'s ``progress`` named by
    the ``--quiet`` that turns it off."""
    return {**option_flags(parser), "progress": "--quiet"}


def listed_differences(names: Sequence[str], stored: Callable, given: Callable, flags: Dict[str, str]) -> str:
    """``lr (--lr): the run has 0.001, given 0.5; ...``: each setting of ``names`` with its flag
    (:func:`with_flags`), the stored run's value (``stored(name)``) and the one given (``given(name)``)."""
    return "; ".join(f"{label}: the run has {stored(k)!r}, given {given(k)!r}"
                     for k, label in zip(names, with_flags(names, flags)))


def option_error(exc: BaseException, parser) -> str:
    """``exc``'s message as a command prints it after ``error: ``: where it opens with the Python name of one of
    ``parser``'s options (``batch_size must be a positive integer, got 0``, from the library the command calls),
    that option's flag first (``--batch-size: batch_size must ...``), so the user sees what to change."""
    message = str(exc)
    found = re.match(r"[A-Za-z_]\w*", message)
    if found:
        word = found.group(0)
        flag = option_flags(parser).get(word)
        if flag and message[len(word):len(word) + 1] in (" ", "="):
            return f"{flag}: {message}"
    return message


class NoMatchingFiles(ParameterError):
    """A directory argument holds no file that the finder's predicate accepts (``.directory`` names it)."""

    def __init__(self, message: str, directory: Path):
        super().__init__(message)
        self.directory = directory


def resolve_device(device: str):
    """``'auto'`` -> CUDA when available, else CPU; ``'cuda'`` without a GPU is an error.

    Raises:
        ParameterError: an unknown device name, or CUDA asked for where torch sees none.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} was asked for but torch sees no CUDA device")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc
    # torch names more devices (xpu, mps, meta, ...) than the tools run on: they failed later, mid-work
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParameterError(f"device {device!r} was asked for but torch sees {torch.cuda.device_count()} CUDA "
                             f"device(s)")
    return dev


def has_extension(path: PathLike, extensions: Iterable[str]) -> bool:
    """True when ``path``'s suffix is one of ``extensions`` (compared in lower case)."""
    return Path(os.fspath(path)).suffix.lower() in tuple(extensions)


def is_audio(path: PathLike) -> bool:
    """True for an :data:`AUDIO_EXTENSIONS` suffix (any case)."""
    return has_extension(path, AUDIO_EXTENSIONS)


def is_video(path: PathLike) -> bool:
    """True for a :data:`VIDEO_EXTENSIONS` suffix (any case)."""
    return has_extension(path, VIDEO_EXTENSIONS)


def is_media(path: PathLike) -> bool:
    """True for an audio or video suffix (any case)."""
    return is_audio(path) or is_video(path)


def _identity(path: str):
    """``(device, inode)`` of what ``path`` points to, or None for a dangling or looping link."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino, stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)


def _walk(root: Path, recursive: bool) -> List[Path]:
    """Regular files under ``root`` (following directory links, each directory once), sorted by path."""
    files, visited, stack = [], set(), [str(root)]
    while stack:
        d = stack.pop()
        ident = _identity(d)
        if ident is None or (ident[0], ident[1]) in visited:
            continue
        visited.add((ident[0], ident[1]))
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue  # unreadable directory: nothing of it can be listed
        for entry in entries:
            info = _identity(entry.path)
            if info is None:
                continue  # dangling link or a link loop
            if info[2]:
                if recursive:
                    stack.append(entry.path)
            elif info[3]:
                files.append(Path(entry.path))
    return sorted(files)


def find_files(
    paths: Union[PathLike, Sequence[PathLike]],
    *,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    predicate: Optional[Callable[[Path], bool]] = None,
    recursive: bool = True,
    what: str = "audio",
    argument: str = "input",
) -> List[Path]:
    """Files named by ``paths``, directories expanded by the rule in this module's docstring.

    Args:
        paths: one path or a sequence of files and directories.
        extensions: suffixes a directory's files must have (any case), when no ``predicate`` is given.
        predicate: ``f(path) -> bool`` choosing a directory's files (replaces ``extensions``).
        recursive: search directories recursively (default) or only their top level.
        what: the kind of file, for messages (``"audio"``, ``"video"``, ``"audio or video"``).
        argument: the argument's name, for messages.

    Returns:
        The files in argument order, each directory's files sorted by path, duplicates dropped.

    Raises:
        ParameterError: no path, a path that does not exist; :class:`NoMatchingFiles` for a
            directory without a matching file.
    """
    return [path for path, _ in find_files_with_origin(paths, extensions=extensions, predicate=predicate,
                                                         recursive=recursive, what=what, argument=argument)]


def find_files_with_origin(
    paths: Union[PathLike, Sequence[PathLike]],
    *,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    predicate: Optional[Callable[[Path], bool]] = None,
    recursive: bool = True,
    what: str = "audio",
    argument: str = "input",
) -> List[Tuple[Path, int]]:
    """:func:`find_files`'s files, each with the index in ``paths`` of the argument that reached it
    first (the one walk; arguments and errors as :func:`find_files`)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ParameterError(f"{argument} must name at least one file or directory, got []")
    accept = predicate if predicate is not None else (lambda p: has_extension(p, extensions))
    found: List[Tuple[Path, int]] = []
    seen = set()
    for origin, given in enumerate(paths):
        if os.fspath(given) == "":  # Path("") is ".": an empty argument (an unset shell variable) is not cwd
            raise ParameterError(f"{argument} must be a file or directory path, got an empty string ''")
        p = Path(os.fspath(given))
        ident = _identity(str(p))
        if ident is None:
            if os.path.lexists(p):
                raise ParameterError(f"{argument} {str(p)!r} is a dangling or looping symbolic link")
            raise ParameterError(f"{argument} {str(p)!r} does not exist")
        if ident[2]:
            items = [q for q in _walk(p, recursive) if accept(q)]
            if not items:
                rule = "searched recursively" if recursive else "looked at its top level only"
                kinds = "" if predicate is not None else f"; extensions {', '.join(extensions)}"
                raise NoMatchingFiles(f"no {what} files found: directory {str(p)!r} holds no {what} files "
                                      f"({rule}{kinds})", p)
        else:
            items = [p]
        for q in items:
            key = _identity(str(q))
            key = (key[0], key[1]) if key is not None else str(q)
            if key not in seen:
                seen.add(key)
                found.append((q, origin))
    return found


def _probe_write(directory: Path, argument: str, target: Path) -> None:
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ser_gpu_probe.", suffix=".tmp")
    except OSError as exc:
        raise ParameterError(f"{argument} {str(target)!r} cannot be written: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: PathLike, *, argument: str = "output", overwrite: bool = True,
                      suffix: Optional[str] = None) -> Path:
    """Check, before any work, that a file can be written at ``path`` (its directory exists and is
    writable; ``path`` is not a directory). Nothing is left behind.

    ``overwrite=False``: an existing file at ``path`` is refused too (the command's ``--overwrite``
    replaces it). ``suffix`` (e.g. ``".png"``, any case): the name must end so, which keeps a
    misplaced argument from writing over an input of another kind (a recording, a checkpoint).

    Raises:
        ParameterError: naming ``argument`` and the path.
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        raise ParameterError(f"{argument} {str(p)!r} is a directory; give a file name")
    if suffix is not None and p.suffix.lower() != suffix.lower():
        raise ParameterError(f"{argument} {str(p)!r} must name a {suffix} file (it is written as one)")
    if not overwrite and os.path.lexists(p):
        raise ParameterError(f"{argument} {str(p)!r} exists already: pass --overwrite to replace it, or choose "
                             f"another name")
    parent = p.parent
    if not parent.is_dir():
        raise ParameterError(f"{argument} {str(p)!r} cannot be written: the directory {str(parent)!r} "
                             f"does not exist")
    _probe_write(parent, argument, p)
    return p


def refuse_held(out: Path, held: Sequence[str], *, what: str, remedy: str) -> None:
    """Refuse an output directory that already holds an earlier run's files, before any work.

    Raises:
        ParameterError: when ``held`` (names found in ``out``) is not empty: "out directory 'OUT'
            already holds WHAT (NAMES); REMEDY" (at most four names shown).
    """
    if held:
        names = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ParameterError(f"out directory {str(out)!r} already holds {what} ({names}); {remedy}")


def check_output_dir(path: PathLike, *, argument: str = "out") -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a writable directory.

    Directories created for the check are removed again, so a call that fails later leaves nothing.

    Raises:
        ParameterError: naming ``argument`` and the path.
    """
    p = Path(os.fspath(path))
    if p.exists() and not p.is_dir():
        raise ParameterError(f"{argument} must be a directory, got the file {str(p)!r}")
    created = missing_dirs(p)
    try:
        p.mkdir(parents=True, exist_ok=True)
        _probe_write(p, argument, p)
    except OSError as exc:
        raise ParameterError(f"{argument} {str(p)!r} cannot be created: {exc.strerror or exc}") from None
    finally:
        remove_empty_dirs(created)
    return p


def missing_dirs(path: PathLike) -> List[Path]:
    """The directories ``Path(path).mkdir(parents=True)`` would create, deepest first (a ``..`` component
    is not one: ``q/../z`` creates ``q`` and ``z``)."""
    missing, q = [], Path(os.fspath(path))
    while not q.exists() and q != q.parent:
        if q.name not in ("", ".", ".."):
            missing.append(q)
        q = q.parent
    return missing


def remove_empty_dirs(dirs: Sequence[Path]) -> None:
    """Remove ``dirs`` (deepest first, as :func:`missing_dirs` lists them) while they are empty: what a
    command created and then wrote nothing into. Stops at the first that holds anything (or cannot go)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break
