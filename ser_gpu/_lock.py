"""A lock file per run directory, so that two trainings never write into one ``--out`` at once.

``out/.lock`` holds the owner's host name and process id. It appears with its content in one step
(written to a temporary file, then hard-linked into place, which fails if the lock exists), so a
competitor never sees a half-written lock; where the file system has no hard links it is created
exclusively (``O_CREAT | O_EXCL``) and then written. A second run finds it and is refused, naming the owner; a lock whose process no longer
runs on this host (killed, crashed) is stale and taken over.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .errors import ParameterError

__all__ = ["RunLock"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class RunLock:
    """``out/.lock`` held by this process between :meth:`acquire` and :meth:`release`."""

    def __init__(self, directory):
        self.path = Path(directory) / ".lock"
        self.held = False

    def _owner(self):
        try:
            data = json.loads(self.path.read_text())
            return str(data["host"]), int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _create(self, content: str) -> bool:
        """Create the lock holding ``content``; False when it exists already."""
        tmp = self.path.with_name(f".lock.{os.getpid()}.tmp")
        tmp.write_text(content)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here: exclusive create, then write
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ParameterError naming the process that holds it."""
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        for _ in range(3):
            if self._create(me):
                self.held = True
                return self
            owner = self._owner()
            if owner is not None and (owner[0] != socket.gethostname() or _alive(owner[1])):
                raise ParameterError(
                    f"out directory {str(self.path.parent)!r} is in use by another training (process "
                    f"{owner[1]} on {owner[0]}, lock file {self.path}); wait for it to finish or use another "
                    f"--out (delete the lock file only if that process is gone)")
            # stale: its process is gone (or the file is unreadable); remove it and try again
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise ParameterError(f"could not take the lock {self.path} (other processes keep taking it)")

    def release(self) -> None:
        if self.held:
            try:
                if self._owner() == (socket.gethostname(), os.getpid()):
                    self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
