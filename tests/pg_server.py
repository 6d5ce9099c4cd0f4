"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` binaries,
a temporary data directory, 127.0.0.1 on a free port, run as the
``postgres`` system user when the tests run as root (the server refuses
root), stopped and removed afterwards."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile


def find_bin(name):
    """Path of a PostgreSQL program, on PATH or in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def missing_reason():
    """Why a server cannot be started here, or None when it can."""
    for name in ("initdb", "pg_ctl"):
        if find_bin(name) is None:
            return (f"PostgreSQL's {name} is not installed (Debian: apt-get install "
                    "postgresql; .ci/run installs it)")
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' system user to run the server"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'xpnn[postgres]')"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="xpnn-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(find_bin("initdb"), "-D", self.data, "-U", "xpnn", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=50")
        self._run(find_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l",
                  os.path.join(self.root, "log"), "-w", "-t", "60", "start")
        self.url = f"postgresql://xpnn@127.0.0.1:{self.port}/postgres"

    def new_database(self, name):
        """A URL to a database created now, empty: no Optuna tables yet."""
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=xpnn dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://xpnn@127.0.0.1:{self.port}/{name}"

    def _run(self, *cmd):
        out = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stdout}{out.stderr}")

    def stop(self):
        try:
            self._run(find_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
