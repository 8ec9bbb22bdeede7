"""Shared pieces of the benchmark scripts: test audio, timing, machine facts, JSON output."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

# where write_results puts its JSON; SER_GPU_RESULTS overrides it (gpu_suite.py's dry runs use it so
# that they never overwrite the committed figures)
RESULTS = Path(os.environ.get("SER_GPU_RESULTS") or Path(__file__).resolve().parent / "results")


def speech_like_clips(n: int, seconds: float = 3.0, sr: int = 22050, seed: int = 0) -> np.ndarray:
    """``(n, seconds * sr)`` float32 speech-like clips: a glottal-like harmonic source with vibrato,
    a different f0 and formant set per clip, syllable envelopes and a little noise."""
    rng = np.random.default_rng(seed)
    T = int(seconds * sr)
    t = np.arange(T) / sr
    out = np.empty((n, T), dtype=np.float32)
    for i in range(n):
        f0 = rng.uniform(90, 260) * (1 + 0.04 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)) \
            * (1 + rng.uniform(-0.2, 0.2) * t / seconds)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        formants = rng.uniform([500, 1000, 2300], [900, 1700, 3000])
        y = np.zeros(T)
        for k in range(1, 30):
            fk = k * f0.mean()
            if fk > sr / 2 - 500:
                break
            amp = sum(np.exp(-((fk - f) / 250) ** 2) for f in formants) + 0.02
            y += amp / k**0.7 * np.sin(k * phase)
        env = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(2, 4) * t)) ** 2
        y = y * (0.1 + env) + 0.003 * rng.standard_normal(T)
        out[i] = 0.5 * y / np.abs(y).max()
    return out


def librosa_rows(c: np.ndarray, tonnetz: bool = True, *, trim: bool = True, sr: int = 22050) -> np.ndarray:
    """The 68 rows (docs/design.md) of one clip with librosa's own calls (the original system's feature code)."""
    import librosa

    y = librosa.effects.trim(c, top_db=20)[0] if trim else c
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    rows = [m, librosa.feature.delta(m), librosa.feature.delta(m, order=2), librosa.feature.chroma_stft(y=y, sr=sr),
            librosa.feature.spectral_contrast(y=y, sr=sr)]
    if tonnetz:
        rows.append(librosa.feature.tonnetz(y=librosa.effects.harmonic(y), sr=sr))
    rows += [librosa.feature.zero_crossing_rate(y=y), librosa.feature.rms(y=y),
             librosa.feature.spectral_rolloff(y=y, sr=sr), librosa.feature.spectral_centroid(y=y, sr=sr)]
    return np.concatenate(rows)


def timeit(fn: Callable[[], object], *, device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls (seconds), after ``warmup`` calls, synchronising CUDA."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what :mod:`platform` says): CPU timings, and the last bits
    MKL's kernels give, differ between the models the same kind of machine comes with."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        import librosa

        info["librosa"] = librosa.__version__
    except ImportError:
        info["librosa"] = None
    return info


def save_results(path, device: torch.device, payload: dict) -> Path:
    """``payload`` with the date and :func:`machine` first, as JSON at ``path``, written atomically (a
    committed result is never left half written)."""
    from ser_gpu._atomic import save_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_json(path, {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            "machine": machine(device), **payload})


def report_cv_runs(script: str, measure: Callable, cv_dirs, out, argv, *, width: int = 32,
                   shown: Callable = lambda key: True) -> list:
    """The loop of the after-the-fact crossval benchmarks: ``measure(cv_dir)`` (a report with a ``summary``
    of ``{key: {"mean", "std"}}``) for each of ``cv_dirs``, each summary printed (the keys ``shown``
    accepts), and the reports saved at ``out`` (when given) as ``{"runs", "command"}``, the command being
    ``python benchmarks/<script>`` with ``argv`` (None: the process's). Returns the reports."""
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    runs = []
    for cv_dir in cv_dirs:
        report = measure(cv_dir)
        runs.append(report)
        print(cv_dir)
        for key, value in report["summary"].items():
            if shown(key):
                spread = "" if value["std"] is None else f" ± {value['std']:.3f}"  # one fold: no spread
                print(f"  {key:{width}s} {value['mean']:.3f}{spread}")
    if out:
        command = " ".join([f"python benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])
        save_results(out, torch.device("cpu"), {"runs": runs, "command": command})
    return runs


def cv_runs_main(script: str, measure: Callable, doc: str, argv=None, *, width: int = 32,
                 shown: Callable = lambda key: True) -> int:
    """``main`` of an after-the-fact crossval benchmark whose command line is ``CV_DIR [CV_DIR ...] [--out FILE]``
    (``doc``: its module docstring, whose first paragraph is the description): :func:`report_cv_runs`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("cv_dir", nargs="+")
    p.add_argument("--out", help="JSON file for the figures")
    a = p.parse_args(argv)
    report_cv_runs(script, measure, a.cv_dir, a.out, argv, width=width, shown=shown)
    return 0


def write_results(name: str, device: torch.device, payload: dict) -> Path:
    """:func:`save_results` at ``benchmarks/results/<name>_<cpu|cuda>.json``."""
    tag = "cuda" if device.type == "cuda" else "cpu"
    return save_results(RESULTS / f"{name}_{tag}.json", device, payload)


def feature_pairs(librosa, sr: int = 22050) -> dict:
    """Every functional feature beside the librosa call it equals: ``name -> (ours(tensor), librosa(array))``."""
    import ser_gpu.functional as F
    from ser_gpu.functional import constantq as cq
    from ser_gpu.functional.hpss import harmonic

    mf = lambda y: librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)  # noqa: E731
    return {
        "stft": (lambda t: F.stft(t, n_fft=2048, hop_length=512), lambda y: librosa.stft(y)),
        "mfcc": (lambda t: F.mfcc(t, n_mfcc=13), mf),
        "delta": (lambda t: F.delta(F.mfcc(t, n_mfcc=13)), lambda y: librosa.feature.delta(mf(y))),
        "delta2": (lambda t: F.delta(F.mfcc(t, n_mfcc=13), order=2),
                   lambda y: librosa.feature.delta(mf(y), order=2)),
        "chroma_stft": (lambda t: F.chroma_stft(t), lambda y: librosa.feature.chroma_stft(y=y, sr=sr)),
        "spectral_contrast": (lambda t: F.spectral_contrast(t), lambda y: librosa.feature.spectral_contrast(y=y, sr=sr)),
        "zero_crossing_rate": (lambda t: F.zero_crossing_rate(t), lambda y: librosa.feature.zero_crossing_rate(y=y)),
        "rms": (lambda t: F.rms(t), lambda y: librosa.feature.rms(y=y)),
        "spectral_rolloff": (lambda t: F.spectral_rolloff(t), lambda y: librosa.feature.spectral_rolloff(y=y, sr=sr)),
        "spectral_centroid": (lambda t: F.spectral_centroid(t), lambda y: librosa.feature.spectral_centroid(y=y, sr=sr)),
        "harmonic": (lambda t: harmonic(t), lambda y: librosa.effects.harmonic(y)),
        "cqt": (lambda t: cq.cqt(t, sr=sr).abs(), lambda y: np.abs(librosa.cqt(y, sr=sr))),
        "chroma_cqt": (lambda t: cq.chroma_cqt(t, sr=sr), lambda y: librosa.feature.chroma_cqt(y=y, sr=sr)),
        "tonnetz": (lambda t: cq.tonnetz(t, sr=sr), lambda y: librosa.feature.tonnetz(y=y, sr=sr)),
    }


def uar(pred, truth) -> float:
    """UAR of predicted against true class indices (numpy or tensors, over the 8 labels):
    :func:`ser_gpu.evaluate.metrics_from_predictions`'s, the one the library reports."""
    from ser_gpu.data import EMOTIONS
    from ser_gpu.evaluate import metrics_from_predictions

    return metrics_from_predictions(torch.as_tensor(truth), torch.as_tensor(pred), EMOTIONS)["uar"]


def linear_model(c: float):
    """scikit-learn's standardised logistic regression with inverse L2 strength ``c``: the statistics
    head's model (:func:`ser_gpu.models.stats_head.fit_logistic_regression` equals it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def cache_clips(cache: dict) -> list:
    """The :class:`ser_gpu.data.ravdess.Clip` of every clip of ``recipe_search_cache.py``'s file (loaded),
    in its order (path, label, actor; the speaker id follows from them)."""
    from ser_gpu.data.ravdess import Clip

    return [Clip(path=Path(path), label=label, actor=actor)
            for path, label, actor in zip(cache["paths"], cache["labels"], cache["actors"])]


def raw_rows(cache: dict) -> dict:
    """path -> the clip's raw rows ``(68, frames)`` of ``recipe_search_cache.py``'s file (its version 0)."""
    return dict(zip(cache["paths"], cache["feats"][0]))


def padded_rows(rows) -> tuple:
    """Clips' feature rows (each ``(rows, frames)``) as one zero-padded float32 batch ``(B, rows, longest)``
    and their frame counts ``(B,)``: what a model reads."""
    x = torch.nn.utils.rnn.pad_sequence([r.T for r in rows], batch_first=True).transpose(1, 2).float()
    return x, torch.tensor([r.shape[-1] for r in rows])


def fold_summary(folds: dict, keys) -> dict:
    """``{key: {"mean", "std"}}`` over the folds' values of each key (sample std; None for one fold)."""
    return {k: {"mean": float(np.mean([f[k] for f in folds.values()])),
                "std": float(np.std([f[k] for f in folds.values()], ddof=1)) if len(folds) > 1 else None}
            for k in keys}


def save_report(report: dict, path) -> None:
    """Write ``report`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
