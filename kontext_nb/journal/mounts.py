"""Is the runs folder on a network filesystem? SQLite's WAL needs memory shared on one host and NFS locks are
unreliable, so a SQLite journal there is unsafe once kernels on several hosts use it: say so in one line, and
recommend ``journal_url`` (a PostgreSQL journal). Read from /proc/mounts (Linux); elsewhere nothing is said.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNTS = "/proc/mounts"
NETWORK = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre", "gpfs", "beegfs"}
"""Filesystem types whose files other hosts write too; and every FUSE filesystem (sshfs, s3fs, ...)."""
LOCAL_FUSE = {"fuse.fuse-overlayfs", "fuse.lxcfs", "fuse.portal", "fuse.gvfsd-fuse"}
"""FUSE filesystems that are local to the host (containers' root, desktop helpers)."""


def _unescape(field: str) -> str:
    """/proc/mounts writes a space as \\040, a tab as \\011, a backslash as \\134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem(path: Path, mounts: str | None = None) -> tuple[str, str] | None:
    """(mount point, filesystem type) of the mount that holds ``path``; None when the table cannot be read."""
    if mounts is None:
        try:
            with open(MOUNTS, encoding="utf-8", errors="replace") as f:
                mounts = f.read()
        except OSError:
            return None
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point, kind = _unescape(fields[1]), fields[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, kind)
    return best


def is_network(kind: str) -> bool:
    return kind in NETWORK or (kind.startswith("fuse") and kind not in LOCAL_FUSE)


def network_notice(folder: Path, mounts: str | None = None) -> str | None:
    """One line when ``folder`` is on a network filesystem (for a SQLite journal there), else None."""
    found = filesystem(folder, mounts)
    if found is None or not is_network(found[1]):
        return None
    return (
        f"kontext_nb: the runs folder {folder} is on a network filesystem ({found[1]}): its SQLite journal is not "
        "safe for kernels on several hosts; set journal_url = 'postgresql://...' to share one journal "
        "(docs/deployment.md)"
    )
