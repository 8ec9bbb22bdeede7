"""How a crossval run's fold models answer under added white noise, and what the head's augmented data changes.

    python benchmarks/noise_robustness.py CV_DIR [--snr 30 20 10] [--refit-head K ... [--C C ...]] [--seed 0]
                                          [--out FILE]

``CV_DIR`` is a finished ``python -m ser_gpu.crossval`` directory whose models have a statistics head
(``clip``, ``speech``, ``speaker``: rows standardised with each speaker's statistics over all of that
speaker's clips in the same condition, clean or at the same SNR, as a user's recordings from one noisy
room would be). For every fold of
every seed, each test clip is scored clean and with white Gaussian noise at each ``--snr`` (dB, against
the clip's own RMS over its trimmed samples: :func:`ser_gpu.functional.add_noise_snr`, the noise of
``evaluate --snr``; one generator, ``--seed``), by the fold's models as stored
(members' softmax averaged): the **network** alone (``fuse=False``), the statistics **head** alone and
the **fused** model (what ``evaluate`` and ``predict`` answer). Test UAR, mean over the folds.

``--refit-head K`` also scores each model with its head refitted as ``train --stats-head-copies K``
fits it: :meth:`~ser_gpu.models.CNNBiLSTMAttention.fit_stats_head` (the run's ``stats_head`` C) on the
fold's training actors (``crossval.json``) clean plus K augmented versions, drawn by the run's
``WaveformAugment`` (its ``p_*`` settings, no SpecAugment; standardised with the clean clips' speaker
statistics, as training does). The network is the stored one: the head's
versions are drawn from a generator of their own in training, so a run with ``--stats-head-copies K``
trains the same network (``tests/test_stats_head.py``). The draws are not training's own (here one
generator over the whole corpus, shared by the folds), the same distribution. ``--C`` refits with other
inverse penalties instead (each one; the same versions), to see whether the run's C suits the K versions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fold_summary, save_results, uar  # noqa: E402
from ser_gpu.checkpoint import feature_config, load_models, speaker_normalized  # noqa: E402
from ser_gpu.data import WaveformSet, load_waveforms, scan_corpus  # noqa: E402
from ser_gpu.functional import add_noise_snr  # noqa: E402
from ser_gpu.train import TrainConfig  # noqa: E402
from ser_gpu.transforms.augment import WaveformAugment  # noqa: E402
from ser_gpu.transforms.features import FeatureExtractor  # noqa: E402
from ser_gpu.transforms.row_stats import RowStatistics, standardize_rows  # noqa: E402

BATCH = 48


def rows(dataset: WaveformSet, extractor, *, snr_db=None, augment=None, generator=None) -> list:
    """The 68 rows of every clip of ``dataset`` in order, as ``[(features, frame_lengths)]`` per batch of
    :data:`BATCH`: clean, with noise at ``snr_db`` or augmented by ``augment`` (draws from ``generator``)."""
    out = []
    with torch.no_grad():
        for y, lengths, _ in dataset.batches(BATCH):
            if augment is not None:
                y, lengths = augment(y, lengths, generator=generator)
            if snr_db is not None:
                y = add_noise_snr(y, snr_db, lengths=lengths, generator=generator)
            batch = extractor(y, lengths)
            out.append((batch.features, batch.frame_lengths))
    return out


def by_speaker(batches, groups: torch.Tensor, stats=None):
    """``batches`` (every clip, in order) with each clip's rows standardised by its speaker's ``(mean, std)``
    (:class:`~ser_gpu.transforms.row_stats.RowStatistics`), from ``stats`` or else from these rows; returns
    ``(batches, stats)``."""
    if stats is None:
        acc = RowStatistics(int(groups.max()) + 1, batches[0][0].shape[1])
        for k, (x, fl) in enumerate(batches):
            acc.add(x, fl, groups[k * BATCH:(k + 1) * BATCH])
        stats = acc.result()
    mean, std = stats
    out = []
    for k, (x, fl) in enumerate(batches):
        g = groups[k * BATCH:(k + 1) * BATCH]
        out.append((standardize_rows(x, fl, mean[g], std[g]), fl))
    return out, stats


def statistics(model, batches, index: torch.Tensor) -> torch.Tensor:
    """What ``model``'s head reads of the clips ``index`` (``model.clip_statistics``)."""
    return torch.cat([model.clip_statistics(x, fl) for x, fl in batches])[index]


def answers(models, batches, index: torch.Tensor, *, fused: bool = True) -> dict:
    """Softmax of the clips ``index``, members averaged: ``network``, ``head`` and (unless ``fused=False``,
    which saves the model's second network pass) ``fused``."""
    picked = {"network": [], "head": [], **({"fused": []} if fused else {})}
    with torch.no_grad():
        for k, (x, fl) in enumerate(batches):
            sel = index[(index >= k * BATCH) & (index < (k + 1) * BATCH)] - k * BATCH
            if sel.numel() == 0:
                continue
            x, fl = x[sel], fl[sel]
            for name, fn in (("network", lambda m: m(x, fl, fuse=False)),
                             ("head", lambda m: m.stats_linear((m.clip_statistics(x, fl) - m.stats_mean)
                                                               / m.stats_std)),
                             ("fused", lambda m: m(x, fl))):
                if name not in picked:
                    continue
                picked[name].append(torch.stack([fn(m).float().softmax(-1) for m in models]).mean(0))
    return {name: torch.cat(p) for name, p in picked.items()}


def corpus_rows(payload: dict, clips, snrs=(), n_versions: int = 0, *, seed: int = 0):
    """Every clip's rows as the run's models read them: ``(test_rows, versions, speaker, labels)``, where
    ``test_rows[snr]`` are the batches of :func:`rows` clean (``None``) and at each of ``snrs``, ``versions``
    ``n_versions`` augmented passes (the run's ``WaveformAugment``), all from one generator seeded ``seed``;
    for a speaker-normalised run each condition standardised with its own speakers' statistics, the
    versions with the clean ones."""
    fc = feature_config(payload)
    waves, clips = load_waveforms(clips, sr=fc.sr, trim=fc.trim, top_db=fc.top_db, progress=False)
    speaker = [c.speaker for c in clips]
    labels = torch.tensor([c.label for c in clips])
    dataset = WaveformSet(waves, labels.tolist())
    extractor = FeatureExtractor(fc, trim=False)
    generator = torch.Generator().manual_seed(seed)
    test_rows = {snr: rows(dataset, extractor, snr_db=snr, generator=generator) for snr in [None, *snrs]}
    versions = []
    if n_versions:
        tc = TrainConfig.from_dict(payload["train_config"])
        augment = WaveformAugment(sr=fc.sr, p_noise=tc.p_noise, p_stretch=tc.p_stretch, p_pitch=tc.p_pitch,
                                  p_shift=tc.p_shift)
        versions = [rows(dataset, extractor, augment=augment, generator=generator) for _ in range(n_versions)]
    if speaker_normalized(payload):  # each condition its own speaker statistics; versions the clean ones
        ids = {s: k for k, s in enumerate(sorted(set(speaker)))}
        groups = torch.tensor([ids[s] for s in speaker])
        clean = by_speaker(test_rows[None], groups)
        test_rows = {snr: clean[0] if snr is None else by_speaker(b, groups)[0] for snr, b in test_rows.items()}
        versions = [by_speaker(v, groups, clean[1])[0] for v in versions]
    return test_rows, versions, speaker, labels


def fold_models(cv_dir: Path):
    """``(run, models, payloads)`` for every fold run of the crossval in ``cv_dir`` (``crossval.json``'s
    record, the members' models on the CPU -- one for a one-model fold -- and their checkpoints)."""
    record = json.loads((cv_dir / "crossval.json").read_text())
    for run in record["folds"]:
        where = cv_dir / f"seed_{run['seed']}" / f"fold_{run['fold']}"
        members = sorted(p for p in where.glob("member_*") if p.is_dir()) or [where]
        ensemble, payloads = load_models([m / "best.pt" for m in members], device="cpu")
        models = list(getattr(ensemble, "members", [ensemble]))
        if not models[0].config.stats_head:
            raise SystemExit(f"{where}: needs models with a statistics head")
        yield run, models, payloads


def fold_runs(cv_dir, snrs=(), n_versions: int = 0, *, seed: int = 0):
    """:func:`fold_models` with the rows: ``(run, models, payloads, rows, test, train)`` per fold run, where
    ``rows`` is :func:`corpus_rows` of the run's corpus (computed once, for every fold) and ``test``/``train``
    index the clips of the fold's test and training actors."""
    cv_dir = Path(cv_dir)
    clips = scan_corpus(json.loads((cv_dir / "crossval_config.json").read_text())["data_dirs"])
    data = None
    for run, models, payloads in fold_models(cv_dir):
        if data is None:  # the corpus, its clean and noisy rows: once, for every fold
            data = corpus_rows(payloads[0], clips, snrs, n_versions, seed=seed)
        speaker = data[2]
        test = torch.tensor([i for i, s in enumerate(speaker) if s in run["actors"]["test"]])
        train = torch.tensor([i for i, s in enumerate(speaker) if s in run["actors"]["train"]])
        yield run, models, payloads, data, test, train


def robustness(cv_dir, snrs, refit=(), *, seed: int = 0, cs=None) -> dict:
    """Per fold run of ``cv_dir``: test UAR of the network, head and fused model at each SNR (None: clean),
    and of the head and fused model with the head refitted with each K of ``refit`` (an int or a list) and,
    when ``cs`` names any, each of those C (else the run's own, and the keys say no C)."""
    refit = [refit] if isinstance(refit, int) else list(refit)
    folds = {}
    for run, models, payloads, data, test, train in fold_runs(cv_dir, snrs, max(refit, default=0), seed=seed):
        test_rows, versions, _, labels = data
        scores = {}
        for snr in [None, *snrs]:
            for name, p in answers(models, test_rows[snr], test).items():
                scores[f"{name} snr={snr}"] = uar(p.argmax(-1), labels[test])
        run_c = TrainConfig.from_dict(payloads[0]["train_config"]).stats_head
        for k in refit:  # the versions 1..k, the same draws for every k
            data = [[statistics(m, b, train) for b in [test_rows[None], *versions[:k]]] for m in models]
            for c in cs or [None]:
                for m, d in zip(models, data):
                    m.fit_stats_head(torch.cat(d), labels[train].repeat(len(d)), c=run_c if c is None else c)
                tag = f"refit K={k}" + ("" if c is None else f", C={c:g}")
                for snr in [None, *snrs]:
                    for name, p in answers(models, test_rows[snr], test).items():
                        if name != "network":
                            scores[f"{name} ({tag}) snr={snr}"] = uar(p.argmax(-1), labels[test])
        folds[f"seed_{run['seed']}/fold_{run['fold']}"] = scores
        print(f"fold_{run['fold']}", {k: round(v, 3) for k, v in scores.items() if k.startswith("fused")}, flush=True)
    keys = list(next(iter(folds.values())))
    return {"cv_dir": str(cv_dir), "snr_db": snrs, "refit_head_copies": refit, "refit_head_c": cs, "seed": seed,
            "folds": folds,
            "summary": fold_summary(folds, keys)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_dir")
    p.add_argument("--snr", type=float, nargs="+", default=[30.0, 20.0, 10.0], help="dB (default: 30 20 10)")
    p.add_argument("--refit-head", type=int, nargs="+", default=[], metavar="K",
                   help="also refit each head on the fold's training actors clean + K augmented versions (each K "
                        "given; the versions are drawn once, K takes the first K)")
    p.add_argument("--C", type=float, nargs="+", default=None, dest="cs",
                   help="refit the heads with each of these inverse penalties (default: the run's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and augmentation draws (default: 0)")
    p.add_argument("--out", help="JSON file for the figures")
    a = p.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    if a.cs and not a.refit_head:
        p.error("--C refits the heads: give --refit-head K too")
    if a.cs and min(a.cs) <= 0:
        p.error(f"--C must be positive, got {min(a.cs)}")
    report = robustness(a.cv_dir, a.snr, a.refit_head, seed=a.seed, cs=a.cs)
    report["command"] = " ".join(["python benchmarks/noise_robustness.py", *(sys.argv[1:] if argv is None else argv)])
    for key, value in report["summary"].items():
        print(f"{key:40s} {value['mean']:.3f} ± {value['std']:.3f}")
    if a.out:
        save_results(a.out, torch.device("cpu"), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
