"""Shared fixtures: the device × dtype grid, tolerances from docs/design.md, relative error.

Also: TF32 off for every test (see ``_full_float32``), and modules whose test-only dependencies
are missing are not collected (a GPU machine may lack librosa, soundfile, audiomentations): the
CUDA checks in tests/cuda need none of them.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
#: mark for a test that needs a CUDA device (skipped without one)
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")


def touch(path, data: bytes = b"not decoded by scan_corpus"):
    """Write ``data`` to ``path`` (a pathlib.Path), creating its folders; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def non_utf8_path(directory, name: bytes, *, is_dir: bool = False):
    """``directory / name``, created (an empty file, or a directory with ``is_dir``), for a ``name`` whose
    bytes are not valid UTF-8 (``b"caf\\xe9.wav"``), held by Python with surrogate escapes as
    ``os.listdir`` gives it; the test is skipped where the file system takes only text names (Windows,
    macOS)."""
    if sys.platform in ("win32", "darwin") or sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        pytest.skip(f"file names are text here ({sys.platform}, {sys.getfilesystemencoding()})")
    path = directory / os.fsdecode(name)
    try:
        path.mkdir() if is_dir else path.write_bytes(b"")
    except OSError as exc:
        pytest.skip(f"this file system refuses a name that is not UTF-8: {exc}")
    return path


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


# test files that import these packages at module level (directly, or through tests/tiny_corpus.py,
# which writes wavs with soundfile) are not collected when the package is absent
_REFERENCE_PACKAGES = ("librosa", "soundfile", "soxr", "sklearn", "audiomentations")
#: modules that import reference packages themselves (ser_gpu's decoders need soundfile and soxr)
_HELPERS = {"tests.tiny_corpus": ("soundfile",), "ser_gpu.io": ("soundfile", "soxr"),
            "ser_gpu.media": ("soundfile", "soxr"), "ser_gpu.data": ("soundfile", "soxr")}


def _module_level_needs(path) -> set:
    needs = set()
    for line in path.read_text().splitlines():
        if not line.startswith(("import ", "from ")):
            continue  # imports inside functions are the test's own business (importorskip)
        words = line.replace(",", " ").split()
        module = words[1]
        if module.startswith("."):  # from .tiny_corpus import ... inside tests/
            module = "tests." + module.lstrip(".")
        if module.split(".")[0] in _REFERENCE_PACKAGES:
            needs.add(module.split(".")[0])
        for helper, packages in _HELPERS.items():
            if module == helper or module.startswith(helper + "."):
                needs.update(packages)
    return needs


def _ignored() -> list:
    import pathlib

    here = pathlib.Path(__file__).resolve().parent
    missing = {m for m in _REFERENCE_PACKAGES if _missing(m)}
    if not missing:
        return []
    return sorted(str(p.relative_to(here)) for p in here.rglob("test_*.py") if _module_level_needs(p) & missing)


collect_ignore = _ignored()


@pytest.fixture(autouse=True)
def _full_float32():
    """Run every test in full float32: cuDNN convolutions (and RNNs) default to TF32 on Ampere+
    GPUs (``torch.backends.cudnn.allow_tf32 = True``), which rounds their inputs to 10 mantissa
    bits (~1e-3 relative) — the cause of the H200 failures of the model's exact padding-invariance
    and round-trip checks (2.5e-5, 1.3e-4, 1.7e-4 where full float32 gives ~1e-6)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])]
DTYPES = [torch.float64, torch.float32]

# docs/design.md parity contract: max |ours - librosa| / max |librosa|
STFT_TOL = {torch.float64: 1e-6, torch.float32: 1e-4}
CQT_TOL = {torch.float64: 1e-3, torch.float32: 1e-2}


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return request.param


def _as_float64(x) -> np.ndarray:
    """``x`` (tensor or array) in float64, or complex128 when complex (never dropping an imaginary part)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.to(torch.complex128) if x.is_complex() else x.double()).numpy()
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref| (0 when both are all zero); complex values compared as complex."""
    ours, ref = _as_float64(ours), _as_float64(ref)
    assert np.iscomplexobj(ours) == np.iscomplexobj(ref), f"one complex, one real: {ours.dtype}, {ref.dtype}"
    assert ours.shape == ref.shape, f"shape {ours.shape} != librosa's {ref.shape}"
    scale = np.abs(ref).max()
    diff = np.abs(ours - ref).max()
    if scale == 0:
        return float(diff)
    return float(diff / scale)


def grid_tunings(count: int, dtype) -> torch.Tensor:
    """``count`` distinct tunings as ``estimate_tuning`` returns them in ``dtype`` (its 0.01-grid edges),
    spread over the grid."""
    edges = torch.from_numpy(np.linspace(-0.5, 0.5, 101)[:-1]).to(dtype)
    return edges[torch.arange(count) * 97 % 100]


def pytest_terminal_summary(terminalreporter):
    """One line per reason a test was skipped, with its count, even under ``-q``: a check that did
    not run (no GPU, no RAVDESS copy, no browser) is said so, not counted among the passes."""
    reasons = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_sep("-", "skipped, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{count:5d}  {reason}")
    if collect_ignore:  # whole files left out for a missing reference package: said as loudly
        missing = sorted(m for m in _REFERENCE_PACKAGES if _missing(m))
        terminalreporter.write_sep("-", f"not collected: {len(collect_ignore)} test files need {', '.join(missing)}")
        terminalreporter.write_line("  " + " ".join(collect_ignore))


def assert_resumed(first_history: list, resumed_history: list) -> None:
    """The resumed run's history opens with the first call's epochs exactly as stored, ``epoch_seconds``
    included: a wall time measured once, equal only if those epochs were loaded from ``last.pt`` and not
    trained again (a run that ignored ``resume`` would end on the same weights on the CPU); the resumed
    call's history is longer."""
    n = len(first_history)
    assert n >= 1 and len(resumed_history) > n, (n, len(resumed_history))
    assert resumed_history[:n] == first_history, "the resumed run trained its stored epochs again"
