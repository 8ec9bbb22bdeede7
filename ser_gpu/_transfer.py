"""Host → device copies that do not wait for the device.

``t.to("cuda")`` from host memory makes the host wait until the stream's queued work is done
(torch copies with ``cudaMemcpyAsync`` then synchronises the stream): a host sync on every call of
a kernel that moves a small host-built table (a window, a filter table, histogram edges, an index).
From pageable host memory, ``non_blocking=True`` instead has CUDA stage the bytes before the call
returns, with no wait for the device, so the source may be freed or changed at once. A pinned
source would be read later, asynchronously: it is copied the blocking way. Only CUDA stages pageable
memory so: on other devices (MPS reads the source after the call returns, pytorch#139550) every copy
is the blocking one.
"""

from __future__ import annotations

import torch

__all__ = ["to_device"]


def to_device(t: torch.Tensor, device=None, dtype=None) -> torch.Tensor:
    """``t.to(device=device, dtype=dtype)`` (``None``: keep ``t``'s), without a host sync when ``t`` is in
    pageable host memory and ``device`` a CUDA device."""
    device = t.device if device is None else torch.device(device)
    non_blocking = t.device.type == "cpu" and device.type == "cuda" and not t.is_pinned()
    return t.to(device=device, dtype=t.dtype if dtype is None else dtype, non_blocking=non_blocking)
