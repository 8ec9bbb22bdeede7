"""Constant-Q transform, constant-Q chroma and tonnetz, as librosa 0.11, batched.

librosa's ``cqt`` (its ``vqt`` with ``gamma=0``) works octave by octave, from the top down:

1. *early downsampling*: when the highest filter sits far below the Nyquist frequency and the hop
   has enough factors of two, the signal is first decimated by ``2**k``;
2. for each octave, an FFT filter bank (Hann-windowed complex exponentials of length
   ``Q * sr / f``, L1-normalised, zero-padded to a power of two, FFT'd and *sparsified* by dropping
   the smallest entries holding 1% of each row's L1 mass) is applied to a rectangular-window STFT
   of the current signal with the current hop;
3. between octaves the signal is decimated by 2 (``soxr_hq``, ``scale=True``, i.e. times
   ``sqrt(2)``) and the hop halved, while the hop stays even;
4. the filter banks are rescaled by ``sqrt(sr / my_sr)``, the octaves are stacked and trimmed to
   a common frame count and, with ``scale=True``, bin ``k`` is divided by ``sqrt(length_k)``.

The octave filter banks only depend on frequency / sampling rate, which is exactly the same for
every decimated octave, so the bank is built once (in float64, on the CPU; a few recent ones are
cached) and each plan's band-cut banks are cached per ``(tuning, device, dtype)`` in the compute
dtype only (see ``_PLAN_CACHE``).  The decimation is :func:`._resample.decimate`, a Kaiser
FIR fitted to soxr's response.

Per-example tuning (one estimate per clip) changes the filters per example.  The distinct
tuning values of a batch (``estimate_tuning`` quantises them to a 0.01 grid) each get a cached
filter bank; per octave the banks are stacked and gathered per example so one batched complex
matmul applies each example's own bank.  A batch with many distinct tunings, all on that grid (a
training batch of clips with estimated tunings), takes its banks from one cached stack of the
whole grid instead of stacking its own: a handful of operations per octave, however many tunings
(stacking per batch cost three small operations per tuning and octave, ~2,000 kernel launches at
batch 256 on a GPU).  The STFTs and the decimations do not depend on tuning and are shared.  No
Python loop runs over the examples.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import List, NamedTuple, Optional, Tuple, Union

import numpy as np
import torch

from .._validation import (
    _describe,
    check_frame_lengths,
    check_length_kind,
    check_lengths,
    check_positive,
    check_positive_int,
    valid_audio,
    valid_spectrogram,
)
from ..errors import ParameterError
from ._resample import decimate
from .._transfer import CONSTANTS, to_device
from .lengths import mask_frames, zero_padding
from .spectrum import _stft
from .util import _normalize

__all__ = ["cqt", "chroma_cqt", "tonnetz", "cqt_frequencies", "cq_to_chroma"]

_C1 = 440.0 * 2.0 ** ((24 - 69) / 12.0)  # librosa.note_to_hz('C1') = 32.7032 Hz

# librosa.filters.WINDOW_BANDWIDTHS for the windows spectrum.get_window supports (they decide the
# Nyquist check and early downsampling, so the table values are used, not recomputed).
_WINDOW_BANDWIDTH = {
    "hann": 1.50018310546875,
    "hamming": 1.3629455320350348,
    "blackman": 1.7269681554262326,
    "ones": 1.0,
    "boxcar": 1.0,
    "rectangular": 1.0,
}
# periodic cosine-sum windows: w[j] = sum_k (-1)**k a_k cos(2 pi k j / N)
_WINDOW_COEFFS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "ones": (1.0,),
    "boxcar": (1.0,),
    "rectangular": (1.0,),
}
_RES_TYPES = ("soxr_hq",)
_PAD_MODES = ("constant", "reflect", "edge", "wrap")


# --------------------------------------------------------------------------------------------
# filters (float64 numpy, cached)
# --------------------------------------------------------------------------------------------


def _relative_bandwidth(freqs: np.ndarray, bins_per_octave: int) -> np.ndarray:
    """librosa.filters._relative_bandwidth (or __et_relative_bw for a single bin)."""
    if len(freqs) == 1:
        r = 2.0 ** (1.0 / bins_per_octave)
        return np.atleast_1d((r ** 2 - 1) / (r ** 2 + 1))
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _cq_frequencies(n_bins: int, fmin: float, bins_per_octave: int) -> np.ndarray:
    """librosa.interval_frequencies(intervals='equal'): octave-tiled ratios times fmin."""
    ratios = 2.0 ** (np.arange(bins_per_octave, dtype=float) / bins_per_octave)
    n_oct = int(np.ceil(n_bins / bins_per_octave))
    return np.sort(np.multiply.outer(2.0 ** np.arange(n_oct), ratios).flatten()[:n_bins]) * fmin


def _window_at(name: str, j: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Periodic window of length ``counts[i]`` evaluated at positions ``j[i, :]`` (scipy's fftbins)."""
    N = counts[:, None].astype(float)
    w = np.zeros(j.shape)
    for k, a in enumerate(_WINDOW_COEFFS[name]):
        w = w + ((-1) ** k) * a * np.cos(2 * np.pi * k * j / N)
    return w


def _sparsify_rows(x: np.ndarray, quantile: float) -> np.ndarray:
    """librosa.util.sparsify_rows as a dense array: zero the smallest entries of each row that
    together hold less than ``quantile`` of the row's L1 mass."""
    mags = np.abs(x)
    norms = mags.sum(axis=1, keepdims=True)
    mag_sort = np.sort(mags, axis=1)
    cumulative = np.cumsum(mag_sort / norms, axis=1)
    idx = np.argmin(cumulative < quantile, axis=1)
    thresh = mag_sort[np.arange(len(x)), idx][:, None]
    return np.where(mags >= thresh, x, 0.0)


# Cache size. Estimated tunings sit on a 0.01-bin grid in [-0.5, 0.5): a long file, or an epoch of
# training, meets most of those 100 values, and rebuilding a plan costs tens of milliseconds of numpy
# (a least-recently-used cache smaller than the grid misses on most windows of speech), so one entry
# per value is kept, for the whole grid. What an entry keeps is only what a batch needs: each octave's
# bank cut to the band of FFT columns its filters use (~1/5 of them for chroma_cqt's 36 bins per
# octave) in the compute dtype on the compute device, plus a few numbers -- ~0.23 MB in complex64 for
# chroma_cqt's 7 octaves, so ~23 MB for the whole grid and at most ~30 MB for the 128 entries. The
# float64 numpy banks a plan is built from are dropped once they are converted (keeping them too
# tripled the cache, ~78 MB over a 40-minute file). Banks of a few tunings are stacked per batch
# (not cached: a batch's set of tunings rarely repeats); a batch of many grid tunings takes one cached
# stack of the whole grid instead (_grid_tensors); the per-octave FFT banks are only needed while a
# plan is built.
_PLAN_CACHE = 128


@functools.lru_cache(maxsize=16)
def _octave_basis(rel_freqs: Tuple[float, ...], alpha: Tuple[float, ...], filter_scale: float,
                  norm, sparsity: float, window: str) -> Tuple[np.ndarray, int]:
    """FFT filter bank for one octave: librosa's ``__vqt_filter_fft`` at ``sr = 1``.

    ``rel_freqs`` are the octave's frequencies divided by the octave's sampling rate; the bank
    only depends on those, so all decimated octaves share one cached bank.
    Returns ``(basis [shape=(F, n_fft // 2 + 1)] complex128, n_fft)``.
    """
    f = np.asarray(rel_freqs, dtype=float)
    Q = float(filter_scale) / np.asarray(alpha, dtype=float)
    ilen = Q / f  # filter lengths in samples (fractional)
    start = np.floor(-ilen / 2)  # np.arange(-ilen // 2, ilen // 2)
    counts = (np.floor(ilen / 2) - start).astype(np.int64)
    n_fft = int(2.0 ** np.ceil(np.log2(ilen.max())))
    # each filter centred in n_fft as util.pad_center does
    lpad = (n_fft - counts) // 2
    j = np.arange(n_fft)[None, :] - lpad[:, None]  # position inside each filter
    inside = (j >= 0) & (j < counts[:, None])
    jj = np.clip(j, 0, None)
    phase = (start[:, None] + jj) * (2 * np.pi * f[:, None])
    sig = np.where(inside, np.exp(1j * phase) * _window_at(window, jj, counts), 0.0)
    sig = _normalize(torch.from_numpy(sig), norm=norm, axis=-1).numpy()
    sig = sig * (ilen[:, None] / float(n_fft))
    basis = np.fft.fft(sig, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    basis = _sparsify_rows(basis, sparsity)
    basis.setflags(write=False)
    return basis, n_fft


class _Octave(NamedTuple):
    n_fft: int
    hop: int
    rows: int
    decimate_after: bool
    first: int  # the FFT columns [first, last) of n_fft // 2 + 1 where some filter is non-zero
    last: int


class _Plan(NamedTuple):
    early: int  # early decimation factor (1: none)
    sr: float  # sampling rate after early decimation
    octaves: Tuple[_Octave, ...]
    input_gain: float  # applied to the early-decimated signal

    def signature(self):
        return (self.early, tuple((o.n_fft, o.hop, o.rows, o.decimate_after) for o in self.octaves))


def _num_two_factors(x: int) -> int:
    n = 0
    while x > 0 and x % 2 == 0:
        n += 1
        x //= 2
    return n


def _plan(sr: float, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int, tuning: float,
          filter_scale: float, norm, sparsity: float, window: str, scale: bool
          ) -> Tuple[_Plan, Tuple[np.ndarray, ...], np.ndarray]:
    """Everything of librosa's vqt(gamma=0) that does not depend on the signal: ``(plan, banks, bin_gain)``.

    ``banks``: per octave ``(rows, last - first)`` complex128, gain ``sqrt(sr / my_sr)`` included;
    ``bin_gain``: ``(n_bins,)`` ``1 / sqrt(filter length)`` with ``scale``, else ones. Not cached:
    :func:`_plan_tensors` keeps what a batch needs.
    """
    n_octaves = int(np.ceil(float(n_bins) / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    fmin_t = fmin * 2.0 ** (tuning / bins_per_octave)
    freqs = _cq_frequencies(n_bins, fmin_t, bins_per_octave)
    alpha = _relative_bandwidth(freqs, bins_per_octave)
    Q = float(filter_scale) / alpha
    cutoff = float(np.max(freqs * (1 + 0.5 * _WINDOW_BANDWIDTH[window] / Q)))
    nyquist = sr / 2.0
    if cutoff > nyquist:
        raise ParameterError(
            f"the top constant-Q filter (fmin={fmin}, n_bins={n_bins}, bins_per_octave="
            f"{bins_per_octave}, tuning={tuning}) reaches {cutoff:.1f} Hz, above the Nyquist "
            f"frequency {nyquist} Hz of sr={sr}; reduce n_bins or fmin"
        )
    # early downsampling, as librosa's __early_downsample_count
    count1 = max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1)
    count2 = max(0, _num_two_factors(hop_length) - n_octaves + 1)
    count = min(count1, count2)
    early = 2 ** count
    hop = hop_length // early
    sr_eff = sr / early
    input_gain = math.sqrt(early) * (1.0 if scale else math.sqrt(early))

    octaves, banks = [], []
    my_sr, my_hop = sr_eff, hop
    for i in range(n_octaves):
        sl = slice(-n_filters, None) if i == 0 else slice(-n_filters * (i + 1), -n_filters * i)
        f_oct, a_oct = freqs[sl], alpha[sl]
        basis, n_fft = _octave_basis(tuple((f_oct / my_sr).tolist()), tuple(a_oct.tolist()),
                                     float(filter_scale), norm, float(sparsity), window)
        basis = basis * np.sqrt(sr_eff / my_sr)
        # the sparsified filters are zero outside one band of columns: keep only that band
        used = np.flatnonzero((basis != 0).any(axis=0))
        first, stop = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        basis = np.ascontiguousarray(basis[:, first:stop])
        last = i == n_octaves - 1
        dec = (not last) and my_hop % 2 == 0
        octaves.append(_Octave(n_fft, my_hop, len(f_oct), dec, first, stop))
        banks.append(basis)
        if dec:
            my_hop //= 2
            my_sr /= 2.0
    if scale:
        bin_gain = 1.0 / np.sqrt(Q * sr_eff / freqs)
    else:
        bin_gain = np.ones(n_bins)
    return _Plan(early, sr_eff, tuple(octaves), input_gain), tuple(banks), bin_gain


class _PlanTensors(NamedTuple):
    plan: _Plan
    banks: Tuple[torch.Tensor, ...]  # per octave (rows, last - first), complex, on the device
    columns: Tuple[Tuple[int, int], ...]  # per octave (first, last)
    gain: torch.Tensor  # (n_bins,) bin gains


@functools.lru_cache(maxsize=_PLAN_CACHE)
def _plan_tensors(plan_args: tuple, device: str, dtype: torch.dtype) -> _PlanTensors:
    """The plan, its band-cut banks (complex), their column ranges and bin gains on ``device`` in ``dtype``."""
    plan, bases, bin_gain = _plan(*plan_args)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    banks = tuple(torch.from_numpy(b).to(device=device, dtype=cdtype) for b in bases)
    columns = tuple((o.first, o.last) for o in plan.octaves)
    gain = torch.from_numpy(bin_gain).to(device=device, dtype=dtype)
    return _PlanTensors(plan, banks, columns, gain)


def _band_tensors(plan_args: Tuple[tuple, ...], device: str, dtype: torch.dtype):
    """The octave banks of one or more plans, over the band of FFT columns any of them uses.

    Each sparsified filter only covers a few bins near its centre frequency, so an octave's bank
    is zero outside one band of columns (about a fifth of them for chroma_cqt's 36 bins per octave):
    multiplying only that band of the STFT gives the same sums without the zero products.
    Returns ``(banks, columns, gain)``: per octave a ``(rows, K')`` bank (``(G, rows, K')`` for
    several plans, each zero outside its own band) and its ``(first, last + 1)`` column range; the
    bin gains ``(n_bins,)`` or ``(G, n_bins)``.
    """
    if len(plan_args) == 1:
        return _plan_tensors(plan_args[0], device, dtype)[1:]
    return _stack_bands([_plan_tensors(a, device, dtype)[1:] for a in plan_args])


def _stack_bands(parts) -> tuple:
    """``(banks, columns, gain)`` of several plans stacked, as :func:`_band_tensors` returns them, from
    each plan's own ``(banks, columns, gain)`` (tensors on one device): per octave the union of the
    plans' column bands, each plan's bank zero outside its own."""
    banks, columns = [], []
    for i in range(len(parts[0][0])):
        first = min(p[1][i][0] for p in parts)
        last = max(p[1][i][1] for p in parts)
        ref = parts[0][0][i]
        stacked = torch.zeros((len(parts), ref.shape[0], last - first), dtype=ref.dtype, device=ref.device)
        for g, p in enumerate(parts):
            a, b = p[1][i]
            stacked[g, :, a - first:b - first] = p[0][i]
        banks.append(stacked)
        columns.append((first, last))
    return tuple(banks), tuple(columns), torch.stack([p[2] for p in parts])


# A batch with at least this many distinct tunings, all on one estimate_tuning grid, uses the cached
# banks of the whole grid (_grid_tensors); fewer are stacked per batch (_band_tensors), which is cheap
# for a few and spares a small batch (one clip, a test) the one-time build of the whole grid (~2-5 s of
# numpy for chroma_cqt's 100 tunings).
_GRID_MIN_TUNINGS = 8


@functools.lru_cache(maxsize=1)
def _tuning_grids() -> Tuple[Tuple[Tuple[float, ...], dict], ...]:
    """The tunings :func:`.pitch.estimate_tuning` returns at its default resolution (0.01): the left
    edges of a 100-bin histogram of ``[-0.5, 0.5)``, as the float64 numbers :func:`_check_tuning`
    gives, once as computed in float64 and once rounded to float32 (estimates made in float32);
    each as ``(values, {value: position})``."""
    edges = np.linspace(-0.5, 0.5, 101)[:-1]
    grids = (edges.tolist(), edges.astype(np.float32).astype(np.float64).tolist())
    return tuple((tuple(g), {v: i for i, v in enumerate(g)}) for g in grids)


def _grid_positions(values: List[float]) -> Optional[Tuple[Tuple[float, ...], List[int]]]:
    """``(grid, positions)`` when every value lies on one grid of :func:`_tuning_grids` (``grid`` its
    values in order, ``positions`` each value's index in it), else ``None``."""
    for grid, index in _tuning_grids():
        positions = [index.get(v) for v in values]
        if None not in positions:
            return grid, positions
    return None


def _grid_bands(values: List[float], fixed: tuple, rest: tuple, device: str, dtype: torch.dtype):
    """``(plan, bands, positions)`` when a batch's distinct tunings ``values`` are many
    (``>= _GRID_MIN_TUNINGS``) and all on one estimate_tuning grid, whose cached banks
    (:func:`_grid_tensors`) then serve it: ``bands`` as :func:`_cqt_group` takes them, ``positions``
    each value's index on the grid. ``None`` otherwise (the batch stacks its own banks)."""
    if len(values) < _GRID_MIN_TUNINGS:
        return None
    on_grid = _grid_positions(values)
    if on_grid is None:
        return None
    tensors = _grid_tensors(fixed, rest, on_grid[0], device, dtype)
    if tensors is None:
        return None
    return tensors[0], tensors[1:], on_grid[1]


@functools.lru_cache(maxsize=4)
def _grid_tensors(fixed: tuple, rest: tuple, grid: Tuple[float, ...], device: str, dtype: torch.dtype):
    """``(plan, banks, columns, gain)`` of every tuning of ``grid`` at once, as :func:`_band_tensors`
    returns them for several plans (``banks`` per octave ``(len(grid), rows, K')``, zero outside each
    tuning's band; ``gain`` ``(len(grid), n_bins)``), built straight from :func:`_plan` so the
    per-tuning cache is not flooded; ``None`` when the grid's plans differ in signature or one of
    them is invalid (a batch then stacks its own banks). ~23 MB in complex64 for chroma_cqt's 7
    octaves of 36 bins; a few entries are kept (one per configuration, device and dtype in use)."""
    try:
        built = [_plan(*(fixed + (t,) + rest)) for t in grid]
    except ParameterError:
        return None
    plan = built[0][0]
    if any(p.signature() != plan.signature() for p, _, _ in built):
        return None
    # stacked on the CPU in float64 (the numpy banks as they are), then moved and cast once
    banks, columns, gain = _stack_bands([(tuple(torch.from_numpy(b) for b in bases),
                                          tuple((o.first, o.last) for o in p.octaves), torch.from_numpy(g))
                                         for p, bases, g in built])
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return (plan, tuple(b.to(device=device, dtype=cdtype) for b in banks), columns,
            gain.to(device=device, dtype=dtype))


def cqt_frequencies(n_bins: int, *, fmin: float, bins_per_octave: int = 12, tuning: float = 0.0) -> np.ndarray:
    """Centre frequency of each constant-Q bin; equals ``librosa.cqt_frequencies``.

    Returns:
        ``[shape=(n_bins,)]`` float64 numpy array, ``fmin * 2 ** ((k + tuning) / bins_per_octave)``.
    """
    n_bins = check_positive_int(n_bins, "n_bins")
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    fmin = check_positive(fmin, "fmin")
    return fmin * 2.0 ** ((np.arange(n_bins, dtype=float) + float(tuning)) / bins_per_octave)


# --------------------------------------------------------------------------------------------
# cqt
# --------------------------------------------------------------------------------------------


def _check_norm(norm, name: str = "norm"):
    if norm is None:
        return None
    if isinstance(norm, bool) or not isinstance(norm, numbers.Real) or not (norm > 0):
        raise ParameterError(f"{name} must be None, a positive number or inf, got {_describe(norm)}")
    return float(norm)


def _check_tuning(tuning, batch_shape, device):
    """``tuning`` → (list of distinct float values, int64 index per example or None)."""
    if isinstance(tuning, torch.Tensor):
        if tuning.is_complex() or tuning.dtype == torch.bool:
            raise ParameterError(f"tuning must be a real number or real tensor, got {_describe(tuning)}")
        if tuning.ndim != 0 and tuple(tuning.shape) != tuple(batch_shape):
            raise ParameterError(
                f"tuning tensor must be 0-d or have the batch shape {tuple(batch_shape)} of the "
                f"signal, got shape {tuple(tuning.shape)}"
            )
        t = tuning.detach().to(device="cpu", dtype=torch.float64)
        if not bool(torch.isfinite(t).all()):
            raise ParameterError(f"tuning must be finite, got {t[~torch.isfinite(t)][0].item()}")
        if t.ndim == 0:
            return [float(t)], None
        values, inverse = torch.unique(t.reshape(-1), return_inverse=True)
        if len(values) == 1:
            return [float(values[0])], None
        return values.tolist(), to_device(inverse, device)
    if isinstance(tuning, bool) or not isinstance(tuning, numbers.Real) or not math.isfinite(tuning):
        raise ParameterError(f"tuning must be a finite number, a tensor or None, got {_describe(tuning)}")
    return [float(tuning)], None


def _octave_steps(early: int, octaves: Tuple[Tuple[int, bool], ...]) -> np.ndarray:
    """``(3, octaves)`` int64 table: each octave's total decimation ``d`` of the input (early
    decimation included), ``d - 1`` and its hop."""
    d, steps = early, []
    for hop, decimate_after in octaves:
        steps.append((d, d - 1, hop))
        if decimate_after:
            d *= 2
    return np.ascontiguousarray(np.array(steps, dtype=np.int64).T)


def _octave_lengths(plan: _Plan, n: torch.Tensor, early: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(lengths, hops)``: the samples each octave of ``plan`` sees of inputs of ``n`` samples (``(...,
    octaves)``) and the octaves' hops. An input is ``early``-decimated and then halved after each
    decimating octave, each time rounded up (``ceil(len / 2)`` is soxr's output length), so an octave
    sees ``ceil(n / d)`` for its total decimation ``d`` (``ceil(ceil(n / a) / b) = ceil(n / ab)``): all
    octaves at once, a few kernels instead of a few per octave."""
    # keyed by what the table depends on (not the plan's tuning-dependent columns: one entry for all tunings)
    key = (early, tuple((o.hop, o.decimate_after) for o in plan.octaves))
    d, d_minus_1, hop = CONSTANTS.get(("octave_steps",) + key, lambda: _octave_steps(*key), n.device,
                                      torch.int64).unbind(0)
    return torch.div(n.unsqueeze(-1) + d_minus_1, d, rounding_mode="floor"), hop


def _frame_counts(plan: _Plan, n: torch.Tensor) -> torch.Tensor:
    """Frames librosa returns for signals of ``n`` samples: min over octaves of 1 + len // hop."""
    length, hop = _octave_lengths(plan, n, plan.early)
    return 1 + torch.div(length, hop, rounding_mode="floor").amin(dim=-1)


def _cqt_group(x: torch.Tensor, n_valid: torch.Tensor, plan: _Plan, bands: tuple,
               gidx: Optional[torch.Tensor], pad_mode: str) -> torch.Tensor:
    """CQT of ``x`` ``(B, N)`` for plans sharing ``plan``'s signature, with their ``bands``
    (``(banks, columns, gain)`` of :func:`_band_tensors` or :func:`_grid_tensors`); ``gidx`` picks
    each example's plan."""
    banks, columns, gain = bands
    if gidx is not None:
        gain = gain[gidx]  # (B, n_bins)
    if plan.early > 1:
        x, n_valid = decimate(x, plan.early, lengths=n_valid)
        x = x * plan.input_gain
    # every octave's valid length at once (decimate then takes octave i + 1's, not three small kernels)
    octave_lengths = _octave_lengths(plan, n_valid, 1)[0].unbind(-1)
    responses = []
    for i, o in enumerate(plan.octaves):
        D = _stft(x, n_fft=o.n_fft, hop_length=o.hop, win_length=o.n_fft, window="ones",
                  center=True, pad_mode=pad_mode)
        # one bank for all, or each example's own bank gathered (B, rows, K): a batched matmul
        bank = banks[i] if gidx is None else banks[i][gidx]
        first, last = columns[i]
        responses.append(torch.matmul(bank, D[..., first:last, :]))
        if o.decimate_after:
            x, n_valid = decimate(x, 2, out_lengths=octave_lengths[i + 1])
            x = x * math.sqrt(2.0)
    n_frames = min(r.shape[-1] for r in responses)
    # octaves were computed top-down; stack bottom-up
    C = torch.cat([r[..., :n_frames] for r in reversed(responses)], dim=-2)
    return C * gain.unsqueeze(-1)


def cqt(
    y: torch.Tensor,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    fmin: Optional[float] = None,
    n_bins: int = 84,
    bins_per_octave: int = 12,
    tuning: Union[float, torch.Tensor, None] = 0.0,
    filter_scale: float = 1,
    norm: Optional[float] = 1,
    sparsity: float = 0.01,
    window: str = "hann",
    scale: bool = True,
    pad_mode: str = "constant",
    res_type: str = "soxr_hq",
    lengths: Optional[torch.Tensor] = None,
):
    """Complex constant-Q transform of a batch of waveforms; equals ``librosa.cqt``.

    Same algorithm as librosa 0.11 (early downsampling, one sparsified FFT filter bank per octave,
    2x decimation between octaves, ``sqrt(sr / my_sr)`` bank gain, ``1 / sqrt(filter length)`` bin
    scaling). soxr's 2:1 resampler is replaced by a Kaiser FIR with the same response; the result
    stays within ~3e-5 of librosa (max difference / max magnitude).  When librosa decimates by 4 or
    more *before* the first octave (few, high bins: not the default, nor chroma_cqt's setting),
    soxr's multi-stage decimator treats the first few input samples differently and frame 0 may
    differ by up to ~2e-2 (later frames ~1e-3).

    Args:
        y: ``[shape=(..., time)]`` real waveform, float32 or float64, any device.
        sr: sampling rate (> 0), default 22050.
        hop_length: hop in samples (> 0), default 512. Octaves are decimated while it is even.
        fmin: lowest frequency in Hz (> 0); default ``None`` is C1 (32.70 Hz).
        n_bins: number of bins (> 0), default 84.
        bins_per_octave: default 12.
        tuning: deviation from A440 in fractions of a bin: a float (default 0.0), a tensor of shape
            ``(...)`` (one tuning per example, e.g. from ``estimate_tuning``), or ``None`` to
            estimate one per example with :func:`ser_gpu.functional.pitch.estimate_tuning`.
        filter_scale: filter length multiplier (> 0), default 1.
        norm: norm of each time-domain filter (``None``, a positive number or ``inf``), default 1.
        sparsity: fraction of each filter's FFT L1 mass dropped, in ``[0, 1)``, default 0.01.
        window: ``'hann'`` (default), ``'hamming'``, ``'blackman'`` or ``'ones'``.
        scale: divide bin ``k`` by ``sqrt(filter length k)`` (default True).
        pad_mode: ``'constant'`` (zeros, default), ``'reflect'``, ``'edge'`` or ``'wrap'``;
            only ``'constant'`` with ``lengths``.
        res_type: ``'soxr_hq'`` only (the resampler that is emulated).
        lengths: ``[shape=(...)]`` valid samples per example of a zero-padded batch ``y``.

    Returns:
        ``[shape=(..., n_bins, frames)]`` complex tensor (complex64 for float32 input, complex128
        for float64), ``frames = 1 + time // hop_length`` in the usual case.  With ``lengths``:
        ``(C, frame_lengths)``, each example's first ``frame_lengths`` frames equal librosa's result
        on the unpadded clip and later frames are 0.
    """
    y = valid_audio(y)
    sr = check_positive(sr, "sr")
    hop_length = check_positive_int(hop_length, "hop_length")
    fmin = _C1 if fmin is None else check_positive(fmin, "fmin")
    n_bins = check_positive_int(n_bins, "n_bins")
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    filter_scale = check_positive(filter_scale, "filter_scale")
    norm = _check_norm(norm)
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0.0 <= sparsity < 1.0:
        raise ParameterError(f"sparsity must lie in [0, 1), got {_describe(sparsity)}")
    if not isinstance(window, str) or window not in _WINDOW_COEFFS:
        raise ParameterError(f"window must be one of {tuple(_WINDOW_COEFFS)}, got {_describe(window)}")
    if not isinstance(scale, bool):
        raise ParameterError(f"scale must be True or False, got {_describe(scale)}")
    if pad_mode not in _PAD_MODES:
        raise ParameterError(f"pad_mode must be one of {_PAD_MODES}, got {_describe(pad_mode)}")
    if res_type not in _RES_TYPES:
        raise ParameterError(f"res_type must be one of {_RES_TYPES} (the resampler emulated), got {_describe(res_type)}")
    lengths = check_lengths(lengths, y)
    if lengths is not None and pad_mode != "constant":
        raise ParameterError(
            f"pad_mode must be 'constant' when lengths are given (padding of a batch is zeros), got {pad_mode!r}"
        )

    return _cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave,
                tuning=tuning, filter_scale=filter_scale, norm=norm, sparsity=sparsity, window=window,
                scale=scale, pad_mode=pad_mode, lengths=lengths)


def _cqt(y, *, sr, hop_length, fmin, n_bins, bins_per_octave, tuning, filter_scale, norm, sparsity, window,
         scale, pad_mode, lengths):
    """:func:`cqt` with checked arguments (``fmin`` resolved, ``lengths`` checked)."""
    batch_shape = y.shape[:-1]
    N = y.shape[-1]
    if tuning is None:
        from .pitch import estimate_tuning  # lazy: pitch imports this package's spectrum code

        tuning = estimate_tuning(y, sr=sr, bins_per_octave=bins_per_octave, lengths=lengths)
    values, inverse = _check_tuning(tuning, batch_shape, y.device)

    fixed = (float(sr), hop_length, float(fmin), n_bins, bins_per_octave)
    rest = (float(filter_scale), norm, float(sparsity), window, scale)
    grid = _grid_bands(values, fixed, rest, str(y.device), y.dtype)
    if grid is not None:  # the whole grid's banks, each example's picked by its position on the grid
        plans, bands = [grid[0]], grid[1]
        gidx = to_device(torch.tensor(grid[2]), y.device)[inverse]
    else:  # the batch's own tunings, their banks stacked below
        plan_args = [fixed + (t,) + rest for t in values]
        plans = [_plan_tensors(a, str(y.device), y.dtype).plan for a in plan_args]
        gidx = inverse

    x = y.reshape(-1, N)
    B = x.shape[0]
    n = (lengths.reshape(-1) if lengths is not None
         else torch.full((B,), N, dtype=torch.int64, device=y.device))
    if lengths is not None:
        x = zero_padding(x, n)
    per_example_plan = gidx if gidx is not None else torch.zeros(B, dtype=torch.int64, device=y.device)
    # examples whose plans share a signature run together (normally all of them)
    signatures = {}
    for k, p in enumerate(plans):
        signatures.setdefault(p.signature(), []).append(k)
    if len(signatures) == 1:  # the usual case: no boolean-mask indexing (each one is a host sync)
        frames = _frame_counts(plans[0], n)
        groups = [(plans[0].early, n)]
    else:
        frames = torch.empty(B, dtype=torch.int64, device=y.device)
        groups = []
        for ks in signatures.values():
            sel = torch.isin(per_example_plan, torch.tensor(ks, device=y.device))
            frames[sel] = _frame_counts(plans[ks[0]], n[sel])
            groups.append((plans[ks[0]].early, n[sel]))
    for early, n_group in groups:
        if early > 1 and n_group.numel() and int(n_group.min()) < early:
            raise ParameterError(
                f"y has a clip of length {int(n_group.min())} samples, too short for this constant-Q "
                f"transform (it decimates by {early} before the first octave)"
            )
    if len(signatures) == 1:
        if grid is None:
            bands = _band_tensors(tuple(plan_args), str(x.device), x.dtype)
        C = _cqt_group(x, n, plans[0], bands, gidx, pad_mode)
    else:
        T = max(int(_frame_counts(plans[ks[0]], torch.tensor([N]))) for ks in signatures.values())
        cdtype = torch.complex128 if y.dtype == torch.float64 else torch.complex64
        C = torch.zeros(B, n_bins, T, dtype=cdtype, device=y.device)
        for ks in signatures.values():
            sel = torch.isin(per_example_plan, torch.tensor(ks, device=y.device)).nonzero().squeeze(-1)
            remap = torch.full((len(plans),), -1, dtype=torch.int64, device=y.device)
            remap[torch.tensor(ks, device=y.device)] = torch.arange(len(ks), device=y.device)
            sub_g = remap[per_example_plan[sel]] if len(ks) > 1 else None
            Cg = _cqt_group(x[sel], n[sel], plans[ks[0]],
                            _band_tensors(tuple(plan_args[k] for k in ks), str(x.device), x.dtype), sub_g, pad_mode)
            C[sel, :, : Cg.shape[-1]] = Cg
    C = C.reshape(batch_shape + C.shape[-2:])
    if lengths is None:
        return C
    frame_lengths = frames.reshape(batch_shape)
    return mask_frames(C, frame_lengths), frame_lengths


# --------------------------------------------------------------------------------------------
# chroma_cqt, tonnetz
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _cq_to_chroma_numpy(n_input: int, bins_per_octave: int, n_chroma: int, fmin: float) -> np.ndarray:
    n_merge = bins_per_octave // n_chroma
    m = np.repeat(np.eye(n_chroma), n_merge, axis=1)
    m = np.roll(m, -(n_merge // 2), axis=1)  # centre each chroma on its own bin
    n_octaves = int(np.ceil(n_input / bins_per_octave))
    m = np.tile(m, n_octaves)[:, :n_input]
    midi_0 = np.mod(12 * (np.log2(fmin) - np.log2(440.0)) + 69, 12)
    roll = int(np.round(midi_0 * (n_chroma / 12.0)))
    m = np.roll(m, roll, axis=0)
    m.setflags(write=False)
    return m


def cq_to_chroma(n_input: int, *, bins_per_octave: int = 12, n_chroma: int = 12,
                 fmin: Optional[float] = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Matrix folding constant-Q bins onto chroma; equals ``librosa.filters.cq_to_chroma`` (base C).

    Returns:
        ``[shape=(n_chroma, n_input)]`` 0/1 tensor.
    """
    n_input = check_positive_int(n_input, "n_input")
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    n_chroma = check_positive_int(n_chroma, "n_chroma")
    fmin = _C1 if fmin is None else check_positive(fmin, "fmin")
    if bins_per_octave % n_chroma:
        raise ParameterError(
            f"bins_per_octave={bins_per_octave} must be an integer multiple of n_chroma={n_chroma}"
        )
    m = _cq_to_chroma_numpy(n_input, bins_per_octave, n_chroma, float(fmin))
    return to_device(torch.from_numpy(m.copy()), device, dtype)


def chroma_cqt(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    C: Optional[torch.Tensor] = None,
    hop_length: int = 512,
    fmin: Optional[float] = None,
    norm: Optional[float] = math.inf,
    threshold: float = 0.0,
    tuning: Union[float, torch.Tensor, None] = None,
    n_chroma: int = 12,
    n_octaves: int = 7,
    bins_per_octave: int = 36,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
):
    """Constant-Q chromagram; equals ``librosa.feature.chroma_cqt`` (``cqt_mode='full'``).

    ``|cqt|`` with ``n_octaves * bins_per_octave`` bins is folded onto ``n_chroma`` pitch classes,
    values below ``threshold`` are zeroed and each frame is normalised.

    Args:
        y: ``[shape=(..., time)]`` waveform (ignored when ``C`` is given).
        sr: sampling rate, default 22050.
        C: ``[shape=(..., n_bins, frames)]`` precomputed constant-Q *magnitude* (real, e.g.
            ``cqt(...).abs()``).
        hop_length: default 512. fmin: default C1.
        norm: per-frame norm (``None``, positive number, ``inf``), default ``inf``.
        threshold: values below it are set to 0, default 0.0.
        tuning: float, per-example tensor ``(...)`` or ``None`` (default: estimated per example
            with ``bins_per_octave`` resolution, as librosa).
        n_chroma: default 12. n_octaves: default 7. bins_per_octave: default 36, a multiple of
            ``n_chroma``.
        lengths: ``[shape=(...)]`` valid samples per example of a padded batch ``y``.
        frame_lengths: ``[shape=(...)]`` valid frames per example when ``C`` is given.

    Returns:
        ``[shape=(..., n_chroma, frames)]`` real tensor; with ``lengths`` (or ``frame_lengths``)
        ``(chroma, frame_lengths)`` with frames past each example's length set to 0.
    """
    n_chroma = check_positive_int(n_chroma, "n_chroma")
    n_octaves = check_positive_int(n_octaves, "n_octaves")
    bins_per_octave = check_positive_int(bins_per_octave, "bins_per_octave")
    if bins_per_octave % n_chroma:
        raise ParameterError(
            f"bins_per_octave={bins_per_octave} must be an integer multiple of n_chroma={n_chroma}"
        )
    fmin = _C1 if fmin is None else check_positive(fmin, "fmin")
    norm = _check_norm(norm)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise ParameterError(f"threshold must be a finite number or None, got {_describe(threshold)}")
    check_length_kind(C is None, lengths, frame_lengths, spectral="C")
    with_lengths = lengths is not None or frame_lengths is not None
    if C is None:
        if y is None:
            raise ParameterError("either y (a waveform) or C (a constant-Q magnitude) must be given, got neither")
        out = cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_octaves * bins_per_octave,
                  bins_per_octave=bins_per_octave, tuning=tuning, lengths=lengths)
        if lengths is not None:
            out, frame_lengths = out
        C = out.abs()
    else:
        if isinstance(C, torch.Tensor) and C.is_complex():
            raise ParameterError(f"C must be a real magnitude (pass cqt(...).abs()), got {_describe(C)}")
        C = valid_spectrogram(C, name="C")
        frame_lengths = check_frame_lengths(frame_lengths, C)
    chroma = _chroma_from_cqt(C, frame_lengths, bins_per_octave=bins_per_octave, n_chroma=n_chroma, fmin=fmin,
                              norm=norm, threshold=threshold)
    return (chroma, frame_lengths) if with_lengths else chroma


def _chroma_from_cqt(C, frame_lengths, *, bins_per_octave=36, n_chroma=12, fmin=None, norm=math.inf,
                     threshold=0.0):
    """:func:`chroma_cqt` of a checked constant-Q magnitude ``C`` (no validation, no host sync):
    frames past ``frame_lengths`` (if given) are zeroed."""
    n_input, fmin = C.shape[-2], float(_C1 if fmin is None else fmin)
    M = CONSTANTS.get(("cq_to_chroma", n_input, bins_per_octave, n_chroma, fmin),
                      lambda: _cq_to_chroma_numpy(n_input, bins_per_octave, n_chroma, fmin), C.device, C.dtype)
    chroma = torch.matmul(M, C)
    if threshold is not None:
        chroma = chroma.masked_fill(chroma < threshold, 0.0)
    chroma = _normalize(chroma, norm=norm, axis=-2)
    return chroma if frame_lengths is None else mask_frames(chroma, frame_lengths)


_CHROMA_KWARGS = frozenset({"hop_length", "fmin", "norm", "threshold", "tuning", "n_chroma", "n_octaves",
                            "bins_per_octave"})


@functools.lru_cache(maxsize=16)
def _tonnetz_matrix(n_chroma: int) -> np.ndarray:
    dim_map = np.linspace(0, 12, num=n_chroma, endpoint=False)
    scale = np.asarray([7.0 / 6, 7.0 / 6, 3.0 / 2, 3.0 / 2, 2.0 / 3, 2.0 / 3])
    V = np.multiply.outer(scale, dim_map)
    V[::2] -= 0.5  # even rows are sines
    R = np.array([1, 1, 1, 1, 0.5, 0.5])  # fifths, minor thirds, major thirds
    phi = R[:, np.newaxis] * np.cos(np.pi * V)
    phi.setflags(write=False)
    return phi


def tonnetz(
    y: Optional[torch.Tensor] = None,
    *,
    sr: float = 22050,
    chroma: Optional[torch.Tensor] = None,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
    **chroma_kwargs,
):
    """Tonal centroid features; equals ``librosa.feature.tonnetz``.

    Each frame of the chromagram (``chroma_cqt(y)`` unless given) is L1-normalised and projected on
    the fifths, minor-thirds and major-thirds circles (6 x n_chroma matrix).

    Args:
        y: ``[shape=(..., time)]`` waveform (ignored when ``chroma`` is given).
        sr: sampling rate, default 22050.
        chroma: ``[shape=(..., n_chroma, frames)]`` precomputed chromagram.
        lengths: ``[shape=(...)]`` valid samples per example of a padded batch ``y``.
        frame_lengths: ``[shape=(...)]`` valid frames per example when ``chroma`` is given.
        **chroma_kwargs: passed to :func:`chroma_cqt` (``hop_length``, ``tuning``, ...).

    Returns:
        ``[shape=(..., 6, frames)]``; with ``lengths`` (or ``frame_lengths``)
        ``(tonnetz, frame_lengths)`` with frames past each example's length set to 0.
    """
    unknown = sorted(set(chroma_kwargs) - _CHROMA_KWARGS)
    if unknown:
        raise ParameterError(f"unexpected keyword argument(s) {unknown} for tonnetz; chroma_cqt accepts "
                             f"{sorted(_CHROMA_KWARGS)}")
    check_length_kind(chroma is None, lengths, frame_lengths, spectral="chroma")
    with_lengths = lengths is not None or frame_lengths is not None
    if chroma is None:
        if y is None:
            raise ParameterError("either y (a waveform) or chroma must be given, got neither")
        out = chroma_cqt(y, sr=sr, lengths=lengths, **chroma_kwargs)
        if lengths is not None:
            chroma, frame_lengths = out
        else:
            chroma = out
    else:
        if isinstance(chroma, torch.Tensor) and chroma.is_complex():
            raise ParameterError(f"chroma must be real, got {_describe(chroma)}")
        chroma = valid_spectrogram(chroma, name="chroma")
        frame_lengths = check_frame_lengths(frame_lengths, chroma)
    ton = _tonnetz_from_chroma(chroma, frame_lengths)
    return (ton, frame_lengths) if with_lengths else ton


def _tonnetz_from_chroma(chroma, frame_lengths):
    """:func:`tonnetz` of a checked chroma (no validation, no host sync); frames past
    ``frame_lengths`` (if given) are zeroed."""
    n_chroma = chroma.shape[-2]
    phi = CONSTANTS.get(("tonnetz", n_chroma), lambda: _tonnetz_matrix(n_chroma), chroma.device, chroma.dtype)
    ton = torch.matmul(phi, _normalize(chroma, norm=1, axis=-2))
    return ton if frame_lengths is None else mask_frames(ton, frame_lengths)
