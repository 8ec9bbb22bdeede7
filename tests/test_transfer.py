"""Host → device copies without a host sync (ser_gpu._transfer.to_device) and the kernels that use it.

The CUDA tests see the syncs torch makes (torch.cuda.set_sync_debug_mode); whether CUDA itself waits
inside a copy is for the H200's timings (bench_train, profile_features)."""

from __future__ import annotations

import pytest
import torch

from ser_gpu.functional import unchecked
from ser_gpu._transfer import DeviceCache, to_device
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


def test_device_cache_builds_once_keeps_the_recent_and_hands_out_one_tensor():
    import numpy as np

    cache, built = DeviceCache(2), []

    def table(k):
        built.append(k)
        return np.full(3, float(k))

    first = cache.get(("t", 1), lambda: table(1), None, torch.float32)
    assert cache.get(("t", 1), lambda: table(1), "cpu", torch.float32) is first  # None and "cpu": one key
    assert first.dtype == torch.float32 and torch.equal(first, torch.ones(3))
    assert cache.get(("t", 1), lambda: table(1), "cpu", torch.float64).dtype == torch.float64  # per dtype
    assert cache.get(("t", 1), lambda: table(1), "cpu", torch.float32) is first  # float64 is now the oldest
    cache.get(("t", 2), lambda: table(2), "cpu", torch.float32)  # evicts the least recently used (float64)
    assert len(cache) == 2 and cache.get(("t", 1), lambda: table(1), "cpu", torch.float32) is first
    assert built == [1, 1, 2]


def test_device_cache_tables_made_in_inference_mode_serve_autograd_later():
    """The first use may come from predict (inference mode); training's autograd must still be able to use it."""
    cache = DeviceCache(4)
    with torch.inference_mode():
        w = cache.get("w", lambda: torch.hann_window(8, dtype=torch.float64), None, torch.float32)
    assert not w.is_inference()
    x = torch.randn(8, requires_grad=True)
    (x * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_device_cache_from_many_threads_gives_every_caller_the_same_tensor():
    import threading

    cache, out = DeviceCache(4), []
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        out.append(cache.get("k", lambda: torch.arange(1000.0), None, torch.float32))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 8 and all(o is out[0] for o in out) and len(cache) == 1


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


def test_the_extractor_keys_its_constant_tables_by_settings_not_by_data():
    """A cached table is a blocking copy on a miss (a host sync on a GPU): the extractor must only ask for
    tables that depend on its settings, so a second batch of other lengths and content (other trimmed
    widths, frame counts and tunings) finds every one it needs in the cache."""
    from ser_gpu._transfer import CONSTANTS
    from ser_gpu.transforms import FeatureExtractor

    g = torch.Generator().manual_seed(0)
    fe = FeatureExtractor(max_frames=None)
    t = torch.arange(40000) / 22050

    def batch(f0s, lengths):
        y = torch.stack([torch.sin(2 * torch.pi * f * t) * (1 + 0.1 * torch.randn(40000, generator=g))
                         for f in f0s]) * 0.1
        return y, torch.tensor(lengths)

    fe(*batch([220.0, 331.0], [40000, 30000]))
    keys = set(CONSTANTS._items)
    fe(*batch([197.0, 452.5, 610.0], [25000, 39999, 12345]))
    assert set(CONSTANTS._items) == keys
