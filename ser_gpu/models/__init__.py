"""Emotion classifiers. Their checkpoint format lives in :mod:`ser_gpu.checkpoint`, which builds on this
package (never the other way round)."""

from .cnn_bilstm_attention import CNNBiLSTMAttention, ModelConfig
from .ensemble import SoftmaxEnsemble

__all__ = ["CNNBiLSTMAttention", "ModelConfig", "SoftmaxEnsemble"]
