"""python -m ser_gpu.features on small files the test writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from ser_gpu.features import main
from tests.signals import SIGNALS


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "audio"
    (d / "sub").mkdir(parents=True)
    sf.write(d / "speech.wav", SIGNALS["speech_like"], 22050, subtype="PCM_16")
    sf.write(d / "sub" / "noise.flac", SIGNALS["noise"][:20000], 44100)
    (d / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return d


def test_writes_one_npy_per_file_and_skips_unreadable(audio_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(audio_dir), "--out", str(out), "--quiet", "--no-tonnetz"]) == 0
    speech = np.load(out / "speech.npy")
    noise = np.load(out / "noise.npy")
    assert speech.dtype == np.float32 and speech.shape[0] == 68 and noise.shape[0] == 68
    summary = json.loads((out / "summary.json").read_text())
    assert {f["output"].rsplit("/", 1)[-1] for f in summary["files"]} == {"speech.npy", "noise.npy"}
    assert [e["path"].rsplit("/", 1)[-1] for e in summary["errors"]] == ["broken.wav"]
    by_name = {f["output"].rsplit("/", 1)[-1]: f for f in summary["files"]}
    assert by_name["speech.npy"]["frames"] == speech.shape[1]
    # 20000 samples at 44.1 kHz are resampled to 22050 Hz: ~10000 samples before trimming
    assert by_name["noise.npy"]["seconds"] <= 20000 / 44100 + 1e-3
    err = capsys.readouterr().err
    assert "broken.wav" in err


def test_rows_equal_the_extractor_on_the_loaded_file(audio_dir, tmp_path):
    from ser_gpu.io import load
    from ser_gpu.transforms import FeatureExtractor

    out = tmp_path / "out"
    main([str(audio_dir / "speech.wav"), "--out", str(out), "--quiet", "--no-tonnetz"])
    y, _ = load(audio_dir / "speech.wav")
    ref = FeatureExtractor(tonnetz=False, normalize=None, max_frames=None)(y).features[0].numpy()
    assert np.array_equal(np.load(out / "speech.npy"), ref)


def test_existing_outputs_are_kept_unless_overwrite(audio_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(audio_dir / "speech.wav"), "--out", str(out), "--quiet", "--no-tonnetz"]
    main(argv)
    written = out / "speech.npy"
    rows = np.load(written)
    np.save(written, rows + 1.0)  # marks the file: kept means untouched
    capsys.readouterr()
    main(argv)
    assert np.array_equal(np.load(written), rows + 1.0), "an existing output was overwritten"
    assert "kept existing" in capsys.readouterr().out
    main(argv + ["--overwrite"])
    assert np.array_equal(np.load(written), rows)


def test_a_users_own_file_is_neither_kept_nor_replaced(audio_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "speech.npy"
    np.save(mine, np.arange(3))
    for extra in ([], ["--overwrite"]):
        main([str(audio_dir / "speech.wav"), "--out", str(out), "--quiet", "--no-tonnetz"] + extra)
        assert np.array_equal(np.load(mine), np.arange(3)), "a file ser_gpu did not write was overwritten"
        assert "kept existing" not in capsys.readouterr().out
    assert len(list(out.glob("speech-*.npy"))) == 1


def test_json_output(audio_dir, tmp_path, capsys):
    main([str(audio_dir / "speech.wav"), "--out", str(tmp_path / "o"), "--quiet", "--no-tonnetz", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0] == "mfcc_0" and len(data["rows"]) == 68
    assert data["files"][0]["shape"][0] == 68


def test_no_audio_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no audio files found" in capsys.readouterr().err


def test_an_output_directory_given_as_a_path_gets_a_hint(audio_dir, tmp_path, capsys, monkeypatch):
    """``features IN OUT`` (as ``video IN OUT``): OUT does not exist, so it is a missing input; the error says
    to give it as --out. Nothing is written, not even the default output directory."""
    monkeypatch.chdir(tmp_path)
    wav, out = str(audio_dir / "speech.wav"), str(tmp_path / "my rows")
    assert main([wav, out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"input {out!r} does not exist; to write the rows to {out!r}, give it as the output directory: " \
           f"--out '{out}'" in err, err
    assert sorted(os.listdir(tmp_path)) == ["audio"]  # the fixture's inputs alone: no my rows/, no features_out/
    assert main([wav, "rows/", "--quiet"]) == 2  # typed as a directory: the finder's error says 'rows'
    assert "give it as the output directory: --out rows/" in capsys.readouterr().err
    # no hint where it would be wrong: --out given, a single path, another input missing too, another error
    for argv in ([wav, out, "--out", str(tmp_path / "o")], [out], [str(tmp_path / "gone"), out],
                 [wav, out, "--batch-size", "0"]):
        assert main(argv + ["--quiet"]) == 2
        err = capsys.readouterr().err
        assert "error: " in err and "give it as the output directory" not in err, (argv, err)


def test_only_unreadable_files_exit_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main([str(bad), "--out", str(tmp_path / "o"), "--quiet", "--no-tonnetz"]) == 1
    assert "bad.wav" in capsys.readouterr().err


def test_cuda_without_gpu_is_a_clear_error(audio_dir, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main([str(audio_dir / "speech.wav"), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
