"""The one validation gate of ser_gpu.

Every public function checks its arguments here, so that a user mistake is reported as a
:class:`~ser_gpu.errors.ParameterError` naming the argument and carrying the bad value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional

import numpy as np
import torch

from ._transfer import to_device
from .errors import ParameterError

__all__ = [
    "valid_audio",
    "valid_spectrogram",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive",
    "check_nonnegative",
    "check_real",
    "check_lengths",
    "check_frame_lengths",
    "check_probability",
    "check_in_range",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"Tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_tensor(x, name: str, *, min_ndim: int, waveform: bool = False) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ParameterError(f"{name} must be a torch.Tensor, got {type(x).__name__}: {_describe(x)}")
    if x.is_complex() or x.dtype not in _FLOAT_DTYPES:
        # a waveform of integers is audio read as PCM, other integers want .float(); a complex
        # spectrogram wants .abs()
        hint = (" (a complex STFT: pass its magnitude, .abs())" if x.is_complex() else
                "" if x.is_floating_point() else
                f" (convert integer PCM with {name}.float() / 32768 or similar)" if waveform else
                f" (convert with {name}.float())")
        raise ParameterError(f"{name} must have dtype torch.float32 or torch.float64, got {x.dtype}{hint}")
    if x.ndim < min_ndim:
        raise ParameterError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}"
        )
    return x


def valid_audio(y, *, name: str = "y", check_finite: bool = True) -> torch.Tensor:
    """Check a waveform tensor of shape ``(..., time)``.

    Raises :class:`ParameterError` for a non-tensor, a non-float dtype, a 0-d tensor, an empty
    time axis or (with ``check_finite``) any NaN/inf sample.
    """
    y = _check_tensor(y, name, min_ndim=1, waveform=True)
    if y.shape[-1] == 0:
        raise ParameterError(f"{name} is empty: shape {tuple(y.shape)} has no samples on its time axis")
    if y.numel() == 0:
        raise ParameterError(f"{name} is empty: shape {tuple(y.shape)}")
    if check_finite and not bool(torch.isfinite(y).all()):
        n_bad = int((~torch.isfinite(y)).sum())
        raise ParameterError(f"{name} contains {n_bad} non-finite sample(s) (NaN or inf); audio must be finite")
    return y


def valid_spectrogram(S, *, name: str = "S", check_finite: bool = True) -> torch.Tensor:
    """Check a real spectrogram of shape ``(..., freq, frames)``."""
    S = _check_tensor(S, name, min_ndim=2)
    if S.shape[-1] == 0 or S.shape[-2] == 0 or S.numel() == 0:
        raise ParameterError(f"{name} is empty: shape {tuple(S.shape)}")
    if check_finite and not bool(torch.isfinite(S).all()):
        raise ParameterError(f"{name} contains non-finite values (NaN or inf)")
    return S


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ParameterError(f"{name} must be a positive integer, got {_describe(value)}")
    return int(value)


def check_bool(value, name: str) -> bool:
    """True or False (a numpy bool too, as librosa takes it), as a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_nonnegative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ParameterError(f"{name} must be a non-negative integer, got {_describe(value)}")
    return int(value)


def _real(value, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be {what}, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be {what}, got {value}")
    return value


def check_real(value, name: str) -> float:
    """A finite real number (Python or numpy scalar; not a bool) as a float."""
    return _real(value, name, "a finite number")


def check_positive(value, name: str) -> float:
    v = _real(value, name, "a positive finite number")
    if v <= 0:
        raise ParameterError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_nonnegative(value, name: str) -> float:
    v = _real(value, name, "a non-negative finite number")
    if v < 0:
        raise ParameterError(f"{name} must be a non-negative finite number, got {value!r}")
    return v


def check_in_range(value, name: str, low: float, high: float, *, inclusive: bool = False) -> float:
    """Check ``low < value < high`` (or ``<=`` with ``inclusive``)."""
    interval = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
    v = _real(value, name, f"a number in {interval}")
    ok = (low <= v <= high) if inclusive else (low < v < high)
    if not ok:
        raise ParameterError(f"{name} must lie in {interval}, got {value!r}")
    return v


def check_probability(value, name: str) -> float:
    return check_in_range(value, name, 0.0, 1.0, inclusive=True)


def check_lengths(
    lengths, y: torch.Tensor, *, name: str = "lengths", allow_zero: bool = False
) -> Optional[torch.Tensor]:
    """Check per-example valid lengths (in samples) for a padded batch ``y`` of shape ``(..., time)``.

    Returns an int64 tensor of shape ``y.shape[:-1]`` on ``y.device``, or ``None``.
    """
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
            raise ParameterError(f"{name} must be an integer tensor, got {_describe(lengths)}") from exc
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ParameterError(f"{name} must be an integer tensor, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != tuple(y.shape[:-1]):
        raise ParameterError(
            f"{name} must have shape {tuple(y.shape[:-1])} (the batch shape of the signal), "
            f"got {tuple(lengths.shape)}"
        )
    lengths = lengths.to(dtype=torch.int64)
    if lengths.numel():
        low = 0 if allow_zero else 1
        # one read of both bounds: a host sync when the lengths live on a GPU, none when they come on the
        # CPU (the training step passes its host copy, so the check never waits for the device)
        lo, hi = torch.stack(torch.aminmax(lengths)).tolist()
        if lo < low or hi > y.shape[-1]:
            bad = lo if lo < low else hi
            raise ParameterError(
                f"{name} must lie in [{low}, {y.shape[-1]}] (the padded time axis), got {bad}"
            )
    # to y's device; from pageable host memory to CUDA without waiting for the device (_transfer)
    return to_device(lengths, y.device)


def check_frame_lengths(frame_lengths, S: torch.Tensor, *, name: str = "frame_lengths") -> Optional[torch.Tensor]:
    """Check per-example valid frame counts for a padded spectrogram ``S`` of shape ``(..., F, frames)``."""
    if frame_lengths is None:
        return None
    fake = S[..., 0, :]  # shape (..., frames): same batch shape, frames as the "time" axis
    return check_lengths(frame_lengths, fake, name=name)


def check_length_kind(uses_waveform: bool, lengths, frame_lengths, *, spectral: str = "S") -> None:
    """``lengths`` count a waveform's samples, ``frame_lengths`` a precomputed ``spectral`` input's frames: the
    one that does not go with the input used would be ignored (no masking, a result as if not given), so it is
    refused. ``uses_waveform``: the function computes from ``y``."""
    if uses_waveform and frame_lengths is not None:
        raise ParameterError(f"frame_lengths counts the frames of a precomputed {spectral}; with y give lengths "
                             f"(samples per example)")
    if not uses_waveform and lengths is not None:
        raise ParameterError(f"lengths counts the samples of a waveform y; with a precomputed {spectral} give "
                             f"frame_lengths (frames per example)")


def config_to_dict(config) -> dict:
    """A config dataclass as plain data: tuples become lists (JSON-able, ``weights_only``-loadable)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls, data):
    """Inverse of :func:`config_to_dict`: lists back to tuples, unknown keys -> ParameterError naming them."""
    if not isinstance(data, dict):
        raise ParameterError(f"{cls.__name__}.from_dict needs a dict, got {_describe(data)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ParameterError(f"unknown {cls.__name__} keys {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
