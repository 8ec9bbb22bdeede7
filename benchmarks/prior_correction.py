"""Does answering under a uniform class prior lift a crossval's UAR? Each half of the fused model divided by
the class prior it was trained under.

    python benchmarks/prior_correction.py CV_DIR [CV_DIR ...] [--out FILE]

RAVDESS holds half as many neutral clips as clips of any other emotion, and UAR weighs every emotion
alike. A model trained under the training split's class prior ``pi`` (its frequencies) answers
``p(c | x)``, whose argmax maximises accuracy under ``pi``; the argmax of ``p(c | x) / pi(c)`` maximises
it under a uniform prior, which is what UAR scores. The statistics head is fitted without class weights
(its intercepts learn ``pi``); the network is trained under ``pi`` without class weights (``clip``,
``original``) and under a uniform prior with them (``speech``, ``speaker``: weights ``n / (K n_k)``).

For every fold run of each ``CV_DIR`` (a finished ``python -m ser_gpu.crossval`` whose models have a
statistics head), on the clean test clips, members' softmax averaged per half as
``noise_robustness.answers`` takes them apart, test UAR and accuracy (WA) of:

- ``fused``: the mean of the network's and the head's softmax (the stored answer of a run without
  ``prior_correction``; the halves are read uncorrected, ``forward(fuse=False)`` and the head's logits, so a
  run trained with the correction is measured as if without it);
- ``fused / prior``: that answer divided by ``pi`` and renormalised;
- ``head / prior``: the head's softmax divided by ``pi`` (renormalised), then fused with the network's;
- ``each half / its prior``: the head's divided by ``pi``, the network's by ``pi`` when the run had no
  class weights (else left as it is), each renormalised, then fused;
- ``network``, ``head``, ``network / prior``, ``head / prior alone``.

``pi``: the class frequencies of the fold's training clips (a class without any: the largest of the others,
as the model takes it). ``each half / its prior`` is the rule
``train --prior-correction`` builds into the model (``ModelConfig.prior_correction``; tested equal).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cv_runs_main, fold_summary, uar  # noqa: E402
from benchmarks.noise_robustness import answers, fold_runs  # noqa: E402
from ser_gpu.models.cnn_bilstm_attention import class_log_prior  # noqa: E402
from ser_gpu.train import TrainConfig  # noqa: E402


def _divided(p: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    q = p / prior
    return q / q.sum(-1, keepdim=True)


def training_prior(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``pi``: the class frequencies of the training clips ``labels``, as the model takes them
    (:func:`~ser_gpu.models.cnn_bilstm_attention.class_log_prior`: an absent class gets the largest of the
    others), up to a common factor (every variant renormalises)."""
    return class_log_prior(torch.bincount(labels, minlength=n_classes), n_classes).exp().float()


def corrected_halves(network: torch.Tensor, head: torch.Tensor, prior: torch.Tensor, *, class_weights: bool):
    """``(network, head)`` softmax, each divided by the prior it was trained under and renormalised: the
    head by ``prior``, the network by it too unless ``class_weights`` trained it balanced."""
    return _divided(network, prior) if not class_weights else network, _divided(head, prior)


def variants(network: torch.Tensor, head: torch.Tensor, prior: torch.Tensor, *, class_weights: bool) -> dict:
    """The answers compared (each ``(clips, classes)``), from the two halves' softmax and the training prior."""
    fused = (network + head) / 2
    return {"fused": fused, "fused / prior": _divided(fused, prior),
            "head / prior": (network + _divided(head, prior)) / 2,
            "each half / its prior": sum(corrected_halves(network, head, prior, class_weights=class_weights)) / 2,
            "network": network, "head": head, "network / prior": _divided(network, prior),
            "head / prior alone": _divided(head, prior)}


def correction(cv_dir) -> dict:
    """Per fold run of ``cv_dir``: UAR and WA of every answer of :func:`variants` on the clean test clips."""
    folds = {}
    for run, models, payloads, data, test, train in fold_runs(cv_dir):
        test_rows, _, _, labels = data
        prior = training_prior(labels[train], models[0].config.n_classes)
        halves = answers(models, test_rows[None], test, fused=False)
        weighted = TrainConfig.from_dict(payloads[0]["train_config"]).class_weights
        scores = {"class_weights": weighted}
        for name, p in variants(halves["network"], halves["head"], prior, class_weights=weighted).items():
            pred = p.argmax(-1)
            scores[f"{name} UAR"] = uar(pred, labels[test])
            scores[f"{name} WA"] = float((pred == labels[test]).double().mean())
        folds[f"seed_{run['seed']}/fold_{run['fold']}"] = scores
        print(f"fold_{run['fold']}", {k: round(v, 3) for k, v in scores.items() if k.endswith("UAR")}, flush=True)
    keys = [k for k in next(iter(folds.values())) if k != "class_weights"]
    return {"cv_dir": str(cv_dir), "folds": folds, "summary": fold_summary(folds, keys)}


def main(argv=None) -> int:
    return cv_runs_main("prior_correction.py", correction, __doc__, argv, width=32)


if __name__ == "__main__":
    sys.exit(main())
