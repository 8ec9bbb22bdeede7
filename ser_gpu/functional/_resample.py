"""Integer-factor decimation that stands in for ``soxr`` (``res_type='soxr_hq'``) inside the CQT.

librosa's constant-Q transform halves the sampling rate between octaves (and may divide it by
``2**k`` up front) with ``librosa.resample(..., res_type='soxr_hq', scale=True)``.  Probing that
resampler with impulses shows that, for an integer factor ``M``, it is a linear-time-invariant,
linear-phase (zero-delay after compensation) low-pass FIR followed by keeping every ``M``-th
sample, with the signal treated as zero outside its ends:

* gain 1 (to 1e-5) up to ~0.916 of the output Nyquist frequency, 0.5 at 0.9568 of it, and
  below 1e-6 from ~0.999 of it on (-120 dB and lower in the stop band);
* ``round(n / M)`` output samples (half rounds up), which librosa pads with zeros to
  ``ceil(n / M)``.

Here the filter is our own Kaiser-windowed sinc with its -6 dB point at 0.9568 of the output
Nyquist frequency, and the window's half-width and shape parameter chosen (per factor) so that its
magnitude response stays within ~2.5e-3 of soxr's over the whole band (1e-7 in the pass band, the
difference lives in the 0.92-1.0 transition band).  The convolution is done with FFTs (the filter
is a few hundred taps long), in the input's dtype and on its device.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import numpy as np
import torch

from .lengths import padding_mask

__all__ = ["decimate", "lowpass_taps", "soxr_output_length"]

# -6 dB point of the anti-aliasing filter, as a fraction of the *output* Nyquist frequency.
_HALF_AMPLITUDE = 0.9568
# (half-width of the window in output samples, Kaiser beta) per decimation factor; soxr's
# transition gets relatively a little narrower as the factor grows.
_KAISER = {1: (96.0, 12.7), 2: (96.0, 12.7), 4: (95.0, 11.8)}
_KAISER_LARGE = (94.0, 11.2)


@functools.lru_cache(maxsize=None)
def _taps_numpy(factor: int) -> np.ndarray:
    ratio, beta = _KAISER.get(factor, _KAISER_LARGE)
    half = int(round(ratio * factor))
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = _HALF_AMPLITUDE / (2.0 * factor)  # cycles per input sample
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * n) * np.kaiser(2 * half + 1, beta)
    h /= h.sum()  # unit gain at DC
    h.setflags(write=False)
    return h


def lowpass_taps(factor: int, *, device=None, dtype=torch.float64) -> torch.Tensor:
    """The symmetric anti-aliasing FIR used to decimate by ``factor``, ``[shape=(2 * half + 1,)]``."""
    return torch.from_numpy(_taps_numpy(int(factor)).copy()).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _taps_rfft(factor: int, n_fft: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    h = lowpass_taps(factor, device=device, dtype=dtype)
    return torch.fft.rfft(h, n=n_fft)


def _good_size(n: int) -> int:
    """Smallest 2**a * 3**b * 5**c >= n (fast FFT length)."""
    best = 1 << max(0, math.ceil(math.log2(max(n, 1))))
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def soxr_output_length(n, factor: int):
    """Samples soxr returns when decimating ``n`` samples by ``factor``: ``round(n / factor)``, half up."""
    if isinstance(n, torch.Tensor):
        return torch.div(2 * n + factor, 2 * factor, rounding_mode="floor")
    return (2 * int(n) + factor) // (2 * factor)


def decimate(
    x: torch.Tensor, factor: int, *, lengths: Optional[torch.Tensor] = None,
    out_lengths: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Low-pass and keep every ``factor``-th sample, as librosa's ``resample(res_type='soxr_hq')``.

    Output sample ``m`` is centred on input sample ``factor * m`` (no delay).  The input is taken
    as zero outside ``[0, length)`` and the output is zero from soxr's output length
    ``round(length / factor)`` on, exactly as librosa's ``fix_length`` pads soxr's output.
    No ``1 / sqrt(ratio)`` scaling is applied here.

    Args:
        x: ``[shape=(..., time)]`` real signal; samples at or beyond ``lengths`` must be zero.
        factor: integer decimation factor >= 2.
        lengths: ``[shape=(...)]`` int64 valid samples per example (``time`` for all when None).
        out_lengths: ``soxr_output_length(lengths, factor)`` when the caller has it already.

    Returns:
        ``(y, out_lengths)``: ``y`` ``[shape=(..., ceil(time / factor))]`` and the per-example
        valid output samples ``[shape=(...)]`` (int64).
    """
    factor = int(factor)
    n = x.shape[-1]
    if lengths is None and out_lengths is None:
        lengths = torch.full(x.shape[:-1], n, dtype=torch.int64, device=x.device)
    n_out = -(-n // factor)
    h = _taps_numpy(factor)
    half = (len(h) - 1) // 2
    n_fft = _good_size(n + 2 * half)
    # the whole-signal FFT convolution spreads its rounding (~eps of the loudest sample) evenly, so
    # a float32 one buries quiet passages (soxr's short blocks keep errors local): run it in float64
    work = torch.float64 if x.dtype == torch.float32 else x.dtype
    X = torch.fft.rfft(x.to(work), n=n_fft)
    H = _taps_rfft(factor, n_fft, str(x.device), work)
    full = torch.fft.irfft(X * H, n=n_fft).to(x.dtype)
    y = full[..., half: half + factor * (n_out - 1) + 1: factor]
    if out_lengths is None:
        out_lengths = soxr_output_length(lengths, factor)
    return y.masked_fill(padding_mask(out_lengths, n_out), 0.0), out_lengths
