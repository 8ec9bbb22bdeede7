"""Shared fixtures: the device × dtype grid, tolerances from DESIGN.md, relative error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda,
                                              pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")])]
DTYPES = [torch.float64, torch.float32]

# DESIGN.md parity contract: max |ours - librosa| / max |librosa|
STFT_TOL = {torch.float64: 1e-6, torch.float32: 1e-4}
CQT_TOL = {torch.float64: 1e-3, torch.float32: 1e-2}


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return request.param


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref| (0 when both are all zero)."""
    ours = ours.detach().cpu().double().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours, float)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != librosa's {ref.shape}"
    scale = np.abs(ref).max()
    diff = np.abs(ours - ref).max()
    if scale == 0:
        return float(diff)
    return float(diff / scale)
