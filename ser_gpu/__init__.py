"""ser_gpu: GPU-native speech emotion recognition with librosa-identical batched features."""

from . import functional
from .errors import AudioLoadError, CheckpointError, ParameterError, SerGpuError

__version__ = "0.1.0"

__all__ = ["functional", "SerGpuError", "ParameterError", "AudioLoadError", "CheckpointError", "__version__"]
