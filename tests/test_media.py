"""ser_gpu.media: audio and video decoding, offset/duration spans, windows, and failures.

The media files are made here with the ffmpeg binary moviepy ships, from signals whose content is
known (a 440 Hz tone, seeded noise written to a wav first), so expected values never come from the
code under test. Lossless PCM inside video containers (mkv with pcm_f32le) lets the ffmpeg path be
compared with ``ser_gpu.io.load`` of the same samples bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu import media
from ser_gpu.errors import AudioLoadError, ParameterError
from ser_gpu.features import AUDIO_EXTENSIONS as FEATURE_AUDIO_EXTENSIONS
from ser_gpu.io import load
from ser_gpu.media import (AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaWindow, is_media, is_video, iter_windows,
                           load_media, media_duration)
from tests.ffmpeg_tools import ff, ffmpeg

TONE_HZ = 440.0
TONE_SECONDS = 0.5


def _tone_src(rate: int) -> str:
    return f"sine=frequency={TONE_HZ:g}:sample_rate={rate}:duration={TONE_SECONDS}"


def _video_src(seconds: float) -> str:
    return f"testsrc=size=32x32:rate=10:duration={seconds}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    ffmpeg()
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    # a stereo wav with different channels, and the same samples as lossless PCM inside video containers
    stereo = (0.3 * rng.standard_normal((2, 8000 * 3))).astype(np.float32)
    sf.write(d / "stereo.wav", stereo.T, 8000, subtype="FLOAT")
    ff("-f", "lavfi", "-i", _video_src(3), "-i", str(d / "stereo.wav"), "-c:v", "mpeg4",
       "-c:a", "pcm_f32le", "-shortest", str(d / "stereo.mkv"))
    # 12.5 s: long enough for load_media's container seek (offsets beyond 10 s)
    long = (0.3 * rng.standard_normal(8000 * 25 // 2)).astype(np.float32)
    sf.write(d / "long.wav", long, 8000, subtype="FLOAT")
    ff("-i", str(d / "long.wav"), "-c:a", "pcm_f32le", str(d / "long.mka"))
    # lossy tones: the 440 Hz peak must survive decoding and resampling
    ff("-f", "lavfi", "-i", _video_src(TONE_SECONDS), "-f", "lavfi", "-i", _tone_src(44100),
       "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(d / "tone.mp4"))
    ff("-f", "lavfi", "-i", _tone_src(48000), "-c:a", "aac", str(d / "tone.m4a"))
    ff("-f", "lavfi", "-i", _tone_src(44100), "-c:a", "libmp3lame", str(d / "tone.mp3"))
    ff("-f", "lavfi", "-i", _tone_src(44100), "-c:a", "pcm_s16le", str(d / "tone.wav"))
    ff("-f", "lavfi", "-i", _video_src(TONE_SECONDS), "-c:v", "mpeg4", str(d / "silent.mp4"))
    # a cut-off m4a: the index up front (faststart), half of the audio data missing
    ff("-f", "lavfi", "-i", "anoisesrc=sample_rate=48000:seed=3:duration=4", "-c:a", "aac",
       "-movflags", "+faststart", str(d / "whole.m4a"))
    data = (d / "whole.m4a").read_bytes()
    (d / "cut.m4a").write_bytes(data[: len(data) // 2])
    (d / "corrupt.mp4").write_bytes(b"this is not a video file\n" * 40)
    (d / "corrupt.wav").write_bytes(b"this is not a wav file either\n" * 40)
    (d / "empty.mp4").write_bytes(b"")
    (d / "empty.m4a").write_bytes(b"")
    return d


def _peak_hz(y: torch.Tensor, sr: float) -> float:
    spectrum = np.abs(np.fft.rfft(y.double().numpy() * np.hanning(len(y)), n=8 * len(y)))
    return float(np.argmax(spectrum) * sr / (8 * len(y)))


# ------------------------------------------------------------------------------------ extensions

def test_extensions():
    assert set(FEATURE_AUDIO_EXTENSIONS) <= set(AUDIO_EXTENSIONS)
    assert {".m4a", ".aac", ".opus", ".wma"} <= set(AUDIO_EXTENSIONS)
    assert VIDEO_EXTENSIONS == (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
    assert is_media("a/clip.WAV") and is_media(Path("x.m4a")) and is_media("talk.MKV")
    assert is_video("talk.Mp4") and not is_video("clip.m4a")
    assert not is_media("notes.txt") and not is_media("noextension")


# ------------------------------------------------------------------------------------ decoding

@pytest.mark.parametrize("name", ["tone.mp4", "tone.m4a", "tone.mp3", "tone.wav"])
@pytest.mark.parametrize("sr", [22050, 16000])
def test_tone_rate_duration_and_peak(files, name, sr):
    y, sr_out = load_media(files / name, sr=sr)
    assert sr_out == sr
    assert y.dtype == torch.float32 and y.ndim == 1
    assert abs(len(y) / sr - TONE_SECONDS) < 0.01  # lossy codecs: whole frames, priming trimmed
    # a wrong rate anywhere (native, target) would move the peak away from the generated 440 Hz
    assert abs(_peak_hz(y, sr) - TONE_HZ) < 2.0
    assert abs(media_duration(files / name) - TONE_SECONDS) < 0.01


def test_native_rate_kept_with_sr_none(files):
    y, sr = load_media(files / "tone.m4a", sr=None)
    assert sr == 48000
    assert abs(len(y) - 24000) <= 1024  # at most one aac frame
    y, sr = load_media(files / "tone.mp4", sr=None)
    assert sr == 44100


@pytest.mark.parametrize("name", ["tone.wav", "tone.mp3", "stereo.wav"])
@pytest.mark.parametrize("kwargs", [{}, {"sr": None}, {"offset": 0.1, "duration": 0.25},
                                    {"sr": 16000, "dtype": torch.float64}])
def test_soundfile_formats_equal_io_load(files, name, kwargs):
    ours, sr = load_media(files / name, **kwargs)
    ref, sr_ref = load(files / name, **kwargs)
    assert sr == sr_ref and ours.dtype == ref.dtype
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("kwargs", [{}, {"sr": None}, {"sr": 16000}, {"offset": 0.5, "duration": 1.25},
                                    {"sr": None, "offset": 1.0}, {"dtype": torch.float64}])
def test_video_container_pcm_equals_io_load_of_the_same_samples(files, kwargs):
    # the mkv holds stereo.wav's samples losslessly: channel mean, span and soxr resampling must agree
    ours, sr = load_media(files / "stereo.mkv", **kwargs)
    ref, sr_ref = load(files / "stereo.wav", **kwargs)
    assert sr == sr_ref and ours.dtype == ref.dtype
    assert torch.equal(ours, ref)


def test_channel_mean_on_the_ffmpeg_path(files):
    ours, _ = load_media(files / "stereo.mkv", sr=None)
    stereo, _ = sf.read(files / "stereo.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(ours.numpy(), stereo.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize("offset, duration", [(0.3, 0.7), (10.75, 1.0), (11.9, None), (2.0, 100.0)])
def test_offset_duration_span_is_sample_exact(files, offset, duration):
    # 10.75 and 11.9 s use the container seek plus decoded pre-roll; 2.0 + 100 s is clipped at the end
    ours, sr = load_media(files / "long.mka", sr=None, offset=offset, duration=duration)
    whole, _ = sf.read(files / "long.wav", dtype="float32")
    start = int(offset * 8000)
    stop = len(whole) if duration is None else min(len(whole), start + int(duration * 8000))
    assert sr == 8000
    np.testing.assert_array_equal(ours.numpy(), whole[start:stop])


def test_lossy_window_matches_the_whole_decode(files):
    whole, sr = load_media(files / "whole.m4a", sr=None)
    part, _ = load_media(files / "whole.m4a", sr=None, offset=1.5, duration=0.5)
    start = int(1.5 * sr)
    assert len(part) == int(0.5 * sr)
    torch.testing.assert_close(part, whole[start:start + len(part)], rtol=0, atol=1e-6)


def test_media_duration(files):
    info = sf.info(str(files / "long.wav"))
    assert media_duration(files / "long.wav") == info.frames / info.samplerate
    assert abs(media_duration(files / "long.mka") - 12.5) < 0.011  # container reports 10 ms steps
    assert abs(media_duration(files / "stereo.mkv") - 3.0) < 0.11  # video track may end a frame later


def test_media_duration_without_container_duration(files, monkeypatch):
    # a container that states no duration ("Duration: N/A") is decoded once to count its samples
    monkeypatch.setattr(media, "_probe", lambda path: "Input #0, matroska\n  Duration: N/A\n"
                                                      "  Stream #0:0: Audio: pcm_f32le, 8000 Hz, mono\n")
    assert media_duration(files / "long.mka") == 12.5


def test_a_file_name_that_is_not_utf8_is_read_by_libsndfile(tmp_path, monkeypatch):
    """soundfile refused a str path that is not valid UTF-8 (UnicodeEncodeError), so such a wav went to
    ffmpeg (or failed without one); it is read by libsndfile, equal to io.load of the same bytes."""
    from tests.conftest import non_utf8_path

    plain = tmp_path / "plain.wav"
    sf.write(plain, (0.3 * np.random.default_rng(1).standard_normal(8000 * 2)).astype(np.float32), 8000,
             subtype="FLOAT")
    odd = non_utf8_path(tmp_path, b"t\xe9l\xe9.wav")
    odd.write_bytes(plain.read_bytes())

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("ffmpeg was used for a file libsndfile reads")

    for name in ("_ffmpeg_decode", "_ffmpeg_blocks", "_probe"):
        monkeypatch.setattr(media, name, no_ffmpeg)
    y, sr = load_media(odd, sr=None)
    assert sr == 8000 and torch.equal(y, load(plain, sr=None)[0])
    assert media_duration(odd) == 2.0
    windows = list(iter_windows(odd, sr=None, window_seconds=0.5))
    assert len(windows) == 4 and torch.equal(torch.cat([w.y for w in windows]), y)


# ------------------------------------------------------------------------------------ windows

@pytest.mark.parametrize("name", ["long.wav", "long.mka"])
def test_windows_tile_the_file(files, name):
    whole, _ = sf.read(files / "long.wav", dtype="float32")
    windows = list(iter_windows(files / name, sr=None, window_seconds=2.0, hop_seconds=1.5))
    assert all(isinstance(w, MediaWindow) for w in windows)
    assert [w.start for w in windows] == [1.5 * k for k in range(len(windows))]
    # full 2 s windows while they fit, then the rest (11.5 .. 12.5 s) as one shorter window
    assert [w.start for w in windows][-1] == 10.5 and windows[-1].end == 12.5
    for w in windows:
        a, b = int(w.start * 8000), int(w.end * 8000)
        np.testing.assert_array_equal(w.y.numpy(), whole[a:b])
    assert all(len(w.y) == 16000 for w in windows[:-1])


def test_windows_equal_load_media_of_each_span(files):
    for w in iter_windows(files / "stereo.mkv", sr=22050, window_seconds=1.0, hop_seconds=0.75):
        ref, _ = load(files / "stereo.wav", sr=22050, offset=w.start, duration=w.end - w.start)
        assert torch.equal(w.y, ref), w.start


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """5 s + 7 samples of stereo noise at 44.1 kHz (an odd length, a rate that needs resampling to
    22050 Hz) in every kind of file predict reads: libsndfile's (wav, flac, ogg, mp3) and ffmpeg's
    (m4a, mkv)."""
    ffmpeg()
    d = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(1)
    y = (0.2 * rng.standard_normal((2, 44100 * 5 + 7))).astype(np.float32)
    sf.write(d / "odd.wav", y.T, 44100, subtype="PCM_16")
    sf.write(d / "odd.flac", y.T, 44100)
    ff("-i", str(d / "odd.wav"), "-c:a", "libvorbis", str(d / "odd.ogg"))
    ff("-i", str(d / "odd.wav"), "-c:a", "libmp3lame", str(d / "odd.mp3"))
    ff("-i", str(d / "odd.wav"), "-c:a", "aac", str(d / "odd.m4a"))
    ff("-f", "lavfi", "-i", _video_src(5), "-i", str(d / "odd.wav"), "-c:v", "mpeg4", "-c:a", "pcm_s16le",
       str(d / "odd.mkv"))
    return d


@pytest.mark.parametrize("name", ["odd.wav", "odd.flac", "odd.ogg", "odd.mp3", "odd.m4a", "odd.mkv"])
def test_streamed_windows_equal_windows_cut_from_the_whole_file(odd_files, name):
    """The one-pass stream (read blocks of 65536 frames, shorter than a window) gives exactly the
    windows that cutting the whole decoded file at the native rate and resampling each piece gives."""
    from ser_gpu.io import _resample

    path = odd_files / name
    whole, native = load_media(path, sr=None)  # the whole file at once, averaged over channels
    assert native == 44100
    windows = list(iter_windows(path, sr=22050, window_seconds=2.0, hop_seconds=1.5))
    starts = list(range(0, len(whole) - 88200 + 1, 66150))
    expected = [(a, a + 88200) for a in starts] + [(starts[-1] + 66150, len(whole))]
    assert [(round(w.start * native), round(w.end * native)) for w in windows] == expected
    for w, (a, b) in zip(windows, expected):
        assert w.y.dtype == torch.float32
        assert torch.equal(w.y, torch.from_numpy(_resample(whole[a:b].numpy(), native, 22050))), (name, a)


def test_windows_short_file_gap_and_early_stop(files):
    only = list(iter_windows(files / "tone.wav", sr=None, window_seconds=3.0))
    assert len(only) == 1 and only[0].start == 0.0 and only[0].end == TONE_SECONDS
    sparse = list(iter_windows(files / "long.wav", sr=None, window_seconds=1.0, hop_seconds=4.0))
    assert [(w.start, w.end) for w in sparse] == [(0.0, 1.0), (4.0, 5.0), (8.0, 9.0), (12.0, 12.5)]
    gen = iter_windows(files / "long.mka", sr=16000, window_seconds=1.0)
    first = next(gen)
    assert len(first.y) == 16000
    gen.close()  # stops the decoder; must not raise


# ------------------------------------------------------------------------------------ failures

def _one_line_error(exc_info, path) -> str:
    text = str(exc_info.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert "Traceback" not in text
    return exc_info.value.reason


@pytest.mark.parametrize("call", [load_media, media_duration, iter_windows])
def test_no_audio_track(files, call):
    with pytest.raises(AudioLoadError) as exc_info:
        call(files / "silent.mp4") if call is not iter_windows else next(call(files / "silent.mp4"))
    assert _one_line_error(exc_info, files / "silent.mp4") == "has no audio track"


@pytest.mark.parametrize("name, fragment", [
    ("missing.mp4", "file not found"),
    ("empty.mp4", "empty file"),
    ("empty.m4a", "empty file"),
    ("corrupt.mp4", "cannot be decoded"),
    ("corrupt.wav", "cannot be decoded by libsndfile or ffmpeg"),
    ("cut.m4a", "truncated"),
])
def test_unreadable_files(files, name, fragment):
    with pytest.raises(AudioLoadError) as exc_info:
        load_media(files / name)
    assert fragment in _one_line_error(exc_info, files / name)


def test_unreadable_files_in_duration_and_windows(files):
    for name in ("missing.mkv", "empty.mp4"):
        with pytest.raises(AudioLoadError):
            media_duration(files / name)
        with pytest.raises(AudioLoadError):
            iter_windows(files / name)  # checked at the call, before any decoding
    with pytest.raises(AudioLoadError, match="cannot be decoded"):
        media_duration(files / "corrupt.mp4")
    with pytest.raises(AudioLoadError, match="cannot be decoded"):
        next(iter_windows(files / "corrupt.mp4"))
    with pytest.raises(AudioLoadError, match="is a directory"):
        load_media(files)


def test_offset_past_the_end(files):
    with pytest.raises(AudioLoadError, match="past the end"):
        load_media(files / "tone.m4a", offset=5.0)
    with pytest.raises(AudioLoadError, match="past the end"):
        load_media(files / "tone.wav", offset=5.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"sr": 0}, "sr"), ({"sr": -22050}, "sr"), ({"offset": -1.0}, "offset"), ({"duration": 0}, "duration"),
    ({"dtype": torch.int16}, "dtype"),
])
def test_bad_arguments(files, kwargs, name):
    with pytest.raises(ParameterError, match=name):
        load_media(files / "tone.m4a", **kwargs)


def test_bad_window_arguments(files):
    with pytest.raises(ParameterError, match="window_seconds"):
        iter_windows(files / "tone.wav", window_seconds=0)
    with pytest.raises(ParameterError, match="hop_seconds"):
        iter_windows(files / "tone.wav", hop_seconds=-1.0)
    with pytest.raises(ParameterError, match="window_seconds"):
        next(iter_windows(files / "tone.wav", window_seconds=1e-9))  # under one sample at 44.1 kHz
    with pytest.raises(ParameterError, match="path"):
        load_media(123)


def test_libsndfile_read_failure_falls_back_to_ffmpeg(files, monkeypatch):
    # as librosa falls back to audioread when libsndfile fails; io's own damage verdicts stand
    def failing_load(path, **kwargs):
        raise AudioLoadError(path, "corrupt or truncated data (libsndfile: boom)") from sf.LibsndfileError(0)

    monkeypatch.setattr(media._io, "load", failing_load)
    y, sr = load_media(files / "tone.mp3")
    assert sr == 22050 and abs(_peak_hz(y, sr) - TONE_HZ) < 2.0

    def damage_verdict(path, **kwargs):
        raise AudioLoadError(path, "truncated data: the header declares more")

    monkeypatch.setattr(media._io, "load", damage_verdict)
    with pytest.raises(AudioLoadError, match="truncated data"):
        load_media(files / "tone.mp3")


def test_without_ffmpeg(files, monkeypatch):
    monkeypatch.setattr(media, "ffmpeg_exe", lambda: None)
    with pytest.raises(AudioLoadError, match="no ffmpeg binary"):
        load_media(files / "tone.m4a")
    y, _ = load_media(files / "tone.wav")  # libsndfile formats do not need it
    assert len(y) > 0
