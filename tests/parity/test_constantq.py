"""Parity of ser_gpu.functional.constantq with librosa 0.11: cqt, chroma_cqt, tonnetz.

Tolerances are docs/design.md's constant-Q ones (max |ours - librosa| / max |librosa|):
1e-3 in float64, 1e-2 in float32.  The reference is always librosa on the float64 signal.
"""

from __future__ import annotations

import functools
import warnings

import librosa
import numpy as np
import pytest
import torch

from ser_gpu.errors import ParameterError
from ser_gpu.functional.constantq import chroma_cqt, cqt, tonnetz
from tests.conftest import grid_tunings, rel_err
from tests.signals import SIGNALS, SR

CQT_TOL = {torch.float64: 1e-3, torch.float32: 1e-2}

ALL = dict(SIGNALS)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ALL["harmonic_speech_like"] = librosa.effects.harmonic(SIGNALS["speech_like"])
NAMES = sorted(ALL)
CHROMA_CFG = dict(n_bins=252, bins_per_octave=36)  # what chroma_cqt asks cqt for


def _quiet(fn, *args, **kwargs):
    # librosa warns when n_fft exceeds a short signal; the values are what matter here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def ref_cqt(name: str, tuning: float = 0.0, **kw) -> np.ndarray:
    return _quiet(librosa.cqt, ALL[name], sr=SR, tuning=tuning, **kw)


@functools.lru_cache(maxsize=None)
def ref_chroma(name: str) -> np.ndarray:
    return _quiet(librosa.feature.chroma_cqt, y=ALL[name], sr=SR)  # tuning estimated


def ref_cqt_kw(name, tuning=0.0, kw=()):
    return ref_cqt(name, tuning, **dict(kw))


def _t(name, dtype, device):
    return torch.from_numpy(ALL[name]).to(device=device, dtype=dtype)


# ------------------------------------------------------------------------------------- cqt


@pytest.mark.parametrize("name", NAMES)
def test_cqt_default(name, device, dtype):
    C = cqt(_t(name, dtype, device), sr=SR, tuning=0.0)
    ref = ref_cqt(name)
    assert C.dtype == (torch.complex128 if dtype == torch.float64 else torch.complex64)
    assert rel_err(C.abs(), np.abs(ref)) <= CQT_TOL[dtype]
    C_np = C.cpu().numpy().astype(np.complex128)
    assert np.abs(C_np - ref).max() / np.abs(ref).max() <= CQT_TOL[dtype]  # complex values, phase included


@pytest.mark.parametrize("name", NAMES)
def test_cqt_chroma_config_detuned(name, device, dtype):
    C = cqt(_t(name, dtype, device), sr=SR, tuning=0.13, **CHROMA_CFG)
    ref = ref_cqt_kw(name, 0.13, tuple(CHROMA_CFG.items()))
    assert rel_err(C.abs(), np.abs(ref)) <= CQT_TOL[dtype]


@pytest.mark.parametrize("kw", [
    dict(hop_length=100),  # 100 -> 50 -> 25: librosa stops decimating at an odd hop, no error
    dict(hop_length=256, n_bins=60, filter_scale=0.8, norm=2.0, window="hamming", sparsity=0.0,
         pad_mode="reflect"),
    dict(scale=False, n_bins=40, fmin=110.0, bins_per_octave=12, tuning=-0.27),
], ids=["odd_hop", "options", "unscaled"])
@pytest.mark.parametrize("name", ["speech_like", "chirp"])
def test_cqt_options(name, kw, dtype):
    kw = dict(kw)
    tuning = kw.pop("tuning", 0.0)
    C = cqt(_t(name, dtype, "cpu"), sr=SR, tuning=tuning, **kw)
    ref = ref_cqt_kw(name, tuning, tuple(kw.items()))
    assert rel_err(C.abs(), np.abs(ref)) <= CQT_TOL[dtype]


@pytest.mark.parametrize("name", ["speech_like", "harmonic_speech_like", "chirp"])
def test_cqt_early_downsampling(name, dtype):
    # 48 bins from 65 Hz: librosa decimates by 4 before the first octave
    kw = dict(n_bins=48, fmin=65.0)
    C = cqt(_t(name, dtype, "cpu"), sr=SR, tuning=0.0, **kw).abs().double().numpy()
    ref = np.abs(ref_cqt_kw(name, 0.0, tuple(kw.items())))
    scale = ref.max()
    # frame 0 included (it held a 3e-2 exception for soxr's multi-stage 4:1 decimator; measured 2.1e-4)
    assert np.abs(C - ref).max() / scale <= CQT_TOL[dtype]


# ------------------------------------------------------------------------- chroma, tonnetz


@pytest.mark.parametrize("name", NAMES)
def test_chroma_cqt_estimated_tuning(name, device, dtype):
    chroma = chroma_cqt(_t(name, dtype, device), sr=SR)  # tuning=None: estimate_tuning per example
    assert rel_err(chroma, ref_chroma(name)) <= CQT_TOL[dtype]


@pytest.mark.parametrize("name", NAMES)
def test_tonnetz(name, device, dtype):
    ton = tonnetz(_t(name, dtype, device), sr=SR)  # chroma_cqt with estimated tuning inside
    ref = librosa.feature.tonnetz(chroma=ref_chroma(name), sr=SR)  # == tonnetz(y=...) without recomputing
    assert ton.shape[-2] == 6
    assert rel_err(ton, ref) <= CQT_TOL[dtype]


def test_chroma_and_tonnetz_from_precomputed(dtype):
    y = _t("speech_like", dtype, "cpu")
    C = cqt(y, sr=SR, tuning=0.2, **CHROMA_CFG).abs()
    ref_chr = _quiet(librosa.feature.chroma_cqt, y=ALL["speech_like"], sr=SR, tuning=0.2)
    chroma = chroma_cqt(C=C, bins_per_octave=36)
    assert rel_err(chroma, ref_chr) <= CQT_TOL[dtype]
    assert rel_err(tonnetz(chroma=chroma), librosa.feature.tonnetz(chroma=ref_chr)) <= CQT_TOL[dtype]
    ref_l1 = _quiet(librosa.feature.chroma_cqt, C=np.abs(ref_cqt_kw("speech_like", 0.2, tuple(CHROMA_CFG.items()))),
                    norm=1, threshold=0.01)
    assert rel_err(chroma_cqt(C=C, norm=1, threshold=0.01), ref_l1) <= CQT_TOL[dtype]


# ----------------------------------------------------------------------- batches, tuning


def test_per_example_tuning_tensor(dtype):
    names = ["speech_like", "two_tones", "chirp", "noise"]
    tunings = [0.1, -0.2, 0.1, 0.37]
    y = torch.stack([_t(n, dtype, "cpu") for n in names])
    C = cqt(y, sr=SR, tuning=torch.tensor(tunings, dtype=dtype), **CHROMA_CFG)
    for i, (n, tu) in enumerate(zip(names, tunings)):
        ref = ref_cqt_kw(n, tu, tuple(CHROMA_CFG.items()))
        assert rel_err(C[i].abs(), np.abs(ref)) <= CQT_TOL[dtype], n
    # a 2-d batch and a batch-shaped tensor of tunings
    C2 = cqt(y.reshape(2, 2, -1), sr=SR, tuning=torch.tensor(tunings, dtype=dtype).reshape(2, 2), **CHROMA_CFG)
    torch.testing.assert_close(C2.reshape(C.shape), C, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-5)


def test_per_example_tuning_changing_early_downsampling(dtype):
    # fmin=700 Hz, 12 bins: tuning -0.3 makes librosa decimate by 4 up front, +0.3 by 2
    names = ["speech_like", "chirp", "odd_12345"]
    tunings = [-0.3, 0.3, 0.3]
    clips = [_t(n, dtype, "cpu") for n in names]
    lengths = torch.tensor([len(c) for c in clips])
    y = torch.zeros(3, int(lengths.max()), dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = c
    C, fl = cqt(y, sr=SR, fmin=700.0, n_bins=12, tuning=torch.tensor(tunings, dtype=dtype), lengths=lengths)
    for i, n in enumerate(names):
        ref = np.abs(ref_cqt_kw(n, tunings[i], (("fmin", 700.0), ("n_bins", 12))))
        assert int(fl[i]) == ref.shape[-1]
        ours = C[i, :, : fl[i]].abs().double().numpy()
        assert np.abs(ours - ref).max() / ref.max() <= CQT_TOL[dtype], n  # frame 0 included


def test_batched_estimated_tuning_equals_librosa(dtype):
    names = ["speech_like", "two_tones", "sine440"]
    y = torch.stack([_t(n, dtype, "cpu") for n in names])
    chroma = chroma_cqt(y, sr=SR)
    for i, n in enumerate(names):
        assert rel_err(chroma[i], ref_chroma(n)) <= CQT_TOL[dtype], n


def _grid_batch(count: int, dtype) -> torch.Tensor:
    names = ["speech_like", "two_tones", "chirp", "noise", "sine440", "odd_12345"]
    return torch.stack([_t(names[i % len(names)], dtype, "cpu")[:6000] * (1 + 0.1 * i) for i in range(count)])


def test_estimated_tunings_lie_on_the_grid(dtype):
    """The grid banks are keyed by the values estimate_tuning returns: if its grid drifted, batches
    would silently fall back to stacking their own banks."""
    from ser_gpu.functional import estimate_tuning
    from ser_gpu.functional.constantq import _grid_positions

    y = torch.stack([_t(n, dtype, "cpu")[:8000] for n in ("speech_like", "two_tones", "chirp", "noise", "sine440")])
    tuning = estimate_tuning(y, sr=SR, bins_per_octave=36)
    assert _grid_positions(tuning.double().tolist()) is not None, tuning


def test_many_grid_tunings_use_the_grid_banks(dtype, monkeypatch):
    """A batch with many distinct estimated tunings takes its banks from the cached stack of the whole
    grid: each example still equals its own one-clip run (which stacks nothing) and librosa."""
    from ser_gpu.functional import constantq as cq

    n = cq._GRID_MIN_TUNINGS + 4
    y, tunings = _grid_batch(n, dtype), grid_tunings(n, dtype)
    before = cq._grid_tensors.cache_info()
    C = cqt(y, sr=SR, tuning=tunings, **CHROMA_CFG)
    after = cq._grid_tensors.cache_info()
    assert after.hits + after.misses == before.hits + before.misses + 1  # the grid path was taken
    atol = 1e-12 if dtype == torch.float64 else 2e-6
    for i in range(n):
        single = cqt(y[i], sr=SR, tuning=float(tunings[i]), **CHROMA_CFG)
        assert float((C[i] - single).abs().max()) <= atol * float(single.abs().max()), i
    for i in (0, 5):  # and librosa, with the tuning as a float64 number
        ref = _quiet(librosa.cqt, y[i].double().numpy(), sr=SR, tuning=float(tunings[i]), **CHROMA_CFG)
        assert rel_err(C[i].abs(), np.abs(ref)) <= CQT_TOL[dtype], i
    # the same batch stacking its own banks (the path of fewer tunings) gives the same result
    monkeypatch.setattr(cq, "_GRID_MIN_TUNINGS", 10 ** 6)
    torch.testing.assert_close(cqt(y, sr=SR, tuning=tunings, **CHROMA_CFG), C, rtol=0,
                               atol=atol * float(C.abs().max()))


def test_off_grid_tunings_stack_their_own_banks(monkeypatch):
    """Tunings a user gives off the estimator's grid never reach the grid banks, however many."""
    from ser_gpu.functional import constantq as cq

    def refuse(*args, **kwargs):
        raise AssertionError("the grid banks were used for off-grid tunings")

    monkeypatch.setattr(cq, "_grid_tensors", refuse)
    n = cq._GRID_MIN_TUNINGS + 2
    y, tunings = _grid_batch(n, torch.float64), grid_tunings(n, torch.float64) + 0.003
    C = cqt(y, sr=SR, tuning=tunings, **CHROMA_CFG)
    for i in (0, n - 1):
        single = cqt(y[i], sr=SR, tuning=float(tunings[i]), **CHROMA_CFG)
        assert float((C[i] - single).abs().max()) <= 1e-12 * float(single.abs().max())


def test_grid_banks_dispatch_the_same_operations_for_any_number_of_tunings(monkeypatch):
    """Launch count: with the grid banks a batch of 40 clips runs the same operations whether it holds 8
    or 40 distinct tunings (stacking per batch costs operations per tuning, which the count sees)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from ser_gpu.functional import constantq as cq

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    y = _grid_batch(40, torch.float32)
    few = grid_tunings(8, torch.float32).repeat(5)
    many = grid_tunings(40, torch.float32)

    def ops(tunings):
        cqt(y, sr=SR, tuning=tunings, **CHROMA_CFG)  # builds what is cached first
        Count.calls = 0
        with Count():
            cqt(y, sr=SR, tuning=tunings, **CHROMA_CFG)
        return Count.calls

    assert ops(few) == ops(many)
    monkeypatch.setattr(cq, "_GRID_MIN_TUNINGS", 10 ** 6)
    assert ops(many) > ops(few) + 100  # stacking: ~3 operations per tuning and octave


@pytest.mark.parametrize("kw", [dict(), dict(n_bins=48, fmin=65.0), dict(hop_length=100, n_bins=40)],
                         ids=["default", "early_downsampling", "odd_hop"])
def test_mixed_length_batch_equals_single_runs(kw, dtype):
    names = ["speech_like", "short_1000", "odd_12345", "silence_burst"]
    clips = [_t(n, dtype, "cpu") for n in names]
    clips[0] = clips[0][:20001]
    lengths = torch.tensor([len(c) for c in clips])
    y = torch.zeros(len(clips), int(lengths.max()), dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = c
    y[1, len(clips[1]):] = 0.7  # garbage in the padding must not leak in
    tunings = torch.tensor([0.05, -0.3, 0.05, 0.0], dtype=dtype)
    C, frame_lengths = cqt(y, sr=SR, tuning=tunings, lengths=lengths, **kw)
    atol = 1e-12 if dtype == torch.float64 else 2e-6
    for i, c in enumerate(clips):
        single = cqt(c, sr=SR, tuning=float(tunings[i]), **kw)
        n_ref = ref_cqt_kw(names[i], 0.0, tuple(kw.items())).shape[-1] if i in (2, 3) else None
        assert int(frame_lengths[i]) == single.shape[-1]
        if n_ref is not None:
            assert single.shape[-1] == n_ref  # librosa's frame count for the full clips
        scale = float(single.abs().max())
        assert float((C[i, :, : frame_lengths[i]] - single).abs().max()) <= atol * scale
        tail = C[i, :, int(frame_lengths[i]):]
        assert tail.numel() == 0 or float(tail.abs().max()) == 0.0


def test_mixed_length_chroma_tonnetz(dtype):
    clips = [_t("speech_like", dtype, "cpu"), _t("odd_12345", dtype, "cpu")[:7000]]
    lengths = torch.tensor([len(c) for c in clips])
    y = torch.zeros(2, int(lengths.max()), dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = c
    chroma, fl = chroma_cqt(y, sr=SR, lengths=lengths)  # tuning estimated per example, valid part only
    ton, fl2 = tonnetz(y, sr=SR, lengths=lengths)
    assert torch.equal(fl, fl2)
    atol = 1e-10 if dtype == torch.float64 else 1e-5
    for i, c in enumerate(clips):
        torch.testing.assert_close(chroma[i, :, : fl[i]], chroma_cqt(c, sr=SR), rtol=0, atol=atol)
        torch.testing.assert_close(ton[i, :, : fl[i]], tonnetz(c, sr=SR), rtol=0, atol=atol)
    assert float(chroma[1, :, fl[1]:].abs().max()) == 0.0 and float(ton[1, :, fl[1]:].abs().max()) == 0.0
    ref = _quiet(librosa.feature.chroma_cqt, y=ALL["odd_12345"][:7000], sr=SR)
    assert rel_err(chroma[1, :, : fl[1]], ref) <= CQT_TOL[dtype]


# ------------------------------------------------------------------------------ bad input

Y = torch.from_numpy(SIGNALS["sine440"])


@pytest.mark.parametrize("kwargs, needle", [
    (dict(n_bins=0), "n_bins"),
    (dict(n_bins=-3), "-3"),
    (dict(fmin=0.0), "fmin"),
    (dict(fmin=-1.0), "-1.0"),
    (dict(n_bins=120), "Nyquist"),  # top bin above sr / 2: librosa raises ParameterError too
    (dict(fmin=5000.0, n_bins=24), "5000.0"),
    (dict(hop_length=0), "hop_length"),
    (dict(bins_per_octave=0), "bins_per_octave"),
    (dict(filter_scale=0), "filter_scale"),
    (dict(sparsity=1.0), "sparsity"),
    (dict(norm=-1), "norm"),
    (dict(window="kaiser"), "kaiser"),
    (dict(res_type="fft"), "fft"),
    (dict(pad_mode="mirror"), "mirror"),
    (dict(tuning=float("nan")), "tuning"),
    (dict(tuning=torch.zeros(3)), "(3,)"),
    (dict(pad_mode="reflect", lengths=torch.tensor(100)), "reflect"),
    (dict(lengths=torch.tensor(10 ** 9)), "1000000000"),
])
def test_cqt_bad_arguments(kwargs, needle):
    with pytest.raises(ParameterError) as info:
        cqt(Y, sr=SR, **kwargs)
    assert needle in str(info.value)


def test_cqt_too_short_for_early_downsampling():
    with pytest.raises(ParameterError, match="length 3"):
        cqt(Y[:3], sr=SR, n_bins=24, tuning=0.0)  # librosa: "Input signal length=3 is too short"


def test_bad_chroma_and_tonnetz_arguments():
    with pytest.raises(ParameterError, match="bins_per_octave=30"):
        chroma_cqt(Y, bins_per_octave=30, n_chroma=12, tuning=0.0)
    with pytest.raises(ParameterError, match="neither"):
        chroma_cqt()
    with pytest.raises(ParameterError, match="neither"):
        tonnetz()
    with pytest.raises(ParameterError, match="real magnitude"):
        chroma_cqt(C=cqt(Y, tuning=0.0, **CHROMA_CFG))
    with pytest.raises(ParameterError, match="n_octaves"):
        chroma_cqt(Y, n_octaves=0)
    with pytest.raises(ParameterError, match="int"):
        cqt(torch.zeros(100, dtype=torch.int16))
    with pytest.raises(ParameterError, match="n_mels"):
        tonnetz(Y, n_mels=3)
    with pytest.raises(ParameterError, match="frame_lengths"):
        chroma_cqt(C=torch.ones(2, 252, 5, dtype=torch.float64), lengths=torch.tensor([5, 5]))
    for fmin in (-30.0, 0.0, float("nan")):  # with C given, no cqt call checks fmin: chroma_cqt's own gate does
        with pytest.raises(ParameterError, match="fmin"):
            chroma_cqt(C=torch.ones(2, 252, 5, dtype=torch.float64), fmin=fmin)
