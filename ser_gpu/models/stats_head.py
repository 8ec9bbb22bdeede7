"""The statistics head: a logistic regression on each clip's row statistics, fused with the network.

On real speech with held-out actors (RAVDESS, README "Real speech"), a linear model on a few statistics
of each clip's standardised rows is as accurate as the CNN-BiLSTM and makes different mistakes:
averaging the two softmaxes beats either. :class:`ser_gpu.models.CNNBiLSTMAttention` holds such a head
when built with ``stats_head=True``; it is *fitted* (convex, full batch, L-BFGS), not trained by the
optimiser: :func:`fit_logistic_regression` on :func:`clip_statistics` of the training clips.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch.nn import functional as F

from .._validation import check_positive, check_positive_int
from ..errors import ParameterError
from ..functional.lengths import valid_mask

__all__ = ["STATISTICS", "clip_statistics", "fit_logistic_regression", "standardized_statistics"]

# what clip_statistics gives per row, in order
STATISTICS = ("mean", "std", "q10", "q50", "q90", "mean_abs_delta")
# which of them move with a row's offset (the others only scale)
_SHIFTED = (True, False, True, True, True, False)
_QUANTILES = (0.1, 0.5, 0.9)


def clip_statistics(features: torch.Tensor, frame_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Each row's mean, standard deviation, 10/50/90 % quantiles and mean absolute frame-to-frame change
    over the clip's valid frames.

    Equals, per clip ``f = features[i, :, :frame_lengths[i]]``, ``numpy.concatenate([f.mean(1), f.std(1),
    *numpy.quantile(f, [0.1, 0.5, 0.9], axis=1), numpy.abs(numpy.diff(f, axis=1)).mean(1)])`` (population
    std; the quantiles interpolate linearly; a 1-frame clip's change is 0). Computed in float32 (float64
    input stays float64), whatever the padding holds.

    Args:
        features: ``[shape=(B, rows, frames)]`` float.
        frame_lengths: ``[shape=(B,)]`` int valid frames per clip in ``[1, frames]``, or ``None`` (all).

    Returns:
        ``[shape=(B, 6 * rows)]``: the six statistics of :data:`STATISTICS`, each a block of ``rows``.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 3 or not features.is_floating_point():
        raise ParameterError(f"features must be a float tensor of shape (B, rows, frames), got "
                             f"{getattr(features, 'shape', type(features).__name__)}")
    x = features.double() if features.dtype == torch.float64 else features.float()
    batch, rows, frames = x.shape
    if frame_lengths is None:
        frame_lengths = torch.full((batch,), frames, dtype=torch.int64, device=x.device)
    lengths = frame_lengths.to(device=x.device, dtype=torch.int64)
    valid = valid_mask(lengths, frames)[:, None, :]
    n = lengths[:, None].to(x.dtype)
    x = x.masked_fill(~valid, 0.0)
    mean = x.sum(dim=-1) / n
    centred = (x - mean[..., None]).masked_fill(~valid, 0.0)
    std = ((centred * centred).sum(dim=-1) / n).sqrt()
    ordered = x.masked_fill(~valid, math.inf).sort(dim=-1).values  # padding sorts last
    last = (lengths - 1).clamp_min(0)
    quantiles = []
    for q in _QUANTILES:
        position = q * last.to(x.dtype)
        lo = position.floor().long()
        hi = torch.minimum(lo + 1, last)
        frac = (position - lo.to(x.dtype))[:, None]
        a = ordered.gather(-1, lo[:, None, None].expand(-1, rows, 1))[..., 0]
        b = ordered.gather(-1, hi[:, None, None].expand(-1, rows, 1))[..., 0]
        quantiles.append(a + (b - a) * frac)
    step = ((x[..., 1:] - x[..., :-1]).abs() * valid[..., 1:]).sum(dim=-1)
    change = step / (n - 1).clamp_min(1.0)
    return torch.cat([mean, std, *quantiles, change], dim=1)


def standardized_statistics(statistics: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """:func:`clip_statistics` of ``(x - mean) / std`` (per row) from :func:`clip_statistics` of ``x``.

    Standardising a row is affine with a positive scale: its mean and quantiles become ``(v - mean) /
    std``, its standard deviation and mean absolute change ``v / std``. So the statistics of standardised
    rows need no second pass over the rows (up to float rounding).

    Args:
        statistics: ``[shape=(B, 6 * rows)]``, :func:`clip_statistics` of the raw rows.
        mean, std: ``[shape=(rows,)]`` (every clip alike) or ``[shape=(B, rows)]`` (per clip), ``std > 0``.

    Returns:
        ``[shape=(B, 6 * rows)]``.
    """
    batch, width = statistics.shape
    blocks = statistics.reshape(batch, len(STATISTICS), width // len(STATISTICS))
    shifted = torch.tensor(_SHIFTED, device=statistics.device)[:, None]
    rows = blocks.shape[-1]
    mean, std = mean.reshape(-1, 1, rows).to(blocks.dtype), std.reshape(-1, 1, rows).to(blocks.dtype)
    return (torch.where(shifted, blocks - mean, blocks) / std).reshape(batch, width)


def fit_logistic_regression(x: torch.Tensor, labels: torch.Tensor, n_classes: int, *, c: float = 0.1,
                            max_iter: int = 500) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised ``x``, L2-penalised, fitted by L-BFGS.

    Minimises ``sum_i CE(W z_i + b, y_i) + |W|^2 / (2 c)`` with ``z = (x - mean) / std`` (the columns'
    statistics over ``x``; the intercept unpenalised): scikit-learn's ``make_pipeline(StandardScaler(),
    LogisticRegression(C=c))``. Runs in float64 on ``x``'s device; deterministic.

    Args:
        x: ``[shape=(N, D)]`` float, finite.
        labels: ``[shape=(N,)]`` int in ``[0, n_classes)``.
        n_classes: number of classes (an absent class gets a low intercept, never a crash).
        c: inverse regularisation strength, positive.
        max_iter: L-BFGS iterations, positive.

    Returns:
        ``(mean, std, weight, bias)``: ``[shape=(D,)]``, ``[shape=(D,)]`` (1 where a column never
        varies), ``[shape=(n_classes, D)]``, ``[shape=(n_classes,)]``, float32; the logits are
        ``((x - mean) / std) @ weight.T + bias``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] == 0:
        raise ParameterError(f"x must be a non-empty (N, D) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if not bool(torch.isfinite(x).all()):
        raise ParameterError("x must be finite")
    if not isinstance(labels, torch.Tensor) or labels.shape != (x.shape[0],):
        raise ParameterError(f"labels must be a tensor of shape ({x.shape[0]},), got "
                             f"{getattr(labels, 'shape', type(labels).__name__)}")
    check_positive(c, "c")
    check_positive_int(max_iter, "max_iter")
    labels = labels.to(device=x.device, dtype=torch.int64)
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ParameterError(f"labels must lie in [0, {n_classes}), got {labels.min().item()}..{labels.max().item()}")
    x = x.double()
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    z = (x - mean) / std
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=x.device, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, labels, reduction="sum") + (weight * weight).sum() / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return mean.float(), std.float(), weight.detach().float(), bias.detach().float()
