"""Waveform and spectrogram augmentation primitives, batched with per-example parameters.

Every function takes a zero-padded batch ``(..., time)`` (or ``(..., rows, frames)``) with optional
``lengths`` (``frame_lengths``) and a tensor holding one parameter per example, so a whole training
batch is augmented in one call on its own device, with no Python loop over examples. Randomness
comes only from an explicit :class:`torch.Generator` (or an explicit ``noise`` tensor).

The ops mirror `audiomentations <https://github.com/iver56/audiomentations>`_'s
``AddGaussianNoise`` and ``Shift`` applied to each example alone; the slower, length-changing effects
(time stretch, pitch shift, resampling) live in :mod:`ser_gpu.functional.effects`.
"""

from __future__ import annotations

import numbers
from typing import Optional, Tuple

import torch

from .._validation import (
    _describe,
    check_frame_lengths,
    check_lengths,
    check_nonnegative_int,
    valid_audio,
    valid_spectrogram,
)
from ..errors import ParameterError
from .lengths import valid_mask

__all__ = ["add_noise", "add_noise_snr", "shift", "mask_along_axis", "crossfade_curves"]


# ----------------------------------------------------------------------------------------------
# shared helpers (also used by effects.py and the transforms)


def _batch_lengths(y: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Flat ``(B,)`` int64 lengths: the checked ``lengths`` or the full time axis for every example."""
    B = y.reshape(-1, y.shape[-1]).shape[0]
    if lengths is None:
        return torch.full((B,), y.shape[-1], dtype=torch.int64, device=y.device)
    return lengths.reshape(-1)


def _per_example(value, name: str, batch_shape, device, *, dtype=torch.float64, positive: bool = False,
                 nonnegative: bool = False, integer: bool = False) -> torch.Tensor:
    """One parameter per example: a Python/NumPy number (broadcast) or a tensor of ``batch_shape``.

    Returns a flat ``(prod(batch_shape),)`` tensor on ``device`` (int64 with ``integer``, else ``dtype``).
    Raises :class:`ParameterError` naming ``name`` with the offending value.
    """
    n = 1
    for s in batch_shape:
        n *= int(s)
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ParameterError(f"{name} must be a real tensor, got dtype {value.dtype}")
        if integer and value.is_floating_point():
            raise ParameterError(f"{name} must be an integer tensor (samples), got dtype {value.dtype}")
        if value.ndim == 0:
            value = value.expand(tuple(batch_shape))
        elif tuple(value.shape) != tuple(batch_shape):
            raise ParameterError(
                f"{name} must be a number or a tensor of shape {tuple(batch_shape)} (one value per example), "
                f"got shape {tuple(value.shape)}"
            )
        t = value.to(device=device, dtype=torch.int64 if integer else dtype).reshape(-1)
    else:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParameterError(f"{name} must be a number or a tensor, got {_describe(value)}")
        if integer and not isinstance(value, numbers.Integral):
            raise ParameterError(f"{name} must be an integer number of samples, got {value!r}")
        t = torch.full((n,), value, dtype=torch.int64 if integer else dtype, device=device)
    if t.numel():
        if not integer and not bool(torch.isfinite(t).all()):
            bad = t[~torch.isfinite(t)][0].item()
            raise ParameterError(f"{name} must be finite, got {bad}")
        if positive and bool((t <= 0).any()):
            raise ParameterError(f"{name} must be > 0, got {t[t <= 0][0].item()}")
        if nonnegative and bool((t < 0).any()):
            raise ParameterError(f"{name} must be >= 0, got {t[t < 0][0].item()}")
    return t


def _check_generator(generator) -> Optional[torch.Generator]:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ParameterError(f"generator must be a torch.Generator or None, got {_describe(generator)}")
    return generator


def _rand(shape, generator: Optional[torch.Generator], device, dtype=torch.float64, *, normal: bool = False):
    """Uniform [0, 1) (or standard normal) draws on ``device``.

    A generator can only draw on its own device: with a generator elsewhere (e.g. a CPU generator
    and CUDA data) the numbers are drawn on the generator's device and moved, so the same seed gives
    the same numbers whatever the data's device. ``generator=None`` uses the global RNG of ``device``.
    """
    gen_device = torch.device(device) if generator is None else generator.device
    fn = torch.randn if normal else torch.rand
    out = fn(tuple(shape), generator=generator, device=gen_device, dtype=dtype)
    return out.to(device)


def crossfade_curves(length: int, *, device=None, dtype=torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """The equal-energy fade-in/fade-out pair audiomentations' ``Shift`` applies at the stitch.

    Equals ``audiomentations.core.utils.get_crossfade_mask_pair(length)`` (a cheap approximation of
    an equal-energy crossfade, after signalsmith-audio).

    Returns:
        ``(fade_in, fade_out)``, each ``[shape=(length,)]``.
    """
    length = check_nonnegative_int(length, "length")
    x = torch.linspace(0.0, 1.0, length, dtype=torch.float64, device=device)
    a = x * (1.0 - x)
    b = a * (1.0 + 1.4186 * a)
    return ((b + x) ** 2).to(dtype), ((b + 1.0 - x) ** 2).to(dtype)


# ----------------------------------------------------------------------------------------------
# noise


def add_noise(
    y: torch.Tensor,
    amplitude,
    *,
    lengths: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    noise: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Add white Gaussian noise with a per-example amplitude (standard deviation).

    ``y + amplitude[b] * N(0, 1)`` on each example's valid samples; equals audiomentations'
    ``AddGaussianNoise`` with that amplitude (which draws ``np.random.randn`` noise). Samples at or
    beyond ``lengths`` come out as zero.

    Args:
        y (Tensor): ``[shape=(..., time)]`` float32/float64 waveform batch, any device.
        amplitude (float | Tensor): noise standard deviation, a number for all or ``[shape=(...)]``
            one per example; >= 0.
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).
        generator (torch.Generator | None): source of the noise (global RNG when None). A generator
            on another device than ``y`` draws there and the noise is moved (slower: prefer a
            generator on ``y``'s device).
        noise (Tensor | None): ``[shape=y.shape]`` standard-normal noise to use instead of drawing
            (makes the op deterministic, e.g. to compare an example alone and in a batch).

    Returns:
        ``[shape=y.shape]`` noisy waveform, ``y``'s dtype and device.
    """
    y = valid_audio(y)
    generator = _check_generator(generator)
    lengths = check_lengths(lengths, y)
    amp = _per_example(amplitude, "amplitude", y.shape[:-1], y.device, dtype=y.dtype, nonnegative=True)
    return _add_noise(y, amp, lengths, generator, _check_noise(noise, y))


def _check_noise(noise, y: torch.Tensor) -> Optional[torch.Tensor]:
    """The ``noise`` argument of :func:`add_noise` and :func:`add_noise_snr`: None, or ``y``'s shape (moved
    to ``y``'s device and dtype)."""
    if noise is None:
        return None
    if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != tuple(y.shape):
        raise ParameterError(f"noise must be a tensor of shape {tuple(y.shape)} (as y), got {_describe(noise)}")
    return noise.to(device=y.device, dtype=y.dtype)


def _add_noise(y: torch.Tensor, amp: torch.Tensor, lengths: Optional[torch.Tensor],
               generator: Optional[torch.Generator], noise: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`add_noise` on checked arguments, ``amp`` flat ``(prod(y.shape[:-1]),)`` in ``y``'s dtype."""
    if noise is None:
        noise = _rand(y.shape, generator, y.device, y.dtype, normal=True)
    out = y + amp.reshape(y.shape[:-1] + (1,)) * noise
    if lengths is not None:
        keep = valid_mask(lengths.reshape(-1), y.shape[-1]).reshape(y.shape)
        out = out.masked_fill(~keep, 0.0)
    return out


def add_noise_snr(
    y: torch.Tensor,
    snr_db,
    *,
    lengths: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    noise: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Add white Gaussian noise ``snr_db`` decibels below each example's own level.

    :func:`add_noise` with amplitude ``rms[b] * 10 ** (-snr_db[b] / 20)``, ``rms[b]`` the root mean
    square of example ``b`` over its valid samples: audiomentations' ``AddGaussianSNR`` with
    ``min_snr_db = max_snr_db = snr_db`` (which takes the RMS of the whole array it is given). An
    all-zero example stays zero. Samples at or beyond ``lengths`` come out as zero.

    Args:
        y (Tensor): ``[shape=(..., time)]`` float32/float64 waveform batch, any device.
        snr_db (float | Tensor): signal-to-noise ratio in dB, a number for all or ``[shape=(...)]`` one per
            example; finite (negative: noise louder than the signal).
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).
        generator (torch.Generator | None): source of the noise, as for :func:`add_noise`.
        noise (Tensor | None): ``[shape=y.shape]`` standard-normal noise to use instead of drawing.

    Returns:
        ``[shape=y.shape]`` noisy waveform, ``y``'s dtype and device.
    """
    y = valid_audio(y)
    generator = _check_generator(generator)
    lengths = check_lengths(lengths, y)
    snr = _per_example(snr_db, "snr_db", y.shape[:-1], y.device, dtype=y.dtype)
    noise = _check_noise(noise, y)
    flat = y.reshape(-1, y.shape[-1])
    n = _batch_lengths(y, lengths)
    power = (flat * flat * valid_mask(n, flat.shape[-1])).sum(-1) / n.clamp_min(1).to(y.dtype)
    return _add_noise(y, power.sqrt() * torch.pow(10.0, -snr / 20), lengths, generator, noise)


# ----------------------------------------------------------------------------------------------
# shift


def shift(
    y: torch.Tensor,
    shift,
    *,
    lengths: Optional[torch.Tensor] = None,
    rollover: bool = True,
    fade_length: int = 0,
) -> torch.Tensor:
    """Shift each example forwards (``shift > 0``) or backwards in time by a per-example number of samples.

    Equals audiomentations' ``Shift`` on each example alone (``shift_unit='samples'``): with
    ``rollover`` the samples pushed past one end re-enter at the other (``np.roll`` within each
    example's *valid* length, so padding never rolls in); without it they are dropped and the gap is
    zero. With ``fade_length > 0`` the audio is faded in/out over that many samples at each stitch,
    with audiomentations' crossfade curves (:func:`crossfade_curves`), as its ``fade_duration`` does.

    Args:
        y (Tensor): ``[shape=(..., time)]`` waveform batch.
        shift (int | Tensor): samples to shift by, an int for all or an integer ``[shape=(...)]``
            tensor; any sign and size (with rollover it is taken modulo each length).
        lengths (Tensor | None): ``[shape=(...)]`` valid samples per example (default: all).
        rollover (bool, default True): roll (audiomentations' default) or zero-fill.
        fade_length (int, default 0): fade length in samples (audiomentations uses
            ``int(0.005 * sr)``); 0 disables fading.

    Returns:
        ``[shape=y.shape]`` shifted waveform; zero at and beyond each length.
    """
    y = valid_audio(y)
    lengths = check_lengths(lengths, y)
    if not isinstance(rollover, bool):
        raise ParameterError(f"rollover must be True or False, got {_describe(rollover)}")
    fade_length = check_nonnegative_int(fade_length, "fade_length")
    k = _per_example(shift, "shift", y.shape[:-1], y.device, integer=True)
    out = _shift(y.reshape(-1, y.shape[-1]), k, _batch_lengths(y, lengths), rollover=rollover,
                 fade_length=fade_length)
    return out.reshape(y.shape)


def _shift(flat: torch.Tensor, k: torch.Tensor, L: torch.Tensor, *, rollover: bool, fade_length: int) -> torch.Tensor:
    """``flat`` ``(B, T)``, ``k`` and ``L`` ``(B,)`` int64: the unchecked kernel of :func:`shift`."""
    T = flat.shape[-1]
    n = torch.arange(T, device=flat.device)
    valid = n < L.unsqueeze(-1)
    kk = k.unsqueeze(-1)
    if rollover:
        src = torch.remainder(n - kk, L.clamp(min=1).unsqueeze(-1))
        keep = valid
    else:
        src = n - kk
        keep = valid & (src >= 0) & (src < L.unsqueeze(-1))
    out = torch.gather(flat, -1, src.clamp(0, T - 1)).masked_fill(~keep, 0.0)
    if fade_length > 0:
        out = out * _shift_fade_gain(k, L, T, rollover, fade_length, flat.dtype)
    return out


def _shift_fade_gain(k, L, T: int, rollover: bool, fade_length: int, dtype) -> torch.Tensor:
    """``(B, T)`` gains, given ``0 <= L <= T`` (the kernel's contract): where a clip is shifted (``k != 0``),
    audiomentations' fade-out over the ``fade_length`` samples before its stitch and fade-in over those
    from it on (without rollover only on the side that is not zero-filled); 1 elsewhere. A view of a
    ``(B, T + 2 * fade_length)`` tensor: each clip's ``2 * fade_length`` gains are scattered into ones,
    rather than computed for every sample."""
    F = fade_length
    fade_in, fade_out = crossfade_curves(F, device=k.device, dtype=dtype)
    # the stitch is where the original start lands: k for a forward shift, L + k for a backward one
    stitch = torch.remainder(k, L.clamp(min=1)) if rollover else torch.where(k > 0, k, L + k)
    j = torch.arange(2 * F, device=k.device)  # window sample j is sample stitch - F + j
    kk = k.unsqueeze(-1)
    use = (kk != 0) if rollover else (kk != 0) & torch.where(j < F, kk < 0, kk > 0)  # (B, 1) or (B, 2F)
    window = torch.where(use, torch.cat([fade_out, fade_in]), 1.0).expand(k.shape[0], 2 * F)
    # column F + n holds sample n, so the window starts at column stitch; samples outside [0, T) fall in the
    # F columns on either side, which are cut off. A stitch outside [0, T] arises only without rollover
    # (k > T, or k < -L), when the half that would be faded lies wholly outside the clip and the other
    # half is the zero-filled side: clamped, the window stays inside the tensor, its columns distinct
    gain = torch.ones((k.shape[0], T + 2 * F), dtype=dtype, device=k.device)
    gain.scatter_(1, stitch.clamp(0, T).unsqueeze(-1) + j, window)
    return gain[:, F:F + T]


# ----------------------------------------------------------------------------------------------
# SpecAugment masks


def mask_along_axis(
    x: torch.Tensor,
    start: torch.Tensor,
    width: torch.Tensor,
    *,
    axis: str,
    mask_value: float = 0.0,
    frame_lengths: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Set per-example bands of rows or frames of a feature matrix to ``mask_value`` (SpecAugment).

    Example ``b`` gets ``x[b, r, t] = mask_value`` for every mask ``j`` with
    ``start[b, j] <= r < start[b, j] + width[b, j]`` (``axis='freq'``) or the same on ``t``
    (``axis='time'``). Frames at or beyond ``frame_lengths[b]`` are never changed, whatever the mask.
    Like torchaudio's ``FrequencyMasking``/``TimeMasking`` with ``iid_masks=True``, but with the
    bands given (see :class:`ser_gpu.transforms.SpecAugment` for the random draw).

    Args:
        x (Tensor): ``[shape=(..., rows, frames)]`` features.
        start, width (Tensor): integer ``[shape=(..., n_masks)]`` (or ``(...)`` for one mask).
        axis (str): ``'freq'`` (rows) or ``'time'`` (frames).
        mask_value (float, default 0.0): value written in the masked band.
        frame_lengths (Tensor | None): ``[shape=(...)]`` valid frames per example.

    Returns:
        ``[shape=x.shape]`` masked copy of ``x``.
    """
    x = valid_spectrogram(x, name="x", check_finite=False)
    if axis not in ("freq", "time"):
        raise ParameterError(f"axis must be 'freq' or 'time', got {axis!r}")
    if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
        raise ParameterError(f"mask_value must be a number, got {_describe(mask_value)}")
    frame_lengths = check_frame_lengths(frame_lengths, x)
    batch_shape = x.shape[:-2]
    starts, widths = [], []
    for value, name in ((start, "start"), (width, "width")):
        if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex() \
                or value.dtype == torch.bool:
            raise ParameterError(f"{name} must be an integer tensor, got {_describe(value)}")
        if tuple(value.shape) == tuple(batch_shape):
            value = value.unsqueeze(-1)
        if tuple(value.shape[:-1]) != tuple(batch_shape):
            raise ParameterError(f"{name} must have shape {tuple(batch_shape)} + (n_masks,), got {tuple(value.shape)}")
        if value.numel() and int(value.min()) < 0:
            raise ParameterError(f"{name} must be >= 0, got {int(value.min())}")
        (starts if name == "start" else widths).append(value.to(device=x.device, dtype=torch.int64))
    s, w = starts[0], widths[0]
    if s.shape != w.shape:
        raise ParameterError(f"start and width must have the same shape, got {tuple(s.shape)} and {tuple(w.shape)}")
    return _mask_along_axis(x, s, w, axis=axis, mask_value=float(mask_value), frame_lengths=frame_lengths)


def _mask_along_axis(x: torch.Tensor, s: torch.Tensor, w: torch.Tensor, *, axis: str, mask_value: float,
                     frame_lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`mask_along_axis` on checked arguments: ``s``, ``w`` int64 ``(..., n_masks)`` on ``x``'s device,
    non-negative (no host sync here)."""
    F, N = x.shape[-2], x.shape[-1]
    size = F if axis == "freq" else N
    pos = torch.arange(size, device=x.device)
    s = s.reshape(-1, s.shape[-1], 1)
    w = w.reshape(-1, w.shape[-1], 1)
    band = ((pos >= s) & (pos < s + w)).any(dim=1)  # (B, size)
    if axis == "freq":
        mask = band.unsqueeze(-1)  # (B, F, 1)
        if frame_lengths is not None:
            mask = mask & valid_mask(frame_lengths.reshape(-1), N).unsqueeze(1)
    else:
        if frame_lengths is not None:
            band = band & valid_mask(frame_lengths.reshape(-1), N)
        mask = band.unsqueeze(1)  # (B, 1, N)
    flat = x.reshape(-1, F, N)
    return flat.masked_fill(mask, mask_value).reshape(x.shape)
