"""Who is collecting a job right now: a lock per job, held by the process that collects it.

Two kernels opening one runs folder at once both see the same jobs left behind by a dead kernel; without a claim
both would download them, and the one that fails last would write its failure over the other's finished row.
A claim is a POSIX record lock on byte ``job id`` of one file beside the journal: the operating system drops it
when the process ends (however it ends), so a job whose collector died is collectable again, and nothing in the
journal's schema changes. Inside one process a set of held ids does the same between sessions.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

CLAIMS_NAME = "journal.sqlite3-collecting"


class Claims:
    """The claims of one runs folder, shared by every session of this process (see ``for_folder``)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / CLAIMS_NAME
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _file(self) -> int | None:
        """The lock file, opened once and never closed: closing any descriptor of it drops all our locks."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # an unwritable folder: claims hold within this process only
                return None
        return self._fd

    def take(self, job_id: int) -> bool:
        """Claim a job for this process; False when another session or process is collecting it."""
        with self._lock:
            if job_id in self._held:
                return False
            fd = self._file()
            if fd is not None and sys.platform != "win32":
                import fcntl

                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, job_id)
                except OSError:  # held by another live process
                    return False
            self._held.add(job_id)
            return True

    def release(self, job_id: int) -> None:
        """Let go of a job (collected, failed, or left collectable for a later try); a no-op when not held."""
        with self._lock:
            if job_id not in self._held:
                return
            self._held.discard(job_id)
            if self._fd is not None and sys.platform != "win32":
                import fcntl

                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, job_id)


_FOLDERS: dict[Path, Claims] = {}
_FOLDERS_LOCK = threading.Lock()


def for_folder(folder: Path) -> Claims:
    """The one Claims of a runs folder in this process (POSIX locks belong to the process, not to a session)."""
    with _FOLDERS_LOCK:
        return _FOLDERS.setdefault(folder, Claims(folder))
