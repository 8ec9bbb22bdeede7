"""Recipe search, step 2 (issue 17): train candidate recipes on cached rows, 6 actor folds, and report test UAR.

    python benchmarks/recipe_search.py --norm global --epochs 30 --channels 64,128,128 --hidden 128 \
        --layers 2 --seeds 0 --tag NAME --feats FEATS.pt [--json OUT.json]

A fast stand-in for ``python -m ser_gpu.crossval`` used to compare recipes on a 2-core CPU: the rows come
from ``recipe_search_cache.py`` (no feature computation per epoch); augmentation picks, per clip and
step, one of the cached versions (clean or one of N augmented); SpecAugment and the model are
ser_gpu's. Folds: ``split_clips(method='actor', seed=0, n_folds=6)``, fold i+1 validates fold i (as
crossval with seed 0); ``--seeds`` vary the training only. ``--norm``: ``clip`` (per-clip
standardisation, the original's), ``global`` (the training split's per-row mean and std, clean rows),
``cmn`` (global, then each clip's mean removed), ``both`` (global and clip stacked: not working, the
evaluation pads 68 rows), ``speaker`` (each actor's own mean and std over all of its clean clips, labels
unused: transductive, the test actors' recordings give their statistics). ``--trainval 1`` trains on
the validation actors too (10 actors; use with ``--select last``), ``--mixup A`` mixes each batch with a
shuffled copy of itself (weight drawn from Beta(A, A)), ``--ema D`` also reports the test UAR of an
exponential moving average of the weights (decay D per step). Prints one JSON line per fold and a SUMMARY line (mean ± sample std of test
UAR at the epoch of best validation UAR; also at the last epoch and at the lowest validation loss);
writes every run's record with ``--json``. The results of issue 17 are in
``benchmarks/results/recipe_search_ravdess_dev_cpu.json``.
"""
import time, json, math, argparse, torch, numpy as np

from torch import nn
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.transforms.augment import SpecAugment
from ser_gpu.data import split_clips
from ser_gpu.data.ravdess import Clip
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--norm", default="clip")  # clip | global | both | cmvn_g (global, then per-clip mean removal)
p.add_argument("--epochs", type=int, default=30)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--sched", default="cosine")  # cosine | const | onecycle
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--bs", type=int, default=32)
p.add_argument("--wd", type=float, default=1e-2)
p.add_argument("--ls", type=float, default=0.1)
p.add_argument("--balance", type=int, default=1)
p.add_argument("--aug", type=int, default=1)   # use augmented versions
p.add_argument("--specaug", type=int, default=1)
p.add_argument("--channels", default="128,256,512")
p.add_argument("--hidden", type=int, default=256)
p.add_argument("--layers", type=int, default=3)
p.add_argument("--dropout", type=float, default=0.3)
p.add_argument("--select", default="uar")  # uar | loss | last
p.add_argument("--seeds", default="0")
p.add_argument("--folds", default="0,1,2,3,4,5")
p.add_argument("--tag", default="")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--feats", required=True)  # recipe_search_cache.py's file
p.add_argument("--json", default=None)  # where to write the summary and every run's record
p.add_argument("--trainval", type=int, default=0)  # 1: train on the training and validation actors (select last)
p.add_argument("--ema", type=float, default=0.0)  # >0: also report the test UAR of an EMA of the weights (per step)
p.add_argument("--mixup", type=float, default=0.0)  # >0: mixup of padded row batches, Beta(a, a)
a = p.parse_args()
FEATS = a.feats
torch.set_num_threads(a.threads)
d = torch.load(FEATS, weights_only=False)
labels = torch.tensor(d["labels"]); actors = d["actors"]
clips = [Clip(path=Path(x), label=l, actor=ac) for x, l, ac in zip(d["paths"], d["labels"], actors)]
versions = d["feats"] if a.aug else d["feats"][:1]
N = len(clips)

def uar(pred, y):
    return float(np.mean([(pred[y == c] == c).float().mean() for c in range(8) if (y == c).any()]))

def pad(feats, idx):
    T = max(feats[i].shape[1] for i in idx)
    x = torch.zeros(len(idx), 68, T); fl = torch.zeros(len(idx), dtype=torch.long)
    for j, i in enumerate(idx):
        f = feats[i]; x[j, :, :f.shape[1]] = f; fl[j] = f.shape[1]
    return x, fl

def run(seed, fold):
    s = split_clips(clips, method="actor", seed=0, n_folds=6, fold=fold)
    tr, va, te = list(s.train), list(s.val), list(s.test)
    if a.trainval: tr = tr + va
    # normalisation statistics from the clean training features
    cat = torch.cat([d["feats"][0][i] for i in tr], 1).double()
    mu, sd = cat.mean(1, keepdim=True).float(), cat.std(1, keepdim=True).float()
    def norm(f):
        g = (f - mu) / (sd + 1e-8)
        c = (f - f.mean(1, keepdim=True)) / (f.std(1, keepdim=True, unbiased=False) + 1e-8)
        if a.norm == "clip": return c
        if a.norm == "global": return g
        if a.norm == "both": return torch.cat([g, c], 0)
        if a.norm == "cmn": return g - g.mean(1, keepdim=True)
        if a.norm == "bn": return f
        raise SystemExit(a.norm)
    if a.norm == "speaker":  # each actor's own mean and std (all its clean clips, labels unused)
        acts = sorted(set(actors)); st = {}
        for ac in acts:
            cat_a = torch.cat([d["feats"][0][i] for i in range(N) if actors[i] == ac], 1).double()
            st[ac] = (cat_a.mean(1, keepdim=True).float(), cat_a.std(1, keepdim=True).float())
        V = [[(f - st[actors[i]][0]) / (st[actors[i]][1] + 1e-8) for i, f in enumerate(fs)] for fs in versions]
    else:
        V = [[norm(f) for f in fs] for fs in versions]
    torch.manual_seed(seed)
    ch = tuple(int(c) for c in a.channels.split(","))
    dim = 136 if a.norm == "both" else 68
    model = CNNBiLSTMAttention(ModelConfig(input_dim=dim, channels=ch, lstm_hidden=a.hidden, lstm_layers=a.layers,
                                           dropout=a.dropout, attention_heads=8 if 2 * a.hidden % 8 == 0 else 4))
    if a.norm == "bn":
        from ser_gpu.models.cnn_bilstm_attention import _MaskedBatchNorm1d
        class Wrap(nn.Module):
            def __init__(s2, m):
                super().__init__(); s2.m = m; s2.bn = _MaskedBatchNorm1d(68, affine=False, momentum=None)
            def forward(s2, x, fl):
                mask = (torch.arange(x.shape[-1]) < fl[:, None])[:, None]
                return s2.m(s2.bn(x, mask) * mask, fl)
        model = Wrap(model)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    steps_per = math.ceil(len(tr) / a.bs); total = steps_per * a.epochs
    def lr_at(step):
        if a.sched == "const": return 1.0
        w = a.warmup * steps_per
        if step < w: return (step + 1) / w
        return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    cnt = torch.bincount(labels[tr], minlength=8).float()
    weight = (cnt.sum() / (8 * cnt)) if a.balance else None
    crit = nn.CrossEntropyLoss(weight=weight, label_smoothing=a.ls)
    spec = SpecAugment()
    g = torch.Generator().manual_seed(seed + 100)
    def evaluate(idx):
        model.eval(); outs = []
        with torch.no_grad():
            for b in range(0, len(idx), 64):
                x, fl = pad(V[0], idx[b:b + 64]); outs.append(model(x, fl))
        lo = torch.cat(outs); y = labels[idx]
        return uar(lo.argmax(-1), y), float(nn.functional.cross_entropy(lo, y)), lo
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if a.ema else None
    best = (-1, None); hist = []
    t0 = time.time()
    for ep in range(a.epochs):
        model.train()
        order = torch.randperm(len(tr), generator=g).tolist()
        if len(order) % a.bs == 1: order = order[:-1]
        for b in range(0, len(order), a.bs):
            idx = [tr[k] for k in order[b:b + a.bs]]
            ver = torch.randint(len(V), (len(idx),), generator=g).tolist()
            T = max(V[v][i].shape[1] for v, i in zip(ver, idx))
            x = torch.zeros(len(idx), dim, T); fl = torch.zeros(len(idx), dtype=torch.long)
            for j, (v, i) in enumerate(zip(ver, idx)):
                f = V[v][i]; x[j, :, :f.shape[1]] = f; fl[j] = f.shape[1]
            if a.specaug: x = spec(x, fl, generator=g)
            y = labels[idx]
            if a.mixup:
                lam = float(torch.distributions.Beta(a.mixup, a.mixup).sample()); perm = torch.randperm(len(idx), generator=g)
                x = lam * x + (1 - lam) * x[perm]; fl = torch.maximum(fl, fl[perm])
                out = model(x, fl); loss = lam * crit(out, y) + (1 - lam) * crit(out, y[perm])
            else:
                loss = crit(model(x, fl), y)
            opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sch.step()
            if ema is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        if v.dtype.is_floating_point: ema[k].mul_(a.ema).add_(v, alpha=1 - a.ema)
                        else: ema[k].copy_(v)
        vu, vl, _ = evaluate(va)
        tu_ep, _, lo_ep = evaluate(te)
        score = {"uar": vu, "loss": -vl, "last": ep}[a.select]
        if score > best[0]:
            best = (score, {k: v.clone() for k, v in model.state_dict().items()}, ep)
        hist.append((round(vu, 4), round(vl, 4), round(tu_ep, 4)))
        if ep == a.epochs - 1: last_logits = lo_ep.tolist()
    ema_uar = ema_logits = None
    if ema is not None:
        model.load_state_dict(ema); ema_uar, _, ema_lo = evaluate(te); ema_logits = ema_lo.tolist()
    model.load_state_dict(best[1])
    tu, tl, lo = evaluate(te)
    acc = float((lo.argmax(-1) == labels[te]).float().mean())
    by_loss = min(range(len(hist)), key=lambda e: hist[e][1])
    return {"seed": seed, "fold": fold, "test_uar": tu, "test_acc": acc, "best_epoch": best[2], "sec": time.time() - t0,
            "test_uar_last": hist[-1][2], "test_uar_ema": ema_uar, "test_logits_ema": ema_logits, "test_uar_selloss": hist[by_loss][2], "val": hist,
            "test_logits": lo.tolist(), "test_logits_last": last_logits, "test_index": te}

res = []
for seed in [int(x) for x in a.seeds.split(",")]:
    for fold in [int(x) for x in a.folds.split(",")]:
        r = run(seed, fold); res.append(r)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k not in ("val", "test_logits", "test_logits_last", "test_logits_ema", "test_index")}), flush=True)
u = [r["test_uar"] for r in res]
summary = {"args": vars(a), "uar_mean": float(np.mean(u)), "uar_std": float(np.std(u, ddof=1)) if len(u) > 1 else 0.0,
           "acc_mean": float(np.mean([r["test_acc"] for r in res])), "runs": res}
ul = [r["test_uar_last"] for r in res]; us = [r["test_uar_selloss"] for r in res]
if a.ema: print("EMA", a.tag, f"{np.mean([r['test_uar_ema'] for r in res]):.3f}", flush=True)
print("SUMMARY", a.tag, vars(a), f"UAR {summary['uar_mean']:.3f} ± {summary['uar_std']:.3f}; last {np.mean(ul):.3f}; selloss {np.mean(us):.3f}", flush=True)
if a.json:
    with open(a.json, "w") as fh: json.dump(summary, fh)
