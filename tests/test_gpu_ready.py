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


def test_extractor_ops_counts_the_cuda_path_and_leaves_the_library_as_it_was():
    """benchmarks/extractor_ops.py: the same call counts the same launches; the fused medians count one
    each (two per call: the harmonic and percussive filters of the tonnetz HPSS); the CUDA-path settings it
    borrows are undone after."""
    import torch

    import ser_gpu.functional.median as median
    import ser_gpu.functional.spectrum as spectrum
    from benchmarks.extractor_ops import count

    before = median._fused, median._try_fused, spectrum._ISTFT_CHUNK_ELEMENTS
    first, second = count(2, 0.5), count(2, 0.5)
    assert (median._fused, median._try_fused, spectrum._ISTFT_CHUNK_ELEMENTS) == before
    assert not median._fused(torch.ones(1, 3, 3), 31)  # the CPU takes the eager median again
    assert first["aten_ops"] == second["aten_ops"] > 100
    assert first["by_function"]["kernels/median_triton.py:median (fused, one launch)"] == 2
    assert sum(first["by_function"].values()) == first["aten_ops"]
    reads = [r["function"] for r in first["data_dependent_reads"]]
    assert any(f.endswith("_sparse_peaks") for f in reads) and reads[0].endswith("valid_audio")
