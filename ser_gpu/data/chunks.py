"""Plans of the chunked training data path: the chunks of an epoch, their length groups, padded sizes.

Training computes augmentation and features for a whole *chunk* of clips at once (few large calls
instead of one small call per model batch), then cuts the chunk's features into the model's batches.
Everything here is host-side bookkeeping on small CPU index tensors: no device work, no host sync.

Sizes are rounded up to a geometric ladder (:func:`ladder`), so an epoch meets only a handful of
distinct tensor shapes (each new shape costs a cuFFT plan or a cuDNN algorithm search on a GPU), and
clips are grouped by the ladder rung of their length, so a group pads each clip by at most one rung.
"""

from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import torch

from .._validation import check_positive_int
from ..errors import ParameterError

__all__ = ["ladder", "ladder_tensor", "epoch_clips", "epoch_chunks", "length_groups", "chunk_batches"]

# rung k of the ladder is ``multiple * ceil(RATIO ** k)``; 1.25 pads a clip by < 25 % (about 12 % on average)
RATIO = 1.25


def _rungs(n_max: int, ratio: float, multiple: int) -> List[int]:
    rungs, k = [], 0
    while True:
        r = multiple * math.ceil(ratio ** k - 1e-9)
        if not rungs or r > rungs[-1]:
            rungs.append(r)
        if r >= n_max:
            return rungs
        k += 1


def ladder(n: int, *, multiple: int = 1, ratio: float = RATIO) -> int:
    """The smallest rung ``>= n`` of the ladder ``multiple * ceil(ratio ** k)``, ``k = 0, 1, ...``.

    Args:
        n (int): a size (samples or frames), ``>= 1``.
        multiple (int, default 1): every rung is a multiple of this.
        ratio (float, default 1.25): growth from one rung to the next (> 1).

    Returns:
        int: ``n`` rounded up to its rung (``n <= rung < ratio * n + multiple``).
    """
    n = check_positive_int(int(n), "n")
    multiple = check_positive_int(multiple, "multiple")
    if not ratio > 1.0:
        raise ParameterError(f"ratio must be > 1, got {ratio!r}")
    return next(r for r in _rungs(n, ratio, multiple) if r >= n)


def ladder_tensor(n: torch.Tensor, *, multiple: int = 1, ratio: float = RATIO) -> torch.Tensor:
    """:func:`ladder` of each element of a CPU int64 tensor ``[shape=(N,)]`` (values ``>= 1``)."""
    n = torch.as_tensor(n, dtype=torch.int64).reshape(-1)
    if n.numel() == 0:
        return n.clone()
    rungs = torch.tensor(_rungs(int(n.max()), ratio, multiple), dtype=torch.int64)
    return rungs[torch.searchsorted(rungs, n)]


def epoch_clips(n: int, batch_size: int) -> int:
    """How many of ``n`` training clips an epoch uses: all, except that a last batch of one clip is
    left out (the classifier's batch norm needs two clips in a batch)."""
    return n - 1 if n % batch_size == 1 else n


def epoch_chunks(order: torch.Tensor, chunk_size: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Cut an epoch's clip order into chunks of ``chunk_size`` clips (the last may be shorter).

    ``chunk_size`` must be a multiple of ``batch_size``: the model's batches then never straddle two
    chunks, and the epoch's batches are the same clips in the same order whatever the chunk size.
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    batch_size = check_positive_int(batch_size, "batch_size")
    if chunk_size % batch_size:
        raise ParameterError(f"chunk_size must be a multiple of batch_size={batch_size}, got {chunk_size}")
    for start in range(0, order.numel(), chunk_size):
        yield order[start:start + chunk_size]


def length_groups(lengths: torch.Tensor, *, multiple: int = 1,
                  ratio: float = RATIO) -> List[Tuple[torch.Tensor, int]]:
    """Positions of a chunk's clips grouped by the ladder rung of their length.

    Args:
        lengths: ``[shape=(N,)]`` CPU int64 clip lengths (samples).
        multiple, ratio: the ladder (:func:`ladder`).

    Returns:
        ``[(positions, rung), ...]`` in increasing rung order: ``positions`` int64 indices into
        ``lengths`` (in their original order), ``rung`` the padded length of that group.
    """
    rung = ladder_tensor(lengths, multiple=multiple, ratio=ratio)
    return [((rung == r).nonzero().squeeze(-1), int(r)) for r in torch.unique(rung).tolist()]


def chunk_batches(n: int, batch_size: int) -> List[slice]:
    """The model batches of a chunk of ``n`` clips: consecutive slices of ``batch_size`` (the last may be shorter)."""
    return [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
