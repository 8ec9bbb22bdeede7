"""A tiny RAVDESS-named corpus written by the tests: learnable in a few epochs, seconds to train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
# Small settings so a run takes seconds on a 2-core CPU: no HPSS/constant-Q rows, short clips.
FAST = dict(tonnetz=False, progress=False, lr=1e-3, batch_size=8, seed=0)


def clip(emotion: int, actor: int, k: int, seconds: float = 0.6) -> np.ndarray:
    """A tone whose pitch and tremolo rate depend on the emotion (an easy, learnable difference)."""
    rng = np.random.default_rng(100 * emotion + 10 * actor + k)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150.0 * 2 ** (emotion / 4) * (1 + 0.02 * actor)
    trem = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + 3 * emotion) * t)
    y = 0.3 * trem * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def write_corpus(root: Path, *, emotions=(1, 3, 5, 7), actors=(1, 2, 3, 4), per=2) -> Path:
    """``root/Actor_XX/03-01-EE-01-SS-RR-AA.wav`` for each emotion code, actor and ``per`` clips."""
    for a in actors:
        d = root / f"Actor_{a:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for e in emotions:
            for k in range(per):
                name = f"03-01-{e:02d}-01-{k % 2 + 1:02d}-{k // 2 + 1:02d}-{a:02d}.wav"
                sf.write(d / name, clip(e - 1, a, k), SR)
    return root
