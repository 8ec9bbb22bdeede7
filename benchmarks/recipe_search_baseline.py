"""Recipe search baselines (issue 17): linear / SVM classifiers on clip statistics of the 68 raw rows, same 6 actor folds.

    python benchmarks/recipe_search_baseline.py --feats FEATS.pt [--stats meanstd|rich]
        [--model lr|svm] [--C C] [--speaker-norm]

Trains on the training and validation actors of each fold (10 of 12), tests on the fold's 2; prints
mean ± sample std of UAR over the folds. FEATS from recipe_search_cache.py (version 0, no
augmentation). ``--stats meanstd``: each clip's mean and std of every row (136 values); ``rich``:
also the 10/50/90 % quantiles and the mean absolute frame-to-frame change (408 values).
``--speaker-norm``: each clip's statistics standardised with its actor's mean and std over all of that
actor's clips before the classifier (labels unused, but transductive: the test actors' own clips give
their statistics, so this needs several recordings of a speaker at inference).
"""
import argparse

import numpy as np
import torch
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser_gpu.data import split_clips
from ser_gpu.data.ravdess import Clip

p = argparse.ArgumentParser()
p.add_argument("--feats", required=True)  # recipe_search_cache.py's file
p.add_argument("--stats", choices=("meanstd", "rich"), default="meanstd")
p.add_argument("--model", choices=("lr", "svm"), default="lr")
p.add_argument("--C", type=float, default=1.0)
p.add_argument("--speaker-norm", action="store_true")
a = p.parse_args()

d = torch.load(a.feats, weights_only=False)
clips = [Clip(path=Path(x), label=l, actor=ac) for x, l, ac in zip(d["paths"], d["labels"], d["actors"])]


def stats(f):
    parts = [f.mean(1), f.std(1)]
    if a.stats == "rich":
        parts += [torch.quantile(f, torch.tensor([0.1, 0.5, 0.9]), dim=1).flatten(), f.diff(dim=1).abs().mean(1)]
    return torch.cat(parts).numpy()


X = np.stack([stats(f) for f in d["feats"][0]])
y = np.array(d["labels"])
if a.speaker_norm:
    actors = np.array(d["actors"])
    for actor in np.unique(actors):
        m = actors == actor
        X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-8)
us = []
for fold in range(6):
    s = split_clips(clips, method="actor", seed=0, n_folds=6, fold=fold)
    tr = list(s.train) + list(s.val); te = list(s.test)
    clf = LogisticRegression(max_iter=3000, C=a.C) if a.model == "lr" else SVC(C=a.C)
    m = make_pipeline(StandardScaler(), clf).fit(X[tr], y[tr])
    pred = m.predict(X[te]); us.append(np.mean([(pred[y[te] == c] == c).mean() for c in range(8)]))
print(f"{a.model} {a.stats} C={a.C} speaker_norm={a.speaker_norm}: UAR {np.mean(us):.3f} ± {np.std(us, ddof=1):.3f}",
      np.round(us, 3))
