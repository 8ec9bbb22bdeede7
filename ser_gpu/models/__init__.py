"""Emotion classifiers and the checkpoint format they are saved in."""

from ..checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .cnn_bilstm_attention import CNNBiLSTMAttention, ModelConfig

__all__ = [
    "CNNBiLSTMAttention",
    "ModelConfig",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
]
