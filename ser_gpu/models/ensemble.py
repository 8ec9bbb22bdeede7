"""SoftmaxEnsemble: several trained classifiers over the same rows, answering as one."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ParameterError

__all__ = ["SoftmaxEnsemble"]


class SoftmaxEnsemble(nn.Module):
    """The mean of several classifiers' softmax outputs, as one classifier.

    ``forward(x, frame_lengths)`` returns ``log(mean_k softmax(member_k(x, frame_lengths)))``, shape
    ``(batch, n_classes)``, float32: its softmax is the members' mean probability and its argmax the
    ensemble's answer, so code written for one model's logits (``argmax``, ``softmax``) reads an
    ensemble unchanged. Each member sees the same input (the rows of one feature config, standardised
    the same way); ``config`` is the first member's.

    Args:
        members: two or more modules with the ``CNNBiLSTMAttention`` call signature.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ParameterError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, x: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x, frame_lengths).float().softmax(-1) for m in self.members]).mean(0)
        return probs.log()
