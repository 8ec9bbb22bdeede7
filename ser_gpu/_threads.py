"""Torch's CPU intra-op threads, set per Python thread.

``torch.set_num_threads`` sets the OpenMP team size of the thread that calls it, and the one number
``torch.get_num_threads`` reports for the whole process (the last any thread set). :func:`intra_op_threads`
sets the calling thread's count for a block and remembers it per Python thread, so that a nested block
(the median filters' one thread) sets back this thread's own count, not another thread's.

Training on the CPU with the data path prefetched on a second thread (``ser_gpu.train``): two teams of
all the cores oversubscribe them, and the training step's many small ops (batches of 16, an LSTM step by
step) each wait at their fork/join for a worker the other team has descheduled. The training thread
therefore takes half of the threads (:func:`training_share`) and the data thread keeps all of them: its
ops are large batched tensors, and while the training waits for a chunk they have every core. Measured
on the 2-core CPU (2026-12-07; the machine's speed varies by ~10 % from run to run). Prototypes, one run
each: the README job took 132 s with all the threads in both, 98-100 s with one thread each, 94 s with one
for the training and two for the data; a steady epoch of 64 clips of 3.5 s (``bench_train.py``, bound by
the data path) 3.2 s, 4.7-5.0 s (the data thread's second core idles while the training waits) and 3.7 s.
This module's split against all the threads in both, back to back, two runs each: README job 107-109 s
against 130-140 s, the 64-clip epoch 3.9-4.2 s against 4.5-4.6 s.

Torch sizes the per-thread buffers of a parallel reduction by ``torch.get_num_threads()`` (the last count
any thread set) and runs every parallel op serially while it is 1: a thread's team must never be larger
than that number while it runs. Here the data thread, the larger team, sets its count after the training
thread set its own (each chunk job sets it again), and the median's block sets 1.

Torch's elementwise CPU kernels split their range by the thread count, so a transcendental op (``cos``
in a window, ``exp``) may round its last bit differently under another count: the same code with another
split of the threads gives the same draws but not always the same bits.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from ._validation import check_positive_int

_local = threading.local()


def current_threads() -> int:
    """The calling thread's intra-op thread count: what :func:`intra_op_threads` set in this Python
    thread, else ``torch.get_num_threads()``."""
    return getattr(_local, "n", None) or torch.get_num_threads()


def training_share(total: int) -> int:
    """Intra-op threads of a training thread beside a CPU data thread that has ``total``: half, at least
    one (see the module's docstring)."""
    return max(1, check_positive_int(total, "total") // 2)


@contextlib.contextmanager
def intra_op_threads(n: int):
    """Run the enclosed torch CPU ops of this Python thread with ``n`` intra-op threads; this thread's
    count before (:func:`current_threads`) is set again after."""
    check_positive_int(n, "n")
    before = getattr(_local, "n", None)
    # read before the set: a thread's first torch.get_num_threads() gives it torch's process-wide count,
    # which would otherwise overwrite the one set here at its first parallel op
    restore = current_threads()
    _local.n = n
    torch.set_num_threads(n)
    try:
        yield
    finally:
        _local.n = before
        torch.set_num_threads(restore)
