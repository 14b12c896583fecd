"""The prometheus multiprocess directory of one worker: its own by default, and never wiped under another.

Each pool process writes its metric files (``*.db``) into ``PROMETHEUS_MULTIPROC_DIR`` and the
worker's ``/metrics`` adds up every file there. A starting worker removes the files earlier runs
left (their counts belong to dead processes), so two workers sharing a directory would wipe each
other's counts. Hence:

- the default directory is per worker: ``$TMPDIR/deploy-agent-metrics/NODE.QUEUE.PORT``;
- a worker holds an exclusive ``flock`` on ``DIR/.lock`` for its life (pool processes inherit it;
  the kernel drops it when the last of them exits, so a crash leaves no stale claim), and only the
  holder wipes the directory; a second worker on the same directory is refused with the first's pid.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MetricsDirInUse(RuntimeError):
    """Another live worker holds the metrics directory."""


def default_metrics_dir(
    node_name: str, queue: str, metrics_port: int | None, root: Path | None = None
) -> Path:
    """Return this worker's own metrics directory, named after its node name, queue and metrics port.

    ``%h`` in ``node_name`` is the host name, as Celery expands it.
    """
    node = node_name.replace("%h", socket.gethostname())
    name = ".".join(_UNSAFE.sub("_", part) for part in (node, queue, str(metrics_port or "no-port")))
    return (root or Path(tempfile.gettempdir())) / "deploy-agent-metrics" / name


@dataclass
class MetricsDirClaim:
    """A held metrics directory; the lock lasts as long as ``lock_file`` stays open."""

    path: Path
    lock_file: IO[str]

    def release(self) -> None:
        self.lock_file.close()


def claim_metrics_dir(path: Path) -> MetricsDirClaim:
    """Lock ``path`` for this worker and remove the metric files earlier runs left; return the claim.

    Raises ``MetricsDirInUse`` (naming the holder's pid) when a live worker holds it: nothing is removed.
    """
    path.mkdir(parents=True, exist_ok=True)
    lock_file = (path / LOCK_NAME).open("a+")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise MetricsDirInUse(
            f"the metrics directory {path} is in use by a running worker (pid {holder}); "
            "give this worker its own --metrics-dir, or leave it out to get a directory of its own"
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f"{os.getpid()}\n")
    lock_file.flush()
    for stale in path.glob("*.db"):
        stale.unlink()
    return MetricsDirClaim(path, lock_file)
