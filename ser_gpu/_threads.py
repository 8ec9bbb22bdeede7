"""Torch's CPU intra-op threads, set per Python thread.

``torch.set_num_threads`` sets the OpenMP team size of the thread that calls it (and the value
``torch.get_num_threads`` reports, process-wide). Two Python threads running torch ops at once on the
CPU, each with a team of all the cores, oversubscribe them: every fork/join of one team waits for
workers the other team has descheduled. Measured on the 2-core CPU (README job, 2026-12-07): the
training with the data path prefetched on a second thread took 128-132 s with 2 threads each, 113-121 s
without the second thread, and ~98 s with one thread each.

Torch's elementwise CPU kernels split their range by the thread count, so a transcendental op (``cos``
in a window, ``exp``) may round its last bit differently under another thread count: the same code
with another split of the threads gives the same draws but not always the same bits.
"""

from __future__ import annotations

import contextlib

import torch

from ._validation import check_positive_int


def shared_threads() -> int:
    """Intra-op threads for each of two Python threads that run torch ops at once on the CPU: half of
    ``torch.get_num_threads()``, at least one."""
    return max(1, torch.get_num_threads() // 2)


@contextlib.contextmanager
def intra_op_threads(n: int):
    """Run the enclosed torch CPU ops of this thread with ``n`` intra-op threads; the count before
    (``torch.get_num_threads()``) is set again after. Set even when that count is ``n``: it is the last
    one any thread set, not necessarily this thread's own."""
    check_positive_int(n, "n")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
