"""ser_gpu.data.synthetic: a deterministic, idempotent, RAVDESS-named corpus that never overwrites user files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from ser_gpu.data import EMOTIONS, scan_corpus, synthetic
from ser_gpu.data.synthetic import MANIFEST_NAME, default_corpus_dir, make_corpus, synthesize_clip
from ser_gpu.errors import ParameterError

TINY = dict(n_actors=2, n_clips=1, progress=False)  # 16 clips, a fraction of a second to write


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "corpus"
    return root, make_corpus(root, seed=5, **TINY)


def test_files_are_ravdess_named_and_parse(tiny):
    root, paths = tiny
    assert len(paths) == 2 * 8 and paths == sorted(paths)
    assert all(p.parent.parent == root and p.parent.name == f"Actor_{int(p.stem[-2:]):02d}" for p in paths)
    clips = scan_corpus([root])
    assert [c.path for c in clips] == paths
    assert {(c.actor, c.label) for c in clips} == {(a, e) for a in (1, 2) for e in range(8)}
    assert all((c.modality, c.vocal_channel) == (3, 1) for c in clips)
    assert {c.emotion for c in clips} == set(EMOTIONS)


def test_files_are_16_bit_speech_length_audio(tiny):
    _, paths = tiny
    for p in paths:
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (22050, 1, "PCM_16", "WAV")
        assert 0.4 < info.duration < 4.0
        y, _ = sf.read(p)
        assert np.isfinite(y).all() and 0.3 < np.abs(y).max() <= 1.0


def test_same_seed_same_bytes_other_seed_other_audio(tiny, tmp_path):
    root, paths = tiny
    again = make_corpus(tmp_path / "again", seed=5, **TINY)
    assert [p.relative_to(tmp_path / "again") for p in again] == [p.relative_to(root) for p in paths]
    for a, b in zip(paths, again):
        assert a.read_bytes() == b.read_bytes()
    other = make_corpus(tmp_path / "other", seed=6, **TINY)
    assert all(a.read_bytes() != b.read_bytes() for a, b in zip(paths, other))


@pytest.mark.parametrize("threads", [1, 3])
def test_files_do_not_depend_on_the_number_of_threads(tiny, tmp_path, monkeypatch, threads):
    """make_corpus synthesises clips on threads (each from its own seed): any number gives the same bytes,
    each the clip synthesize_clip makes, written as 16-bit PCM."""
    root, paths = tiny
    monkeypatch.setattr(synthetic, "_SYNTHESIS_THREADS", threads)
    again = make_corpus(tmp_path / "threads", seed=5, **TINY)
    assert [a.read_bytes() for a in again] == [p.read_bytes() for p in paths]
    clip = scan_corpus([root])[3]
    y = synthesize_clip(seed=5, actor=clip.actor, emotion=clip.label + 1, intensity=clip.intensity,
                        statement=clip.statement, repetition=clip.repetition)
    stored, _ = sf.read(clip.path, dtype="float32")
    np.testing.assert_allclose(stored, y, rtol=0, atol=1 / 32767)  # the 16-bit quantisation step


def test_clip_does_not_depend_on_corpus_size(tiny, tmp_path):
    root, paths = tiny
    bigger = make_corpus(tmp_path / "bigger", seed=5, n_actors=3, n_clips=2, progress=False)
    assert len(bigger) == 3 * 8 * 2
    names = {p.name: p for p in bigger}
    for p in paths:
        assert names[p.name].read_bytes() == p.read_bytes()


def test_second_call_is_idempotent(tiny):
    root, paths = tiny
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    manifest = (root / MANIFEST_NAME).read_bytes()
    assert make_corpus(root, seed=5, **TINY) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps
    assert (root / MANIFEST_NAME).read_bytes() == manifest
    record = json.loads(manifest)
    assert record["complete"] is True and record["params"]["seed"] == 5 and len(record["files"]) == 16


def test_other_parameters_regenerate_our_own_corpus(tmp_path):
    root = tmp_path / "corpus"
    first = make_corpus(root, seed=1, n_actors=2, n_clips=2, progress=False)
    user_file = root / "my_notes.txt"
    user_file.write_text("mine")
    second = make_corpus(root, seed=2, n_actors=1, n_clips=1, progress=False)
    assert len(second) == 8
    on_disk = sorted(root.rglob("*.wav"))
    assert on_disk == second  # the old corpus's extra files are gone ...
    assert user_file.read_text() == "mine"  # ... and a file that was not ours is left alone
    fresh = make_corpus(tmp_path / "fresh", seed=2, n_actors=1, n_clips=1, progress=False)
    assert first[0].name == second[0].name  # same name, regenerated with the new seed
    assert [p.read_bytes() for p in second] == [p.read_bytes() for p in fresh]


def test_missing_file_or_interrupted_run_is_redone(tmp_path):
    root = tmp_path / "corpus"
    paths = make_corpus(root, seed=3, **TINY)
    reference = paths[4].read_bytes()
    paths[4].unlink()
    assert make_corpus(root, seed=3, **TINY) == paths
    assert paths[4].read_bytes() == reference
    record = json.loads((root / MANIFEST_NAME).read_text())
    record["complete"] = False  # as left by a run killed half-way
    (root / MANIFEST_NAME).write_text(json.dumps(record))
    paths[0].write_bytes(b"half a file")
    make_corpus(root, seed=3, **TINY)
    assert paths[0].read_bytes() == make_corpus(tmp_path / "fresh", seed=3, **TINY)[0].read_bytes()
    assert json.loads((root / MANIFEST_NAME).read_text())["complete"] is True


def test_refuses_a_foreign_non_empty_directory(tmp_path):
    root = tmp_path / "my_recordings"
    root.mkdir()
    mine = root / "03-01-01-01-01-01-01.wav"
    mine.write_bytes(b"user data")
    with pytest.raises(ParameterError, match="not empty and holds no ser_gpu_synthetic.json") as info:
        make_corpus(root, **TINY)
    assert str(root) in str(info.value)
    assert mine.read_bytes() == b"user data" and sorted(root.iterdir()) == [mine]
    (root / MANIFEST_NAME).write_text("{not json")  # a damaged or foreign manifest does not make it ours
    with pytest.raises(ParameterError, match="refusing to write"):
        make_corpus(root, **TINY)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ParameterError, match="is not a directory"):
        make_corpus(a_file, **TINY)


def test_empty_existing_directory_is_used(tmp_path):
    assert len(make_corpus(tmp_path, **TINY)) == 16


def test_float_subtype_and_other_rate(tmp_path):
    paths = make_corpus(tmp_path / "f", n_actors=1, n_clips=1, sr=16000, subtype="FLOAT", progress=False)
    info = sf.info(paths[0])
    assert (info.samplerate, info.subtype) == (16000, "FLOAT")


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_actors=0), "n_actors must be a positive integer, got 0"),
    (dict(n_actors=100), "n_actors must be at most 99, got 100|at most 99"),
    (dict(n_clips=9), "n_clips must be at most 8"),
    (dict(n_clips=1.5), "n_clips must be a positive integer, got 1.5"),
    (dict(seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(seed="0"), "seed must be a non-negative integer"),
    (dict(sr=4000), "sr must be at least 8000 Hz, got 4000"),
    (dict(subtype="MP3"), "subtype must be one of .* got 'MP3'"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        make_corpus(tmp_path / "c", progress=False, **kwargs)
    assert not (tmp_path / "c").exists()


def test_default_corpus_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_GPU_CACHE", str(tmp_path / "cache"))
    assert default_corpus_dir() == tmp_path / "cache" / "synthetic"
    monkeypatch.delenv("SER_GPU_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_corpus_dir() == tmp_path / "xdg" / "ser_gpu" / "synthetic"


def test_emotions_differ_in_tempo_and_pitch_contour():
    """Two of the designed differences, measured independently of the generator's own settings:
    slow emotions give longer utterances of the same statement, and surprise rises in pitch."""
    sr = 22050

    def duration(code):
        return np.mean([len(synthesize_clip(seed=0, actor=a, emotion=code, intensity=2)) / sr for a in (1, 2)])

    assert duration(EMOTIONS.index("sad") + 1) > 1.5 * duration(EMOTIONS.index("angry") + 1)
    assert duration(EMOTIONS.index("calm") + 1) > 1.3 * duration(EMOTIONS.index("happy") + 1)

    def f0_track(y):
        # autocorrelation pitch of 40 ms frames with enough energy, 70-500 Hz
        n, hop = int(0.04 * sr), int(0.01 * sr)
        frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
        energy = (frames ** 2).mean(1)
        out = []
        for i in np.where(energy > 0.1 * energy.max())[0]:
            f = frames[i] - frames[i].mean()
            ac = np.correlate(f, f, "full")[n - 1:]
            lo, hi = sr // 500, sr // 70
            out.append((i, sr / (lo + np.argmax(ac[lo:hi]))))
        return np.array(out)

    track = f0_track(synthesize_clip(seed=0, actor=1, emotion=EMOTIONS.index("surprised") + 1, intensity=2))
    half = track[:, 0] > np.median(track[:, 0])
    assert np.median(track[half, 1]) > 1.15 * np.median(track[~half, 1])  # higher in the second half


def test_synthesize_clip_bad_emotion():
    with pytest.raises(ParameterError, match="emotion must be a RAVDESS emotion code in 1-8, got 9"):
        synthesize_clip(seed=0, actor=1, emotion=9)
    with pytest.raises(ParameterError, match="actor must be a non-negative integer, got -2"):
        synthesize_clip(seed=0, actor=-2, emotion=1)
    with pytest.raises(ParameterError, match="seed must be a non-negative integer, got 1.5"):
        synthesize_clip(seed=1.5, actor=1, emotion=1)
    with pytest.raises(ParameterError, match="sr must be at least 8000 Hz, got 100"):
        synthesize_clip(seed=0, actor=1, emotion=1, sr=100)
    assert synthetic.synthesize_clip(seed=0, actor=1, emotion=1).dtype == np.float32
