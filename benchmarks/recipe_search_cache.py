"""Recipe search, step 1 (issue 17): the 68 rows of every clip of a RAVDESS folder, cached once.

    python benchmarks/recipe_search_cache.py N_AUG DATA_DIR OUT.pt [WAVE_CACHE]

Writes ``OUT.pt``: per clip its raw rows (``FeatureConfig(normalize=None)``,
trimmed clips at 22050 Hz, as training loads them), label, actor and path; version 0 without
augmentation and N_AUG versions through ``WaveformAugment`` (its defaults: each effect with p=0.5,
seeded 1000 + version). ``benchmarks/recipe_search.py`` trains on these. 720 clips: ~70 s per version on
2 cores. (The ``folds`` it stores are not used: recipe_search.py takes the folds from ``split_clips``.)
"""
import sys, time, torch

from ser_gpu.data import load_waveforms, scan_corpus, split_clips
from ser_gpu.transforms.features import FeatureExtractor, FeatureConfig
from ser_gpu.transforms.augment import WaveformAugment
from ser_gpu.data.chunks import length_groups
torch.set_num_threads(2)
if len(sys.argv) not in (4, 5):
    sys.exit(__doc__.strip().split("\n\n")[1])
n_aug, DATA, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
WCACHE = sys.argv[4] if len(sys.argv) > 4 else None  # None: $SER_GPU_CACHE or ~/.cache/ser_gpu/waveforms
clips = scan_corpus([DATA])
waves, clips = load_waveforms(clips, sr=22050, trim=True, top_db=20.0, cache_dir=WCACHE, progress=False)
print(len(clips), "clips")
ext = FeatureExtractor(FeatureConfig(normalize=None), trim=False)
aug = WaveformAugment(sr=22050)
lengths = torch.tensor([w.shape[0] for w in waves])
def feats(version):
    out = [None]*len(waves)
    g = torch.Generator().manual_seed(1000 + version)
    with torch.no_grad():
        for pos, rung in length_groups(lengths, multiple=512):
            for sub in pos.split(64):
                y = torch.zeros(len(sub), rung)
                for j, i in enumerate(sub.tolist()):
                    y[j, :waves[i].shape[0]] = waves[i]
                L = lengths[sub]
                if version > 0:
                    y, L = aug(y, L, generator=g)
                b = ext(y, L)
                for j, i in enumerate(sub.tolist()):
                    out[i] = b.features[j, :, :int(b.frame_lengths[j])].clone()
    return out
t = time.time()
data = {"labels": [c.label for c in clips], "actors": [c.actor for c in clips], "paths": [str(c.path) for c in clips]}
data["folds"] = []
for f in range(6):
    s = split_clips(clips, method="actor", seed=0, n_folds=6, fold=f)
    data["folds"].append({"train": list(s.train), "val": list(s.val), "test": list(s.test)})
data["feats"] = [feats(0)]
print("clean", time.time() - t, flush=True)
for v in range(1, n_aug + 1):
    data["feats"].append(feats(v)); print("aug", v, time.time() - t, flush=True)
    torch.save(data, OUT)
torch.save(data, OUT)
