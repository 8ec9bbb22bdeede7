"""Which weights should an early-stopped run answer with: the selected epoch's, the last epoch's, or a mean?

    python benchmarks/checkpoint_average.py CV_DIR [CV_DIR ...] [--out FILE]

For every fold run of each ``CV_DIR`` (a finished ``python -m ser_gpu.crossval`` trained with early stopping:
``clip``, ``original``), on the clean test clips, test UAR and accuracy (WA) of the model's own answer (fused
with its statistics head and corrected for the class prior as the run was trained) with the weights below; a
fold of ``--ensemble`` members answers with their mean softmax, each member's weights taken the same way:

- ``selected``: the weights of the epoch the validation score picked (``selected.pt`` of a run trained with
  ``--average-weights``, else ``best.pt``);
- ``last``: those of the last epoch (``last.pt``; with early stopping, ``early_stopping`` epochs later);
- ``weights of selected and last``: the mean of those two weight sets (batch-norm statistics included), one model;
- ``softmax of selected and last``: the two models' softmax averaged (an ensemble of two);
- ``window``: the mean of the weights of the selected epoch and of every epoch after it, what ``best.pt`` holds
  after a run with ``--average-weights`` (``ser_gpu.weight_average``); for runs before it, ``window.pt`` where
  the fold directory has one (written by the patch that measured the idea on the three RAVDESS fold sets,
  2026-12-06), else left out.

The heads of all of them are the same (fitted once, before the first epoch): only the network differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cv_runs_main, fold_summary, uar  # noqa: E402
from benchmarks.noise_robustness import answers, corpus_rows  # noqa: E402
from ser_gpu.checkpoint import load_checkpoint, load_models  # noqa: E402
from ser_gpu.data import scan_corpus  # noqa: E402


def mean_weights(a: dict, b: dict) -> dict:
    """The checkpoint payload ``a`` with its weights replaced by the mean of ``a``'s and ``b``'s (float
    tensors; the others, ``num_batches_tracked``, ``b``'s)."""
    state = {k: (v + b["model_state"][k]) / 2 if v.is_floating_point() else b["model_state"][k]
             for k, v in a["model_state"].items()}
    return {**a, "model_state": state}


def fold_checkpoints(where: Path) -> dict:
    """``{variant: [payload, ...]}`` of the module docstring for the fold directory ``where`` (its members'
    payloads in turn when it holds ``member_*`` runs; ``window`` only when every member has one)."""
    members = sorted(p for p in where.glob("member_*") if p.is_dir())
    if members:
        each = [member_checkpoints(m) for m in members]
        return {name: [p for e in each for p in e[name]] for name in each[0] if all(name in e for e in each)}
    return member_checkpoints(where)


def member_checkpoints(where: Path) -> dict:
    """:func:`fold_checkpoints` of one training run's directory."""
    best = load_checkpoint(where / "best.pt")
    averaged = best["metrics"].get("averaged_epochs") is not None
    selected = load_checkpoint(where / "selected.pt") if averaged else best
    last = load_checkpoint(where / "last.pt")
    variants = {"selected": [selected], "last": [last],
                "weights of selected and last": [mean_weights(selected, last)],
                "softmax of selected and last": [selected, last]}
    if averaged:
        variants["window"] = [best]
    elif (where / "window.pt").exists():
        variants["window"] = [load_checkpoint(where / "window.pt")]
    return variants


def checkpoint_average(cv_dir) -> dict:
    """Per fold run of ``cv_dir``: UAR and WA of each variant of :func:`fold_checkpoints`, with the epochs."""
    cv_dir = Path(cv_dir)
    record = json.loads((cv_dir / "crossval.json").read_text())
    clips = scan_corpus(json.loads((cv_dir / "crossval_config.json").read_text())["data_dirs"])
    data, folds = None, {}
    for run in record["folds"]:
        where = cv_dir / f"seed_{run['seed']}" / f"fold_{run['fold']}"
        variants = fold_checkpoints(where)
        if data is None:  # the corpus's clean rows: once, for every fold
            data = corpus_rows(variants["selected"][0], clips)
        test_rows, _, speaker, labels = data
        test = torch.tensor([i for i, s in enumerate(speaker) if s in run["actors"]["test"]])
        scores = {"selected epoch": variants["selected"][0]["epoch"], "last epoch": variants["last"][0]["epoch"]}
        for name, payloads in variants.items():
            models, _ = load_models(payloads, device="cpu")
            models = list(getattr(models, "members", [models]))
            pred = answers(models, test_rows[None], test)["fused"].argmax(-1)
            scores[f"{name} UAR"] = uar(pred, labels[test])
            scores[f"{name} WA"] = float((pred == labels[test]).double().mean())
        folds[f"seed_{run['seed']}/fold_{run['fold']}"] = scores
        print(f"fold_{run['fold']}", {k: round(v, 3) for k, v in scores.items()}, flush=True)
    keys = sorted(set.intersection(*(set(f) for f in folds.values())), key=list(next(iter(folds.values()))).index)
    return {"cv_dir": str(cv_dir), "folds": folds, "summary": fold_summary(folds, keys)}


def main(argv=None) -> int:
    return cv_runs_main("checkpoint_average.py", checkpoint_average, __doc__, argv, width=34,
                        shown=lambda key: not key.endswith("epoch"))


if __name__ == "__main__":
    sys.exit(main())
