"""The mean of a module's weights over a window of epochs: what ``train --average-weights`` answers with.

With early stopping, training keeps the epoch of the best validation score and runs ``early_stopping``
epochs past it before it stops. :class:`WeightAverage` follows that: :meth:`WeightAverage.update` after
each epoch restarts the window at an epoch that improves on the best score and adds every other epoch to
it, so when the run stops it holds the mean of the selected epoch's weights and those of every epoch
after it -- one model, read like any other (``best.pt``), where an ensemble of those checkpoints would
need one network pass each. Batch-norm running statistics are averaged with the weights; integer
buffers (``num_batches_tracked``) take the latest epoch's value.

Measured on RAVDESS with held-out actors (README "Real speech", ``benchmarks/checkpoint_average.py``): one
``clip`` model per fold scored 0.594 / 0.604 / 0.607 UAR on three fold sets with the window's mean, 0.569 /
0.587 / 0.595 with the selected epoch's weights (the same runs); on a fourth set, held out from that choice,
0.594 against 0.598 (over the four, +0.013 and 15 folds of 24 better).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from .errors import ParameterError

__all__ = ["WeightAverage"]


class WeightAverage:
    """A running mean of ``module.state_dict()`` since the last restart (float tensors averaged in their own
    dtype, others the latest value). Empty until the first :meth:`update`."""

    def __init__(self) -> None:
        self.weights: Optional[Dict[str, torch.Tensor]] = None
        self.count = 0  # epochs in the window
        self.first_epoch = 0  # the epoch that opened it (1-based, as checkpoints count)
        self.last_epoch = 0

    def update(self, module: nn.Module, epoch: int, *, restart: bool) -> None:
        """Add ``module``'s weights after ``epoch``; ``restart`` (a new best epoch, or nothing held yet) opens
        a new window with them alone."""
        state = module.state_dict()
        if restart or self.weights is None:
            self.weights = {k: v.detach().clone() for k, v in state.items()}
            self.count, self.first_epoch = 1, epoch
        else:
            if set(state) != set(self.weights):
                raise ParameterError(f"module is not the one averaged: its state_dict lacks "
                                     f"{sorted(set(self.weights) - set(state))} and adds "
                                     f"{sorted(set(state) - set(self.weights))}")
            self.count += 1
            with torch.no_grad():
                for k, v in state.items():
                    held = self.weights[k]
                    if held.is_floating_point():
                        held.add_((v.detach() - held) / self.count)
                    else:
                        held.copy_(v)
        self.last_epoch = epoch

    def state_dict(self) -> dict:
        """Plain data and tensors (what ``last.pt``'s state holds to resume the window)."""
        return {"weights": self.weights, "count": self.count, "first_epoch": self.first_epoch,
                "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        weights = state["weights"]
        self.weights = None if weights is None else {k: v.clone() for k, v in weights.items()}
        self.count, self.first_epoch, self.last_epoch = (int(state[k]) for k in ("count", "first_epoch",
                                                                                 "last_epoch"))

    def to(self, device) -> "WeightAverage":
        if self.weights is not None:
            self.weights = {k: v.to(device) for k, v in self.weights.items()}
        return self
