"""Time per training epoch: the original data path (CPU workers) against ser_gpu's (all on the device).

    python benchmarks/bench_train.py [--device cpu|cuda] [--clips 1440] [--seconds 3.5] [--epochs 2]

Both pipelines train the same model (``CNNBiLSTMAttention``, default config) with the same optimiser
on the same clips (speech-like, random labels: only the time matters here), batch 16, fresh
augmentation every epoch:

(a) original: a ``torch.utils.data.DataLoader`` with ``--workers`` processes; each item is
    audiomentations (AddGaussianNoise, TimeStretch, PitchShift, Shift; p=0.5 each) then the 68 librosa
    rows of DESIGN.md, per-row standardisation and SpecAugment on the CPU; batches padded to their
    longest clip (the original padded to 862 frames; padding to the batch keeps the model's share
    equal in (a) and (b) so the data paths are what differ).
(b) ser_gpu: the clips sit on the device; ``WaveformAugment`` -> ``FeatureExtractor`` ->
    ``SpecAugment`` -> model inside the step.

Reported per pipeline: seconds per epoch (best of the epochs after the first), clips per second and,
for ser_gpu, the share of the step spent in the data path (augmentation + features + SpecAugment,
timed with device synchronisation). Results go to ``benchmarks/results/train_<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import librosa_rows, speech_like_clips, write_results  # noqa: E402

SR = 22050
BATCH = 16


# ------------------------------------------------------------------------------- (a) the original

def _librosa_rows(y: np.ndarray) -> np.ndarray:
    # the clips stand for loaded-and-trimmed audio, as the original augmented after trimming
    x = librosa_rows(y, trim=False).astype(np.float32)
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)


class _OriginalDataset(torch.utils.data.Dataset):
    def __init__(self, clips: np.ndarray, labels: np.ndarray):
        self.clips, self.labels = clips, labels
        self.augment = None

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        if self.augment is None:  # built in the worker process
            from audiomentations import AddGaussianNoise, Compose, PitchShift, Shift, TimeStretch

            self.augment = Compose([
                AddGaussianNoise(min_amplitude=0.001, max_amplitude=0.015, p=0.5),
                TimeStretch(min_rate=0.9, max_rate=1.1, p=0.5),
                PitchShift(min_semitones=-2, max_semitones=2, p=0.5),
                Shift(min_shift=-0.2, max_shift=0.2, shift_unit="seconds", p=0.5),
            ])
        y = self.augment(samples=self.clips[i], sample_rate=SR)
        x = _librosa_rows(y)
        rng = np.random.default_rng()
        f = rng.integers(0, 9)  # SpecAugment: one frequency mask <= 8 rows, one time mask <= 15 frames
        f0 = rng.integers(0, x.shape[0] - f + 1)
        x[f0:f0 + f] = 0
        t = rng.integers(0, min(16, x.shape[1] + 1))
        t0 = rng.integers(0, x.shape[1] - t + 1)
        x[:, t0:t0 + t] = 0
        return torch.from_numpy(x), int(self.labels[i])


def _collate(items):
    n = max(x.shape[1] for x, _ in items)
    feats = torch.zeros(len(items), items[0][0].shape[0], n)
    for row, (x, _) in zip(feats, items):
        row[:, : x.shape[1]] = x
    return feats, torch.tensor([x.shape[1] for x, _ in items]), torch.tensor([lab for _, lab in items])


# ---------------------------------------------------------------------------------------- shared

def _model(device):
    from ser_gpu.models import CNNBiLSTMAttention, ModelConfig

    torch.manual_seed(0)
    model = CNNBiLSTMAttention(ModelConfig()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
    return model, opt


def _step(model, opt, x, fl, labels, device):
    amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    if amp is not None:
        with amp:
            logits = model(x, fl)
    else:
        logits = model(x, fl)
    loss = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_original(clips, labels, device, epochs, workers):
    model, opt = _model(device)
    model.train()
    loader = torch.utils.data.DataLoader(_OriginalDataset(clips, labels), batch_size=BATCH, shuffle=True,
                                         num_workers=workers, collate_fn=_collate, persistent_workers=workers > 0)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, fl, lab in loader:
            _step(model, opt, x.to(device), fl.to(device), lab.to(device), device)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def run_ser_gpu(clips, labels, device, epochs):
    from ser_gpu.data import WaveformSet
    from ser_gpu.transforms import FeatureExtractor, SpecAugment, WaveformAugment

    model, opt = _model(device)
    model.train()
    data = WaveformSet([torch.from_numpy(c) for c in clips], labels.tolist()).to(device)
    augment = WaveformAugment(sr=SR).to(device)
    extractor = FeatureExtractor(max_frames=None, trim=False).to(device)
    spec = SpecAugment().to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    shuffle = torch.Generator().manual_seed(0)
    times, data_times = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        data_time = 0.0
        for y, lengths, lab in data.batches(BATCH, shuffle=True, generator=shuffle):
            t0 = time.perf_counter()
            with torch.no_grad():
                y2, l2 = augment(y, lengths, generator=gen)
                batch = extractor(y2, l2)
                x = spec(batch.features, batch.frame_lengths, generator=gen)
            _sync(device)
            data_time += time.perf_counter() - t0
            _step(model, opt, x, batch.frame_lengths, lab, device)
        _sync(device)
        times.append(time.perf_counter() - start)
        data_times.append(data_time)
    return times, data_times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clips", type=int, default=1440)
    p.add_argument("--seconds", type=float, default=3.5)
    p.add_argument("--epochs", type=int, default=2, help="epochs per pipeline; the first one is warm-up if > 1")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the original pipeline")
    p.add_argument("--skip-original", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    clips = speech_like_clips(args.clips, seconds=args.seconds, seed=0)
    labels = np.random.default_rng(0).integers(0, 8, size=args.clips)
    audio_seconds = args.clips * args.seconds

    def summary(times):
        best = min(times[1:]) if len(times) > 1 else times[0]
        return {"epoch_seconds": times, "best_epoch_seconds": best, "clips_per_second": args.clips / best,
                "x_realtime": audio_seconds / best}

    results = {"clips": args.clips, "clip_seconds": args.seconds, "batch": BATCH, "epochs": args.epochs}
    times, data_times = run_ser_gpu(clips, labels, device, args.epochs)
    results["ser_gpu"] = summary(times)
    i = int(np.argmin(times[1:]) + 1) if len(times) > 1 else 0
    results["ser_gpu"]["data_path_seconds"] = data_times
    results["ser_gpu"]["data_path_share"] = data_times[i] / times[i]
    print(f"ser_gpu: {results['ser_gpu']['best_epoch_seconds']:.2f} s/epoch, "
          f"data path {100 * results['ser_gpu']['data_path_share']:.1f}% of the step")
    if not args.skip_original:
        times = run_original(clips, labels, device, args.epochs, args.workers)
        results["original"] = summary(times)
        results["original"]["workers"] = args.workers
        results["speedup"] = results["original"]["best_epoch_seconds"] / results["ser_gpu"]["best_epoch_seconds"]
        print(f"original ({args.workers} workers): {results['original']['best_epoch_seconds']:.2f} s/epoch; "
              f"ser_gpu is {results['speedup']:.1f}x faster")
    path = write_results("train", device, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
