"""Per-row statistics of feature batches, pooled by group, and standardisation with them.

Training's ``normalize='valid'`` standardises each clip with its own statistics
(:func:`standardize_clips`, the model's ``clip_norm``); ``normalize='train'`` pools every training clip into one group (the model's ``input_norm``
buffers); ``normalize='speaker'`` pools each speaker's clips into a group of its own and standardises
every clip with its speaker's statistics. Only valid frames count (``frame_lengths``); sums are taken in
float64.
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..functional.lengths import valid_mask

__all__ = ["RowStatistics", "standardize_clips", "standardize_rows"]


class RowStatistics:
    """Accumulates the per-row mean and standard deviation of feature batches, one pair per group.

    Args:
        n_groups: number of groups (e.g. speakers); group ids are ``0 .. n_groups - 1``.
        n_rows: rows per frame (68 for the full feature set).
        device: where the sums live (the batches' device).

    Example::

        stats = RowStatistics(n_speakers, 68, device=x.device)
        stats.add(x, frame_lengths, speaker_of_each_clip)   # as often as needed
        mean, std = stats.result()                           # (n_speakers, 68) each
    """

    def __init__(self, n_groups: int, n_rows: int, *, device=None):
        self.sums = torch.zeros(n_groups, n_rows, dtype=torch.float64, device=device)
        self.squares = torch.zeros_like(self.sums)
        self.frames = torch.zeros(n_groups, dtype=torch.float64, device=device)

    def add(self, x: torch.Tensor, frame_lengths: torch.Tensor, groups: torch.Tensor) -> None:
        """Add a batch: ``x`` ``[shape=(B, n_rows, frames)]``, ``frame_lengths`` and ``groups``
        ``[shape=(B,)]`` int64 on ``x``'s device. Frames past a clip's length are ignored."""
        xd = x.double() * valid_mask(frame_lengths, x.shape[-1]).unsqueeze(1)
        self.sums.index_add_(0, groups, xd.sum(-1))
        self.squares.index_add_(0, groups, (xd * xd).sum(-1))
        self.frames.index_add_(0, groups, frame_lengths.clamp(max=x.shape[-1]).double())

    def result(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` float32 ``[shape=(n_groups, n_rows)]``: population statistics over each
        group's valid frames. A row that never varies within a group, and a group without frames, get a
        standard deviation of 1 (and a group without frames a mean of 0), so standardising never
        divides by zero."""
        count = self.frames.clamp(min=1).unsqueeze(-1)
        mean = self.sums / count
        std = (self.squares / count - mean * mean).clamp_min(0).sqrt()
        std = torch.where(std > 0, std, 1.0)
        return mean.float(), std.float()


def standardize_rows(x: torch.Tensor, frame_lengths: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per example and row, zero past each clip's frames.

    Args:
        x: ``[shape=(B, rows, frames)]`` features.
        frame_lengths: ``[shape=(B,)]`` int64 valid frames per clip.
        mean, std: ``[shape=(B, rows)]`` each clip's statistics (e.g. its speaker's row of
            :meth:`RowStatistics.result`, gathered).
    """
    out = (x - mean.unsqueeze(-1).to(x.dtype)) / std.unsqueeze(-1).to(x.dtype)
    return out * valid_mask(frame_lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)


def standardize_clips(x: torch.Tensor, frame_lengths: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Each clip's rows standardised with their own statistics: ``(x - mean) / (std + eps)`` per clip and
    row, ``mean`` and (population) ``std`` over the clip's valid frames; zero past each clip's frames.

    What ``FeatureConfig(normalize='valid')`` gives (the original system's per-clip standardisation) and
    what a model built with ``clip_norm`` applies to its input.

    Args:
        x: ``[shape=(B, rows, frames)]`` float features.
        frame_lengths: ``[shape=(B,)]`` int64 valid frames per clip, on ``x``'s device.
        eps: added to the standard deviation (a constant row becomes zeros).
    """
    m = valid_mask(frame_lengths, x.shape[-1]).unsqueeze(1).to(x.dtype)
    count = m.sum(-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(-1, keepdim=True) / count
    var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / count
    return ((x - mean) / (var.sqrt() + eps)) * m
