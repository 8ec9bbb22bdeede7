"""ser_gpu._cli: one device rule, one extension list and one file-finding rule for every command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_gpu import _cli, features, media, predict, video
from ser_gpu._cli import NoMatchingFiles, check_output_dir, check_output_file, find_files, resolve_device
from ser_gpu.data import scan_corpus
from ser_gpu.errors import ParameterError
from tests.conftest import non_utf8_path, touch




@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    files = [touch(root / "b.wav"), touch(root / "A.FLAC"), touch(root / "sub" / "deep" / "c.m4a"),
             touch(root / "sub" / "clip.mp4")]
    touch(root / "notes.txt")
    os.symlink(root, root / "sub" / "loop")  # a directory cycle
    os.symlink(root / "self.wav", root / "self.wav")  # a link to itself
    os.symlink(root / "gone.wav", root / "dangling.wav")
    return root, files


def test_one_rule_recursive_sorted_loop_safe(tree):
    root, files = tree
    audio = find_files([root])
    assert audio == sorted([files[0], files[1], files[2]])  # no txt, no video, loop and dangling links passed over
    both = find_files([root], predicate=_cli.is_media, what="audio or video")
    assert both == sorted(files)
    top = find_files([root], recursive=False)
    assert top == sorted([files[0], files[1]])


def test_files_are_taken_as_given_and_listed_once(tree):
    root, files = tree
    txt = root / "notes.txt"
    assert find_files([txt, root, files[0]]) == [txt] + sorted(files[:3])  # b.wav again: listed once
    # each file with the argument that reached it first: c.m4a by its folder, given before root
    deep = files[2].parent
    assert _cli.find_files_with_origin([deep, root, files[0]]) == [(files[2], 0)] + [
        (f, 1) for f in sorted(files[:2])]


def test_errors_name_the_path(tree, tmp_path):
    root, _ = tree
    empty = tmp_path / "empty"
    touch(empty / "readme.txt")
    with pytest.raises(NoMatchingFiles, match="no audio files found") as info:
        find_files([root, empty])
    assert str(empty) in str(info.value) and info.value.directory == empty
    with pytest.raises(ParameterError, match="does not exist"):
        find_files([tmp_path / "missing"])
    with pytest.raises(ParameterError, match="looping symbolic link"):
        find_files([root / "self.wav"])
    with pytest.raises(ParameterError, match="at least one"):
        find_files([])


def test_every_command_uses_the_one_finder(tree, tmp_path):
    root, files = tree
    assert features.find_audio([root]) == find_files([root])
    assert predict.find_media([root]) == find_files([root], predicate=_cli.is_media)
    assert video.find_videos(root / "sub") == [files[3]]
    ravdess = touch(tmp_path / "corpus" / "Actor_01" / "03-01-05-01-01-01-01.m4a")
    os.symlink(tmp_path / "corpus", tmp_path / "corpus" / "Actor_01" / "up")
    assert [c.path for c in scan_corpus([tmp_path / "corpus"])] == [ravdess]
    # the one rule: every directory given must hold a matching file, scan_corpus included
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ParameterError, match="nothing"):
        scan_corpus([tmp_path / "corpus", tmp_path / "nothing"])


def test_extensions_live_in_one_place():
    assert media.AUDIO_EXTENSIONS is _cli.AUDIO_EXTENSIONS and features.AUDIO_EXTENSIONS is _cli.AUDIO_EXTENSIONS
    assert media.VIDEO_EXTENSIONS is _cli.VIDEO_EXTENSIONS
    assert media.is_media is _cli.is_media and media.is_video is _cli.is_video


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError, match="'gpu'"):
        resolve_device("gpu")
    for named in ("meta", "xpu", "mps"):  # torch names them; the tools failed on them mid-work
        with pytest.raises(ParameterError, match=f"device must be 'auto', 'cpu' or 'cuda\\[:N\\]', got '{named}'"):
            resolve_device(named)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA device"):
            resolve_device("cuda")


def test_output_checks_leave_nothing_behind(tmp_path):
    assert check_output_file(tmp_path / "x.png") == tmp_path / "x.png"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParameterError, match="does not exist"):
        check_output_file(tmp_path / "no" / "x.png", argument="--plot")
    with pytest.raises(ParameterError, match="is a directory"):
        check_output_file(tmp_path)
    check_output_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()  # created for the check, removed again
    touch(tmp_path / "f")
    with pytest.raises(ParameterError, match="must be a directory"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(ParameterError, match="cannot be created"):
        check_output_dir(tmp_path / "f" / "sub")


def test_an_empty_path_is_refused_not_read_as_the_current_directory(tmp_path, monkeypatch):
    # `predict "$UNSET"` used to predict every media file under the working directory
    (tmp_path / "a.wav").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match="input must be a file or directory path, got an empty string"):
        find_files([""])
    with pytest.raises(ParameterError, match="empty string"):
        find_files([str(tmp_path), ""])


ROOT = Path(__file__).resolve().parents[1]


def test_run_main_lets_stdout_print_any_file_name(monkeypatch):
    """A strict stdout (an en_US.UTF-8 locale) raised UnicodeEncodeError on a name that is not UTF-8;
    under run_main a UTF-8 one writes the name's own bytes (what a script reading the output needs),
    another encoding backslash escapes (raw bytes would garble UTF-16 or EBCDIC); a closed stdout or
    another handler is left as it was."""
    name = os.fsdecode(b"caf\xe9.npy")
    for encoding, expected in (("utf-8", b"caf\xe9.npy \xe2\x98\x83 x\\ud800\n"),
                               ("utf-8-sig", b"caf\xe9.npy \xe2\x98\x83 x\\ud800\n"),
                               ("ascii", b"caf\\udce9.npy \\u2603 x\\ud800\n"),
                               ("utf-16-le", "caf\\udce9.npy \u2603 x\\ud800\n".encode("utf-16-le")),
                               ("cp037", "caf\\udce9.npy \\u2603 x\\ud800\n".encode("cp037"))):
        raw = io.BytesIO()
        strict = io.TextIOWrapper(raw, encoding=encoding, errors="strict")
        monkeypatch.setattr(sys, "stdout", strict)
        with pytest.raises(UnicodeEncodeError):
            print(name, flush=True)
        assert _cli.run_main(lambda: print(name, "\u2603", "x\ud800") or 7) == 7
        strict.flush()
        assert raw.getvalue().endswith(expected), raw.getvalue()
    for stream in (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape"),
                   io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")):
        before = stream.errors
        monkeypatch.setattr(sys, "stdout", stream)
        assert _cli.run_main(lambda: 0) == 0 and stream.errors == before
    closed = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    closed.close()
    detached = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    detached.detach()
    for stream in (closed, detached):
        monkeypatch.setattr(sys, "stdout", stream)
        assert _cli.run_main(lambda: 3) == 3

    class GonePipe(io.RawIOBase):  # the reader has gone: reconfigure's flush of earlier output fails
        gone = True

        def writable(self):
            return True

        def write(self, b):
            if self.gone:
                raise BrokenPipeError(32, "Broken pipe")
            return len(b)

    raw = GonePipe()
    stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")
    stream.write("written before main")
    monkeypatch.setattr(sys, "stdout", stream)
    assert _cli.run_main(lambda: 4) == 4  # main still runs
    raw.gone = False


def test_readable_escapes_only_the_bytes_that_are_not_utf8():
    assert _cli.readable(os.fsdecode(b"caf\xe9 \xff.wav")) == "caf\\xe9 \\xff.wav"
    assert _cli.readable("café ☃.wav") == "café ☃.wav"
    assert _cli.readable("x\ud800") == "x\\ud800"  # a surrogate no file name holds: escaped, no error
    assert _cli.readable(os.fsdecode(b"\xe9") + "\ud800\u2603" + os.fsdecode(b"\xff\xfe")) == "\\xe9\\ud800\u2603\\xff\\xfe"


def test_run_main_prints_the_commands_own_warnings_as_warning_lines(capsys, monkeypatch):
    """A command's warnings printed in Python's format (``.../evaluate.py:210: UserWarning: skipped ...`` and the
    source line under it); under run_main ser_gpu's own UserWarning/RuntimeWarning are ``warning: message``
    lines, others (another category, another package's) go to the handler there was before, which is back
    afterwards."""
    import warnings

    ours = str(ROOT / "ser_gpu" / "evaluate.py")
    passed_on = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, *rest: passed_on.append(
        (str(message), category, filename)))
    before = warnings.showwarning

    def main():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn_explicit("skipped 1 of 5 audio file(s)", UserWarning, ours, 210)
            warnings.warn_explicit("fade too long", RuntimeWarning, ours, 1)
            warnings.warn_explicit("deprecated thing", DeprecationWarning, ours, 2)
            warnings.warn_explicit("from elsewhere", UserWarning, "/somewhere/torch/nn/modules/rnn.py", 3)
        return 0

    assert _cli.run_main(main) == 0
    err = capsys.readouterr().err
    assert err == "warning: skipped 1 of 5 audio file(s)\nwarning: fade too long\n", err
    assert passed_on == [("deprecated thing", DeprecationWarning, ours),
                         ("from elsewhere", UserWarning, "/somewhere/torch/nn/modules/rnn.py")]
    assert warnings.showwarning is before


def test_errors_about_an_option_name_its_flag(tmp_path, capsys):
    """The library names its parameters (batch_size, n_folds): a command's error puts the flag the user typed
    first, where the message opens with the name of one of its options, and leaves other messages alone."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--folds", dest="n_folds", type=int)
    parser.add_argument("-o", "--out")
    parser.add_argument("paths", nargs="*")
    for message, shown in [
        ("batch_size must be a positive integer, got 0", "--batch-size: batch_size must be a positive integer, got 0"),
        ("n_folds=2 is too few", "--folds: n_folds=2 is too few"),
        ("out directory 'x' holds a run", "--out: out directory 'x' holds a run"),
        ("paths must not be empty", "paths must not be empty"),  # a positional: no flag to name
        ("batch_sizes differ", "batch_sizes differ"), ("data directory 'd' does not exist", "data directory 'd' "
                                                                                           "does not exist"),
    ]:
        assert _cli.option_error(ParameterError(message), parser) == shown
    flags = _cli.option_flags(parser)
    assert flags == {"help": "--help", "batch_size": "--batch-size", "n_folds": "--folds", "out": "--out"}
    assert _cli.with_flags(["n_folds", "paths", "lr"], flags) == ["n_folds (--folds)", "paths", "lr"]
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(4000, dtype=np.float32), 16000)
    assert features.main([str(wav), "--out", str(tmp_path / "o"), "--batch-size", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == "error: --batch-size: batch_size must be a positive integer, got 0\n"


@pytest.mark.parametrize("module", ["ser_gpu.__main__", "ser_gpu.train", "ser_gpu.crossval", "ser_gpu.evaluate",
                                    "ser_gpu.predict", "ser_gpu.features", "ser_gpu.video"])
def test_every_command_runs_through_run_main(module):
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert source.endswith('if __name__ == "__main__":\n    sys.exit(run_main(main))\n')


def test_the_features_command_with_names_that_are_not_utf8(tmp_path):
    """End to end, as a user in a UTF-8 locale runs it, with two files of one stem (their outputs take
    a hash of the path: it hashed the path's str as UTF-8 and crashed before any work): the rows are
    written, the report printed, and a second run keeps both."""
    d = non_utf8_path(tmp_path, b"audio\xff", is_dir=True)
    rng = np.random.default_rng(0)
    for name in (b"caf\xe9.wav", b"caf\xe9.flac"):
        sf.write(os.fsencode(non_utf8_path(d, name)), 0.1 * rng.standard_normal(11025), 22050)
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "ser_gpu.features", str(d), "--out", str(tmp_path / "out"), "--no-tonnetz"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"2 written" in proc.stdout and proc.stdout.count(b"/caf\xe9-") == 2, proc.stdout  # the names' bytes
    outputs = sorted(os.listdir(os.fsencode(tmp_path / "out")))
    assert len(outputs) == 3 and outputs[-1] == b"summary.json" and all(o.startswith(b"caf\xe9-") for o in outputs[:2])
    assert all(np.load(os.fsencode(tmp_path / "out") + b"/" + o).shape[0] == 68 for o in outputs[:2])
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True)
    assert again.returncode == 0 and b"0 written, 2 kept" in again.stdout, again.stdout
