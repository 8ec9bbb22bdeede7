"""What one FeatureExtractor call launches on a GPU, counted on any machine (no GPU needed).

    python benchmarks/extractor_ops.py [--batch 256] [--seconds 3] [--tag NAME]

On a GPU at batch 256 the extractor is bound by how many kernels it launches and by where it makes the
host wait for the device (a read of device data: ``.item()``, ``nonzero``, a copy to the host), not by
arithmetic. Both can be counted without a GPU: this runs one call on the CPU under a
``TorchDispatchMode`` that records every aten op that is not a view (each one a kernel launch on CUDA;
not the host scalars ``torch.where(c, x, 0.0)`` wraps) with the ser_gpu function that issued it, and
the position of every data-dependent read in that sequence. It follows the CUDA code path where the two differ: the HPSS medians count as one op each
(CUDA runs them as one fused Triton kernel; here the eager median computes the values unrecorded) and
the ISTFT works in CUDA-sized chunks. Reads of host tensors (a number made into a tensor, the FFT bin
frequencies) are counted too: they are listed by function, so which ones touch device data on CUDA is
for the reader to see (the CUDA profile of ``profile_features.py`` counts real syncs).

The warm-up call takes the same batch, so a cache keyed by the data (a size that follows the trimmed
width, a tuning) would look free here while a training stream misses it on every call (a blocking copy
on a GPU): ``tests/test_transfer.py`` checks that the extractor's constant tables are keyed by its
settings only.

Writes ``benchmarks/results/extractor_ops[_<tag>]_cpu.json``. The figure to compare across commits is
``aten_ops`` (same batch and clips).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import inspect
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import speech_like_clips, write_results  # noqa: E402

#: aten ops that only make views (no kernel on a GPU)
_VIEWS = {"view", "reshape", "_unsafe_view", "expand", "slice", "select", "permute", "transpose", "t",
          "unsqueeze", "squeeze", "as_strided", "alias", "detach", "unbind", "split", "split_with_sizes",
          "view_as_real", "view_as_complex", "diagonal", "_reshape_alias", "unfold", "narrow", "chunk",
          "lift_fresh", "real", "imag"}
#: aten ops that make a host scalar (``torch.where(c, x, 0.0)`` wraps 0.0 so): a CUDA kernel takes it
#: by value, no launch
_HOST_SCALARS = {"scalar_tensor"}
#: aten ops that read a value back to the host (a sync when the tensor is on a GPU)
_READS = {"_local_scalar_dense", "nonzero", "is_nonzero", "_unique2", "unique_dim", "unique_consecutive"}


def _caller() -> str:
    """``module.py:function`` of the innermost ser_gpu frame on the stack."""
    frame = inspect.currentframe()
    while frame is not None:
        name = frame.f_code.co_filename
        if "/ser_gpu/" in name:
            return f"{name.split('/ser_gpu/')[1]}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.recording = True
        self.ops = 0
        self.by_function = collections.Counter()
        self.by_op = collections.Counter()
        self.reads = []  # (op index, function, op)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if self.recording and name not in _VIEWS and name not in _HOST_SCALARS:
            self.ops += 1
            where = _caller()
            self.by_function[where] += 1
            self.by_op[name] += 1
            if name in _READS:
                self.reads.append((self.ops, where, name))
        return func(*args, **(kwargs or {}))

    def fused_median(self):
        """One op for a median CUDA computes in one fused kernel."""
        self.ops += 1
        self.by_function["kernels/median_triton.py:median (fused, one launch)"] += 1


@contextlib.contextmanager
def _the_cuda_path(counter: _OpCounter):
    """Within: a CPU call takes the CUDA path's shape, fused medians (counted as one op) and CUDA-sized
    ISTFT chunks; the library is as it was after."""
    import ser_gpu.functional.median as median
    import ser_gpu.functional.spectrum as spectrum

    def fused(S, k, axis, frame_lengths):
        counter.recording = False  # the values, from the eager median the fused kernel equals bit for bit
        try:
            if axis == "time":
                out = median._median_time_runs(S, k, frame_lengths, median.DEFAULT_CHUNK_SIZE)
            else:
                out = median._median_freq_runs(S, k, median.DEFAULT_CHUNK_SIZE)
        finally:
            counter.recording = True
        counter.fused_median()
        return out

    saved = median._fused, median._try_fused, spectrum._ISTFT_CHUNK_ELEMENTS
    median._fused = lambda S, k: True
    median._try_fused = fused
    spectrum._ISTFT_CHUNK_ELEMENTS = spectrum._ISTFT_CHUNK_ELEMENTS_CUDA
    try:
        yield
    finally:
        median._fused, median._try_fused, spectrum._ISTFT_CHUNK_ELEMENTS = saved


def count(batch: int, seconds: float) -> dict:
    from ser_gpu.transforms import FeatureExtractor

    clips = torch.from_numpy(speech_like_clips(batch, seconds, seed=0))
    # differently long clips, as in a training chunk (every 16th the same)
    lengths = torch.full((batch,), clips.shape[1]) - (torch.arange(batch) % 16) * 300
    extractor = FeatureExtractor(max_frames=None)
    counter = _OpCounter()
    counter.recording = False
    with _the_cuda_path(counter), counter:
        extractor(clips, lengths)  # warm-up: caches of banks and constant tables
        for seen in (counter.by_function, counter.by_op, counter.reads):
            seen.clear()
        counter.ops, counter.recording = 0, True
        extractor(clips, lengths)
    reads = [{"op_index": i, "function": f, "op": op} for i, f, op in counter.reads]
    return {"batch": batch, "clip_seconds": seconds, "dtype": "float32",
            "aten_ops": counter.ops, "by_function": dict(counter.by_function.most_common()),
            "by_op": dict(counter.by_op.most_common(30)), "data_dependent_reads": reads,
            "notes": "non-view aten ops of one FeatureExtractor(max_frames=None) call (68 rows, trim on) on "
                     "the CUDA code path, counted on the CPU (HPSS medians as one fused op each, CUDA-sized "
                     "ISTFT chunks); data_dependent_reads: where in that sequence a value is read back to "
                     "the host (host tensors included)"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tag", default="", help="suffix of the results file (extractor_ops_<tag>_cpu.json)")
    args = p.parse_args(argv)
    result = count(args.batch, args.seconds)
    path = write_results("extractor_ops" + (f"_{args.tag}" if args.tag else ""), torch.device("cpu"), result)
    print(f"batch {args.batch} x {args.seconds:g} s: {result['aten_ops']} aten ops (kernel launches on a GPU)")
    for name, n in list(result["by_function"].items())[:20]:
        print(f"  {n:5d}  {name}")
    print("data-dependent reads at op " + ", ".join(f"{r['op_index']} ({r['function'].split(':')[1]})"
                                                   for r in result["data_dependent_reads"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
