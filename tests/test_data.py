"""ser_gpu.data: RAVDESS names, corpus scanning, the waveform cache, splits and packed batches."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import ser_gpu.data.cache as cache_mod
from ser_gpu.data import (
    EMOTIONS,
    Clip,
    Split,
    WaveformSet,
    default_cache_dir,
    load_waveforms,
    parse_ravdess_name,
    scan_corpus,
    split_clips,
)
from ser_gpu.errors import AudioLoadError, ParameterError
from ser_gpu.functional.effects import trim
from ser_gpu.io import load
from tests.conftest import needs_cuda, touch


def _name(emotion=3, actor=1, intensity=1, statement=1, repetition=1, modality=3, channel=1, ext="wav"):
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.{ext}"


# ---------------------------------------------------------------------------------------------
# names


def test_emotions_are_the_ravdess_codes_in_order():
    assert EMOTIONS == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def test_parse_valid_name_reads_every_field():
    clip = parse_ravdess_name(Path("some/dir/Actor_12/02-01-06-02-01-02-12.wav"))
    assert clip == Clip(path=Path("some/dir/Actor_12/02-01-06-02-01-02-12.wav"), label=5, actor=12, modality=2,
                        vocal_channel=1, intensity=2, statement=1, repetition=2)
    assert clip.emotion == "fearful"


@pytest.mark.parametrize("code", range(1, 9))
def test_parse_each_emotion_code(code):
    clip = parse_ravdess_name(_name(emotion=code))
    assert clip.label == code - 1
    assert clip.emotion == EMOTIONS[code - 1]


@pytest.mark.parametrize("name", [
    "03-01-09-01-01-01-01.wav",      # unknown emotion code
    "03-01-00-01-01-01-01.wav",      # unknown emotion code
    "03-01-03-01-01-01.wav",         # six fields
    "03-01-03-01-01-01-01-01.wav",   # eight fields
    "03-01-xx-01-01-01-01.wav",      # non-numeric emotion
    "03-01-03-01-01-01-ab.wav",      # non-numeric actor
    "03-01--3-01-01-01-01.wav",      # sign / empty field
    "03-01-03-01-01-01- 1.wav",      # space
    "speech.wav",
    "._03-01-03-01-01-01-01.wav",    # macOS resource fork beside the real file
])
def test_parse_rejects_names_without_a_known_emotion(name):
    assert parse_ravdess_name(name) is None


def test_parse_ignores_extension_case_and_accepts_str():
    clip = parse_ravdess_name("03-01-08-01-02-01-24.WAV")
    assert (clip.label, clip.actor, clip.statement) == (7, 24, 2)


def test_parse_bad_type():
    with pytest.raises(ParameterError, match="path must be a str or os.PathLike, got int"):
        parse_ravdess_name(17)


# ---------------------------------------------------------------------------------------------
# scanning




def test_scan_nested_actor_dirs_sorted_and_non_audio_ignored(tmp_path):
    files = [touch(tmp_path / f"Actor_{a:02d}" / _name(emotion=e, actor=a)) for a in (2, 1) for e in (5, 1)]
    touch(tmp_path / "Actor_01" / "notes.txt")
    touch(tmp_path / "Actor_01" / "03-01-01-01-01-01-01.json")
    touch(tmp_path / "deep" / "er" / _name(emotion=8, actor=3, ext="FLAC"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped: no warning
        clips = scan_corpus([tmp_path])
    assert [c.path for c in clips] == sorted(files + [tmp_path / "deep" / "er" / _name(emotion=8, actor=3, ext="FLAC")],
                                             key=str)
    assert {(c.actor, c.label) for c in clips} == {(1, 0), (1, 4), (2, 0), (2, 4), (3, 7)}


def test_scan_counts_skipped_names_in_one_warning(tmp_path):
    touch(tmp_path / "Actor_01" / _name(emotion=2))
    touch(tmp_path / "Actor_01" / _name(emotion=4))
    for bad in ("03-01-09-01-01-01-01.wav", "03-01-00-01-01-01-01.wav", "hello.wav"):
        touch(tmp_path / "Actor_01" / bad)
    with pytest.warns(UserWarning) as record:
        clips = scan_corpus([str(tmp_path)])
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 3 audio file(s)" in message
    assert any(bad in message for bad in ("03-01-09-01-01-01-01.wav", "03-01-00-01-01-01-01.wav", "hello.wav"))
    assert [c.label for c in clips] == [1, 3]


def test_scan_several_dirs_and_overlap_listed_once(tmp_path):
    a = touch(tmp_path / "one" / _name(emotion=1, actor=1))
    b = touch(tmp_path / "two" / _name(emotion=2, actor=2))
    clips = scan_corpus([tmp_path / "one", tmp_path / "two", tmp_path])  # tmp_path covers both again
    assert [c.path.resolve() for c in clips] == [a.resolve(), b.resolve()]
    assert scan_corpus(tmp_path / "two")[0].path == b  # a single path is accepted too


def test_scan_errors(tmp_path):
    with pytest.raises(ParameterError, match="does not exist") as info:
        scan_corpus([tmp_path / "missing"])
    assert "missing" in str(info.value)
    f = touch(tmp_path / "file.wav")
    with pytest.raises(ParameterError, match="is not a directory") as info:
        scan_corpus([f])
    assert "file.wav" in str(info.value)
    with pytest.raises(ParameterError, match="at least one directory"):
        scan_corpus([])
    with pytest.raises(ParameterError, match="must hold paths"):
        scan_corpus([3])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParameterError, match="no valid RAVDESS-named audio file") as info:
        scan_corpus([empty])
    assert "empty" in str(info.value) and "0 audio file(s) skipped" in str(info.value)
    bad = tmp_path / "bad"
    touch(bad / "03-01-09-01-01-01-01.wav")
    touch(bad / "take1.wav")
    with pytest.raises(ParameterError, match="2 audio file\\(s\\) skipped"):
        scan_corpus([bad])


# ---------------------------------------------------------------------------------------------
# waveform cache

SR_FILE = 16000  # not 22050, so every load resamples


def _write(path: Path, seconds=0.4, freq=300.0, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR_FILE)
    t = np.arange(n) / SR_FILE
    y = np.zeros(n + 3000)
    # silence around a tone burst, so trimming has something to remove
    y[1500:1500 + n] = 0.4 * np.sin(2 * np.pi * freq * t) * np.hanning(n) ** 0.2 + 0.01 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SR_FILE, subtype="PCM_16")
    return path


@pytest.fixture
def corpus(tmp_path):
    files = [_write(tmp_path / "data" / f"Actor_0{a}" / _name(emotion=e, actor=a), freq=200 + 50 * e + 10 * a, seed=e)
             for a in (1, 2) for e in (1, 4)]
    return tmp_path, [parse_ravdess_name(f) for f in files]


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []

    def counting_load(path, **kwargs):
        calls.append(Path(path))
        return load(path, **kwargs)

    monkeypatch.setattr(cache_mod, "load", counting_load)
    return calls


def _reference(path, sr=22050, top_db=20.0, do_trim=True):
    y, _ = load(path, sr=sr)
    return trim(y, top_db=top_db)[0] if do_trim else y


def test_load_waveforms_equals_load_and_trim_then_hits_the_cache(corpus, count_decodes):
    root, clips = corpus
    cache = root / "cache"
    waves, kept = load_waveforms(clips, cache_dir=cache, progress=False)
    assert kept == clips and len(count_decodes) == len(clips)
    for w, c in zip(waves, clips):
        ref = _reference(c.path)
        assert w.dtype == torch.float32 and w.ndim == 1 and w.device.type == "cpu"
        assert len(ref) < len(load(c.path, sr=22050)[0])  # the trim did remove the silence
        torch.testing.assert_close(w, ref, rtol=0, atol=0)
    assert len(list(cache.glob("*.npz"))) == len(clips)

    waves2, kept2 = load_waveforms(clips, cache_dir=cache, progress=False)
    assert len(count_decodes) == len(clips)  # nothing decoded the second time
    assert kept2 == clips
    for w, w2 in zip(waves, waves2):
        torch.testing.assert_close(w2, w, rtol=0, atol=0)


def test_load_waveforms_equals_librosa(corpus):
    librosa = pytest.importorskip("librosa")
    root, clips = corpus
    waves, _ = load_waveforms(clips[:1], cache_dir=root / "cache", progress=False)
    ref = librosa.effects.trim(librosa.load(clips[0].path, sr=22050)[0], top_db=20)[0]
    np.testing.assert_allclose(waves[0].numpy(), ref, rtol=0, atol=1e-6)


def test_cache_invalidated_by_mtime_size_and_settings(corpus, count_decodes):
    root, clips = corpus
    cache = root / "cache"
    load_waveforms(clips, cache_dir=cache, progress=False)
    assert len(count_decodes) == 4

    st = os.stat(clips[0].path)
    os.utime(clips[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: same bytes, new mtime
    load_waveforms(clips, cache_dir=cache, progress=False)
    assert count_decodes[4:] == [clips[0].path]

    old = os.stat(clips[1].path)
    _write(clips[1].path, seconds=0.7, freq=500.0)  # new content and size, old mtime: the size tells
    os.utime(clips[1].path, ns=(old.st_atime_ns, old.st_mtime_ns))
    waves, _ = load_waveforms(clips, cache_dir=cache, progress=False)
    assert count_decodes[5:] == [clips[1].path]
    torch.testing.assert_close(waves[1], _reference(clips[1].path), rtol=0, atol=0)

    n = len(count_decodes)
    waves, _ = load_waveforms(clips, cache_dir=cache, progress=False, top_db=30.0)
    assert len(count_decodes) == n + 4
    torch.testing.assert_close(waves[2], _reference(clips[2].path, top_db=30.0), rtol=0, atol=0)
    waves, _ = load_waveforms(clips, cache_dir=cache, progress=False, trim=False)
    assert len(count_decodes) == n + 8
    torch.testing.assert_close(waves[2], _reference(clips[2].path, do_trim=False), rtol=0, atol=0)
    waves, _ = load_waveforms(clips, cache_dir=cache, progress=False, sr=16000)
    assert len(count_decodes) == n + 12
    torch.testing.assert_close(waves[3], _reference(clips[3].path, sr=16000), rtol=0, atol=0)
    load_waveforms(clips, cache_dir=cache, progress=False)  # the original settings are still cached
    assert len(count_decodes) == n + 12


def test_damaged_cache_entry_is_decoded_again(corpus, count_decodes):
    root, clips = corpus
    cache = root / "cache"
    load_waveforms(clips[:1], cache_dir=cache, progress=False)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:40])
    waves, _ = load_waveforms(clips[:1], cache_dir=cache, progress=False)
    assert len(count_decodes) == 2
    torch.testing.assert_close(waves[0], _reference(clips[0].path), rtol=0, atol=0)
    load_waveforms(clips[:1], cache_dir=cache, progress=False)  # repaired
    assert len(count_decodes) == 2


def test_cache_off_and_default_dir(corpus, count_decodes, monkeypatch):
    root, clips = corpus
    monkeypatch.setenv("SER_GPU_CACHE", str(root / "env_cache"))
    assert default_cache_dir() == root / "env_cache" / "waveforms"
    load_waveforms(clips[:2], progress=False)
    assert len(list((root / "env_cache" / "waveforms").glob("*.npz"))) == 2
    load_waveforms(clips[:2], cache=False, progress=False)
    load_waveforms(clips[:2], cache=False, progress=False)
    assert len(count_decodes) == 2 + 4
    monkeypatch.delenv("SER_GPU_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
    assert default_cache_dir() == root / "xdg" / "ser_gpu" / "waveforms"


def test_unusable_cache_dir_warns_and_still_loads(corpus):
    root, clips = corpus
    blocker = root / "blocker"
    blocker.write_text("a file where the cache directory should be")
    with pytest.warns(UserWarning, match="cannot be created"):
        waves, kept = load_waveforms(clips, cache_dir=blocker / "cache", progress=False)
    assert kept == clips and len(waves) == len(clips)


def test_unreadable_files_skipped_and_counted_once(corpus):
    root, clips = corpus
    broken = root / "data" / "Actor_03" / _name(emotion=5, actor=3)
    broken.parent.mkdir()
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    empty = root / "data" / "Actor_03" / _name(emotion=6, actor=3)
    empty.write_bytes(b"")
    missing = Clip(path=root / "data" / "gone.wav", label=0, actor=9)
    mixed = [clips[0], parse_ravdess_name(broken), clips[1], parse_ravdess_name(empty), missing]
    with pytest.warns(UserWarning) as record:
        waves, kept = load_waveforms(mixed, cache_dir=root / "cache", progress=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 3 of 5" in message and str(broken) in message
    assert kept == [clips[0], clips[1]] and len(waves) == 2
    torch.testing.assert_close(waves[1], _reference(clips[1].path), rtol=0, atol=0)


def test_nothing_readable_raises_audio_load_error(tmp_path):
    bad = tmp_path / _name()
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioLoadError, match="none of the 1 audio file") as info:
        load_waveforms([parse_ravdess_name(bad)], cache_dir=tmp_path / "cache", progress=False)
    assert info.value.path == str(bad)


def test_load_waveforms_bad_input(corpus):
    root, clips = corpus
    with pytest.raises(ParameterError, match="at least one Clip"):
        load_waveforms([], progress=False)
    with pytest.raises(ParameterError, match="must hold Clip objects"):
        load_waveforms([str(clips[0].path)], progress=False)
    with pytest.raises(ParameterError, match="clips must be a list"):
        load_waveforms(str(clips[0].path), progress=False)
    with pytest.raises(ParameterError, match="sr must be a positive"):
        load_waveforms(clips, sr=0, progress=False)
    with pytest.raises(ParameterError, match="top_db must be a non-negative"):
        load_waveforms(clips, top_db=-1, progress=False)


# ---------------------------------------------------------------------------------------------
# splits


def _clips(n_actors=10, per_emotion=4):
    return [Clip(path=Path(f"{a}-{e}-{k}.wav"), label=e, actor=a)
            for a in range(1, n_actors + 1) for e in range(8) for k in range(per_emotion)]


def _check_partition(split, n, expect_test=True):
    assert isinstance(split, Split)
    sets = [set(split.train), set(split.val), set(split.test)]
    for s, lst in zip(sets, split):
        assert len(s) == len(lst) and list(lst) == sorted(lst)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(range(n))
    assert split.train and split.val and (bool(split.test) == expect_test)


def test_random_split_is_stratified_reproducible_80_20():
    clips = _clips()
    split = split_clips(clips, method="random", seed=3)
    _check_partition(split, len(clips), expect_test=False)
    assert split == split_clips(clips, method="random", seed=3)
    assert split != split_clips(clips, method="random", seed=4)
    val_labels = np.bincount([clips[i].label for i in split.val], minlength=8)
    assert (val_labels == round(40 * 0.2)).all()  # each emotion gives a fifth of its 40 clips
    assert len(split.val) == len(clips) // 5
    assert len(split_clips(clips, method="random", val_fraction=0.5).val) == len(clips) // 2


def test_actor_split_holds_out_whole_actors():
    clips = _clips()
    split = split_clips(clips, method="actor", seed=1)
    _check_partition(split, len(clips))
    actors = [{clips[i].actor for i in part} for part in split]
    assert not (actors[0] & actors[1]) and not (actors[0] & actors[2]) and not (actors[1] & actors[2])
    assert len(actors[1]) == 2 and len(actors[2]) == 2 and len(actors[0]) == 6
    # males (odd) and females (even) are mixed in each held-out pair
    assert {a % 2 for a in actors[1]} == {0, 1} and {a % 2 for a in actors[2]} == {0, 1}
    assert split == split_clips(clips, method="actor", seed=1)
    seeds = {tuple(split_clips(clips, method="actor", seed=s).test) for s in range(6)}
    assert len(seeds) > 1
    no_test = split_clips(clips, method="actor", test_fraction=0.0)
    _check_partition(no_test, len(clips), expect_test=False)


def test_actor_folds_test_every_actor_once():
    clips = _clips(n_actors=10, per_emotion=1)
    tested = []
    for fold in range(5):
        split = split_clips(clips, method="actor", seed=7, n_folds=5, fold=fold)
        _check_partition(split, len(clips))
        test_actors = {clips[i].actor for i in split.test}
        val_actors = {clips[i].actor for i in split.val}
        assert len(test_actors) == 2 and len(val_actors) == 2 and not test_actors & val_actors
        tested.append(test_actors)
    assert sorted(a for t in tested for a in t) == list(range(1, 11))
    # the validation fold of fold k is the test fold of fold k + 1
    for fold in range(5):
        split = split_clips(clips, method="actor", seed=7, n_folds=5, fold=fold)
        assert {clips[i].actor for i in split.val} == tested[(fold + 1) % 5]


def test_a_named_validation_fold_holds_out_that_fold_and_the_default_is_the_next_one():
    clips = _clips(n_actors=10, per_emotion=1)
    folds = [{clips[i].actor for i in split_clips(clips, method="actor", seed=7, n_folds=5, fold=k).test}
             for k in range(5)]
    for fold in range(5):
        assert split_clips(clips, method="actor", seed=7, n_folds=5, fold=fold, val_fold=(fold + 1) % 5) == \
            split_clips(clips, method="actor", seed=7, n_folds=5, fold=fold)
        for val_fold in set(range(5)) - {fold}:
            split = split_clips(clips, method="actor", seed=7, n_folds=5, fold=fold, val_fold=val_fold)
            _check_partition(split, len(clips))
            assert {clips[i].actor for i in split.test} == folds[fold]  # the test set does not move
            assert {clips[i].actor for i in split.val} == folds[val_fold]
            assert {clips[i].actor for i in split.train} == set().union(*folds) - folds[fold] - folds[val_fold]


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="speaker"), "method must be one of .* got 'speaker'"),
    (dict(val_fraction=0.0), "val_fraction must lie in \\(0.0, 1.0\\), got 0.0"),
    (dict(val_fraction=1.5), "val_fraction must lie in .* got 1.5"),
    (dict(method="actor", test_fraction=-0.1), "test_fraction must lie in .* got -0.1"),
    (dict(method="actor", val_fraction=0.5, test_fraction=0.5), "below 1"),
    (dict(method="actor", n_folds=2), "n_folds must be at least 3, got 2|at least 3"),
    (dict(method="actor", n_folds=11), "n_folds=11 is more than the 10 actor"),
    (dict(method="actor", n_folds=5, fold=5), "fold must be an integer in \\[0, 5\\), got 5"),
    (dict(method="actor", n_folds=5, fold=-1), "got -1"),
    (dict(method="actor", n_folds=0), "n_folds must be a positive integer, got 0"),
    (dict(method="random", n_folds=5), "n_folds applies to method='actor' only"),
    (dict(seed=1.5), "seed must be an integer, got 1.5"),
    (dict(method="actor", n_folds=5, fold=2, val_fold=2), "val_fold must be an integer in \\[0, 5\\) other than the "
                                                           "test fold 2, got 2"),
    (dict(method="actor", n_folds=5, val_fold=5), "val_fold must be .* got 5"),
    (dict(method="actor", n_folds=5, val_fold=-1), "val_fold must be .* got -1"),
    (dict(method="actor", n_folds=5, val_fold=True), "val_fold must be .* got True"),
    (dict(method="actor", val_fold=1), "val_fold applies to method='actor' with n_folds only, got val_fold=1 "
                                       "with method='actor', n_folds=None"),
    (dict(method="random", val_fold=1), "val_fold applies to .* with method='random'"),
])
def test_split_bad_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        split_clips(_clips(), **kwargs)


def test_split_that_leaves_a_set_empty():
    with pytest.raises(ParameterError, match="leaves none for training"):
        split_clips(_clips(n_actors=2), method="actor")
    with pytest.raises(ParameterError, match="validation set empty"):
        split_clips(_clips(n_actors=1, per_emotion=1), method="random", val_fraction=0.2)
    with pytest.raises(ParameterError, match="at least one Clip"):
        split_clips([], method="random")
    with pytest.raises(ParameterError, match="with .label and .actor"):
        split_clips(["a.wav"], method="random")


# ---------------------------------------------------------------------------------------------
# packed batches


def _waves(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, generator=g) * 2 - 1 for n in lengths]


def test_waveform_set_batches_equal_the_sources_and_zero_padding(device):
    lengths = [5, 17, 1, 9, 12, 3, 17]
    waves = _waves(lengths)
    labels = [3, 1, 4, 1, 5, 2, 6]
    ws = WaveformSet(waves, labels).to(device)
    assert len(ws) == 7 and ws.device.type == device and ws.data.numel() == sum(lengths)
    assert ws.host_lengths.device.type == "cpu" and ws.host_lengths.tolist() == lengths
    seen = []
    for y, lens, labs in ws.batches(3):
        assert y.device.type == device and y.dtype == torch.float32
        assert lens.dtype == torch.int64 and labs.dtype == torch.int64
        assert y.shape == (len(lens), int(lens.max()))
        seen.extend(zip(y.cpu(), lens.cpu().tolist(), labs.cpu().tolist()))
    assert [s[1] for s in seen] == lengths and [s[2] for s in seen] == labels
    for (row, n, _), w in zip(seen, waves):
        torch.testing.assert_close(row[:n], w, rtol=0, atol=0)
        assert (row[n:] == 0).all()
    for i in range(7):
        w, lab = ws[i]
        torch.testing.assert_close(w.cpu(), waves[i], rtol=0, atol=0)
        assert lab == labels[i]


def test_waveform_set_shuffle_is_a_reproducible_permutation(device):
    lengths = list(range(1, 12))
    waves = _waves(lengths, seed=1)
    ws = WaveformSet(waves, list(range(11))).to(device)

    def order(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return [int(x) for _, _, labs in ws.batches(4, shuffle=True, generator=g, **kw) for x in labs.cpu()]

    first = order(0)
    assert sorted(first) == list(range(11)) and first != list(range(11))
    assert order(0) == first and order(1) != first
    dropped = order(0, drop_last=True)
    assert dropped == first[:8]
    for y, lens, labs in ws.batches(4, shuffle=True, generator=torch.Generator().manual_seed(2)):
        for row, n, lab in zip(y.cpu(), lens.cpu().tolist(), labs.cpu().tolist()):
            torch.testing.assert_close(row[:n], waves[lab], rtol=0, atol=0)  # label i is clip i here
            assert (row[n:] == 0).all()


def test_waveform_set_gather_with_a_given_width(device):
    """``width`` (a padded size the caller knows on the host) gives the gather without it, zero-padded to
    that width; a narrower width cuts the clips and says so in their lengths."""
    lengths = [5, 17, 1, 9, 12]
    waves = _waves(lengths, seed=3)
    ws = WaveformSet(waves, [0, 1, 2, 3, 4]).to(device)
    index = torch.tensor([3, 0, 4, 2], device=device)
    y, lens, labs = ws.gather(index)
    assert y.shape == (4, 12)
    for width in (12, 20):
        yw, lw, bw = ws.gather(index, width=width)
        assert yw.shape == (4, width) and torch.equal(lw, lens) and torch.equal(bw, labs)
        assert torch.equal(yw[:, :12], y) and not yw[:, 12:].any()
    yc, lc, _ = ws.gather(index, width=6)
    assert lc.cpu().tolist() == [6, 5, 6, 1]
    assert torch.equal(yc, y[:, :6] * (torch.arange(6, device=device) < lc[:, None]))
    with pytest.raises(ParameterError, match="width must be a positive integer, got 0"):
        ws.gather(index, width=0)


@pytest.mark.cuda
@needs_cuda
def test_waveform_set_gather_with_a_width_does_not_wait_for_the_gpu():
    ws = WaveformSet(_waves([5, 17, 1, 9]), [0, 1, 2, 3]).to("cuda")
    index = torch.tensor([1, 3], device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y, _, _ = ws.gather(index, width=20)
        with pytest.raises(RuntimeError, match="synchroniz"):  # without it: the lengths are read back
            ws.gather(index)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(y[:, :17].cpu(), ws.gather(index)[0].cpu())


def test_waveform_set_bad_input():
    with pytest.raises(ParameterError, match="at least one waveform"):
        WaveformSet([], [])
    with pytest.raises(ParameterError, match=r"waves\[1\] must be 1-D"):
        WaveformSet([torch.zeros(4), torch.zeros(2, 4)], [0, 1])
    with pytest.raises(ParameterError, match=r"waves\[0\] is empty"):
        WaveformSet([torch.zeros(0)], [0])
    with pytest.raises(ParameterError, match=r"waves\[0\] must have dtype"):
        WaveformSet([torch.zeros(3, dtype=torch.int16)], [0])
    with pytest.raises(ParameterError, match="one entry per waveform \\(2\\), got 1"):
        WaveformSet(_waves([3, 4]), [0])
    with pytest.raises(ParameterError, match="labels must be integers, got 0.5"):
        WaveformSet(_waves([3]), [0.5])
    with pytest.raises(ParameterError, match="waves must be a list"):
        WaveformSet(torch.zeros(2, 3), [0, 1])
    ws = WaveformSet(_waves([3, 4]), [0, 1])
    with pytest.raises(ParameterError, match="batch_size must be a positive integer, got 0"):
        next(ws.batches(0))
    with pytest.raises(ParameterError, match="generator must be a torch.Generator"):
        next(ws.batches(2, shuffle=True, generator=3))
    with pytest.raises(IndexError, match="out of range"):
        ws[2]
