"""One owner per data dir: an exclusive ``flock`` on a lock file inside it.

Two servers on one state file each learn only their own outcomes and each snapshot overwrites the
other's model, so a second one must not start. The kernel drops a ``flock`` when its holder exits,
however it exits, so a server killed with SIGKILL never blocks its own restart; the lock file
itself stays (deleting it would let two holders lock two different files).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from learner import DataDirInUse

LOCK_FILENAME = "pricebandit.lock"


class DataDirLock:
    """Held from construction until ``release()``; the lock file names the holder's pid."""

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / LOCK_FILENAME
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip()
            self.release()
            by = f"process {holder}" if holder.isdigit() else "another process"
            raise DataDirInUse(
                f"the data dir {data_dir} is in use by {by} (it holds {path}): stop that server, "
                "or give this one another --data-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Closing the file drops the lock; a second call does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
