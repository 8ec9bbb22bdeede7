"""Fused device kernels (Triton), each beside the eager code it replaces and bit-identical to it.

Every kernel here is optional: the library dispatches to it only on CUDA tensors with Triton
importable (``available()``), and otherwise runs the eager torch code in :mod:`ser_gpu.functional`.
Set the environment variable ``SER_GPU_FUSED=0`` to force the eager path everywhere (A/B runs).
"""

from __future__ import annotations

import functools
import os

__all__ = ["triton_available", "fused_enabled"]


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether ``import triton`` works (Triton ships with the CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means "no Triton"
        return False
    return True


def interpreting() -> bool:
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``, read at import)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def fused_enabled(device) -> bool:
    """Whether the library dispatches to fused kernels for tensors on ``device``: CUDA, Triton
    importable, not in Triton's CPU interpreter (tests call the kernels directly there), and
    ``SER_GPU_FUSED`` not set to ``0``."""
    if os.environ.get("SER_GPU_FUSED", "1") == "0":
        return False
    if getattr(device, "type", device) != "cuda" or interpreting():
        return False
    return triton_available()
