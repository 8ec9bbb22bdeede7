"""Time per training epoch: the original data path (CPU workers) against ser_gpu's (all on the device).

    python benchmarks/bench_train.py [--device cpu|cuda] [--clips 1440] [--seconds 3.5] [--epochs 3]
                                     [--chunk-size N] [--compile] [--readme-job | --readme-only] [--memory]
                                     [--sync-report] [--skip-original] [--augment-copies K | --no-augment]
                                     [--out FILE]

Both pipelines train the same model (``CNNBiLSTMAttention``, default config) with the same optimiser
on the same clips (speech-like, random labels: only the time matters here), batch 16, fresh
augmentation every epoch:

(a) original: a ``torch.utils.data.DataLoader`` with ``--workers`` processes; each item is
    audiomentations (AddGaussianNoise, TimeStretch, PitchShift, Shift; p=0.5 each) then the 68 librosa
    rows of docs/design.md, per-row standardisation and SpecAugment on the CPU; batches padded to their
    longest clip (the original padded to 862 frames; padding to the batch keeps the model's share
    equal in (a) and (b) so the data paths are what differ). librosa is warmed up in the parent first,
    so the workers never compile (and write numba's cache) at the same time.
(b) ser_gpu: ``ser_gpu.train``'s own epoch (``_Run.train_epoch``) on the clips held on the device:
    ``WaveformAugment`` -> ``FeatureExtractor`` -> ``SpecAugment`` over whole chunks of clips
    (``--chunk-size``, default the trainer's choice), then the model's batches of 16.

``--augment-copies K`` / ``--no-augment`` time ser_gpu with its training rows kept (computed in the
run's setup, reported as ``setup_seconds``; the epochs then draw only SpecAugment).

Reported for ser_gpu: the first epoch's and the steady (median of the later epochs) seconds, the data
path's share of the steady epochs (augmentation + features + SpecAugment, device synchronised), and the
model step alone (one epoch's batches precomputed, then forward/backward/optimiser only). ``--readme-job``
also runs the README Quickstart (``python -m ser_gpu.train --split actor --epochs 20``) in a
subprocess with a fresh cache (corpus generation included) and reports its wall time, epochs and test
UAR. ``--sync-report`` (CUDA) runs one more, untimed epoch under ``torch.cuda.set_sync_debug_mode('warn')``
and counts every host sync by thread (the training loop, the prefetch thread) and by the ser_gpu source
line that made it. Load averages before/after are recorded (timings on a shared machine are noisy).
Results go to ``benchmarks/results/train_<device>.json`` (or ``--out``), rewritten after each part (the
ser_gpu epochs, the original, the README job), so a later part's failure or a timeout keeps the earlier ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import librosa_rows, save_results, speech_like_clips, write_results  # noqa: E402

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


class _BenchRun:
    """``ser_gpu.train``'s own run (``_Run``: chunked data path, model, optimiser) on in-memory clips."""

    def __new__(cls, clips, labels, device, *, epochs, chunk_size=None, compile_model=False, prefetch=True, out=None,
                augment=True, augment_copies=None):
        import tempfile

        from ser_gpu.data import WaveformSet
        from ser_gpu.train import TrainConfig, _Run

        class Run(_Run):
            def _build_data(self):
                waves = [torch.from_numpy(c) for c in clips]
                self.train_set = WaveformSet(waves, labels.tolist()).to(self.device)
                self.val_set = self.test_set = None
                self.host_lengths = {id(self.train_set): torch.tensor([w.shape[0] for w in waves])}
                self.split_sizes = {"train": len(waves), "val": 0, "test": 0}
                self.n_train_batches = -(-len(waves) // BATCH)

        # the original recipe: the same model, batch and optimiser as run_original, so the two pipelines compare
        scratch = None if out else tempfile.mkdtemp(prefix="bench_train_")
        config = TrainConfig.for_recipe("original", out=out or scratch,
                                        batch_size=BATCH, lr=1e-4, epochs=epochs, device=str(device),
                                        chunk_size=chunk_size, compile_model=compile_model, prefetch=prefetch,
                                        augment=augment, augment_copies=augment_copies, progress=False)
        run = Run(config, resume=False, overwrite=True)
        if scratch is not None:  # a directory of its own: removed with the run (each benchmark run made one)
            weakref.finalize(run, shutil.rmtree, scratch, ignore_errors=True)
        return run


def run_ser_gpu(clips, labels, device, epochs, *, chunk_size=None, compile_model=False, prefetch=True,
                sync_report=False, augment=True, augment_copies=None):
    """Epochs of ``ser_gpu.train``'s training step: wall time, data-path time (waited for, and computed),
    the model step alone, the run's setup (with ``augment_copies`` or without ``augment``: the kept
    training rows) and (``sync_report``) the host syncs of one more epoch."""
    # one more epoch than timed: the model step alone runs on it, and nothing is prefetched past it
    _sync(device)
    start = time.perf_counter()
    run = _BenchRun(clips, labels, device, epochs=epochs + 1 + bool(sync_report), chunk_size=chunk_size,
                    compile_model=compile_model, prefetch=prefetch, augment=augment, augment_copies=augment_copies)
    _sync(device)
    setup_seconds = time.perf_counter() - start
    times, data_times, compute_times = [], [], []
    with run.sharing_cores():  # as ser_gpu.train's epochs run (CPU prefetch: half of the threads each)
        for _ in range(epochs):
            _sync(device)
            start = time.perf_counter()
            row = run.train_epoch()
            _sync(device)
            times.append(time.perf_counter() - start)
            data_times.append(row["data_seconds"])
            compute_times.append(run.last_timing["data_compute_seconds"])
    syncs = host_syncs(run, device, len(clips)) if sync_report else None
    # the model step alone: one epoch's batches computed first, then only forward/backward/optimiser
    batches = [(x.clone(), fl, lab) for x, fl, lab, _ in run.epoch_batches()]
    shapes = sorted({tuple(x.shape) for x, _, _ in batches})
    _sync(device)
    start = time.perf_counter()
    run.model.train()
    for x, fl, lab in batches:
        with run._autocast():
            logits = run.forward_model(x, fl)
        loss = run.criterion(logits.float(), lab)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
    _sync(device)
    model_seconds = time.perf_counter() - start
    run.close_data()
    getattr(run, "release", lambda: None)()  # the run directory's lock, where runs hold one
    info = {"chunk_size": run.chunk_size, "model_batch_shapes": len(shapes), "steps": len(batches),
            "prefetch": prefetch, "data_path_compute_seconds": compute_times, "setup_seconds": setup_seconds,
            "augment": augment, "augment_copies": augment_copies}
    if syncs is not None:
        info["host_syncs"] = syncs
    return times, data_times, model_seconds, info


def host_syncs(run, device, n_clips: int) -> dict:
    """One training epoch (``run.train_epoch()``) under ``torch.cuda.set_sync_debug_mode('warn')``: every
    host sync torch reports, counted by thread (``training``: the loop; ``data``: the prefetch thread,
    which then computed the next chunks) and by the innermost ser_gpu source line on the stack."""
    import threading
    import traceback
    import warnings

    if device.type != "cuda":
        return {"skipped": "torch.cuda.set_sync_debug_mode reports CUDA syncs only"}
    counts = {"training": {}, "data": {}}

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message).lower():
            return
        thread = "training" if threading.current_thread() is threading.main_thread() else "data"
        site = "(outside ser_gpu)"
        for frame in reversed(traceback.extract_stack()[:-1]):
            parts = Path(frame.filename).parts
            if "ser_gpu" in parts[:-1]:  # the package's last folder of that name (the checkout may share it)
                i = len(parts) - 2 - parts[-2::-1].index("ser_gpu")
                site = f"{'/'.join(parts[i:])}:{frame.lineno} {frame.name}"
                break
        counts[thread][site] = counts[thread].get(site, 0) + 1

    _sync(device)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record  # every thread's warnings come here (catch_warnings restores it)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run.train_epoch()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    seconds = time.perf_counter() - start
    used = n_clips - (n_clips % BATCH == 1)
    steps = -(-used // BATCH)
    out = {"steps": steps, "epoch_seconds_with_warnings": seconds}
    for thread, sites in counts.items():
        total = sum(sites.values())
        out[thread] = {"syncs": total, "per_step": total / steps,
                       "sites": dict(sorted(sites.items(), key=lambda kv: -kv[1])[:25])}
    return out


def readme_job(device, epochs: int = 20) -> dict:
    """The README Quickstart command in a subprocess, corpus generation included (a fresh cache), timed."""
    import re
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bench_readme_") as tmp:
        cmd = [sys.executable, "-m", "ser_gpu.train", "--split", "actor", "--epochs", str(epochs),
               "--out", str(Path(tmp) / "run"), "--device", str(device)]
        # the checkout first, then what the caller's path holds (gpu_suite.py's wheels: soundfile, soxr)
        path = os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = dict(os.environ, SER_GPU_CACHE=str(Path(tmp) / "cache"), PYTHONPATH=path)
        load_before = os.getloadavg()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()
        if proc.returncode != 0:
            raise RuntimeError(f"README job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        history = json.loads((Path(tmp) / "run" / "metrics.json").read_text())["epochs"]
        seconds = json.loads((Path(tmp) / "run" / "result.json").read_text()).get("seconds")
    m = re.search(r"test \(held out, best checkpoint\): accuracy ([0-9.]+), UAR ([0-9.]+)", proc.stdout)
    epoch_s = [h["epoch_seconds"] for h in history]
    return {"command": " ".join(cmd[1:]), "wall_seconds": wall, "test_accuracy": float(m.group(1)) if m else None,
            "test_uar": float(m.group(2)) if m else None, "epochs": len(history), "epoch_seconds": epoch_s,
            "first_epoch_seconds": epoch_s[0], "steady_epoch_seconds": float(np.median(epoch_s[1:] or epoch_s)),
            "data_seconds": [h["data_seconds"] for h in history],
            "seconds": seconds,  # the run's own account (result.json): where its wall time went
            "loadavg_before": load_before, "loadavg_after": load_after}


def data_path_memory(device, *, clips: int = 16, seconds: float = 3.5, tonnetz: bool = True) -> float:
    """Peak bytes the training data path (augmentation, 68 rows, SpecAugment) holds per padded input sample
    (CUDA: ``max_memory_allocated``; CPU: the growth of the process's peak RSS, a rougher figure)."""
    import resource

    from ser_gpu.transforms import FeatureExtractor, SpecAugment, WaveformAugment
    from ser_gpu.transforms.features import FeatureConfig

    y = torch.from_numpy(speech_like_clips(clips, seconds=seconds, seed=1)).to(device)
    lengths = torch.full((clips,), y.shape[-1], dtype=torch.int64, device=device)
    augment = WaveformAugment(sr=SR, p_noise=1.0, p_stretch=1.0, p_pitch=1.0, p_shift=1.0).to(device)
    extractor = FeatureExtractor(FeatureConfig(max_frames=None, tonnetz=tonnetz), trim=False).to(device)
    spec = SpecAugment().to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def once():
        with torch.no_grad():
            y2, l2 = augment(y, lengths, generator=gen)
            b = extractor(y2, l2)
            spec(b.features, b.frame_lengths, generator=gen)

    if device.type == "cuda":
        once()
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        once()
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        once()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return peak / y.numel()


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The GPU figures of issue 10: --device cuda --clips 1440 --seconds 3.5 --readme-job "
               "(add --compile for a second run with torch.compile).")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    p.add_argument("--clips", type=int, default=1440, help="speech-like clips per epoch (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=3.5, help="seconds per clip (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs per pipeline; the first is reported apart, the others are steady (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the original pipeline")
    p.add_argument("--skip-original", action="store_true", help="time ser_gpu only")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="clips per data-path chunk (default: ser_gpu.train's choice from free memory / 256 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (ser_gpu.train --compile)")
    p.add_argument("--augment-copies", type=int, default=None, metavar="K",
                   help="ser_gpu.train --augment-copies K: K augmented copies computed in the setup, none per epoch")
    p.add_argument("--no-augment", action="store_true", help="ser_gpu.train --no-augment (rows computed in the setup)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="no data path on a second thread (ser_gpu.train --no-prefetch)")
    p.add_argument("--readme-job", action="store_true",
                   help="also time the README Quickstart job (python -m ser_gpu.train --split actor --epochs 20 "
                        "fresh cache so corpus generation is included) in a subprocess")
    p.add_argument("--readme-only", action="store_true", help="time the README job only (implies --readme-job)")
    p.add_argument("--readme-epochs", type=int, default=20,
                   help="epochs of the README job (default: the Quickstart's %(default)s; fewer for a dry run)")
    p.add_argument("--memory", action="store_true",
                   help="also measure the data path's peak bytes per padded sample (ser_gpu.train.BYTES_PER_SAMPLE)")
    p.add_argument("--sync-report", action="store_true",
                   help="CUDA: count the host syncs of one more (untimed) epoch, by thread and source line")
    p.add_argument("--out", default=None, help="results file (default: benchmarks/results/train_<device>.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    results = {"clips": args.clips, "clip_seconds": args.seconds, "batch": BATCH, "epochs": args.epochs,
               "loadavg_before": os.getloadavg()}

    def save():  # after each part: what finished survives a later failure or a timeout
        results["loadavg_after"] = os.getloadavg()
        return write_results("train", device, results) if args.out is None else save_results(args.out, device, results)

    if args.memory:  # first: on the CPU the figure is the growth of the process's peak RSS
        results["data_path_bytes_per_sample"] = {
            "tonnetz": data_path_memory(device, tonnetz=True),
            "no_tonnetz": data_path_memory(device, tonnetz=False)}
        print(f"data path memory: {results['data_path_bytes_per_sample']} bytes per padded sample")
        save()
    if not args.readme_only:
        clips = speech_like_clips(args.clips, seconds=args.seconds, seed=0)
        labels = np.random.default_rng(0).integers(0, 8, size=args.clips)
        audio_seconds = args.clips * args.seconds

        def summary(times):
            steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
            return {"epoch_seconds": times, "first_epoch_seconds": times[0], "steady_epoch_seconds": steady,
                    "best_epoch_seconds": min(times[1:]) if len(times) > 1 else times[0],
                    "clips_per_second": args.clips / steady, "x_realtime": audio_seconds / steady}

        times, data_times, model_seconds, info = run_ser_gpu(clips, labels, device, args.epochs,
                                                             chunk_size=args.chunk_size, compile_model=args.compile,
                                                             prefetch=not args.no_prefetch,
                                                             sync_report=args.sync_report,
                                                             augment=not args.no_augment,
                                                             augment_copies=args.augment_copies)
        r = results["ser_gpu"] = {**summary(times), **info, "compile": args.compile}
        r["data_path_seconds"] = data_times
        steady = slice(1, None) if len(times) > 1 else slice(0, None)
        # the share of the epoch the model waited for the data path (with prefetch, what was not overlapped)
        r["data_path_share"] = float(sum(data_times[steady]) / sum(times[steady]))
        r["data_path_compute_share"] = float(sum(info["data_path_compute_seconds"][steady]) / sum(times[steady]))
        r["model_step_seconds_per_epoch"] = model_seconds
        print(f"ser_gpu: first epoch {r['first_epoch_seconds']:.2f} s, steady {r['steady_epoch_seconds']:.2f} s/epoch, "
              f"data path {100 * r['data_path_share']:.1f}% of the epoch waited for "
              f"({100 * r['data_path_compute_share']:.1f}% computed); model step alone {model_seconds:.2f} s/epoch "
              f"({info['steps']} steps, {info['model_batch_shapes']} batch shapes, chunk {info['chunk_size']} clips)")
        if "host_syncs" in info:
            hs = info["host_syncs"]
            print("host syncs: " + (hs["skipped"] if "skipped" in hs else
                                    f"training loop {hs['training']['syncs']} ({hs['training']['per_step']:.2f} per "
                                    f"step), prefetch thread {hs['data']['syncs']} in an epoch of {hs['steps']} steps"))
        save()
        if not args.skip_original:
            # librosa's numba functions are compiled (and cached) here once, before the workers fork: workers
            # compiling at the same time corrupt numba's cache files (numba issue #10128; seen as segfaults)
            import librosa

            librosa.feature.chroma_cqt(y=clips[0][:SR], sr=SR)
            _librosa_rows(clips[0][:SR])
            times = run_original(clips, labels, device, args.epochs, args.workers)
            results["original"] = summary(times)
            results["original"]["workers"] = args.workers
            results["speedup"] = results["original"]["steady_epoch_seconds"] / r["steady_epoch_seconds"]
            print(f"original ({args.workers} workers): {results['original']['steady_epoch_seconds']:.2f} s/epoch; "
                  f"ser_gpu is {results['speedup']:.1f}x faster")
            save()
    if args.readme_job or args.readme_only:
        try:
            job = results["readme_job"] = readme_job(device, epochs=args.readme_epochs)
        except Exception as exc:  # recorded beside the figures above, which stay written
            results["readme_job"] = {"error": f"{type(exc).__name__}: {exc}"[-3000:]}
            print(f"wrote {save()}")
            raise
        print(f"README job: {job['wall_seconds']:.1f} s end to end, first epoch {job['first_epoch_seconds']:.2f} s, "
              f"steady {job['steady_epoch_seconds']:.2f} s/epoch, test UAR {job['test_uar']}")
    path = save()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
