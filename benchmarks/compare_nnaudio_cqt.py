"""nnAudio's CQT2010v2 / CQT1992v2 vs librosa.cqt vs ser_gpu.functional.cqt, on CPU.

For a batch of 16 x 3 s speech-like clips at 22050 Hz and two configurations
(84 bins, 12 per octave: librosa.cqt's default; 252 bins, 36 per octave: what chroma_cqt uses),
prints max relative magnitude error (max |ours - librosa| / max |librosa|, worst clip) and
seconds per batch, and writes benchmarks/results/nnaudio_cqt_cpu.json.

    python benchmarks/compare_nnaudio_cqt.py [--batch 16] [--seconds 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser_gpu.functional.constantq import cqt  # noqa: E402

SR = 22050
C1 = 440.0 * 2.0 ** ((24 - 69) / 12.0)
CONFIGS = {
    "cqt_84x12": dict(n_bins=84, bins_per_octave=12),
    "chroma_252x36": dict(n_bins=252, bins_per_octave=36),
}


def speech_like_batch(batch: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic tones with vibrato, a formant-like envelope, a syllable swell and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.empty((batch, n))
    for b in range(batch):
        f0 = rng.uniform(100, 250) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        y = np.zeros(n)
        for k in range(1, 30):
            fk = k * f0.mean()
            amp = np.exp(-((fk - 700) / 300) ** 2) + 0.5 * np.exp(-((fk - 1800) / 500) ** 2) + 0.02
            y += amp / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        swell = 0.5 * (1 - np.cos(2 * np.pi * t / seconds * rng.integers(2, 5)))
        y = y * (0.2 + swell) + 0.01 * rng.standard_normal(n)
        out[b] = 0.3 * y / np.abs(y).max()
    return out


def timed(fn, repeats: int):
    """(best, median) wall seconds over ``repeats`` calls after one warm-up call.

    The best of several runs is the figure reported: on a shared machine the median picks up
    other processes' load.
    """
    fn()  # warm-up (builds and caches filter banks)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), float(np.median(times))


def worst_rel(ours: np.ndarray, ref: np.ndarray, edge: int = 0) -> float:
    """max over clips of max |ours - ref| / max |ref| (frames cropped to the shorter; ``edge``
    frames dropped at both ends)."""
    t = min(ours.shape[-1], ref.shape[-1])
    ours, ref = ours[..., edge:t - edge], ref[..., edge:t - edge]
    diff = np.abs(ours - ref).reshape(len(ref), -1).max(axis=1)
    scale = np.abs(ref).reshape(len(ref), -1).max(axis=1)
    return float((diff / scale).max())


def resampler_vs_soxr(Y: np.ndarray) -> dict:
    """Relative error of ser_gpu's decimator against soxr_hq (what librosa.resample calls)."""
    import soxr

    from ser_gpu.functional._resample import decimate

    rng = np.random.default_rng(1)
    signals = {"speech_like": Y[:4], "white_noise": 0.1 * rng.standard_normal((4, Y.shape[-1]))}
    out = {}
    for factor in (2, 4, 8):
        for name, x in signals.items():
            ours, _ = decimate(torch.from_numpy(x), factor)
            worst = 0.0
            for i, xi in enumerate(x):
                ref = soxr.resample(xi, factor, 1, quality="soxr_hq")
                n = min(len(ref), ours.shape[-1])
                d = np.abs(ours[i, :n].numpy() - ref[:n]).max() / np.abs(ref).max()
                worst = max(worst, float(d))
            out[f"{factor}:1 {name}"] = worst
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "nnaudio_cqt_cpu.json"))
    args = parser.parse_args(argv)

    import librosa
    from nnAudio.features import CQT1992v2, CQT2010v2

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    Y = speech_like_batch(args.batch, args.seconds)
    y64 = torch.from_numpy(Y)
    y32 = y64.float()

    rows = []
    for cfg_name, cfg in CONFIGS.items():
        ref = np.stack([np.abs(librosa.cqt(y, sr=SR, hop_length=512, fmin=C1, tuning=0.0, **cfg)) for y in Y])
        t_lib = timed(lambda: [librosa.cqt(y, sr=SR, hop_length=512, fmin=C1, tuning=0.0, **cfg) for y in Y],
                      max(1, args.repeats // 2))
        rows.append(dict(config=cfg_name, method="librosa.cqt (16 clips, one by one)", dtype="float64",
                         rel_err_vs_librosa=0.0, rel_err_interior=0.0, rel_err_vs_ser_gpu=None,
                         seconds=t_lib[0], seconds_median=t_lib[1]))

        ours = {}
        for dtype, x in (("float64", y64), ("float32", y32)):
            out = cqt(x, sr=SR, hop_length=512, fmin=C1, tuning=0.0, **cfg).abs().double().numpy()
            ours[dtype] = out
            t = timed(lambda: cqt(x, sr=SR, hop_length=512, fmin=C1, tuning=0.0, **cfg), args.repeats)
            rows.append(dict(config=cfg_name, method="ser_gpu cqt (batched)", dtype=dtype,
                             rel_err_vs_librosa=worst_rel(out, ref), rel_err_interior=worst_rel(out, ref, 8),
                             rel_err_vs_ser_gpu=0.0, seconds=t[0], seconds_median=t[1]))

        common = dict(sr=SR, hop_length=512, fmin=C1, n_bins=cfg["n_bins"],
                      bins_per_octave=cfg["bins_per_octave"], pad_mode="constant", verbose=False)
        for name, layer in (("nnAudio CQT2010v2", CQT2010v2(**common)),
                            ("nnAudio CQT1992v2", CQT1992v2(**common))):
            for norm_type in ("librosa", "wrap", "convolutional"):
                with torch.no_grad():
                    out = layer(y32, output_format="Magnitude", normalization_type=norm_type).double().numpy()
                e_ref = worst_rel(out, ref)
                e_ours = worst_rel(out, ours["float64"])
                rows.append(dict(config=cfg_name, method=f"{name} normalization_type={norm_type!r}",
                                 dtype="float32", rel_err_vs_librosa=e_ref,
                                 rel_err_interior=worst_rel(out, ref, 8), rel_err_vs_ser_gpu=e_ours,
                                 frames=int(out.shape[-1]), librosa_frames=int(ref.shape[-1]), seconds=None))
            with torch.no_grad():
                t = timed(lambda: layer(y32, output_format="Magnitude"), args.repeats)
            for r in rows:
                if r["method"].startswith(name) and r["config"] == cfg_name:
                    r["seconds"], r["seconds_median"] = t

    resampler = resampler_vs_soxr(Y)

    print(f"batch {args.batch} x {args.seconds:g} s at {SR} Hz, CPU threads {torch.get_num_threads()}")
    print(f"{'config':<15}{'method':<56}{'dtype':<9}{'err vs librosa':>15}{'(interior)':>11}"
          f"{'vs ser_gpu':>12}{'best s':>9}{'median s':>10}")
    for r in rows:
        vs_ours = "" if r["rel_err_vs_ser_gpu"] is None else f"{r['rel_err_vs_ser_gpu']:.2e}"
        print(f"{r['config']:<15}{r['method']:<56}{r['dtype']:<9}{r['rel_err_vs_librosa']:>15.2e}"
              f"{r['rel_err_interior']:>11.2e}{vs_ours:>12}{r['seconds']:>9.3f}{r['seconds_median']:>10.3f}")

    result = dict(
        benchmark="nnAudio CQT vs librosa.cqt vs ser_gpu.functional.cqt (magnitude)",
        machine=dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                     cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), device="cpu",
                     load_average_before=load_before, load_average_after=os.getloadavg()),
        torch_version=torch.__version__,
        librosa_version=librosa.__version__,
        nnaudio_version=__import__("nnAudio").__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        batch=args.batch,
        seconds_per_clip=args.seconds,
        seconds_of_audio=args.batch * args.seconds,
        sr=SR,
        hop_length=512,
        fmin=C1,
        error_metric="max over clips of max|x - librosa| / max|librosa| on magnitudes; 'interior' drops "
                     "8 frames at each end",
        timing="wall seconds for the whole batch (librosa: the clips one by one); 'seconds' is the best "
               "of the repeats, 'seconds_median' the median",
        rows=rows,
        resampler_vs_soxr_hq=resampler,
    )
    print("decimator vs soxr.resample(..., quality='soxr_hq'), max|ours - soxr| / max|soxr|:")
    for k, v in resampler.items():
        print(f"  {k:<28}{v:.2e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from ser_gpu._atomic import save_json

    save_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
