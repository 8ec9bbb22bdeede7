"""Waveform effects, batched with per-example lengths and parameters; each follows its librosa namesake."""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

from .._validation import (
    _describe,
    check_bool,
    check_frame_lengths,
    check_lengths,
    check_positive,
    check_positive_int,
    valid_audio,
)
from ..errors import ParameterError
from ._resample import _good_size
from .augment import _batch_lengths, _per_example
from .features import _rms_waveform
from .lengths import num_frames, padding_mask, valid_mask, zero_padding
from .spectrum import _check_stft_args, _is_max, _istft, _stft

__all__ = ["trim", "phase_vocoder", "time_stretch", "resample", "pitch_shift"]

# librosa.effects.trim calls amplitude_to_db with its default amin=1e-5, i.e. a power floor of amin**2
_AMIN_POWER = 1e-5**2


def _check_top_db(top_db) -> float:
    if isinstance(top_db, bool) or not isinstance(top_db, numbers.Real) or not np.isfinite(float(top_db)):
        raise ParameterError(f"top_db must be a non-negative finite number, got {_describe(top_db)}")
    if top_db < 0:
        raise ParameterError(f"top_db must be a non-negative number (dB below ref), got {top_db!r}")
    return top_db


def _ref_db(ref):
    """``10 * log10(max(amin, |ref| ** 2))`` with numpy's scalar types, as librosa's amplitude_to_db computes it."""
    if isinstance(ref, bool) or not isinstance(ref, numbers.Real) or not np.isfinite(float(ref)):
        raise ParameterError(f"ref must be a finite number or max (builtin max, np.max, torch.amax, 'max'), "
                             f"got {_describe(ref)}")
    ref_power = np.abs(np.abs(ref) ** 2)
    return np.asarray(10.0 * np.log10(np.maximum(_AMIN_POWER, ref_power)))


def trim(
    y: torch.Tensor,
    *,
    top_db: float = 60,
    ref: Union[float, Callable, str] = max,
    frame_length: int = 2048,
    hop_length: int = 512,
    lengths: Optional[torch.Tensor] = None,
):
    """Trim leading and trailing silence from each example; equals ``librosa.effects.trim``.

    A frame is silent when its RMS energy is ``top_db`` dB or more below ``ref``. Each example keeps
    the samples from its first non-silent frame ``f0`` to the end of its last non-silent frame
    ``f1``: ``[f0 * hop_length, min(length, (f1 + 1) * hop_length))``; an example with no non-silent
    frame gets the empty interval ``[0, 0)``. With the default ``ref=max`` an all-zero example counts
    as non-silent everywhere and is kept whole, as in librosa.

    As librosa does, the decision is computed in float32 whatever the input dtype (librosa's ``rms``
    squares in float32), so float32 and float64 inputs give the same intervals.

    Every leading axis is a batch axis: each ``(time,)`` row is trimmed on its own (librosa instead
    trims a multi-channel signal as one, aggregating channels with ``np.max``).

    Args:
        y (Tensor): ``[shape=(..., time)]`` waveform, float32 or float64, any device.
        top_db (float, default 60): threshold in dB below ``ref`` (>= 0).
        ref (float | callable | str, default max): reference amplitude: a number, or ``max``
            (builtin ``max``, ``np.max``, ``torch.amax``, ``'max'``) for the largest frame RMS of each
            example, taken over its valid frames only.
        frame_length (int, default 2048): samples per RMS frame.
        hop_length (int, default 512): samples between frames.
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example of a zero-padded batch;
            samples beyond each length are ignored, so each example is trimmed exactly as alone.

    Returns:
        ``(y_trimmed, intervals)``, plus ``new_lengths`` as a third element when ``lengths`` is given:

        - ``y_trimmed``: ``[shape=(..., M)]``, same dtype/device as ``y``; example ``i`` holds
          ``y[i, start_i:end_i]`` moved to start at 0 and zero-padded to ``M = max(end - start)``
          (``M`` may be 0). For a single 1-d signal it is exactly ``y[start:end]``.
        - ``intervals``: int64 ``[shape=(..., 2)]``, ``[start, end)`` in samples of ``y``.
        - ``new_lengths``: int64 ``[shape=(...)]``, ``end - start`` per example.
    """
    y = valid_audio(y)
    top_db = _check_top_db(top_db)
    frame_length = check_positive_int(frame_length, "frame_length")
    hop_length = check_positive_int(hop_length, "hop_length")
    use_max = _is_max(ref)
    if not use_max and callable(ref):
        raise ParameterError(f"ref must be a number or max (builtin max, np.max, torch.amax, 'max'), "
                             f"got the callable {_describe(ref)}")
    ref_db = None if use_max else _ref_db(ref)
    given_lengths = lengths is not None
    lengths = check_lengths(lengths, y)

    batch_shape = y.shape[:-1]
    T = y.shape[-1]
    flat = y.reshape(-1, T)
    trimmed, intervals, new_lengths = _trim(flat, lengths.reshape(-1) if given_lengths else None, top_db=top_db,
                                            ref_db=ref_db, frame_length=frame_length,
                                            hop_length=hop_length)
    trimmed = trimmed.reshape(batch_shape + trimmed.shape[-1:])
    intervals = intervals.reshape(batch_shape + (2,))
    if given_lengths:
        return trimmed, intervals, new_lengths.reshape(batch_shape)
    return trimmed, intervals


def _trim(flat: torch.Tensor, lens: Optional[torch.Tensor], *, top_db: float, ref_db, frame_length: int,
          hop_length: int):
    """:func:`trim` of a checked ``(B, T)`` batch (``lens``: ``(B,)`` valid samples or None;
    ``ref_db``: None for ``ref=max``). Returns ``(trimmed (B, M), intervals (B, 2), new_lengths (B,))``.
    One host sync: the output width ``M = max(new_lengths)``."""
    T = flat.shape[-1]
    given_lengths = lens is not None
    use_max = ref_db is None
    if not given_lengths:
        lens = torch.full((flat.shape[0],), T, dtype=torch.int64, device=flat.device)

    # librosa squares float32 samples; summing the (exact) float64 squares then rounding once gives
    # that float32 mean to within an ulp, whatever order numpy summed in
    x = zero_padding(flat.to(torch.float32), lens if given_lengths else None).to(torch.float64)
    power64 = _rms_waveform(x, frame_length=frame_length, hop_length=hop_length, center=True, pad_mode="constant",
                            lengths=None)[0][:, 0, :] ** 2
    frame_rms = torch.sqrt(power64.to(torch.float32))
    power = frame_rms * frame_rms

    n_frames = power.shape[-1]
    frame_idx = torch.arange(n_frames, device=flat.device)
    # librosa frames the centred signal: 1 + (length + 2 * (frame_length // 2) - frame_length) // hop
    valid = valid_mask(num_frames(lens, hop_length=hop_length, n_fft=frame_length, center=True), n_frames)

    log_spec = 10.0 * torch.log10(torch.clamp(power, min=_AMIN_POWER))
    if use_max:
        ref_power = power.masked_fill(~valid, 0.0).amax(dim=-1, keepdim=True)
        db = log_spec - 10.0 * torch.log10(torch.clamp(ref_power, min=_AMIN_POWER))
    else:
        # a float64 reference is subtracted in float64 and rounded back, as numpy's in-place `-=` does
        work = torch.float64 if ref_db.dtype == np.float64 else torch.float32
        db = (log_spec.to(work) - torch.tensor(float(ref_db), dtype=work, device=flat.device)).to(torch.float32)
    non_silent = (db > -top_db) & valid

    any_frame = non_silent.any(dim=-1)
    first = torch.where(non_silent, frame_idx, n_frames).amin(dim=-1)
    last = torch.where(non_silent, frame_idx, -1).amax(dim=-1)
    start = torch.where(any_frame, first * hop_length, 0)
    end = torch.where(any_frame, torch.minimum((last + 1) * hop_length, lens), 0)
    new_lengths = end - start

    M = int(new_lengths.max()) if new_lengths.numel() else 0
    pos = torch.arange(M, device=flat.device)
    gather_idx = (start.unsqueeze(-1) + pos).clamp(max=T - 1)
    trimmed = torch.gather(flat, -1, gather_idx).masked_fill(pos >= new_lengths.unsqueeze(-1), 0.0)
    return trimmed, torch.stack([start, end], dim=-1), new_lengths


# ----------------------------------------------------------------------------------------------
# phase vocoder and time stretch

#: Examples are stretched this many STFT elements (examples x bins x frames) at a time, so the phase
#: vocoder's temporaries (magnitudes, phases, gathered frames: about ten of them) stay bounded
#: whatever the batch size: 2**22 elements (16 MiB each in float32, cache-friendly) on CPU, 2**23
#: on a GPU (a few hundred MiB in all; fewer, larger kernels: 256 x 3 s clips take 5 chunks, not 10).
_STRETCH_CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**23}


def _phase_vocoder(X: torch.Tensor, rate: torch.Tensor, frame_lengths: torch.Tensor, *, hop_length: int,
                   n_fft: int, n_out_max: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``X``: ``(B, K, N)`` complex; ``rate``: ``(B,)`` float64; ``frame_lengths``: ``(B,)`` int64;
    ``n_out_max``: the largest output frame count, when the caller knows it (else it is read back).

    librosa's loop, vectorised over examples and output frames: output frame ``t`` of example ``b``
    reads input frames ``floor(t * rate[b])`` and the next one (zero at and beyond the example's own
    last frame, as librosa's two zero columns), interpolates their magnitudes linearly and takes the
    phase accumulated over the previous output frames: an exclusive cumulative sum over time of
    the expected advance plus the wrapped measured deviation.
    """
    B, K, N = X.shape
    real = X.real.dtype
    dev = X.device
    # len(np.arange(0, n, rate)) == ceil(n / rate), computed in float64 as numpy does
    n_out = torch.ceil(frame_lengths.to(torch.float64) / rate).to(torch.int64)
    if n_out_max is None:
        n_out_max = int(n_out.max()) if B else 1
    T_out = max(n_out_max, 1)
    steps = torch.arange(T_out, device=dev, dtype=torch.float64) * rate.unsqueeze(-1)  # np.arange: i * step
    floor = torch.floor(steps)
    alpha = (steps - floor).to(real).unsqueeze(1)  # (B, 1, T_out)
    # frames at/after n_out are dropped below; clamping keeps their reads inside the padded columns
    idx = floor.to(torch.int64).clamp(max=N).unsqueeze(1).expand(B, K, T_out)

    keep = valid_mask(frame_lengths, N).unsqueeze(1)  # (B, 1, N)
    mag = torch.nn.functional.pad(X.abs().masked_fill(~keep, 0.0), (0, 2))  # librosa's 2 zero columns
    ang = torch.nn.functional.pad(X.angle().masked_fill(~keep, 0.0), (0, 2))  # angle(0) == 0
    two_pi = 2.0 * math.pi
    # expected advance per hop, reduced mod 2*pi in float64: the same phasors as librosa's unreduced
    # value, without its float32 rounding of phases that grow to thousands of radians
    phi = torch.remainder(hop_length * two_pi * torch.arange(K, device=dev, dtype=torch.float64) / n_fft,
                          two_pi).to(real).unsqueeze(-1)  # (K, 1)
    dphi = ang[..., 1:] - ang[..., :-1] - phi  # (B, K, N + 1)
    dphi = dphi - two_pi * torch.round(dphi / two_pi)

    m0 = mag.gather(-1, idx)
    m1 = mag[..., 1:].gather(-1, idx)  # the next frame, without an (idx + 1) int64 copy
    magnitude = (1.0 - alpha) * m0 + alpha * m1
    del m0, m1
    inc = phi + dphi.gather(-1, idx)
    phase = torch.empty_like(inc)
    phase[..., :1] = ang[..., :1]
    if T_out > 1:
        phase[..., 1:] = ang[..., :1] + torch.cumsum(inc[..., :-1], dim=-1)
    out_keep = valid_mask(n_out, T_out).unsqueeze(1)
    magnitude = magnitude.masked_fill(~out_keep, 0.0)
    return torch.polar(magnitude, phase), n_out


def _check_complex_stft(X, name):
    if not isinstance(X, torch.Tensor) or not X.is_complex():
        raise ParameterError(f"{name} must be a complex torch.Tensor, got {_describe(X)}")
    if X.ndim < 2 or X.shape[-1] == 0 or X.shape[-2] == 0:
        raise ParameterError(f"{name} must have shape (..., freq, frames) and be non-empty, got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):  # as istft: NaN would spread through the accumulated phase
        raise ParameterError(f"{name} contains non-finite values (NaN or inf)")


def phase_vocoder(
    D: torch.Tensor,
    *,
    rate,
    hop_length: Optional[int] = None,
    n_fft: Optional[int] = None,
    frame_lengths: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stretch an STFT in time by a per-example rate; equals ``librosa.phase_vocoder``.

    Example ``b`` equals ``librosa.phase_vocoder(D[b, ..., :frame_lengths[b]], rate=rate[b])`` in its
    first ``ceil(frame_lengths[b] / rate[b])`` frames and is zero beyond. The phase is accumulated
    with the expected advance reduced modulo 2*pi (the same phasors; in float32 it avoids librosa's
    rounding of phases that grow to thousands of radians).

    Args:
        D (Tensor): ``[shape=(..., 1 + n_fft // 2, frames)]`` complex64/complex128 STFT.
        rate (float | Tensor): speed-up factor (> 1 faster, < 1 slower), a number or one per example
            ``[shape=(...)]``; > 0.
        hop_length (int | None): hop of ``D``; default ``n_fft // 4`` (librosa's default).
        n_fft (int | None): FFT size of ``D``; default ``2 * (freq - 1)``.
        frame_lengths (Tensor | None): ``[shape=(...)]`` valid frames per example (default: all).

    Returns:
        ``(D_stretched, out_frame_lengths)``: ``[shape=(..., freq, max(out_frame_lengths))]``
        complex tensor and int64 ``[shape=(...)]`` frame counts ``ceil(frame_lengths / rate)``.
    """
    _check_complex_stft(D, "D")
    K = D.shape[-2]
    n_fft = 2 * (K - 1) if n_fft is None else check_positive_int(n_fft, "n_fft")
    if n_fft < 1 or K != 1 + n_fft // 2:
        raise ParameterError(f"n_fft={n_fft} does not match the {K} frequency bins of D (need 1 + n_fft // 2)")
    hop_length = n_fft // 4 if hop_length is None else check_positive_int(hop_length, "hop_length")
    if hop_length < 1:
        raise ParameterError(f"hop_length defaults to n_fft // 4, which is 0 for n_fft={n_fft}")
    batch_shape = D.shape[:-2]
    rate = _per_example(rate, "rate", batch_shape, D.device, positive=True)
    fake = D.real[..., 0, :].unsqueeze(-2)
    frame_lengths = check_frame_lengths(frame_lengths, fake)
    X = D.reshape((-1,) + D.shape[-2:])
    if frame_lengths is None:
        fl = torch.full((X.shape[0],), X.shape[-1], dtype=torch.int64, device=D.device)
    else:
        fl = frame_lengths.reshape(-1)
    out, n_out = _phase_vocoder(X, rate, fl, hop_length=hop_length, n_fft=n_fft)
    return out.reshape(batch_shape + out.shape[-2:]), n_out.reshape(batch_shape)


def _time_stretch(flat: torch.Tensor, rate: torch.Tensor, lengths: torch.Tensor, *, n_fft: int, hop_length: int,
                  win_length: int, window, precise: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """``flat``: ``(B, T)`` zero beyond ``lengths``; ``rate`` ``(B,)`` float64. Returns ``(y, new_lengths)``.
    ``precise``: a float32 ``flat``'s STFT in float64, rounded to complex64 (as librosa's); the
    augmentation's default is the float32 FFT."""
    B, T = flat.shape
    new_lengths = torch.round(lengths.to(torch.float64) / rate).to(torch.int64)  # int(round(len / rate))
    frames = num_frames(lengths, hop_length=hop_length, n_fft=n_fft, center=True)
    # one host read for every size below: the output length and each example's output frames
    # (_phase_vocoder's ceil(frames / rate)), so no chunk reads its own back
    frames_out = torch.ceil(frames.to(torch.float64) / rate).to(torch.int64)
    sizes = torch.cat([new_lengths.max().reshape(1), frames_out]).tolist() if B else [1]
    T_out, n_out_each = max(sizes[0], 1), sizes[1:]
    out = flat.new_zeros((B, T_out))
    K = 1 + n_fft // 2
    n_in = 1 + T // hop_length
    n_out_max = max(n_out_each, default=1)
    budget = _STRETCH_CHUNK_ELEMENTS.get(flat.device.type, _STRETCH_CHUNK_ELEMENTS["cuda"])
    per_chunk = max(1, budget // (K * max(n_in, n_out_max)))
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        D = _stft(flat[b0:b1], n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                  center=True, pad_mode="constant", precise=precise)
        S, n_out = _phase_vocoder(D, rate[b0:b1], frames[b0:b1], hop_length=hop_length, n_fft=n_fft,
                                  n_out_max=max(n_out_each[b0:b1]))
        del D
        out[b0:b1] = _istft(S, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                            center=True, length=T_out, lengths=new_lengths[b0:b1], frame_lengths=n_out)
    return out, new_lengths


def _flat_input(y, lengths):
    y = valid_audio(y)
    lengths = check_lengths(lengths, y)
    flat = y.reshape(-1, y.shape[-1])
    L = _batch_lengths(y, lengths)
    if lengths is not None:
        flat = zero_padding(flat, L)
    return y, flat, L


def time_stretch(
    y: torch.Tensor,
    *,
    rate,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    lengths: Optional[torch.Tensor] = None,
    fast_stft: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Change the speed of each example by its own rate, keeping the pitch; equals ``librosa.effects.time_stretch``.

    librosa's recipe, batched: ``stft`` (centred, zero padding) -> :func:`phase_vocoder` with
    ``rate[b]`` -> ``istft`` to ``round(length / rate[b])`` samples. Each example equals librosa on
    that example alone, except that the phase is accumulated modulo 2*pi (see :func:`phase_vocoder`):
    identical in float64 to rounding; in float32 as close to the float64 result as librosa's own
    float32 run (the tests' log-magnitude correlations: 0.988 on a chirp, 1.0 on speech).

    Examples are processed in chunks so that the phase vocoder's temporaries stay below a few
    hundred MiB whatever the batch size.

    Args:
        y (Tensor): ``[shape=(..., time)]`` float32/float64 waveform batch, any device.
        rate (float | Tensor): > 1 speeds up (shorter), < 1 slows down; a number for all or a
            ``[shape=(...)]`` tensor, one per example; > 0.
        n_fft, hop_length, win_length, window: STFT settings as ``librosa.stft`` (defaults 2048,
            ``win_length // 4``, ``n_fft``, ``'hann'``).
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).
        fast_stft (bool, default False): a float32 ``y``'s STFT in float32 instead of librosa's
            float64-then-rounded one (as :func:`~ser_gpu.functional.stft`): faster on a GPU, less
            close to librosa's float32 result on tonal signals (the training's augmentation runs so).

    Returns:
        ``(y_stretched, new_lengths)``: ``[shape=(..., max(new_lengths))]`` waveforms, zero beyond
        each example's ``new_lengths = round(lengths / rate)`` (int64 ``[shape=(...)]``; it may be 0
        for a clip of a few samples sped up a lot).
    """
    y, flat, L = _flat_input(y, lengths)
    n_fft, hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, window, "constant")
    rate = _per_example(rate, "rate", y.shape[:-1], y.device, positive=True)
    precise = not check_bool(fast_stft, "fast_stft")
    out, new_lengths = _time_stretch(flat, rate, L, n_fft=n_fft, hop_length=hop_length,
                                     win_length=win_length, window=window, precise=precise)
    return out.reshape(y.shape[:-1] + out.shape[-1:]), new_lengths.reshape(y.shape[:-1])


# ----------------------------------------------------------------------------------------------
# band-limited resampling with per-example ratios

# soxr's 'soxr_hq' low-pass, measured with sinusoids at non-integer ratios 0.89-1.12 and fitted:
# gain 0.5 * erfc((f - 0.9568) / 0.0163) * taper(f), f a fraction of the lower of the two Nyquist
# frequencies, taper a smooth step from 1 at 0.975 to 0 at 1 (soxr is steeper than erfc there, and
# a response reaching 0 smoothly keeps the filter's impulse response short). Within 4e-3 of soxr
# everywhere: 0.999 up to 0.91, 0.56 at 0.955, 5e-3 at 0.985, 0 from 1 on.
_SOXR_HALF_GAIN = 0.9568
_SOXR_WIDTH = 0.0163
_SOXR_TAPER = 0.975
#: The band-limited signal is rebuilt on a grid this many times finer than the input, where a
#: cubic B-spline (4 taps per output sample) evaluates it at any position.
_OVERSAMPLE = 4
#: Zeros appended before the circular (FFT) filtering: the filter's impulse response is below
#: 1e-11 of its peak 2048 samples out, so what wraps around is negligible even in float64.
_RESAMPLE_PAD = 2048
#: Examples are resampled this many oversampled samples at a time (2**23 = 32 MiB in float32): with
#: the spectra, positions and taps, a chunk of ~30 examples of 3 s peaks at a few hundred MiB.
_RESAMPLE_CHUNK_ELEMENTS = 2**23


def _smooth_taper(x: torch.Tensor) -> torch.Tensor:
    """1 for x <= 0, 0 for x >= 1, in between ``psi(1 - x) / (psi(x) + psi(1 - x))`` with
    ``psi(t) = exp(-1 / t)``: every derivative is continuous, so the filter's impulse response decays
    faster than any power of time (a cos**2 taper leaves a 1/t**3 tail, 1e-8 at 1024 samples)."""
    x = x.clamp(0.0, 1.0)
    a = torch.where(x > 0, torch.exp(-1.0 / x.clamp(min=1e-300)), 0.0)
    b = torch.where(x < 1, torch.exp(-1.0 / (1.0 - x).clamp(min=1e-300)), 0.0)
    return b / (a + b)


def _resample_filter(ratio: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``(B, n_fft // 2 + 1)`` float64 gains applied to the input's rfft before oversampling.

    soxr's low-pass at the lower Nyquist frequency (``min(1, ratio)`` of the input's), divided by
    the cubic B-spline's frequency response ``sinc(f / U) ** 4`` on the oversampled grid, so the
    spline reproduces the band-limited signal (its images stay below -67 dB at the band edge,
    -94 dB at half band). A real Nyquist bin is halved: on the finer grid it becomes two bins.
    """
    dev = ratio.device
    f = torch.arange(n_fft // 2 + 1, device=dev, dtype=torch.float64) / n_fft  # cycles per input sample
    lower = 0.5 * torch.clamp(ratio, max=1.0).unsqueeze(-1)  # lower Nyquist, cycles per input sample
    rel = f / lower
    gain = 0.5 * torch.special.erfc((rel - _SOXR_HALF_GAIN) / _SOXR_WIDTH) * _smooth_taper(
        (rel - _SOXR_TAPER) / (1.0 - _SOXR_TAPER))
    gain = gain / torch.sinc(f / _OVERSAMPLE) ** 4
    if n_fft % 2 == 0:
        gain[..., -1] *= 0.5
    return gain


def _resample(x: torch.Tensor, ratio: torch.Tensor, in_lengths: torch.Tensor, out_lengths: torch.Tensor,
              T_out: int) -> torch.Tensor:
    """Band-limited interpolation of ``x`` ``(B, T)`` (zero beyond ``in_lengths``) at ``m / ratio[b]``.

    Each example is low-passed with soxr's response (per-example cut-off, in the frequency domain),
    rebuilt on a grid ``_OVERSAMPLE`` times finer by zero-padding its spectrum, and read at the
    fractional positions with a cubic B-spline whose response the filter has pre-compensated. This
    costs two FFTs and 4 taps per output sample whatever the ratio, instead of the ~70 taps of a
    direct windowed-sinc kernel of similar quality. Examples with ``ratio == 1`` are copied exactly.
    """
    B, T = x.shape
    dev, real = x.device, x.dtype
    out = x.new_zeros((B, T_out))
    n_fft = _good_size(T + _RESAMPLE_PAD)
    n_up = _OVERSAMPLE * n_fft
    per_chunk = max(1, _RESAMPLE_CHUNK_ELEMENTS // n_up)
    m = torch.arange(T_out, device=dev, dtype=torch.float64)
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        gain = _resample_filter(ratio[b0:b1], n_fft).to(real)
        spec = torch.fft.rfft(x[b0:b1], n=n_fft) * gain
        fine = torch.fft.irfft(spec, n=n_up) * _OVERSAMPLE  # (b, n_up): zero-padded spectrum, same amplitude
        del spec
        q = m * (_OVERSAMPLE / ratio[b0:b1]).unsqueeze(-1)  # positions on the fine grid, float64
        base = torch.floor(q)
        u = (q - base).to(real)
        # taps floor(q) - 1 .. floor(q) + 2, read as rows of a 4-wide unfold (a view) of the fine
        # signal extended circularly by one sample before and two after: one int64 index per output.
        # Circular is right: the signal is zero-padded by _RESAMPLE_PAD on the fine grid too.
        ext = torch.cat([fine[:, -1:], fine, fine[:, :2]], dim=1)
        del fine
        rows = torch.arange(b1 - b0, device=dev).unsqueeze(-1)
        v = ext.unfold(1, 4, 1)[rows, base.to(torch.int64).clamp(0, n_up - 1)]  # (b, T_out, 4)
        del ext
        u2 = u * u
        u3 = u2 * u
        w0 = (1.0 - u) ** 3
        w1 = 3.0 * u3 - 6.0 * u2 + 4.0
        w2 = -3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0
        out[b0:b1] = (w0 * v[..., 0] + w1 * v[..., 1] + w2 * v[..., 2] + u3 * v[..., 3]) / 6.0
    # soxr returns floor(length * ratio + 0.5) samples; librosa zero-pads that to its own length
    soxr_lengths = torch.floor(in_lengths.to(torch.float64) * ratio + 0.5).to(torch.int64)
    out = out.masked_fill(padding_mask(torch.minimum(soxr_lengths, out_lengths), T_out), 0.0)
    same = (ratio == 1.0).unsqueeze(-1)
    # examples at ratio 1 are copied exactly; on a GPU blending always costs less than asking whether any
    # is (a host sync), on the CPU the question is free and usually spares the blend
    if x.device.type != "cpu" or bool(same.any()):
        n = min(T, T_out)
        copy = torch.nn.functional.pad(x[:, :n], (0, T_out - n))
        out = torch.where(same, copy.masked_fill(padding_mask(out_lengths, T_out), 0.0), out)
    return out


def resample(
    y: torch.Tensor,
    *,
    orig_sr,
    target_sr,
    lengths: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample each example from ``orig_sr`` to ``target_sr`` (per-example rates); like ``librosa.resample``.

    Band-limited resampling for any ratio, one ratio per example, in one batched call: each example
    is low-passed in the frequency domain with the response of librosa's default resampler (soxr
    'soxr_hq': flat to 0.91, -6 dB at 0.957 of the lower Nyquist frequency, within 4e-3 of it),
    oversampled 4x by zero-padding its spectrum, and read at each output sample's fractional position
    with a pre-compensated cubic B-spline. Output lengths are librosa's
    ``ceil(length * target_sr / orig_sr)`` (the last sample is 0 where soxr returns one sample
    fewer, as librosa pads it); an example with ``orig_sr == target_sr`` is returned unchanged, as
    librosa does. The signal is taken as zero outside ``[0, length)``, and output sample ``m`` is
    centred on input time ``m * orig_sr / target_sr`` (no delay), as soxr. Examples are processed in
    chunks of 32 MiB of oversampled signal, so memory stays at a few hundred MiB whatever the batch.

    Args:
        y (Tensor): ``[shape=(..., time)]`` waveform batch.
        orig_sr, target_sr (float | Tensor): sampling rates, numbers or ``[shape=(...)]`` tensors; > 0.
            Pass tensors as float64 when exact ratios matter (a float32 rate is a rounded one).
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).

    Returns:
        ``(y_resampled, new_lengths)``: ``[shape=(..., max(new_lengths))]`` zero beyond each
        example's ``new_lengths`` (int64 ``[shape=(...)]``).
    """
    y, flat, L = _flat_input(y, lengths)
    orig = _per_example(orig_sr, "orig_sr", y.shape[:-1], y.device, positive=True)
    target = _per_example(target_sr, "target_sr", y.shape[:-1], y.device, positive=True)
    ratio = target / orig
    new_lengths = torch.ceil(L.to(torch.float64) * ratio).to(torch.int64)
    T_out = max(int(new_lengths.max()), 1) if new_lengths.numel() else 1
    out = _resample(flat, ratio, L, new_lengths, T_out)
    return out.reshape(y.shape[:-1] + (T_out,)), new_lengths.reshape(y.shape[:-1])


# ----------------------------------------------------------------------------------------------
# pitch shift


def pitch_shift(
    y: torch.Tensor,
    *,
    sr: float = 22050,
    n_steps,
    bins_per_octave: int = 12,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    lengths: Optional[torch.Tensor] = None,
    fast_stft: bool = False,
) -> torch.Tensor:
    """Shift the pitch of each example by its own (fractional) number of steps; like ``librosa.effects.pitch_shift``.

    librosa's recipe, batched: :func:`time_stretch` by ``rate = 2 ** (-n_steps / bins_per_octave)``,
    then resample by the same ratio (librosa: from ``sr / rate`` to ``sr``) and cut/pad to the
    original length. The stretch equals librosa's; the resampler is :func:`resample` (soxr's
    response, not its exact filter), so the two agree closely (see the tests' similarity bounds).
    An example with ``n_steps == 0`` goes through the STFT round trip only, as in librosa.

    Args:
        y (Tensor): ``[shape=(..., time)]`` waveform batch.
        sr (float, default 22050): sampling rate; accepted for librosa's signature (the result
            depends only on the ratio).
        n_steps (float | Tensor): steps to shift (semitones with 12 bins per octave), any real
            value, a number for all or a ``[shape=(...)]`` tensor.
        bins_per_octave (int, default 12): steps per octave.
        n_fft, hop_length, win_length, window: STFT settings of the stretch.
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).
        fast_stft (bool, default False): the stretch's STFT in float32 for a float32 ``y``, as
            :func:`time_stretch`'s.

    Returns:
        ``[shape=y.shape]`` pitch-shifted waveforms, each example's length unchanged (zero beyond it).
    """
    y, flat, L = _flat_input(y, lengths)
    check_positive(sr, "sr")
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    n_fft, hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, window, "constant")
    steps = _per_example(n_steps, "n_steps", y.shape[:-1], y.device)
    rate = torch.pow(2.0, -steps / bins_per_octave)
    out = _pitch_shift(flat, rate, L, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                       precise=not check_bool(fast_stft, "fast_stft"))
    return out.reshape(y.shape)


def _pitch_shift(flat, rate, L, *, n_fft, hop_length, win_length, window, precise: bool = False):
    stretched, stretched_lengths = _time_stretch(flat, rate, L, n_fft=n_fft, hop_length=hop_length,
                                                 win_length=win_length, window=window, precise=precise)
    # librosa resamples from sr / rate to sr: the ratio target / orig is the stretch rate itself
    return _resample(stretched, rate, stretched_lengths, L, flat.shape[-1])
