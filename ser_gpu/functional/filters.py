"""Filterbanks: mel, chroma and DCT, built exactly as librosa builds them.

librosa returns its mel and chroma filterbanks as float32 arrays (their default ``dtype``), so its
float64 features use float32-rounded weights. To equal librosa to 1e-6 in float64 we round the same
way, then cast to the caller's dtype. Banks are built once per parameter set (``lru_cache``) and
then cached per device/dtype; both caches are least-recently-used and bounded (see
``_DEVICE_CACHE``), so the ~100 estimated tuning values a long file meets keep a few MB.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import Optional

import numpy as np
import torch

from .._validation import _describe, check_bool, check_nonnegative, check_positive, check_positive_int
from ..errors import ParameterError
from .._transfer import DeviceCache, to_device

__all__ = ["mel_frequencies", "mel", "check_mel", "chroma", "dct", "check_dct_norm"]


def _hz_to_mel(frequencies: np.ndarray, htk: bool) -> np.ndarray:
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = frequencies >= min_log_hz
    mels = np.where(log_t, min_log_mel + np.log(np.maximum(frequencies, 1e-300) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_frequencies(n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies evenly spaced on the mel scale; equals ``librosa.mel_frequencies``."""
    mels = np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels)
    return _mel_to_hz(mels, htk)


@functools.lru_cache(maxsize=32)
def _mel_numpy(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm) -> np.ndarray:
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights[:] = np.maximum(0, np.minimum(lower, upper))  # rounded to float32, as librosa
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, np.newaxis]  # float64 product rounded to float32 again, as librosa
    elif norm is not None:  # librosa.util.normalize(weights, norm=norm, axis=-1)
        p = float(norm)
        mag = np.abs(weights.astype(np.float64))
        if p == math.inf:
            length = np.max(mag, axis=-1, keepdims=True)
        elif p == -math.inf:
            length = np.min(mag, axis=-1, keepdims=True)
        elif p == 0:
            length = np.sum(mag > 0, axis=-1, keepdims=True, dtype=np.float64)
        else:
            length = np.sum(mag**p, axis=-1, keepdims=True) ** (1.0 / p)
        length = np.where(length < np.finfo(np.float32).tiny, 1.0, length)
        weights[:] = weights / length
    weights.setflags(write=False)
    return weights


#: Banks kept on devices (least recently used first out): the 100 chroma banks of the estimated-tuning
#: grid (49 KB each at n_fft=2048 in float32) plus the mel and DCT banks of a few configurations.
_DEVICE_CACHE = DeviceCache(128)


def _to_device(key, build, device, dtype) -> torch.Tensor:
    """The bank ``build()`` (a numpy array) on ``device`` in ``dtype``, cached: built only on a miss."""
    return _DEVICE_CACHE.get(key, build, device, dtype)


def mel(
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: Optional[float] = None,
    htk: bool = False,
    norm="slaney",
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Mel filterbank ``[shape=(n_mels, 1 + n_fft // 2)]``; equals ``librosa.filters.mel``.

    Args:
        sr, n_fft, n_mels, fmin, fmax (default ``sr / 2``), htk, norm (``'slaney'``, a p-norm or
        ``None``): as librosa. device, dtype: where the (cached) tensor is put.
    """
    n_fft = check_positive_int(n_fft, "n_fft")
    sr, n_mels, fmin, fmax, htk = check_mel(sr=sr, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    if _has_empty_filter(sr, n_fft, n_mels, fmin, fmax, htk, norm):  # warned at every call, as librosa
        warnings.warn(f"Empty filters detected in mel frequency basis (n_mels={n_mels}, n_fft={n_fft}, "
                      f"sr={sr:g}, fmin={fmin:g}, fmax={fmax:g}): some channels will produce empty responses. "
                      f"Try increasing your sampling rate (and fmax) or reducing n_mels (librosa.filters.mel "
                      f"warns the same)", UserWarning, stacklevel=2)
    key = ("mel", sr, n_fft, n_mels, fmin, fmax, htk, norm)
    return _to_device(key, lambda: _mel_numpy(sr, n_fft, n_mels, fmin, fmax, htk, norm), device, dtype)


def check_mel(*, sr, n_mels, fmin, fmax, htk, norm, norm_name: str = "norm"):
    """The mel filterbank's settings checked (``norm`` named ``norm_name`` in errors: ``mfcc`` calls it
    ``mel_norm``), before any work: ``(sr, n_mels, fmin, fmax, htk)`` with ``fmax`` resolved."""
    sr = check_positive(sr, "sr")
    n_mels = check_positive_int(n_mels, "n_mels")
    fmin = check_nonnegative(fmin, "fmin")
    fmax = sr / 2.0 if fmax is None else check_positive(fmax, "fmax")
    if fmax <= fmin:
        raise ParameterError(f"fmax must be greater than fmin={fmin}, got {fmax}")
    if not (norm is None or (isinstance(norm, str) and norm == "slaney") or (
            isinstance(norm, numbers.Real) and not isinstance(norm, bool) and (norm >= 0 or norm == -math.inf))):
        raise ParameterError(f"{norm_name} must be 'slaney', a number >= 0, +-inf or None (as "
                             f"librosa.util.normalize), got {_describe(norm)}")
    return sr, n_mels, fmin, fmax, check_bool(htk, "htk")


@functools.lru_cache(maxsize=32)
def _has_empty_filter(sr, n_fft, n_mels, fmin, fmax, htk, norm) -> bool:
    """Whether the mel bank has a channel of zeros (librosa.filters.mel's test for its warning)."""
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    weights = _mel_numpy(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    return not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0))


def chroma(
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    n_chroma: int = 12,
    tuning=0.0,
    ctroct: float = 5.0,
    octwidth: Optional[float] = 2.0,
    norm: float = 2,
    base_c: bool = True,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Chroma filterbank; equals ``librosa.filters.chroma`` (float32-rounded like librosa's).

    ``tuning`` may be a number or a tensor of per-example tunings ``[shape=(...)]`` (fractions of
    a chroma bin), giving one bank per example without a Python loop.

    Returns:
        ``[shape=(..., n_chroma, 1 + n_fft // 2)]`` on ``device`` with ``dtype``.
    """
    sr = check_positive(sr, "sr")
    n_fft = check_positive_int(n_fft, "n_fft")
    n_chroma = check_positive_int(n_chroma, "n_chroma")
    if isinstance(tuning, torch.Tensor):
        device = tuning.device if device is None else device
        # one read of the tunings (checked on the host copy), the index moved back without a wait
        host = None if tuning.is_complex() else tuning.detach().to("cpu", torch.float64)
        if host is None or not torch.isfinite(host).all():
            raise ParameterError(f"tuning must be finite real values, got {tuning}")
        if tuning.ndim > 0 and tuning.numel() > 0:
            # estimated tunings sit on a 0.01 grid, so a batch holds few distinct values (and the
            # same ones again and again over an epoch): one cached bank per distinct value
            values, inverse = torch.unique(host, return_inverse=True)
            banks = torch.stack([
                chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=float(v), ctroct=ctroct, octwidth=octwidth,
                       norm=norm, base_c=base_c, device=device, dtype=dtype)
                for v in values.tolist()])
            return banks[to_device(inverse, banks.device)]
        tuning = tuning.to(device=device, dtype=torch.float64)  # one value: differentiable, as before
    else:
        if isinstance(tuning, bool) or not isinstance(tuning, numbers.Real) or not math.isfinite(tuning):
            raise ParameterError(f"tuning must be a finite number or a tensor, got {_describe(tuning)}")
        tuning = float(tuning)
        key = ("chroma", sr, n_fft, n_chroma, tuning, ctroct, octwidth, norm, bool(base_c))
        return _to_device(key, lambda: _chroma_numpy(*key[1:]), device, dtype)
    return _chroma_bank(sr, n_fft, n_chroma, tuning, ctroct, octwidth, norm, base_c).to(device=device, dtype=dtype)


# the device cache keeps one bank per tuning value (the whole 0.01 grid); this one only saves a rebuild
# when a recent bank is wanted on another device or in another dtype
@functools.lru_cache(maxsize=16)
def _chroma_numpy(sr, n_fft, n_chroma, tuning: float, ctroct, octwidth, norm, base_c) -> np.ndarray:
    """One float32-rounded chroma bank for a number ``tuning``, as a read-only numpy array."""
    bank = _chroma_bank(sr, n_fft, n_chroma, torch.tensor(tuning, dtype=torch.float64), ctroct, octwidth,
                        norm, base_c).numpy()
    bank.setflags(write=False)
    return bank


def _chroma_bank(sr, n_fft, n_chroma, tuning: torch.Tensor, ctroct, octwidth, norm, base_c) -> torch.Tensor:
    """librosa.filters.chroma for float64 ``tuning`` ``(...)``: float32 ``(..., n_chroma, 1 + n_fft // 2)``."""
    f64 = dict(dtype=torch.float64, device=tuning.device)
    frequencies = torch.from_numpy(np.linspace(0, sr, n_fft, endpoint=False)[1:]).to(**f64)
    a440 = 440.0 * 2.0 ** (tuning.unsqueeze(-1) / n_chroma)
    frqbins = n_chroma * torch.log2(frequencies / (a440 / 16))  # (..., n_fft - 1)
    frqbins = torch.cat([frqbins[..., :1] - 1.5 * n_chroma, frqbins], dim=-1)
    binwidthbins = torch.cat(
        [torch.clamp(frqbins[..., 1:] - frqbins[..., :-1], min=1.0), torch.ones_like(frqbins[..., :1])], dim=-1
    )
    D = frqbins.unsqueeze(-2) - torch.arange(n_chroma, **f64).unsqueeze(-1)  # (..., n_chroma, n_fft)
    n_chroma2 = float(np.round(float(n_chroma) / 2))
    D = torch.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = torch.exp(-0.5 * (2 * D / binwidthbins.unsqueeze(-2)) ** 2)
    if norm is not None:
        if norm == np.inf:
            length = wts.abs().amax(dim=-2, keepdim=True)
        else:
            length = (wts.abs() ** norm).sum(dim=-2, keepdim=True) ** (1.0 / norm)
        length = torch.where(length < torch.finfo(torch.float64).tiny, torch.ones_like(length), length)
        wts = wts / length
    if octwidth is not None:
        wts = wts * torch.exp(-0.5 * ((frqbins / n_chroma - ctroct) / octwidth) ** 2).unsqueeze(-2)
    if base_c:
        wts = torch.roll(wts, -3 * (n_chroma // 12), dims=-2)
    wts = wts[..., : 1 + n_fft // 2]
    return wts.to(torch.float32)  # librosa's float32 rounding


@functools.lru_cache(maxsize=32)
def _dct_numpy(n_out: int, n_in: int, norm) -> np.ndarray:
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in))
    if norm == "ortho":
        basis = basis * np.sqrt(2.0 / n_in)
        basis[0] *= 1.0 / np.sqrt(2.0)
    elif norm is None:
        basis = basis * 2.0
    basis.setflags(write=False)
    return basis


def check_dct_norm(norm) -> None:
    """The DCT's ``norm`` (``'ortho'`` or None), checked before any work (``mfcc`` checks it first too)."""
    if norm not in ("ortho", None):
        raise ParameterError(f"norm must be 'ortho' or None (the DCT's), got {norm!r}")


def dct(n_out: int, n_in: int, *, norm: Optional[str] = "ortho", device=None, dtype=torch.float32) -> torch.Tensor:
    """DCT-II matrix ``[shape=(n_out, n_in)]``: ``M @ x`` equals ``scipy.fft.dct(x, type=2, norm=norm)[:n_out]``."""
    n_out = check_positive_int(n_out, "n_out")
    n_in = check_positive_int(n_in, "n_in")
    check_dct_norm(norm)
    return _to_device(("dct", n_out, n_in, norm), lambda: _dct_numpy(n_out, n_in, norm), device, dtype)
