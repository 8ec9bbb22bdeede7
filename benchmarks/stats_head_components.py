"""What the statistics head adds (issue 17): per fold of a ``crossval --stats-head C`` run, the test UAR of
the fused model, of the head alone and of the network alone.

    python benchmarks/stats_head_components.py RUN_DIR [RUN_DIR ...] --feats FEATS.pt [--json OUT.json]

The fused answers are each fold's ``test_probabilities.json`` (members averaged); the head's are
recomputed from ``best.pt`` (``stats_mean``, ``stats_std``, ``stats_linear``) on the clips' raw rows from
``recipe_search_cache.py`` (version 0), standardised as the run did: with each actor's statistics over all
of its clips (``--normalize speaker``) or with the model's ``input_mean``/``input_std`` (``--normalize
train``, the ``speech`` recipe's; other normalisations are refused); the network's are then ``2 p_fused -
p_head`` (the fused output is the mean of the two softmaxes). For a run with ``prior_correction`` both
halves are the corrected ones the model fused (the head's logits less ``head_log_prior``).
"""
import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fold_summary, raw_rows, save_report, uar  # noqa: E402
from ser_gpu.models.stats_head import clip_statistics, standardized_statistics  # noqa: E402


def speaker_rows(cache: dict) -> dict:
    """path -> the clip's rows ``(68, frames)`` standardised with its actor's statistics over all of its
    clips (population std, 1 where a row never varies); ``cache``: ``recipe_search_cache.py``'s file,
    loaded (its version 0)."""
    actors, feats = np.array(cache["actors"]), cache["feats"][0]
    rows = {}
    for actor in np.unique(actors):
        idx = np.where(actors == actor)[0]
        every = torch.cat([feats[i].double() for i in idx], 1)
        mean, std = every.mean(1, keepdim=True), every.std(1, unbiased=False, keepdim=True)
        std = torch.where(std > 0, std, torch.ones_like(std))
        for i in idx:
            rows[cache["paths"][i]] = ((feats[i].double() - mean) / std).float()
    return rows


def fold_probabilities(member, rows) -> tuple:
    """``(fused, head, labels)`` of one training run's test clips: its ``test_probabilities.json`` and the
    softmax of its statistics head (from ``best.pt``). ``rows``: ``{"speaker": path -> speaker-standardised
    rows, "train": path -> raw rows}`` (the one the run's normalisation needs)."""
    payload = torch.load(f"{member}/best.pt", weights_only=True)
    config = payload["train_config"]
    normalize = config.get("normalize")
    if normalize not in ("speaker", "train") or config.get("stats_head") is None:
        raise SystemExit(f"{member}: not a --normalize speaker/train --stats-head run")
    if normalize not in rows:
        raise SystemExit(f"{member}: a --normalize {normalize} run needs rows[{normalize!r}]")
    state = payload["model_state"]
    tested = json.load(open(f"{member}/test_probabilities.json"))
    stats = torch.stack([clip_statistics(rows[normalize][path][None])[0] for path in tested["paths"]])
    if normalize == "train":  # the head reads the rows after the model's input_norm
        stats = standardized_statistics(stats.double(), state["input_mean"].double(),
                                        state["input_std"].double()).float()
    z = (stats - state["stats_mean"]) / state["stats_std"]
    logits = z @ state["stats_linear.weight"].T + state["stats_linear.bias"]
    if "head_log_prior" in state:  # a prior_correction run fused the corrected head (and network)
        logits = logits - state["head_log_prior"]
    head = torch.softmax(logits, -1).numpy()
    return np.array(tested["probabilities"]), head, np.array(tested["labels"])


def components(run, rows) -> dict:
    """Per fold of the crossval directory ``run`` (members averaged) the test UAR of the fused model, the
    head alone and the network alone (``2 p_fused - p_head``), and their mean ± sample std."""
    folds = {}
    for fold in sorted(glob.glob(f"{run}/seed_*/fold_*")):
        members = sorted(glob.glob(f"{fold}/member_*")) or [fold]
        parts = [fold_probabilities(m, rows) for m in members]
        fused = np.mean([p[0] for p in parts], 0)
        head = np.mean([p[1] for p in parts], 0)
        truth = parts[0][2]
        folds[fold[len(str(run)) + 1:]] = {"fused": uar(fused.argmax(1), truth), "head": uar(head.argmax(1), truth),
                                           "network": uar((2 * fused - head).argmax(1), truth)}
    return {"folds": folds, "summary": fold_summary(folds, ("fused", "head", "network"))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--feats", required=True, help="recipe_search_cache.py's file of the run's corpus")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    cache = torch.load(a.feats, weights_only=False)
    rows = {"speaker": speaker_rows(cache), "train": raw_rows(cache)}
    report = {}
    for run in a.runs:
        report[run] = components(run, rows)
        print(run, {k: f"{v['mean']:.3f} ± {v['std']:.3f}" for k, v in report[run]["summary"].items()})
    save_report(report, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
