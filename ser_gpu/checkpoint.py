"""The checkpoint format shared by train, evaluate and predict.

A checkpoint is one ``torch.save`` file holding plain data and tensors only, so that
``torch.load(path, weights_only=True)`` reads it without unpickling any code::

    {"format": "ser_gpu.checkpoint", "version": 1, "ser_gpu_version": "0.1.0",
     "model_state": {name: Tensor}, "model_config": {...}, "feature_config": {...},
     "labels": [str, ...], "train_config": {...}, "epoch": int, "metrics": {...},
     "optimizer_state": dict | None, "scheduler_state": dict | None, "state": {...}}

All tensors are stored on the CPU, so a checkpoint written on a GPU loads anywhere.
"""

from __future__ import annotations

import codecs
import collections
import numbers
import os
import pickle
import re
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ._atomic import atomic_link, atomic_write
from ._validation import _describe, check_nonnegative_int
from .errors import CheckpointError, ParameterError
from .models.cnn_bilstm_attention import CNNBiLSTMAttention, ModelConfig
from .transforms.features import FeatureConfig

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "CheckpointWriter", "load_checkpoint",
           "load_model", "checkpoint_list", "load_models", "feature_config", "speaker_normalized"]

#: Value of the payload's ``"format"`` key.
CHECKPOINT_FORMAT = "ser_gpu.checkpoint"
#: Version written by this ser_gpu; :func:`load_checkpoint` reads this and older versions.
CHECKPOINT_VERSION = 1

_REQUIRED_KEYS = ("model_state", "model_config", "feature_config", "labels")
_OPTIONAL_DEFAULTS = {
    "ser_gpu_version": None,
    "train_config": {},
    "epoch": 0,
    "metrics": {},
    "optimizer_state": None,
    "scheduler_state": None,
    "state": {},
}
_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any, where: str, copy: bool = False) -> Any:
    """Check (and lightly normalise) ``value`` for ``torch.load(weights_only=True)``.

    Tensors are detached and moved to the CPU (``copy``: always copied, so that the result is a
    snapshot the caller's later in-place updates leave alone; containers are always new ones); numpy
    scalars and ``str``/``int``/``float`` subclasses (e.g. enums) become the builtin type;
    ``torch.Size`` becomes a tuple; dict subclasses other than ``OrderedDict`` become ``dict``.
    Anything else that the weights-only unpickler refuses (numpy arrays, dataclasses, namedtuples,
    sets, paths, ...) raises ParameterError naming ``where``.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=copy)
    if type(value) in _SCALARS:
        return value
    if isinstance(value, np.generic):
        return _plain(value.item(), where, copy)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        out = collections.OrderedDict() if isinstance(value, collections.OrderedDict) else {}
        for key, item in value.items():
            if type(key) not in _SCALARS:
                raise ParameterError(
                    f"checkpoint payload key {where} holds a dict key of type {type(key).__module__}."
                    f"{type(key).__qualname__} ({_describe(key)}); use str or int keys"
                )
            out[key] = _plain(item, f"{where}[{key!r}]", copy)
        metadata = getattr(value, "_metadata", None)  # state_dict versions, read by load_state_dict
        if metadata is not None and isinstance(out, collections.OrderedDict):
            out._metadata = _plain(dict(metadata), f"{where}._metadata", copy)
        return out
    if type(value) in (list, tuple, torch.Size):
        items = [_plain(item, f"{where}[{i}]", copy) for i, item in enumerate(value)]
        return items if type(value) is list else tuple(items)
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    raise ParameterError(
        f"checkpoint payload key {where} holds a {kind} ({_describe(value)}), which "
        f"torch.load(weights_only=True) cannot read; store plain data (dict/list/str/int/float/bool/None) "
        f"or torch.Tensor instead"
    )


def _labels_list(labels, name: str = "labels") -> list:
    if isinstance(labels, (str, bytes, set, frozenset, dict)) or not hasattr(labels, "__iter__"):
        raise ParameterError(f"{name} must be a sequence of strings, got {_describe(labels)}")
    out = list(labels)
    if not out:
        raise ParameterError(f"{name} must not be empty, got {_describe(labels)}")
    for i, label in enumerate(out):
        if not isinstance(label, str):
            raise ParameterError(f"{name}[{i}] must be a string, got {_describe(label)}")
    if len(set(out)) != len(out):
        raise ParameterError(f"{name} must be unique, got {out!r}")
    return [str(label) for label in out]


def save_checkpoint(
    path,
    *,
    model: nn.Module,
    model_config: dict,
    feature_config: dict,
    labels: Sequence[str],
    train_config: Optional[dict] = None,
    epoch: int = 0,
    metrics: Optional[dict] = None,
    optimizer=None,
    scheduler=None,
    state: Optional[dict] = None,
    also: Sequence = (),
    writer: Optional["CheckpointWriter"] = None,
) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves any existing file intact).

    Args:
        path: destination file; its parent directory is created.
        model: the module whose ``state_dict()`` is stored.
        model_config: ``ModelConfig.to_dict()`` of ``model`` (a :class:`ModelConfig` is accepted and
            converted); it must rebuild ``model``, so it is checked against ``model.config`` when
            ``model`` is a :class:`CNNBiLSTMAttention`.
        feature_config: ``FeatureConfig.to_dict()`` of the features the model was trained on.
        labels: class names in logit order; ``len(labels)`` must equal ``model_config['n_classes']``.
        train_config: training settings (plain data), default ``{}``.
        epoch: number of completed epochs, default 0.
        metrics: plain-data metrics, default ``{}``.
        optimizer, scheduler: objects with ``state_dict()`` (e.g. AdamW, ReduceLROnPlateau),
            stored under ``optimizer_state``/``scheduler_state``; ``None`` stores ``None``.
        state: free-form plain data and tensors for resuming (RNG states as uint8 tensors,
            history lists, early-stopping counters), default ``{}``.
        also: other paths that get the same checkpoint, each atomically replaced by a hard link to
            ``path`` once it is written (a copy where the filesystem refuses links): one serialisation
            and one write for two names (e.g. ``best.pt`` and ``selected.pt``).
        writer: a :class:`CheckpointWriter`: the payload is checked and its tensors copied (a snapshot)
            here, and the file written by the writer's thread while the caller goes on; None (default):
            written before this returns.

    Returns:
        The path written (with ``writer``: to be written).

    Raises:
        ParameterError: a bad argument, or a payload value that ``torch.load(weights_only=True)``
            could not read (a numpy array, a dataclass, ...), named by its key.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {_describe(path)}")
    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"path must be a file, got the directory {str(path)!r}")
    if not isinstance(model, nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module, got {_describe(model)}")
    if isinstance(model_config, ModelConfig):
        model_config = model_config.to_dict()
    if not isinstance(model_config, dict):
        raise ParameterError(f"model_config must be a dict (ModelConfig.to_dict()), got {_describe(model_config)}")
    config = ModelConfig.from_dict(model_config)  # fails now rather than when the checkpoint is loaded
    if isinstance(model, CNNBiLSTMAttention) and model.config.to_dict() != config.to_dict():
        raise ParameterError(
            f"model_config does not describe model: got {config.to_dict()}, the model has {model.config.to_dict()}"
        )
    if not isinstance(feature_config, dict):
        raise ParameterError(f"feature_config must be a dict (FeatureConfig.to_dict()), got {_describe(feature_config)}")
    labels = _labels_list(labels)
    if len(labels) != config.n_classes:
        raise ParameterError(
            f"labels must have model_config['n_classes'] = {config.n_classes} entries, got {len(labels)}: {labels!r}"
        )
    for name, value in (("train_config", train_config), ("metrics", metrics), ("state", state)):
        if value is not None and not isinstance(value, dict):
            raise ParameterError(f"{name} must be a dict or None, got {_describe(value)}")
    epoch = check_nonnegative_int(epoch, "epoch")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and not callable(getattr(obj, "state_dict", None)):
            raise ParameterError(f"{name} must have a state_dict() method, got {_describe(obj)}")

    from . import __version__

    raw = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "ser_gpu_version": __version__,
        "model_state": model.state_dict(),
        "model_config": config.to_dict(),
        "feature_config": feature_config,
        "labels": labels,
        "train_config": {} if train_config is None else train_config,
        "epoch": epoch,
        "metrics": {} if metrics is None else metrics,
        "optimizer_state": None if optimizer is None else optimizer.state_dict(),
        "scheduler_state": None if scheduler is None else scheduler.state_dict(),
        "state": {} if state is None else state,
    }
    if isinstance(also, (str, os.PathLike)) or not all(isinstance(p, (str, os.PathLike)) for p in also):
        raise ParameterError(f"also must be a sequence of paths, got {_describe(also)}")
    also = tuple(Path(p) for p in also)
    for other in also:
        if other.is_dir() or other == path:
            raise ParameterError(f"also must name files other than path {str(path)!r}, got {str(other)!r}")
    payload = {key: _plain(value, key, copy=writer is not None) for key, value in raw.items()}

    for target in (path, *also):
        target.parent.mkdir(parents=True, exist_ok=True)
    if writer is not None:
        return writer.submit(path, payload, also)
    return _write(path, payload, also)


def _write(path: Path, payload: dict, also: Tuple[Path, ...] = ()) -> Path:
    atomic_write(path, lambda fh: torch.save(payload, fh))
    for other in also:
        atomic_link(path, other)
    return path


class CheckpointWriter:
    """Writes checkpoints (:func:`save_checkpoint` with ``writer=``) in one background thread, atomically
    and in the order they were given, while the training goes on: serialising and syncing a 100 MB
    ``last.pt`` takes ~0.15 s, after every epoch.

    At most ``max_pending`` payloads wait or are being written (each a copy of the model and optimiser
    state); one more waits for the oldest. A failed write is raised, as a CheckpointError naming the
    file, by the next :meth:`submit`, :meth:`flush` or :meth:`close`.
    """

    def __init__(self, max_pending: int = 3):
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ParameterError(f"max_pending must be a positive integer, got {_describe(max_pending)}")
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ser_gpu-checkpoints")
        self._pending: collections.deque = collections.deque()

    def submit(self, path, payload: dict, also: Sequence = ()) -> Path:
        """Queue ``payload`` (a snapshot: nothing may change it) to be written to ``path`` (and linked to
        ``also``, as :func:`save_checkpoint` does)."""
        if self._executor is None:
            raise CheckpointError(f"{path}: the checkpoint writer is closed")
        while self._pending and (self._pending[0][1].done() or len(self._pending) >= self.max_pending):
            self._wait_oldest()
        path = Path(path)
        self._pending.append((path, self._executor.submit(_write, path, payload, tuple(Path(p) for p in also))))
        return path

    def _wait_oldest(self) -> None:
        path, future = self._pending.popleft()
        try:
            future.result()
        except Exception as exc:
            raise CheckpointError(f"{path}: could not be written ({type(exc).__name__}: {exc})") from exc

    def flush(self) -> None:
        """Wait until every queued checkpoint is on disk (the first failure is raised; the rest still wait)."""
        failure = None
        while self._pending:
            try:
                self._wait_oldest()
            except CheckpointError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def close(self) -> None:
        """:meth:`flush`, then stop the thread (idempotent)."""
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


def _fail(source, reason: str) -> CheckpointError:
    return CheckpointError(f"{source}: {reason}")


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException, limit: int = 160) -> str:
    return _clip((str(exc).strip().splitlines() or [type(exc).__name__])[0], limit)


#: the first bytes of files often given where a checkpoint belongs, and what they are
_FOREIGN_MAGIC = ((b"RIFF", "a RIFF file (WAV audio?)"), (b"fLaC", "a FLAC audio file"), (b"OggS", "an Ogg file"),
                  (b"ID3", "an MP3 audio file"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"))


def _not_written_by_torch(path: Path) -> Optional[str]:
    """What the file is when its first bytes show that ``torch.save`` did not write it (neither a zip archive,
    ``PK\\x03\\x04``, nor a pickle, ``\\x80``); None when it may be a checkpoint (or cannot be read here:
    ``torch.load`` then says why)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return None
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return what
    try:  # a character cut at the 512th byte is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "a text file" + (" (JSON?)" if text.lstrip().startswith(("{", "[")) else "")
    return f"it begins with {head[:8]!r}"


def _unpickling_reason(text: str) -> str:
    """torch's weights-only failure without its advice to load with the guard off (never given here)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    kept = [ln for ln in lines if "weights_only" not in ln and not ln.startswith(("Weights only load failed",
                                                                                    "Check the documentation",
                                                                                    "Please file an issue"))]
    reason = kept[0] if kept else "the file could not be unpickled as plain data"
    return _clip(reason)


def _validate_payload(payload, source) -> dict:
    """Check a loaded object is a ser_gpu checkpoint this version can read; fill optional keys."""
    from . import __version__

    if not isinstance(payload, dict):
        raise _fail(source, f"not a ser_gpu checkpoint: it holds a {type(payload).__name__}, not a dict")
    if "format" not in payload:
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise _fail(source, "not a ser_gpu checkpoint: it is a bare state_dict (no 'format' key); "
                                "save with ser_gpu.checkpoint.save_checkpoint")
        raise _fail(source, f"not a ser_gpu checkpoint: no 'format' key (keys: {sorted(map(str, payload))[:8]})")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise _fail(source, f"not a ser_gpu checkpoint: format {payload['format']!r}, expected {CHECKPOINT_FORMAT!r}")
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(source, f"invalid checkpoint version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise _fail(source, f"checkpoint version {version} was written by a newer ser_gpu "
                            f"({payload.get('ser_gpu_version')}); ser_gpu {__version__} reads versions "
                            f"<= {CHECKPOINT_VERSION}: upgrade ser_gpu")
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise _fail(source, f"incomplete checkpoint: missing key(s) {missing}")
    for key in ("model_state", "model_config", "feature_config"):
        if not isinstance(payload[key], dict):
            raise _fail(source, f"corrupt checkpoint: {key!r} holds a {type(payload[key]).__name__}, not a dict")
    labels = payload["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise _fail(source, f"corrupt checkpoint: 'labels' must be a non-empty list of str, got {_describe(labels)}")
    for key, default in _OPTIONAL_DEFAULTS.items():
        payload.setdefault(key, default)
    return payload


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Args:
        path: the checkpoint file.
        map_location: passed to ``torch.load`` (default ``"cpu"``).

    Returns:
        The payload dict (see the module docstring); optional keys missing from an older file take
        their defaults.

    Raises:
        CheckpointError: a missing file, a directory, an empty, corrupt or truncated file, a file
            ``torch.save`` did not write (a recording, a text file: named by its first bytes), a file
            that is not a ser_gpu checkpoint (e.g. a bare state_dict or another ``format``), or one
            from a newer checkpoint version. The message starts with the path and is one line.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"path must be a str or os.PathLike, got {_describe(path)}")
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such checkpoint file")
    if path.is_dir():
        raise _fail(path, "is a directory, not a checkpoint file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, f"cannot be read: {_first_line(exc)}") from exc
    if size == 0:
        raise _fail(path, "empty file (0 bytes): not a checkpoint (interrupted copy?)")
    foreign = _not_written_by_torch(path)
    if foreign:
        raise _fail(path, f"not a checkpoint file: {foreign} (torch.save writes a zip archive, "
                          f"or a pickle in its legacy format)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:  # a pickle of code objects: a whole nn.Module, a dataclass, or a call like os.system
            raise _fail(path, f"refused as unsafe: it holds Python objects ({found.group(1)}) that "
                              f"torch.load(weights_only=True) refuses to unpickle, because unpickling them can "
                              f"run code; not a ser_gpu checkpoint") from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        reason = detail.group(1).strip() if detail else _unpickling_reason(text)
        raise _fail(path, f"corrupt or truncated checkpoint: {reason}") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes raise anything from KeyError to RuntimeError
        raise _fail(path, f"corrupt or truncated checkpoint: {type(exc).__name__}: {_first_line(exc)}") from exc
    return _validate_payload(payload, path)


def load_model(
    checkpoint, *, device=None, labels: Optional[Sequence[str]] = None
) -> Tuple["CNNBiLSTMAttention", dict]:
    """Rebuild the model stored in a checkpoint, ready for inference.

    Args:
        checkpoint: a checkpoint path, or a payload already returned by :func:`load_checkpoint`.
        device: where to put the model (``str`` or ``torch.device``), default ``"cpu"``.
        labels: when given, the label names (in order) the caller expects; a different list in the
            checkpoint raises CheckpointError.

    Returns:
        ``(model, payload)``: a :class:`CNNBiLSTMAttention` in ``eval()`` mode on ``device`` with the
        stored weights, and the checkpoint payload.

    Raises:
        CheckpointError: the file cannot be loaded (see :func:`load_checkpoint`), its model_config is
            invalid, its weights do not fit the architecture (missing/unexpected keys, shape
            mismatches) or hold NaN/infinite values, or its labels differ from ``labels``.
        ParameterError: a bad ``checkpoint`` type, ``device`` or ``labels``.
    """
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device must be a torch device or its name, got {_describe(device)}") from exc
    expected_labels = None if labels is None else _labels_list(labels)

    if isinstance(checkpoint, (str, os.PathLike)):
        source = Path(checkpoint)
        payload = load_checkpoint(source, map_location="cpu")
    elif isinstance(checkpoint, dict):
        source = "<checkpoint payload>"
        payload = _validate_payload(checkpoint, source)
    else:
        raise ParameterError(f"checkpoint must be a path or a loaded checkpoint dict, got {_describe(checkpoint)}")

    try:
        config = ModelConfig.from_dict(payload["model_config"])
    except (ParameterError, TypeError) as exc:
        raise _fail(source, f"invalid model_config: {_first_line(exc)}") from exc
    stored_labels = payload["labels"]
    if len(stored_labels) != config.n_classes:
        raise _fail(source, f"corrupt checkpoint: {len(stored_labels)} labels for n_classes={config.n_classes}")
    if expected_labels is not None and expected_labels != stored_labels:
        raise _fail(source, f"labels differ: the checkpoint has {stored_labels}, expected {expected_labels}")

    model = CNNBiLSTMAttention(config)
    state = payload["model_state"]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    not_tensors = [k for k in expected if k in state and not isinstance(state[k], torch.Tensor)]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("shape mismatch (checkpoint vs model)", mismatched), ("not a tensor", not_tensors)):
        if keys:
            more = f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""
            problems.append(f"{what}: {', '.join(map(str, keys[:4]))}{more}")
    if problems:
        raise _fail(source, "weights do not fit CNNBiLSTMAttention(model_config) (another architecture?): "
                            + "; ".join(problems))
    not_finite = [k for k in expected if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())]
    if not_finite:
        more = f" (+{len(not_finite) - 4} more)" if len(not_finite) > 4 else ""
        raise _fail(source, f"refused: weights hold NaN or infinite values ({', '.join(not_finite[:4])}{more}), "
                            f"as a diverged training writes; predictions from them would be meaningless")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. dtype that cannot be copied; the checks above catch the usual cases
        raise _fail(source, f"weights do not load: {_first_line(exc)}") from exc
    return model.to(device).eval(), payload


def checkpoint_list(checkpoints) -> list:
    """``checkpoints`` as a list: one path (or payload) becomes a list of one, a sequence a list."""
    return [checkpoints] if isinstance(checkpoints, (str, os.PathLike, dict)) else list(checkpoints)


def load_models(checkpoints, *, device=None, labels: Optional[Sequence[str]] = None) -> Tuple[nn.Module, List[dict]]:
    """One checkpoint's model, or several checkpoints' as one :class:`~ser_gpu.models.SoftmaxEnsemble`.

    Args:
        checkpoints: a checkpoint path (or payload), or a list of them: models trained with other seeds
            (``python -m ser_gpu.crossval --ensemble``, or ``train --seed``) on the same rows.
        device, labels: as :func:`load_model`, for each.

    Returns:
        ``(model, payloads)``: the model (a lone checkpoint's :class:`CNNBiLSTMAttention` itself) and
        the payloads in the order given; the first one's feature config and labels are the ensemble's.

    Raises:
        CheckpointError: as :func:`load_model`, for any of them; or two of them that read other rows
            (feature config, row standardisation, input rows) or answer with other labels.
        ParameterError: an empty list; as :func:`load_model`.
    """
    from .models import SoftmaxEnsemble

    checkpoints = checkpoint_list(checkpoints)
    if not checkpoints:
        raise ParameterError("checkpoints must name at least one checkpoint, got []")
    models, payloads = [], []
    for source in checkpoints:
        model, payload = load_model(source, device=device, labels=labels)
        name = str(source) if not isinstance(source, dict) else "<checkpoint payload>"
        if not payloads:
            first_features = feature_config(payload, name)
        else:
            first = payloads[0]
            differ = [what for what, a, b in (
                ("labels", payload["labels"], first["labels"]),
                ("feature_config", feature_config(payload, name), first_features),
                ("row standardisation (train_config normalize)", speaker_normalized(payload),
                 speaker_normalized(first)),
                ("input rows (model_config input_dim)", model.config.input_dim, models[0].config.input_dim),
            ) if a != b]
            if differ:
                raise _fail(name, f"cannot join an ensemble with {checkpoints[0]}: its {', '.join(differ)} "
                                  f"differ; the members of an ensemble must read the same rows")
        models.append(model)
        payloads.append(payload)
    return (models[0] if len(models) == 1 else SoftmaxEnsemble(models).eval()), payloads


def speaker_normalized(payload: dict) -> bool:
    """Whether a checkpoint's model reads rows standardised per speaker (trained with
    ``normalize='speaker'``): its callers must standardise each clip with its speaker's statistics
    (:mod:`ser_gpu.transforms.row_stats`)."""
    config = payload.get("train_config") or {}
    return isinstance(config, dict) and config.get("normalize") == "speaker"


def feature_config(payload: dict, source="<checkpoint payload>") -> "FeatureConfig":
    """The :class:`~ser_gpu.transforms.FeatureConfig` of a loaded checkpoint (the rows its model reads).

    Raises:
        CheckpointError: the stored feature_config is not a valid FeatureConfig (message starts with ``source``).
    """
    try:
        return FeatureConfig.from_dict(payload["feature_config"])
    except (ParameterError, TypeError) as exc:
        raise _fail(source, f"invalid feature_config: {_first_line(exc)}") from exc
