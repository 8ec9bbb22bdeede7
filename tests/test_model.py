"""CNNBiLSTMAttention: shapes, exact padding invariance, edge lengths, gradients, bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from ser_gpu.errors import ParameterError
from ser_gpu.models import CNNBiLSTMAttention, ModelConfig
from ser_gpu.models.cnn_bilstm_attention import _MaskedBatchNorm1d
from tests.conftest import needs_cuda

# small enough to run in milliseconds; same structure as the default (3 blocks, 2 pools, BiLSTM, MHA)
SMALL = ModelConfig(channels=(16, 24, 32), lstm_hidden=8, lstm_layers=2, attention_heads=4, classifier_hidden=12)
# with every dropout off, training mode is deterministic and can be compared too
SMALL_NO_DROPOUT = dataclasses.replace(SMALL, lstm_dropout=0.0, attention_dropout=0.0, dropout=0.0)


def _model(config=SMALL, *, device="cpu", dtype=torch.float32, seed=0, train=False):
    torch.manual_seed(seed)
    model = CNNBiLSTMAttention(config).to(device=device, dtype=dtype)
    # move the batch norms' running statistics away from (0, 1) so that a mistake in them shows
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.train(train)


def _features(batch, frames, *, device="cpu", dtype=torch.float32, seed=1, input_dim=68):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, input_dim, frames, generator=g, dtype=dtype).to(device)


def _pad(x, frames, value=0.0):
    out = torch.full((*x.shape[:-1], frames), value, dtype=x.dtype, device=x.device)
    out[..., : x.shape[-1]] = x
    return out


# ---------------------------------------------------------------------------------------------- shapes


def test_default_output_shape(device):
    model = _model(ModelConfig(), device=device)
    x = _features(3, 20, device=device)
    with torch.no_grad():
        assert model(x).shape == (3, 8)
        assert model(x, torch.tensor([20, 7, 1], device=device)).shape == (3, 8)


def test_default_architecture():
    model = CNNBiLSTMAttention()
    c = model.config
    assert (c.input_dim, c.n_classes, c.channels) == (68, 8, (128, 256, 512))
    assert [b.conv.out_channels for b in model.blocks] == [128, 256, 512]
    assert (model.lstm.hidden_size, model.lstm.num_layers, model.lstm.bidirectional) == (256, 3, True)
    assert model.lstm.dropout == pytest.approx(0.3)
    assert (model.attention.embed_dim, model.attention.num_heads) == (512, 8)
    assert model.classifier[0].in_features == 512 and model.classifier[0].out_features == 256
    assert model.classifier[-1].out_features == 8


def test_n_classes_and_input_dim(device):
    model = _model(dataclasses.replace(SMALL, n_classes=5, input_dim=10), device=device)
    with torch.no_grad():
        assert model(_features(2, 9, device=device, input_dim=10)).shape == (2, 5)


@pytest.mark.parametrize("n_blocks", [1, 2, 4])
def test_other_block_counts(n_blocks):
    model = _model(dataclasses.replace(SMALL, channels=(8,) * n_blocks))
    x = _features(2, 11)
    with torch.no_grad():
        full = model(x)
        assert full.shape == (2, 8)
        torch.testing.assert_close(model(_pad(x, 19), torch.tensor([11, 11])), full, rtol=0, atol=1e-5)


def test_output_frame_lengths():
    model = CNNBiLSTMAttention(SMALL)  # two pools between three blocks
    lengths = torch.arange(1, 40)
    expected = torch.tensor([math.ceil(math.ceil(n / 2) / 2) for n in range(1, 40)])
    assert torch.equal(model.output_frame_lengths(lengths), expected)


# ------------------------------------------------------------------------------------ padding invariance


def _check_invariance(model, clip, *, atol):
    """Logits of ``clip`` (1, D, L) alone == padded with zeros/garbage == next to a longer clip."""
    L = clip.shape[-1]
    device = clip.device
    with torch.no_grad():
        alone = model(clip)
        lengths = torch.tensor([L], device=device)
        zeros = model(_pad(clip, L + 13), lengths)
        garbage = _pad(clip, L + 6, value=0.0)
        garbage[..., L:] = 1e3  # e.g. normalize='padded' features: padding must be ignored, not just be 0
        garbage = model(garbage, lengths)
        longer = _features(1, L + 21, device=device, dtype=clip.dtype, seed=7)
        batch = torch.cat([_pad(clip, L + 21), longer])
        both = model(batch, torch.tensor([L, L + 21], device=device))
        longer_alone = model(longer)
    for other in (zeros, garbage, both[:1]):
        torch.testing.assert_close(other, alone, rtol=0, atol=atol)
    torch.testing.assert_close(both[1:], longer_alone, rtol=0, atol=atol)


def test_padding_invariance_default_model(device):
    model = _model(ModelConfig(), device=device)
    _check_invariance(model, _features(1, 23, device=device), atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 17])
def test_padding_invariance_small_model(dtype, length):
    model = _model(SMALL, dtype=dtype)
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    _check_invariance(model, _features(1, length, dtype=dtype), atol=atol)


def test_batch_of_edge_lengths(device):
    """1-frame, even and odd lengths side by side each give their own single-clip logits."""
    model = _model(SMALL, device=device)
    lengths = [1, 2, 3, 4, 5, 7, 9]
    x = _features(len(lengths), 9, device=device)
    with torch.no_grad():
        out = model(x, torch.tensor(lengths, device=device))
        assert torch.isfinite(out).all()
        for i, n in enumerate(lengths):
            torch.testing.assert_close(out[i : i + 1], model(x[i : i + 1, :, :n]), rtol=0, atol=1e-5)
        one = model(_features(3, 1, device=device))  # all clips a single frame
        assert one.shape == (3, 8) and torch.isfinite(one).all()


def test_frame_lengths_none_equals_full_lengths():
    model = _model(SMALL)
    x = _features(3, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor([10, 10, 10])), model(x), rtol=0, atol=1e-6)
        # frame_lengths may come as a list or on the CPU with any integer dtype
        torch.testing.assert_close(model(x, [10, 4, 1]), model(x, torch.tensor([10, 4, 1], dtype=torch.int32)))


def test_training_mode_ignores_padding_too():
    """Conv batch norm takes its batch statistics over valid frames: extra padding changes nothing."""
    x = _features(3, 12)
    lengths = torch.tensor([12, 5, 1])
    outputs, stats = [], []
    for frames in (12, 30):
        model = _model(SMALL_NO_DROPOUT, train=True)
        outputs.append(model(_pad(x, frames, value=5.0), lengths))
        stats.append([b.bn.running_var.clone() for b in model.blocks] + [b.bn.running_mean.clone() for b in model.blocks])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-5)
    for a, b in zip(stats[1], stats[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_masked_batch_norm_equals_batch_norm_without_padding(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 9, generator=g, dtype=dtype) * 3 + 1
    ours, ref = _MaskedBatchNorm1d(6).to(dtype), nn.BatchNorm1d(6).to(dtype)
    with torch.no_grad():
        for bn in (ours, ref):
            bn.weight.copy_(torch.linspace(0.5, 2, 6))
            bn.bias.copy_(torch.linspace(-1, 1, 6))
    full = torch.ones(4, 1, 9, dtype=torch.bool)
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    for _ in range(2):
        torch.testing.assert_close(ours(x, full), ref(x), rtol=0, atol=atol)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=0, atol=atol)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=0, atol=atol)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 2
    # with padding: statistics of the valid frames only, i.e. plain BN on those frames laid side by side
    mask = torch.tensor([9, 4, 1, 6])[:, None] > torch.arange(9)
    valid = torch.cat([x[i, :, mask[i]] for i in range(4)], dim=-1).unsqueeze(0)
    out = _MaskedBatchNorm1d(6).to(dtype).train()(x, mask[:, None, :])
    expected = nn.BatchNorm1d(6).to(dtype).train()(valid)
    torch.testing.assert_close(torch.cat([out[i, :, mask[i]] for i in range(4)], -1).unsqueeze(0), expected,
                               rtol=0, atol=atol)


# ------------------------------------------------------------------------------------------- gradients


def test_gradients_flow(device):
    model = _model(SMALL, device=device, train=True)
    x = _features(3, 14, device=device).requires_grad_()
    lengths = torch.tensor([14, 6, 1], device=device)
    loss = nn.functional.cross_entropy(model(x, lengths), torch.tensor([0, 3, 7], device=device))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    mask = torch.arange(14, device=device) < lengths[:, None]
    assert (x.grad.abs().sum(1)[mask] > 0).all()  # every valid frame matters
    assert torch.equal(x.grad.abs().sum(1)[~mask], torch.zeros_like(x.grad.abs().sum(1)[~mask]))  # padding not


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_lstm_equals_torch_unsorted_packing(dtype):
    """The LSTM packed with host-made sort orders gives exactly what pack_padded_sequence(enforce_sorted=
    False) and pad_packed_sequence give (the same sort), values and gradients, ties and a full length too."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = _model(SMALL_NO_DROPOUT, dtype=dtype, train=True)
    lengths = torch.tensor([5, 3, 5, 1, 7, 7, 2])
    h = torch.randn(7, 7, SMALL.channels[-1], dtype=dtype, generator=torch.Generator().manual_seed(3))
    grads = []
    for path in ("ours", "torch"):
        model.zero_grad()
        x = h.clone().requires_grad_()
        if path == "ours":
            out = model._packed_lstm(x, lengths)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(model.lstm(packed)[0], batch_first=True, total_length=7)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)).sum().backward()
        grads.append((out.detach(), x.grad, [p.grad.clone() for p in model.lstm.parameters()]))
    (ours, gx, gw), (ref, rx, rw) = grads
    assert torch.equal(ours, ref) and torch.equal(gx, rx)
    assert all(torch.equal(a, b) for a, b in zip(gw, rw))
    assert torch.equal(ours[3, 1:], torch.zeros_like(ours[3, 1:]))  # past a clip's frames: zeros, as torch's


def _lstm_paths(monkeypatch, device):
    """Set the LSTM path of the model on ``device``: yields 'packed', then 'dense' (DENSE_LSTM_DEVICES)."""
    import ser_gpu.models.cnn_bilstm_attention as module

    for path, devices in (("packed", ()), ("dense", (torch.device(device).type,))):
        monkeypatch.setattr(module, "DENSE_LSTM_DEVICES", devices)
        yield path


def _close(ours, ref, rel):
    """|ours - ref| <= rel * max |ref| (gradients whose true value is 0, e.g. a bias before a batch norm,
    are rounding noise on either path: they are held to the scale of the tensor, not to themselves)."""
    torch.testing.assert_close(ours, ref, rtol=0, atol=rel * max(float(ref.abs().max()), 1e-3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_lstm_equals_the_packed_lstm(device, dtype):
    """_dense_lstm (each direction over the padded batch, the backward one over each clip reversed within its
    frames) gives what _packed_lstm gives: values and gradients (input and LSTM weights), zeros past each
    clip's frames; lengths with ties, 1 and the full length. Tolerance: the model's (1e-5 float32, 1e-12
    float64), relative to each tensor's scale: the two paths sum in different orders."""
    if device == "cuda" and dtype == torch.float64:
        pytest.skip("cuDNN float64 LSTM: the float32 case covers the device")
    model = _model(SMALL_NO_DROPOUT, device=device, dtype=dtype, train=True)
    lengths = torch.tensor([5, 3, 5, 1, 9, 7, 7])
    h = torch.randn(7, 9, SMALL.channels[-1], dtype=dtype, generator=torch.Generator().manual_seed(3)).to(device)
    h[3, 1:] = float("nan")  # a non-finite value in the padding reaches neither the outputs nor the gradients
    results = {}
    for path in ("packed", "dense"):
        model.zero_grad()
        x = h.clone().requires_grad_()
        out = model._packed_lstm(x, lengths) if path == "packed" else model._dense_lstm(x, lengths.to(device))
        weights = torch.linspace(-1, 1, out.numel(), dtype=dtype, device=device).reshape(out.shape)
        (out * weights).sum().backward()
        results[path] = (out.detach(), x.grad, [p.grad.clone() for p in model.lstm.parameters()])
    rel = 1e-12 if dtype == torch.float64 else 1e-5
    (ours, gx, gw), (ref, rx, rw) = results["dense"], results["packed"]
    _close(ours, ref, rel)
    _close(gx, rx, rel)
    for a, b in zip(gw, rw):
        _close(a, b, rel)
    mask = (torch.arange(9) < lengths[:, None]).to(device)
    assert torch.equal(ours[~mask], torch.zeros_like(ours[~mask]))  # past a clip's frames: zeros
    assert torch.equal(gx[~mask], torch.zeros_like(gx[~mask]))  # and nothing flows from them


def test_the_model_gives_the_same_logits_and_gradients_on_either_lstm_path(device, monkeypatch):
    """The whole model, a training step's forward and backward (dropout off) and eval logits: the dense
    path equals the packed one, every parameter's gradient included."""
    model = _model(SMALL_NO_DROPOUT, device=device, train=True)
    x = _features(4, 23, device=device)
    lengths = torch.tensor([23, 1, 12, 23], device=device)
    target = torch.tensor([0, 3, 7, 2], device=device)
    start = {k: v.clone() for k, v in model.state_dict().items()}  # a training forward moves the BN statistics
    results = {}
    for path in _lstm_paths(monkeypatch, device):
        model.load_state_dict(start)
        model.train().zero_grad()
        logits = model(x, lengths)
        nn.functional.cross_entropy(logits, target).backward()
        with torch.no_grad():
            evaluated = model.eval()(x, lengths)
        results[path] = (logits.detach(), evaluated, {n: p.grad.clone() for n, p in model.named_parameters()})
    (logits, evaluated, grads), (ref_logits, ref_eval, ref_grads) = results["dense"], results["packed"]
    _close(logits, ref_logits, 1e-5)
    _close(evaluated, ref_eval, 1e-5)
    # held to the scale of all the gradients: some are 0 but for rounding (a bias before a batch norm)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=0, atol=1e-5 * scale, msg=name)


def test_dense_lstm_keeps_the_dropout_between_layers(monkeypatch):
    """nn.LSTM's dropout between stacked layers (lstm_dropout), in training only, after every layer but the
    last: the dense path applies it as the packed one does."""
    import ser_gpu.models.cnn_bilstm_attention as module

    monkeypatch.setattr(module, "DENSE_LSTM_DEVICES", ("cpu",))
    config = dataclasses.replace(SMALL_NO_DROPOUT, lstm_layers=3, lstm_dropout=0.375)
    calls = []
    real = nn.functional.dropout

    def spy(x, p=0.5, training=True, inplace=False):
        calls.append((p, training, tuple(x.shape)))
        return real(x, p, training, inplace)

    monkeypatch.setattr(nn.functional, "dropout", spy)
    model = _model(config, train=True)
    x, lengths = _features(2, 16), torch.tensor([16, 9])
    first, second = model(x, lengths), model(x, lengths)
    assert [c for c in calls if c[0] == 0.375] == [(0.375, True, (2, 4, 2 * config.lstm_hidden))] * 4  # 2 calls x 2
    assert not torch.equal(first, second)  # fresh masks each call
    calls.clear()
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x, lengths), model(x, lengths), rtol=0, atol=0)
    assert [c[1] for c in calls if c[0] == 0.375] == [False] * 4


@pytest.mark.cuda
@needs_cuda
def test_frame_lengths_on_the_host_give_the_device_lengths_logits():
    """The training step passes its host copy of the frame lengths (no device read for the check or the
    packing): on CUDA the logits equal those of the same lengths on the device, in training mode too (on
    the CPU both are one tensor: test_packed_lstm_equals_torch_unsorted_packing covers the packing)."""
    x = _features(4, 13, device="cuda")
    host = torch.tensor([13, 6, 1, 9])
    for train in (False, True):
        outs = []
        for lengths in (host, host.to("cuda")):
            model = _model(SMALL_NO_DROPOUT, device="cuda", train=train)
            outs.append(model(x, lengths))
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


@pytest.mark.cuda
@needs_cuda
def test_a_training_step_with_host_frame_lengths_does_not_wait_for_the_gpu():
    """Forward and backward under bf16 autocast, as ser_gpu.train's step, with the frame lengths on the
    host: no host sync that torch reports (the check reads the host copy; the LSTM's sort orders are made
    on the host). With the lengths on the device the check must read them back: the sync mode catches
    that. (The mode sees the syncs torch makes; whether CUDA itself waits is for the H200's timings.)"""
    model = _model(SMALL, device="cuda", train=True)
    x = _features(4, 21, device="cuda")
    labels = torch.tensor([0, 3, 7, 1], device="cuda")
    host = torch.tensor([21, 9, 1, 14])
    on_device = host.to("cuda")  # before the sync mode: this copy is itself a blocking one
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x, host, fuse=False)
        nn.functional.cross_entropy(logits.float(), labels).backward()
        with pytest.raises(RuntimeError, match="synchroniz"):
            model(x, on_device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ParameterError, match=r"frame_lengths must lie in \[1, 21\].*got 22"):
        model(x, torch.tensor([22, 9, 1, 14]))


def test_one_training_step_lowers_the_loss():
    model = _model(SMALL_NO_DROPOUT, train=True)
    x, y = _features(4, 10), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "features, frame_lengths, match",
    [
        (torch.zeros(2, 40, 10), None, r"input_dim=68.*\(2, 40, 10\)"),
        (torch.zeros(68, 10), None, r"shape \(B, input_dim=68, frames\), got \(68, 10\)"),
        (torch.zeros(1, 2, 68, 10), None, r"got \(1, 2, 68, 10\)"),
        ([[0.0] * 10] * 68, None, r"features must be a torch.Tensor, got list"),
        (torch.zeros(2, 68, 10, dtype=torch.int64), None, r"floating-point.*torch.int64"),
        (torch.zeros(0, 68, 10), None, r"features is empty: shape \(0, 68, 10\)"),
        (torch.zeros(2, 68, 0), None, r"features is empty: shape \(2, 68, 0\)"),
        (torch.zeros(2, 68, 10, dtype=torch.float64), None, r"dtype torch.float64.*torch.float32"),
        (torch.zeros(2, 68, 10), torch.tensor([10, 10, 10]), r"frame_lengths must have shape \(2,\).*got \(3,\)"),
        (torch.zeros(2, 68, 10), torch.tensor([[10, 10]]), r"frame_lengths must have shape \(2,\).*got \(1, 2\)"),
        (torch.zeros(2, 68, 10), torch.tensor([10, 11]), r"frame_lengths must lie in \[1, 10\].*got 11"),
        (torch.zeros(2, 68, 10), torch.tensor([0, 10]), r"frame_lengths must lie in \[1, 10\].*got 0"),
        (torch.zeros(2, 68, 10), torch.tensor([-3, 10]), r"frame_lengths must lie in \[1, 10\].*got -3"),
        (torch.zeros(2, 68, 10), torch.tensor([9.0, 10.0]), r"frame_lengths must be an integer.*float32"),
    ],
)
def test_bad_inputs(features, frame_lengths, match):
    model = _model(SMALL)
    with pytest.raises(ParameterError, match=match):
        model(features, frame_lengths)


def test_training_needs_two_clips():
    model = _model(SMALL, train=True)
    with pytest.raises(ParameterError, match=r"at least 2 clips in training mode.*\(1, 68, 10\)"):
        model(torch.zeros(1, 68, 10))
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 68, 10)).shape == (1, 8)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"input_dim": 0}, r"input_dim must be a positive integer, got 0"),
        ({"n_classes": 1}, r"n_classes must be at least 2, got 1"),
        ({"n_classes": 2.5}, r"n_classes must be a positive integer, got 2.5"),
        ({"channels": ()}, r"channels must hold at least one"),
        ({"channels": (16, -4)}, r"channels\[1\] must be a positive integer, got -4"),
        ({"channels": 64}, r"channels must be a sequence of positive integers, got 64"),
        ({"kernel_size": 4}, r"kernel_size must be odd, got 4"),
        ({"lstm_layers": 0}, r"lstm_layers must be a positive integer, got 0"),
        ({"lstm_dropout": 1.0}, r"lstm_dropout must be a probability in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be a probability in \[0, 1\), got -0.1"),
        ({"attention_heads": 3}, r"attention_heads must divide.*= 16, got 3"),
        ({"attention_dropout": "0.1"}, r"attention_dropout must be a probability.*'0.1'"),
    ],
)
def test_bad_config(overrides, match):
    with pytest.raises(ParameterError, match=match):
        dataclasses.replace(SMALL, **overrides)
    with pytest.raises(ParameterError, match=match):
        CNNBiLSTMAttention(SMALL, **overrides)


# ---------------------------------------------------------------------------------------------- config


def test_config_round_trip():
    data = SMALL.to_dict()
    assert data["channels"] == [16, 24, 32] and type(data["channels"]) is list
    assert json.loads(json.dumps(data)) == data
    assert ModelConfig.from_dict(data) == SMALL
    assert ModelConfig.from_dict({}) == ModelConfig()
    assert CNNBiLSTMAttention(data).config == SMALL
    assert CNNBiLSTMAttention(SMALL, n_classes=4).config.n_classes == 4


def test_config_unknown_keys():
    with pytest.raises(ParameterError, match=r"unknown ModelConfig keys \['hidden', 'layers'\]"):
        ModelConfig.from_dict({"layers": 2, "hidden": 3, "n_classes": 4})
    with pytest.raises(ParameterError, match=r"unknown ModelConfig keys \['hidden'\]"):
        CNNBiLSTMAttention(hidden=3)
    with pytest.raises(ParameterError, match=r"needs a dict, got \[1, 2\]"):
        ModelConfig.from_dict([1, 2])
    with pytest.raises(ParameterError, match=r"config must be a ModelConfig, a dict or None, got 'big'"):
        CNNBiLSTMAttention("big")


def test_autocast_forward_keeps_the_lstm_in_float32(device, monkeypatch):
    """bf16 autocast (what training uses on CUDA) runs; the recurrence stays float32 and the logits finite,
    on the packed and the dense LSTM path."""
    from ser_gpu.models import CNNBiLSTMAttention, ModelConfig

    torch.manual_seed(0)
    model = CNNBiLSTMAttention(ModelConfig(channels=(16, 16, 32), lstm_hidden=16, attention_heads=2)).to(device).eval()
    x = torch.randn(3, 68, 20, device=device)
    fl = torch.tensor([20, 13, 1], device=device)
    seen = []
    model.lstm.register_forward_hook(lambda m, inp, out: seen.append(out[0].data.dtype))  # the packed path
    real = torch.lstm
    monkeypatch.setattr(torch, "lstm", lambda x, *a: seen.append(x.dtype) or real(x, *a))  # the dense one
    for path in _lstm_paths(monkeypatch, device):
        seen.clear()
        with torch.no_grad(), torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            logits = model(x, fl)
        assert seen == [torch.float32] * (1 if path == "packed" else 2 * model.config.lstm_layers), path
        assert torch.isfinite(logits.float()).all()
        ref = model(x, fl)
        assert (logits.float() - ref).abs().max() < 0.1  # bf16 convs/attention: close, not equal
