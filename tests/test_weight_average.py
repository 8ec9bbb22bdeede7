"""``average_weights``: best.pt holds the mean of the weights from the selected epoch to the last
(:class:`ser_gpu.weight_average.WeightAverage`), carried through ``last.pt`` on resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ser_gpu.errors import ParameterError
from ser_gpu.train import RECIPES, TrainConfig, main, train_model
from ser_gpu.weight_average import WeightAverage

from tests.conftest import assert_resumed
from tests.tiny_corpus import FAST, write_corpus


def _module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        m[1].running_mean.normal_()
        m[1].running_var.uniform_(0.5, 2.0)
        m[1].num_batches_tracked.fill_(10 * seed)
    return m


def test_the_window_restarts_at_a_better_epoch_and_averages_every_epoch_after_it():
    states = [_module(s).state_dict() for s in range(5)]
    avg = WeightAverage()
    for epoch, restart in zip(range(1, 6), [True, False, True, False, False]):
        m = _module(0)
        m.load_state_dict(states[epoch - 1])
        avg.update(m, epoch, restart=restart)
    assert (avg.count, avg.first_epoch, avg.last_epoch) == (3, 3, 5)
    for k, v in avg.weights.items():
        window = torch.stack([s[k] for s in states[2:]])
        if v.is_floating_point():  # the mean of epochs 3-5, batch-norm statistics included
            torch.testing.assert_close(v, window.double().mean(0).float(), rtol=1e-6, atol=1e-7)
        else:  # num_batches_tracked: the latest epoch's
            assert torch.equal(v, states[4][k])


def test_the_first_update_opens_a_window_and_the_held_weights_are_copies():
    m = _module(1)
    avg = WeightAverage()
    avg.update(m, 7, restart=False)  # nothing held yet: opens the window anyway
    assert (avg.count, avg.first_epoch, avg.last_epoch) == (1, 7, 7)
    with torch.no_grad():
        m[0].weight.add_(1.0)
    assert not torch.equal(avg.weights["0.weight"], m[0].weight)  # a copy, not the live tensor


def test_state_dict_round_trip_continues_the_same_mean():
    states = [_module(s) for s in range(4)]
    whole, split = WeightAverage(), WeightAverage()
    for e, m in enumerate(states[:2], 1):
        whole.update(m, e, restart=e == 1)
        split.update(m, e, restart=e == 1)
    resumed = WeightAverage()
    resumed.load_state_dict(split.state_dict())
    for e, m in enumerate(states[2:], 3):
        whole.update(m, e, restart=False)
        resumed.update(m, e, restart=False)
    assert (resumed.count, resumed.first_epoch, resumed.last_epoch) == (4, 1, 4)
    for k in whole.weights:
        assert torch.equal(whole.weights[k], resumed.weights[k])


def test_a_module_with_other_weights_is_refused():
    avg = WeightAverage()
    avg.update(_module(0), 1, restart=True)
    with pytest.raises(ParameterError, match=r"module is not the one averaged: its state_dict lacks \['0.bias', .*"
                                             r"\] and adds \['bias', 'weight'\]"):
        avg.update(nn.Linear(3, 4), 2, restart=False)


def test_config_checks_and_recipes():
    with pytest.raises(ParameterError, match="average_weights must be True or False, got 'yes'"):
        TrainConfig(average_weights="yes")
    config = TrainConfig().to_dict()
    del config["average_weights"]  # a run stored before the setting
    assert TrainConfig.from_dict(config).average_weights is False
    assert RECIPES["original"].get("average_weights", False) is False  # the original system's recipe, as it was
    assert TrainConfig.for_recipe("clip").average_weights and not TrainConfig.for_recipe("speech").average_weights


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


# the plateau schedule (clip's: its learning rate does not depend on the number of epochs, so a run resumed
# with more epochs repeats an uninterrupted one), selected by the validation loss
WINDOW = dict(FAST, lr=3e-2, select="loss", schedule="plateau", average_weights=True, split="actor", prefetch=False,
              seed=1)

# Which epoch has the lowest validation loss on the tiny corpus depends on the run's last bits (the thread
# count, the LSTM path, the machine's CPU: the seed chosen for its trajectory gave another one on some CI
# machines), so the tests of the window script the selection: epoch e scores -SCRIPTED_LOSS[e] (the real
# losses still drive the plateau schedule and are what the run records). The window opens at epoch 1, restarts
# at epoch 3 and holds epochs 3-5; everything else (the weights, the mean, the files, resume) is the real run's.
SCRIPTED_LOSS = {1: 1.0, 2: 1.2, 3: 0.5, 4: 0.7, 5: 0.6}


@pytest.fixture
def scripted_selection(monkeypatch):
    from ser_gpu.train import _Run

    monkeypatch.setattr(_Run, "score", lambda self, row: -SCRIPTED_LOSS[row["epoch"]])


def test_best_pt_is_the_mean_of_the_selected_epoch_and_those_after_it_and_resume_carries_the_window(
        corpus, tmp_path, scripted_selection):
    settings = dict(data_dirs=[str(corpus)], cache_dir=str(tmp_path / "cache"), **WINDOW)
    full = train_model(epochs=5, out=str(tmp_path / "full"), **settings)
    first, last = full["averaged"]["epochs"]
    assert (first, last) == (full["best_epoch"], 5) == (3, 5), full["averaged"]  # a window that restarted
    # the same run one epoch at a time (resume equals an uninterrupted run): each epoch's weights in its last.pt
    weights, history = [], []
    for epoch in range(1, 6):
        step = train_model(epochs=epoch, out=str(tmp_path / "steps"), resume=epoch > 1, **settings)
        if history:
            assert_resumed(history, step["history"])  # each call trained only its one new epoch
        history = step["history"]
        weights.append(torch.load(tmp_path / "steps" / "last.pt", weights_only=True)["model_state"])
    best = torch.load(tmp_path / "full" / "best.pt", weights_only=True)
    stepwise = torch.load(tmp_path / "steps" / "best.pt", weights_only=True)["model_state"]
    for k, v in best["model_state"].items():
        window = torch.stack([w[k] for w in weights[first - 1:last]])
        expected = window.double().mean(0).to(v.dtype) if v.is_floating_point() else weights[-1][k]
        torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-6, msg=k)
        torch.testing.assert_close(stepwise[k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert best["metrics"]["averaged_epochs"] == [first, last] and best["epoch"] == last
    selected = torch.load(tmp_path / "full" / "selected.pt", weights_only=True)  # the selected epoch, kept
    assert selected["epoch"] == first and "averaged_epochs" not in selected["metrics"]
    for k, v in selected["model_state"].items():
        assert torch.equal(v, weights[first - 1][k]), k
    assert best["metrics"]["val_uar"] == full["averaged"]["val"]["uar"]
    stored = json.loads((tmp_path / "full" / "result.json").read_text())
    assert stored["averaged"]["epochs"] == [first, last] and "test" in stored  # the test scored best.pt


def test_without_averaging_or_with_a_window_of_one_best_pt_is_the_selected_epoch(corpus, tmp_path):
    settings = dict(data_dirs=[str(corpus)], cache_dir=str(tmp_path / "cache"), epochs=3)
    train_model(out=str(tmp_path / "plain"), **WINDOW, **settings)
    assert (tmp_path / "plain" / "selected.pt").exists()
    plain = train_model(out=str(tmp_path / "plain"), overwrite=True, **dict(WINDOW, average_weights=False),
                        **settings)
    # no average, and the replaced run's selected epoch is gone: not this run's
    assert "averaged" not in plain and not (tmp_path / "plain" / "selected.pt").exists()
    # select="last": every epoch is the selected one, the window holds it alone
    last = train_model(out=str(tmp_path / "last"), **dict(WINDOW, select="last"), **settings)
    assert "averaged" not in last and last["best_epoch"] == 3
    assert torch.load(tmp_path / "last" / "best.pt", weights_only=True)["epoch"] == 3


def test_cli_option(corpus, tmp_path, capsys, scripted_selection):
    out = tmp_path / "run"
    assert main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--recipe",
                 "speech", "--epochs", "5", "--batch-size", "8", "--lr", "1e-2", "--select", "loss", "--schedule",
                 "plateau", "--split", "actor", "--average-weights", "--seed", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    first, last = json.loads((out / "result.json").read_text())["averaged"]["epochs"]
    assert (first, last) == (3, 5)  # a window of several epochs (SCRIPTED_LOSS)
    assert f"best.pt: the weights of epochs {first}-{last} averaged ({last - first + 1} epochs): validation loss" \
        in printed, printed
    assert torch.load(out / "best.pt", weights_only=True)["train_config"]["average_weights"] is True
    with pytest.raises(SystemExit):
        main(["--data-dir", str(corpus), "--out", str(tmp_path / "bad"), "--average-weights=yes"])
    assert "argument --average-weights/--no-average-weights: ignored explicit argument 'yes'" in capsys.readouterr().err
