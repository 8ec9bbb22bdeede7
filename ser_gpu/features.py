"""``python -m ser_gpu.features``: the 68 feature rows (docs/design.md) of audio files, one ``.npy`` per file.

Each file is loaded as ``librosa.load(path, sr=22050)`` would, trimmed with ``top_db=20`` as the
original system did, and its rows are computed in batches on the chosen device. Each ``.npy`` holds
the raw (un-normalised) rows of one file, ``float32 [shape=(68, frames)]``, in docs/design.md order
(:data:`ser_gpu.transforms.FEATURE_ROWS`). Outputs are named ``<stem>.npy``, or ``<stem>-<hash>.npy``
where two inputs share a stem, so no output is ever written for two inputs. A ``summary.json`` beside
them, merged across runs, lists every output with its input, shape, frames and seconds, and the files
that could not be read; it is rewritten every 30 s during a run (before the next batch), and a run
that is stopped (Ctrl+C, an error, SIGTERM when the process gets time to unwind) still writes it for
what it wrote. An existing output is kept only where the summary attributes it to the same input: a
file it does not list (a run killed outright, someone else's) is neither kept nor replaced, and the
input gets a hashed name. Files are decoded by :func:`ser_gpu.media.load_media` (libsndfile, else
ffmpeg).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ._atomic import save_json, save_npy
from ._cli import AUDIO_EXTENSIONS, check_output_dir, find_files, option_error, resolve_device, run_main
from ._validation import check_positive_int
from .errors import AudioLoadError, ParameterError
from .transforms.features import FEATURE_ROWS, FeatureConfig, FeatureExtractor

__all__ = ["AUDIO_EXTENSIONS", "find_audio", "extract_files", "main"]

SUMMARY_FORMAT = "ser_gpu.features.summary"
#: seconds between the summary's rewrites during a run (it is always written at the end)
SUMMARY_INTERVAL_S = 30.0
# the settings an output depends on: a summary written with other values describes other rows
_SETTING_KEYS = ("sr", "hop_length", "trim_top_db", "rows", "tonnetz")


def find_audio(paths: Sequence[str]) -> List[Path]:
    """Files as given, directories searched recursively for audio (:func:`ser_gpu._cli.find_files`)."""
    return find_files(paths, extensions=AUDIO_EXTENSIONS, what="audio")


def _source_key(path: Path) -> str:
    """An input's identity across runs: its absolute path with links resolved."""
    return os.path.realpath(path)


def _read_summary(out: Path) -> Optional[dict]:
    """The ser_gpu summary already in ``out``, None if there is none; a foreign file is refused."""
    path = out / "summary.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{path} exists but is not a summary written by ser_gpu.features ({exc}); it is "
                             f"left alone: choose another --out or move it away") from None
    ours = isinstance(data, dict) and (data.get("format") == SUMMARY_FORMAT or (
        "format" not in data and {"rows", "files", "errors", "sr"} <= set(data)))  # written before "format"
    if not ours or not isinstance(data.get("files"), list):
        raise ParameterError(f"{path} exists but is not a summary written by ser_gpu.features; it is left "
                             f"alone: choose another --out or move it away")
    return data


def _output_names(files: Sequence[Path], previous: Optional[dict], out: Path) -> List[str]:
    """One distinct output name per input, stable across runs.

    ``<stem>.npy`` when no other input of this run shares the stem (compared case-insensitively)
    and that name is free: no earlier run wrote it for another input, and no file of that name
    exists in ``out`` unless ``summary.json`` attributes it to this input (an unlisted file, left by
    a run that was killed before it wrote its summary or put there by someone else, is never taken
    for this input's, nor replaced); otherwise ``<stem>-<8 hex digits>.npy``, the digits a hash of
    the input's absolute path. An input an earlier run (``summary.json``) already wrote keeps the
    name it got then.
    """
    recorded_by_source, source_of = {}, {}
    for item in (previous or {}).get("files", []):
        if isinstance(item, dict) and "output" in item:
            name = Path(str(item["output"])).name
            src = item.get("source") or _source_key(Path(str(item.get("path", ""))))
            recorded_by_source.setdefault(src, name)
            source_of[name] = src
    keys = [_source_key(f) for f in files]
    stems: dict = {}
    for f in files:
        stems[f.stem.lower()] = stems.get(f.stem.lower(), 0) + 1
    def free(name: str, key: str) -> bool:
        if name.lower() in taken:
            return False
        if name in source_of:
            return source_of[name] == key
        return not (out / name).exists()  # a file no summary lists is nobody's to keep or replace

    names, taken = [], {}
    for f, key in zip(files, keys):
        name = recorded_by_source.get(key)
        if name is None or taken.get(name.lower(), key) != key:
            name = f"{f.stem}.npy"
            if stems[f.stem.lower()] > 1 or not free(name, key):
                digest = hashlib.sha1(os.fsencode(key)).hexdigest()  # any name's bytes
                n = 8
                name = f"{f.stem}-{digest[:n]}.npy"
                while not free(name, key):  # astronomically rare
                    n += 4
                    name = f"{f.stem}-{digest[:n]}.npy"
        taken[name.lower()] = key
        names.append(name)
    return names


def extract_files(
    paths: Sequence[str],
    out_dir: str,
    *,
    device: str = "auto",
    batch_size: int = 16,
    overwrite: bool = False,
    tonnetz: bool = True,
    progress: bool = True,
) -> dict:
    """Compute the feature rows of every audio file under ``paths`` and write them to ``out_dir``.

    Outputs are named ``<stem>.npy``, or ``<stem>-<hash>.npy`` where that name would be shared by
    two inputs (see :func:`_output_names`), so distinct inputs never share an output. An output
    that an earlier run wrote for the same input (its summary says so) is kept
    (``skipped_existing``) unless ``overwrite``; a file the summary does not list is never kept nor
    replaced. The summary is rewritten every :data:`SUMMARY_INTERVAL_S` seconds, and when the run is
    stopped (an error, Ctrl+C; SIGTERM under :func:`main`) it is still written for the outputs
    written so far.

    ``out_dir/summary.json`` is merged, not replaced: it lists every output an earlier run wrote
    there with its input (``path`` as given, ``source`` its absolute path), plus this run's. A
    ``summary.json`` that ser_gpu did not write is never touched (ParameterError, before any work),
    nor is one written with other settings (``tonnetz``, rows, rates) unless ``overwrite``, which
    then starts a new summary.

    Returns:
        This run's summary: ``files`` (one entry per file written now: ``path``, ``source``,
        ``output``, ``shape``, ``frames``, ``seconds``), ``skipped_existing``, ``errors`` (``path``,
        ``error`` for each unreadable file) and the settings used.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    files = find_audio(paths)
    dev = resolve_device(device)
    out = check_output_dir(out_dir, argument="out")  # before any work
    config = FeatureConfig(normalize=None, max_frames=None, tonnetz=tonnetz)
    settings = {"format": SUMMARY_FORMAT, "sr": config.sr, "hop_length": config.hop_length,
                "trim_top_db": config.top_db, "rows": list(FEATURE_ROWS), "tonnetz": tonnetz}
    previous = _read_summary(out)
    if previous is not None:
        differ = [k for k in _SETTING_KEYS if k in previous and previous[k] != settings[k]]
        if differ and not overwrite:
            detail = ", ".join(f"{k}={previous[k]!r} (now {settings[k]!r})" for k in differ if k != "rows")
            raise ParameterError(f"{out / 'summary.json'} describes features computed with other settings "
                                 f"({detail or 'other rows'}); use another --out, or --overwrite to recompute "
                                 f"and start a new summary")
        if differ:
            previous = {"files": previous.get("files", [])}  # names kept, entries replaced below
            carried = []
        else:
            carried = [f for f in previous.get("files", []) if isinstance(f, dict) and "output" in f]
    else:
        carried = []
    out.mkdir(parents=True, exist_ok=True)
    extractor = FeatureExtractor(config).to(dev)
    names = _output_names(files, previous, out)
    summary = dict(settings, device=str(dev), files=[], skipped_existing=[], errors=[])
    todo = []
    for f, name in zip(files, names):
        if (out / name).exists() and not overwrite:
            summary["skipped_existing"].append(str(out / name))
        else:
            todo.append((f, name))
    bar = tqdm(total=len(todo), unit="file", disable=not progress or len(todo) < 2, desc="features")
    def save_summary():
        save_json(out / "summary.json", _merged(summary, carried, previous))

    try:
        with _sigterm_unwinds():
            _extract(todo, extractor, dev, out, config, batch_size, summary, bar, save_summary)
    finally:  # also when stopped (Ctrl+C, an error, SIGTERM via main): the summary lists what was written
        bar.close()
        save_summary()
    return summary


def _extract(todo, extractor, dev, out: Path, config, batch_size: int, summary: dict, bar, save_summary) -> None:
    """Load, compute and write ``todo``'s ``(file, name)`` pairs batch by batch; record each output in
    ``summary`` once it is written, and each unreadable file; ``save_summary()`` before a batch once
    :data:`SUMMARY_INTERVAL_S` have passed since the last time (a run killed outright loses the record
    of about that much work plus one batch; the summary is not rewritten after every batch: at 20k
    entries one write takes ~0.4 s)."""
    from .media import load_media

    last_saved = time.monotonic()
    for start in range(0, len(todo), batch_size):
        if time.monotonic() - last_saved >= SUMMARY_INTERVAL_S:
            save_summary()
            last_saved = time.monotonic()
        chunk, waves = [], []
        for f, name in todo[start:start + batch_size]:
            try:
                y, _ = load_media(f, sr=config.sr)
            except AudioLoadError as exc:
                summary["errors"].append({"path": str(f), "error": exc.reason})
                bar.update(1)
                continue
            chunk.append((f, name))
            waves.append(y)
        if not chunk:
            continue
        lengths = torch.tensor([len(w) for w in waves])
        batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        with torch.no_grad():
            result = extractor(batch.to(dev), lengths.to(dev))
        feats = result.features.cpu().numpy()
        frames = result.frame_lengths.tolist()
        for i, (f, name) in enumerate(chunk):
            rows = np.ascontiguousarray(feats[i, :, : frames[i]], dtype=np.float32)
            save_npy(out / name, rows)
            summary["files"].append({"path": str(f), "source": _source_key(f), "output": str(out / name),
                                     "shape": list(rows.shape), "frames": frames[i],
                                     "seconds": round(len(waves[i]) / config.sr, 4)})
        bar.update(len(chunk))


def _merged(summary: dict, carried: list, previous: Optional[dict]) -> dict:
    """This run's summary over the earlier one: entries by output name, the newest winning."""
    by_output = {Path(str(f["output"])).name: f for f in carried}
    by_output.update({Path(f["output"]).name: f for f in summary["files"]})
    written = {f["path"] for f in summary["files"]} | {f.get("source") for f in summary["files"]}
    errors = {e["path"]: e for e in (previous or {}).get("errors", []) if isinstance(e, dict) and "path" in e
              and e["path"] not in written}
    errors.update({e["path"]: e for e in summary["errors"]})
    merged = {k: v for k, v in summary.items() if k not in ("files", "skipped_existing", "errors")}
    merged["files"] = sorted(by_output.values(), key=lambda f: str(f["output"]))
    merged["errors"] = list(errors.values())
    merged["skipped_existing"] = summary["skipped_existing"]  # this run's
    return merged


def _print_table(summary: dict) -> None:
    for item in summary["files"]:
        print(f"{item['output']}  shape={tuple(item['shape'])}  frames={item['frames']}  seconds={item['seconds']}")
    for path in summary["skipped_existing"]:
        print(f"kept existing {path} (use --overwrite to recompute)")
    for err in summary["errors"]:
        print(f"skipped {err['path']}: {err['error']}", file=sys.stderr)
    print(f"{len(summary['files'])} written, {len(summary['skipped_existing'])} kept, "
          f"{len(summary['errors'])} unreadable")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ser_gpu.features", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (searched recursively)")
    p.add_argument("--out", default="features_out", help="output directory (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=16, help="files per batch (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    p.add_argument("--no-tonnetz", action="store_true", help="skip rows 58-63 (HPSS + constant-Q; slowest part)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _Terminated(BaseException):
    """SIGTERM arrived during the extraction: unwind it (so extract_files writes its summary)."""


# main's SIGTERM handler: 'armed' while the extraction runs (a SIGTERM then unwinds it); at any other time (the
# summary's write, the report) a SIGTERM is only recorded, and main lets the process die of it afterwards
_SIGTERM = {"armed": False, "received": False}


def _on_sigterm(signum, frame):
    _SIGTERM["received"] = True
    if _SIGTERM["armed"]:
        _SIGTERM["armed"] = False  # one unwinding: a second SIGTERM is only recorded
        raise _Terminated


@contextlib.contextmanager
def _sigterm_unwinds():
    """Within the block, a SIGTERM caught by :func:`main`'s handler raises :class:`_Terminated`
    (nothing happens without the handler: library callers keep their own SIGTERM handling)."""
    _SIGTERM["armed"] = True
    try:
        yield
    finally:
        _SIGTERM["armed"] = False


def _handles_sigterm() -> bool:
    """Install :func:`_on_sigterm` where nothing else chose how SIGTERM is handled: the main thread,
    with the default action (not an inherited ``SIG_IGN``, nor a handler of the embedding program)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    _SIGTERM.update(armed=False, received=False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # kill, timeout, a batch scheduler's limit: the default action ends the process without unwinding, so
    # the summary would not be written; with the handler the run unwinds, writes it, and the process then
    # dies of the signal as it would have
    handled = _handles_sigterm()
    try:
        return _run(args, parser)
    except _Terminated:
        pass
    finally:
        if handled:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # runs a pending handler first: read the flag after
            if _SIGTERM["received"]:
                os.kill(os.getpid(), signal.SIGTERM)
    return 128 + signal.SIGTERM  # not reached: the signal ended the process


def _out_hint(args, parser, error: ParameterError) -> str:
    """A hint for ``features IN OUT`` (``video`` takes its output directory so): the error is that the last
    of several paths does not exist, the others do, and ``--out`` was not given."""
    *inputs, last = args.paths
    if not inputs or args.out != parser.get_default("out") or os.path.lexists(last) \
            or f"{str(Path(last))!r} does not exist" not in str(error):  # as the finder writes it: no trailing /
        return ""
    if not all(os.path.lexists(p) for p in inputs):
        return ""
    return f"; to write the rows to {last!r}, give it as the output directory: --out {shlex.quote(last)}"


def _run(args, parser) -> int:
    try:
        summary = extract_files(args.paths, args.out, device=args.device, batch_size=args.batch_size,
                                overwrite=args.overwrite, tonnetz=not args.no_tonnetz,
                                progress=not args.quiet)
    except ParameterError as exc:
        print(f"error: {option_error(exc, parser)}{_out_hint(args, parser, exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    # unreadable files are reported and skipped; fail only when none could be read
    return 1 if summary["errors"] and not summary["files"] and not summary["skipped_existing"] else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
