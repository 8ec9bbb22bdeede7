"""ser_gpu.functional.normalize against librosa.util.normalize (the one normalize every feature uses)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

import ser_gpu.functional as F
from ser_gpu.errors import ParameterError

from ..conftest import rel_err


def _matrix(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 9))
    x[:, 4] = 0.0          # an all-zero column: below the threshold, left as is
    x[:, 5] = 1e-320       # a subnormal column (float64): below tiny, left as is
    x[2, :] = 0.0
    return x.astype(np.float32 if dtype == torch.float32 else np.float64)


@pytest.mark.parametrize("norm", [math.inf, -math.inf, 0, 1, 2, 0.5, None])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_normalize_equals_librosa(norm, axis, dtype):
    x = _matrix(dtype)
    ref = librosa.util.normalize(x, norm=norm, axis=axis)
    ours = F.normalize(torch.from_numpy(x), norm=norm, axis=axis)
    assert ours.dtype == dtype
    # a rescaling: relative error at the dtype's rounding
    assert rel_err(ours, ref) <= (1e-12 if dtype == torch.float64 else 1e-6)


def test_normalize_complex_equals_librosa():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))
    for norm in (math.inf, 1, 2):
        ref = librosa.util.normalize(x, norm=norm, axis=0)
        ours = F.normalize(torch.from_numpy(x), norm=norm, axis=0)
        assert np.abs(ours.numpy() - ref).max() <= 1e-12


@pytest.mark.parametrize("bad", [-1, -0.5, "l2", True, [2]])
def test_normalize_rejects_bad_norm(bad):
    with pytest.raises(ParameterError, match="norm"):
        F.normalize(torch.ones(3, 3), norm=bad)


@pytest.mark.parametrize("S, axis, match", [
    (torch.tensor([[float("nan"), 1.0]]), 0, "S contains non-finite values"),  # NaN out before; librosa refuses
    (torch.tensor([[float("inf"), 1.0]]), 1, "S contains non-finite values"),
    (np.ones((2, 2)), 0, "S must be a torch.Tensor, got ndarray"),  # AttributeError before
    (torch.ones(2, 2, dtype=torch.int64), 0, "S must be a float or complex tensor"),
    (torch.ones(2, 2), 5, r"axis must be an integer in \[-2, 1\] for S of shape \(2, 2\), got 5"),  # IndexError
    (torch.ones(2, 2), 1.0, r"axis must be an integer"),
])
def test_normalize_refuses_what_librosa_refuses_and_names_it(S, axis, match):
    if isinstance(S, torch.Tensor) and S.is_floating_point() and not torch.isfinite(S).all():
        with pytest.raises(librosa.util.exceptions.ParameterError, match="finite"):
            librosa.util.normalize(S.numpy(), axis=axis)
    with pytest.raises(ParameterError, match=match):
        F.normalize(S, axis=axis)


@pytest.mark.parametrize("norm", ["slaney", None, math.inf, -math.inf, 0, 1, 2, 3.5, np.float32(2.0)])
@pytest.mark.parametrize("htk", [False, True])
def test_mel_filter_bank_norms_equal_librosa(norm, htk):
    """The mel bank's numeric norms are librosa.util.normalize's (0 counted the non-zero bins, -inf took
    the minimum: 0 raised ZeroDivisionError and -inf was taken for +inf, 0.2 off); bit-identical float32."""
    ours = F.filters.mel(sr=22050, n_fft=2048, n_mels=128, htk=htk, norm=norm).numpy()
    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, htk=htk, norm=norm)
    assert ours.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), "max", True])
def test_mel_filter_bank_refuses_what_librosa_refuses(bad):
    with pytest.raises(ParameterError, match=r"norm must be 'slaney', a number >= 0"):
        F.filters.mel(sr=22050, n_fft=2048, norm=bad)
