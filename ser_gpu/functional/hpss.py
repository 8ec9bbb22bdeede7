"""Inverse STFT, soft masks and harmonic/percussive source separation, as librosa 0.11.

Everything is batched over leading axes and runs on the input's device and dtype. Padded batches
carry ``lengths`` (samples) or ``frame_lengths`` (frames); every valid sample/frame then equals what
librosa computes on the unpadded example alone, and everything beyond is zero.

The running medians (the hot spot of HPSS) live in :mod:`ser_gpu.functional.median`;
``median_filter`` and ``DEFAULT_CHUNK_SIZE`` are re-exported here.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

from .._validation import (
    _describe,
    check_frame_lengths,
    check_lengths,
    check_positive_int,
    valid_audio,
)
from ..errors import ParameterError
from .lengths import num_frames, pad_per_example, padding_mask
from .median import DEFAULT_CHUNK_SIZE, _check_chunk_size, _median_freq, _median_time, median_filter
from .spectrum import _frame_args, _istft, _stft, _valid_complex_or_real_spectrogram, istft

__all__ = [
    "istft",
    "median_filter",
    "softmask",
    "hpss",
    "harmonic",
    "percussive",
    "hpss_waveform",
    "DEFAULT_CHUNK_SIZE",
]


_HPSS_PAD_MODES = ("constant", "edge", "reflect")

KernelSize = Union[int, Tuple[int, int], Sequence[int]]
Margin = Union[float, Tuple[float, float], Sequence[float]]


# ----------------------------------------------------------------------------------------------
# validation helpers


def _pair(value, name: str):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ParameterError(f"{name} must be a scalar or a pair (harmonic, percussive), got {value!r}")
        return value[0], value[1]
    return value, value


def _check_kernel_size(kernel_size) -> Tuple[int, int]:
    kh, kp = _pair(kernel_size, "kernel_size")
    return check_positive_int(kh, "kernel_size"), check_positive_int(kp, "kernel_size")


def _check_margin(margin) -> Tuple[float, float]:
    out = []
    for m in _pair(margin, "margin"):
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not math.isfinite(float(m)) or m < 1:
            raise ParameterError(f"margin must be a finite number >= 1.0 (or a pair of them), got {_describe(margin)}")
        out.append(float(m))
    return out[0], out[1]


def _check_power(power) -> float:
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or math.isnan(float(power)) or power <= 0:
        raise ParameterError(f"power must be a positive number (or inf for a hard mask), got {_describe(power)}")
    return float(power)


# ----------------------------------------------------------------------------------------------
# soft masks and HPSS


def softmask(X: torch.Tensor, X_ref: torch.Tensor, *, power: float = 1.0, split_zeros: bool = False) -> torch.Tensor:
    """Robust soft mask ``X**power / (X**power + X_ref**power)``; equals ``librosa.util.softmask``.

    Both inputs are rescaled by ``Z = max(X, X_ref)`` first; where ``Z`` is below the dtype's
    ``tiny`` the mask is 0.5 (``split_zeros``) or 0. ``power=inf`` gives the hard mask ``X > X_ref``.

    Args:
        X: ``[shape=(...)]`` non-negative real tensor (the mask's positive part).
        X_ref: non-negative tensor of the same shape (the reference).
        power: exponent > 0, or ``float('inf')``.
        split_zeros: value 0.5 instead of 0 where both inputs are (near) zero.

    Returns:
        ``[shape=X.shape]`` mask in ``[0, 1]`` of ``X``'s dtype.
    """
    X = valid_audio(X, name="X")
    if not isinstance(X_ref, torch.Tensor) or tuple(X_ref.shape) != tuple(X.shape):
        raise ParameterError(f"X_ref must be a tensor of shape {tuple(X.shape)}, got {_describe(X_ref)}")
    if bool((X < 0).any()) or bool((X_ref < 0).any()):
        raise ParameterError("X and X_ref must be non-negative")
    return _softmask(X, X_ref, _check_power(power), bool(split_zeros))


def _softmask(X, X_ref, power: float, split_zeros: bool) -> torch.Tensor:
    if math.isinf(power):
        return (X > X_ref).to(X.dtype)
    if torch.is_grad_enabled() and (X.requires_grad or X_ref.requires_grad):
        return _softmask_differentiable(X, X_ref, power, split_zeros)
    # librosa's arithmetic, step for step, on two full-size temporaries updated in place (fresh
    # (batch, freq, frames) tensors per step cost more than the arithmetic on CPU)
    Z = torch.maximum(X, X_ref)
    bad = Z < torch.finfo(X.dtype).tiny
    Z.masked_fill_(bad, 1.0)
    mask = torch.div(X, Z)
    ref = torch.div(X_ref, Z, out=Z)
    if power == 2.0:  # x ** 2.0 is x * x in numpy and torch alike
        mask.mul_(mask)
        ref.mul_(ref)
    else:
        mask.pow_(power)
        ref.pow_(power)
    ref += mask
    mask /= ref  # mask + ref >= 1 wherever Z was kept
    del ref
    return mask.masked_fill_(bad, 0.5 if split_zeros else 0.0)


def _softmask_differentiable(X, X_ref, power: float, split_zeros: bool) -> torch.Tensor:
    """:func:`_softmask`'s arithmetic out of place, for inputs that autograd follows (its in-place updates and
    ``out=`` it refuses); the same values."""
    Z = torch.maximum(X, X_ref)
    bad = Z < torch.finfo(X.dtype).tiny
    Z = Z.masked_fill(bad, 1.0)
    mask, ref = X / Z, X_ref / Z
    mask, ref = (mask * mask, ref * ref) if power == 2.0 else (mask**power, ref**power)
    # where both are (near) zero the sum is 0: its 0/0 would reach the gradient through the fill below
    return (mask / (ref + mask).masked_fill(bad, 1.0)).masked_fill(bad, 0.5 if split_zeros else 0.0)


def _hpss_masks(mag, *, kernels, margins, power, frame_lengths, chunk_size, want=(True, True)):
    """(mask_harm or None, mask_perc or None) for a real ``(B, F, T)`` magnitude."""
    win_harm, win_perc = kernels
    margin_harm, margin_perc = margins
    harm = _median_time(mag, win_harm, frame_lengths, chunk_size)
    perc = _median_freq(mag, win_perc, chunk_size)
    split_zeros = margin_harm == 1 and margin_perc == 1
    mask_h = mask_p = None
    if want[0]:
        mask_h = _softmask(harm, perc * margin_harm if margin_harm != 1 else perc, power, split_zeros)
        mask_h = _zero_padded_frames_(mask_h, frame_lengths)
    if want[1]:
        mask_p = _softmask(perc, harm * margin_perc if margin_perc != 1 else harm, power, split_zeros)
        mask_p = _zero_padded_frames_(mask_p, frame_lengths)
    return mask_h, mask_p


def _zero_padded_frames_(x: torch.Tensor, frame_lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """In-place :func:`~ser_gpu.functional.lengths.mask_frames` for a temporary this module owns."""
    if frame_lengths is None:
        return x
    return x.masked_fill_(padding_mask(frame_lengths, x.shape[-1]).unsqueeze(-2), 0.0)


def _magnitude_of(D: torch.Tensor) -> torch.Tensor:
    """``|D|`` of a complex tensor as ``hypot(re, im)``: ``D.abs()`` to within an ulp (identical in
    complex64) at about twice the speed on CPU. Followed by autograd, the same values with ``abs``'s
    gradient (``hypot``'s is 0/0 = NaN at a zero bin: digital silence)."""
    m = torch.hypot(D.real, D.imag)
    if torch.is_grad_enabled() and D.requires_grad:
        a = D.abs()
        return a + (m - a).detach()  # m and a are an ulp apart at most: the sum is m exactly
    return m


def hpss(
    S: torch.Tensor,
    *,
    kernel_size: KernelSize = 31,
    power: float = 2.0,
    mask: bool = False,
    margin: Margin = 1.0,
    frame_lengths: Optional[torch.Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Median-filtering harmonic/percussive separation; equals ``librosa.decompose.hpss``.

    Harmonic = running median along time, percussive = along frequency (scipy 'reflect' edges);
    soft masks via :func:`softmask` (``split_zeros`` when both margins are 1). A complex input is
    separated on its magnitude and the masks are applied to the complex values (librosa's
    ``(|S| * mask) * phase``).

    Args:
        S: ``[shape=(..., freq, frames)]`` complex STFT or real (magnitude/power) spectrogram.
        kernel_size: median widths, an int or ``(harmonic, percussive)``; default 31.
        power: soft-mask exponent > 0 (``inf`` = hard mask); default 2.
        mask: return the masks instead of the components.
        margin: >= 1, a number or ``(harmonic, percussive)``; > 1 leaves a residual.
        frame_lengths: ``[shape=(...)]`` valid frames per example of a padded batch; each example
            then equals librosa on its valid frames, and padded frames come out as 0.
        chunk_size: bound on the median filters' windowed temporary, in elements (see
            :func:`median_filter`).

    Returns:
        ``(harmonic, percussive)``, each ``[shape=S.shape]`` with ``S``'s dtype (real masks when
        ``mask=True``).
    """
    S = _valid_complex_or_real_spectrogram(S)
    kernels = _check_kernel_size(kernel_size)
    margins = _check_margin(margin)
    power = _check_power(power)
    chunk_size = _check_chunk_size(chunk_size)
    mag = _magnitude_of(S) if S.is_complex() else S
    frame_lengths = check_frame_lengths(frame_lengths, mag)
    shape = S.shape
    flat_fl = frame_lengths.reshape(-1) if frame_lengths is not None else None
    mask_h, mask_p = _hpss_masks(mag.reshape((-1,) + shape[-2:]), kernels=kernels, margins=margins,
                                 power=power, frame_lengths=flat_fl, chunk_size=chunk_size)
    mask_h, mask_p = mask_h.reshape(mag.shape), mask_p.reshape(mag.shape)
    if mask:
        return mask_h, mask_p
    return _apply_mask(S, mask_h), _apply_mask(S, mask_p)


def _apply_mask(S: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``S * mask`` without promoting the real mask to a complex tensor first."""
    if not S.is_complex():
        return S * mask
    return torch.view_as_complex(torch.view_as_real(S) * mask.unsqueeze(-1))


# ----------------------------------------------------------------------------------------------
# waveform HPSS


def _waveform_stft(y, lengths, *, n_fft, hop_length, win_length, window, center, pad_mode):
    """STFT of a (possibly padded) batch; returns ``(D, frame_lengths)``."""
    if lengths is None and (pad_mode == "constant" or not center):
        return _stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                     center=center, pad_mode="constant"), None
    flat = y.reshape(-1, y.shape[-1])
    n = (lengths.reshape(-1) if lengths is not None
         else torch.full((flat.shape[0],), flat.shape[-1], dtype=torch.int64, device=y.device))
    flat = flat.masked_fill(padding_mask(n, flat.shape[-1]), 0.0)
    if center and pad_mode != "constant":
        flat = pad_per_example(flat, n, n_fft // 2, pad_mode)
        D = _stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                  center=False, pad_mode="constant")
    else:
        D = _stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                  center=center, pad_mode="constant")
    D = D.reshape(y.shape[:-1] + D.shape[-2:])
    if lengths is None:
        return D, None
    return D, num_frames(lengths, hop_length=hop_length, n_fft=n_fft, center=center)  # of the unpadded example


def _hpss_waveform(y, want, *, kernel_size, power, margin, n_fft, hop_length, win_length, window,
                   center, pad_mode, lengths, chunk_size):
    y = valid_audio(y)
    kernels = _check_kernel_size(kernel_size)
    margins = _check_margin(margin)
    power = _check_power(power)
    chunk_size = _check_chunk_size(chunk_size)
    n_fft, hop_length, win_length = _frame_args(n_fft, hop_length, win_length, window)
    if pad_mode not in _HPSS_PAD_MODES:
        raise ParameterError(f"pad_mode must be one of {_HPSS_PAD_MODES}, got {pad_mode!r}")
    lengths = check_lengths(lengths, y)
    n_min = int(lengths.min()) if lengths is not None and lengths.numel() else y.shape[-1]
    if not center and n_min < n_fft:
        raise ParameterError(f"n_fft={n_fft} is too large for uncentered analysis of a signal of length {n_min}")
    if center and pad_mode == "reflect" and n_min < 2:
        raise ParameterError(f"pad_mode='reflect' needs at least 2 samples per example, got {n_min}")

    D, frame_lengths = _waveform_stft(y, lengths, n_fft=n_fft, hop_length=hop_length,
                                      win_length=win_length, window=window, center=center,
                                      pad_mode=pad_mode)
    flat_D = D.reshape((-1,) + D.shape[-2:])
    flat_fl = frame_lengths.reshape(-1) if frame_lengths is not None else None
    flat_len = lengths.reshape(-1) if lengths is not None else None
    outs = _hpss_from_stft(flat_D, _magnitude_of(flat_D), want, kernels=kernels, margins=margins,
                           power=power, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                           window=window, center=center, length=y.shape[-1], lengths=flat_len,
                           frame_lengths=flat_fl, chunk_size=chunk_size)
    return [yy.to(y.dtype).reshape(y.shape) for yy in outs], lengths


def _hpss_from_stft(D, mag, want, *, kernels, margins, power, n_fft, hop_length, win_length, window,
                    center, length, lengths, frame_lengths, chunk_size, overwrite=False):
    """The waveforms of :func:`hpss_waveform` (those ``want`` selects) from a batch's complex STFT
    ``D`` ``(B, F, T)`` and its magnitude ``mag`` (values at padded frames do not matter), with
    checked settings: lets a caller that already has the STFT skip a second one. With
    ``overwrite`` (one component wanted) the mask is applied to ``D`` in place."""
    masks = [m for m in _hpss_masks(mag, kernels=kernels, margins=margins, power=power,
                                    frame_lengths=frame_lengths, chunk_size=chunk_size, want=want)
             if m is not None]
    outs = []
    for m in masks:
        if overwrite and len(masks) == 1:
            torch.view_as_real(D).mul_(m.unsqueeze(-1))
            masked = D
        else:
            masked = _apply_mask(D, m)
        del m
        outs.append(_istft(masked, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                           center=center, length=length, lengths=lengths, frame_lengths=frame_lengths))
    return outs


def harmonic(
    y: torch.Tensor,
    *,
    kernel_size: KernelSize = 31,
    power: float = 2.0,
    margin: Margin = 1.0,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """Harmonic part of a waveform (STFT -> HPSS -> ISTFT); equals ``librosa.effects.harmonic``.

    Args:
        y: ``[shape=(..., time)]`` float32/float64 waveform, any device.
        kernel_size, power, margin: see :func:`hpss` (defaults 31, 2.0, 1.0).
        n_fft: FFT size, default 2048. hop_length: default ``win_length // 4``.
        win_length: default ``n_fft``. window: default ``'hann'``. center: default True.
        pad_mode: ``'constant'`` (zeros, librosa's default), ``'edge'`` or ``'reflect'``.
        lengths: ``[shape=(...)]`` valid samples per example of a zero-padded batch. Each example
            then equals librosa on its unpadded samples, and is zero beyond its length.
        chunk_size: bound on the median filters' windowed temporary, in elements.

    Returns:
        ``[shape=(..., time)]`` harmonic waveform with ``y``'s dtype; with ``lengths``, the pair
        ``(y_harmonic, lengths)``.
    """
    (y_h,), lengths = _hpss_waveform(
        y, (True, False), kernel_size=kernel_size, power=power, margin=margin, n_fft=n_fft,
        hop_length=hop_length, win_length=win_length, window=window, center=center,
        pad_mode=pad_mode, lengths=lengths, chunk_size=chunk_size)
    return y_h if lengths is None else (y_h, lengths)


def percussive(
    y: torch.Tensor,
    *,
    kernel_size: KernelSize = 31,
    power: float = 2.0,
    margin: Margin = 1.0,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """Percussive part of a waveform (STFT -> HPSS -> ISTFT); equals ``librosa.effects.percussive``.

    Args: as :func:`harmonic`.

    Returns:
        ``[shape=(..., time)]`` percussive waveform with ``y``'s dtype; with ``lengths``, the pair
        ``(y_percussive, lengths)``.
    """
    (y_p,), lengths = _hpss_waveform(
        y, (False, True), kernel_size=kernel_size, power=power, margin=margin, n_fft=n_fft,
        hop_length=hop_length, win_length=win_length, window=window, center=center,
        pad_mode=pad_mode, lengths=lengths, chunk_size=chunk_size)
    return y_p if lengths is None else (y_p, lengths)


def hpss_waveform(
    y: torch.Tensor,
    *,
    kernel_size: KernelSize = 31,
    power: float = 2.0,
    margin: Margin = 1.0,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
):
    """Harmonic and percussive waveforms from one STFT and one pair of medians; equals ``librosa.effects.hpss``.

    Args: as :func:`harmonic`.

    Returns:
        ``(y_harmonic, y_percussive)``, each ``[shape=(..., time)]`` with ``y``'s dtype; with
        ``lengths``, ``(y_harmonic, y_percussive, lengths)``.
    """
    (y_h, y_p), lengths = _hpss_waveform(
        y, (True, True), kernel_size=kernel_size, power=power, margin=margin, n_fft=n_fft,
        hop_length=hop_length, win_length=win_length, window=window, center=center,
        pad_mode=pad_mode, lengths=lengths, chunk_size=chunk_size)
    return (y_h, y_p) if lengths is None else (y_h, y_p, lengths)
