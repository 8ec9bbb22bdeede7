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

import threading
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["to_device", "DeviceCache", "CONSTANTS"]


def to_device(t: torch.Tensor, device=None, dtype=None) -> torch.Tensor:
    """``t.to(device=device, dtype=dtype)`` (``None``: keep ``t``'s), without a host sync when ``t`` is in
    pageable host memory and ``device`` a CUDA device."""
    device = t.device if device is None else torch.device(device)
    non_blocking = t.device.type == "cpu" and device.type == "cuda" and not t.is_pinned()
    return t.to(device=device, dtype=t.dtype if dtype is None else dtype, non_blocking=non_blocking)


class DeviceCache:
    """Host-built constant tables (filter banks, windows, small lookup tables) kept on devices, least
    recently used out beyond ``size`` entries: a kernel that needs one on a GPU reads it instead of
    copying it over on every call.

    A miss builds the table (``build()``: a numpy array or host tensor), copies it to the device the
    blocking way (so it is complete for any stream that reads it later) outside inference mode (so
    autograd may use it afterwards) and keeps it. Callers must not modify what ``get`` returns. Safe
    to call from several threads (the training prefetch thread and the main one).
    """

    def __init__(self, size: int):
        self.size = size
        self._items: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key, build, device, dtype) -> torch.Tensor:
        """The table ``build()`` on ``device`` (``None``: the CPU) in ``dtype``, built only on a miss."""
        full_key = (key, str(torch.device(device) if device is not None else torch.device("cpu")), dtype)
        with self._lock:
            hit = self._items.get(full_key)
            if hit is not None:
                self._items.move_to_end(full_key)
                return hit
        with torch.inference_mode(False):
            table = build()
            table = torch.from_numpy(np.array(table)) if isinstance(table, np.ndarray) else table.clone()
            hit = table.to(device=device, dtype=dtype)
        with self._lock:
            hit = self._items.setdefault(full_key, hit)  # a thread that built it first wins
            self._items.move_to_end(full_key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return hit


#: The small constant tables of the feature kernels (STFT windows, histogram edges, Savitzky-Golay
#: tables, the tonnetz and constant-Q-to-chroma matrices): a few dozen entries of a few KB each.
CONSTANTS = DeviceCache(64)
