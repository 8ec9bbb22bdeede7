"""ser_gpu.video: extract_audio_from_video() and ``python -m ser_gpu.video``.

Videos are made here (ffmpeg's test sources, and one mp4 written by moviepy as the original system
would have produced); the expected rates, durations and the 440 Hz tone come from the generators.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_gpu import video
from ser_gpu.errors import ParameterError, SerGpuError
from ser_gpu.video import extract_audio_from_video, find_videos, main
from tests.ffmpeg_tools import ff, ffmpeg

TONE_HZ = 440.0


def _with_tone(path: Path, *, rate: int, seconds: float = 0.5, channels: int = 1, vcodec="mpeg4", acodec="aac"):
    ff("-f", "lavfi", "-i", f"testsrc=size=32x32:rate=10:duration={seconds}",
       "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ:g}:sample_rate={rate}:duration={seconds}",
       "-c:v", vcodec, "-c:a", acodec, "-ac", str(channels), "-shortest", str(path))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Ready-made videos, copied into each test's own directory by ``video_dir``."""
    ffmpeg()
    d = tmp_path_factory.mktemp("videos")
    _with_tone(d / "talk.mp4", rate=44100, vcodec="libx264")
    _with_tone(d / "interview.mkv", rate=48000, channels=2, acodec="pcm_s16le")
    ff("-f", "lavfi", "-i", "testsrc=size=32x32:rate=10:duration=0.5", "-c:v", "mpeg4", str(d / "silent.mp4"))
    (d / "corrupt.mov").write_bytes(b"not a video\n" * 100)
    (d / "empty.avi").write_bytes(b"")
    return d


@pytest.fixture
def video_dir(sources, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for src in sources.iterdir():
        (d / src.name).write_bytes(src.read_bytes())
    (d / "notes.txt").write_text("not a video")
    (d / "nested").mkdir()
    (d / "nested" / "deeper.mp4").write_bytes((sources / "talk.mp4").read_bytes())
    return d


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=8 * len(y)))
    return float(np.argmax(spectrum) * sr / (8 * len(y)))


# ------------------------------------------------------------------------------------ library

def test_converts_reports_and_keeps_inputs(video_dir, tmp_path):
    before = _snapshot(video_dir)
    out = tmp_path / "out" / "wavs"  # created, parents too
    summary = extract_audio_from_video(video_dir, out, progress=False)

    assert summary["written"] == [str(out / "interview.wav"), str(out / "talk.wav")]
    assert summary["skipped_existing"] == []
    assert summary["no_audio"] == [str(video_dir / "silent.mp4")]
    assert set(summary["failed"]) == {str(video_dir / "corrupt.mov"), str(video_dir / "empty.avi")}
    assert "empty" in summary["failed"][str(video_dir / "empty.avi")]
    assert "cannot be read" in summary["failed"][str(video_dir / "corrupt.mov")]
    assert all("\n" not in reason for reason in summary["failed"].values())
    # only the wavs: no temporary files left, nothing for the top-level-only scan to find in nested/
    assert sorted(p.name for p in out.iterdir()) == ["interview.wav", "talk.wav"]
    assert _snapshot(video_dir) == before  # inputs untouched

    talk = sf.info(str(out / "talk.wav"))
    assert (talk.samplerate, talk.channels, talk.subtype) == (44100, 1, "PCM_16")
    assert abs(talk.duration - 0.5) < 0.03
    inter = sf.info(str(out / "interview.wav"))
    assert (inter.samplerate, inter.channels, inter.subtype) == (48000, 2, "PCM_16")
    y, sr = sf.read(out / "talk.wav")
    assert abs(_peak_hz(y, sr) - TONE_HZ) < 2.0


def test_existing_outputs_are_kept_unless_overwrite(video_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "talk.wav").write_bytes(b"an older result")
    summary = extract_audio_from_video(video_dir, out, progress=False)
    assert summary["skipped_existing"] == [str(out / "talk.wav")]
    assert str(out / "talk.wav") not in summary["written"]
    assert (out / "talk.wav").read_bytes() == b"an older result"

    summary = extract_audio_from_video(video_dir, out, overwrite=True, progress=False)
    assert summary["skipped_existing"] == []
    assert str(out / "talk.wav") in summary["written"]
    assert sf.info(str(out / "talk.wav")).samplerate == 44100


def test_target_rate(video_dir, tmp_path):
    summary = extract_audio_from_video(video_dir / "interview.mkv", tmp_path, sr=16000, progress=False)
    assert summary["written"] == [str(tmp_path / "interview.wav")]
    y, sr = sf.read(tmp_path / "interview.wav")
    assert sr == 16000 and y.shape[1] == 2
    assert abs(len(y) / sr - 0.5) < 0.03
    assert abs(_peak_hz(y[:, 0], sr) - TONE_HZ) < 2.0


def test_single_file_and_shared_stems(video_dir, tmp_path):
    summary = extract_audio_from_video(video_dir / "talk.mp4", tmp_path / "one", progress=False)
    assert summary == {"written": [str(tmp_path / "one" / "talk.wav")], "skipped_existing": [],
                       "no_audio": [], "failed": {}}
    d = tmp_path / "stems"
    d.mkdir()
    for name in ("a.mp4", "a.MKV"):
        (d / name).write_bytes((video_dir / "talk.mp4").read_bytes())
    summary = extract_audio_from_video(d, d, progress=False)  # writing beside the videos is allowed
    assert summary["written"] == [str(d / "a.wav"), str(d / "a_2.wav")]
    assert sorted(p.name for p in d.iterdir()) == ["a.MKV", "a.mp4", "a.wav", "a_2.wav"]


def test_kept_outputs_hold_their_own_videos_audio_whatever_else_is_present(video_dir, tmp_path):
    """A run with a.mp4 alone writes a.wav; a later run that also finds a.mkv once named a.mkv's output
    a.wav, reported it kept, and extracted a.mp4 again as a_2.wav. Each wav's source tag now decides."""
    d, out = tmp_path / "stems", tmp_path / "out"
    d.mkdir()
    (d / "a.mp4").write_bytes((video_dir / "talk.mp4").read_bytes())  # 44.1 kHz
    assert extract_audio_from_video(d, out, progress=False)["written"] == [str(out / "a.wav")]
    assert video._recorded_source(out / "a.wav") == video._source_key(d / "a.mp4") != video._source_key(d / "a.mkv")
    assert str(d) not in sf.SoundFile(str(out / "a.wav")).comment  # no path in a file the user may share
    (d / "a.mkv").write_bytes((video_dir / "interview.mkv").read_bytes())  # 48 kHz, sorted first
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary["written"] == [str(out / "a_2.wav")] and summary["skipped_existing"] == [str(out / "a.wav")]
    assert sf.info(str(out / "a.wav")).samplerate == 44100 and sf.info(str(out / "a_2.wav")).samplerate == 48000
    (d / "a.mp4").unlink()  # the mkv alone finds its own output, not the mp4's
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary == {"written": [], "skipped_existing": [str(out / "a_2.wav")], "no_audio": [], "failed": {}}
    # --overwrite replaces a video's own output only
    summary = extract_audio_from_video(d, out, overwrite=True, progress=False)
    assert summary["written"] == [str(out / "a_2.wav")]
    assert sf.info(str(out / "a.wav")).samplerate == 44100
    assert not list(out.glob(".*.tmp"))


def test_names_follow_the_tags_not_the_order(video_dir, tmp_path):
    """The review's cases: an untagged a.wav two videos could claim is nobody's; a video finds its own tagged
    wav even where an earlier name became free; moving the videos keeps their outputs."""
    d, out = tmp_path / "stems", tmp_path / "out"
    d.mkdir()
    out.mkdir()
    (d / "a.mp4").write_bytes((video_dir / "talk.mp4").read_bytes())
    (d / "a.mkv").write_bytes((video_dir / "interview.mkv").read_bytes())
    (out / "a.wav").write_bytes(b"written before the tags, by whom?")
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary["written"] == [str(out / "a_2.wav"), str(out / "a_3.wav")] and summary["skipped_existing"] == []
    assert (out / "a.wav").read_bytes() == b"written before the tags, by whom?"
    assert sf.info(str(out / "a_2.wav")).samplerate == 48000  # a.mkv sorts first
    # a.wav goes away: each video still finds its own wav, none is converted again
    (out / "a.wav").unlink()
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary["written"] == [] and summary["skipped_existing"] == [str(out / "a_2.wav"), str(out / "a_3.wav")]
    # the directory moves: the outputs are still the videos' own
    moved = tmp_path / "moved"
    d.rename(moved)
    summary = extract_audio_from_video(moved, out, progress=False)
    assert summary["written"] == [] and len(summary["skipped_existing"]) == 2
    # a video alone with an untagged <stem>.wav (an earlier version's output) keeps it, as before
    solo, solo_out = tmp_path / "solo", tmp_path / "solo_out"
    solo.mkdir()
    solo_out.mkdir()
    (solo / "talk.mp4").write_bytes((video_dir / "talk.mp4").read_bytes())
    (solo_out / "talk.wav").write_bytes(b"an older result")
    assert extract_audio_from_video(solo, solo_out, progress=False)["skipped_existing"] == [str(solo_out / "talk.wav")]


def test_names_with_several_stems_and_stems_that_look_like_names(video_dir, tmp_path):
    """The second review's case: the wavs of every stem are recognised, not only the last stem's (a.mkv once
    'kept' a.mov's a.wav when b.mov sat beside them); a_2.mp4 and a.mp4 never take each other's wav; a
    re-encoded video keeps its name and --overwrite replaces its wav."""
    d, out = tmp_path / "v", tmp_path / "out"
    d.mkdir()
    talk, interview = (video_dir / "talk.mp4").read_bytes(), (video_dir / "interview.mkv").read_bytes()
    (d / "a.mov").write_bytes(talk)          # 44.1 kHz
    (d / "b.mov").write_bytes(talk)
    (d / "a_2.mp4").write_bytes(interview)   # 48 kHz, stem 'a_2'
    first = extract_audio_from_video(d, out, progress=False)["written"]
    assert first == [str(out / "a.wav"), str(out / "a_2.wav"), str(out / "b.wav")]
    (d / "a.mkv").write_bytes(interview)     # stem 'a', sorts before a.mov
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary["written"] == [str(out / "a_3.wav")]
    assert sorted(summary["skipped_existing"]) == sorted(first)
    tags = {p.name: video._recorded_source(p) for p in out.glob("*.wav")}
    assert tags == {"a.wav": "a.mov", "a_2.wav": "a_2.mp4", "a_3.wav": "a.mkv", "b.wav": "b.mov"}
    # another video whose name differs only in case claims nothing that is tagged for another
    (d / "A.mp4").write_bytes(talk)
    summary = extract_audio_from_video(d, out, progress=False)
    assert summary["written"] == [str(out / "A_4.wav")]
    # a.mov re-encoded in place (now 48 kHz): kept until --overwrite, which replaces its own wav
    (d / "a.mov").write_bytes(interview)
    assert str(out / "a.wav") in extract_audio_from_video(d, out, progress=False)["skipped_existing"]
    summary = extract_audio_from_video(d, out, overwrite=True, progress=False)
    assert str(out / "a.wav") in summary["written"] and sf.info(str(out / "a.wav")).samplerate == 48000
    assert sorted(p.name for p in out.glob("*.wav")) == ["A_4.wav", "a.wav", "a_2.wav", "a_3.wav", "b.wav"]


def test_names_that_differ_only_in_case(video_dir, tmp_path):
    """The third review's cases (Linux keeps a.mkv and A.mkv apart): a tag names one video exactly, a case
    variant of an existing wav counts as taken, and a stray oddly named file does not stop the run."""
    d, out = tmp_path / "v", tmp_path / "out"
    d.mkdir()
    (d / "a.mkv").write_bytes((video_dir / "talk.mp4").read_bytes())        # 44.1 kHz
    assert extract_audio_from_video(d, out, progress=False)["written"] == [str(out / "a.wav")]
    (d / "A.mkv").write_bytes((video_dir / "interview.mkv").read_bytes())   # 48 kHz, sorts first
    (out / "A.wav").write_bytes(b"the user's own")                          # untagged, a.wav's case variant
    (out / "notes_\u00b2.wav").write_bytes(b"not ours")                      # '\u00b2'.isdigit() is True
    for _ in range(2):  # the second run converts nothing: each video finds its own
        summary = extract_audio_from_video(d, out, progress=False)
        assert summary["failed"] == {} and str(out / "a.wav") in summary["skipped_existing"]
    assert video._recorded_source(out / "A_2.wav") == "A.mkv" and sf.info(str(out / "A_2.wav")).samplerate == 48000
    assert video._recorded_source(out / "a.wav") == "a.mkv" and (out / "A.wav").read_bytes() == b"the user's own"
    assert sorted(p.name for p in out.glob("*.wav")) == ["A.wav", "A_2.wav", "a.wav", "notes_\u00b2.wav"]


def test_a_video_name_that_is_not_utf8(video_dir, tmp_path):
    """A Linux name whose bytes are not UTF-8: its wav could not be read back (soundfile refused the str
    path), and the tag holding the raw bytes would read back as another name (soundfile decodes tags as
    UTF-8 with replacement), so a second run would not know the wav as the video's own."""
    from tests.conftest import non_utf8_path

    d, out = tmp_path / "v", tmp_path / "out"
    d.mkdir()
    odd = non_utf8_path(d, b"r\xe9union.mkv")
    odd.write_bytes((video_dir / "talk.mp4").read_bytes())
    wav = out / os.fsdecode(b"r\xe9union.wav")
    assert extract_audio_from_video(d, out, progress=False)["written"] == [str(wav)]
    assert video._recorded_source(wav) == "r\\xe9union.mkv"  # the bytes escaped, as the tag reads back
    assert sf.info(os.fsencode(wav)).samplerate == 44100
    summary = extract_audio_from_video(d, out, progress=False)  # the second run finds its own wav
    assert summary["skipped_existing"] == [str(wav)] and summary["written"] == [] and summary["failed"] == {}
    assert os.listdir(out) == [wav.name]


def test_a_track_without_samples_is_reported(tmp_path):
    from ser_gpu.media import ffmpeg_exe

    ffmpeg()
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)  # ffmpeg reads it as a track of 0 samples
    with pytest.raises(video._Failed, match="holds no samples"):
        video._convert(ffmpeg_exe(), tmp_path / "empty.wav", tmp_path / "out.wav", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.wav"]  # no output, no temporary file


def test_video_made_with_moviepy(tmp_path):
    ffmpeg()
    moviepy = pytest.importorskip("moviepy")
    t = np.arange(int(0.5 * 22050)) / 22050

    def tone(times):
        return 0.3 * np.sin(2 * np.pi * TONE_HZ * np.asarray(times))

    audio = moviepy.AudioClip(tone, duration=0.5, fps=22050)
    clip = moviepy.ColorClip(size=(16, 16), color=(200, 30, 30), duration=0.5).with_audio(audio)
    (tmp_path / "in").mkdir()
    clip.write_videofile(str(tmp_path / "in" / "clip.mp4"), fps=10, codec="libx264", audio_codec="aac",
                         logger=None)
    summary = extract_audio_from_video(tmp_path / "in", tmp_path / "out", progress=False)
    assert summary["written"] == [str(tmp_path / "out" / "clip.wav")]
    y, sr = sf.read(tmp_path / "out" / "clip.wav")
    y = y.mean(axis=1) if y.ndim > 1 else y
    assert abs(len(y) / sr - len(t) / 22050) < 0.05
    assert abs(_peak_hz(y, sr) - TONE_HZ) < 2.0


def test_bad_arguments(video_dir, tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        extract_audio_from_video(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(ParameterError, match="holds no video files"):
        extract_audio_from_video(tmp_path / "docs", tmp_path / "out")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ParameterError, match="not a directory"):
        extract_audio_from_video(video_dir, tmp_path / "afile")
    with pytest.raises(ParameterError, match="sr"):
        extract_audio_from_video(video_dir, tmp_path / "out", sr=0)
    with pytest.raises(ParameterError, match="video_dir"):
        extract_audio_from_video(None, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing created for a rejected call


def test_find_videos_top_level_sorted(video_dir):
    assert [p.name for p in find_videos(video_dir)] == ["corrupt.mov", "empty.avi", "interview.mkv",
                                                        "silent.mp4", "talk.mp4"]


# ------------------------------------------------------------------------------------ CLI

def test_cli_mixed_directory(video_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(video_dir), str(out), "--quiet"]) == 1  # a video without audio and unreadable ones
    captured = capsys.readouterr()
    assert f"wrote {out / 'talk.wav'}" in captured.out
    assert f"skipped {video_dir / 'silent.mp4'}: has no audio track" in captured.err
    assert f"failed {video_dir / 'corrupt.mov'}: " in captured.err
    assert "2 written, 0 kept, 1 without audio, 2 failed" in captured.out
    assert "Traceback" not in captured.err
    assert all(line.startswith(("skipped ", "failed ")) for line in captured.err.splitlines())


def test_cli_success_and_kept(video_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(video_dir / "talk.mp4"), str(out), "--quiet"]) == 0
    assert main([str(video_dir / "talk.mp4"), str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"kept existing {out / 'talk.wav'} (use --overwrite to replace it)" in captured.out
    assert "0 written, 1 kept, 0 without audio, 0 failed" in captured.out
    assert main([str(video_dir / "talk.mp4"), str(out), "--overwrite", "--sr", "8000", "--quiet"]) == 0
    assert sf.info(str(out / "talk.wav")).samplerate == 8000


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/missing", "{tmp}/out"], "does not exist"),
    (["{tmp}", "{tmp}/out"], "holds no video files"),
    (["{videos}", "{tmp}/out", "--sr", "-5"], "sr must be a positive integer"),
    (["{videos}", "{tmp}/out", "--sr", "fast"], "invalid int value"),
    (["{videos}"], "required"),
])
def test_cli_usage_errors(video_dir, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, videos=video_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_without_ffmpeg(video_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: None)
    assert main([str(video_dir), str(tmp_path / "out"), "--quiet"]) == 1
    assert "no ffmpeg binary" in capsys.readouterr().err
    with pytest.raises(SerGpuError, match="no ffmpeg binary"):  # the library's root exception (a RuntimeError too)
        extract_audio_from_video(video_dir, tmp_path / "out")


def test_cli_module_entry_point(video_dir, tmp_path, monkeypatch):
    # `python -m ser_gpu.video ...` in-process: a fresh interpreter would spend seconds importing torch
    monkeypatch.setattr(sys, "argv", ["ser_gpu.video", str(video_dir / "talk.mp4"), str(tmp_path / "out"), "--quiet"])
    monkeypatch.delitem(sys.modules, "ser_gpu.video")  # runpy warns when re-running an imported module
    with pytest.raises(SystemExit) as exc_info:
        runpy.run_module("ser_gpu.video", run_name="__main__")
    assert exc_info.value.code == 0
    assert (tmp_path / "out" / "talk.wav").is_file()
