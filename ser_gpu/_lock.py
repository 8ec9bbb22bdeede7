"""A lock per run directory, so that two trainings never write into one ``--out`` at once.

The lock is an exclusive ``flock`` on ``out/.lock``, held on an open descriptor for as long as the run
uses the directory. The kernel releases it when the process ends however it ends (killed, crashed; a
child forked while the lock is held shares it until it ends too: ser_gpu forks none), so a lock file
left behind is never mistaken for a live run, and taking the lock is one atomic call: of
several runs started at once on one directory exactly one gets it. The file holds the owner's host
name and process id, for the message that refuses a second run. The owner removes the file while it
still holds the lock; a competitor that had opened the removed file finds, once it gets the lock, that
the path now names another file (or none) and tries again. Where the file system refuses locks, the
run goes on unlocked, with a warning.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

from .errors import ParameterError

__all__ = ["RunLock"]


class RunLock:
    """``out/.lock`` held by this process between :meth:`acquire` and :meth:`release`."""

    def __init__(self, directory):
        self.path = Path(directory) / ".lock"
        self.held = False
        self._fd = None

    def _owner(self):
        try:
            data = json.loads(self.path.read_text())
            return str(data["host"]), int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _names_the_file(self, fd: int) -> bool:
        """Whether ``self.path`` still names the file open on ``fd`` (not removed or replaced since)."""
        try:
            here, there = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ParameterError naming the process that holds it."""
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode()
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:  # e.g. another user's lock file left by a killed run in a shared directory
                raise ParameterError(f"cannot open the lock file {self.path} of out directory "
                                     f"{str(self.path.parent)!r}: {exc.strerror or exc}; use another --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                owner = self._owner()
                who = f"process {owner[1]} on {owner[0]}, " if owner is not None else ""
                raise ParameterError(
                    f"out directory {str(self.path.parent)!r} is in use by another training ({who}lock file "
                    f"{self.path}); wait for it to finish or use another --out") from None
            except OSError as exc:  # a file system without locks (some network mounts): say so, run unlocked
                os.close(fd)
                warnings.warn(f"cannot lock {self.path} ({exc.strerror or exc}): a second training on "
                              f"{str(self.path.parent)!r} would not be refused", RuntimeWarning, stacklevel=2)
                return self
            except BaseException:
                os.close(fd)
                raise
            try:
                if not self._names_the_file(fd):  # its owner removed it between our open and our lock
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, me, 0)
            except BaseException:  # a full disk, a stale handle...: the lock goes with the descriptor
                os.close(fd)
                raise
            self._fd, self.held = fd, True
            return self
        raise ParameterError(f"could not take the lock {self.path} (other processes keep taking it)")

    def release(self) -> None:
        """Remove the lock file (while still holding the lock), then let the lock go."""
        if self.held:
            try:
                if self._names_the_file(self._fd):
                    self.path.unlink()
            except FileNotFoundError:
                pass
            finally:
                os.close(self._fd)
                self._fd, self.held = None, False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
