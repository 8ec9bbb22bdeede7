"""functional.effects.trim against live librosa.effects.trim 0.11.

docs/design.md: trim start/end must be EXACT samples in float64 and float32, and the trimmed samples are
the input's own samples, so they must be bit-equal too. librosa is run on the signal cast to the
dtype under test.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from ser_gpu.errors import ParameterError
from ser_gpu.functional.effects import trim
from tests.signals import SIGNAL_NAMES, SIGNALS


def _extra_signals() -> dict:
    rng = np.random.default_rng(7)
    speech, chirp = SIGNALS["speech_like"], SIGNALS["chirp"]
    burst = 0.5 * rng.standard_normal(3000) * np.hanning(3000)
    return {
        "lead_trail_zeros": np.concatenate([np.zeros(6000), speech, np.zeros(7001)]),
        "lead_trail_noise": np.concatenate([1e-4 * rng.standard_normal(9000), chirp, 1e-4 * rng.standard_normal(5003)]),
        "lead_zeros_only": np.concatenate([np.zeros(12000), SIGNALS["two_tones"][:8000]]),
        "burst_at_end": np.concatenate([np.zeros(15001), burst]),
        "quiet_tail": np.concatenate([SIGNALS["sine440"][:9000], 2e-3 * SIGNALS["sine440"][:9000]]),
        "all_zeros": np.zeros(10000),  # with ref=max librosa keeps it whole (0 dB everywhere)
        "all_tiny": 1e-7 * rng.standard_normal(4097),
    }


EXTRA = _extra_signals()
ALL = {**SIGNALS, **EXTRA}
ALL_NAMES = SIGNAL_NAMES + sorted(EXTRA)


def _check_against_librosa(y_np: np.ndarray, dtype, device, **kwargs):
    ref_y, ref_interval = librosa.effects.trim(y_np, **kwargs)
    ours, interval = trim(torch.from_numpy(y_np).to(device), **kwargs)
    assert interval.dtype == torch.int64 and tuple(interval.shape) == (2,)
    assert interval.tolist() == [int(v) for v in ref_interval], f"{interval.tolist()} != librosa {ref_interval}"
    assert ours.dtype == dtype and ours.device.type == torch.device(device).type
    assert np.array_equal(ours.cpu().numpy(), ref_y), "trimmed samples differ from librosa's"


@pytest.mark.parametrize("top_db", [20, 60])
@pytest.mark.parametrize("name", ALL_NAMES)
def test_trim_matches_librosa(name, top_db, device, dtype):
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    _check_against_librosa(ALL[name].astype(np_dtype), dtype, device, top_db=top_db)


@pytest.mark.parametrize("ref", [1.0, 0.05, 2, np.float32(0.3)], ids=["1.0", "0.05", "int2", "f32_0.3"])
@pytest.mark.parametrize("name", ["speech_like", "silence_burst", "lead_trail_noise", "all_zeros", "all_tiny"])
def test_trim_numeric_ref(name, ref, device, dtype):
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    for top_db in (20, 60):
        _check_against_librosa(ALL[name].astype(np_dtype), dtype, device, top_db=top_db, ref=ref)


def test_trim_all_silent_is_empty(device, dtype):
    y = torch.zeros(5000, dtype=dtype, device=device)
    out, interval = trim(y, ref=1.0)
    assert interval.tolist() == [0, 0] and out.shape == (0,)
    out, interval = trim(y)  # ref=max: 0 dB everywhere, nothing is below the peak
    assert interval.tolist() == [0, 5000] and torch.equal(out, y)


@pytest.mark.parametrize("ref", [max, np.max, torch.amax, "max"], ids=["max", "np.max", "torch.amax", "'max'"])
def test_trim_max_spellings(ref):
    y = torch.from_numpy(EXTRA["lead_trail_zeros"])
    _, expected = librosa.effects.trim(y.numpy(), top_db=20)
    assert trim(y, top_db=20, ref=ref)[1].tolist() == expected.tolist()


def _padded_batch(names, dtype, device, pad_value=0.3):
    """Stack signals into a batch padded with loud noise, which lengths must make invisible."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    arrays = [ALL[n].astype(np_dtype) for n in names]
    T = max(len(a) for a in arrays) + 777
    rng = np.random.default_rng(3)
    batch = pad_value * rng.standard_normal((len(arrays), T)).astype(np_dtype)
    for row, a in zip(batch, arrays):
        row[: len(a)] = a
    lengths = torch.tensor([len(a) for a in arrays])
    return arrays, torch.from_numpy(batch).to(device), lengths.to(device)


@pytest.mark.parametrize("top_db", [20, 60])
def test_trim_batch_equals_each_alone(device, dtype, top_db):
    names = ["lead_trail_zeros", "short_1000", "silence_burst", "all_zeros", "odd_12345", "burst_at_end", "noise"]
    arrays, batch, lengths = _padded_batch(names, dtype, device)
    out, intervals, new_lengths = trim(batch, top_db=top_db, lengths=lengths)
    assert intervals.shape == (len(names), 2) and intervals.dtype == torch.int64
    assert new_lengths.dtype == torch.int64
    assert new_lengths.tolist() == (intervals[:, 1] - intervals[:, 0]).tolist()
    assert out.shape == (len(names), int(new_lengths.max())) and out.dtype == dtype
    for i, a in enumerate(arrays):
        alone, alone_interval = trim(torch.from_numpy(a).to(device), top_db=top_db)
        ref_y, ref_interval = librosa.effects.trim(a, top_db=top_db)
        assert intervals[i].tolist() == alone_interval.tolist() == ref_interval.tolist(), names[i]
        n = int(new_lengths[i])
        assert torch.equal(out[i, :n], alone) and np.array_equal(alone.cpu().numpy(), ref_y), names[i]
        assert torch.count_nonzero(out[i, n:]) == 0, f"{names[i]}: padding after the trimmed samples is not zero"


def test_trim_batch_odd_frames_and_numeric_ref(device, dtype):
    names = ["speech_like", "short_1000", "lead_trail_noise", "quiet_tail"]
    arrays, batch, lengths = _padded_batch(names, dtype, device)
    kwargs = dict(top_db=30, frame_length=1001, hop_length=300)
    for ref in (max, 0.2):
        _, intervals, _ = trim(batch, lengths=lengths, ref=ref, **kwargs)
        expected = [librosa.effects.trim(a, ref=np.max if ref is max else ref, **kwargs)[1].tolist() for a in arrays]
        assert intervals.tolist() == expected, f"ref={ref}"


def test_trim_batch_without_lengths_and_extra_axes(device):
    names = ["lead_trail_zeros", "burst_at_end", "quiet_tail", "silence_burst", "noise", "lead_zeros_only"]
    T = min(len(ALL[n]) for n in names)
    stacked = np.stack([ALL[n][:T] for n in names]).reshape(2, 3, T)
    out, intervals = trim(torch.from_numpy(stacked).to(device), top_db=20)
    assert intervals.shape == (2, 3, 2) and out.ndim == 3 and out.shape[:2] == (2, 3)
    for idx in np.ndindex(2, 3):
        ref_y, ref_interval = librosa.effects.trim(stacked[idx], top_db=20)
        assert intervals[idx].tolist() == ref_interval.tolist(), idx
        assert np.array_equal(out[idx][: len(ref_y)].cpu().numpy(), ref_y)
        assert torch.count_nonzero(out[idx][len(ref_y):]) == 0


def test_trim_float32_and_float64_agree():
    # librosa decides in float32 for any input dtype; so must we
    y = ALL["lead_trail_noise"]
    i64 = trim(torch.from_numpy(y), top_db=60)[1]
    i32 = trim(torch.from_numpy(y.astype(np.float32)), top_db=60)[1]
    assert i64.tolist() == i32.tolist()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"top_db": -1}, r"top_db must be a non-negative .*-1"),
        ({"top_db": -0.5}, r"top_db .*-0\.5"),
        ({"top_db": None}, r"top_db .*None"),
        ({"top_db": float("nan")}, r"top_db .*nan"),
        ({"ref": "min"}, r"ref must be .*'min'"),
        ({"ref": np.mean}, r"ref must be a number or max"),
        ({"ref": float("inf")}, r"ref must be .*inf"),
        ({"frame_length": 0}, r"frame_length must be a positive integer, got 0"),
        ({"hop_length": 2.5}, r"hop_length must be a positive integer, got 2\.5"),
        ({"lengths": torch.tensor([100])}, r"lengths must have shape \(2,\).*got \(1,\)"),
        ({"lengths": torch.tensor([[100, 100]])}, r"lengths must have shape \(2,\).*got \(1, 2\)"),
        ({"lengths": torch.tensor([100, 5001])}, r"lengths must lie in \[1, 5000\].*got 5001"),
        ({"lengths": torch.tensor([0, 100])}, r"lengths must lie in \[1, 5000\].*got 0"),
        ({"lengths": torch.tensor([1.0, 2.0])}, r"lengths must be an integer tensor"),
    ],
)
def test_trim_bad_arguments(kwargs, pattern):
    y = torch.zeros(2, 5000)
    with pytest.raises(ParameterError, match=pattern):
        trim(y, **kwargs)


def test_trim_bad_signal():
    with pytest.raises(ParameterError, match="y must be a torch.Tensor"):
        trim(np.zeros(100))
    with pytest.raises(ParameterError, match="y is empty"):
        trim(torch.zeros(3, 0))
    with pytest.raises(ParameterError, match="non-finite"):
        trim(torch.tensor([0.0, float("nan"), 1.0]))
