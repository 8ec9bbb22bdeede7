"""Waveform effects, batched with per-example lengths; each equals its ``librosa.effects`` namesake."""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Union

import numpy as np
import torch

from .._validation import _describe, check_lengths, check_positive_int, valid_audio
from ..errors import ParameterError
from .features import rms
from .spectrum import _is_max, _zero_padding

__all__ = ["trim"]

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
    if not use_max:
        if callable(ref):
            raise ParameterError(f"ref must be a number or max (builtin max, np.max, torch.amax, 'max'), "
                                 f"got the callable {_describe(ref)}")
        ref_db = _ref_db(ref)
    given_lengths = lengths is not None
    lengths = check_lengths(lengths, y)

    batch_shape = y.shape[:-1]
    T = y.shape[-1]
    flat = y.reshape(-1, T)
    if given_lengths:
        lens = lengths.reshape(-1)
    else:
        lens = torch.full((flat.shape[0],), T, dtype=torch.int64, device=y.device)

    # librosa squares float32 samples; summing the (exact) float64 squares then rounding once gives
    # that float32 mean to within an ulp, whatever order numpy summed in
    x = _zero_padding(flat.to(torch.float32), lens if given_lengths else None).to(torch.float64)
    power64 = rms(x, frame_length=frame_length, hop_length=hop_length, center=True, pad_mode="constant")[:, 0, :] ** 2
    frame_rms = torch.sqrt(power64.to(torch.float32))
    power = frame_rms * frame_rms

    n_frames = power.shape[-1]
    pad = frame_length // 2
    # librosa frames the centred signal: 1 + (length + 2 * pad - frame_length) // hop (odd lengths too)
    valid_frames = 1 + torch.div(lens + 2 * pad - frame_length, hop_length, rounding_mode="floor")
    frame_idx = torch.arange(n_frames, device=y.device)
    valid = frame_idx < valid_frames.unsqueeze(-1)

    log_spec = 10.0 * torch.log10(torch.clamp(power, min=_AMIN_POWER))
    if use_max:
        ref_power = power.masked_fill(~valid, 0.0).amax(dim=-1, keepdim=True)
        db = log_spec - 10.0 * torch.log10(torch.clamp(ref_power, min=_AMIN_POWER))
    else:
        # a float64 reference is subtracted in float64 and rounded back, as numpy's in-place `-=` does
        work = torch.float64 if ref_db.dtype == np.float64 else torch.float32
        db = (log_spec.to(work) - torch.tensor(float(ref_db), dtype=work, device=y.device)).to(torch.float32)
    non_silent = (db > -top_db) & valid

    any_frame = non_silent.any(dim=-1)
    first = torch.where(non_silent, frame_idx, n_frames).amin(dim=-1)
    last = torch.where(non_silent, frame_idx, -1).amax(dim=-1)
    zero = torch.zeros_like(lens)
    start = torch.where(any_frame, first * hop_length, zero)
    end = torch.where(any_frame, torch.minimum((last + 1) * hop_length, lens), zero)
    new_lengths = end - start

    M = int(new_lengths.max()) if new_lengths.numel() else 0
    pos = torch.arange(M, device=y.device)
    gather_idx = (start.unsqueeze(-1) + pos).clamp(max=T - 1)
    trimmed = torch.gather(flat, -1, gather_idx).masked_fill(pos >= new_lengths.unsqueeze(-1), 0.0)

    trimmed = trimmed.reshape(batch_shape + (M,))
    intervals = torch.stack([start, end], dim=-1).reshape(batch_shape + (2,))
    if given_lengths:
        return trimmed, intervals, new_lengths.reshape(batch_shape)
    return trimmed, intervals
