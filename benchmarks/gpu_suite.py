"""One command for a GPU session: the CUDA tests, the training benchmark and the feature benchmarks, saved as they go.

On the machine the device tool lends (after ``bash ../shared/gpu/fetch_wheels.sh`` here, which puts the
reference packages' wheels in ``./.whl``)::

    run(command='python3 benchmarks/gpu_suite.py --mirror "$OUT"', timeout_s=480, carry=['.whl'])

Here, before spending GPU time, the same steps at tiny sizes on the CPU (about 5-7 minutes on 2 cores)::

    python benchmarks/gpu_suite.py --device cpu --quick

Steps, in this order (``--skip a,b`` leaves some out), each in its own process group with its own time cap,
inside an overall budget (``--budget``, default 450 s, which a ``timeout_s=480`` call leaves room for):

====================  ====  ==========================================================================
step                  cap   what
====================  ====  ==========================================================================
wheels                 60   ``pip install --target /tmp/ser_gpu_site ./.whl/*.whl`` (only when ``./.whl``
                            holds wheels and librosa is not importable)
warm_librosa           90   librosa's numba functions compiled once, in one process: parallel first
                            compilations corrupt its cache (numba #10128; see ../shared/gpu/README.md)
pytest_cuda           170   ``pytest -m cuda tests`` (``-n 4`` when pytest-xdist is there), junit counts
train                 180   ``bench_train.py --device cuda --clips 1440 --seconds 3.5 --skip-original
                            --readme-job --memory --sync-report`` -> ``train_cuda.json`` (rewritten after
                            each of its parts)
model_step             60   ``bench_model_step.py --device cuda`` -> ``model_step_cuda.json``: the model's
                            training step and evaluation forward with the BiLSTM packed and dense
                            (issue 10's model step; the dense path is the CPU's, is it the GPU's too?)
features_b256 ...           the extractor benchmarks of issue 11 (batch 256, profile, median, batch 64 and
                            1024, augmentation, median with torch.compile), as long as the budget lasts
train_compile         120   the training benchmark again with ``--compile`` (torch.compile of the model),
                            2 epochs, no README job -> ``train_compile_cuda.json``: issue 10 asks whether
                            compiling the model step pays (last: it compiles for a minute or more)
====================  ====  ==========================================================================

A step is killed (with its children: xdist workers, torchrun, the README job) at its cap or when the budget
runs out; a step that finds under 10 s left is skipped. Logs go to ``<results>/gpu_suite/<step>.log``, each
benchmark writes its JSON under ``<results>/``, and ``gpu_suite_<device>.json`` (the step table and the
headline figures) is rewritten after every step. ``<results>`` is ``benchmarks/results`` for a real run and
``benchmarks/results/dry_run`` (git-ignored) with ``--quick``.

``--mirror DIR`` (the tool's ``$OUT``, which brings back at most 8 files) keeps two files there, replaced
atomically after every step and every 30 s during one: ``gpu_suite_<device>.json`` and
``gpu_suite_<device>.tar.gz``, which holds every file this run wrote under ``<results>`` (logs, junit XML,
JSON, the running step's log so far). What a killed run had finished is there.

Nothing here needs librosa, soundfile, soxr or audiomentations to run the CUDA tests (they compare with CPU
float64: tests/cuda); the benchmarks leave their reference columns null without them. The training
benchmark's README job writes and reads WAV files: it needs soundfile and soxr (from ``./.whl``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ser_gpu._atomic import save_json  # noqa: E402  (the JSON files, replaced atomically)

PY = sys.executable
MIRROR_EVERY = 30.0  # seconds between mirror refreshes while a step runs


def _have(module: str, env: dict) -> bool:
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([PY, "-c", code], env=env, cwd=ROOT, capture_output=True).returncode == 0


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the step and everything it started (its own session)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class Suite:
    def __init__(self, results: Path, device: str, budget: float, env: dict, mirror: Path = None):
        self.results, self.device, self.env, self.mirror = results, device, env, mirror
        self.logs = results / "gpu_suite"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.deadline = time.monotonic() + budget
        self.steps = []
        self.extra = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list, timeout: float, min_needed: float = 10.0) -> bool:
        """Run one step; True when it exited 0. Its cap is cut to what the budget has left."""
        limit = min(timeout, self.left())
        log = self.logs / f"{name}.log"
        if limit < min_needed:
            self._record(name, cmd, "skipped (budget spent)", 0.0, log)
            return False
        start = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(map(str, cmd))} (cap {limit:.0f} s)", flush=True)
        with open(log, "w") as fh:
            fh.write(f"$ {' '.join(map(str, cmd))}\n")
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            while True:
                remaining = start + limit - time.monotonic()
                try:
                    rc = proc.wait(timeout=max(0.1, min(MIRROR_EVERY, remaining)))
                    status = "ok" if rc == 0 else f"failed (exit {rc})"
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() - start >= limit:
                        _kill_group(proc)
                        status = f"timed out after {limit:.0f} s"
                        break
                    self.mirror_now()  # the running step's log so far
        self._record(name, cmd, status, time.monotonic() - start, log)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        print(f"    {status} in {time.monotonic() - start:.1f} s; " + " | ".join(t[:150] for t in tail), flush=True)
        return status == "ok"

    def _record(self, name, cmd, status, seconds, log):
        self.steps.append({"step": name, "status": status, "seconds": round(seconds, 1),
                           "command": " ".join(map(str, cmd)), "log": str(log.relative_to(ROOT))})
        self.save()

    def save(self, extra: dict = None):
        self.extra.update(extra or {})
        payload = {"device": self.device, "steps": self.steps,
                   "headline": headline(self.results, self.device, self.started - 1), **self.extra}
        save_json(self.results / f"gpu_suite_{self.device}.json", payload)  # atomic: a killed run leaves no half file
        self.mirror_now()

    def written(self) -> list:
        """The files under the results folder this run wrote (a real run's folder also holds committed ones)."""
        nested = {self.results / "dry_run"} if self.results.name != "dry_run" else set()
        return sorted(p for p in self.results.rglob("*") if p.is_file() and not (set(p.parents) & nested)
                      and p.stat().st_mtime >= self.started - 1)

    def mirror_now(self) -> None:
        """``gpu_suite_<device>.json`` and a tar.gz of :meth:`written` into the mirror, each replaced atomically."""
        if self.mirror is None:
            return
        self.mirror.mkdir(parents=True, exist_ok=True)
        summary = self.results / f"gpu_suite_{self.device}.json"
        archive = self.mirror / f"gpu_suite_{self.device}.tar.gz"
        tmp = archive.with_name(f".{archive.name}.tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in self.written():
                tar.add(path, arcname=str(path.relative_to(self.results)))
        os.replace(tmp, archive)
        if summary.exists():
            tmp = self.mirror / f".{summary.name}.tmp"
            shutil.copyfile(summary, tmp)
            os.replace(tmp, self.mirror / summary.name)


def _load_json(path: Path, since: float = 0.0):
    try:
        if path.stat().st_mtime < since:  # an earlier run's
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(results: Path, device: str, since: float = 0.0) -> dict:
    """The figures the issues ask for, from the JSON the steps wrote (files older than ``since``: not this run's)."""
    out = {}
    _load = functools.partial(_load_json, since=since)
    tests = _load(results / "gpu_suite" / "pytest_cuda.json")
    if tests:
        out["cuda_tests"] = tests
    train = _load(results / f"train_{device}.json")
    if train:
        sg = train.get("ser_gpu") or {}
        t = out["train"] = {k: sg.get(k) for k in (
            "first_epoch_seconds", "steady_epoch_seconds", "x_realtime", "data_path_share", "data_path_compute_share",
            "model_step_seconds_per_epoch", "steps", "chunk_size", "model_batch_shapes")}
        t["clips"], t["data_path_bytes_per_sample"] = train.get("clips"), train.get("data_path_bytes_per_sample")
        hs = sg.get("host_syncs") or {}
        if "training" in hs:
            t["host_syncs_per_step"] = {k: round(hs[k]["per_step"], 2) for k in ("training", "data")}
            t["host_sync_sites_training"] = dict(list(hs["training"]["sites"].items())[:8])
        job = train.get("readme_job")
        if job:
            out["readme_job"] = {k: job.get(k) for k in ("wall_seconds", "epochs", "first_epoch_seconds",
                                                         "steady_epoch_seconds", "test_uar", "seconds", "error")
                                 if k in job}
    compiled = _load(results / f"train_compile_{device}.json")
    if compiled:  # the same benchmark with torch.compile of the model: does it pay? (issue 10)
        sg = compiled.get("ser_gpu") or {}
        out["train_compile"] = {k: sg.get(k) for k in ("first_epoch_seconds", "steady_epoch_seconds",
                                                       "model_step_seconds_per_epoch", "compile")}
    step = _load(results / f"model_step_{device}.json")
    if step:  # packed vs dense BiLSTM: which should DENSE_LSTM_DEVICES hold? (issue 10's model step)
        out["model_step"] = {"ms": {path: {k: round(v["median_ms"], 2) for k, v in parts.items()}
                                    for path, parts in step.get("paths", {}).items()},
                             "dense_over_packed": step.get("dense_over_packed"),
                             "max_abs_logit_difference_float32": step.get("max_abs_logit_difference_float32")}
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
        out["profile"] = {k: prof.get(k) for k in ("x_realtime_unprofiled", "aten_op_calls", "kernel_launches",
                                                    "cuda_launch_calls", "host_syncs", "sync_debug_warnings",
                                                    "peak_memory_gib")}
    med = _load(results / f"median_{device}.json")
    if med:
        out["median"] = med.get("variants")
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
    p.add_argument("--budget", type=float, default=None, help="overall seconds (default 450; 420 with --quick)")
    p.add_argument("--skip", default="", help="comma-separated step names to leave out")
    p.add_argument("--mirror", type=Path, default=None,
                   help="keep gpu_suite_<device>.json and a tar.gz of what this run wrote here, refreshed as it goes")
    args = p.parse_args(argv)
    quick, dev = args.quick, args.device
    budget = args.budget or (420.0 if quick else 450.0)
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
        ok = suite.run("wheels", [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                                  "--target", str(target), *sorted(map(str, wheels.glob("*.whl")))], timeout=60)
        if ok:
            env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
    have_librosa = _have("librosa", env)
    have_audiomentations = _have("audiomentations", env)
    have_xdist = _have("xdist", env)
    have_soundfile = _have("soundfile", env) and _have("soxr", env)
    if not have_soundfile:  # ser_gpu.data imports them: the training tests are not collected, bench_train fails
        print("WARNING: soundfile/soxr missing: no training tests or benchmark (run ../shared/gpu/fetch_wheels.sh "
              "and carry .whl)", flush=True)
    suite.save({"librosa": have_librosa, "audiomentations": have_audiomentations, "xdist": have_xdist,
                "soundfile_soxr": have_soundfile})
    if have_librosa and "warm_librosa" not in skip:
        suite.run("warm_librosa", [PY, "-c", "import numpy as np, librosa; y = np.random.default_rng(0)"
                                   ".standard_normal(22050).astype('float32'); librosa.feature.chroma_cqt(y=y, sr=22050);"
                                   " librosa.feature.chroma_stft(y=y, sr=22050); print('librosa numba cache warm')"],
                  timeout=90)

    # --- the steps, in the order of the session's questions (each writes its JSON as soon as it can)
    junit = suite.logs / "pytest_cuda.xml"
    junit.unlink(missing_ok=True)  # an earlier run's: a killed pytest writes none
    if quick:  # here: every CUDA test is collected (and skips without a GPU), and tests/cuda's CPU
        # float32 self-checks run (-k cuda selects both: the cuda ids and the tests/cuda module)
        tests = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "-k", "cuda", f"--junitxml={junit}"]
    else:  # -v: the log names each test as it ends, so a killed run still says how far it got
        tests = [PY, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", "cuda", "tests", "-rfE",
                 "--durations=15", f"--junitxml={junit}", *(["-n", "4", "--dist", "loadfile"] if have_xdist else [])]

    def size(batch):  # the batch of a real run; tiny clips and one repeat in a dry run
        return ["--batch", "4", "--seconds", "1", "--repeats", "1"] if quick else ["--batch", str(batch)]

    lib_clips = ["--librosa-clips", ("1" if quick else "8") if have_librosa else "0"]
    few = ["--only", "FeatureExtractor,harmonic,stft"]
    train = [PY, "benchmarks/bench_train.py", "--device", dev, "--skip-original", "--readme-job", "--memory",
             "--sync-report",
             *(["--clips", "16", "--seconds", "1", "--epochs", "2", "--readme-epochs", "1"] if quick
               else ["--clips", "1440", "--seconds", "3.5"])]
    steps = [
        ("pytest_cuda", tests, 170),
        ("train", train, 180),
        ("model_step", [PY, "benchmarks/bench_model_step.py", "--device", dev,
                        *(["--repeats", "2", "--frames", "40"] if quick else [])], 60),
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
        ("median_compile", [PY, "benchmarks/bench_median.py", "--device", dev, "--compile",
                            *(["--quick"] if quick else [])], 90),
        ("train_compile", [PY, "benchmarks/bench_train.py", "--device", dev, "--skip-original", "--compile",
                           "--out", str(results / f"train_compile_{dev}.json"),
                           *(["--clips", "16", "--seconds", "1", "--epochs", "2"] if quick
                             else ["--clips", "1440", "--seconds", "3.5", "--epochs", "2"])], 120),
    ]
    for name, cmd, timeout in steps:
        if name in skip:
            continue
        suite.run(name, cmd, timeout)
        if name == "pytest_cuda":
            counts = _junit_counts(junit) or {"error": "no junit XML: pytest was killed or crashed (see its log)"}
            save_json(suite.logs / "pytest_cuda.json", counts)
            suite.save()
    suite.save({"total_seconds": round(time.monotonic() - t0, 1)})

    print("\n==== gpu_suite summary ====")
    for s in suite.steps:
        print(f"{s['step']:18s} {s['status']:28s} {s['seconds']:7.1f} s   {s['log']}")
    print(json.dumps(headline(results, dev, suite.started - 1), indent=1))
    print(f"total {time.monotonic() - t0:.1f} s; results under {results.relative_to(ROOT)}/"
          + (f"; mirrored to {args.mirror}" if args.mirror else ""))
    return 0 if all(s["status"] == "ok" for s in suite.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
