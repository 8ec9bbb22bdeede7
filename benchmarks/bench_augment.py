"""Waveform augmentation: ser_gpu's batched chain against audiomentations, clip by clip, on the same audio.

    python benchmarks/bench_augment.py [--device cpu|cuda] [--batch 32] [--ref-clips 8] [--threads 1] [--tag NAME]

Both apply the same four effects with p=1 and the original system's ranges: Gaussian noise
(amplitude U[0.001, 0.015]), time stretch (rate U[0.9, 1.1], length changes), pitch shift
(U[-2, 2] semitones) and shift (U[-0.2, 0.2] s, rollover). audiomentations runs one clip at a time
in this process (one core), twice: with its default stretch/pitch engine (signalsmith-stretch) and
with ``method='librosa_phase_vocoder'`` (the algorithm ser_gpu batches). ser_gpu runs the whole
batch in one :class:`~ser_gpu.transforms.WaveformAugment` call (and each effect alone), with
``--threads`` torch threads on CPU or on the GPU. Throughput is "x realtime" (seconds of audio per
second of wall time); "per core" divides CPU figures by the thread count. Results go to
``benchmarks/results/augment[_<tag>]_<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import speech_like_clips, timeit, write_results  # noqa: E402
from ser_gpu.transforms import WaveformAugment  # noqa: E402

SR = 22050
RANGES = dict(noise_amplitude=(0.001, 0.015), stretch_rate=(0.9, 1.1), pitch_semitones=(-2.0, 2.0),
              shift_seconds=(-0.2, 0.2))
ALL_OFF = dict(p_noise=0.0, p_stretch=0.0, p_pitch=0.0, p_shift=0.0)
CASES = {  # name -> probabilities (the rest 0)
    "noise": dict(p_noise=1.0),
    "time_stretch": dict(p_stretch=1.0),
    "pitch_shift": dict(p_pitch=1.0),
    "shift": dict(p_shift=1.0),
    "chain (all four, p=1)": dict(p_noise=1.0, p_stretch=1.0, p_pitch=1.0, p_shift=1.0),
}


def audiomentations_chain(method: str):
    from audiomentations import AddGaussianNoise, Compose, PitchShift, Shift, TimeStretch

    return Compose([
        AddGaussianNoise(min_amplitude=0.001, max_amplitude=0.015, p=1.0),
        TimeStretch(min_rate=0.9, max_rate=1.1, leave_length_unchanged=False, method=method, p=1.0),
        PitchShift(min_semitones=-2.0, max_semitones=2.0, method=method, p=1.0),
        Shift(min_shift=-0.2, max_shift=0.2, shift_unit="seconds", rollover=True, p=1.0),
    ])


def time_reference(clips: np.ndarray, method: str) -> float:
    """Best of 2 passes over ``clips``, seconds per clip (one warm-up clip first)."""
    chain = audiomentations_chain(method)
    chain(samples=clips[0], sample_rate=SR)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for c in clips:
            chain(samples=c, sample_rate=SR)
        best = min(best, time.perf_counter() - start)
    return best / len(clips)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="clips per ser_gpu batch (default 32 CPU, 256 CUDA)")
    p.add_argument("--seconds", type=float, default=3.0, help="clip length (default 3 s)")
    p.add_argument("--ref-clips", type=int, default=8,
                   help="clips timed through audiomentations (default 8; 0 skips it, e.g. where it is not installed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1: per-core figures)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--tag", default="", help="suffix of the results file (augment_<tag>_<device>.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    batch = args.batch or (256 if device.type == "cuda" else 32)
    dtype = getattr(torch, args.dtype)
    clips = speech_like_clips(batch, args.seconds, SR)
    y = torch.from_numpy(clips).to(device=device, dtype=dtype)
    lengths = torch.full((batch,), clips.shape[1], dtype=torch.int64, device=device)
    audio_seconds = batch * args.seconds
    cores = torch.get_num_threads() if device.type == "cpu" else 1

    print(f"batch {batch} x {args.seconds:g} s ({audio_seconds:g} s of audio), {device}, {args.dtype}, "
          f"torch threads {torch.get_num_threads()}")
    ref_clips = clips[: min(args.ref_clips, batch)]
    reference = {}
    for method in ("signalsmith_stretch", "librosa_phase_vocoder") if len(ref_clips) else ():
        t = time_reference(ref_clips, method)
        reference[method] = {"ms_per_clip": 1e3 * t, "x_realtime": args.seconds / t}
        print(f"audiomentations ({method}): {1e3 * t:.2f} ms per clip, {args.seconds / t:.0f} x realtime (1 core)")

    rows = []
    print(f"{'ser_gpu':24s} {'s/batch':>9s} {'ms/clip':>9s} {'x realtime':>11s} {'x per core':>11s} "
          f"{'vs signalsmith/core':>20s} {'vs librosa-pv/core':>19s}")
    for name, probs in CASES.items():
        aug = WaveformAugment(sr=SR, **{**ALL_OFF, **probs}, **RANGES)
        gen = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            t = timeit(lambda: aug(y, lengths, generator=gen), device=device, repeats=3)
        rt = audio_seconds / t
        per_core = rt / cores
        row = {"case": name, "seconds_per_batch": t, "ms_per_clip": 1e3 * t / batch, "x_realtime": rt,
               "x_realtime_per_core": per_core}
        if name.startswith("chain") and reference:
            for method, ref in reference.items():
                row[f"speedup_per_core_vs_audiomentations_{method}"] = per_core / ref["x_realtime"]
            s1 = row["speedup_per_core_vs_audiomentations_signalsmith_stretch"]
            s2 = row["speedup_per_core_vs_audiomentations_librosa_phase_vocoder"]
            extra = f"{s1:20.2f} {s2:19.2f}"
        else:
            extra = ""
        rows.append(row)
        print(f"{name:24s} {t:9.4f} {1e3 * t / batch:9.2f} {rt:11.0f} {per_core:11.0f} {extra}")

    path = write_results("augment" + (f"_{args.tag}" if args.tag else ""), device, {
        "batch": batch, "clip_seconds": args.seconds, "audio_seconds": audio_seconds, "dtype": args.dtype,
        "ranges": {k: list(v) for k, v in RANGES.items()}, "reference_clips_timed": len(ref_clips),
        "audiomentations": reference, "ser_gpu": rows,
        "notes": ("ser_gpu: best of 3 batched WaveformAugment calls after a warm-up (parameters drawn per example, "
                  "p=1); audiomentations: Compose of AddGaussianNoise, TimeStretch, PitchShift, Shift (p=1) one clip "
                  "at a time on one core, best of 2 passes. Shared machine: timings are noisy."),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
