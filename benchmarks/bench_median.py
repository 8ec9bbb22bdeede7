"""HPSS's 31-tap running medians: eager min/max programs vs the fused Triton kernel vs torch.compile.

    python benchmarks/bench_median.py [--device cuda] [--batch 256] [--frames 130] [--compile] [--quick]

Times ``median_filter(axis='time')`` (with per-example frame_lengths, as the extractor calls it) and
``axis='freq'`` on a ``(batch, 1025, frames)`` float32 magnitude, checks that every variant equals the
eager result bit for bit, and writes ``benchmarks/results/median_<device>.json``. ``--compile`` adds
``torch.compile`` of the eager run-based median (slow to compile: run it last, with a timeout).
The fused kernel needs CUDA (or ``TRITON_INTERPRET=1`` on CPU, where it is only a correctness run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import timeit, write_results  # noqa: E402
from ser_gpu.functional import median as M  # noqa: E402
from ser_gpu.kernels import triton_available  # noqa: E402

K = 31


def _eager(S, axis, fl):
    old = os.environ.get("SER_GPU_FUSED")
    os.environ["SER_GPU_FUSED"] = "0"
    try:
        return M.median_filter(S, kernel_size=K, axis=axis, frame_lengths=fl)
    finally:
        if old is None:
            del os.environ["SER_GPU_FUSED"]
        else:
            os.environ["SER_GPU_FUSED"] = old


def _fused(S, axis, fl):
    from ser_gpu.kernels import median_triton

    return median_triton.median(S, K, axis, fl if axis == "time" else None)


def _compiled_runs():
    """torch.compile of the run-based median on a whole (B, L + k - 1, W) tensor (no chunking)."""

    def runs_time(S, idx):  # idx: (B, T + k - 1) reflected frame indices per example
        B, F, T = S.shape
        P = torch.gather(S.transpose(-1, -2), 1, idx.unsqueeze(-1).expand(-1, -1, F))
        return M._runs_median(P, K).transpose(-1, -2)

    def runs_freq(S, idx):
        return M._runs_median(S.index_select(1, idx), K)

    return torch.compile(runs_time, dynamic=False), torch.compile(runs_freq, dynamic=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--frames", type=int, default=130, help="frames per clip (130 = 3 s at hop 512)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the eager median")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a dry run of the script)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    B, T = (4, 20) if args.quick else (args.batch, args.frames)
    repeats = 1 if args.quick else 5
    g = torch.Generator().manual_seed(0)
    S = torch.rand((B, 1025, T), generator=g).to(device)
    fl = torch.randint(max(1, T // 2), T + 1, (B,), generator=g).to(device)
    results = {"shape": [B, 1025, T], "dtype": "float32", "kernel": K, "variants": {}}
    ref = {ax: _eager(S, ax, fl) for ax in ("time", "freq")}

    def record(name, fn):
        row = {}
        for ax in ("time", "freq"):
            out = fn(S, ax, fl)
            row[f"{ax}_bit_identical"] = bool(torch.equal(out, ref[ax]))
            row[f"{ax}_ms"] = 1e3 * timeit(lambda: fn(S, ax, fl), device=device, repeats=repeats)
        results["variants"][name] = row
        print(f"{name:28s} time {row['time_ms']:9.3f} ms (identical {row['time_bit_identical']})   "
              f"freq {row['freq_ms']:9.3f} ms (identical {row['freq_bit_identical']})", flush=True)

    record("eager", _eager)
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if triton_available() and (device.type == "cuda" or interp):
        record("fused_triton", _fused)
    else:
        results["variants"]["fused_triton"] = "skipped: needs CUDA (or TRITON_INTERPRET=1) and triton"
    if args.compile:
        start = time.perf_counter()
        ct, cf = _compiled_runs()
        pos = torch.arange(T + K - 1, device=device) - K // 2
        idx_t = M._reflect_index(pos.unsqueeze(0), fl.reshape(-1, 1))
        idx_f = M._reflect_index(torch.arange(1025 + K - 1, device=device) - K // 2, torch.tensor(1025, device=device))
        ct(S, idx_t), cf(S, idx_f)
        results["compile_seconds"] = time.perf_counter() - start
        record("torch_compile_runs", lambda S_, ax, fl_: ct(S_, idx_t) if ax == "time" else cf(S_, idx_f))
    path = write_results("median", device, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
