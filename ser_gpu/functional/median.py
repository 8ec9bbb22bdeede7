"""Running medians along time or frequency, as ``scipy.ndimage.median_filter(mode='reflect')``.

The hot spot of HPSS (a 31-wide median at every time-frequency point, twice). Two exact eager
implementations, both pure elementwise min/max programs (bit-identical to a sort, ties included):
for kernel sizes ``2**j - 1`` (librosa's 31) windows share pre-sorted runs of samples (~26 min/max
per output); for other sizes a selection network per window (274 for 31), over chunks of
examples/rows so that the working set stays under ``chunk_size`` elements whatever the batch size.

On CUDA (with Triton importable) :func:`median_filter` and the HPSS medians run one fused kernel
instead (:mod:`ser_gpu.kernels.median_triton`: each output's window is loaded once and the same
selection network runs in registers); the result is bit-identical to the eager path.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import torch
import torch.nn.functional as nnf

from .._threads import current_threads, intra_op_threads
from .._validation import check_frame_lengths, check_positive_int, valid_spectrogram
from ..errors import ParameterError
from .selection import merge_program as _merge_program
from .selection import selection_network as _selection_network

__all__ = ["median_filter", "DEFAULT_CHUNK_SIZE"]

#: Default upper bound on the median filters' working set, in elements: 2**24 = 64 MiB in float32,
#: 128 MiB in float64. The selection network's windowed temporary is rows x length x kernel; the
#: run-based median (kernel 2**j - 1) holds about (j + 2) padded copies of its chunk of examples.
#: On a single CPU thread the chunks are further capped to cache-sized pieces, which is faster.
DEFAULT_CHUNK_SIZE = 2**24


def _check_chunk_size(chunk_size) -> int:
    return check_positive_int(chunk_size, "chunk_size")


def _reflect_index(pos: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """scipy.ndimage 'reflect' (half-sample symmetric, ``d c b a | a b c d | d c b a``), periodic."""
    period = 2 * n
    j = torch.remainder(pos, period)
    return torch.where(j < n, j, period - 1 - j)


def _select_median(padded: torch.Tensor, k: int, L: int) -> torch.Tensor:
    """Rank ``k // 2`` of every window ``padded[:, t : t + k]``, ``t < L``, by a selection network.

    Only exact min/max, so the result is bit-identical to a sort-based median; on CPU it is several
    times faster than ``torch.median`` over ``unfold`` windows and on GPU it is purely elementwise.
    """
    program, target = _selection_network(k)
    slots = [padded[:, j : j + L] for j in range(k)]  # views, no copy
    slots += [None] * (len(slots) + 1)  # the network's +inf keys: never read (pruned)
    return _run_program(program, slots)[target]


#: On CPU each min/max works on at most this many elements: small enough to stay in cache and under
#: torch's intra-op parallel grain (forking per tiny op is slow, pathologically so on a busy machine).
_CPU_OP_ELEMENTS = 2**15


def _window_median(rows: torch.Tensor, idx: torch.Tensor, k: int, chunk_size: int,
                   row_group: Optional[int] = None) -> torch.Tensor:
    """Median over ``k``-wide windows of gathered rows.

    ``rows``: ``(R, L)``. ``idx``: ``(L + k - 1,)`` source positions shared by all rows, or
    ``(G, L + k - 1)`` with row ``r`` using ``idx[r // row_group]``. Output ``(R, L)``: the element of
    rank ``k // 2`` of each window (scipy's choice, the upper median for even ``k``). At most
    ``chunk_size`` elements of windowed data (rows x L x k) are live at once.
    """
    R, L = rows.shape
    out = torch.empty_like(rows)
    per_chunk = max(1, chunk_size // (L * k))
    if rows.device.type == "cpu":
        per_chunk = min(per_chunk, max(1, _CPU_OP_ELEMENTS // L))
    for r0 in range(0, R, per_chunk):
        r1 = min(R, r0 + per_chunk)
        block = rows[r0:r1]
        if idx.ndim == 1:
            padded = block.index_select(1, idx)
        else:
            groups = torch.arange(r0, r1, device=rows.device) // row_group
            padded = torch.gather(block, 1, idx[groups])
        out[r0:r1] = _select_median(padded, k, L)
    return out


# ---- sliding median by shared sorted runs (kernel sizes 2**j - 1, e.g. librosa's 31)
#
# Neighbouring windows share most of their elements, and the selection network above re-sorts them
# for every output. For k = 2M - 1 (M a power of two) the windows tile exactly onto sorted runs:
#
# * "runs": for every position p = -1 (mod 2**j), the 2**j samples from p on, sorted; a run of
#   2**j is the odd-even merge of two runs of 2**(j-1), so all runs up to M cost ~4 comparators
#   per position in total;
# * "blocks": the M outputs s..s+M-1 (s = 0 mod M) share the core P[s+M-1 : s+2M-1], a run of M.
#   Halving a block adds M/2 samples (a run) to each half's core, and a window's median can only be
#   one of the middle M/2 ranks of its half's core plus what is still missing, so each half keeps
#   just ranks [M/2, M) of the merge (the others are provably below/above the median); at size 1
#   that is the median itself.
#
# With pruned Batcher merges this is ~26 elementwise min/max per output for k = 31 instead of 274,
# still exact selections (bit-identical to a sort, ties included).


def _run_program(program, slots: list) -> list:
    for kind, i, j, need_i, need_j in program:
        if kind == "swap":
            slots[i], slots[j] = slots[j], slots[i]
            continue
        a, b = slots[i], slots[j]
        slots[i] = torch.minimum(a, b) if need_i else None
        slots[j] = torch.maximum(a, b) if need_j else None
    return slots


def _merge_keep(first: list, second: list, lo: int, hi: int) -> list:
    """Ranks ``[lo, hi)`` (as a list of tensors) of the union of two sorted lists of tensors."""
    program, n, h, targets = _merge_program(len(first), len(second), lo, hi)
    slots = [None] * n
    slots[: len(first)] = first
    slots[h : h + len(second)] = second
    _run_program(program, slots)
    return [slots[t] for t in targets]


def _runs_median_ok(k: int) -> bool:
    """Whether :func:`_runs_median` applies: ``k = 2**j - 1 >= 3`` (librosa's default 31 is)."""
    return k >= 3 and (k + 1) & k == 0


def _runs_median(P: torch.Tensor, k: int) -> torch.Tensor:
    """Median of every window ``P[:, o : o + k]`` along axis 1 of ``(G, L + k - 1, W)``; ``(G, L, W)``.

    ``k = 2M - 1`` with ``M`` a power of two (see the comment above); rank ``k // 2`` exactly.
    """
    G, Lp, W = P.shape
    L = Lp - k + 1
    M = (k + 1) // 2
    levels = M.bit_length() - 1
    n_blocks = -(-L // M)
    Lq = (n_blocks + 2) * M  # every run the blocks read lies inside; the tail never reaches an output
    P = nnf.pad(P, (0, 0, 0, Lq - Lp)) if Lq > Lp else P[:, :Lq]
    runs = [[P]]  # runs[j][q][:, i]: rank q of the sorted run P[i * 2**j + 2**j - 1 :][: 2**j]
    for j in range(1, levels + 1):
        n = Lq >> j
        prev = runs[-1]
        runs.append(_merge_keep([s[:, 1 : 2 * n - 2 : 2] for s in prev],
                                [s[:, 2 : 2 * n - 1 : 2] for s in prev], 0, 2 * len(prev)))
    core = [s[:, :n_blocks] for s in runs[levels]]  # block b's core is the run of M at b * M + M - 1
    m, blocks = M, n_blocks
    while m >= 2:
        run = runs[(m // 2).bit_length() - 1]
        right = 4 * M // m - 1  # the run of m / 2 just after the right half's last window start
        # (G, blocks, 2, W) views: block b's halves read runs 2b (left) and 2b + right (right);
        # as_strided does not check bounds against the runs computed, so check once here
        assert 2 * (blocks - 1) + right < run[0].shape[1], (k, Lp, m)
        extra = [s.as_strided((G, blocks, 2, W), (s.stride(0), 2 * s.stride(1), right * s.stride(1), s.stride(2)),
                              s.storage_offset())
                 for s in run]
        kept = _merge_keep([c.unsqueeze(2) for c in core], extra, m // 2, m)
        core = [c.reshape(G, 2 * blocks, W) for c in kept]
        m, blocks = m // 2, 2 * blocks
    return core[0][:, :L]


#: On CPU the run-based median works on this many padded elements (examples x length x width) at
#: a time: a few examples, whose run tables stay near the L2/L3 caches.
_CPU_RUNS_ELEMENTS = 2**19


def _runs_per_chunk(padded_elements: int, k: int, chunk_size: int, device: torch.device) -> int:
    """Examples per chunk: the run tables and block temporaries hold ~(log2(k + 1) + 2) padded
    copies, kept under ``chunk_size`` elements (and cache-sized on CPU)."""
    copies = (k + 1).bit_length() + 1
    per = max(1, chunk_size // (padded_elements * copies))
    if device.type == "cpu":
        per = min(per, max(1, _CPU_RUNS_ELEMENTS // padded_elements))
    return per


def _one_cpu_thread(device: torch.device):
    """Run the enclosed ops with one intra-op thread on CPU (this thread's setting, restored after).

    The median filters are hundreds of short, memory-bound min/max ops per chunk; with several
    intra-op threads each is a fork/join, and on a machine whose cores are busy with other processes
    every join can wait for a descheduled (or spinning) worker. Measured on a 2-core machine: with
    the cores shared, 2 threads ran the medians 2-6x slower than 1; idle, 2 threads were only ~1.3x
    faster. One thread is the robust choice; the FFTs and matmuls around it keep all threads.
    """
    return intra_op_threads(1) if device.type == "cpu" and current_threads() > 1 else contextlib.nullcontext()


def _median_time_runs(S: torch.Tensor, k: int, frame_lengths: Optional[torch.Tensor],
                      chunk_size: int) -> torch.Tensor:
    B, F, T = S.shape
    pos = torch.arange(T + k - 1, device=S.device) - k // 2
    if frame_lengths is None:
        idx = _reflect_index(pos, torch.tensor(T, device=S.device))
    else:
        idx = _reflect_index(pos.unsqueeze(0), frame_lengths.reshape(-1, 1))  # (B, T + k - 1)
    St = S.transpose(-1, -2)  # time on axis 1, frequency contiguous along the width
    out = torch.empty((B, T, F), dtype=S.dtype, device=S.device)
    per = _runs_per_chunk((T + k - 1 + (k + 1)) * F, k, chunk_size, S.device)
    for b0 in range(0, B, per):
        b1 = min(B, b0 + per)
        if idx.ndim == 1:
            P = St[b0:b1].index_select(1, idx)
        else:
            P = torch.gather(St[b0:b1], 1, idx[b0:b1].unsqueeze(-1).expand(-1, -1, F))
        out[b0:b1] = _runs_median(P, k)
    return out.transpose(-1, -2)


def _median_freq_runs(S: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    B, F, T = S.shape
    pos = torch.arange(F + k - 1, device=S.device) - k // 2
    idx = _reflect_index(pos, torch.tensor(F, device=S.device))
    out = torch.empty_like(S)
    per = _runs_per_chunk((F + k - 1 + (k + 1)) * T, k, chunk_size, S.device)
    for b0 in range(0, B, per):
        b1 = min(B, b0 + per)
        out[b0:b1] = _runs_median(S[b0:b1].index_select(1, idx), k)
    return out


#: Set to the error when the fused kernel failed to compile or run once; the eager median is then used.
_FUSED_ERROR: Optional[str] = None


def _fused(S: torch.Tensor, k: int) -> bool:
    """Whether the fused kernel (:mod:`ser_gpu.kernels.median_triton`) takes this median: CUDA with
    Triton importable (see :func:`ser_gpu.kernels.fused_enabled`), ``k <= MAX_KERNEL``, and the
    kernel has not failed before."""
    from ..kernels import fused_enabled

    if _FUSED_ERROR is not None or not fused_enabled(S.device):
        return False
    from ..kernels.median_triton import MAX_KERNEL

    return k <= MAX_KERNEL


def _try_fused(S, k, axis, frame_lengths):
    """The fused median, or None (with a one-time RuntimeWarning, eager from then on) if the kernel
    cannot compile or run here: a broken Triton install must not stop the features. The CUDA tests
    call the kernel directly, so such a failure still fails them."""
    global _FUSED_ERROR
    from ..kernels import median_triton

    try:
        return median_triton.median(S, k, axis, frame_lengths)
    except Exception as exc:  # noqa: BLE001 - any compile/launch error: fall back, loudly
        _FUSED_ERROR = repr(exc)
        warnings.warn(f"ser_gpu: the fused median kernel failed ({exc!r}); using the eager median from now on",
                      RuntimeWarning, stacklevel=3)
        return None


def _without_windows(S: torch.Tensor, k: int, axis: str, frame_lengths: Optional[torch.Tensor],
                     chunk_size: int) -> Optional[torch.Tensor]:
    """The median by the fast routes, in order: nothing to do (k = 1), the fused kernel (CUDA), the
    sorted-runs program (k = 2**j - 1); ``None`` when only the gathered-window network applies."""
    if k == 1:
        return S.clone()
    if _fused(S, k):
        out = _try_fused(S, k, axis, frame_lengths)
        if out is not None:
            return out
    if _runs_median_ok(k):
        with _one_cpu_thread(S.device):
            if axis == "time":
                return _median_time_runs(S, k, frame_lengths, chunk_size)
            return _median_freq_runs(S, k, chunk_size)
    return None


def _median_time(S: torch.Tensor, k: int, frame_lengths: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
    """``S``: ``(B, F, T)``; per-example reflection at each example's own last valid frame."""
    B, F, T = S.shape
    out = _without_windows(S, k, "time", frame_lengths, chunk_size)
    if out is not None:
        return out
    pos = torch.arange(T + k - 1, device=S.device) - k // 2
    rows = S.reshape(B * F, T)
    if frame_lengths is None:
        idx = _reflect_index(pos, torch.tensor(T, device=S.device))
        out = _window_median(rows, idx, k, chunk_size)
    else:
        idx = _reflect_index(pos.unsqueeze(0), frame_lengths.reshape(-1, 1))  # (B, T + k - 1)
        out = _window_median(rows, idx, k, chunk_size, row_group=F)
    return out.reshape(B, F, T)


def _median_freq(S: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    B, F, T = S.shape
    out = _without_windows(S, k, "freq", None, chunk_size)
    if out is not None:
        return out
    pos = torch.arange(F + k - 1, device=S.device) - k // 2
    idx = _reflect_index(pos, torch.tensor(F, device=S.device))
    rows = S.transpose(-1, -2).reshape(B * T, F)
    out = _window_median(rows, idx, k, chunk_size)
    return out.reshape(B, T, F).transpose(-1, -2)  # a view: no third full-size copy


def median_filter(
    S: torch.Tensor,
    *,
    kernel_size: int = 31,
    axis: str = "time",
    frame_lengths: Optional[torch.Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Running median along time or frequency; equals ``scipy.ndimage.median_filter(mode='reflect')``.

    ``axis='time'`` equals ``median_filter(S, size=(1, kernel_size), mode='reflect')`` and
    ``axis='freq'`` equals ``size=(kernel_size, 1)``, per ``(freq, frames)`` matrix, as
    ``librosa.decompose.hpss`` calls them. scipy's 'reflect' repeats the edge sample
    (``d c b a | a b c d``), unlike torch's 'reflect'. For an even ``kernel_size`` the window is
    ``[i - k//2, i + k - 1 - k//2]`` and the upper median is taken, as scipy.

    Note: scipy (1.17) reads outside the array when ``kernel_size // 2 >= 4 * n`` (``n`` = frames
    or bins; e.g. <= 3 frames with a 31-wide window); here the reflection is applied periodically as
    scipy documents it.

    On CUDA with Triton importable (and ``kernel_size <= 63``) one fused kernel computes it
    (:mod:`ser_gpu.kernels.median_triton`), equal to the eager path bit for bit except that a zero
    median may carry the other sign when the input mixes ``-0.0`` and ``+0.0`` (equal values; HPSS
    magnitudes are never ``-0.0``). ``chunk_size`` then does not apply (the kernel needs no
    temporaries beyond the output). Should the kernel fail to compile or run, a ``RuntimeWarning``
    says so once and the eager path is used from then on.

    Args:
        S: ``[shape=(..., freq, frames)]`` real float32/float64 tensor.
        kernel_size: window width (positive int), default 31.
        axis: ``'time'`` (along frames) or ``'freq'`` (along bins).
        frame_lengths: ``[shape=(...)]`` valid frames per example; the time median then reflects
            at each example's own last valid frame, so padded frames never enter a valid output.
            Outputs at padded frames are unspecified (not zeroed).
        chunk_size: bound on the elements of the median's temporaries held at once (the windowed
            rows x length x kernel_size of the selection network, or about log2(kernel_size + 1) + 2
            padded copies of a chunk of examples for kernel sizes 2**j - 1); default ``2**24``.

    Returns:
        ``[shape=(..., freq, frames)]`` median-filtered ``S``.
    """
    S = valid_spectrogram(S)
    k = check_positive_int(kernel_size, "kernel_size")
    chunk_size = _check_chunk_size(chunk_size)
    if axis not in ("time", "freq"):
        raise ParameterError(f"axis must be 'time' or 'freq', got {axis!r}")
    frame_lengths = check_frame_lengths(frame_lengths, S)
    X = S.reshape((-1,) + S.shape[-2:])
    if axis == "time":
        out = _median_time(X, k, frame_lengths, chunk_size)
    else:
        out = _median_freq(X, k, chunk_size)
    return out.reshape(S.shape)
