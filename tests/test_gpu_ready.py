"""The GPU session's checks run on a machine without the reference packages.

librosa, soundfile, soxr and audiomentations are hidden (``sys.modules[name] = None`` makes both
``import`` and ``importlib.util.find_spec`` fail) and every CUDA test must still be collected.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

_HIDE_AND_COLLECT = """
import sys
for m in ("librosa", "soundfile", "soxr", "audiomentations"):
    sys.modules[m] = None
import pytest
sys.exit(pytest.main(["-q", "-m", "cuda", "tests", "--co", "-p", "no:cacheprovider"]))
"""


def test_cuda_tests_collect_without_reference_packages():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _HIDE_AND_COLLECT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error" not in proc.stdout.lower()
    for needed in ("tests/cuda/test_cuda_parity.py::test_feature_extractor_matches_cpu_float64[cuda-float32]",
                   "tests/test_median_fused.py::test_hpss_cuda_fused_equals_eager",
                   "tests/test_model.py::test_padding_invariance_default_model[cuda]"):
        assert needed in proc.stdout, needed
