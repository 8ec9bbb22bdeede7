"""The librosa parity suite runs on CPU only: CPU ≡ librosa is what it proves (with live librosa).

The device is checked against the CPU float64 result of the same function in tests/cuda/, which
needs no librosa on the GPU machine (librosa's numba cache also breaks under parallel workers there).
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["cpu"])
def device(request):
    return request.param
