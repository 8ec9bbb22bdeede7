"""The web app (ser_gpu.app): model card, per-window timeline, upload analysis, the page under
Streamlit's headless AppTest, and one real-browser test (headless Chromium through Selenium)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu import predict
from ser_gpu._cli import readable
from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import EMOTIONS
from ser_gpu.data.synthetic import MANIFEST_NAME
from ser_gpu.errors import AudioLoadError
from ser_gpu.media import iter_windows
from ser_gpu.model_card import CLEAN_HEAD_WARNING, DEMO_MODEL_WARNING, clean_only_head, model_card, trained_on_synthetic
from ser_gpu.train import train_model
from tests.conftest import HAS_CUDA
from tests.ffmpeg_tools import ff
from tests.tiny_corpus import FAST, SR, clip, write_corpus

try:  # the 'app' extra; imported here, as it makes a temporary directory on import
    from streamlit.testing.v1 import AppTest
except ImportError:
    AppTest = None

needs_streamlit = pytest.mark.skipif(AppTest is None, reason="streamlit is not installed (pip install -e '.[app]')")

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "ser_gpu" / "app" / "page.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A checkpoint trained for one epoch on the tiny corpus (actor split: result.json has a test set),
    the same weights re-saved as a model of the built-in synthetic corpus (train_config data_dirs = [],
    what ``python -m ser_gpu.train`` without --data-dir stores), a 3 s clip and a 9 s clip."""
    root = tmp_path_factory.mktemp("app")
    corpus = write_corpus(root / "corpus")
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(root / "run"), cache_dir=str(root / "cache"),
                split="actor", **FAST)
    real = root / "run" / "best.pt"
    payload = load_checkpoint(real)
    payload["train_config"]["data_dirs"] = []
    synth = root / "synthetic" / "best.pt"
    synth.parent.mkdir()
    torch.save(payload, synth)
    short = root / "clips" / "three_seconds.wav"
    short.parent.mkdir()
    sf.write(short, clip(2, 1, 0, seconds=3.0), SR)
    long = root / "clips" / "nine_seconds.wav"
    sf.write(long, np.concatenate([clip(0, 1, 0, 3.0), clip(5, 2, 0, 3.0), clip(7, 3, 0, 3.0)]), SR)
    # another member for an ensemble: the same rows, other weights (the classifier's last layer flipped)
    other = root / "other" / "best.pt"
    other.parent.mkdir()
    payload = load_checkpoint(real)
    last = [k for k in payload["model_state"] if k.startswith("classifier.") and k.endswith(".weight")][-1]
    payload["model_state"][last] = -payload["model_state"][last]
    torch.save(payload, other)
    return {"root": root, "corpus": corpus, "real": real, "synthetic": synth, "short": short, "long": long,
            "other": other}


# ------------------------------------------------------------------------------------------ model card

def test_model_card_of_a_real_corpus_run(run):
    card = model_card(load_checkpoint(run["real"]), run["real"])
    result = json.loads((run["real"].parent / "result.json").read_text())  # what train.py wrote
    assert card["labels"] == list(EMOTIONS)
    assert card["synthetic"] is False and card["warning"] is None
    assert card["corpus"] == str(run["corpus"]) and card["split"] == "actor"
    assert card["test"]["uar"] == result["test"]["uar"] and card["test"]["accuracy"] == result["test"]["accuracy"]
    assert card["val"]["uar"] == result["best_val"]["uar"] and card["epoch"] == 1
    assert card["averaged_epochs"] is None  # the selected epoch's own weights


def test_model_card_says_when_the_weights_are_a_mean_over_epochs(run):
    payload = load_checkpoint(run["real"])
    payload["metrics"]["averaged_epochs"] = [3, 23]  # as train --average-weights stores it
    assert model_card(payload)["averaged_epochs"] == [3, 23]
    for bad in ([3], "3-23", [3.0, 23], None):  # anything else: not a mean the card can state
        payload["metrics"]["averaged_epochs"] = bad
        assert model_card(payload)["averaged_epochs"] is None


def test_model_card_of_the_synthetic_corpus(run, tmp_path):
    payload = load_checkpoint(run["synthetic"])
    card = model_card(payload, run["synthetic"])
    assert card["synthetic"] is True and card["warning"] == DEMO_MODEL_WARNING
    assert card["corpus"] == "built-in synthetic corpus"
    assert card["test"] is None  # no result.json beside it
    # the synthetic corpus passed explicitly with --data-dir: recognised by its manifest
    (tmp_path / MANIFEST_NAME).write_text("{}")
    payload["train_config"]["data_dirs"] = [str(tmp_path)]
    assert trained_on_synthetic(payload) is True
    payload["train_config"]["data_dirs"] = [str(tmp_path), str(run["corpus"])]
    assert trained_on_synthetic(payload) is False
    payload["train_config"] = {}  # not written by ser_gpu.train: corpus unknown, no warning
    card = model_card(payload)
    assert card["synthetic"] is False and card["corpus"].startswith("unknown")


def test_model_card_warns_of_a_head_fitted_on_clean_clips_only(run, tmp_path, capsys):
    """A head fitted on the clean clips alone (stats_head_copies 0, a config from before the setting, or no
    augmentation) gets CLEAN_HEAD_WARNING on the card, and predict prints it once on stderr; a head fitted on
    augmented versions (the default), a model without a head or an unknown training config get none."""
    payload = load_checkpoint(run["real"])
    assert payload["train_config"]["stats_head_copies"] == 4 and payload["model_config"]["stats_head"]
    assert model_card(payload)["noise_warning"] is None and not clean_only_head(payload)
    for change in ({"stats_head_copies": 0}, {"augment": False}, None):
        old = copy.deepcopy(payload)
        if change is None:
            del old["train_config"]["stats_head_copies"]
        else:
            old["train_config"].update(change)
        assert clean_only_head(old) and model_card(old)["noise_warning"] == CLEAN_HEAD_WARNING, change
    old = copy.deepcopy(payload)
    old["train_config"]["stats_head_copies"] = 0
    plain = copy.deepcopy(old)
    plain["model_config"]["stats_head"] = False
    unknown = copy.deepcopy(old)
    unknown["train_config"] = {}
    assert not clean_only_head(plain) and not clean_only_head(unknown)
    path = tmp_path / "clean_head.pt"
    torch.save(old, path)
    assert predict.main([str(run["short"]), "--checkpoint", str(path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count(CLEAN_HEAD_WARNING) == 1 and "Traceback" not in err
    assert predict.main([str(run["short"]), "--checkpoint", str(run["real"]), "--quiet"]) == 0
    assert CLEAN_HEAD_WARNING not in capsys.readouterr().err


def test_model_card_ignores_a_result_json_about_another_file(run, tmp_path):
    ckpt = tmp_path / "other.pt"
    shutil.copy(run["real"], ckpt)
    shutil.copy(run["real"].parent / "result.json", tmp_path / "result.json")  # it names best.pt
    assert model_card(load_checkpoint(ckpt), ckpt)["test"] is None


# ---------------------------------------------------------------------------------- predict additions

def test_predict_timeline_holds_the_windows_the_mean_is_taken_over(run):
    r = predict.predict_file(run["long"], run["real"], device="cpu", timeline=True)
    spans = [(w.start, w.end) for w in iter_windows(run["long"], sr=SR, window_seconds=4.0, hop_seconds=2.0)]
    assert [(w["start"], w["end"]) for w in r["timeline"]] == spans and r["windows"] == len(spans) > 2
    mean = np.mean([[w["probabilities"][k] for k in EMOTIONS] for w in r["timeline"]], axis=0)
    np.testing.assert_allclose(mean, [r["probabilities"][k] for k in EMOTIONS], rtol=1e-5, atol=1e-7)
    assert "timeline" not in predict.predict_file(run["long"], run["real"], device="cpu")


def test_predict_cli_warns_once_about_a_demo_model(run, capsys):
    args = [str(run["short"]), str(run["long"]), "--checkpoint", str(run["synthetic"]), "--device", "cpu", "--quiet"]
    assert predict.main(args) == 0
    err = capsys.readouterr().err
    assert err.count(DEMO_MODEL_WARNING) == 1, err
    args[3] = str(run["real"])
    assert predict.main(args) == 0
    assert DEMO_MODEL_WARNING not in capsys.readouterr().err


# ----------------------------------------------------------------------------------- upload analysis

@pytest.fixture(scope="module")
def analyzer(run):
    from ser_gpu.app.analysis import Analyzer

    return Analyzer(predict.Predictor(run["synthetic"], device="cpu"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's directory redirected to an empty folder, to see what is left behind."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_analyse_equals_predict_and_cleans_up(run, analyzer, private_tmp):
    data = run["long"].read_bytes()
    out = analyzer.analyse(data, "my clip.wav")
    assert list(private_tmp.iterdir()) == []
    ref = predict.predict_file(run["long"], run["synthetic"], device="cpu", top_k=8)
    r = out["result"]
    assert r["path"] == "my clip.wav" and r["emotion"] == ref["emotion"]
    np.testing.assert_allclose([r["probabilities"][k] for k in EMOTIONS], [ref["probabilities"][k] for k in EMOTIONS],
                               rtol=1e-5, atol=1e-7)
    assert len(r["top_k"]) == 8 and len(r["timeline"]) == r["windows"]
    assert out["features"].shape[0] == 68 and out["features"].shape[1] > 300 and out["row_names"][0] == "mfcc_0"
    y, _ = sf.read(run["long"], dtype="float32")
    t, lo, hi = out["waveform"]
    assert (lo <= hi).all() and len(t) == 1500 and t[0] == 0.0
    assert lo.min() == pytest.approx(y.min(), abs=1e-6) and hi.max() == pytest.approx(y.max(), abs=1e-6)
    assert out["display_seconds"] == pytest.approx(9.0, abs=1e-3)
    table = analyzer.timeline_table(r)
    assert table["seconds"][0] == 2.0 and len(table["angry"]) == r["windows"]


def test_analyse_reads_a_video_upload(run, analyzer, private_tmp, tmp_path):
    video = tmp_path / "clip.mp4"
    ff("-f", "lavfi", "-i", "testsrc=size=32x32:rate=10:duration=3", "-i", str(run["short"]),
       "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(video))
    out = analyzer.analyse(video.read_bytes(), "Clip.MP4")
    ref = predict.predict_file(video, run["synthetic"], device="cpu")
    assert out["result"]["emotion"] == ref["emotion"] and out["result"]["path"] == "Clip.MP4"
    assert out["display_seconds"] == pytest.approx(ref["seconds"], abs=0.05)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_analyse_on_cuda_equals_cpu(run, analyzer):
    from ser_gpu.app.analysis import Analyzer

    data = run["long"].read_bytes()
    cpu = analyzer.analyse(data, "long.wav")
    gpu = Analyzer(predict.Predictor(run["synthetic"], device="cuda")).analyse(data, "long.wav")
    assert gpu["result"]["emotion"] == cpu["result"]["emotion"]
    # float32 features and model on another device: agreement to float32 rounding, not bit equality
    np.testing.assert_allclose([gpu["result"]["probabilities"][k] for k in EMOTIONS],
                               [cpu["result"]["probabilities"][k] for k in EMOTIONS], atol=1e-4)
    assert gpu["features"].shape == cpu["features"].shape
    # rolloff picks a bin, so a float32 tie may move a rare frame (README, parity): count, don't demand all
    close = np.isclose(gpu["features"], cpu["features"], atol=1e-3)
    assert close.mean() > 0.999, close.mean()


@pytest.mark.parametrize("data, name, reason", [
    (b"", "empty.wav", "the file is empty"),
    (b"this is not a sound file" * 10, "broken.wav", "cannot be decoded"),
    (b"RIFF....", "notes.txt", ".txt is not an audio or video format"),
])
def test_analyse_refuses_bad_uploads_with_a_message(analyzer, private_tmp, data, name, reason):
    with pytest.raises(AudioLoadError) as info:
        analyzer.analyse(data, name)
    assert str(info.value).startswith(f"{name}: ") and reason in str(info.value)
    assert "ser_gpu_app_" not in str(info.value)  # the temporary path is not shown
    assert list(private_tmp.iterdir()) == []


# ------------------------------------------------------------------------------------------- AppTest

def _app(monkeypatch, checkpoint):
    value = json.dumps([str(c) for c in checkpoint]) if isinstance(checkpoint, list) else str(checkpoint)
    monkeypatch.setenv("SER_GPU_APP_CHECKPOINT", value)
    monkeypatch.setenv("SER_GPU_APP_DEVICE", "cpu")
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


@needs_streamlit
def test_page_warns_of_a_head_fitted_on_clean_clips_only(run, monkeypatch, tmp_path):
    payload = load_checkpoint(run["real"])
    payload["train_config"]["stats_head_copies"] = 0
    path = tmp_path / "clean_head.pt"
    torch.save(payload, path)
    notes = shown(_app(monkeypatch, path).warning)
    assert len(notes) == 1 and CLEAN_HEAD_WARNING[1:] in notes[0] and notes[0].startswith("T"), notes


# A Markdown backslash escape (any ASCII punctuation), as the browser renders it: the character itself
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def unescape(text: str) -> str:
    return _ESCAPE.sub(r"\1", text)


def shown(elements) -> list:
    """The texts of Streamlit elements as the page shows them (Markdown escapes resolved; the browser
    test checks that what the page escapes renders as written)."""
    return [unescape(e.value) for e in elements]


# a file name full of what Markdown and Streamlit read as markup (the page showed "my_best_take 1 5 y 😄")
MARKUP_NAME = "my_*best*_take [1](x) $5$ :red[y] :smile: a&lt;b # h.wav"


def test_plain_escapes_every_markup_character():
    from ser_gpu.app.analysis import plain

    punctuation = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
    for text in (MARKUP_NAME, punctuation, "1. a list", "- an item", "caf\udce9.wav", "a\\*b", "title\n===\nbody"):
        escaped = plain(text)
        assert unescape(escaped) == " ".join(readable(text).splitlines()), (text, escaped)  # one line
        # with every escape pair taken out, no markup character (nor a line break) is left
        assert not set(re.sub(r"\\.", "", escaped)) & set("\\`*_{}[]()#+-.!|<>~$:&=\n"), escaped


def _chart_data(element) -> dict:
    import pyarrow as pa

    (dataset,) = element.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pydict()


@needs_streamlit
def test_page_with_paths_that_are_not_utf8(run, monkeypatch, tmp_path):
    """A checkpoint in a directory whose name is not UTF-8, trained on such a data directory: Streamlit
    hashed the cached function's str paths as UTF-8 (UnicodeEncodeError), and the page could not show
    them; the page loads the model, shows the names escaped (\\xNN) and scores an upload."""
    from tests.conftest import non_utf8_path

    run_dir = non_utf8_path(tmp_path, b"run\xe9", is_dir=True)
    payload = load_checkpoint(run["real"])
    payload["train_config"]["data_dirs"] = [os.fsdecode(os.fsencode(tmp_path) + b"/corpus\xff")]
    torch.save(payload, run_dir / "best.pt")
    shutil.copy(run["real"].parent / "result.json", run_dir / "result.json")
    at = _app(monkeypatch, run_dir / "best.pt")
    sidebar = " ".join(shown(at.sidebar.markdown))
    assert "corpus\\xff" in sidebar and "Test UAR" in sidebar and "result.json" in sidebar, sidebar
    at.file_uploader[0].set_value(("three_seconds.wav", run["short"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.metric[0].value == predict.predict_file(run["short"], run["real"], device="cpu")["emotion"]
    # an ensemble: each member named by its folder
    other = non_utf8_path(tmp_path, b"other\xff", is_dir=True)
    torch.save(payload, other / "best.pt")
    members = " ".join(shown(_app(monkeypatch, [other / "best.pt", run_dir / "best.pt"]).sidebar.markdown))
    assert "other\\xff/best.pt, run\\xe9/best.pt" in members, members
    # a checkpoint that cannot be loaded: the error names it
    (run_dir / "broken.pt").write_bytes(b"not a checkpoint")
    errors = shown(_app(monkeypatch, run_dir / "broken.pt").error)
    assert len(errors) == 1 and "run\\xe9/broken.pt" in errors[0], errors


@needs_streamlit
def test_page_top_emotion_equals_predict_file(run, monkeypatch, private_tmp):
    at = _app(monkeypatch, run["synthetic"])
    notes = shown(at.warning)
    assert any(DEMO_MODEL_WARNING in n for n in notes), notes
    assert "Labels" in " ".join(shown(at.sidebar.markdown))
    at.file_uploader[0].set_value(("three_seconds.wav", run["short"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    ref = predict.predict_file(run["short"], run["synthetic"], device="cpu")
    assert at.metric[0].label == "Predicted emotion" and at.metric[0].value == ref["emotion"]
    bars = _chart_data(at.get("vega_lite_chart")[0])
    assert bars["emotion"] == list(EMOTIONS)
    assert [e for e, top in zip(bars["emotion"], bars["predicted"]) if top] == [ref["emotion"]]
    np.testing.assert_allclose(bars["probability"], [ref["probabilities"][k] for k in EMOTIONS], rtol=1e-5)
    assert any("one window" in c for c in shown(at.caption))  # 3 s: no timeline
    assert len(at.get("image")) == 2  # waveform and feature heatmap
    assert list(private_tmp.iterdir()) == []


@needs_streamlit
def test_page_shows_an_upload_name_as_written(run, monkeypatch):
    """Markup in an upload's name (``*``, ``_``, ``[..](..)``, ``$``, ``:red[..]``...) is shown, not rendered,
    in the caption, and in the error of an upload that cannot be read."""
    from ser_gpu.app.analysis import plain

    at = _app(monkeypatch, run["synthetic"])
    at.file_uploader[0].set_value((MARKUP_NAME, run["short"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.caption[0].value.startswith(plain(MARKUP_NAME) + ": probability")
    assert shown(at.caption)[0].startswith(MARKUP_NAME + ": probability")
    at.file_uploader[0].set_value((MARKUP_NAME, b"\x00\x01garbage" * 50, "audio/wav"))
    at.run()
    (error,) = at.error
    assert error.value.startswith(plain(f"Could not read the file: {MARKUP_NAME}: ")), error.value


@needs_streamlit
def test_page_long_file_shows_the_timeline(run, monkeypatch):
    at = _app(monkeypatch, run["real"])
    assert not at.warning  # trained on a (tiny) recorded corpus: no demo note
    result = json.loads((run["real"].parent / "result.json").read_text())
    assert f"**Test UAR** {result['test']['uar']:.3f}" in " ".join(m.value for m in at.sidebar.markdown)
    at.file_uploader[0].set_value(("nine_seconds.wav", run["long"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error
    ref = predict.predict_file(run["long"], run["real"], device="cpu", timeline=True)
    assert at.metric[0].value == ref["emotion"]
    lines = _chart_data(at.get("vega_lite_chart")[1])  # long format: one row per (window, emotion)
    for label in EMOTIONS:
        rows = [i for i, c in enumerate(lines["emotion"]) if c == label]
        assert [lines["seconds"][i] for i in rows] == [(w["start"] + w["end"]) / 2 for w in ref["timeline"]]
        np.testing.assert_allclose([lines["probability"][i] for i in rows],
                                   [w["probabilities"][label] for w in ref["timeline"]], rtol=1e-5)
    assert len(ref["timeline"]) == ref["windows"] > 2


@needs_streamlit
def test_page_serves_an_ensemble_as_predict_does(run, monkeypatch):
    """Two checkpoints (the launcher's JSON list): the page's probabilities are predict's for the same
    two (their averaged softmax), which differ from either member's; the sidebar names both."""
    members = [run["real"], run["other"]]
    at = _app(monkeypatch, members)
    sidebar = " ".join(shown(at.sidebar.markdown))
    assert "**Ensemble** of 2 checkpoints" in sidebar and "run/best.pt" in sidebar and "other/best.pt" in sidebar
    at.file_uploader[0].set_value(("three_seconds.wav", run["short"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    ref = predict.Predictor(members, device="cpu").predict([run["short"]])[0]
    alone = [predict.predict_file(run["short"], m, device="cpu")["probabilities"] for m in members]
    for label in EMOTIONS:
        assert ref["probabilities"][label] == pytest.approx((alone[0][label] + alone[1][label]) / 2, rel=1e-5)
    assert not np.allclose([ref["probabilities"][k] for k in EMOTIONS], [alone[0][k] for k in EMOTIONS])
    assert at.metric[0].value == ref["emotion"]
    bars = _chart_data(at.get("vega_lite_chart")[0])
    np.testing.assert_allclose(bars["probability"], [ref["probabilities"][k] for k in EMOTIONS], rtol=1e-5)


@pytest.mark.parametrize("data, name, reason", [
    (b"\x00\x01garbage" * 50, "broken.wav", "cannot be decoded"),
    (b"", "empty.wav", "the file is empty"),
])
@needs_streamlit
def test_page_reports_an_unreadable_upload(run, monkeypatch, data, name, reason):
    at = _app(monkeypatch, run["synthetic"])
    at.file_uploader[0].set_value((name, data, "audio/wav"))
    at.run()
    assert not at.exception
    (error,) = shown(at.error)
    assert error.startswith(f"Could not read the file: {name}: ") and reason in error
    assert not at.metric


@needs_streamlit
def test_page_recording_is_scored(run, monkeypatch):
    at = _app(monkeypatch, run["synthetic"])
    at.radio[0].set_value("Record from the microphone")
    at.run()
    at.audio_input[0].set_value(("recording.wav", run["short"].read_bytes(), "audio/wav"))
    at.run()
    assert not at.exception and not at.error
    assert at.metric[0].value == predict.predict_file(run["short"], run["synthetic"], device="cpu")["emotion"]


@needs_streamlit
def test_page_without_a_usable_checkpoint(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    at = _app(monkeypatch, bad)
    (error,) = shown(at.error)
    assert "The model cannot be loaded" in error and "bad.pt" in error


# ------------------------------------------------------------------------------------------ launcher

@needs_streamlit
def test_launcher_refuses_a_missing_checkpoint(tmp_path, capsys):
    from ser_gpu.app.launch import main

    assert main(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.pt" in err and "Traceback" not in err


@needs_streamlit
def test_launcher_hands_every_checkpoint_to_the_page(run, monkeypatch, tmp_path, capsys):
    """--checkpoint A B: both reach the page (a JSON list of absolute paths); a missing member or one that
    reads other rows is refused before serving (exit 2, naming it)."""
    from ser_gpu.app import launch

    seen = {}
    monkeypatch.setattr(launch.os, "execve", lambda exe, cmd, env: seen.update(env=env) or 0)
    monkeypatch.setattr(launch.subprocess, "call", lambda cmd, env: seen.update(env=env) or 0)
    monkeypatch.chdir(run["root"])
    assert launch.main(["--checkpoint", "run/best.pt", "other/best.pt"]) == 0
    paths = json.loads(seen["env"][launch.CHECKPOINT_ENV])
    assert paths == [str(run["real"].resolve()), str(run["other"].resolve())]
    assert launch.checkpoints_from_env(seen["env"][launch.CHECKPOINT_ENV]) == paths
    capsys.readouterr()

    assert launch.main(["--checkpoint", str(run["real"]), str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.pt" in err and "Traceback" not in err
    payload = load_checkpoint(run["real"])
    payload["feature_config"]["top_db"] = 30.0
    odd = tmp_path / "odd.pt"
    torch.save(payload, odd)
    assert launch.main(["--checkpoint", str(run["real"]), str(odd)]) == 2
    err = capsys.readouterr().err
    assert "odd.pt" in err and "cannot join an ensemble" in err and "feature_config" in err


@needs_streamlit
def test_launcher_refuses_what_the_server_or_the_page_would_fail_on(run, monkeypatch, tmp_path, capsys):
    """Before serving, not as a traceback from Streamlit's bind or an exception on the page: an --address that
    does not resolve or is not this machine's, a device torch can name but the tools do not run on, and a
    checkpoint with another label set (the page refused it; the launcher did not check labels)."""
    from ser_gpu.app import launch

    monkeypatch.setattr(launch.os, "execve", lambda exe, cmd, env: 0)
    monkeypatch.setattr(launch.subprocess, "call", lambda cmd, env: 0)
    good = ["--checkpoint", str(run["real"])]
    payload = load_checkpoint(run["real"])
    payload["labels"] = list(reversed(payload["labels"]))
    torch.save(payload, tmp_path / "rev.pt")
    for argv, message in [
        (good + ["--address", "nosuchhost.invalid"], "--address 'nosuchhost.invalid' does not resolve"),
        (good + ["--address", "192.0.2.1"], "--address '192.0.2.1' is not an address of this machine"),
        (good + ["--device", "meta"], "device must be 'auto', 'cpu' or 'cuda[:N]', got 'meta'"),
        (["--checkpoint", str(tmp_path / "rev.pt")], "labels differ"),
    ]:
        assert launch.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert launch.main(good + ["--address", "localhost"]) == 0


def test_checkpoints_from_env_reads_a_list_or_one_path():
    from ser_gpu.app.launch import checkpoints_from_env

    assert checkpoints_from_env('["/a/best.pt", "/b/best.pt"]') == ["/a/best.pt", "/b/best.pt"]
    assert checkpoints_from_env("/runs/x/best.pt") == ["/runs/x/best.pt"]  # set by hand
    assert checkpoints_from_env("") == []
    assert checkpoints_from_env("[odd]/best.pt") == ["[odd]/best.pt"]  # a path, not JSON
    assert checkpoints_from_env("[]") == []  # the page then says how to name one
    assert checkpoints_from_env('[1, ""]') == ['[1, ""]']  # not a list of paths: taken as a (missing) path


def test_launcher_command_stays_local_and_quiet():
    from ser_gpu.app.launch import PAGE as page, streamlit_command

    cmd = streamlit_command(port=8600, address="127.0.0.1")
    assert cmd[1:5] == ["-m", "streamlit", "run", str(page)] and page == PAGE
    settings = dict(zip(cmd[5::2], cmd[6::2]))
    assert settings["--server.address"] == "127.0.0.1" and settings["--server.port"] == "8600"
    assert settings["--browser.gatherUsageStats"] == "false" and settings["--server.headless"] == "true"


# ------------------------------------------------------------------------------------ a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromedriver are not installed "
                    "(apt-get install chromium chromium-driver); the browser test needs both")
def test_browser_upload_shows_the_emotion(run, tmp_path):
    """The served page in headless Chromium: upload through the file input, read the emotion, screenshot.

    ``SER_GPU_APP_SCREENSHOT=docs/app.png`` also writes the screenshot there (the README's image)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="2")
    log = open(tmp_path / "server.log", "wb")
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "ser_gpu.app", "--checkpoint", str(run["synthetic"]),
                               "--device", "cpu", "--port", str(port), "--address", "127.0.0.1"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not answer within 60 s"
            time.sleep(0.3)
        server_ready = time.perf_counter() - t0

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                     "--window-size=1280,2050"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        t1 = time.perf_counter()
        driver.get(url)
        wait = WebDriverWait(driver, 90)
        file_input = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        page_load = time.perf_counter() - t1
        assert DEMO_MODEL_WARNING in driver.find_element(By.TAG_NAME, "body").text
        t2 = time.perf_counter()
        upload = tmp_path / MARKUP_NAME  # a name full of Markdown: shown as written (test_page_shows_...)
        shutil.copy(run["long"], upload)
        file_input.send_keys(str(upload))  # 9 s: the timeline is drawn too
        value = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, '[data-testid="stMetricValue"]')))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')) == 2)
        assert len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')) == 2  # bars, timeline
        prediction = time.perf_counter() - t2
        emotion = value.text.strip()
        assert emotion == predict.predict_file(run["long"], run["synthetic"], device="cpu")["emotion"]
        captions = [c.text for c in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stCaptionContainer"]')]
        assert any(c.startswith(MARKUP_NAME + ": probability") for c in captions), captions
        time.sleep(1.0)  # let the charts finish drawing before the screenshot
        shot = tmp_path / "app.png"
        assert driver.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
        target = os.environ.get("SER_GPU_APP_SCREENSHOT")
        if target:
            from PIL import Image

            image = Image.open(shot).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
            image.save(target, optimize=True)  # about 110 kB instead of 380 kB
        print(f"\nbrowser test: server ready {server_ready:.1f} s, page load (file input shown, model loaded) "
              f"{page_load:.1f} s, upload to emotion and figures {prediction:.1f} s; predicted {emotion}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
