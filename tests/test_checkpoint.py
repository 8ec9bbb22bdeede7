"""The checkpoint format: round trips, weights_only loading, atomic writes and every error case."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import os
import pathlib

import numpy as np
import pytest
import torch
from torch import nn

import ser_gpu
from ser_gpu.errors import CheckpointError, ParameterError
from ser_gpu.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointWriter, load_checkpoint, load_model,
                                save_checkpoint)
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.transforms import FeatureConfig

LABELS = ["neutral", "happy", "sad"]
CONFIG = ModelConfig(n_classes=3, channels=(8, 12, 16), lstm_hidden=8, lstm_layers=2, attention_heads=2,
                     classifier_hidden=8, lstm_dropout=0.0, attention_dropout=0.0, dropout=0.0)
FEATURES = FeatureConfig(max_frames=None).to_dict()


def _trained(seed=0, steps=2):
    """A small model and optimizer after a few AdamW steps (non-trivial weights and BN statistics)."""
    torch.manual_seed(seed)
    model = CNNBiLSTMAttention(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    x, y, lengths = _batch()
    for step in range(steps):
        loss = nn.functional.cross_entropy(model(x, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(1.0 + step)  # a worsening validation loss: the plateau counter and lr change
    return model, opt, sched


def _batch():
    g = torch.Generator().manual_seed(5)
    return torch.randn(3, 68, 11, generator=g), torch.tensor([0, 1, 2]), torch.tensor([11, 6, 1])


def _save(path, model=None, **kwargs):
    model = model if model is not None else _trained()[0]
    args = dict(model=model, model_config=CONFIG.to_dict(), feature_config=FEATURES, labels=LABELS)
    args.update(kwargs)
    return save_checkpoint(path, **args)


def _one_line_error(exc_info, path):
    message = str(exc_info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_same_logits(tmp_path, device):
    model, _, _ = _trained()
    path = _save(tmp_path / "ckpt" / "best.pt", model, epoch=7, metrics={"val_uar": 0.5, "history": [1.0, 0.5]},
                 train_config={"lr": 1e-4, "batch_size": 16})
    assert path == tmp_path / "ckpt" / "best.pt" and path.is_file()
    loaded, payload = load_model(path, device=device, labels=LABELS)
    assert not loaded.training
    assert loaded.config == CONFIG
    x, _, lengths = _batch()
    with torch.no_grad():
        expected = model.eval()(x, lengths)
        got = loaded(x.to(device), lengths.to(device)).cpu()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 if device == "cpu" else 1e-4)
    assert payload["epoch"] == 7 and payload["metrics"] == {"val_uar": 0.5, "history": [1.0, 0.5]}
    assert payload["train_config"] == {"lr": 1e-4, "batch_size": 16}
    assert payload["labels"] == LABELS and payload["feature_config"] == FEATURES
    # an already loaded payload works too
    again, _ = load_model(load_checkpoint(path))
    with torch.no_grad():
        torch.testing.assert_close(again(x, lengths), expected, rtol=0, atol=1e-6)


def test_plain_weights_only_load(tmp_path):
    model = _trained()[0]
    rng = torch.get_rng_state()
    path = _save(tmp_path / "a.pt", model, state={"rng": rng, "bad_epochs": 3})
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"format", "version", "ser_gpu_version", "model_state", "model_config",
                            "feature_config", "labels", "train_config", "epoch", "metrics",
                            "optimizer_state", "scheduler_state", "state"}
    assert payload["format"] == CHECKPOINT_FORMAT == "ser_gpu.checkpoint"
    assert payload["version"] == CHECKPOINT_VERSION == 1
    assert payload["ser_gpu_version"] == ser_gpu.__version__
    assert payload["optimizer_state"] is None and payload["scheduler_state"] is None
    assert payload["train_config"] == {} and payload["metrics"] == {} and payload["epoch"] == 0
    # the configs are JSON-able plain data (tuples stored as lists)
    assert json.loads(json.dumps(payload["model_config"])) == CONFIG.to_dict()
    assert payload["model_config"]["channels"] == [8, 12, 16]
    assert json.loads(json.dumps(payload["feature_config"])) == FEATURES
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in payload["model_state"].values())
    assert torch.equal(payload["state"]["rng"], rng)
    assert payload["state"]["rng"].dtype == torch.uint8


def test_model_config_may_be_a_model_config(tmp_path):
    path = _save(tmp_path / "a.pt", model_config=CONFIG)
    assert load_checkpoint(path)["model_config"] == CONFIG.to_dict()


def test_numpy_scalars_and_enums_become_plain(tmp_path):
    class Split(str, enum.Enum):
        ACTOR = "actor"

    path = _save(tmp_path / "a.pt", metrics={"uar": np.float64(0.25), "n": np.int64(3), "ok": np.bool_(True)},
                 train_config={"split": Split.ACTOR, "betas": (0.9, 0.999)})
    payload = torch.load(path, weights_only=True)
    assert payload["metrics"] == {"uar": 0.25, "n": 3, "ok": True}
    assert type(payload["metrics"]["uar"]) is float and type(payload["metrics"]["n"]) is int
    assert type(payload["train_config"]["split"]) is str and payload["train_config"]["betas"] == (0.9, 0.999)


def test_optimizer_and_scheduler_resume_identically(tmp_path):
    """Saving, reloading into fresh objects and stepping on equals stepping on uninterrupted."""
    model, opt, sched = _trained()
    history = {"train_loss": [1.2, 0.9], "lr": [1e-2, 5e-3]}
    state = {"torch_rng": torch.get_rng_state(), "history": history, "bad_epochs": 1}
    path = _save(tmp_path / "last.pt", model, optimizer=opt, scheduler=sched, epoch=2, state=state)

    model2 = CNNBiLSTMAttention(CONFIG)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    sched2 = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    payload = load_checkpoint(path)
    model2.load_state_dict(payload["model_state"])
    opt2.load_state_dict(payload["optimizer_state"])
    sched2.load_state_dict(payload["scheduler_state"])
    assert payload["state"]["history"] == history and payload["state"]["bad_epochs"] == 1
    assert torch.equal(payload["state"]["torch_rng"], state["torch_rng"])
    assert sched2.state_dict() == sched.state_dict()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(5e-3)

    x, y, lengths = _batch()
    for m, o, s in ((model, opt, sched), (model2, opt2, sched2)):
        m.train()
        loss = nn.functional.cross_entropy(m(x, lengths), y)
        o.zero_grad()
        loss.backward()
        o.step()
        s.step(5.0)
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert sched2.state_dict() == sched.state_dict()


def test_batch_norm_metadata_survives(tmp_path):
    model, _, _ = _trained()
    payload = torch.load(_save(tmp_path / "a.pt", model), weights_only=True)
    assert isinstance(payload["model_state"], collections.OrderedDict)
    assert payload["model_state"]._metadata == model.state_dict()._metadata


# -------------------------------------------------------------------------------------------- atomicity


def test_failed_write_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = _save(tmp_path / "last.pt", epoch=1)
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(path, epoch=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]  # no temporary file left behind


# ------------------------------------------------------------------------------- background writes


def test_writer_writes_a_snapshot_while_the_model_changes(tmp_path, device):
    """writer=: the payload is copied when save_checkpoint returns; later in-place updates of the model,
    the optimiser and the state leave the file alone, which equals a direct save of the same moment."""
    model, opt, sched = _trained()
    model.to(device)
    history = [{"epoch": 1, "loss": 0.5}]
    direct = _save(tmp_path / "direct.pt", model, optimizer=opt, scheduler=sched, state={"history": history})
    writer = CheckpointWriter()
    try:
        path = _save(tmp_path / "background.pt", model, optimizer=opt, scheduler=sched,
                     state={"history": history}, writer=writer)
        assert path == tmp_path / "background.pt"
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        for group in opt.state.values():
            group["exp_avg"].mul_(-3.0)
        history.append({"epoch": 2, "loss": 0.4})
        writer.flush()
    finally:
        writer.close()
    a, b = load_checkpoint(direct), load_checkpoint(path)
    assert b["state"]["history"] == [{"epoch": 1, "loss": 0.5}]
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key
    for k, state in a["optimizer_state"]["state"].items():
        assert torch.equal(state["exp_avg"], b["optimizer_state"]["state"][k]["exp_avg"])
    assert a["scheduler_state"] == b["scheduler_state"]


def test_writer_writes_in_order_and_keeps_at_most_max_pending(tmp_path, monkeypatch):
    import ser_gpu.checkpoint as checkpoint

    order, real = [], checkpoint._write
    monkeypatch.setattr(checkpoint, "_write",
                        lambda path, payload, also=(): order.append(path.name) or real(path, payload, also))
    model = _trained()[0]
    writer = CheckpointWriter(max_pending=1)
    for epoch in range(1, 4):
        _save(tmp_path / "best.pt", model, epoch=epoch, writer=writer)
        _save(tmp_path / "last.pt", model, epoch=epoch, writer=writer)
        assert len(writer._pending) == 1
    writer.close()
    assert order == ["best.pt", "last.pt"] * 3
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3
    assert not writer._pending
    writer.close()  # idempotent


def test_writer_raises_a_failed_write_naming_the_file(tmp_path, monkeypatch):
    """A background failure is not lost: the next flush raises it (CheckpointError naming the file), the
    file that was there stays intact, and a later checkpoint is still written."""
    path = _save(tmp_path / "last.pt", epoch=1)
    real_save = torch.save

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    writer = CheckpointWriter()
    monkeypatch.setattr(torch, "save", broken_save)
    _save(path, epoch=2, writer=writer)
    with pytest.raises(CheckpointError, match="No space left on device") as exc_info:
        writer.flush()
    _one_line_error(exc_info, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    _save(path, epoch=3, writer=writer)
    writer.close()
    assert load_checkpoint(path)["epoch"] == 3


def test_writer_raises_a_failed_write_at_the_next_submit(tmp_path, monkeypatch):
    import ser_gpu.checkpoint as checkpoint

    def broken(path, payload, also=()):
        raise OSError("disk full")

    writer = CheckpointWriter()
    monkeypatch.setattr(checkpoint, "_write", broken)
    _save(tmp_path / "a.pt", epoch=1, writer=writer)
    writer._pending[0][1].exception()  # the write has failed
    with pytest.raises(CheckpointError, match="disk full") as exc_info:
        _save(tmp_path / "b.pt", epoch=2, writer=writer)
    _one_line_error(exc_info, tmp_path / "a.pt")
    writer.close()


@pytest.mark.parametrize("background", [False, True])
def test_also_names_get_the_same_file_and_keep_it_when_path_is_replaced(tmp_path, background):
    """also=: one serialisation for two names; the other name is a hard link to path (same inode), which a
    later save to path (a new file, os.replace) leaves holding the first checkpoint."""
    writer = CheckpointWriter() if background else None
    _save(tmp_path / "best.pt", epoch=1, also=[tmp_path / "runs" / "selected.pt"], writer=writer)
    if writer is not None:
        writer.flush()
    selected = tmp_path / "runs" / "selected.pt"
    assert os.path.samefile(tmp_path / "best.pt", selected)
    assert load_checkpoint(selected)["epoch"] == 1
    _save(tmp_path / "best.pt", epoch=2, writer=writer)
    if writer is not None:
        writer.close()
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2 and load_checkpoint(selected)["epoch"] == 1
    assert sorted(os.listdir(tmp_path / "runs")) == ["selected.pt"]  # no temporary file left


def test_also_is_a_copy_where_links_are_refused(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    old = _save(tmp_path / "selected.pt", epoch=0)
    monkeypatch.setattr(os, "link", no_links)
    _save(tmp_path / "best.pt", epoch=3, also=[old])
    assert not os.path.samefile(tmp_path / "best.pt", old)
    assert old.read_bytes() == (tmp_path / "best.pt").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "selected.pt"]


@pytest.mark.parametrize("also, match", [
    ("selected.pt", "also must be a sequence of paths, got 'selected.pt'"),
    ([3], r"also must be a sequence of paths, got \[3\]"),
    (["SAME"], "also must name files other than path"),
    (["DIR"], "also must name files other than path"),
])
def test_bad_also(tmp_path, also, match):
    path = tmp_path / "best.pt"
    also = [path if a == "SAME" else tmp_path if a == "DIR" else a for a in also] if isinstance(also, list) else also
    with pytest.raises(ParameterError, match=match):
        _save(path, also=also)
    assert not path.exists()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_writer_bad_max_pending(bad):
    with pytest.raises(ParameterError, match=f"max_pending must be a positive integer, got.*{bad!r}"):
        CheckpointWriter(max_pending=bad)


def test_closed_writer_refuses_a_checkpoint(tmp_path):
    writer = CheckpointWriter()
    writer.close()
    with pytest.raises(CheckpointError, match="the checkpoint writer is closed"):
        _save(tmp_path / "last.pt", writer=writer)
    assert not (tmp_path / "last.pt").exists()


# ---------------------------------------------------------------------------------- CheckpointError cases


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="no such checkpoint file") as info:
        load_checkpoint(path)
    _one_line_error(info, path)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_model(str(path))


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory") as info:
        load_checkpoint(tmp_path)
    _one_line_error(info, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty file \(0 bytes\)") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


@pytest.mark.parametrize("content", ["garbage zip", "garbage pickle", "truncated"])
def test_corrupt_file(tmp_path, content):
    """Files that begin as torch.save's do (a zip archive, a pickle) but are damaged."""
    path = tmp_path / "bad.pt"
    noise = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    if content == "garbage zip":
        path.write_bytes(b"PK\x03\x04" + noise)
    elif content == "garbage pickle":
        path.write_bytes(b"\x80\x02" + noise)
    else:
        good = _save(tmp_path / "good.pt").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated checkpoint") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


@pytest.mark.parametrize("name, content, what", [
    ("metrics.csv", b"epoch,loss\n1,0.5\n", "a text file"),
    ("result.json", b'{"epoch": 3}', r"a text file \(JSON\?\)"),
    ("notes.txt", "caf\u00e9 ".encode() * 200, "a text file"),  # a character cut at the 512th byte
    ("clip.wav", None, r"a RIFF file \(WAV audio\?\)"),
    ("curves.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    ("noise.pt", b"\x01\x02" + bytes(range(200)), r"it begins with b'\\x01\\x02\\x00\\x01"),
])
def test_a_file_torch_save_did_not_write_is_named_so(tmp_path, name, content, what):
    """A recording, a metrics file or a plot given as the checkpoint was called 'corrupt or truncated' with the
    unpickler's error (KeyError: 105); its first bytes show it was never a checkpoint, and the error says so."""
    path = tmp_path / name
    if content is None:  # a real recording
        content = (pathlib.Path(__file__).resolve().parent.parent / "examples" / "speech_like.wav").read_bytes()
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"not a checkpoint file: {what}.*torch.save writes a zip") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


def test_bare_state_dict(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(CNNBiLSTMAttention(CONFIG).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a ser_gpu checkpoint: it is a bare state_dict") as info:
        load_model(path)
    _one_line_error(info, path)


def test_pickled_objects(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "config": CONFIG}, path)  # a dataclass: code, not data
    with pytest.raises(CheckpointError, match=r"holds Python objects \(.*ModelConfig\).*refuses") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


@pytest.mark.parametrize(
    "payload, match",
    [
        ([1, 2, 3], r"not a ser_gpu checkpoint: it holds a list"),
        ({"epoch": 3, "model": {}}, r"not a ser_gpu checkpoint: no 'format' key"),
        ({"format": "other.checkpoint", "version": 1}, r"format 'other.checkpoint', expected 'ser_gpu.checkpoint'"),
        ({"format": CHECKPOINT_FORMAT, "version": "1"}, r"invalid checkpoint version '1'"),
    ],
)
def test_not_a_ser_gpu_checkpoint(tmp_path, payload, match):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    _one_line_error(info, path)


def _rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)
    return path


def test_newer_version(tmp_path):
    path = _rewrite(_save(tmp_path / "a.pt"), version=CHECKPOINT_VERSION + 1, ser_gpu_version="9.0")
    with pytest.raises(CheckpointError, match=r"checkpoint version 2 was written by a newer ser_gpu \(9.0\)"
                                              r".*reads versions <= 1") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


def test_missing_keys(tmp_path):
    path = _rewrite(_save(tmp_path / "a.pt"), labels=..., model_state=...)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['model_state', 'labels'\]") as info:
        load_checkpoint(path)
    _one_line_error(info, path)


def test_optional_keys_take_defaults(tmp_path):
    path = _rewrite(_save(tmp_path / "a.pt"), metrics=..., state=..., optimizer_state=...)
    payload = load_checkpoint(path)
    assert payload["metrics"] == {} and payload["state"] == {} and payload["optimizer_state"] is None


def test_other_architecture(tmp_path):
    """Weights of another model_config: missing, unexpected and mis-shaped keys are listed."""
    path = _save(tmp_path / "a.pt")
    bigger = dataclasses.replace(CONFIG, channels=(8, 12, 20), lstm_layers=3).to_dict()
    with pytest.raises(CheckpointError, match=r"weights do not fit") as info:
        load_model(_rewrite(path, model_config=bigger))
    message = _one_line_error(info, path)
    assert "missing: lstm.weight_ih_l2" in message
    assert "shape mismatch (checkpoint vs model): blocks.2.conv.weight (16, 12, 3) vs (20, 12, 3)" in message
    payload = load_checkpoint(_save(tmp_path / "b.pt"))
    payload["model_state"]["head.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"^<checkpoint payload>: .*unexpected: head.weight"):
        load_model(payload)


def test_invalid_model_config_in_file(tmp_path):
    path = _rewrite(_save(tmp_path / "a.pt"), model_config={**CONFIG.to_dict(), "width": 3})
    with pytest.raises(CheckpointError, match=r"invalid model_config: unknown ModelConfig keys \['width'\]") as info:
        load_model(path)
    _one_line_error(info, path)


def test_labels_differ(tmp_path):
    path = _save(tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"labels differ: the checkpoint has \['neutral', 'happy', 'sad'\], "
                                              r"expected \['neutral', 'sad', 'happy'\]") as info:
        load_model(path, labels=["neutral", "sad", "happy"])
    _one_line_error(info, path)
    model, _ = load_model(path, labels=tuple(LABELS))
    assert isinstance(model, CNNBiLSTMAttention)


# ----------------------------------------------------------------------------------- ParameterError cases


@dataclasses.dataclass
class _Settings:
    lr: float = 1e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metrics": {"confusion": np.zeros((3, 3))}}, r"metrics\['confusion'\] holds a numpy.ndarray"),
        ({"train_config": {"opts": _Settings()}}, r"train_config\['opts'\] holds a .*_Settings"),
        ({"state": {"history": [{"seen": {1, 2}}]}}, r"state\['history'\]\[0\]\['seen'\] holds a builtins.set"),
        ({"state": {"out": pathlib.Path("/tmp/x")}}, r"state\['out'\] holds a pathlib\.\w*Path"),
        ({"state": {(1, 2): 3}}, r"state holds a dict key of type builtins.tuple"),
        ({"feature_config": {"window": torch.hann_window}}, r"feature_config\['window'\] holds a"),
    ],
)
def test_non_plain_payload(tmp_path, kwargs, match):
    path = tmp_path / "a.pt"
    with pytest.raises(ParameterError, match=match):
        _save(path, **kwargs)
    assert not path.exists()


def test_bad_save_arguments(tmp_path):
    model = CNNBiLSTMAttention(CONFIG)
    with pytest.raises(ParameterError, match=r"labels must have model_config\['n_classes'\] = 3 entries, got 2"):
        _save(tmp_path / "a.pt", model, labels=["a", "b"])
    with pytest.raises(ParameterError, match=r"labels must be a sequence of strings, got 'abc'"):
        _save(tmp_path / "a.pt", model, labels="abc")
    with pytest.raises(ParameterError, match=r"labels\[1\] must be a string, got 2"):
        _save(tmp_path / "a.pt", model, labels=["a", 2, "c"])
    with pytest.raises(ParameterError, match=r"labels must be unique"):
        _save(tmp_path / "a.pt", model, labels=["a", "a", "c"])
    with pytest.raises(ParameterError, match=r"model_config does not describe model"):
        _save(tmp_path / "a.pt", model, model_config=dataclasses.replace(CONFIG, lstm_layers=3).to_dict())
    with pytest.raises(ParameterError, match=r"unknown ModelConfig keys \['depth'\]"):
        _save(tmp_path / "a.pt", model, model_config={**CONFIG.to_dict(), "depth": 3})
    with pytest.raises(ParameterError, match=r"epoch must be a non-negative integer, got -1"):
        _save(tmp_path / "a.pt", model, epoch=-1)
    with pytest.raises(ParameterError, match=r"metrics must be a dict or None, got \[0.5\]"):
        _save(tmp_path / "a.pt", model, metrics=[0.5])
    with pytest.raises(ParameterError, match=r"feature_config must be a dict"):
        _save(tmp_path / "a.pt", model, feature_config=FeatureConfig())
    with pytest.raises(ParameterError, match=r"optimizer must have a state_dict\(\) method, got 'adam'"):
        _save(tmp_path / "a.pt", model, optimizer="adam")
    with pytest.raises(ParameterError, match=r"path must be a file, got the directory"):
        _save(tmp_path, model)
    assert os.listdir(tmp_path) == []


def test_bad_load_model_arguments(tmp_path):
    path = _save(tmp_path / "a.pt")
    with pytest.raises(ParameterError, match=r"device must be a torch device or its name, got 'gpu0'"):
        load_model(path, device="gpu0")
    with pytest.raises(ParameterError, match=r"checkpoint must be a path or a loaded checkpoint dict, got 3"):
        load_model(3)
    with pytest.raises(ParameterError, match=r"labels must be a sequence of strings, got 'neutral'"):
        load_model(path, labels="neutral")
