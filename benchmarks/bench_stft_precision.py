"""Cost of librosa's float64 FFT for float32 input: the default against ``fast_stft=True``.

    python benchmarks/bench_stft_precision.py [--device cpu|cuda] [--batch 32] [--seconds 3] [--repeats 5] [--label L]

Times, on the same float32 batch, ``spectrogram`` (the STFT alone) and the full 68-row
``FeatureExtractor`` (default config: trim, tonnetz, 862 frames, 'valid' normalisation) with the
default (FFT in float64, rounded to float32, as librosa) and with ``fast_stft=True`` (FFT in float32).
The two settings alternate within each repeat, so load from other jobs hits both alike; the best
time of each and the median of the per-repeat ratios are reported. Their errors against librosa are
in ``parity_audit_after_<device>.json`` (``benchmarks/parity_audit.py``). Writes
``benchmarks/results/stft_precision[_<label>]_<device>.json``.

This checkout is appended to ``sys.path`` last, so ``PYTHONPATH=/path/to/old/checkout`` times an
older ``ser_gpu`` (one without ``fast_stft``: the default only) on the same clips.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.append(str(Path(__file__).resolve().parent.parent))

import ser_gpu.functional as F  # noqa: E402
from benchmarks._common import speech_like_clips, write_results  # noqa: E402
from ser_gpu.transforms import FeatureExtractor  # noqa: E402

SR = 22050


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--label", default="", help="results file name part, e.g. before")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    y = torch.from_numpy(speech_like_clips(args.batch, args.seconds)).to(device)
    lengths = torch.full((args.batch,), y.shape[-1], device=device)
    audio_s = args.batch * args.seconds
    settings = (False, True) if "fast_stft" in FeatureExtractor().config.to_dict() else (False,)
    fe = {fast: FeatureExtractor(**({"fast_stft": True} if fast else {})).to(device) for fast in settings}
    cases = {
        "spectrogram": {fast: (lambda fast=fast: F.spectrogram(y, lengths=lengths, **({"fast_stft": True} if fast else {})))
                        for fast in settings},
        "FeatureExtractor (68 rows)": {fast: (lambda fast=fast: fe[fast](y, lengths)) for fast in settings},
    }
    results = {}
    with torch.no_grad():
        for name, fns in cases.items():
            for fn in fns.values():
                fn()  # warm up (filterbanks, caches, CUDA kernels)
            times = {fast: [] for fast in settings}
            for _ in range(args.repeats):
                for fast in settings:
                    times[fast].append(_time(fns[fast], device))
            best = {fast: min(t) for fast, t in times.items()}
            results[name] = {"default_s": best[False], "default_x_realtime": audio_s / best[False],
                             "times_default_s": times[False]}
            line = f"{name:28s} default {best[False]:.3f} s ({audio_s / best[False]:.0f}x rt)"
            if True in settings:
                ratio = float(np.median(np.array(times[False]) / np.array(times[True])))
                results[name].update({"fast_stft_s": best[True], "fast_stft_x_realtime": audio_s / best[True],
                                      "median_ratio_default_over_fast": ratio, "times_fast_stft_s": times[True]})
                line += f"  fast_stft {best[True]:.3f} s ({audio_s / best[True]:.0f}x rt)  default/fast {ratio:.2f}"
            print(line, flush=True)
    name = "stft_precision" + (f"_{args.label}" if args.label else "")
    path = write_results(name, device, {"batch": args.batch, "seconds_per_clip": args.seconds,
                                                    "dtype": "float32", "repeats": args.repeats,
                                                    "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
