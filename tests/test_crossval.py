"""python -m ser_gpu.crossval on a tiny corpus: coverage of the folds, actor roles, the summary, resume, bad inputs."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_gpu.crossval import (cross_validate, ensemble_test, fold_dir, main, member_seed, member_val_fold,
                              read_fold_result, speaker_of)
from ser_gpu.checkpoint import load_checkpoint
from ser_gpu.data import EMOTIONS, scan_corpus
from ser_gpu.errors import CheckpointError, ParameterError
from ser_gpu.evaluate import metrics_from_predictions
from ser_gpu.transforms.features import FeatureConfig, FeatureExtractor

from tests.tiny_corpus import FAST, write_corpus

# 6 actors, 3 folds: fold i tests 2 actors, validates on 2, trains on 2. 1 epoch keeps each fold a few seconds.
ACTORS = (1, 2, 3, 4, 5, 6)
N_FOLDS = 3
CV = dict(FAST, epochs=1)
CV.pop("seed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), actors=ACTORS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def cv(corpus, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0, 1], out=str(out), cache_dir=cache, **CV)
    return out, report


def test_every_clip_is_tested_once_per_seed_and_no_actor_has_two_roles(corpus, cv):
    out, report = cv
    clips = scan_corpus([str(corpus)])
    assert len(report["folds"]) == 2 * N_FOLDS
    for seed in (0, 1):
        mine = [f for f in report["folds"] if f["seed"] == seed]
        assert sorted(f["fold"] for f in mine) == list(range(N_FOLDS))
        tested = [a for f in mine for a in f["actors"]["test"]]
        speakers = sorted({getattr(c, "speaker", None) or c.actor for c in clips})  # actor ids, or speaker ids
        assert len(speakers) == len(ACTORS) and sorted(tested) == speakers  # each actor in exactly one test fold
        # the clips the runs themselves tested (train's result.json), not crossval's bookkeeping
        n_tested = [json.loads((fold_dir(out, seed, f["fold"]) / "result.json").read_text())["test"]["n_clips"]
                    for f in mine]
        assert sum(n_tested) == len(clips)
        for f in mine:
            roles = f["actors"]
            assert set(roles["train"]) | set(roles["val"]) | set(roles["test"]) == set(speakers)
            assert not set(roles["train"]) & set(roles["val"])
            assert not set(roles["train"]) & set(roles["test"])
            assert not set(roles["val"]) & set(roles["test"])
            # the run trained on the split crossval recorded: its checkpoint's config and its split sizes
            stored = torch.load(fold_dir(out, seed, f["fold"]) / "last.pt", weights_only=True)["train_config"]
            assert (stored["split"], stored["n_folds"], stored["fold"], stored["seed"]) == ("actor", N_FOLDS,
                                                                                             f["fold"], seed)
            per_actor = {a: sum((getattr(c, "speaker", None) or c.actor) == a for c in clips) for a in speakers}
            sizes = json.loads((fold_dir(out, seed, f["fold"]) / "metrics.json").read_text())["split_sizes"]
            assert sizes == {role: sum(per_actor[a] for a in roles[role]) for role in ("train", "val", "test")}


def test_summary_equals_a_recomputation_from_the_fold_files(cv):
    out, report = cv
    written = json.loads((out / "crossval.json").read_text())
    assert written["complete"] is True and written["seeds"] == [0, 1]
    results = [json.loads((fold_dir(out, s, i) / "result.json").read_text())["test"]
               for s in (0, 1) for i in range(N_FOLDS)]
    for key in ("uar", "accuracy", "weighted_f1"):
        values = [r[key] for r in results]
        assert written["summary"][key]["mean"] == pytest.approx(sum(values) / len(values), abs=1e-12)
        assert written["summary"][key]["std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
        for s in (0, 1):
            mine = values[s * N_FOLDS:(s + 1) * N_FOLDS]
            assert written["summary"]["per_seed"][str(s)][key]["mean"] == pytest.approx(sum(mine) / N_FOLDS)
    pooled = [[sum(r["confusion"][i][j] for r in results) for j in range(8)] for i in range(8)]
    confusion = json.loads((out / "confusion.json").read_text())
    assert confusion["confusion"] == pooled
    total = sum(map(sum, pooled))
    assert confusion["n_clips"] == total
    assert confusion["accuracy"] == pytest.approx(sum(pooled[i][i] for i in range(8)) / total)
    present = [i for i in range(8) if sum(pooled[i])]
    assert confusion["uar"] == pytest.approx(sum(pooled[i][i] / sum(pooled[i]) for i in present) / len(present))
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "folds.txt").read_text()
    assert len([ln for ln in table.splitlines() if ln[:10].split() in (["0", "0"], ["1", "2"])]) == 2
    assert f"UAR {written['summary']['uar']['mean']:.3f} ± {written['summary']['uar']['std']:.3f}" in table


def test_resume_skips_finished_folds_and_retrains_only_the_missing_one(corpus, cache, tmp_path):
    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, **CV)
    stamps = {i: (fold_dir(out, 0, i) / "best.pt").stat().st_mtime_ns for i in range(N_FOLDS)}
    before = json.loads((out / "crossval.json").read_text())
    # fold 1 lost entirely (never ran): retrained; fold 2 lost only its result.json: re-tested, not retrained
    for name in ("result.json", "best.pt", "last.pt", "metrics.json", "metrics.csv", "curves.png"):
        (fold_dir(out, 0, 1) / name).unlink()
    (fold_dir(out, 0, 2) / "result.json").unlink()
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True,
                            **CV)
    walls = {f["fold"]: f["wall_seconds"] for f in report["folds"]}
    assert walls[0] is None and walls[1] is not None and walls[2] is not None  # fold 0 was skipped
    assert (fold_dir(out, 0, 0) / "best.pt").stat().st_mtime_ns == stamps[0]
    assert (fold_dir(out, 0, 2) / "best.pt").stat().st_mtime_ns == stamps[2]  # resumed past its last epoch
    assert (fold_dir(out, 0, 1) / "best.pt").stat().st_mtime_ns != stamps[1]
    # the CPU run is deterministic: the retrained fold gives the same test result
    assert [f["test"] for f in report["folds"]] == [f["test"] for f in before["folds"]]
    assert read_fold_result(fold_dir(out, 0, 1) / "result.json") is not None


def test_resume_with_more_epochs_trains_every_fold_on(corpus, cache, tmp_path):
    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, **CV)
    epoch1 = [json.loads((fold_dir(out, 0, i) / "metrics.json").read_text())["epochs"] for i in range(N_FOLDS)]
    more = dict(CV, epochs=2)
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True,
                            **more)
    assert [f["epochs_run"] for f in report["folds"]] == [2] * N_FOLDS
    assert json.loads((out / "crossval.json").read_text())["settings"]["epochs"] == 2
    for i in range(N_FOLDS):
        history = json.loads((fold_dir(out, 0, i) / "metrics.json").read_text())["epochs"]
        assert [h["epoch"] for h in history] == [1, 2]
        assert history[0] == epoch1[i][0]  # epoch 1 kept from the first call, not retrained
    with pytest.raises(ParameterError, match=r"epochs \(--epochs\): the run has 2, given 1"):  # epochs may not be lowered
        cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True, **CV)


def test_resume_refuses_other_settings_and_a_second_run_needs_resume_or_overwrite(corpus, cache, cv, capsys):
    out, _ = cv
    args = ["--data-dir", str(corpus), "--folds", str(N_FOLDS), "--out", str(out), "--cache-dir", cache, "--quiet",
            "--epochs", "1", "--lr", "1e-3", "--batch-size", "8", "--seeds", "0", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a cross-validation" in err and "\n" not in err
    assert main(args + ["--resume", "--lr", "5e-4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "lr (--lr): the run has" in err and "device (--device), progress (--quiet)" in err and "\n" not in err


def test_resume_takes_the_stored_settings_of_options_not_given(corpus, cache, cv, tmp_path, capsys):
    """--resume refused every option the first run named and the resume left out ("batch_size: the run has 8,
    given None ... Drop those options"), and --folds fell back to 6; now what is not given is the stored
    run's, as train --resume does. What is given and differs is still refused; --no-prefetch may change."""
    import shutil

    out = tmp_path / "cv"
    shutil.copytree(cv[0], out)  # the module's run stays as it is
    before = json.loads((out / "crossval.json").read_text())
    assert main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", cache, "--quiet", "--resume",
                 "--seeds", "0", "1"]) == 0, capsys.readouterr().err
    after = json.loads((out / "crossval.json").read_text())
    assert after["settings"] == before["settings"] and after["summary"] == before["summary"]
    assert all(f["wall_seconds"] is None for f in after["folds"])  # every fold finished: none retrained
    assert main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", cache, "--quiet", "--resume",
                 "--no-prefetch"]) == 0, capsys.readouterr().err  # how it runs, not what it computes
    assert main(["--data-dir", str(corpus), "--out", str(out), "--cache-dir", cache, "--quiet", "--resume",
                 "--folds", "4"]) == 2
    assert "n_folds (--folds): the run has 3, given 4" in capsys.readouterr().err


def test_overwrite_leaves_no_run_of_the_replaced_settings_for_resume_to_count(corpus, cache, tmp_path):
    """--overwrite cleared a fold's old results only when it reached that fold: folds outside --only-folds (or
    not reached before an interruption) kept their result.json and last.pt, and a later --resume counted them as
    finished runs of the new settings. Now every run's results and last.pt go at once; --resume retrains them."""
    from ser_gpu.checkpoint import load_checkpoint

    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, **CV)
    new = dict(CV, lr=5e-3)
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], only_folds=[0], out=str(out), cache_dir=cache,
                   overwrite=True, **new)
    for i in (1, 2):  # not reached by the overwriting call: nothing left to count or continue
        assert not (fold_dir(out, 0, i) / "result.json").exists() and not (fold_dir(out, 0, i) / "last.pt").exists()
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True,
                            **new)
    assert [f["wall_seconds"] is None for f in report["folds"]] == [True, False, False]  # 1 and 2 retrained
    for i in range(N_FOLDS):
        assert load_checkpoint(fold_dir(out, 0, i) / "last.pt")["train_config"]["lr"] == 5e-3


def test_a_recipe_not_named_is_the_default_for_a_new_run_and_the_stored_one_on_resume(corpus, cache, tmp_path):
    """A new cross-validation stores the default recipe (clip); --resume without --recipe continues the
    stored one, and a stored config without a recipe (written while only named recipes were stored and
    the default was speech) continues as speech."""
    settings = {k: v for k, v in CV.items() if k != "recipe"}  # no recipe named
    new = tmp_path / "new"
    cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(new), cache_dir=cache, **settings,
                   channels=[16, 32], lstm_hidden=16, lstm_layers=1)
    assert json.loads((new / "crossval_config.json").read_text())["recipe"] == "clip"
    assert load_checkpoint(fold_dir(new, 0, 0) / "best.pt")["train_config"]["recipe"] == "clip"

    old = tmp_path / "old"
    cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(old), cache_dir=cache, **CV)
    stored = json.loads((old / "crossval_config.json").read_text())
    assert stored.pop("recipe") == "speech"
    (old / "crossval_config.json").write_text(json.dumps(stored))
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0, 1], out=str(old), cache_dir=cache,
                            resume=True, **settings)
    assert report["settings"]["recipe"] == "speech" and report["folds_run"] == [0, 1]
    assert load_checkpoint(fold_dir(old, 0, 1) / "best.pt")["train_config"]["recipe"] == "speech"
    with pytest.raises(ParameterError, match=r"recipe \(--recipe\): the run has 'speech', given 'clip'"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(old), cache_dir=cache, resume=True,
                       **settings, recipe="clip")


@pytest.mark.parametrize("name, default, before, other", [("stats_head_copies", 4, 0, 1),
                                                        ("prior_correction", True, False, False)])
def test_settings_added_later_are_stored_and_a_run_stored_before_them_resumes_without_them(
        corpus, cache, tmp_path, name, default, before, other):
    """stats_head_copies and prior_correction are written to crossval_config.json whether named or not (the
    default when not); --resume keeps the stored value, and a stored config without it (written before the
    setting: heads that saw the clean clips alone, answers not corrected for the prior) trains its new folds
    with the value of then; naming another value on resume is refused."""
    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(out), cache_dir=cache, **CV)
    stored = json.loads((out / "crossval_config.json").read_text())
    assert stored[name] == default
    assert load_checkpoint(fold_dir(out, 0, 0) / "best.pt")["train_config"][name] == default
    del stored[name]
    (out / "crossval_config.json").write_text(json.dumps(stored))
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[1], out=str(out), cache_dir=cache,
                            resume=True, **CV)
    assert report["settings"][name] == before
    assert load_checkpoint(fold_dir(out, 0, 1) / "best.pt")["train_config"][name] == before
    refused = f"{name} (--{name.replace('_', '-')}): the run has {before!r}, given {default!r}"
    with pytest.raises(ParameterError, match=re.escape(refused)):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(out), cache_dir=cache, resume=True, **CV,
                       **{name: default})
    named = tmp_path / "named"
    cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(named), cache_dir=cache, **CV,
                   **{name: other})
    assert json.loads((named / "crossval_config.json").read_text())[name] == other
    assert load_checkpoint(fold_dir(named, 0, 0) / "best.pt")["train_config"][name] == other


def test_average_weights_is_stored_kept_on_resume_and_false_for_a_run_stored_before_it(corpus, cache, tmp_path):
    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(out), cache_dir=cache, **CV,
                   average_weights=True)
    assert json.loads((out / "crossval_config.json").read_text())["average_weights"] is True
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[1], out=str(out), cache_dir=cache,
                            resume=True, **CV)  # not named: the stored run's
    assert report["settings"]["average_weights"] is True
    assert load_checkpoint(fold_dir(out, 0, 1) / "best.pt")["train_config"]["average_weights"] is True
    with pytest.raises(ParameterError, match=r"average_weights \(--average-weights\): the run has True, given False"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(out), cache_dir=cache, resume=True, **CV,
                       average_weights=False)
    stored = json.loads((out / "crossval_config.json").read_text())
    del stored["average_weights"]  # written before the setting: best.pt held the selected epoch
    (out / "crossval_config.json").write_text(json.dumps(stored))
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[2], out=str(out), cache_dir=cache,
                            resume=True, **CV)
    assert report["settings"]["average_weights"] is False
    assert load_checkpoint(fold_dir(out, 0, 2) / "best.pt")["train_config"]["average_weights"] is False


def test_partial_cv_says_so(corpus, cache, tmp_path):
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, only_folds=[0], out=str(tmp_path / "cv"),
                            cache_dir=cache, **CV)
    assert report["complete"] is False and report["folds_run"] == [0]
    assert report["summary"]["uar"]["n"] == 1 and math.isnan(report["summary"]["uar"]["std"])
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["summary"]["uar"]["std"] is None


@pytest.mark.parametrize("args, message", [
    (["--folds", "1"], "folds must be an integer of at least 3"),
    (["--folds", "2"], "folds must be an integer of at least 3"),
    (["--folds", "7"], "folds=7 is more than the 6 actor(s)"),
    (["--seeds", "0", "0"], "seeds must not repeat"),
    (["--only-folds", "3"], "only_folds must be distinct integers in [0, 3)"),
    (["--lr", "-1"], "lr"),
    (["--ensemble", "0"], "ensemble must be a positive integer"),
    # train's split options are set per fold; unrefused, argparse would read --fold 2 as --folds 2
    (["--fold", "2"], "--fold 2 is not a crossval option: every fold is trained; use --only-folds"),
    (["--seed", "1"], "--seed 1 is not a crossval option"),
    (["--split", "random"], "--split random is not a crossval option: every fold is an actor split"),
    (["--split-seed", "3"], "--split-seed 3 is not a crossval option"),
])
def test_bad_inputs_exit_2_with_one_line(corpus, tmp_path, capsys, args, message):
    out = tmp_path / "cv"
    base = ["--data-dir", str(corpus), "--out", str(out), "--quiet", "--folds", "3"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()  # nothing trained, nothing written


def test_missing_data_dir_exits_2(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "cv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nowhere" in err
    assert main(["--out", str(tmp_path / "cv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data-dir" in err
    assert not (tmp_path / "cv").exists()


@pytest.mark.parametrize("text, match", [
    (None, "holds no cross-validation run"),
    ("{not json", "do not read as JSON"),
    ("[1, 2]", "not a JSON object"),
])
def test_resume_needs_readable_stored_settings(corpus, tmp_path, text, match):
    out = tmp_path / "cv"
    out.mkdir()
    if text is not None:
        (out / "crossval_config.json").write_text(text)
    with pytest.raises(ParameterError, match=match):
        cross_validate([str(corpus)], n_folds=3, out=str(out), resume=True, progress=False)


# -- ensembles: several models per fold on the same folds, tested by their averaged softmax -----------------------

@pytest.fixture(scope="module")
def cv_ensemble(corpus, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv_ensemble")  # every member on the same folds (rotation: below)
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=2,
                            rotate_validation=False, **CV)
    return out, report


def test_ensemble_members_share_the_folds_and_train_with_their_own_seeds(corpus, cv, cv_ensemble):
    out, report = cv_ensemble
    one_model = {f["fold"]: f for f in cv[1]["folds"] if f["seed"] == 0}
    assert [f["fold"] for f in report["folds"]] == list(range(N_FOLDS))
    for f in report["folds"]:
        assert f["actors"] == one_model[f["fold"]]["actors"]  # seed 0's folds, as without --ensemble
        members = f["members"]
        assert [m["seed"] for m in members] == [member_seed(0, 0), member_seed(0, 1)]
        assert members[0]["seed"] == 0 and members[1]["seed"] != 0
        for m, member in enumerate(members):
            d = fold_dir(out, 0, f["fold"]) / f"member_{m}"
            stored = torch.load(d / "last.pt", weights_only=True)["train_config"]
            assert (stored["seed"], stored["split_seed"], stored["fold"]) == (member["seed"], 0, f["fold"])
            probs = json.loads((d / "test_probabilities.json").read_text())
            # the run's own test metrics are its probabilities' argmax, clip by clip in the test set's order
            clips = {str(c.path): c for c in scan_corpus([str(corpus)])}
            assert probs["labels"] == [clips[p].label for p in probs["paths"]]
            assert {speaker_of(clips[p]) for p in probs["paths"]} == set(f["actors"]["test"])
            assert len(probs["paths"]) == member["test"]["n_clips"]
            p = torch.tensor(probs["probabilities"])
            assert torch.allclose(p.sum(-1), torch.ones(len(p)), atol=1e-6)
            own = metrics_from_predictions(torch.tensor(probs["labels"]), p.argmax(-1), list(EMOTIONS))
            assert own["confusion"] == member["test"]["confusion"]
        # member 0 is the one-model cross-validation's run of this fold (the CPU run is deterministic)
        assert members[0]["test"] == one_model[f["fold"]]["test"]


def test_ensemble_test_metrics_are_those_of_the_averaged_softmax(cv_ensemble):
    out, report = cv_ensemble
    for f in report["folds"]:
        runs = [json.loads((fold_dir(out, 0, f["fold"]) / f"member_{m}" / "test_probabilities.json").read_text())
                for m in range(2)]
        mean = (torch.tensor(runs[0]["probabilities"]) + torch.tensor(runs[1]["probabilities"])) / 2
        truth = torch.tensor(runs[0]["labels"])
        expected = metrics_from_predictions(truth, mean.argmax(-1), list(EMOTIONS))
        assert f["test"]["confusion"] == expected["confusion"] and f["test"]["uar"] == expected["uar"]
    summary = json.loads((out / "crossval.json").read_text())["summary"]
    members = [m["test"]["uar"] for f in report["folds"] for m in f["members"]]
    assert summary["single_model"]["uar"]["n"] == 2 * N_FOLDS
    assert summary["single_model"]["uar"]["mean"] == pytest.approx(statistics.fmean(members))
    assert summary["uar"]["n"] == N_FOLDS
    assert "member runs alone" in (out / "folds.txt").read_text()
    assert json.loads((out / "crossval_config.json").read_text())["ensemble"] == 2


def _copy(src: Path, tmp_path: Path) -> Path:
    """A copy of the finished cross-validation ``src`` to resume (the module's fixtures stay as they are)."""
    import shutil

    return Path(shutil.copytree(src, tmp_path / "cv"))


def test_ensemble_resume_retrains_only_the_missing_member_and_refuses_a_smaller_size(corpus, cache, cv_ensemble,
                                                                                      tmp_path):
    import shutil

    src, before = cv_ensemble
    out = _copy(src, tmp_path)
    lost = fold_dir(out, 0, 1) / "member_1"
    shutil.rmtree(lost)
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=2,
                            resume=True, **CV)
    walls = [[m["wall_seconds"] for m in f["members"]] for f in report["folds"]]
    assert walls[0] == [None, None] and walls[1][0] is None and walls[1][1] is not None and walls[2] == [None, None]
    assert [f["test"] for f in report["folds"]] == [f["test"] for f in before["folds"]]  # deterministic on the CPU
    with pytest.raises(ParameterError, match=r"ensemble \(--ensemble\): the run has 2, given 1"):  # members are never dropped
        cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=1,
                       resume=True, **CV)
    # not named on resume: the stored size (the folds are all there, nothing trains)
    again = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True,
                           **CV)
    assert [f["test"] for f in again["folds"]] == [f["test"] for f in before["folds"]]
    assert all(m["wall_seconds"] is None for f in again["folds"] for m in f["members"])


def test_ensemble_raised_on_resume_trains_only_the_new_members(corpus, cache, cv_ensemble, tmp_path):
    src, before = cv_ensemble
    out = _copy(src, tmp_path)
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=3,
                            resume=True, **CV)
    assert json.loads((out / "crossval_config.json").read_text())["ensemble"] == 3
    for f, old in zip(report["folds"], before["folds"]):
        assert [m["seed"] for m in f["members"]] == [member_seed(0, m) for m in range(3)]
        assert [m["wall_seconds"] is None for m in f["members"]] == [True, True, False]  # only member 2 trained
        kept = [{k: v for k, v in m.items() if k not in ("dir", "wall_seconds")} for m in f["members"][:2]]
        assert kept == [{k: v for k, v in m.items() if k not in ("dir", "wall_seconds")} for m in old["members"]]
        runs = [json.loads((fold_dir(out, 0, f["fold"]) / f"member_{m}" / "test_probabilities.json").read_text())
                for m in range(3)]
        mean = sum(torch.tensor(r["probabilities"]) for r in runs) / 3
        expected = metrics_from_predictions(torch.tensor(runs[0]["labels"]), mean.argmax(-1), list(EMOTIONS))
        assert f["test"]["confusion"] == expected["confusion"]
    assert json.loads((out / "crossval.json").read_text())["summary"]["single_model"]["uar"]["n"] == 3 * N_FOLDS


@pytest.mark.parametrize("n_folds", [3, 6])
def test_rotated_validation_folds_cover_every_fold_but_the_test_fold(n_folds):
    for fold in range(n_folds):
        first = [member_val_fold(fold, m, n_folds) for m in range(n_folds - 1)]
        assert first[0] == (fold + 1) % n_folds  # member 0: the one-model run's validation fold
        assert sorted(first) == sorted(set(range(n_folds)) - {fold})
        # more members than folds to rotate through start over
        assert [member_val_fold(fold, m, n_folds) for m in range(n_folds - 1, 2 * (n_folds - 1))] == first


def test_rotate_validation_trains_the_members_on_other_actors(corpus, cache, cv_ensemble, tmp_path):
    """Member 1 of each fold validates on the fold member 0 trains on (3 folds: they swap): the test
    actors stay, member 0 stays the one-model run; the setting is stored and must match on resume."""
    import shutil

    src, before = cv_ensemble
    with pytest.raises(ParameterError, match=r"rotate_validation \(--rotate-validation\): the run has False, given True"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(_copy(src, tmp_path)), cache_dir=cache,
                       rotate_validation=True, resume=True, **CV)
    out = tmp_path / "rotated"
    shutil.copytree(src, out)  # member 0 is kept: rotation leaves its validation fold as it is
    for fold in range(N_FOLDS):
        shutil.rmtree(fold_dir(out, 0, fold) / "member_1")
    config = out / "crossval_config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), rotate_validation=True)))
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, resume=True,
                            **CV)  # not named on resume: the stored setting
    clips = scan_corpus([str(corpus)])
    for f, old in zip(report["folds"], before["folds"]):
        first, second = f["members"]
        assert f["actors"] == old["actors"] and first["test"] == old["members"][0]["test"]
        assert first["val_actors"] == f["actors"]["val"]
        assert second["val_actors"] == f["actors"]["train"]  # with 3 folds the two others swap roles
        stored = torch.load(fold_dir(out, 0, f["fold"]) / "member_1" / "last.pt", weights_only=True)["train_config"]
        assert stored["val_fold"] == member_val_fold(f["fold"], 1, N_FOLDS) != (f["fold"] + 1) % N_FOLDS
        probs = json.loads((fold_dir(out, 0, f["fold"]) / "member_1" / "test_probabilities.json").read_text())
        by_path = {str(c.path): c for c in clips}
        assert {speaker_of(by_path[p]) for p in probs["paths"]} == set(f["actors"]["test"])
        assert second["seed"] == member_seed(0, 1) and second["wall_seconds"] is not None
    assert json.loads(config.read_text())["rotate_validation"] is True
    with pytest.raises(ParameterError, match=r"rotate_validation \(--rotate-validation\): the run has True, given False"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache,
                       rotate_validation=False, resume=True, **CV)


def test_a_new_ensemble_rotates_validation_unless_told_not_to(corpus, cache, tmp_path):
    from ser_gpu.crossval import build_parser

    run = dict(n_folds=N_FOLDS, seeds=[0], only_folds=[0], cache_dir=cache, ensemble=2, **CV)
    on = cross_validate([str(corpus)], out=str(tmp_path / "on"), **run)  # not named: rotated
    off = cross_validate([str(corpus)], out=str(tmp_path / "off"), rotate_validation=False, **run)
    assert on["settings"]["rotate_validation"] is True and "rotate_validation" not in off["settings"]
    (first_on, second_on), (first_off, second_off) = on["folds"][0]["members"], off["folds"][0]["members"]
    assert first_on["val_actors"] == first_off["val_actors"] == second_off["val_actors"] == \
        on["folds"][0]["actors"]["val"]
    assert second_on["val_actors"] == on["folds"][0]["actors"]["train"]
    assert first_on["test"] == first_off["test"]  # member 0 is the same run either way
    parse = build_parser().parse_args
    assert [parse(["--data-dir", "d", *flag]).rotate_validation
            for flag in ([], ["--rotate-validation"], ["--no-rotate-validation"])] == [None, True, False]


def test_rotate_validation_needs_an_ensemble(corpus, tmp_path, capsys):
    with pytest.raises(ParameterError, match="rotate_validation .* needs an ensemble above 1, got ensemble=1"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(tmp_path / "cv"), rotate_validation=True,
                       progress=False)
    with pytest.raises(ParameterError, match="rotate_validation must be True or False, got 'yes'"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(tmp_path / "cv"), ensemble=2, rotate_validation="yes",
                       progress=False)
    assert main(["--data-dir", str(corpus), "--folds", str(N_FOLDS), "--out", str(tmp_path / "cv"),
                 "--rotate-validation"]) == 2
    assert "needs an ensemble above 1" in capsys.readouterr().err
    assert main(["--data-dir", str(corpus), "--out", str(tmp_path / "cv"), "--val-fold", "1"]) == 2
    assert "--val-fold 1 is not a crossval option" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()


def test_one_model_per_fold_cannot_become_an_ensemble_on_resume(corpus, cache, cv, tmp_path):
    out = _copy(cv[0], tmp_path)
    with pytest.raises(ParameterError, match=r"ensemble \(--ensemble\): the run has 1, given 2"):
        cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=2,
                       resume=True, **CV)


@pytest.mark.parametrize("kept", ["2", 0, True, 1.5])
def test_a_stored_ensemble_that_is_not_a_positive_integer_is_refused_on_resume(corpus, cache, cv_ensemble,
                                                                               tmp_path, kept):
    out = _copy(cv_ensemble[0], tmp_path)
    config = out / "crossval_config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), ensemble=kept)))
    for given in (None, 3):  # resolved from the file or named: the file is checked before either
        with pytest.raises(ParameterError, match=r"crossval_config.json: cannot resume, the stored ensemble is not "
                                                 r"a positive integer: " + re.escape(repr(kept))):
            cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, ensemble=given,
                           resume=True, **CV)


def test_ensemble_subsets_benchmark_reads_a_crossval_ensemble(cv_ensemble, capsys):
    """benchmarks/ensemble_subsets.py: the group of all members is crossval's ensemble, groups of one are
    the members alone; a size above the members, or a folder that is no crossval, is refused."""
    from benchmarks.ensemble_subsets import main as subsets_main
    from benchmarks.ensemble_subsets import subsets

    out, report = cv_ensemble
    (whole,) = subsets(out, 2).values()
    assert whole["summary"]["uar"] == report["summary"]["uar"]
    assert whole["summary"]["pooled"]["confusion"] == report["summary"]["pooled"]["confusion"]
    alone = subsets(out, 1)
    assert list(alone) == ["members_0-0", "members_1-1"]
    for m, group in enumerate(alone.values()):
        expected = {f"seed_0/fold_{f['fold']}": f["members"][m]["test"]["uar"] for f in report["folds"]}
        assert group["per_fold_uar"] == pytest.approx(expected)
    # every combination: of 2 members by 1, the members alone again; by 2, the whole ensemble
    combos = subsets(out, 1, combinations=True)
    assert list(combos) == ["members_0", "members_1"]
    assert [g["per_fold_uar"] for g in combos.values()] == [g["per_fold_uar"] for g in alone.values()]
    (pair,) = subsets(out, 2, combinations=True).values()
    assert pair["summary"]["uar"] == whole["summary"]["uar"]
    json_out = out.parent / "subsets.json"
    assert subsets_main([str(out), "--size", "1", "2", "--combinations", "--out", str(json_out)]) == 0
    stored = json.loads(json_out.read_text())["sizes"]
    member_means = [statistics.mean(g["per_fold_uar"].values()) for g in alone.values()]
    assert stored["1"]["over_groups"]["uar"]["mean"] == pytest.approx(statistics.mean(member_means))
    assert stored["1"]["over_groups"]["uar"]["min"] == pytest.approx(min(member_means))
    assert stored["2"]["over_groups"]["uar"]["mean"] == pytest.approx(whole["summary"]["uar"]["mean"])
    printed = capsys.readouterr().out
    assert "size 1, over the 2 group(s): mean UAR" in printed and "size 2, over the 1 group(s)" in printed
    assert subsets_main([str(out), "--size", "3"]) == 2
    assert "fewer than size=3" in capsys.readouterr().err
    assert subsets_main([str(out / "seed_0"), "--size", "1"]) == 2
    assert "not a crossval directory" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="size must be a positive integer, got 0"):
        subsets(out, 0)


def test_ensemble_refuses_members_tested_on_other_clips(cv_ensemble, tmp_path):
    import shutil

    src, _ = cv_ensemble
    for m in range(2):
        shutil.copytree(fold_dir(src, 0, 0) / f"member_{m}", tmp_path / f"member_{m}")
    path = tmp_path / "member_1" / "test_probabilities.json"
    data = json.loads(path.read_text())
    data["labels"][0] = (data["labels"][0] + 1) % 8
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="differ from those of"):
        ensemble_test([tmp_path / "member_0", tmp_path / "member_1"])
    path.write_text("{")
    with pytest.raises(CheckpointError, match="cannot read the run's test probabilities"):
        ensemble_test([tmp_path / "member_0", tmp_path / "member_1"])


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_ensemble_must_be_a_positive_integer(corpus, tmp_path, value):
    expected = r"ensemble must be a positive integer.*" + repr(value).replace(".", r"\.")
    with pytest.raises(ParameterError, match=expected):
        cross_validate([str(corpus)], n_folds=N_FOLDS, out=str(tmp_path / "cv"), ensemble=value, progress=False)
    assert not (tmp_path / "cv").exists()


@pytest.fixture(scope="module")
def cv_speaker_head(corpus, cache, tmp_path_factory):
    """Fold 0 of a speaker-normalised --stats-head crossval, and each clip's raw rows (path -> (68, frames)
    float64), computed here without the training code."""
    from ser_gpu.data import load_waveforms

    out = tmp_path_factory.mktemp("cv_speaker_head")
    # clean-only heads (stats_head_copies=0): the benchmarks that refit them can reproduce them
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache,
                            normalize="speaker", stats_head=1.0, stats_head_copies=0, only_folds=[0], **CV)
    clips = scan_corpus([str(corpus)])
    waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=cache, progress=False)
    extractor = FeatureExtractor(FeatureConfig(normalize=None, tonnetz=False, max_frames=None), trim=False)
    raw = {str(c.path): extractor(w[None]).features[0].double() for c, w in zip(clips, waves)}
    return out, report, clips, raw


def test_stats_head_components_benchmark_takes_the_fused_model_apart(cv_speaker_head):
    """benchmarks/stats_head_components.py on a speaker-normalised --stats-head crossval: its fused UAR is
    crossval's per fold, and its network half (2 p_fused - p_head) is the model's own fuse=False answer."""
    from benchmarks.stats_head_components import components, fold_probabilities
    from ser_gpu.checkpoint import load_model

    out, report, clips, raw = cv_speaker_head
    # each clip's rows standardised with its actor's statistics
    rows = {}
    for actor in {c.actor for c in clips}:
        mine = [str(c.path) for c in clips if c.actor == actor]
        every = torch.cat([raw[p] for p in mine], 1)
        mean, std = every.mean(1, keepdim=True), every.std(1, unbiased=False, keepdim=True)
        rows.update({p: ((raw[p] - mean) / torch.where(std > 0, std, 1.0)).float() for p in mine})
    got = components(out, {"speaker": rows})
    assert got["folds"]["seed_0/fold_0"]["fused"] == pytest.approx(report["folds"][0]["test"]["uar"])
    fused, head, _ = fold_probabilities(out / "seed_0" / "fold_0", {"speaker": rows})
    model, _ = load_model(out / "seed_0" / "fold_0" / "best.pt", device="cpu")
    tested = json.loads((out / "seed_0" / "fold_0" / "test_probabilities.json").read_text())
    with torch.no_grad():
        network = torch.cat([model(rows[p][None], fuse=False).softmax(-1) for p in tested["paths"]])
    np.testing.assert_allclose(2 * fused - head, network.numpy(), atol=1e-4)


def test_stats_head_components_benchmark_reads_a_training_split_normalised_run(corpus, cache, cv_speaker_head,
                                                                               tmp_path):
    """The same for --normalize train (the speech recipe's): the head reads the rows after the model's
    input_norm, and 2 p_fused - p_head is the model's own fuse=False answer on the raw rows."""
    from benchmarks.stats_head_components import components, fold_probabilities
    from ser_gpu.checkpoint import load_model

    _, _, _, raw = cv_speaker_head
    out = tmp_path / "cv"
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache,
                            normalize="train", stats_head=1.0, only_folds=[0], **CV)
    rows = {"train": {p: r.float() for p, r in raw.items()}}
    got = components(out, rows)
    assert got["folds"]["seed_0/fold_0"]["fused"] == pytest.approx(report["folds"][0]["test"]["uar"])
    fused, head, _ = fold_probabilities(out / "seed_0" / "fold_0", rows)
    model, _ = load_model(out / "seed_0" / "fold_0" / "best.pt", device="cpu")
    tested = json.loads((out / "seed_0" / "fold_0" / "test_probabilities.json").read_text())
    with torch.no_grad():
        network = torch.cat([model(rows["train"][p][None], fuse=False).softmax(-1) for p in tested["paths"]])
    np.testing.assert_allclose(2 * fused - head, network.numpy(), atol=1e-4)
    with pytest.raises(SystemExit, match="needs rows"):
        fold_probabilities(out / "seed_0" / "fold_0", {"speaker": rows["train"]})


def test_noise_robustness_benchmark_scores_the_stored_models_and_refits_their_heads(corpus, cache, cv_speaker_head,
                                                                                  tmp_path):
    """benchmarks/noise_robustness.py: clean, the fused answer is crossval's fold UAR; a head refitted with
    K = 0 on the fold's training actors is the head training fitted with ``stats_head_copies=0`` (same
    answers), for speaker-normalised runs too; a run without a head is refused."""
    from benchmarks.noise_robustness import robustness

    out = tmp_path / "cv"
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache,
                            normalize="train", stats_head=1.0, stats_head_copies=0, only_folds=[0], **CV)
    got = robustness(out, [20.0], refit=0)
    fold = got["folds"]["seed_0/fold_0"]
    assert fold["fused snr=None"] == pytest.approx(report["folds"][0]["test"]["uar"])
    assert fold["fused (refit K=0) snr=None"] == pytest.approx(fold["fused snr=None"])
    assert fold["head (refit K=0) snr=20.0"] == pytest.approx(fold["head snr=20.0"])
    assert set(got["summary"]) == set(fold) and got["refit_head_copies"] == [0]
    with_copies = robustness(out, [20.0], refit=2)["folds"]["seed_0/fold_0"]
    assert with_copies["network snr=20.0"] == fold["network snr=20.0"]  # the network is the stored one
    # --C: each C refits the same data; the run's own C (1.0) is the plain refit, another C is another head
    by_c = robustness(out, [20.0], refit=0, cs=[1.0, 1e-4])
    got_c = by_c["folds"]["seed_0/fold_0"]
    assert by_c["refit_head_c"] == [1.0, 1e-4]
    assert got_c["fused (refit K=0, C=1) snr=None"] == pytest.approx(fold["fused snr=None"])
    assert got_c["head (refit K=0, C=1) snr=20.0"] == pytest.approx(fold["head snr=20.0"])
    assert {"head (refit K=0, C=0.0001) snr=None", "fused (refit K=0, C=0.0001) snr=20.0"} <= set(got_c)
    assert not any(k.startswith("fused (refit K=0) ") for k in got_c)  # the keys say which C
    # a speaker-normalised run: each speaker's statistics over its own clips, as crossval tested them
    speaker_run, speaker_report, _, _ = cv_speaker_head
    got = robustness(speaker_run, [20.0], refit=0)["folds"]["seed_0/fold_0"]
    assert got["fused snr=None"] == pytest.approx(speaker_report["folds"][0]["test"]["uar"])
    assert got["fused (refit K=0) snr=None"] == pytest.approx(got["fused snr=None"])
    assert got["head (refit K=0) snr=20.0"] == pytest.approx(got["head snr=20.0"])
    no_head = tmp_path / "no_head"
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(no_head), cache_dir=cache, stats_head=None,
                   only_folds=[0], **CV)
    with pytest.raises(SystemExit, match="needs models with a statistics head"):
        robustness(no_head, [20.0])


def test_test_time_augmentation_benchmark_without_versions_is_the_corrected_answer(cv_speaker_head):
    """benchmarks/test_time_augmentation.py: with no augmented versions (N = 0) its fused answer is
    prior_correction.py's 'each half / its prior' (the answer of a corrected model: crossval's UAR when the
    run was trained with the correction) and its halves are that benchmark's; the versions are drawn from
    the seed (the same figures twice); a negative --versions is refused."""
    from benchmarks.prior_correction import correction
    from benchmarks.test_time_augmentation import main, tta

    out, report, _, _ = cv_speaker_head
    got = tta(out, [0, 1], seed=3)
    fold = got["folds"]["seed_0/fold_0"]
    reference = correction(out)["folds"]["seed_0/fold_0"]
    assert fold["fused N=0 UAR"] == pytest.approx(reference["each half / its prior UAR"])
    assert fold["fused, network TTA only N=0 UAR"] == fold["fused N=0 UAR"]
    assert fold["network N=0 UAR"] == pytest.approx(reference["network UAR"])
    assert fold["head N=0 UAR"] == pytest.approx(reference["head UAR"])
    # the fold's model answers corrected (the fixture's recipe), so its N=0 score is the run's own test score
    assert load_checkpoint(out / "seed_0" / "fold_0" / "best.pt")["model_config"]["prior_correction"]
    assert fold["fused N=0 UAR"] == pytest.approx(report["folds"][0]["test"]["uar"])
    assert {f"{name} N=1 {m}" for name in ("fused", "network", "head") for m in ("UAR", "WA")} <= set(fold)
    assert tta(out, [0, 1], seed=3)["folds"] == got["folds"]
    with pytest.raises(SystemExit):
        main([str(out), "--versions", "-1"])


def test_fusion_weight_benchmark_at_an_even_mix_is_the_corrected_answer(cv_speaker_head, tmp_path, capsys):
    """benchmarks/fusion_weight.py: w = 0.5 is prior_correction.py's 'each half / its prior', w = 1 the
    network (class-weighted here, so uncorrected) and w = 0 the head divided by its prior; the chosen w
    are grid points whose test UAR is the one reported; the balanced loss weighs every class alike."""
    from benchmarks.fusion_weight import WEIGHTS, balanced_log_loss, main, mixes
    from benchmarks.prior_correction import correction

    out, _, _, _ = cv_speaker_head
    fold = mixes(out)["folds"]["seed_0/fold_0"]
    reference = correction(out)["folds"]["seed_0/fold_0"]
    assert fold["w=0.5"] == pytest.approx(reference["each half / its prior UAR"])
    assert fold["w=0"] == pytest.approx(reference["head / prior alone UAR"])
    if reference["class_weights"]:
        assert fold["w=1"] == pytest.approx(reference["network UAR"])
    else:
        assert fold["w=1"] == pytest.approx(reference["network / prior UAR"])
    for how in ("val loss", "val UAR"):
        assert fold[f"chosen w ({how})"] in WEIGHTS
        assert fold[f"w by {how}"] == fold[f"w={fold[f'chosen w ({how})']:g}"]
    # one clip of class 0 right, three of class 1 at 0.5: the rare class counts as much as the frequent one
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    labels = torch.tensor([0, 1, 1, 1])
    assert balanced_log_loss(p, labels, 2) == pytest.approx(-(math.log(0.9) + math.log(0.5)) / 2)
    # the command line: the summary printed, the figures saved with the command that made them
    assert main([str(out), "--out", str(tmp_path / "fw.json")]) == 0
    assert "w by val loss" in capsys.readouterr().out
    saved = json.loads((tmp_path / "fw.json").read_text())
    assert saved["command"] == f"python benchmarks/fusion_weight.py {out} --out {tmp_path / 'fw.json'}"
    assert saved["runs"][0]["folds"]["seed_0/fold_0"] == fold and "machine" in saved


def test_speaker_enrollment_benchmark_with_every_clip_is_crossval_and_groups_stay_within_a_speaker(cv_speaker_head):
    """benchmarks/speaker_enrollment.py: with all of a speaker's clips (k = 0) it reproduces crossval's test
    UAR; a group of k clips never mixes speakers and holds k clips (the last of a speaker the remainder)."""
    from benchmarks.speaker_enrollment import enrollment, groups_of

    out, report, clips, raw = cv_speaker_head
    got = enrollment(out, {str(c.path): (raw[str(c.path)].float(), c.actor) for c in clips}, [0, 1, 3], draws=2)
    assert set(got) == {"seed_0/fold_0"}
    assert got["seed_0/fold_0"][0] == pytest.approx(report["folds"][0]["test"]["uar"])
    assert all(0.0 <= u <= 1.0 for u in got["seed_0/fold_0"].values())
    speakers = ["a"] * 7 + ["b"] * 5
    for k, sizes in ((1, [1] * 12), (3, [3, 3, 1, 3, 2]), (0, [7, 5])):
        group = groups_of(speakers, k, torch.Generator().manual_seed(0))
        assert sorted(torch.bincount(group).tolist()) == sorted(sizes)
        for g in group.unique():
            assert len({speakers[i] for i in torch.where(group == g)[0].tolist()}) == 1


def test_raw_statistics_fusion_benchmark_reads_a_per_clip_standardised_run(corpus, cache, cv_speaker_head, tmp_path):
    """benchmarks/raw_statistics_fusion.py on a --normalize valid crossval (the original recipe's rows): its
    network UAR is crossval's for the fold, and its linear model is fitted on the clips of the fold's
    training actors only."""
    from benchmarks.raw_statistics_fusion import fusion

    _, _, clips, raw = cv_speaker_head
    out = tmp_path / "cv"
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache,
                            normalize="valid", stats_head=None, only_folds=[0], **CV)
    speakers = {str(c.path): c.speaker for c in clips}
    labels = {str(c.path): c.label for c in clips}
    got = fusion(out, raw, speakers, labels, cs=(0.1,), in_model=True)
    fold = got["folds"]["seed_0/fold_0"]
    assert fold["network"] == pytest.approx(report["folds"][0]["test"]["uar"])
    assert fold["model network"] == fold["network"]  # the rebuilt model on raw rows answers as the run did
    train = set(report["folds"][0]["actors"]["train"])
    assert fold["training_clips"] == sum(c.speaker in train for c in clips) < len(clips)
    assert set(got["summary"]) == {"network", "linear 0.1", "fused 0.1", "model 0.1", "model network"}
    assert all(0.0 <= fold[k] <= 1.0 for k in got["summary"])


def test_raw_statistics_fusion_rebuilds_a_checkpoint_written_before_clip_norm(corpus, cache, cv_speaker_head, tmp_path):
    """A per-clip standardised checkpoint of the old form (the extractor standardised its rows:
    feature_config normalize 'valid', no clip_norm) becomes the same clip_norm model with a head as one of
    the new form, so the in-model figures of runs made before clip_norm are those of the recipe now."""
    from benchmarks._common import padded_rows
    from benchmarks.raw_statistics_fusion import clip_norm_model

    _, _, clips, raw = cv_speaker_head
    out = tmp_path / "cv"
    cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, normalize="valid",
                   stats_head=None, only_folds=[0], **CV)
    new = fold_dir(out, 0, 0) / "best.pt"
    payload = load_checkpoint(new)
    assert payload["model_config"]["clip_norm"] and payload["feature_config"]["normalize"] is None
    payload["model_config"]["clip_norm"] = False
    payload["feature_config"]["normalize"] = "valid"
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    paths = sorted(raw)
    rows, y = [raw[p].float() for p in paths], [c.label for c in sorted(clips, key=lambda c: str(c.path))]
    models = [clip_norm_model(path) for path in (new, old)]
    for m in models:  # the head as --in-model fits it
        m.fit_stats_head(m.clip_statistics(*padded_rows(rows)), torch.tensor(y), c=0.1)
    with torch.no_grad():
        a, b = (m(*padded_rows(rows)) for m in models)
    torch.testing.assert_close(a, b)
    with pytest.raises(SystemExit, match="not a run on rows standardised per clip"):
        payload["feature_config"]["normalize"] = None
        torch.save(payload, old)
        clip_norm_model(old)


def test_checkpoint_average_benchmark_scores_the_runs_own_answer_as_its_window(corpus, cache, tmp_path, capsys):
    """benchmarks/checkpoint_average.py on a run trained with --average-weights: 'window' (best.pt, the mean from
    the selected epoch to the last) is the fold's crossval UAR, 'selected' reads selected.pt; a softmax mean of
    one checkpoint with itself is that checkpoint; an ensemble fold is scored as crossval scores it."""
    from benchmarks.checkpoint_average import checkpoint_average, main, mean_weights

    out = tmp_path / "cv"
    # the plateau schedule at a high learning rate: the validation loss jumps, so the window holds several epochs
    report = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(out), cache_dir=cache, only_folds=[0],
                            **dict(CV, epochs=5, lr=1e-2), select="loss", schedule="plateau", average_weights=True)
    best = load_checkpoint(fold_dir(out, 0, 0) / "best.pt")
    first, last = best["metrics"]["averaged_epochs"]
    assert last == 5 and first < last  # a window of several epochs, else the test shows nothing
    fold = checkpoint_average(out)["folds"]["seed_0/fold_0"]
    assert fold["window UAR"] == pytest.approx(report["folds"][0]["test"]["uar"])
    assert report["folds"][0]["averaged_epochs"] == [first, last]  # the fold record says what was tested
    assert (fold["selected epoch"], fold["last epoch"]) == (first, last)
    selected = load_checkpoint(fold_dir(out, 0, 0) / "selected.pt")
    same = mean_weights(selected, selected)["model_state"]
    assert all(torch.equal(v, selected["model_state"][k]) for k, v in same.items())
    assert main([str(out), "--out", str(tmp_path / "r.json")]) == 0
    assert "window UAR" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["folds"]["seed_0/fold_0"] == fold
    # an ensemble fold: each member's weights taken alike, the members' softmax averaged (crossval's answer)
    members = tmp_path / "members"
    ens = cross_validate([str(corpus)], n_folds=N_FOLDS, seeds=[0], out=str(members), cache_dir=cache,
                         only_folds=[0], ensemble=2, **CV)
    fold = checkpoint_average(members)["folds"]["seed_0/fold_0"]
    assert fold["selected UAR"] == pytest.approx(ens["folds"][0]["test"]["uar"])
    assert "window UAR" not in fold  # trained without --average-weights, no window.pt
