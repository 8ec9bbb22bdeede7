"""What the web app computes for one upload, as plain functions (no Streamlit here, so tests drive them).

:class:`Analyzer` wraps a :class:`ser_gpu.predict.Predictor`: :meth:`Analyzer.analyse` writes the
uploaded bytes into a fresh temporary directory, scores them with the predictor (the same windows,
trimming, features and model as ``python -m ser_gpu.predict``, with the per-window timeline), reads
the waveform and the 68 feature rows of the start of the file for display, and removes the directory
before returning, whatever happens. Nothing else is written anywhere.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import AudioLoadError, ParameterError
from .._cli import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, is_media, readable
from ..media import load_media
from ..transforms.features import FEATURE_ROWS, FeatureExtractor

__all__ = ["Analyzer", "UPLOAD_EXTENSIONS", "plain", "waveform_envelope"]

# What Streamlit's Markdown reads as markup in a caption, an alert, a metric or the sidebar: CommonMark's
# punctuation ('&' starts an HTML entity, '=' under a line makes it a heading), ':' (emoji :smile: and
# colours :red[...]) and '$' (LaTeX)
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=])")


def plain(text: str) -> str:
    """``text`` (a file name, an error message) shown as written where Streamlit renders Markdown:
    readable (:func:`ser_gpu._cli.readable`), on one line (a line break would start a paragraph, a
    heading or a list), every markup character backslash-escaped."""
    return _MARKUP.sub(r"\\\1", " ".join(readable(text).splitlines()))


#: What the upload widget accepts: every extension ``predict`` decodes (audio and video), no dot.
UPLOAD_EXTENSIONS = tuple(ext.lstrip(".") for ext in AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)


def waveform_envelope(y: np.ndarray, sr: float, points: int = 1500):
    """Min/max envelope of ``y`` in at most ``points`` buckets, for drawing a long waveform.

    Returns:
        ``(t, lo, hi)``: bucket start times in seconds and the min/max sample of each bucket, each of
        shape ``(min(points, len(y)),)``; three empty arrays for an empty ``y``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        return np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32)
    n = min(points, y.size)
    edges = np.linspace(0, y.size, n + 1).astype(np.int64)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    return edges[:-1] / float(sr), lo, hi


class Analyzer:
    """Scores uploads with a predictor and prepares what the page draws.

    Args:
        predictor: a :class:`ser_gpu.predict.Predictor` (checkpoint, device, window and hop).
        display_seconds: the waveform and the feature heatmap show at most this many seconds from
            the start of the file (the prediction always covers the whole file).
    """

    def __init__(self, predictor, *, display_seconds: float = 30.0):
        if not display_seconds > 0:
            raise ParameterError(f"display_seconds must be > 0, got {display_seconds!r}")
        self.predictor = predictor
        self.display_seconds = float(display_seconds)
        fc = predictor.feature_config
        # the rows the model reads (its own trim and sr), standardised per row, without padding to max_frames
        self.display_config = dataclasses.replace(fc, max_frames=None, normalize="valid")
        self.extractor = FeatureExtractor(self.display_config).to(predictor.device)

    @property
    def labels(self):
        return self.predictor.labels

    def analyse(self, data: bytes, name: str) -> dict:
        """Everything the page shows for one uploaded or recorded file.

        Args:
            data: the file's bytes.
            name: its name as uploaded (only the extension is used, to pick the decoder).

        Returns:
            ``result``: :meth:`Predictor.predict`'s dict (all labels in ``top_k``, with ``timeline``;
            its ``path`` is the upload's ``name``); ``sr``; ``waveform``: ``(t, lo, hi)`` of
            :func:`waveform_envelope`; ``features``: ``(68, frames)`` float32 rows in
            :data:`FEATURE_ROWS` order; ``row_names``; ``display_seconds``: how much of the file the
            waveform and features cover; ``feature_seconds``: about how much of it is left after
            trimming silence (frames x hop).

        Raises:
            AudioLoadError: an empty file, an extension ``predict`` does not read, or content that
                cannot be decoded; the message starts with ``name``.
        """
        name = Path(str(name)).name or "upload"
        if not data:
            raise AudioLoadError(name, "the file is empty (0 bytes)")
        suffix = Path(name).suffix.lower()
        if not is_media(name):
            raise AudioLoadError(name, f"{suffix or 'no extension'} is not an audio or video format that "
                                       f"ser_gpu reads (accepted: {', '.join(UPLOAD_EXTENSIONS)})")
        sr = self.predictor.feature_config.sr
        with tempfile.TemporaryDirectory(prefix="ser_gpu_app_") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            result = self.predictor.predict([path], top_k=len(self.labels), timeline=True)[0]
            if "error" in result:
                raise AudioLoadError(name, str(result["error"]).replace(str(path), name))
            try:
                y, _ = load_media(path, sr=sr, duration=self.display_seconds)
            except AudioLoadError as exc:  # it was just read whole; report it as predict would
                raise AudioLoadError(name, exc.reason.replace(str(path), name)) from None
        result["path"] = name
        features = self._features(y)
        return {
            "result": result,
            "sr": sr,
            "waveform": waveform_envelope(y.numpy(), sr),
            "features": features,
            "row_names": list(FEATURE_ROWS),
            "display_seconds": y.numel() / sr,
            "feature_seconds": features.shape[1] * self.display_config.hop_length / sr,
        }

    @torch.no_grad()
    def _features(self, y: torch.Tensor):
        """``(68, frames)`` rows of ``y``, trimmed as the model's are, each standardised over time."""
        lengths = torch.tensor([y.numel()], device=self.predictor.device)
        out = self.extractor(y[None].to(self.predictor.device), lengths)
        frames = int(out.frame_lengths[0])
        return out.features[0, :, :frames].float().cpu().numpy()

    def timeline_table(self, result: dict) -> Optional[dict]:
        """``{"seconds": [...], label: [...]}`` of the per-window probabilities (at each window's
        centre), or None for a file scored as one window."""
        timeline = result.get("timeline") or []
        if len(timeline) < 2:
            return None
        table = {"seconds": [(w["start"] + w["end"]) / 2 for w in timeline]}
        for label in self.labels:
            table[label] = [w["probabilities"][label] for w in timeline]
        return table
