"""Train / validation / test splits of a clip list: random (stratified) or by held-out actors."""

from __future__ import annotations

import numbers
from typing import List, NamedTuple, Optional, Sequence

import torch

from .._validation import _describe, check_in_range, check_positive_int
from ..errors import ParameterError

__all__ = ["Split", "split_clips"]

_METHODS = ("random", "actor")


class Split(NamedTuple):
    """Indices into the clip list, each list sorted ascending; the three sets are disjoint.

    Attributes:
        train, val, test: ``List[int]``; ``test`` is empty for the ``'random'`` method.
    """

    train: List[int]
    val: List[int]
    test: List[int]


def _perm(n: int, generator: torch.Generator) -> List[int]:
    return torch.randperm(n, generator=generator).tolist()


def _random_split(labels: List[int], val_fraction: float, generator: torch.Generator) -> Split:
    # Stratified: each emotion gives round(n_e * val_fraction) of its clips to validation, so the
    # validation set has the corpus's class balance (as sklearn's stratified train_test_split).
    val: List[int] = []
    for label in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == label]
        order = _perm(len(members), generator)
        n_val = int(round(len(members) * val_fraction))
        val.extend(members[j] for j in order[:n_val])
    taken = set(val)
    train = [i for i in range(len(labels)) if i not in taken]
    return Split(train, sorted(val), [])


def _actor_order(actors: List[int], generator: torch.Generator) -> List[int]:
    # RAVDESS actors are male when odd and female when even: shuffle each group and interleave them,
    # so consecutive held-out actors (and round-robin folds) mix both sexes.
    odd = [a for a in actors if a % 2 == 1]
    even = [a for a in actors if a % 2 == 0]
    odd = [odd[j] for j in _perm(len(odd), generator)]
    even = [even[j] for j in _perm(len(even), generator)]
    first, second = (odd, even) if int(torch.randint(2, (1,), generator=generator)) == 0 else (even, odd)
    order = []
    for i in range(max(len(first), len(second))):
        order.extend(group[i] for group in (first, second) if i < len(group))
    return order


def _indices_of(actor_of: List[int], chosen) -> List[int]:
    chosen = set(chosen)
    return [i for i, a in enumerate(actor_of) if a in chosen]


def split_clips(
    clips: Sequence,
    *,
    method: str = "random",
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    n_folds: Optional[int] = None,
    fold: int = 0,
) -> Split:
    """Split clips into train, validation and test sets, reproducibly from ``seed``.

    ``'random'`` is the original system's split: ``val_fraction`` (0.2) of the clips for validation
    and the rest for training, stratified by emotion; the test set is empty and ``test_fraction`` is
    not used.

    ``'actor'`` holds out whole actors, so validation and test measure speakers never heard in
    training. Actors are shuffled (males and females interleaved); ``round(n_actors * test_fraction)``
    of them (at least one when ``test_fraction > 0``) form the test set and the next
    ``round(n_actors * val_fraction)`` (at least one) the validation set. With ``n_folds=k`` the
    actors are dealt round-robin into ``k`` folds instead: fold ``fold`` is the test set, fold
    ``(fold + 1) % k`` the validation set and the rest is for training, so the ``k`` values of
    ``fold`` test every actor exactly once.

    Args:
        clips (sequence of Clip): objects with ``.label`` and ``.actor`` (e.g. from :func:`scan_corpus`).
        method (str, default 'random'): ``'random'`` or ``'actor'``.
        seed (int, default 0): seed of the shuffles.
        val_fraction (float, default 0.2): share of the clips ('random') or actors ('actor') for
            validation, in (0, 1).
        test_fraction (float, default 0.2): share of the actors for testing ('actor'), in [0, 1);
            ``val_fraction + test_fraction`` must be below 1.
        n_folds (int | None, default None): 'actor' only: number of actor folds (>= 3).
        fold (int, default 0): 'actor' with ``n_folds``: the test fold, in ``[0, n_folds)``.

    Returns:
        :class:`Split` of sorted index lists into ``clips``.

    Raises:
        ParameterError: a bad method, fraction, fold or seed, or a split that would leave the
            training or validation set (or, when asked for, the test set) empty.
    """
    if method not in _METHODS:
        raise ParameterError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ParameterError(f"seed must be an integer, got {_describe(seed)}")
    if isinstance(clips, (str, bytes)) or not isinstance(clips, Sequence):
        raise ParameterError(f"clips must be a list of Clip, got {type(clips).__name__}: {_describe(clips)}")
    if len(clips) == 0:
        raise ParameterError("clips must hold at least one Clip, got an empty list []")
    try:
        labels = [int(c.label) for c in clips]
        actor_of = [int(c.actor) for c in clips]
    except (AttributeError, TypeError, ValueError) as exc:
        raise ParameterError(f"clips must hold Clip objects with .label and .actor: {exc}") from exc
    val_fraction = check_in_range(val_fraction, "val_fraction", 0.0, 1.0)
    generator = torch.Generator().manual_seed(int(seed))

    if method == "random":
        if n_folds is not None:
            raise ParameterError(f"n_folds applies to method='actor' only, got n_folds={n_folds!r} "
                                 f"with method='random'")
        split = _random_split(labels, val_fraction, generator)
        if not split.val:
            raise ParameterError(f"val_fraction={val_fraction!r} of {len(clips)} clip(s) leaves the "
                                 f"validation set empty")
        if not split.train:
            raise ParameterError(f"val_fraction={val_fraction!r} of {len(clips)} clip(s) leaves the "
                                 f"training set empty")
        return split

    actors = sorted(set(actor_of))
    order = _actor_order(actors, generator)
    if n_folds is not None:
        n_folds = check_positive_int(n_folds, "n_folds")
        if n_folds < 3:
            raise ParameterError(f"n_folds must be at least 3 (a test fold, a validation fold and "
                                 f"training folds), got {n_folds}")
        if n_folds > len(actors):
            raise ParameterError(f"n_folds={n_folds} is more than the {len(actors)} actor(s) in the corpus "
                                 f"({actors})")
        if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold < n_folds:
            raise ParameterError(f"fold must be an integer in [0, {n_folds}), got {_describe(fold)}")
        folds = [order[k::n_folds] for k in range(n_folds)]
        test_actors = folds[fold]
        val_actors = folds[(fold + 1) % n_folds]
    else:
        test_fraction = check_in_range(test_fraction, "test_fraction", 0.0, 1.0, inclusive=True)
        if val_fraction + test_fraction >= 1.0:
            raise ParameterError(f"val_fraction + test_fraction must be below 1 to leave actors for "
                                 f"training, got {val_fraction!r} + {test_fraction!r}")
        n = len(actors)
        n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 else 0
        n_val = max(1, int(round(n * val_fraction)))
        if n_test + n_val >= n:
            raise ParameterError(
                f"the corpus has {n} actor(s) ({actors}): holding out {n_test} for testing "
                f"(test_fraction={test_fraction!r}) and {n_val} for validation (val_fraction={val_fraction!r}) "
                f"leaves none for training")
        test_actors = order[:n_test]
        val_actors = order[n_test:n_test + n_val]
    held = set(test_actors) | set(val_actors)
    train_actors = [a for a in actors if a not in held]
    return Split(_indices_of(actor_of, train_actors), _indices_of(actor_of, val_actors),
                 _indices_of(actor_of, test_actors))
