"""The model step alone, on each BiLSTM path: packed (pack_padded_sequence) vs dense (DENSE_LSTM_DEVICES).

    python benchmarks/bench_model_step.py [--device cuda] [--batch 16] [--frames 152] [--repeats 20]

Times, for the default recipe's model (``python -m ser_gpu.train``'s: ``TrainConfig.for_recipe()``, 6.6 M
parameters, 8 classes), a training step as the run takes it (forward, loss, backward, gradient clipping,
the run's AdamW; bf16 autocast on CUDA) and an evaluation forward (``no_grad``), on a batch of clips of
unequal lengths (``--frames`` at most, at least 60 % of it: a bucketed batch), with the BiLSTM run packed
and run dense (``ser_gpu.models.cnn_bilstm_attention.DENSE_LSTM_DEVICES``), the two paths interleaved
round by round so that a machine's drift falls on both. It checks that the paths agree (evaluation
logits, float32) and writes ``benchmarks/results/model_step_<device>.json``: median and best
milliseconds per path, and the dense/packed ratio of the medians. 3.5 s clips are 152 frames (38 after
the model's two pools).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, save_results  # noqa: E402

PATHS = ("packed", "dense")


def _batch(batch: int, frames: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 68, frames, generator=g)
    lengths = torch.randint(max(1, int(0.6 * frames)), frames + 1, (batch,), generator=g)
    lengths[0] = frames
    labels = torch.randint(0, 8, (batch,), generator=g)
    # the training step's frame lengths are a host copy (ser_gpu.train): the packed path reads them there
    return x.to(device), lengths, labels.to(device)


def measure(device: torch.device, *, batch: int = 16, frames: int = 152, repeats: int = 20) -> dict:
    import ser_gpu.models.cnn_bilstm_attention as module
    from ser_gpu.models import CNNBiLSTMAttention
    from ser_gpu.train import FUSED_ADAMW_DEVICES, TrainConfig

    config = TrainConfig.for_recipe()
    torch.manual_seed(0)
    model = CNNBiLSTMAttention(config.model_config(8)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=True if device.type in FUSED_ADAMW_DEVICES else None)
    x, lengths, labels = _batch(batch, frames, device)
    amp = device.type == "cuda"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def train_step():
        model.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x, lengths, fuse=False)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    def evaluate():
        model.eval()
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            return model(x, lengths, fuse=False).float()

    def use(path):
        module.DENSE_LSTM_DEVICES = (device.type,) if path == "dense" else ()

    original = module.DENSE_LSTM_DEVICES
    try:
        logits = {}
        for path in PATHS:
            use(path)
            logits[path] = evaluate()
        model.eval()
        with torch.no_grad():
            exact = {}
            for path in PATHS:  # float32, no autocast: the paths' own difference
                use(path)
                exact[path] = model(x, lengths, fuse=False)
        for path in PATHS:  # warm-up: oneDNN primitives, cuDNN plans, the allocator
            use(path)
            for _ in range(3):
                train_step()
                evaluate()
        sync()
        times = {path: {"train_step": [], "eval_forward": []} for path in PATHS}
        for _ in range(repeats):
            for path in PATHS:
                use(path)
                for name, fn in (("train_step", train_step), ("eval_forward", evaluate)):
                    sync()
                    start = time.perf_counter()
                    fn()
                    sync()
                    times[path][name].append(time.perf_counter() - start)
    finally:
        module.DENSE_LSTM_DEVICES = original

    def summary(values):
        return {"median_ms": 1e3 * statistics.median(values), "best_ms": 1e3 * min(values)}

    result = {path: {name: summary(v) for name, v in parts.items()} for path, parts in times.items()}
    ratios = {name: result["dense"][name]["median_ms"] / result["packed"][name]["median_ms"]
              for name in ("train_step", "eval_forward")}
    return {
        "batch": batch, "frames": frames, "pooled_frames": int(model.output_frame_lengths(torch.tensor([frames]))),
        "frame_lengths": lengths.tolist(), "repeats": repeats, "autocast_bf16": amp,
        "recipe": config.recipe, "parameters": sum(p.numel() for p in model.parameters()),
        "default_path": "dense" if device.type in original else "packed",
        "paths": result, "dense_over_packed": ratios,
        "max_abs_logit_difference_float32": float((exact["dense"] - exact["packed"]).abs().max()),
        # under bf16 autocast (CUDA only; None on the CPU, where the step runs without it)
        "max_abs_logit_difference_autocast": float((logits["dense"] - logits["packed"]).abs().max()) if amp else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch", type=int, default=16, help="clips per step (default: %(default)s, the run's)")
    p.add_argument("--frames", type=int, default=152, help="padded frames (default: %(default)s, 3.5 s)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's; ser_gpu.train steps the model with one on the CPU while "
                        "its prefetch thread computes the next chunk)")
    p.add_argument("--out", default=None, help="results file (default: benchmarks/results/model_step_<device>.json)")
    args = p.parse_args(argv)
    for name in ("batch", "frames", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "batch" else 1):
            p.error(f"--{name} must be at least {2 if name == 'batch' else 1}, got {value}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device is available here")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    r = measure(device, batch=args.batch, frames=args.frames, repeats=args.repeats)
    for path in PATHS:
        parts = r["paths"][path]
        print(f"{path:7s} train step {parts['train_step']['median_ms']:7.1f} ms (best {parts['train_step']['best_ms']:.1f})"
              f"   eval forward {parts['eval_forward']['median_ms']:7.1f} ms (best {parts['eval_forward']['best_ms']:.1f})")
    print(f"dense / packed: train step {r['dense_over_packed']['train_step']:.2f}, "
          f"eval forward {r['dense_over_packed']['eval_forward']:.2f}; "
          f"max |logit difference| {r['max_abs_logit_difference_float32']:.1e} (float32)")
    out = Path(args.out) if args.out else RESULTS / f"model_step_{device.type}.json"
    r["command"] = " ".join(["python benchmarks/bench_model_step.py", *(sys.argv[1:] if argv is None else argv)])
    save_results(out, device, r)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
