"""Per-feature time of ser_gpu (batched) against librosa (clip by clip) on the same 3 s clips.

    python benchmarks/bench_features.py [--device cpu|cuda] [--batch 32] [--librosa-clips 8] [--tag b64]

librosa runs one clip at a time on one core (as the original system's DataLoader workers did);
ser_gpu runs the whole batch in one call with torch's threads (CPU) or on the GPU. Throughput is
"x realtime": seconds of audio processed per second of wall time. On CPU, "per core" divides by
the torch thread count. Results go to ``benchmarks/results/features[_<tag>]_<device>.json``.
``--librosa-clips 0`` skips librosa (e.g. a GPU machine without it): its columns are then null.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ser_gpu.functional as F  # noqa: E402
from benchmarks._common import librosa_rows, speech_like_clips, timeit, write_results  # noqa: E402

SR = 22050


def cases():
    """(name, ours(y, lengths), librosa(clip)) — each ours computes from the waveform batch."""
    try:
        import librosa
    except ImportError:  # only the librosa columns need it (see --librosa-clips 0)
        librosa = None

    def has(module):
        try:
            __import__(f"ser_gpu.functional.{module}")
            return True
        except ImportError:
            return False

    items = [
        ("stft", lambda y, L: F.spectrogram(y, lengths=L), lambda c: np.abs(librosa.stft(c))),
        ("mfcc", lambda y, L: F.mfcc(y, n_mfcc=13, lengths=L), lambda c: librosa.feature.mfcc(y=c, sr=SR, n_mfcc=13)),
        ("delta+delta2", lambda y, L: _deltas(y, L), lambda c: _librosa_deltas(librosa, c)),
        ("chroma_stft", lambda y, L: F.chroma_stft(y, lengths=L), lambda c: librosa.feature.chroma_stft(y=c, sr=SR)),
        ("spectral_contrast", lambda y, L: F.spectral_contrast(y, lengths=L),
         lambda c: librosa.feature.spectral_contrast(y=c, sr=SR)),
        ("zero_crossing_rate", lambda y, L: F.zero_crossing_rate(y, lengths=L),
         lambda c: librosa.feature.zero_crossing_rate(y=c)),
        ("rms", lambda y, L: F.rms(y, lengths=L), lambda c: librosa.feature.rms(y=c)),
        ("spectral_rolloff", lambda y, L: F.spectral_rolloff(y, lengths=L),
         lambda c: librosa.feature.spectral_rolloff(y=c, sr=SR)),
        ("spectral_centroid", lambda y, L: F.spectral_centroid(y, lengths=L),
         lambda c: librosa.feature.spectral_centroid(y=c, sr=SR)),
        ("trim", lambda y, L: F.trim(y, top_db=20, lengths=L), lambda c: librosa.effects.trim(c, top_db=20)),
    ]
    if has("hpss"):
        from ser_gpu.functional.hpss import harmonic

        items.append(("harmonic (HPSS)", lambda y, L: harmonic(y, lengths=L), lambda c: librosa.effects.harmonic(c)))
    if has("constantq"):
        from ser_gpu.functional import constantq as cq

        items += [
            ("cqt", lambda y, L: cq.cqt(y, sr=SR, tuning=0.0, lengths=L), lambda c: librosa.cqt(c, sr=SR, tuning=0.0)),
            ("chroma_cqt", lambda y, L: cq.chroma_cqt(y, sr=SR, lengths=L), lambda c: librosa.feature.chroma_cqt(y=c, sr=SR)),
            ("tonnetz", lambda y, L: cq.tonnetz(y, sr=SR, lengths=L), lambda c: librosa.feature.tonnetz(y=c, sr=SR)),
        ]
    from ser_gpu.transforms import FeatureExtractor

    tonnetz_ok = has("hpss") and has("constantq")
    extractors = {}

    def extractor(y, L):
        key = (y.device, y.dtype)
        if key not in extractors:
            extractors[key] = FeatureExtractor(tonnetz=tonnetz_ok).to(y.device)
        return extractors[key](y, L)

    items.append((f"FeatureExtractor ({68 if tonnetz_ok else 62} rows)", extractor,
                  lambda c: librosa_rows(c, tonnetz_ok)))
    return items


def _deltas(y, L):
    m, fl = F.mfcc(y, n_mfcc=13, lengths=L)
    return F.delta(m, frame_lengths=fl), F.delta(m, order=2, frame_lengths=fl)


def _librosa_deltas(librosa, c):
    m = librosa.feature.mfcc(y=c, sr=SR, n_mfcc=13)
    return librosa.feature.delta(m), librosa.feature.delta(m, order=2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="clips per ser_gpu batch (default 32 CPU, 256 CUDA)")
    p.add_argument("--seconds", type=float, default=3.0, help="clip length (default 3 s)")
    p.add_argument("--librosa-clips", type=int, default=8, help="clips timed through librosa (default 8)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--only", default=None, help="comma-separated case names to run")
    p.add_argument("--tag", default="", help="suffix of the results file (features_<tag>_<device>.json)")
    p.add_argument("--repeats", type=int, default=3, help="timed ser_gpu calls per case (best is kept)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    batch = args.batch or (256 if device.type == "cuda" else 32)
    dtype = getattr(torch, args.dtype)
    clips = speech_like_clips(batch, args.seconds, SR)
    y = torch.from_numpy(clips).to(device=device, dtype=dtype)
    lengths = torch.full((batch,), clips.shape[1], dtype=torch.int64, device=device)
    audio_seconds = batch * args.seconds
    n_lib = min(args.librosa_clips, batch)
    rows = []
    header = f"{'feature':34s} {'ser_gpu s/batch':>15s} {'x realtime':>12s} {'librosa ms/clip':>16s} {'x realtime':>11s} {'speed-up/core':>14s}"
    print(f"batch {batch} x {args.seconds:g} s ({audio_seconds:g} s of audio), {device}, {args.dtype}, "
          f"torch threads {torch.get_num_threads()}")
    print(header)
    wanted = None if args.only is None else set(args.only.split(","))
    for name, ours, ref in cases():
        if wanted is not None and name.split(" ")[0] not in wanted:
            continue
        with torch.no_grad():
            t_ours = timeit(lambda: ours(y, lengths), device=device, repeats=args.repeats)
        ours_rt = audio_seconds / t_ours
        row = {"feature": name, "ser_gpu_seconds_per_batch": t_ours, "ser_gpu_x_realtime": ours_rt}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            with torch.no_grad():
                ours(y, lengths)
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        if n_lib:
            clip64 = clips[:n_lib].astype(np.float32)
            t_lib = timeit(lambda: [ref(c) for c in clip64], device=torch.device("cpu"), repeats=1) / n_lib
            lib_rt = args.seconds / t_lib
            cores = torch.get_num_threads() if device.type == "cpu" else 1
            per_core = (ours_rt / cores) / lib_rt if device.type == "cpu" else ours_rt / lib_rt
        else:
            t_lib = lib_rt = per_core = None
        row.update({"librosa_ms_per_clip": None if t_lib is None else 1e3 * t_lib, "librosa_x_realtime": lib_rt,
                    "speedup_per_core" if device.type == "cpu" else "speedup_vs_one_librosa_core": per_core})
        rows.append(row)
        lib_cols = (f"{1e3 * t_lib:16.2f} {lib_rt:11.0f} {per_core:14.1f}" if t_lib is not None
                    else f"{'-':>16s} {'-':>11s} {'-':>14s}")
        print(f"{name:34s} {t_ours:15.4f} {ours_rt:12.0f} {lib_cols}")
    path = write_results("features" + (f"_{args.tag}" if args.tag else ""), device, {
        "batch": batch, "clip_seconds": args.seconds, "audio_seconds": audio_seconds, "dtype": args.dtype,
        "librosa_clips_timed": n_lib, "rows": rows,
        "notes": f"ser_gpu: best of {args.repeats} batched calls after a warm-up; librosa: one clip at a time on "
                 "one core (null: not timed)"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
