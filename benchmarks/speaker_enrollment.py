"""How many recordings of a speaker does a ``--normalize speaker`` model need (issue 17)?

    python benchmarks/speaker_enrollment.py RUN_DIR [RUN_DIR ...] --feats FEATS.pt [--sizes 1 2 5 10 30 0]
        [--draws 5] [--json OUT.json]

A ``--normalize speaker`` model standardises each clip with its speaker's row statistics. In cross-validation
(and ``evaluate``) they come from all of a test speaker's clips (60 on RAVDESS); ``predict`` takes the files of
one call as one speaker's, so a user with ``k`` recordings gets statistics from ``k``. This scores each fold's
``best.pt`` of a crossval directory on its test clips with the statistics of ``k`` clips: each test speaker's
clips are shuffled and cut into groups of ``k`` (the last group keeps the remainder), every clip is
standardised with its group's statistics (``RowStatistics``, as ``predict`` does) and answered by the model
(fused with its statistics head when it has one). ``k = 0`` is all of the speaker's clips (crossval's own
setting). Test UAR per fold, averaged over ``--draws`` shuffles, then mean ± sample std over the folds.

The raw rows come from ``recipe_search_cache.py`` (version 0: the clips without augmentation).
"""
import argparse
import glob
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import padded_rows  # noqa: E402
from ser_gpu.checkpoint import load_models, speaker_normalized  # noqa: E402
from ser_gpu.data import EMOTIONS  # noqa: E402
from ser_gpu.evaluate import metrics_from_predictions  # noqa: E402
from ser_gpu.transforms.row_stats import RowStatistics, standardize_rows  # noqa: E402


def groups_of(speakers, k: int, generator) -> torch.Tensor:
    """A group id per clip: each speaker's clips shuffled and cut into groups of ``k`` (0: one group)."""
    group = torch.empty(len(speakers), dtype=torch.int64)
    next_id = 0
    for s in sorted(set(speakers)):
        idx = torch.tensor([i for i, x in enumerate(speakers) if x == s])
        idx = idx[torch.randperm(len(idx), generator=generator)]
        size = len(idx) if k == 0 else k
        group[idx] = next_id + torch.arange(len(idx)) // size
        next_id = int(group[idx].max()) + 1
    return group


def fold_uars(member: str, raw: dict, sizes, draws: int) -> dict:
    model, payloads = load_models(f"{member}/best.pt", device="cpu")
    if not speaker_normalized(payloads[0]):
        raise SystemExit(f"{member}: not a --normalize speaker run")
    tested = json.load(open(f"{member}/test_probabilities.json"))
    rows = [raw[p][0] for p in tested["paths"]]  # (68, frames) each: x zero-pads them to the longest
    x, lengths = padded_rows(rows)
    speakers = [raw[p][1] for p in tested["paths"]]
    truth = torch.tensor(tested["labels"])
    out = {}
    with torch.no_grad():
        for k in sizes:
            generator = torch.Generator().manual_seed(k)
            scores = []
            for _ in range(draws if k else 1):
                group = groups_of(speakers, k, generator)
                stats = RowStatistics(int(group.max()) + 1, x.shape[1])
                stats.add(x, lengths, group)
                mean, std = stats.result()
                pred = model(standardize_rows(x, lengths, mean[group], std[group]), lengths).argmax(-1)
                scores.append(metrics_from_predictions(truth, pred, EMOTIONS)["uar"])
            out[k] = float(np.mean(scores))
    return out


def enrollment(run, raw: dict, sizes, draws: int) -> dict:
    """``{"seed_S/fold_I": {k: test UAR}}`` for each fold of the crossval directory ``run`` (an ensemble's
    member 0, the fold's one-model run). ``raw``: clip path -> ``(raw rows (68, frames), speaker)``."""
    folds = {}
    for fold in sorted(glob.glob(f"{run}/seed_*/fold_*")):
        members = sorted(glob.glob(f"{fold}/member_*"))
        folds[fold[len(str(run)) + 1:]] = fold_uars(members[0] if members else fold, raw, sizes, draws)
    return folds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--feats", required=True, help="recipe_search_cache.py's file of the runs' corpus")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 5, 10, 30, 0])
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--json")
    a = p.parse_args()
    d = torch.load(a.feats, weights_only=False)
    raw = {path: (f, actor) for path, f, actor in zip(d["paths"], d["feats"][0], d["actors"])}
    seconds = np.mean([f.shape[1] for f in d["feats"][0]]) * 512 / 22050  # hop 512 at 22050 Hz
    print(f"a clip holds {seconds:.2f} s of (trimmed) sound on average")
    result = {"command": "python benchmarks/speaker_enrollment.py " + " ".join(os.path.basename(r) for r in a.runs)
              + f" --sizes {' '.join(map(str, a.sizes))} --draws {a.draws}",
              "machine": f"{platform.machine()} CPU, torch {torch.__version__}",
              "mean_seconds_per_clip": float(seconds), "sizes": a.sizes, "draws": a.draws, "runs": {}}
    for run in a.runs:
        folds = enrollment(run, raw, a.sizes, a.draws)
        summary = {}
        for k in a.sizes:
            v = np.array([f[k] for f in folds.values()])
            summary[str(k)] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
            label = "all" if k == 0 else k
            print(f"{run}: statistics of {label} clip(s): UAR {v.mean():.3f} ± {summary[str(k)]['std']:.3f}"
                  f"  ({' '.join(f'{u:.3f}' for u in v)})", flush=True)
        result["runs"][os.path.basename(run.rstrip("/"))] = {"folds": folds, "summary": summary}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
