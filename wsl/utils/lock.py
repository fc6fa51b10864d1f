"""An exclusive lock on a file, shared by processes on one machine and machines on a network file system.

The lock is a POSIX record lock (``fcntl.lockf``), which network file systems such as NFS support
(``flock`` is local to one machine there). Record locks belong to a process: every process that wants
the lock waits for the holder to release it, but two :class:`FileLock` objects of one process on the same
file do not exclude each other, and closing any handle of that file in the process releases its lock.
Use one :class:`FileLock` per file and process. Where ``fcntl`` is missing (not POSIX) locking is a
no-op (:data:`LOCKING` is False): run the processes one after the other there.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["FileLock", "LOCKING"]

#: Whether this platform has file locks (``fcntl``); without them :class:`FileLock` does nothing.
LOCKING = fcntl is not None


class FileLock:
    """An exclusive lock on ``path`` (created with its folder if needed), held from ``acquire`` to ``release``.

    ``path=None`` gives a lock that does nothing (a storage without a lock file). ``acquire`` while held
    and ``release`` while not held do nothing, so a holder may release early and leave the ``with`` block
    later. Usable as a context manager.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        self._handle = None

    @property
    def held(self) -> bool:
        """Whether this object holds a lock on its file (never for ``path=None`` or without ``fcntl``)."""
        return self._handle is not None

    def acquire(self, blocking: bool = True) -> bool:
        """Wait for the lock (``blocking=False``: do not wait); returns whether it is held now."""
        if self._handle is not None:
            return True
        if self.path is None or fcntl is None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            if blocking:
                raise
            return False
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        """Release the lock (nothing happens when it is not held)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            fcntl.lockf(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, held={self.held})"
