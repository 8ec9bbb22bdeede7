"""The chunked training data path: chunk plans, length groups, padded sizes, and what a run feeds the model."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu._threads import current_threads
from ser_gpu.data.chunks import chunk_batches, epoch_chunks, epoch_clips, ladder, ladder_tensor, length_groups
from ser_gpu.errors import ParameterError
from ser_gpu.train import FRAME_MULTIPLE, SAMPLE_MULTIPLE, TrainConfig, _Run, train_model
from ser_gpu.transforms.features import FeatureExtractor

from tests.tiny_corpus import FAST, SR, clip
from tests.conftest import needs_cuda


# ------------------------------------------------------------------------------------------- the plans

def test_ladder_rounds_up_to_few_rungs():
    n = torch.arange(1, 20001)
    rungs = ladder_tensor(n, multiple=512)
    assert bool((rungs >= n).all()) and bool((rungs % 512 == 0).all())
    assert bool((rungs < 1.25 * n + 512).all())  # at most one rung of padding
    assert len(torch.unique(rungs)) <= 20  # 1 ... 20000 samples: a handful of shapes, not 20000
    assert [ladder(int(k), multiple=512) for k in (1, 512, 513, 4000, 19999)] == \
        [int(rungs[k - 1]) for k in (1, 512, 513, 4000, 19999)]
    assert ladder(ladder(777, multiple=4), multiple=4) == ladder(777, multiple=4)  # a rung is its own rung
    with pytest.raises(ParameterError, match="ratio"):
        ladder(5, ratio=1.0)
    with pytest.raises(ParameterError, match="n"):
        ladder(0)


def test_epoch_chunks_keep_whole_batches():
    order = torch.randperm(21, generator=torch.Generator().manual_seed(0))
    chunks = list(epoch_chunks(order, 8, 4))
    assert [c.numel() for c in chunks] == [8, 8, 5]  # a boundary inside the epoch, a last short chunk
    assert torch.equal(torch.cat(chunks), order)
    assert chunk_batches(5, 4) == [slice(0, 4), slice(4, 5)]
    with pytest.raises(ParameterError, match="multiple of batch_size"):
        list(epoch_chunks(order, 6, 4))


@pytest.mark.parametrize("n, batch_size, kept", [(21, 4, 20), (20, 4, 20), (22, 4, 22), (17, 16, 16), (16, 16, 16),
                                                  (2, 16, 2), (3, 2, 2)])
def test_epoch_clips_leave_out_only_a_last_batch_of_one(n, batch_size, kept):
    assert epoch_clips(n, batch_size) == kept


def test_length_groups_partition_a_chunk():
    lengths = torch.tensor([700, 30000, 512, 1100, 29000, 9000, 1])
    groups = length_groups(lengths, multiple=512)
    pos = torch.cat([p for p, _ in groups])
    assert sorted(pos.tolist()) == list(range(len(lengths)))  # every clip once
    for p, rung in groups:
        assert all(ladder(int(v), multiple=512) == rung for v in lengths[p])
    assert [r for _, r in groups] == sorted({r for _, r in groups})


# ------------------------------------------------------------------------------------------ a training run

def _varied_corpus(root: Path) -> Path:
    """32 clips of 0.25-1.6 s (lengths vary a lot, as in the synthetic corpus and RAVDESS)."""
    rng = np.random.default_rng(0)
    for a in (1, 2, 3, 4):
        d = root / f"Actor_{a:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for e in (1, 3, 5, 7):
            for k in range(2):
                name = f"03-01-{e:02d}-01-{k + 1:02d}-01-{a:02d}.wav"
                sf.write(d / name, clip(e - 1, a, k, seconds=float(rng.uniform(0.25, 1.6))), SR)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _varied_corpus(tmp_path_factory.mktemp("varied"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


_OPEN = []


@pytest.fixture(autouse=True)
def _close_runs():
    """Each test's runs stop their prefetch threads before the next test (which may patch _Run) starts."""
    yield
    while _OPEN:
        run = _OPEN.pop()
        run.close_data()
        getattr(run, "release", lambda: None)()  # the run directory's lock, where runs hold one


def _run(corpus, cache, tmp_path, **settings) -> _Run:
    # each run its own directory: a _Run holds its directory's lock until closed
    out = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    # epochs: how many the test runs (the prefetch thread never computes an epoch past the last)
    kw = dict(FAST, batch_size=4, epochs=2, data_dirs=[str(corpus)], out=str(out), cache_dir=str(cache))
    kw.update(settings)
    run = _Run(TrainConfig(**kw), resume=False, overwrite=True)
    _OPEN.append(run)
    return run


def _epoch(run):
    return [(x, fl, lab, idx) for x, fl, lab, idx in run.epoch_batches()]


def _assert_rows_of_the_clip_alone(x_row, fl_row, alone, y) -> int:
    """One clip's rows from a chunk (``x_row`` ``(68, frames)``, its frame count ``fl_row``) equal the
    extractor ``alone`` on the clip by itself, to design.md's float32 STFT-family tolerance (the chunk
    pads the clip, the reference does not); returns the clip's frame count."""
    ref = alone(y)
    n = int(ref.frame_lengths[0])
    assert int(fl_row) == n
    torch.testing.assert_close(x_row[:, :n], ref.features[0, :, :n], rtol=1e-4, atol=1e-4)
    return n


def test_every_training_clip_once_per_epoch_with_chunk_boundaries(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=10, batch_size=5)
    n = len(run.train_set)
    assert n % 5 > 1 and n % 10 != 0, n  # the epoch ends with a short chunk and a short batch
    sizes = []
    real = run._chunk_features
    run._chunk_features = lambda ds, index, train, **kw: sizes.append(index.numel()) or real(ds, index, train=train,
                                                                                             **kw)
    orders = []
    for _ in range(2):
        batches = _epoch(run)
        seen = torch.cat([idx for *_, idx in batches])
        assert sorted(seen.tolist()) == list(range(n))  # each clip exactly once
        for x, fl, lab, idx in batches:
            assert torch.equal(lab, run.train_set.labels[idx])
            assert x.shape[0] == idx.numel() == fl.numel()
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1])  # reshuffled every epoch
    assert sizes == ([10] * (n // 10) + [n % 10]) * 2


def test_batches_do_not_depend_on_the_chunk_size(corpus, cache, tmp_path):
    """Chunks hold whole batches: the model sees the same clips in the same batches for any chunk size."""
    a = [idx for *_, idx in _epoch(_run(corpus, cache, tmp_path, chunk_size=4))]
    b = [idx for *_, idx in _epoch(_run(corpus, cache, tmp_path, chunk_size=256))]
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_last_batch_of_one_is_left_out(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=8)
    n = len(run.train_set)
    run.config.batch_size = n - 1  # n % (n - 1) == 1
    run.chunk_size = n - 1
    batches = _epoch(run)
    assert [b[3].numel() for b in batches] == [n - 1]


@pytest.mark.parametrize("chunk_size", [4, 8, 256])
def test_chunk_features_equal_each_clip_alone(corpus, cache, tmp_path, chunk_size):
    """Without augmentation, every clip's features in any chunk (boundary, short last chunk, one clip)
    equal the extractor on that clip alone: grouping and padding to rungs change nothing."""
    run = _run(corpus, cache, tmp_path, chunk_size=chunk_size, augment=False, spec_augment=False)
    alone = FeatureExtractor(run.feature_config, trim=False)
    for x, fl, _, idx in _epoch(run):
        assert x.shape[-1] == ladder(int(fl.max()), multiple=FRAME_MULTIPLE)
        for row, k in enumerate(idx.tolist()):
            n = _assert_rows_of_the_clip_alone(x[row], fl[row], alone, run.train_set[k][0])
            assert not x[row, :, n:].any()
    one = torch.tensor([3])
    x, fl, lab, _ = run._chunk_features(run.train_set, one, train=True)  # a chunk of one clip
    ref = alone(run.train_set[3][0])
    torch.testing.assert_close(x[0, :, : int(fl[0])], ref.features[0], rtol=1e-4, atol=1e-4)


def test_fresh_augmentation_every_epoch_and_same_seed_same_draws(corpus, cache, tmp_path):
    def features_by_clip(run):
        out = {}
        for x, fl, _, idx in _epoch(run):
            for row, k in enumerate(idx.tolist()):
                out[k] = x[row, :, : int(fl[row])].clone()
        return out

    settings = dict(chunk_size=8, p_noise=1.0)  # every clip gets noise: its draws must change every epoch
    run = _run(corpus, cache, tmp_path, **settings)
    first, second = features_by_clip(run), features_by_clip(run)
    assert first.keys() == second.keys()
    assert all(first[k].shape != second[k].shape or not torch.equal(first[k], second[k]) for k in first)
    again = features_by_clip(_run(corpus, cache, tmp_path, **settings))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_an_epoch_meets_few_shapes(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=8, epochs=3)
    extractor_shapes, model_shapes = set(), set()
    real = run.extractor.forward
    run.extractor.forward = lambda y, lengths=None: extractor_shapes.add(tuple(y.shape)) or real(y, lengths)
    for _ in range(3):
        for x, *_ in _epoch(run):
            model_shapes.add(tuple(x.shape))
    assert extractor_shapes and model_shapes  # the patch saw the calls (else the checks below hold vacuously)
    assert all(ladder(t, multiple=SAMPLE_MULTIPLE) == t for _, t in extractor_shapes)
    assert all(ladder(f, multiple=FRAME_MULTIPLE) == f for _, _, f in model_shapes)
    lengths = run.train_set.host_lengths
    # clips of 0.25-1.6 s (1.1-1.8x that after time stretch): a handful of waveform rungs, a handful of widths
    assert len({t for _, t in extractor_shapes}) <= 10
    assert len({f for *_, f in model_shapes}) <= 8
    assert len(set(lengths.tolist())) > 10  # while the clips have many lengths


def test_max_frames_keeps_every_batch_at_that_width(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=8, max_frames=50)
    assert {x.shape[-1] for x, *_ in _epoch(run)} == {50}


def test_specaugment_masks_the_standardised_rows_the_network_reads(corpus, cache, tmp_path):
    """With per-clip standardisation in the model (normalize='valid', the clip and original recipes'),
    the training rows are standardised before SpecAugment, as the original recipe masks what the network
    reads: every cell of a clip's valid frames is its standardised row or exactly the mask value 0, and
    masks exist."""
    from ser_gpu.transforms.row_stats import standardize_clips

    run = _run(corpus, cache, tmp_path, chunk_size=8, augment=False, spec_augment=True, normalize="valid",
               stats_head=None)
    assert run.model_config.clip_norm
    alone = FeatureExtractor(run.feature_config, trim=False)
    index = torch.arange(8)
    x, fl, _, _ = run._chunk_features(run.train_set, index, train=True)
    masked = 0
    for row, k in enumerate(index.tolist()):
        ref = alone(run.train_set[k][0])
        n = int(ref.frame_lengths[0])
        want = standardize_clips(ref.features, ref.frame_lengths)[0, :, :n]
        got = x[row, :, :n]
        off = ~torch.isclose(got, want, rtol=1e-3, atol=1e-3)
        assert torch.all(got[off] == 0), f"clip {k}: cells that are neither its standardised row nor masked"
        masked += int(off.sum())
    assert masked > 0  # SpecAugment ran


def test_validation_features_carry_no_augmentation(corpus, cache, tmp_path):
    """With every waveform effect at p = 1 and SpecAugment on, the validation rows are still each clip's
    plain extractor rows, in stored order (batches of batch_size)."""
    run = _run(corpus, cache, tmp_path, chunk_size=8, augment=True, spec_augment=True,
               p_noise=1.0, p_stretch=1.0, p_pitch=1.0, p_shift=1.0)
    alone = FeatureExtractor(run.feature_config, trim=False)
    k = 0
    for x, fl, labels in run.feature_batches(run.val_set):
        for row in range(x.shape[0]):
            y, label = run.val_set[k]
            _assert_rows_of_the_clip_alone(x[row], fl[row], alone, y)
            assert int(labels[row]) == int(label)
            k += 1
    assert k == len(run.val_set) > 0


def test_validation_features_are_computed_once(corpus, cache, tmp_path, monkeypatch):
    calls = []
    real = _Run._chunk_features

    def counting(self, dataset, index, *, train, **kw):
        name = {id(self.train_set): "train", id(self.val_set): "val", id(self.test_set): "test"}[id(dataset)]
        if kw.get("augment_generator") is not None:  # the statistics head's augmented versions
            name = "head"
        calls.append((name, train, index.tolist()))
        return real(self, dataset, index, train=train, **kw)

    extracted = []
    real_forward = FeatureExtractor.forward
    monkeypatch.setattr(_Run, "_chunk_features", counting)
    monkeypatch.setattr(FeatureExtractor, "forward",
                        lambda self, y, lengths=None: extracted.append(y.shape[0]) or real_forward(self, y, lengths))
    result = train_model(epochs=3, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(cache),
                         chunk_size=8, **dict(FAST, batch_size=4))
    sizes = result["split_sizes"]
    val = [i for name, train, idx in calls if name == "val" for i in idx]
    test = [i for name, train, idx in calls if name == "test" for i in idx]
    assert sorted(val) == list(range(sizes["val"])) and sorted(test) == list(range(sizes["test"]))
    assert all(not train for name, train, _ in calls if name != "train")
    n_train = sum(len(idx) for name, train, idx in calls if name == "train" and train)
    used = sizes["train"] - (1 if sizes["train"] % 4 == 1 else 0)
    assert n_train == 3 * used, [(name, train, len(idx)) for name, train, idx in calls]
    # the training split's statistics (normalize='train'): its clips once more, without augmentation
    stats = [i for name, train, idx in calls if name == "train" and not train for i in idx]
    assert sorted(stats) == list(range(sizes["train"]))
    # the statistics head's augmented versions (stats_head_copies): the whole training split K times
    copies = TrainConfig().stats_head_copies
    head = [i for name, train, idx in calls if name == "head" for i in idx]
    assert sorted(head) == sorted(list(range(sizes["train"])) * copies)
    assert sum(extracted) == 3 * used + (1 + copies) * sizes["train"] + sizes["val"] + sizes["test"]  # nothing else


@pytest.mark.parametrize("normalize", ["train", "speaker", "padded"])
def test_without_waveform_augmentation_the_training_rows_are_computed_once(corpus, cache, tmp_path, monkeypatch,
                                                                          normalize):
    """augment=False: the extractor sees each training clip once per run (the rows are kept on the device),
    and the epochs equal those computed afresh every chunk: the same rows, the same SpecAugment draws
    (tolerance: another batch composition may round the FFT and matrix products differently)."""
    extracted = []
    real_forward = FeatureExtractor.forward
    monkeypatch.setattr(FeatureExtractor, "forward",
                        lambda self, y, lengths=None: extracted.append(y.shape[0]) or real_forward(self, y, lengths))
    settings = dict(chunk_size=8, epochs=3, augment=False, normalize=normalize)
    run = _run(corpus, cache, tmp_path, **settings)
    built = sum(extracted)
    # once for the training rows; with speaker statistics the validation and test clips once more
    others = [d for d in (run.val_set, run.test_set) if d is not None]
    expected = len(run.train_set) + (sum(len(d) for d in others) if normalize == "speaker" else 0)
    assert built == expected, (built, expected)
    cached = [_epoch(run) for _ in range(3)]
    assert sum(extracted) == built  # no extraction during the epochs

    fresh_run = _run(corpus, cache, tmp_path, **settings)
    fresh_run.train_cache = None  # the path that computes every chunk's rows afresh
    fresh = [_epoch(fresh_run) for _ in range(3)]
    assert sum(extracted) > built
    for a_epoch, b_epoch in zip(cached, fresh):
        assert len(a_epoch) == len(b_epoch)
        for (xa, fa, la, ia), (xb, fb, lb, ib) in zip(a_epoch, b_epoch):
            assert torch.equal(ia, ib) and torch.equal(fa, fb) and torch.equal(la, lb)
            assert xa.shape == xb.shape
            torch.testing.assert_close(xa, xb, rtol=1e-5, atol=1e-5)
    # the SpecAugment masks differ from epoch to epoch: the cache holds the rows before masking
    first = {int(k): x[r] for x, _, _, idx in cached[0] for r, k in enumerate(idx)}
    second = {int(k): x[r] for x, _, _, idx in cached[1] for r, k in enumerate(idx)}
    assert any(first[k].shape == second[k].shape and not torch.equal(first[k], second[k]) for k in first)


def test_with_fresh_waveform_augmentation_nothing_is_kept(corpus, cache, tmp_path):
    assert _run(corpus, cache, tmp_path, chunk_size=8).train_cache is None


def _rows_by_clip(batches):
    return {int(k): x[r, :, : int(fl[r])].clone() for x, fl, _, idx in batches for r, k in enumerate(idx)}


def test_augment_copies_are_computed_once_and_taken_in_turn(corpus, cache, tmp_path, monkeypatch):
    """augment_copies=2: two augmented passes over the training clips before the first epoch, none during
    the epochs; epoch e takes copy e mod 2 (epochs 0 and 2 see the same rows, epoch 1 other ones); the
    same seed builds the same copies."""
    extracted = []
    real_forward = FeatureExtractor.forward
    monkeypatch.setattr(FeatureExtractor, "forward",
                        lambda self, y, lengths=None: extracted.append(y.shape[0]) or real_forward(self, y, lengths))
    settings = dict(chunk_size=8, epochs=4, augment_copies=2, p_noise=1.0, spec_augment=False)
    run = _run(corpus, cache, tmp_path, **settings)
    n = len(run.train_set)
    built = sum(extracted)
    # two augmented copies, the unaugmented rows once for the training split's statistics (normalize='train'),
    # and the statistics head's own augmented versions (stats_head_copies: drawn apart from the copies)
    assert built == 2 * n + n + TrainConfig().stats_head_copies * n and run.train_cache[0].shape[:2] == (2, n)
    epochs = [_rows_by_clip(_epoch(run)) for _ in range(4)]
    assert sum(extracted) == built  # nothing extracted during the epochs
    for k in epochs[0]:
        assert torch.equal(epochs[0][k], epochs[2][k]) and torch.equal(epochs[1][k], epochs[3][k])
        assert epochs[0][k].shape != epochs[1][k].shape or not torch.equal(epochs[0][k], epochs[1][k])
    again = _run(corpus, cache, tmp_path, **settings)
    assert torch.equal(again.train_cache[0], run.train_cache[0])
    # every copy is augmented (noise on every clip): no clip's rows are its unaugmented ones
    plain = _rows_by_clip(_epoch(_run(corpus, cache, tmp_path, **{**settings, "augment_copies": None,
                                                                   "augment": False})))
    for rows in epochs[:2]:
        assert all(rows[k].shape != plain[k].shape or not torch.equal(rows[k], plain[k]) for k in plain)


@pytest.mark.parametrize("normalize", ["train", "speaker"])
def test_statistics_are_of_the_unaugmented_rows_whatever_is_kept(corpus, cache, tmp_path, normalize):
    """The training split's (or each speaker's) statistics come from the clips without augmentation,
    with fresh augmentation, augmented copies or no augmentation alike."""
    runs = [_run(corpus, cache, tmp_path, chunk_size=8, normalize=normalize, **kw)
            for kw in (dict(), dict(augment_copies=2, p_noise=1.0), dict(augment=False))]
    for run in runs[1:]:
        if normalize == "train":
            for name in ("input_mean", "input_std"):
                torch.testing.assert_close(getattr(run.model, name), getattr(runs[0].model, name), rtol=1e-5,
                                           atol=1e-6)
        else:
            torch.testing.assert_close(run.speaker_mean, runs[0].speaker_mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(run.speaker_std, runs[0].speaker_std, rtol=1e-5, atol=1e-6)


def test_augment_copies_keep_specaugment_fresh(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=8, epochs=3, augment_copies=1)
    first, second = _rows_by_clip(_epoch(run)), _rows_by_clip(_epoch(run))  # the same copy, other masks
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_chunk_size_setting(corpus, cache, tmp_path):
    run = _run(corpus, cache, tmp_path, chunk_size=10)
    assert run.chunk_size == 8  # whole batches
    assert _run(corpus, cache, tmp_path, chunk_size=1).chunk_size == 4  # at least one batch
    n = len(run.train_set)
    assert _run(corpus, cache, tmp_path).chunk_size == -(-n // 4) * 4  # the whole epoch when it fits
    with pytest.raises(ParameterError, match="chunk_size"):
        TrainConfig(chunk_size=0)


def test_same_seed_same_run_across_chunk_boundaries(corpus, cache, tmp_path):
    results = [train_model(epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / f"run{i}"), cache_dir=str(cache),
                           chunk_size=8, split="actor", **dict(FAST, batch_size=4)) for i in range(2)]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    assert [[h[k] for k in keys] for h in results[0]["history"]] == \
        [[h[k] for k in keys] for h in results[1]["history"]]
    a = torch.load(tmp_path / "run0" / "last.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "run1" / "last.pt", weights_only=True)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    stored = [json.loads((tmp_path / f"run{i}" / "result.json").read_text()) for i in range(2)]
    assert stored[0].pop("seconds").keys() == stored[1].pop("seconds").keys()  # each run's own clock
    assert stored[0] == {**stored[1], "out": str(tmp_path / "run0"), "best_checkpoint": str(tmp_path / "run0" / "best.pt"),
                         "last_checkpoint": str(tmp_path / "run0" / "last.pt")}


def test_a_chunk_out_of_memory_is_redone_in_halves(corpus, cache, tmp_path):
    """A chunk that runs out of device memory (simulated: chunks over 4 clips fail after drawing) is computed
    in two halves from the same augmentation state: the epoch equals one run with chunks of 4."""
    def epoch_features(run):
        return [(x[:, :, : int(fl.max())], idx) for x, fl, _, idx in _epoch(run)]

    run = _run(corpus, cache, tmp_path, chunk_size=8)
    assert len(run.train_set) % 8 == 0
    real = run._chunk_features_once

    def small_only(dataset, index, *, train, **kw):
        if index.numel() > 4:
            torch.rand(100, generator=run.augment_gen)  # part of the work happened before the failure
            raise torch.OutOfMemoryError("simulated")
        return real(dataset, index, train=train, **kw)

    run._chunk_features_once = small_only
    halves = epoch_features(run)
    reference = epoch_features(_run(corpus, cache, tmp_path, chunk_size=4))
    assert len(halves) == len(reference)
    for (xa, ia), (xb, ib) in zip(halves, reference):
        assert torch.equal(ia, ib) and torch.equal(xa, xb)
    assert run.chunk_size == 4  # later chunks (and a resumed run, which reads it from last.pt) are smaller


def _host_summed_epoch(run):
    """One epoch as train_epoch stepped before it kept its sums on the device: each step's loss and correct
    count read back to a Python float and added on the host."""
    run.model.train()
    total = correct = count = 0.0
    for (x, fl, labels, _), _ in run._steps({}):
        with run._autocast():
            logits = run.forward_model(x, fl, fuse=False)  # as train_epoch: the statistics head is not trained
        loss = run.criterion(logits.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
        run.optimizer.step()
        if run.config.schedule == "cosine":  # the speech recipe steps its schedule per optimizer step
            run.scheduler.step()
        total += float(loss.detach()) * labels.numel()
        correct += float((logits.detach().argmax(-1) == labels).sum())
        count += labels.numel()
    return total / count, correct / count


def _host_summed_loss(run, batches):
    run.model.eval()
    with torch.no_grad():
        total = sum(float(run.criterion(run.eval_forward(x, fl).float(), labels)) * labels.numel()
                    for x, fl, labels in batches)
    return total / sum(labels.numel() for *_, labels in batches)


def test_epoch_figures_read_once_equal_the_per_step_host_sums(corpus, cache, tmp_path):
    """train_epoch and evaluate keep their sums on the device and read them once: the same figures (float64
    sums in step order) as reading every step's loss back, which made two host syncs per step."""
    settings = dict(chunk_size=8, epochs=2)
    run = _run(corpus, cache, tmp_path, **settings)
    row = run.train_epoch()
    assert run.last_timing["data_compute_seconds"] > 0 and row["data_seconds"] >= 0
    ref = _run(corpus, cache, tmp_path, **settings)  # the same seed: the same weights, order and draws
    loss, acc = _host_summed_epoch(ref)
    assert row["train_loss"] == loss and row["train_acc"] == acc
    val = run.feature_batches(run.val_set)
    assert run.evaluate(val)["loss"] == _host_summed_loss(run, val)
    assert torch.isfinite(torch.tensor(row["train_loss"]))


# ------------------------------------------------------------------------------------------------ CUDA

@pytest.mark.parametrize("chunk_size", [4, 256])
@pytest.mark.cuda
@needs_cuda
def test_cuda_chunk_features_equal_the_cpu_ones(corpus, cache, tmp_path, chunk_size):
    """The chunked data path on CUDA (no augmentation) gives the CPU's features and the same batches."""
    runs = [_run(corpus, cache, tmp_path, chunk_size=chunk_size, augment=False, spec_augment=False, device=d)
            for d in ("cpu", "cuda")]
    assert runs[1].device.type == "cuda"
    for (xa, fa, la, ia), (xb, fb, lb, ib) in zip(_epoch(runs[0]), _epoch(runs[1])):
        assert torch.equal(ia, ib) and torch.equal(fa, fb.cpu()) and torch.equal(la, lb.cpu())
        # the training's float32 rows, standardised over each clip's frames, on two devices: the data
        # path's bookkeeping is what is tested here; the extractor's own CUDA parity (against CPU
        # float64, design.md's tolerances) is tests/cuda/test_cuda_parity.py's
        torch.testing.assert_close(xb.cpu(), xa, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("compile_model", [False, True])
@pytest.mark.cuda
@needs_cuda
def test_cuda_training_runs_with_the_chunk_size_from_memory(corpus, cache, tmp_path, compile_model):
    result = train_model(epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(cache),
                         device="cuda", compile_model=compile_model, **dict(FAST, batch_size=4))
    assert result["epochs_run"] == 2
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in result["history"])
    run = _run(corpus, cache, tmp_path, device="cuda")
    n = len(run.train_set)
    assert run.chunk_size == -(-n // 4) * 4  # a tiny epoch fits whole in free GPU memory


@pytest.mark.cuda
@needs_cuda
def test_cuda_prefetch_on_its_own_stream_gives_the_inline_features(corpus, cache, tmp_path):
    """With prefetch on CUDA the chunks are computed on the data thread's own stream (the training's stream
    waits for their events): the same clips, frame counts and (augmented) features as computed inline."""
    epochs = {}
    streams = []
    for prefetch in (True, False):
        run = _run(corpus, cache, tmp_path, chunk_size=8, epochs=2, device="cuda", prefetch=prefetch)
        assert (run._data_stream is not None) == prefetch
        real = run._chunk_features_once

        def recording(dataset, index, *, train, run=run, real=real, **kw):
            streams.append((run._data_stream, torch.cuda.current_stream()))
            return real(dataset, index, train=train, **kw)

        run._chunk_features_once = recording
        epochs[prefetch] = [[(x.clone(), fl.clone(), lab.clone(), idx) for x, fl, lab, idx in _epoch(run)]
                            for _ in range(2)]
    for side, used in streams:
        assert side is None or used == side  # a prefetched chunk ran on the data stream
    assert any(side is not None for side, _ in streams)
    for a, b in zip(epochs[True], epochs[False]):
        assert len(a) == len(b)
        for (xa, fa, la, ia), (xb, fb, lb, ib) in zip(a, b):
            assert torch.equal(ia, ib) and torch.equal(fa, fb) and torch.equal(la, lb)
            torch.testing.assert_close(xa, xb, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_cuda_epoch_timing_from_events(corpus, cache, tmp_path):
    """The data path's figures on CUDA with prefetch come from CUDA events (no synchronize per chunk)."""
    run = _run(corpus, cache, tmp_path, chunk_size=8, epochs=2, device="cuda")
    row = run.train_epoch()
    timing = run.last_timing
    assert 0 < timing["data_compute_seconds"] < 600 and 0 <= row["data_seconds"] < 600
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("train_loss", "train_acc"))


def test_resume_keeps_the_resolved_chunk_size(corpus, cache, tmp_path, monkeypatch):
    import ser_gpu.train as train

    monkeypatch.setattr(train, "CPU_CHUNK_SIZE", 8)  # stands for a size chosen from free GPU memory
    train_model(epochs=1, data_dirs=[str(corpus)], out=str(tmp_path / "run"), cache_dir=str(cache),
                **dict(FAST, batch_size=4))
    monkeypatch.setattr(train, "CPU_CHUNK_SIZE", 256)  # another machine or more free memory
    config = TrainConfig(**dict(FAST, batch_size=4, epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / "run"),
                                cache_dir=str(cache)))
    resumed = _Run(config, resume=True, overwrite=False)
    fresh = _Run(dataclasses.replace(config, out=str(tmp_path / "new")), resume=False, overwrite=False)
    _OPEN.extend([resumed, fresh])
    assert resumed.chunk_size == 8
    assert fresh.chunk_size > 8


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_prefetch_gives_the_same_run(corpus, cache, tmp_path, one_thread):
    """The data path on a second thread draws exactly what it draws inline: same history, same weights.
    With one torch thread: with more, the CPU prefetch gives the training half of them (the next test),
    and torch's elementwise kernels round their last bits by the thread count."""
    runs = {p: train_model(epochs=3, data_dirs=[str(corpus)], out=str(tmp_path / str(p)), cache_dir=str(cache),
                           chunk_size=8, prefetch=p, **dict(FAST, batch_size=4)) for p in (True, False)}
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[h[k] for k in keys] for h in runs[True]["history"]] == [[h[k] for k in keys] for h in runs[False]["history"]]
    a = torch.load(tmp_path / "True" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "False" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])
    # the checkpoint holds the generators as before the next epoch's data, though prefetch drew it already
    assert torch.equal(a["state"]["augment_gen"], b["state"]["augment_gen"])
    assert torch.equal(a["state"]["shuffle_gen"], b["state"]["shuffle_gen"])


def test_cpu_prefetch_runs_the_training_with_half_of_the_data_threads_threads(corpus, cache, tmp_path,
                                                                             monkeypatch, one_thread):
    """Two teams of all the cores oversubscribe them (ser_gpu._threads): with prefetch on the CPU the data
    thread's chunks run with all of torch's threads and the training's epochs with half, and the count
    is set back when the run ends; without prefetch the chunks run inline with all of them."""
    seen = {}
    real_features, real_epoch = _Run._chunk_features, _Run.train_epoch

    def features(self, *args, **kw):
        seen.setdefault(threading.current_thread().name.split("_")[0], set()).add(current_threads())
        return real_features(self, *args, **kw)

    def epoch(self):
        seen.setdefault("epoch", set()).add(current_threads())
        return real_epoch(self)

    monkeypatch.setattr(_Run, "_chunk_features", features)
    monkeypatch.setattr(_Run, "train_epoch", epoch)
    torch.set_num_threads(4)
    for prefetch, expected in ((True, {"MainThread": {4}, "ser": {4}, "epoch": {2}}),
                               (False, {"MainThread": {4}, "epoch": {4}})):
        seen.clear()
        train_model(epochs=2, data_dirs=[str(corpus)], out=str(tmp_path / str(prefetch)), cache_dir=str(cache),
                    chunk_size=8, prefetch=prefetch, **dict(FAST, batch_size=4))
        assert seen == expected  # MainThread: the statistics and validation passes before the epochs, the test after
        assert torch.get_num_threads() == 4


def test_a_checkpoint_after_a_prefetched_epoch_holds_the_generators_before_it(corpus, cache, tmp_path):
    states = {}
    for p in (True, False):
        run = _run(corpus, cache, tmp_path, chunk_size=256, epochs=3, prefetch=p)
        run.train_epoch()
        if p:
            run._pending[(1, 0)].result()  # epoch 2's data is drawn: the live generators moved on
            assert not torch.equal(run.augment_gen.get_state(), run._gen_snapshots[1][1])
        states[p] = run._state()
    for key in ("shuffle_gen", "augment_gen", "cpu_rng"):
        assert torch.equal(states[True][key], states[False][key]), key
