"""Array utilities shared by the features and the filter banks (librosa's ``util`` module)."""

from __future__ import annotations

import math
import numbers

import torch

from .._validation import _describe
from ..errors import ParameterError
from .spectrum import tiny

__all__ = ["normalize"]


def normalize(S: torch.Tensor, *, norm=math.inf, axis: int = 0) -> torch.Tensor:
    """Scale ``S`` to unit ``norm`` along ``axis``: ``librosa.util.normalize(S, norm=norm, axis=axis)``.

    As librosa with its defaults ``threshold=None`` (the dtype's smallest normal number) and
    ``fill=None``: slices whose norm is below the threshold are left as they are. As librosa, a ``S``
    holding NaN or inf is refused.

    Args:
        S: real (float32/float64) or complex tensor, any shape but 0-d.
        norm: ``inf`` (max of ``|S|``), ``-inf`` (min), ``0`` (count of non-zeros), a positive number
            ``p`` (the ``p``-norm), or ``None`` (return ``S`` unchanged).
        axis: the dimension to normalise along.

    Returns:
        a tensor of ``S``'s shape and dtype.
    """
    if not isinstance(S, torch.Tensor):
        raise ParameterError(f"S must be a torch.Tensor, got {type(S).__name__}: {_describe(S)}")
    if not (S.is_complex() or S.is_floating_point()) or S.ndim == 0:
        raise ParameterError(f"S must be a float or complex tensor of at least 1 dimension, got {_describe(S)}")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -S.ndim <= axis < S.ndim:
        raise ParameterError(f"axis must be an integer in [{-S.ndim}, {S.ndim - 1}] for S of shape "
                             f"{tuple(S.shape)}, got {axis!r}")
    if not bool(torch.isfinite(S).all()):  # librosa: "Input must be finite"
        raise ParameterError("S contains non-finite values (NaN or inf): its norm is undefined")
    return _normalize(S, norm=norm, axis=int(axis))


def check_norm(norm, name: str = "norm"):
    """A :func:`normalize` ``norm`` (a number >= 0, -inf, or None), checked before any work."""
    if norm is not None and (isinstance(norm, bool) or not isinstance(norm, numbers.Real)
                             or not (norm >= 0 or norm == -math.inf)):
        raise ParameterError(f"{name} must be a positive number, 0, +-inf or None, got {norm!r}")
    return norm


def _normalize(S: torch.Tensor, *, norm=math.inf, axis: int = 0) -> torch.Tensor:
    """:func:`normalize` on a checked ``S`` and ``axis`` (no host sync: the features' hot path)."""
    if check_norm(norm) is None:
        return S
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
