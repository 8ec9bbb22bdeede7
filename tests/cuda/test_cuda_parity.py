"""Every public computation on CUDA against the same function's CPU float64 result, without librosa.

CI proves CPU ≡ librosa (tests/parity, CPU only); here each functional, the FeatureExtractor, the
augmentations and the model run on the device in float32 and float64 and are compared with the CPU
float64 result of the very same call, with docs/design.md's tolerances (STFT family 1e-4 / 1e-6,
constant-Q 1e-2 / 1e-3 for float32 / float64) and, for the few outputs the parity suite also judges
differently (bin picks, phase-vocoder effects), the parity suite's own rule, restated beside it.

The same checks run with ``device='cpu'`` in float32 (CPU float32 against CPU float64): that proves
the harness and its bounds here, where there is no GPU. Nothing in this module imports librosa,
soundfile, soxr or audiomentations, so it runs on a GPU machine that has none of them.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import ser_gpu.functional as F
from ser_gpu.functional import hpss as H
from ser_gpu.functional import median as M
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.transforms import FeatureExtractor, SpecAugment, WaveformAugment
from ser_gpu.transforms.features import _ROW_SLICES
from tests.conftest import CQT_TOL, HAS_CUDA, STFT_TOL, grid_tunings, rel_err
from tests.signals import SIGNAL_NAMES, SIGNALS

SR = 22050
cuda_marks = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]
# (device, dtype): CUDA in both precisions; CPU float32 as the self-check of this harness
GRID = [pytest.param("cuda", torch.float32, id="cuda-float32", marks=cuda_marks),
        pytest.param("cuda", torch.float64, id="cuda-float64", marks=cuda_marks),
        pytest.param("cpu", torch.float32, id="cpu-float32")]
CPLX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _y(name, device="cpu", dtype=torch.float64):
    return torch.from_numpy(SIGNALS[name]).to(device=device, dtype=dtype)


def _np(x):
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            x = torch.view_as_real(x)
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


@functools.lru_cache(maxsize=None)
def _ref(case: str, name: str):
    """The CPU float64 result of ``case`` on signal ``name`` (computed once per session)."""
    out = CASES[case](_y(name), torch.float64)
    return tuple(_np(o) for o in out) if isinstance(out, tuple) else _np(out)


def _logmag_corr(ours, ref, floor_db=80.0) -> float:
    """Correlation of two waveforms' log-magnitude spectrograms (dB floored 80 dB below the
    reference's peak), with our own float64 STFT: the parity suite's similarity metric."""
    A = F.spectrogram(torch.as_tensor(_np(ours)))[0].numpy()
    R = F.spectrogram(torch.as_tensor(_np(ref)))[0].numpy()
    peak = R.max()
    la = np.maximum(20 * np.log10(np.maximum(A / peak, 1e-12)), -floor_db)
    lr = np.maximum(20 * np.log10(np.maximum(R / peak, 1e-12)), -floor_db)
    return float(np.corrcoef(la.ravel(), lr.ravel())[0, 1])


def _scaled_err(ours, ref, floor) -> float:
    """The relative error, judged against ``floor`` for an all-zero reference: tests/parity/test_hpss.py's rule."""
    ours, ref = _np(ours), np.asarray(ref)
    scale = np.abs(ref).max()
    return float(np.abs(ours - ref).max() / (scale if scale > 0 else floor))


# --------------------------------------------------------------------- the calls, on (y, dtype)
# each takes a float64 CPU waveform, moves/casts it itself and returns tensors on its device


def _pcm16(y):
    """``y`` rounded to 16-bit PCM levels, as tests/parity/test_features.py's contrast test rounds it."""
    return torch.round(y * 32768) / 32768


def _mfcc64(y):
    return F.mfcc(y.cpu().double(), sr=SR, n_mfcc=13)


CASES = {
    "stft": lambda y, dt: F.stft(y.to(dt)),
    "spectrogram": lambda y, dt: F.spectrogram(y.to(dt), power=2.0)[0],
    "power_to_db": lambda y, dt: F.power_to_db(F.spectrogram(y.to(dt), power=2.0)[0]),
    "melspectrogram": lambda y, dt: F.melspectrogram(y.to(dt), sr=SR),
    "mfcc": lambda y, dt: F.mfcc(y.to(dt), sr=SR, n_mfcc=13),
    "delta1": lambda y, dt: F.delta(_mfcc64(y).to(device=y.device, dtype=dt), order=1),
    "delta2": lambda y, dt: F.delta(_mfcc64(y).to(device=y.device, dtype=dt), order=2),
    "chroma_stft": lambda y, dt: F.chroma_stft(y.to(dt), sr=SR),
    "spectral_contrast": lambda y, dt: F.spectral_contrast(y.to(dt), sr=SR),
    "zero_crossing_rate": lambda y, dt: F.zero_crossing_rate(y.to(dt)),
    "rms": lambda y, dt: F.rms(y.to(dt)),
    "spectral_centroid": lambda y, dt: F.spectral_centroid(y.to(dt), sr=SR),
    "istft": lambda y, dt: F.istft(F.stft(y.to(dt)), length=y.shape[-1]),
    "hpss": lambda y, dt: H.hpss(F.stft(y.to(dt))),
    "cqt": lambda y, dt: F.cqt(y.to(dt), sr=SR).abs(),
    "chroma_cqt": lambda y, dt: F.chroma_cqt(y.to(dt), sr=SR),
    "tonnetz": lambda y, dt: F.tonnetz(y.to(dt), sr=SR),
    "piptrack_pitches": lambda y, dt: F.piptrack(y.to(dt), sr=SR)[0],
    "piptrack_magnitudes": lambda y, dt: F.piptrack(y.to(dt), sr=SR)[1],
    # float32 contrast on noise-free tones divides by valleys at the STFT's rounding noise: on the tones
    # rounded to 16 bits, as a recording is (tests/parity/test_features.py::test_spectral_contrast_16bit_tones)
    "contrast_16bit": lambda y, dt: F.spectral_contrast(_pcm16(y).to(dt), sr=SR),
    # bin picks / threshold decisions (judged by their own rules below)
    "spectral_rolloff": lambda y, dt: F.spectral_rolloff(y.to(dt), sr=SR),
    "estimate_tuning": lambda y, dt: F.estimate_tuning(y.to(dt), sr=SR),
    "trim": lambda y, dt: F.trim(y.to(dt), top_db=20)[1],
    # waveform effects (phase vocoder: the parity suite's log-magnitude similarity in float32)
    "harmonic": lambda y, dt: F.harmonic(y.to(dt)),
    "percussive": lambda y, dt: F.percussive(y.to(dt)),
    "time_stretch": lambda y, dt: F.time_stretch(y.to(dt), rate=1.17)[0],
    "pitch_shift": lambda y, dt: F.pitch_shift(y.to(dt), sr=SR, n_steps=1.5),
    "resample": lambda y, dt: F.resample(y.to(dt), orig_sr=SR, target_sr=16000)[0],
}
STFT_CASES = ["stft", "spectrogram", "power_to_db", "melspectrogram", "mfcc", "delta1", "delta2", "chroma_stft",
              "spectral_contrast", "zero_crossing_rate", "rms", "spectral_centroid", "istft", "piptrack_pitches", "piptrack_magnitudes"]
TONES = {"sine440", "two_tones", "chirp"}
CQT_CASES = ["cqt", "chroma_cqt", "tonnetz"]


@pytest.mark.parametrize("name", SIGNAL_NAMES)
@pytest.mark.parametrize("case", STFT_CASES + CQT_CASES)
@pytest.mark.parametrize("device,dtype", GRID)
def test_functional_matches_cpu_float64(case, name, device, dtype):
    if case == "spectral_contrast" and dtype == torch.float32 and name in TONES:
        case = "contrast_16bit"
    ours = CASES[case](_y(name, device), dtype)
    assert ours.device.type == device
    tol = (CQT_TOL if case in CQT_CASES else STFT_TOL)[dtype]
    assert rel_err(_np(ours), _ref(case, name)) <= tol


@pytest.mark.parametrize("name", SIGNAL_NAMES)
@pytest.mark.parametrize("device,dtype", GRID)
def test_hpss_masks_and_parts(name, device, dtype):
    """Complex parts and waveforms: test_hpss's rule (error against max(|ref|, 1% of the input's
    scale); silence_burst's harmonic part is exactly 0, so a plain relative error divides noise by 0)."""
    floor_D = 1e-2 * np.abs(_ref("stft", name)).max()
    for ours, ref in zip(CASES["hpss"](_y(name, device), dtype), _ref("hpss", name)):
        assert _scaled_err(ours, ref, floor_D) <= STFT_TOL[dtype]
    floor = 1e-2 * np.abs(SIGNALS[name]).max()
    for case in ("harmonic", "percussive"):
        assert _scaled_err(CASES[case](_y(name, device), dtype), _ref(case, name), floor) <= STFT_TOL[dtype], case


@pytest.mark.parametrize("device,dtype", GRID)
def test_median_filter_exact(device, dtype):
    """A selection: the device's median of the same (cast) input equals the CPU's bit for bit."""
    S = F.spectrogram(_y("speech_like"))[0].to(dtype)
    for axis in ("time", "freq"):
        assert torch.equal(M.median_filter(S.to(device), axis=axis).cpu(), M.median_filter(S, axis=axis))


@pytest.mark.parametrize("name", SIGNAL_NAMES)
@pytest.mark.parametrize("device,dtype", GRID)
def test_bin_picks_and_decisions(name, device, dtype):
    y = _y(name, device)
    # rolloff picks a bin: exact in float64; float32 may move <= 2% of frames by one bin (test_features)
    out, ref = _np(CASES["spectral_rolloff"](y, dtype)), _ref("spectral_rolloff", name)
    flipped = out != ref
    if dtype == torch.float64:
        assert not flipped.any()
    else:
        assert flipped.sum() <= max(1, int(0.02 * flipped.size))
        assert np.all(np.abs(out - ref)[flipped] <= SR / 2048 + 1e-6)
    # trim's interval: exact (test_trim asserts librosa's interval in both precisions)
    assert _np(CASES["trim"](y, dtype)).tolist() == _ref("trim", name).tolist()
    # tuning: a histogram's arg-max on a 0.01 grid: exact in float64; in float32 within one grid step
    # (tests/parity/test_pitch.py allows one step there, for a signal whose deviation sits on a bin edge)
    step = abs(float(CASES["estimate_tuning"](y, dtype)) - float(_ref("estimate_tuning", name)))
    assert step == 0.0 if dtype == torch.float64 else step <= 0.01 + 1e-9


# float32 log-magnitude correlation bounds: the parity suite's (tests/parity/test_effects_similarity.py,
# STRETCH_F32 and PITCH's float32 column; tonal signals' near-silent bins carry rounding noise as phase),
# sine440 as two_tones; CPU float32 vs CPU float64 measured in brackets (the STFT in float64 and
# rounded, as librosa's), 0.9995 for the rest [1.0]
STRETCH_F32 = {"two_tones": 0.9995, "chirp": 0.985, "sine440": 0.9995}  # [0.99997, 0.99065, 0.99997]
PITCH_F32 = {"two_tones": 0.9995, "chirp": 0.99, "sine440": 0.9995}  # [0.99970, 0.99886, 0.99979]


@pytest.mark.parametrize("name", SIGNAL_NAMES)
@pytest.mark.parametrize("device,dtype", GRID)
def test_waveform_effects(name, device, dtype):
    y = _y(name, device)
    for case in ("time_stretch", "pitch_shift", "resample"):
        ours, ref = CASES[case](y, dtype), _ref(case, name)
        assert ours.shape[-1] == ref.shape[-1], case
        if dtype == torch.float64:
            assert rel_err(ours, ref) <= 1e-6, case
        elif case == "resample":
            assert rel_err(ours, ref) <= STFT_TOL[dtype], case
        else:
            bound = (STRETCH_F32 if case == "time_stretch" else PITCH_F32).get(name, 0.9995)
            assert _logmag_corr(ours, ref) >= bound, case


# ------------------------------------------------------------------ FeatureExtractor, batched

# tests/parity/test_extractor.py's clips (not the noise-free tones: their float32 contrast valleys are
# rounding noise, see contrast_16bit) and one shorter than n_fft
CLIPS = ["speech_like", "noise", "silence_burst", "odd_12345", "short_1000"]


def _batch(device, dtype):
    clips = [SIGNALS[n] for n in CLIPS]
    y = torch.zeros(len(clips), max(len(c) for c in clips), dtype=torch.float64)
    for i, c in enumerate(clips):
        y[i, : len(c)] = torch.from_numpy(c)
    return y.to(device=device, dtype=dtype), torch.tensor([len(c) for c in clips], device=device)


@functools.lru_cache(maxsize=None)
def _extractor_ref():
    y, lengths = _batch("cpu", torch.float64)
    out = FeatureExtractor(max_frames=None, normalize=None)(y, lengths)
    return out.features.numpy(), out.frame_lengths.tolist()


@pytest.mark.parametrize("device,dtype", GRID)
def test_feature_extractor_matches_cpu_float64(device, dtype):
    y, lengths = _batch(device, dtype)
    out = FeatureExtractor(max_frames=None, normalize=None).to(device)(y, lengths)
    ref, ref_fl = _extractor_ref()
    assert out.features.device.type == device and out.frame_lengths.tolist() == ref_fl
    ours = _np(out.features)
    for i, n in enumerate(ref_fl):
        for fam, sl in _ROW_SLICES.items():
            a, r = ours[i, sl, :n], ref[i, sl, :n]
            if fam == "rolloff":  # a bin pick: as above
                flipped = a != r
                assert flipped.sum() <= (0 if dtype == torch.float64 else max(1, n // 50)), CLIPS[i]
                continue
            err = rel_err(a, r)
            tol = (CQT_TOL if fam == "tonnetz" else STFT_TOL)[dtype]
            assert err <= tol, f"{CLIPS[i]} {fam}: {err:.3g} > {tol}"
        assert not ours[i, :, n:].any()


@pytest.mark.parametrize("device,dtype", GRID)
def test_cqt_of_many_grid_tunings_matches_cpu_float64(device, dtype):
    """12 clips with 12 distinct estimate_tuning values (in the run's dtype): the constant-Q banks
    gathered from the cached stack of the whole tuning grid on the device, against the same call in
    CPU float64 (which takes the same path)."""
    n = 12
    tunings = grid_tunings(n, dtype)
    long = [name for name in SIGNAL_NAMES if len(SIGNALS[name]) >= 6000]
    y = torch.stack([_y(long[i % len(long)])[:6000] * (1 + 0.1 * i) for i in range(n)])
    ours = F.cqt(y.to(device=device, dtype=dtype), sr=SR, tuning=tunings.to(device), n_bins=252,
                 bins_per_octave=36).abs()
    ref = F.cqt(y, sr=SR, tuning=tunings.double(), n_bins=252, bins_per_octave=36).abs()
    assert ours.device.type == device
    for i in range(n):
        assert rel_err(ours[i], _np(ref[i])) <= CQT_TOL[dtype], i


# ------------------------------------------------------------------ augmentation and model


@pytest.mark.parametrize("device,dtype", GRID)
def test_waveform_augment_same_draws_same_audio(device, dtype):
    """A CPU generator gives the same per-clip choices on any device. Stretch, pitch shift and shift
    then match the CPU float64 run (phase vocoder in float32: the similarity bound above); the noise
    is drawn on the CPU in the input's precision, so it equals the CPU run of that precision."""
    y, lengths = _batch("cpu", torch.float64)
    aug = WaveformAugment(SR, p_noise=0.0, p_stretch=0.5, p_pitch=0.5, p_shift=0.5)
    ref, ref_len = aug(y, lengths, generator=torch.Generator().manual_seed(3))
    out, out_len = aug(y.to(device=device, dtype=dtype), lengths.to(device), generator=torch.Generator().manual_seed(3))
    assert out.device.type == device and out_len.tolist() == ref_len.tolist()
    for i, n in enumerate(ref_len.tolist()):
        if dtype == torch.float64:
            assert rel_err(out[i, :n], ref[i, :n]) <= 1e-6, CLIPS[i]
        else:
            assert _logmag_corr(out[i, :n], ref[i, :n]) >= 0.9995, CLIPS[i]
        assert not out[i, n:].any()
    noisy = WaveformAugment(SR, p_noise=1.0, p_stretch=0.0, p_pitch=0.0, p_shift=0.0)
    yd = y.to(dtype)
    ref = noisy(yd, lengths, generator=torch.Generator().manual_seed(5))[0]
    out = noisy(yd.to(device), lengths.to(device), generator=torch.Generator().manual_seed(5))[0]
    assert torch.equal(out.cpu(), ref)


@pytest.mark.parametrize("device,dtype", GRID)
def test_specaugment_same_masks(device, dtype):
    x = torch.randn(4, 68, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fl = torch.tensor([50, 31, 1, 7])
    ref = SpecAugment()(x, fl, generator=torch.Generator().manual_seed(4))
    out = SpecAugment()(x.to(device=device, dtype=dtype), fl.to(device), generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.cpu() == 0, ref == 0) and rel_err(out, ref) <= 1e-7


@pytest.mark.parametrize("device,dtype", GRID)
def test_model_logits_match_cpu_float64(device, dtype):
    """Default model, eval mode, padded batch of edge lengths. TF32 is off (tests/conftest.py);
    float32 through ~10 layers: 1e-4 of the logits' scale (CPU float32 measures 4.2e-7)."""
    torch.manual_seed(0)
    model = CNNBiLSTMAttention(ModelConfig()).double().eval()
    x = torch.randn(5, 68, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lengths = torch.tensor([40, 23, 1, 2, 9])
    with torch.no_grad():
        ref = model(x, lengths)
        out = model.to(device=device, dtype=dtype)(x.to(device=device, dtype=dtype), lengths.to(device))
    assert rel_err(out, ref) <= (1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("clip_norm", [False, True])
@pytest.mark.parametrize("device,dtype", GRID)
def test_stats_head_fused_output_matches_cpu_float64(device, dtype, clip_norm):
    """A model with a fitted statistics head (sorting for the quantiles, the fused log-softmax), alone or
    on raw rows that the model standardises per clip (``clip_norm``; MFCC-like levels): as the plain
    model's logits, 1e-4 of the output's scale in float32."""
    torch.manual_seed(0)
    model = CNNBiLSTMAttention(ModelConfig(channels=(32, 64), lstm_hidden=32, lstm_layers=1, stats_head=True,
                                           clip_norm=clip_norm))
    model = model.double().eval()
    x = torch.randn(6, 68, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    if clip_norm:
        x = 30.0 * x - 200.0
    lengths = torch.tensor([40, 23, 1, 2, 9, 33])
    model.fit_stats_head(model.clip_statistics(x, lengths), torch.tensor([0, 1, 2, 3, 0, 1]), c=1.0)
    with torch.no_grad():
        ref = model(x, lengths)
        out = model.to(device=device, dtype=dtype)(x.to(device=device, dtype=dtype), lengths.to(device))
    assert rel_err(out, ref) <= (1e-4 if dtype == torch.float32 else 1e-10)
