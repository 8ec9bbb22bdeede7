"""Where FeatureExtractor's time goes: a torch.profiler summary of one batched call.

    python benchmarks/profile_features.py [--device cpu|cuda] [--batch 256] [--seconds 3] [--top 30]

On CUDA: the top kernels/ops by device time, the number of kernel launches, and the host syncs
(``cudaStreamSynchronize``/``cudaDeviceSynchronize``/device-to-host copies) of one call, plus the
syncs ``torch.cuda.set_sync_debug_mode`` reports. On CPU: the aten ops by CPU time and how many
aten ops one call runs (launch count is what costs on a GPU; the CPU count is its proxy).
Writes ``benchmarks/results/profile_features_<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import speech_like_clips, write_results  # noqa: E402
from ser_gpu.transforms import FeatureExtractor  # noqa: E402

SR = 22050
_SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def _summary(prof, device: torch.device, top: int) -> dict:
    events = prof.key_averages()
    cuda = device.type == "cuda"

    def dev_time(e):  # self device time (us); the attribute name changed across torch versions
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0) or 0

    rows = []
    for e in events:
        rows.append({"name": e.key, "calls": e.count,
                     "self_cpu_ms": e.self_cpu_time_total / 1e3,
                     "cpu_total_ms": e.cpu_time_total / 1e3,
                     **({"self_device_ms": dev_time(e) / 1e3} if cuda else {})})
    key = "self_device_ms" if cuda else "self_cpu_ms"
    rows.sort(key=lambda r: r[key], reverse=True)
    aten = [r for r in rows if r["name"].startswith("aten::")]
    out = {
        "sorted_by": key,
        "aten_op_calls": sum(r["calls"] for r in aten),
        "distinct_aten_ops": len(aten),
        "top": rows[:top],
        "host_syncs": {name: sum(r["calls"] for r in rows if r["name"] == name) for name in
                       ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")},
    }
    if cuda:
        out["host_syncs"].update({name: sum(r["calls"] for r in rows if r["name"] == name) for name in _SYNC_EVENTS})
        out["host_syncs"]["cudaMemcpyAsync"] = sum(r["calls"] for r in rows if r["name"] == "cudaMemcpyAsync")
        out["cuda_launch_calls"] = sum(r["calls"] for r in rows if r["name"] in ("cudaLaunchKernel", "cuLaunchKernel",
                                                                               "cudaLaunchKernelExC", "cuLaunchKernelEx"))
        try:  # kernel events: their attribute names moved across torch versions
            kernels = [e for e in prof.events() if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
            out["kernel_launches"] = len(kernels)
            out["device_time_ms"] = sum(getattr(e, "device_time_total", 0) or 0 for e in kernels) / 1e3
        except Exception as exc:  # noqa: BLE001 - keep the rest of the summary
            out["kernel_launches"] = f"unavailable: {exc!r}"
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    clips = speech_like_clips(args.batch, args.seconds, SR)
    y = torch.from_numpy(clips).to(device=device, dtype=dtype)
    lengths = torch.full((args.batch,), clips.shape[1], dtype=torch.int64, device=device)
    extractor = FeatureExtractor(max_frames=None).to(device)

    def call():
        with torch.no_grad():
            out = extractor(y, lengths)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    call()  # warm-up: Triton/cuFFT plans, filterbank caches
    start = time.perf_counter()
    call()
    wall = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        call()
        peak = torch.cuda.max_memory_allocated(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        call()
    summary = _summary(prof, device, args.top)
    if device.type == "cuda":
        # every synchronising call on the hot path, as torch reports it (warn mode: one warning each)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        sync_msgs = [str(w.message).split("\n")[0] for w in caught if "synchroniz" in str(w.message).lower()]
        summary["sync_debug_warnings"] = len(sync_msgs)
        summary["sync_debug_examples"] = sorted(set(sync_msgs))[:20]
        summary["peak_memory_gib"] = peak / 2**30
    audio = args.batch * args.seconds
    payload = {"batch": args.batch, "clip_seconds": args.seconds, "dtype": args.dtype,
               "wall_seconds_unprofiled": wall, "x_realtime_unprofiled": audio / wall, **summary,
               "notes": "one FeatureExtractor(max_frames=None) call (68 rows, trim on) after a warm-up; "
                        "aten_op_calls counts every aten op the call dispatches (launch-count proxy on CPU)"}
    path = write_results("profile_features", device, payload)
    print(f"{device} batch {args.batch} x {args.seconds:g} s: {1e3 * wall:.1f} ms unprofiled "
          f"({audio / wall:,.0f} x realtime); {summary['aten_op_calls']} aten op calls; syncs {summary['host_syncs']}")
    for r in summary["top"][:15]:
        print(f"  {r[summary['sorted_by']]:10.2f} ms  {r['calls']:6d}  {r['name'][:90]}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
