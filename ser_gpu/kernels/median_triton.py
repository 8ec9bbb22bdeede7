"""Fused running median along time or frequency (Triton), bit-identical to the eager min/max programs.

The eager medians of :mod:`ser_gpu.functional.median` are hundreds of full-tensor min/max passes
(each reads and writes the whole ``(B, F, T)`` spectrogram). Here one kernel computes each output in
registers: it loads the output's ``k`` window samples once (scipy 'reflect' indices, per-example
reflection at each example's own last valid frame), runs :func:`~ser_gpu.functional.selection.selection_network`
(274 min/max for k = 31) on them, and stores the median. Selections only, so the result equals the
eager path bit for bit (ties included; NaN propagates through min/max as ``torch.minimum`` does).

The straight-line network is generated as Triton source for each kernel size (the network is a
Python list of comparators, which Triton cannot loop over) and compiled once per size.

Entry point: :func:`median` (``(B, F, T)`` contiguous float32/float64 on CUDA, or on CPU under
``TRITON_INTERPRET=1``). The library calls it through :func:`ser_gpu.functional.median.median_filter`
and HPSS when :func:`ser_gpu.kernels.fused_enabled` says so; the eager fallback is the functional code.
"""

from __future__ import annotations

import functools
import linecache
from typing import Optional

import torch

__all__ = ["median", "MAX_KERNEL"]

#: Largest window the fused kernel takes (its k live values sit in registers); wider ones run eager.
MAX_KERNEL = 63

_BLOCK = 256
_NUM_WARPS = 4


def _network_source(k: int) -> str:
    """Triton source of ``_median_k{k}``: straight-line min/max code of the selection network."""
    from ..functional.selection import selection_network

    program, target = selection_network(k)
    lines = []
    for j in range(k):
        lines.append(f"    q = _reflect(pos + ({j - k // 2}), n)")
        lines.append(f"    v{j} = tl.load(x_ptr + base + q * stride, mask=valid, other=0.0)")
    names = [f"v{j}" for j in range(k)] + [None] * (k + 2)
    fresh = 0
    for kind, i, j, need_i, need_j in program:
        if kind == "swap":
            names[i], names[j] = names[j], names[i]
            continue
        a, b = names[i], names[j]
        lo = hi = None
        if need_i:
            lo = f"m{fresh}"
            fresh += 1
            lines.append(f"    {lo} = tl.minimum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)")
        if need_j:
            hi = f"m{fresh}"
            fresh += 1
            lines.append(f"    {hi} = tl.maximum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)")
        names[i], names[j] = lo, hi
    body = "\n".join(lines)
    return f'''
@triton.jit
def _reflect(p, n):
    # scipy.ndimage 'reflect' (d c b a | a b c d | d c b a), periodic for windows wider than 2n
    period = 2 * n
    r = p % period
    r = tl.where(r < 0, r + period, r)
    return tl.where(r < n, r, period - 1 - r)


@triton.jit
def _median_k{k}(x_ptr, out_ptr, len_ptr, N, F, T, AXIS_TIME: tl.constexpr, PER_EXAMPLE: tl.constexpr,
                 BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = o < N
    o = tl.where(valid, o, 0)
    b = o // (F * T)
    r = o - b * (F * T)
    f = r // T
    t = r - f * T
    if AXIS_TIME:
        pos = t
        stride = 1
        base = b * (F * T) + f * T
        if PER_EXAMPLE:
            n = tl.load(len_ptr + b, mask=valid, other=1)
        else:
            n = tl.zeros_like(t) + T
    else:
        pos = f
        stride = T
        base = b * (F * T) + t
        n = tl.zeros_like(f) + F
{body}
    tl.store(out_ptr + o, {names[target]}, mask=valid)
'''


@functools.lru_cache(maxsize=None)
def _kernel(k: int):
    import triton
    import triton.language as tl

    src = _network_source(k)
    # triton.jit reads the function's source with inspect: register the generated text in linecache
    filename = f"<ser_gpu.kernels.median_triton k={k}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    namespace = {"triton": triton, "tl": tl, "__name__": "ser_gpu.kernels._median_generated"}
    exec(compile(src, filename, "exec"), namespace)  # noqa: S102 - our own generated source
    return namespace[f"_median_k{k}"]


def median(S: torch.Tensor, k: int, axis: str, frame_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Running median of width ``k`` (``2 <= k <= MAX_KERNEL``) of ``(B, F, T)`` ``S`` along ``axis``.

    Equals :func:`ser_gpu.functional.median._median_time` (``axis='time'``; ``frame_lengths``
    ``(B,)`` int64 makes each example reflect at its own last valid frame) or ``_median_freq``
    (``axis='freq'``) bit for bit. No validation: the callers have checked their arguments.
    """
    if not 2 <= k <= MAX_KERNEL:
        raise ValueError(f"fused median takes 2 <= k <= {MAX_KERNEL}, got {k}")
    S = S.contiguous()
    B, F, T = S.shape
    out = torch.empty_like(S)
    N = S.numel()
    if N == 0:
        return out
    per_example = axis == "time" and frame_lengths is not None
    lens = frame_lengths.to(device=S.device, dtype=torch.int64).contiguous() if per_example else S.new_zeros(1, dtype=torch.int64)
    grid = (-(-N // _BLOCK),)
    _kernel(k)[grid](S, out, lens, N, F, T, AXIS_TIME=axis == "time", PER_EXAMPLE=per_example, BLOCK=_BLOCK,
                     num_warps=_NUM_WARPS)
    return out
