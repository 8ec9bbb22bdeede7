"""Torch's CPU intra-op threads per Python thread (ser_gpu._threads) and how training shares the cores."""

from __future__ import annotations

import threading

import pytest
import torch

from ser_gpu._threads import intra_op_threads, shared_threads
from ser_gpu.errors import ParameterError


@pytest.fixture
def threads():
    """Each test sets torch's thread count as it needs; the count before is set again after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("total, share", [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_two_threads_share_the_cores_half_each(threads, total, share):
    torch.set_num_threads(total)
    assert shared_threads() == share


def test_intra_op_threads_sets_the_count_inside_and_the_one_before_after(threads):
    torch.set_num_threads(3)
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
        with intra_op_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(ValueError, match="boom"):  # set back when the block raises too
        with intra_op_threads(1):
            raise ValueError("boom")
    assert torch.get_num_threads() == 3


def test_intra_op_threads_in_another_python_thread(threads):
    """The count a second Python thread runs its ops with is the one it set (OpenMP's is per thread)."""
    torch.set_num_threads(2)
    seen = []

    def work():
        with intra_op_threads(1):
            seen.append(torch.get_num_threads())
            torch.ones(1000).cos().sum()  # a parallel op under the thread's own count

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [1] and torch.get_num_threads() == 2


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_intra_op_threads_refuses_a_count_that_is_not_a_positive_integer(n):
    with pytest.raises(ParameterError, match="n must be a positive integer"):
        with intra_op_threads(n):
            pass
