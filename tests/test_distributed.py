"""DistributedDataParallel training under torchrun: the shards, and real 2-process gloo runs on the CPU.

The end-to-end tests start ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m
ser_gpu.train`` (the venv's torchrun, a free port) on the tiny corpus and check that both ranks end
with the same weights and optimizer state (each rank dumps them: ``$SER_GPU_DUMP_FINAL_STATE``), that
one set of outputs is written, that result.json's test metrics equal ``evaluate_model`` on the saved
best.pt, and that ``--resume`` under torchrun ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ser_gpu import distributed
from ser_gpu.errors import ParameterError

from tests.tiny_corpus import write_corpus
from tests.conftest import assert_resumed, needs_cuda

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- shards (in process)

@pytest.mark.parametrize("n, batch_size, world", [(24, 8, 2), (20, 8, 2), (37, 4, 3), (16, 6, 2), (9, 2, 4), (5, 8, 1)])
def test_shards_hold_every_clip_once_in_the_one_process_batches(n, batch_size, world):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    one_process = [order[s:s + batch_size].tolist() for s in range(0, n, batch_size)]
    shards = [distributed.shard_batches(order, batch_size, r, world) for r in range(world)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))  # every clip exactly once
    for r, shard in enumerate(shards):
        # the rank's own batch_size slices are the one-process batches r, r + world, ...
        mine = [shard[s:s + batch_size].tolist() for s in range(0, shard.numel(), batch_size)]
        assert mine == one_process[r::world]


@pytest.mark.parametrize("n_batches, world", [(3, 2), (4, 2), (7, 3), (2, 2), (5, 1), (9, 4)])
def test_step_weights_average_the_active_batches(n_batches, world):
    weights = [distributed.step_weights(n_batches, r, world) for r in range(world)]
    steps = -(-n_batches // world)
    assert all(len(w) == steps for w in weights)  # every rank takes every step: no DDP all-reduce waits forever
    for j in range(steps):
        active = [r for r in range(world) if j * world + r < n_batches]
        for r in range(world):
            assert weights[r][j] == (world / len(active) if r in active else 0.0)
        # DDP divides the summed gradients by world: the weights make that the mean over active batches
        assert sum(weights[r][j] for r in active) / world == pytest.approx(1.0)
    # each rank's positive weights are its shard's batches
    assert [sum(w > 0 for w in weights[r]) for r in range(world)] == \
        [len(range(r, n_batches, world)) for r in range(world)]


def test_environment_parsing():
    assert distributed.from_env({}) is None
    d = distributed.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (d.rank, d.world_size, d.local_rank, d.is_main) == (1, 2, 1, False)
    with pytest.raises(ParameterError, match="LOCAL_RANK"):
        distributed.from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ParameterError, match="integers"):
        distributed.from_env({"RANK": "a", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ParameterError, match="RANK=2"):
        distributed.from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def test_plain_run_has_no_process_group(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    d, device = distributed.setup(torch.device("cpu"))
    assert d is distributed.SINGLE and not d.enabled and device == torch.device("cpu")
    assert d.all_sum([1.0, 2.0]) == [1.0, 2.0] and d.all_gather_object(3) == [3]


def test_derived_seeds_differ_per_rank_and_stream():
    seeds = {distributed.derive_seed(0, s, r) for s in ("augment", "dropout") for r in range(4)}
    assert len(seeds) == 8 and all(0 <= x < 2 ** 63 for x in seeds)
    assert distributed.derive_seed(0, "augment", 1) == distributed.derive_seed(0, "augment", 1)


def _weighted_step_worker(rank, world, init_file, n_batches, result_dir):
    """One rank of a DDP run of a linear model over ``n_batches`` batches, stepping as train_epoch does
    (step_weights; a rank without a batch repeats its last one with weight 0); writes each step's
    averaged gradient. No optimizer step: the weights stay fixed, so the expected gradients are easy."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(1)
        xs, ys = torch.randn(n_batches, 4, 3, generator=g), torch.randn(n_batches, 4, 2, generator=g)
        torch.manual_seed(0)
        ddp = DistributedDataParallel(torch.nn.Linear(3, 2))
        mine = iter(range(rank, n_batches, world))
        grads, k = [], None
        for w in distributed.step_weights(n_batches, rank, world):
            if w > 0:
                k = next(mine)
            ddp.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(ddp(xs[k]), ys[k])
            (loss * w).backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in ddp.parameters()]))
        torch.save(torch.stack(grads), Path(result_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("n_batches, world", [(3, 2)])  # 3 processes cost ~20 s more on 2 cores
def test_uneven_last_step_averages_only_the_real_batches(tmp_path, n_batches, world):
    """The padding contract with real DDP over gloo: each step's gradient (the same on every rank) is the
    mean of the gradients of the batches that step holds; a padded rank adds nothing."""
    import torch.multiprocessing as mp

    mp.spawn(_weighted_step_worker, args=(world, str(tmp_path / "pg"), n_batches, str(tmp_path)), nprocs=world)
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    for r in range(1, world):
        assert torch.equal(got[r], got[0])
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(n_batches, 4, 3, generator=g), torch.randn(n_batches, 4, 2, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    single = []
    for k in range(n_batches):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(xs[k]), ys[k]).backward()
        single.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    steps = -(-n_batches // world)
    expected = torch.stack([torch.stack(single[j * world:(j + 1) * world]).mean(0) for j in range(steps)])
    assert n_batches % world  # the last step is uneven: the case under test
    torch.testing.assert_close(got[0], expected, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------ torchrun (subprocess)

def _torchrun(nproc, out, corpus, cache, *extra, dump=None, device="cpu", timeout=240, check=True):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    if dump is not None:
        env["SER_GPU_DUMP_FINAL_STATE"] = str(dump)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ser_gpu.train", "--data-dir", str(corpus), "--out", str(out), "--cache-dir", str(cache),
           "--device", device, "--split", "actor", "--batch-size", "6", "--lr", "1e-3", "--seed", "0",
           "--recipe", "speech", *extra]
    # the tiny corpus: 4 actors -> actor split 16 train / 8 validation / 8 test clips; batch 6 makes 3 training
    # batches (6, 6, 4): uneven for 2 ranks (rank 1 pads the last step), and 2 validation/test batches (6, 2)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def ddp_run(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    out, cache, dump = base / "run", base / "cache", base / "dump"
    import time

    t0 = time.perf_counter()
    proc = _torchrun(2, out, corpus, cache, "--epochs", "2", "--quiet", dump=dump)
    seconds = time.perf_counter() - t0
    print(f"\n2-process gloo torchrun, 2 epochs on the tiny corpus: {seconds:.1f} s wall")
    return dict(out=out, cache=cache, dump=dump, proc=proc, base=base)


def _same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_ranks_end_with_identical_weights_and_optimizer_state(ddp_run):
    from ser_gpu.checkpoint import load_checkpoint

    r0 = torch.load(ddp_run["dump"] / "rank0.pt", weights_only=True)
    r1 = torch.load(ddp_run["dump"] / "rank1.pt", weights_only=True)
    _same_tensors(r0, r1, "rank0 vs rank1")  # weights, batch-norm statistics, AdamW moments and steps
    last = load_checkpoint(ddp_run["out"] / "last.pt")
    _same_tensors(r0["model"], last["model_state"], "rank0 vs last.pt")
    assert last["epoch"] == 2
    state = last["state"]  # every rank's random streams, rank by rank (--resume gives each its own back)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert not torch.equal(state["ranks"][0]["augment_gen"], state["ranks"][1]["augment_gen"])


def test_every_rank_computes_the_same_metrics(ddp_run):
    """Validation (per epoch) and test metrics, gathered over both ranks, are the same on each rank."""
    r0, r1 = (json.loads((ddp_run["dump"] / f"rank{r}.json").read_text()) for r in (0, 1))
    timing = ("epoch_seconds", "data_seconds")  # each rank's own clock
    strip = [[{k: v for k, v in h.items() if k not in timing} for h in r["history"]] for r in (r0, r1)]
    assert strip[0] == strip[1] and len(strip[0]) == 2
    assert r0["test"] == r1["test"] and r0["test"]["n_clips"] == 8
    assert r0["best_val"] == r1["best_val"]


def test_one_set_of_outputs(ddp_run):
    out = ddp_run["out"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["best.pt", "last.pt", "metrics.csv", "metrics.json", "curves.png", "result.json",
                            "test_probabilities.json"]), names
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0 < h["train_loss"] < 10 and 0 < h["val_loss"] < 10 for h in history)
    stdout = ddp_run["proc"].stdout
    assert stdout.count("2 epochs") == 1, stdout  # rank 0 alone prints the summary


def test_test_metrics_equal_a_recomputation_from_best_pt(ddp_run, corpus, tmp_path):
    """result.json's test metrics (gathered over both ranks) == evaluate_model on best.pt over the test clips."""
    from ser_gpu.data import EMOTIONS, scan_corpus, split_clips
    from ser_gpu.evaluate import evaluate_model, metrics_from_predictions

    result = json.loads((ddp_run["out"] / "result.json").read_text())
    clips = scan_corpus([str(corpus)])
    split = split_clips(clips, method="actor", seed=0)
    test_dir = tmp_path / "test_clips"
    test_dir.mkdir()
    for i in split.test:
        os.symlink(clips[i].path, test_dir / Path(clips[i].path).name)
    assert result["split_sizes"]["test"] == len(split.test) == 8
    again = evaluate_model(ddp_run["out"] / "best.pt", [test_dir], device="cpu", cache_dir=ddp_run["cache"],
                           progress=False)
    test = result["test"]
    assert test["n_clips"] == again["n_clips"] == 8
    assert test["confusion"] == again["confusion"]
    assert test["accuracy"] == again["accuracy"] and test["uar"] == again["uar"]
    # each clip's softmax, gathered from both ranks and put back in the test set's order
    probs = json.loads((ddp_run["out"] / "test_probabilities.json").read_text())
    assert probs["paths"] == [str(clips[i].path) for i in split.test]
    assert probs["labels"] == [clips[i].label for i in split.test]
    own = metrics_from_predictions(torch.tensor(probs["labels"]), torch.tensor(probs["probabilities"]).argmax(-1),
                                   list(EMOTIONS))
    assert own["confusion"] == test["confusion"]


def test_resume_under_torchrun_equals_an_uninterrupted_run(ddp_run, corpus):
    """1 epoch, then --resume to 2 (each rank restores its own random streams) == the 2-epoch run."""
    from ser_gpu.checkpoint import load_checkpoint

    out = ddp_run["base"] / "resumed"
    _torchrun(2, out, corpus, ddp_run["cache"], "--epochs", "1", "--quiet")
    first = json.loads((out / "metrics.json").read_text())["epochs"]
    _torchrun(2, out, corpus, ddp_run["cache"], "--epochs", "2", "--resume", "--quiet")
    assert_resumed(first, json.loads((out / "metrics.json").read_text())["epochs"])  # epoch 1 loaded, not retrained
    resumed, straight = load_checkpoint(out / "last.pt"), load_checkpoint(ddp_run["out"] / "last.pt")
    _same_tensors(resumed["model_state"], straight["model_state"], "model")
    _same_tensors(resumed["optimizer_state"], straight["optimizer_state"], "optimizer")
    assert json.loads((out / "result.json").read_text())["test"]["confusion"] == \
        json.loads((ddp_run["out"] / "result.json").read_text())["test"]["confusion"]


def test_one_rank_equals_the_plain_run(ddp_run, corpus, tmp_path):
    """torchrun --nproc_per_node=1 (process group, DDP, shards, gathers, padding weights all in play) ends
    with the very weights of a plain one-process run of the same settings."""
    from ser_gpu.checkpoint import load_checkpoint
    from ser_gpu.train import train_model

    _torchrun(1, tmp_path / "ddp1", corpus, ddp_run["cache"], "--epochs", "2", "--quiet")
    # the same thread count as the torchrun child (OMP_NUM_THREADS=1): float sums depend on it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain = train_model(epochs=2, lr=1e-3, batch_size=6, data_dirs=[str(corpus)], out=str(tmp_path / "plain"),
                            split="actor", seed=0, device="cpu", cache_dir=str(ddp_run["cache"]), progress=False,
                            recipe="speech")  # as _torchrun's
    finally:
        torch.set_num_threads(threads)
    a, b = load_checkpoint(tmp_path / "ddp1" / "last.pt"), load_checkpoint(tmp_path / "plain" / "last.pt")
    _same_tensors(a["model_state"], b["model_state"], "model")
    _same_tensors(a["optimizer_state"], b["optimizer_state"], "optimizer")
    assert json.loads((tmp_path / "ddp1" / "result.json").read_text())["test"] == plain["test"]


def test_a_torchrun_run_resumes_in_one_process(ddp_run, tmp_path, capsys):
    """last.pt of 2 ranks, resumed by a plain (one-process) run: the streams are seeded afresh, and it says so."""
    import shutil

    from ser_gpu.train import train_model

    out = tmp_path / "run"
    shutil.copytree(ddp_run["out"], out)
    result = train_model(epochs=3, out=str(out), resume=True, cache_dir=str(ddp_run["cache"]), device="cpu")
    assert result["epochs_run"] == 3 and [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert "was written by 2 process(es), this run has 1" in capsys.readouterr().err
    from ser_gpu.checkpoint import load_checkpoint

    state = load_checkpoint(out / "last.pt")["state"]
    assert "ranks" not in state and load_checkpoint(out / "last.pt")["epoch"] == 3


def test_resuming_a_finished_run_says_so_once(ddp_run, corpus, tmp_path):
    """--resume with the epochs already run: every rank trains nothing, and one warning says so (each rank
    printed it)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(ddp_run["out"], out)
    proc = _torchrun(2, out, corpus, ddp_run["cache"], "--epochs", "2", "--quiet", "--resume")
    assert proc.stderr.count("nothing to train: it holds epoch 2 already and epochs=2") == 1, proc.stderr[-3000:]
    assert json.loads((out / "result.json").read_text())["epochs_run"] == 2


def test_setup_error_on_rank_0_ends_every_rank(ddp_run, corpus):
    """An --out holding a run (no --resume/--overwrite): rank 0's refusal reaches every rank, no hang,
    one message, and the run's files are untouched."""
    before = {p.name: p.stat().st_mtime_ns for p in ddp_run["out"].iterdir()}
    proc = _torchrun(2, ddp_run["out"], corpus, ddp_run["cache"], "--epochs", "1", "--quiet", timeout=120,
                     check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("already holds a training run") == 1, proc.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in ddp_run["out"].iterdir()} == before


def test_divergence_stops_every_rank_at_the_same_epoch(ddp_run, corpus, tmp_path):
    """A non-finite loss (lr 1e6) is seen by every rank (the losses are sums over ranks): all stop together,
    no rank waits in an all-reduce, one message, and result.json records it."""
    out = tmp_path / "run"
    proc = _torchrun(2, out, corpus, ddp_run["cache"], "--epochs", "3", "--quiet", "--lr", "1e6", timeout=150,
                     check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("training diverged at epoch") == 1, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["diverged"]["epoch"] >= 1


@pytest.mark.cuda
@needs_cuda
def test_nccl_single_process_on_cuda(corpus, tmp_path):
    """torchrun --nproc_per_node=1 on CUDA: the NCCL path (process group, DDP, gathers) end to end."""
    from ser_gpu.checkpoint import load_checkpoint

    out, dump = tmp_path / "run", tmp_path / "dump"
    proc = _torchrun(1, out, corpus, tmp_path / "cache", "--epochs", "2", dump=dump, device="cuda")
    assert "(nccl)" in proc.stderr, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["test"]["n_clips"] == 8 and result["epochs_run"] == 2
    r0 = torch.load(dump / "rank0.pt", weights_only=True, map_location="cpu")
    _same_tensors(r0["model"], load_checkpoint(out / "last.pt")["model_state"], "rank0 vs last.pt")


def test_weight_averaging_under_torchrun(ddp_run, corpus, tmp_path):
    """--average-weights under torchrun: every rank holds the same running mean and evaluates it (collectives in
    step, no rank waits), rank 0 writes the mean to best.pt and the selected epoch to selected.pt.

    Selected by validation UAR: the first epoch that reaches the best one stays selected through ties, and on the
    tiny corpus the UAR of its 8 validation clips tops out at 1.0 within the first epochs, so the window holds
    several epochs whatever the last bits of the trajectory. (Selected by the lowest validation loss the window
    depended on them: CI passed on 2026-12-06, and on 2026-12-07, on a 2-core AMD EPYC machine about twice as fast
    as the earlier ones, the run reached its lowest loss at the last epoch: a window of that epoch alone.)"""
    out = tmp_path / "run"
    _torchrun(2, out, corpus, ddp_run["cache"], "--epochs", "5", "--quiet", "--lr", "1e-2", "--select", "uar",
              "--schedule", "plateau", "--average-weights", timeout=200)
    result = json.loads((out / "result.json").read_text())
    first, last = result["averaged"]["epochs"]
    assert last == 5 and first == result["best_epoch"] < last, result["averaged"]  # a window of several epochs
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["metrics"]["averaged_epochs"] == [first, last] and "test" in result
    assert torch.load(out / "selected.pt", weights_only=True)["epoch"] == first
