"""Run the fused median kernel in Triton's CPU interpreter and compare it with the eager median.

Started as a subprocess by tests/test_median_fused.py: ``TRITON_INTERPRET=1`` must be set before
Triton is first imported, which pytest's process may already have done. Prints one line per case
and exits 1 on the first mismatch (bit for bit), 0 when all cases agree.
"""

from __future__ import annotations

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from ser_gpu.functional import median as M  # noqa: E402
from ser_gpu.kernels import median_triton as MT  # noqa: E402


def cases():
    g = torch.Generator().manual_seed(11)
    # librosa's 31 on every shape and dtype; other widths (even ones too) on two shapes
    grid = [(dtype, 31, shape) for dtype in (torch.float32, torch.float64)
            for shape in ((40, 23), (1, 1), (3, 2), (5, 31), (33, 70))]
    grid += [(torch.float64, k, shape) for k in (2, 4, 9, 63) for shape in ((40, 23), (3, 2))]
    # frames from 1 (fewer than any kernel) to more than the kernel, bins likewise
    for dtype, k, (F, T) in grid:
        S = torch.rand((2, F, T), generator=g, dtype=torch.float64).to(dtype)
        S[0, :, : T // 2] = 0.25  # ties
        S[1, F // 2 :] = torch.round(S[1, F // 2 :] * 4) / 4  # more ties
        fl = torch.tensor([T, max(1, T // 3)])
        yield dtype, k, S, fl


def main() -> int:
    n = 0
    for dtype, k, S, fl in cases():
        checks = {
            "time": (MT.median(S, k, "time"), M._median_time(S, k, None, M.DEFAULT_CHUNK_SIZE)),
            "time+frame_lengths": (MT.median(S, k, "time", fl), M._median_time(S, k, fl, M.DEFAULT_CHUNK_SIZE)),
            "freq": (MT.median(S, k, "freq"), M._median_freq(S, k, M.DEFAULT_CHUNK_SIZE)),
        }
        for name, (fused, eager) in checks.items():
            n += 1
            same = fused.dtype == eager.dtype and torch.equal(fused, eager)
            if not same:
                print(f"MISMATCH {dtype} k={k} shape={tuple(S.shape)} {name}")
                return 1
    print(f"fused == eager bit for bit in {n} cases (Triton interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
