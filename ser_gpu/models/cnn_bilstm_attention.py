"""CNNBiLSTMAttention: the original system's emotion classifier, with padding that never leaks."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._transfer import to_device
from .._validation import _describe, check_frame_lengths, check_positive_int, config_from_dict, config_to_dict
from ..errors import ParameterError
from ..functional.lengths import valid_mask
from ..transforms.row_stats import standardize_clips
from .stats_head import STATISTICS, clip_statistics, fit_logistic_regression

__all__ = ["ModelConfig", "CNNBiLSTMAttention", "class_log_prior"]

# Devices whose BiLSTM, over clips of unequal lengths, runs dense rather than packed (_dense_lstm): each
# layer's two directions over the whole padded batch, the backward one reading every clip reversed within its
# own frames, so that in both directions a clip's padding comes after its frames and never reaches them.
# The same values as the packed LSTM at every valid frame, zeros after (as pad_packed_sequence gives). On the
# CPU the dense LSTM is oneDNN's, backward included, where the packed one steps frame by frame through
# small matrix products: a training step of the default model, batch 16 x 38 pooled frames (3.5 s clips),
# takes 0.72-0.76x the packed one's time with 2 threads and 0.79-0.81x with one; the evaluation forward
# 0.82-0.87x with 2 threads, 1.14-1.15x with one (benchmarks/bench_model_step.py, two runs each,
# results/model_step_cpu*.json). On CUDA, cuDNN runs packed sequences natively; the GPU suite measures both.
DENSE_LSTM_DEVICES = ("cpu",)


def _check_dropout(value, name: str) -> float:
    # p == 1 zeroes everything in training; nn.Dropout accepts it but it is never meant
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ParameterError(f"{name} must be a probability in [0, 1), got {_describe(value)}")
    return float(value)


def class_log_prior(counts: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The log class prior :meth:`CNNBiLSTMAttention.set_class_prior` divides out, from class counts.

    ``log(n_k / n)`` shifted to mean 0 (a shift common to all classes changes no answer); a class without
    clips is given the largest prior of the others, so that dividing by it never raises its answers.

    Args:
        counts: ``[shape=(n_classes,)]`` non-negative class counts, not all 0.
        n_classes: how many classes.

    Returns:
        ``[shape=(n_classes,)]`` float64 on the CPU.
    """
    if not isinstance(counts, torch.Tensor) or counts.shape != (n_classes,):
        raise ParameterError(f"counts must be a tensor of shape ({n_classes},), got {_describe(counts)}")
    counts = counts.double().cpu()
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()) or not bool((counts > 0).any()):
        raise ParameterError(f"counts must be finite, non-negative and not all 0, got {counts.tolist()}")
    log_prior = torch.log(counts.clamp_min(1e-300) / counts.sum())
    log_prior = torch.where(counts > 0, log_prior, log_prior[counts > 0].max())
    return log_prior - log_prior.mean()


@dataclass
class ModelConfig:
    """Settings of :class:`CNNBiLSTMAttention` (plain data: stored in checkpoints as a dict).

    The defaults are the original system's architecture.

    Attributes:
        input_dim: feature rows per frame (68, the docs/design.md rows).
        n_classes: number of emotions (8 for RAVDESS).
        channels: output channels of the residual Conv1d blocks, one block each.
        kernel_size: odd temporal kernel of the block convolutions ('same' zero padding).
        lstm_hidden: hidden size per direction of the BiLSTM (the attention embedding is twice this).
        lstm_layers: stacked BiLSTM layers.
        lstm_dropout: dropout between LSTM layers (ignored with one layer, as ``nn.LSTM`` does).
        attention_heads: heads of the self-attention; must divide ``2 * lstm_hidden``.
        attention_dropout: dropout on the attention weights.
        classifier_hidden: width of the hidden layer of the classifier head.
        dropout: dropout after each conv block and in the classifier head.
        input_norm: standardise each input row with fixed statistics before the first block:
            ``(x - input_mean) / input_std``, two ``(input_dim,)`` buffers saved in the state dict
            (set with :meth:`CNNBiLSTMAttention.set_input_statistics`, e.g. from the training set's
            features). Off (the original): the features come standardised per clip.
        clip_norm: standardise each clip's rows with their own statistics before the first block
            (:func:`ser_gpu.transforms.row_stats.standardize_clips`: the original system's per-clip
            standardisation, ``FeatureConfig(normalize='valid')``, done by the model so that it reads the
            raw rows and the statistics head sees each clip's level and spread). Not with ``input_norm``.
        stats_head: also hold a logistic regression on each clip's row statistics
            (:func:`ser_gpu.models.stats_head.clip_statistics` of the rows after ``input_norm`` and
            before ``clip_norm``), fitted with :meth:`CNNBiLSTMAttention.fit_stats_head`, not trained by
            the optimiser; the output is then the log of the average of the network's and the head's
            softmax.
        prior_correction: answer as if every class were equally frequent: in the answer
            (``forward(fuse=True)``) the network's logits less ``network_log_prior`` and the head's less
            ``head_log_prior``, two ``(n_classes,)`` buffers (zeros until
            :meth:`CNNBiLSTMAttention.set_class_prior`): each half's softmax divided by the class prior
            it was trained under and renormalised, the decision that maximises the unweighted average
            recall (UAR). Training's logits (``fuse=False``) are untouched.
    """

    input_dim: int = 68
    n_classes: int = 8
    channels: Tuple[int, ...] = (128, 256, 512)
    kernel_size: int = 3
    lstm_hidden: int = 256
    lstm_layers: int = 3
    lstm_dropout: float = 0.3
    attention_heads: int = 8
    attention_dropout: float = 0.1
    classifier_hidden: int = 256
    dropout: float = 0.3
    input_norm: bool = False
    clip_norm: bool = False
    stats_head: bool = False
    prior_correction: bool = False

    def __post_init__(self):
        check_positive_int(self.input_dim, "input_dim")
        check_positive_int(self.n_classes, "n_classes")
        if self.n_classes < 2:
            raise ParameterError(f"n_classes must be at least 2, got {self.n_classes!r}")
        if isinstance(self.channels, (str, bytes)) or not hasattr(self.channels, "__iter__"):
            raise ParameterError(f"channels must be a sequence of positive integers, got {_describe(self.channels)}")
        self.channels = tuple(self.channels)
        if not self.channels:
            raise ParameterError("channels must hold at least one block width, got ()")
        for i, c in enumerate(self.channels):
            check_positive_int(c, f"channels[{i}]")
        self.channels = tuple(int(c) for c in self.channels)
        check_positive_int(self.kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            # 'same' zero padding is only symmetric for odd kernels; an even one would shift frames
            raise ParameterError(f"kernel_size must be odd, got {self.kernel_size!r}")
        check_positive_int(self.lstm_hidden, "lstm_hidden")
        check_positive_int(self.lstm_layers, "lstm_layers")
        _check_dropout(self.lstm_dropout, "lstm_dropout")
        check_positive_int(self.attention_heads, "attention_heads")
        if (2 * self.lstm_hidden) % self.attention_heads:
            raise ParameterError(
                f"attention_heads must divide the attention embedding 2 * lstm_hidden = {2 * self.lstm_hidden}, "
                f"got {self.attention_heads!r}"
            )
        _check_dropout(self.attention_dropout, "attention_dropout")
        check_positive_int(self.classifier_hidden, "classifier_hidden")
        _check_dropout(self.dropout, "dropout")
        if not isinstance(self.input_norm, bool):
            raise ParameterError(f"input_norm must be True or False, got {_describe(self.input_norm)}")
        if not isinstance(self.clip_norm, bool):
            raise ParameterError(f"clip_norm must be True or False, got {_describe(self.clip_norm)}")
        if self.clip_norm and self.input_norm:
            raise ParameterError("clip_norm and input_norm are exclusive (each standardises the rows), got both True")
        if not isinstance(self.stats_head, bool):
            raise ParameterError(f"stats_head must be True or False, got {_describe(self.stats_head)}")
        if not isinstance(self.prior_correction, bool):
            raise ParameterError(f"prior_correction must be True or False, got {_describe(self.prior_correction)}")

    def to_dict(self) -> dict:
        """Plain data (lists, not tuples), JSON-able and loadable with ``torch.load(weights_only=True)``."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys raise ParameterError."""
        return config_from_dict(cls, data)


class _MaskedBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose training statistics come from the valid frames only.

    In training, plain batch norm would average over padded frames too, so a clip's output (and
    the running statistics) would depend on how much padding its batch has. In eval mode the
    running statistics are used, which is exactly ``nn.BatchNorm1d``. Same parameters and buffers
    (and state_dict keys) as ``nn.BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if mask is None or not self.training:
            return super().forward(x)
        # reduced-precision activations (autocast) would lose the statistics: accumulate in float32
        xs = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        m = mask.to(xs.dtype)  # (B, 1, T)
        n = m.sum()
        mean = (xs * m).sum(dim=(0, 2)) / n
        centred = (xs - mean[:, None]) * m
        var = (centred * centred).sum(dim=(0, 2)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp_min(1))  # torch keeps the unbiased variance
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), factor)
        y = (xs - mean[:, None]) * torch.rsqrt(var + self.eps)[:, None]
        if self.affine:
            y = y * self.weight[:, None] + self.bias[:, None]
        return y.to(x.dtype)


class _ResidualConvBlock(nn.Module):
    """``Conv1d -> BN -> GELU -> dropout`` plus a (1x1-projected) residual path."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float):
        super().__init__()
        # the batch norm that follows absorbs a conv bias, so it would be a wasted parameter
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = _MaskedBatchNorm1d(out_channels)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.dropout(self.act(self.bn(self.conv(x), mask))) + self.skip(x)


class CNNBiLSTMAttention(nn.Module):
    """Emotion logits from a padded batch of feature frames: residual CNN -> BiLSTM -> attention -> pooling.

    The original system's classifier (input_dim 68, 8 emotions), made exactly invariant to
    padding: a clip's logits in eval mode do not depend on how many padded frames follow it or on
    the other clips of its batch (up to float rounding).

    Architecture (defaults of :class:`ModelConfig`):

    1. Three residual blocks ``Conv1d(k=3, 'same') -> BatchNorm -> GELU -> dropout``, plus a 1x1
       Conv1d projection of the block input on the residual path; 68 -> 128 -> 256 -> 512
       channels. A max-pool of 2 (``ceil_mode=True``) sits *between* blocks, so frames shrink by 4
       in all and a clip of ``L`` valid frames keeps ``ceil(ceil(L / 2) / 2)`` (a 1-frame clip
       keeps 1).
    2. A 3-layer bidirectional LSTM (hidden 256 per direction, dropout 0.3 between layers) over
       the pooled frames, each clip's own: run on a packed sequence, or on the CPU
       (:data:`DENSE_LSTM_DEVICES`) dense with the backward direction reading each clip reversed within
       its frames; either way each direction starts and stops at the clip's ends.
    3. 8-head self-attention (``nn.MultiheadAttention``, embedding 512) with a key padding mask,
       in a post-norm residual sublayer: ``LayerNorm(h + attention(h))``.
    4. Masked mean and masked max over the valid frames, *summed* into one 512-vector (summing
       keeps the classifier's 512 inputs of the original; concatenating would need 1024).
    5. Classifier ``Linear(512, 256) -> BatchNorm -> GELU -> dropout -> Linear(256, n_classes)``.
    6. Optional (``stats_head``, off by default): a logistic regression on six statistics of each input
       row over the clip's valid frames, fitted apart (:meth:`fit_stats_head`); the output is then
       ``log((softmax(classifier) + softmax(head)) / 2)``.
    7. Optional (``prior_correction``): the answer under a uniform class prior, each half's logits less
       the log of the class prior it was trained under (:meth:`set_class_prior`).

    How padding is kept out: the input's padded frames are zeroed, and so are every block's
    outputs there after the next max-pool (batch-norm bias and GELU make them non-zero), so each
    'same' convolution sees zeros beyond a clip's end whatever the padding; the max-pool sees
    ``-inf`` there (``ceil_mode``, so a window holding a clip's last odd frame keeps it); the
    conv blocks' batch norm takes its training statistics over valid frames only; the LSTM reads
    each clip's frames only (packed, or dense with padding after the frames in both directions);
    attention masks padded keys; the final pooling is masked.

    Args:
        config: a :class:`ModelConfig` (or its ``to_dict()``); keyword arguments override its fields.

    Shape:
        - features: ``(B, input_dim, frames)`` float, padded frames anywhere after each clip's end.
        - frame_lengths: ``(B,)`` int valid frames per clip in ``[1, frames]``, or ``None``
          (all ``frames`` valid).
        - output: ``(B, n_classes)`` logits.

    In training mode the batch must hold at least 2 clips (the classifier's batch norm needs them).
    """

    def __init__(self, config: Optional[ModelConfig] = None, **overrides):
        super().__init__()
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        elif not isinstance(config, ModelConfig):
            raise ParameterError(f"config must be a ModelConfig, a dict or None, got {_describe(config)}")
        if overrides:
            unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(ModelConfig)})
            if unknown:
                raise ParameterError(f"unknown ModelConfig keys {unknown}")
            config = dataclasses.replace(config, **overrides)
        self.config = config
        c = config

        if c.input_norm:
            self.register_buffer("input_mean", torch.zeros(c.input_dim))
            self.register_buffer("input_std", torch.ones(c.input_dim))
        widths = (c.input_dim,) + c.channels
        self.blocks = nn.ModuleList(
            _ResidualConvBlock(widths[i], widths[i + 1], c.kernel_size, c.dropout) for i in range(len(c.channels))
        )
        self.lstm = nn.LSTM(
            c.channels[-1], c.lstm_hidden, num_layers=c.lstm_layers, batch_first=True, bidirectional=True,
            dropout=c.lstm_dropout if c.lstm_layers > 1 else 0.0,
        )
        embed = 2 * c.lstm_hidden
        self.attention = nn.MultiheadAttention(embed, c.attention_heads, dropout=c.attention_dropout,
                                               batch_first=True)
        self.attention_norm = nn.LayerNorm(embed)
        self.classifier = nn.Sequential(
            nn.Linear(embed, c.classifier_hidden),
            nn.BatchNorm1d(c.classifier_hidden),
            nn.GELU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.classifier_hidden, c.n_classes),
        )
        if c.stats_head:  # fitted by fit_stats_head (convex), never by the optimiser: no gradients
            width = len(STATISTICS) * c.input_dim
            self.register_buffer("stats_mean", torch.zeros(width))
            self.register_buffer("stats_std", torch.ones(width))
            self.stats_linear = nn.Linear(width, c.n_classes)
            nn.init.zeros_(self.stats_linear.weight)
            nn.init.zeros_(self.stats_linear.bias)
            self.stats_linear.requires_grad_(False)
        if c.prior_correction:  # set by set_class_prior; zeros: no correction
            self.register_buffer("network_log_prior", torch.zeros(c.n_classes))
            if c.stats_head:
                self.register_buffer("head_log_prior", torch.zeros(c.n_classes))

    @torch.no_grad()
    def set_input_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the per-row statistics of ``input_norm``: ``mean`` and ``std`` ``[shape=(input_dim,)]``,
        finite, ``std > 0``."""
        c = self.config
        if not c.input_norm:
            raise ParameterError("set_input_statistics needs a model built with input_norm=True")
        for name, value in (("mean", mean), ("std", std)):
            if not isinstance(value, torch.Tensor) or value.shape != (c.input_dim,):
                raise ParameterError(f"{name} must be a tensor of shape ({c.input_dim},), got {_describe(value)}")
            if not bool(torch.isfinite(value).all()):
                raise ParameterError(f"{name} must be finite, got {value.tolist()}")
        if not bool((std > 0).all()):
            raise ParameterError(f"std must be positive, got {std.tolist()}")
        self.input_mean.copy_(mean)
        self.input_std.copy_(std)

    def _head_rows(self, features: torch.Tensor) -> torch.Tensor:
        # the rows the statistics head reads: input_norm applied (clip_norm not yet)
        if self.config.input_norm:
            return (features - self.input_mean[:, None].to(features.dtype)) / self.input_std[:, None].to(features.dtype)
        return features

    def _input(self, x: torch.Tensor, lengths: Optional[torch.Tensor], standardized: bool = False):
        # the rows the network reads (from _head_rows' rows): clip_norm applied, padded frames zeroed;
        # and their valid mask
        if self.config.clip_norm and not standardized:
            full = lengths if lengths is not None else torch.full((x.shape[0],), x.shape[-1], device=x.device)
            x = standardize_clips(x, full)
        mask = None  # (B, 1, frames) bool, True on valid frames
        if lengths is not None:
            mask = self._mask(lengths, x.shape[-1])
            x = x.masked_fill(~mask, 0.0)  # e.g. normalize='padded' features are non-zero there
        return x, mask

    @torch.no_grad()
    def clip_statistics(self, features: torch.Tensor, frame_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What the statistics head reads: :func:`ser_gpu.models.stats_head.clip_statistics` of the rows
        after ``input_norm`` and before ``clip_norm`` (so a ``clip_norm`` model's head sees each clip's
        level and spread), ``[shape=(B, 6 * input_dim)]``; any batch size."""
        x, lengths = self._check_inputs(features, frame_lengths, training=False)
        return clip_statistics(self._head_rows(x), lengths)

    @torch.no_grad()
    def fit_stats_head(self, statistics: torch.Tensor, labels: torch.Tensor, *, c: float = 0.1) -> None:
        """Fit the statistics head on labelled clips (training: the training split, clean and augmented).

        The head's standardisation and weights become those of
        :func:`ser_gpu.models.stats_head.fit_logistic_regression` (inverse L2 strength ``c``); the
        network's weights are untouched.

        Args:
            statistics: ``[shape=(N, 6 * input_dim)]``, :meth:`clip_statistics` of the clips.
            labels: ``[shape=(N,)]`` int in ``[0, n_classes)``.
        """
        if not self.config.stats_head:
            raise ParameterError("fit_stats_head needs a model built with stats_head=True")
        width = len(STATISTICS) * self.config.input_dim
        if not isinstance(statistics, torch.Tensor) or statistics.ndim != 2 or statistics.shape[1] != width:
            raise ParameterError(f"statistics must be a tensor of shape (N, {width}) (clip_statistics), got "
                                 f"{_describe(statistics)}")
        mean, std, weight, bias = fit_logistic_regression(statistics, labels, self.config.n_classes, c=c)
        self.stats_mean.copy_(mean)
        self.stats_std.copy_(std)
        self.stats_linear.weight.copy_(weight)
        self.stats_linear.bias.copy_(bias)

    @torch.no_grad()
    def set_class_prior(self, counts: torch.Tensor, *, network_balanced: bool = False) -> None:
        """Set the priors ``prior_correction`` divides out, from the training clips' class counts.

        The head is fitted without class weights, so its prior is the counts' frequencies ``n_k / n``; so
        is the network's, unless its loss was weighted ``n / (K n_k)`` (``network_balanced``), which trains
        it under a uniform prior (nothing to divide out). A class without training clips is given the
        largest prior of the others (its answers are not raised).

        Args:
            counts: ``[shape=(n_classes,)]`` non-negative class counts of the training clips, not all 0.
            network_balanced: the network was trained with a class-balanced loss.
        """
        if not self.config.prior_correction:
            raise ParameterError("set_class_prior needs a model built with prior_correction=True")
        log_prior = class_log_prior(counts, self.config.n_classes)
        self.network_log_prior.copy_(torch.zeros_like(log_prior) if network_balanced else log_prior)
        if self.config.stats_head:
            self.head_log_prior.copy_(log_prior)

    def output_frame_lengths(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per clip after the max-pools, as seen by the LSTM and attention.

        Args:
            frame_lengths: ``[shape=(B,)]`` int valid input frames.

        Returns:
            ``[shape=(B,)]`` int64: ``ceil(L / 2)`` applied once per pool (``len(channels) - 1`` times).
        """
        lengths = torch.as_tensor(frame_lengths, dtype=torch.int64)
        for _ in range(len(self.config.channels) - 1):
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        return lengths

    def _check_inputs(self, features, frame_lengths, *, training: Optional[bool] = None
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        c = self.config
        if not isinstance(features, torch.Tensor):
            raise ParameterError(f"features must be a torch.Tensor, got {type(features).__name__}: "
                                 f"{_describe(features)}")
        if not features.is_floating_point():
            raise ParameterError(f"features must be a floating-point tensor, got dtype {features.dtype}")
        if features.ndim != 3:
            raise ParameterError(
                f"features must have shape (B, input_dim={c.input_dim}, frames), got {tuple(features.shape)}"
            )
        if features.shape[1] != c.input_dim:
            raise ParameterError(
                f"features must have input_dim={c.input_dim} rows on dim 1, got shape {tuple(features.shape)}"
            )
        if features.shape[0] == 0 or features.shape[2] == 0:
            raise ParameterError(f"features is empty: shape {tuple(features.shape)}")
        if (self.training if training is None else training) and features.shape[0] < 2:
            raise ParameterError(
                f"features must hold at least 2 clips in training mode (batch norm), got shape "
                f"{tuple(features.shape)}; call model.eval() to predict a single clip"
            )
        weight = self.classifier[0].weight
        if features.device != weight.device:
            raise ParameterError(f"features are on {features.device} but the model is on {weight.device}")
        if features.dtype != weight.dtype and not torch.is_autocast_enabled(features.device.type):
            raise ParameterError(
                f"features have dtype {features.dtype} but the model's parameters are {weight.dtype}; "
                f"convert one of them (model.to(dtype) or features.to(dtype))"
            )
        return features, check_frame_lengths(frame_lengths, features)

    def forward(self, features: torch.Tensor, frame_lengths: Optional[torch.Tensor] = None, *,
                fuse: bool = True, standardized: bool = False) -> torch.Tensor:
        """Logits for a padded batch of feature frames.

        Args:
            features: ``[shape=(B, input_dim, frames)]`` float features (e.g. ``FeatureBatch.features``).
            frame_lengths: ``[shape=(B,)]`` int valid frames per clip, or ``None`` (all valid). On the
                device or on the CPU: given on the CPU (e.g. a host copy), they are checked and the LSTM
                packed without waiting for the device; on the device, both read them back (host syncs).
            fuse: with ``stats_head``, fuse the head's answer in (False: the network's logits alone,
                what training optimises).
            standardized: with ``clip_norm``, the rows come standardised per clip already and are read
                as they are (training: SpecAugment masks the standardised rows, as the original recipe
                does); the statistics head cannot read such rows, so it needs ``fuse=False``.

        Returns:
            ``[shape=(B, n_classes)]`` unnormalised logits; with ``stats_head`` and ``fuse``, the
            log-probabilities ``log((softmax(network) + softmax(head)) / 2)`` (in the parameters'
            precision, float32 under autocast too); with ``prior_correction`` and ``fuse``, each half's
            logits less its log prior first (:meth:`set_class_prior`).
        """
        x, lengths = self._check_inputs(features, frame_lengths)
        # the packed LSTM (CUDA; the CPU runs it dense) needs the lengths on the host: given there (the
        # training step's host copy), they are read without waiting for the device; given on the device,
        # read back once
        host_lengths = (frame_lengths.to(torch.int64) if isinstance(frame_lengths, torch.Tensor)
                        and frame_lengths.device.type == "cpu" else None)
        if standardized and not self.config.clip_norm:
            raise ParameterError("standardized=True applies to a model built with clip_norm=True")
        fused = self.config.stats_head and fuse
        if standardized and fused:
            raise ParameterError("standardized=True rows hide each clip's statistics from the statistics head: "
                                 "pass fuse=False (training) or the raw rows")
        x = self._head_rows(x)
        stats = clip_statistics(x, lengths) if fused else None
        x, mask = self._input(x, lengths, standardized)
        for i, block in enumerate(self.blocks):
            if i > 0:
                if mask is not None:
                    # -inf so that a window straddling a clip's end takes its valid frame only
                    x = x.masked_fill(~mask, float("-inf"))
                x = F.max_pool1d(x, kernel_size=2, stride=2, ceil_mode=True)
                if lengths is not None:
                    lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
                    mask = self._mask(lengths, x.shape[-1])
                    x = x.masked_fill(~mask, 0.0)  # the conv's 'same' padding must meet zeros past the end
            # a block's padded outputs are non-zero (BN bias, GELU): the -inf/0 fills around the next
            # pool clean them before the next conv, and after the last no valid LSTM output reads them
            # (packed: never read; dense: zeroed first, and after each clip's frames in both directions)
            x = block(x, mask)

        h = x.transpose(1, 2)  # (B, frames', channels)
        # The recurrence runs in the parameters' precision even under autocast: cuDNN's packed
        # bf16 LSTM support varies by version, and 30+ steps of reduced-precision state drift.
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = h.to(self.lstm.weight_ih_l0.dtype)
            if lengths is None:
                h, _ = self.lstm(h)
            elif h.device.type in DENSE_LSTM_DEVICES:
                h = self._dense_lstm(h, lengths)
            else:
                host = self.output_frame_lengths(host_lengths) if host_lengths is not None else lengths.cpu()
                h = self._packed_lstm(h, host)

        key_padding_mask = None if mask is None else ~mask[:, 0, :]
        a, _ = self.attention(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)
        h = self.attention_norm(h + a)

        if mask is None:
            pooled = h.mean(dim=1) + h.amax(dim=1)
        else:
            valid = mask[:, 0, :, None]  # (B, frames', 1)
            mean = h.masked_fill(~valid, 0.0).sum(dim=1) / lengths[:, None].to(h.dtype)
            pooled = mean + h.masked_fill(~valid, float("-inf")).amax(dim=1)
        logits = self.classifier(pooled)
        corrected = self.config.prior_correction and fuse
        if stats is None:
            return logits - self.network_log_prior.to(logits.dtype) if corrected else logits
        with torch.autocast(device_type=logits.device.type, enabled=False):
            dtype = self.stats_linear.weight.dtype  # float32 (float64 for a model in double)
            head = self.stats_linear(((stats - self.stats_mean) / self.stats_std).to(dtype))
            logits = logits.to(dtype)
            if corrected:
                logits, head = logits - self.network_log_prior.to(dtype), head - self.head_log_prior.to(dtype)
            both = torch.stack([logits.log_softmax(-1), head.log_softmax(-1)])
            return torch.logsumexp(both, dim=0) - math.log(2.0)

    def _packed_lstm(self, h: torch.Tensor, host_lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over the valid frames of ``h`` ``(B, frames, channels)`` (``host_lengths`` on the CPU),
        padded back to ``frames``: what ``pack_padded_sequence(..., enforce_sorted=False)`` and
        ``pad_packed_sequence`` give (the same sort, so the same values), without their two host syncs
        (moving the sort order to the device, reading the unsort order back): both orders are made on
        the host and copied to the device without waiting for it."""
        sorted_lengths, order = torch.sort(host_lengths, descending=True)
        unsort = torch.empty_like(order)
        unsort[order] = torch.arange(order.numel())
        order, unsort = to_device(order, h.device), to_device(unsort, h.device)  # to CUDA: no device wait
        packed = pack_padded_sequence(h.index_select(0, order), sorted_lengths, batch_first=True, enforce_sorted=True)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return out.index_select(0, unsort)

    def _dense_lstm(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over the valid frames of ``h`` ``(B, frames, channels)`` (``lengths`` ``(B,)`` on
        ``h``'s device), computed dense (:data:`DENSE_LSTM_DEVICES`): what :meth:`_packed_lstm` gives, up to
        rounding, values and gradients, with the same parameters (``self.lstm``'s) and the same dropout
        between layers. Each layer runs its forward direction over the padded batch as it is, and its
        backward direction over the batch with every clip's frames reversed in place (frame ``t < L``
        reads frame ``L - 1 - t``; padded frames stay where they are), then reversed back: in both, a
        clip's padding follows its frames, so no valid output depends on it. Padded outputs are zeroed."""
        lstm = self.lstm
        batch, frames, _ = h.shape
        steps = torch.arange(frames, device=h.device)
        valid = steps < lengths[:, None]  # (B, frames)
        # zeros in the padding: nothing there reaches a valid output, but a non-finite value would turn
        # the backward's products with zero gradients into NaN
        h = h.masked_fill(~valid[:, :, None], 0.0)
        reverse = torch.where(valid, lengths[:, None] - 1 - steps, steps)[:, :, None]  # its own inverse
        state = h.new_zeros(1, batch, lstm.hidden_size)
        for layer in range(lstm.num_layers):
            directions = []
            for suffix in ("", "_reverse"):
                weights = [getattr(lstm, f"{name}_l{layer}{suffix}")
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                x = h.gather(1, reverse.expand(-1, -1, h.shape[-1])) if suffix else h
                # one layer, one direction: (input, hx, params, has_biases, num_layers, dropout, train,
                # bidirectional, batch_first), as nn.LSTM calls it
                out = torch.lstm(x, (state, state), weights, True, 1, 0.0, self.training, False, True)[0]
                directions.append(out.gather(1, reverse.expand(-1, -1, out.shape[-1])) if suffix else out)
            h = torch.cat(directions, dim=-1)
            if layer < lstm.num_layers - 1:  # nn.LSTM's dropout between layers (0 with one layer)
                h = F.dropout(h, lstm.dropout, self.training)
        return h.masked_fill(~valid[:, :, None], 0.0)

    @staticmethod
    def _mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
        return valid_mask(lengths, frames).unsqueeze(1)
