"""Host → device copies without a host sync (ser_gpu._transfer.to_device) and the kernels that use it.

The CUDA tests see the syncs torch makes (torch.cuda.set_sync_debug_mode); whether CUDA itself waits
inside a copy is for the H200's timings (bench_train, profile_features)."""

from __future__ import annotations

import pytest
import torch

from ser_gpu.functional import unchecked
from ser_gpu._transfer import to_device
from tests.conftest import needs_cuda


def test_to_device_is_tensor_to_on_the_cpu():
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    same = to_device(t)
    assert same is t or torch.equal(same, t)
    out = to_device(t, "cpu", torch.float32)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and torch.equal(out, t.float())
    assert to_device(t, torch.device("cpu")).dtype == torch.float64  # dtype None keeps t's


def test_to_device_copies_asynchronously_only_to_cuda(monkeypatch):
    """non_blocking only from pageable host memory to CUDA: elsewhere (MPS reads a pageable source after
    the call returns, pytorch#139550) and from pinned memory the copy blocks."""
    seen = []
    real_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("non_blocking"))
        return real_to(self, *args, **{**kwargs, "device": "cpu"})  # no such device here: copy on the CPU

    monkeypatch.setattr(torch.Tensor, "to", spy)
    t = torch.arange(4.0)
    to_device(t, "cuda")
    to_device(t, "mps")
    to_device(t, "cpu")
    assert seen == [True, False, False]


@pytest.mark.cuda
@needs_cuda
def test_to_device_from_pageable_memory_does_not_wait_for_the_gpu():
    """A pageable source is staged at once (no sync, and the source may change afterwards); a pinned one
    is copied the blocking way (its asynchronous copy would read it later)."""
    t = torch.arange(1000, dtype=torch.float64)
    busy = torch.randn(2048, 2048, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _ = busy @ busy  # queued work the copy must not wait for
        out = to_device(t, "cuda", torch.float32)
        t += 1  # the copy was staged before to_device returned
        with pytest.raises(RuntimeError, match="synchroniz"):
            to_device(torch.arange(10).pin_memory(), "cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out.cpu(), torch.arange(1000, dtype=torch.float32))


@pytest.mark.cuda
@needs_cuda
def test_kernels_moving_host_tables_do_not_wait_for_the_gpu():
    """power_to_db with a number as reference, the tonnetz projection, the constant-Q-to-chroma fold and
    the delta filter table moved host-built tables with a blocking copy (a host sync per call)."""
    g = torch.Generator().manual_seed(0)
    S = (torch.rand(2, 84, 30, generator=g) + 0.1).cuda()
    chroma = torch.rand(2, 12, 30, generator=g).cuda()
    fl = torch.tensor([30, 17], device="cuda")
    expected = [unchecked.power_to_db(S, 1.0, 1e-10, 80.0, None).cpu(),
                unchecked.tonnetz_from_chroma(chroma, fl).cpu(), unchecked.delta(chroma, 9, 1, fl).cpu()]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = [unchecked.power_to_db(S, 1.0, 1e-10, 80.0, None), unchecked.tonnetz_from_chroma(chroma, fl),
               unchecked.delta(chroma, 9, 1, fl)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for a, b in zip(got, expected):
        assert torch.equal(a.cpu(), b)
