"""``torchrun`` support for :mod:`ser_gpu.train`: the process group, the epoch's shards, and the collectives.

``torchrun --nproc_per_node=N -m ser_gpu.train ...`` starts N processes with ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` in their environment; :func:`setup` sees them and joins the process group (NCCL
when the run's device is CUDA, each process on ``cuda:LOCAL_RANK``; gloo on the CPU). Without those
variables (a plain ``python -m ser_gpu.train``) nothing here runs: :data:`SINGLE` stands for the one
process and every collective of :class:`Dist` is then a no-op.

How the training data is shared out (:func:`shard_batches`): every rank draws the same permutation
of the epoch from the seed and cuts it into the same ``batch_size`` batches as a one-process run;
batch ``k`` goes to rank ``k % world_size`` (whole batches, round robin), so every clip is seen once
per epoch across ranks and each rank's batches are the one-process run's batches. When the number of
batches is not a multiple of the ranks, the last optimizer step has fewer real batches than ranks:
a rank without one runs its last batch again with a loss weight of 0 (a zero gradient), and the
active ranks' losses are weighted ``world_size / active`` (:func:`step_weights`), so DDP's gradient
average is the mean over the real batches. That keeps every rank taking every optimizer step (so
the AdamW states stay equal; DDP's ``join()`` would leave a joined rank's optimizer a step behind).

Batch norm stays per rank (no ``SyncBatchNorm``): each rank normalises whole ``batch_size`` batches of
the one-process epoch, so the batch statistics are the one-process recipe's; ``convert_sync_batchnorm``
would also swap the model's masked batch norm (statistics over valid frames) for one that counts
padding. The running statistics are rank 0's: DDP broadcasts them before each forward, and
:mod:`ser_gpu.train` broadcasts them after each epoch, so every rank holds the same weights.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch

from .errors import ParameterError

__all__ = ["Dist", "SINGLE", "from_env", "setup", "shard_batches", "step_weights", "derive_seed"]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class Dist:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node.

    ``enabled`` is True under torchrun (a process group exists, even with ``world_size == 1``); the
    collectives below are no-ops otherwise. ``owns_group``: :func:`setup` created the group, so
    :meth:`close` destroys it.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False
    backend: Optional[str] = None
    device: Optional[torch.device] = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics, plots, result.json and the progress bar."""
        return self.rank == 0

    # -- collectives (all ranks must call them, in the same order) --------------------------------
    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def broadcast_object(self, obj: Any = None, src: int = 0) -> Any:
        """``obj`` of rank ``src`` on every rank (pickled; rank 0's checkpoint payload, a decision)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=src, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def all_gather_object(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order (one element per rank)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def all_sum(self, values: Sequence[float]) -> List[float]:
        """Element-wise sums over ranks of a few numbers (float64; a NaN/inf on any rank reaches every rank)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        """All ranks' tensors concatenated along dim 0 in rank order, on every rank. Their first sizes
        may differ (0 included); the other dimensions must be the same on every rank."""
        if not self.enabled:
            return t
        import torch.distributed as dist

        n = torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world_size)]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in torch.cat(sizes).tolist()]
        padded = t.new_zeros((max(sizes), *t.shape[1:]))
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def broadcast_tensors(self, tensors, src: int = 0) -> None:
        """Overwrite each tensor (in place) with rank ``src``'s (a module's parameters or buffers)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=src)

    def close(self) -> None:
        """Destroy the process group if :func:`setup` created it (idempotent)."""
        if self.enabled and self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


SINGLE = Dist()


def from_env(environ=None) -> Optional[Dist]:
    """The torchrun variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) as a :class:`Dist`, or None
    when they are absent (a plain run). Some but not all of them, or bad values, is a ParameterError."""
    env = os.environ if environ is None else environ
    present = [k for k in _ENV if k in env]
    if not present:
        return None
    if len(present) != len(_ENV):
        missing = [k for k in _ENV if k not in env]
        raise ParameterError(f"the environment sets {', '.join(present)} but not {', '.join(missing)}: start "
                             f"distributed training with torchrun (or set all of {', '.join(_ENV)})")
    try:
        rank, world, local = (int(env[k]) for k in _ENV)
    except ValueError:
        raise ParameterError("RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                             + ", ".join(f"{k}={env[k]!r}" for k in _ENV)) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ParameterError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return Dist(rank=rank, world_size=world, local_rank=local)


def setup(device: torch.device) -> tuple:
    """Join the process group torchrun describes (if any) for a run on ``device``.

    Returns:
        ``(dist, device)``: :data:`SINGLE` and ``device`` unchanged without torchrun; otherwise the
        :class:`Dist` of this process and its device (``cuda:LOCAL_RANK`` for a CUDA run, made the
        current device; the CPU stays the CPU). The backend is NCCL for CUDA, gloo for the CPU. A
        process group that already exists (the caller made one) is used, not replaced.
    """
    info = from_env()
    if info is None:
        return SINGLE, device
    import torch.distributed as dist

    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise ParameterError(f"LOCAL_RANK={info.local_rank} but torch sees {torch.cuda.device_count()} CUDA "
                                 f"device(s): start at most that many processes per node")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ParameterError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), got device {device}")
    info.device = device
    if dist.is_initialized():
        info.backend = dist.get_backend()
        if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
            raise ParameterError(f"the existing process group (rank {dist.get_rank()} of {dist.get_world_size()}) "
                                 f"does not match RANK={info.rank}, WORLD_SIZE={info.world_size}")
    else:
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, **kwargs)
        info.backend = backend
        info.owns_group = True
    info.enabled = True
    return info, device


def shard_batches(order: torch.Tensor, batch_size: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's clips of an epoch: batch ``k`` of ``order`` (consecutive ``batch_size`` slices, the
    last may be shorter) goes to rank ``k % world_size``; returned concatenated, in order.

    Every clip of ``order`` is in exactly one rank's shard, and each shard is made of whole batches
    of the one-process epoch (so its own ``batch_size`` slices are those batches again).
    """
    n_batches = -(-order.numel() // batch_size)
    mine = [order[k * batch_size:(k + 1) * batch_size] for k in range(rank, n_batches, world_size)]
    return torch.cat(mine) if mine else order[:0]


def step_weights(n_batches: int, rank: int, world_size: int) -> List[float]:
    """Loss weight of this rank at each optimizer step of an epoch of ``n_batches`` batches.

    There are ``ceil(n_batches / world_size)`` steps on every rank. At step ``j`` the ranks holding a
    batch (``active`` of them) weigh it ``world_size / active``; a rank without one (only possible at
    the last step) weighs a repeated batch 0. DDP averages gradients over ``world_size`` ranks, so
    the step's gradient is the mean of the active batches' gradients.
    """
    steps = -(-n_batches // world_size)
    out = []
    for j in range(steps):
        active = min(world_size, n_batches - j * world_size)
        out.append(world_size / active if rank < active else 0.0)
    return out


def derive_seed(*parts) -> int:
    """A 63-bit seed from ``parts`` (the run's seed, a stream name, the rank, ...): distinct parts give
    unrelated seeds, the same parts the same seed on every machine."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
