"""A tiny RAVDESS-named corpus written by the tests: learnable in a few epochs, seconds to train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
# Small settings so a run takes seconds on a 2-core CPU: no HPSS/constant-Q rows, short clips, the speech
# recipe's 1.1 M-parameter model (the default recipe, clip, trains the original's 6.6 M; tests of the
# default itself name no recipe)
FAST = dict(tonnetz=False, progress=False, lr=1e-3, batch_size=8, seed=0, recipe="speech")


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


# Files named like each corpus (ser_gpu.data.corpora), for the multi-corpus tests. Emotion labels
# (index into EMOTIONS) -> each corpus's code; every corpus records these four.
NAME_CODES = {
    "crema-d": {0: "NEU", 2: "HAP", 3: "SAD", 4: "ANG"},
    "tess": {0: "neutral", 2: "happy", 3: "sad", 4: "angry"},
    "savee": {0: "n", 2: "h", 3: "sa", 4: "a"},
    "emodb": {0: "N", 2: "F", 3: "T", 4: "W"},
}
SPEAKERS = {"crema-d": ("1001", "1002"), "tess": ("OAF", "YAF"), "savee": ("DC", "JE"), "emodb": ("03", "08")}


def corpus_name(corpus: str, label: int, speaker: str, k: int = 0) -> str:
    """A file name of ``corpus`` for emotion ``label``, ``speaker`` and take ``k`` (0-1)."""
    code = NAME_CODES[corpus][label]
    if corpus == "crema-d":
        return f"{speaker}_{('DFA', 'IEO')[k]}_{code}_XX.wav"
    if corpus == "tess":
        return f"{speaker}_{('back', 'bar')[k]}_{code}.wav"
    if corpus == "savee":
        return f"{speaker}_{code}{k + 1:02d}.wav"
    return f"{speaker}a0{k + 1}{code}a.wav"


def write_named_corpus(root: Path, corpus: str, *, labels=(0, 2, 3, 4), per=1) -> Path:
    """``root/<file named like corpus>`` for each of its two speakers, each label and ``per`` takes."""
    root.mkdir(parents=True, exist_ok=True)
    for s, speaker in enumerate(SPEAKERS[corpus]):
        for label in labels:
            for k in range(per):
                actor = 5 + 2 * list(SPEAKERS).index(corpus) + s  # a distinct voice per speaker
                sf.write(root / corpus_name(corpus, label, speaker, k), clip(label, actor, k), SR)
    return root
