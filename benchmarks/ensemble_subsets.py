"""Independent ensembles from one ``crossval --ensemble K`` run: its members cut into disjoint groups.

    python benchmarks/ensemble_subsets.py CV_DIR [--size 3 [SIZE ...]] [--combinations] [--out FILE]

``CV_DIR`` is a finished ``python -m ser_gpu.crossval --ensemble K`` directory
(``seed_S/fold_I/member_M``). The members of every fold are cut into consecutive groups of ``--size``
(members 0..size-1, then size..2*size-1, ...; a last, smaller group is left out); each group is tested
on every fold as an ensemble (the members' averaged softmax, :func:`ser_gpu.crossval.ensemble_test`)
and summarised over the folds (:func:`ser_gpu.crossval.summarize`: mean ± sample std of UAR, WA and
weighted F1, pooled confusion). So a run of ``K = 6`` gives two ensembles of 3 trained independently
(their members' seeds differ) on the same folds: the spread of an ensemble's cross-validated score, not
one draw of it. Prints a line per group and writes the figures as JSON (``--out``).

``--combinations`` takes every combination of ``--size`` of the K members instead (C(K, size) groups,
which share members, so they are not independent): their mean UAR is the expected score of an ensemble
of that size drawn from these members on these folds, with less draw noise than any one group (e.g.
``K = 5``: ten ensembles of 3); printed last, and stored as ``"over_groups"``. Several ``--size``: each in
turn, so ``--size 1 2 3 4 5 --combinations`` is the curve of the expected score over the ensemble's size;
the JSON holds ``{"sizes": {size: {"groups", "over_groups"}}}``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_gpu._atomic import save_json  # noqa: E402
from ser_gpu.crossval import ensemble_test, summarize  # noqa: E402
from ser_gpu.errors import ParameterError  # noqa: E402


def _numbered(folder: Path, prefix: str) -> dict:
    """``{n: path}`` of the sub-folders of ``folder`` named ``prefix`` + a number."""
    found = {}
    for p in folder.glob(f"{prefix}*"):
        m = re.fullmatch(rf"{prefix}(\d+)", p.name)
        if m and p.is_dir():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def subsets(cv_dir, size: int, *, combinations: bool = False) -> dict:
    """Per group of ``size`` members: its members, per-fold test metrics and :func:`summarize` over them.

    The groups are consecutive and disjoint, or with ``combinations`` every combination of ``size``
    members (named by their numbers, e.g. ``members_0,2,3``)."""
    cv_dir = Path(cv_dir)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ParameterError(f"size must be a positive integer, got {size!r}")
    seeds = _numbered(cv_dir, "seed_")
    if not seeds:
        raise ParameterError(f"{cv_dir}: no seed_S folders (not a crossval directory)")
    folds = {(s, f): d for s, sd in seeds.items() for f, d in _numbered(sd, "fold_").items()}
    counts = {key: len(_numbered(d, "member_")) for key, d in folds.items()}
    k = min(counts.values())
    if k < size:
        raise ParameterError(f"{cv_dir}: a fold has {k} member(s), fewer than size={size} (counts {counts})")
    if combinations:
        cut = [list(c) for c in itertools.combinations(range(k), size)]
    else:
        cut = [list(range(g * size, (g + 1) * size)) for g in range(k // size)]
    groups = {}
    for members in cut:
        records = []
        for (s, f), d in folds.items():
            test = ensemble_test([d / f"member_{m}" for m in members])
            records.append({"seed": s, "fold": f, "test": test})
        name = ",".join(map(str, members)) if combinations else f"{members[0]}-{members[-1]}"
        groups[f"members_{name}"] = {
            "members": members,
            "per_fold_uar": {f"seed_{r['seed']}/fold_{r['fold']}": r["test"]["uar"] for r in records},
            "summary": summarize(records)}
    return groups


def over_groups(groups: dict) -> dict:
    """Mean, min and max over the groups of their mean test UAR and accuracy (WA)."""
    out = {"n_groups": len(groups)}
    for metric in ("uar", "accuracy"):
        means = [g["summary"][metric]["mean"] for g in groups.values()]
        out[metric] = {"mean": sum(means) / len(means), "min": min(means), "max": max(means)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cv_dir")
    p.add_argument("--size", type=int, nargs="+", default=[3],
                   help="members per ensemble; several sizes: each in turn (default: %(default)s)")
    p.add_argument("--combinations", action="store_true",
                   help="every combination of --size members, not disjoint groups (their mean: the expected score)")
    p.add_argument("--out", default=None, help="write the figures here as JSON")
    args = p.parse_args(argv)
    sizes = {}
    try:
        for size in args.size:
            sizes[size] = subsets(args.cv_dir, size, combinations=args.combinations)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stored = {}
    for size, groups in sizes.items():
        for name, g in groups.items():
            u = g["summary"]["uar"]
            print(f"{name}: UAR {u['mean']:.3f} ± {u['std']:.3f} over {u['n']} fold runs "
                  f"({', '.join(f'{v:.3f}' for v in g['per_fold_uar'].values())})")
        summary = over_groups(groups)
        u = summary["uar"]
        print(f"size {size}, over the {summary['n_groups']} group(s): mean UAR {u['mean']:.3f} "
              f"(range {u['min']:.3f}-{u['max']:.3f})")
        stored[str(size)] = {"groups": groups, "over_groups": summary}
    if args.out:
        save_json(args.out, {"cv_dir": str(args.cv_dir), "combinations": args.combinations, "sizes": stored})
    return 0


if __name__ == "__main__":
    sys.exit(main())
