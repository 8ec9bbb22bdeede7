"""A crossval run's networks fused, after the fact, with a linear model on raw-row clip statistics (issue 17).

    python benchmarks/raw_statistics_fusion.py RUN [RUN ...] --feats FEATS.pt [--C 0.01 0.1] [--json OUT.json]

For runs whose network reads rows the statistics head cannot use (``--recipe original``: rows standardised
per clip), this measures what a head on the *raw* rows would add. Per fold of each crossval directory:
the fold's test softmax (``test_probabilities.json``, members averaged), a logistic regression
(scikit-learn, standardised columns: the statistics head's model) fitted on
:func:`ser_gpu.models.stats_head.clip_statistics` of the raw rows of the fold's training actors (as
``crossval.json`` records them), and the test UAR of the network alone, the regression alone and the mean
of the two softmaxes. ``FEATS.pt``: ``recipe_search_cache.py``'s rows of the run's RAVDESS corpus (its
version 0, raw rows).
"""
import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import linear_model as logistic, save_report, uar  # noqa: E402
from ser_gpu.data.ravdess import Clip  # noqa: E402
from ser_gpu.models.stats_head import clip_statistics  # noqa: E402


def fusion(run, rows: dict, speakers: dict, labels: dict, cs=(0.01,)) -> dict:
    """Per fold of the crossval directory ``run``: UARs of ``network``, ``linear C`` and ``fused C`` for
    each C in ``cs``. ``rows``: path -> raw rows ``(68, frames)``; ``speakers`` / ``labels``: path -> the
    clip's speaker id / label index."""
    records = {(r["seed"], r["fold"]): r for r in json.loads((Path(run) / "crossval.json").read_text())["folds"]}
    stats = {path: clip_statistics(r.double()[None])[0].numpy() for path, r in rows.items()}
    out = {}
    for seed, fold in sorted(records):
        where = Path(run) / f"seed_{seed}" / f"fold_{fold}"
        members = sorted(glob.glob(f"{where}/member_*")) or [str(where)]
        tested = [json.loads(Path(m, "test_probabilities.json").read_text()) for m in members]
        paths, truth = tested[0]["paths"], np.array(tested[0]["labels"])
        network = np.mean([np.array(t["probabilities"]) for t in tested], 0)
        train = sorted(p for p in rows if speakers[p] in set(records[seed, fold]["actors"]["train"]))
        scores = {"network": uar(network.argmax(1), truth), "training_clips": len(train)}
        for c in cs:
            model = logistic(c).fit(np.stack([stats[p] for p in train]), [labels[p] for p in train])
            linear = np.zeros_like(network)  # a label no training clip has gets probability 0
            linear[:, model.classes_] = model.predict_proba(np.stack([stats[p] for p in paths]))
            scores[f"linear {c:g}"] = uar(linear.argmax(1), truth)
            scores[f"fused {c:g}"] = uar(((network + linear) / 2).argmax(1), truth)
        out[f"seed_{seed}/fold_{fold}"] = scores
    keys = [k for k in next(iter(out.values())) if k != "training_clips"]
    summary = {k: {"mean": float(np.mean([f[k] for f in out.values()])),
                   "std": float(np.std([f[k] for f in out.values()], ddof=1)) if len(out) > 1 else None}
               for k in keys}
    return {"folds": out, "summary": summary}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--feats", required=True, help="recipe_search_cache.py's file of the run's corpus")
    p.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    cache = torch.load(a.feats, weights_only=False)
    clips = [Clip(path=Path(path), label=label, actor=actor)
             for path, label, actor in zip(cache["paths"], cache["labels"], cache["actors"])]
    rows = dict(zip(cache["paths"], cache["feats"][0]))
    speakers = {str(c.path): c.speaker for c in clips}
    labels = {str(c.path): c.label for c in clips}
    report = {}
    for run in a.runs:
        report[run] = fusion(run, rows, speakers, labels, a.C)
        print(run, {k: f"{v['mean']:.3f} ± {v['std']:.3f}" for k, v in report[run]["summary"].items()})
    save_report(report, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
