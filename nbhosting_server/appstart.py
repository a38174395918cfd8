"""The app's start: its database migrated, an empty folder for its workers' request counts, then uvicorn
(``python -m nbhosting_server.appstart <uvicorn's arguments>``, what `nbh serve` and the app's systemd unit run).

The database is migrated here, once, before any worker exists (each worker then finds it at the newest version).

With several workers, each counts its requests in its own file of ``settings.metrics_dir`` (prometheus_client's
multiprocess mode) and a scrape sums them. The folder belongs to one start of the app: the files a previous start
left (workers long gone, their pids perhaps reused) are removed before any worker exists, here in the process that
becomes uvicorn's supervisor; a worker that dies and is replaced keeps its file (its counts stay in the sums).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nbhosting_core import Settings

from .appdb import app_database


def empty_metrics_dir(path: Path) -> None:
    """Make ``path`` (0700) if missing, and remove the counters' files (``*.db``) in it; nothing else is touched."""
    path.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in os.listdir(fd):
            if name.endswith(".db"):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> None:
    """Migrate the database, empty the metrics folder, name it to prometheus_client, and become uvicorn."""
    args = sys.argv[1:] if argv is None else argv
    settings = Settings()
    app_database(settings).dispose()  # migrated to the newest, by this one process
    folder = settings.metrics_dir
    empty_metrics_dir(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # inherited by uvicorn's workers
    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", *args])  # noqa: S606 (this Python, uvicorn)


if __name__ == "__main__":
    main()
