"""Exceptions raised by ser_gpu.

Every user mistake is reported with one of these, naming the argument (or file) and the bad value,
instead of a traceback from deep inside torch.
"""

from __future__ import annotations

__all__ = ["SerGpuError", "ParameterError", "AudioLoadError", "CheckpointError", "TrainingDiverged", "DependencyError"]


class SerGpuError(Exception):
    """Root of every error ser_gpu raises on purpose: ``except SerGpuError`` catches them all.

    Each subclass also derives from the matching built-in (``ValueError``, ``OSError``,
    ``RuntimeError``), so code written against those keeps working.
    """


class ParameterError(SerGpuError, ValueError):
    """A function argument has an invalid value, type, shape or dtype."""


class AudioLoadError(SerGpuError, OSError):
    """An audio file is missing, empty, corrupt or in an unsupported format.

    The message always starts with the offending path.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(SerGpuError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the requested model/labels."""


class TrainingDiverged(SerGpuError, RuntimeError):
    """Training stopped at a non-finite loss; ``result`` holds the run's report (as in ``result.json``)."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class DependencyError(SerGpuError, RuntimeError):
    """A program or package this call needs is missing (e.g. the ffmpeg binary for ``ser_gpu.video``)."""
