"""The statistics head: clip statistics against numpy, the logistic regression against scikit-learn, the
fused output of CNNBiLSTMAttention, and ``train --stats-head C`` (fitted before the first epoch, kept in
the checkpoints, read by evaluate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import load_waveforms, scan_corpus, split_clips
from ser_gpu.errors import ParameterError
from ser_gpu.models import CNNBiLSTMAttention
from ser_gpu.models.stats_head import STATISTICS, clip_statistics, fit_logistic_regression, standardized_statistics
from ser_gpu.train import TrainConfig, build_parser, main, train_model
from ser_gpu.transforms.features import FeatureConfig, FeatureExtractor

from tests.tiny_corpus import FAST, write_corpus

SMALL = dict(channels=(16, 16), lstm_hidden=16, lstm_layers=1)


def _padded(lengths, rows=5, seed=0, dtype=torch.float32, fill=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((len(lengths), rows, max(lengths) + 3), fill, dtype=dtype)
    for i, n in enumerate(lengths):
        x[i, :, :n] = torch.randn(rows, n, generator=g, dtype=dtype) * (i + 1) + i
    return x, torch.tensor(lengths)


def _numpy_statistics(f: np.ndarray) -> np.ndarray:
    change = np.abs(np.diff(f, axis=1)).mean(1) if f.shape[1] > 1 else np.zeros(f.shape[0])
    return np.concatenate([f.mean(1), f.std(1), *np.quantile(f, [0.1, 0.5, 0.9], axis=1), change])


# ------------------------------------------------------------------------------------ clip_statistics

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("fill", [0.0, 7.5, float("nan")])
def test_clip_statistics_equal_numpy_over_valid_frames(dtype, tol, fill):
    lengths = [1, 2, 10, 37, 40]  # a 1-frame clip, odd and even lengths, one without padding room but 3
    x, L = _padded(lengths, dtype=dtype, fill=fill)
    got = clip_statistics(x, L)
    assert got.shape == (5, len(STATISTICS) * 5) and got.dtype == dtype
    for i, n in enumerate(lengths):
        want = _numpy_statistics(x[i, :, :n].double().numpy())
        np.testing.assert_allclose(got[i].double().numpy(), want, rtol=tol, atol=tol)
    # None: every frame valid
    full = clip_statistics(x[:, :, :10])
    np.testing.assert_allclose(full[2].double().numpy(), _numpy_statistics(x[2, :, :10].double().numpy()),
                               rtol=tol, atol=tol)


def test_clip_statistics_bad_input():
    with pytest.raises(ParameterError, match=r"features must be a float tensor of shape \(B, rows, frames\)"):
        clip_statistics(torch.zeros(3, 4))
    with pytest.raises(ParameterError, match="features must be a float tensor"):
        clip_statistics(torch.zeros(2, 3, 4, dtype=torch.int64))


@pytest.mark.parametrize("per_clip", [False, True])
def test_standardized_statistics_equal_the_statistics_of_standardised_rows(per_clip):
    x, L = _padded([1, 9, 40, 23], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    shape = (4, 5) if per_clip else (5,)
    mean, std = torch.randn(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g,
                                                                               dtype=torch.float64) + 0.1
    want = clip_statistics((x - mean[..., None]) / std[..., None], L)
    torch.testing.assert_close(standardized_statistics(clip_statistics(x, L), mean, std), want)


# ---------------------------------------------------------------------------- fit_logistic_regression

def test_logistic_regression_equals_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(120) % 4
    centres = torch.randn(4, 12, generator=g)
    x = (centres[labels] + 1.5 * torch.randn(120, 12, generator=g)) * torch.logspace(-2, 2, 12)  # mixed scales
    x[:, 5] = 3.0  # a column that never varies
    for c in (0.01, 1.0):
        mean, std, weight, bias = fit_logistic_regression(x, labels, 4, c=c)
        assert std[5] == 1.0
        sk = make_pipeline(StandardScaler(), LogisticRegression(C=c, tol=1e-10, max_iter=10_000))
        sk.fit(x.double().numpy(), labels.numpy())
        ours = torch.softmax(((x - mean) / std) @ weight.T + bias, -1).double().numpy()
        np.testing.assert_allclose(ours, sk.predict_proba(x.double().numpy()), atol=2e-4)


def test_logistic_regression_with_an_absent_class_never_predicts_it():
    g = torch.Generator().manual_seed(2)
    labels = torch.tensor([0, 2] * 20)
    x = torch.randn(40, 3, generator=g) + labels[:, None].float()
    mean, std, weight, bias = fit_logistic_regression(x, labels, 3)
    probs = torch.softmax(((x - mean) / std) @ weight.T + bias, -1)
    assert torch.isfinite(probs).all() and float(probs[:, 1].max()) < 0.05


@pytest.mark.parametrize("kwargs, match", [
    (dict(c=0.0), "c must be a positive finite number, got 0.0"),
    (dict(c=float("inf")), "c must be a positive finite number, got inf"),
    (dict(c=True), "c must be a positive finite number, got True"),
    (dict(max_iter=0), "max_iter must be a positive integer, got 0"),
    (dict(labels=torch.tensor([0, 1, 5, 1])), r"labels must lie in \[0, 3\), got 0..5"),
    (dict(labels=torch.tensor([0, 1])), r"labels must be a tensor of shape \(4,\)"),
    (dict(x=torch.tensor([[0.0], [1.0], [float("nan")], [2.0]])), "x must be finite"),
    (dict(x=torch.zeros(0, 2), labels=torch.zeros(0, dtype=torch.int64)), "x must be a non-empty"),
])
def test_logistic_regression_bad_input(kwargs, match):
    args = dict(x=torch.randn(4, 2), labels=torch.tensor([0, 1, 2, 1]), n_classes=3)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        fit_logistic_regression(args.pop("x"), args.pop("labels"), args.pop("n_classes"), **args)


# ------------------------------------------------------------------------------------------ the model

def _fitted_model(seed=0):
    torch.manual_seed(seed)
    model = CNNBiLSTMAttention(input_dim=5, n_classes=3, stats_head=True, **SMALL).eval()
    x, L = _padded([30, 12, 25, 30, 18, 9], seed=seed)
    model.fit_stats_head(model.clip_statistics(x, L), torch.tensor([0, 1, 2, 0, 1, 2]), c=1.0)
    return model, x, L


def test_fused_output_is_the_log_of_the_mean_softmax():
    model, x, L = _fitted_model()
    fused = model(x, L)
    network = model(x, L, fuse=False)
    stats = clip_statistics(x, L)
    head = model.stats_linear((stats - model.stats_mean) / model.stats_std)
    want = (network.softmax(-1) + head.softmax(-1)) / 2
    torch.testing.assert_close(fused.exp(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.exp().sum(-1), torch.ones(6))
    assert float(model.stats_linear.weight.abs().sum()) > 0  # fitted
    # padding content and amount never change the answer
    wider = torch.nn.functional.pad(x, (0, 9), value=4.0)
    for i, n in enumerate(L.tolist()):
        wider[i, :, n:] = -3.0
    torch.testing.assert_close(model(wider, L), fused, rtol=1e-4, atol=1e-5)


def test_the_head_is_fitted_not_trained():
    model, x, L = _fitted_model()
    before = model.stats_linear.weight.clone()
    model.train()
    model(x, L, fuse=False).sum().backward()
    assert model.stats_linear.weight.grad is None and not model.stats_linear.weight.requires_grad
    torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5).step()
    assert torch.equal(model.stats_linear.weight, before)


def test_input_norm_comes_before_the_statistics():
    torch.manual_seed(0)
    model = CNNBiLSTMAttention(input_dim=5, n_classes=3, stats_head=True, input_norm=True, **SMALL).eval()
    model.set_input_statistics(torch.arange(5.0), torch.full((5,), 2.0))
    x, L = _padded([8, 6])
    standardised = (x - torch.arange(5.0)[:, None]) / 2.0
    torch.testing.assert_close(model.clip_statistics(x, L), clip_statistics(standardised, L))


def test_stats_head_state_round_trips_and_bad_calls():
    model, x, L = _fitted_model()
    again = CNNBiLSTMAttention(model.config).eval()
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again(x, L), model(x, L))
    plain = CNNBiLSTMAttention(input_dim=5, n_classes=3, **SMALL)
    assert not any(k.startswith("stats_") for k in plain.state_dict())
    with pytest.raises(ParameterError, match="fit_stats_head needs a model built with stats_head=True"):
        plain.fit_stats_head(torch.zeros(2, 30), torch.tensor([0, 1]))
    with pytest.raises(ParameterError, match=r"statistics must be a tensor of shape \(N, 30\)"):
        model.fit_stats_head(torch.zeros(2, 10), torch.tensor([0, 1]))
    with pytest.raises(ParameterError, match="stats_head must be True or False, got 1"):
        CNNBiLSTMAttention(input_dim=5, n_classes=3, stats_head=1, **SMALL)


# ------------------------------------------------------------------ clip_norm: the head on raw rows

def test_standardize_clips_equals_numpy_over_valid_frames_and_the_extractor():
    from ser_gpu.transforms.row_stats import standardize_clips

    x, L = _padded([1, 9, 40, 23], dtype=torch.float64, fill=5.0)
    x[3, 2, :23] = 4.0  # a constant row: zeros, never a division by zero
    got = standardize_clips(x, L)
    for i, n in enumerate(L.tolist()):
        f = x[i, :, :n].numpy()
        want = (f - f.mean(1, keepdims=True)) / (f.std(1, keepdims=True) + 1e-8)
        np.testing.assert_allclose(got[i, :, :n].numpy(), want, rtol=1e-12, atol=1e-12)
        assert not got[i, :, n:].any()  # zero past the clip
    # FeatureConfig(normalize='valid') is the raw rows standardised so
    y = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lengths = torch.tensor([5000, 2100])
    raw = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False), trim=False).double()(y, lengths)
    valid = FeatureExtractor(FeatureConfig(normalize="valid", tonnetz=False), trim=False).double()(y, lengths)
    torch.testing.assert_close(standardize_clips(raw.features, raw.frame_lengths), valid.features)


def _twins(seed=0):
    # a plain model and a clip_norm model with the statistics head, the same network weights
    torch.manual_seed(seed)
    plain = CNNBiLSTMAttention(input_dim=5, n_classes=3, **SMALL).double().eval()
    clip = CNNBiLSTMAttention(input_dim=5, n_classes=3, clip_norm=True, stats_head=True, **SMALL).double().eval()
    clip.load_state_dict(plain.state_dict(), strict=False)
    return plain, clip


def test_a_clip_norm_model_reads_raw_rows_as_the_original_reads_standardised_ones():
    from ser_gpu.transforms.row_stats import standardize_clips

    plain, clip = _twins()
    x, L = _padded([30, 12, 25, 7], dtype=torch.float64)
    x = 40.0 * x - 300.0  # MFCC-like levels
    standardised = standardize_clips(x, L)
    want = plain(standardised, L)
    torch.testing.assert_close(clip(x, L, fuse=False), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(clip(standardised, L, fuse=False, standardized=True), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(clip(x[1:2, :, :12], fuse=False), want[1:2], rtol=1e-10, atol=1e-10)  # no lengths


def test_the_head_of_a_clip_norm_model_sees_each_clips_level_and_spread():
    plain, clip = _twins()
    x, L = _padded([30, 30, 30, 30, 30, 30], dtype=torch.float64)
    # clips 3..5 are clips 0..2 louder and shifted: the same rows once standardised per clip
    x[3:] = 3.0 * x[:3] + 10.0
    torch.testing.assert_close(clip.clip_statistics(x, L), clip_statistics(x, L))  # the raw rows' statistics
    clip.fit_stats_head(clip.clip_statistics(x, L), torch.tensor([0, 1, 2, 1, 2, 0]), c=10.0)
    network = clip(x, L, fuse=False)
    torch.testing.assert_close(network[3:], network[:3], rtol=1e-8, atol=1e-8)  # blind to level and spread
    fused = clip(x, L)
    stats = clip_statistics(x, L)
    head = clip.stats_linear(((stats - clip.stats_mean) / clip.stats_std).to(x.dtype))
    torch.testing.assert_close(fused.exp(), (network.softmax(-1) + head.softmax(-1)) / 2, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(head[3:], head[:3], atol=1e-2)  # ... the head is not
    assert not torch.allclose(fused[3:], fused[:3], atol=1e-3)


def test_clip_norm_bad_settings_and_calls():
    plain, clip = _twins()
    x, L = _padded([8, 6], dtype=torch.float64)
    with pytest.raises(ParameterError, match="clip_norm and input_norm are exclusive"):
        CNNBiLSTMAttention(input_dim=5, n_classes=3, clip_norm=True, input_norm=True, **SMALL)
    with pytest.raises(ParameterError, match="clip_norm must be True or False, got 'yes'"):
        CNNBiLSTMAttention(input_dim=5, n_classes=3, clip_norm="yes", **SMALL)
    with pytest.raises(ParameterError, match="standardized=True applies to a model built with clip_norm=True"):
        plain(x, L, standardized=True)
    with pytest.raises(ParameterError, match="standardized=True rows hide each clip's statistics"):
        clip(x, L, standardized=True)


# ------------------------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_training_fits_the_head_on_the_training_split_and_augmented_versions_of_it(corpus, tmp_path, monkeypatch):
    import ser_gpu.train as train_mod

    seen = {}
    original = train_mod._Run._stats_head_data

    def spy(self):
        seen["stats"], seen["labels"] = original(self)
        seen["train"] = self.train_set
        return seen["stats"], seen["labels"]

    monkeypatch.setattr(train_mod._Run, "_stats_head_data", spy)
    out = tmp_path / "run"
    kw = dict(data_dirs=[str(corpus)], out=str(out), cache_dir=str(tmp_path / "c"), split="actor",
              channels=[16, 32], lstm_hidden=16, lstm_layers=1, stats_head=0.5, **FAST)
    result = train_model(epochs=2, **kw)
    state = load_checkpoint(out / "best.pt")["model_state"]
    n = result["split_sizes"]["train"]
    copies = TrainConfig().stats_head_copies
    assert copies == 4 and load_checkpoint(out / "best.pt")["train_config"]["stats_head_copies"] == 4
    assert len(seen["labels"]) == (copies + 1) * n  # the clean split, then 4 augmented versions of it
    torch.testing.assert_close(seen["labels"].cpu(), seen["train"].labels.cpu().repeat(copies + 1))
    versions = seen["stats"].reshape(copies + 1, n, -1)
    for a in range(copies + 1):  # every version its own draws (noise alone moves every statistic)
        for b in range(a):
            assert not torch.allclose(versions[a], versions[b], rtol=1e-3, atol=1e-3)
    mean, std, weight, bias = fit_logistic_regression(seen["stats"], seen["labels"], 8, c=0.5)
    torch.testing.assert_close(state["stats_linear.weight"], weight)
    torch.testing.assert_close(state["stats_mean"], mean)
    assert load_checkpoint(out / "best.pt")["model_config"]["stats_head"] is True
    # the first n: the statistics of the training clips without augmentation, standardised with the training
    # split's statistics as the network reads them: two clips computed here alone, without the training code
    clips = scan_corpus([str(corpus)])
    waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(tmp_path / "c"),
                                  progress=False)
    split = split_clips(clips, method="actor", seed=0)
    extractor = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False, max_frames=None), trim=False)
    for k in (0, len(split.train) - 1):
        rows = extractor(waves[split.train[k]][None]).features
        rows = (rows - state["input_mean"][:, None]) / state["input_std"][:, None]
        want = clip_statistics(rows)[0]
        torch.testing.assert_close(seen["stats"][k].cpu(), want, rtol=1e-4, atol=1e-4)
    # predict reads the fused model: its probabilities on the test clips are training's test_probabilities
    from ser_gpu.predict import predict_files

    tested = json.loads((out / "test_probabilities.json").read_text())
    answers = predict_files(tested["paths"][:3], out / "best.pt", device="cpu", window=10.0)
    for answer, want in zip(answers, tested["probabilities"]):
        assert list(answer["probabilities"].values()) == pytest.approx(want, abs=1e-4)
    # resume: the head comes from the checkpoint, not refitted (the spy sees no second call)
    seen.clear()
    train_model(epochs=3, resume=True, **kw)
    assert not seen
    torch.testing.assert_close(load_checkpoint(out / "last.pt")["model_state"]["stats_linear.weight"], weight)


@pytest.mark.parametrize("normalize", ["train", "speaker"])
def test_the_head_reads_the_statistics_pass_instead_of_a_pass_of_its_own(corpus, tmp_path, monkeypatch, normalize):
    """With standardisation statistics to compute, the unaugmented training split is extracted once, for both
    them and the head; the head's statistics equal those of the rows the model reads (a pass of their own)."""
    import ser_gpu.train as train_mod

    passes, seen = [], {}
    chunk, data = train_mod._Run._chunk_features_once, train_mod._Run._stats_head_data

    def count(self, dataset, index, *, train, **kw):
        if dataset is self.train_set and not train and kw.get("augment_generator") is None:
            passes.append(index.numel())
        return chunk(self, dataset, index, train=train, **kw)

    def both(self):
        seen["before"] = sum(passes)  # clips of the training split extracted without augmentation so far
        self._train_clip_statistics, kept = None, self._train_clip_statistics
        seen["own"] = data(self)  # without the kept statistics: a pass of its own
        seen["after_own"] = sum(passes)
        self._train_clip_statistics = kept
        seen["kept"] = data(self)
        return seen["kept"]

    monkeypatch.setattr(train_mod._Run, "_chunk_features_once", count)
    monkeypatch.setattr(train_mod._Run, "_stats_head_data", both)
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(tmp_path / "c"),
                split="actor", channels=[16, 32], lstm_hidden=16, lstm_layers=1, stats_head=0.5,
                normalize=normalize, **FAST)
    n_train = len(seen["kept"][1]) // (TrainConfig().stats_head_copies + 1)  # + the augmented versions
    assert seen["before"] == n_train  # the statistics pass, once
    assert seen["after_own"] == 2 * n_train  # what a pass of the head's own would add
    torch.testing.assert_close(seen["kept"][0], seen["own"][0], rtol=1e-4, atol=1e-4)
    assert torch.equal(seen["kept"][1], seen["own"][1])


def test_the_clip_recipe_fits_its_head_on_raw_rows_and_trains_on_standardised_ones(corpus, tmp_path, monkeypatch):
    """``--recipe clip`` (``normalize='valid'`` with the head): the checkpoint reads raw rows (its model
    standardises per clip), the head is fitted on the raw rows' statistics of the unaugmented training
    clips, the training steps read rows the trainer standardised per clip (where SpecAugment masks them, as
    in the original recipe), and predict answers what training's test answered."""
    from ser_gpu.predict import predict_files

    calls = []
    forward = CNNBiLSTMAttention.forward

    def spy(self, features, frame_lengths=None, **kw):
        calls.append((self.training, kw.get("fuse", True), kw.get("standardized", False), features.detach().clone(),
                      None if frame_lengths is None else frame_lengths.clone()))
        return forward(self, features, frame_lengths, **kw)

    monkeypatch.setattr(CNNBiLSTMAttention, "forward", spy)
    out = tmp_path / "run"
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(out), cache_dir=str(tmp_path / "c"), split="actor",
                channels=[16, 32], lstm_hidden=16, lstm_layers=1, spec_augment=False,
                augment=False, **{**FAST, "batch_size": 8, "recipe": "clip"})
    payload = load_checkpoint(out / "best.pt")
    assert payload["model_config"]["clip_norm"] and payload["model_config"]["stats_head"]
    assert payload["feature_config"]["normalize"] is None and payload["train_config"]["stats_head"] == 0.01
    training = [c for c in calls if c[0]]
    assert training and all(not fuse and standardized for _, fuse, standardized, _, _ in training)
    assert all(fuse and not standardized for t, fuse, standardized, _, _ in calls if not t)  # validation, test
    for _, _, _, x, fl in training:  # standardised per clip (no SpecAugment here): mean 0, std 1 or 0
        for i, n in enumerate(fl.tolist()):
            rows = x[i, :, :n].double()
            assert float(rows.mean(-1).abs().max()) < 1e-4
            std = rows.std(-1, unbiased=False)
            assert bool(((std - 1).abs() < 1e-3).logical_or(std < 1e-3).all())
    # the head: fitted on the statistics of the training clips' raw rows, computed here without the training code
    clips = scan_corpus([str(corpus)])
    waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=str(tmp_path / "c"),
                                  progress=False)
    split = split_clips(clips, method="actor", seed=0)
    extractor = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False, max_frames=None), trim=False)
    stats = torch.cat([clip_statistics(extractor(waves[k][None]).features) for k in split.train])
    labels = torch.tensor([clips[k].label for k in split.train])
    mean, std, weight, bias = fit_logistic_regression(stats, labels, 8, c=0.01)
    state = payload["model_state"]
    torch.testing.assert_close(state["stats_mean"], mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(state["stats_linear.weight"], weight, rtol=2e-3, atol=2e-3)
    tested = json.loads((out / "test_probabilities.json").read_text())
    answers = predict_files(tested["paths"][:3], out / "best.pt", device="cpu", window=10.0)
    for answer, want in zip(answers, tested["probabilities"]):
        assert list(answer["probabilities"].values()) == pytest.approx(want, abs=1e-4)


def test_head_copies_leave_the_network_as_it_was_and_need_augmentation(corpus, tmp_path, monkeypatch):
    """``stats_head_copies`` changes the head's data alone: the augmented versions are drawn from a generator
    of their own, so the network trains bit for bit as with the clean head (K = 0), and its head differs.
    Without waveform augmentation there are no versions to draw: the clean split alone."""
    import ser_gpu.train as train_mod

    sizes = []
    original = train_mod._Run._stats_head_data

    def spy(self):
        stats, labels = original(self)
        sizes.append((len(labels), len(self.train_set)))
        return stats, labels

    monkeypatch.setattr(train_mod._Run, "_stats_head_data", spy)
    kw = dict(data_dirs=[str(corpus)], cache_dir=str(tmp_path / "c"), split="actor", channels=[16, 32],
              lstm_hidden=16, lstm_layers=1, stats_head=0.5, **FAST)
    states = {}
    for k in (0, 2):
        train_model(epochs=2, out=str(tmp_path / f"k{k}"), stats_head_copies=k, **kw)
        states[k] = load_checkpoint(tmp_path / f"k{k}" / "last.pt")["model_state"]
    assert [s // n for s, n in sizes] == [1, 3]
    head = {"stats_mean", "stats_std", "stats_linear.weight", "stats_linear.bias"}
    assert set(states[0]) >= head
    for name in states[0]:
        if name in head:
            assert not torch.equal(states[0][name], states[2][name]), name
        else:
            assert torch.equal(states[0][name], states[2][name]), name
    sizes.clear()
    train_model(epochs=1, out=str(tmp_path / "noaug"), stats_head_copies=3, augment=False, **kw)
    assert sizes[0][0] == sizes[0][1]


def test_stats_head_copies_bad_values_and_old_configs(capsys):
    for bad in (-1, 1.5, True, "2", None):
        with pytest.raises(ParameterError, match=f"stats_head_copies must be a non-negative integer, got {bad!r}"):
            TrainConfig(stats_head_copies=bad)
    assert TrainConfig(stats_head_copies=0).stats_head_copies == 0
    # a config stored before the head saw augmented clips describes a head fitted on the clean clips
    stored = TrainConfig().to_dict()
    del stored["stats_head_copies"]
    assert TrainConfig.from_dict(stored).stats_head_copies == 0
    assert build_parser().parse_args(["--stats-head-copies", "2"]).stats_head_copies == 2
    assert build_parser().parse_args([]).stats_head_copies == 4
    assert main(["--stats-head-copies", "-2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "stats_head_copies must be a non-negative integer, got -2" in err and "Traceback" not in err


def test_cli_stats_head_and_bad_values(corpus, tmp_path, capsys):
    args = build_parser().parse_args(["--stats-head", "0.1"])
    assert args.stats_head == 0.1
    assert build_parser().parse_args(["--stats-head", "none"]).stats_head is None
    assert TrainConfig().stats_head == 0.1 and TrainConfig().model_config(8).stats_head  # the speech recipe's
    assert not TrainConfig(stats_head=None).model_config(8).stats_head
    for bad in ("0", "-1", "nan", "inf"):  # numbers: TrainConfig's gate, as for the Python API
        code = main(["--data-dir", str(corpus), "--out", str(tmp_path / f"r{bad}"), "--stats-head", bad, "--quiet"])
        assert code == 2
        err = capsys.readouterr().err
        assert f"stats_head must be a positive finite number, got {float(bad)}" in err and "Traceback" not in err
        assert not (tmp_path / f"r{bad}").exists()
    for bad in ("off", ""):  # not a number: refused while parsing
        with pytest.raises(SystemExit) as exit_:
            main(["--data-dir", str(corpus), "--out", str(tmp_path / f"r{bad}"), "--stats-head", bad, "--quiet"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"--stats-head: must be a number C or none; got {bad!r}" in err and "Traceback" not in err
        assert not (tmp_path / f"r{bad}").exists()
    for bad in (0.0, -1.0, float("nan")):  # the Python API's gate
        with pytest.raises(ParameterError, match=f"stats_head must be a positive finite number, got {bad}"):
            TrainConfig(stats_head=bad)


def test_statistics_ceiling_benchmark_pieces():
    """benchmarks/statistics_ceiling.py: a steady 220 Hz tone's pitch statistics are its semitones above
    100 Hz with no spread, fully voiced; the gender standardisation gives each gender's training clips
    mean 0 / std 1 and standardises a test clip with the statistics of the gender it is predicted."""
    from benchmarks.statistics_ceiling import gender_standardized, pitch_statistics

    sr = 22050
    t = np.arange(int(1.0 * sr)) / sr
    got = pitch_statistics(0.5 * np.sin(2 * np.pi * 220.0 * t), sr)
    semitones = 12 * np.log2(220.0 / 100.0)
    assert got[0] == pytest.approx(semitones, abs=0.05)  # mean
    assert got[1] < 0.05 and got[5] < 0.1  # std, 10-90 % range
    assert got[7] > 0.9  # voiced fraction

    rng = np.random.default_rng(0)
    gender = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 3)) + 10.0 * gender[:, None]  # the genders far apart: the guess is right
    train, test = np.arange(0, 40, 2), np.arange(1, 40, 2)
    z = gender_standardized(x, gender, train, test)
    for g in (0, 1):
        mine = train[gender[train] == g]
        np.testing.assert_allclose(z[mine].mean(0), 0.0, atol=1e-12)
        np.testing.assert_allclose(z[mine].std(0), 1.0, atol=1e-6)
        ref = x[mine]
        other = test[gender[test] == g]
        np.testing.assert_allclose(z[other], (x[other] - ref.mean(0)) / (ref.std(0) + 1e-8))
