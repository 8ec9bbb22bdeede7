"""The ffmpeg binary moviepy ships, for tests that make their own audio and video files."""

from __future__ import annotations

import subprocess

import pytest

from ser_gpu import media


def ffmpeg() -> str:
    """Its path; the calling test is skipped (with the reason) when there is none."""
    exe = media.ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg binary (imageio_ffmpeg.get_ffmpeg_exe() found none)")
    return exe


def ff(*args: str) -> None:
    """Run the bundled ffmpeg quietly; fail the test setup with its log if it fails."""
    proc = subprocess.run([ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
