"""A PostgreSQL server of a test's own: ``initdb`` in a folder of its own, started on a
free port, stopped the hard way (``pg_ctl stop -m immediate``, as a crash) and started
again by the test; the machine's own server is never touched. As root, the server runs
as the ``postgres`` user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cronwarden.testing import free_port


def bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


class PrivatePostgres:
    """``initdb`` once; :meth:`start` and :meth:`kill` as often as a test likes."""

    def __init__(self, binaries: Path) -> None:
        self._bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="cw-pg-"))
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        # fsync=off is safe against a killed server (the WAL is in the OS's cache); an
        # acknowledged commit must survive the kill, so synchronous_commit stays on
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "-t", "30", "start")  # fmt: skip

    def kill(self) -> None:
        """Stop at once, as a crash would: no checkpoint, every connection cut."""
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                      "stop")  # fmt: skip

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as, str(self._bin / program), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)  # fmt: skip
