"""Pitch tracking by parabolic interpolation and tuning estimation, as librosa, batched.

``estimate_tuning`` is what ``chroma_stft(tuning=None)`` and the constant-Q code call: it runs
``piptrack``, keeps the peaks whose magnitude reaches the median peak magnitude, and takes the
most common deviation of those peaks from the equal-tempered grid.  librosa pools a whole
(multichannel) array into one estimate; here every example of a batch gets its own estimate,
computed only from its own valid frames, with no Python loop over the examples.

The tuning is quantised to ``resolution`` by a histogram, so a residual sitting on a bin edge
decides the answer; the peak positions and the frequency → residual → histogram arithmetic are
therefore done in float64 whatever the input dtype (the STFT itself stays in the input dtype).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

from .._validation import (
    _check_tensor,
    check_in_range,
    check_length_kind,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from ..errors import ParameterError
from .._transfer import CONSTANTS
from .spectrum import _is_max, fft_frequencies, frame_mask, spectrogram

__all__ = ["piptrack", "pitch_tuning", "estimate_tuning"]

_PIPTRACK_KWARGS = (
    "hop_length", "fmin", "fmax", "threshold", "win_length", "window", "center", "pad_mode", "ref",
)


def _work_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; everywhere else the bin-edge-sensitive arithmetic runs in float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _is_mean(ref) -> bool:
    return ref in (np.mean, torch.mean) or ref == "mean"


def _check_ref(ref):
    if ref is None or callable(ref) or _is_max(ref) or _is_mean(ref):
        return ref
    if isinstance(ref, bool) or not isinstance(ref, numbers.Real) or not math.isfinite(float(ref)):
        raise ParameterError(
            f"ref must be None, a finite number or a per-frame reduction such as torch.amax, got {ref!r}"
        )
    return float(ref)


def _reference(S: torch.Tensor, ref, threshold: float) -> torch.Tensor:
    """``threshold * ref(S)`` per frame, or ``|ref|`` for a number (librosa does not scale a number)."""
    if ref is None or _is_max(ref):
        return threshold * S.amax(dim=-2, keepdim=True)
    if _is_mean(ref):
        return threshold * S.mean(dim=-2, keepdim=True)
    if callable(ref):
        try:
            value = ref(S, dim=-2, keepdim=True)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the argument
            raise ParameterError(
                f"ref={ref!r} must be callable as ref(S, dim=-2, keepdim=True) on a tensor "
                f"(a per-frame reduction such as torch.amax or torch.mean): {exc}"
            ) from exc
        if isinstance(value, tuple):  # torch.max / torch.median return (values, indices)
            value = value[0]
        value = torch.as_tensor(value, dtype=S.dtype, device=S.device)
        if value.ndim == S.ndim - 1:
            value = value.unsqueeze(-2)
        return threshold * value
    return torch.tensor(abs(ref), dtype=S.dtype, device=S.device)


def _parabolic_shift(S: torch.Tensor) -> torch.Tensor:
    """Vertex offset of the parabola through each bin and its neighbours along frequency.

    librosa's ``_parabolic_interpolation``: 0 where the vertex lies more than one bin away and
    on the first and last bins.
    """
    prev, mid, nxt = S[..., :-2, :], S[..., 1:-1, :], S[..., 2:, :]
    a = nxt + prev - 2 * mid
    b = (nxt - prev) / 2
    far = b.abs() >= a.abs()
    inner = torch.where(far, 0.0, -b / torch.where(far, 1.0, a))
    edge = torch.zeros_like(S[..., :1, :])
    return torch.cat([edge, inner, edge], dim=-2)


def _gradient(S: torch.Tensor) -> torch.Tensor:
    """``np.gradient(S, axis=-2)``: central differences inside, one-sided at both ends."""
    first = S[..., 1:2, :] - S[..., 0:1, :]
    inner = (S[..., 2:, :] - S[..., :-2, :]) / 2.0
    last = S[..., -1:, :] - S[..., -2:-1, :]
    return torch.cat([first, inner, last], dim=-2)


def _localmax(x: torch.Tensor) -> torch.Tensor:
    """``librosa.util.localmax(x, axis=-2)``: ``x[i] > x[i-1]`` and ``x[i] >= x[i+1]``.

    The first bin is never a maximum; the last one is when it exceeds its neighbour.
    """
    inner = (x[..., 1:-1, :] > x[..., :-2, :]) & (x[..., 1:-1, :] >= x[..., 2:, :])
    first = torch.zeros_like(x[..., :1, :], dtype=torch.bool)
    last = x[..., -1:, :] > x[..., -2:-1, :]
    return torch.cat([first, inner, last], dim=-2)


def _piptrack_input(
    y, *, sr, S, n_fft, hop_length, fmin, fmax, threshold, win_length, window, center, pad_mode,
    ref, lengths, frame_lengths,
):
    """Validated piptrack settings and input: ``(S, n_fft, frame_lengths, fmin, fmax, threshold, ref)``
    with ``S`` in the input dtype (not yet absolute) and ``fmin``/``fmax`` clipped as librosa clips them."""
    sr = check_positive(sr, "sr")
    fmin = check_nonnegative(fmin, "fmin")  # 0 as librosa (which clips a negative fmin to 0 too)
    fmax = check_positive(fmax, "fmax")
    if fmax <= fmin:
        raise ParameterError(f"fmax must be greater than fmin={fmin}, got {fmax}")
    threshold = check_nonnegative(threshold, "threshold")
    ref = _check_ref(ref)
    check_length_kind(S is None, lengths, frame_lengths)
    if S is None:
        if n_fft is None:
            raise ParameterError("n_fft must be a positive integer to analyse a waveform y, got None")
        # hop_length=None: spectrogram applies librosa.stft's default, a quarter of the *window*
        S, n_fft, frame_lengths = spectrogram(
            y, n_fft=n_fft, hop_length=hop_length, power=1.0, win_length=win_length, window=window,
            center=center, pad_mode=pad_mode, lengths=lengths,
        )
    else:
        S, n_spec, frame_lengths = spectrogram(S=S, frame_lengths=frame_lengths)
        # librosa keeps a given n_fft when it agrees with the number of bins (odd n_fft)
        if n_fft is not None:
            n_fft = check_positive_int(n_fft, "n_fft")
            if n_fft // 2 + 1 != S.shape[-2]:
                n_fft = n_spec
        else:
            n_fft = n_spec
    if S.shape[-2] < 2:
        raise ParameterError(
            f"the spectrogram needs at least 2 frequency bins (n_fft >= 2), got shape {tuple(S.shape)}"
        )
    return S, n_fft, frame_lengths, max(fmin, 0.0), min(fmax, sr / 2), threshold, ref


def _piptrack(
    y, *, sr, S, n_fft, hop_length, fmin, fmax, threshold, win_length, window, center, pad_mode,
    ref, lengths, frame_lengths,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], torch.dtype]:
    """Validated piptrack returning ``(pitches, mags)`` in the working dtype, the frame counts and
    the caller's dtype."""
    S, n_fft, frame_lengths, fmin, fmax, threshold, ref = _piptrack_input(
        y, sr=sr, S=S, n_fft=n_fft, hop_length=hop_length, fmin=fmin, fmax=fmax, threshold=threshold,
        win_length=win_length, window=window, center=center, pad_mode=pad_mode, ref=ref,
        lengths=lengths, frame_lengths=frame_lengths)
    out_dtype = S.dtype
    work = _work_dtype(S.device)
    S = S.abs().to(work)

    freqs = fft_frequencies(sr=sr, n_fft=n_fft, device=S.device, dtype=torch.float64)
    freq_ok = ((fmin <= freqs) & (freqs < fmax)).unsqueeze(-1)

    shift = _parabolic_shift(S)
    dskew = 0.5 * _gradient(S) * shift
    ref_value = _reference(S, ref, threshold)
    peaks = freq_ok & _localmax(S * (S > ref_value).to(S.dtype))
    if frame_lengths is not None:
        peaks = peaks & frame_mask(frame_lengths, S.shape[-1]).unsqueeze(-2)

    bins = torch.arange(S.shape[-2], device=S.device, dtype=work).unsqueeze(-1)
    zero = torch.zeros((), device=S.device, dtype=work)
    pitches = torch.where(peaks, (bins + shift) * float(sr) / n_fft, zero)
    mags = torch.where(peaks, S + dskew, zero)
    return pitches, mags, frame_lengths, out_dtype


def _sparse_peaks(
    S: torch.Tensor, *, sr: float, n_fft: int, fmin: float, fmax: float, threshold: float, ref,
    frame_lengths: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """piptrack's pitches and magnitudes at its peaks only, packed per example, for a non-negative ``S``
    (piptrack's ``|S|``).

    Returns ``(pitches, mags)``, each ``[shape=(B, K)]`` in the working dtype for the ``B`` examples
    of ``S`` (leading axes flattened), ``K`` the largest peak count of an example; an example's
    peaks come first (in (bin, frame) order), the rest is 0 (``pitch > 0`` marks a peak).

    The same values as :func:`_piptrack` at its peaks, bit for bit, for less work: the peak search
    runs only over the bins of ``[fmin, fmax)`` (and their neighbours) in the input dtype (the
    threshold test against the float64 reference promotes exactly, and a local maximum of exactly
    cast values is the same in either dtype), and the float64 interpolation only at the peaks.
    """
    work = _work_dtype(S.device)
    F, T = S.shape[-2:]
    S = S.reshape(-1, F, T)  # non-negative (the callers' |S|)
    B = S.shape[0]
    freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)  # fft_frequencies, on the host: no tensor op
    band = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    lo = max(int(band[0]), 1) if band.size else F  # bin 0 is never a local maximum
    hi = int(band[-1]) + 1 if band.size else F
    if lo >= hi:
        empty = S.new_zeros((B, 0), dtype=work)
        return empty, empty
    if ref is None or _is_max(ref):
        ref_value = threshold * S.amax(dim=-2, keepdim=True).to(work)  # a max is exact in any dtype
    else:
        ref_value = _reference(S.to(work), ref, threshold)
    # x = S * (S > ref) on bins lo - 1 .. hi (one past the band on each side; -inf past the top bin)
    Sb = S[:, lo - 1 : min(hi + 1, F)]
    x = Sb * (Sb > ref_value)
    if hi == F:
        x = torch.cat([x, torch.full_like(x[:, :1], -math.inf)], dim=1)
    peaks = (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:])  # bins lo .. hi - 1
    if frame_lengths is not None:
        peaks &= frame_mask(frame_lengths.reshape(-1), T).unsqueeze(-2)
    b, f, t = torch.nonzero(peaks).unbind(-1)  # row-major: grouped by example
    f = f + lo
    inside = f < F - 1  # the top bin has no upper neighbour: no shift, one-sided gradient
    # each peak's bin and its two neighbours, read in one gather
    prev, mid, nxt = S[b, torch.stack([f - 1, f, torch.where(inside, f + 1, f)]), t].to(work).unbind(0)
    # _parabolic_shift and _gradient, operation for operation
    a = nxt + prev - 2 * mid
    bb = (nxt - prev) / 2  # also _gradient's central difference
    far = bb.abs() >= a.abs()
    shift = torch.where(far, 0.0, -bb / torch.where(far, 1.0, a))
    shift = torch.where(inside, shift, 0.0)
    grad = torch.where(inside, bb, mid - prev)
    dskew = 0.5 * grad * shift
    pitch = (f.to(work) + shift) * float(sr) / n_fft
    mag = mid + dskew

    counts = torch.bincount(b, minlength=B)
    K = int(counts.max()) if b.numel() else 0
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(b.shape[0], device=S.device) - start[b]
    pitches = S.new_zeros((B, K), dtype=work)
    mags = S.new_zeros((B, K), dtype=work)
    pitches[b, slot] = pitch
    mags[b, slot] = mag
    return pitches, mags


def piptrack(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: Optional[int] = 2048,
    hop_length: Optional[int] = None,
    fmin: float = 150.0,
    fmax: float = 4000.0,
    threshold: float = 0.1,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    ref: Union[None, float, Callable] = None,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pitch tracking on a thresholded, parabolically interpolated STFT; equals ``librosa.piptrack``.

    A bin is a pitch when it lies in ``[fmin, min(fmax, sr / 2))``, exceeds the per-frame
    reference (``threshold * max`` over the frame by default) and is a local maximum along
    frequency; its pitch is the parabola vertex ``(bin + shift) * sr / n_fft`` and its magnitude
    the interpolated peak height. Peak positions are computed in float64 and cast back.

    Args:
        y: ``[shape=(..., time)]`` waveform, float32 or float64 (ignored when ``S`` is given).
        sr: sampling rate of ``y`` (> 0), default 22050.
        S: ``[shape=(..., 1 + n_fft // 2, frames)]`` magnitude or power spectrogram (its absolute
            value is used).
        n_fft: FFT size for ``y`` (default 2048); with ``S`` it is inferred from the number of bins
            unless it agrees with it.
        hop_length: hop for ``y``; default ``win_length // 4`` as ``librosa.stft``.
        fmin: lower frequency limit in Hz (> 0), default 150.
        fmax: upper (exclusive) frequency limit in Hz (> fmin, clipped to ``sr / 2``), default 4000.
        threshold: fraction of the per-frame reference a peak must exceed (>= 0), default 0.1.
        win_length, window, center, pad_mode: STFT settings for ``y`` as ``librosa.stft``
            (defaults ``n_fft``, ``'hann'``, ``True``, ``'constant'``).
        ref: ``None`` (per-frame max), ``max``/``np.max``/``torch.amax``, ``np.mean``/``torch.mean``,
            a torch reduction called as ``ref(S, dim=-2, keepdim=True)`` (multiplied by
            ``threshold``), or a number used as the absolute reference (not multiplied).
        lengths: ``[shape=(...)]`` valid samples per example of a zero-padded batch ``y``.
        frame_lengths: ``[shape=(...)]`` valid frames per example when ``S`` is given.

    Returns:
        ``(pitches, magnitudes)``, each ``[shape=(..., 1 + n_fft // 2, frames)]`` in the input
        dtype; 0 wherever a bin is not a pitch and on every padded frame.
    """
    pitches, mags, _, out_dtype = _piptrack(
        y, sr=sr, S=S, n_fft=n_fft, hop_length=hop_length, fmin=fmin, fmax=fmax,
        threshold=threshold, win_length=win_length, window=window, center=center,
        pad_mode=pad_mode, ref=ref, lengths=lengths, frame_lengths=frame_lengths,
    )
    return pitches.to(out_dtype), mags.to(out_dtype)


def _tuning_from_frequencies(
    frequencies: torch.Tensor, keep: torch.Tensor, resolution: float, bins_per_octave: int, *,
    kept_are_valid: bool = False,
) -> torch.Tensor:
    """Histogram peak of the residuals of ``frequencies[keep]`` along the last axis; ``(...)``.

    ``frequencies`` is in the working dtype; entries that are not kept, not positive or not
    finite do not count (``kept_are_valid``: the caller's ``keep`` holds only positive, finite
    ones, as piptrack's peaks are, and the test is skipped).  0 for a row with nothing to count,
    as librosa.
    """
    work = frequencies.dtype
    if not kept_are_valid:
        keep = keep & (frequencies > 0) & torch.isfinite(frequencies)
    safe = torch.where(keep, frequencies, 1.0)
    # hz_to_octs: log2(f / (A440 / 16)), A440 = 440 Hz at tuning 0
    octs = torch.log2(safe / (440.0 / 16))
    residual = torch.remainder(bins_per_octave * octs, 1.0)
    # a residual of 0.95 is a deviation of -0.05 from the next bin up
    residual = torch.where(residual >= 0.5, residual - 1.0, residual)

    n_bins = int(np.ceil(1.0 / resolution))
    # the exact edges np.histogram sees; bins are [e_i, e_i+1), the last one closed
    edges = CONSTANTS.get(("histogram_edges", n_bins), lambda: np.linspace(-0.5, 0.5, n_bins + 1),
                          frequencies.device, work)
    index = (torch.bucketize(residual, edges, right=True) - 1).clamp_(0, n_bins - 1)
    index = torch.where(keep, index, n_bins)  # spill bin, dropped below
    counts = torch.zeros(keep.shape[:-1] + (n_bins + 1,), dtype=torch.int64, device=frequencies.device)
    counts.scatter_add_(-1, index, torch.ones_like(index))
    counts = counts[..., :n_bins]
    best = counts.argmax(dim=-1)  # first maximum, as np.argmax
    tuning = edges[best]
    return torch.where(keep.any(dim=-1), tuning, 0.0)


def pitch_tuning(
    frequencies: torch.Tensor,
    *,
    resolution: float = 0.01,
    bins_per_octave: int = 12,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Tuning offset of a set of frequencies relative to A440, per example; equals ``librosa.pitch_tuning``.

    Each frequency's deviation from the nearest bin of a ``bins_per_octave`` equal-tempered grid
    (in ``[-0.5, 0.5)`` bins) is histogrammed with bins of width ``resolution``; the left edge of
    the fullest bin (the first on a tie) is the estimate.  Non-positive (and non-finite)
    frequencies are ignored; an example with none left gives 0, as librosa (which also warns).

    Args:
        frequencies: ``[shape=(..., N)]`` frequencies in Hz, float32 or float64 (a 0-d tensor is
            one frequency).
        resolution: histogram bin width in fractions of a bin, in ``(0, 1)``; default 0.01 (cents
            with 12 bins per octave).
        bins_per_octave: positive int, default 12.
        mask: ``[shape=(..., N)]`` bool, which entries of each example count (default: all).

    Returns:
        ``[shape=(...)]`` tuning per example, in ``[-0.5, 0.5)`` fractions of a bin, in the dtype
        of ``frequencies``.
    """
    frequencies = _check_tensor(frequencies, "frequencies", min_ndim=0)
    resolution = check_in_range(resolution, "resolution", 0.0, 1.0)
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    if frequencies.ndim == 0:
        frequencies = frequencies.reshape(1)
    if mask is None:
        mask = torch.ones(frequencies.shape, dtype=torch.bool, device=frequencies.device)
    else:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ParameterError(
                f"mask must be a bool tensor, got "
                f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}"
            )
        if tuple(mask.shape) != tuple(frequencies.shape):
            raise ParameterError(
                f"mask must have the shape of frequencies {tuple(frequencies.shape)}, got {tuple(mask.shape)}"
            )
        mask = mask.to(frequencies.device)
    work = _work_dtype(frequencies.device)
    tuning = _tuning_from_frequencies(frequencies.to(work), mask, resolution, bins_per_octave)
    return tuning.to(frequencies.dtype)


def _masked_median(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``np.median`` of ``values[valid]`` along the last axis (mean of the two middles for an even
    count); 0 where a row has no valid entry."""
    if values.shape[-1] == 0:
        return values.new_zeros(values.shape[:-1])
    count = valid.sum(dim=-1, keepdim=True)
    ordered = torch.sort(torch.where(valid, values, float("inf")), dim=-1).values
    lo = ordered.gather(-1, ((count - 1) // 2).clamp(min=0))
    hi = ordered.gather(-1, (count // 2).clamp(max=values.shape[-1] - 1))
    median = (lo + hi) / 2
    return torch.where(count > 0, median, 0.0).squeeze(-1)


def estimate_tuning(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    S: Optional[torch.Tensor] = None,
    n_fft: Optional[int] = 2048,
    resolution: float = 0.01,
    bins_per_octave: int = 12,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
    **piptrack_kwargs,
) -> torch.Tensor:
    """Tuning deviation of each example of a batch; equals ``librosa.estimate_tuning`` per example.

    Runs :func:`piptrack`, keeps the pitches whose magnitude is at least the median magnitude of
    that example's pitches, and returns their :func:`pitch_tuning`.  librosa pools a whole
    multichannel array into one estimate; here each example along ``...`` is estimated from its
    own valid frames only, so a padded batch gives each example what it gives alone.

    Args:
        y: ``[shape=(..., time)]`` waveform, float32 or float64 (ignored when ``S`` is given).
        sr: sampling rate (> 0), default 22050.
        S: ``[shape=(..., 1 + n_fft // 2, frames)]`` magnitude or power spectrogram.
        n_fft: FFT size for ``y``, default 2048 (see :func:`piptrack` for ``S``).
        resolution: resolution of the estimate in fractions of a bin, in ``(0, 1)``; default 0.01.
        bins_per_octave: positive int, default 12.
        lengths: ``[shape=(...)]`` valid samples per example of a zero-padded batch ``y``.
        frame_lengths: ``[shape=(...)]`` valid frames per example when ``S`` is given.
        **piptrack_kwargs: ``hop_length``, ``fmin``, ``fmax``, ``threshold``, ``win_length``,
            ``window``, ``center``, ``pad_mode``, ``ref``, passed to :func:`piptrack`.

    Returns:
        ``[shape=(...)]`` tuning per example in ``[-0.5, 0.5)``, a multiple of ``resolution``
        offset from -0.5 (0 for an example without any pitch), in the input dtype.
    """
    unknown = sorted(set(piptrack_kwargs) - set(_PIPTRACK_KWARGS))
    if unknown:
        raise ParameterError(
            f"unexpected keyword argument(s) {unknown} for estimate_tuning; piptrack accepts "
            f"{list(_PIPTRACK_KWARGS)}"
        )
    resolution = check_in_range(resolution, "resolution", 0.0, 1.0)
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    options = dict(hop_length=None, fmin=150.0, fmax=4000.0, threshold=0.1, win_length=None,
                   window="hann", center=True, pad_mode="constant", ref=None)
    options.update(piptrack_kwargs)
    S, n_fft, frame_lengths, fmin, fmax, threshold, ref = _piptrack_input(
        y, sr=sr, S=S, n_fft=n_fft, lengths=lengths, frame_lengths=frame_lengths, **options
    )
    # piptrack reads |S| (librosa: np.abs(S)); the kernel below takes it non-negative
    return _estimate_tuning(S.abs(), sr=sr, n_fft=n_fft, frame_lengths=frame_lengths, resolution=resolution,
                            bins_per_octave=bins_per_octave, fmin=fmin, fmax=fmax, threshold=threshold,
                            ref=ref)


def _estimate_tuning(
    S: torch.Tensor, *, sr: float, n_fft: int, frame_lengths: Optional[torch.Tensor],
    resolution: float = 0.01, bins_per_octave: int = 12, fmin: float = 150.0, fmax: float = 4000.0,
    threshold: float = 0.1, ref=None,
) -> torch.Tensor:
    """:func:`estimate_tuning` of a checked, non-negative spectrogram ``S`` ``(..., 1 + n_fft // 2, frames)``
    (a magnitude or power: no pass takes its absolute value) with checked settings (``fmax`` at most
    ``sr / 2``): no validation pass over ``S``."""
    # padded frames have no peaks, so each example's packed peaks come from its valid frames only
    pitches, mags = _sparse_peaks(S, sr=sr, n_fft=n_fft, fmin=fmin, fmax=fmax, threshold=threshold,
                                  ref=ref, frame_lengths=frame_lengths)
    found = pitches > 0
    threshold = _masked_median(mags, found)
    keep = found & (mags >= threshold.unsqueeze(-1))
    # the kept pitches are peaks (pitch > 0), interpolated from a finite S (finite)
    tuning = _tuning_from_frequencies(pitches, keep, resolution, bins_per_octave, kept_are_valid=True)
    return tuning.reshape(S.shape[:-2]).to(S.dtype)
