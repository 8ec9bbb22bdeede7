"""Min/max programs of sorting networks: the exact medians' building blocks.

A median of ``k`` values is a selection: Batcher's sorting network (and its odd-even merge) on
``k`` keys, padded to a power of two with static +inf keys and pruned back to the comparators that
reach the wanted rank, gives a fixed program of elementwise min/max operations. The eager medians
of :mod:`ser_gpu.functional.median` run these programs on whole tensors; the fused kernel of
:mod:`ser_gpu.kernels.median_triton` runs the same program in registers, so both select the same
element bit for bit.
"""

from __future__ import annotations

import functools

__all__ = ["batcher_pairs", "pruned_program", "selection_network", "oddeven_merge_pairs", "merge_program"]


def batcher_pairs(n: int):
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n = 2**m`` keys."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def pruned_program(pairs, is_inf: list, targets) -> tuple:
    """The comparators ``pairs`` of a sorting/merging network as a min/max program, with the slots
    flagged ``is_inf`` holding static +inf (a comparator against one is a no-op or a relabelling),
    pruned backwards to the comparators, and the min or max halves of them, that reach ``targets``.
    Each step is ``('cmp'|'swap', i, j, need_min, need_max)``."""
    is_inf = list(is_inf)
    ops = []
    for i, j in pairs:
        if is_inf[j]:
            continue
        if is_inf[i]:
            is_inf[i], is_inf[j] = False, True
            ops.append(("swap", i, j))
        else:
            ops.append(("cmp", i, j))
    needed = set(targets)
    program = []
    for kind, i, j in reversed(ops):
        need_i, need_j = i in needed, j in needed
        if not (need_i or need_j):
            continue
        program.append((kind, i, j, need_i, need_j))
        if kind == "swap":
            needed = (needed - {i, j}) | ({j} if need_i else set()) | ({i} if need_j else set())
        else:
            needed |= {i, j}
    program.reverse()
    return tuple(program)


@functools.lru_cache(maxsize=None)
def selection_network(k: int):
    """A min/max program whose slot ``k // 2`` ends up holding the element of rank ``k // 2``.

    Batcher's network for the next power of two, with the missing keys as static +inf (comparators
    against them become no-ops or relabellings), pruned backwards to the comparators, and the min or
    max halves of them, that reach the selected slot. For k = 31: 274 elementwise min/max.
    Returns ``(program, target)``; each step is ``('cmp'|'swap', i, j, need_min, need_max)``.
    """
    n = 1
    while n < k:
        n *= 2
    target = k // 2
    return pruned_program(batcher_pairs(n), [i >= k for i in range(n)], (target,)), target


def oddeven_merge_pairs(n: int):
    """Comparators ``(i, j)`` of Batcher's odd-even merge of the sorted halves of ``n = 2**m`` keys."""
    pairs = []

    def merge(lo: int, length: int, r: int):
        step = 2 * r
        if step < length:
            merge(lo, length, step)
            merge(lo + r, length, step)
            pairs.extend((i, i + r) for i in range(lo + r, lo + length - r, step))
        else:
            pairs.append((lo, lo + r))

    merge(0, n, 1)
    return pairs


@functools.lru_cache(maxsize=None)
def merge_program(a: int, b: int, lo: int, hi: int):
    """A min/max program merging two sorted lists and keeping the ranks ``[lo, hi)``.

    Slots ``0..a-1`` hold the first list, ``h..h+b-1`` the second (``h``: power of two >= a, b);
    missing keys are static +inf as in :func:`selection_network`, and the program is pruned back
    from the kept ranks. Returns ``(program, n_slots, h, target_slots)``.
    """
    h = 1
    while h < max(a, b):
        h *= 2
    n = 2 * h
    targets = tuple(range(lo, hi))
    is_inf = [not (i < a or h <= i < h + b) for i in range(n)]
    return pruned_program(oddeven_merge_pairs(n), is_inf, targets), n, h, targets
