"""On-device augmentation modules for the training step: waveform effects and SpecAugment.

:class:`WaveformAugment` replaces the original system's per-clip CPU chain (audiomentations'
``AddGaussianNoise``, ``TimeStretch``, ``PitchShift`` and ``Shift``, each with p=0.5) with one call per
batch; :class:`SpecAugment` masks a band of feature rows and a band of frames per example. Every
random choice (whether each effect applies to each example, and its parameter) is drawn per example
from the :class:`torch.Generator` passed to ``forward``.

Both modules apply in ``eval()`` mode too: augmentation is something the training loop calls
explicitly, so the module's mode is not consulted. With every probability 0 the input comes back
unchanged (the same tensor, bit for bit).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from .._validation import (
    _describe,
    check_frame_lengths,
    check_lengths,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_probability,
    config_from_dict,
    config_to_dict,
    valid_audio,
    valid_spectrogram,
)
from ..errors import ParameterError
from ..functional import unchecked
from ..functional.lengths import padding_mask, zero_padding

__all__ = ["WaveformAugmentConfig", "WaveformAugment", "SpecAugmentConfig", "SpecAugment"]


def _check_range(value, name: str, *, low: Optional[float] = None, positive: bool = False) -> Tuple[float, float]:
    """A ``(min, max)`` pair of finite numbers with ``min <= max`` (and ``>= low`` / ``> 0``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ParameterError(f"{name} must be a (min, max) pair, got {_describe(value)}")
    lo_hi = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ParameterError(f"{name} must hold two finite numbers, got {_describe(value)}")
        lo_hi.append(float(v))
    lo, hi = lo_hi
    if lo > hi:
        raise ParameterError(f"{name} must have min <= max, got {tuple(value)!r}")
    if positive and lo <= 0:
        raise ParameterError(f"{name} must be > 0, got {tuple(value)!r}")
    if low is not None and lo < low:
        raise ParameterError(f"{name} must be >= {low}, got {tuple(value)!r}")
    return lo, hi


# ----------------------------------------------------------------------------------------------
# waveform augmentation


@dataclass
class WaveformAugmentConfig:
    """Settings of :class:`WaveformAugment` (plain data: stored in checkpoints as a dict).

    Defaults follow the original system: audiomentations' probabilities (0.5 each) with its ranges
    noise amplitude U[0.001, 0.015], time-stretch rate U[0.9, 1.1], pitch shift U[-2, 2] semitones
    and shift U[-0.2, 0.2] s.

    Attributes:
        sr: sampling rate (Hz), converts the shift range from seconds to samples.
        p_noise, noise_amplitude: probability of Gaussian noise and its standard deviation range.
        p_stretch, stretch_rate: probability of a time stretch and its rate range
            (> 1 faster/shorter). The clip's length changes to ``round(length / rate)`` unless
            ``leave_length_unchanged`` (audiomentations' option: crop or zero-pad to the old length).
        p_pitch, pitch_semitones: probability of a pitch shift and its range (any real
            number of semitones; the length is kept).
        p_shift, shift_seconds: probability of a shift in time and its range in seconds (rounded to
            samples), ``shift_rollover`` (True: roll within the clip, audiomentations' default;
            False: zero fill) and ``shift_fade_seconds`` (fade at the stitch, audiomentations'
            default 0.005 s; 0 disables).
        n_fft, hop_length: STFT of the phase vocoder (librosa's defaults 2048 and 512).
    """

    sr: float = 22050
    p_noise: float = 0.5
    noise_amplitude: Tuple[float, float] = (0.001, 0.015)
    p_stretch: float = 0.5
    stretch_rate: Tuple[float, float] = (0.9, 1.1)
    leave_length_unchanged: bool = False
    p_pitch: float = 0.5
    pitch_semitones: Tuple[float, float] = (-2.0, 2.0)
    p_shift: float = 0.5
    shift_seconds: Tuple[float, float] = (-0.2, 0.2)
    shift_rollover: bool = True
    shift_fade_seconds: float = 0.005
    n_fft: int = 2048
    hop_length: int = 512

    def __post_init__(self):
        check_positive(self.sr, "sr")
        for name in ("p_noise", "p_stretch", "p_pitch", "p_shift"):
            check_probability(getattr(self, name), name)
        self.noise_amplitude = _check_range(self.noise_amplitude, "noise_amplitude", low=0.0)
        self.stretch_rate = _check_range(self.stretch_rate, "stretch_rate", positive=True)
        self.pitch_semitones = _check_range(self.pitch_semitones, "pitch_semitones")
        self.shift_seconds = _check_range(self.shift_seconds, "shift_seconds")
        for name in ("leave_length_unchanged", "shift_rollover"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be True or False, got {_describe(getattr(self, name))}")
        check_nonnegative(self.shift_fade_seconds, "shift_fade_seconds")
        unchecked.check_stft_args(self.n_fft, self.hop_length, None, "hann", "constant")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "WaveformAugmentConfig":
        return config_from_dict(cls, data)


class WaveformAugment(nn.Module):
    """Noise, time stretch, pitch shift and shift, each with its own probability, per example, on the device.

    The batched equivalent of ``audiomentations.Compose([AddGaussianNoise, TimeStretch, PitchShift,
    Shift])`` applied to each clip alone, in that order: for every example, each effect is applied
    with its probability and a parameter drawn uniformly from its range, from one
    :class:`torch.Generator`. The effects are :func:`ser_gpu.functional.add_noise`,
    :func:`~ser_gpu.functional.time_stretch` (librosa's phase vocoder),
    :func:`~ser_gpu.functional.pitch_shift` (stretch + band-limited resampling, continuous semitones)
    and :func:`~ser_gpu.functional.shift`; the stretch and pitch shift run once each on the sub-batch
    of examples that drew them.

    Args:
        sr: sampling rate (Hz). Every other setting is a keyword of :class:`WaveformAugmentConfig`
            (``p_noise=0.5, noise_amplitude=(0.001, 0.015), p_stretch=0.5,
            stretch_rate=(0.9, 1.1), p_pitch=0.5, pitch_semitones=(-2, 2),
            p_shift=0.5, shift_seconds=(-0.2, 0.2), ...``).

    Call: ``y2, lengths2 = aug(y, lengths, generator=g)``

    - ``y``: ``[shape=(B, T)]`` float32/float64 zero-padded waveforms (any device);
    - ``lengths``: ``[shape=(B,)]`` int64 valid samples (None: all ``T``);
    - ``generator``: a ``torch.Generator`` (None: the global RNG of ``y``'s device). A generator on
      another device than ``y`` (e.g. CPU generator, CUDA data) draws on its own device and the
      numbers are moved, so a seed gives the same parameters on any device (the per-sample noise
      then crosses the bus: prefer a generator on ``y``'s device for speed).

    Returns ``(y2, lengths2)``: ``y2`` ``[shape=(B, T2)]`` with zeros beyond each new length,
    ``T2 = max(lengths2)`` when a time stretch was applied (else ``T``), and ``lengths2`` int64
    ``[shape=(B,)]``. With all probabilities 0, ``y`` itself is returned.
    """

    def __init__(
        self,
        sr: float = 22050,
        *,
        p_noise: float = 0.5,
        noise_amplitude: Tuple[float, float] = (0.001, 0.015),
        p_stretch: float = 0.5,
        stretch_rate: Tuple[float, float] = (0.9, 1.1),
        leave_length_unchanged: bool = False,
        p_pitch: float = 0.5,
        pitch_semitones: Tuple[float, float] = (-2.0, 2.0),
        p_shift: float = 0.5,
        shift_seconds: Tuple[float, float] = (-0.2, 0.2),
        shift_rollover: bool = True,
        shift_fade_seconds: float = 0.005,
        n_fft: int = 2048,
        hop_length: int = 512,
    ):
        super().__init__()
        self.config = WaveformAugmentConfig(
            sr=sr, p_noise=p_noise, noise_amplitude=noise_amplitude, p_stretch=p_stretch,
            stretch_rate=stretch_rate, leave_length_unchanged=leave_length_unchanged,
            p_pitch=p_pitch, pitch_semitones=pitch_semitones, p_shift=p_shift,
            shift_seconds=shift_seconds, shift_rollover=shift_rollover, shift_fade_seconds=shift_fade_seconds,
            n_fft=n_fft, hop_length=hop_length,
        )

    @classmethod
    def from_config(cls, config) -> "WaveformAugment":
        """Build from a :class:`WaveformAugmentConfig` or its ``to_dict()`` form."""
        if isinstance(config, dict):
            config = WaveformAugmentConfig.from_dict(config)
        if not isinstance(config, WaveformAugmentConfig):
            raise ParameterError(f"config must be a WaveformAugmentConfig or a dict, got {_describe(config)}")
        return cls(**dataclasses.asdict(config))

    def extra_repr(self) -> str:
        c = self.config
        return (f"sr={c.sr}, p_noise={c.p_noise}, p_stretch={c.p_stretch}, "
                f"p_pitch={c.p_pitch}, p_shift={c.p_shift}")

    def draw(self, batch_size: int, *, generator: Optional[torch.Generator] = None,
             device=None) -> dict:
        """The per-example choices ``forward`` makes: ``{effect: (applied bool (B,), parameter (B,))}``.

        Effects: ``'noise'`` (amplitude), ``'stretch'`` (rate), ``'pitch'`` (semitones),
        ``'shift'`` (samples, int64). One ``(8, B)`` uniform draw, so the number of random numbers
        taken does not depend on the outcome.
        """
        batch_size = check_nonnegative_int(batch_size, "batch_size")
        generator = unchecked.check_generator(generator)
        device = torch.device("cpu") if device is None else torch.device(device)
        c = self.config
        u = unchecked.rand((8, batch_size), generator, device)

        def uniform(row, lo_hi):
            lo, hi = lo_hi
            return lo + (hi - lo) * u[row]

        shift_samples = torch.round(uniform(7, c.shift_seconds) * c.sr).to(torch.int64)  # int(round(s * sr))
        return {
            "noise": (u[0] < c.p_noise, uniform(1, c.noise_amplitude)),
            "stretch": (u[2] < c.p_stretch, uniform(3, c.stretch_rate)),
            "pitch": (u[4] < c.p_pitch, uniform(5, c.pitch_semitones)),
            "shift": (u[6] < c.p_shift, shift_samples),
        }

    def forward(self, y: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        y = valid_audio(y)
        if y.ndim != 2:
            raise ParameterError(f"y must have shape (batch, time), got {tuple(y.shape)}")
        lengths = check_lengths(lengths, y)
        generator = unchecked.check_generator(generator)
        B, T = y.shape
        L = torch.full((B,), T, dtype=torch.int64, device=y.device) if lengths is None else lengths
        c = self.config
        if max(c.p_noise, c.p_stretch, c.p_pitch, c.p_shift) == 0.0 or B == 0:
            return y, L
        choice = self.draw(B, generator=generator, device=y.device)
        out = zero_padding(y, L)

        if c.p_noise > 0:
            apply, amp = choice["noise"]
            noise = unchecked.rand((B, T), generator, y.device, y.dtype, normal=True)
            noisy = (out + amp.to(y.dtype).unsqueeze(-1) * noise).masked_fill(padding_mask(L, T), 0.0)
            out = torch.where(apply.unsqueeze(-1), noisy, out)

        if c.p_stretch > 0:
            apply, rate = choice["stretch"]
            idx = apply.nonzero().squeeze(-1)
            if idx.numel():
                sub_len = L[idx]
                sub = out[idx, : int(sub_len.max())]
                stretched, new_sub = unchecked.time_stretch(sub, rate[idx], sub_len, n_fft=c.n_fft,
                                                            hop_length=c.hop_length, win_length=c.n_fft,
                                                            window="hann")
                if c.leave_length_unchanged:  # audiomentations: crop, or zero-pad, to the old length
                    new_sub = sub_len
                new_L = L.clone()
                new_L[idx] = new_sub
                T2 = int(new_L.max())
                resized = _fit(out, T2)
                resized[idx] = _fit(stretched, T2).masked_fill(padding_mask(new_sub, T2), 0.0)
                out, L, T = resized, new_L, T2

        if c.p_pitch > 0:
            apply, semitones = choice["pitch"]
            idx = apply.nonzero().squeeze(-1)
            if idx.numel():
                sub_len = L[idx]
                sub = out[idx, : int(sub_len.max())]
                rate = torch.pow(2.0, -semitones[idx] / 12.0)
                shifted = unchecked.pitch_shift(sub, rate, sub_len, n_fft=c.n_fft, hop_length=c.hop_length,
                                                win_length=c.n_fft, window="hann")
                out = out.clone()
                out[idx] = _fit(shifted, T)

        if c.p_shift > 0:
            apply, samples = choice["shift"]
            k = torch.where(apply, samples, 0)
            fade = int(c.shift_fade_seconds * c.sr)  # audiomentations: int(sr * fade_duration)
            out = unchecked.shift(out, k, L, rollover=c.shift_rollover, fade_length=fade)
        return out, L


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop or zero-pad the last axis to ``n`` (a new tensor either way)."""
    if x.shape[-1] >= n:
        return x[..., :n].clone()
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))


# ----------------------------------------------------------------------------------------------
# SpecAugment


@dataclass
class SpecAugmentConfig:
    """Settings of :class:`SpecAugment` (plain data: stored in checkpoints as a dict).

    Attributes:
        freq_mask_width: widest frequency mask, in rows (each mask's width is uniform in
            ``0..freq_mask_width``); 8 as the original system.
        time_mask_width: widest time mask, in frames (uniform in ``0..time_mask_width``); 15.
        n_freq_masks, n_time_masks: masks of each kind per example (1 each).
        mask_value: value written in the masked cells (0).
        p: probability that an example is masked at all (1: every example).
    """

    freq_mask_width: int = 8
    time_mask_width: int = 15
    n_freq_masks: int = 1
    n_time_masks: int = 1
    mask_value: float = 0.0
    p: float = 1.0

    def __post_init__(self):
        for name in ("freq_mask_width", "time_mask_width", "n_freq_masks", "n_time_masks"):
            check_nonnegative_int(getattr(self, name), name)
        if isinstance(self.mask_value, bool) or not isinstance(self.mask_value, numbers.Real):
            raise ParameterError(f"mask_value must be a number, got {_describe(self.mask_value)}")
        check_probability(self.p, "p")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SpecAugmentConfig":
        return config_from_dict(cls, data)


class SpecAugment(nn.Module):
    """Frequency and time masking of a feature batch, drawn per example (SpecAugment, Park et al. 2019).

    For each example (with probability ``p``): ``n_freq_masks`` bands of rows, each of width uniform
    in ``0..freq_mask_width`` and start uniform among the positions where it fits, and
    ``n_time_masks`` bands of frames likewise, placed inside the example's valid frames only; the
    masked cells are set to ``mask_value``. Like torchaudio's ``FrequencyMasking`` and
    ``TimeMasking`` with ``iid_masks=True``, but padding-aware: frames at or beyond
    ``frame_lengths`` are never touched.

    Args: the keywords of :class:`SpecAugmentConfig` (``freq_mask_width=8, time_mask_width=15,
    n_freq_masks=1, n_time_masks=1, mask_value=0.0, p=1.0``).

    Call: ``x2 = spec(features, frame_lengths, generator=g)`` with ``features``
    ``[shape=(B, rows, frames)]`` (or ``(..., rows, frames)``), ``frame_lengths`` ``[shape=(B,)]``
    int64 (None: all frames valid) and a ``torch.Generator`` (None: global RNG; a generator on
    another device draws there and the numbers are moved). Returns ``[shape=features.shape]``.
    """

    def __init__(
        self,
        *,
        freq_mask_width: int = 8,
        time_mask_width: int = 15,
        n_freq_masks: int = 1,
        n_time_masks: int = 1,
        mask_value: float = 0.0,
        p: float = 1.0,
    ):
        super().__init__()
        self.config = SpecAugmentConfig(
            freq_mask_width=freq_mask_width, time_mask_width=time_mask_width, n_freq_masks=n_freq_masks,
            n_time_masks=n_time_masks, mask_value=mask_value, p=p,
        )

    @classmethod
    def from_config(cls, config) -> "SpecAugment":
        """Build from a :class:`SpecAugmentConfig` or its ``to_dict()`` form."""
        if isinstance(config, dict):
            config = SpecAugmentConfig.from_dict(config)
        if not isinstance(config, SpecAugmentConfig):
            raise ParameterError(f"config must be a SpecAugmentConfig or a dict, got {_describe(config)}")
        return cls(**dataclasses.asdict(config))

    def extra_repr(self) -> str:
        c = self.config
        return (f"freq_mask_width={c.freq_mask_width}, time_mask_width={c.time_mask_width}, "
                f"n_freq_masks={c.n_freq_masks}, n_time_masks={c.n_time_masks}, mask_value={c.mask_value}, p={c.p}")

    def draw(self, n_rows: int, frame_lengths: torch.Tensor, *, generator: Optional[torch.Generator] = None):
        """The masks ``forward`` applies: ``(freq_start, freq_width, time_start, time_width)``, int64
        ``[shape=(B, n_masks)]`` each, for ``n_rows`` feature rows and ``frame_lengths`` ``(B,)``."""
        c = self.config
        B = frame_lengths.shape[0]
        dev = frame_lengths.device
        nf, nt = c.n_freq_masks, c.n_time_masks
        u = unchecked.rand((B, 1 + 2 * nf + 2 * nt), generator, dev)
        apply = (u[:, :1] < c.p)

        def band(uw, us, widest, size):
            # width uniform in 0..widest (capped by the axis), start uniform over where it fits
            width = torch.minimum(torch.floor(uw * (widest + 1)).to(torch.int64), size)
            start = torch.floor(us * (size - width + 1).to(torch.float64)).to(torch.int64)
            start = torch.minimum(start, size - width)
            return start, torch.where(apply, width, 0)

        rows = torch.full((B, 1), n_rows, dtype=torch.int64, device=dev)
        fs, fw = band(u[:, 1:1 + nf], u[:, 1 + nf:1 + 2 * nf], c.freq_mask_width, rows)
        o = 1 + 2 * nf
        ts, tw = band(u[:, o:o + nt], u[:, o + nt:o + 2 * nt], c.time_mask_width, frame_lengths.unsqueeze(-1))
        return fs, fw, ts, tw

    def forward(self, features: torch.Tensor, frame_lengths: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        x = valid_spectrogram(features, name="features", check_finite=False)
        frame_lengths = check_frame_lengths(frame_lengths, x)
        generator = unchecked.check_generator(generator)
        c = self.config
        if c.p == 0.0 or (c.n_freq_masks == 0 and c.n_time_masks == 0):
            return features
        F, N = x.shape[-2], x.shape[-1]
        flat = x.reshape(-1, F, N)
        if frame_lengths is None:
            fl = torch.full((flat.shape[0],), N, dtype=torch.int64, device=x.device)
        else:
            fl = frame_lengths.reshape(-1)
        fs, fw, ts, tw = self.draw(F, fl, generator=generator)
        out = flat
        if c.n_freq_masks:
            # the drawn bands are checked by construction: the kernel, without the gate's host syncs
            out = unchecked.mask_along_axis(out, fs, fw, axis="freq", mask_value=float(c.mask_value),
                                            frame_lengths=fl)
        if c.n_time_masks:
            out = unchecked.mask_along_axis(out, ts, tw, axis="time", mask_value=float(c.mask_value),
                                            frame_lengths=fl)
        return out.reshape(x.shape)
