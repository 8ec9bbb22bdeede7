"""Bad input gets a ParameterError / AudioLoadError naming the argument (or file) and the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ser_gpu.functional as F
from ser_gpu.errors import AudioLoadError, ParameterError

Y = torch.randn(4096, dtype=torch.float64)

WAVEFORM_FUNCS = {
    "stft": F.stft,
    "mfcc": F.mfcc,
    "melspectrogram": F.melspectrogram,
    "chroma_stft": F.chroma_stft,
    "spectral_contrast": F.spectral_contrast,
    "zero_crossing_rate": F.zero_crossing_rate,
    "rms": F.rms,
    "spectral_rolloff": F.spectral_rolloff,
    "spectral_centroid": F.spectral_centroid,
}


@pytest.fixture(params=sorted(WAVEFORM_FUNCS))
def fn(request):
    return WAVEFORM_FUNCS[request.param]


def test_empty(fn):
    with pytest.raises(ParameterError, match=r"y is empty.*\(0,\)"):
        fn(torch.zeros(0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite(fn, bad):
    y = Y.clone()
    y[100] = bad
    with pytest.raises(ParameterError, match=r"y contains 1 non-finite"):
        fn(y)


@pytest.mark.parametrize("dt", [torch.int16, torch.int32, torch.bool, torch.complex64])
def test_wrong_dtype(fn, dt):
    with pytest.raises(ParameterError, match=f"y must have dtype torch.float32 or torch.float64, got {dt}"):
        fn(torch.zeros(4096, dtype=dt))


def test_zero_dim(fn):
    with pytest.raises(ParameterError, match=r"at least 1 dimension.*shape \(\)"):
        fn(torch.tensor(0.5))


def test_not_a_tensor(fn):
    with pytest.raises(ParameterError, match="must be a torch.Tensor, got list"):
        fn([0.0, 1.0])


@pytest.mark.parametrize("arg", ["hop_length", "n_fft"])
@pytest.mark.parametrize("value", [0, -512, 2.5, True])
def test_non_positive_hop_and_n_fft(arg, value):
    for f in (F.stft, F.mfcc, F.spectral_centroid, F.chroma_stft):
        with pytest.raises(ParameterError, match=rf"{arg} must be a positive integer, got {value!r}"):
            f(Y, **{arg: value})


@pytest.mark.parametrize("f", [F.rms, F.zero_crossing_rate])
@pytest.mark.parametrize("arg", ["hop_length", "frame_length"])
def test_non_positive_frame_args(f, arg):
    with pytest.raises(ParameterError, match=rf"{arg} must be a positive integer, got -1"):
        f(Y, **{arg: -1})


@pytest.mark.parametrize("window", ["hannn", "kaiser", ("kaiser", 4.0), 3])
def test_unknown_window(window):
    with pytest.raises(ParameterError, match="window must be one of"):
        F.stft(Y, window=window)
    with pytest.raises(ParameterError, match="window must be one of"):
        F.mfcc(Y, window=window)


def test_window_tensor_wrong_length():
    with pytest.raises(ParameterError, match=r"window tensor must have shape \(2048,\), got \(100,\)"):
        F.stft(Y, window=torch.ones(100))


@pytest.mark.parametrize("top_db", [-1, -80.0, float("nan"), float("inf"), "80"])
def test_bad_top_db(top_db):
    with pytest.raises(ParameterError, match=f"top_db must be a non-negative finite number, got '?{top_db}"):
        F.power_to_db(torch.ones(5, 5), top_db=top_db)


@pytest.mark.parametrize("name, bad, call", [
    ("ref", float("nan"), lambda v: F.power_to_db(torch.ones(5, 5), ref=v)),
    ("ref", float("inf"), lambda v: F.power_to_db(torch.ones(5, 5), ref=v)),
    ("lifter", float("nan"), lambda v: F.mfcc(Y, lifter=v)),
    ("lifter", -1, lambda v: F.mfcc(Y, lifter=v)),
    ("norm", float("nan"), lambda v: F.util.normalize(torch.ones(3, 4), norm=v)),
])
def test_non_finite_numbers_are_refused_not_turned_into_nan_output(name, bad, call):
    # each of these once gave an all-NaN result (or ran on) instead of naming the argument
    with pytest.raises(ParameterError, match=f"{name} must be .*, got {bad}"):
        call(bad)


def test_numpy_scalars_are_numbers():
    # np.float32(80) is what a user gets from an array; it once raised "must be a number"
    S = torch.rand(2, 40, 30, dtype=torch.float64) + 1e-3
    want = F.power_to_db(S, ref=1.0, top_db=80.0)
    for top_db in (np.float32(80), np.int64(80), np.float64(80)):
        for ref in (np.float32(1.0), np.int64(1)):
            torch.testing.assert_close(F.power_to_db(S, ref=ref, top_db=top_db), want, rtol=0, atol=0)
    torch.testing.assert_close(F.util.normalize(S, norm=np.float32(2.0), axis=-2), F.util.normalize(S, norm=2.0, axis=-2))
    torch.testing.assert_close(F.mfcc(Y, lifter=np.int64(22)), F.mfcc(Y, lifter=22))
    torch.testing.assert_close(F.chroma_stft(Y, tuning=np.float32(0.25)), F.chroma_stft(Y, tuning=0.25))
    torch.testing.assert_close(F.filters.mel(sr=22050, n_fft=2048, norm=np.float64(1.0)),
                               F.filters.mel(sr=22050, n_fft=2048, norm=1.0))


def test_dct_names_its_own_arguments():
    with pytest.raises(ParameterError, match="n_out must be a positive integer, got 0"):
        F.filters.dct(0, 128)
    with pytest.raises(ParameterError, match="n_in must be a positive integer, got -1"):
        F.filters.dct(13, -1)


def test_power_to_db_bad_amin_and_ref():
    with pytest.raises(ParameterError, match="amin must be a positive finite number, got 0"):
        F.power_to_db(torch.ones(5, 5), amin=0)
    with pytest.raises(ParameterError, match="ref must be a number or max, got 'loud'"):
        F.power_to_db(torch.ones(5, 5), ref="loud")
    # a reduction other than max was taken over the whole batch (one clip 2.97 dB off its value alone), and
    # np.mean raised a raw TypeError on a tensor
    for ref in (torch.mean, np.mean, np.median, lambda S: 1.0):
        with pytest.raises(ParameterError, match="ref must be a number or max .* got the callable .*whole batch"):
            F.power_to_db(torch.rand(2, 5, 5), ref=ref)


def test_spectrogram_wrong_shape():
    with pytest.raises(ParameterError, match=r"S must have at least 2 dimension\(s\), got shape \(10,\)"):
        F.spectral_centroid(S=torch.ones(10))
    with pytest.raises(ParameterError, match=r"S.shape\[-2\] is 100, so frame_length must be 198 or 199; got frame_length=2048"):
        F.rms(S=torch.ones(100, 10))
    with pytest.raises(ParameterError, match=r"S is empty"):
        F.spectral_rolloff(S=torch.ones(1025, 0))


def test_neither_y_nor_S():
    with pytest.raises(ParameterError, match="either y .* or S .* must be given"):
        F.spectral_centroid()


def test_lengths_wrong_shape_and_range():
    y = torch.zeros(3, 5000)
    with pytest.raises(ParameterError, match=r"lengths must have shape \(3,\).*got \(2,\)"):
        F.mfcc(y, lengths=torch.tensor([10, 20]))
    with pytest.raises(ParameterError, match=r"lengths must lie in \[1, 5000\].*got 6000"):
        F.mfcc(y, lengths=torch.tensor([10, 20, 6000]))
    with pytest.raises(ParameterError, match=r"lengths must lie in \[1, 5000\].*got 0"):
        F.rms(y, lengths=torch.tensor([0, 20, 30]))
    with pytest.raises(ParameterError, match="lengths must be an integer tensor, got dtype torch.float32"):
        F.zero_crossing_rate(y, lengths=torch.tensor([1.0, 2.0, 3.0]))


_Y2, _FL, _L = torch.randn(2, 8000), torch.tensor([3, 4]), torch.tensor([4000, 5000])
_S, _M, _C = torch.rand(2, 1025, 16), torch.rand(2, 128, 16), torch.rand(2, 84, 16)


@pytest.mark.parametrize("name, call", [
    ("spectrogram", lambda kw: F.spectrogram(_Y2, **kw) if "frame_lengths" in kw else F.spectrogram(S=_S, **kw)),
    ("melspectrogram", lambda kw: F.melspectrogram(_Y2, **kw) if "frame_lengths" in kw else F.melspectrogram(S=_S, **kw)),
    ("mfcc", lambda kw: F.mfcc(_Y2, **kw) if "frame_lengths" in kw else F.mfcc(S=_M, **kw)),
    ("chroma_stft", lambda kw: F.chroma_stft(_Y2, **kw) if "frame_lengths" in kw else F.chroma_stft(S=_S, **kw)),
    ("spectral_contrast", lambda kw: F.spectral_contrast(_Y2, **kw) if "frame_lengths" in kw
     else F.spectral_contrast(S=_S, **kw)),
    ("rms", lambda kw: F.rms(_Y2, **kw) if "frame_lengths" in kw else F.rms(S=_S, **kw)),
    ("spectral_rolloff", lambda kw: F.spectral_rolloff(_Y2, **kw) if "frame_lengths" in kw
     else F.spectral_rolloff(S=_S, **kw)),
    ("spectral_centroid", lambda kw: F.spectral_centroid(_Y2, **kw) if "frame_lengths" in kw
     else F.spectral_centroid(S=_S, **kw)),
    ("piptrack", lambda kw: F.piptrack(y=_Y2, **kw) if "frame_lengths" in kw else F.piptrack(S=_S, **kw)),
    ("estimate_tuning", lambda kw: F.estimate_tuning(y=_Y2, **kw) if "frame_lengths" in kw
     else F.estimate_tuning(S=_S, **kw)),
    ("chroma_cqt", lambda kw: F.chroma_cqt(_Y2, **kw) if "frame_lengths" in kw else F.chroma_cqt(C=_C, **kw)),
    ("tonnetz", lambda kw: F.tonnetz(_Y2, **kw) if "frame_lengths" in kw else F.tonnetz(chroma=_C[:, :12], **kw)),
])
def test_the_length_argument_that_does_not_go_with_the_input_is_refused(name, call):
    """frame_lengths with a waveform, or lengths with a precomputed spectral input, were ignored (no masking, the
    result as if none was given; chroma_cqt returned float frame_lengths beyond its frames unchecked)."""
    with pytest.raises(ParameterError, match="frame_lengths counts the frames of a precomputed .*; with y give lengths"):
        call(dict(frame_lengths=_FL))
    with pytest.raises(ParameterError, match="lengths counts the samples of a waveform y; with a precomputed .* give "
                                             "frame_lengths"):
        call(dict(lengths=_L))


@pytest.mark.parametrize("fn", [F.spectral_rolloff, F.spectral_centroid, F.spectral_contrast])
@pytest.mark.parametrize("sr", [0, -22050, float("nan")])
def test_sr_of_the_frequency_features_is_checked(fn, sr):
    """rolloff and contrast divided by sr=0 (ZeroDivisionError); the centroid of sr=-22050 came out in negative
    Hz; contrast blamed fmin and n_bands for a negative sr."""
    with pytest.raises(ParameterError, match=f"sr must be a positive finite number, got {sr}"):
        fn(Y, sr=sr)


def test_an_n_fft_too_small_for_the_contrast_bands_is_named():
    """librosa's rows are all NaN there; ours raised IndexError, from the function and from FeatureExtractor."""
    from ser_gpu.transforms import FeatureExtractor

    for make in (lambda: F.spectral_contrast(Y, n_fft=100), lambda: FeatureExtractor(n_fft=100)):
        with pytest.raises(ParameterError, match=r"n_fft=100 is too small for the contrast bands at sr=22050.0: band "
                                                 r"0 \(0-200 Hz\) holds no FFT bin"):
            make()
    assert F.spectral_contrast(Y, n_fft=200).isfinite().all()  # the smallest that librosa computes too


def test_chroma_stft_unknown_keywords_and_zcr_threshold_are_named():
    """Both reached torch or filters.chroma as they were (TypeError)."""
    with pytest.raises(ParameterError, match=r"unexpected keyword argument\(s\) \['foo'\] for chroma_stft; its "
                                             r"filter bank takes \['base_c', 'ctroct', 'octwidth'\]"):
        F.chroma_stft(Y, foo=1)
    for bad in ("a", float("nan")):
        with pytest.raises(ParameterError, match="threshold must be a finite"):
            F.zero_crossing_rate(Y, threshold=bad)
    F.zero_crossing_rate(Y, threshold=-1.0)  # librosa takes a negative one too


def test_feature_extractor_one_clip_takes_one_length():
    """A 1-D y with two lengths raised "RuntimeError: shape '[1]' is invalid for input of size 2"."""
    from ser_gpu.transforms import FeatureExtractor

    extractor = FeatureExtractor(tonnetz=False, max_frames=None)
    with pytest.raises(ParameterError, match=r"lengths must hold one length for a 1-D y \(one clip\), got shape "
                                             r"\(2,\)"):
        extractor(Y, torch.tensor([100, 200]))
    one = extractor(Y, torch.tensor([3000])).features
    assert one.shape[0] == 1 and torch.equal(one, extractor(Y[:3000]).features)


def test_dtype_hints_and_delta_names_its_argument():
    """The dtype error suggested converting integer PCM for a complex spectrogram too; delta's errors named S."""
    with pytest.raises(ParameterError, match=r"S must have dtype .* got torch.complex64 \(a complex STFT: pass its "
                                             r"magnitude, .abs\(\)\)$"):
        F.spectral_centroid(S=torch.ones(5, 5, dtype=torch.complex64))
    with pytest.raises(ParameterError, match=r"got torch.int16 \(convert integer PCM"):
        F.mfcc(torch.ones(100, dtype=torch.int16))
    with pytest.raises(ParameterError, match=r"data must have at least 2 dimension\(s\), got shape \(20,\)"):
        F.delta(torch.ones(20))


def test_feature_specific_arguments():
    with pytest.raises(ParameterError, match="n_mfcc must be a positive integer, got 0"):
        F.mfcc(Y, n_mfcc=0)
    with pytest.raises(ParameterError, match="n_mfcc must be <= the number of mel bands 40, got 41"):
        F.mfcc(Y, n_mfcc=41, n_mels=40)
    with pytest.raises(ParameterError, match="dct_type must be 2"):
        F.mfcc(Y, dct_type=3)
    with pytest.raises(ParameterError, match="width must be an odd integer >= 3, got 4"):
        F.delta(torch.ones(3, 20), width=4)
    with pytest.raises(ParameterError, match="order must be a positive integer, got 0"):
        F.delta(torch.ones(3, 20), order=0)
    with pytest.raises(ParameterError, match=r"quantile must lie in \(0.0, 1.0\), got 1.5"):
        F.spectral_contrast(Y, quantile=1.5)
    with pytest.raises(ParameterError, match="frequency band exceeds Nyquist"):
        F.spectral_contrast(Y, fmin=2000.0, n_bands=6)
    with pytest.raises(ParameterError, match=r"roll_percent must lie in \(0.0, 1.0\), got 0"):
        F.spectral_rolloff(Y, roll_percent=0)
    with pytest.raises(ParameterError, match="tuning must be a finite number or a tensor, got nan"):
        F.chroma_stft(Y, tuning=float("nan"))
    for bad in (torch.tensor([0.0, float("nan")]), torch.tensor(float("inf")), torch.tensor([0.1j])):  # per example
        with pytest.raises(ParameterError, match="tuning must be finite real values, got (tensor|inf)"):
            F.filters.chroma(sr=22050, n_fft=2048, tuning=bad)
    with pytest.raises(ParameterError, match="pad_mode must be one of"):
        F.stft(Y, pad_mode="mirror")


@pytest.mark.parametrize("fn", [F.spectral_centroid, F.spectral_rolloff], ids=["centroid", "rolloff"])
def test_a_spectrogram_with_negative_energies_is_refused(fn):
    """librosa refuses a negative S for these; ours returned a centroid of -5504 Hz."""
    import librosa

    S = torch.rand(1025, 6, dtype=torch.float64)
    S[3, 2] = -0.5
    with pytest.raises(librosa.util.exceptions.ParameterError, match="non-negative energies"):
        getattr(librosa.feature, fn.__name__)(S=S.numpy())
    with pytest.raises(ParameterError, match=r"S holds 1 negative value\(s\): the spectral .* only defined with "
                                             r"non-negative energies"):
        fn(S=S)
    fn(S=S.abs())  # a magnitude is fine, and so is the waveform path (its S is |STFT|)


def test_settings_are_checked_before_the_work_and_named_as_given():
    """mfcc named its mel_norm 'norm' (the DCT's own argument); mfcc's and chroma_stft's norm were checked
    after the STFT; switches took any truthy value; the PCM hint was given for a spectrogram too."""
    with pytest.raises(ParameterError, match="^mel_norm must be 'slaney'.*got 'foo'"):
        F.mfcc(Y, mel_norm="foo")
    with pytest.raises(ParameterError, match="^norm must be 'slaney'.*got 'foo'"):
        F.melspectrogram(Y, norm="foo")
    calls = []
    real_stft = F.spectrum._stft

    def counting(*args, **kwargs):
        calls.append(1)
        return real_stft(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F.spectrum, "_stft", counting)
        with pytest.raises(ParameterError, match="^norm must be 'ortho' or None .*got 'x'"):
            F.mfcc(Y, norm="x")
        with pytest.raises(ParameterError, match="^norm must be a positive number, 0, \\+-inf or None, got 'x'"):
            F.chroma_stft(Y, norm="x")
        assert calls == []  # refused before any STFT
        F.mfcc(Y)
        assert calls == [1]  # the patch does see the STFT
    for call, name in [(lambda: F.stft(Y, center="no"), "center"), (lambda: F.spectrogram(Y, center=1), "center"),
                       (lambda: F.istft(F.stft(Y), center="yes"), "center"),
                       (lambda: F.melspectrogram(Y, htk="yes"), "htk"),
                       (lambda: F.spectral_contrast(Y, linear="yes"), "linear")]:
        with pytest.raises(ParameterError, match=f"^{name} must be True or False, got"):
            call()
    with pytest.raises(ParameterError, match=r"S must have dtype .* got torch.int64 \(convert with S.float\(\)\)$"):
        F.power_to_db(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(ParameterError, match=r"y must have dtype .* got torch.int16 \(convert integer PCM with "
                                             r"y.float\(\) / 32768"):
        F.stft(torch.ones(4096, dtype=torch.int16))


def test_phase_vocoder_refuses_non_finite_input():
    D = F.stft(Y)
    D[5, 3] = complex(float("nan"), 0.0)
    with pytest.raises(ParameterError, match="D contains non-finite values"):
        F.phase_vocoder(D, rate=1.5)


def test_the_length_helpers_check_their_arguments():
    lengths = torch.tensor([100, 4096])
    with pytest.raises(ParameterError, match="hop_length must be a positive integer, got 0"):
        F.num_frames(lengths, hop_length=0)
    with pytest.raises(ParameterError, match="n_fft must be a positive integer, got -2"):
        F.num_frames(lengths, n_fft=-2)
    with pytest.raises(ParameterError, match=r"lengths must be an integer tensor, got Tensor\(shape=\(2,\), "
                                             r"dtype=torch.float32"):
        F.num_frames(lengths.float())
    with pytest.raises(ParameterError, match="n_frames must be a non-negative integer, got -1"):
        F.frame_mask(lengths, -1)
    with pytest.raises(ParameterError, match="frame_lengths must be an integer tensor"):
        F.frame_mask(torch.tensor([True]), 3)
    with pytest.raises(ParameterError, match="size must be a non-negative integer, got 2.5"):
        F.valid_mask(lengths, 2.5)
    assert F.num_frames(lengths).tolist() == [1 + 100 // 512, 1 + 4096 // 512]
    assert F.frame_mask(torch.tensor([2]), 3).tolist() == [[True, True, False]]
    # integers from Python and numpy are lengths too, as before the checks
    assert int(F.num_frames(4096)) == int(F.num_frames(np.int64(4096))) == 9
    assert F.num_frames(np.array([100, 4096])).tolist() == [1, 9]
    assert F.valid_mask(np.array([1, 2]), 3).tolist() == [[True, False, False], [True, True, False]]


def test_switches_take_numpy_bools_as_librosa():
    D = F.stft(Y, center=np.True_)
    assert torch.equal(D, F.stft(Y, center=True))
    assert torch.equal(F.filters.mel(htk=np.True_), F.filters.mel(htk=True))
    from ser_gpu.transforms.features import FeatureConfig

    assert type(FeatureConfig(trim=np.False_).trim) is bool  # stored as plain data in checkpoints


def test_piptrack_takes_fmin_zero_as_librosa():
    """librosa accepts fmin=0 (it clips fmin at 0); ours refused it."""
    import librosa

    y = np.random.default_rng(0).standard_normal(8192)
    pitches, mags = F.piptrack(torch.from_numpy(y), sr=22050, fmin=0.0)
    ref_p, ref_m = librosa.piptrack(y=y, sr=22050, fmin=0.0)
    np.testing.assert_allclose(pitches.numpy(), ref_p, rtol=1e-6, atol=1e-6)  # DESIGN.md float64 tolerance
    np.testing.assert_allclose(mags.numpy(), ref_m, rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError, match="fmin must be a non-negative finite number, got -1"):
        F.piptrack(torch.from_numpy(y), fmin=-1.0)


def test_an_empty_mel_filter_warns_as_librosa():
    import librosa

    with pytest.warns(UserWarning, match="Empty filters detected in mel frequency basis"):
        librosa.filters.mel(sr=22050, n_fft=2048, n_mels=127, fmax=20000)
    with pytest.warns(UserWarning, match=r"Empty filters detected in mel frequency basis \(n_mels=127, n_fft=2048"):
        F.filters.mel(sr=22050, n_fft=2048, n_mels=127, fmax=20000)  # a setting no other test builds (cached)


def test_load_directory(tmp_path):
    from ser_gpu.io import load

    with pytest.raises(AudioLoadError, match=str(tmp_path)):
        load(tmp_path)


def test_load_text_file(tmp_path):
    from ser_gpu.io import load

    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioLoadError, match="notes.wav"):
        load(path)


def test_load_missing_file(tmp_path):
    from ser_gpu.io import load

    with pytest.raises(AudioLoadError, match="missing.wav"):
        load(tmp_path / "missing.wav")


def test_lengths_with_reflect_padding_is_refused():
    with pytest.raises(ParameterError, match="lengths are supported with pad_mode='constant' only, got 'reflect'"):
        F.spectrogram(torch.zeros(2, 5000), pad_mode="reflect", lengths=torch.tensor([4000, 5000]))


def test_default_hop_is_a_quarter_of_the_window():
    import librosa

    y = torch.randn(6000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = F.stft(y, n_fft=1024, win_length=512)
    ref = librosa.stft(y.numpy(), n_fft=1024, win_length=512)
    assert ours.shape == ref.shape
