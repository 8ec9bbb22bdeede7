"""Is the even mix of the network and the statistics head the right one? The fused answer ``w * network +
(1 - w) * head`` for a sweep of ``w``, and ``w`` chosen per fold on the validation actors.

    python benchmarks/fusion_weight.py CV_DIR [CV_DIR ...] [--out FILE]

The model answers with ``w = 0.5`` (the mean of the two softmaxes, each divided by the class prior it was
trained under: ``prior_correction.corrected_halves``, whose mean is that benchmark's "each half / its
prior"). For every fold run of each
``CV_DIR`` (a finished ``python -m ser_gpu.crossval`` whose models have a statistics head; members'
softmax averaged per half, clean clips), test UAR of:

- ``w=...``: each ``w`` of 0, 0.1, ..., 1 (0: the head alone, 1: the network alone; an oracle sweep,
  read on the test actors: it shows the shape, not a choice);
- ``w by val loss``: the ``w`` of that grid with the lowest class-balanced log loss on the fold's
  validation actors (the loss that selects ``best.pt`` under the prior correction), ties to the first;
- ``w by val UAR``: the ``w`` with the highest validation UAR, ties to the nearest 0.5.

Runs trained without the correction are scored with it, as ``prior_correction.py`` does after the fact.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cv_runs_main, fold_summary, uar  # noqa: E402
from benchmarks.noise_robustness import answers, fold_runs  # noqa: E402
from benchmarks.prior_correction import corrected_halves, training_prior  # noqa: E402
from ser_gpu.train import TrainConfig, balanced_class_weights  # noqa: E402

WEIGHTS = tuple(k / 10 for k in range(11))


def balanced_log_loss(p: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """Mean negative log probability of the true class, each clip weighted ``n / (K n_k)`` by its class
    (``train.balanced_class_weights``, the weights of training's balanced validation loss)."""
    weight = balanced_class_weights(torch.bincount(labels, minlength=n_classes)).double()
    return float(F.nll_loss(p.double().clamp_min(1e-12).log(), labels, weight=weight))


def mixes(cv_dir) -> dict:
    """Per fold run of ``cv_dir``: test UAR for each of :data:`WEIGHTS` and for ``w`` chosen on the
    validation actors (the module docstring), and the chosen ``w``."""
    folds = {}
    for run, models, payloads, data, test, train in fold_runs(cv_dir):
        test_rows, _, speaker, labels = data
        val = torch.tensor([i for i, s in enumerate(speaker) if s in run["actors"]["val"]])
        n_classes = models[0].config.n_classes
        prior = training_prior(labels[train], n_classes)
        weighted = TrainConfig.from_dict(payloads[0]["train_config"]).class_weights

        def halves(index):  # each half divided by the prior it was trained under
            h = answers(models, test_rows[None], index, fused=False)
            return corrected_halves(h["network"], h["head"], prior, class_weights=weighted)

        (net_val, head_val), (net_test, head_test) = halves(val), halves(test)
        y_val, y_test = labels[val], labels[test]
        w_loss = min(WEIGHTS, key=lambda w: balanced_log_loss(w * net_val + (1 - w) * head_val, y_val, n_classes))
        w_uar = max(WEIGHTS, key=lambda w: (uar((w * net_val + (1 - w) * head_val).argmax(-1), y_val), -abs(w - 0.5)))
        scores = {f"w={w:g}": uar((w * net_test + (1 - w) * head_test).argmax(-1), y_test) for w in WEIGHTS}
        scores.update({"w by val loss": scores[f"w={w_loss:g}"], "w by val UAR": scores[f"w={w_uar:g}"],
                       "chosen w (val loss)": w_loss, "chosen w (val UAR)": w_uar})
        folds[f"seed_{run['seed']}/fold_{run['fold']}"] = scores
        print(f"fold_{run['fold']}", {k: round(v, 3) for k, v in scores.items() if not k.startswith("w=")}, flush=True)
    return {"cv_dir": str(cv_dir), "folds": folds, "summary": fold_summary(folds, list(next(iter(folds.values()))))}


def main(argv=None) -> int:
    return cv_runs_main("fusion_weight.py", mixes, __doc__, argv, width=24)


if __name__ == "__main__":
    sys.exit(main())
