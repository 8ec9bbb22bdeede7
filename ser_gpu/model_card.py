"""What a checkpoint says about its model: labels, training corpus, scores, and the demo-model warning.

Shared by ``python -m ser_gpu.predict`` (which prints :data:`DEMO_MODEL_WARNING` once on stderr for a
model trained on the built-in synthetic corpus) and the web app (:mod:`ser_gpu.app`), which shows the
whole card. Plain data in, plain data out: nothing here loads a model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

__all__ = ["CLEAN_HEAD_WARNING", "DEMO_MODEL_WARNING", "clean_only_head", "model_card", "trained_on_synthetic"]

#: Shown by the app and printed by ``predict`` for a model trained on the built-in synthetic corpus.
DEMO_MODEL_WARNING = (
    "This is a demo model trained on ser_gpu's built-in synthetic corpus: it has never heard a real "
    "voice, and its answers on real speech are not meaningful (train on a real corpus such as RAVDESS "
    "with --data-dir)"
)


#: Shown by the app and printed by ``predict`` for a model whose statistics head saw clean clips only.
CLEAN_HEAD_WARNING = (
    "this model's statistics head was fitted on clean training clips only (a run from before 2026-12-06, or "
    "with --stats-head-copies 0 or --no-augment): on recordings with background noise its answers can fall "
    "to chance (README 'Noise'); retrain with the default --stats-head-copies 4 for such recordings"
)


def clean_only_head(payload: dict) -> bool:
    """Whether a checkpoint's model fuses a statistics head fitted on the clean training clips alone.

    True when its ``model_config`` has ``stats_head`` and its ``train_config`` (written by
    :mod:`ser_gpu.train`) records ``stats_head_copies`` 0, none at all (written before the setting
    existed) or ``augment`` False (no versions to draw). A checkpoint without a recorded training
    config gives False: how its head was fitted is unknown.
    """
    model = payload.get("model_config") or {}
    config = payload.get("train_config") or {}
    if not isinstance(model, dict) or not model.get("stats_head") or not isinstance(config, dict) or not config:
        return False
    return config.get("stats_head_copies", 0) == 0 or config.get("augment") is False


def _synthetic_dir(path: str) -> bool:
    from .data.synthetic import MANIFEST_NAME

    try:
        return (Path(path) / MANIFEST_NAME).is_file()
    except OSError:
        return False


def trained_on_synthetic(payload: dict) -> bool:
    """Whether a checkpoint's model was trained on the built-in synthetic corpus.

    True when its ``train_config`` records ``data_dirs`` as empty (``python -m ser_gpu.train`` without
    ``--data-dir``), or when every recorded data directory still exists here and holds the synthetic
    corpus's manifest (the corpus passed explicitly with ``--data-dir``). A checkpoint whose
    ``train_config`` does not record ``data_dirs`` at all (not written by :mod:`ser_gpu.train`) gives
    False: its corpus is unknown.
    """
    config = payload.get("train_config") or {}
    if not isinstance(config, dict) or "data_dirs" not in config:
        return False
    dirs = config["data_dirs"] or []
    if not dirs:
        return True
    return all(isinstance(d, str) and _synthetic_dir(d) for d in dirs)


def _averaged_epochs(value) -> Optional[list]:
    """``[first, last]`` of a checkpoint whose weights are a mean over those epochs, else None."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)
    return [int(v) for v in value] if ok else None


def _test_metrics(checkpoint: Optional[Path]) -> Optional[dict]:
    """The held-out test metrics from ``result.json`` beside ``checkpoint``, when it names this file."""
    if checkpoint is None:
        return None
    result_path = checkpoint.parent / "result.json"
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or not isinstance(result.get("test"), dict):
        return None
    named = result.get("best_checkpoint")
    # train.py's final test scores best.pt; a result.json about another file says nothing of this one
    if not isinstance(named, str) or Path(named).name != checkpoint.name:
        return None
    test = result["test"]
    out = {k: test[k] for k in ("accuracy", "uar", "loss") if isinstance(test.get(k), (int, float))}
    if not out:
        return None
    out["source"] = str(result_path)
    return out


def model_card(payload: dict, checkpoint: Optional[os.PathLike] = None) -> dict:
    """The facts of a loaded checkpoint (:func:`ser_gpu.checkpoint.load_checkpoint`'s payload).

    Args:
        payload: the checkpoint payload.
        checkpoint: its path, used to find the run's ``result.json`` (the held-out test scores that
            ``python -m ser_gpu.train`` writes beside ``best.pt``); ``None`` skips that.

    Returns:
        a dict of plain data:
        ``labels`` (list of str, logit order); ``synthetic`` (bool, :func:`trained_on_synthetic`);
        ``corpus`` (str: "built-in synthetic corpus", the data directories joined by ", ", or
        "unknown (not recorded in the checkpoint)"); ``data_dirs`` (list of str or None);
        ``split`` (str or None); ``epoch`` (int); ``averaged_epochs`` (``[first, last]`` when the weights
        are the mean of those epochs', ``train --average-weights``, else None); ``val`` (``{"loss",
        "accuracy", "uar"}`` of the stored weights, the keys present); ``test`` (``{"accuracy", "uar", "loss", "source"}`` from
        ``result.json`` when it names this checkpoint, else None); ``warning``
        (:data:`DEMO_MODEL_WARNING` or None); ``noise_warning`` (:data:`CLEAN_HEAD_WARNING` when
        :func:`clean_only_head`, else None).
    """
    config = payload.get("train_config") or {}
    if not isinstance(config, dict):
        config = {}
    synthetic = trained_on_synthetic(payload)
    data_dirs = config.get("data_dirs")
    if "data_dirs" in config and not data_dirs:
        corpus = "built-in synthetic corpus"
    elif data_dirs:
        corpus = ", ".join(map(str, data_dirs)) + (" (the synthetic corpus)" if synthetic else "")
    else:
        corpus = "unknown (not recorded in the checkpoint)"
    metrics = payload.get("metrics") or {}
    val = {}
    for key, name in (("val_loss", "loss"), ("val_acc", "accuracy"), ("val_uar", "uar")):
        if isinstance(metrics.get(key), (int, float)):
            val[name] = float(metrics[key])
    return {
        "labels": list(payload.get("labels") or []),
        "synthetic": synthetic,
        "corpus": corpus,
        "data_dirs": None if data_dirs is None else list(data_dirs),
        "split": config.get("split"),
        "epoch": int(payload.get("epoch") or 0),
        "averaged_epochs": _averaged_epochs(metrics.get("averaged_epochs")),
        "val": val,
        "test": _test_metrics(None if checkpoint is None else Path(checkpoint)),
        "warning": DEMO_MODEL_WARNING if synthetic else None,
        "noise_warning": CLEAN_HEAD_WARNING if clean_only_head(payload) else None,
    }
