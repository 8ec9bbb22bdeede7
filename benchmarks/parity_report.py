"""Max relative error of every ser_gpu feature against live librosa, per dtype, on the test signals.

    python benchmarks/parity_report.py [--device cpu|cuda]

Error = max |ours - librosa| / max |librosa| (librosa run on the float64 signal), the docs/design.md
measure; the table gives the worst signal per feature. Rolloff is a bin pick: reported as the
number of frames that differ. Writes ``benchmarks/results/parity_<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import feature_pairs, write_results  # noqa: E402
from tests.signals import SIGNALS  # noqa: E402

SR = 22050


def main(argv=None):
    import librosa

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    results = {}
    print(f"{'feature':20s} {'float64':>10s} {'float32':>10s}  worst signal (float32)")
    for name, (ours, ref) in feature_pairs(librosa).items():
        row = {}
        for dtype in (torch.float64, torch.float32):
            worst, worst_sig = -1.0, None
            for sig, y in SIGNALS.items():
                try:
                    r = ref(y)
                except librosa.util.exceptions.ParameterError:
                    continue  # e.g. delta on a clip of fewer than 9 frames: librosa raises
                with torch.no_grad():
                    o = ours(torch.from_numpy(y).to(device=device, dtype=dtype)).cpu().double().numpy()
                if name == "spectral_rolloff":
                    err = float((o != r).sum())
                else:
                    scale = np.abs(r).max()
                    err = float(np.abs(o - r).max() / scale) if scale > 0 else float(np.abs(o).max())
                if err > worst:
                    worst, worst_sig = err, sig
            row[str(dtype).replace("torch.", "")] = {"max_error": worst, "signal": worst_sig}
        results[name] = row
        unit = " frames" if name == "spectral_rolloff" else ""
        print(f"{name:20s} {row['float64']['max_error']:10.2e} {row['float32']['max_error']:10.2e}{unit}  "
              f"{row['float32']['signal']}")
    path = write_results("parity", device, {"signals": sorted(SIGNALS), "measure": "max|ours-librosa|/max|librosa|",
                                            "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
