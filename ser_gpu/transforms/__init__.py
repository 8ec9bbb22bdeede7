"""nn.Modules that hold filterbanks as buffers and call :mod:`ser_gpu.functional`."""

from .augment import SpecAugment, SpecAugmentConfig, WaveformAugment, WaveformAugmentConfig
from .features import FEATURE_ROWS, FeatureBatch, FeatureConfig, FeatureExtractor

__all__ = ["FEATURE_ROWS", "FeatureBatch", "FeatureConfig", "FeatureExtractor",
           "WaveformAugment", "WaveformAugmentConfig", "SpecAugment", "SpecAugmentConfig"]
