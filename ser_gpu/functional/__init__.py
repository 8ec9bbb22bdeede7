"""Pure functions on tensors: librosa-equal features, batched, on any device and dtype.

Every function takes a waveform ``y`` of shape ``(..., time)`` (or a spectrogram where librosa
accepts one), keyword-only settings with librosa's names and defaults, and optional ``lengths``
for zero-padded batches.
"""

from . import constantq, filters, hpss, lengths, median, pitch
from .hpss import harmonic, percussive
from .constantq import chroma_cqt, cqt, tonnetz
from .augment import add_noise, add_noise_snr, mask_along_axis, shift
from .effects import phase_vocoder, pitch_shift, resample, time_stretch, trim
from .features import (
    chroma_stft,
    delta,
    melspectrogram,
    mfcc,
    rms,
    spectral_centroid,
    spectral_contrast,
    spectral_rolloff,
    zero_crossing_rate,
)
from .pitch import estimate_tuning, piptrack, pitch_tuning
from .util import normalize
from .lengths import frame_mask, num_frames, valid_mask
from .spectrum import fft_frequencies, get_window, istft, power_to_db, spectrogram, stft

__all__ = [
    "filters",
    "stft",
    "spectrogram",
    "power_to_db",
    "fft_frequencies",
    "get_window",
    "num_frames",
    "frame_mask",
    "valid_mask",
    "lengths",
    "median",
    "melspectrogram",
    "mfcc",
    "delta",
    "chroma_stft",
    "spectral_contrast",
    "zero_crossing_rate",
    "rms",
    "spectral_rolloff",
    "spectral_centroid",
    "trim",
    "phase_vocoder",
    "time_stretch",
    "pitch_shift",
    "resample",
    "add_noise",
    "add_noise_snr",
    "shift",
    "mask_along_axis",
    "constantq",
    "hpss",
    "harmonic",
    "percussive",
    "istft",
    "cqt",
    "chroma_cqt",
    "tonnetz",
    "pitch",
    "piptrack",
    "pitch_tuning",
    "estimate_tuning",
    "normalize",
]
