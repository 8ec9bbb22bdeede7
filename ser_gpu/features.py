"""``python -m ser_gpu.features``: the DESIGN.md feature rows of audio files, one ``.npy`` per file.

Each file is loaded as ``librosa.load(path, sr=22050)`` would, trimmed with ``top_db=20`` as the
original system did, and its rows are computed in batches on the chosen device. Each ``.npy`` holds
the raw (un-normalised) rows of one file, ``float32 [shape=(68, frames)]``, in DESIGN.md order
(:data:`ser_gpu.transforms.FEATURE_ROWS`). A ``summary.json`` beside them lists every file's shape,
frames and seconds, and the files that could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ._atomic import save_json, save_npy
from .errors import AudioLoadError, ParameterError
from .io import load
from .transforms.features import FEATURE_ROWS, FeatureConfig, FeatureExtractor

__all__ = ["AUDIO_EXTENSIONS", "find_audio", "extract_files", "main"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3", ".m4a")


def find_audio(paths: Sequence[str]) -> List[Path]:
    """Expand files and directories (searched recursively) into a sorted, de-duplicated file list."""
    found, seen = [], set()
    for p in map(Path, paths):
        items = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS) \
            if p.is_dir() else [p]
        for q in items:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                found.append(q)
    return found


def resolve_device(device: str) -> torch.device:
    """``'auto'`` -> CUDA when available, else CPU; ``'cuda'`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} was asked for but torch sees no CUDA device")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc


def _output_names(files: Sequence[Path]) -> List[str]:
    """``stem.npy``, with ``stem_2.npy``... where two inputs share a stem."""
    names, used = [], {}
    for f in files:
        n = used.get(f.stem, 0) + 1
        used[f.stem] = n
        names.append(f"{f.stem}.npy" if n == 1 else f"{f.stem}_{n}.npy")
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

    Returns the summary dict also written to ``out_dir/summary.json``: ``files`` (one entry per
    written file: ``path``, ``output``, ``shape``, ``frames``, ``seconds``), ``skipped_existing``,
    ``errors`` (``path``, ``error`` for each unreadable file) and the settings used.
    """
    if batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size}")
    files = find_audio(paths)
    if not files:
        raise ParameterError(f"no audio files found in {list(paths)} (extensions {AUDIO_EXTENSIONS})")
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = FeatureConfig(normalize=None, max_frames=None, tonnetz=tonnetz)
    extractor = FeatureExtractor(config).to(dev)
    names = _output_names(files)
    summary = {"sr": config.sr, "hop_length": config.hop_length, "trim_top_db": config.top_db,
               "rows": list(FEATURE_ROWS), "tonnetz": tonnetz, "device": str(dev),
               "files": [], "skipped_existing": [], "errors": []}
    todo = []
    for f, name in zip(files, names):
        if (out / name).exists() and not overwrite:
            summary["skipped_existing"].append(str(out / name))
        else:
            todo.append((f, name))
    bar = tqdm(total=len(todo), unit="file", disable=not progress or len(todo) < 2, desc="features")
    for start in range(0, len(todo), batch_size):
        chunk, waves = [], []
        for f, name in todo[start:start + batch_size]:
            try:
                y, _ = load(f, sr=config.sr)
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
        for i, (f, name) in enumerate(chunk):
            n = int(result.frame_lengths[i])
            rows = np.ascontiguousarray(feats[i, :, :n], dtype=np.float32)
            save_npy(out / name, rows)
            summary["files"].append({"path": str(f), "output": str(out / name), "shape": list(rows.shape),
                                     "frames": n, "seconds": round(len(waves[i]) / config.sr, 4)})
        bar.update(len(chunk))
    bar.close()
    save_json(out / "summary.json", summary)
    return summary


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = extract_files(args.paths, args.out, device=args.device, batch_size=args.batch_size,
                                overwrite=args.overwrite, tonnetz=not args.no_tonnetz,
                                progress=not args.quiet)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    # unreadable files are reported and skipped; fail only when none could be read
    return 1 if summary["errors"] and not summary["files"] and not summary["skipped_existing"] else 0


if __name__ == "__main__":
    sys.exit(main())
