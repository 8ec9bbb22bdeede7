"""A zero-padded batch with mixed lengths gives each example exactly what it gives alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ser_gpu.functional as F
from tests.conftest import STFT_TOL, rel_err
from tests.signals import SIGNALS

NAMES = ["speech_like", "short_1000", "odd_12345", "silence_burst", "chirp"]
CUTS = [26000, 1000, 12345, 20011, 4601]  # mixed lengths, one shorter than n_fft, one of 9 frames


def make_batch(dtype, device, garbage: bool):
    clips = [torch.from_numpy(SIGNALS[n][:c]).to(dtype) for n, c in zip(NAMES, CUTS)]
    T = max(len(c) for c in clips)
    fill = torch.randn if garbage else torch.zeros
    y = fill(len(clips), T, dtype=dtype, generator=torch.Generator().manual_seed(0)) if garbage else fill(len(clips), T, dtype=dtype)
    for i, c in enumerate(clips):
        y[i, : len(c)] = c
    lengths = torch.tensor([len(c) for c in clips])
    return clips, y.to(device), lengths.to(device)


FEATURES = {
    "mfcc": lambda y, **k: F.mfcc(y, n_mfcc=13, **k),
    "melspectrogram": F.melspectrogram,
    "chroma_stft": F.chroma_stft,
    "chroma_stft_fixed": lambda y, **k: F.chroma_stft(y, tuning=0.1, **k),
    "spectral_contrast": F.spectral_contrast,
    "zero_crossing_rate": F.zero_crossing_rate,
    "rms": F.rms,
    "spectral_rolloff": F.spectral_rolloff,
    "spectral_centroid": F.spectral_centroid,
}


@pytest.mark.parametrize("garbage", [False, True], ids=["zero-pad", "garbage-pad"])
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_batch_equals_single(feature, garbage, device, dtype):
    fn = FEATURES[feature]
    clips, y, lengths = make_batch(dtype, device, garbage)
    out, frame_lengths = fn(y, lengths=lengths)
    assert frame_lengths.tolist() == [1 + len(c) // 512 for c in clips]
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for i, clip in enumerate(clips):
        single = fn(clip.to(device))
        n = int(frame_lengths[i])
        assert single.shape[-1] == n
        valid = out[i, ..., :n]
        scale = single.abs().max().clamp(min=1e-30)
        assert ((valid - single).abs().max() / scale) <= tol, f"example {i} differs"
        assert torch.all(out[i, ..., n:] == 0), "padded frames must be zero"


@pytest.mark.parametrize("order", [1, 2])
def test_delta_batch_equals_single(order, device, dtype):
    clips, y, lengths = make_batch(dtype, device, garbage=True)
    mfcc, frame_lengths = F.mfcc(y, n_mfcc=13, lengths=lengths)
    d, fl = F.delta(mfcc, order=order, frame_lengths=frame_lengths)
    assert torch.equal(fl, frame_lengths)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for i, clip in enumerate(clips):
        single = F.delta(F.mfcc(clip.to(device), n_mfcc=13), order=order)
        n = int(frame_lengths[i])
        scale = single.abs().max().clamp(min=1e-30)
        assert ((d[i, :, :n] - single).abs().max() / scale) <= tol
        assert torch.all(d[i, :, n:] == 0)


def test_delta_short_clip_is_polynomial_fit():
    """Fewer frames than width (librosa raises): a least-squares polynomial fit over all frames."""
    x = torch.arange(5, dtype=torch.float64)
    data = torch.stack([3 * x + 1, x**2, torch.ones(5)])  # (3, 5)
    d1 = F.delta(data, order=1)
    assert torch.allclose(d1[0], torch.full((5,), 3.0, dtype=torch.float64))
    slope = np.polyfit(x.numpy(), x.numpy() ** 2, 1)[0]  # an order-1 fit is a line: one slope everywhere
    assert torch.allclose(d1[1], torch.full((5,), slope, dtype=torch.float64))
    d2 = F.delta(data, order=2)
    assert torch.allclose(d2[1], torch.full((5,), 2.0, dtype=torch.float64))
    assert torch.allclose(d2[0], torch.zeros(5, dtype=torch.float64), atol=1e-12)
    one = F.delta(torch.ones(2, 1, dtype=torch.float64))  # a single frame: no slope to fit
    assert torch.equal(one, torch.zeros(2, 1, dtype=torch.float64))


@pytest.mark.parametrize("n_fft", [2048, 2047, 1023])
def test_frame_counts_match_librosa_for_odd_and_even_n_fft(n_fft):
    import librosa

    lengths = torch.tensor([1024, 1025, 4096, 5000])
    y = torch.randn(4, 5000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out, fl = F.rms(y, frame_length=n_fft, hop_length=512, lengths=lengths)
    _, fl_stft = F.melspectrogram(y, n_fft=n_fft, hop_length=512, lengths=lengths)
    for i, L in enumerate(lengths.tolist()):
        ref = librosa.feature.rms(y=y[i, :L].numpy(), frame_length=n_fft, hop_length=512)
        assert int(fl[i]) == ref.shape[-1] == int(fl_stft[i])
        assert rel_err(out[i, 0, : int(fl[i])], ref[0]) <= STFT_TOL[torch.float64]


def test_padding_mask_is_the_inverse_of_valid_mask():
    from ser_gpu.functional.lengths import padding_mask, valid_mask

    lengths = torch.tensor([[0, 1, 5], [7, 3, 6]])
    assert torch.equal(padding_mask(lengths, 7), ~valid_mask(lengths, 7))
    assert padding_mask(lengths, 7).shape == (2, 3, 7)


@pytest.mark.parametrize("fmin, n_bins, bins_per_octave", [(None, 252, 36), (500.0, 12, 12)],
                         ids=["chroma_cqt", "early_decimation"])
def test_constant_q_frame_counts_follow_each_octave_and_librosa(fmin, n_bins, bins_per_octave):
    """All octaves at once (ceil(n / d) for an octave's total decimation d) equal the octave-by-octave
    recurrence (ceil(n / 2) per 2x decimation) for every length up to 3000, and librosa's frame count."""
    import librosa

    from ser_gpu.functional import constantq

    fmin = constantq._C1 if fmin is None else fmin
    plan = constantq._plan(22050.0, 512, fmin, n_bins, bins_per_octave, 0.0, 1.0, 1.0, 0.01, "hann", True)[0]
    n = torch.arange(1, 3001)
    expected = []
    for length in n.tolist():
        length = -(-length // plan.early)
        frames = []
        for o in plan.octaves:
            frames.append(1 + length // o.hop)
            if o.decimate_after:
                length = -(-length // 2)
        expected.append(min(frames))
    assert (plan.early > 1) == (fmin == 500.0)  # both code paths: with and without early decimation
    assert constantq._frame_counts(plan, n).tolist() == expected
    rng = np.random.default_rng(0)
    for length in (1537, 2048, 2561, 4095):
        C = librosa.cqt(rng.standard_normal(length), sr=22050, hop_length=512, fmin=fmin, n_bins=n_bins,
                        bins_per_octave=bins_per_octave)
        assert int(constantq._frame_counts(plan, torch.tensor([length]))) == C.shape[-1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deltas_of_several_orders_equal_delta_of_each(dtype):
    """unchecked.deltas (the extractor's Δ and ΔΔ, frames gathered once) is delta per order, bit for bit,
    on clips of 3 to 40 frames (fewer than the window included)."""
    from ser_gpu.functional import unchecked

    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 13, 40, generator=g, dtype=dtype)
    fl = torch.tensor([40, 17, 8, 3])
    both = unchecked.deltas(x, 9, (1, 2), fl)
    for order, got in zip((1, 2), both):
        assert torch.equal(got, unchecked.delta(x, 9, order, fl))
        public, _ = F.delta(x, order=order, frame_lengths=fl)
        n = fl.unsqueeze(-1).unsqueeze(-1) > torch.arange(40)
        assert torch.equal(got.masked_fill(~n, 0.0), public)


def test_octave_lengths_at_once_equal_soxr_lengths_one_halving_at_a_time():
    """The constant-Q takes each octave's valid length as ceil(n / 2**k) at once; decimate's own rule is
    soxr's round(n / 2) half up, applied once per octave."""
    from ser_gpu.functional._resample import soxr_output_length

    n = torch.arange(0, 5001)
    step = n
    for k in range(1, 8):
        step = soxr_output_length(step, 2)
        assert torch.equal(step, torch.div(n + 2**k - 1, 2**k, rounding_mode="floor")), k
