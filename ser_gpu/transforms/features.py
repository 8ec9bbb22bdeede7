"""FeatureExtractor: the 68 feature rows of docs/design.md for a waveform batch, in one call."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from .._validation import (check_bool, check_lengths, check_nonnegative, check_positive, check_positive_int,
                           config_from_dict, config_to_dict, valid_audio)
from ..errors import ParameterError
from ..functional import filters, unchecked
from ..functional.constantq import tonnetz
from ..functional.hpss import harmonic
from ..functional.lengths import num_frames, padding_mask, valid_mask, zero_padding
from ..functional.spectrum import fft_frequencies
from .row_stats import standardize_clips

__all__ = ["FEATURE_ROWS", "FeatureConfig", "FeatureBatch", "FeatureExtractor"]


def _names(prefix: str, n: int):
    return tuple(f"{prefix}_{i}" for i in range(n))


#: Names of the 68 rows, in the order of the contract (docs/design.md).
FEATURE_ROWS = (
    _names("mfcc", 13) + _names("mfcc_delta", 13) + _names("mfcc_delta2", 13) + _names("chroma", 12)
    + _names("contrast", 7) + _names("tonnetz", 6) + ("zcr", "rms", "rolloff", "centroid")
)
_ROW_SLICES = {"mfcc": slice(0, 13), "mfcc_delta": slice(13, 26), "mfcc_delta2": slice(26, 39),
               "chroma": slice(39, 51), "contrast": slice(51, 58), "tonnetz": slice(58, 64),
               "zcr": slice(64, 65), "rms": slice(65, 66), "rolloff": slice(66, 67), "centroid": slice(67, 68)}
_NORMALIZE = (None, "valid", "padded")


#: The spectral contrast rows' top band starts at ``200 * 2**5`` Hz (librosa's fmin=200, 6 bands), which
#: librosa requires below the Nyquist frequency: the 68 rows need ``sr`` above twice that.
_CONTRAST_TOP_EDGE = 200.0 * 2 ** 5

#: Largest ``max_frames`` a FeatureConfig accepts: 100000 frames is ~39 min at 22050 Hz, hop 512;
#: more would pad each clip of a batch to gigabytes of features.
MAX_FRAMES_LIMIT = 100_000


@dataclass
class FeatureConfig:
    """Settings of :class:`FeatureExtractor` (plain data: stored in checkpoints as a dict).

    Attributes:
        sr: sampling rate of the input (Hz), above 12800 (the contrast rows' top band, 6400 Hz and
            up, must lie below Nyquist, as librosa requires).
        n_fft, hop_length: STFT size and hop shared by every row.
        trim: trim leading/trailing silence first (``librosa.effects.trim(y, top_db=top_db)``).
        top_db: trim threshold in dB below each clip's loudest frame (20 as the original system).
        max_frames: pad with zeros / truncate the frame axis to this many frames (862 as the
            original; at most :data:`MAX_FRAMES_LIMIT`), or ``None`` to keep this batch's longest clip.
        normalize: per-row standardisation ``(x - mean) / (std + 1e-8)``: ``'valid'`` takes mean and
            std over each clip's valid frames only and leaves padded frames at 0; ``'padded'`` takes
            them over all ``max_frames`` frames, padding included, as the original system did (so a
            short clip's statistics are pulled towards 0 and its padding becomes non-zero);
            ``None`` returns raw librosa-equal values.
        tonnetz: compute rows 58-63 (HPSS harmonic -> chroma_cqt -> tonnetz); when False they are 0.
        fast_stft: for float32 input, run the shared STFT's FFT in float32 instead of float64.
            The default (False) computes it in float64 and rounds it to float32, as librosa does,
            so every row meets docs/design.md's float32 contract; True is faster on CPU but the
            spectral contrast rows (51-57) can be ~1e-1 off librosa on recorded speech, whose quiet
            high bands sit near the float32 FFT's rounding noise (figures in the README's "Parity
            with librosa"). No effect on float64 input.
    """

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    trim: bool = True
    top_db: float = 20.0
    max_frames: Optional[int] = 862
    normalize: Optional[str] = "valid"
    tonnetz: bool = True
    fast_stft: bool = False

    def __post_init__(self):
        # plain bools (a numpy bool would not load back from a checkpoint with weights_only=True)
        self.trim = check_bool(self.trim, "trim")
        self.tonnetz = check_bool(self.tonnetz, "tonnetz")
        self.fast_stft = check_bool(self.fast_stft, "fast_stft")
        check_positive(self.sr, "sr")
        if self.sr / 2 <= _CONTRAST_TOP_EDGE:  # here, not at the first batch, and naming what the user set
            raise ParameterError(
                f"sr={self.sr} is too low for the 68 rows: the spectral contrast rows' top band starts at "
                f"{_CONTRAST_TOP_EDGE:g} Hz (librosa's fmin=200 Hz, 6 bands), which must lie below the Nyquist "
                f"frequency sr / 2; use sr > {2 * _CONTRAST_TOP_EDGE:g} (e.g. ser_gpu.io.load(path, sr=22050) "
                f"resamples a file)")
        check_positive_int(self.n_fft, "n_fft")
        unchecked.contrast_bands(float(self.sr), self.n_fft, 200.0, 6, 0.02)  # an n_fft too small for them: an error
        check_positive_int(self.hop_length, "hop_length")
        check_nonnegative(self.top_db, "top_db")
        if self.max_frames is not None:
            check_positive_int(self.max_frames, "max_frames")
            if self.max_frames > MAX_FRAMES_LIMIT:  # every clip is padded to it: (batch, 68, max_frames) floats
                raise ParameterError(
                    f"max_frames={self.max_frames} would pad every clip to {self.max_frames} frames "
                    f"({self.max_frames * self.hop_length / self.sr / 3600:.3g} h of audio at sr={self.sr}, "
                    f"hop_length={self.hop_length}); at most {MAX_FRAMES_LIMIT} is accepted (the original "
                    f"system used 862), or None for each batch's longest clip")
        if self.normalize not in _NORMALIZE:
            raise ParameterError(f"normalize must be one of {_NORMALIZE}, got {self.normalize!r}")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return config_from_dict(cls, data)


class FeatureBatch(NamedTuple):
    """Output of :class:`FeatureExtractor`.

    Attributes:
        features: ``[shape=(B, 68, frames)]`` rows in :data:`FEATURE_ROWS` order.
        frame_lengths: ``[shape=(B,)]`` int64 valid frames per clip (after trim and truncation).
        mask: ``[shape=(B, frames)]`` bool, True on valid frames.
    """

    features: torch.Tensor
    frame_lengths: torch.Tensor
    mask: torch.Tensor


class FeatureExtractor(nn.Module):
    """The 68 feature rows of docs/design.md from a ``(B, T)`` waveform batch, batched on any device.

    One shared STFT feeds every STFT-family row; the mel and DCT filterbanks are buffers, so
    ``.to(device)`` moves everything. Each clip's rows equal the librosa calls of docs/design.md on that
    clip alone (after the optional trim): padding never leaks into valid frames.

    Edge clips have a defined result: trim never empties a clip (its loudest frame is 0 dB below
    itself), so a silent clip keeps all its frames and gives finite rows (MFCCs at the -100 dB floor,
    zero chroma/tonnetz/centroid/rolloff); a clip shorter than ``n_fft`` or a single sample gives
    ``1 + length // hop_length`` frames, and its deltas follow :func:`ser_gpu.functional.delta`'s
    rule for clips of fewer than 9 frames.

    Args:
        config: a :class:`FeatureConfig`; keyword arguments override its fields.

    Shape:
        - y: ``(B, T)`` (or ``(T,)``: one clip, a batch of one) float32/float64 waveforms at ``config.sr``,
          zero-padded.
        - lengths: ``(B,)`` int valid samples per clip (default: all ``T``); one length for a ``(T,)`` clip.
        - output: :class:`FeatureBatch` with ``features`` ``(B, 68, frames)`` (``(1, 68, frames)`` for a
          ``(T,)`` clip).
    """

    def __init__(self, config: Optional[FeatureConfig] = None, **overrides):
        super().__init__()
        config = config or FeatureConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        c = self.config
        self.register_buffer("mel_basis", filters.mel(sr=c.sr, n_fft=c.n_fft, dtype=torch.float32), persistent=False)
        self.register_buffer("dct_basis", filters.dct(13, 128, dtype=torch.float32), persistent=False)
        self.register_buffer("freq", fft_frequencies(sr=c.sr, n_fft=c.n_fft, dtype=torch.float64).unsqueeze(-1),
                             persistent=False)

    @property
    def n_rows(self) -> int:
        return len(FEATURE_ROWS)

    def extra_repr(self) -> str:
        """Every setting, so a printed model shows which rows it computes (as WaveformAugment and SpecAugment)."""
        return ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config))

    def forward(self, y: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> FeatureBatch:
        c = self.config
        y = valid_audio(y)
        if y.ndim == 1:
            y = y.unsqueeze(0)
            if lengths is not None:
                lengths = torch.as_tensor(lengths)
                if lengths.numel() != 1:  # a RuntimeError from reshape before
                    raise ParameterError(f"lengths must hold one length for a 1-D y (one clip), got shape "
                                         f"{tuple(lengths.shape)}")
                lengths = lengths.reshape(1)
        if y.ndim != 2:
            raise ParameterError(f"y must have shape (B, T) or (T,), got {tuple(y.shape)}")
        lengths = check_lengths(lengths, y)
        if lengths is None:
            lengths = torch.full(y.shape[:1], y.shape[-1], dtype=torch.int64, device=y.device)
        if c.trim:  # librosa.effects.trim(y, top_db=top_db) on checked arguments (one sync: the new width)
            y, _, lengths = unchecked.trim(y, lengths, top_db=c.top_db, ref_db=None, frame_length=2048,
                                           hop_length=512)
        return self._rows(y, lengths)

    def _rows(self, y: torch.Tensor, lengths: torch.Tensor) -> FeatureBatch:
        c = self.config
        dtype = y.dtype
        n_fft, hop = c.n_fft, c.hop_length
        # one complex STFT (librosa's framing: zero padding, centred, hann) feeds every STFT-family
        # row and the HPSS of the tonnetz rows; the settings were checked by FeatureConfig. Its FFT
        # runs in float64 for float32 input (as librosa's): the contrast rows average each band's
        # quietest 2 % of bins, which a float32 FFT's rounding (~1e-7 of the loudest bin) swamps
        y = zero_padding(y, lengths)
        D = unchecked.stft(y, n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=True,
                           pad_mode="constant", precise=not c.fast_stft)
        fl = num_frames(lengths, hop_length=hop, n_fft=n_fft)
        mag = unchecked.magnitude(D, 1.0)
        mag.masked_fill_(padding_mask(fl, mag.shape[-1]).unsqueeze(-2), 0.0)
        # Order for a GPU: the work that needs no host read comes first and the two tuning estimates
        # (each reads its peak count back: a host sync) last, so the device runs the heavy HPSS while
        # the host queues the STFT-family rows instead of idling after a sync. Each row is the same
        # computation in any order.
        y_harm = self._harmonic(y, lengths, D, mag, fl) if c.tonnetz else None
        del D
        power = mag * mag
        B, n_frames = y.shape[0], mag.shape[-1]
        rows = {}  # row group -> (B, rows, frames), joined in FEATURE_ROWS order by one cat below

        mel_db = unchecked.power_to_db(torch.matmul(self.mel_basis.to(dtype), power), 1.0, 1e-10, 80.0, fl)
        rows["mfcc"] = mfcc = torch.matmul(self.dct_basis.to(dtype), mel_db)
        # delta(mfcc, order=1/2, frame_lengths=fl); padded frames are zeroed with the rest below
        rows["mfcc_delta"], rows["mfcc_delta2"] = unchecked.deltas(mfcc, 9, (1, 2), fl)
        rows["contrast"] = unchecked.spectral_contrast(mag, fl, sr=c.sr, n_fft=n_fft, fmin=200.0, n_bands=6,
                                                       quantile=0.02, linear=False)
        freq = self.freq.to(dtype)
        rows["rolloff"] = unchecked.spectral_rolloff(mag, freq, 0.85)
        rows["centroid"] = unchecked.spectral_centroid(mag, freq)
        del mag
        # y is already zero beyond each length; padded frames are zeroed below with the rest
        rows["zcr"] = unchecked.zero_crossing_rate(y, frame_length=2048, hop_length=hop, center=True,
                                                   threshold=1e-10, lengths=lengths)[0]
        rows["rms"] = unchecked.rms_waveform(y, frame_length=2048, hop_length=hop, center=True,
                                             pad_mode="constant", lengths=lengths)[0]

        # librosa's chroma_stft -> estimate_tuning(S=S) -> piptrack keeps its default n_fft=2048 when
        # it matches S's bins and otherwise infers 2 * (bins - 1) (odd n_fft)
        F = power.shape[-2]
        tuning = unchecked.estimate_tuning(power, sr=c.sr, n_fft=2048 if F == 1025 else 2 * (F - 1),
                                           frame_lengths=fl, bins_per_octave=12, fmax=min(4000.0, c.sr / 2))
        chroma_fb = filters.chroma(sr=c.sr, n_fft=n_fft, tuning=tuning, device=y.device, dtype=dtype)
        rows["chroma"] = unchecked.normalize(torch.matmul(chroma_fb, power), norm=math.inf, axis=-2)
        del power
        rows["tonnetz"] = self._tonnetz(y_harm, lengths, fl) if c.tonnetz else y.new_zeros((B, 6, n_frames))
        out = torch.cat([rows[name] for name in _ROW_SLICES], dim=1)  # _ROW_SLICES is in FEATURE_ROWS order
        out.masked_fill_(padding_mask(fl, n_frames).unsqueeze(-2), 0.0)
        return self._finish(out, fl)

    def _harmonic(self, y: torch.Tensor, lengths: torch.Tensor, D: torch.Tensor, mag: torch.Tensor,
                  fl: torch.Tensor) -> torch.Tensor:
        """``effects.harmonic(y)`` per clip (zero beyond each length): the HPSS reuses the shared STFT
        ``D`` (overwritten: the caller needs it no more) on the internal, already-checked entry points."""
        n_fft, hop = self.config.n_fft, self.config.hop_length
        if (n_fft, hop) != (2048, 512):  # effects.harmonic's own STFT settings differ from the rows'
            y_harm, _ = harmonic(y, lengths=lengths)
            return y_harm
        (y_harm,) = unchecked.hpss_from_stft(D, mag, (True, False), kernels=(31, 31), margins=(1.0, 1.0),
                                             power=2.0, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                                             window="hann", center=True, length=y.shape[-1], lengths=lengths,
                                             frame_lengths=fl, chunk_size=unchecked.DEFAULT_CHUNK_SIZE,
                                             overwrite=True)
        return y_harm

    def _tonnetz(self, y_harm: torch.Tensor, lengths: torch.Tensor, fl: torch.Tensor) -> torch.Tensor:
        """``feature.tonnetz(y=y_harm)`` per clip, on the internal, already-checked entry points."""
        sr, n_fft, hop = self.config.sr, self.config.n_fft, self.config.hop_length
        if (n_fft, hop) != (2048, 512):  # the rows' hop, so the frames line up with theirs
            ton, _ = tonnetz(y_harm, sr=sr, lengths=lengths, hop_length=hop)
            return ton
        # chroma_cqt's tuning: estimate_tuning(y=y_harm, bins_per_octave=36), i.e. piptrack on |STFT|
        # (the same framing as the rows, so the same frame counts; y_harm is zero beyond each length)
        D_harm = unchecked.stft(y_harm, n_fft=2048, hop_length=512, win_length=2048, window="hann", center=True,
                                pad_mode="constant")
        tuning = unchecked.estimate_tuning(unchecked.magnitude(D_harm, 1.0), sr=sr, n_fft=2048, frame_lengths=fl,
                                           bins_per_octave=36, fmax=min(4000.0, sr / 2))
        del D_harm
        C, cfl = unchecked.cqt(y_harm, sr=sr, hop_length=512, fmin=unchecked.C1, n_bins=7 * 36, bins_per_octave=36,
                               tuning=tuning, filter_scale=1.0, norm=1.0, sparsity=0.01, window="hann", scale=True,
                               pad_mode="constant", lengths=lengths)
        # chroma_cqt(C=|C|, frame_lengths=cfl) -> tonnetz(chroma=...), without re-validating
        return unchecked.tonnetz_from_chroma(unchecked.chroma_from_cqt(C.abs(), cfl), cfl)

    def _finish(self, out: torch.Tensor, fl: torch.Tensor) -> FeatureBatch:
        c = self.config
        if c.max_frames is not None:
            T = out.shape[-1]
            if T >= c.max_frames:
                out = out[..., : c.max_frames]
            else:
                out = torch.nn.functional.pad(out, (0, c.max_frames - T))
            fl = torch.clamp(fl, max=c.max_frames)
        mask = valid_mask(fl, out.shape[-1])
        if c.normalize == "valid":
            out = standardize_clips(out, fl)
        elif c.normalize == "padded":
            mean = out.mean(-1, keepdim=True)
            std = out.std(-1, unbiased=False, keepdim=True)
            out = (out - mean) / (std + 1e-8)
        return FeatureBatch(out, fl, mask)
