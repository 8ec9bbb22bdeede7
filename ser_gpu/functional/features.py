"""STFT-family features, batched and lengths-aware; each equals its librosa 0.11 namesake.

Every function takes keyword-only settings with librosa's names and defaults and a waveform
``y`` of shape ``(..., time)`` (or a precomputed spectrogram ``S`` where librosa accepts one).
With ``lengths`` (samples per example of a zero-padded batch) — or ``frame_lengths`` with ``S`` —
the result is ``(feature, frame_lengths)``: every valid frame equals librosa on the unpadded
example and frames beyond each example's length are 0. Without them the result is the feature alone.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import numpy as np

import torch
import torch.nn.functional as F

from .._validation import (check_bool, check_frame_lengths, check_in_range, check_length_kind, check_lengths,
                           check_nonnegative, check_positive, check_positive_int, check_real, valid_audio,
                           valid_spectrogram)
from ..errors import ParameterError
from .._transfer import CONSTANTS, to_device
from . import filters
from .util import _normalize, check_norm
from .lengths import mask_frames, num_frames, zero_padding
from .spectrum import _TORCH_PAD_MODES, _center_pad, _power_to_db, spectrogram

__all__ = [
    "melspectrogram",
    "mfcc",
    "delta",
    "chroma_stft",
    "spectral_contrast",
    "zero_crossing_rate",
    "rms",
    "spectral_rolloff",
    "spectral_centroid",
]


def _result(x: torch.Tensor, frame_lengths: Optional[torch.Tensor], *given):
    """The public return convention: ``x`` alone, or ``(x, frame_lengths)`` when the caller passed
    ``lengths``/``frame_lengths`` (``given``); padded frames are zeroed."""
    x = mask_frames(x, frame_lengths)
    if all(g is None for g in given):
        return x
    return x, frame_lengths


def _frame_sums(x: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """Sum of ``x`` over frames ``[t * hop, t * hop + frame_length)``: ``(..., T) -> (..., 1, frames)``."""
    shape = x.shape[:-1]
    n_frames = 1 + (x.shape[-1] - frame_length) // hop_length
    if frame_length % hop_length == 0 and n_frames >= 1:
        # a frame is R whole hops: sum each hop once (a plain sum, no cancellation either), then
        # add R neighbouring hop sums -- a few passes instead of a frame_length-wide pooling window
        R = frame_length // hop_length
        n_blocks = n_frames + R - 1
        blocks = x[..., : n_blocks * hop_length].reshape(shape + (n_blocks, hop_length)).sum(dim=-1)
        sums = blocks[..., :n_frames]
        for q in range(1, R):
            sums = sums + blocks[..., q : q + n_frames]
        return sums.unsqueeze(-2)
    flat = x.reshape(-1, 1, x.shape[-1])
    # avg_pool1d sums each window without the cancellation error a cumulative sum would have
    out = F.avg_pool1d(flat, kernel_size=frame_length, stride=hop_length) * frame_length
    return out.reshape(shape + (1, out.shape[-1]))


def rms(
    y: Optional[torch.Tensor] = None,
    *,
    S: Optional[torch.Tensor] = None,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Root-mean-square energy per frame; equals ``librosa.feature.rms``.

    From ``y``: frames of ``frame_length`` samples (centred with ``pad_mode`` padding);
    from ``S`` (a magnitude spectrogram): Parseval's identity, as librosa.

    Args:
        y: ``[shape=(..., time)]`` waveform.
        S: ``[shape=(..., frame_length // 2 + 1, frames)]`` magnitude spectrogram.
        lengths / frame_lengths: see the module docstring.

    Returns:
        ``[shape=(..., 1, frames)]`` RMS.
    """
    frame_length = check_positive_int(frame_length, "frame_length")
    hop_length = check_positive_int(hop_length, "hop_length")
    check_length_kind(y is not None, lengths, frame_lengths)  # librosa's rms reads y when both are given
    if y is not None:
        y = valid_audio(y)
        lengths = check_lengths(lengths, y)
        if pad_mode not in _TORCH_PAD_MODES:
            raise ParameterError(f"pad_mode must be one of {tuple(_TORCH_PAD_MODES)}, got {pad_mode!r}")
        if lengths is not None and pad_mode != "constant":
            raise ParameterError(f"lengths are supported with pad_mode='constant' only, got {pad_mode!r}")
        padded = y.shape[-1] + (2 * (frame_length // 2) if center else 0)
        if padded < frame_length:
            raise ParameterError(
                f"frame_length={frame_length} is longer than the (padded) signal of {padded} samples"
            )
        out, frame_lengths = _rms_waveform(y, frame_length=frame_length, hop_length=hop_length, center=center,
                                           pad_mode=pad_mode, lengths=lengths)
        return _result(out, frame_lengths, lengths, frame_lengths)
    elif S is not None:
        S, _, frame_lengths = spectrogram(S=S, frame_lengths=frame_lengths)
        if S.shape[-2] != frame_length // 2 + 1:
            raise ParameterError(
                f"S.shape[-2] is {S.shape[-2]}, so frame_length must be {2 * S.shape[-2] - 2} or "
                f"{2 * S.shape[-2] - 1}; got frame_length={frame_length}"
            )
        x = S * S
        x = torch.cat([x[..., :1, :] * 0.5, x[..., 1:, :]], dim=-2)
        if frame_length % 2 == 0:
            x = torch.cat([x[..., :-1, :], x[..., -1:, :] * 0.5], dim=-2)
        power = 2 * x.sum(dim=-2, keepdim=True) / frame_length**2
    else:
        raise ParameterError("either y (a waveform) or S (a spectrogram) must be given, got neither")
    return _result(torch.sqrt(power), frame_lengths, lengths, frame_lengths)


def _rms_waveform(y, *, frame_length, hop_length, center, pad_mode, lengths):
    """The waveform branch of :func:`rms` with checked arguments: ``(rms, frame_lengths)``, the
    padded frames not yet zeroed."""
    if lengths is not None:
        y = zero_padding(y, lengths)
        frame_lengths = num_frames(lengths, hop_length=hop_length, n_fft=frame_length, center=center)
    else:
        frame_lengths = None
    if center:
        flat = _center_pad(y.reshape(-1, y.shape[-1]), frame_length // 2, pad_mode)
        y = flat.reshape(y.shape[:-1] + (flat.shape[-1],))
    power = _frame_sums(y * y, frame_length, hop_length) / frame_length
    return torch.sqrt(power), frame_lengths


def zero_crossing_rate(
    y: torch.Tensor,
    *,
    frame_length: int = 2048,
    hop_length: int = 512,
    center: bool = True,
    threshold: float = 1e-10,
    lengths: Optional[torch.Tensor] = None,
):
    """Fraction of zero crossings per frame; equals ``librosa.feature.zero_crossing_rate``.

    librosa pads with ``mode='edge'`` and counts sign changes between consecutive samples inside
    each frame (``zero_pos=True``: 0 counts as positive; ``|y| <= threshold`` counts as 0).
    Edge padding repeats the end samples, which never cross, so only crossings inside the signal
    count: each example's count stops at its own length.

    Args:
        y: ``[shape=(..., time)]`` waveform.
        lengths: ``[shape=(...)]`` valid samples per example.

    Returns:
        ``[shape=(..., 1, frames)]`` rate in [0, 1].
    """
    y = valid_audio(y)
    frame_length = check_positive_int(frame_length, "frame_length")
    hop_length = check_positive_int(hop_length, "hop_length")
    lengths = check_lengths(lengths, y)
    threshold = check_real(threshold, "threshold")  # a str got into the comparison (librosa takes any number)
    if not center and y.shape[-1] < frame_length:
        raise ParameterError(f"frame_length={frame_length} is longer than the signal of {y.shape[-1]} samples")
    rate, frame_lengths = _zero_crossing_rate(y, frame_length=frame_length, hop_length=hop_length, center=center,
                                              threshold=threshold, lengths=lengths)
    return _result(rate, frame_lengths, lengths)


def _zero_crossing_rate(y, *, frame_length, hop_length, center, threshold, lengths):
    """:func:`zero_crossing_rate` with checked arguments: ``(rate, frame_lengths)``, the padded
    frames not yet zeroed."""
    T = y.shape[-1]
    negative = (y < 0) & (y.abs() > threshold)
    # crossing[i] (i >= 1) compares samples i - 1 and i; crossing[0] is False (librosa's pad=False)
    crossing = torch.zeros_like(y)
    crossing[..., 1:] = (negative[..., 1:] != negative[..., :-1]).to(y.dtype)
    if lengths is not None:
        crossing = zero_padding(crossing, lengths)
        frame_lengths = num_frames(lengths, hop_length=hop_length, n_fft=frame_length, center=center)
    else:
        frame_lengths = None
    if center:
        # edge padding adds no crossing; a frame holds the pairs ending at its samples 1..frame_length-1
        pad = frame_length // 2
        crossing = F.pad(crossing.reshape(-1, T), (pad, pad)).reshape(y.shape[:-1] + (T + 2 * pad,))
    # the first sample of each frame has no predecessor inside the frame: drop its pair
    first = crossing[..., ::hop_length]
    sums = _frame_sums(crossing, frame_length, hop_length)
    n = sums.shape[-1]
    sums = sums - first[..., :n].unsqueeze(-2)
    return sums / frame_length, frame_lengths


def _spectral_input(y, S, *, n_fft, hop_length, power, win_length, window, center, pad_mode, lengths, frame_lengths):
    return spectrogram(y, S=S, n_fft=n_fft, hop_length=hop_length, power=power, win_length=win_length,
                       window=window, center=center, pad_mode=pad_mode, lengths=lengths,
                       frame_lengths=frame_lengths)


def _melspectrogram(y, *, sr, S, n_fft, hop_length, win_length, window, center, pad_mode, power,
                    n_mels, fmin, fmax, htk, norm, lengths, frame_lengths):
    S, n_fft, frame_lengths = _spectral_input(
        y, S, n_fft=n_fft, hop_length=hop_length, power=power, win_length=win_length, window=window,
        center=center, pad_mode=pad_mode, lengths=lengths, frame_lengths=frame_lengths)
    basis = filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                        device=S.device, dtype=S.dtype)
    return torch.matmul(basis, S), frame_lengths


def melspectrogram(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: Optional[float] = None,
    htk: bool = False,
    norm="slaney",
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Mel-scaled spectrogram; equals ``librosa.feature.melspectrogram``.

    Args:
        y: ``[shape=(..., time)]`` waveform, or
        S: ``[shape=(..., 1 + n_fft // 2, frames)]`` spectrogram already raised to ``power``.
        n_mels, fmin, fmax, htk, norm: the mel filterbank (:func:`ser_gpu.functional.filters.mel`).
        lengths / frame_lengths: see the module docstring.

    Returns:
        ``[shape=(..., n_mels, frames)]``.
    """
    filters.check_mel(sr=sr, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    M, fl = _melspectrogram(y, sr=sr, S=S, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                            window=window, center=center, pad_mode=pad_mode, power=power, n_mels=n_mels,
                            fmin=fmin, fmax=fmax, htk=htk, norm=norm, lengths=lengths,
                            frame_lengths=frame_lengths)
    return _result(M, fl, lengths, frame_lengths)


def mfcc(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_mfcc: int = 20,
    dct_type: int = 2,
    norm: Optional[str] = "ortho",
    lifter: float = 0,
    mel_norm="slaney",
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: Optional[float] = None,
    htk: bool = False,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Mel-frequency cepstral coefficients; equals ``librosa.feature.mfcc``.

    ``S`` (if given) is a log-power mel spectrogram; otherwise it is
    ``power_to_db(melspectrogram(y, ...))`` whose ``top_db=80`` floor is taken per example over its
    valid frames (librosa takes it over the whole array it is given: for one clip, the same thing).

    Args:
        y: ``[shape=(..., time)]`` waveform; S: ``[shape=(..., n_mels, frames)]`` log-power mel.
        n_mfcc: number of coefficients; dct_type: only 2; norm: ``'ortho'`` or ``None``;
        lifter: cepstral liftering (0 = none); mel_norm: the mel filterbank's ``norm``.
        n_fft ... htk: as :func:`melspectrogram`. lengths / frame_lengths: see the module docstring.

    Returns:
        ``[shape=(..., n_mfcc, frames)]``.
    """
    check_length_kind(S is None, lengths, frame_lengths, spectral="log-power mel S")
    n_mfcc = check_positive_int(n_mfcc, "n_mfcc")
    if dct_type != 2:
        raise ParameterError(f"dct_type must be 2 (the only type ser_gpu implements), got {dct_type!r}")
    lifter = check_nonnegative(lifter, "lifter")
    filters.check_dct_norm(norm)
    if S is None:
        filters.check_mel(sr=sr, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=mel_norm, norm_name="mel_norm")
        M, fl = _melspectrogram(y, sr=sr, S=None, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                                window=window, center=center, pad_mode=pad_mode, power=power, n_mels=n_mels,
                                fmin=fmin, fmax=fmax, htk=htk, norm=mel_norm, lengths=lengths,
                                frame_lengths=None)
        S = _power_to_db(M, 1.0, 1e-10, 80.0, fl)
    else:
        S, _, fl = spectrogram(S=S, frame_lengths=frame_lengths)
    out = _mfcc_from_db(S, n_mfcc=n_mfcc, norm=norm, lifter=lifter)
    return _result(out, fl, lengths, frame_lengths)


def _mfcc_from_db(S: torch.Tensor, *, n_mfcc: int, norm, lifter: float) -> torch.Tensor:
    if n_mfcc > S.shape[-2]:
        raise ParameterError(f"n_mfcc must be <= the number of mel bands {S.shape[-2]}, got {n_mfcc}")
    M = torch.matmul(filters.dct(n_mfcc, S.shape[-2], norm=norm, device=S.device, dtype=S.dtype), S)
    if lifter > 0:
        li = torch.sin(torch.pi * torch.arange(1, 1 + n_mfcc, device=S.device, dtype=S.dtype) / lifter)
        M = M * (1 + (lifter / 2) * li).unsqueeze(-1)
    return M


def delta(
    data: torch.Tensor,
    *,
    width: int = 9,
    order: int = 1,
    axis: int = -1,
    mode: str = "interp",
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Savitzky–Golay derivative along time; equals ``librosa.feature.delta``.

    ``order=2`` is the second-order filter (not the delta of a delta). Edges use ``mode='interp'``:
    the first and last ``width // 2`` frames of each example take the derivative of a degree-``order``
    polynomial fit to that example's first/last ``width`` frames — the example's own ends, from
    ``frame_lengths``, not the padded batch's.

    librosa raises when a clip has fewer than ``width`` frames; here such an example gets, at every
    frame, the derivative of a degree-``min(order, n - 1)`` least-squares polynomial fit to all its
    ``n`` frames (0 where that degree is below ``order``), so short clips have a defined result.

    Args:
        data: ``[shape=(..., d, frames)]`` features (e.g. MFCC).
        width: odd window length >= 3. order: derivative order >= 1. axis: must be -1 (time).
        mode: only ``'interp'`` (librosa's default).
        frame_lengths: ``[shape=(...)]`` valid frames per example.

    Returns:
        ``[shape=(..., d, frames)]`` (or ``(delta, frame_lengths)`` with ``frame_lengths``).
    """
    width = check_positive_int(width, "width")
    if width < 3 or width % 2 != 1:
        raise ParameterError(f"width must be an odd integer >= 3, got {width}")
    order = check_positive_int(order, "order")
    if axis not in (-1, data.ndim - 1 if isinstance(data, torch.Tensor) else -1):
        raise ParameterError(f"axis must be -1 (the frame axis), got {axis!r}")
    if mode != "interp":
        raise ParameterError(f"mode must be 'interp' (librosa's default), got {mode!r}")
    data = valid_spectrogram(data, name="data")  # errors name the argument: data, not S
    frame_lengths_checked = check_frame_lengths(frame_lengths, data)
    return _result(_delta(data, width, order, frame_lengths_checked), frame_lengths_checked, frame_lengths)


def _delta(data: torch.Tensor, width: int, order: int, frame_lengths_checked: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`delta` with checked arguments (no validation, no host sync); padded frames not zeroed."""
    return _deltas(data, width, (order,), frame_lengths_checked)[0]


def _deltas(data: torch.Tensor, width: int, orders: Tuple[int, ...],
            frame_lengths_checked: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """:func:`_delta` for several orders of the same data: the windows of frames are gathered once."""
    T = data.shape[-1]
    batch_shape = data.shape[:-2]
    n = frame_lengths_checked if frame_lengths_checked is not None else torch.full(
        batch_shape, T, dtype=torch.int64, device=data.device)
    half = width // 2
    m = torch.clamp(n, max=width)  # points in the fitting window
    t = torch.arange(T, device=data.device)
    start = torch.minimum(torch.clamp(t - half, min=0), (n - m).unsqueeze(-1))  # (..., T)
    start = torch.clamp(start, min=0)
    pos = torch.clamp(t - start, max=width - 1)  # where in the window frame t sits
    idx = torch.clamp(start.unsqueeze(-1) + torch.arange(width, device=data.device), max=T - 1)  # (..., T, width)
    x = mask_frames(data, frame_lengths_checked)
    d = x.shape[-2]
    # gather frames idx[..., t, j] for every row: (..., d, T, width)
    gathered = torch.gather(
        x.unsqueeze(-1).expand(batch_shape + (d, T, width)),
        -2,
        idx.unsqueeze(-3).expand(batch_shape + (d, T, width)),
    )
    out = []
    for order in orders:
        table = CONSTANTS.get(("savgol", width, order), lambda: _savgol_table(width, order), data.device,
                              data.dtype)  # (width + 1, width, width)
        coeffs = table[m.unsqueeze(-1), pos]  # (..., T, width)
        out.append((gathered * coeffs.unsqueeze(-3)).sum(-1))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _savgol_table(width: int, order: int) -> torch.Tensor:
    """``table[m, i, j]``: weight of window point ``j`` for the ``order``-th derivative at point ``i``
    of a degree-``min(order, m - 1)`` least-squares polynomial over ``m`` points (``m <= width``)."""
    table = np.zeros((width + 1, width, width))
    for m in range(1, width + 1):
        degree = min(order, m - 1)
        if degree < order:
            continue  # the order-th derivative of a lower-degree polynomial is 0
        x = np.arange(m, dtype=np.float64)
        V = np.vander(x, degree + 1, increasing=True)  # (m, degree + 1)
        pinv = np.linalg.pinv(V)  # coefficients = pinv @ y
        # d^order/dx^order of x^k evaluated at each point
        k = np.arange(degree + 1)
        fact = np.array([math.perm(int(kk), order) if kk >= order else 0 for kk in k], dtype=np.float64)
        powers = np.where(k >= order, k - order, 0)
        D = fact[None, :] * x[:, None] ** powers[None, :]  # (m, degree + 1)
        table[m, :m, :m] = D @ pinv
    return torch.from_numpy(table)


#: the settings chroma_stft passes on to filters.chroma (librosa's **kwargs)
_CHROMA_FILTER_KWARGS = frozenset({"ctroct", "octwidth", "base_c"})


def chroma_stft(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    norm=float("inf"),
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    tuning=None,
    n_chroma: int = 12,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
    **kwargs,
):
    """Chromagram from a power spectrogram; equals ``librosa.feature.chroma_stft``.

    With ``tuning=None`` the tuning is estimated per example from its own valid frames, as
    ``librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=n_chroma)`` (piptrack + pitch histogram),
    and each example gets its own chroma filterbank.

    Args:
        y: ``[shape=(..., time)]`` waveform, or S: ``[shape=(..., 1 + n_fft // 2, frames)]`` power
            spectrogram. norm: per-frame normalisation (``inf`` as librosa).
        tuning: ``None`` (estimate), a number, or a per-example tensor ``[shape=(...)]``.
        kwargs: more :func:`ser_gpu.functional.filters.chroma` settings (ctroct, octwidth, base_c).
        lengths / frame_lengths: see the module docstring.

    Returns:
        ``[shape=(..., n_chroma, frames)]``.
    """
    n_chroma = check_positive_int(n_chroma, "n_chroma")
    check_norm(norm)
    unknown = sorted(set(kwargs) - _CHROMA_FILTER_KWARGS)
    if unknown:  # a TypeError from inside filters.chroma before
        raise ParameterError(f"unexpected keyword argument(s) {unknown} for chroma_stft; its filter bank takes "
                             f"{sorted(_CHROMA_FILTER_KWARGS)}")
    S, n_fft, fl = _spectral_input(
        y, S, n_fft=n_fft, hop_length=hop_length, power=2.0, win_length=win_length, window=window,
        center=center, pad_mode=pad_mode, lengths=lengths, frame_lengths=frame_lengths)
    if tuning is None:
        from .pitch import estimate_tuning

        tuning = estimate_tuning(S=S, sr=sr, bins_per_octave=n_chroma, frame_lengths=fl)
    fb = filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning, device=S.device,
                        dtype=S.dtype, **kwargs)
    raw = torch.matmul(fb, S)
    return _result(_normalize(raw, norm=norm, axis=-2), fl, lengths, frame_lengths)


def spectral_contrast(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    fmin: float = 200.0,
    n_bands: int = 6,
    quantile: float = 0.02,
    linear: bool = False,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Spectral contrast per octave band; equals ``librosa.feature.spectral_contrast``.

    Per band, the mean of the top and bottom ``quantile`` of magnitudes (peak, valley), returned as
    ``power_to_db(peak) - power_to_db(valley)`` (``top_db=80`` taken per example over valid frames).

    Args:
        y: ``[shape=(..., time)]`` waveform, or S: ``[shape=(..., 1 + n_fft // 2, frames)]`` magnitude.
        fmin: lower edge of the first band (> 0); n_bands: octave bands above it; quantile in (0, 1);
        linear: return ``peak - valley`` instead of the dB difference.
        lengths / frame_lengths: see the module docstring.

    Returns:
        ``[shape=(..., n_bands + 1, frames)]``.
    """
    sr = check_positive(sr, "sr")
    n_bands = check_positive_int(n_bands, "n_bands")
    quantile = check_in_range(quantile, "quantile", 0.0, 1.0)
    fmin = check_positive(fmin, "fmin")
    linear = check_bool(linear, "linear")
    S, n_fft, fl = _spectral_input(
        y, S, n_fft=n_fft, hop_length=hop_length, power=1.0, win_length=win_length, window=window,
        center=center, pad_mode=pad_mode, lengths=lengths, frame_lengths=frame_lengths)
    contrast = _spectral_contrast(S, fl, sr=sr, n_fft=n_fft, fmin=fmin, n_bands=n_bands, quantile=quantile,
                                  linear=linear)
    return _result(contrast, fl, lengths, frame_lengths)


@functools.lru_cache(maxsize=32)
def _contrast_bands(sr: float, n_fft: int, fmin: float, n_bands: int, quantile: float):
    """Per band: (first row, last row + 1, rows averaged at each end), as librosa picks them."""
    freq = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ParameterError(
            f"frequency band exceeds Nyquist ({0.5 * sr} Hz) for fmin={fmin}, n_bands={n_bands}: "
            "reduce fmin or n_bands"
        )
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(band)
        rows = idx
        if idx.size:
            if k > 0:
                band[idx[0] - 1] = True
            if k == n_bands:
                band[idx[-1] + 1:] = True
            rows = np.flatnonzero(band)
            if k < n_bands:
                rows = rows[:-1]
        if rows.size == 0:  # librosa's rows come out all NaN (a quantile of an empty band)
            raise ParameterError(
                f"n_fft={n_fft} is too small for the contrast bands at sr={sr}: band {k} ({f_low:g}-{f_high:g} Hz) "
                f"holds no FFT bin to average (bins are sr / n_fft = {sr / n_fft:g} Hz apart); use a larger n_fft "
                f"or a higher fmin")
        n_q = max(int(np.rint(quantile * np.sum(band))), 1)
        bands.append((int(rows[0]), int(rows[-1]) + 1, n_q))
    return bands


def _spectral_contrast(S, fl, *, sr, n_fft, fmin, n_bands, quantile, linear) -> torch.Tensor:
    if 1 + n_fft // 2 != S.shape[-2]:
        raise ParameterError(f"S.shape[-2] must be {1 + n_fft // 2} for n_fft={n_fft}, got {S.shape[-2]}")
    valleys, peaks = [], []
    for lo, hi, n_q in _contrast_bands(sr, n_fft, fmin, n_bands, quantile):  # bands, not examples
        sub = S[..., lo:hi, :]
        if n_q == 1:
            valleys.append(sub.amin(dim=-2))
            peaks.append(sub.amax(dim=-2))
            continue
        # only the n_q smallest/largest of each band count: a partial selection instead of a sort
        # (the same values; their mean may differ from librosa's in the last bit)
        valleys.append(torch.topk(sub, n_q, dim=-2, largest=False).values.mean(dim=-2))
        peaks.append(torch.topk(sub, n_q, dim=-2).values.flip(-2).mean(dim=-2))
    valley = torch.stack(valleys, dim=-2)
    peak = torch.stack(peaks, dim=-2)
    if linear:
        return peak - valley
    return _power_to_db(peak, 1.0, 1e-10, 80.0, fl) - _power_to_db(valley, 1.0, 1e-10, 80.0, fl)


def _check_energies(S_given: Optional[torch.Tensor], S: torch.Tensor, feature: str) -> None:
    """A spectrogram the caller gave must hold non-negative energies (librosa refuses the others; a
    negative bin turns the weighted mean or the cumulative sum into nonsense)."""
    if S_given is not None and bool((S < 0).any()):
        raise ParameterError(f"S holds {int((S < 0).sum())} negative value(s): the spectral {feature} is only "
                             f"defined with non-negative energies (a magnitude or power spectrogram)")


def _frequency_column(sr: float, n_fft: int, S: torch.Tensor) -> torch.Tensor:
    freq = to_device(torch.from_numpy(np.fft.rfftfreq(n=n_fft, d=1.0 / sr)), S.device, S.dtype)
    if freq.shape[0] != S.shape[-2]:
        raise ParameterError(f"S.shape[-2] must be {freq.shape[0]} for n_fft={n_fft}, got {S.shape[-2]}")
    return freq.unsqueeze(-1)


def spectral_rolloff(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    roll_percent: float = 0.85,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Roll-off frequency: the lowest bin holding ``roll_percent`` of the frame's energy;
    equals ``librosa.feature.spectral_rolloff``.

    Returns:
        ``[shape=(..., 1, frames)]`` in Hz (0 for a silent frame, as librosa).
    """
    sr = check_positive(sr, "sr")
    roll_percent = check_in_range(roll_percent, "roll_percent", 0.0, 1.0)
    S_given = S
    S, n_fft, fl = _spectral_input(
        y, S, n_fft=n_fft, hop_length=hop_length, power=1.0, win_length=win_length, window=window,
        center=center, pad_mode=pad_mode, lengths=lengths, frame_lengths=frame_lengths)
    _check_energies(S_given, S, "rolloff")
    rolloff = _spectral_rolloff(S, _frequency_column(sr, n_fft, S), roll_percent)
    return _result(rolloff, fl, lengths, frame_lengths)


def _spectral_rolloff(S: torch.Tensor, freq: torch.Tensor, roll_percent: float) -> torch.Tensor:
    total = torch.cumsum(S, dim=-2)
    threshold = roll_percent * total[..., -1:, :]
    # the cumulative energy is non-decreasing: the first bin reaching the threshold is the count below it
    idx = (total < threshold).sum(dim=-2, keepdim=True).clamp(max=S.shape[-2] - 1)
    return freq.squeeze(-1)[idx]


def spectral_centroid(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window="hann",
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Spectral centroid: the magnitude-weighted mean frequency of each frame;
    equals ``librosa.feature.spectral_centroid``.

    Returns:
        ``[shape=(..., 1, frames)]`` in Hz (0 for a silent frame, as librosa).
    """
    sr = check_positive(sr, "sr")
    S_given = S
    S, n_fft, fl = _spectral_input(
        y, S, n_fft=n_fft, hop_length=hop_length, power=1.0, win_length=win_length, window=window,
        center=center, pad_mode=pad_mode, lengths=lengths, frame_lengths=frame_lengths)
    _check_energies(S_given, S, "centroid")
    centroid = _spectral_centroid(S, _frequency_column(sr, n_fft, S))
    return _result(centroid, fl, lengths, frame_lengths)


def _spectral_centroid(S: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    # librosa's sum(freq * normalize(S, norm=1)) as (freq . S) / sum|S| (a column left unnormalised
    # when its sum is below tiny): one matmul and one sum instead of five full-size passes; the
    # values differ from librosa's only by rounding
    weighted = torch.matmul(freq.transpose(-1, -2), S)  # (..., 1, frames)
    length = S.abs().sum(dim=-2, keepdim=True)
    length = torch.where(length < torch.finfo(S.dtype).tiny, 1.0, length)
    return weighted / length
