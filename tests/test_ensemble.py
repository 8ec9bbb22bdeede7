"""Ensembles of checkpoints: SoftmaxEnsemble, checkpoint.load_models, evaluate and predict with several --checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ser_gpu import evaluate, predict
from ser_gpu.checkpoint import load_models, save_checkpoint
from ser_gpu.data import EMOTIONS
from ser_gpu.errors import CheckpointError, ParameterError
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig, SoftmaxEnsemble
from ser_gpu.transforms.features import FEATURE_ROWS, FeatureConfig

from tests.tiny_corpus import write_corpus

SMALL = dict(channels=(8, 8), lstm_hidden=8, lstm_layers=1, attention_heads=2, classifier_hidden=8)


def _model(seed: int, input_dim: int = len(FEATURE_ROWS)) -> CNNBiLSTMAttention:
    torch.manual_seed(seed)
    return CNNBiLSTMAttention(ModelConfig(input_dim=input_dim, n_classes=len(EMOTIONS), **SMALL)).eval()


def _checkpoint(path: Path, seed: int, *, tonnetz: bool = False, normalize: str = "valid") -> Path:
    fc = FeatureConfig(max_frames=None, tonnetz=tonnetz)
    model = _model(seed, 68 if tonnetz else len(FEATURE_ROWS))
    return save_checkpoint(path, model=model, model_config=model.config.to_dict(), feature_config=fc.to_dict(),
                           labels=list(EMOTIONS), train_config={"normalize": normalize})


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ensemble")
    corpus = write_corpus(d / "corpus", actors=(1, 2))
    return d, corpus, [_checkpoint(d / f"m{k}.pt", seed=k) for k in range(3)]


def test_softmax_ensemble_is_the_mean_of_the_members_softmax():
    members = [_model(k) for k in range(3)]
    ensemble = SoftmaxEnsemble(members).eval()
    x = torch.randn(4, len(FEATURE_ROWS), 37)
    fl = torch.tensor([37, 30, 12, 1])
    with torch.no_grad():
        expected = torch.stack([m(x, fl).softmax(-1) for m in members]).mean(0)
        out = ensemble(x, fl)
    assert out.shape == (4, len(EMOTIONS)) and out.dtype == torch.float32
    torch.testing.assert_close(out.softmax(-1), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.exp(), expected, rtol=1e-5, atol=1e-6)  # already normalised
    assert ensemble.config == members[0].config
    with pytest.raises(ParameterError, match="at least 2 members, got 1"):
        SoftmaxEnsemble(members[:1])


def test_load_models_one_checkpoint_is_the_plain_model_several_an_ensemble(ckpts):
    d, _, paths = ckpts
    model, payloads = load_models(paths[0])
    assert isinstance(model, CNNBiLSTMAttention) and len(payloads) == 1
    model, payloads = load_models(paths)
    assert isinstance(model, SoftmaxEnsemble) and len(model.members) == 3 and len(payloads) == 3
    assert not model.training
    for member, path in zip(model.members, paths):  # each member holds its own checkpoint's weights
        alone, _ = load_models(path)
        for a, b in zip(member.state_dict().values(), alone.state_dict().values()):
            assert torch.equal(a, b)
    with pytest.raises(ParameterError, match="at least one checkpoint"):
        load_models([])


@pytest.mark.parametrize("other, what", [
    (dict(tonnetz=True), "feature_config"),
    (dict(normalize="speaker"), "row standardisation"),
])
def test_load_models_refuses_members_that_read_other_rows(ckpts, tmp_path, other, what):
    _, _, paths = ckpts
    odd = _checkpoint(tmp_path / "odd.pt", seed=9, **other)
    with pytest.raises(CheckpointError, match=f"odd.pt.*cannot join an ensemble with .*m0.pt.*{what}"):
        load_models([paths[0], odd])


def test_predict_with_several_checkpoints_averages_their_probabilities(ckpts):
    _, corpus, paths = ckpts
    files = sorted(corpus.rglob("*.wav"))[:4]
    alone = [predict.predict_files(files, p, device="cpu") for p in paths]
    together = predict.Predictor(paths, device="cpu").predict(files)
    for k, r in enumerate(together):
        mean = torch.tensor([[a[k]["probabilities"][e] for e in EMOTIONS] for a in alone]).mean(0)
        got = torch.tensor([r["probabilities"][e] for e in EMOTIONS])
        torch.testing.assert_close(got, mean, rtol=1e-5, atol=1e-6)
        assert r["emotion"] == EMOTIONS[int(mean.argmax())]
    card = predict.Predictor(paths, device="cpu").card
    assert card["ensemble"] == [str(p) for p in paths]
    assert "ensemble" not in predict.Predictor(paths[0], device="cpu").card


def test_evaluate_with_several_checkpoints_is_the_argmax_of_the_mean_softmax(ckpts, capsys):
    d, corpus, paths = ckpts
    files = sorted(corpus.rglob("*.wav"))
    m = evaluate.evaluate_model(paths, [corpus], cache_dir=d / "cache", progress=False, device="cpu")
    assert m["checkpoint"] == [str(p) for p in paths]
    # the same files, one answer each (a file is one window), through predict's per-model probabilities
    alone = [predict.predict_files(files, p, device="cpu", window=10.0) for p in paths]
    mean = torch.tensor([[[a[k]["probabilities"][e] for e in EMOTIONS] for k in range(len(files))] for a in alone])
    labels = torch.tensor([int(f.name.split("-")[2]) - 1 for f in files])
    expected = evaluate.metrics_from_predictions(labels, mean.mean(0).argmax(-1), EMOTIONS)
    assert m["confusion"] == expected["confusion"] and m["uar"] == expected["uar"]
    # the command line takes several --checkpoint values
    assert evaluate.main(["--checkpoint", *map(str, paths), "--data-dir", str(corpus), "--quiet", "--json",
                          "--cache-dir", str(d / "cache"), "--device", "cpu"]) == 0
    assert '"confusion"' in capsys.readouterr().out
    assert predict.main([str(files[0]), "--checkpoint", *map(str, paths), "--quiet", "--device", "cpu"]) == 0
    assert str(files[0]) in capsys.readouterr().out


def test_evaluate_and_predict_refuse_a_mismatched_member_with_exit_2(ckpts, tmp_path, capsys):
    _, corpus, paths = ckpts
    odd = _checkpoint(tmp_path / "odd.pt", seed=9, tonnetz=True)
    assert evaluate.main(["--checkpoint", str(paths[0]), str(odd), "--data-dir", str(corpus), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "odd.pt" in err and "cannot join an ensemble" in err and "Traceback" not in err
    wav = sorted(corpus.rglob("*.wav"))[0]
    assert predict.main([str(wav), "--checkpoint", str(paths[0]), str(odd), "--quiet"]) == 2
    assert "cannot join an ensemble" in capsys.readouterr().err
