"""normalize='speaker': rows standardised with each speaker's own statistics, in training, evaluate and predict."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ser_gpu.data import WaveformSet, load_waveforms, scan_corpus
from ser_gpu.errors import ParameterError
from ser_gpu.transforms.features import FeatureConfig, FeatureExtractor
from ser_gpu.transforms.row_stats import RowStatistics, standardize_rows

from tests.tiny_corpus import FAST, write_corpus

SMALL = dict(FAST, channels=[16, 32], lstm_hidden=16, lstm_layers=1, normalize="speaker")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    """One speaker-normalised training run (1 epoch, actor split), its statistics captured."""
    import ser_gpu.train as train_mod

    root = tmp_path_factory.mktemp("run")
    seen = {}
    original = train_mod._Run._speaker_statistics

    def spy(self):
        seen["mean"], seen["std"] = original(self)
        seen["speakers"] = list(self.speakers)
        return seen["mean"], seen["std"]

    mp = pytest.MonkeyPatch()
    mp.setattr(train_mod._Run, "_speaker_statistics", spy)
    try:
        result = train_mod.train_model(epochs=1, data_dirs=[str(corpus)], out=str(root / "out"),
                                       cache_dir=str(root / "cache"), split="actor", **SMALL)
    finally:
        mp.undo()
    return {"out": root / "out", "cache": root / "cache", "result": result, **seen}


def _rows(waves):
    extractor = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False, max_frames=None), trim=False)
    return [extractor(w[None]).features[0].double() for w in waves]


# ------------------------------------------------------------------------------------- the functions

def test_row_statistics_pool_each_groups_valid_frames():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 9, generator=g, dtype=torch.float64) * 3 + 1
    fl = torch.tensor([9, 4, 7, 1, 6])
    groups = torch.tensor([0, 2, 0, 2, 0])
    stats = RowStatistics(4, 3)
    stats.add(x[:2], fl[:2], groups[:2])
    stats.add(x[2:], fl[2:], groups[2:])  # batches add up
    mean, std = stats.result()
    for k in (0, 2):
        frames = torch.cat([x[i, :, :fl[i]] for i in range(5) if groups[i] == k], dim=1)
        torch.testing.assert_close(mean[k].double(), frames.mean(1), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(std[k].double(), frames.std(1, unbiased=False), rtol=1e-5, atol=1e-6)
    # groups without frames: mean 0, std 1 (never a division by zero)
    assert torch.equal(mean[1], torch.zeros(3)) and torch.equal(std[1], torch.ones(3))
    assert torch.equal(std[3], torch.ones(3))


def test_standardize_rows_per_example_and_zero_padding():
    x = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    fl = torch.tensor([4, 2])
    mean = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    std = torch.tensor([[2.0, 2.0, 2.0], [1.0, 4.0, 1.0]])
    out = standardize_rows(x, fl, mean, std)
    torch.testing.assert_close(out[0], (x[0] - mean[0, :, None]) / 2)
    torch.testing.assert_close(out[1, :, :2], x[1, :, :2] / std[1, :, None])
    assert (out[1, :, 2:] == 0).all()


def test_waveform_set_groups_and_bad_groups():
    waves = [torch.ones(5), torch.ones(3), torch.ones(4)]
    ws = WaveformSet(waves, [0, 1, 0], [2, 0, 2]).to("cpu")
    assert ws.groups.tolist() == [2, 0, 2] and ws.groups.device.type == "cpu"
    assert WaveformSet(waves, [0, 1, 0]).groups.tolist() == [0, 0, 0]
    with pytest.raises(ParameterError, match="groups must have one entry per waveform \\(3\\), got 2"):
        WaveformSet(waves, [0, 1, 0], [0, 1])
    with pytest.raises(ParameterError, match="groups must be non-negative, got -1"):
        WaveformSet(waves, [0, 1, 0], [0, -1, 0])
    with pytest.raises(ParameterError, match="groups must be integers"):
        WaveformSet(waves, [0, 1, 0], [0.5, 1, 0])


# ------------------------------------------------------------------------------------------ training

def test_cli_normalize_speaker(capsys):
    from ser_gpu.train import build_parser

    assert build_parser().parse_args(["--normalize", "speaker"]).normalize == "speaker"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--normalize", "speakers"])
    assert "train, speaker, valid, padded, none; got 'speakers'" in capsys.readouterr().err


def test_training_statistics_are_each_speakers_clips(corpus, run):
    clips = scan_corpus([str(corpus)])
    waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(run["cache"]),
                                  progress=False)
    rows = _rows(waves)
    assert run["speakers"] == sorted({c.speaker for c in clips}) and len(run["speakers"]) == 4
    for k, speaker in enumerate(run["speakers"]):
        frames = torch.cat([r for r, c in zip(rows, clips) if c.speaker == speaker], dim=1)
        torch.testing.assert_close(run["mean"][k].double(), frames.mean(1), rtol=1e-5, atol=1e-6)
        std = frames.std(1, unbiased=False)
        torch.testing.assert_close(run["std"][k].double(), torch.where(std > 0, std, 1.0), rtol=1e-4, atol=1e-6)
    # the model keeps no statistics of its own: callers standardise per speaker
    from ser_gpu.checkpoint import load_checkpoint, speaker_normalized

    payload = load_checkpoint(run["out"] / "best.pt")
    assert speaker_normalized(payload) and "input_mean" not in payload["model_state"]
    assert payload["feature_config"]["normalize"] is None


def test_evaluate_standardises_per_speaker_as_training_did(corpus, run, tmp_path, monkeypatch):
    from ser_gpu.data import split_clips
    from ser_gpu.evaluate import evaluate_model
    from ser_gpu.transforms.features import FeatureExtractor

    # the test actor's clips alone (the split training drew): their statistics are the ones training used
    result = json.loads((run["out"] / "result.json").read_text())
    clips = scan_corpus([str(corpus)])
    _, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(run["cache"]), progress=False)
    split = split_clips(clips, method="actor", seed=0)
    folder = tmp_path / "test_actor"
    for i in split.test:
        (folder / clips[i].path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(clips[i].path, folder / clips[i].path.parent.name / clips[i].path.name)
    extracted = []
    real_forward = FeatureExtractor.forward
    monkeypatch.setattr(FeatureExtractor, "forward",
                        lambda self, y, lengths=None: extracted.append(y.shape[0]) or real_forward(self, y, lengths))
    metrics = evaluate_model(run["out"] / "best.pt", [folder], device="cpu", cache_dir=str(run["cache"]),
                             progress=False)
    assert metrics["n_clips"] == result["test"]["n_clips"] == len(split.test)
    assert metrics["confusion"] == result["test"]["confusion"]
    assert sum(extracted) == len(split.test)  # each clip's rows once: statistics and scoring share them


# ------------------------------------------------------------------------------------------- predict

def test_predict_takes_the_files_of_a_call_as_one_speakers(corpus, run):
    from ser_gpu.predict import SPEAKER_MIN_SECONDS, Predictor

    files = sorted(corpus.rglob("*.wav"))[:6]
    predictor = Predictor(run["out"] / "best.pt", device="cpu")
    assert predictor.speaker_normalized
    mean, std, seconds = predictor.speaker_statistics(files)
    # the same rows as scoring reads (the checkpoint's extractor: trimmed), pooled over the files
    extractor = FeatureExtractor(predictor.feature_config)
    from ser_gpu.io import load

    rows = [extractor(load(f, sr=22050)[0][None]).features[0].double() for f in files]
    frames = torch.cat(rows, dim=1)
    torch.testing.assert_close(mean[0].double(), frames.mean(1), rtol=1e-5, atol=1e-6)
    assert seconds == pytest.approx(frames.shape[1] * 512 / 22050)
    results = predictor.predict(files)
    assert all(r["emotion"] in predictor.labels for r in results)
    # six clips of 0.6 s are far less than the statistics want: every answer says so
    for r in results:
        assert any("several recordings of the speaker" in w and f"{SPEAKER_MIN_SECONDS:.0f} s" in w
                   for w in r["warnings"])


def test_predict_answers_depend_on_the_speakers_statistics(corpus, run):
    from ser_gpu.predict import Predictor

    predictor = Predictor(run["out"] / "best.pt", device="cpu")
    files = sorted(corpus.rglob("*.wav"))
    alone = predictor.predict(files[:1])[0]["probabilities"]
    together = predictor.predict(files)[0]["probabilities"]  # the same file, other statistics
    assert alone != together
