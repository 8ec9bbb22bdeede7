"""The declared dependencies are exactly what ser_gpu imports, and every extra's packages load.

A fresh ``pip install -e ".[test]"`` used to pull torchaudio 2.11.1, which cannot load its library
beside torch 2.11.0; nnAudio and torchaudio were runtime dependencies used only by benchmarks, and
scipy was imported but not declared.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: subpackages that may import an optional extra's packages (imported only when that part is used)
OPTIONAL_PARTS = {"app": "app"}
#: imported only after checking it is there: Triton ships with torch's CUDA builds, and without it the
#: fused kernels (ser_gpu/kernels) fall back to the eager code
ACCELERATORS = {"triton"}


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _import_names(dist: str) -> set:
    """Top-level import names a distribution provides (from its installed metadata)."""
    mapping = md.packages_distributions()
    names = {mod for mod, dists in mapping.items() if any(d.lower().replace("_", "-") == dist for d in dists)}
    return names or {dist.replace("-", "_")}


def _guarded(node, parents) -> bool:
    """Inside ``try: ... except ImportError`` (an optional accelerator such as triton)."""
    for parent in parents.get(node, []):
        if isinstance(parent, ast.Try):
            for handler in parent.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
    return False


def _imports(paths, *, guarded: bool = False) -> set:
    """Top-level modules imported by ``paths``; ``guarded``: also those under ``except ImportError``."""
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        parents = {}
        stack = [(tree, [])]
        while stack:
            node, chain = stack.pop()
            parents[node] = chain
            for child in ast.iter_child_nodes(node):
                stack.append((child, [node] + chain))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            if guarded or not _guarded(node, parents):
                found.update(m.split(".")[0] for m in mods)
    return found - set(sys.stdlib_module_names) - {"ser_gpu", "__future__"}


def _package_files(part=None):
    files = sorted((ROOT / "ser_gpu").rglob("*.py"))
    if part is None:
        return [f for f in files if f.relative_to(ROOT / "ser_gpu").parts[0] not in OPTIONAL_PARTS]
    return [f for f in files if f.relative_to(ROOT / "ser_gpu").parts[0] == part]


def test_runtime_dependencies_are_what_the_package_imports():
    declared = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    provided = {name: dist for dist in declared for name in _import_names(dist)}
    imported = _imports(_package_files())
    missing = sorted(imported - set(provided) - ACCELERATORS)
    assert not missing, f"ser_gpu imports {missing} but pyproject.toml's dependencies do not declare them"
    imported_at_all = _imports(_package_files(), guarded=True)
    unused = sorted(d for d in declared if not (_import_names(d) & imported_at_all))
    assert not unused, f"pyproject.toml declares {unused} but ser_gpu never imports them at run time"


def test_optional_parts_import_only_runtime_or_their_extra():
    runtime = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    for part, extra in OPTIONAL_PARTS.items():
        files = _package_files(part)
        if not files:
            continue
        allowed = runtime | {_dist_name(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]}
        names = {name for dist in allowed for name in _import_names(dist)}
        stray = sorted(_imports(files) - names)
        assert not stray, f"ser_gpu/{part} imports {stray}, declared neither at run time nor in the {extra!r} extra"


def test_benchmark_only_packages_are_not_runtime_dependencies():
    runtime = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not runtime & {"torchaudio", "nnaudio", "librosa", "audiomentations"}
    bench = {_dist_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["bench"]}
    assert {"torchaudio", "nnaudio"} <= bench


def test_bench_extra_loads_with_the_pinned_torch():
    if importlib.util.find_spec("torchaudio") is None or importlib.util.find_spec("nnAudio") is None:
        pytest.skip("the 'bench' extra is not installed (pip install -e '.[bench]'); .ci/run installs it")
    # a fresh interpreter: torchaudio loads its compiled library on import of its submodules
    code = "import torch, torchaudio, torchaudio.transforms, nnAudio.features; print(torch.__version__, torchaudio.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the bench extra does not load: {proc.stderr.strip().splitlines()[-1:]}"
    torch_v, audio_v = (v.split("+")[0] for v in proc.stdout.split())
    assert torch_v.split(".")[:2] == audio_v.split(".")[:2], proc.stdout


def test_every_declared_runtime_package_is_installed_and_imports():
    for req in PYPROJECT["project"]["dependencies"]:
        dist = _dist_name(req)
        md.version(dist)  # raises PackageNotFoundError when not installed
        for name in _import_names(dist):
            importlib.import_module(name)


def test_models_and_checkpoint_do_not_import_each_other_in_a_loop():
    code = ("import sys, ser_gpu.models; "
            "print('ser_gpu.checkpoint' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "importing ser_gpu.models pulled in ser_gpu.checkpoint"


def test_one_root_exception():
    from ser_gpu import errors

    for cls, builtin in ((errors.ParameterError, ValueError), (errors.AudioLoadError, OSError),
                         (errors.CheckpointError, RuntimeError), (errors.TrainingDiverged, RuntimeError),
                         (errors.DependencyError, RuntimeError)):
        assert issubclass(cls, errors.SerGpuError) and issubclass(cls, builtin)
    with pytest.raises(errors.SerGpuError, match="x.wav"):
        raise errors.AudioLoadError("x.wav", "empty")


def test_layers_use_functional_through_its_public_api_or_the_unchecked_tier():
    """Outside ser_gpu/functional, no module imports functional's private names: transforms go
    through the public functions or ``functional.unchecked`` (the one tier that skips validation).
    The fused kernels share the eager median's selection network, so ser_gpu/kernels may."""
    offenders = []
    for path in sorted((ROOT / "ser_gpu").rglob("*.py")):
        rel = path.relative_to(ROOT / "ser_gpu")
        if rel.parts[0] in ("functional", "kernels"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and "functional" in node.module.split("."):
                offenders += [f"{rel}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not offenders, offenders
