"""The test signal set of docs/design.md, deterministic, as float64 numpy arrays at 22050 Hz.

white noise, sinusoids and chirps, a harmonic speech-like signal with vibrato, silence plus a
burst, clips shorter than n_fft and odd lengths; and recorded-speech-like clips: one spoken
sentence (espeak-ng) with a quiet passage, band-limited to 4.5 kHz, stored as 16-bit WAV at 16,
44.1 and 48 kHz in tests/data/ (how they were made: tests/data/README.md) and loaded as the
project loads audio, ``librosa.load(path, sr=22050)``. Their quiet high bands are what real
recordings have and the synthetic signals lack: there a float32 FFT's rounding is 10 % of a bin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050
DATA = Path(__file__).resolve().parent / "data"
#: signal name -> file in tests/data/ (16-bit PCM WAV, 1.57 s, resampled to SR on load)
SPEECH_FILES = {
    "speech_16k": "speech_16000.wav",
    "speech_44k1": "speech_44100.wav",
    "speech_48k": "speech_48000.wav",
}


def load_speech(name: str, sr: int = SR) -> np.ndarray:
    """A tests/data/ speech clip as ``librosa.load(path, sr=sr)`` gives it (float32), in float64.

    Without librosa (a GPU machine runs tests/cuda, which compare the device with the CPU, not with
    librosa) the clip is read with the standard library's ``wave`` and resampled with
    :func:`ser_gpu.functional.resample` (soxr's response, not its exact filter): the same speech, a
    slightly different signal, which is all a CUDA-vs-CPU comparison needs.
    """
    try:
        import librosa
    except ImportError:
        return _load_speech_without_librosa(DATA / SPEECH_FILES[name], sr)
    y, _ = librosa.load(DATA / SPEECH_FILES[name], sr=sr)
    return y.astype(np.float64)


def _load_speech_without_librosa(path: Path, sr: int) -> np.ndarray:
    import wave

    import torch

    from ser_gpu.functional import resample

    with wave.open(str(path), "rb") as fh:
        assert fh.getsampwidth() == 2 and fh.getnchannels() == 1, path
        rate = fh.getframerate()
        pcm = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2")
    y = torch.from_numpy(pcm.astype(np.float64) / 32768.0)
    if rate != sr:
        y, _ = resample(y, orig_sr=rate, target_sr=sr)
    return y.to(torch.float32).double().numpy()


def _speech_like(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = 140.0 * (1.0 + 0.03 * np.sin(2 * np.pi * 5.5 * t)) * (1.0 + 0.15 * t / max(t[-1], 1e-9))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros(n)
    for k in range(1, 25):
        # formant-like spectral envelope: peaks near 700, 1200 and 2600 Hz
        fk = k * 140.0
        amp = (np.exp(-((fk - 700) / 300) ** 2) + 0.6 * np.exp(-((fk - 1200) / 400) ** 2)
               + 0.3 * np.exp(-((fk - 2600) / 500) ** 2) + 0.02) / k**0.5
        y += amp * np.sin(k * phase)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t / 0.9, 1.0)))  # syllable-like swell
    y = y * (0.2 + envelope) + 0.005 * rng.standard_normal(n)
    return 0.3 * y / np.abs(y).max()


def make_signals(sr: int = SR, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = int(1.2 * sr)  # 1.2 s keeps the parity suite fast on 2 CPU cores
    t = np.arange(n) / sr
    chirp_phase = 2 * np.pi * (100 * t + (4000 - 100) / (2 * t[-1]) * t**2)
    burst = np.zeros(n)
    start = int(0.5 * sr)
    burst[start:start + 4000] = 0.8 * rng.standard_normal(4000) * np.hanning(4000)
    return {
        "noise": 0.1 * rng.standard_normal(n),
        "sine440": 0.5 * np.sin(2 * np.pi * 440.0 * t),
        "two_tones": 0.3 * np.sin(2 * np.pi * 261.6 * t) + 0.2 * np.sin(2 * np.pi * 1318.5 * t + 0.3),
        "chirp": 0.4 * np.sin(chirp_phase),
        "speech_like": _speech_like(n, sr, rng),
        "silence_burst": burst,
        "short_1000": 0.3 * rng.standard_normal(1000),       # shorter than n_fft
        "odd_12345": 0.2 * np.sin(2 * np.pi * 333.3 * np.arange(12345) / sr)
        + 0.05 * rng.standard_normal(12345),
        **{name: load_speech(name, sr) for name in SPEECH_FILES},
    }


SIGNALS = make_signals()
SIGNAL_NAMES = sorted(SIGNALS)
