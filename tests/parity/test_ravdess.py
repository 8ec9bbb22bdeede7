"""Real recordings: a few RAVDESS clips (48 kHz FLAC), when a copy of the corpus is at hand.

The corpus is not part of the repository; set ``SER_GPU_RAVDESS_DEV`` to a folder holding
``Actor_XX/03-01-...flac`` files (the development copy next to the repository is found without it).
Skipped otherwise. Clips are loaded with ``ser_gpu.io.load(path, sr=22050)`` (== ``librosa.load``)
and the 68 rows of a mixed-length batch are checked clip by clip against librosa's stack, float32
and float64, with docs/design.md's tolerances (issue 12: float32 contrast was 1e-2 off here).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ser_gpu.functional as F
from ser_gpu.io import load
from ser_gpu.transforms import FeatureExtractor
from ser_gpu.functional.constantq import chroma_cqt
from tests.conftest import CQT_TOL, STFT_TOL, rel_err
from tests.parity.test_extractor import STFT_FAMILIES, _check, _family_errors, _rolloff_flips, librosa_stack

_ROOT = Path(__file__).resolve().parents[2]
_CANDIDATES = [os.environ.get("SER_GPU_RAVDESS_DEV", ""), _ROOT.parent / "shared/data/ravdess_dev",
               _ROOT.parents[1] / "shared/data/ravdess_dev"]
# three actors, three emotions, both sexes: 03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>
CLIPS = ["Actor_02/03-01-05-02-01-01-02.flac", "Actor_07/03-01-04-02-02-01-07.flac",
         "Actor_12/03-01-01-01-01-02-12.flac"]
# untrimmed clips opening with ~0.1 s of digital silence, where chroma_cqt's per-frame normalisation
# magnifies the CQT's difference from librosa ~1e4 times (the long low filters' tails reach those frames)
SILENT_START = ["Actor_02/03-01-01-01-01-01-02.flac", "Actor_04/03-01-04-02-01-01-04.flac"]


def _corpus():
    for c in _CANDIDATES:
        if c and all((Path(c) / clip).is_file() for clip in CLIPS + SILENT_START):
            return Path(c)
    return None


CORPUS = _corpus()
pytestmark = pytest.mark.skipif(CORPUS is None, reason="no RAVDESS development copy (SER_GPU_RAVDESS_DEV)")


@functools.lru_cache(maxsize=None)
def clips(names=tuple(CLIPS)):
    return [load(CORPUS / c, sr=22050)[0].double().numpy() for c in names]


@functools.lru_cache(maxsize=None)
def reference(i: int) -> np.ndarray:
    return librosa_stack(clips()[i], tonnetz=True)


def test_rows_equal_librosa_on_recordings(dtype):
    ys = clips()
    y = torch.zeros(len(ys), max(len(c) for c in ys), dtype=dtype)
    for i, c in enumerate(ys):
        y[i, : len(c)] = torch.from_numpy(c)
    out = FeatureExtractor(normalize=None, max_frames=None)(y, torch.tensor([len(c) for c in ys]))
    for i in range(len(ys)):
        ref = reference(i)
        n = int(out.frame_lengths[i])
        assert n == ref.shape[1]
        ours = out.features[i, :, :n].double().numpy()
        _check(_family_errors(ours, ref), dtype, STFT_FAMILIES + ["tonnetz"])
        assert _rolloff_flips(ours, ref) <= (0 if dtype == torch.float64 else max(1, n // 50))


def test_spectral_contrast_on_recordings(dtype):
    import librosa

    for y in clips():
        ref = librosa.feature.spectral_contrast(y=y, sr=22050)
        assert rel_err(F.spectral_contrast(torch.from_numpy(y).to(dtype)), ref) <= STFT_TOL[dtype]


@pytest.mark.parametrize("dtype", [
    pytest.param(torch.float64, marks=pytest.mark.xfail(
        strict=True, reason="1.4e-3 to 2.0e-3 > 1e-3 measured: the soxr-matched decimation filter's ~5e-7 "
                            "difference, magnified in the silent opening frames (not a float32 matter)")),
    torch.float32], ids=["float64", "float32"])
def test_chroma_cqt_on_silent_starts(dtype):
    """float32 input: the CQT's decimation runs its FFT convolution in float64 (a float32 one put
    ~1e-7 of the loudest sample into the silent opening: 1.5e-2 here before issue 12's fix)."""
    import librosa

    for y in clips(tuple(SILENT_START)):
        ref = librosa.feature.chroma_cqt(y=y, sr=22050)
        assert rel_err(chroma_cqt(torch.from_numpy(y).to(dtype), sr=22050), ref) <= CQT_TOL[dtype]
