"""Short-time Fourier transforms and decibel scaling with librosa's framing conventions.

librosa centres frames by padding ``n_fft // 2`` zeros on both sides (``pad_mode='constant'``),
while ``torch.stft`` defaults to reflect padding; everything here follows librosa.
"""

from __future__ import annotations

import builtins
import numbers
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as nnf

from .._validation import (
    _describe,
    check_bool,
    check_frame_lengths,
    check_length_kind,
    check_lengths,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_real,
    valid_audio,
    valid_spectrogram,
)
from ..errors import ParameterError
from .._transfer import CONSTANTS, to_device
from .lengths import frame_mask, mask_frames, num_frames, pad_per_example, padding_mask, valid_mask, zero_padding

__all__ = [
    "get_window",
    "stft",
    "istft",
    "spectrogram",
    "power_to_db",
    "fft_frequencies",
    "num_frames",
    "frame_mask",
    "tiny",
]

_TORCH_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
_WINDOWS = ("hann", "hamming", "blackman", "ones", "boxcar", "rectangular")


def tiny(x: torch.Tensor) -> float:
    """Smallest positive normal number of ``x``'s dtype (``librosa.util.tiny``)."""
    return torch.finfo(x.dtype if x.is_floating_point() else torch.float32).tiny


def get_window(
    window: Union[str, torch.Tensor], win_length: int, *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """A periodic ("fftbins") window of ``win_length`` samples, as ``scipy.signal.get_window``.

    Args:
        window: ``'hann'``, ``'hamming'``, ``'blackman'``, ``'ones'``/``'boxcar'``/``'rectangular'``,
            or a 1-d tensor of length ``win_length``.
        win_length: window length in samples.

    Returns:
        ``[shape=(win_length,)]`` tensor on ``device`` with ``dtype``.
    """
    win_length = check_positive_int(win_length, "win_length")
    _check_window(window, win_length)
    if isinstance(window, torch.Tensor):
        return to_device(window, device, dtype)
    return to_device(_window_float64(window, win_length), device, dtype)


def _check_window(window, win_length: int) -> None:
    """The window gate: a known name, or a 1-d tensor of ``win_length`` samples."""
    if isinstance(window, torch.Tensor):
        if window.ndim != 1 or window.shape[0] != win_length:
            raise ParameterError(
                f"window tensor must have shape ({win_length},), got {tuple(window.shape)}"
            )
    elif isinstance(window, tuple) or not isinstance(window, str) or window not in _WINDOWS:
        raise ParameterError(f"window must be one of {_WINDOWS} or a 1-d tensor, got {window!r}")


def _window_float64(window: str, win_length: int) -> torch.Tensor:
    """A named window built in float64 like scipy (on the host)."""
    if window == "hann":
        return torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    if window == "hamming":
        return torch.hamming_window(win_length, periodic=True, dtype=torch.float64)
    if window == "blackman":
        return torch.blackman_window(win_length, periodic=True, dtype=torch.float64)
    return torch.ones(win_length, dtype=torch.float64)


def _kernel_window(window: Union[str, torch.Tensor], win_length: int, *, device, dtype) -> torch.Tensor:
    """:func:`get_window` of checked arguments for the kernels: a named window comes from the device's
    constant cache (not copied to a GPU on every call) and must not be modified."""
    if isinstance(window, torch.Tensor):
        return to_device(window, device, dtype)
    return CONSTANTS.get(("window", window, win_length), lambda: _window_float64(window, win_length),
                         device, dtype)


def _stft(
    y: torch.Tensor,
    *,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: Union[str, torch.Tensor],
    center: bool,
    pad_mode: str,
    precise: bool = False,
) -> torch.Tensor:
    """The STFT of checked arguments. With ``precise``, a float32 ``y`` is transformed in float64 and
    the result rounded to complex64, as librosa does (its float64 window promotes the float32
    frames); otherwise the FFT runs in ``y``'s own precision."""
    batch_shape = y.shape[:-1]
    out_dtype = None
    if precise and y.dtype == torch.float32:
        out_dtype, y = torch.complex64, y.to(torch.float64)
    flat = y.reshape(-1, y.shape[-1])
    win = _kernel_window(window, win_length, device=y.device, dtype=y.dtype)
    if center:
        flat = _center_pad(flat, n_fft // 2, pad_mode)
    elif flat.shape[-1] < n_fft:
        raise ParameterError(
            f"n_fft={n_fft} is too large for uncentered analysis of a signal of length {flat.shape[-1]}"
        )
    D = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=win,
        center=False,
        return_complex=True,
    )
    if out_dtype is not None:
        D = D.to(out_dtype)
    return D.reshape(batch_shape + D.shape[-2:])


def _center_pad(flat: torch.Tensor, pad: int, pad_mode: str) -> torch.Tensor:
    """``np.pad(y, pad, mode=pad_mode)`` of each row of ``flat`` ``(B, N)``, as librosa centres its frames:
    torch's own padding, except a reflect or wrap pad as long as the signal, which torch refuses and numpy
    takes periodically (a clip shorter than half a frame)."""
    mode = _TORCH_PAD_MODES[pad_mode]
    if mode == "constant":
        return torch.nn.functional.pad(flat, (pad, pad))
    if mode in ("reflect", "circular") and pad >= flat.shape[-1]:
        n = torch.full((flat.shape[0],), flat.shape[-1], dtype=torch.int64, device=flat.device)
        return pad_per_example(flat, n, pad, pad_mode)
    return torch.nn.functional.pad(flat.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)


def _frame_args(n_fft, hop_length, win_length, window):
    """Check framing arguments and apply librosa's defaults: win_length = n_fft,
    hop_length = win_length // 4 (an error where that is 0)."""
    n_fft = check_positive_int(n_fft, "n_fft")
    win_length = n_fft if win_length is None else check_positive_int(win_length, "win_length")
    if win_length > n_fft:
        raise ParameterError(f"win_length must be <= n_fft={n_fft}, got {win_length}")
    if hop_length is None:
        hop_length = win_length // 4
        if hop_length < 1:
            raise ParameterError(f"hop_length defaults to win_length // 4, which is 0 for win_length={win_length}")
    hop_length = check_positive_int(hop_length, "hop_length")
    _check_window(window, win_length)
    return n_fft, hop_length, win_length


def _check_stft_args(n_fft, hop_length, win_length, window, pad_mode, center=True):
    check_bool(center, "center")
    if pad_mode not in _TORCH_PAD_MODES:
        raise ParameterError(f"pad_mode must be one of {tuple(_TORCH_PAD_MODES)}, got {pad_mode!r}")
    return _frame_args(n_fft, hop_length, win_length, window)


def stft(
    y: torch.Tensor,
    *,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    fast_stft: bool = False,
) -> torch.Tensor:
    """Complex short-time Fourier transform; equals ``librosa.stft``.

    For float32 ``y`` the transform is computed in float64 and rounded to complex64, as librosa
    does (``librosa.stft`` multiplies the float32 frames by a float64 window, so its FFT runs in
    float64): every bin then carries float32's relative rounding only, which quiet bins need (a
    float32 FFT's error is ~1e-7 of the frame's loudest bin, 10 % of a bin 1e-6 below it).

    Args:
        y: ``[shape=(..., time)]`` real waveform, float32 or float64, any device.
        n_fft: FFT size. hop_length: defaults to ``win_length // 4``. win_length: defaults to ``n_fft``
            (shorter windows are zero-padded to ``n_fft``, centred).
        window: window name or tensor (see :func:`get_window`).
        center: pad ``n_fft // 2`` on both sides so frame ``t`` is centred at ``y[t * hop_length]``.
        pad_mode: ``'constant'`` (zeros, librosa's default), ``'reflect'``, ``'edge'`` or ``'wrap'``.
        fast_stft: run a float32 ``y``'s FFT in float32 (faster, not librosa's float32 result in the
            quietest bins; see the README's "Parity with librosa"). No effect on float64.

    Returns:
        ``[shape=(..., 1 + n_fft // 2, 1 + time // hop_length)]`` complex tensor (with ``center``),
        complex64 for float32 ``y``, complex128 for float64.
    """
    y = valid_audio(y)
    n_fft, hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, window, pad_mode, center)
    check_bool(fast_stft, "fast_stft")
    return _stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                 center=center, pad_mode=pad_mode, precise=not fast_stft)


def _valid_complex_or_real_spectrogram(S, name: str = "S") -> torch.Tensor:
    if isinstance(S, torch.Tensor) and S.is_complex():
        if S.dtype not in (torch.complex64, torch.complex128):
            raise ParameterError(f"{name} must be complex64 or complex128, got {S.dtype}")
        if S.ndim < 2 or S.shape[-1] == 0 or S.shape[-2] == 0 or S.numel() == 0:
            raise ParameterError(f"{name} must have shape (..., freq, frames) and be non-empty, got {tuple(S.shape)}")
        if not bool(torch.isfinite(S).all()):
            raise ParameterError(f"{name} contains non-finite values (NaN or inf)")
        return S
    return valid_spectrogram(S, name=name)


def _padded_window(window, win_length: int, n_fft: int, *, device, dtype) -> torch.Tensor:
    """The window centred in ``n_fft`` samples (``librosa.util.pad_center``)."""
    w = _kernel_window(window, win_length, device=device, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    return nnf.pad(w, (left, n_fft - win_length - left)).to(dtype)


def istft(
    stft_matrix: torch.Tensor,
    *,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    n_fft: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    length: Optional[int] = None,
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Inverse short-time Fourier transform by weighted overlap-add; equals ``librosa.istft``.

    Each frame is inverted with ``irfft``, windowed, overlap-added, and the sum is divided by the
    window's sum-square envelope wherever that exceeds the dtype's ``tiny`` (elsewhere left as is),
    exactly as librosa does.

    Args:
        stft_matrix: ``[shape=(..., 1 + n_fft // 2, frames)]`` complex64/complex128 STFT.
        hop_length: defaults to ``win_length // 4`` (librosa's default).
        win_length: defaults to ``n_fft``.
        n_fft: defaults to ``2 * (freq - 1)``; must satisfy ``freq == 1 + n_fft // 2``.
        window: window name or ``[shape=(win_length,)]`` tensor, as used for the analysis.
        center: whether the analysis frames were centred (``n_fft // 2`` samples trimmed).
        length: output length in samples (zero-padded or trimmed), as librosa's ``length``.
            Default: all the frames cover, or ``max(lengths)`` when ``lengths`` is given.
        lengths: ``[shape=(...)]`` per-example output lengths (int). Example ``b`` equals
            ``librosa.istft(stft_matrix[b], length=lengths[b])`` and is zero beyond ``lengths[b]``.
        frame_lengths: ``[shape=(...)]`` per-example number of valid frames; frames beyond are
            ignored (neither added nor counted in the window envelope), so example ``b`` equals
            librosa on ``stft_matrix[b, ..., :frame_lengths[b]]``.

    Returns:
        ``[shape=(..., length)]`` real tensor of the matching precision.
    """
    if not isinstance(stft_matrix, torch.Tensor) or not stft_matrix.is_complex():
        raise ParameterError(f"stft_matrix must be a complex torch.Tensor, got {_describe(stft_matrix)}")
    D = _valid_complex_or_real_spectrogram(stft_matrix, "stft_matrix")
    n_bins = D.shape[-2]
    if n_fft is None:
        n_fft = 2 * (n_bins - 1)
        if n_fft < 1:
            raise ParameterError(f"stft_matrix has {n_bins} frequency bin(s); cannot infer n_fft")
    n_fft = check_positive_int(n_fft, "n_fft")
    if n_bins != 1 + n_fft // 2:
        raise ParameterError(f"n_fft={n_fft} needs {1 + n_fft // 2} frequency bins, stft_matrix has {n_bins}")
    n_fft, hop_length, win_length = _frame_args(n_fft, hop_length, win_length, window)
    check_bool(center, "center")
    if length is not None:
        length = check_positive_int(length, "length")
    fake = D[..., 0, :]  # (..., frames): the batch shape, for the per-example checks
    if lengths is not None:
        if length is None:  # the longest example sets the output length
            try:
                as_tensor = torch.as_tensor(lengths)
            except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
                raise ParameterError(f"lengths must be an integer tensor, got {_describe(lengths)}") from exc
            length = int(as_tensor.max()) if as_tensor.numel() and not as_tensor.is_complex() else 1
            length = max(length, 1)
        # a zero-size stand-in with the right (..., time) shape for the shared lengths check
        lengths = check_lengths(lengths, D.real.new_zeros(()).expand(fake.shape[:-1] + (length,)))
    frame_lengths = check_frame_lengths(frame_lengths, fake.unsqueeze(-2))
    return _istft(D, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                  center=center, length=length, lengths=lengths, frame_lengths=frame_lengths)


#: Examples are inverted this many frame samples (examples x n_fft x frames) at a time, so the
#: (batch, n_fft, frames) inverse-FFT temporaries stay bounded whatever the batch size. On CUDA the
#: chunks are 4x larger (2**25 elements, 128 MiB in float32): each chunk costs ~36 kernel launches,
#: which dominate there (batch 256 x 3 s: 3 chunks instead of 9), while on CPU smaller chunks stay
#: nearer the caches.
_ISTFT_CHUNK_ELEMENTS = 2**23
_ISTFT_CHUNK_ELEMENTS_CUDA = 2**25


def _istft(D, *, n_fft, hop_length, win_length, window, center, length, lengths, frame_lengths):
    batch_shape = D.shape[:-2]
    real_dtype = D.real.dtype
    X = D.reshape((-1,) + D.shape[-2:])
    B, n_frames = X.shape[0], X.shape[-1]
    half = n_fft // 2 if center else 0
    if length is not None:
        # frames starting at or beyond the padded length cannot reach the output (librosa trims too)
        n_frames = min(n_frames, -(-(length + 2 * half) // hop_length))
        X = X[..., :n_frames]
    ola_len = n_fft + hop_length * (n_frames - 1)
    out_len = length if length is not None else ola_len - 2 * half

    win = _padded_window(window, win_length, n_fft, device=D.device, dtype=real_dtype)
    if frame_lengths is not None:
        frame_lengths = frame_lengths.reshape(-1)
    y = torch.empty((B, out_len), dtype=real_dtype, device=D.device)
    budget = _ISTFT_CHUNK_ELEMENTS_CUDA if D.device.type == "cuda" else _ISTFT_CHUNK_ELEMENTS
    per_chunk = max(1, budget // (n_fft * n_frames))
    if n_fft % hop_length == 0:
        _istft_blocks(X, y, win, n_fft=n_fft, hop_length=hop_length, half=half, frame_lengths=frame_lengths,
                      per_chunk=per_chunk)
    else:
        _istft_fold(X, y, win, n_fft=n_fft, hop_length=hop_length, half=half, frame_lengths=frame_lengths,
                    per_chunk=per_chunk)
    if lengths is not None:
        y = y.masked_fill(padding_mask(lengths.reshape(-1), out_len), 0.0)
    return y.reshape(batch_shape + (out_len,))


def _divide_envelope(yb: torch.Tensor, wss: torch.Tensor) -> torch.Tensor:
    """librosa's normalisation: divide by the window envelope wherever it exceeds ``tiny``."""
    nonzero = wss > torch.finfo(yb.dtype).tiny
    return torch.where(nonzero, yb / torch.where(nonzero, wss, 1.0), yb)


def _istft_fold(X, y, win, *, n_fft, hop_length, half, frame_lengths, per_chunk):
    """Overlap-add with ``fold`` (any hop); writes each chunk of examples into ``y``."""
    B, n_frames = X.shape[0], X.shape[-1]
    out_len = y.shape[-1]
    ola_len = n_fft + hop_length * (n_frames - 1)
    win_sq = (win * win).unsqueeze(-1)  # (n_fft, 1)

    def overlap_add(x):  # (b, n_fft, frames) -> (b, out_len), librosa's crop/zero-extension included
        out = nnf.fold(x, output_size=(1, ola_len), kernel_size=(1, n_fft), stride=(1, hop_length))
        return _fix_length(out.reshape(x.shape[0], ola_len)[..., half:], out_len)

    if frame_lengths is None:
        wss_all = overlap_add(win_sq.expand(n_fft, n_frames).unsqueeze(0).contiguous())
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        frames = torch.fft.irfft(X[b0:b1], n=n_fft, dim=-2)  # (b, n_fft, frames)
        frames = frames * win.unsqueeze(-1)
        if frame_lengths is None:
            wss = wss_all
        else:
            valid = valid_mask(frame_lengths[b0:b1], n_frames).to(y.dtype).unsqueeze(-2)  # (b, 1, frames)
            frames = frames * valid
            wss = overlap_add(win_sq * valid)  # each example's own envelope
        yb = overlap_add(frames)
        del frames
        y[b0:b1] = _divide_envelope(yb, wss)


def _istft_blocks(X, y, win, *, n_fft, hop_length, half, frame_lengths, per_chunk):
    """Overlap-add when ``hop_length`` divides ``n_fft``: each frame is ``R = n_fft // hop_length``
    hop-sized blocks, so the sum is R shifted adds of ``(b, frames, hop)`` blocks, and the window
    envelope (per example: its valid frames only) is built from the window's R blocks the same way,
    without a frame-sized temporary. The frames are inverted along the last axis (``torch.stft``
    lays the frequencies of a frame out contiguously, the fast axis for the FFT)."""
    B, n_frames = X.shape[0], X.shape[-1]
    out_len = y.shape[-1]
    R = n_fft // hop_length
    n_blocks = n_frames + R - 1
    ola_len = n_blocks * hop_length
    wsq = (win * win).reshape(R, hop_length)

    def overlap_add(blocks, b):  # blocks(q) -> (b, frames, hop) block q of every frame
        out = torch.zeros((b, n_blocks, hop_length), dtype=y.dtype, device=y.device)
        for q in reversed(range(R)):  # block m gets frame m - R + 1 first, as librosa's frame loop
            out[:, q:q + n_frames].add_(blocks(q))  # in place on the view (`+=` adds a copy_ back)
        return _fix_length(out.reshape(b, ola_len)[..., half:], out_len)

    if frame_lengths is None:
        wss_all = overlap_add(lambda q: wsq[q].expand(1, n_frames, hop_length), 1)
    for b0 in range(0, B, per_chunk):
        b1 = min(B, b0 + per_chunk)
        frames = torch.fft.irfft(X[b0:b1].transpose(-1, -2), n=n_fft, dim=-1)  # (b, frames, n_fft)
        frames *= win
        if frame_lengths is None:
            wss = wss_all
        else:
            valid = valid_mask(frame_lengths[b0:b1], n_frames).to(y.dtype).unsqueeze(-1)  # (b, frames, 1)
            frames *= valid
            wss = overlap_add(lambda q: valid * wsq[q], b1 - b0)
        blocks = frames.view(b1 - b0, n_frames, R, hop_length)
        yb = overlap_add(lambda q: blocks[:, :, q], b1 - b0)
        del frames, blocks
        y[b0:b1] = _divide_envelope(yb, wss)


def _fix_length(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] >= size:
        return x[..., :size]
    return nnf.pad(x, (0, size - x.shape[-1]))


def spectrogram(
    y: Optional[torch.Tensor] = None,
    *,
    S: Optional[torch.Tensor] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    power: float = 1.0,
    win_length: Optional[int] = None,
    window: Union[str, torch.Tensor] = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    lengths: Optional[torch.Tensor] = None,
    frame_lengths: Optional[torch.Tensor] = None,
    fast_stft: bool = False,
):
    """Magnitude spectrogram ``|stft(y)| ** power``, or ``S`` passed through; librosa's ``_spectrogram``.

    This is the shared front end of every STFT-family feature: compute it once and pass ``S`` to
    many features. A float32 ``y``'s STFT is computed in float64 and rounded to float32, as librosa
    does (see :func:`stft`); ``fast_stft=True`` runs it in float32 instead (faster; spectral contrast
    computed from such an ``S`` can be ~1e-1 off librosa on recorded speech).

    Args:
        y: ``[shape=(..., time)]`` waveform (ignored when ``S`` is given).
        S: ``[shape=(..., 1 + n_fft // 2, frames)]`` precomputed magnitude/power spectrogram.
        lengths: ``[shape=(...)]`` valid samples per example of a zero-padded batch ``y``.
            Samples beyond each length are treated as zeros, so every valid frame equals the frame
            librosa computes on the unpadded example.
        frame_lengths: ``[shape=(...)]`` valid frames per example when ``S`` is given.

    Returns:
        ``(S, n_fft, frame_lengths)``: the spectrogram ``[shape=(..., 1 + n_fft // 2, frames)]``,
        the FFT size it implies, and the per-example frame counts (``None`` without lengths).
    """
    check_length_kind(S is None, lengths, frame_lengths)
    if S is not None:
        S = valid_spectrogram(S)
        frame_lengths = check_frame_lengths(frame_lengths, S)
        return S, 2 * (S.shape[-2] - 1), frame_lengths
    if y is None:
        raise ParameterError("either y (a waveform) or S (a spectrogram) must be given, got neither")
    y = valid_audio(y)
    power = check_positive(power, "power")
    n_fft, hop_length, win_length = _check_stft_args(n_fft, hop_length, win_length, window, pad_mode, center)
    check_bool(fast_stft, "fast_stft")
    lengths = check_lengths(lengths, y)
    if lengths is not None:
        if center and pad_mode != "constant":
            # padding the batch would reflect/repeat the batch's end, not each example's own end
            raise ParameterError(f"lengths are supported with pad_mode='constant' only, got {pad_mode!r}")
        y = zero_padding(y, lengths)
        frame_lengths = num_frames(lengths, hop_length=hop_length, n_fft=n_fft, center=center)
        if not center and int(frame_lengths.min()) < 1:
            raise ParameterError(
                f"lengths must be >= n_fft={n_fft} for uncentered analysis, got {int(lengths.min())}"
            )
    else:
        frame_lengths = None
    D = _stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
              center=center, pad_mode=pad_mode, precise=not fast_stft)
    S = _magnitude(D, power)
    S = mask_frames(S, frame_lengths)
    return S, n_fft, frame_lengths


def _magnitude(D: torch.Tensor, power: float) -> torch.Tensor:
    """``|D| ** power`` with ``|D| = hypot(re, im)``: ``D.abs()``/numpy's ``abs`` to within an ulp,
    about twice as fast on CPU as complex ``abs`` or a sum of squared parts."""
    mag = torch.hypot(D.real, D.imag)
    if power == 1.0:
        return mag
    if power == 2.0:
        return mag.mul_(mag)  # numpy's |D| ** 2.0 squares |D| too
    return mag.pow_(power)


def _masked_amax(x: torch.Tensor, frame_lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Max over the last two axes ``(F, frames)`` of each example's valid frames; shape ``(..., 1, 1)``."""
    if frame_lengths is not None:
        x = mask_frames(x, frame_lengths, value=-float("inf"))
    return x.amax(dim=(-2, -1), keepdim=True)


def _is_max(ref) -> bool:
    return ref in (builtins.max, np.max, np.amax, torch.max, torch.amax) or ref == "max"


def power_to_db(
    S: torch.Tensor,
    *,
    ref: Union[float, Callable, str] = 1.0,
    amin: float = 1e-10,
    top_db: Optional[float] = 80.0,
    frame_lengths: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Convert a power spectrogram to decibels; equals ``librosa.power_to_db``.

    ``10 * log10(max(amin, S)) - 10 * log10(max(amin, ref))``, then floored at ``max - top_db``.
    librosa takes that max over the whole array it is given; here it is taken over each
    ``(freq, frames)`` spectrogram separately (over valid frames only when ``frame_lengths`` is
    given), which equals calling librosa on each example alone.

    Args:
        S: ``[shape=(..., freq, frames)]`` non-negative power spectrogram.
        ref: a positive number, or ``max`` (``np.max``/``torch.amax``/``'max'``) for each
            spectrogram's own maximum.
        amin: floor on ``S`` and ``ref`` before the logarithm (> 0).
        top_db: threshold below the peak in dB (>= 0), or ``None`` for no floor.
        frame_lengths: ``[shape=(...)]`` valid frames per example; padded frames come out as 0.

    Returns:
        ``[shape=(..., freq, frames)]`` decibels.
    """
    S = valid_spectrogram(S)
    amin = check_positive(amin, "amin")
    if top_db is not None:
        top_db = check_nonnegative(top_db, "top_db")
    frame_lengths = check_frame_lengths(frame_lengths, S)
    if _is_max(ref):
        ref_value = _masked_amax(S.abs(), frame_lengths)
    elif callable(ref):  # librosa calls it on the one array it is given: here that would be the whole batch
        raise ParameterError(f"ref must be a number or max (max, np.max, np.amax, torch.max, torch.amax or 'max': "
                             f"each spectrogram's own maximum), got the callable {_describe(ref)}: another "
                             f"reduction would be taken over the whole batch, not each example; compute it per "
                             f"example and pass a number")
    else:
        if isinstance(ref, bool) or not isinstance(ref, numbers.Real):
            raise ParameterError(f"ref must be a number or max, got {_describe(ref)}")
        ref_value = abs(check_real(ref, "ref"))
    return _power_to_db(S, ref_value, amin, top_db, frame_lengths)


def _power_to_db(S, ref_value, amin: float, top_db: Optional[float], frame_lengths) -> torch.Tensor:
    log_spec = 10.0 * torch.log10(torch.clamp(S, min=amin))
    if isinstance(ref_value, torch.Tensor):
        ref_value = torch.as_tensor(ref_value, dtype=S.dtype, device=S.device)
    else:  # a number: rounded to S's dtype (beyond its range: inf) and its dB computed on the host, in
        # S's dtype; a 0-d host tensor enters a device kernel by value (no kernels for a constant)
        ref_value = torch.full((), float(torch.tensor(ref_value, dtype=S.dtype)), dtype=S.dtype)
    log_spec = log_spec - 10.0 * torch.log10(torch.clamp(ref_value, min=amin))
    if top_db is not None:
        log_spec = torch.maximum(log_spec, _masked_amax(log_spec, frame_lengths) - top_db)
    return mask_frames(log_spec, frame_lengths)


def fft_frequencies(*, sr: float = 22050, n_fft: int = 2048, device=None, dtype=torch.float64) -> torch.Tensor:
    """Centre frequency of each FFT bin, ``[shape=(1 + n_fft // 2,)]``; equals ``librosa.fft_frequencies``."""
    sr = check_positive(sr, "sr")
    n_fft = check_positive_int(n_fft, "n_fft")
    return torch.from_numpy(np.fft.rfftfreq(n=n_fft, d=1.0 / sr)).to(device=device, dtype=dtype)


