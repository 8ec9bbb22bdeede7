"""benchmarks/bench_model_step.py: both BiLSTM paths timed, their agreement reported, the setting restored."""

from __future__ import annotations

import json

import pytest

import ser_gpu.models.cnn_bilstm_attention as module


def test_the_model_step_benchmark_times_both_paths_and_restores_the_setting(tmp_path, capsys):
    from benchmarks import bench_model_step

    before = module.DENSE_LSTM_DEVICES
    out = tmp_path / "step.json"
    assert bench_model_step.main(["--device", "cpu", "--batch", "2", "--frames", "9", "--repeats", "1",
                                  "--out", str(out)]) == 0
    assert module.DENSE_LSTM_DEVICES == before
    r = json.loads(out.read_text())
    assert set(r["paths"]) == {"packed", "dense"} and r["default_path"] == "dense"
    for parts in r["paths"].values():
        assert all(parts[k]["median_ms"] > 0 for k in ("train_step", "eval_forward"))
    assert r["max_abs_logit_difference_float32"] < 1e-4 and r["frame_lengths"][0] == 9
    assert r["pooled_frames"] == 3 and "dense / packed" in capsys.readouterr().out
    assert r["max_abs_logit_difference_autocast"] is None  # no autocast on the CPU


@pytest.mark.parametrize("flag, value", [("--batch", "1"), ("--frames", "0"), ("--repeats", "0"), ("--threads", "0")])
def test_the_model_step_benchmark_refuses_bad_sizes(flag, value, capsys):
    from benchmarks import bench_model_step

    with pytest.raises(SystemExit) as exc:
        bench_model_step.main(["--device", "cpu", flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{flag} must be at least" in err and f"got {value}" in err


@pytest.mark.parametrize("device, message", [("foo", "--device must be cpu or cuda[:N], got 'foo'"),
                                             ("meta", "--device must be cpu or cuda[:N], got 'meta'")])
def test_the_model_step_benchmark_refuses_a_bad_device(device, message, capsys):
    from benchmarks import bench_model_step

    with pytest.raises(SystemExit) as exc:
        bench_model_step.main(["--device", device])
    assert exc.value.code == 2 and message in capsys.readouterr().err
