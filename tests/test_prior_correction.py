"""``prior_correction``: the model answers under a uniform class prior (each half's softmax divided by the class
prior it was trained under), set by training from the training split's counts; old configs read as off."""

from __future__ import annotations

import pytest
import torch

from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import load_waveforms, scan_corpus, split_clips
from ser_gpu.errors import ParameterError
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.models.stats_head import clip_statistics
from ser_gpu.train import RECIPES, TrainConfig, build_parser, main, train_model

from tests.tiny_corpus import FAST, write_corpus

SMALL = dict(input_dim=5, n_classes=4, channels=(16, 16), lstm_hidden=16, lstm_layers=1)
COUNTS = torch.tensor([3.0, 6.0, 6.0, 12.0])


def _model(stats_head=True, seed=0):
    torch.manual_seed(seed)
    model = CNNBiLSTMAttention(stats_head=stats_head, prior_correction=True, **SMALL).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 5, 20, generator=g) * torch.arange(1.0, 7.0)[:, None, None]
    lengths = torch.tensor([20, 7, 13, 20, 4, 16])
    if stats_head:
        model.fit_stats_head(model.clip_statistics(x, lengths), torch.tensor([0, 1, 2, 3, 1, 3]), c=1.0)
    return model, x, lengths


def _divided(p, prior):
    q = p / prior
    return q / q.sum(-1, keepdim=True)


@pytest.mark.parametrize("network_balanced", [False, True])
def test_each_half_is_divided_by_its_own_prior(network_balanced):
    model, x, lengths = _model()
    before_fused, before_network = model(x, lengths), model(x, lengths, fuse=False)
    model.set_class_prior(COUNTS, network_balanced=network_balanced)
    prior = COUNTS / COUNTS.sum()
    network = model(x, lengths, fuse=False)
    torch.testing.assert_close(network, before_network)  # training's logits are untouched
    head = model.stats_linear((clip_statistics(x, lengths) - model.stats_mean) / model.stats_std)
    net_p = network.softmax(-1) if network_balanced else _divided(network.softmax(-1), prior)
    want = (net_p + _divided(head.softmax(-1), prior)) / 2
    got = model(x, lengths)
    torch.testing.assert_close(got.exp(), want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, before_fused, atol=1e-3)
    # the rarest class gains against the commonest one in every answer
    assert bool(((got[:, 0] - got[:, 3]) > (before_fused[:, 0] - before_fused[:, 3])).all())


def test_without_a_head_the_logits_are_divided_and_a_uniform_prior_changes_nothing():
    model, x, lengths = _model(stats_head=False)
    plain = model(x, lengths)
    model.set_class_prior(torch.full((4,), 5.0))
    torch.testing.assert_close(model(x, lengths), plain)
    model.set_class_prior(COUNTS)
    torch.testing.assert_close(model(x, lengths).softmax(-1), _divided(plain.softmax(-1), COUNTS / COUNTS.sum()))
    assert "head_log_prior" not in model.state_dict()


def test_an_absent_class_is_not_raised_and_buffers_round_trip():
    model, x, lengths = _model()
    model.set_class_prior(torch.tensor([0.0, 2.0, 4.0, 8.0]))
    log_prior = model.head_log_prior
    # the absent class 0 takes the largest prior of the others (class 3's); a common shift is removed
    assert float(log_prior[0]) == pytest.approx(float(log_prior[3]))
    assert float(log_prior[2] - log_prior[1]) == pytest.approx(float(torch.log(torch.tensor(2.0))))
    assert float(log_prior.sum()) == pytest.approx(0.0, abs=1e-6)
    again = CNNBiLSTMAttention(model.config).eval()
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again(x, lengths), model(x, lengths))
    plain = CNNBiLSTMAttention(stats_head=True, **SMALL)
    assert not any(k.endswith("log_prior") for k in plain.state_dict())
    config = model.config.to_dict()
    del config["prior_correction"]  # a config written before the setting
    assert ModelConfig.from_dict(config).prior_correction is False


def test_bad_priors_and_settings():
    model, _, _ = _model()
    for bad, match in ((torch.tensor([1.0, 2.0]), r"counts must be a tensor of shape \(4,\)"),
                       ([1, 2, 3, 4], r"counts must be a tensor of shape \(4,\)"),
                       (torch.tensor([1.0, -1.0, 2.0, 2.0]), r"non-negative and not all 0, got \[1.0, -1.0"),
                       (torch.zeros(4), r"not all 0, got \[0.0, 0.0"),
                       (torch.tensor([1.0, float("nan"), 2.0, 2.0]), "must be finite")):
        with pytest.raises(ParameterError, match=match):
            model.set_class_prior(bad)
    with pytest.raises(ParameterError, match="set_class_prior needs a model built with prior_correction=True"):
        CNNBiLSTMAttention(**SMALL).set_class_prior(COUNTS)
    with pytest.raises(ParameterError, match="prior_correction must be True or False, got 1"):
        ModelConfig(prior_correction=1)
    with pytest.raises(ParameterError, match="prior_correction must be True or False, got 'yes'"):
        TrainConfig(prior_correction="yes")


def test_recipes_configs_and_cli(capsys):
    assert TrainConfig.for_recipe("clip").prior_correction and TrainConfig.for_recipe("speech").prior_correction
    assert TrainConfig.for_recipe("speaker").prior_correction
    assert RECIPES["original"]["prior_correction"] is False  # the original system's recipe, as it was
    assert TrainConfig.for_recipe("original").model_config(8).prior_correction is False
    stored = TrainConfig().to_dict()
    del stored["prior_correction"]  # a run stored before the setting answered uncorrected
    assert TrainConfig.from_dict(stored).prior_correction is False
    assert build_parser().parse_args(["--no-prior-correction"]).prior_correction is False
    assert build_parser().parse_args([]).prior_correction is None  # the recipe's


@pytest.fixture(scope="module")
def uneven_corpus(tmp_path_factory):
    """The tiny corpus with one clip of two of each actor's neutral clips removed: neutral half as frequent."""
    root = write_corpus(tmp_path_factory.mktemp("uneven"))
    for path in root.glob("Actor_*/03-01-01-01-02-01-*.wav"):
        path.unlink()
    return root


@pytest.mark.parametrize("recipe, balanced_network", [("speech", True), ("clip", False)])
def test_training_sets_the_prior_of_its_training_split(uneven_corpus, tmp_path, monkeypatch, recipe,
                                                       balanced_network):
    """The buffers hold the training split's prior; the validation loss is balanced (it scores the answer
    under the uniform prior the answer assumes) while the training loss keeps the recipe's weighting."""
    import ser_gpu.train as train_mod

    losses = {}
    evaluate = train_mod._Run.evaluate

    def spy(self, *args, **kwargs):
        losses["train"], losses["eval"] = self.criterion.weight, self.eval_criterion.weight
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(train_mod._Run, "evaluate", spy)
    out = tmp_path / "run"
    settings = {**FAST, "recipe": recipe}
    kw = dict(data_dirs=[str(uneven_corpus)], out=str(out), cache_dir=str(tmp_path / "c"), split="actor",
              channels=[16, 32], lstm_hidden=16, lstm_layers=1, **settings)
    train_model(epochs=1, **kw)
    state = load_checkpoint(out / "best.pt")["model_state"]
    clips = scan_corpus([str(uneven_corpus)])
    _, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(tmp_path / "c"),
                              progress=False)
    split = split_clips(clips, method="actor", seed=0)
    counts = torch.bincount(torch.tensor([clips[i].label for i in split.train]), minlength=8).double()
    assert 0 < counts[0] < counts[2]  # neutral rarer, and 4 of the 8 emotions absent
    log_prior = torch.log(torch.where(counts > 0, counts, counts.max()) / counts.sum())
    log_prior = (log_prior - log_prior.mean()).float()
    torch.testing.assert_close(state["head_log_prior"], log_prior)
    torch.testing.assert_close(state["network_log_prior"], torch.zeros(8) if balanced_network else log_prior)
    assert load_checkpoint(out / "best.pt")["model_config"]["prior_correction"] is True
    balanced = torch.where(counts > 0, counts.sum() / (8 * counts.clamp_min(1)), 0.0).float()
    torch.testing.assert_close(losses["eval"].cpu(), balanced)
    if balanced_network:
        torch.testing.assert_close(losses["train"].cpu(), balanced)
    else:
        assert losses["train"] is None
    losses.clear()
    # --no-prior-correction: no buffers, the answer as before the setting
    assert main(["--data-dir", str(uneven_corpus), "--out", str(tmp_path / "off"), "--cache-dir", str(tmp_path / "c"),
                 "--split", "actor", "--epochs", "1", "--recipe", recipe, "--no-prior-correction", "--quiet",
                 "--channels", "16", "32", "--lstm-hidden", "16", "--lstm-layers", "1",
                 "--batch-size", "8"]) == 0
    off = load_checkpoint(tmp_path / "off" / "best.pt")
    assert off["model_config"]["prior_correction"] is False
    if not balanced_network:  # without the correction clip's validation loss is unweighted, as before
        assert losses["eval"] is None and losses["train"] is None
    assert not any(k.endswith("log_prior") for k in off["model_state"])


@pytest.mark.parametrize("class_weights", [False, True])
def test_the_benchmarks_each_half_variant_is_the_models_answer(class_weights):
    """benchmarks/prior_correction.py measured the rule the model implements: its 'each half / its prior'
    answer is the corrected model's, and with a uniform prior every variant is the plain answer."""
    from benchmarks.prior_correction import variants

    model, x, lengths = _model()
    network = model(x, lengths, fuse=False).softmax(-1)
    head = model.stats_linear((clip_statistics(x, lengths) - model.stats_mean) / model.stats_std).softmax(-1)
    plain = model(x, lengths).exp()
    uniform = variants(network, head, torch.full((4,), 0.25), class_weights=class_weights)
    for name in ("fused", "fused / prior", "head / prior", "each half / its prior"):
        torch.testing.assert_close(uniform[name], plain, rtol=1e-5, atol=1e-6)
    model.set_class_prior(COUNTS, network_balanced=class_weights)
    got = variants(network, head, COUNTS / COUNTS.sum(), class_weights=class_weights)
    torch.testing.assert_close(got["each half / its prior"], model(x, lengths).exp(), rtol=1e-5, atol=1e-6)


def test_class_log_prior_is_the_centred_log_frequency_with_absent_classes_at_the_largest():
    """The rule set_class_prior and the benchmarks share: log(n_k / n) centred; an absent class takes the
    largest of the others; bad counts refused naming the value."""
    from ser_gpu.models.cnn_bilstm_attention import class_log_prior

    got = class_log_prior(torch.tensor([1.0, 3.0, 0.0]), 3)
    frequency = torch.tensor([0.25, 0.75, 0.75], dtype=torch.float64).log()  # the absent one as the largest
    torch.testing.assert_close(got, frequency - frequency.mean())
    assert got.dtype == torch.float64 and abs(float(got.sum())) < 1e-12
    for bad in (torch.tensor([1.0, -1.0, 2.0]), torch.zeros(3), torch.tensor([1.0, float("nan"), 1.0])):
        with pytest.raises(ParameterError, match="counts must be finite"):
            class_log_prior(bad, 3)
    with pytest.raises(ParameterError, match=r"shape \(3,\)"):
        class_log_prior(torch.ones(4), 3)
