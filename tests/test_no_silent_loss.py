"""Nothing lost, nothing silently wrong (issue 16): each case here failed before its fix.

Colliding feature outputs, summaries replaced, diverged runs that exit 0 with invalid JSON, resumed
runs that ignore the settings given, output paths that fail after the work, caches that grow with
a file's length, symlink loops, m4a in one command but not another, absurd feature configs, unsafe
pickles, two trainings on one directory, stale temporary files, and silent clips given an emotion.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu import evaluate, features, predict
from ser_gpu.checkpoint import load_checkpoint, save_checkpoint
from ser_gpu.data import EMOTIONS
from ser_gpu.errors import CheckpointError
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.train import main as train_main
from ser_gpu.train import train_model
from tests.conftest import assert_resumed
from tests.ffmpeg_tools import ff
from tests.tiny_corpus import FAST, SR, clip, write_corpus


def _strict_json(path: Path):
    """json.loads that refuses NaN/Infinity (not JSON, though Python writes them by default)."""
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not valid JSON")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def _tone(path: Path, seconds: float, f0: float = 220.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR)
    return path


def _random_checkpoint(path: Path, *, nan: bool = False, feature_config=None) -> Path:
    from ser_gpu.transforms.features import FEATURE_ROWS, FeatureConfig

    torch.manual_seed(0)
    config = ModelConfig(input_dim=len(FEATURE_ROWS), n_classes=len(EMOTIONS))
    model = CNNBiLSTMAttention(config)
    if nan:
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
    fc = feature_config or FeatureConfig(max_frames=None, tonnetz=False).to_dict()
    return save_checkpoint(path, model=model, model_config=config.to_dict(), feature_config=fc, labels=list(EMOTIONS))


# ------------------------------------------------------------------------ 1. features: outputs and summary

def _features(argv):
    return features.main(argv + ["--quiet", "--no-tonnetz"])


def test_features_distinct_inputs_never_share_an_output(tmp_path):
    src = tmp_path / "in"
    inputs = [_tone(src / "a" / "x.wav", 0.5, 200.0), _tone(src / "b" / "x.wav", 0.8, 300.0),
              _tone(src / "c" / "x_2.wav", 1.1, 400.0)]
    out = tmp_path / "out"
    assert _features([str(src), "--out", str(out)]) == 0
    summary = _strict_json(out / "summary.json")
    outputs = [f["output"] for f in summary["files"]]
    assert len(set(outputs)) == 3 and all(Path(o).is_file() for o in outputs), outputs
    assert len(list(out.glob("*.npy"))) == 3
    # each output holds the rows of the input the summary names (the three lengths differ)
    for item in summary["files"]:
        frames = np.load(item["output"]).shape[1]
        assert frames == item["frames"]
        n = sf.info(item["path"]).frames
        assert frames == 1 + n // 512, (item["path"], item["output"])
    assert {Path(f["path"]) for f in summary["files"]} == set(inputs)


def test_features_a_later_run_does_not_keep_another_inputs_output(tmp_path, capsys):
    b = _tone(tmp_path / "b" / "x.wav", 0.8, 300.0)
    a = _tone(tmp_path / "a" / "x.wav", 0.5, 200.0)
    out = tmp_path / "out"
    assert _features([str(b), "--out", str(out)]) == 0
    capsys.readouterr()
    assert _features([str(a), "--out", str(out)]) == 0
    assert "kept existing" not in capsys.readouterr().out  # b's output is not a's
    summary = _strict_json(out / "summary.json")
    by_input = {Path(f["path"]): Path(f["output"]) for f in summary["files"]}
    assert set(by_input) == {a, b} and by_input[a] != by_input[b]
    assert np.load(by_input[a]).shape[1] == 1 + sf.info(a).frames // 512
    assert np.load(by_input[b]).shape[1] == 1 + sf.info(b).frames // 512
    # a third run finds both outputs by their inputs and keeps them
    assert _features([str(a), str(b), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("kept existing") == 2


def test_features_an_interrupted_run_leaves_no_unattributed_output(tmp_path, monkeypatch, capsys):
    # the first run is stopped (Ctrl+C) after its first output: the summary still names that output's input,
    # so a later run with another input of the same stem neither keeps that output nor overwrites it
    first = _tone(tmp_path / "d1" / "a.wav", 0.5, 200.0)
    other = _tone(tmp_path / "d1" / "b.wav", 0.6, 250.0)
    second = _tone(tmp_path / "d2" / "a.wav", 1.0, 300.0)
    out = tmp_path / "out"
    real_save, saved = features.save_npy, []

    def save_then_stop(path, rows):
        if saved:
            raise KeyboardInterrupt
        saved.append(path)
        return real_save(path, rows)

    monkeypatch.setattr(features, "save_npy", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _features([str(first), str(other), "--out", str(out), "--batch-size", "2"])
    monkeypatch.setattr(features, "save_npy", real_save)
    assert [p.name for p in saved] == ["a.npy"]
    recorded = {Path(f["output"]).name: Path(f["path"]) for f in _strict_json(out / "summary.json")["files"]}
    assert recorded == {"a.npy": first}
    _gets_its_own_output(second, out, not_name="a.npy", capsys=capsys)
    assert np.load(out / "a.npy").shape[1] == 1 + sf.info(first).frames // 512
    assert _features([str(other), "--out", str(out)]) == 0
    assert np.load(out / "b.npy").shape[1] == 1 + sf.info(other).frames // 512


def test_features_an_unlisted_output_is_nobodys(tmp_path, capsys):
    # a run killed outright (or a user) left x.npy with no summary entry: no input may keep or replace it
    src = _tone(tmp_path / "in" / "x.wav", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "x.npy", np.zeros((68, 3), np.float32))
    for extra in ([], ["--overwrite"]):
        assert _features([str(src), "--out", str(out)] + extra) == 0
        assert "kept existing" not in capsys.readouterr().out
        assert np.load(out / "x.npy").shape == (68, 3)
        (item,) = _strict_json(out / "summary.json")["files"]
        assert Path(item["output"]).name.startswith("x-") and Path(item["path"]) == src


def test_features_an_overwrite_with_new_settings_stopped_midway_attributes_nothing_stale(tmp_path, monkeypatch,
                                                                                     capsys):
    # the review's case: a --no-tonnetz --overwrite run stopped in its second batch wrote a summary with the new
    # settings that lists a.npy only; b.npy, still the first run's rows, must not be kept for another b.wav
    a, b = _tone(tmp_path / "d1" / "a.wav", 0.5), _tone(tmp_path / "d1" / "b.wav", 0.6)
    other_b = _tone(tmp_path / "d2" / "b.wav", 0.9)
    out = tmp_path / "out"
    assert features.main([str(a), str(b), "--out", str(out), "--quiet"]) == 0  # tonnetz on
    real_save = features.save_npy

    def stop_at_b(path, rows):
        if path.name == "b.npy":
            raise KeyboardInterrupt
        return real_save(path, rows)

    monkeypatch.setattr(features, "save_npy", stop_at_b)
    with pytest.raises(KeyboardInterrupt):
        _features([str(a), str(b), "--out", str(out), "--overwrite", "--batch-size", "1"])
    monkeypatch.setattr(features, "save_npy", real_save)
    summary = _strict_json(out / "summary.json")
    assert summary["tonnetz"] is False and [Path(f["output"]).name for f in summary["files"]] == ["a.npy"]
    _gets_its_own_output(other_b, out, not_name="b.npy", capsys=capsys)


def _gets_its_own_output(src: Path, out: Path, *, not_name: str, capsys) -> None:
    """``features`` on ``src`` keeps nothing and writes ``src``'s rows to an output other than ``not_name``."""
    capsys.readouterr()
    assert _features([str(src), "--out", str(out)]) == 0
    assert "kept existing" not in capsys.readouterr().out
    by_input = {Path(f["path"]): Path(f["output"]) for f in _strict_json(out / "summary.json")["files"]}
    assert by_input[src].name != not_name
    assert np.load(by_input[src]).shape[1] == 1 + sf.info(src).frames // 512


_KILLABLE_FEATURES = """
import sys, time
import ser_gpu.features as features
features.SUMMARY_INTERVAL_S = float(sys.argv[1])
real_save, real_json = features.save_npy, features.save_json
def slow_save(path, rows):  # time for the test to stop the run between two outputs
    time.sleep(0.5)
    real_save(path, rows)
def slow_json(path, data):  # a long summary: a SIGTERM arrives while it is written
    print("saving", flush=True)
    time.sleep(0.6)
    real_json(path, data)
features.save_npy, features.save_json = slow_save, slow_json
sys.exit(features.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signals, interval", [(["SIGTERM"], 1e9), (["SIGTERM", "SIGTERM"], 1e9),
                                               (["SIGKILL"], 0.0), (["final write", "SIGTERM"], 1e9)])
def test_features_a_killed_run_leaves_a_summary_of_what_it_wrote(tmp_path, signals, interval):
    # SIGTERM (kill, timeout, a scheduler's limit) unwinds, writes the summary (a second SIGTERM does not cut
    # that short) and dies of the signal; SIGKILL cannot be caught, and the summary rewritten every
    # SUMMARY_INTERVAL_S (here before every batch) lists all but the last work. A SIGTERM that arrives while the
    # finished run writes its summary lets the write end, then ends the process
    import signal
    import time

    signum = signals[-1]

    final = signals[0] == "final write"
    inputs = [_tone(tmp_path / "in" / f"c{i}.wav", 0.3 + 0.05 * i) for i in range(3 if final else 6)]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE_FEATURES, str(interval), str(tmp_path / "in"), "--out",
                             str(out), "--quiet", "--no-tonnetz", "--batch-size", "1"], env=env,
                            stdout=subprocess.PIPE, text=True)
    if final:
        assert proc.stdout.readline().strip() == "saving"  # the one write, at the end (no periodic one)
        proc.send_signal(signal.SIGTERM)
    else:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.npy"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        for k, name in enumerate(signals):
            if k:
                time.sleep(0.3)
            proc.send_signal(getattr(signal, name))
    proc.communicate(timeout=60)
    assert proc.returncode == -getattr(signal, signum)  # as a process without the handler would report it
    written = {p.name for p in out.glob("*.npy")}
    assert 3 <= len(written) <= len(inputs) if final else 3 <= len(written) < len(inputs)
    listed = {Path(f["output"]).name: Path(f["path"]) for f in _strict_json(out / "summary.json")["files"]}
    # a signal between an output's write and its entry leaves that one output unlisted: nobody's (see above)
    assert set(listed) <= written and len(written - set(listed)) <= (0 if final else 1 if signum == "SIGTERM" else 2)
    for name, src in listed.items():
        assert name == src.stem + ".npy" and np.load(out / name).shape[1] == 1 + sf.info(src).frames // 512


def test_features_leaves_sigterm_alone_where_its_handling_was_chosen(tmp_path, monkeypatch):
    import signal

    src = _tone(tmp_path / "a.wav", 0.3)
    seen = []
    monkeypatch.setattr(features, "extract_files", lambda *a, **k: seen.append(signal.getsignal(signal.SIGTERM))
                        or {"files": [], "skipped_existing": [], "errors": []})
    before = signal.getsignal(signal.SIGTERM)
    try:
        for chosen in (signal.SIG_IGN, lambda *a: None):  # inherited 'ignore', an embedding program's handler
            signal.signal(signal.SIGTERM, chosen)
            features.main([str(src), "--out", str(tmp_path / "o"), "--quiet"])
            assert seen[-1] is chosen and signal.getsignal(signal.SIGTERM) is chosen
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        features.main([str(src), "--out", str(tmp_path / "o"), "--quiet"])
        assert seen[-1] is features._on_sigterm and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("batch_size", [0, 2.5, "4", True])
def test_features_bad_batch_size_names_it(tmp_path, batch_size):
    from ser_gpu.errors import ParameterError

    with pytest.raises(ParameterError, match=f"batch_size must be a positive integer, got {batch_size!r}"):
        features.extract_files([str(_tone(tmp_path / "a.wav", 0.5))], str(tmp_path / "out"), batch_size=batch_size)
    assert not (tmp_path / "out").exists()


def test_features_summary_is_merged_not_replaced(tmp_path):
    out = tmp_path / "out"
    one, two = _tone(tmp_path / "one.wav", 0.5), _tone(tmp_path / "two.wav", 0.6)
    assert _features([str(one), "--out", str(out)]) == 0
    assert _features([str(two), "--out", str(out)]) == 0
    summary = _strict_json(out / "summary.json")
    assert sorted(Path(f["output"]).name for f in summary["files"]) == ["one.npy", "two.npy"]
    # a run that writes nothing keeps the record too
    assert _features([str(one), "--out", str(out)]) == 0
    assert len(_strict_json(out / "summary.json")["files"]) == 2


def test_features_never_clobbers_a_users_own_summary(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "summary.json"
    mine.write_text('{"my": "notes"}')
    assert _features([str(_tone(tmp_path / "a.wav", 0.5)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "summary.json" in err and "Traceback" not in err
    assert mine.read_text() == '{"my": "notes"}'
    assert not list(out.glob("*.npy"))  # refused before any work


def test_features_refuses_to_mix_settings_in_one_summary(tmp_path, capsys):
    out = tmp_path / "out"
    a = _tone(tmp_path / "a.wav", 0.5)
    assert _features([str(a), "--out", str(out)]) == 0
    assert features.main([str(a), "--out", str(out), "--quiet"]) == 2  # tonnetz on now
    assert "tonnetz" in capsys.readouterr().err


def test_features_symlink_loops_give_no_traceback(tmp_path, capsys):
    d = tmp_path / "in"
    _tone(d / "sub" / "a.wav", 0.5)
    os.symlink(d, d / "sub" / "up")  # a directory cycle
    os.symlink(d / "self.wav", d / "self.wav")  # a link to itself
    out = tmp_path / "out"
    assert _features([str(d), "--out", str(out)]) == 0
    assert [Path(f["output"]).name for f in _strict_json(out / "summary.json")["files"]] == ["a.npy"]
    assert _features([str(d / "self.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "self.wav" in err and "link" in err and "Traceback" not in err


def test_m4a_decodes_in_features_and_training_as_in_predict(tmp_path):
    wav = _tone(tmp_path / "src.wav", 0.7)
    data = write_corpus(tmp_path / "corpus", emotions=(1, 3), actors=(1, 2), per=2)
    m4a = tmp_path / "x.m4a"
    ff("-i", str(wav), "-c:a", "aac", str(m4a))
    out = tmp_path / "out"
    assert _features([str(m4a), "--out", str(out)]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["errors"] == [] and len(summary["files"]) == 1
    # the same file under a RAVDESS name is loaded by the training data path
    from ser_gpu.data import load_waveforms, scan_corpus

    target = data / "Actor_01" / "03-01-05-01-01-01-01.m4a"
    target.write_bytes(m4a.read_bytes())
    clips = scan_corpus([data])
    waves, kept = load_waveforms([c for c in clips if c.path == target], cache_dir=tmp_path / "cache",
                                 progress=False)
    assert len(kept) == 1 and waves[0].numel() > 0


# ------------------------------------------------------------------------------------- 2. diverged runs

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), emotions=(1, 3, 5), actors=(1, 2, 3), per=2)


def _train_argv(corpus, out, cache, *extra):
    return ["--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(cache), "--batch-size", "8", "--seed", "0",
            "--recipe", "speech", "--quiet", *extra]


def test_a_diverged_run_stops_with_a_clear_message_and_valid_json(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    code = train_main(_train_argv(corpus, out, tmp_path / "cache", "--lr", "1e6", "--epochs", "3"))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "diverged" in err and "--lr" in err and "Traceback" not in err
    result = _strict_json(out / "result.json")
    assert result["diverged"]["epoch"] == 1  # lr 1e6: the first epoch already (no epoch to keep)
    assert result["best_checkpoint"] is None and result["last_checkpoint"] is None
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_a_run_diverging_later_keeps_its_last_finite_epoch(corpus, tmp_path, capsys, monkeypatch):
    """Epoch 2 ends with NaN weights and a NaN loss: the run stops (exit 3), epoch 2 is not saved, last.pt
    and best.pt hold epoch 1 with finite weights and result.json names them."""
    import ser_gpu.train as train

    real = train._Run.train_epoch

    def poisoned(self):
        row = real(self)
        if len(self.history) == 1:  # the second epoch
            next(p for p in self.model.parameters() if p.is_floating_point()).data.fill_(float("nan"))
            row["train_loss"] = float("nan")
        return row

    monkeypatch.setattr(train._Run, "train_epoch", poisoned)
    out = tmp_path / "run"
    code = train_main(_train_argv(corpus, out, tmp_path / "cache", "--epochs", "3"))
    err = capsys.readouterr().err
    assert code == 3 and "diverged at epoch 2" in err, err
    result = _strict_json(out / "result.json")
    assert result["diverged"]["epoch"] == 2
    for key, name in (("best_checkpoint", "best.pt"), ("last_checkpoint", "last.pt")):
        assert Path(result[key]) == out / name and (out / name).is_file(), (key, result[key])
        stored = load_checkpoint(out / name)
        assert stored["epoch"] == 1  # only the finite epoch was saved
        assert all(torch.isfinite(v).all() for v in stored["model_state"].values() if v.is_floating_point())


def test_save_json_writes_non_finite_numbers_as_null(tmp_path):
    from ser_gpu._atomic import save_json

    save_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert _strict_json(tmp_path / "x.json") == {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_atomic_output_replaces_only_when_the_writer_finishes(tmp_path):
    from ser_gpu._atomic import atomic_output

    target = tmp_path / "x.wav"
    target.write_bytes(b"the user's file")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".x.wav.") and tmp.name.endswith(".tmp")
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"the user's file" and sorted(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_writes_take_the_longest_names_the_file_system_takes(tmp_path):
    from ser_gpu._atomic import atomic_link, atomic_output, save_json

    long = "x" * 245 + ".json"  # 250 bytes: the temporary name's dot, random part and .tmp once overflowed 255
    save_json(tmp_path / long, {"a": 1})
    with atomic_output(tmp_path / ("w" * 246 + ".wav")) as tmp:
        tmp.write_bytes(b"RIFF")
    atomic_link(tmp_path / long, tmp_path / ("l" * 250))
    assert _strict_json(tmp_path / ("l" * 250)) == {"a": 1}
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [250, 250, 250]
    # a long name of multi-byte characters is cut between characters: the temporary name is valid UTF-8
    from ser_gpu._atomic import _temporary_beside

    fd, tmp = _temporary_beside(tmp_path / ("x" + "\u00e9" * 121 + ".json"))
    os.close(fd)
    os.fsencode(Path(tmp).name).decode("utf-8")  # strict: a lone half of a character would raise
    os.unlink(tmp)


def test_a_skipped_test_split_is_said(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    result = train_model(epochs=1, data_dirs=[str(corpus)], out=str(out), cache_dir=str(tmp_path / "cache"),
                         test_fraction=0.0, **FAST)
    assert "test" not in result and "no test clips" in result["test_skipped"]
    assert "no test clips" in _strict_json(out / "result.json")["test_skipped"]
    from ser_gpu.train import _print_summary

    _print_summary(result)
    assert "no test evaluation" in capsys.readouterr().out


def test_checkpoints_with_non_finite_weights_are_refused(corpus, tmp_path, capsys):
    ckpt = _random_checkpoint(tmp_path / "nan.pt", nan=True)
    with pytest.raises(CheckpointError, match=r"nan\.pt.*NaN or infinite"):
        predict.Predictor(ckpt, device="cpu")
    wav = _tone(tmp_path / "a.wav", 1.0)
    assert predict.main([str(wav), "--checkpoint", str(ckpt), "--quiet", "--device", "cpu"]) == 2
    assert "NaN" in capsys.readouterr().err
    code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--cache-dir", str(tmp_path / "c"),
                          "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "nan.pt" in err and "NaN" in err


# --------------------------------------------------------------------------------------------- 3. resume

@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), **FAST)
    return out, cache


@pytest.mark.parametrize("extra, named", [
    (["--lr", "0.5"], "lr (--lr): the run has"),
    (["--batch-size", "4"], "batch_size (--batch-size): the run has"),
    (["--seed", "3"], "seed (--seed): the run has"),
    (["--split", "actor"], "split (--split): the run has"),
])
def test_resume_refuses_other_settings_naming_them(corpus, run_dir, extra, named, capsys):
    """Each difference named by its setting and its flag (the message serves train_model and the command),
    and so is what may change (progress is --quiet's opposite)."""
    out, cache = run_dir
    before = (out / "last.pt").read_bytes()
    argv = ["--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(cache), "--resume", "--epochs", "2",
            "--quiet", *extra]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "resume" in err and "Traceback" not in err
    assert "only epochs (--epochs), device (--device), progress (--quiet), out (--out), cache_dir (--cache-dir), " \
           "prefetch (--no-prefetch), compile_model (--compile) may change" in err, err
    assert (out / "last.pt").read_bytes() == before


def test_resume_refuses_another_data_dir(run_dir, tmp_path, capsys):
    out, cache = run_dir
    other = write_corpus(tmp_path / "other", emotions=(2, 4), actors=(1, 2), per=2)
    assert train_main(["--data-dir", str(other), "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 2
    assert "data_dirs (--data-dir): the run has" in capsys.readouterr().err


def test_resume_and_overwrite_together_are_refused(corpus, run_dir, capsys):
    out, cache = run_dir
    before = (out / "last.pt").read_bytes()
    assert train_main(_train_argv(corpus, out, cache, "--resume", "--overwrite", "--epochs", "2")) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == before


def test_resume_accepts_epochs_device_and_quiet_alone(corpus, run_dir, tmp_path):
    out, cache = run_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.pt").write_bytes((out / "last.pt").read_bytes())
    assert train_main(["--out", str(copy), "--cache-dir", str(cache), "--resume", "--epochs", "2", "--device", "cpu",
                       "--quiet"]) == 0
    assert load_checkpoint(copy / "last.pt")["epoch"] == 2
    assert_resumed(load_checkpoint(out / "last.pt")["state"]["history"],
                   load_checkpoint(copy / "last.pt")["state"]["history"])


def test_resume_accepts_how_the_run_executes(run_dir, tmp_path):
    """--no-prefetch (same draws) and --compile (same model) change how a run executes, not what it
    draws: a run stored with the defaults resumes with them."""
    out, cache = run_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.pt").write_bytes((out / "last.pt").read_bytes())
    assert train_main(["--out", str(copy), "--cache-dir", str(cache), "--resume", "--epochs", "2", "--no-prefetch",
                       "--quiet"]) == 0
    payload = load_checkpoint(copy / "last.pt")
    assert payload["epoch"] == 2 and payload["train_config"]["prefetch"] is False
    assert_resumed(load_checkpoint(out / "last.pt")["state"]["history"], payload["state"]["history"])


def test_resume_removes_stale_temporary_files(run_dir, tmp_path):
    out, cache = run_dir
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "last.pt").write_bytes((out / "last.pt").read_bytes())
    stale = [copy / ".last.pt.k1l2m3.tmp", copy / ".metrics.json.abc.tmp"]
    for s in stale:
        s.write_bytes(b"half a save")
    mine = copy / ".my_notes.tmp"
    mine.write_text("not ours")
    assert train_main(["--out", str(copy), "--cache-dir", str(cache), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert not any(s.exists() for s in stale)
    assert mine.exists()


# ---------------------------------------------------------------------------------------- 4. output paths

def test_predict_plot_path_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    ckpt = _random_checkpoint(tmp_path / "r.pt")
    wav = _tone(tmp_path / "a.wav", 1.0)
    monkeypatch.setattr(predict.Predictor, "predict", lambda *a, **k: pytest.fail("predicted before the check"))
    assert predict.main([str(wav), "--checkpoint", str(ckpt), "--plot", str(tmp_path / "nowhere" / "x.png"),
                         "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--plot" in err and "nowhere" in err and "Traceback" not in err


def test_evaluate_out_is_checked_before_the_work(corpus, tmp_path, capsys, monkeypatch):
    import ser_gpu.data

    ckpt = _random_checkpoint(tmp_path / "r.pt")
    monkeypatch.setattr(ser_gpu.data, "load_waveforms", lambda *a, **k: pytest.fail("evaluated before the check"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in ("/proc/ser_gpu_x", str(blocker / "sub")):
        code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--out", bad, "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and bad in err and "Traceback" not in err


def test_evaluate_out_protects_an_existing_report(corpus, tmp_path, capsys):
    ckpt = _random_checkpoint(tmp_path / "r.pt")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.txt").write_text("my report")
    argv = ["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--out", str(out), "--cache-dir",
            str(tmp_path / "c"), "--quiet", "--device", "cpu"]
    assert evaluate.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "report.txt").read_text() == "my report"
    assert evaluate.main(argv + ["--overwrite"]) == 0
    assert (out / "report.txt").read_text() != "my report"


def test_train_out_does_not_overwrite_a_users_result_json(corpus, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "result.json").write_text('{"my": "experiment"}')
    assert train_main(_train_argv(corpus, out, tmp_path / "cache", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert "result.json" in err and "--overwrite" in err
    assert (out / "result.json").read_text() == '{"my": "experiment"}'


# ------------------------------------------------------------------------------- 5. bounded plan caches

def test_constant_q_caches_stay_bounded_over_many_tunings():
    """Every cache keyed by tuning is bounded, and what one tuning keeps is small (the whole 0.01 grid
    of estimated tunings, 100 values, then fits in ~23 MB); no cache is keyed by a batch's set of tunings
    (the stack of the whole grid's banks is one entry per configuration, device and dtype)."""
    import functools

    import ser_gpu.functional.constantq as cq
    from ser_gpu.functional import chroma_cqt, chroma_stft, filters

    y = torch.randn(3, 4096)
    for k in range(40):  # as many estimated tunings as a long file meets, three per batch
        tuning = torch.tensor([-0.4 + 0.02 * k, 0.01 * k - 0.2, 0.1])
        chroma_cqt(y, sr=22050, tuning=tuning)
        chroma_stft(y=y, sr=22050, tuning=float(tuning[0]))
    caches = [getattr(cq, name) for name in dir(cq) if isinstance(getattr(cq, name), functools._lru_cache_wrapper)]
    caches.append(filters._chroma_numpy)
    for fn in caches:
        info = fn.cache_info()
        assert info.maxsize is not None and info.maxsize <= 128, (fn.__name__, info)
    assert not hasattr(cq._band_tensors, "cache_info") or cq._band_tensors.cache_info().maxsize <= 4
    assert cq._grid_tensors.cache_info().maxsize <= 4  # whole-grid stacks (~23 MB each): a few configurations
    assert not hasattr(cq._plan, "cache_info")  # the float64 numpy banks are not kept next to the tensors
    assert len(filters._DEVICE_CACHE) <= filters._DEVICE_CACHE.size <= 128
    plan_args = (22050.0, 512, float(cq._C1), 7 * 36, 36, 0.1, 1.0, 1, 0.01, "hann", True)
    kept = cq._plan_tensors(plan_args, "cpu", torch.float32)
    held = sum(b.numel() * b.element_size() for b in kept.banks) + kept.gain.numel() * kept.gain.element_size()
    assert held < 300_000, held  # bytes kept per tuning value (was ~3 MB, then ~0.78 MB with the numpy banks)


def test_device_filter_bank_cache_drops_the_least_recently_used(monkeypatch):
    """The device cache of filter banks is an LRU: full, it drops the bank unused longest, not all of them."""
    from ser_gpu.functional import filters

    monkeypatch.setattr(filters, "_DEVICE_CACHE", type(filters._DEVICE_CACHE)(3))
    banks = {t: filters.chroma(sr=22050, n_fft=512, tuning=t) for t in (0.0, 0.1, 0.2)}
    assert filters.chroma(sr=22050, n_fft=512, tuning=0.0) is banks[0.0]  # a hit; 0.1 is now the oldest
    filters.chroma(sr=22050, n_fft=512, tuning=0.3)
    assert len(filters._DEVICE_CACHE) == 3
    assert filters.chroma(sr=22050, n_fft=512, tuning=0.0) is banks[0.0]
    assert filters.chroma(sr=22050, n_fft=512, tuning=0.2) is banks[0.2]
    rebuilt = filters.chroma(sr=22050, n_fft=512, tuning=0.1)
    assert rebuilt is not banks[0.1] and torch.equal(rebuilt, banks[0.1])


# -------------------------------------------------------------------------------------------- 6. smaller

def test_an_absurd_max_frames_in_a_checkpoint_is_a_clear_error(tmp_path):
    from ser_gpu.transforms.features import FeatureConfig

    fc = FeatureConfig(max_frames=None, tonnetz=False).to_dict()
    fc["max_frames"] = 100_000_000
    ckpt = _random_checkpoint(tmp_path / "big.pt", feature_config=fc)
    with pytest.raises(CheckpointError, match=r"big\.pt.*max_frames=100000000"):
        predict.Predictor(ckpt, device="cpu")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def test_a_code_running_pickle_is_refused_as_unsafe(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ser_gpu.checkpoint", "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "evil.pt" in message and "unsafe" in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert "corrupt" not in message


def test_a_plain_pickle_never_suggests_disabling_the_guard(tmp_path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(_RunsCode(), protocol=4))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "False" not in str(info.value)


def test_a_second_training_on_one_out_is_refused(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = _lock_holder(out)
    try:
        assert train_main(_train_argv(corpus, out, tmp_path / "cache", "--epochs", "1")) == 2
        err = capsys.readouterr().err
        assert "in use" in err and str(holder.pid) in err
        assert not (out / "last.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    # its process is gone (killed: no release ran, the lock file is left behind): the run goes ahead
    assert json.loads((out / ".lock").read_text())["pid"] == holder.pid
    assert train_main(_train_argv(corpus, out, tmp_path / "cache", "--epochs", "1")) == 0
    assert (out / "last.pt").exists() and not (out / ".lock").exists()


def _lock_holder(directory: Path) -> subprocess.Popen:
    """A process that takes ``directory``'s run lock, says so on stdout, and sleeps."""
    code = ("import sys, time; from ser_gpu._lock import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_lock_errors_are_reported_and_never_keep_the_descriptor(tmp_path, monkeypatch):
    import errno

    from ser_gpu import _lock
    from ser_gpu.errors import ParameterError

    # a lock file this process may not open (another user's, left by a killed run): a ParameterError naming it
    (tmp_path / ".lock").mkdir()  # open(O_RDWR) fails on a directory for every user, root included
    with pytest.raises(ParameterError, match=r"cannot open the lock file .*\.lock"):
        _lock.RunLock(tmp_path).acquire()
    (tmp_path / ".lock").rmdir()
    # a failure after the lock was taken (a full disk at the write) closes the descriptor: the lock is free again
    opened = []
    real_open = os.open
    monkeypatch.setattr(_lock.os, "open", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    monkeypatch.setattr(_lock.os, "pwrite", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError, match="No space"):
        _lock.RunLock(tmp_path).acquire()
    with pytest.raises(OSError):
        os.fstat(opened[-1])  # closed
    monkeypatch.undo()
    with _lock.RunLock(tmp_path) as lock:
        assert lock.held


def test_a_file_system_without_locks_runs_unlocked_and_says_so(corpus, tmp_path, monkeypatch):
    import errno

    from ser_gpu import _lock

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_lock.fcntl, "flock", refuse)
    lock = _lock.RunLock(tmp_path)
    with pytest.warns(RuntimeWarning, match="cannot lock .*No locks available.*would not be refused"):
        lock.acquire()
    assert not lock.held
    lock.release()
    # a training there goes on, and leaves another run's temporary save files alone (it cannot know whose they are)
    out = tmp_path / "run"
    out.mkdir()
    pending = out / ".last.pt.abc123.tmp"
    pending.write_bytes(b"another run's save in progress")
    with pytest.warns(RuntimeWarning, match="cannot lock"):
        assert train_main(_train_argv(corpus, out, tmp_path / "cache", "--epochs", "1")) == 0
    assert pending.read_bytes() == b"another run's save in progress" and (out / "last.pt").exists()


_RACE = """
import sys
from ser_gpu._lock import RunLock
from ser_gpu.errors import ParameterError
lock = RunLock(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # go
try:
    lock.acquire()
    print("held", flush=True)
except ParameterError:
    print("refused", flush=True)
sys.stdin.read()  # the holder keeps the lock until every answer is in
lock.release()
"""


@pytest.mark.parametrize("round_", range(2))
def test_runs_started_together_on_a_stale_lock_get_it_once(tmp_path, round_):
    # a lock file left by a killed run; several runs start at once: exactly one may take it over (the check of
    # the stale owner and its removal were two steps, and two competitors could both end up holding the lock)
    import socket

    (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 1}))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(6)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 6
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        answers = sorted(p.stdout.readline().strip() for p in procs)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    assert answers == ["held"] + ["refused"] * 5, answers
    assert not (tmp_path / ".lock").exists()


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    """... and the --out directories the run created are gone again (an empty runs/t1/ was left behind); one
    that existed before stays, as does one that holds anything."""
    from ser_gpu.errors import ParameterError

    out = tmp_path / "runs" / "run"
    with pytest.raises(ParameterError):
        train_model(epochs=1, data_dirs=[str(tmp_path / "missing")], out=str(out), **FAST)
    assert not (tmp_path / "runs").exists()
    out.mkdir(parents=True)
    with pytest.raises(ParameterError):
        train_model(epochs=1, data_dirs=[str(tmp_path / "missing")], out=str(out), **FAST)
    assert out.is_dir() and not (out / ".lock").exists()
    with pytest.raises(CheckpointError, match="cannot resume, no last.pt"):
        train_model(epochs=1, out=str(tmp_path / "other"), resume=True, **FAST)
    assert not (tmp_path / "other").exists()
    with pytest.raises(ParameterError):  # mkdir(parents=True) of q/../z creates q and z
        train_model(epochs=1, data_dirs=[str(tmp_path / "missing")], out=str(tmp_path / "q" / ".." / "z"), **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_predict_warns_about_silent_and_too_short_clips(tmp_path, capsys):
    ckpt = _random_checkpoint(tmp_path / "r.pt")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(2 * SR, dtype=np.float32), SR)
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.5], dtype=np.float32), SR)
    speech = tmp_path / "speech.wav"
    sf.write(speech, np.concatenate([clip(2, 1, 0, seconds=1.5)]), SR)
    r = predict.predict_file(silent, ckpt, device="cpu")
    assert any("silent" in w for w in r["warnings"])
    r = predict.predict_file(one, ckpt, device="cpu")
    assert any("s of sound" in w for w in r["warnings"])
    # a 0.18 s tone is all sound: its frames span up to a hop (23 ms) more than its samples, which the warning
    # said ("only 0.19 s of sound (of 0.18 s)")
    tone = tmp_path / "tone.wav"
    sf.write(tone, (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(0.18 * SR)) / SR)).astype(np.float32), SR)
    (note,) = predict.predict_file(tone, ckpt, device="cpu")["warnings"]
    assert note.startswith("only 0.18 s of sound (of 0.18 s) after trimming silence"), note
    assert predict.predict_file(speech, ckpt, device="cpu")["warnings"] == []
    assert predict.main([str(silent), str(speech), "--checkpoint", str(ckpt), "--quiet", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "silent.wav" in captured.err and "speech.wav" not in captured.err


def test_features_and_train_check_out_before_the_work(corpus, tmp_path, capsys):
    wav = _tone(tmp_path / "a.wav", 0.5)
    assert _features([str(wav), "--out", "/proc/ser_gpu_x"]) == 2
    assert "/proc/ser_gpu_x" in capsys.readouterr().err
    assert train_main(_train_argv(corpus, "/proc/ser_gpu_x", tmp_path / "cache", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert "/proc/ser_gpu_x" in err and "Traceback" not in err
