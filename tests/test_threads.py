"""Torch's CPU intra-op threads per Python thread (ser_gpu._threads) and how training shares the cores."""

from __future__ import annotations

import threading

import pytest
import torch

from ser_gpu._threads import current_threads, intra_op_threads, training_share
from ser_gpu.errors import ParameterError


@pytest.fixture
def threads():
    """Each test sets torch's thread count as it needs; the count before is set again after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("total, share", [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_the_training_beside_a_data_thread_takes_half_of_its_threads(total, share):
    assert training_share(total) == share


@pytest.mark.parametrize("bad", [0, -2, 2.0, None])
def test_training_share_refuses_a_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(ParameterError, match="total must be a positive integer"):
        training_share(bad)


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


def test_a_nested_block_sets_back_its_own_threads_count_not_another_threads(threads):
    """torch.get_num_threads() is the last count any thread set; intra_op_threads remembers each Python
    thread's own, so a nested block in one thread sets back that thread's count while another thread
    has set another one meanwhile."""
    torch.set_num_threads(4)
    inner_set, outer_may_leave = threading.Event(), threading.Event()
    seen = []

    def data_thread():
        with intra_op_threads(3):
            inner_set.set()
            outer_may_leave.wait(10)
            with intra_op_threads(1):  # the median filters' one thread
                seen.append(current_threads())
            seen.append(current_threads())  # 3 again, though the other thread set 2 last
            torch.ones(100000).cos().sum()  # a parallel op under the thread's own count

    t = threading.Thread(target=data_thread)
    t.start()
    inner_set.wait(10)
    with intra_op_threads(2):
        outer_may_leave.set()
        t.join()
        assert current_threads() == 2
    assert seen == [1, 3]
    assert current_threads() == torch.get_num_threads() == 4


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_intra_op_threads_refuses_a_count_that_is_not_a_positive_integer(n):
    with pytest.raises(ParameterError, match="n must be a positive integer"):
        with intra_op_threads(n):
            pass
