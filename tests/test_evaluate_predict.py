"""python -m ser_gpu.evaluate and python -m ser_gpu.predict against a checkpoint trained here."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import classification_report, confusion_matrix, f1_score, recall_score

from ser_gpu import evaluate, predict
from ser_gpu._cli import run_main
from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import EMOTIONS
from ser_gpu.errors import AudioLoadError, CheckpointError, ParameterError
from ser_gpu.train import train_model
from tests.ffmpeg_tools import ff
from tests.tiny_corpus import FAST, SR, clip, write_corpus

RESULT_KEYS = {"path", "emotion", "probability", "top_k", "probabilities", "windows", "seconds"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalpred")
    corpus = write_corpus(root / "corpus")
    train_model(epochs=2, data_dirs=[str(corpus)], out=str(root / "run"), cache_dir=str(root / "cache"), **FAST)
    return root, corpus, root / "run" / "best.pt"


# --------------------------------------------------------------------------------------------- metrics

def test_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 8, 300)
    truth[truth == 6] = 5  # a class with no support: UAR averages over the classes present
    preds = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 8, 300))
    m = evaluate.metrics_from_predictions(torch.from_numpy(truth), torch.from_numpy(preds), EMOTIONS)
    present = sorted(set(truth))
    assert m["accuracy"] == pytest.approx((truth == preds).mean())
    assert m["uar"] == pytest.approx(recall_score(truth, preds, labels=present, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(truth, preds, labels=list(range(8)), average="weighted",
                                                      zero_division=0))
    assert m["confusion"] == confusion_matrix(truth, preds, labels=list(range(8))).tolist()
    ref = classification_report(truth, preds, labels=list(range(8)), target_names=list(EMOTIONS),
                                output_dict=True, zero_division=0)
    for name in EMOTIONS:
        for key in ("precision", "recall", "f1-score"):
            assert m["per_class"][name][key.replace("-score", "")] == pytest.approx(ref[name][key]), (name, key)
        assert m["per_class"][name]["support"] == ref[name]["support"]


# -------------------------------------------------------------------------------------------- evaluate

def test_evaluate_cli_writes_report_json_and_png(setup, tmp_path, capsys):
    root, corpus, ckpt = setup
    out = tmp_path / "eval"
    code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--out", str(out),
                          "--cache-dir", str(root / "cache"), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "UAR" in text and "weighted F1" in text and "confusion matrix" in text
    data = json.loads((out / "evaluation.json").read_text())
    assert {"accuracy", "uar", "weighted_f1", "per_class", "confusion", "labels", "n_clips"} <= set(data)
    assert data["n_clips"] == 32 and data["labels"] == list(EMOTIONS)
    assert sum(map(sum, data["confusion"])) == 32
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "report.txt").read_text().startswith(" ")


def test_evaluate_api_agrees_with_predict(setup):
    """evaluate's batched predictions equal predict's file-by-file answers (same rows, same model)."""
    root, corpus, ckpt = setup
    m = evaluate.evaluate_model(ckpt, [corpus], cache_dir=root / "cache", progress=False, device="cpu")
    files = sorted(corpus.rglob("*.wav"))
    results = predict.predict_files(files, ckpt, device="cpu", window=10.0)
    labels = [int(f.name.split("-")[2]) - 1 for f in files]
    preds = [EMOTIONS.index(r["emotion"]) for r in results]
    ref = evaluate.metrics_from_predictions(torch.tensor(labels), torch.tensor(preds), EMOTIONS)
    assert m["confusion"] == ref["confusion"]


def test_evaluate_under_noise_scores_the_noisy_clips(setup, tmp_path, capsys):
    """``snr_db``: each loaded (trimmed) clip gets white noise that many dB below its RMS before the features,
    from a generator seeded with ``noise_seed``: the answers are the model's on those noisy clips, computed
    here from the parts (one batch), and the report says so."""
    from ser_gpu.checkpoint import feature_config, load_model
    from ser_gpu.data import WaveformSet, load_waveforms, scan_corpus
    from ser_gpu.functional import add_noise_snr
    from ser_gpu.transforms.features import FeatureExtractor

    root, corpus, ckpt = setup
    clean = evaluate.evaluate_model(ckpt, [corpus], cache_dir=root / "cache", progress=False, device="cpu")
    assert "noise" not in clean
    model, payload = load_model(ckpt, device="cpu")
    fc = feature_config(payload)
    waves, clips = load_waveforms(scan_corpus([str(corpus)]), sr=fc.sr, trim=fc.trim, top_db=fc.top_db,
                                  cache_dir=root / "cache", progress=False)
    (y, lengths, labels), = WaveformSet(waves, [c.label for c in clips]).batches(64)
    for snr, seed in ((0.0, 3), (-10.0, 0)):
        m = evaluate.evaluate_model(ckpt, [corpus], cache_dir=root / "cache", progress=False, device="cpu",
                                    batch_size=64, snr_db=snr, noise_seed=seed)
        assert m["noise"] == {"snr_db": snr, "seed": seed}
        noisy = add_noise_snr(y, snr, lengths=lengths, generator=torch.Generator().manual_seed(seed))
        batch = FeatureExtractor(fc, trim=False)(noisy, lengths)
        with torch.no_grad():
            preds = model(batch.features, batch.frame_lengths).argmax(-1)
        assert m["confusion"] == evaluate.metrics_from_predictions(labels, preds, EMOTIONS)["confusion"]
        assert "white Gaussian noise" in evaluate.format_report(m)
    code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--cache-dir", str(root / "cache"),
                          "--snr", "5", "--noise-seed", "2", "--json", "--quiet"])
    assert code == 0 and json.loads(capsys.readouterr().out)["noise"] == {"snr_db": 5.0, "seed": 2}
    for snr, seed, message in ((float("nan"), 0, "snr_db must be a finite number of decibels, got nan"),
                               ("10", 0, "snr_db must be a finite number of decibels, got '10'"),
                               (10.0, -1, "noise_seed must be a non-negative integer, got -1")):
        with pytest.raises(ParameterError, match=message):
            evaluate.evaluate_model(ckpt, [corpus], cache_dir=root / "cache", progress=False, snr_db=snr,
                                    noise_seed=seed, out=tmp_path / "never")
        assert not (tmp_path / "never").exists()
    code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(corpus), "--snr", "inf", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "snr_db must be a finite number of decibels, got inf" in err and "Traceback" not in err


def test_evaluate_bad_inputs(setup, tmp_path, capsys):
    root, corpus, ckpt = setup
    code = evaluate.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data-dir", str(corpus), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "missing.pt" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code = evaluate.main(["--checkpoint", str(ckpt), "--data-dir", str(tmp_path / "empty"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "empty" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------- predict

@pytest.fixture(scope="module")
def media_files(setup):
    root, _, _ = setup
    d = root / "media"
    d.mkdir()
    sf.write(d / "a.wav", clip(2, 1, 0), SR)
    sf.write(d / "b.flac", clip(4, 2, 1), SR)
    sf.write(d / "long.wav", np.tile(clip(6, 3, 0, seconds=1.0), 10), SR)  # 10 s: several windows
    ff("-i", str(d / "a.wav"), "-c:a", "libmp3lame", str(d / "c.mp3"))
    ff("-f", "lavfi", "-i", "testsrc=size=32x32:rate=10:duration=0.6", "-i", str(d / "b.flac"),
            "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(d / "v.mp4"))
    return d


def test_predict_json_schema_and_probabilities(setup, media_files, capsys):
    _, _, ckpt = setup
    code = predict.main([str(media_files), "--checkpoint", str(ckpt), "--json", "--top-k", "3", "--quiet",
                         "--device", "cpu"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(Path(r["path"]).name for r in results) == ["a.wav", "b.flac", "c.mp3", "long.wav", "v.mp4"]
    for r in results:
        assert set(r) == RESULT_KEYS
        probs = r["probabilities"]
        assert list(probs) == list(EMOTIONS)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(r["top_k"]) == 3
        ranked = sorted(probs.values(), reverse=True)
        assert [t["probability"] for t in r["top_k"]] == pytest.approx(ranked[:3])
        assert r["emotion"] == r["top_k"][0]["emotion"] and r["probability"] == r["top_k"][0]["probability"]
    by_name = {Path(r["path"]).name: r for r in results}
    # 10 s in 4 s windows every 2 s: starts 0, 2, 4, 6 (the last one ends at 10 s)
    assert by_name["long.wav"]["windows"] == 4
    assert by_name["long.wav"]["seconds"] == pytest.approx(10.0, abs=1e-3)
    assert by_name["a.wav"]["windows"] == 1


def test_batched_prediction_equals_one_file_at_a_time(setup, media_files):
    _, _, ckpt = setup
    files = [media_files / "a.wav", media_files / "b.flac", media_files / "long.wav"]
    together = predict.predict_files(files, ckpt, device="cpu", batch_size=32)
    for f, r in zip(files, together):
        alone = predict.predict_file(f, ckpt, device="cpu")
        for k in EMOTIONS:
            assert alone["probabilities"][k] == pytest.approx(r["probabilities"][k], abs=1e-5)


def test_predict_text_output_and_plot(setup, media_files, tmp_path, capsys):
    _, _, ckpt = setup
    png = tmp_path / "probs.png"
    code = predict.main([str(media_files / "a.wav"), "--checkpoint", str(ckpt), "--plot", str(png), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(str(media_files / "a.wav") + ": ") and any(e in out for e in EMOTIONS)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_predict_plot_never_writes_over_a_file_unasked(setup, media_files, tmp_path, capsys):
    """--plot over an existing file (the input recording, the checkpoint, an earlier chart) replaced it with a
    PNG; now a name that is not .png is refused, and an existing .png is replaced only with --overwrite. Refused
    before the work: nothing is printed, every file is as it was."""
    _, _, ckpt = setup
    wav = tmp_path / "mine.wav"
    wav.write_bytes((media_files / "a.wav").read_bytes())
    old_png = tmp_path / "chart.png"
    old_png.write_bytes(b"an earlier chart")
    kept = {f: f.read_bytes() for f in (wav, ckpt, old_png)}
    for plot, why in ((wav, "must name a .png file"), (ckpt, "must name a .png file"),
                      (old_png, "exists already: pass --overwrite to replace it")):
        code = predict.main([str(wav), "--checkpoint", str(ckpt), "--plot", str(plot), "--quiet"])
        captured = capsys.readouterr()
        assert code == 2 and f"error: --plot {str(plot)!r} {why}" in captured.err, captured.err
        assert captured.out == "" and "Traceback" not in captured.err
        assert all(f.read_bytes() == data for f, data in kept.items())
    assert predict.main([str(wav), "--checkpoint", str(ckpt), "--plot", str(tmp_path / "NEW.PNG"), "--quiet"]) == 0
    assert predict.main([str(wav), "--checkpoint", str(ckpt), "--plot", str(old_png), "--overwrite", "--quiet"]) == 0
    assert old_png.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "NEW.PNG").read_bytes()[:4] == b"\x89PNG"


def test_predict_plot_of_a_file_whose_name_is_not_utf8(setup, media_files, tmp_path, capsysbinary):
    """matplotlib refused the name's surrogate escape in the plot title (TypeError after the predictions
    were printed, no PNG); the title shows the bytes escaped. Run as the command's process runs it
    (run_main: the name is printed as its own bytes)."""
    from tests.conftest import non_utf8_path

    _, _, ckpt = setup
    odd = non_utf8_path(tmp_path, b"caf\xe9.wav")
    odd.write_bytes((media_files / "a.wav").read_bytes())
    png = tmp_path / "probs.png"
    code = run_main(lambda: predict.main([str(odd), "--checkpoint", str(ckpt), "--plot", str(png), "--quiet",
                                          "--device", "cpu"]))
    out = capsysbinary.readouterr().out
    assert code == 0 and out.startswith(os.fsencode(odd) + b": "), out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_one_bad_file_does_not_stop_the_others(setup, media_files, tmp_path, capsys):
    _, _, ckpt = setup
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF this is no wav" * 10)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    code = predict.main([str(broken), str(media_files / "a.wav"), str(empty), "--checkpoint", str(ckpt), "--json",
                         "--quiet"])
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert code == 1
    assert "error" in results[0] and "emotion" in results[1] and "error" in results[2]
    assert str(broken) in captured.err and str(empty) in captured.err and "Traceback" not in captured.err
    with pytest.raises(AudioLoadError, match="broken.wav"):
        predict.predict_file(broken, ckpt)


def test_predict_missing_checkpoint_and_empty_dir(setup, media_files, tmp_path, capsys):
    _, _, ckpt = setup
    code = predict.main([str(media_files / "a.wav"), "--checkpoint", str(tmp_path / "nope.pt"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "nope.pt" in err and "Traceback" not in err
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("no audio here")
    code = predict.main([str(tmp_path / "nothing"), "--checkpoint", str(ckpt), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no audio or video" in err and "Traceback" not in err


def test_checkpoint_of_another_architecture_or_label_set(setup, media_files, tmp_path, capsys):
    _, corpus, ckpt = setup
    payload = load_checkpoint(ckpt)
    other = dict(payload)
    other["model_config"] = dict(payload["model_config"], lstm_hidden=64)
    torch.save(other, tmp_path / "arch.pt")
    with pytest.raises(CheckpointError, match=r"arch\.pt: weights do not fit"):
        predict.Predictor(tmp_path / "arch.pt", device="cpu")
    code = predict.main([str(media_files / "a.wav"), "--checkpoint", str(tmp_path / "arch.pt"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "weights do not fit" in err and "Traceback" not in err

    relabelled = dict(payload, labels=["calm", "angry", "happy", "sad", "other", "fearful", "disgust", "surprised"])
    torch.save(relabelled, tmp_path / "relabelled.pt")
    with pytest.raises(CheckpointError, match=r"relabelled\.pt: labels differ"):
        predict.Predictor(tmp_path / "relabelled.pt", device="cpu")
    # on a corpus evaluate would score (the corpus the checkpoint trained on), refused for its labels
    code = evaluate.main(["--checkpoint", str(tmp_path / "relabelled.pt"), "--data-dir", str(corpus), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "labels differ" in err and "Traceback" not in err


def test_predict_bad_arguments(setup, media_files):
    from ser_gpu.errors import ParameterError

    _, _, ckpt = setup
    with pytest.raises(ParameterError, match="window"):
        predict.Predictor(ckpt, window=0.0)
    with pytest.raises(ParameterError, match="top_k"):
        predict.predict_files([media_files / "a.wav"], ckpt, top_k=0)
    with pytest.raises(ParameterError, match="does not exist"):
        predict.find_media([media_files / "missing.wav"])


def test_metrics_by_hand_with_an_absent_class():
    # truth a a b b b b, predicted a b b b a c: worked out on paper, class c never occurs in the truth
    truth = torch.tensor([0, 0, 1, 1, 1, 1])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    m = evaluate.metrics_from_predictions(truth, preds, ["a", "b", "c"])
    assert m["confusion"] == [[1, 1, 0], [1, 2, 1], [0, 0, 0]]
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["uar"] == pytest.approx(0.5)  # mean of recall a (1/2) and b (2/4); c has no clips
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(4 / 7)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["weighted_f1"] == pytest.approx(23 / 42)


def test_metrics_of_no_clips_are_nan():
    m = evaluate.metrics_from_predictions(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long),
                                          ["a", "b"])
    assert m["n_clips"] == 0 and m["confusion"] == [[0, 0], [0, 0]]
    assert all(math.isnan(m[k]) for k in ("accuracy", "uar", "weighted_f1"))


# ------------------------------------------------------------------------- predict: memory-bound details

def _random_checkpoint(path: Path) -> Path:
    from ser_gpu.checkpoint import save_checkpoint
    from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
    from ser_gpu.transforms.features import FEATURE_ROWS, FeatureConfig

    torch.manual_seed(0)
    config = ModelConfig(input_dim=len(FEATURE_ROWS), n_classes=len(EMOTIONS))
    fc = FeatureConfig(max_frames=None, tonnetz=False)  # each batch keeps its own frame count
    return save_checkpoint(path, model=CNNBiLSTMAttention(config).eval(), model_config=config.to_dict(),
                           feature_config=fc.to_dict(), labels=list(EMOTIONS))


@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """A random-weight checkpoint and an 11 s file of tones and silences, so trimming leaves its 4 s
    windows different lengths (windows 0-4, 2-6, 4-8, 6-10 and the rest 8-11 s)."""
    d = tmp_path_factory.mktemp("gappy")
    parts = [clip(2, 1, 0, seconds=1.0), np.zeros(5 * SR, np.float32), clip(4, 2, 1, seconds=1.0),
             np.zeros(int(2.5 * SR), np.float32), clip(6, 3, 0, seconds=1.5)]
    sf.write(d / "gappy.wav", np.concatenate(parts), SR)
    return _random_checkpoint(d / "random.pt"), d / "gappy.wav"


def test_default_batch_size_depends_on_the_device(gappy):
    from ser_gpu.errors import ParameterError

    ckpt, _ = gappy
    assert predict.Predictor(ckpt, device="cpu").batch_size == predict.CPU_BATCH_SIZE == 1
    assert predict.Predictor(ckpt, device="cpu", batch_size=7).batch_size == 7
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ParameterError, match="batch_size"):
            predict.Predictor(ckpt, device="cpu", batch_size=bad)
    assert "1 on the CPU" in predict.build_parser().format_help().replace("\n", " ").replace("  ", " ")


def test_the_model_meets_one_frame_count_and_answers_as_without_padding(gappy):
    """Trimmed windows give each batch its own frame count; the model gets every batch padded to a
    full window's frames (so the CPU convolutions cache one primitive per batch size, not one per
    count), and the probabilities equal those of the unpadded batches."""
    ckpt, wav = gappy
    p = predict.Predictor(ckpt, device="cpu", batch_size=2)
    extracted, modelled = [], []
    extractor, model = p.extractor.forward, p.model.forward
    p.extractor.forward = lambda *a: extracted.append(extractor(*a)) or extracted[-1]
    p.model.forward = lambda x, fl: modelled.append(tuple(x.shape)) or model(x, fl)
    padded = p.predict([wav], timeline=True)[0]
    assert len({b.features.shape[-1] for b in extracted}) > 1  # the file does vary the counts
    assert {shape[-1] for shape in modelled} == {1 + 4 * SR // 512}

    q = predict.Predictor(ckpt, device="cpu", batch_size=2)
    q._model_frames = 0  # no padding: the model sees each batch's own frame count
    plain = q.predict([wav], timeline=True)[0]
    assert padded["windows"] == plain["windows"] == 5
    for k in EMOTIONS:
        assert padded["probabilities"][k] == pytest.approx(plain["probabilities"][k], abs=1e-6)
    for a, b in zip(padded["timeline"], plain["timeline"]):
        assert list(a["probabilities"].values()) == pytest.approx(list(b["probabilities"].values()), abs=1e-6)
