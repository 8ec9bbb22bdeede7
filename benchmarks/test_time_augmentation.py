"""Does averaging a model's answers over augmented versions of each test clip (test-time augmentation) lift a
crossval's UAR?

    python benchmarks/test_time_augmentation.py CV_DIR [CV_DIR ...] [--versions 1 2 4 8] [--seed 0] [--out FILE]

For every fold run of each ``CV_DIR`` (a finished ``python -m ser_gpu.crossval`` whose models have a
statistics head), each test clip is scored clean and in ``max(--versions)`` augmented versions drawn by the
run's own ``WaveformAugment`` (its ``p_*`` settings: Gaussian noise, time stretch, pitch shift, shift, each
with its own draw per version; no SpecAugment; one generator seeded ``--seed``, the versions of
``noise_robustness.corpus_rows``). The members' softmax is averaged per half (``noise_robustness.answers``),
then each half's softmax is averaged over the clean clip and its first ``N`` versions, for each ``N`` of
``--versions`` (``N = 0``: the clip alone). Test UAR and accuracy (WA) of:

- ``fused``: each half divided by the prior it was trained under (``prior_correction.corrected_halves``, whose
  mean is that benchmark's "each half / its prior", the answer of ``train --prior-correction``), then averaged;
- ``fused, network TTA only``: the same with the head reading the clean clip only;
- ``network`` and ``head`` alone (uncorrected).

Runs trained without the correction are scored with it too, as ``prior_correction.py`` does after the fact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fold_summary, report_cv_runs, uar  # noqa: E402
from benchmarks.noise_robustness import answers, fold_runs  # noqa: E402
from benchmarks.prior_correction import corrected_halves, training_prior  # noqa: E402
from ser_gpu.train import TrainConfig  # noqa: E402

def tta(cv_dir, n_versions, *, seed: int = 0) -> dict:
    """Per fold run of ``cv_dir``: UAR and WA of the answers of the module docstring for each ``N`` of
    ``n_versions`` (a list of non-negative ints)."""
    folds = {}
    for run, models, payloads, data, test, train in fold_runs(cv_dir, (), max(n_versions), seed=seed):
        test_rows, versions, _, labels = data
        prior = training_prior(labels[train], models[0].config.n_classes)
        weighted = TrainConfig.from_dict(payloads[0]["train_config"]).class_weights
        halves = [answers(models, rows, test, fused=False) for rows in [test_rows[None], *versions]]
        scores = {}
        for n in n_versions:
            network = torch.stack([h["network"] for h in halves[:n + 1]]).mean(0)
            head = torch.stack([h["head"] for h in halves[:n + 1]]).mean(0)
            picked = {
                "fused": sum(corrected_halves(network, head, prior, class_weights=weighted)) / 2,
                "fused, network TTA only": sum(corrected_halves(network, halves[0]["head"], prior,
                                                                class_weights=weighted)) / 2,
                "network": network, "head": head}
            for name, p in picked.items():
                pred = p.argmax(-1)
                scores[f"{name} N={n} UAR"] = uar(pred, labels[test])
                scores[f"{name} N={n} WA"] = float((pred == labels[test]).double().mean())
        folds[f"seed_{run['seed']}/fold_{run['fold']}"] = scores
        print(f"fold_{run['fold']}", {k: round(v, 3) for k, v in scores.items()
                                      if k.startswith("fused N") and k.endswith("UAR")}, flush=True)
    return {"cv_dir": str(cv_dir), "versions": list(n_versions), "seed": seed, "folds": folds,
            "summary": fold_summary(folds, list(next(iter(folds.values()))))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_dir", nargs="+")
    p.add_argument("--versions", type=int, nargs="+", default=[1, 2, 4, 8], metavar="N",
                   help="augmented versions averaged with the clean clip (default: 1 2 4 8; 0 is always scored)")
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentation draws (default: 0)")
    p.add_argument("--out", help="JSON file for the figures")
    a = p.parse_args(argv)
    if min(a.versions) < 0:
        p.error(f"--versions must be non-negative, got {min(a.versions)}")
    n_versions = sorted({0, *a.versions})
    report_cv_runs("test_time_augmentation.py", lambda cv_dir: tta(cv_dir, n_versions, seed=a.seed), a.cv_dir,
                   a.out, argv, width=36, shown=lambda key: key.endswith("UAR"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
