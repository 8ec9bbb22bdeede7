"""ser_gpu.io: load() against live librosa.load, load_batch() packing, and every bad input."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu.errors import AudioLoadError, ParameterError
from ser_gpu.io import load, load_batch

librosa = pytest.importorskip("librosa")

LOAD_ATOL = 1e-6  # absolute, on float32 samples in [-1, 1] (the task's parity bound for load)

RATES = [16000, 22050, 44100, 48000]
FORMATS = {  # name -> (extension, soundfile.write keyword arguments)
    "wav16": ("wav", {"subtype": "PCM_16"}),
    "wavfloat": ("wav", {"subtype": "FLOAT"}),
    "flac": ("flac", {}),
    "ogg": ("ogg", {"format": "OGG", "subtype": "VORBIS"}),
}
CALLS = [  # keyword arguments passed identically to librosa.load and load
    {},
    {"sr": None},
    {"mono": False},
    {"sr": 16000},
    {"offset": 0.1, "duration": 0.25},
    {"sr": None, "mono": False, "offset": 0.05},
]


def _signal(rate: int, channels: int, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A tone plus noise (distinct per channel), ``(n,)`` or ``(n, channels)`` as soundfile wants."""
    rng = np.random.default_rng(seed + rate + channels)
    n = int(seconds * rate) + 7  # not a whole number of anything
    t = np.arange(n) / rate
    cols = [0.4 * np.sin(2 * np.pi * (330.0 + 110 * c) * t) + 0.05 * rng.standard_normal(n) for c in range(channels)]
    y = np.stack(cols, axis=-1)
    return y[:, 0] if channels == 1 else y


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    files = {}
    for fmt, (ext, kwargs) in FORMATS.items():
        for rate in RATES:
            for channels in (1, 2):
                path = root / f"{fmt}_{rate}_{channels}ch.{ext}"
                sf.write(path, _signal(rate, channels), rate, **kwargs)
                files[fmt, rate, channels] = path
    return files


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_load_matches_librosa(audio_files, fmt, rate, channels):
    path = audio_files[fmt, rate, channels]
    for kwargs in CALLS:
        ref, ref_sr = librosa.load(path, **kwargs)
        y, y_sr = load(path, **kwargs)
        assert y_sr == ref_sr, kwargs
        assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.device.type == "cpu"
        assert tuple(y.shape) == ref.shape, kwargs
        err = float(np.abs(y.numpy().astype(np.float64) - ref).max())
        assert err <= LOAD_ATOL, f"{path.name} {kwargs}: max abs error {err:.3g}"


def test_load_shapes_and_pathlike(audio_files):
    path = audio_files["wav16", 44100, 2]
    y, sr = load(str(path))
    assert sr == 22050 and y.ndim == 1
    y2, _ = load(path, mono=False)
    assert y2.shape[0] == 2 and y2.shape[1] == y.shape[0]
    y3, sr3 = load(audio_files["wav16", 44100, 1], mono=False)  # single-channel files stay 1-d
    assert y3.ndim == 1 and sr3 == 22050


def test_load_float64_matches_librosa_dtype(audio_files):
    path = audio_files["flac", 48000, 2]
    ref, _ = librosa.load(path, dtype=np.float64)
    y, _ = load(path, dtype=torch.float64)
    assert y.dtype == torch.float64
    assert float(np.abs(y.numpy() - ref).max()) <= 1e-12


def test_resampled_length_is_ceil(audio_files):
    path = audio_files["wav16", 44100, 1]
    n_native = sf.info(path).frames
    y, _ = load(path, sr=16000)
    assert y.shape[-1] == int(np.ceil(n_native * 16000 / 44100))


# ---------------------------------------------------------------------------------------- batches


def test_load_batch_pads_and_reports_lengths(audio_files):
    paths = [audio_files["wav16", 16000, 1], audio_files["flac", 48000, 2], audio_files["ogg", 22050, 1]]
    y, lengths = load_batch(paths, offset=0.02)
    singles = [load(p, offset=0.02)[0] for p in paths]
    assert y.shape == (3, max(s.shape[-1] for s in singles)) and y.dtype == torch.float32
    assert lengths.dtype == torch.int64 and lengths.tolist() == [s.shape[-1] for s in singles]
    for row, single, n in zip(y, singles, lengths.tolist()):
        assert torch.equal(row[:n], single)
        assert torch.count_nonzero(row[n:]) == 0


def test_load_batch_different_durations(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, _signal(22050, 1, seconds=0.3), 22050, subtype="PCM_16")
    sf.write(b, _signal(22050, 1, seconds=0.1), 22050, subtype="PCM_16")
    y, lengths = load_batch([a, b], sr=None, device="cpu")
    assert y.shape == (2, lengths.max().item()) and lengths[0] > lengths[1]
    ref_b, _ = librosa.load(b, sr=None)
    assert np.abs(y[1, : lengths[1]].numpy() - ref_b).max() <= LOAD_ATOL
    assert torch.count_nonzero(y[1, lengths[1]:]) == 0


def test_load_batch_multichannel(audio_files):
    paths = [audio_files["wav16", 16000, 2], audio_files["wavfloat", 44100, 2]]
    y, lengths = load_batch(paths, mono=False)
    assert y.shape == (2, 2, int(lengths.max()))
    for i, p in enumerate(paths):
        single, _ = load(p, mono=False)
        assert torch.equal(y[i, :, : lengths[i]], single)


def test_load_batch_rejects_unbatchable(audio_files):
    with pytest.raises(ParameterError, match=r"sr=None.*16000 Hz.*48000 Hz"):
        load_batch([audio_files["wav16", 16000, 1], audio_files["wav16", 48000, 1]], sr=None)
    with pytest.raises(ParameterError, match="channel"):
        load_batch([audio_files["wav16", 16000, 1], audio_files["wav16", 16000, 2]], mono=False)


def test_load_batch_names_the_bad_file(audio_files, tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioLoadError, match="^" + re.escape(str(missing)) + ": file not found"):
        load_batch([audio_files["wav16", 16000, 1], missing])


# ----------------------------------------------------------------------------------------- errors


def _starts_with(path, reason: str) -> str:
    return "^" + re.escape(str(path)) + ": .*" + reason


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioLoadError, match=_starts_with(path, "not found")) as info:
        load(path)
    assert info.value.path == str(path)


def test_directory(tmp_path):
    with pytest.raises(AudioLoadError, match=_starts_with(tmp_path, "directory")):
        load(tmp_path)


def test_empty_file(tmp_path):
    path = _write_bytes(tmp_path / "empty.wav", b"")
    with pytest.raises(AudioLoadError, match=_starts_with(path, r"empty file \(0 bytes\)")):
        load(path)


def test_zero_sample_file(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0), 16000, subtype="PCM_16")
    with pytest.raises(AudioLoadError, match=_starts_with(path, "no audio samples")):
        load(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioLoadError, match=_starts_with(path, "unsupported format")):
        load(path)


def test_unsupported_format(tmp_path):
    # an MP4/M4A container header: libsndfile cannot read AAC
    path = _write_bytes(tmp_path / "clip.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(range(256)) * 8)
    with pytest.raises(AudioLoadError, match=_starts_with(path, "unsupported format")):
        load(path)


@pytest.mark.parametrize("fmt", ["wav16", "flac", "ogg"])
def test_truncated_file(tmp_path, fmt):
    ext, kwargs = FORMATS[fmt]
    good = tmp_path / f"good.{ext}"
    sf.write(good, _signal(22050, 2, seconds=1.0), 22050, **kwargs)
    data = good.read_bytes()
    path = _write_bytes(tmp_path / f"cut.{ext}", data[: len(data) // 2])
    with pytest.raises(AudioLoadError, match=_starts_with(path, "(truncated|corrupt)")):
        load(path)


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_corrupt_data(tmp_path, fmt):
    ext, kwargs = FORMATS[fmt]
    good = tmp_path / f"good.{ext}"
    sf.write(good, _signal(22050, 2, seconds=1.0), 22050, **kwargs)
    data = bytearray(good.read_bytes())
    third = len(data) // 3
    for i in range(third, third + 200):  # scramble bytes in the middle of the compressed stream
        data[i] = (data[i] * 7 + 13) % 256
    path = _write_bytes(tmp_path / f"bad.{ext}", bytes(data))
    with pytest.raises(AudioLoadError, match=_starts_with(path, "corrupt")):
        load(path)


def test_header_only(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _signal(22050, 1), 22050, subtype="PCM_16")
    path = _write_bytes(tmp_path / "header.wav", good.read_bytes()[:30])
    with pytest.raises(AudioLoadError, match="^" + re.escape(str(path)) + ": "):
        load(path)


def test_offset_past_end(audio_files):
    path = audio_files["wav16", 16000, 1]
    with pytest.raises(AudioLoadError, match=_starts_with(path, r"offset=5\.0 s is at or past the end")):
        load(path, offset=5.0)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"sr": 0}, r"sr must be .*got 0"),
        ({"sr": -22050}, r"sr must be .*got -22050"),
        ({"offset": -0.5}, r"offset must be .*got -0\.5"),
        ({"duration": 0}, r"duration must be .*got 0"),
        ({"duration": -1.0}, r"duration must be .*got -1\.0"),
        ({"dtype": torch.int16}, r"dtype must be .*torch\.int16"),
    ],
)
def test_bad_arguments(audio_files, kwargs, pattern):
    path = audio_files["wav16", 16000, 1]
    with pytest.raises(ParameterError, match=pattern):
        load(path, **kwargs)
    with pytest.raises(ParameterError, match=pattern):
        load_batch([path], **kwargs)


def test_bad_paths_argument(audio_files):
    with pytest.raises(ParameterError, match=r"paths must hold at least one file path, got an empty list"):
        load_batch([])
    with pytest.raises(ParameterError, match="paths must be a list"):
        load_batch(str(audio_files["wav16", 16000, 1]))
    with pytest.raises(ParameterError, match="path must be a str"):
        load(123)


def test_a_file_name_that_is_not_utf8(tmp_path):
    """soundfile encodes str paths strictly: a Linux name with bytes that are not UTF-8 raised
    UnicodeEncodeError (not even an AudioLoadError); io passes such a name as its bytes."""
    from tests.conftest import non_utf8_path

    plain = tmp_path / "plain.wav"
    sf.write(plain, _signal(22050, 2), 22050)
    odd = non_utf8_path(tmp_path, b"caf\xe9.wav")
    odd.write_bytes(plain.read_bytes())
    for kwargs in ({}, {"sr": 16000, "mono": False, "offset": 0.1, "dtype": torch.float64}):
        y, sr = load(odd, **kwargs)
        y_plain, sr_plain = load(plain, **kwargs)
        assert sr == sr_plain and torch.equal(y, y_plain)
    assert torch.equal(load(os.fsencode(odd))[0], load(plain)[0])  # the name as bytes, as os.listdir(b".") gives it
    batch, lengths = load_batch([str(odd), plain])
    assert torch.equal(batch[0], batch[1]) and lengths[0] == lengths[1]
    gone = tmp_path / os.fsdecode(b"gone\xff.wav")
    with pytest.raises(AudioLoadError, match="file not found"):
        load(gone)
    odd.write_bytes(b"not audio" * 20)
    with pytest.raises(AudioLoadError, match="unsupported format"):
        load(odd)
