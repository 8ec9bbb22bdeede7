"""Array utilities shared by the features and the filter banks (librosa's ``util`` module)."""

from __future__ import annotations

import math
import numbers

import torch

from ..errors import ParameterError
from .spectrum import tiny

__all__ = ["normalize"]


def normalize(S: torch.Tensor, *, norm=math.inf, axis: int = 0) -> torch.Tensor:
    """Scale ``S`` to unit ``norm`` along ``axis``: ``librosa.util.normalize(S, norm=norm, axis=axis)``.

    As librosa with its defaults ``threshold=None`` (the dtype's smallest normal number) and
    ``fill=None``: slices whose norm is below the threshold are left as they are.

    Args:
        S: real or complex tensor, any shape.
        norm: ``inf`` (max of ``|S|``), ``-inf`` (min), ``0`` (count of non-zeros), a positive number
            ``p`` (the ``p``-norm), or ``None`` (return ``S`` unchanged).
        axis: the dimension to normalise along.

    Returns:
        a tensor of ``S``'s shape and dtype.
    """
    if norm is None:
        return S
    if isinstance(norm, bool) or not isinstance(norm, numbers.Real) or not (norm >= 0 or norm == -math.inf):
        raise ParameterError(f"norm must be a positive number, 0, +-inf or None, got {norm!r}")
    mag = S.abs()
    if norm == math.inf:
        length = mag.amax(dim=axis, keepdim=True)
    elif norm == -math.inf:
        length = mag.amin(dim=axis, keepdim=True)
    elif norm == 0:
        length = (mag > 0).sum(dim=axis, keepdim=True).to(mag.dtype)
    elif norm == 1:
        length = mag.sum(dim=axis, keepdim=True)
    else:
        length = (mag**norm).sum(dim=axis, keepdim=True) ** (1.0 / norm)
    length = torch.where(length < tiny(S), 1.0, length)
    return S / length
