"""``python -m ser_gpu``: the overview and the dispatch to each command's main."""

import importlib
import subprocess
import sys

import pytest

from ser_gpu import __main__ as entry


def test_every_command_names_a_module_with_main():
    for name, (module, text) in entry.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name
        assert text and name in entry.usage()


@pytest.mark.parametrize("argv", [[], ["-h"], ["--help"]])
def test_overview(argv, capsys):
    assert entry.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m ser_gpu COMMAND") and "crossval" in out


def test_unknown_command_is_refused_by_name(capsys):
    assert entry.main(["trian", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "train" in err


def test_dispatch_hands_over_the_rest_and_the_status(monkeypatch):
    import ser_gpu.video as video

    seen = []
    monkeypatch.setattr(video, "main", lambda argv: seen.append(list(argv)) or 7)
    assert entry.main(["video", "in dir", "out", "--overwrite"]) == 7
    assert seen == [["in dir", "out", "--overwrite"]]


def test_python_dash_m(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ser_gpu", "video", str(tmp_path / "missing"), str(tmp_path / "o")],
                         capture_output=True, text=True)
    direct = subprocess.run([sys.executable, "-m", "ser_gpu.video", str(tmp_path / "missing"),
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode == direct.returncode != 0
    assert run.stderr == direct.stderr and "missing" in run.stderr
