"""python -m ser_gpu.train end to end on a tiny corpus written by the test, resume, and bad inputs."""

from __future__ import annotations

import json
import warnings

import pytest
import soundfile as sf
import torch

from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.errors import ParameterError
from ser_gpu.train import TrainConfig, main, train_model

from tests.conftest import assert_resumed
from tests.tiny_corpus import FAST, SR, write_corpus
from tests.tiny_corpus import clip as _clip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    result = train_model(epochs=3, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), **FAST)
    return out, cache, result


def test_run_writes_checkpoints_metrics_and_plot(trained):
    out, _, result = trained
    for name in ("best.pt", "last.pt", "metrics.csv", "metrics.json", "curves.png", "result.json"):
        assert (out / name).is_file(), name
    assert result["epochs_run"] == 3
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    csv_lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("epoch,")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_result_says_where_the_run_spent_its_time(trained):
    """result.json's "seconds": the host wall time of each part of the run, disjoint parts within the total;
    "epochs" is the sum of the epochs' own epoch_seconds."""
    from ser_gpu.train import PHASES

    out, _, result = trained
    seconds = json.loads((out / "result.json").read_text())["seconds"]
    assert seconds == result["seconds"] and list(seconds) == list(PHASES)
    assert "test_skipped" in result and seconds["test"] == 0.0  # the random split has no test clips
    assert all(v > 0 for k, v in seconds.items() if k != "test"), seconds  # each other part ran
    assert seconds["epochs"] == pytest.approx(sum(h["epoch_seconds"] for h in result["history"]), rel=1e-9)
    assert sum(v for k, v in seconds.items() if k != "total") <= seconds["total"]


def test_checkpoint_loads_weights_only_with_every_config(trained):
    out, _, _ = trained
    payload = torch.load(out / "last.pt", weights_only=True)
    assert payload["epoch"] == 3
    assert payload["labels"][0] == "neutral" and len(payload["labels"]) == 8
    assert payload["feature_config"]["tonnetz"] is False
    assert TrainConfig.from_dict(payload["train_config"]).epochs == 3
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == 3  # select='last' (the speech recipe): the last epoch


def test_best_pt_is_a_model_and_last_pt_resumes(corpus, trained, tmp_path, capsys):
    """best.pt holds the model without the optimiser and scheduler states (nothing resumes from it; a third
    of last.pt's bytes for these weights); last.pt holds them; a best.pt put in last.pt's place is refused
    by --resume, naming the missing key, and left as it was."""
    out, cache, _ = trained
    best, last = (torch.load(out / name, weights_only=True) for name in ("best.pt", "last.pt"))
    assert best["optimizer_state"] is None and best["scheduler_state"] is None
    assert isinstance(last["optimizer_state"], dict) and isinstance(last["scheduler_state"], dict)
    assert last["optimizer_state"]["state"]  # AdamW's moments, one entry per parameter
    assert best["state"]["history"] == last["state"]["history"]  # the run's record is kept in both
    assert (out / "best.pt").stat().st_size < (out / "last.pt").stat().st_size / 2
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((out / "best.pt").read_bytes())
    code = main(["--data-dir", str(corpus), "--out", str(run), "--cache-dir", str(cache), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not a resumable training checkpoint" in err and "optimizer_state" in err
    assert (run / "last.pt").read_bytes() == (out / "best.pt").read_bytes()


def test_resume_equals_an_uninterrupted_run(corpus, trained, tmp_path):
    full_out, cache, _ = trained
    out = tmp_path / "run"
    first = train_model(epochs=1, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), **FAST)
    resumed = train_model(epochs=3, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), resume=True,
                          **FAST)
    full = json.loads((full_out / "metrics.json").read_text())["epochs"]
    assert resumed["epochs_run"] == 3
    assert_resumed(first["history"], resumed["history"])
    for a, b in zip(full, resumed["history"]):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["epoch"], key)
    w_full = torch.load(full_out / "last.pt", weights_only=True)["model_state"]
    w_resumed = torch.load(out / "last.pt", weights_only=True)["model_state"]
    for k in w_full:
        torch.testing.assert_close(w_full[k], w_resumed[k], rtol=1e-5, atol=1e-6)


def test_resume_with_augment_copies_equals_an_uninterrupted_run(corpus, trained, tmp_path):
    """The copies are drawn before the first epoch from the seed: a resumed run rebuilds the same ones."""
    _, cache, _ = trained
    settings = dict(data_dirs=[str(corpus)], cache_dir=str(cache), augment_copies=2, **FAST)
    full = train_model(epochs=3, out=str(tmp_path / "full"), **settings)
    first = train_model(epochs=1, out=str(tmp_path / "run"), **settings)
    resumed = train_model(epochs=3, out=str(tmp_path / "run"), resume=True, **settings)
    assert resumed["epochs_run"] == 3
    assert_resumed(first["history"], resumed["history"])
    for a, b in zip(full["history"], resumed["history"]):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["epoch"], key)
    w_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model_state"]
    w_resumed = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model_state"]
    for k in w_full:
        torch.testing.assert_close(w_full[k], w_resumed[k], rtol=1e-5, atol=1e-6)


def test_resume_of_a_finished_run_says_there_is_nothing_to_train(corpus, trained, tmp_path, capsys):
    """--resume with --epochs at or below the epochs run trained nothing and said nothing (the test was scored
    again and '3 epochs' printed); it warns, naming the epoch and how to go on. One epoch prints '1 epoch'."""
    from ser_gpu.train import _print_summary

    import shutil

    out, cache = tmp_path / "done", trained[1]
    shutil.copytree(trained[0], out)  # the module's run stays as it is for the other tests
    with pytest.warns(UserWarning, match=r"last.pt: nothing to train: it holds epoch 3 already and epochs=2 \(give "
                                         r"more epochs, e.g. --epochs 13, to go on\)"):
        again = train_model(epochs=2, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), resume=True,
                            **FAST)
    assert again["epochs_run"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run that goes on does not warn
        train_model(epochs=1, data_dirs=[str(corpus)], out=str(tmp_path / "one"), cache_dir=str(cache), **FAST)
        train_model(epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / "one"), cache_dir=str(cache), resume=True,
                    **FAST)
    # an early-stopped run (select by validation loss, stop after 1 epoch without a better one) trains nothing more
    settings = dict(data_dirs=[str(corpus)], out=str(tmp_path / "early"), cache_dir=str(cache), **FAST)
    early = train_model(epochs=20, select="loss", early_stopping=1, **settings)
    assert early["stopped_early"] and early["epochs_run"] < 20
    n = early["epochs_run"]
    with pytest.warns(UserWarning, match=rf"last.pt: nothing to train: the run stopped early at epoch {n}, 1 epoch "
                                         r"without a better validation score \(early_stopping=1, which a resumed run "
                                         r"keeps\)"):
        assert train_model(epochs=20, select="loss", early_stopping=1, resume=True, **settings)["epochs_run"] == n
    capsys.readouterr()
    _print_summary({"epochs_run": 1, "stopped_early": False, "out": "o"})
    _print_summary({"epochs_run": 2, "stopped_early": True, "out": "o"})
    assert capsys.readouterr().out == "1 epoch; checkpoints in o\n2 epochs (stopped early); checkpoints in o\n"


def test_cli_augment_copies_bad_values(corpus, tmp_path, capsys):
    for bad, said in (["--augment-copies", "0"], "got 0"), (["--augment-copies", "2", "--no-augment"], "augment is False"):
        code = main(["--data-dir", str(corpus), "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet", *bad])
        assert code == 2
        err = capsys.readouterr().err
        assert "augment_copies" in err and said in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten(corpus, trained, capsys):
    out, cache, _ = trained
    before = (out / "last.pt").read_bytes()
    code = main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(cache), "--epochs", "1", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already holds a training run" in err and "--resume" in err and "Traceback" not in err
    assert (out / "last.pt").read_bytes() == before


def test_cli_runs_and_prints_summary(corpus, tmp_path, capsys):
    code = main(["--data-dir", str(corpus), "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                 "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--split", "actor", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 epoch;" in out and "best epoch 1" in out and "test (held out" in out
    stored = load_checkpoint(tmp_path / "run" / "best.pt")
    assert stored["train_config"]["recipe"] == "clip" and stored["model_config"]["clip_norm"]  # the default recipe


# ------------------------------------------------------------------------------------------ bad input

def test_empty_data_dir_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "empty" in err and "Traceback" not in err


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    code = main(["--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err and "Traceback" not in err


def test_no_valid_file_names(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    for name in ("hello.wav", "03-01-09-01-01-01-01.wav"):
        sf.write(d / name, _clip(0, 1, 0), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["--data-dir", str(d), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err and "Traceback" not in err


def test_unreadable_file_among_good_ones_is_skipped_and_counted(corpus, tmp_path):
    data = write_corpus(tmp_path / "data", actors=(1, 2), per=2)
    bad = data / "Actor_01" / "03-01-02-01-01-01-01.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.warns(UserWarning, match="skipped 1 of 17 audio file"):
        result = train_model(epochs=1, data_dirs=[str(data)], out=str(tmp_path / "run"),
                             cache_dir=str(tmp_path / "cache"), **FAST)
    assert result["epochs_run"] == 1
    assert sum(result["split_sizes"].values()) == 16  # 17 files, the broken one skipped
    assert bad.exists()  # inputs are never touched


def test_resume_without_checkpoint(corpus, tmp_path, capsys):
    code = main(["--data-dir", str(corpus), "--out", str(tmp_path / "run"), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "last.pt" in err and "Traceback" not in err


def test_resume_from_corrupt_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"\x00garbage" * 10)
    code = main(["--data-dir", str(corpus), "--out", str(out), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "last.pt" in err and "Traceback" not in err
    assert (out / "last.pt").read_bytes() == b"\x00garbage" * 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"),
    (dict(lr=-1.0), "lr"),
    (dict(batch_size=0), "batch_size"),
    (dict(split="kfold"), "split"),
    (dict(p_pitch=1.5), "p_pitch"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(n_folds=1), "n_folds"),
    (dict(normalize="global"), "normalize"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TrainConfig(**kwargs)


def test_unknown_config_key():
    with pytest.raises(ParameterError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_no_data_dir_uses_the_synthetic_corpus(tmp_path, monkeypatch, capsys):
    """Without --data-dir the built-in corpus is generated (here a small one, for speed) and said so."""
    import functools

    from ser_gpu.data import synthetic

    calls = []
    small = functools.partial(synthetic.make_corpus, n_actors=3, n_clips=1)
    monkeypatch.setattr(synthetic, "make_corpus", lambda root, **kw: calls.append(root) or small(root, **kw))
    code = main(["--synthetic-dir", str(tmp_path / "syn"), "--out", str(tmp_path / "run"), "--cache-dir",
                 str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8"])
    err = capsys.readouterr().err
    assert code == 0
    assert calls == [tmp_path / "syn"]
    assert "synthetic corpus" in err and str(tmp_path / "syn") in err
    assert len(list((tmp_path / "syn").rglob("03-01-*.wav"))) == 24


@pytest.mark.parametrize("interval, drawn", [(0.0, [1, 2, 3]), (1e9, [1, 3])])
def test_curves_are_redrawn_after_the_interval_and_when_the_training_ends(corpus, trained, tmp_path, monkeypatch,
                                                                         interval, drawn):
    """curves.png after the first epoch, then once CURVES_INTERVAL_S have passed since its last drawing, and
    (however soon) when the training ends; metrics.csv/json after every epoch."""
    import ser_gpu.train as train

    _, cache, _ = trained
    shown, plot = [], train.plot_curves
    monkeypatch.setattr(train, "CURVES_INTERVAL_S", interval)
    monkeypatch.setattr(train, "plot_curves", lambda history, path: shown.append(len(history)) or plot(history, path))
    train_model(epochs=3, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(cache), **FAST)
    assert shown == drawn
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_checkpoint_that_fails_in_the_background_stops_the_run(corpus, trained, tmp_path, monkeypatch):
    """With checkpoints written by a background thread while the next epoch runs (on CUDA; here forced on
    the CPU), a failed write is raised by the run (CheckpointError naming the file), the earlier epochs'
    files stay, and the run directory is not left locked: a resumed run goes on from the last written epoch
    and ends where an uninterrupted run does (the snapshots held the state of their epoch)."""
    import ser_gpu.checkpoint as checkpoint
    import ser_gpu.train as train
    from ser_gpu.errors import CheckpointError

    full_out, cache, _ = trained
    monkeypatch.setattr(train, "BACKGROUND_CHECKPOINT_DEVICES", ("cpu", "cuda"))
    real, out = checkpoint._write, tmp_path / "run"
    written, disk_full = [], [True]

    def failing(path, payload, also=()):
        if disk_full[0] and path.name == "last.pt" and payload["epoch"] == 2:
            raise OSError(28, "No space left on device")
        written.append((path.name, payload["epoch"]))
        return real(path, payload, also)

    monkeypatch.setattr(checkpoint, "_write", failing)
    settings = dict(data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), **FAST)
    with pytest.raises(CheckpointError, match=r"last\.pt: could not be written .*No space left on device"):
        train_model(epochs=3, **settings)
    assert ("last.pt", 1) in written
    stored = load_checkpoint(out / "last.pt")
    assert stored["epoch"] == 1
    disk_full[0] = False
    resumed = train_model(epochs=3, resume=True, **settings)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert_resumed(stored["state"]["history"], resumed["history"])
    assert written[-1] == ("last.pt", 3)  # the resumed run wrote in the background too
    w_full = torch.load(full_out / "last.pt", weights_only=True)["model_state"]
    w_resumed = torch.load(out / "last.pt", weights_only=True)["model_state"]
    for k in w_full:  # the tolerance of test_resume_equals_an_uninterrupted_run
        torch.testing.assert_close(w_full[k], w_resumed[k], rtol=1e-5, atol=1e-6)


def test_background_checkpoints_hold_the_state_of_their_epoch(corpus, trained, tmp_path, monkeypatch, device):
    """The writer's thread writes last.pt (on CUDA by default; forced on the CPU here), and last.pt holds the
    model and optimiser of the last epoch exactly: what the run holds when it ends (SER_GPU_DUMP_FINAL_STATE)."""
    import threading

    import ser_gpu.checkpoint as checkpoint
    import ser_gpu.train as train

    _, cache, _ = trained
    real, threads = checkpoint._write, set()
    monkeypatch.setattr(checkpoint, "_write",
                        lambda path, payload, also=(): threads.add(threading.current_thread().name)
                        or real(path, payload, also))
    monkeypatch.setattr(train, "BACKGROUND_CHECKPOINT_DEVICES", ("cpu", "cuda"))
    monkeypatch.setenv("SER_GPU_DUMP_FINAL_STATE", str(tmp_path / "dump"))
    result = train_model(epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(cache),
                         device=device, **FAST)
    assert result["epochs_run"] == 2 and result["seconds"]["checkpoints"] > 0
    assert len(threads) == 1 and threading.current_thread().name not in threads
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    final = torch.load(tmp_path / "dump" / "rank0.pt", weights_only=True, map_location="cpu")
    assert last["epoch"] == 2
    for key, value in final["model"].items():
        assert torch.equal(last["model_state"][key], value), key
    for index, state in final["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(last["optimizer_state"]["state"][index][name], value), (index, name)


def test_adamw_is_the_fused_one_and_a_resumed_run_keeps_its_checkpoints(corpus, trained, tmp_path):
    """New runs step with torch's fused AdamW (FUSED_ADAMW_DEVICES); a run written before it (param_groups
    without fused) goes on with the implementation it was written with."""
    full_out, cache, _ = trained
    last = torch.load(full_out / "last.pt", weights_only=True)
    assert [g["fused"] for g in last["optimizer_state"]["param_groups"]] == [True]
    out = tmp_path / "run"
    settings = dict(data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), **FAST)
    train_model(epochs=1, **settings)
    payload = torch.load(out / "last.pt", weights_only=True)
    for group in payload["optimizer_state"]["param_groups"]:
        group["fused"] = None  # as an AdamW made without fused= stores it
    torch.save(payload, out / "last.pt")
    train_model(epochs=2, resume=True, **settings)
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2 and [g["fused"] for g in resumed["optimizer_state"]["param_groups"]] == [None]


@pytest.mark.parametrize("select", ["loss", "uar"])
def test_early_stopping_stops_after_exactly_its_patience_and_keeps_the_best_epoch(corpus, trained, tmp_path,
                                                                                    monkeypatch, select):
    """Scripted selection scores (the real losses depend on the machine's last bits): epoch 2 is the best,
    then 2 epochs without improvement stop the run with --early-stopping 2 (epoch 5, better still, is never
    trained); best.pt holds epoch 2, last.pt epoch 4."""
    from ser_gpu.train import _Run

    script = {1: 0.1, 2: 0.9, 3: 0.5, 4: 0.4, 5: 0.95}
    monkeypatch.setattr(_Run, "score", lambda self, row: script[row["epoch"]])
    _, cache, _ = trained
    out = tmp_path / "run"
    result = train_model(epochs=8, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), select=select,
                         early_stopping=2, average_weights=False, **FAST)
    assert result["stopped_early"] and result["epochs_run"] == 4 and result["best_epoch"] == 2
    assert load_checkpoint(out / "best.pt")["epoch"] == 2 and load_checkpoint(out / "last.pt")["epoch"] == 4
