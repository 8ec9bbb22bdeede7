"""A crossval run's networks fused, after the fact, with a linear model on raw-row clip statistics (issue 17).

    python benchmarks/raw_statistics_fusion.py RUN [RUN ...] --feats FEATS.pt [--C 0.01 0.1] [--json OUT.json]

For runs whose network reads rows the statistics head cannot use (``--recipe original``: rows standardised
per clip), this measures what a head on the *raw* rows would add. Per fold of each crossval directory:
the fold's test softmax (``test_probabilities.json``, members averaged), a logistic regression
(scikit-learn, standardised columns: the statistics head's model) fitted on
:func:`ser_gpu.models.stats_head.clip_statistics` of the raw rows of the fold's training actors (as
``crossval.json`` records them), and the test UAR of the network alone, the regression alone and the mean
of the two softmaxes. With ``--in-model``, also ``model C``: the fold's checkpoint itself with the
statistics head ser_gpu now builds for per-clip standardised runs -- the network rebuilt with
``clip_norm`` (it reads the raw rows and standardises each clip itself), the head fitted by
:meth:`~ser_gpu.models.CNNBiLSTMAttention.fit_stats_head` on the training clips' raw rows -- and scored
by its own forward on the test clips' raw rows: what ``train --recipe original --stats-head C`` gives
for the same network. ``FEATS.pt``: ``recipe_search_cache.py``'s rows of the run's RAVDESS corpus (its
version 0, raw rows).
"""
import argparse
import dataclasses
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (cache_clips, fold_summary, linear_model as logistic, padded_rows,  # noqa: E402
                                raw_rows, save_report, uar)
from ser_gpu.crossval import ensemble_probabilities, fold_dir  # noqa: E402
from ser_gpu.checkpoint import load_model  # noqa: E402
from ser_gpu.models import CNNBiLSTMAttention  # noqa: E402
from ser_gpu.models.stats_head import clip_statistics  # noqa: E402


def clip_norm_model(checkpoint) -> CNNBiLSTMAttention:
    """A per-clip standardised run's checkpoint as a ``clip_norm`` model reading raw rows, with a statistics
    head still to fit (:meth:`~ser_gpu.models.CNNBiLSTMAttention.fit_stats_head`). The run's rows were
    standardised by the extractor (``feature_config`` normalize 'valid', runs before ``clip_norm``) or by
    its model (``clip_norm``; a head it has is refitted)."""
    network, payload = load_model(checkpoint)
    if not network.config.clip_norm and payload["feature_config"].get("normalize") != "valid":
        raise SystemExit(f"{checkpoint}: not a run on rows standardised per clip")
    config = dataclasses.replace(network.config, clip_norm=True, stats_head=True)
    model = CNNBiLSTMAttention(config).eval()
    model.load_state_dict(network.state_dict(), strict=False)  # the head's weights: fitted by the caller
    return model


def fusion(run, rows: dict, speakers: dict, labels: dict, cs=(0.01,), *, in_model: bool = False) -> dict:
    """Per fold of the crossval directory ``run``: UARs of ``network``, ``linear C`` and ``fused C`` for
    each C in ``cs`` (and ``model C``, ``in_model``: see the module's text). ``rows``: path -> raw rows
    ``(68, frames)``; ``speakers`` / ``labels``: path -> the clip's speaker id / label index."""
    records = {(r["seed"], r["fold"]): r for r in json.loads((Path(run) / "crossval.json").read_text())["folds"]}
    stats = {path: clip_statistics(r.double()[None])[0].numpy() for path, r in rows.items()}
    out = {}
    for seed, fold in sorted(records):
        where = fold_dir(run, seed, fold)
        paths, truth, network = ensemble_probabilities(sorted(glob.glob(f"{where}/member_*")) or [where])
        truth, network = np.array(truth), network.numpy()
        train = sorted(p for p in rows if speakers[p] in set(records[seed, fold]["actors"]["train"]))
        scores = {"network": uar(network.argmax(1), truth), "training_clips": len(train)}
        if in_model:  # the checkpoint rebuilt once; its head refitted for each C below
            if glob.glob(f"{where}/member_*"):
                raise SystemExit(f"{where}: --in-model scores one checkpoint per fold, not an ensemble")
            rebuilt = clip_norm_model(json.loads((where / "result.json").read_text())["best_checkpoint"])
            train_stats = rebuilt.clip_statistics(*padded_rows([rows[p] for p in train]))
            test = padded_rows([rows[p] for p in paths])
            with torch.no_grad():
                # the rebuilt network alone on raw rows: the run's own answers (a check of clip_norm)
                scores["model network"] = uar(rebuilt(*test, fuse=False).argmax(1).numpy(), truth)
        for c in cs:
            model = logistic(c).fit(np.stack([stats[p] for p in train]), [labels[p] for p in train])
            linear = np.zeros_like(network)  # a label no training clip has gets probability 0
            linear[:, model.classes_] = model.predict_proba(np.stack([stats[p] for p in paths]))
            scores[f"linear {c:g}"] = uar(linear.argmax(1), truth)
            scores[f"fused {c:g}"] = uar(((network + linear) / 2).argmax(1), truth)
            if in_model:
                rebuilt.fit_stats_head(train_stats, torch.tensor([labels[p] for p in train]), c=c)
                with torch.no_grad():
                    scores[f"model {c:g}"] = uar(rebuilt(*test).argmax(1).numpy(), truth)
        out[f"seed_{seed}/fold_{fold}"] = scores
    keys = [k for k in next(iter(out.values())) if k != "training_clips"]
    return {"folds": out, "summary": fold_summary(out, keys)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--feats", required=True, help="recipe_search_cache.py's file of the run's corpus")
    p.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--in-model", action="store_true",
                   help="also score each fold's checkpoint with ser_gpu's in-model head (clip_norm, fit_stats_head)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    cache = torch.load(a.feats, weights_only=False)
    clips = cache_clips(cache)
    rows = raw_rows(cache)
    speakers = {str(c.path): c.speaker for c in clips}
    labels = {str(c.path): c.label for c in clips}
    report = {}
    for run in a.runs:
        report[run] = fusion(run, rows, speakers, labels, a.C, in_model=a.in_model)
        print(run, {k: f"{v['mean']:.3f} ± {v['std']:.3f}" for k, v in report[run]["summary"].items()})
    save_report(report, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
