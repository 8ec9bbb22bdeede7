"""``python -m ser_gpu.crossval``: speaker-independent K-fold cross-validation in one command.

The corpus's actors are dealt into ``K`` folds (:func:`ser_gpu.data.split_clips` with
``method='actor'``): for fold ``i`` the actors of fold ``i`` are the test set, those of fold
``i + 1`` (mod K) the validation set and the rest train. Every fold, for every seed, is one
:func:`ser_gpu.train.train_model` run in its own directory ``OUT/seed_S/fold_I``; the test
metrics are those of each run's best checkpoint (its ``--select`` score on validation), read from the
``result.json`` each run writes.

``--ensemble K`` trains ``K`` models per fold on the same folds, each with its own training seed
(:func:`member_seed`: member 0 with the seed itself, so it is the one-model run), in
``OUT/seed_S/fold_I/member_M``; the fold is tested by their averaged softmax (each run's
``test_probabilities.json``, :func:`ensemble_test`), and the summary adds ``single_model``, the
members' own figures. The members also validate on different folds (rotated validation, the default
for a new ensemble; ``--no-rotate-validation``: all on fold ``i + 1``): :func:`member_val_fold` gives
member ``m`` fold ``i + 1 + m`` mod K, skipping the test fold, so they train on different actors and the
ensemble as a whole learns from every actor outside the test fold; member 0 is still the one-model run.
``OUT`` then holds:

- ``crossval.json``: mean ± std (sample std, ddof=1) over all fold runs of UAR, WA (accuracy) and
  weighted F1, the same per seed, the pooled metrics, the settings, and one record per fold run
  (seed, fold, actors per role, test metrics, epochs, seconds);
- ``folds.txt``: the per-fold table and the summary as plain text;
- ``confusion.json`` / ``confusion.png``: the pooled confusion matrix (sum over the fold runs of
  their test confusion matrices) and the metrics it gives;
- ``crossval_config.json``: the settings, checked on ``--resume``.

``--resume`` skips finished folds (a valid ``result.json`` with test metrics, after ``--epochs``
epochs or stopped early), continues an interrupted fold from its ``last.pt`` and trains the folds not
started. On resume ``--epochs`` may be raised (every fold then trains on from its ``last.pt``, as
``python -m ser_gpu.train --resume --epochs N``), an ``--ensemble`` above 1 may be raised (the members
trained are kept, the new members of every fold train), ``--seeds`` and ``--only-folds`` may name
other folds; every other training setting must be the stored one.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from tqdm import tqdm

from ._atomic import atomic_write, save_json
from ._cli import check_output_dir, option_error, refuse_held, run_main
from .errors import AudioLoadError, CheckpointError, ParameterError, TrainingDiverged

if TYPE_CHECKING:
    import torch

__all__ = ["cross_validate", "fold_dir", "speaker_of", "read_fold_result", "summarize", "member_seed",
           "member_val_fold", "ensemble_test", "ensemble_probabilities", "main"]

CONFIG_NAME = "crossval_config.json"
_OUTPUTS = ("crossval.json", "folds.txt", "confusion.json", "confusion.png", CONFIG_NAME)
_METRICS = ("uar", "accuracy", "weighted_f1")
# TrainConfig fields crossval sets itself, or that do not change what is trained
_OWN = ("data_dirs", "out", "split", "n_folds", "fold", "val_fold", "seed", "split_seed", "epochs")
# the stored keys that are cross_validate's own arguments, not training settings
_NOT_SETTINGS = ("data_dirs", "n_folds", "epochs", "ensemble", "rotate_validation")
# how a run executes, not what it computes (train --resume lets the same ones change)
_MAY_CHANGE = ("device", "progress", "cache_dir", "prefetch", "compile_model")


def speaker_of(clip):
    """The speaker a clip's split holds out: its ``speaker`` id where clips carry one (several
    corpora), else its actor number."""
    return getattr(clip, "speaker", None) or clip.actor


def _speakers(clips, indices) -> List:
    """The sorted speakers (:func:`speaker_of`) of ``clips[k]`` for ``k`` in ``indices``."""
    return sorted({speaker_of(clips[k]) for k in indices})


def fold_dir(out, seed: int, fold: int) -> Path:
    """The run directory of one fold: ``out/seed_{seed}/fold_{fold}``."""
    return Path(out) / f"seed_{seed}" / f"fold_{fold}"


def read_fold_result(path) -> Optional[dict]:
    """A finished fold's ``result.json`` (a dict with a ``test`` confusion matrix 8 × 8 and finite
    UAR/WA/F1), or None when the file is missing, not JSON or not a finished run's."""
    from .data import EMOTIONS

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    test = data.get("test") if isinstance(data, dict) else None
    if not isinstance(test, dict):
        return None
    cm = test.get("confusion")
    n = len(EMOTIONS)
    if not (isinstance(cm, list) and len(cm) == n and all(isinstance(r, list) and len(r) == n for r in cm)
            and all(isinstance(v, int) and v >= 0 for r in cm for v in r)):
        return None
    if not all(isinstance(test.get(k), (int, float)) and math.isfinite(test[k]) for k in _METRICS):
        return None
    return data


def _mean_std(values: Sequence[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values) if values else float("nan"),
            "std": statistics.stdev(values) if len(values) > 1 else float("nan"),
            "n": len(values)}


def _metrics_from_confusion(confusion: List[List[int]]) -> dict:
    """evaluate.metrics_from_predictions of the (label, prediction) pairs the matrix counts."""
    import torch

    from .data import EMOTIONS
    from .evaluate import metrics_from_predictions

    cm = torch.tensor(confusion, dtype=torch.int64)
    n = cm.shape[0]
    true = torch.arange(n).repeat_interleave(n)
    pred = torch.arange(n).repeat(n)
    counts = cm.reshape(-1)
    return metrics_from_predictions(true.repeat_interleave(counts), pred.repeat_interleave(counts), list(EMOTIONS))


def summarize(folds: Sequence[dict]) -> dict:
    """Mean ± std (ddof=1) of each metric over the fold records, per seed too, and the pooled
    confusion matrix (element-wise sum of the folds' test confusion matrices) with its metrics.

    Each record needs ``seed`` and ``test`` (``uar``, ``accuracy``, ``weighted_f1``, ``confusion``).
    """
    summary = {k: _mean_std([f["test"][k] for f in folds]) for k in _METRICS}
    seeds = sorted({f["seed"] for f in folds})
    per_seed = {}
    for s in seeds:
        mine = [f for f in folds if f["seed"] == s]
        per_seed[str(s)] = {k: _mean_std([f["test"][k] for f in mine]) for k in _METRICS}
    summary["per_seed"] = per_seed
    if len(seeds) > 1:  # spread of the seeds' fold means: how much the seed alone moves the CV figure
        summary["across_seeds"] = {k: _mean_std([per_seed[str(s)][k]["mean"] for s in seeds]) for k in _METRICS}
    members = [m for f in folds for m in f.get("members", ())]
    if members:  # ensembles: the same figures for the member runs alone
        summary["single_model"] = {k: _mean_std([m["test"][k] for m in members]) for k in _METRICS}
    n = len(folds[0]["test"]["confusion"])
    pooled = [[sum(f["test"]["confusion"][i][j] for f in folds) for j in range(n)] for i in range(n)]
    summary["pooled"] = _metrics_from_confusion(pooled)
    return summary


def _format_table(folds: Sequence[dict], summary: dict, settings: dict) -> str:
    lines = [f"{'seed':>5}{'fold':>5}  {'test actors':<14}{'clips':>6}{'UAR':>8}{'WA':>8}{'wF1':>8}"
             f"{'epochs':>8}{'s/epoch':>9}"]
    for f in folds:
        t = f["test"]
        actors = ",".join(str(a) for a in f["actors"]["test"])
        epochs = sum(m["epochs_run"] for m in f["members"]) if "members" in f else f["epochs_run"]
        per_epoch = f["train_seconds"] / epochs if epochs else float("nan")
        lines.append(f"{f['seed']:>5}{f['fold']:>5}  {actors:<14}{t['n_clips']:>6}{t['uar']:>8.3f}"
                     f"{t['accuracy']:>8.3f}{t['weighted_f1']:>8.3f}{f['epochs_run']:>8}{per_epoch:>9.1f}")
    lines.append("")

    def ms(k):
        m = summary[k]
        return f"{m['mean']:.3f} ± {m['std']:.3f}" if m["n"] > 1 else f"{m['mean']:.3f}"

    lines.append(f"mean ± std over {len(folds)} fold run(s): UAR {ms('uar')}   WA {ms('accuracy')}   "
                 f"weighted F1 {ms('weighted_f1')}")
    if "single_model" in summary:
        m = summary["single_model"]
        lines.append(f"the ensembles' {m['uar']['n']} member runs alone: UAR {m['uar']['mean']:.3f} ± "
                     f"{m['uar']['std']:.3f}   WA {m['accuracy']['mean']:.3f}   "
                     f"weighted F1 {m['weighted_f1']['mean']:.3f}")
    p = summary["pooled"]
    lines.append(f"pooled confusion ({p['n_clips']} test predictions): UAR {p['uar']:.3f}   WA {p['accuracy']:.3f}   "
                 f"weighted F1 {p['weighted_f1']:.3f}")
    lines.append(f"settings: {json.dumps(settings, sort_keys=True)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- the run

def _check_settings(data_dirs, n_folds, seeds, folds, settings):
    """Validate everything before any training; returns (clips, seeds, folds)."""
    import numbers

    from .data import scan_corpus
    from .train import TrainConfig

    if not data_dirs:
        raise ParameterError("data_dirs is required: cross-validation holds out actors of a RAVDESS-named corpus "
                             "(--data-dir DIR)")
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 3:
        raise ParameterError(f"folds must be an integer of at least 3 (a test fold, a validation fold and training "
                             f"folds), got {n_folds!r}")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in seeds):
        raise ParameterError(f"seeds must be one or more non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds must not repeat, got {seeds!r}")
    folds = list(range(n_folds)) if folds is None else list(folds)
    if not folds or any(isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < n_folds
                        for i in folds) or len(set(folds)) != len(folds):
        raise ParameterError(f"only_folds must be distinct integers in [0, {n_folds}), got {folds!r}")
    bad = sorted(set(settings) & set(_OWN) - {"epochs"})
    if bad:
        raise ParameterError(f"cross-validation sets {', '.join(bad)} itself; do not pass them")
    settings = {k: v for k, v in settings.items() if not (k == "epochs" and v is None)}
    TrainConfig.for_recipe(data_dirs=list(data_dirs), split="actor", n_folds=n_folds, **settings)  # validates the rest
    clips = scan_corpus(data_dirs)
    speakers = sorted({speaker_of(c) for c in clips})
    if n_folds > len(speakers):
        raise ParameterError(f"folds={n_folds} is more than the {len(speakers)} actor(s) in the corpus ({speakers})")
    return clips, seeds, sorted(folds)


def _existing_folds(out: Path) -> List[Path]:
    return sorted(p for p in out.glob("seed_*/fold_*") if p.is_dir() and any(p.iterdir()))


def _read_stored(out: Path) -> dict:
    """On resume: the settings stored in ``out``, with the defaults of keys written only sometimes
    (ParameterError when there are none to read, or a stored ensemble is not a positive integer)."""
    path = out / CONFIG_NAME
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise ParameterError(f"{path}: cannot resume, {str(out)!r} holds no cross-validation run "
                             f"(run without --resume first)") from None
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: cannot resume, the stored settings do not read as JSON ({exc})") from None
    if not isinstance(stored, dict):
        raise ParameterError(f"{path}: cannot resume, the stored settings are not a JSON object")
    # stored before the recipe was always written: only a named one was, and the default then was 'speech';
    # the ensemble is written only above 1 (absent: one model per fold); stats_head_copies is written
    # always since 2026-12-06 (absent: stored before, when the statistics head saw the clean clips alone),
    # and so are prior_correction (absent: stored before the answer was corrected for the class prior) and
    # average_weights (absent: stored before best.pt could hold averaged weights)
    stored = {"recipe": "speech", "ensemble": 1, "stats_head_copies": 0, "prior_correction": False,
              "average_weights": False, "rotate_validation": False, **stored}
    kept = stored["ensemble"]
    if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1:
        raise ParameterError(f"{path}: cannot resume, the stored ensemble is not a positive integer: {kept!r}")
    return stored


def _check_stored(out: Path, stored: dict, wanted: dict) -> None:
    """On resume: the ``stored`` settings must equal ``wanted`` (except those that may change)."""
    path = out / CONFIG_NAME
    # absent: one model per fold, no rotation (read_stored fills the stored side)
    wanted = {"ensemble": 1, "rotate_validation": False, **wanted}
    differ = [k for k in sorted(set(stored) | set(wanted))
              if k not in _MAY_CHANGE + ("epochs", "ensemble") and stored.get(k) != wanted.get(k)]
    if isinstance(stored.get("epochs"), int) and wanted["epochs"] < stored["epochs"]:
        differ.append("epochs")  # may be raised (the folds train on), not lowered
    # an ensemble may gain members (those trained are kept, the new ones train); one model per fold lives in
    # fold_I itself, not in member dirs, so it cannot become an ensemble, and members are never dropped
    had, given = stored["ensemble"], wanted["ensemble"]
    if given < had or (given != had and had == 1):
        differ.append("ensemble")
    if differ:
        from ._cli import listed_differences, setting_flags, with_flags

        flags = setting_flags(build_parser())
        listing = listed_differences(differ, stored.get, wanted.get, flags)
        raise ParameterError(f"{path}: --resume continues the stored cross-validation with its settings, but others "
                             f"were given ({listing}); only --seeds, --only-folds, "
                             f"{', '.join(with_flags(_MAY_CHANGE, flags))} may change, --epochs may be raised, and "
                             f"--ensemble raised when it is above 1. Drop those options, or start anew (another --out, "
                             f"or --overwrite)")


def member_seed(seed: int, member: int) -> int:
    """The training seed of ensemble member ``member`` of seed ``seed``'s folds: member 0 trains with
    ``seed`` itself (a one-model cross-validation's run), the others with seeds derived from both."""
    from .distributed import derive_seed

    return int(seed) if member == 0 else derive_seed(int(seed), "ensemble member", int(member)) % 2**31


def member_val_fold(fold: int, member: int, n_folds: int) -> int:
    """The validation fold of ensemble member ``member`` of test fold ``fold`` with rotated validation:
    ``fold + 1 + member`` mod ``n_folds``, skipping the test fold (so with ``n_folds - 1`` members or more
    every fold but the test fold validates one of them, and each of those actors trains the others).
    Member 0 gets ``fold + 1``, the fold every run without rotation validates on."""
    return (fold + 1 + member % (n_folds - 1)) % n_folds


def _fold_run(d: Path, epochs: int, *, resume: bool, overwrite: bool, data_dirs, n_folds: int, fold: int,
              seed: int, split_seed: int, progress: bool, settings: dict):
    """One training run of a fold in ``d`` (skipped when ``resume`` finds it finished): its
    ``result.json`` and the seconds this call spent (None: skipped)."""
    from .train import train_model

    result = read_fold_result(d / "result.json") if resume else None
    if result is not None and not (result.get("stopped_early") or result.get("epochs_run", 0) >= epochs):
        result = None  # finished fewer epochs than now asked: train on from last.pt
    if result is not None:
        return result, None
    t0 = time.perf_counter()  # with overwrite, cross_validate removed the replaced run's results and last.pt
    if resume and (d / "last.pt").exists():
        train_model(epochs, data_dirs=None, out=str(d), resume=True, progress=progress,
                    **{k: settings[k] for k in _MAY_CHANGE if k in settings})
    else:
        train_model(epochs, data_dirs=data_dirs, out=str(d), overwrite=overwrite or d.exists() and resume,
                    split="actor", n_folds=n_folds, fold=fold, seed=seed, split_seed=split_seed, progress=progress,
                    **settings)
    seconds = time.perf_counter() - t0
    result = read_fold_result(d / "result.json")
    if result is None:
        raise CheckpointError(f"{d / 'result.json'}: the fold finished without test metrics (see the file)")
    return result, seconds


def ensemble_probabilities(run_dirs: Sequence[Path]) -> Tuple[List[str], List[int], "torch.Tensor"]:
    """The test clips of the runs in ``run_dirs`` (their ``test_probabilities.json``, which must list the
    same clips and labels): ``(paths, labels, probabilities)``, the last the runs' softmax averaged,
    ``[shape=(clips, 8)]`` float64.

    Raises:
        CheckpointError: a run whose file cannot be read, or that lists other clips or labels.
    """
    import torch

    from .data import EMOTIONS

    total, first = None, None
    for d in run_dirs:
        path = Path(d) / "test_probabilities.json"
        try:
            data = json.loads(path.read_text())
            paths, labels = list(data["paths"]), [int(v) for v in data["labels"]]
            probs = torch.tensor(data["probabilities"], dtype=torch.float64).reshape(len(paths), len(EMOTIONS))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: cannot read the run's test probabilities ({exc}); retrain the run "
                                  f"(--resume retrains a run whose files are missing only after --overwrite)") from None
        if first is None:
            first = (path, paths, labels)
        elif (paths, labels) != first[1:]:
            raise CheckpointError(f"{path}: its test clips or labels differ from those of {first[0]}: the members "
                                  f"of an ensemble must be tested on the same clips")
        total = probs if total is None else total + probs
    return first[1], first[2], total / len(run_dirs)


def ensemble_test(run_dirs: Sequence[Path]) -> dict:
    """Test metrics of the ensemble of the runs in ``run_dirs``: each test clip's softmax averaged over
    the runs (:func:`ensemble_probabilities`), the prediction its argmax. The dict has
    :func:`ser_gpu.evaluate.metrics_from_predictions`' keys."""
    import torch

    from .data import EMOTIONS
    from .evaluate import metrics_from_predictions

    _, labels, probs = ensemble_probabilities(run_dirs)
    return metrics_from_predictions(torch.tensor(labels), probs.argmax(-1), list(EMOTIONS))


def cross_validate(
    data_dirs: Sequence[str],
    *,
    n_folds: Optional[int] = None,
    seeds: Sequence[int] = (0,),
    only_folds: Optional[Sequence[int]] = None,
    out: str = "runs/cv",
    epochs: Optional[int] = None,
    ensemble: Optional[int] = None,
    rotate_validation: Optional[bool] = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **settings,
) -> dict:
    """Train and test every actor fold for every seed, and summarise.

    Args:
        data_dirs: RAVDESS-named corpora (as :func:`ser_gpu.train.train_model`).
        n_folds: number of actor folds (>= 3, at most the number of actors); None (default): the stored
            run's with ``resume``, else 6.
        seeds: one run per fold per seed; the seed sets both the actor folds (the actor shuffle) and
            the training's randomness, so several seeds are repeated cross-validations.
        only_folds: train and summarise only these folds (None: all); the summary then says it is
            not a complete cross-validation (``complete: false``).
        out: the cross-validation directory (fold runs in ``out/seed_S/fold_I``).
        ensemble: models trained per fold (each its own training seed, :func:`member_seed`, on the same
            folds, in ``out/seed_S/fold_I/member_M``); a fold's test metrics are those of their averaged
            softmax (:func:`ensemble_test`), the summary's ``single_model`` those of the members alone.
            1: one run per fold in ``out/seed_S/fold_I``; None (default): the stored run's with
            ``resume``, else 1.
        rotate_validation: ensemble member ``m`` validates on fold :func:`member_val_fold` instead of
            the fold after the test fold (member 0 keeps that one), so the members train on different
            actors; None (default): the stored run's with ``resume`` (False for a run stored before the
            option), else True for an ensemble and False for one model per fold.
        settings['stats_head_copies']: not given (or None): the stored run's with ``resume`` (0 for a run
            stored before the setting existed: its heads saw the clean clips alone), else
            :class:`~ser_gpu.train.TrainConfig`'s; always stored, so the folds of a run agree.
        settings['prior_correction'], settings['average_weights']: the same rule (``False`` for a run
            stored before the setting).
        epochs: per fold; None: the stored run's with ``resume``, else the recipe's
            (``settings['recipe']``: :data:`ser_gpu.train.RECIPES`; not given: the stored run's with
            ``resume``, else :data:`ser_gpu.train.DEFAULT_RECIPE`).
        resume: skip finished folds, resume interrupted ones from their ``last.pt``; ``epochs``
            may be raised (the folds train on), an ``ensemble`` above 1 raised (the members trained are
            kept, the new ones train), the other settings must be the stored ones; a setting not given
            is the stored one.
        overwrite: retrain every requested fold, replacing runs already there; every fold run in ``out``
            (of any seed, fold or member, requested or not) loses its results and ``last.pt`` at once, so
            that a later ``resume`` retrains it instead of counting or continuing a run of the replaced
            settings.
        progress: a bar over the fold runs (and train's own bar over epochs).
        **settings: any other :class:`ser_gpu.train.TrainConfig` setting (``lr``, ``batch_size``,
            ``device``, ``augment``, ...) except those cross-validation sets (``split``,
            ``n_folds``, ``fold``, ``seed``, ``out``, ``data_dirs``).

    Returns:
        the dict written to ``out/crossval.json``: ``summary`` (``uar``/``accuracy``/``weighted_f1``
        each ``{mean, std, n}``, ``per_seed``, ``across_seeds`` with several seeds, ``pooled``),
        ``folds`` (one record per fold run), ``settings``, ``complete``.

    Raises:
        ParameterError: bad settings, a missing data directory, more folds than actors, an ``out``
            holding a cross-validation without ``resume``/``overwrite``, resume settings that differ.
        AudioLoadError, CheckpointError, TrainingDiverged: from a fold's training (folds finished
            before it keep their results; ``resume`` continues).
    """
    from .data import split_clips

    if resume and overwrite:
        raise ParameterError("resume and overwrite exclude each other: pass one of them")
    data_dirs = [str(d) for d in ([data_dirs] if isinstance(data_dirs, (str, Path)) else (data_dirs or []))]
    out = Path(out)
    check_output_dir(out, argument="out")
    stored = _read_stored(out) if resume else None
    if stored is not None:  # not named: a resumed run keeps its own, as train --resume does
        if n_folds is None:
            n_folds = stored.get("n_folds")
        for name, value in stored.items():
            if name not in _NOT_SETTINGS + _MAY_CHANGE and settings.get(name) is None:
                settings[name] = value
    if n_folds is None:
        n_folds = 6
    if ensemble is None:  # not named: a resumed run keeps its own
        ensemble = stored["ensemble"] if stored is not None else 1
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ParameterError(f"ensemble must be a positive integer (models per fold), got {ensemble!r}")
    if rotate_validation is None:
        rotate_validation = stored["rotate_validation"] if stored is not None else ensemble > 1
    if not isinstance(rotate_validation, bool):
        raise ParameterError(f"rotate_validation must be True or False, got {rotate_validation!r}")
    if rotate_validation and ensemble == 1:
        raise ParameterError("rotate_validation gives ensemble members other validation folds: it needs an ensemble "
                             "above 1, got ensemble=1")
    from .train import DEFAULT_RECIPE, TrainConfig

    if stored is None:  # a new run: not named, the default recipe and its values (a resumed run took the stored
        # ones above; _read_stored gives the keys stored only since they existed their earlier values)
        if settings.get("recipe") is None:
            settings["recipe"] = DEFAULT_RECIPE
        for name in ("stats_head_copies", "prior_correction", "average_weights"):  # stored always: a run keeps it
            if settings.get(name) is None:
                settings[name] = getattr(TrainConfig.for_recipe(settings["recipe"]), name)
    # validated with the recipe the folds will train
    clips, seeds, folds = _check_settings(data_dirs, n_folds, seeds, only_folds, dict(settings, epochs=epochs))
    if epochs is None:
        kept = stored.get("epochs") if stored is not None else None
        if isinstance(kept, int) and not isinstance(kept, bool):
            epochs = kept
        else:
            epochs = TrainConfig.for_recipe(**settings).epochs
    wanted = {"data_dirs": [str(Path(d).resolve()) for d in data_dirs], "n_folds": int(n_folds),
              "epochs": int(epochs), **{k: v for k, v in sorted(settings.items())}}
    if ensemble > 1:  # absent for one model per fold: runs stored before ensembles existed resume as they were
        wanted["ensemble"] = ensemble
    if rotate_validation:  # absent when off: runs stored before the option resume as they were
        wanted["rotate_validation"] = True
    if resume:
        _check_stored(out, stored, wanted)
    elif not overwrite:
        held = [n for n in _OUTPUTS if (out / n).exists()] + [str(p.relative_to(out)) for p in _existing_folds(out)]
        refuse_held(out, held, what="a cross-validation", remedy="pass --resume to continue it or --overwrite to retrain it")
    else:  # every run of the replaced settings, reached by this call or not (--only-folds, an interruption, members
        # beyond a smaller ensemble): a later --resume must retrain it, never count or continue it
        for d in _existing_folds(out):
            for run in (d, *sorted(d.glob("member_*"))):
                for name in ("result.json", "test_probabilities.json", "last.pt"):
                    (run / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / CONFIG_NAME, wanted)

    jobs = [(s, i) for s in seeds for i in folds]
    records = []
    bar = tqdm(jobs, desc="folds", unit="fold", disable=not progress, file=sys.stderr)
    for seed, fold in bar:
        bar.set_postfix(seed=seed, fold=fold)
        d = fold_dir(out, seed, fold)
        split = split_clips(clips, method="actor", seed=seed, n_folds=n_folds, fold=fold)
        actors = {role: _speakers(clips, idx) for role, idx in
                  (("train", split.train), ("val", split.val), ("test", split.test))}
        member_dirs = [d] if ensemble == 1 else [d / f"member_{m}" for m in range(ensemble)]
        runs = []
        for m, md in enumerate(member_dirs):
            run_seed = member_seed(seed, m)
            # None: train's own default, the fold after the test fold (member 0 always: the one-model run)
            val_fold = member_val_fold(fold, m, n_folds) if rotate_validation and m > 0 else None
            result, seconds = _fold_run(md, epochs, resume=resume, overwrite=overwrite, data_dirs=data_dirs,
                                        n_folds=n_folds, fold=fold, seed=run_seed, split_seed=seed,
                                        progress=progress, settings=dict(settings, val_fold=val_fold))
            history = (json.loads((md / "metrics.json").read_text()).get("epochs", [])
                       if (md / "metrics.json").exists() else [])
            runs.append({
                "seed": run_seed, "dir": str(md),
                "test": {k: result["test"][k] for k in ("n_clips", "accuracy", "uar", "weighted_f1", "confusion")},
                "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run", len(history)),
                # the epochs whose mean weights best.pt holds (average_weights), else None
                "averaged_epochs": (result.get("averaged") or {}).get("epochs"),
                "stopped_early": result.get("stopped_early"), "split_sizes": result.get("split_sizes"),
                "val_actors": actors["val"] if val_fold is None else _speakers(
                    clips, split_clips(clips, method="actor", seed=seed, n_folds=n_folds, fold=fold,
                                       val_fold=val_fold).val),
                "train_seconds": sum(h.get("epoch_seconds", 0.0) for h in history),  # the epochs' own time
                "wall_seconds": seconds,  # this call's time for the run (data loading, test); None: skipped
            })
        record = {"seed": seed, "fold": fold, "dir": str(d), "actors": actors, "split_sizes": runs[0]["split_sizes"],
                  "test": runs[0]["test"] if ensemble == 1 else ensemble_test(member_dirs),
                  "train_seconds": sum(r["train_seconds"] for r in runs),
                  "wall_seconds": (None if all(r["wall_seconds"] is None for r in runs)
                                   else sum(r["wall_seconds"] or 0.0 for r in runs))}
        if ensemble == 1:
            record.update({k: runs[0][k] for k in ("best_epoch", "averaged_epochs", "epochs_run", "stopped_early")})
        else:
            record["epochs_run"] = max(r["epochs_run"] for r in runs)
            record["members"] = runs
        records.append(record)
    bar.close()
    report = _write_outputs(out, records, wanted, complete=folds == list(range(n_folds)))
    return report


def _write_outputs(out: Path, records: List[dict], settings: dict, *, complete: bool) -> dict:
    from .evaluate import plot_confusion

    summary = summarize(records)
    report = {"complete": complete, "n_folds": settings["n_folds"], "seeds": sorted({r["seed"] for r in records}),
              "folds_run": sorted({r["fold"] for r in records}), "summary": summary, "folds": records,
              "settings": settings,
              "std": "sample standard deviation (ddof=1) over fold runs; null for a single run"}
    save_json(out / "crossval.json", report)
    pooled = dict(summary["pooled"], note="sum over the fold runs (every seed) of their test confusion matrices")
    save_json(out / "confusion.json", pooled)
    plot_confusion(summary["pooled"], out / "confusion.png")
    text = _format_table(records, summary, settings)
    atomic_write(out / "folds.txt", lambda fh: fh.write(text.encode()))
    return report


# ------------------------------------------------------------------------------------------------ CLI

_TRAIN_OWN_OPTIONS = ("help", "out", "split", "n_folds", "fold", "val_fold", "seed", "split_seed", "resume",
                      "overwrite", "quiet", "data_dirs", "epochs")


def build_parser() -> argparse.ArgumentParser:
    from .train import build_parser as train_parser

    p = argparse.ArgumentParser(prog="python -m ser_gpu.crossval", description=__doc__.split("\n\n")[0],
                                epilog="Every other option is python -m ser_gpu.train's, passed to each fold.")
    p.add_argument("--data-dir", action="append", dest="data_dirs", default=[], metavar="DIR",
                   help="RAVDESS-named corpus, searched recursively; repeat for several (required)")
    p.add_argument("--folds", type=int, default=None, dest="n_folds",
                   help="actor folds (default: 6, or the stored run's with --resume)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one CV per seed (default: 0)")
    p.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="I",
                   help="train and summarise only these folds (a partial CV; default: all)")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="models per fold, each its own seed, tested by their averaged softmax (default: 1; "
                        "with --resume the stored run's, which may be raised)")
    p.add_argument("--rotate-validation", action=argparse.BooleanOptionalAction, default=None,
                   help="with --ensemble: member M validates on the fold M after the usual one (skipping the test "
                        "fold), so the members train on different actors (default: on for an ensemble; with "
                        "--resume the stored run's)")
    p.add_argument("--epochs", type=int, default=None,
                   help="per fold (default: the recipe's, see --recipe; with --resume the stored run's)")
    p.add_argument("--out", default="runs/cv", help="cross-validation directory (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="skip finished folds, resume interrupted ones")
    p.add_argument("--overwrite", action="store_true", help="retrain folds already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    for action in train_parser()._actions:  # the training options, shared with python -m ser_gpu.train
        if action.dest not in _TRAIN_OWN_OPTIONS:
            p._add_action(action)
    # train's split options are set per fold here: named, they are refused with what to use instead (left
    # undefined, argparse would read the prefix --fold as --folds and --seed as --seeds without a word)
    for flag in _SET_PER_FOLD:  # argparse's own dest (split, fold, seed, split_seed): train's are left out above
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    return p


# train's options that crossval sets for each fold, and what to use instead
_SET_PER_FOLD = {
    "--split": "every fold is an actor split",
    "--fold": "every fold is trained; use --only-folds I [I ...] for some of them",
    "--val-fold": "the validation fold follows the test fold; --rotate-validation gives ensemble members others",
    "--seed": "each fold trains with its --seeds value (ensemble members with their own, member_seed)",
    "--split-seed": "the folds of each --seeds value are split with that seed",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status: 0 done, 2 bad input (one line on stderr), 3 a fold diverged, 130 interrupted."""
    from .train import _given_options

    parser = build_parser()
    args = vars(parser.parse_args(argv))
    for flag, instead in _SET_PER_FOLD.items():
        value = args.pop(flag[2:].replace("-", "_"))
        if value is not None:
            print(f"error: {flag} {value} is not a crossval option: {instead}", file=sys.stderr)
            return 2
    quiet = args.pop("quiet")
    core = {k: args.pop(k) for k in ("data_dirs", "n_folds", "seeds", "only_folds", "epochs", "ensemble",
                                     "rotate_validation", "out", "resume", "overwrite")}
    # pass on only the training options the command line names: the others are the recipe's, and the
    # stored settings stay short
    given = _given_options(parser, argv)
    settings = {k: v for k, v in args.items() if k in given}
    try:
        report = cross_validate(core.pop("data_dirs"), progress=not quiet, **core, **settings)
    except TrainingDiverged as exc:
        print(f"error: {exc}".replace("\n", " "), file=sys.stderr)
        return 3
    except (ParameterError, AudioLoadError, CheckpointError) as exc:
        print(f"error: {option_error(exc, parser)}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished folds keep their results; continue with --resume", file=sys.stderr)
        return 130
    print((Path(core["out"]) / "folds.txt").read_text(), end="")
    if not report["complete"]:
        print(f"partial: folds {report['folds_run']} of {report['n_folds']} (--only-folds)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
