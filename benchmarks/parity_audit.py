"""Worst error against live librosa of every feature, per dtype, per signal set (the issue 12 audit).

    python benchmarks/parity_audit.py [--ravdess N] [--label NAME] [--cache FILE]

Signal sets: ``synthetic`` (the docs/design.md signals in tests/signals.py), ``speech`` (the 16-bit
recorded-speech-like clips in tests/data/) and ``ravdess`` (N real RAVDESS recordings, one per actor
in turn, from ``$SER_GPU_RAVDESS_DEV`` as in the tests, else ``../shared/data/ravdess_dev`` beside the
checkout, when present), all loaded at 22050 Hz as the project loads audio. Error = max |ours -
librosa| / max |librosa| per clip (librosa run on the float64 signal), worst clip reported; rolloff is a bin pick and is reported as
the fraction of frames that differ. Rows: the functional features, then the ``FeatureExtractor``
row groups (``fe:*``, raw rows after the trim, against librosa's stack clip by clip). Modes:
float64, float32, and float32 with ``FeatureExtractor(fast_stft=True)`` (``float32_fast``; extractor
rows and contrast only). Writes ``benchmarks/results/parity_audit_<label>_cpu.json``.

The script imports whichever ``ser_gpu`` comes first on ``sys.path`` (this checkout is appended
last), so ``PYTHONPATH=/path/to/old/checkout`` audits older code against the same signals.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))

import ser_gpu.functional as F  # noqa: E402
from benchmarks._common import feature_pairs, write_results  # noqa: E402
from ser_gpu.transforms import FeatureExtractor  # noqa: E402
from ser_gpu.transforms.features import _ROW_SLICES  # noqa: E402
from tests.signals import SIGNALS, SPEECH_FILES  # noqa: E402

SR = 22050
RAVDESS = Path(os.environ.get("SER_GPU_RAVDESS_DEV") or ROOT.parent / "shared" / "data" / "ravdess_dev")


def ravdess_clips(n: int) -> dict:
    """One clip per actor in turn, the emotion cycling with the actor: deterministic, varied."""
    import librosa

    clips = {}
    for i in range(n):
        actor = i % 24 + 1
        emotion = i % 8 + 1
        intensity = 1 if emotion == 1 else 2
        path = RAVDESS / f"Actor_{actor:02d}" / f"03-01-{emotion:02d}-{intensity:02d}-01-01-{actor:02d}.flac"
        if path.exists():
            clips[path.name] = librosa.load(path, sr=SR)[0].astype(np.float64)
    return clips


def error(name: str, ours: np.ndarray, ref: np.ndarray) -> float:
    if ours.shape != ref.shape:
        return float("nan")
    if "rolloff" in name:
        return float((np.abs(ours - ref) > 1e-6).mean())  # fraction of frames whose bin differs
    scale = np.abs(ref).max()
    return float(np.abs(ours - ref).max() / scale) if scale > 0 else float(np.abs(ours).max())


def main(argv=None):
    import librosa

    from benchmarks._common import librosa_rows

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ravdess", type=int, default=12, help="RAVDESS clips to audit (0: none)")
    p.add_argument("--label", default="after", help="results file name part, e.g. before/after")
    p.add_argument("--cache", default=None, help="pickle file caching librosa's results between runs")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # librosa's n_fft-too-large warnings on the short clips
    cache = {}
    if args.cache and Path(args.cache).exists():
        cache = pickle.loads(Path(args.cache).read_bytes())

    def ref(key, fn):
        if key not in cache:
            try:
                cache[key] = fn()
            except librosa.util.exceptions.ParameterError:
                cache[key] = None  # e.g. delta of a clip of fewer than 9 frames: librosa raises
        return cache[key]

    speech = set(SPEECH_FILES)
    sets = {"synthetic": {k: v for k, v in SIGNALS.items() if k not in speech},
            "speech": {k: v for k, v in SIGNALS.items() if k in speech}}
    if args.ravdess and RAVDESS.is_dir():
        sets["ravdess"] = ravdess_clips(args.ravdess)
    has_fast = "fast_stft" in FeatureExtractor().config.to_dict()
    modes = [("float64", torch.float64, False), ("float32", torch.float32, False)]
    if has_fast:
        modes.append(("float32_fast", torch.float32, True))
    pairs = feature_pairs(librosa)
    results = {}  # results[feature][set][mode] = (worst error, clip)

    def record(feat, set_name, mode, err, clip):
        cell = results.setdefault(feat, {}).setdefault(set_name, {})
        if mode not in cell or err > cell[mode][0] or np.isnan(err):
            cell[mode] = (err, clip)

    for set_name, clips in sets.items():
        for clip, y in clips.items():
            print(f"{set_name}/{clip}", flush=True)
            for mode, dtype, fast in modes:
                t = torch.from_numpy(y).to(dtype)
                with torch.no_grad():
                    for feat, (ours, lib) in pairs.items():
                        if fast and feat != "spectral_contrast":
                            continue
                        r = ref((set_name, clip, feat), lambda: lib(y))
                        if r is None:
                            continue
                        if fast:  # the fast setting's contrast, from a float32-FFT spectrogram
                            o = F.spectral_contrast(S=F.spectrogram(t, fast_stft=True)[0])
                        else:
                            o = ours(t)
                        o = o.cpu().numpy()
                        o = o.astype(np.complex128) if np.iscomplexobj(o) else o.astype(np.float64)
                        record(feat, set_name, mode, error(feat, o, r), clip)
                    fe = FeatureExtractor(normalize=None, max_frames=None, **({"fast_stft": True} if fast else {}))
                    rows = fe(t).features[0].double().numpy()
                stack = ref((set_name, clip, "stack"), lambda: librosa_rows(y))
                for group, sl in _ROW_SLICES.items() if stack is not None else ():
                    record(f"fe:{group}", set_name, mode, error(group, rows[sl], stack[sl]), clip)
    if args.cache:
        Path(args.cache).write_bytes(pickle.dumps(cache))

    set_names = list(sets)
    head = f"{'feature':22s}" + "".join(f" {s[:8] + '/' + m.replace('float', 'f'):>18s}" for s in set_names
                                         for m, _, _ in modes)
    print(head)
    for feat, by_set in results.items():
        line = f"{feat:22s}"
        for s in set_names:
            for m, _, _ in modes:
                cell = by_set.get(s, {}).get(m)
                line += f" {cell[0]:18.2e}" if cell else f" {'-':>18s}"
        print(line)
    payload = {
        "label": args.label,
        "measure": "max|ours-librosa|/max|librosa| per clip, worst clip; rolloff: fraction of frames differing",
        "signal_sets": {s: sorted(c) for s, c in sets.items()},
        "results": {f: {s: {m: {"max_error": e, "clip": c} for m, (e, c) in by_mode.items()}
                        for s, by_mode in by_set.items()} for f, by_set in results.items()},
    }
    path = write_results(f"parity_audit_{args.label}", torch.device("cpu"), payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
