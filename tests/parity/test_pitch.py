"""Parity of ser_gpu.functional.pitch with librosa 0.11: piptrack, pitch_tuning, estimate_tuning."""

from __future__ import annotations

import functools
import warnings

import librosa
import numpy as np
import pytest
import torch

from ser_gpu.errors import ParameterError
from ser_gpu.functional.pitch import estimate_tuning, piptrack, pitch_tuning
from tests.conftest import rel_err
from tests.signals import SIGNALS, SR

# piptrack is an STFT-family quantity: docs/design.md's STFT tolerances, written out here
PIPTRACK_TOL = {torch.float64: 1e-6, torch.float32: 1e-4}


def _tone(cents_of_bin: float) -> np.ndarray:
    t = np.arange(int(1.2 * SR)) / SR
    return 0.5 * np.sin(2 * np.pi * 440.0 * 2 ** (cents_of_bin / 12) * t)


ALL = dict(SIGNALS)
for _c in (0.23, -0.31, 0.49, -0.5, 0.07):
    ALL[f"tone{_c:+.2f}"] = _tone(_c)  # pure tones detuned by a fraction of a semitone
NAMES = sorted(ALL)


def _quiet(fn, *args, **kwargs):
    # librosa warns on an empty frequency set (silence) and on n_fft > len(y); the values matter here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _power(name: str) -> np.ndarray:
    return np.abs(_quiet(librosa.stft, ALL[name])) ** 2


@functools.lru_cache(maxsize=None)
def _ref_piptrack(name: str, source: str):
    if source == "y":
        return _quiet(librosa.piptrack, y=ALL[name], sr=SR)
    return _quiet(librosa.piptrack, S=_power(name), sr=SR)


# (source, bins_per_octave): chroma_stft calls it on a power S with n_chroma=12, the CQT code on y with 36
PATHS = [("y", 12), ("S", 12), ("y", 36)]


@functools.lru_cache(maxsize=None)
def _ref_tuning(name: str, source: str, bins_per_octave: int) -> float:
    if source == "y":
        return _quiet(librosa.estimate_tuning, y=ALL[name], sr=SR, bins_per_octave=bins_per_octave)
    return _quiet(librosa.estimate_tuning, S=_power(name), sr=SR, bins_per_octave=bins_per_octave)


def _ours_tuning(name, source, bins_per_octave, device, dtype) -> float:
    if source == "y":
        x = torch.tensor(ALL[name], dtype=dtype, device=device)
        return float(estimate_tuning(x, sr=SR, bins_per_octave=bins_per_octave))
    S = torch.tensor(_power(name), dtype=dtype, device=device)
    return float(estimate_tuning(S=S, sr=SR, bins_per_octave=bins_per_octave))


@pytest.mark.parametrize("source", ["y", "S"])
@pytest.mark.parametrize("name", NAMES)
def test_piptrack_matches_librosa(name, source, device, dtype):
    P, M = _ref_piptrack(name, source)
    if source == "y":
        p, m = piptrack(torch.tensor(ALL[name], dtype=dtype, device=device), sr=SR)
    else:
        p, m = piptrack(S=torch.tensor(_power(name), dtype=dtype, device=device), sr=SR)
    assert p.dtype == dtype and m.dtype == dtype and p.device.type == device
    tol = PIPTRACK_TOL[dtype]
    assert rel_err(p, P) <= tol, f"{name}/{source}: pitches rel err {rel_err(p, P):.2e} > {tol}"
    assert rel_err(m, M) <= tol, f"{name}/{source}: magnitudes rel err {rel_err(m, M):.2e} > {tol}"
    # the set of detected peaks is the same bins
    assert np.array_equal(p.cpu().numpy() > 0, P > 0)


def test_reference_tunings_are_nontrivial():
    # guards the parity tests below against comparing two constant answers
    values = {_ref_tuning(n, "y", 12) for n in NAMES}
    assert len(values) >= 5
    assert _ref_tuning("tone+0.23", "y", 12) == pytest.approx(0.21)


def test_estimate_tuning_matches_librosa(device, dtype):
    """Every signal, from y and from a power S, at 12 and 36 bins per octave."""
    resolution = 0.01
    off = []
    for name in NAMES:
        for source, bpo in PATHS:
            ref = _ref_tuning(name, source, bpo)
            ours = _ours_tuning(name, source, bpo, device, dtype)
            steps = round((ours - ref) / resolution)
            if dtype == torch.float64:
                assert ours == ref, f"{name}/{source}/bpo={bpo}: {ours} != librosa {ref}"
            else:
                assert ours == pytest.approx(ref, abs=1e-6) or steps != 0
                if steps:
                    off.append((name, source, bpo, steps))
    # float32: the STFT carries ~1e-7 relative error, so a peak residual lying within ~1e-5 of a
    # histogram edge, or a magnitude at the median, may move one count; allow one case, one step.
    assert len(off) <= 1 and all(abs(s) == 1 for *_, s in off), off


def test_estimate_tuning_of_a_signed_spectrogram_reads_its_magnitude():
    """piptrack reads |S|: a signed S (an STFT's real part) gives librosa's estimate, that of -S and of |S|."""
    for name in ("speech_like", "chirp", "noise"):
        S = _quiet(librosa.stft, ALL[name]).real
        assert (S < 0).any()
        ref = float(_quiet(librosa.estimate_tuning, S=S, sr=SR))
        for signed in (S, -S, np.abs(S)):
            assert float(estimate_tuning(S=torch.from_numpy(signed), sr=SR)) == ref, name


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold=0.3),
        dict(fmin=80.0, fmax=2000.0),
        dict(ref=np.mean, threshold=1.0),
        dict(ref=torch.mean, threshold=1.0),
        dict(ref=0.5),
        dict(resolution=0.05),
        dict(resolution=0.003),
        dict(hop_length=256),
        dict(n_fft=1024, win_length=512),  # librosa's default hop is win_length // 4
        dict(fmax=30000.0),  # clipped to sr / 2
    ],
)
def test_estimate_tuning_options(kwargs):
    name = "speech_like"
    lib_kwargs = dict(kwargs)
    if lib_kwargs.get("ref") is torch.mean:
        lib_kwargs["ref"] = np.mean
    ref = _quiet(librosa.estimate_tuning, y=ALL[name], sr=SR, **lib_kwargs)
    ours = float(estimate_tuning(torch.tensor(ALL[name]), sr=SR, **kwargs))
    assert ours == ref
    if "resolution" not in kwargs:
        P, M = _quiet(librosa.piptrack, y=ALL[name], sr=SR, **lib_kwargs)
        p, m = piptrack(torch.tensor(ALL[name]), sr=SR, **kwargs)
        assert rel_err(p, P) <= 1e-6 and rel_err(m, M) <= 1e-6


def test_piptrack_frequency_limits_and_edge_bins():
    y = ALL["noise"]  # peaks everywhere, so every boundary bin is exercised
    freqs = np.fft.rfftfreq(2048, 1.0 / SR)
    # fmin is inclusive and fmax exclusive, on exact bin frequencies
    kwargs = dict(fmin=float(freqs[20]), fmax=float(freqs[300]))
    P, M = _quiet(librosa.piptrack, y=y, sr=SR, **kwargs)
    p, m = piptrack(torch.tensor(y), sr=SR, **kwargs)
    assert (P[20] > 0).any() and not (P[300] > 0).any()
    assert rel_err(p, P) <= 1e-6 and rel_err(m, M) <= 1e-6
    # an odd n_fft given with S is kept, so the top bin lies below sr / 2 and can be a peak
    S = np.abs(_quiet(librosa.stft, y, n_fft=255, hop_length=64))
    P, M = _quiet(librosa.piptrack, S=S, n_fft=255, sr=SR, fmin=50.0, fmax=float(SR))
    p, m = piptrack(S=torch.tensor(S), n_fft=255, sr=SR, fmin=50.0, fmax=float(SR))
    assert (P[-1] > 0).any()
    assert rel_err(p, P) <= 1e-6 and rel_err(m, M) <= 1e-6


def test_silence_gives_zero():
    y = np.zeros(5000)
    assert _quiet(librosa.estimate_tuning, y=y, sr=SR) == 0.0
    out = estimate_tuning(torch.zeros(2, 5000))
    assert out.shape == (2,) and torch.equal(out, torch.zeros(2, dtype=torch.float64))
    p, m = piptrack(torch.zeros(5000))
    assert not p.any() and not m.any()


def _padded_batch(names, dtype, device):
    arrays = [ALL[n] for n in names]
    L = max(len(a) for a in arrays)
    Y = np.zeros((len(arrays), L))
    for i, a in enumerate(arrays):
        Y[i, : len(a)] = a
        Y[i, len(a):] = 0.7  # garbage in the padding must not leak anywhere
    lengths = torch.tensor([len(a) for a in arrays], device=device)
    return torch.tensor(Y, dtype=dtype, device=device), lengths


def test_mixed_length_batch_equals_single_runs(device, dtype):
    names = ["short_1000", "odd_12345", "speech_like", "silence_burst", "tone+0.23"]
    y, lengths = _padded_batch(names, dtype, device)
    for bpo in (12, 36):
        batch = estimate_tuning(y, sr=SR, lengths=lengths, bins_per_octave=bpo)
        single = torch.stack(
            [estimate_tuning(torch.tensor(ALL[n], dtype=dtype, device=device), sr=SR, bins_per_octave=bpo)
             for n in names]
        )
        assert torch.equal(batch, single), (batch, single)
    p, m = piptrack(y, sr=SR, lengths=lengths)
    for i, n in enumerate(names):
        ps, ms = piptrack(torch.tensor(ALL[n], dtype=dtype, device=device), sr=SR)
        T = ps.shape[-1]
        assert torch.equal(p[i, :, :T], ps) and torch.equal(m[i, :, :T], ms), n
        assert not p[i, :, T:].any() and not m[i, :, T:].any(), n


def test_mixed_length_batch_from_power_spectrogram(device, dtype):
    names = ["odd_12345", "chirp", "short_1000"]
    specs = [_power(n) for n in names]
    T = max(s.shape[-1] for s in specs)
    S = np.full((len(specs), specs[0].shape[0], T), 5.0)  # loud padding frames
    for i, s in enumerate(specs):
        S[i, :, : s.shape[-1]] = s
    frame_lengths = torch.tensor([s.shape[-1] for s in specs], device=device)
    batch = estimate_tuning(S=torch.tensor(S, dtype=dtype, device=device), sr=SR, frame_lengths=frame_lengths)
    single = torch.stack(
        [estimate_tuning(S=torch.tensor(s, dtype=dtype, device=device), sr=SR) for s in specs]
    )
    assert torch.equal(batch, single)
    if dtype == torch.float64:
        assert batch.tolist() == [_ref_tuning(n, "S", 12) for n in names]


def test_batch_shape_is_kept():
    y = torch.tensor(np.stack([ALL["tone+0.23"], ALL["tone-0.31"]] * 3)).reshape(3, 2, -1)
    out = estimate_tuning(y, sr=SR)
    assert out.shape == (3, 2)
    assert out[:, 0].tolist() == [_ref_tuning("tone+0.23", "y", 12)] * 3
    assert out[:, 1].tolist() == [_ref_tuning("tone-0.31", "y", 12)] * 3
    p, m = piptrack(y, sr=SR)
    assert p.shape == (3, 2, 1025, y.shape[-1] // 512 + 1)


@pytest.mark.parametrize("resolution", [0.01, 0.05, 0.1])
def test_pitch_tuning_matches_librosa(resolution, device, dtype):
    rng = np.random.default_rng(7)
    sets = [
        librosa.cqt_frequencies(n_bins=24, fmin=55, tuning=0.25),
        librosa.cqt_frequencies(n_bins=36, fmin=65, tuning=-0.4, bins_per_octave=36),
        rng.uniform(50, 5000, size=200),
        np.concatenate([rng.uniform(50, 5000, size=50), np.zeros(10), -np.ones(3)]),
    ]
    for bpo in (12, 36):
        for freqs in sets:
            x = torch.tensor(freqs, dtype=dtype, device=device)
            # compare on the frequencies as the dtype holds them: cqt_frequencies(tuning=0.25) puts
            # residuals exactly on a histogram edge, and float32 rounding of the input moves them
            ref = _quiet(librosa.pitch_tuning, x.cpu().double().numpy(), resolution=resolution,
                         bins_per_octave=bpo)
            ours = pitch_tuning(x, resolution=resolution, bins_per_octave=bpo)
            assert ours.shape == () and ours.dtype == dtype
            assert float(ours) == float(torch.tensor(ref, dtype=dtype))


def test_pitch_tuning_mask_and_batch():
    a = librosa.cqt_frequencies(n_bins=24, fmin=55, tuning=0.25)
    b = librosa.cqt_frequencies(n_bins=24, fmin=55, tuning=-0.12)
    freqs = torch.tensor(np.stack([np.concatenate([a, b[:5]]), np.concatenate([b, a[:5]])]))
    mask = torch.zeros(freqs.shape, dtype=torch.bool)
    mask[:, :24] = True
    out = pitch_tuning(freqs, mask=mask)
    assert out.tolist() == [librosa.pitch_tuning(a), librosa.pitch_tuning(b)]
    assert float(pitch_tuning(torch.zeros(4))) == 0.0
    assert pitch_tuning(freqs, mask=torch.zeros_like(mask)).tolist() == [0.0, 0.0]
    f = 440.0 * 2 ** (0.3 / 12)  # a 0-d input is one frequency (lands just under the 0.30 edge)
    assert float(pitch_tuning(torch.tensor(f, dtype=torch.float64))) == librosa.pitch_tuning(f)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda y: estimate_tuning(y, resolution=1.5), "1.5"),
        (lambda y: estimate_tuning(y, resolution=0), "resolution must lie in (0.0, 1.0), got 0"),
        (lambda y: estimate_tuning(y, bins_per_octave=0), "bins_per_octave must be a positive integer, got 0"),
        (lambda y: estimate_tuning(y, fmin=-10.0), "-10.0"),
        (lambda y: estimate_tuning(y, fmin=500.0, fmax=400.0), "400.0"),
        (lambda y: piptrack(y, threshold=-0.2), "-0.2"),
        (lambda y: piptrack(y, sr=0), "sr must be a positive finite number, got 0"),
        (lambda y: piptrack(y, n_fft=0), "n_fft must be a positive integer, got 0"),
        (lambda y: piptrack(y, hop_length=-3), "-3"),
        (lambda y: piptrack(y, ref="loud"), "loud"),
        (lambda y: piptrack(y, ref=np.median), "median"),
        (lambda y: piptrack(), "neither"),
        (lambda y: piptrack(y.int()), "int32"),
        (lambda y: piptrack(S=torch.ones(1, 10)), "(1, 10)"),
        (lambda y: estimate_tuning(y, lengths=torch.tensor(10**7)), "10000000"),
        (lambda y: estimate_tuning(y, bogus=3), "bogus"),
        (lambda y: pitch_tuning(torch.ones(3), mask=torch.ones(4, dtype=torch.bool)), "(4,)"),
        (lambda y: pitch_tuning(torch.ones(3), mask=torch.ones(3)), "float32"),
        (lambda y: pitch_tuning([440.0]), "list"),
    ],
)
def test_bad_inputs_raise_parameter_error(call, needle):
    y = torch.tensor(ALL["sine440"][:4000])
    with pytest.raises(ParameterError) as info:
        call(y)
    assert needle in str(info.value)
