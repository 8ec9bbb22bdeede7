"""Train / validation / test splits of a clip list: random (stratified) or by held-out actors."""

from __future__ import annotations

import numbers
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch

from .._validation import _describe, check_in_range, check_positive_int
from ..errors import ParameterError
from .corpora import CORPORA, speaker_sex

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


def _sex_order(male: List, female: List, generator: torch.Generator) -> List:
    # RAVDESS actors are male when odd and female when even: shuffle each group and interleave them,
    # so consecutive held-out actors (and the runs cut into folds) mix both sexes.
    odd = [male[j] for j in _perm(len(male), generator)]
    even = [female[j] for j in _perm(len(female), generator)]
    first, second = (odd, even) if int(torch.randint(2, (1,), generator=generator)) == 0 else (even, odd)
    order = []
    for i in range(max(len(first), len(second))):
        order.extend(group[i] for group in (first, second) if i < len(group))
    return order


def _merge(orders: List[List]) -> List:
    # Deal several orders into one in proportion: the i-th of n items sits at (i + 0.5) / n, ties
    # taken in list order. The first k items of the result hold about the same share of every list,
    # and a single list comes back unchanged.
    ranked = [((i + 0.5) / len(o), g, i, item) for g, o in enumerate(orders) for i, item in enumerate(o)]
    return [r[3] for r in sorted(ranked, key=lambda r: r[:3])]


def _speaker_order(speakers: List[Tuple[str, int, str]], generator: torch.Generator) -> List[Tuple[str, int, str]]:
    """Held-out order of ``(corpus, actor, speaker)`` keys (sorted): per corpus, then dealt together.

    Within a corpus the speakers of known sex (:func:`ser_gpu.data.corpora.speaker_sex`) are
    shuffled by sex and interleaved (RAVDESS's rule: odd actors male, even female; draws as it
    always made them, so a RAVDESS corpus splits as before), those of unknown sex (CREMA-D) are
    shuffled; corpora are taken in :data:`CORPORA` order and dealt together in proportion, so each
    held-out share holds about that share of every corpus's speakers.
    """
    by_corpus: dict = {}
    for key in speakers:
        by_corpus.setdefault(key[0], []).append(key)
    rank = {c: i for i, c in enumerate(CORPORA)}
    orders = []
    for corpus in sorted(by_corpus, key=lambda c: (rank.get(c, len(CORPORA)), c)):
        keys = by_corpus[corpus]
        sexes = [speaker_sex(corpus, actor) for _, actor, _ in keys]
        male = [k for k, s in zip(keys, sexes) if s == "m"]
        female = [k for k, s in zip(keys, sexes) if s == "f"]
        unknown = [k for k, s in zip(keys, sexes) if s is None]
        parts = []
        if male or female:
            parts.append(_sex_order(male, female, generator))
        if unknown:
            parts.append([unknown[j] for j in _perm(len(unknown), generator)])
        orders.append(_merge(parts))
    return _merge(orders)


def _speaker_key(clip) -> Tuple[str, int, str]:
    actor = int(clip.actor)
    corpus = getattr(clip, "corpus", None) or "ravdess"
    speaker = getattr(clip, "speaker", None) or f"{corpus}:{actor:02d}"
    return (str(corpus), actor, str(speaker))


def _indices_of(speaker_of: List, chosen) -> List[int]:
    chosen = set(chosen)
    return [i for i, a in enumerate(speaker_of) if a in chosen]


def split_clips(
    clips: Sequence,
    *,
    method: str = "random",
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    n_folds: Optional[int] = None,
    fold: int = 0,
    val_fold: Optional[int] = None,
) -> Split:
    """Split clips into train, validation and test sets, reproducibly from ``seed``.

    ``'random'`` is the original system's split: ``val_fraction`` (0.2) of the clips for validation
    and the rest for training, stratified by emotion; the test set is empty and ``test_fraction`` is
    not used.

    ``'actor'`` holds out whole actors, so validation and test measure speakers never heard in
    training. An actor is a ``Clip.speaker`` (unique across corpora, e.g. ``"ravdess:12"``,
    ``"tess:OAF"``; objects without one count as RAVDESS actors). Actors are shuffled (per corpus,
    males and females interleaved where the corpus tells them apart; several corpora dealt together
    in proportion: see ``_speaker_order``); ``round(n_actors * test_fraction)``
    of them (at least one when ``test_fraction > 0``) form the test set and the next
    ``round(n_actors * val_fraction)`` (at least one) the validation set. With ``n_folds=k`` the
    shuffled actors are cut into ``k`` consecutive runs instead (sizes differing by at most one, so
    each fold mixes the sexes and corpora): fold ``fold`` is the test set, fold
    ``(fold + 1) % k`` (or ``val_fold``) the validation set and the rest is for training, so the ``k``
    values of ``fold`` test every actor exactly once.

    Args:
        clips (sequence of Clip): objects with ``.label`` and ``.actor`` (and ``.corpus``,
            ``.speaker`` when not RAVDESS; e.g. from :func:`scan_corpus`).
        method (str, default 'random'): ``'random'`` or ``'actor'``.
        seed (int, default 0): seed of the shuffles.
        val_fraction (float, default 0.2): share of the clips ('random') or actors ('actor') for
            validation, in (0, 1).
        test_fraction (float, default 0.2): share of the actors for testing ('actor'), in [0, 1);
            ``val_fraction + test_fraction`` must be below 1.
        n_folds (int | None, default None): 'actor' only: number of actor folds (>= 3).
        fold (int, default 0): 'actor' with ``n_folds``: the test fold, in ``[0, n_folds)``.
        val_fold (int | None, default None): 'actor' with ``n_folds``: the validation fold, in
            ``[0, n_folds)`` and not ``fold``; None: ``(fold + 1) % n_folds``. Runs that test one fold
            and validate on different ones train on different actors (``crossval --rotate-validation``).

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
    if val_fold is not None and (method != "actor" or n_folds is None):
        raise ParameterError(f"val_fold applies to method='actor' with n_folds only, got val_fold={val_fold!r} "
                             f"with method={method!r}, n_folds={n_folds!r}")
    if isinstance(clips, (str, bytes)) or not isinstance(clips, Sequence):
        raise ParameterError(f"clips must be a list of Clip, got {type(clips).__name__}: {_describe(clips)}")
    if len(clips) == 0:
        raise ParameterError("clips must hold at least one Clip, got an empty list []")
    try:
        labels = [int(c.label) for c in clips]
        speaker_of = [_speaker_key(c) for c in clips]
    except (AttributeError, TypeError, ValueError) as exc:
        raise ParameterError(f"clips must hold Clip objects with .label and .actor: {exc}") from exc
    val_fraction = check_in_range(val_fraction, "val_fraction", 0.0, 1.0)
    generator = torch.Generator().manual_seed(int(seed))

    if method == "random":
        if n_folds is not None:
            raise ParameterError(f"n_folds applies to method='actor' only, got n_folds={n_folds!r} "
                                 f"with method='random' (on the command line: --folds needs --split actor)")
        split = _random_split(labels, val_fraction, generator)
        if not split.val:
            raise ParameterError(f"val_fraction={val_fraction!r} of {len(clips)} clip(s) leaves the "
                                 f"validation set empty: give more clips")
        if not split.train:
            raise ParameterError(f"val_fraction={val_fraction!r} of {len(clips)} clip(s) leaves the "
                                 f"training set empty: give more clips")
        return split

    actors = sorted(set(speaker_of))
    order = _speaker_order(actors, generator)
    names = [key[2] for key in actors]  # for messages
    if n_folds is not None:
        n_folds = check_positive_int(n_folds, "n_folds")
        if n_folds < 3:
            raise ParameterError(f"n_folds must be at least 3 (a test fold, a validation fold and "
                                 f"training folds), got {n_folds}")
        if n_folds > len(actors):
            raise ParameterError(f"n_folds={n_folds} is more than the {len(actors)} actor(s) (speakers) in the "
                                 f"corpus ({names})")
        if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold < n_folds:
            raise ParameterError(f"fold must be an integer in [0, {n_folds}), got {_describe(fold)}")
        if val_fold is None:
            val_fold = (fold + 1) % n_folds
        elif isinstance(val_fold, bool) or not isinstance(val_fold, numbers.Integral) \
                or not 0 <= val_fold < n_folds or val_fold == fold:
            raise ParameterError(f"val_fold must be an integer in [0, {n_folds}) other than the test fold "
                                 f"{fold}, got {_describe(val_fold)}")
        # contiguous runs of the dealt order (sizes differing by at most one): the order alternates
        # sexes and deals corpora in proportion, so each run mixes them (dealing round-robin, item k
        # to fold k mod n_folds, gave folds of one sex whenever n_folds was even)
        bounds = [len(order) * k // n_folds for k in range(n_folds + 1)]
        folds = [order[bounds[k]:bounds[k + 1]] for k in range(n_folds)]
        test_actors = folds[fold]
        val_actors = folds[val_fold]
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
                f"the corpus has {n} actor(s) (speakers: {names}): holding out {n_test} for testing "
                f"(test_fraction={test_fraction!r}) and {n_val} for validation (val_fraction={val_fraction!r}) "
                f"leaves none for training")
        test_actors = order[:n_test]
        val_actors = order[n_test:n_test + n_val]
    held = set(test_actors) | set(val_actors)
    train_actors = [a for a in actors if a not in held]
    return Split(_indices_of(speaker_of, train_actors), _indices_of(speaker_of, val_actors),
                 _indices_of(speaker_of, test_actors))
