"""One command for a GPU session: the CUDA tests and every benchmark, logged and saved as they go.

    python benchmarks/gpu_suite.py                      # on the GPU machine (about 6 minutes at most)
    python benchmarks/gpu_suite.py --device cpu --quick # dry run of every step here, tiny sizes
    python benchmarks/gpu_suite.py --mirror "$OUT"      # also copy results/ there after every step

Each step runs in its own process with its own timeout, inside an overall budget (``--budget``,
default 360 s): a failing or slow step costs only itself. Logs go to ``<results>/gpu_suite/<step>.log``
and each benchmark writes its JSON under ``<results>/`` as soon as it finishes; ``gpu_suite_<device>.json``
(the step table and the headline figures) is rewritten after every step. ``<results>`` is
``benchmarks/results`` for a real run and ``benchmarks/results/dry_run`` (git-ignored) with ``--quick``.

Nothing here needs librosa, soundfile, soxr or audiomentations: the CUDA tests compare with CPU float64
(tests/cuda), and the benchmarks skip their reference columns when the reference is missing. If
``./.whl`` holds wheels (``../shared/gpu/fetch_wheels.sh``) and librosa is not importable, they are
installed into a private target directory first, and librosa's numba cache is warmed once in one
process before anything else runs (parallel first compilations corrupt it: numba #10128).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _have(module: str, env: dict) -> bool:
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([PY, "-c", code], env=env, cwd=ROOT, capture_output=True).returncode == 0


class Suite:
    def __init__(self, results: Path, device: str, budget: float, env: dict, mirror: Path = None):
        self.results, self.device, self.env, self.mirror = results, device, env, mirror
        self.logs = results / "gpu_suite"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget
        self.steps = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list, timeout: float, min_needed: float = 10.0) -> bool:
        """Run one step; True when it exited 0. Its timeout is cut to what the budget has left."""
        limit = min(timeout, self.left())
        log = self.logs / f"{name}.log"
        if limit < min_needed:
            self._record(name, cmd, "skipped (budget spent)", 0.0, log)
            return False
        start = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(map(str, cmd))} (timeout {limit:.0f} s)", flush=True)
        with open(log, "w") as fh:
            fh.write(f"$ {' '.join(map(str, cmd))}\n")
            fh.flush()
            try:
                rc = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                    timeout=limit).returncode
                status = "ok" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit:.0f} s"
        self._record(name, cmd, status, time.monotonic() - start, log)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        print(f"    {status} in {time.monotonic() - start:.1f} s; " + " | ".join(t[:150] for t in tail), flush=True)
        return status == "ok"

    def _record(self, name, cmd, status, seconds, log):
        self.steps.append({"step": name, "status": status, "seconds": round(seconds, 1),
                           "command": " ".join(map(str, cmd)), "log": str(log.relative_to(ROOT))})
        self.save()

    def save(self, extra: dict = None):
        payload = {"device": self.device, "steps": self.steps, **(extra or {})}
        (self.results / f"gpu_suite_{self.device}.json").write_text(json.dumps(payload, indent=2) + "\n")
        if self.mirror is not None:  # e.g. a remote run's $OUT: what is there survives a kill
            shutil.copytree(self.results, self.mirror / "results", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("dry_run"))


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(results: Path, device: str) -> dict:
    """The figures the issue asks for, from whatever JSON the steps wrote."""
    out = {}
    for tag in ("", "_b64", "_b1024"):
        data = _load(results / f"features{tag}_{device}.json")
        if not data:
            continue
        for row in data.get("rows", []):
            name = row["feature"]
            if name.startswith("FeatureExtractor") or name.startswith("harmonic"):
                key = f"batch {data['batch']}: {name}"
                out[key] = {"ms_per_batch": round(1e3 * row["ser_gpu_seconds_per_batch"], 2),
                            "x_realtime": round(row["ser_gpu_x_realtime"]),
                            **({"peak_gib": round(row["peak_memory_gib"], 3)} if "peak_memory_gib" in row else {})}
    prof = _load(results / f"profile_features_{device}.json")
    if prof:
        out["profile"] = {k: prof.get(k) for k in ("x_realtime_unprofiled", "aten_op_calls", "kernel_launches", "cuda_launch_calls",
                                                    "host_syncs", "sync_debug_warnings", "peak_memory_gib")}
    med = _load(results / f"median_{device}.json")
    if med:
        out["median"] = med.get("variants")
    tests = _load(results / "gpu_suite" / "pytest_cuda.json")
    if tests:
        out["cuda_tests"] = tests
    return out


def _junit_counts(xml_path: Path) -> dict:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return {}
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s
              if c.find("failure") is not None or c.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_ids"] = failed[:50]
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes: exercise every step briefly (dry run)")
    p.add_argument("--budget", type=float, default=None, help="overall seconds (default 360; 240 with --quick)")
    p.add_argument("--skip", default="", help="comma-separated step names to leave out")
    p.add_argument("--mirror", type=Path, default=None, help="copy the results directory here after every step")
    args = p.parse_args(argv)
    quick, dev = args.quick, args.device
    budget = args.budget or (240.0 if quick else 360.0)
    results = ROOT / "benchmarks" / "results" / ("dry_run" if quick else "")
    results.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SER_GPU_RESULTS=str(results), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [x for x in [env.get("PYTHONPATH")] if x])
    suite = Suite(results, dev, budget, env, args.mirror)
    skip = set(filter(None, args.skip.split(",")))
    t0 = time.monotonic()

    # --- optional reference packages from ./.whl, then one warm-up of librosa's numba cache
    wheels = ROOT / ".whl"
    if "wheels" not in skip and wheels.is_dir() and not _have("librosa", env):
        target = Path("/tmp/ser_gpu_site")
        ok = suite.run("wheels", [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                                  str(target), *sorted(map(str, wheels.glob("*.whl")))], timeout=120)
        if ok:
            env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
    have_librosa = _have("librosa", env)
    have_audiomentations = _have("audiomentations", env)
    if have_librosa and "warm_librosa" not in skip:
        suite.run("warm_librosa", [PY, "-c", "import numpy as np, librosa; y = np.random.default_rng(0)"
                                   ".standard_normal(22050).astype('float32'); librosa.feature.chroma_cqt(y=y, sr=22050);"
                                   " librosa.feature.chroma_stft(y=y, sr=22050); print('librosa numba cache warm')"],
                  timeout=120)

    # --- the steps, most important first (each writes its JSON as soon as it ends)
    junit = suite.logs / "pytest_cuda.xml"
    if quick:  # here: every CUDA test is collected (and skips without a GPU), and tests/cuda's CPU
        # float32 self-checks run (-k cuda selects both: the cuda ids and the tests/cuda module)
        tests = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "-k", "cuda", f"--junitxml={junit}"]
    else:
        tests = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests", "-rfE",
                 f"--junitxml={junit}"]
    def size(batch):  # the batch of a real run; tiny clips and one repeat in a dry run
        return ["--batch", "4", "--seconds", "1", "--repeats", "1"] if quick else ["--batch", str(batch)]

    lib_clips = ["--librosa-clips", ("1" if quick else "8") if have_librosa else "0"]
    few = ["--only", "FeatureExtractor,harmonic,stft"]
    steps = [
        ("pytest_cuda", tests, 170),
        ("features_b256", [PY, "benchmarks/bench_features.py", "--device", dev, *size(256), *lib_clips], 90),
        ("profile_features", [PY, "benchmarks/profile_features.py", "--device", dev,
                              *(["--batch", "4", "--seconds", "1"] if quick else ["--batch", "256"])], 45),
        ("median", [PY, "benchmarks/bench_median.py", "--device", dev, *(["--quick"] if quick else [])], 40),
        ("features_b64", [PY, "benchmarks/bench_features.py", "--device", dev, *size(64), "--tag", "b64",
                          "--librosa-clips", "0", *few], 30),
        ("features_b1024", [PY, "benchmarks/bench_features.py", "--device", dev, *size(1024), "--tag", "b1024",
                            "--librosa-clips", "0", *few], 45),
        ("augment", [PY, "benchmarks/bench_augment.py", "--device", dev,
                     "--ref-clips", ("1" if quick else "8") if have_audiomentations else "0",
                     *(["--batch", "4", "--seconds", "1"] if quick else [])], 45),
        ("train", [PY, "benchmarks/bench_train.py", "--device", dev,
                   *(["--clips", "16", "--seconds", "1", "--epochs", "1", "--skip-original"] if quick
                     else ["--clips", "1440", "--seconds", "3.5"])], 120),
        ("median_compile", [PY, "benchmarks/bench_median.py", "--device", dev, "--compile",
                            *(["--quick"] if quick else [])], 90),
    ]
    for name, cmd, timeout in steps:
        if name in skip:
            continue
        suite.run(name, cmd, timeout)
        if name == "pytest_cuda":
            (suite.logs / "pytest_cuda.json").write_text(json.dumps(_junit_counts(junit), indent=2) + "\n")
    figures = headline(results, dev)
    suite.save({"total_seconds": round(time.monotonic() - t0, 1), "librosa": have_librosa,
                "audiomentations": have_audiomentations, "headline": figures})

    print("\n==== gpu_suite summary ====")
    for s in suite.steps:
        print(f"{s['step']:18s} {s['status']:28s} {s['seconds']:7.1f} s   {s['log']}")
    print(json.dumps(figures, indent=1))
    print(f"total {time.monotonic() - t0:.1f} s; results under {results.relative_to(ROOT)}/")
    return 0 if all(s["status"] == "ok" for s in suite.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
