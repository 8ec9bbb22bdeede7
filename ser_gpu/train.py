"""``python -m ser_gpu.train``: the SER classifier trained end to end, with the data path on the device.

The cached, trimmed waveforms sit on the device. Each epoch shuffles them (from the seed) and cuts the
order into chunks of whole batches; for each chunk, ``WaveformAugment`` (noise, time stretch, pitch
shift, shift; fresh parameters per example and per epoch) -> ``FeatureExtractor`` (the 68 rows of
docs/design.md) -> ``SpecAugment`` run over all its clips in a few large calls (clips grouped by length, sizes
padded to a geometric ladder: :mod:`ser_gpu.data.chunks`), then ``CNNBiLSTMAttention`` trains on the
chunk's ``batch_size`` batches. Validation and test use the same features without augmentation,
computed once. What is learnt follows a recipe (:data:`RECIPES`): ``speech`` (AdamW,
cosine schedule with warm-up, class-weighted cross-entropy with label smoothing 0.1, rows standardised
with the training split's statistics, the last epoch kept, and the statistics head: ``stats_head``, a
logistic regression on each clip's row statistics, fitted on the training split before the first epoch
and fused with the network; :mod:`ser_gpu.models.stats_head`), or ``original``, the original system's
(AdamW with weight decay 1e-3, ReduceLROnPlateau (factor 0.5, patience 10) on the validation loss, early
stopping after 20 epochs without improvement, per-clip standardisation, the lowest validation loss
kept, no head); both clip gradients at 1.0. ``speaker`` is ``speech`` with each speaker's own
statistics (``normalize='speaker'``) and 4 augmented copies; ``clip`` is ``original`` with a statistics
head (C 0.01) on each clip's raw rows (the model standardises each clip itself, ``ModelConfig.clip_norm``,
so the head sees the level and spread that per-clip standardisation hides from the network), answering
under a uniform class prior, with ``best.pt`` the mean of the weights of the selected epoch and the 20
epochs after it (``average_weights``: :mod:`ser_gpu.weight_average`). ``clip``
is the default (:data:`DEFAULT_RECIPE`): the most accurate measured on unseen RAVDESS actors from one
recording; ``speech`` trains 3-5 times faster at a few points less (README "Real speech").

With no ``--data-dir`` the built-in synthetic corpus (:mod:`ser_gpu.data.synthetic`) is generated
once into a cache directory and used.

``torchrun --nproc_per_node=N -m ser_gpu.train ...`` trains with DistributedDataParallel (NCCL on
CUDA, gloo on the CPU): the epoch's batches are shared out round robin, validation and test predictions
are gathered from every rank, and rank 0 alone writes (:mod:`ser_gpu.distributed` says how).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import io
import math
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn
from tqdm import tqdm

from . import distributed as _distributed
from ._atomic import atomic_write, save_json
from ._cli import (CACHE_DIR_HELP, check_output_dir, missing_dirs, option_error, refuse_held, remove_empty_dirs,
                   resolve_device, run_main)
from ._validation import (check_in_range, check_nonnegative, check_positive, check_positive_int, check_probability,
                          config_from_dict, config_to_dict)
from ._lock import RunLock
from ._threads import intra_op_threads, training_share
from ._transfer import to_device
from .data.chunks import chunk_batches, epoch_chunks, epoch_clips, ladder, length_groups
from .errors import AudioLoadError, CheckpointError, ParameterError, TrainingDiverged
from .evaluate import metrics_from_predictions
from .functional.lengths import num_frames
from .models.stats_head import clip_statistics, standardized_statistics
from .transforms.row_stats import RowStatistics, standardize_clips, standardize_rows
from .transforms.features import FEATURE_ROWS, FeatureConfig, FeatureExtractor
from .weight_average import WeightAverage

__all__ = ["TrainConfig", "train_model", "plot_curves", "main"]

_SPLITS = ("random", "actor")
_SCHEDULES = ("cosine", "plateau")
_SELECT = ("last", "uar", "loss")
_NORMALIZE = ("train", "speaker", "valid", "padded", None)

# The chunked data path (see _Run._chunk_features). Waveforms are padded to rungs that are multiples
# of the hop (so frame counts follow the same ladder), feature frames to multiples of 4 (the model's
# two max-pools of 2).
SAMPLE_MULTIPLE = 512
FRAME_MULTIPLE = 4
CPU_CHUNK_SIZE = 256  # on the CPU larger calls gain little: the time is arithmetic, not launch latency
MEMORY_SHARE = 0.5  # of the free device memory, for one chunk's augmentation and features
# Peak bytes the data path (augmentation + 68 rows + SpecAugment, float32) holds per padded input
# sample of a chunk: ~200 measured on the CPU (peak RSS growth, `benchmarks/bench_train.py --memory`),
# taken 5x for the CUDA caching allocator and cuFFT workspaces. A chunk that still runs out of memory
# is split in two and redone (see _Run._chunk_features).
BYTES_PER_SAMPLE = 1024
# curves.png is redrawn after an epoch once this many seconds have passed since it was last drawn, and when the
# training ends: drawing it costs ~0.25 s, at every epoch 5 % of the README job on the CPU (more on a GPU)
CURVES_INTERVAL_S = 30.0
# devices whose runs write their checkpoints from a background thread (checkpoint.CheckpointWriter): on CUDA
# the copy to the host is made anyway and the host's cores are free while the GPU trains; on the 2-core CPU
# the writer's copy and its thread slowed the epochs by what it saved (README job, 101-109 s vs 99-104 s)
BACKGROUND_CHECKPOINT_DEVICES = ("cuda",)
# devices whose AdamW is torch's fused one (one kernel per step on CUDA, where the default launches a
# multi-tensor kernel per operation; on the CPU, 6.6 M parameters: 8-10 ms a step against 27-33 ms, one
# thread). A resumed run keeps the implementation its checkpoint was written with (its param_groups)
FUSED_ADAMW_DEVICES = ("cpu", "cuda")
# result.json's "seconds": the host wall time of each part of a run (this process's; see _Run.timed)
PHASES = ("data", "statistics", "validation_features", "epochs", "checkpoints", "metrics", "test", "total")
_MAIN_AGAIN = object()  # _Run._main_first: the other ranks run the same function after rank 0


def _quietly(fn):
    """``fn`` with its warnings silenced (the other ranks repeat rank 0's work, and would repeat its warnings)."""
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    return run


@dataclass
class TrainConfig:
    """Every setting of a training run (plain data: stored in each checkpoint as a dict).

    The field defaults are the ``speech`` recipe (:data:`RECIPES`, whose other recipes are changes to
    them); :meth:`for_recipe` starts from a named recipe, by default :data:`DEFAULT_RECIPE` (``clip``),
    which is what :func:`train_model` and ``python -m ser_gpu.train`` train; ``out`` holds ``best.pt``,
    ``last.pt``, ``metrics.csv``, ``metrics.json`` and ``curves.png``.
    """

    data_dirs: List[str] = field(default_factory=list)  # empty: the built-in synthetic corpus
    corpus: List[str] = field(default_factory=list)  # naming scheme: [] detect; one for all dirs, or one per dir
    out: str = "runs/ser"
    recipe: str = "speech"  # the defaults this config started from (RECIPES); informational once built
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    schedule: str = "cosine"  # "cosine": linear warm-up, then cosine decay to 0 per step; "plateau": the original
    warmup_epochs: int = 2  # schedule="cosine"
    lr_factor: float = 0.5  # schedule="plateau"
    lr_patience: int = 10  # schedule="plateau"
    # best.pt: the last epoch ("last": the end of the cosine decay), the epoch of highest validation UAR ("uar")
    # or of lowest validation loss ("loss")
    select: str = "last"
    early_stopping: int = 20  # epochs without a better validation score (see select; never with "last"); 0 disables
    # best.pt once the run ends: the mean of the weights of the selected epoch and of every epoch after it
    # (with early stopping, the early_stopping epochs that ended the run; ser_gpu.weight_average), one model;
    # while the run goes on, and with select="last", the selected epoch's own, which selected.pt keeps
    average_weights: bool = False
    class_weights: bool = True  # cross-entropy weighted n / (K n_k) by the training split's class counts
    grad_clip: float = 1.0
    split: str = "random"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    n_folds: Optional[int] = None
    fold: int = 0
    # the validation fold of split="actor" with n_folds; None: (fold + 1) % n_folds (crossval
    # --rotate-validation gives each ensemble member another, so the members train on different actors)
    val_fold: Optional[int] = None
    seed: int = 0
    # the seed of the split (the actor shuffle of split="actor", the clip shuffle of "random"); None: seed.
    # Several runs with one split_seed and their own seeds train on the same folds (crossval --ensemble)
    split_seed: Optional[int] = None
    device: str = "auto"
    amp: bool = True  # bf16 autocast of the model on CUDA; ignored on CPU
    augment: bool = True
    # None: fresh waveform augmentation every epoch; K: K augmented copies of each training clip are
    # computed once, epoch e takes copy e mod K (SpecAugment stays fresh every epoch)
    augment_copies: Optional[int] = None
    p_noise: float = 0.5
    p_stretch: float = 0.5
    p_pitch: float = 0.5
    p_shift: float = 0.5
    spec_augment: bool = True
    max_frames: Optional[int] = None  # None: each batch's longest clip (the model masks the padding)
    chunk_size: Optional[int] = None  # clips per augmentation/feature call; None: from free memory (CUDA), 256 (CPU)
    compile_model: bool = False  # torch.compile the model's forward (off: eager; measure before turning it on)
    # compute the next chunk's features on a second thread while the model trains (on the CPU the training
    # then takes half of torch's threads: the same draws as without, not the same last bits with several)
    prefetch: bool = True
    # "train": the model standardises each row with the training split's statistics (its input_norm);
    # "speaker": each clip's rows standardised with its speaker's statistics (all of that speaker's clips in
    # the run, no augmentation, labels unused: evaluate and predict need several recordings of a speaker);
    # "valid": each clip's rows standardised with their own statistics, by the model (ModelConfig.clip_norm:
    # it reads the raw rows, so the statistics head sees each clip's level and spread; training standardises
    # before SpecAugment, as the original system did); "padded"/None: the features come standardised per clip
    # over the padded frames too (FeatureConfig.normalize), or raw
    normalize: Optional[str] = "train"
    tonnetz: bool = True
    channels: List[int] = field(default_factory=lambda: [64, 128, 128])  # conv block widths (ModelConfig)
    lstm_hidden: int = 128
    lstm_layers: int = 2
    dropout: float = 0.3
    # C > 0: fuse a logistic regression (inverse L2 strength C) on each clip's row statistics, fitted on the
    # training split before the first epoch, with the network (ModelConfig.stats_head); None: the network alone
    stats_head: Optional[float] = 0.1
    # the statistics head's data: each training clip without augmentation plus K augmented versions of it
    # (the run's waveform augmentation, no SpecAugment, drawn from a generator of their own: the network's
    # training draws stay the same for any K). 0: the clean clips alone, the head before 2026-12-06, whose
    # answer collapses to chance under faint noise (30 dB SNR) on clean-studio training speech (README
    # "Noise"). Without augment there is nothing to draw: the clean clips alone
    stats_head_copies: int = 4
    # answer under a uniform class prior (ModelConfig.prior_correction): the head's softmax divided by the
    # training split's class frequencies, the network's too unless class_weights trained it balanced; the
    # decision that maximises UAR (RAVDESS has half as many neutral clips). Training's loss is untouched
    prior_correction: bool = True
    cache_dir: Optional[str] = None
    synthetic_dir: Optional[str] = None
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.data_dirs, (str, Path)):
            self.data_dirs = [self.data_dirs]
        self.data_dirs = [str(d) for d in (self.data_dirs or [])]
        self.corpus = _check_corpora(self.corpus, len(self.data_dirs))
        self.out = str(self.out)
        for name in ("epochs", "batch_size", "lr_patience"):
            check_positive_int(getattr(self, name), name)
        for name in ("early_stopping", "seed", "fold", "split_seed"):
            value = getattr(self, name)
            if name == "split_seed" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                optional = " or None" if name == "split_seed" else ""
                raise ParameterError(f"{name} must be a non-negative integer{optional}, got {value!r}")
        check_positive(self.lr, "lr")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_in_range(self.label_smoothing, "label_smoothing", 0.0, 1.0)
        check_in_range(self.lr_factor, "lr_factor", 0.0, 1.0)
        check_positive(self.grad_clip, "grad_clip")
        if self.recipe not in RECIPES:
            raise ParameterError(f"recipe must be one of {tuple(RECIPES)}, got {self.recipe!r}")
        if self.schedule not in _SCHEDULES:
            raise ParameterError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.select not in _SELECT:
            raise ParameterError(f"select must be one of {_SELECT}, got {self.select!r}")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ParameterError(f"warmup_epochs must be a non-negative integer, got {self.warmup_epochs!r}")
        self.channels = list(self.model_config(8).channels)  # validates channels, lstm_*, dropout
        for name in ("p_noise", "p_stretch", "p_pitch", "p_shift"):
            check_probability(getattr(self, name), name)
        if self.split not in _SPLITS:
            raise ParameterError(f"split must be one of {_SPLITS}, got {self.split!r}")
        if self.n_folds is not None and (self.n_folds < 2 or self.fold >= self.n_folds):
            raise ParameterError(f"n_folds must be >= 2 and fold in [0, n_folds), got n_folds={self.n_folds!r}, "
                                 f"fold={self.fold!r}")
        if self.n_folds is not None and self.split != "actor":  # here, before the corpus is read
            raise ParameterError(f"n_folds applies to split='actor' only, got n_folds={self.n_folds!r} with "
                                 f"split={self.split!r} (on the command line: --folds needs --split actor)")
        if self.val_fold is not None and (self.split != "actor" or self.n_folds is None
                                          or isinstance(self.val_fold, bool) or not isinstance(self.val_fold, int)
                                          or not 0 <= self.val_fold < self.n_folds or self.val_fold == self.fold):
            raise ParameterError(f"val_fold must be None or, with split='actor' and n_folds, a fold in [0, n_folds) "
                                 f"other than fold; got val_fold={self.val_fold!r} (split={self.split!r}, "
                                 f"n_folds={self.n_folds!r}, fold={self.fold!r})")
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")
        if self.augment_copies is not None:
            check_positive_int(self.augment_copies, "augment_copies")
            if not self.augment:
                raise ParameterError(f"augment_copies={self.augment_copies} needs waveform augmentation, but augment is "
                                     f"False (without augmentation the training rows are computed once anyway)")
        if self.stats_head is not None:
            check_positive(self.stats_head, "stats_head")
        if isinstance(self.stats_head_copies, bool) or not isinstance(self.stats_head_copies, int) \
                or self.stats_head_copies < 0:
            raise ParameterError(f"stats_head_copies must be a non-negative integer, got {self.stats_head_copies!r}")
        if self.normalize not in _NORMALIZE:
            raise ParameterError(f"normalize must be one of {_NORMALIZE}, got {self.normalize!r}")
        for name in ("class_weights", "prior_correction", "average_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self.feature_config()  # validates max_frames

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`. A dict without ``recipe`` was written before recipes existed, by a
        run of the original recipe: its missing keys take the original recipe's values; one without
        ``stats_head`` was written before the statistics head existed (``None``); one without
        ``stats_head_copies`` before the head saw augmented clips (``0``); one without ``prior_correction``
        before the answer was corrected for the class prior (``False``); one without ``average_weights``
        before best.pt could hold averaged weights (``False``)."""
        if isinstance(data, dict) and "recipe" not in data:
            data = {**RECIPES["original"], **data, "recipe": "original"}
        if isinstance(data, dict) and "stats_head" not in data:
            data = {**data, "stats_head": None}  # written before the statistics head existed: a run without it
        if isinstance(data, dict) and "stats_head_copies" not in data:
            data = {**data, "stats_head_copies": 0}  # written when the head was fitted on the clean clips alone
        if isinstance(data, dict) and "prior_correction" not in data:
            data = {**data, "prior_correction": False}  # written before the answer was corrected for the prior
        if isinstance(data, dict) and "average_weights" not in data:
            data = {**data, "average_weights": False}  # written before best.pt could hold averaged weights
        return config_from_dict(cls, data)

    @classmethod
    def for_recipe(cls, recipe: Optional[str] = None, **settings) -> "TrainConfig":
        """A config from ``recipe``'s values (:data:`RECIPES`; ``None``: :data:`DEFAULT_RECIPE`) with
        ``settings`` on top (an unknown ``recipe`` is refused by the config's own check)."""
        recipe = DEFAULT_RECIPE if recipe is None else recipe
        values = {**RECIPES.get(recipe, {}), **settings, "recipe": recipe}
        if values.get("augment") is False and "augment_copies" not in settings:
            values.pop("augment_copies", None)  # no augmentation given: the recipe's copies have nothing to copy
        return cls(**values)

    def feature_config(self) -> FeatureConfig:
        """The rows the model reads: trimmed clips (``trim=True``), as :mod:`ser_gpu.predict` rebuilds them."""
        normalize = None if self.normalize in ("train", "speaker", "valid") else self.normalize
        return FeatureConfig(max_frames=self.max_frames, normalize=normalize, tonnetz=self.tonnetz)

    def model_config(self, n_classes: int):
        """The classifier's :class:`ser_gpu.models.ModelConfig` for ``n_classes`` emotions."""
        from .models import ModelConfig

        return ModelConfig(input_dim=len(FEATURE_ROWS), n_classes=n_classes, channels=tuple(self.channels),
                           lstm_hidden=self.lstm_hidden, lstm_layers=self.lstm_layers, dropout=self.dropout,
                           attention_heads=8 if (2 * self.lstm_hidden) % 8 == 0 else 1,
                           input_norm=self.normalize == "train", clip_norm=self.normalize == "valid",
                           stats_head=self.stats_head is not None, prior_correction=self.prior_correction)


# The original system's recipe (its train_model defaults, its 6.6 M-parameter model, features
# standardised per clip, no statistics head); "speech" is TrainConfig's field defaults (the training
# split's statistics and the statistics head), measured on real RAVDESS speech with held-out actors (README
# "Real speech"); "speaker" is the most accurate there, with each speaker's own statistics
# (transductive: several recordings of a speaker are needed, also by evaluate and predict) and 4
# augmented copies; "clip" is below.
RECIPES = {
    "speech": {},
    "speaker": dict(normalize="speaker", augment_copies=4, stats_head=0.1),
    "original": dict(epochs=300, lr=1e-4, batch_size=16, weight_decay=1e-3, schedule="plateau", select="loss",
                     class_weights=False, normalize="valid", channels=[128, 256, 512], lstm_hidden=256,
                     lstm_layers=3, dropout=0.3, stats_head=None, prior_correction=False),
}
# the original recipe fused with a statistics head on each clip's raw rows (its model standardises per clip,
# ModelConfig.clip_norm, so the head sees each clip's level and spread); C 0.01, chosen on the folds of seeds
# 0 and 1 (README "Real speech"), answering under a uniform class prior (both halves trained under the
# training split's: no class weights), with the mean of the weights of the selected epoch and the 20 after it
# (average_weights: +0.012 to +0.025 UAR over the selected epoch on each of the three RAVDESS fold sets it was
# chosen on, -0.004 on a fourth held out from the choice; +0.013 over the four)
RECIPES["clip"] = {**RECIPES["original"], "stats_head": 0.01, "prior_correction": True, "average_weights": True}
# what train_model, python -m ser_gpu.train and crossval train when no recipe is named: the most accurate
# measured from one recording (README "Real speech"); TrainConfig()'s own field values are "speech"'s
DEFAULT_RECIPE = "clip"


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """The class weights ``n / (K n_k)`` of a class-balanced loss from ``[shape=(K,)]`` class counts (float32,
    on the counts' device); a class without clips weighs 0."""
    counts = counts.double()
    return torch.where(counts > 0, counts.sum() / (counts.numel() * counts.clamp_min(1)), 0.0).float()


def cosine_factor(step: int, *, warmup: int, total: int) -> float:
    """The learning-rate factor of ``schedule='cosine'`` before optimizer step ``step`` (0-based): linear
    warm-up ``(step + 1) / warmup`` over the first ``warmup`` steps, then ``(1 + cos(pi t)) / 2`` with
    ``t`` going from 0 to 1 over the remaining ``total - warmup`` steps (0 at and beyond ``total``)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


# ------------------------------------------------------------------------------------------- the run

class _Done:
    """A finished job with a Future's ``result()`` (the data stream without the prefetch thread)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Run:
    """Everything one training run holds; split from :func:`train_model` to keep the steps readable."""

    def __init__(self, config: TrainConfig, *, resume: bool, overwrite: bool, given=None):
        from .data import EMOTIONS

        self.config = c = config
        self._started = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)  # result.json's "seconds" (timed)
        self.out = Path(c.out)
        self.labels = list(EMOTIONS)
        if resume and overwrite:
            raise ParameterError("resume and overwrite exclude each other: --resume continues the run in "
                                 f"{str(self.out)!r}, --overwrite replaces it; pass one of them")
        self._lock = None
        self._created_dirs = []  # what _check_out created for --out: removed again by a run that wrote nothing
        self._checkpoints = None  # rank 0's CheckpointWriter (BACKGROUND_CHECKPOINT_DEVICES), made by the first _save
        # under torchrun: join the process group (NCCL on cuda:LOCAL_RANK, gloo on the CPU)
        self.dist, self.device = _distributed.setup(resolve_device(c.device))
        self.is_main = self.dist.is_main
        try:
            # Rank 0 alone checks the run directory, takes its lock and reads last.pt; the others wait
            # for its verdict (an error there is raised on every rank) and receive the same payload.
            self.resume_payload = self._main_first_setup(resume, overwrite)
            if self.resume_payload is not None:
                stored = TrainConfig.from_dict(self.resume_payload["train_config"])
                _check_resume_settings(stored, c, given, self.out / "last.pt")
                # The stored run defines everything but how long to go on and where/how to show it.
                epochs = c.epochs if given is None or "epochs" in given else stored.epochs
                self.config = c = dataclasses.replace(stored, epochs=epochs, device=c.device, progress=c.progress,
                                                      out=c.out, cache_dir=c.cache_dir, prefetch=c.prefetch,
                                                      compile_model=c.compile_model)
            if not self.is_main:  # one progress bar and one set of messages: rank 0's
                self.config = c = dataclasses.replace(c, progress=False)
            torch.manual_seed(c.seed)
            # rank 0 fills the waveform cache, the others then read it (its warnings were rank 0's to give)
            with self.timed("data"):
                self._main_first(self._build_data, others=_quietly(self._build_data))
            with self.timed("statistics"):  # the model, the training split's statistics, the statistics head
                self._build_modules()
        except BaseException:
            self.release()
            raise

    @contextlib.contextmanager
    def timed(self, phase: str):
        """Add the host wall time of the block to ``seconds[phase]`` (:data:`PHASES`). On CUDA a phase ends
        when its host work does (kernels may still run), which the next host sync charges to its phase."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def release(self) -> None:
        """Stop the prefetch thread, finish writing the checkpoints, give up the run directory's lock and
        leave the process group this run joined (idempotent). A checkpoint that fails here is warned about:
        the run ends with another error already (:func:`_fit` raises a failed write itself)."""
        if getattr(self, "_executor", None) is not None:
            self.close_data()
        if self._checkpoints is not None:
            try:
                self._checkpoints.close()
            except CheckpointError as exc:
                warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
            self._checkpoints = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        remove_empty_dirs(self._created_dirs)  # a run that failed before writing anything leaves no --out
        self._created_dirs = []
        self.dist.close()

    def _main_first_setup(self, resume: bool, overwrite: bool) -> Optional[dict]:
        """Rank 0: :meth:`_check_out` (takes the lock) and, with ``resume``, :meth:`_load_resume`; the
        other ranks receive its payload (or its error)."""
        def setup():
            self._check_out(resume, overwrite)
            return self._load_resume() if resume else None

        return self._main_first(setup, others=None)

    def _main_first(self, main, others=_MAIN_AGAIN):
        """Run ``main()`` on rank 0 first; its outcome is broadcast so that every rank continues or fails
        alike (a ParameterError/AudioLoadError/CheckpointError on rank 0 is raised on every rank, with
        rank 0's message). Then the other ranks run ``others()`` (by default ``main`` again), or, with
        ``others=None``, return rank 0's result. Without torchrun: ``main()``."""
        if not self.dist.enabled:
            return main()
        outcome, error = None, None
        if self.is_main:
            try:
                outcome = ("ok", main())
            except (ParameterError, AudioLoadError, CheckpointError) as exc:
                outcome, error = (type(exc).__name__, str(exc)), exc
        shared = self.dist.broadcast_object(outcome if others is None or outcome is None or outcome[0] != "ok"
                                            else ("ok", None))
        if shared[0] != "ok":
            if error is not None:
                raise error
            kinds = {"AudioLoadError": AudioLoadError, "CheckpointError": CheckpointError}
            raise kinds.get(shared[0], ParameterError)(shared[1])
        if self.is_main:
            return outcome[1]
        if others is None:
            return shared[1]
        return (main if others is _MAIN_AGAIN else others)()

    # -- output directory -------------------------------------------------------------------------
    def _check_out(self, resume: bool, overwrite: bool) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise ParameterError(f"out must be a directory, got the file {str(self.out)!r}")
        existing = [n for n in ("last.pt", "best.pt") if (self.out / n).exists()]
        if not (resume or overwrite):
            refuse_held(self.out, existing, what="a training run",
                        remedy="pass --resume to continue it or --overwrite to replace it")
        # outputs without a checkpoint beside them are not a run's: someone else's files
        foreign = [n for n in _RUN_OUTPUTS if (self.out / n).exists()]
        if foreign and not existing and not overwrite:
            raise ParameterError(f"out directory {str(self.out)!r} holds {', '.join(foreign)} but no checkpoint: not a "
                                 f"ser_gpu run; choose another --out or pass --overwrite to replace them")
        check_output_dir(self.out, argument="out")
        self._created_dirs = missing_dirs(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(self.out)
        self._lock.acquire()
        # temporary files an interrupted save left (kill -9 between write and rename); ours when we hold the
        # lock (where the file system refuses locks, another run's save may be under way: left alone)
        if self._lock.held:
            for name in ("last.pt", "best.pt", "selected.pt") + _RUN_OUTPUTS:
                for tmp in self.out.glob(f".{name}.*.tmp"):
                    tmp.unlink(missing_ok=True)
        if overwrite:  # the replaced run's selected epoch is not this run's (overwrite excludes resume)
            (self.out / "selected.pt").unlink(missing_ok=True)

    def _load_resume(self) -> dict:
        from .checkpoint import load_checkpoint

        path = self.out / "last.pt"
        if not path.exists():
            raise CheckpointError(f"{path}: cannot resume, no last.pt in {str(self.out)!r} (train without --resume first)")
        payload = load_checkpoint(path)
        for key in ("train_config", "state", "optimizer_state", "scheduler_state"):
            if not isinstance(payload.get(key), dict):
                raise CheckpointError(f"{path}: not a resumable training checkpoint (no {key!r})")
        return payload

    # -- data -------------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        if self.config.progress:
            print(message, file=sys.stderr)

    def _build_data(self) -> None:
        from .data import WaveformSet, corpus_table, load_waveforms, scan_corpus, split_clips, synthetic

        c = self.config
        if c.data_dirs:
            dirs = c.data_dirs
        else:
            root = Path(c.synthetic_dir) if c.synthetic_dir else synthetic.default_corpus_dir()
            self._say(f"no --data-dir given: using the built-in synthetic corpus in {root} "
                      f"(generated on first use, then reused)")
            synthetic.make_corpus(root, seed=0, progress=c.progress)
            dirs = [str(root)]
        clips = scan_corpus(dirs, corpus=c.corpus if c.data_dirs else None)
        waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=c.cache_dir,
                                      progress=c.progress)
        split = split_clips(clips, method=c.split, seed=c.seed if c.split_seed is None else c.split_seed,
                            val_fraction=c.val_fraction,
                            test_fraction=c.test_fraction, n_folds=c.n_folds, fold=c.fold, val_fold=c.val_fold)
        self.clips = clips
        self.test_paths = [str(clips[i].path) for i in split.test]  # the test set's stored order
        self._say(f"clips per corpus and emotion:\n{corpus_table(clips)}")

        # speakers (Clip.speaker), indexed in sorted order: the groups of normalize='speaker'
        self.speakers = sorted({clip.speaker for clip in clips})
        speaker_index = {name: k for k, name in enumerate(self.speakers)}

        def subset(idx):
            return WaveformSet([waves[i] for i in idx], [clips[i].label for i in idx],
                               [speaker_index[clips[i].speaker] for i in idx]).to(self.device)

        self.train_set = subset(split.train)
        self.val_set = subset(split.val)
        self.test_set = subset(split.test) if len(split.test) else None
        self.split_sizes = {"train": len(split.train), "val": len(split.val), "test": len(split.test)}
        if len(split.train) < 2:
            raise ParameterError(f"the {c.split} split leaves {len(split.train)} training clip(s); at least 2 are needed "
                                 f"(found {len(clips)} usable clips in {dirs})")
        self.n_train_batches = math.ceil(epoch_clips(len(split.train), c.batch_size) / c.batch_size)
        if self.n_train_batches < self.dist.world_size:
            raise ParameterError(f"{self.dist.world_size} processes need at least as many training batches, but the "
                                 f"{len(split.train)} training clips make {self.n_train_batches} of batch_size "
                                 f"{c.batch_size}: start fewer processes or lower --batch-size")
        self._say(f"{len(clips)} clips: {self.split_sizes['train']} train, {self.split_sizes['val']} validation, "
                  f"{self.split_sizes['test']} test ({c.split} split); device {self.device}")
        if self.dist.enabled:
            self._say(f"distributed: {self.dist.world_size} process(es) ({self.dist.backend}); batch k of each epoch "
                      f"goes to rank k mod {self.dist.world_size}, an optimizer step takes up to "
                      f"{self.dist.world_size} x {c.batch_size} clips; rank 0 writes the outputs")

    # -- modules ----------------------------------------------------------------------------------
    def _build_modules(self) -> None:
        from .models import CNNBiLSTMAttention
        from .transforms.augment import SpecAugment, WaveformAugment

        c = self.config
        self.feature_config = c.feature_config()
        # The cache holds trimmed clips already: the extractor must not trim a second time.
        self.extractor = FeatureExtractor(self.feature_config, trim=False).to(self.device)
        self.augment = WaveformAugment(sr=22050, p_noise=c.p_noise, p_stretch=c.p_stretch, p_pitch=c.p_pitch,
                                       p_shift=c.p_shift).to(self.device)
        self.spec_augment = SpecAugment().to(self.device)
        self.model_config = c.model_config(len(self.labels))
        self.model = CNNBiLSTMAttention(self.model_config).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay,
                                           fused=self.device.type in FUSED_ADAMW_DEVICES)
        self.steps_per_epoch = (len(_distributed.step_weights(self.n_train_batches, self.dist.rank,
                                                              self.dist.world_size))
                                if self.dist.enabled else self.n_train_batches)
        if c.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, functools.partial(cosine_factor, warmup=c.warmup_epochs * self.steps_per_epoch,
                                                  total=c.epochs * self.steps_per_epoch))
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min",
                                                                        factor=c.lr_factor, patience=c.lr_patience)
        counts = torch.bincount(self.train_set.labels, minlength=len(self.labels)).double()  # also the prior, below
        balanced = balanced_class_weights(counts)
        weight = balanced if c.class_weights else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=c.label_smoothing)
        # the validation (and test) loss scores the answer under the prior it assumes: with prior_correction,
        # a uniform one, so the loss is balanced too (as the unweighted loss scores an uncorrected answer under
        # the split's own prior)
        self.eval_criterion = nn.CrossEntropyLoss(weight=balanced if c.prior_correction else weight,
                                                  label_smoothing=c.label_smoothing)
        self.chunk_size = self._resolve_chunk_size()
        # Shuffling draws on the CPU, the same on every rank; augmentation draws on the device where the
        # waveforms are, one stream per rank (rank 0's is the one-process run's).
        self.shuffle_gen = torch.Generator().manual_seed(c.seed)
        self.augment_gen = torch.Generator(device=self.device).manual_seed(self._rank_seed("augment"))
        # without waveform augmentation a training clip's rows are the same every epoch: computed once;
        # with augment_copies, its K augmented versions are
        self.train_cache = None
        if not c.augment or c.augment_copies:
            self.train_cache = self._train_rows()
        if self.dist.rank > 0:  # dropout masks: each rank its own stream (the weights were drawn above, alike)
            torch.manual_seed(self._rank_seed("dropout"))
        # the raw clip statistics of the training split, gathered by the statistics pass below for the
        # statistics head (no second pass over the split: _stats_head_data standardises them)
        self._train_clip_statistics = None
        if c.normalize == "train" and self.resume_payload is None:  # a resumed run's checkpoint holds them
            self.model.set_input_statistics(*self._input_statistics())
        if c.normalize == "speaker":  # recomputed on resume: no draws, the same every time
            self.speaker_mean, self.speaker_std = self._speaker_statistics()
        if c.stats_head is not None and self.resume_payload is None:  # a resumed run's checkpoint holds it
            self.model.fit_stats_head(*self._stats_head_data(), c=c.stats_head)
        if c.prior_correction and self.resume_payload is None:  # likewise
            self.model.set_class_prior(counts, network_balanced=c.class_weights)
        self.history: List[dict] = []
        self._curves_drawn = (0, -math.inf)  # (epochs curves.png shows, time.monotonic() it was drawn)
        self.best_score = -math.inf  # the validation score best.pt holds (see score())
        # the weights from the selected epoch on (every rank alike: DDP keeps the weights and, from rank 0,
        # the batch-norm statistics the same everywhere)
        self.weight_average = WeightAverage() if c.average_weights else None
        self.bad_epochs = 0
        self.start_epoch = 0
        if self.resume_payload is not None:
            self._restore(self.resume_payload)
        # self.model (its weights) is what checkpoints hold and what evaluation runs; forward_model is
        # called in each training step: under torchrun the DistributedDataParallel wrapper, which
        # averages the gradients over the ranks (and gives every rank rank 0's weights at the start).
        self.forward_model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # device_ids=None (allowed for a module on one device): DDP then leaves the inputs where they
            # are; with device_ids it would move the batch's host frame lengths to the GPU with a
            # blocking copy (a host sync per step) before the model reads them on the host anyway
            self.forward_model = DistributedDataParallel(self.model, device_ids=None)
        self.eval_forward = self.model
        if c.compile_model:
            self.forward_model = torch.compile(self.forward_model)
            self.eval_forward = torch.compile(self.model) if self.dist.enabled else self.forward_model
        # the training data stream: chunk jobs in order, the next one prefetched on a second thread
        self._data_epoch = self.start_epoch
        self._plans, self._pending, self._gen_snapshots = {}, {}, {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ser_gpu-data") if c.prefetch else None
        # CPU prefetch: the data thread runs with torch's threads as they are now, the training (and the
        # validation) beside it with half of them (ser_gpu._threads: two teams of all the cores oversubscribe
        # them); None: no second thread on the CPU, nothing is set
        self._cpu_threads = torch.get_num_threads() if c.prefetch and self.device.type == "cpu" else None
        # CUDA: the prefetch thread queues its chunks on a stream of its own, so they run beside the training
        # step instead of in line with it (epoch_batches makes the training stream wait for each chunk)
        self._data_stream = torch.cuda.Stream(self.device) if c.prefetch and self.device.type == "cuda" else None

    def _rank_seed(self, stream: str, *more) -> int:
        """Seed of this rank's ``stream``: rank 0's augmentation is ``seed + 1`` (the one-process run's);
        every other (rank, stream) pair gets its own seed derived from the run's seed."""
        if stream == "augment" and self.dist.rank == 0 and not more:
            return self.config.seed + 1
        return _distributed.derive_seed(self.config.seed, stream, self.dist.rank, *more)

    def _autocast(self):
        if self.config.amp and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints ------------------------------------------------------------------------------
    def _rank_state(self) -> dict:
        """This rank's random streams and chunk size (what differs between ranks)."""
        state = {
            "augment_gen": self._next_epoch_generators()[1],  # before the next epoch's (maybe prefetched) data
            "cpu_rng": torch.get_rng_state(),
            "chunk_size": self.chunk_size,  # the resolved size: a resumed run draws the same augmentation
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _state(self) -> dict:
        """The run's state for ``last.pt``/``best.pt``. Under torchrun a collective (every rank calls it):
        rank 0 stores every rank's streams under ``ranks``; its own are also the top-level keys."""
        ranks = self.dist.all_gather_object(self._rank_state())
        state = {
            "history": self.history,
            "best_score": self.best_score,
            "bad_epochs": self.bad_epochs,
            "shuffle_gen": self._next_epoch_generators()[0],  # the same on every rank; before the next epoch's data
            "split_sizes": self.split_sizes,
            **ranks[0],
        }
        if self.dist.enabled:
            state["world_size"] = self.dist.world_size
            state["ranks"] = ranks
        return state

    def _next_epoch_generators(self):
        snapshot = self._gen_snapshots.get(self._data_epoch)
        return snapshot if snapshot is not None else (self.shuffle_gen.get_state(), self.augment_gen.get_state())

    def _restore(self, payload: dict) -> None:
        """Continue from ``payload`` (rank 0's ``last.pt``, the same on every rank). Each rank takes its own
        random streams when the run had as many ranks as now; with another number of ranks (the shards
        differ anyway) every rank seeds its streams afresh from (seed, rank, epoch), and says so."""
        from .checkpoint import load_model

        path = self.out / "last.pt"
        model, _ = load_model(payload, device=self.device, labels=self.labels)
        self.model.load_state_dict(model.state_dict())
        try:
            self.optimizer.load_state_dict(payload["optimizer_state"])
            self.scheduler.load_state_dict(payload["scheduler_state"])
            state = payload["state"]
            epoch = int(payload["epoch"])
            self.history = list(state["history"])
            # runs saved before select existed kept the lowest validation loss
            self.best_score = float(state["best_score"]) if "best_score" in state else -float(state["best_val_loss"])
            self.bad_epochs = int(state["bad_epochs"])
            if self.weight_average is not None:
                self.weight_average.load_state_dict(state["weight_average"])
                self.weight_average.to(self.device)
            self.shuffle_gen.set_state(state["shuffle_gen"])
            ranks = state.get("ranks") or [state]  # a one-process run stores rank 0's streams only
            if len(ranks) == self.dist.world_size:
                mine = ranks[self.dist.rank]
                self.augment_gen.set_state(mine["augment_gen"])
                torch.set_rng_state(mine["cpu_rng"])
                if self.config.chunk_size is None and "chunk_size" in mine:
                    self.chunk_size = int(mine["chunk_size"])
                if self.device.type == "cuda" and "cuda_rng" in mine:
                    torch.cuda.set_rng_state(mine["cuda_rng"], self.device)
            else:
                self.augment_gen.manual_seed(self._rank_seed("augment", "resume", epoch))
                torch.manual_seed(self._rank_seed("dropout", "resume", epoch))
                if self.config.chunk_size is None and "chunk_size" in state:
                    self.chunk_size = int(state["chunk_size"])
                self._say(f"{path} was written by {len(ranks)} process(es), this run has {self.dist.world_size}: "
                          f"the augmentation and dropout streams are seeded afresh from the seed, rank and epoch "
                          f"(the run goes on, but does not repeat what {len(ranks)} process(es) would have drawn)")
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: {exc})") from exc
        self.start_epoch = epoch
        c = self.config
        # a run that is over trains nothing (the test is scored again): say so, rank 0 alone as its other messages
        if epoch >= c.epochs:
            over = f"it holds epoch {epoch} already and epochs={c.epochs} (give more epochs, e.g. --epochs " \
                   f"{epoch + 10}, to go on)"
        elif c.early_stopping and self.bad_epochs >= c.early_stopping:  # _fit_epochs' test
            bad = self.bad_epochs
            over = f"the run stopped early at epoch {epoch}, {bad} epoch{'' if bad == 1 else 's'} without a better " \
                   f"validation score (early_stopping={c.early_stopping}, which a resumed run keeps)"
        else:
            over = None
        if over is None:
            self._say(f"resuming {path} after epoch {self.start_epoch}")
        elif self.is_main:
            warnings.warn(f"{path}: nothing to train: {over}", UserWarning, stacklevel=2)

    def _save(self, name: str, epoch: int, metrics: dict, state: dict, *, also: Sequence[str] = (),
              resumable: bool = False, wait: bool = False) -> Optional[Path]:
        """Rank 0 writes ``out/name`` and links the names ``also`` to it (on a device of
        :data:`BACKGROUND_CHECKPOINT_DEVICES`, in the background: a snapshot, the training goes on; ``wait``:
        on disk, with every checkpoint before it, when this returns); the other ranks write nothing
        (``state``: :meth:`_state`). ``resumable`` (``last.pt``): with the optimiser and scheduler states,
        which a resumed run needs; without (``best.pt``, ``selected.pt``: models, which nothing resumes
        from) they are stored as ``None``, and the file is a third of the size (26 MB instead of 79 MB for
        the default model, whose AdamW moments are twice its weights)."""
        from .checkpoint import CheckpointWriter, save_checkpoint

        if not self.is_main:
            return None
        if self._checkpoints is None and self.device.type in BACKGROUND_CHECKPOINT_DEVICES:
            self._checkpoints = CheckpointWriter()
        with self.timed("checkpoints"):
            path = save_checkpoint(self.out / name, model=self.model, model_config=self.model_config.to_dict(),
                                   feature_config=self.feature_config.to_dict(), labels=self.labels,
                                   train_config=self.config.to_dict(), epoch=epoch, metrics=metrics,
                                   optimizer=self.optimizer if resumable else None,
                                   scheduler=self.scheduler if resumable else None, state=state,
                                   also=[self.out / other for other in also], writer=self._checkpoints)
        if wait:
            self.flush_checkpoints()
        return path

    def flush_checkpoints(self) -> None:
        """Wait until every checkpoint :meth:`_save` was given is on disk (a failed write raises)."""
        if self._checkpoints is not None:
            with self.timed("checkpoints"):
                self._checkpoints.flush()

    # -- steps ------------------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def score(self, row: dict) -> float:
        """The selection score of an epoch's ``row`` (higher is better): the epoch (``select='last'``),
        validation UAR (``'uar'``), or minus the validation loss (``'loss'``)."""
        select = self.config.select
        return float(row["epoch"]) if select == "last" else row["val_uar"] if select == "uar" else -row["val_loss"]

    def _input_statistics(self):
        """Per-row mean and standard deviation (float32 ``[shape=(68,)]``) of the training split's features
        without augmentation, over every clip's valid frames (accumulated in float64); a row that never
        varies gets a standard deviation of 1. The same on every rank (each computes the whole split)."""
        mean, std = self._row_statistics([self.train_set], by_speaker=False)
        return mean[0], std[0]

    def _speaker_statistics(self):
        """``normalize='speaker'``: per-row mean and std of each speaker (float32 ``[shape=(speakers, 68)]``,
        rows in ``self.speakers`` order) over the valid frames of all of its clips in the run (training,
        validation and test), without augmentation and without labels. A test speaker's statistics come
        from its own recordings."""
        return self._row_statistics([d for d in (self.train_set, self.val_set, self.test_set) if d is not None],
                                    by_speaker=True)

    def _row_statistics(self, datasets, *, by_speaker: bool):
        """:class:`RowStatistics` of the clips of ``datasets`` without augmentation (nor standardisation),
        pooled per speaker (``by_speaker``) or all in one group."""
        stats = RowStatistics(len(self.speakers) if by_speaker else 1, self.model_config.input_dim,
                              device=self.device)
        head = self.config.stats_head is not None and self.resume_payload is None
        clips, labels = [], []
        for dataset in datasets:
            for index in epoch_chunks(torch.arange(len(dataset)), self.chunk_size, self.config.batch_size):
                x, fl, y, _ = self._chunk_features(dataset, index, train=False, standardize=False)
                stats.add(x, fl, dataset.groups[index].to(self.device) if by_speaker else torch.zeros_like(fl))
                if head and dataset is self.train_set:  # the statistics head's data, from the same rows
                    clips.append(clip_statistics(x, fl))
                    labels.append(y)
        if clips:
            self._train_clip_statistics = (torch.cat(clips), torch.cat(labels))
        return stats.result()

    def _stats_head_data(self):
        """The statistics head's training data: ``(statistics, labels)`` of the whole training split
        without augmentation or SpecAugment, then (``stats_head_copies`` K, with ``augment``) of K
        augmented versions of it, standardised as the model reads them (the same on every rank).
        The clean ones come, with ``normalize`` 'train' or 'speaker', from the statistics pass's raw rows,
        standardised by :func:`~ser_gpu.models.stats_head.standardized_statistics`; otherwise from a pass
        of their own. The augmented versions are drawn by the training's ``WaveformAugment``
        from a generator of their own, seeded from the run's seed alone (every rank draws the same),
        so K never changes the network's training draws."""
        c = self.config
        stats, labels = [], []
        if self._train_clip_statistics is not None:
            raw, clean_labels = self._train_clip_statistics
            self._train_clip_statistics = None
            if c.normalize == "train":
                stats.append(standardized_statistics(raw, self.model.input_mean, self.model.input_std))
            else:
                groups = self.train_set.groups.to(self.device)
                stats.append(standardized_statistics(raw, self.speaker_mean[groups], self.speaker_std[groups]))
            labels.append(clean_labels)
        copies = c.stats_head_copies if c.augment else 0
        generator = torch.Generator(device=self.device).manual_seed(_distributed.derive_seed(c.seed, "stats_head"))
        for copy in range(0 if stats else -1, copies):  # -1: the clean pass, when the statistics pass gave none
            for index in epoch_chunks(torch.arange(len(self.train_set)), self.chunk_size, c.batch_size):
                x, fl, y, _ = self._chunk_features(self.train_set, index, train=False,
                                                   augment_generator=generator if copy >= 0 else None)
                stats.append(self.model.clip_statistics(x, fl))
                labels.append(y)
        return torch.cat(stats), torch.cat(labels)

    def _train_rows(self):
        """The training clips' rows, computed once (no SpecAugment, no standardisation): ``(x,
        frame_lengths)``, ``x`` ``[shape=(K, N, 68, frames)]`` on the device, ``frame_lengths``
        ``[shape=(K, N)]``. ``augment=False``: ``K = 1``, the rows without augmentation, clip ``i``
        holding what its length group's extractor call gives (:meth:`_rung_frames` frames of its rung;
        zero beyond) -- the same rows, and the same SpecAugment draws, as computing them afresh every
        chunk (up to the rounding of another batch composition). ``augment_copies=K``: ``K`` passes of
        waveform augmentation over the training split (drawn from ``augment_gen`` before the first
        epoch, so a resumed run rebuilds the same copies). :meth:`_chunk_features_once` then takes a
        chunk's rows from here instead of the extractor: an epoch costs SpecAugment and the model only.
        Memory: ``K x N x 68 x frames`` float32 on the device."""
        c = self.config
        copies = c.augment_copies if c.augment else 1
        n = len(self.train_set)
        kept = [(k, index) + self._chunk_features(self.train_set, index, train=c.augment, standardize=False,
                                                  mask=False)[:2]
                for k in range(copies) for index in epoch_chunks(torch.arange(n), self.chunk_size, c.batch_size)]
        width = max(x.shape[-1] for _, _, x, _ in kept)  # each chunk padded to a rung: zeros beyond its clips
        x_all = kept[0][2].new_zeros((copies, n, kept[0][2].shape[1], width))
        fl_all = torch.zeros((copies, n), dtype=torch.int64, device=self.device)
        for k, index, x, fl in kept:
            on_device = index.to(self.device)
            x_all[k, on_device, :, : x.shape[-1]] = x
            fl_all[k, on_device] = fl
        return x_all, fl_all

    def _rung_frames(self, rung: int) -> int:
        """Frames the extractor gives for a batch zero-padded to ``rung`` samples: ``max_frames`` when set,
        else the centred STFT's ``1 + rung // hop_length``."""
        f = self.feature_config
        if f.max_frames is not None:
            return f.max_frames
        return int(num_frames(torch.tensor(rung), hop_length=f.hop_length, n_fft=f.n_fft))

    def _resolve_chunk_size(self) -> int:
        """Clips per data-path chunk: ``chunk_size`` if set, else what free device memory holds (CUDA)
        or :data:`CPU_CHUNK_SIZE`; rounded down to whole model batches (at least one) and no more
        than the epoch needs."""
        c = self.config
        bs = c.batch_size
        if c.chunk_size is not None:
            size = c.chunk_size
        elif self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            # the longest clip a chunk may hold, after the slowest time stretch, padded to its rung
            stretch = 1.0 / 0.9 if c.augment and c.p_stretch > 0 else 1.0
            longest = ladder(math.ceil(int(self.train_set.host_lengths.max()) * stretch) + 1,
                             multiple=SAMPLE_MULTIPLE)
            size = int(MEMORY_SHARE * free // (BYTES_PER_SAMPLE * longest))
        else:
            size = CPU_CHUNK_SIZE
        size = max(bs, size // bs * bs)
        return min(size, math.ceil(len(self.train_set) / bs) * bs)

    def _chunk_features(self, dataset, index: torch.Tensor, *, train: bool, standardize: bool = True,
                        mask: Optional[bool] = None, copy: int = 0, augment_generator=None):
        """:meth:`_chunk_features_once`; a chunk that runs out of device memory is redone in two halves
        from the same augmentation draws' starting point (so the run stays reproducible), and later
        chunks are made smaller (the size is saved in the checkpoints, so ``--resume`` keeps it)."""
        generators = [self.augment_gen] + ([augment_generator] if augment_generator is not None else [])
        states = [g.get_state() for g in generators]
        try:
            return self._chunk_features_once(dataset, index, train=train, standardize=standardize, mask=mask,
                                             copy=copy, augment_generator=augment_generator)
        except torch.OutOfMemoryError:
            if index.numel() < 2:
                raise
        for g, state in zip(generators, states):
            g.set_state(state)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        bs = self.config.batch_size
        self.chunk_size = min(self.chunk_size, max(bs, index.numel() // 2 // bs * bs))  # for the next chunks
        self._say(f"a chunk of {index.numel()} clips ran out of device memory: computing it in two halves, "
                  f"and chunks of {self.chunk_size} from now on (pass --chunk-size to choose the size)")
        parts = [self._chunk_features(dataset, half, train=train, standardize=standardize, mask=mask, copy=copy,
                                      augment_generator=augment_generator) for half in index.tensor_split(2)]
        frames = max(p[0].shape[-1] for p in parts)
        x = torch.cat([nn.functional.pad(p[0], (0, frames - p[0].shape[-1])) for p in parts])
        return (x,) + tuple(torch.cat([p[k] for p in parts]) for k in (1, 2, 3))

    def _chunk_features_once(self, dataset, index: torch.Tensor, *, train: bool, standardize: bool = True,
                             mask: Optional[bool] = None, copy: int = 0, augment_generator=None):
        """Features of the clips ``index`` (CPU int64) of ``dataset``, in that order, from a few large calls.

        The clips are grouped by the ladder rung of their length (:func:`ser_gpu.data.chunks.length_groups`);
        each group is gathered, zero-padded to its rung and, for training, augmented (``WaveformAugment``,
        its output padded to a rung again), turned into the 68 rows (``FeatureExtractor``) and masked
        (``SpecAugment``) in one call each. Padding never changes a clip's valid frames (the extractor's
        ``lengths`` contract), so only the number of shapes changes, not the features. Chunks of the
        training split take their rows from the kept ones (:meth:`_train_rows`) instead of augmenting and
        extracting: training chunks copy ``copy``'s, and without augmentation (where the kept rows are the
        plain ones) any chunk, e.g. the statistics pass. ``mask``: apply SpecAugment (None: for training).
        ``augment_generator``: augment the waveforms with draws from it (not from ``augment_gen``), never
        from the kept rows, whatever ``train`` (the statistics head's augmented versions).

        Returns:
            ``(x, frame_lengths, labels, host_frame_lengths)``: ``x`` ``[shape=(N, 68, frames)]`` on the
            device (``frames`` a rung, or ``max_frames``); past a clip's frames it holds what the extractor
            gives for the padding (zero only with ``normalize='valid'`` or ``'speaker'``; the model masks
            it); the rest ``[shape=(N,)]`` int64, the last one a CPU copy. With ``normalize='speaker'``
            (and ``standardize``) each clip's rows are standardised with its speaker's statistics.
        """
        c = self.config
        aug = train and c.augment or augment_generator is not None
        augment_generator = self.augment_gen if augment_generator is None else augment_generator
        mask = train and c.spec_augment if mask is None else mask
        cache = self.train_cache if dataset is self.train_set and (train or not c.augment) and \
            augment_generator is self.augment_gen else None
        lengths = dataset.host_lengths[index]  # on the host: the plans never wait on the device
        parts = []
        with torch.no_grad():
            for pos, rung in length_groups(lengths, multiple=SAMPLE_MULTIPLE):
                if cache is not None:  # the kept rows (augment=False: what this group's extractor call gives)
                    on_device = self._to_device(index[pos])
                    width = self._rung_frames(rung) if not aug else cache[0].shape[-1]
                    x, frame_lengths = cache[0][copy, on_device, :, :width], cache[1][copy, on_device]
                else:
                    # padded to the rung the host-side lengths give: the gather never reads them back;
                    # the transforms get the host lengths too: the augmentation's gate checks them without
                    # a sync (its time stretch reads its output lengths back, and the extractor's gate then
                    # reads the device lengths it returns: the syncs --sync-report counts on CUDA)
                    y, _, _ = dataset.gather(self._to_device(index[pos]), width=rung)
                    L = lengths[pos]
                    if aug:
                        y, L = self.augment(y, L, generator=augment_generator)
                        y = nn.functional.pad(y, (0, ladder(y.shape[-1], multiple=SAMPLE_MULTIPLE) - y.shape[-1]))
                    batch = self.extractor(y, L)
                    x, frame_lengths = batch.features, batch.frame_lengths
                if train and standardize and self.model_config.clip_norm:
                    # the training step's rows come standardised (forward's standardized=True), so that
                    # SpecAugment masks what the network reads, as in the original recipe
                    x = standardize_clips(x, frame_lengths)
                if mask:
                    x = self.spec_augment(x, frame_lengths, generator=self.augment_gen)
                parts.append((self._to_device(pos), x, frame_lengths))
            widest = max(x.shape[-1] for _, x, _ in parts)
            frames = widest if c.max_frames is not None else ladder(widest, multiple=FRAME_MULTIPLE)
            out = parts[0][1].new_zeros((index.numel(), parts[0][1].shape[1], frames))
            fl = torch.empty(index.numel(), dtype=torch.int64, device=self.device)
            for pos, x, f in parts:
                out[pos, :, : x.shape[-1]] = x
                fl[pos] = f
            if c.normalize == "speaker" and standardize:
                g = self._to_device(dataset.groups[index])
                out = standardize_rows(out, fl, self.speaker_mean[g], self.speaker_std[g])
        return out, fl, dataset.labels[self._to_device(index)], fl.cpu()

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A host tensor (an index, a group id) on the device; to CUDA without a host sync (a plain
        ``.to(device)`` synchronises the stream, once per group and chunk on the data path): see
        :func:`ser_gpu._transfer.to_device`."""
        return to_device(t, self.device)

    def _batches(self, x, labels, host_fl, index):
        """The model's ``batch_size`` batches of one chunk, in order, each cut to the rung of its longest clip
        (all ``max_frames`` frames when that is set): ``(x, frame_lengths, labels, clip_index)``, the frame
        lengths the chunk's host copy (the model checks them and, on CUDA, packs its LSTM without waiting
        for the device; it moves its own copy there)."""
        c = self.config
        for s in chunk_batches(index.numel(), c.batch_size):
            frames = x.shape[-1] if c.max_frames is not None else \
                min(x.shape[-1], ladder(int(host_fl[s].max()), multiple=FRAME_MULTIPLE))
            yield x[s, :, :frames], host_fl[s], labels[s], index[s]

    def _chunk_job(self, epoch: int, k: int, after=None):
        """Chunk ``k`` of ``epoch``'s training data: the epoch's order is drawn (``shuffle_gen``) at its
        first chunk; then the chunk's augmented features (``augment_gen``). Jobs run one at a time, in
        order (on the prefetch thread or inline), so the draws never depend on the timing.

        Returns ``(features, index, n_chunks, timer, ready)``. Inline (and on the CPU): ``timer`` the
        job's seconds (device synchronised), ``ready`` None. On the prefetch thread on CUDA the work is
        queued on ``self._data_stream`` (after the event ``after``: what the training had queued when the
        job was submitted), nothing is synchronised: ``timer`` is the pair of CUDA events around the
        chunk's work and ``ready`` its last event, which the consumer's stream waits for."""
        c = self.config
        if k == 0:
            n = len(self.train_set)
            order = torch.randperm(n, generator=self.shuffle_gen)[:epoch_clips(n, c.batch_size)]
            if self.dist.enabled:  # every rank drew the same order: this rank keeps its batches
                order = _distributed.shard_batches(order, c.batch_size, self.dist.rank, self.dist.world_size)
            self._plans[epoch] = list(epoch_chunks(order, self.chunk_size, c.batch_size))
        plan = self._plans[epoch]
        copy = epoch % self.train_cache[0].shape[0] if self.train_cache is not None else 0
        stream = self._data_stream if after is not None else None
        if stream is None:
            t0 = time.perf_counter()
            with self._data_path_context():
                features = self._chunk_features(self.train_set, plan[k], train=True, copy=copy)
                self._sync()
            timer, ready = time.perf_counter() - t0, None
        else:
            with torch.cuda.device(self.device), torch.cuda.stream(stream):
                stream.wait_event(after)
                start, ready = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                features = self._chunk_features(self.train_set, plan[k], train=True, copy=copy)
                ready.record(stream)
            timer = (start, ready)
        if k + 1 == len(plan):
            del self._plans[epoch]
        return features, plan[k], len(plan), timer, ready

    def _data_path_context(self):
        """The context a chunk job computes in when it is not queued on the CUDA data stream: the run's CUDA
        device; on the CPU with prefetch all the threads torch had when the run was built; else nothing."""
        if self.device.type == "cuda":
            return torch.cuda.device(self.device)
        return contextlib.nullcontext() if self._cpu_threads is None else intra_op_threads(self._cpu_threads)

    def sharing_cores(self):
        """A context for the training beside the CPU prefetch thread (:func:`_fit` runs its epochs, training
        and validation, in it): this thread's torch ops run with half of the threads the data thread's
        chunks run with (:func:`ser_gpu._threads.training_share`); nothing without prefetch or on CUDA."""
        if self._cpu_threads is None:
            return contextlib.nullcontext()
        return intra_op_threads(training_share(self._cpu_threads))

    def _submit(self, epoch: int, k: int):
        if k == 0:  # what a checkpoint taken before this epoch must hold, whatever has been prefetched since
            self._gen_snapshots[epoch] = (self.shuffle_gen.get_state(), self.augment_gen.get_state())
        if self._executor is None:
            return _Done(self._chunk_job(epoch, k))
        after = None
        if self._data_stream is not None:  # the job's stream first waits for what the training queued so far
            after = torch.cuda.Event()
            after.record(torch.cuda.current_stream(self.device))
        return self._executor.submit(self._chunk_job, epoch, k, after)

    def epoch_batches(self, timing: Optional[dict] = None):
        """One training epoch's batches ``(x, frame_lengths, labels, clip_index)``, chunk by chunk.

        The epoch's order is drawn from the seed (``shuffle_gen``); a last batch of one clip is left out
        (the classifier's batch norm needs two). Under torchrun every rank draws the same order and keeps
        its shard: batch ``k`` of the epoch goes to rank ``k % world_size``
        (:func:`ser_gpu.distributed.shard_batches`), with its own augmentation stream. The order is cut into chunks of ``self.chunk_size``
        clips (whole batches), and each chunk's augmented features are computed before its batches are
        yielded, with fresh augmentation draws (``augment_gen``) every epoch. With ``prefetch`` the next
        chunk (the next epoch's first, at an epoch's end) is computed on a second thread while the model
        trains on this one (on CUDA on a stream of its own, which the training's stream waits for, event
        by event: no host sync); the draws are the same either way.

        ``timing['data_seconds']`` accumulates the time the model waited for the data path (without
        prefetch: the chunks' own time; with it: the wait for the thread, plus on CUDA the time the
        training's stream stalled on a chunk's event), ``timing['data_compute_seconds']`` the data path's
        own time (device synchronised inline; CUDA events around each chunk on the thread's stream). The
        CUDA events are read once, at the epoch's end.
        """
        epoch, k = self._data_epoch, 0
        gpu_compute, gpu_stalls = [], []  # CUDA event pairs, read at the epoch's end
        while True:
            job = self._pending.pop((epoch, k), None) or self._submit(epoch, k)
            t0 = time.perf_counter()
            (x, _, labels, host_fl), index, n_chunks, timer, ready = job.result()
            waited = time.perf_counter() - t0
            nxt = (epoch, k + 1) if k + 1 < n_chunks else (epoch + 1, 0)
            if self._executor is not None and nxt[0] < self.config.epochs:
                self._pending[nxt] = self._submit(*nxt)
            if ready is not None:  # queued on the data stream: the training's stream waits for it on the device
                current = torch.cuda.current_stream(self.device)
                before, after = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                before.record(current)
                current.wait_event(ready)
                after.record(current)
                for t in (x, labels):  # made on the data stream, used on this one: not reused before that
                    t.record_stream(current)
                gpu_compute.append(timer)
                gpu_stalls.append((before, after))
                timer = 0.0
            if timing is not None:
                timing["data_seconds"] = timing.get("data_seconds", 0.0) + (waited if self._executor else timer)
                timing["data_compute_seconds"] = timing.get("data_compute_seconds", 0.0) + timer
            yield from self._batches(x, labels, host_fl, index)
            if nxt[0] != epoch:
                break
            k += 1
        if timing is not None and gpu_compute:
            gpu_stalls[-1][1].synchronize()  # the epoch's one wait, for its last stall event (the chunks' are older)
            gpu_compute[-1][1].synchronize()
            timing["data_compute_seconds"] += sum(a.elapsed_time(b) for a, b in gpu_compute) / 1e3
            timing["data_seconds"] += sum(a.elapsed_time(b) for a, b in gpu_stalls) / 1e3
        self._gen_snapshots.pop(epoch, None)
        self._data_epoch = epoch + 1

    def close_data(self) -> None:
        """Stop the prefetch thread (a chunk it is computing is finished and dropped); on CUDA, what it
        left queued on its stream comes before anything the caller's stream does next."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if getattr(self, "_data_stream", None) is not None:
            torch.cuda.current_stream(self.device).wait_stream(self._data_stream)
        self._pending.clear()

    def _steps(self, timing: dict):
        """``(batch, loss_weight)`` for each optimizer step of the epoch. One process: every batch, weight 1.
        Under torchrun every rank takes the same number of steps (:func:`ser_gpu.distributed.step_weights`):
        a rank short of a batch at the last step repeats its previous one with weight 0 (a zero gradient
        that still joins DDP's all-reduce; its loss is not counted)."""
        if not self.dist.enabled:
            for batch in self.epoch_batches(timing):
                yield batch, 1.0
            return
        weights = _distributed.step_weights(self.n_train_batches, self.dist.rank, self.dist.world_size)
        batches = self.epoch_batches(timing)
        batch = None
        for w in weights:
            if w > 0:
                batch = next(batches)
            yield batch, w
        for _ in batches:  # there is none left: the shard has exactly its weights' batches
            raise RuntimeError("internal error: a rank's shard has more batches than its steps")

    def train_epoch(self) -> dict:
        """Train one epoch; the loss and accuracy are over all ranks' batches (the same on every rank).

        The step is built not to wait for the device: the loss sum and the correct count stay in device
        tensors and are read once, at the end of the epoch (a non-finite loss shows there; :func:`_fit`
        stops), and the model reads the batches' host frame lengths (its check and LSTM packing make no
        host sync; a CUDA test checks forward and backward, ``bench_train.py --sync-report`` counts an
        epoch's syncs by source line).
        """
        c = self.config
        self.model.train()
        # float64 sums of float32 losses times n, added in step order: the host-float arithmetic of old
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        count = 0
        timing = {"data_seconds": 0.0}
        for (x, fl, labels, _), weight in self._steps(timing):
            with self._autocast():
                # the statistics head is fitted, not trained; clip_norm rows come standardised (SpecAugment)
                logits = self.forward_model(x, fl, fuse=False, standardized=self.model_config.clip_norm)
            loss = self.criterion(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            (loss if weight == 1.0 else loss * weight).backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)  # no sync (error_if_nonfinite off)
            self.optimizer.step()
            if c.schedule == "cosine":
                self.scheduler.step()
            if weight > 0:
                n = labels.numel()
                total_loss += loss.detach().double() * n
                correct += (logits.detach().argmax(-1) == labels).sum()
                count += n
        total_loss, correct = torch.stack([total_loss, correct.double()]).tolist()  # the epoch's one read
        if self.dist.enabled:
            # each rank's batch-norm running statistics follow its own batches: rank 0's are the model's
            # (as DDP itself broadcasts them before every forward), so every rank holds the same weights
            self.dist.broadcast_tensors(self.model.buffers())
            total_loss, correct, count = self.dist.all_sum([total_loss, correct, count])
        self.last_timing = timing
        return {"train_loss": total_loss / count, "train_acc": correct / count, "data_seconds": timing["data_seconds"]}

    def feature_batches(self, dataset) -> list:
        """Validation/test features, computed once (no augmentation) chunk by chunk, in stored order:
        ``[(x, frame_lengths, labels), ...]`` in ``batch_size`` batches. Under torchrun, this rank's
        share: batch ``k`` on rank ``k % world_size`` (:meth:`evaluate` gathers the predictions)."""
        out = []
        order = torch.arange(len(dataset))
        if self.dist.enabled:
            order = _distributed.shard_batches(order, self.config.batch_size, self.dist.rank, self.dist.world_size)
        for index in epoch_chunks(order, self.chunk_size, self.config.batch_size):
            x, _, labels, host_fl = self._chunk_features(dataset, index, train=False)
            out.extend(b[:3] for b in self._batches(x, labels, host_fl, index))
        return out

    def evaluate(self, batches, *, probabilities: bool = False) -> dict:
        """Loss and metrics of ``self.model`` over ``batches``; under torchrun over every rank's batches
        (predictions and labels gathered, loss summed), the same on every rank. ``probabilities``: the
        dict also holds ``probabilities``, the softmax ``(n_clips, n_classes)`` float32 tensor, and
        ``targets``, the labels, both in the gathered order (rank 0's batches, then rank 1's, ...;
        :meth:`test_probabilities` reorders)."""
        self.model.eval()
        total_loss, preds, truth = torch.zeros((), dtype=torch.float64, device=self.device), [], []
        probs = []
        with torch.no_grad():
            for x, fl, labels in batches:
                with self._autocast():
                    logits = self.eval_forward(x, fl)
                total_loss += self.eval_criterion(logits.float(), labels).double() * labels.numel()  # read once, below
                preds.append(logits.argmax(-1))
                truth.append(labels)
                if probabilities:
                    probs.append(logits.float().softmax(-1))
        total_loss = total_loss.item()
        empty = torch.zeros(0, dtype=torch.int64, device=self.device)
        truth = torch.cat(truth) if truth else empty
        preds = torch.cat(preds) if preds else empty
        probs = torch.cat(probs) if probs else torch.zeros(0, len(self.labels), device=self.device)
        if self.dist.enabled:
            (total_loss,) = self.dist.all_sum([total_loss])
            truth, preds = self.dist.gather_cat(truth), self.dist.gather_cat(preds)
            if probabilities:
                probs = self.dist.gather_cat(probs)
        metrics = metrics_from_predictions(truth, preds, self.labels)
        metrics["loss"] = total_loss / truth.numel()
        if probabilities:
            metrics["probabilities"], metrics["targets"] = probs, truth
        return metrics

    def test_probabilities(self, probabilities: torch.Tensor, labels: torch.Tensor) -> dict:
        """What ``test_probabilities.json`` holds: the test clips in stored order, each with its label and
        the model's softmax. ``probabilities``/``labels`` come in :meth:`evaluate`'s gathered order."""
        n = len(self.test_paths)
        order = torch.arange(n)
        if self.dist.enabled:  # gather_cat: rank 0's batches, then rank 1's, ... (feature_batches' shards)
            order = torch.cat([_distributed.shard_batches(order, self.config.batch_size, r, self.dist.world_size)
                               for r in range(self.dist.world_size)])
        stored = torch.empty(n, probabilities.shape[-1], dtype=torch.float64)
        stored[order] = probabilities.detach().double().cpu()
        stored_labels = torch.empty(n, dtype=torch.int64)
        stored_labels[order] = labels.detach().long().cpu()
        return {"emotions": list(self.labels), "paths": self.test_paths, "labels": stored_labels.tolist(),
                "probabilities": stored.tolist()}

    # -- outputs ----------------------------------------------------------------------------------
    def write_metrics(self) -> None:
        """``metrics.csv`` and ``metrics.json`` (every epoch), and ``curves.png`` when :data:`CURVES_INTERVAL_S`
        have passed since it was last drawn (:meth:`draw_curves`)."""
        columns = list(self.history[0].keys())
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(self.out / "metrics.csv", lambda fh: fh.write(buf.getvalue().encode()))
        save_json(self.out / "metrics.json", {"epochs": self.history, "labels": self.labels,
                                              "split_sizes": self.split_sizes})
        self.draw_curves(final=False)

    def draw_curves(self, *, final: bool) -> None:
        """``curves.png`` of the epochs so far, unless it shows them already, or (not ``final``: the training
        goes on) it was drawn less than :data:`CURVES_INTERVAL_S` ago."""
        drawn, at = self._curves_drawn
        if self.history and len(self.history) != drawn and (final or time.monotonic() - at >= CURVES_INTERVAL_S):
            plot_curves(self.history, self.out / "curves.png")
            self._curves_drawn = (len(self.history), time.monotonic())


def plot_curves(history: Sequence[dict], path) -> Path:
    """Loss and accuracy per epoch (train and validation) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy (label smoothing)")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["train_acc"] for h in history], label="train accuracy")
    ax_acc.plot(epochs, [h["val_acc"] for h in history], label="validation accuracy")
    ax_acc.plot(epochs, [h["val_uar"] for h in history], label="validation UAR", linestyle="--")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)


_RUN_OUTPUTS = ("result.json", "metrics.csv", "metrics.json", "curves.png", "test_probabilities.json")
# settings a resumed run may change: how long, where, and how it shows progress; all others are the run's
# how a run executes, not what it computes: prefetch gives the same draws, compile the same model
_RESUME_MAY_CHANGE = ("epochs", "device", "progress", "out", "cache_dir", "prefetch", "compile_model")


def _check_corpora(corpus, n_dirs: int) -> List[str]:
    """``corpus`` as a list of names (``[]``: detect per file), checked against the number of data directories."""
    from .data.corpora import _corpus_per_dir, check_corpus

    if corpus is None or isinstance(corpus, str):
        corpus = [] if corpus is None else [corpus]
    _corpus_per_dir(corpus, n_dirs)  # each name known, one for all directories or one per directory
    names = [check_corpus(c) or "auto" for c in corpus]
    if names and not n_dirs:
        raise ParameterError(f"corpus={list(corpus)!r} needs data_dirs (the synthetic corpus has RAVDESS names)")
    return names


def _check_resume_settings(stored: TrainConfig, given_config: TrainConfig, given, path: Path) -> None:
    """Refuse settings given with ``resume`` that differ from the stored run's (each named)."""
    import os

    def same(key, a, b):
        if key == "data_dirs":
            return [os.path.realpath(d) for d in a] == [os.path.realpath(d) for d in b]
        if key == "synthetic_dir" and a is not None and b is not None:
            return os.path.realpath(a) == os.path.realpath(b)
        return a == b

    keys = [f.name for f in dataclasses.fields(TrainConfig)] if given is None else list(given)
    differ = [k for k in keys if k not in _RESUME_MAY_CHANGE
              and not same(k, getattr(stored, k), getattr(given_config, k))]
    if differ:
        from ._cli import listed_differences, setting_flags, with_flags

        flags = setting_flags(build_parser())
        listing = listed_differences(differ, lambda k: getattr(stored, k), lambda k: getattr(given_config, k), flags)
        raise ParameterError(f"{path}: --resume continues the stored run with its own settings, but other values were "
                             f"given ({listing}); only {', '.join(with_flags(_RESUME_MAY_CHANGE, flags))} may change "
                             f"on resume. Drop those options, or start a new run (another --out, or --overwrite)")


def _fit(run: _Run) -> dict:
    with run.timed("validation_features"):
        val_batches = run.feature_batches(run.val_set)  # with all the threads: nothing runs beside it yet
    with run.sharing_cores():
        fit = _fit_epochs(run, val_batches)
    run.flush_checkpoints()  # the epochs' checkpoints on disk before anything reads them or the run ends
    if run.is_main:
        with run.timed("metrics"):
            run.draw_curves(final=True)  # every epoch, however soon after its last drawing the training ended
    return fit


def _fit_epochs(run: _Run, val_batches: list) -> dict:
    c = run.config
    epochs = range(run.start_epoch, c.epochs)
    bar = tqdm(epochs, desc="training", unit="epoch", disable=not c.progress, initial=run.start_epoch, total=c.epochs,
               file=sys.stderr)  # rank 0's only: the other ranks run with progress off
    stopped_early = c.early_stopping and run.bad_epochs >= c.early_stopping
    for epoch in bar:
        if stopped_early:
            break
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"]}
        row.update(run.train_epoch())
        val = run.evaluate(val_batches)
        row.update({"val_loss": val["loss"], "val_acc": val["accuracy"], "val_uar": val["uar"]})
        # diverged: keep the last good epoch. Both losses are sums over all ranks (a NaN anywhere is a NaN
        # everywhere), so every rank stops at the same epoch; so do early stopping and the scheduler below.
        if not (math.isfinite(row["train_loss"]) and math.isfinite(val["loss"])):
            bar.close()
            return {"stopped_early": False, "val_batches": val_batches,
                    "diverged": {"epoch": epoch + 1, "lr": row["lr"], "train_loss": row["train_loss"],
                                 "val_loss": val["loss"]}}
        if c.schedule == "plateau":
            run.scheduler.step(val["loss"])
        row["epoch_seconds"] = time.perf_counter() - t0
        run.seconds["epochs"] += row["epoch_seconds"]
        run.history.append(row)
        improved = run.score(row) > run.best_score
        if improved:
            run.best_score = run.score(row)
            run.bad_epochs = 0
        else:
            run.bad_epochs += 1
        metrics = {k: v for k, v in row.items()}
        if run.weight_average is not None:
            run.weight_average.update(run.model, epoch + 1, restart=improved)
        state = run._state()  # a collective under torchrun; rank 0 alone writes
        if improved:  # with weight averaging selected.pt too, the same file (best.pt becomes the mean when the
            # run ends; selected.pt stays): one write, 16 of the README job's 20 epochs improve
            run._save("best.pt", epoch + 1, metrics, state,
                      also=("selected.pt",) if run.weight_average is not None else ())
        if run.weight_average is not None:  # last.pt alone: what a resumed run goes on averaging
            state = {**state, "weight_average": run.weight_average.state_dict()}
        run._save("last.pt", epoch + 1, metrics, state, resumable=True)
        if run.is_main:
            with run.timed("metrics"):
                run.write_metrics()
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_loss=f"{val['loss']:.3f}", val_uar=f"{val['uar']:.3f}")
        stopped_early = bool(c.early_stopping) and run.bad_epochs >= c.early_stopping
    bar.close()
    run.close_data()
    return {"stopped_early": bool(stopped_early), "val_batches": val_batches}  # val_batches: _save_average's


def _save_average(run: _Run, val_batches) -> Optional[dict]:
    """With ``average_weights``: ``best.pt`` rewritten with the mean of the weights from the selected epoch to
    the last, scored on ``val_batches`` (:func:`_fit`'s validation rows, computed once per run; a collective
    under torchrun: every rank holds the same mean and evaluates it). Returns the
    window's epochs and the averaged model's validation metrics, or None when the window holds the selected
    epoch alone (``best.pt`` is its mean already)."""
    average = run.weight_average
    if average is None or average.count < 2:
        return None
    run.model.load_state_dict(average.weights)
    val = run.evaluate(val_batches)
    metrics = {"epoch": average.last_epoch, "val_loss": val["loss"], "val_acc": val["accuracy"],
               "val_uar": val["uar"], "averaged_epochs": [average.first_epoch, average.last_epoch]}
    run._save("best.pt", average.last_epoch, metrics, run._state(), wait=True)
    return {"epochs": [average.first_epoch, average.last_epoch], "count": average.count,
            "val": {"loss": val["loss"], "accuracy": val["accuracy"], "uar": val["uar"]}}


def _final_report(run: _Run, fit: dict) -> dict:
    from .checkpoint import load_checkpoint

    best_path, last_path = run.out / "best.pt", run.out / "last.pt"
    # rank 0's view of the run directory, on every rank
    best_exists, last_exists = run.dist.broadcast_object((best_path.exists(), last_path.exists()))
    averaged = _save_average(run, fit["val_batches"]) if best_exists else None
    result = {
        "out": str(run.out),
        "best_checkpoint": str(best_path) if best_exists else None,
        "last_checkpoint": str(last_path) if last_exists else None,
        "epochs_run": len(run.history),
        "stopped_early": fit["stopped_early"],
        "diverged": fit.get("diverged"),
        "split_sizes": run.split_sizes,
        "history": run.history,
    }
    finite = [h for h in run.history if math.isfinite(h["val_loss"])]
    if finite:
        best = max(finite, key=run.score)  # the first of equals: the epoch best.pt holds (or opens its average)
        result["best_epoch"] = best["epoch"]
        result["best_val"] = {"loss": best["val_loss"], "accuracy": best["val_acc"], "uar": best["val_uar"]}
    if averaged is not None:
        result["averaged"] = averaged
    if run.test_set is None:
        result["test_skipped"] = f"the {run.config.split} split has no test clips"
    elif not best_exists:
        result["test_skipped"] = "no best.pt was written (no epoch finished with a finite validation loss)"
    else:
        with run.timed("test"):
            if run.is_main:
                run.model.load_state_dict(load_checkpoint(best_path)["model_state"])  # written by this run
            run.dist.broadcast_tensors(run.model.state_dict().values())  # rank 0 read it; every rank evaluates it
            test = run.evaluate(run.feature_batches(run.test_set), probabilities=True)
            per_clip = run.test_probabilities(test.pop("probabilities"), test.pop("targets"))
            result["test"] = test
            if run.is_main:  # each test clip's softmax: what crossval --ensemble averages over runs
                save_json(run.out / "test_probabilities.json", per_clip)
    run.seconds["total"] = time.perf_counter() - run._started
    result["seconds"] = dict(run.seconds)
    if (run.history or fit.get("diverged")) and run.is_main:
        save_json(run.out / "result.json", {k: v for k, v in result.items() if k != "history"})  # non-finite -> null
    return result


def _dump_final_state(run: _Run, result: Optional[dict] = None) -> None:
    """Debugging aid: with ``$SER_GPU_DUMP_FINAL_STATE`` set to a directory, each rank writes its model and
    optimizer state after the last epoch to ``rank<R>.pt`` there, and (``result`` given) the dict it
    returns to ``rank<R>.json`` (what the torchrun tests compare)."""
    import json
    import os

    where = os.environ.get("SER_GPU_DUMP_FINAL_STATE")
    if not where:
        return
    Path(where).mkdir(parents=True, exist_ok=True)
    if result is None:
        state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict()}
        atomic_write(Path(where) / f"rank{run.dist.rank}.pt", lambda fh: torch.save(state, fh))
    else:
        text = json.dumps(result, default=str)
        atomic_write(Path(where) / f"rank{run.dist.rank}.json", lambda fh: fh.write(text.encode()))


def train_model(
    epochs: Optional[int] = None,
    lr: Optional[float] = None,
    batch_size: Optional[int] = None,
    *,
    data_dirs: Optional[Sequence[str]] = None,
    out: str = "runs/ser",
    resume: bool = False,
    overwrite: bool = False,
    recipe: Optional[str] = None,
    **settings,
) -> dict:
    """Train the CNN + BiLSTM + attention classifier with augmentation and features on the device.

    The original system's ``train_model(epochs, lr, batch_size)``; every other setting of
    :class:`TrainConfig` is a keyword (``split='actor'``, ``seed``, ``device``, ``augment``,
    ``p_pitch``, ...). Settings not given take ``recipe``'s values (:data:`RECIPES`; ``None``:
    :data:`DEFAULT_RECIPE`): ``'clip'`` (the default: the original recipe below with its model fused with
    the statistics head on each clip's raw rows, ``stats_head=0.01``; the most accurate measured on unseen
    RAVDESS actors from one recording), ``'speech'`` (TrainConfig's field defaults: 30 epochs at lr
    1e-3, batch 32, cosine schedule, the last epoch kept, class-weighted loss, features standardised
    with the training split's statistics, a 1.1 M-parameter model fused with the statistics head,
    ``stats_head=0.1``; ``stats_head=None`` for the network alone),
    ``'speaker'`` (the same with each speaker's statistics: several recordings of a speaker needed) or
    ``'original'`` (the original system's: 300 epochs at lr 1e-4, batch 16, ReduceLROnPlateau, lowest
    validation loss kept, per-clip standardisation, 6.6 M parameters, no head).

    Args:
        epochs, lr, batch_size: ``None`` (default): the recipe's, or the stored run's with ``resume``.
        data_dirs: corpus folders (RAVDESS, CREMA-D, TESS, SAVEE, EmoDB names; ``corpus=`` forces a
            scheme, see :func:`ser_gpu.data.corpora.scan_corpus`), searched recursively; ``None`` = the
            built-in synthetic corpus (or, with ``resume``, the stored run's).
        out: directory for ``best.pt``, ``last.pt``, ``metrics.csv``/``.json``, ``curves.png``, ``result.json``
            and, with a test set, ``test_probabilities.json`` (each test clip's path, label and softmax
            under ``best.pt``; written before ``result.json``).
        resume: continue the run in ``out`` from ``last.pt``. Its stored settings are used; only
            ``epochs`` (may be raised), ``device``, ``progress`` and ``cache_dir`` may be given with
            other values, any other setting given with another value than the run's is refused
            (ParameterError naming each). On the CPU the result equals an uninterrupted run. Stale
            ``.*.tmp`` files of an interrupted save are removed (not where the file system refuses the
            run's lock: there the run goes on unlocked, with a warning).
        overwrite: replace a run already in ``out`` (otherwise that is refused; so are result/metrics
            files in an ``out`` without a checkpoint, which are not a run's). Not with ``resume``.

    ``out`` is locked (``out/.lock``, holding the process id) while a run uses it: a second run on
    the same ``out`` is refused; a lock left by a process that no longer runs is taken over.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) every process calls this and
    training runs with DistributedDataParallel (:mod:`ser_gpu.distributed`): rank 0 holds the lock
    and writes every output; every rank returns the same metrics.

    Returns:
        a dict: ``best_val`` (loss/accuracy/uar of the best epoch), ``test`` (accuracy, UAR, confusion
        matrix of the best checkpoint on the held-out test set, when the split has one; else
        ``test_skipped`` says why), ``history`` (one dict per epoch), checkpoint paths (None for
        one not written). The same, without history, is written to ``out/result.json`` (valid JSON:
        a non-finite number is written as null).

    Raises:
        ParameterError: a bad setting, a missing data directory, no file named like a known corpus,
            an ``out`` directory holding another run.
        AudioLoadError: none of the files could be read (unreadable ones among good ones are skipped
            and counted in a warning).
        CheckpointError: ``resume`` without a usable ``last.pt``.
        TrainingDiverged: a non-finite training or validation loss; training stops at once, the
            diverged epoch is not saved, ``result.json`` records it (``exc.result`` holds the dict).
    """
    named = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
    given = set(settings) | set(named) | ({"data_dirs"} if data_dirs is not None else set())
    if recipe is not None:  # named: a resumed run must have been trained with it
        given.add("recipe")
    config = TrainConfig.for_recipe(recipe, data_dirs=list(data_dirs or []), out=out, **named, **settings)
    run = _Run(config, resume=resume, overwrite=overwrite, given=given)
    try:
        fit = _fit(run)
        _dump_final_state(run)
        result = _final_report(run, fit)
        _dump_final_state(run, result)
        run.dist.barrier()  # the other ranks return once rank 0 has written result.json
    finally:
        run.release()
    if result["diverged"]:
        dv = result["diverged"]
        raise TrainingDiverged(
            f"training diverged at epoch {dv['epoch']} (train loss {dv['train_loss']}, validation loss "
            f"{dv['val_loss']} at lr {dv['lr']:g}); stopped without saving that epoch: "
            + (f"{result['last_checkpoint']} holds epoch {len(run.history)}, " if result["last_checkpoint"] else
               "no checkpoint was written, ")
            + f"{run.out / 'result.json'} says what happened. Try a lower --lr (now {run.config.lr:g})",
            result=result)
    return result


# ------------------------------------------------------------------------------------------------ CLI

def _normalize_option(text: str) -> Optional[str]:
    """``--normalize``'s value: one of :data:`_NORMALIZE`, ``none`` for None."""
    value = None if text == "none" else text
    if value not in _NORMALIZE:
        names = ", ".join(v or "none" for v in _NORMALIZE)
        raise argparse.ArgumentTypeError(f"must be one of {names}; got {text!r}")
    return value


def _stats_head_option(text: str) -> Optional[float]:
    """``--stats-head``'s value: the head's C as a float, or ``none`` for no head (whether C is positive
    and finite is TrainConfig's check, the one gate of the Python API and the command line)."""
    if text == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number C or none; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m ser_gpu.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", action="append", dest="data_dirs", default=[], metavar="DIR",
                   help="corpus folder (RAVDESS, CREMA-D, TESS, SAVEE or EmoDB names, detected per file), searched "
                        "recursively; repeat for several (default: the synthetic corpus)")
    p.add_argument("--corpus", action="append", default=[], metavar="NAME",
                   help="read the names by one scheme (ravdess, crema-d, tess, savee, emodb; auto = detect): once for "
                        "every --data-dir, or once per --data-dir in order (default: detect per file)")
    p.add_argument("--out", default=d.out, help="run directory (default: %(default)s)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default=DEFAULT_RECIPE,
                   help="the defaults of every option below marked [recipe]: clip (the original fused with a "
                        "statistics head on each clip's raw rows: the most accurate from one recording, README "
                        "'Real speech'), speech (a smaller model, 3-5x faster to train, fused with a statistics "
                        "head), speaker (the most accurate on unseen RAVDESS actors; needs several recordings of "
                        "each speaker, also at prediction) or original (the original system's); options given "
                        "override them (default: %(default)s)")

    def recipe_help(name, text=""):
        values = ", ".join(f"{r}: {RECIPES[r].get(name, getattr(d, name))}" for r in RECIPES)
        return f"{text}[recipe] {values}"

    p.add_argument("--epochs", type=int, help=recipe_help("epochs"))
    p.add_argument("--lr", type=float, help=recipe_help("lr"))
    p.add_argument("--batch-size", type=int, help=recipe_help("batch_size"))
    p.add_argument("--weight-decay", type=float, help=recipe_help("weight_decay", "AdamW's; "))
    p.add_argument("--label-smoothing", type=float, help=recipe_help("label_smoothing"))
    p.add_argument("--schedule", choices=_SCHEDULES,
                   help=recipe_help("schedule", "cosine: linear warm-up then cosine decay per step; plateau: "
                                                "halve the lr after 10 epochs without a lower validation loss; "))
    p.add_argument("--warmup-epochs", type=int, help=recipe_help("warmup_epochs", "cosine warm-up; "))
    p.add_argument("--select", choices=_SELECT,
                   help=recipe_help("select", "best.pt and early stopping: the last epoch, highest validation "
                                              "UAR or lowest validation loss; "))
    p.add_argument("--average-weights", action=argparse.BooleanOptionalAction,
                   help=recipe_help("average_weights", "best.pt holds the mean of the weights of the selected epoch "
                                                       "and every epoch after it (the early-stopping window): one "
                                                       "model; "))
    p.add_argument("--class-weights", action=argparse.BooleanOptionalAction,
                   help=recipe_help("class_weights", "weight the loss by inverse class frequency; "))
    p.add_argument("--prior-correction", action=argparse.BooleanOptionalAction,
                   help=recipe_help("prior_correction", "answer under a uniform class prior (each half of the model "
                                                        "divided by the class frequencies it was trained under: "
                                                        "the decision that maximises UAR); "))
    p.add_argument("--normalize", type=_normalize_option, metavar="{train,speaker,valid,padded,none}",
                   help=recipe_help("normalize", "train: rows standardised with the training split's statistics "
                                                 "(kept in the model); speaker: with each speaker's own statistics "
                                                 "(evaluate and predict then need several recordings of a "
                                                 "speaker); valid: per clip, by the model (ModelConfig.clip_norm; "
                                                 "a statistics head reads the raw rows); none: raw; "))
    p.add_argument("--channels", type=int, nargs="+", help=recipe_help("channels", "conv block widths; "))
    p.add_argument("--lstm-hidden", type=int, help=recipe_help("lstm_hidden", "BiLSTM width per direction; "))
    p.add_argument("--lstm-layers", type=int, help=recipe_help("lstm_layers"))
    p.add_argument("--dropout", type=float, help=recipe_help("dropout"))
    p.add_argument("--stats-head", type=_stats_head_option, metavar="{C,none}",
                   help=recipe_help("stats_head", "fuse a logistic regression with inverse L2 strength C on each "
                                                  "clip's row statistics (mean, std, 10/50/90 %% quantiles, mean "
                                                  "|change|) with the network, averaging their softmax; none: "
                                                  "the network alone; "))
    p.add_argument("--stats-head-copies", type=int, default=d.stats_head_copies, metavar="K",
                   help="fit the statistics head on each training clip and K augmented versions of it (the "
                        "training's waveform augmentation, drawn apart: the network trains the same for any K); "
                        "0: the clean clips alone, which leaves the head blind to noise (default: %(default)s)")
    p.add_argument("--split", choices=_SPLITS, default=d.split,
                   help="random: the original 80/20; actor: actor-held-out validation and test (default: %(default)s)")
    p.add_argument("--folds", type=int, default=None, dest="n_folds", help="actor split in K folds")
    p.add_argument("--fold", type=int, default=0, help="which fold is the test set (default: 0)")
    p.add_argument("--val-fold", type=int, default=None,
                   help="which fold is the validation set (default: the one after --fold)")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the split alone (default: --seed); runs with one --split-seed and their own "
                        "--seed train on the same folds")
    p.add_argument("--device", default=d.device, help="auto (default), cpu or cuda[:N]")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no waveform augmentation")
    p.add_argument("--augment-copies", type=int, default=None, metavar="K",
                   help="compute K augmented copies of each training clip once and cycle through them (epoch e "
                        "takes copy e mod K; SpecAugment stays fresh): an epoch then costs the model, not the "
                        "features (None: fresh augmentation every epoch); " + recipe_help("augment_copies"))
    p.add_argument("--no-spec-augment", dest="spec_augment", action="store_false", help="no SpecAugment")
    for name in ("noise", "stretch", "pitch", "shift"):
        p.add_argument(f"--p-{name}", type=float, default=getattr(d, f"p_{name}"), dest=f"p_{name}",
                       help=f"probability of {name} augmentation per example (default: %(default)s)")
    p.add_argument("--early-stopping", type=int, default=d.early_stopping,
                   help="stop after N epochs without a better validation score (--select); 0 = never "
                        "(default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="pad/truncate features to N frames (default: each batch's longest clip)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="clips augmented and turned into features per call, rounded down to whole batches "
                        "(default: what free GPU memory holds on CUDA, 256 on the CPU; the whole epoch when it fits)")
    p.add_argument("--compile", dest="compile_model", action="store_true",
                   help="torch.compile the model (default: eager)")
    p.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                   help="compute each chunk's features only when the model needs them (default: the next chunk is "
                        "computed on a second thread while the model trains; the same draws either way)")
    p.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)
    p.add_argument("--synthetic-dir", default=None, help="where the synthetic corpus is generated")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return p


def _given_options(parser: argparse.ArgumentParser, argv) -> set:
    """The destinations of the options the command line names (not left at their defaults)."""
    import copy

    probe = copy.deepcopy(parser)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status: 0 done, 2 bad input (message on stderr), 3 training diverged, 130 interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = vars(args)
    resume, overwrite, quiet = settings.pop("resume"), settings.pop("overwrite"), settings.pop("quiet")
    # pass on only the options the command line names: the others are the recipe's (or, with --resume,
    # the stored run's)
    given = _given_options(parser, argv)
    settings = {k: v for k, v in settings.items() if k in given}
    epochs, lr, batch_size = (settings.pop(k, None) for k in ("epochs", "lr", "batch_size"))
    data_dirs = settings.pop("data_dirs", None) or None
    import os

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 alone prints (every rank exits alike)
    try:
        result = train_model(epochs, lr, batch_size, data_dirs=data_dirs, resume=resume, overwrite=overwrite,
                             progress=not quiet, **settings)
    except TrainingDiverged as exc:
        if main_rank:
            print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ParameterError, AudioLoadError, CheckpointError) as exc:
        if main_rank:
            print(f"error: {option_error(exc, parser)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if main_rank:
            print("interrupted: the last finished epoch is in last.pt; continue with --resume", file=sys.stderr)
        return 130
    if main_rank:
        _print_summary(result)
    return 0


def _print_summary(result: dict) -> None:
    n = result["epochs_run"]
    print(f"{n} epoch{'' if n == 1 else 's'}{' (stopped early)' if result['stopped_early'] else ''}; "
          f"checkpoints in {result['out']}")
    if "best_val" in result:
        b = result["best_val"]
        print(f"best epoch {result['best_epoch']}: validation loss {b['loss']:.4f}, accuracy {b['accuracy']:.3f}, "
              f"UAR {b['uar']:.3f}")
    if result.get("averaged"):
        a = result["averaged"]
        first, last = a["epochs"]
        print(f"best.pt: the weights of epochs {first}-{last} averaged ({a['count']} epochs): validation loss "
              f"{a['val']['loss']:.4f}, accuracy {a['val']['accuracy']:.3f}, UAR {a['val']['uar']:.3f}")
    if "test" in result:
        t = result["test"]
        print(f"test (held out, best checkpoint): accuracy {t['accuracy']:.3f}, UAR {t['uar']:.3f}")
    elif result.get("test_skipped"):
        print(f"no test evaluation: {result['test_skipped']}")


if __name__ == "__main__":
    sys.exit(run_main(main))
