"""The DESIGN.md test signal set, deterministic, as float64 numpy arrays at 22050 Hz.

white noise, sinusoids and chirps, a harmonic speech-like signal with vibrato, silence plus a
burst, clips shorter than n_fft and odd lengths.
"""

from __future__ import annotations

import numpy as np

SR = 22050


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
    }


SIGNALS = make_signals()
SIGNAL_NAMES = sorted(SIGNALS)
