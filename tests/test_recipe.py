"""Training recipes: the speech recipe's defaults, ``--recipe original``, the cosine schedule, selection by
validation UAR, class weights, and standardisation with the training split's statistics (model input_norm)."""

from __future__ import annotations

import dataclasses
import inspect

import json
import math

import pytest
import torch

from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import load_waveforms, scan_corpus, split_clips
from ser_gpu.errors import ParameterError
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.train import DEFAULT_RECIPE, RECIPES, TrainConfig, build_parser, cosine_factor, main, train_model
from ser_gpu.transforms.features import FeatureConfig, FeatureExtractor

from tests.conftest import assert_resumed
from tests.tiny_corpus import FAST, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


# ------------------------------------------------------------------------------------------- configs

def test_clip_is_the_default_recipe_and_speech_the_field_defaults():
    """train_model, the CLI and for_recipe() start from clip (README "Real speech": the most accurate from
    one recording); TrainConfig()'s own fields are the speech recipe's, which the others change."""
    assert DEFAULT_RECIPE == "clip" and RECIPES["speech"] == {}
    assert TrainConfig.for_recipe() == TrainConfig.for_recipe("clip")
    assert build_parser().parse_args([]).recipe == "clip"
    assert inspect.signature(train_model).parameters["recipe"].default is None  # None: DEFAULT_RECIPE


def test_speech_recipe_and_original_is_one_name_away():
    speech, original = TrainConfig(), TrainConfig.for_recipe("original")
    assert speech == TrainConfig.for_recipe("speech")
    assert speech.recipe == "speech" and original.recipe == "original"
    assert (speech.epochs, speech.lr, speech.batch_size, speech.schedule, speech.select, speech.normalize) == \
        (30, 1e-3, 32, "cosine", "last", "train")
    assert speech.class_weights and speech.channels == [64, 128, 128]
    # the statistics head is fused by default (README "Real speech"); the original system had none
    assert speech.stats_head == 0.1 and speech.model_config(8).stats_head
    assert original.stats_head is None and not original.model_config(8).stats_head
    assert speech.augment_copies is None  # fresh waveform augmentation every epoch
    # the original system's train_model defaults and architecture
    assert (original.epochs, original.lr, original.batch_size, original.weight_decay) == (300, 1e-4, 16, 1e-3)
    assert (original.schedule, original.select, original.normalize, original.class_weights) == \
        ("plateau", "loss", "valid", False)
    # ModelConfig's defaults are the original architecture; the model standardises each clip itself
    assert original.model_config(8) == ModelConfig(clip_norm=True)
    assert original.feature_config().normalize is None  # so the extractor gives it the raw rows
    assert not original.model_config(8).input_norm and speech.model_config(8).input_norm
    # given settings win over the recipe's
    assert TrainConfig.for_recipe("original", lr=5e-4).lr == 5e-4
    assert TrainConfig.for_recipe("original", lr=5e-4).schedule == "plateau"


def test_clip_recipe_is_the_original_with_a_head_on_the_raw_rows():
    clip, original = TrainConfig.for_recipe("clip"), TrainConfig.for_recipe("original")
    assert clip.recipe == "clip" and clip.stats_head == 0.01 and clip.prior_correction and clip.average_weights
    assert dataclasses.replace(clip, recipe="original", stats_head=None, prior_correction=False,
                               average_weights=False) == original
    model = clip.model_config(8)
    assert model.clip_norm and model.stats_head and not model.input_norm and model.prior_correction
    assert TrainConfig.for_recipe("clip", stats_head=None).stats_head is None  # given settings win


def test_speaker_recipe():
    speaker = TrainConfig.for_recipe("speaker")
    assert (speaker.normalize, speaker.augment_copies, speaker.stats_head) == ("speaker", 4, 0.1)
    assert speaker.model_config(8).stats_head and not speaker.model_config(8).input_norm
    assert (speaker.epochs, speaker.lr, speaker.channels) == (30, 1e-3, [64, 128, 128])  # the speech recipe's rest
    # --no-augment drops the recipe's copies (nothing to copy) unless they are given too (then refused)
    assert TrainConfig.for_recipe("speaker", augment=False).augment_copies is None
    with pytest.raises(ParameterError, match="augment_copies=2 needs waveform augmentation"):
        TrainConfig.for_recipe("speaker", augment=False, augment_copies=2)
    assert build_parser().parse_args(["--recipe", "speaker"]).recipe == "speaker"


def test_configs_written_before_recipes_read_as_the_original_recipe():
    old = TrainConfig.for_recipe("original").to_dict()
    for key in ("recipe", "schedule", "warmup_epochs", "select", "class_weights", "channels", "lstm_hidden",
                "lstm_layers", "dropout"):
        old.pop(key)
    read = TrainConfig.from_dict(old)
    assert read == TrainConfig.for_recipe("original")
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_configs_written_before_the_statistics_head_read_without_it():
    """A speech run stored before the head existed (no ``stats_head`` key) had none: reading it must not
    give it the head the default recipe now fuses."""
    old = TrainConfig().to_dict()
    old.pop("stats_head")
    read = TrainConfig.from_dict(old)
    assert read.stats_head is None and not read.model_config(8).stats_head
    assert read == TrainConfig(stats_head=None)
    assert TrainConfig.from_dict(TrainConfig(stats_head=1.0).to_dict()).stats_head == 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(recipe="fast"), "recipe must be one of .*'fast'"),
    (dict(schedule="step"), "schedule must be one of .*'step'"),
    (dict(select="acc"), "select must be one of .*'acc'"),
    (dict(warmup_epochs=-1), "warmup_epochs must be a non-negative integer, got -1"),
    (dict(normalize="clip"), "normalize must be one of .*'clip'"),
    (dict(channels=[64, 0]), r"channels\[1\]"),
    (dict(lstm_hidden=0), "lstm_hidden"),
    (dict(dropout=1.5), "dropout"),
    (dict(split_seed=-1), "split_seed must be a non-negative integer or None, got -1"),
    (dict(split_seed=True), "split_seed must be a non-negative integer or None, got True"),
    (dict(augment_copies=0), "augment_copies must be a positive integer, got 0"),
    (dict(augment_copies=1.5), "augment_copies must be a positive integer, got 1.5"),
    (dict(augment_copies=True), "augment_copies must be a positive integer, got True"),
    (dict(augment_copies=2, augment=False), "augment_copies=2 needs waveform augmentation, but augment is False"),
    (dict(val_fold=1), r"val_fold must be None or, with split='actor' and n_folds, .* got val_fold=1 \(split='random'"),
    # refused when the settings are made, not after reading the corpus
    (dict(n_folds=3), r"n_folds applies to split='actor' only, got n_folds=3 with split='random' \(on the command "
                      r"line: --folds needs --split actor\)"),
    (dict(split="actor", val_fold=1), r"got val_fold=1 \(split='actor', n_folds=None"),
    (dict(split="actor", n_folds=4, fold=2, val_fold=2), r"other than fold; got val_fold=2 .*fold=2\)"),
    (dict(split="actor", n_folds=4, val_fold=4), r"got val_fold=4 \(split='actor', n_folds=4, fold=0\)"),
    (dict(split="actor", n_folds=4, val_fold=True), "got val_fold=True"),
])
def test_bad_recipe_settings(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TrainConfig(**kwargs)


def test_for_recipe_refuses_an_unknown_name():
    with pytest.raises(ParameterError, match="recipe must be one of .*'nope'"):
        TrainConfig.for_recipe("nope")


def test_cli_passes_only_named_options():
    parser = build_parser()
    assert parser.parse_args(["--normalize", "none"]).normalize is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--normalize", "clip"])
    assert parser.parse_args(["--no-class-weights"]).class_weights is False
    assert parser.parse_args(["--channels", "32", "64"]).channels == [32, 64]
    assert parser.parse_args([]).epochs is None  # the recipe's
    assert parser.parse_args([]).stats_head is None  # not given: the recipe's (clip: 0.01)
    assert parser.parse_args(["--stats-head", "none"]).stats_head is None
    assert parser.parse_args(["--stats-head", "0.5"]).stats_head == 0.5


def test_cli_stats_head_none_trains_the_network_alone(monkeypatch):
    """``--stats-head none`` reaches the run's config as None (the head off); not given, the recipe's."""
    import ser_gpu.train as train

    seen = []
    monkeypatch.setattr(train, "train_model",
                        lambda *a, **kw: seen.append(kw) or dict(epochs_run=0, stopped_early=False, out="-"))
    for argv in (["--stats-head", "none"], [], ["--recipe", "original"], ["--stats-head", "2"]):
        assert main(argv + ["--quiet"]) == 0
    assert [kw.get("stats_head", "recipe's") for kw in seen] == [None, "recipe's", "recipe's", 2.0]
    configs = [TrainConfig.for_recipe(kw.get("recipe"), **{k: v for k, v in kw.items() if k == "stats_head"})
               for kw in seen]
    assert [c.stats_head for c in configs] == [None, 0.01, None, 2.0]  # not given: the default recipe's


def test_cosine_factor():
    f = [cosine_factor(s, warmup=4, total=20) for s in range(24)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and f[12] == pytest.approx(0.5) and f[20] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))  # decays after the warm-up
    assert cosine_factor(0, warmup=0, total=10) == 1.0


# ------------------------------------------------------------------------------------------- the model

def test_input_norm_equals_standardised_input():
    torch.manual_seed(0)
    cfg = dict(channels=(16, 32), lstm_hidden=16, lstm_layers=1, attention_heads=4)
    plain = CNNBiLSTMAttention(ModelConfig(**cfg)).eval()
    normed = CNNBiLSTMAttention(ModelConfig(**cfg, input_norm=True)).eval()
    missing, unexpected = normed.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["input_mean", "input_std"] and not unexpected
    mean, std = torch.randn(68) * 100, torch.rand(68) * 50 + 0.1
    normed.set_input_statistics(mean, std)
    x = torch.randn(3, 68, 20) * std[:, None] + mean[:, None]
    fl = torch.tensor([20, 13, 7])
    x = x * (torch.arange(20) < fl[:, None, None])  # zero padding, as the extractor gives
    with torch.no_grad():
        expected = plain((x - mean[:, None]) / std[:, None], fl)
        torch.testing.assert_close(normed(x, fl), expected, rtol=1e-5, atol=1e-5)
        # padding still does not matter
        wider = torch.nn.functional.pad(x, (0, 9))
        torch.testing.assert_close(normed(wider, fl), expected, rtol=1e-5, atol=1e-5)
    state = normed.state_dict()
    torch.testing.assert_close(state["input_mean"], mean)
    torch.testing.assert_close(state["input_std"], std)


def test_set_input_statistics_bad_inputs():
    model = CNNBiLSTMAttention(ModelConfig(channels=(8,), lstm_hidden=8, lstm_layers=1, attention_heads=2,
                                           input_norm=True))
    with pytest.raises(ParameterError, match=r"mean must be a tensor of shape \(68,\)"):
        model.set_input_statistics(torch.zeros(67), torch.ones(68))
    with pytest.raises(ParameterError, match="std must be positive"):
        model.set_input_statistics(torch.zeros(68), torch.zeros(68))
    with pytest.raises(ParameterError, match="mean must be finite"):
        model.set_input_statistics(torch.full((68,), math.nan), torch.ones(68))
    plain = CNNBiLSTMAttention(ModelConfig(channels=(8,), lstm_hidden=8, lstm_layers=1, attention_heads=2))
    with pytest.raises(ParameterError, match="input_norm=True"):
        plain.set_input_statistics(torch.zeros(68), torch.ones(68))
    with pytest.raises(ParameterError, match="input_norm must be True or False"):
        ModelConfig(input_norm="yes")


# ------------------------------------------------------------------------------------------- runs

def _small(**more):
    return dict(FAST, channels=[16, 32], lstm_hidden=16, lstm_layers=1, **more)


def test_training_statistics_are_the_training_split_features(corpus, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache), split="actor", **_small())
    state = load_checkpoint(out / "last.pt")["model_state"]
    # computed here from the training split's clips, one at a time, without the training code
    clips = scan_corpus([str(corpus)])
    waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(cache), progress=False)
    split = split_clips(clips, method="actor", seed=0)
    extractor = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False, max_frames=None), trim=False)
    rows = torch.cat([extractor(waves[i][None]).features[0].double() for i in split.train], dim=1)
    assert rows.shape[1] < 100 * len(split.train)  # the clips' own frames, no padding
    torch.testing.assert_close(state["input_mean"].double(), rows.mean(1), rtol=1e-5, atol=1e-6)
    std = rows.std(1, unbiased=False)
    assert int((std == 0).sum()) == 6  # the tonnetz rows, off here: a row that never varies is divided by 1
    torch.testing.assert_close(state["input_std"].double(), torch.where(std > 0, std, 1.0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("select, key, pick", [("last", "epoch", max), ("uar", "val_uar", max),
                                               ("loss", "val_loss", min)])
def test_best_checkpoint_follows_select(corpus, tmp_path, select, key, pick):
    out = tmp_path / "run"
    result = train_model(epochs=4, data_dirs=[str(corpus)], out=str(out), cache_dir=str(tmp_path / "c"),
                         select=select, **_small())
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    assert load_checkpoint(out / "best.pt")["epoch"] == pick(history, key=lambda h: h[key])["epoch"]
    assert result["best_epoch"] == pick(history, key=lambda h: h[key])["epoch"]


def test_cosine_lr_per_step_and_resume(corpus, tmp_path):
    out = tmp_path / "run"
    kw = dict(data_dirs=[str(corpus)], out=str(out), cache_dir=str(tmp_path / "c"), warmup_epochs=1, **_small())
    first = train_model(epochs=1, **kw)
    resumed = train_model(epochs=3, resume=True, **kw)
    assert_resumed(first["history"], resumed["history"])  # the schedule went on from the stored state
    steps = math.ceil(resumed["split_sizes"]["train"] / 8)  # optimizer steps per epoch (batches of 8)
    lrs = [h["lr"] for h in resumed["history"]]  # the lr at each epoch's start
    assert lrs[0] == pytest.approx(1e-3 / steps)
    assert lrs[1] == pytest.approx(1e-3 * cosine_factor(steps, warmup=steps, total=3 * steps))
    assert lrs[2] == pytest.approx(1e-3 * cosine_factor(2 * steps, warmup=steps, total=3 * steps))


def test_class_weights_follow_the_training_split(corpus, tmp_path, monkeypatch):
    import ser_gpu.train as train_mod

    seen = {}
    original = train_mod.nn.CrossEntropyLoss

    def spy(*args, **kwargs):
        seen["weight"] = kwargs.get("weight")
        return original(*args, **kwargs)

    monkeypatch.setattr(train_mod.nn, "CrossEntropyLoss", spy)
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(tmp_path / "r"), cache_dir=str(tmp_path / "c"),
                **_small())
    # 4 emotions of 8: present ones weigh n / (8 n_k), absent ones 0
    weight = seen["weight"]
    present = weight > 0
    assert int(present.sum()) == 4
    assert torch.allclose(weight[present], weight[present][0])  # the tiny corpus is balanced
    assert float(weight[present][0]) == pytest.approx(0.5)  # n / (8 n_k) with n_k = n / 4


def test_cli_recipe_original_is_stored(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--epochs", "1",
                 "--recipe", "original", "--channels", "16", "32", "--lstm-hidden", "16", "--lstm-layers", "1",
                 "--batch-size", "8", "--quiet"])
    assert code == 0, capsys.readouterr().err
    stored = TrainConfig.from_dict(load_checkpoint(out / "last.pt")["train_config"])
    assert stored.recipe == "original" and stored.schedule == "plateau" and stored.lr == RECIPES["original"]["lr"]
    assert stored.channels == [16, 32] and stored.epochs == 1 and stored.normalize == "valid"
    assert "input_mean" not in load_checkpoint(out / "last.pt")["model_state"]
