"""The fused (Triton) running median equals the eager one bit for bit: on CPU through Triton's
interpreter, on CUDA natively, and through the dispatch of median_filter/hpss on CUDA.

A median is a selection, so there is no tolerance: ``torch.equal``. (The one documented exception,
the sign of a zero median when the input mixes -0.0 and +0.0, is checked as value equality.)
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import warnings

import pytest
import torch

from ser_gpu.functional import hpss as H
from ser_gpu.functional import median as M
from ser_gpu.kernels import fused_enabled, triton_available
from ser_gpu.kernels import median_triton as MT

from .conftest import HAS_CUDA

ROOT = pathlib.Path(__file__).resolve().parents[1]
cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]
needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not importable")


@needs_triton
def test_fused_median_in_triton_interpreter_matches_eager():
    """54 cases (float32/float64; k = 31, 2, 4, 9, 63; 1 to 70 frames, fewer frames than the kernel
    included; per-example frame_lengths; ties) in a fresh process with TRITON_INTERPRET=1."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "median_interpret_check.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit for bit in 54 cases" in proc.stdout


def test_cpu_dispatch_stays_eager():
    """On CPU the library never calls the kernel (the interpreter is for tests only)."""
    assert not fused_enabled(torch.device("cpu"))
    assert not M._fused(torch.zeros(1, 3, 3), 31)


@pytest.mark.parametrize("fused_env, interpret, have_triton, device, expected", [
    ("1", "0", True, "cuda", True),
    ("0", "0", True, "cuda", False),     # SER_GPU_FUSED=0 forces eager
    ("1", "1", True, "cuda", False),     # Triton's CPU interpreter: tests call the kernels directly
    ("1", "0", False, "cuda", False),    # no Triton
    ("1", "0", True, "cpu", False),      # the fused kernels are CUDA kernels
])
def test_fused_switch(monkeypatch, fused_env, interpret, have_triton, device, expected):
    import ser_gpu.kernels as K

    monkeypatch.setenv("SER_GPU_FUSED", fused_env)
    monkeypatch.setenv("TRITON_INTERPRET", interpret)
    monkeypatch.setattr(K, "triton_available", lambda: have_triton)
    assert K.fused_enabled(torch.device(device)) is expected


# ------------------------------------------------------------------------------------------ CUDA


def _eager(monkeypatch):
    monkeypatch.setenv("SER_GPU_FUSED", "0")


def _cases(dtype):
    g = torch.Generator().manual_seed(13)
    for F, T in ((1025, 130), (1025, 1), (7, 3), (40, 31), (257, 862)):
        S = torch.rand((3, F, T), generator=g, dtype=torch.float64).to(dtype)
        S[0, :, : T // 2] = 0.5
        S[2] = torch.round(S[2] * 8) / 8
        yield S, torch.tensor([T, max(1, T // 2), max(1, T - 40)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [31, 4, 9])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_fused_median_cuda_matches_eager(device, dtype, k, monkeypatch):
    assert fused_enabled(torch.device(device)), "CUDA present but the fused path is off (triton missing?)"
    for S, fl in _cases(dtype):
        Sd, fld = S.to(device), fl.to(device)
        # the kernel itself (the dispatch would fall back to eager if it failed) ...
        fused = {ax: MT.median(Sd, k, ax) for ax in ("time", "freq")}
        fused_fl = MT.median(Sd, k, "time", fld)
        # ... and the dispatch takes it
        assert torch.equal(M.median_filter(Sd, kernel_size=k, axis="time"), fused["time"])
        assert M._FUSED_ERROR is None
        with monkeypatch.context() as m:
            _eager(m)
            for ax in ("time", "freq"):
                assert torch.equal(fused[ax], M.median_filter(Sd, kernel_size=k, axis=ax)), (ax, S.shape)
                # and the CPU eager result (min/max are exact on every device)
                assert torch.equal(fused[ax].cpu(), M.median_filter(S, kernel_size=k, axis=ax)), (ax, S.shape)
            eager_fl = M.median_filter(Sd, kernel_size=k, axis="time", frame_lengths=fld)
            assert torch.equal(fused_fl, eager_fl), S.shape


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_fused_median_cuda_signed_zeros_equal_values(device, monkeypatch):
    S = torch.randn(2, 64, 50, generator=torch.Generator().manual_seed(1)).round().to(device)
    S[S == 0] = -0.0
    S[0, ::3] = 0.0
    fused = MT.median(S, 31, "time")
    with monkeypatch.context() as m:
        _eager(m)
        eager = M.median_filter(S, axis="time")
    assert (fused == eager).all()  # a zero median's sign may differ (documented in median_filter)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_hpss_cuda_fused_equals_eager(device, dtype, monkeypatch):
    """The HPSS masks through the dispatch: fused medians give the very same masks."""
    g = torch.Generator().manual_seed(5)
    S = torch.rand((4, 1025, 95), generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    fl = torch.tensor([95, 60, 1, 30], device=device)
    fused = H.hpss(S, mask=True, frame_lengths=fl)
    assert M._FUSED_ERROR is None, M._FUSED_ERROR  # the dispatch really ran the kernel
    with monkeypatch.context() as m:
        _eager(m)
        eager = H.hpss(S, mask=True, frame_lengths=fl)
    for a, b in zip(fused, eager):
        assert torch.equal(a, b)


def test_dispatch_falls_back_loudly_when_the_kernel_fails(monkeypatch):
    """A kernel that cannot compile/run gives a RuntimeWarning and the eager result, once and for all."""
    import ser_gpu.functional.median as median_mod

    def broken(*args, **kwargs):
        raise RuntimeError("no PTX for this GPU")

    monkeypatch.setattr(median_mod, "_fused", lambda S, k: median_mod._FUSED_ERROR is None)
    monkeypatch.setattr(MT, "median", broken)
    monkeypatch.setattr(median_mod, "_FUSED_ERROR", None)
    S = torch.rand(2, 40, 33, generator=torch.Generator().manual_seed(2))
    with pytest.warns(RuntimeWarning, match="no PTX for this GPU"):
        out = M.median_filter(S, axis="freq")
    assert "no PTX" in median_mod._FUSED_ERROR
    # from then on the kernel is not tried again (no second warning), and the result is the eager one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = M.median_filter(S, axis="freq")
    assert torch.equal(out, again) and torch.equal(out, M._median_freq_runs(S, 31, M.DEFAULT_CHUNK_SIZE))
