"""The internal tier: ser_gpu.functional's kernels without their argument checks.

Every public function of :mod:`ser_gpu.functional` is one validation gate (a ``ParameterError``
naming the bad value) followed by a kernel. The modules of :mod:`ser_gpu.transforms` call those
kernels directly, through this module and nowhere else: their constructors check the settings
once and ``forward`` checks the batch once, and re-validating inside every call would cost host
syncs on a GPU (``isfinite(...).all()``, lengths checks) for nothing.

Callers promise checked arguments: waveforms ``(..., time)`` and spectrograms ``(..., freq,
frames)`` in float32/float64 (complex64/complex128), ``lengths``/``frame_lengths`` int64 on the
data's device and within range, settings that the public function would accept. Nothing here
raises ``ParameterError`` for a bad value (a bad value gives a wrong result or a torch error), with
two exceptions: ``cqt`` refuses a clip shorter than the decimation it runs before its first octave,
which only settings with few, high bins need (not the extractor's, which never meets that check), and
``contrast_bands`` (the band plan, no tensor work) refuses an ``n_fft`` that leaves a band empty, which
``FeatureConfig`` calls to check its settings.
Each name equals the public function of the same name (or the one named beside it) on checked
arguments.
"""

from __future__ import annotations

from .augment import _check_generator as check_generator  # the generator/device check of add_noise, shift
from .augment import _mask_along_axis as mask_along_axis
from .augment import _rand as rand  # per-example uniform draws from a generator
from .augment import _shift as shift
from .constantq import _C1 as C1  # librosa's default fmin, note_to_hz('C1')
from .constantq import _chroma_from_cqt as chroma_from_cqt  # chroma_cqt(C=...)
from .constantq import _cqt as cqt
from .constantq import _tonnetz_from_chroma as tonnetz_from_chroma  # tonnetz(chroma=...)
from .effects import _pitch_shift as pitch_shift
from .effects import _time_stretch as time_stretch
from .effects import _trim as trim
from .features import _contrast_bands as contrast_bands  # spectral_contrast's octave bands (refuses an empty one)
from .features import _delta as delta
from .features import _deltas as deltas  # delta of several orders, the frames gathered once
from .features import _rms_waveform as rms_waveform  # rms(y=...)
from .features import _spectral_centroid as spectral_centroid  # spectral_centroid(S=..., freq=...)
from .features import _spectral_contrast as spectral_contrast  # spectral_contrast(S=...)
from .features import _spectral_rolloff as spectral_rolloff  # spectral_rolloff(S=..., freq=...)
from .features import _zero_crossing_rate as zero_crossing_rate
from .hpss import DEFAULT_CHUNK_SIZE
from .hpss import _hpss_from_stft as hpss_from_stft  # hpss of a complex STFT, back to waveforms
from .pitch import _estimate_tuning as estimate_tuning  # estimate_tuning(S=...)
from .spectrum import _check_stft_args as check_stft_args  # the framing-argument gate of stft
from .spectrum import _magnitude as magnitude  # |D| ** power
from .spectrum import _power_to_db as power_to_db
from .spectrum import _stft as stft
from .util import _normalize as normalize

__all__ = [
    "check_generator", "rand", "shift", "mask_along_axis", "C1", "chroma_from_cqt", "cqt", "tonnetz_from_chroma",
    "pitch_shift", "time_stretch", "trim", "delta", "deltas", "rms_waveform", "spectral_centroid", "spectral_contrast",
    "spectral_rolloff", "zero_crossing_rate", "DEFAULT_CHUNK_SIZE", "hpss_from_stft", "estimate_tuning",
    "check_stft_args", "magnitude", "power_to_db", "stft", "contrast_bands", "normalize",
]
