"""The padded-batch contract, in one place: ``lengths`` -> ``frame_lengths`` -> masks.

A batch is a zero-padded ``(B, T)`` tensor plus ``lengths`` (valid samples per example). Every
framed feature turns them into ``frame_lengths`` with :func:`num_frames` (librosa's frame count
for a clip of that length), and everything past an example's length (samples) or frame length
(frames) is zero: padding never changes a valid value. The masks below are the only place that
contract is written out; functional code, transforms and the model all use them.
"""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np
import torch

from .._validation import _describe, check_bool, check_nonnegative_int, check_positive_int
from ..errors import ParameterError

__all__ = ["valid_mask", "padding_mask", "num_frames", "frame_mask", "zero_padding", "mask_frames", "pad_per_example"]


def _integer_lengths(lengths, name: str = "lengths") -> torch.Tensor:
    """``lengths`` as an integer tensor (a Python or numpy integer, or an integer numpy array, becomes
    one); anything else is refused. Its values are not read here: no host sync."""
    if isinstance(lengths, (numbers.Integral, np.integer)) and not isinstance(lengths, (bool, np.bool_)):
        return torch.tensor(int(lengths))
    if isinstance(lengths, np.ndarray) and np.issubdtype(lengths.dtype, np.integer):
        return torch.from_numpy(lengths)
    if not isinstance(lengths, torch.Tensor) or lengths.is_floating_point() or lengths.is_complex() \
            or lengths.dtype == torch.bool:
        raise ParameterError(f"{name} must be an integer tensor, got {_describe(lengths)}")
    return lengths


def valid_mask(lengths: torch.Tensor, size: int, *, device=None) -> torch.Tensor:
    """``[shape=(..., size)]`` bool: True at positions ``< lengths`` (samples or frames) of each example.

    ``lengths`` is an integer tensor and ``size`` a non-negative integer (checked; the values of
    ``lengths`` are not, as that would wait for a GPU)."""
    return _valid_mask(_integer_lengths(lengths), check_nonnegative_int(size, "size"), device)


def _valid_mask(lengths: torch.Tensor, size: int, device) -> torch.Tensor:
    """:func:`valid_mask` of checked arguments (:func:`frame_mask` checks them under its own names)."""
    idx = torch.arange(size, device=lengths.device if device is None else device)
    return idx < lengths.unsqueeze(-1)


def padding_mask(lengths: torch.Tensor, size: int, *, device=None) -> torch.Tensor:
    """``[shape=(..., size)]`` bool, ``~valid_mask(lengths, size)`` in one comparison (one kernel fewer on
    a GPU): True at positions ``>= lengths`` (``lengths`` ``[shape=(...)]``), the padding that
    ``masked_fill`` zeroes."""
    idx = torch.arange(size, device=lengths.device if device is None else device)
    return idx >= lengths.unsqueeze(-1)


def num_frames(
    lengths: torch.Tensor, *, hop_length: int = 512, n_fft: int = 2048, center: bool = True
) -> torch.Tensor:
    """Number of STFT frames librosa produces for signals of ``lengths`` samples (``[shape=(...)]`` in,
    the same shape out; ``librosa.stft(y).shape[-1]`` for each length).

    With ``center`` (librosa's default) the signal is padded by ``n_fft // 2`` on each side, giving
    ``1 + length // hop_length`` frames for an even ``n_fft`` (``1 + (length - 1) // hop_length``
    for an odd one); without it, ``1 + (length - n_fft) // hop_length``.
    """
    lengths = _integer_lengths(lengths)
    hop_length = check_positive_int(hop_length, "hop_length")
    n_fft = check_positive_int(n_fft, "n_fft")
    padded = lengths + 2 * (n_fft // 2) if check_bool(center, "center") else lengths
    return 1 + torch.div(padded - n_fft, hop_length, rounding_mode="floor")


def frame_mask(frame_lengths: Optional[torch.Tensor], n_frames: int, *, device=None) -> Optional[torch.Tensor]:
    """Boolean mask ``[shape=(..., n_frames)]``: True on each example's valid frames (``None`` for ``None``)."""
    if frame_lengths is None:
        return None
    return _valid_mask(_integer_lengths(frame_lengths, "frame_lengths"), check_nonnegative_int(n_frames, "n_frames"),
                       device)


def zero_padding(y: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """``y`` ``[shape=(..., time)]`` with every sample at or beyond each example's length (``lengths``
    ``[shape=(...)]``) zeroed, so padding cannot leak into frames; the same shape."""
    if lengths is None:
        return y
    return y.masked_fill(padding_mask(lengths, y.shape[-1]), 0.0)


def mask_frames(x: torch.Tensor, frame_lengths: Optional[torch.Tensor], value: float = 0.0) -> torch.Tensor:
    """``x`` ``[shape=(..., F, frames)]`` with every frame at or beyond each example's frame length
    (``frame_lengths`` ``[shape=(...)]``) set to ``value``; the same shape."""
    if frame_lengths is None:
        return x
    return x.masked_fill(padding_mask(frame_lengths, x.shape[-1]).unsqueeze(-2), value)


def pad_per_example(y: torch.Tensor, lengths: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Centre-pad each example of ``(B, N)`` by ``pad`` at both ends of its own valid part.

    Positions beyond an example's end are filled by ``mode`` (``'edge'``, ``'reflect'`` or ``'wrap'``)
    relative to that example's length, as ``np.pad`` on the unpadded example would, whatever ``pad`` is
    (torch's reflect and circular padding refuse a pad as long as the signal); the result has
    ``N + 2 * pad`` columns.
    """
    B, N = y.shape
    pos = torch.arange(-pad, N + pad, device=y.device).unsqueeze(0)  # (1, N + 2 pad)
    n = lengths.reshape(-1, 1)
    if mode == "edge":
        idx = pos.clamp(min=0)
        idx = torch.minimum(idx, n - 1)
    elif mode == "wrap":
        idx = torch.remainder(pos, n)
    else:  # numpy 'reflect' (the edge sample is not repeated), periodic for long pads
        period = torch.clamp(2 * (n - 1), min=1)
        j = torch.remainder(pos, period)
        idx = torch.where(j < n, j, period - j)
        idx = torch.where(n == 1, 0, idx)
    out = torch.gather(y, 1, idx.expand(B, -1))
    inside = (pos >= 0) & (pos < n)
    # beyond the example's padded end nothing valid is read; keep it finite and zero
    beyond = pos >= n + pad
    return torch.where(inside | ~beyond, out, 0.0)
