"""``python -m ser_gpu.evaluate``: score a checkpoint on test folders of the known corpora.

Reports per-class precision, recall and F1, weighted F1, accuracy (WA), unweighted average recall
(UAR) and the confusion matrix, overall and per corpus (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB: see
:mod:`ser_gpu.data.corpora`), as text on stdout and, with ``--out``, as ``evaluation.json``,
``confusion.png`` and ``report.txt``. Clips are loaded (and cached) and trimmed as in training, then
batched through the checkpoint's feature rows and model on the device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from tqdm import tqdm

from ._atomic import atomic_write, save_json
from ._cli import CACHE_DIR_HELP, check_output_dir, option_error, refuse_held, resolve_device, run_main
from ._validation import _real, check_nonnegative_int, check_positive_int
from .errors import AudioLoadError, CheckpointError, ParameterError
from .functional.augment import add_noise_snr
from .transforms.features import FeatureExtractor
from .transforms.row_stats import RowStatistics, standardize_rows

__all__ = ["evaluate_model", "format_report", "plot_confusion", "main"]

PathLike = Union[str, Path]
_OUTPUTS = ("evaluation.json", "report.txt", "confusion.png")


def metrics_from_predictions(labels: torch.Tensor, preds: torch.Tensor, names: Sequence[str]) -> dict:
    """Per-class precision/recall/F1, weighted F1, accuracy (WA), UAR and the confusion matrix.

    Computed with :mod:`sklearn.metrics` over the class indices ``0 .. len(names) - 1``:
    ``precision_recall_fscore_support`` per class (0 where a class is never predicted or absent),
    ``f1_score(average='weighted')``, ``accuracy_score``, ``confusion_matrix``; UAR is
    ``recall_score(average='macro')`` over the classes that occur in ``labels`` (a class absent
    from the test set has no recall to average). With no clips every score is NaN.
    """
    from sklearn import metrics as skm

    n = len(names)
    y_true = labels.reshape(-1).long().cpu().numpy()
    y_pred = preds.reshape(-1).long().cpu().numpy()
    classes = list(range(n))
    cm = skm.confusion_matrix(y_true, y_pred, labels=classes) if len(y_true) else [[0] * n for _ in classes]
    nan = float("nan")
    if len(y_true):
        precision, recall, f1, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                                             zero_division=0)
        present = sorted(set(y_true.tolist()))
        accuracy = float(skm.accuracy_score(y_true, y_pred))
        uar = float(skm.recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        weighted_f1 = float(skm.f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0))
    else:
        precision = recall = f1 = [0.0] * n
        support = [0] * n
        accuracy = uar = weighted_f1 = nan
    per_class = {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for lab, p, r, f, s in zip(names, precision, recall, f1, support)}
    return {
        "n_clips": int(len(y_true)),
        "accuracy": accuracy,
        "uar": uar,
        "weighted_f1": weighted_f1,
        "per_class": per_class,
        "labels": list(names),
        "confusion": [[int(v) for v in row] for row in cm],
    }


def format_report(metrics: dict) -> str:
    """The metrics as a plain-text table plus the confusion matrix (rows: true, columns: predicted)."""
    names = metrics["labels"]
    width = max(10, max(len(n) for n in names) + 2)
    lines = [f"{'':{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in names:
        c = metrics["per_class"][name]
        lines.append(f"{name:{width}}{c['precision']:10.3f}{c['recall']:10.3f}{c['f1']:10.3f}{c['support']:10d}")
    if metrics.get("noise"):
        lines += ["", f"scored with white Gaussian noise {metrics['noise']['snr_db']:g} dB below each clip "
                      f"(seed {metrics['noise']['seed']})"]
    lines += ["", f"accuracy (WA) {metrics['accuracy']:.4f}   UAR {metrics['uar']:.4f}   "
                  f"weighted F1 {metrics['weighted_f1']:.4f}   clips {metrics['n_clips']}", "",
              "confusion matrix (rows: true, columns: predicted)"]
    short = [n[:7] for n in names]
    lines.append(f"{'':{width}}" + "".join(f"{s:>8}" for s in short))
    for name, row in zip(names, metrics["confusion"]):
        lines.append(f"{name:{width}}" + "".join(f"{v:8d}" for v in row))
    per_corpus = metrics.get("per_corpus")
    if per_corpus:
        from .data.corpora import CORPUS_TITLES

        lines += ["", "per corpus (each corpus's UAR averages the emotions it holds)",
                  f"{'corpus':{width}}{'clips':>10}{'WA':>10}{'UAR':>10}{'wF1':>10}"]
        for corpus, m in per_corpus.items():
            lines.append(f"{CORPUS_TITLES.get(corpus, corpus):{width}}{m['n_clips']:10d}{m['accuracy']:10.4f}"
                         f"{m['uar']:10.4f}{m['weighted_f1']:10.4f}")
    return "\n".join(lines)


def plot_confusion(metrics: dict, path: PathLike) -> Path:
    """The confusion matrix as a PNG (counts in the cells), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = metrics["labels"]
    cm = torch.tensor(metrics["confusion"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm.numpy(), cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = int(cm.max()) if cm.numel() else 0
    for i in range(len(names)):
        for j in range(len(names)):
            v = int(cm[i, j])
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > peak / 2 else "black")
    ax.set_title(f"WA {metrics['accuracy']:.3f}  UAR {metrics['uar']:.3f}  weighted F1 {metrics['weighted_f1']:.3f}")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)


def evaluate_model(
    checkpoint: Union[PathLike, Sequence[PathLike]],
    data_dirs: Sequence[PathLike],
    *,
    out: Optional[PathLike] = None,
    device: str = "auto",
    batch_size: int = 32,
    cache_dir: Optional[PathLike] = None,
    progress: bool = True,
    overwrite: bool = False,
    corpus=None,
    snr_db: Optional[float] = None,
    noise_seed: int = 0,
) -> dict:
    """Evaluate a checkpoint on every clip named like a known corpus under ``data_dirs`` (searched recursively).

    Args:
        checkpoint: ``best.pt`` written by :mod:`ser_gpu.train` (its feature and model configs are used),
            or a list of them: an ensemble, each clip's answer the argmax of their mean softmax
            (:func:`ser_gpu.checkpoint.load_models`; they must read the same rows).
        data_dirs: one or more folders; files named like no known corpus (or whose emotion has no
            RAVDESS label) are skipped and counted in one warning, unreadable files likewise.
        corpus: the naming scheme: ``None`` detects it per file; one name of
            :data:`ser_gpu.data.corpora.CORPORA` for every folder, or a list with one per folder
            (see :func:`ser_gpu.data.corpora.scan_corpus`).
        out: if given, a directory for ``evaluation.json``, ``report.txt`` and ``confusion.png``;
            checked before the evaluation starts. Existing files of those names are replaced only
            with ``overwrite``.
        device, batch_size: where and how many clips per forward pass.
        cache_dir: waveform cache (default as training: :func:`ser_gpu.data.cache.default_cache_dir`).
        snr_db: if given, score the clips with white Gaussian noise this many dB below each clip's RMS
            (:func:`ser_gpu.functional.add_noise_snr`, after loading and trimming, before the features;
            any finite number), drawn from a generator on ``device`` seeded with ``noise_seed``: how the
            model holds up on recordings less clean than its training speech (README "Noise").

    A checkpoint trained with ``normalize='speaker'`` gets each clip's rows standardised with its
    speaker's statistics over all of that speaker's clips here (``Clip.speaker``; labels unused), as
    training standardised its validation and test speakers; every clip's rows are then held on
    ``device`` between the statistics and the scoring (``clips x 68 x frames`` float32).

    Returns:
        the metrics dict of :func:`metrics_from_predictions` over all clips, plus ``checkpoint`` (a
        path, or the list of an ensemble's),
        ``data_dirs`` and ``per_corpus``: ``{corpus: metrics dict}`` for each corpus present (in
        :data:`~ser_gpu.data.corpora.CORPORA` order), the same metrics over that corpus's clips.

    Raises:
        CheckpointError: missing/corrupt checkpoint, another architecture or label set.
        ParameterError: a missing data directory or one without any file named like a known corpus; an
            ``out`` that cannot be written, or that holds a report already (without ``overwrite``).
        AudioLoadError: none of the files could be read.
    """
    from .checkpoint import checkpoint_list, feature_config, load_models, speaker_normalized
    from .data import EMOTIONS, WaveformSet, load_waveforms, scan_corpus
    from .data.corpora import sorted_corpora

    batch_size = check_positive_int(batch_size, "batch_size")
    if snr_db is not None:
        snr_db = _real(snr_db, "snr_db", "a finite number of decibels")
    noise_seed = check_nonnegative_int(noise_seed, "noise_seed")
    if isinstance(data_dirs, (str, Path)):
        data_dirs = [data_dirs]
    if not data_dirs:
        raise ParameterError("data_dirs must name at least one directory, got []")
    dev = resolve_device(device)
    if out is not None:
        out = check_output_dir(out, argument="out")
        if not overwrite:
            refuse_held(out, [n for n in _OUTPUTS if (out / n).exists()], what="an evaluation",
                        remedy="pass --overwrite (overwrite=True) to replace it, or choose another --out")
    checkpoints = checkpoint_list(checkpoint)
    model, payloads = load_models(checkpoints, device=dev, labels=list(EMOTIONS))
    payload = payloads[0]  # an ensemble's members read the same rows, with the same labels
    labels = list(payload["labels"])
    fc = feature_config(payload, checkpoints[0])

    clips = scan_corpus([str(d) for d in data_dirs], corpus=corpus)
    waves, clips = load_waveforms(clips, sr=fc.sr, trim=fc.trim, top_db=fc.top_db, cache_dir=cache_dir,
                                  progress=progress)
    speakers = {name: k for k, name in enumerate(sorted({c.speaker for c in clips}))}
    groups = torch.tensor([speakers[c.speaker] for c in clips], dtype=torch.int64, device=dev)
    dataset = WaveformSet(waves, [c.label for c in clips]).to(dev)
    extractor = FeatureExtractor(fc, trim=False).to(dev)  # the loader trimmed already
    noise = None if snr_db is None else torch.Generator(device=dev).manual_seed(noise_seed)
    preds, truth = [], []
    n_batches = (len(dataset) + batch_size - 1) // batch_size

    def feature_batches(desc):  # (features, frame_lengths, labels, speaker of each clip), in stored order
        bar = tqdm(dataset.batches(batch_size), total=n_batches, desc=desc, unit="batch", disable=not progress,
                   file=sys.stderr)
        for k, (y, lengths, batch_labels) in enumerate(bar):
            if noise is not None:
                y = add_noise_snr(y, snr_db, lengths=lengths, generator=noise)
            batch = extractor(y, lengths)
            yield batch.features, batch.frame_lengths, batch_labels, groups[k * batch_size:(k + 1) * batch_size]

    per_speaker = speaker_normalized(payload)
    with torch.no_grad():
        if per_speaker:  # the rows are kept from the statistics pass to the scoring pass: computed once
            batches = list(feature_batches("features and speaker statistics"))
            stats = RowStatistics(len(speakers), model.config.input_dim, device=dev)
            for x, fl, _, g in batches:
                stats.add(x, fl, g)
            mean, std = stats.result()
        else:
            batches = feature_batches("evaluating")
        for x, fl, batch_labels, g in batches:
            if per_speaker:
                x = standardize_rows(x, fl, mean[g], std[g])
            preds.append(model(x, fl).argmax(-1))
            truth.append(batch_labels)
    truth, preds = torch.cat(truth).cpu(), torch.cat(preds).cpu()
    metrics = metrics_from_predictions(truth, preds, labels)
    metrics["checkpoint"] = str(checkpoints[0]) if len(checkpoints) == 1 else [str(c) for c in checkpoints]
    metrics["data_dirs"] = [str(d) for d in data_dirs]
    if snr_db is not None:
        metrics["noise"] = {"snr_db": snr_db, "seed": noise_seed}
    # the set keeps the clips' order, so clip i's answer is preds[i]
    of_clip = [c.corpus for c in clips]
    metrics["per_corpus"] = {}
    for name in sorted_corpora(of_clip):
        index = torch.tensor([i for i, c in enumerate(of_clip) if c == name], dtype=torch.int64)
        metrics["per_corpus"][name] = metrics_from_predictions(truth[index], preds[index], labels)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_json(out / "evaluation.json", metrics)
        report = format_report(metrics) + "\n"
        atomic_write(out / "report.txt", lambda fh: fh.write(report.encode()))
        plot_confusion(metrics, out / "confusion.png")
    return metrics


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ser_gpu.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="CKPT",
                   help="best.pt written by python -m ser_gpu.train; several: an ensemble (their softmax averaged)")
    p.add_argument("--data-dir", action="append", dest="data_dirs", required=True, metavar="DIR",
                   help="test folder (RAVDESS, CREMA-D, TESS, SAVEE or EmoDB names, detected per file), searched "
                        "recursively; repeat for several")
    p.add_argument("--corpus", action="append", default=None, metavar="NAME",
                   help="read the names by one scheme (ravdess, crema-d, tess, savee, emodb; auto = detect): once for "
                        "every --data-dir, or once per --data-dir in order (default: detect per file)")
    p.add_argument("--out", default=None, help="write evaluation.json, report.txt and confusion.png here")
    p.add_argument("--overwrite", action="store_true", help="replace those files if --out holds them already")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=32, help="clips per forward pass (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)
    p.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="add white Gaussian noise DB decibels below each clip's RMS before scoring (a robustness "
                        "check; default: the clips as they are)")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the --snr noise (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    import json

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_model(args.checkpoint, args.data_dirs, out=args.out, device=args.device,
                                 batch_size=args.batch_size, cache_dir=args.cache_dir, progress=not args.quiet,
                                 overwrite=args.overwrite, corpus=args.corpus, snr_db=args.snr,
                                 noise_seed=args.noise_seed)
    except (ParameterError, AudioLoadError, CheckpointError) as exc:
        print(f"error: {option_error(exc, parser)}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2) if args.json else format_report(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
