"""How far a linear model on clip statistics gets without speaker statistics (issue 17).

    python benchmarks/statistics_ceiling.py --feats FEATS.pt --data-dir DIR [--cache-dir C] [--json OUT.json]

``FEATS.pt``: ``recipe_search_cache.py``'s rows of the corpus in ``DIR`` (its version 0: raw rows, no
augmentation). Each clip is summarised by :func:`ser_gpu.models.stats_head.clip_statistics` (the
statistics head's six statistics per row), and a logistic regression (scikit-learn, standardised
columns; the statistics head is the same model) is cross-validated on the actor folds of
``split_clips(method='actor', n_folds=6)`` for seeds 0, 1 and 2, trained on each fold's training split.
What is added to the 68 rows' statistics, each computed with librosa on the same trimmed 22050 Hz clips:

- ``f0``: ``librosa.pyin`` (60-600 Hz, 2048/512) -- over voiced frames the mean, std, 10/50/90 %
  quantiles, their range and the mean |frame-to-frame change| of the pitch in semitones, the voiced
  fraction and the mean voicing probability;
- ``mel64`` / ``mfcc40``: the six statistics of a 64-band log-mel spectrogram / of 40 MFCCs;
- ``gender``: the statistics standardised with the training clips of the clip's gender (predicted from
  its statistics by another logistic regression for test clips);
- ``svc``: an RBF support-vector machine instead of the logistic regression.

It also draws the learning curve over training actors (2 test actors, ``n`` training actors drawn from
the other ten, 40 draws each). Prints one line per model and writes ``--json``.
"""
import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cache_clips, linear_model as logistic, save_report, uar  # noqa: E402
from ser_gpu.data import load_waveforms, split_clips  # noqa: E402
from ser_gpu.models.stats_head import clip_statistics  # noqa: E402

SEEDS = (0, 1, 2)


def statistics(rows) -> np.ndarray:
    """``(N, 6 * rows)`` clip statistics of a list of ``(rows, frames)`` arrays."""
    return np.stack([clip_statistics(torch.as_tensor(r, dtype=torch.float64)[None])[0].numpy() for r in rows])


def pitch_statistics(y: np.ndarray, sr: float) -> np.ndarray:
    import librosa

    f0, voiced, prob = librosa.pyin(y, fmin=60, fmax=600, sr=sr, frame_length=2048, hop_length=512)
    st = 12 * np.log2(f0[voiced] / 100.0) if voiced.sum() >= 2 else np.zeros(2)
    q = np.quantile(st, [0.1, 0.5, 0.9])
    return np.array([st.mean(), st.std(), *q, q[2] - q[0], np.abs(np.diff(st)).mean(), voiced.mean(), prob.mean()])


def spectral_rows(y: np.ndarray, sr: float):
    import librosa

    log_mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=64))
    return log_mel, librosa.feature.mfcc(S=log_mel, n_mfcc=40)


def svc():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale"))


def gender_standardized(x, gender, train, test):
    """``x`` standardised per gender with the training clips' statistics; test clips by predicted gender."""
    guess = gender.copy()
    guess[test] = logistic(0.1).fit(x[train], gender[train]).predict(x[test])
    z = np.empty_like(x)
    for g in (0, 1):
        ref = x[train][gender[train] == g]
        z[guess == g] = (x[guess == g] - ref.mean(0)) / (ref.std(0) + 1e-8)
    return z


def cross_validate(clips, x, y, make, gender=None) -> dict:
    per_seed = []
    for seed in SEEDS:
        folds = []
        for fold in range(6):
            s = split_clips(clips, method="actor", seed=seed, n_folds=6, fold=fold)
            train, test = np.array(s.train), np.array(s.test)
            xs = x if gender is None else gender_standardized(x, gender, train, test)
            folds.append(uar(make().fit(xs[train], y[train]).predict(xs[test]), y[test]))
        per_seed.append(folds)
    means = [float(np.mean(f)) for f in per_seed]
    return {"per_seed": means, "mean": float(np.mean(means)), "folds": per_seed}


def learning_curve(x, y, actors, c, draws=40) -> dict:
    rng = np.random.default_rng(0)
    names = np.unique(actors)
    out = {}
    for n in (2, 4, 6, 8, 10):
        scores = []
        for _ in range(draws):
            perm = rng.permutation(names)
            train = np.isin(actors, rng.choice(perm[2:], n, replace=False))
            test = np.isin(actors, perm[:2])
            scores.append(uar(logistic(c).fit(x[train], y[train]).predict(x[test]), y[test]))
        out[n] = {"mean": float(np.mean(scores)), "se": float(np.std(scores) / np.sqrt(draws))}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--feats", required=True)
    p.add_argument("--data-dir", required=True, help="the corpus FEATS.pt was made from (for pyin and mel)")
    p.add_argument("--cache-dir", default=None, help="load_waveforms' cache (default: $SER_GPU_CACHE)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    cache = torch.load(a.feats, weights_only=False)
    clips = cache_clips(cache)
    y = np.array(cache["labels"])
    actors = np.array([int(actor) for actor in cache["actors"]])
    gender = actors % 2  # RAVDESS: odd actors are male
    waves, loaded = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=a.cache_dir, progress=False)
    if [str(c.path) for c in loaded] != [str(c.path) for c in clips]:
        raise SystemExit(f"{a.data_dir}: not the clips of {a.feats}")
    audio = [w.double().numpy() for w in waves]
    x = statistics(cache["feats"][0])
    f0 = np.stack([pitch_statistics(w, 22050) for w in audio])
    mel, mfcc = zip(*(spectral_rows(w, 22050) for w in audio))
    x_mel, x_mfcc = statistics(mel), statistics(mfcc)
    models = {
        "68 rows, C=0.1 (the head)": (x, lambda: logistic(0.1), None),
        "68 rows, C=0.01": (x, lambda: logistic(0.01), None),
        "68 rows + f0, C=0.1": (np.hstack([x, f0]), lambda: logistic(0.1), None),
        "f0 alone, C=0.1": (f0, lambda: logistic(0.1), None),
        "68 rows + mel64, C=0.01": (np.hstack([x, x_mel]), lambda: logistic(0.01), None),
        "68 rows + mfcc40, C=0.01": (np.hstack([x, x_mfcc]), lambda: logistic(0.01), None),
        "68 rows, gender-standardised, C=0.01": (x, lambda: logistic(0.01), gender),
        "68 rows, RBF SVC": (x, svc, None),
    }
    report = {"feats": a.feats, "seeds": list(SEEDS), "models": {}}
    for name, (features, make, by_gender) in models.items():
        report["models"][name] = r = cross_validate(clips, features, y, make, by_gender)
        print(f"{name}: {r['mean']:.3f} (seeds {', '.join(f'{m:.3f}' for m in r['per_seed'])})", flush=True)
    report["learning_curve_C0.01"] = curve = learning_curve(x, y, actors, 0.01)
    print("training actors -> UAR:", {n: round(v["mean"], 3) for n, v in curve.items()})
    save_report(report, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
