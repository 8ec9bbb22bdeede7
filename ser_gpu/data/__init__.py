"""Corpora: RAVDESS, CREMA-D, TESS, SAVEE and EmoDB file names (:mod:`ser_gpu.data.corpora`), the
waveform cache, train/val/test splits, device-resident batches, and the built-in synthetic corpus
(:mod:`ser_gpu.data.synthetic`)."""

from . import synthetic
from .batches import WaveformSet
from .cache import default_cache_dir, load_waveforms
from .corpora import CORPORA, corpus_table, detect_corpus, parse_corpus_name, scan_corpus
from .ravdess import EMOTIONS, Clip, parse_ravdess_name
from .splits import Split, split_clips

__all__ = [
    "EMOTIONS",
    "Clip",
    "parse_ravdess_name",
    "scan_corpus",
    "CORPORA",
    "parse_corpus_name",
    "detect_corpus",
    "corpus_table",
    "load_waveforms",
    "default_cache_dir",
    "split_clips",
    "Split",
    "WaveformSet",
    "synthetic",
]
