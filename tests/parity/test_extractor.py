"""FeatureExtractor rows, clip by clip, against the librosa stack of docs/design.md."""

from __future__ import annotations

import functools

import librosa
import numpy as np
import pytest
import torch

from ser_gpu.errors import ParameterError
from ser_gpu.transforms import FEATURE_ROWS, FeatureConfig, FeatureExtractor
from ser_gpu.transforms.features import _ROW_SLICES
from tests.conftest import CQT_TOL, STFT_TOL
from tests.signals import SIGNALS

SR = 22050
SPEECH = ["speech_16k", "speech_44k1", "speech_48k"]  # recorded-speech-like clips (tests/data/)
CLIPS = ["speech_like", "noise", "silence_burst", "odd_12345"] + SPEECH
STFT_FAMILIES = ["mfcc", "mfcc_delta", "mfcc_delta2", "chroma", "contrast", "zcr", "rms", "rolloff", "centroid"]


def librosa_stack(y: np.ndarray, *, tonnetz: bool, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """The original system's 68 rows for one clip (after its trim), straight from librosa (other STFT
    settings: every row takes ``hop_length``, the STFT rows ``n_fft``; trim, ZCR and RMS keep their
    2048-sample frames and ``effects.harmonic`` its own STFT, as docs/design.md says)."""
    y, _ = librosa.effects.trim(y, top_db=20)
    stft = dict(n_fft=n_fft, hop_length=hop_length)
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, **stft)
    rows = [
        mfcc,
        librosa.feature.delta(mfcc),
        librosa.feature.delta(mfcc, order=2),
        librosa.feature.chroma_stft(y=y, sr=SR, **stft),
        librosa.feature.spectral_contrast(y=y, sr=SR, **stft),
        (librosa.feature.tonnetz(y=librosa.effects.harmonic(y), sr=SR, hop_length=hop_length) if tonnetz
         else np.zeros((6, mfcc.shape[1]))),
        librosa.feature.zero_crossing_rate(y=y, hop_length=hop_length),
        librosa.feature.rms(y=y, hop_length=hop_length),
        librosa.feature.spectral_rolloff(y=y, sr=SR, **stft),
        librosa.feature.spectral_centroid(y=y, sr=SR, **stft),
    ]
    return np.concatenate(rows, axis=0)


@functools.lru_cache(maxsize=None)
def reference(name: str, tonnetz: bool, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    return librosa_stack(SIGNALS[name], tonnetz=tonnetz, n_fft=n_fft, hop_length=hop_length)


def _family_errors(ours: np.ndarray, ref: np.ndarray) -> dict:
    errs = {}
    for fam, sl in _ROW_SLICES.items():
        scale = np.abs(ref[sl]).max()
        errs[fam] = float(np.abs(ours[sl] - ref[sl]).max() / scale) if scale > 0 else float(np.abs(ours[sl]).max())
    return errs


def _check(errs: dict, dtype, families) -> None:
    for fam in families:
        if fam == "rolloff":
            continue  # a bin pick: checked separately by counting flipped frames
        tol = CQT_TOL[dtype] if fam == "tonnetz" else STFT_TOL[dtype]
        assert errs[fam] <= tol, f"{fam}: {errs[fam]:.3g} > {tol}"


def _rolloff_flips(ours: np.ndarray, ref: np.ndarray) -> int:
    sl = _ROW_SLICES["rolloff"]
    return int((np.abs(ours[sl] - ref[sl]) > 1e-6).sum())


def test_row_names():
    assert len(FEATURE_ROWS) == 68
    assert FEATURE_ROWS[0] == "mfcc_0" and FEATURE_ROWS[39] == "chroma_0" and FEATURE_ROWS[58] == "tonnetz_0"
    assert FEATURE_ROWS[64:] == ("zcr", "rms", "rolloff", "centroid")


def test_repr_shows_every_setting():
    text = repr(FeatureExtractor(FeatureConfig(sr=16000, trim=False), max_frames=None))
    assert text.startswith("FeatureExtractor(sr=16000, n_fft=2048, hop_length=512, trim=False,")
    assert "max_frames=None" in text and "normalize='valid'" in text and text.endswith("fast_stft=False)")


def test_batch_rows_equal_librosa_stack_clip_by_clip(device, dtype):
    """A padded batch of differently long clips: each clip's raw rows equal librosa's stack."""
    clips = [SIGNALS[n] for n in CLIPS]
    T = max(len(c) for c in clips)
    y = torch.zeros(len(clips), T, dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = torch.from_numpy(c)
    lengths = torch.tensor([len(c) for c in clips])
    fe = FeatureExtractor(tonnetz=False, normalize=None, max_frames=None).to(device)
    out = fe(y.to(device), lengths.to(device))
    for i, name in enumerate(CLIPS):
        ref = reference(name, False)
        n = int(out.frame_lengths[i])
        assert n == ref.shape[1], f"{name}: {n} frames, librosa {ref.shape[1]}"
        ours = out.features[i, :, :n].cpu().double().numpy()
        _check(_family_errors(ours, ref), dtype, STFT_FAMILIES)
        assert _rolloff_flips(ours, ref) <= (0 if dtype == torch.float64 else max(1, n // 50))
        assert torch.all(out.features[i, :, n:] == 0)
        assert out.mask[i].sum() == n


@pytest.mark.parametrize("n_fft, hop_length", [(1024, 512), (2048, 256), (1024, 256)])
def test_other_stft_settings_give_librosa_rows_with_those_settings(n_fft, hop_length, dtype):
    """``n_fft``/``hop_length`` other than 2048/512: all 68 rows (tonnetz included, computed apart from the
    shared STFT then) equal librosa's stack with the same settings, frame for frame (hop 256 with tonnetz
    raised a shape error before 2026-12-07)."""
    for name in ("speech_like", "odd_12345"):
        ref = reference(name, True, n_fft, hop_length)
        fe = FeatureExtractor(n_fft=n_fft, hop_length=hop_length, normalize=None, max_frames=None)
        out = fe(torch.from_numpy(SIGNALS[name]).to(dtype))
        assert out.features.shape[-1] == ref.shape[1] == int(out.frame_lengths[0]), name
        ours = out.features[0].double().numpy()
        _check(_family_errors(ours, ref), dtype, STFT_FAMILIES + ["tonnetz"])
        assert _rolloff_flips(ours, ref) <= (0 if dtype == torch.float64 else max(1, ref.shape[1] // 50))


def test_max_frames_and_normalisation():
    y = torch.from_numpy(SIGNALS["speech_like"]).float()
    raw = FeatureExtractor(tonnetz=False, normalize=None, max_frames=None)(y)
    n = raw.features.shape[-1]
    padded = FeatureExtractor(tonnetz=False, normalize=None, max_frames=100)(y)
    assert padded.features.shape == (1, 68, 100)
    assert torch.equal(padded.features[..., :n], raw.features) and torch.all(padded.features[..., n:] == 0)
    cut = FeatureExtractor(tonnetz=False, normalize=None, max_frames=10)(y)
    assert torch.equal(cut.features, raw.features[..., :10]) and int(cut.frame_lengths) == 10

    valid = FeatureExtractor(tonnetz=False, normalize="valid", max_frames=100)(y).features[0]
    x = raw.features[0].double()
    expected = (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + 1e-8)
    assert torch.allclose(valid[:, :n].double(), expected, atol=1e-4)
    assert torch.all(valid[:, n:] == 0)

    orig = FeatureExtractor(tonnetz=False, normalize="padded", max_frames=100)(y).features[0]
    xp = padded.features[0].double()
    expected_p = (xp - xp.mean(-1, keepdim=True)) / (xp.std(-1, unbiased=False, keepdim=True) + 1e-8)
    assert torch.allclose(orig.double(), expected_p, atol=1e-4)
    assert not torch.all(orig[:, n:] == 0), "the original's normalisation moves padded frames"


@pytest.mark.parametrize("clip", [np.zeros(22050), np.zeros(1), 0.1 * np.ones(700), np.array([0.3])],
                         ids=["silence", "one_zero_sample", "dc_shorter_than_n_fft", "one_sample"])
def test_edge_clips_are_finite(clip):
    """Silence, a single sample and clips shorter than n_fft give defined, finite rows (all 68)."""
    for normalize in (None, "valid", "padded"):
        out = FeatureExtractor(normalize=normalize, max_frames=None)(torch.from_numpy(clip).float())
        assert torch.isfinite(out.features).all()
        # trim never empties a clip: with ref=max its loudest frame is always 0 dB
        assert int(out.frame_lengths[0]) == 1 + len(clip) // 512


def test_edge_clips_in_a_batch_leave_the_others_unchanged():
    speech = torch.from_numpy(SIGNALS["speech_like"]).float()
    y = torch.zeros(3, len(speech))
    y[0] = speech
    y[2, 0] = 0.3
    lengths = torch.tensor([len(speech), 22050, 1])
    fe = FeatureExtractor(normalize=None, max_frames=None)
    out = fe(y, lengths)
    alone = fe(speech)
    n = int(alone.frame_lengths[0])
    assert torch.isfinite(out.features).all()
    assert torch.allclose(out.features[0, :, :n], alone.features[0], rtol=0, atol=1e-4 * alone.features.abs().max())


def test_all_68_rows_with_tonnetz_equal_librosa_stack(device, dtype):
    """The full stack, tonnetz from the HPSS-harmonic signal included, on a mixed-length batch."""
    names = ["speech_like", "odd_12345"] + SPEECH
    clips = [SIGNALS[n] for n in names]
    y = torch.zeros(len(clips), max(len(c) for c in clips), dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = torch.from_numpy(c)
    lengths = torch.tensor([len(c) for c in clips])
    fe = FeatureExtractor(tonnetz=True, normalize=None, max_frames=None).to(device)
    out = fe(y.to(device), lengths.to(device))
    for i, name in enumerate(names):
        ref = reference(name, True)
        n = int(out.frame_lengths[i])
        assert n == ref.shape[1]
        ours = out.features[i, :, :n].cpu().double().numpy()
        _check(_family_errors(ours, ref), dtype, STFT_FAMILIES + ["tonnetz"])
        assert _rolloff_flips(ours, ref) <= (0 if dtype == torch.float64 else max(1, n // 50))


def test_fast_stft_setting():
    """``fast_stft=True`` runs the shared FFT in float32: every row group but contrast keeps the
    float32 contract on the recorded-speech clip, contrast does not (the README gives the figures);
    float64 input is unaffected."""
    y = torch.from_numpy(SIGNALS["speech_48k"])
    ref = reference("speech_48k", False)
    kw = dict(tonnetz=False, normalize=None, max_frames=None)
    fast = FeatureExtractor(fast_stft=True, **kw)(y.float()).features[0].double().numpy()
    errs = _family_errors(fast, ref)
    _check(errs, torch.float32, [f for f in STFT_FAMILIES if f != "contrast"])
    assert errs["contrast"] > STFT_TOL[torch.float32], errs["contrast"]
    default = FeatureExtractor(**kw)(y.float()).features[0].double().numpy()
    assert _family_errors(default, ref)["contrast"] <= STFT_TOL[torch.float32]
    assert torch.equal(FeatureExtractor(fast_stft=True, **kw)(y).features, FeatureExtractor(**kw)(y).features)
    assert FeatureConfig.from_dict(FeatureConfig(fast_stft=True).to_dict()).fast_stft is True
    with pytest.raises(ParameterError, match="fast_stft"):
        FeatureConfig(fast_stft="yes")


@pytest.mark.parametrize("name, bad", [("trim", "no"), ("trim", 0), ("tonnetz", 1), ("tonnetz", None)])
def test_switches_must_be_bools(name, bad):
    """``trim='no'`` once passed (a non-empty string is truthy) and trimmed anyway."""
    with pytest.raises(ParameterError, match=f"{name} must be True or False, got {bad!r}"):
        FeatureConfig(**{name: bad})
    with pytest.raises(ParameterError, match=name):
        FeatureConfig.from_dict(dict(FeatureConfig().to_dict(), **{name: bad}))


@pytest.mark.parametrize("sr", [8000, 12800, 11025.0])
def test_a_rate_too_low_for_the_contrast_rows_is_refused_when_configured(sr):
    """librosa's spectral_contrast refuses a band above Nyquist at the first clip; the extractor says so
    when it is built, naming sr (12800: the top band's edge 6400 Hz is exactly Nyquist)."""
    with pytest.raises(ParameterError, match=f"sr={sr} is too low"):
        FeatureExtractor(sr=sr)
    with pytest.raises(ParameterError, match=f"sr={sr} is too low"):
        FeatureConfig(sr=sr)
    y = np.random.default_rng(0).standard_normal(int(sr)).astype(np.float32)
    with pytest.raises(librosa.ParameterError):
        librosa.feature.spectral_contrast(y=y, sr=sr)
    FeatureExtractor(sr=12801)  # just above: accepted


def test_tonnetz_rows_float32_on_chirp_follow_librosa_float32():
    """The chirp's harmonic part is faint, so the float32 signal itself moves its tonnetz: librosa's
    own float32 chain is 2.0e-2 off its float64 one. float32 rows are held to librosa's float32 stack
    (CQT contract); a float32 FFT in the shared STFT put them 5.4e-2 off."""
    y = SIGNALS["chirp"]
    ref32 = librosa_stack(y.astype(np.float32), tonnetz=True)
    out = FeatureExtractor(normalize=None, max_frames=None)(torch.from_numpy(y).float()).features[0].double().numpy()
    errs = _family_errors(out, ref32)
    assert errs["tonnetz"] <= CQT_TOL[torch.float32], errs["tonnetz"]
    _check(errs, torch.float32, [f for f in STFT_FAMILIES if f != "rolloff"])
