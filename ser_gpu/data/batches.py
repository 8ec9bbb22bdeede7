"""A whole split of waveforms as one packed tensor, batched with a vectorised gather on any device."""

from __future__ import annotations

import numbers
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch

from .._validation import _describe, check_positive_int, valid_audio
from ..errors import ParameterError

__all__ = ["WaveformSet"]


class WaveformSet:
    """Variable-length waveforms and their labels, packed end to end in one 1-D tensor.

    The packed form (samples of every clip concatenated, plus per-clip ``offsets`` and ``lengths``)
    holds no padding, so a whole corpus split can live on the accelerator and each batch is cut from
    it by one gather, with no host-to-device copy per step.

    Args:
        waves (list of Tensor): 1-D float waveforms ``[shape=(time_i,)]``, each at least one sample
            (e.g. from :func:`load_waveforms`); stored as float32.
        labels (sequence of int): one class label per waveform.
        groups (sequence of int, optional): a group id per waveform (e.g. its speaker's index), kept
            on the host as ``groups``; None: every clip in group 0.

    Attributes:
        data: ``[shape=(sum time_i,)]`` float32, the packed samples.
        offsets: ``[shape=(N,)]`` int64, where each clip starts in ``data``.
        lengths: ``[shape=(N,)]`` int64, samples per clip.
        host_lengths: the same on the CPU, whatever the set's device (plans that need the lengths
            never wait on the device).
        groups: ``[shape=(N,)]`` int64 on the CPU, each clip's group id.
        labels: ``[shape=(N,)]`` int64.
    """

    def __init__(self, waves: Sequence[torch.Tensor], labels: Sequence[int], groups: Optional[Sequence[int]] = None):
        if isinstance(waves, torch.Tensor) or not isinstance(waves, Sequence):
            raise ParameterError(f"waves must be a list of 1-D tensors, got {type(waves).__name__}: "
                                 f"{_describe(waves)}")
        if len(waves) == 0:
            raise ParameterError("waves must hold at least one waveform, got an empty list []")
        for i, w in enumerate(waves):
            valid_audio(w, name=f"waves[{i}]", check_finite=False)
            if w.ndim != 1:
                raise ParameterError(f"waves[{i}] must be 1-D (time,), got shape {tuple(w.shape)}")
        labels = self._check_labels(labels, len(waves))
        self.groups = torch.zeros(len(waves), dtype=torch.int64) if groups is None else \
            self._check_labels(groups, len(waves), "groups")
        if self.groups.numel() and int(self.groups.min()) < 0:
            raise ParameterError(f"groups must be non-negative, got {int(self.groups.min())}")
        device = waves[0].device
        self.host_lengths = torch.tensor([int(w.shape[0]) for w in waves], dtype=torch.int64)
        self.lengths = self.host_lengths.to(device)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.data = torch.cat([w.to(device=device, dtype=torch.float32) for w in waves])
        self.labels = labels.to(device)

    @staticmethod
    def _check_labels(labels, n: int, name: str = "labels") -> torch.Tensor:
        if isinstance(labels, torch.Tensor):
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise ParameterError(f"{name} must be integers, got a tensor of dtype {labels.dtype}")
            labels = labels.reshape(-1).to(torch.int64).cpu()
        else:
            if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
                raise ParameterError(f"{name} must be a sequence of int, got {type(labels).__name__}: "
                                     f"{_describe(labels)}")
            bad = [x for x in labels if isinstance(x, bool) or not isinstance(x, numbers.Integral)]
            if bad:
                raise ParameterError(f"{name} must be integers, got {_describe(bad[0])}")
            labels = torch.tensor([int(x) for x in labels], dtype=torch.int64)
        if labels.numel() != n:
            raise ParameterError(f"{name} must have one entry per waveform ({n}), got {labels.numel()}")
        return labels

    @classmethod
    def _from_parts(cls, data, offsets, lengths, host_lengths, labels, groups) -> "WaveformSet":
        obj = cls.__new__(cls)
        obj.data, obj.offsets, obj.lengths, obj.host_lengths, obj.labels = data, offsets, lengths, host_lengths, labels
        obj.groups = groups
        return obj

    def to(self, device: Union[str, torch.device]) -> "WaveformSet":
        """This set on ``device`` (a new set; its tensors are shared when they are already there)."""
        device = torch.device(device)
        return WaveformSet._from_parts(self.data.to(device), self.offsets.to(device), self.lengths.to(device),
                                       self.host_lengths, self.labels.to(device), self.groups)

    @property
    def device(self) -> torch.device:
        return self.data.device

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, int]:
        """``(waveform [shape=(time_i,)], label)`` of clip ``i``."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
            raise IndexError(f"index {i!r} out of range for a WaveformSet of {n} clip(s)")
        start, length = int(self.offsets[i]), int(self.lengths[i])
        return self.data[start:start + length], int(self.labels[i])

    def gather(self, index: torch.Tensor, *, width: Optional[int] = None
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clips ``index`` as one zero-padded batch (one vectorised gather, no loop over clips).

        Args:
            index: ``[shape=(B,)]`` integer clip indices.
            width (int | None, default None): the padded length ``T``. ``None``: the longest of these
                clips, which reads the lengths back from the set's device (a host sync on a GPU); a
                caller that knows the lengths on the host (e.g. a padded size from
                :func:`ser_gpu.data.chunks.length_groups`) passes it and the gather never waits for the
                device. A clip longer than ``width`` is cut to it (its returned length too).

        Returns:
            ``(y, lengths, labels)``: ``y`` float32 ``[shape=(B, T)]``, zero beyond each clip's length;
            ``lengths`` and ``labels`` int64 ``[shape=(B,)]``.
        """
        index = torch.as_tensor(index, device=self.data.device).reshape(-1).to(torch.int64)
        if index.numel() == 0:
            raise ParameterError("index must select at least one clip, got an empty index")
        lengths = self.lengths[index]
        if width is None:
            T = int(lengths.max())
        else:
            T = check_positive_int(width, "width")
            lengths = lengths.clamp(max=T)
        t = torch.arange(T, device=self.data.device)
        valid = t < lengths.unsqueeze(1)
        # positions past a clip's end would read its neighbour (or run off the end): clamp, then zero
        pos = torch.where(valid, self.offsets[index].unsqueeze(1) + t, torch.zeros_like(t))
        y = torch.where(valid, self.data[pos], self.data.new_zeros(()))
        return y, lengths, self.labels[index]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: Optional[torch.Generator] = None,
        drop_last: bool = False,
    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Iterate over the set in batches of ``(y, lengths, labels)`` on the set's device.

        Args:
            batch_size (int): clips per batch (the last one may be smaller).
            shuffle (bool, default False): visit the clips in a random order drawn from ``generator``
                (same seed -> same order); otherwise in stored order.
            generator (torch.Generator | None): source of the order when shuffling (CPU or this
                set's device); ``None`` uses torch's global generator.
            drop_last (bool, default False): leave out a final batch smaller than ``batch_size``.

        Yields:
            ``y`` float32 ``[shape=(B, T)]`` zero-padded to the batch's longest clip, ``lengths``
            int64 ``[shape=(B,)]``, ``labels`` int64 ``[shape=(B,)]``.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ParameterError(f"generator must be a torch.Generator or None, got {_describe(generator)}")
        n = len(self)
        if shuffle:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            order = torch.randperm(n, generator=generator, device=gen_device).to(self.data.device)
        else:
            order = torch.arange(n, device=self.data.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield self.gather(order[start:start + batch_size])
