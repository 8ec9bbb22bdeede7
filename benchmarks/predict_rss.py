"""Peak RSS of ``python -m ser_gpu.predict`` against the input's length (issue 16, point 5).

Writes speech-like files of the given lengths (a harmonic voice whose pitch drifts slowly, so the
per-window tuning estimate takes many values, as in real speech), a random-weight checkpoint with
the default feature rows (tonnetz on: the constant-Q path), then runs predict on each file in a
fresh subprocess and reads the child's peak RSS (``resource.getrusage(RUSAGE_SELF)`` in the child).

    python benchmarks/predict_rss.py --work /tmp/rss --seconds 4 600 2400 [--device cpu] --name predict_rss_after
    python benchmarks/predict_rss.py --work /tmp/rss --seconds 600 --batch-size 1 2 4 8 32 --name predict_rss_batch_sweep

Without ``--batch-size`` predict chooses its own default (``ser_gpu.predict.CPU_BATCH_SIZE`` on the
CPU). Results go to ``benchmarks/results/<name>_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import write_results  # noqa: E402

SR = 22050


def write_speech(path: Path, seconds: float, seed: int = 0) -> Path:
    """A voice-like signal: 24 harmonics, formant envelope, syllable swells, drifting f0, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    block = 10 * SR
    phase = 0.0
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as fh:
        for start in range(0, n, block):
            m = min(block, n - start)
            t = (start + np.arange(m)) / SR
            # f0 drifts between ~110 and ~190 Hz (a slow walk), with 5.5 Hz vibrato
            drift = 140.0 * 2 ** (0.35 * np.sin(2 * np.pi * t / 37.0) + 0.2 * np.sin(2 * np.pi * t / 11.3))
            f0 = drift * (1.0 + 0.03 * np.sin(2 * np.pi * 5.5 * t))
            ph = phase + 2 * np.pi * np.cumsum(f0) / SR
            phase = float(ph[-1])
            y = np.zeros(m)
            for k in range(1, 25):
                fk = k * 140.0
                amp = (np.exp(-((fk - 700) / 300) ** 2) + 0.6 * np.exp(-((fk - 1200) / 400) ** 2)
                       + 0.3 * np.exp(-((fk - 2600) / 500) ** 2) + 0.02) / k ** 0.5
                y += amp * np.sin(k * ph)
            env = 0.5 * (1 - np.cos(2 * np.pi * (t % 1.3) / 1.3))
            y = y * (0.2 + env) + 0.005 * rng.standard_normal(m)
            fh.write((0.1 * y).astype(np.float32))
    return path


def write_checkpoint(path: Path) -> Path:
    import torch

    from ser_gpu.checkpoint import save_checkpoint
    from ser_gpu.data import EMOTIONS
    from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
    from ser_gpu.transforms.features import FEATURE_ROWS, FeatureConfig

    torch.manual_seed(0)
    config = ModelConfig(input_dim=len(FEATURE_ROWS), n_classes=len(EMOTIONS))
    fc = FeatureConfig(max_frames=None, normalize="valid", tonnetz=True)
    return save_checkpoint(path, model=CNNBiLSTMAttention(config).eval(), model_config=config.to_dict(),
                           feature_config=fc.to_dict(), labels=list(EMOTIONS))


_CHILD = r"""
import json, resource, sys, time
from ser_gpu import predict
t0 = time.perf_counter()
code = predict.main([sys.argv[1], "--checkpoint", sys.argv[2], "--device", sys.argv[3], "--quiet", "--json"]
                    + (["--batch-size", sys.argv[4]] if sys.argv[4] != "default" else []))
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RSS_JSON" + json.dumps({"code": code, "peak_mb": peak_kb / 1024, "seconds": time.perf_counter() - t0}))
"""


def measure(audio: Path, ckpt: Path, device: str, batch_size: Optional[int] = None) -> dict:
    """Peak RSS (MB), exit code and seconds of one predict run; ``batch_size=None``: predict's default."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(audio), str(ckpt), device,
                           "default" if batch_size is None else str(batch_size)],
                          capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    for line in proc.stdout.splitlines():
        if line.startswith("RSS_JSON"):
            return json.loads(line[len("RSS_JSON"):])
    raise SystemExit(f"predict failed on {audio}:\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/ser_gpu_rss")
    p.add_argument("--seconds", type=float, nargs="+", default=[4.0, 600.0, 2400.0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, nargs="+", default=None,
                   help="predict's --batch-size (windows per forward pass), one run per value and file; "
                        "default: predict's own default")
    p.add_argument("--name", default="predict_rss", help="results file: benchmarks/results/<name>_<device>.json")
    args = p.parse_args()
    from ser_gpu.predict import CPU_BATCH_SIZE, CUDA_BATCH_SIZE

    default = CUDA_BATCH_SIZE if args.device.startswith("cuda") else CPU_BATCH_SIZE
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "random.pt"
    if not ckpt.exists():
        write_checkpoint(ckpt)
    rows = []
    for s in args.seconds:
        audio = work / f"speech_{int(s)}s.wav"
        if not audio.exists():
            write_speech(audio, s)
        for bs in args.batch_size or [None]:
            r = measure(audio, ckpt, args.device, bs)
            rows.append({"file_seconds": s, "batch_size": default if bs is None else bs,
                         "default_batch_size": bs is None, **r})
            print(f"{s:8.0f} s file, batch {rows[-1]['batch_size']:3d}: peak RSS {r['peak_mb']:8.1f} MB, predict "
                  f"took {r['seconds']:7.1f} s, exit {r['code']}", flush=True)
    peaks = [r["peak_mb"] for r in rows]
    spread = max(peaks) / min(peaks) - 1
    print(json.dumps(rows))
    print(f"largest peak is {100 * spread:.1f} % above the smallest")
    out = write_results(args.name, torch.device(args.device),
                        {"benchmark": "peak RSS of python -m ser_gpu.predict vs file length (random-weight "
                                      "checkpoint, tonnetz rows on, speech-like file with drifting pitch)",
                         "command": "python benchmarks/predict_rss.py " + " ".join(sys.argv[1:]),
                         "spread": spread, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
