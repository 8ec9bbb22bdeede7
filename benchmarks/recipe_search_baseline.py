"""Recipe search baseline (issue 17): logistic regression on each clip's mean and std of the 68 raw rows, same 6 actor folds.

    python benchmarks/recipe_search_baseline.py [C] [FEATS.pt]

Trains on the training and validation actors of each fold (10 of 12), tests on the fold's 2; prints
mean ± sample std of UAR. FEATS from recipe_search_cache.py (version 0, no augmentation).
"""
import sys, torch, numpy as np

from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
from ser_gpu.data import split_clips
from ser_gpu.data.ravdess import Clip
from pathlib import Path
d = torch.load(sys.argv[2] if len(sys.argv) > 2 else "/work/exp/feats.pt", weights_only=False)
clips = [Clip(path=Path(x), label=l, actor=ac) for x, l, ac in zip(d["paths"], d["labels"], d["actors"])]
X = np.stack([torch.cat([f.mean(1), f.std(1)]).numpy() for f in d["feats"][0]]); y = np.array(d["labels"])
us = []
for fold in range(6):
    s = split_clips(clips, method="actor", seed=0, n_folds=6, fold=fold)
    tr = list(s.train) + list(s.val); te = list(s.test)
    m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=float(sys.argv[1]) if len(sys.argv)>1 else 1.0)).fit(X[tr], y[tr])
    p = m.predict(X[te]); us.append(np.mean([(p[y[te]==c]==c).mean() for c in range(8)]))
print("LR UAR %.3f ± %.3f" % (np.mean(us), np.std(us, ddof=1)), np.round(us, 3))
