"""``python -m ser_gpu.predict``: the emotion of audio or video files, with probabilities and a top-k list.

Inputs of any length are scored in bounded memory: each file is decoded once, as a stream, into
windows of ``window`` seconds (default 4 s) starting every ``hop`` seconds (default 2 s); after the
last full window the rest of the file is one shorter window, and a file no longer than one window is
a single window (:func:`ser_gpu.media.iter_windows`). Each window is
trimmed (``top_db`` from the checkpoint) and turned into the checkpoint's feature rows exactly as in
training; windows of many files share batched forward passes, and a file's probabilities are the mean
of its windows' softmax outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from tqdm import tqdm

from ._atomic import atomic_write
from ._cli import check_output_file, find_files, is_media, option_error, readable, resolve_device, run_main
from ._validation import check_positive, check_positive_int
from .errors import AudioLoadError, CheckpointError, ParameterError
from .transforms.features import FeatureExtractor
from .transforms.row_stats import RowStatistics, standardize_rows

__all__ = ["Predictor", "predict_file", "predict_files", "find_media", "clip_warnings", "plot_probabilities", "main"]

PathLike = Union[str, Path]

#: Windows per forward pass when ``batch_size`` is not given. On the CPU, one: the peak memory then
#: stays within 10 % of a single short clip's whatever the file's length. Each window in a batch adds
#: its features' working set (~7 MB) and glibc's heap fragments a multiple of that over a long run:
#: on a 10-minute file (``benchmarks/results/predict_rss_batch_sweep_cpu.json``) the peak is ~700 MB
#: at 1, ~740-760 at 2, ~790 at 4, ~835 at 8 and ~1100 at 32, against ~645 MB for a 4 s clip. Larger
#: batches are faster (that file took ~16 s at 1, ~12 s at 4, ~10 s at 8 or 32 on 2 CPU threads),
#: so pass a larger ``batch_size`` when time matters more than memory. On CUDA larger batches keep
#: the device busy.
CPU_BATCH_SIZE = 1
CUDA_BATCH_SIZE = 32


def find_media(paths: Sequence[PathLike]) -> List[Path]:
    """Files as given, directories expanded recursively into their audio/video files (sorted).

    The rule of :func:`ser_gpu._cli.find_files` with :func:`ser_gpu._cli.is_media` as the predicate.

    Raises:
        ParameterError: a path that does not exist, or a directory without audio or video files.
    """
    return find_files(paths, predicate=is_media, what="audio or video")


class Predictor:
    """A checkpoint ready to score files: model, feature extractor and labels on one device.

    Args:
        checkpoint: path to a ``best.pt``/``last.pt`` written by :mod:`ser_gpu.train`, or a list of
            them: an ensemble whose answer is the mean of their softmax outputs
            (:func:`ser_gpu.checkpoint.load_models`; they must read the same rows).
        device: ``'auto'`` (CUDA when present), ``'cpu'`` or ``'cuda[:N]'``.
        window, hop: window length and step in seconds for scoring long inputs (see the module doc).
        batch_size: windows per forward pass; ``None`` (default): :data:`CPU_BATCH_SIZE` (1) on the
            CPU, :data:`CUDA_BATCH_SIZE` (32) on CUDA.

    Attributes:
        labels: the checkpoint's labels (logit order); ``card``: its facts
            (:func:`ser_gpu.model_card.model_card`: corpus, scores, the demo-model warning; of the first
            checkpoint of an ensemble, with ``ensemble``: every checkpoint's path).

    Raises:
        CheckpointError: missing/corrupt checkpoint, another architecture, another label set.
    """

    def __init__(self, checkpoint: Union[PathLike, Sequence[PathLike]], *, device: str = "auto",
                 window: float = 4.0, hop: float = 2.0, batch_size: Optional[int] = None):
        from .checkpoint import checkpoint_list, feature_config, load_models, speaker_normalized
        from .data import EMOTIONS
        from .model_card import model_card

        check_positive(window, "window")
        check_positive(hop, "hop")
        if batch_size is not None:
            batch_size = check_positive_int(batch_size, "batch_size")
        self.device = resolve_device(device)
        if batch_size is None:
            batch_size = CUDA_BATCH_SIZE if self.device.type == "cuda" else CPU_BATCH_SIZE
        self.batch_size = batch_size
        checkpoints = checkpoint_list(checkpoint)
        self.model, payloads = load_models(checkpoints, device=self.device, labels=list(EMOTIONS))
        payload = payloads[0]  # an ensemble's members read the same rows, with the same labels
        self.labels = list(payload["labels"])
        self.card = model_card(payload, checkpoints[0])  # labels, corpus, scores, demo-model warning
        if len(checkpoints) > 1:
            self.card["ensemble"] = [str(c) for c in checkpoints]
        self.feature_config = fc = feature_config(payload, checkpoints[0])
        self.extractor = FeatureExtractor(fc).to(self.device)
        self.window_seconds, self.hop_seconds = float(window), float(hop)
        # frames of a full window: every batch reaches the model padded to this many (see _probabilities);
        # with max_frames the extractor gives every batch that many already
        full = 1 + math.ceil(self.window_seconds * fc.sr) // fc.hop_length
        self._model_frames = full if fc.max_frames is None else 0
        #: the model reads rows standardised per speaker (trained with normalize='speaker'): each
        #: predict call takes its files as one speaker's and standardises with their statistics
        self.speaker_normalized = speaker_normalized(payload)

    # -- reading ----------------------------------------------------------------------------------
    def _windows(self, path: Path, hop_seconds: Optional[float] = None) -> Iterator[Tuple[float, float, torch.Tensor]]:
        """``(start_seconds, end_seconds, window)`` of the file, decoded once in bounded memory; windows
        ``hop_seconds`` apart (default: the predictor's hop)."""
        from .media import iter_windows

        for w in iter_windows(path, sr=self.feature_config.sr, window_seconds=self.window_seconds,
                              hop_seconds=self.hop_seconds if hop_seconds is None else hop_seconds):
            if w.y.numel():
                yield w.start, w.end, w.y

    # -- scoring ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _probabilities(self, windows: List[torch.Tensor],
                       speaker_stats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Softmax outputs ``(B, labels)`` and each window's frame count after trimming ``(B,)``; with
        ``speaker_stats`` (mean, std ``(1, rows)``) the rows are standardised with them first."""
        lengths = torch.tensor([w.numel() for w in windows], dtype=torch.int64)
        y = torch.nn.utils.rnn.pad_sequence(windows, batch_first=True)  # zero-padded (B, longest)
        batch = self.extractor(y.to(self.device), lengths.to(self.device))
        features = batch.features
        if features.shape[-1] < self._model_frames:
            # Trimming leaves each batch its own frame count; the CPU convolutions (oneDNN) keep a
            # primitive for every input shape they meet, up to 1024 of them (measured: +125 MB over
            # 114 frame counts), so a long file grew the memory by the number of distinct counts.
            # Padded to a full window's frames, the model meets one shape per batch size; it ignores
            # padded frames (logits unchanged up to float rounding).
            features = torch.nn.functional.pad(features, (0, self._model_frames - features.shape[-1]))
        if speaker_stats is not None:
            mean, std = speaker_stats
            n = features.shape[0]
            features = standardize_rows(features, batch.frame_lengths, mean.expand(n, -1), std.expand(n, -1))
        logits = self.model(features, batch.frame_lengths)
        return torch.softmax(logits.float(), dim=-1).cpu(), batch.frame_lengths.cpu()

    @torch.no_grad()
    def speaker_statistics(self, paths: Sequence[PathLike]) -> Tuple[torch.Tensor, torch.Tensor, float]:
        """Per-row mean and std ``[shape=(1, 68)]`` of the files' rows taken as one speaker's (windows that
        do not overlap, the checkpoint's trimming), and the seconds of sound they hold. Unreadable files
        are skipped (:meth:`predict` reports them)."""
        stats = RowStatistics(1, self.model.config.input_dim, device=self.device)
        frames = 0
        for path in paths:
            try:
                for _, _, w in self._windows(Path(path), hop_seconds=self.window_seconds):
                    batch = self.extractor(w[None].to(self.device), torch.tensor([w.numel()], device=self.device))
                    stats.add(batch.features, batch.frame_lengths, torch.zeros_like(batch.frame_lengths))
                    frames += int(batch.frame_lengths[0])
            except AudioLoadError:
                continue
        mean, std = stats.result()
        return mean, std, frames * self.feature_config.hop_length / self.feature_config.sr

    def predict(self, paths: Sequence[PathLike], *, top_k: int = 3, progress: bool = False,
                timeline: bool = False) -> List[dict]:
        """Score every file; a file that cannot be read gives ``{"path", "error"}`` and the others go on.

        Args:
            timeline: also return each window's probabilities (the ones the file's are the mean of).

        A checkpoint trained with ``normalize='speaker'`` (:attr:`speaker_normalized`) reads rows
        standardised with the speaker's statistics: the files of one call are taken as one speaker's
        recordings and give them (:meth:`speaker_statistics`); each result then carries a warning when
        they hold less than :data:`SPEAKER_MIN_SECONDS` of sound.

        Returns:
            one dict per input, in order: ``path``, ``emotion``, ``probability``, ``top_k`` (list of
            ``{"emotion", "probability"}``), ``probabilities`` (every label), ``windows`` and
            ``seconds``, ``warnings`` (list of str) when the answer deserves little trust (see
            :func:`clip_warnings`), and with ``timeline`` a list ``timeline`` of ``{"start", "end",
            "probabilities"}`` per window (seconds into the file); or ``path`` and ``error``.
        """
        top_k = check_positive_int(top_k, "top_k")
        top_k = min(top_k, len(self.labels))
        sums: Dict[int, torch.Tensor] = {}
        counts: Dict[int, int] = {}
        seconds: Dict[int, float] = {}
        peaks: Dict[int, float] = {}
        sound: Dict[int, float] = {}  # seconds left in the file's longest window after trimming silence
        errors: Dict[int, str] = {}
        pending: List[Tuple[int, torch.Tensor]] = []
        spans: Dict[int, List[Tuple[float, float]]] = {}  # with timeline: each window's span and probabilities
        window_probs: Dict[int, List[torch.Tensor]] = {}

        paths = [Path(p) for p in paths]
        speaker_note = speaker_stats = None
        if self.speaker_normalized:
            mean, std, sound_seconds = self.speaker_statistics(paths)
            speaker_stats = (mean, std)
            if sound_seconds < SPEAKER_MIN_SECONDS:
                speaker_note = (f"this model standardises its rows with the speaker's statistics: taken from the "
                                f"{len(paths)} file(s) of this call as one speaker's, they hold {sound_seconds:.1f} s "
                                f"of sound (less than {SPEAKER_MIN_SECONDS:.0f} s); give several recordings of the "
                                f"speaker in one call for answers to trust")
        bar = tqdm(total=len(paths), desc="predicting", unit="file", disable=not progress, file=sys.stderr)
        read = 0  # files 0..read-1 are fully read; the bar counts files whose every window is scored

        def flush():
            if pending:
                probs, frames = self._probabilities([w for _, w in pending], speaker_stats)
                sr = self.feature_config.sr
                hop_s = self.feature_config.hop_length / sr
                for (i, w), p, f in zip(pending, probs, frames.tolist()):
                    sums[i] = sums.get(i, 0) + p
                    counts[i] = counts.get(i, 0) + 1
                    # the trimmed window's frames span up to a hop more than its samples: at most the window
                    sound[i] = max(sound.get(i, 0.0), min(f * hop_s, w.shape[-1] / sr))
                    if timeline:
                        window_probs.setdefault(i, []).append(p)
                pending.clear()
            bar.update(read - bar.n)

        for i, path in enumerate(paths):
            try:
                for start, end, w in self._windows(path):
                    seconds[i] = end
                    peaks[i] = max(peaks.get(i, 0.0), float(w.abs().max()))
                    if timeline:
                        spans.setdefault(i, []).append((start, end))
                    pending.append((i, w))
                    if len(pending) >= self.batch_size:
                        flush()
            except AudioLoadError as exc:
                errors[i] = exc.reason
                pending[:] = [(j, w) for j, w in pending if j != i]
                sums.pop(i, None)
                counts.pop(i, None)
                spans.pop(i, None)
                window_probs.pop(i, None)
            read = i + 1
            if not pending:
                bar.update(read - bar.n)
        flush()
        bar.close()

        results = []
        for i, path in enumerate(paths):
            if i in errors or i not in counts:
                results.append({"path": str(path), "error": errors.get(i, "no audio could be read")})
                continue
            probs = (sums[i] / counts[i]).tolist()
            order = sorted(range(len(probs)), key=lambda k: -probs[k])
            result = {
                "path": str(path),
                "emotion": self.labels[order[0]],
                "probability": probs[order[0]],
                "top_k": [{"emotion": self.labels[k], "probability": probs[k]} for k in order[:top_k]],
                "probabilities": dict(zip(self.labels, probs)),
                "windows": counts[i],
                "seconds": seconds[i],
            }
            notes = clip_warnings(seconds[i], peaks[i], sound.get(i, 0.0))
            if speaker_note:
                notes.append(speaker_note)
            if notes:
                result["warnings"] = notes
            if timeline:
                result["timeline"] = [
                    {"start": s, "end": e, "probabilities": dict(zip(self.labels, p.tolist()))}
                    for (s, e), p in zip(spans[i], window_probs[i])
                ]
            results.append(result)
        return results


#: A speaker-normalised checkpoint (``normalize='speaker'``) wants at least this much sound (seconds,
#: after trimming silence) from the speaker's files to estimate their statistics. Measured on unseen
#: RAVDESS actors (``benchmarks/speaker_enrollment.py``, the ``speaker`` recipe; a clip holds ~1.7 s of
#: sound): statistics of 1 clip give 0.29-0.32 UAR, of 5 clips 0.55-0.57, of 10 (~17 s) 0.62-0.63, of
#: 30 or all 60 0.65.
SPEAKER_MIN_SECONDS = 30.0

#: Below this peak (-80 dBFS) a file counts as silent.
SILENT_PEAK = 1e-4
#: Less sound than this (seconds, after trimming silence) is too short to judge an emotion
#: (RAVDESS clips, on which models are trained, hold 1.5-3 s of speech).
MIN_SOUND_SECONDS = 0.5


def clip_warnings(seconds: float, peak: float, sound_seconds: float) -> List[str]:
    """Why a prediction deserves little trust: a silent file, or too little sound in it.

    Args:
        seconds: the file's length; peak: its largest absolute sample; sound_seconds: what is left of
            its longest window after trimming silence (``top_db`` of the checkpoint).
    """
    if peak < SILENT_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        return [f"the file is silent ({level}): the predicted emotion is meaningless"]
    if sound_seconds < MIN_SOUND_SECONDS:
        return [f"only {sound_seconds:.2f} s of sound (of {seconds:.2f} s) after trimming silence; at least "
                f"{MIN_SOUND_SECONDS} s are needed for a meaningful prediction"]
    return []


def predict_files(paths: Sequence[PathLike], checkpoint: PathLike, *, top_k: int = 3, device: str = "auto",
                  window: float = 4.0, hop: float = 2.0, batch_size: Optional[int] = None,
                  progress: bool = False) -> List[dict]:
    """:meth:`Predictor.predict` for a list of files (directories expanded) with one checkpoint."""
    predictor = Predictor(checkpoint, device=device, window=window, hop=hop, batch_size=batch_size)
    return predictor.predict(find_media(paths), top_k=top_k, progress=progress)


def predict_file(path: PathLike, checkpoint: PathLike, *, top_k: int = 3, device: str = "auto",
                 window: float = 4.0, hop: float = 2.0, timeline: bool = False) -> dict:
    """The emotion of one audio or video file as a plain dict (see :meth:`Predictor.predict`;
    ``timeline=True`` adds each window's probabilities).

    The dict always holds ``warnings``: a list of strings, empty unless the file is silent or
    holds too little sound for a meaningful answer (:func:`clip_warnings`).

    Raises:
        AudioLoadError: the file cannot be read.
        CheckpointError: the checkpoint is missing, corrupt or of another model/label set.
    """
    result = Predictor(checkpoint, device=device, window=window, hop=hop).predict([path], top_k=top_k,
                                                                                  timeline=timeline)[0]
    if "error" in result:
        raise AudioLoadError(path, result["error"])
    result.setdefault("warnings", [])
    return result


def plot_probabilities(results: Sequence[dict], path: PathLike) -> Path:
    """A bar chart of each file's emotion probabilities (one panel per file), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    good = [r for r in results if "probabilities" in r]
    if not good:
        raise ParameterError("nothing to plot: no input could be scored")
    fig, axes = plt.subplots(len(good), 1, figsize=(7, 2.6 * len(good)), squeeze=False)
    for ax, r in zip(axes[:, 0], good):
        labels, probs = list(r["probabilities"]), list(r["probabilities"].values())
        colors = ["tab:red" if lab == r["emotion"] else "tab:blue" for lab in labels]
        ax.bar(labels, probs, color=colors)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{readable(Path(r['path']).name)}: {r['emotion']} ({r['probability']:.2f})")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ser_gpu.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio/video files or directories (recursive)")
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="CKPT",
                   help="best.pt written by python -m ser_gpu.train; several: an ensemble (their softmax averaged)")
    p.add_argument("--top-k", type=int, default=3, help="how many emotions to list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="draw the probability bar chart(s) into this .png file (an "
                                                    "existing one only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the --plot file if it exists")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"windows per forward pass (default: {CPU_BATCH_SIZE} on the CPU, which keeps the peak memory "
                        f"of a long file within 10%% of a short clip's; 4 to 8 are 1.4-1.6x faster there but peak "
                        f"~90-140 MB higher; {CUDA_BATCH_SIZE} on CUDA)")
    p.add_argument("--window", type=float, default=4.0, help="window length in seconds (default: %(default)s)")
    p.add_argument("--hop", type=float, default=2.0, help="window step in seconds (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.plot:  # before the work, not after it
            check_output_file(args.plot, argument="--plot", overwrite=args.overwrite, suffix=".png")
        predictor = Predictor(args.checkpoint, device=args.device, window=args.window, hop=args.hop,
                              batch_size=args.batch_size)
        for key in ("warning", "noise_warning"):
            if predictor.card[key]:
                print(f"warning: {args.checkpoint[0]}: {predictor.card[key]}", file=sys.stderr)
        results = predictor.predict(find_media(args.inputs), top_k=args.top_k, progress=not args.quiet)
    except (ParameterError, CheckpointError) as exc:
        print(f"error: {option_error(exc, parser)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                continue
            others = ", ".join(f"{t['emotion']} {t['probability']:.2f}" for t in r["top_k"][1:])
            print(f"{r['path']}: {r['emotion']} {r['probability']:.2f}" + (f" ({others})" if others else ""))
    for r in results:
        for note in r.get("warnings", []):
            print(f"warning: {r['path']}: {note}", file=sys.stderr)
        if "error" in r:
            print(f"error: {r['path']}: {r['error']}", file=sys.stderr)
    if args.plot:
        try:
            plot_probabilities(results, args.plot)
        except (ParameterError, OSError) as exc:  # the predictions are printed already
            print(f"error: --plot {args.plot}: {exc}", file=sys.stderr)
            return 2
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
