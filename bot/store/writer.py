"""One writing daemon per database, enforced inside the database itself.

The daemon also holds an ``flock`` on ``<db>.lock`` (taken on the resolved real path, so a
symlink to the database finds the same lock file), and refuses a database file with more than
one hard link. Neither can see the same file reached through a bind mount; this lock can,
because it lives in the file (and is checkpointed into it at once, since a process under
another path name reads another WAL): the ``writer`` table holds one row naming the daemon that writes (pid, host, the
process's start time, its run) and when it last said it was alive. A second daemon refuses to
start while that row names a live process on this host, or a heartbeat younger than
``STALE_AFTER_S`` from another host. A row left by a killed process (its pid gone, or reused by
a process that started later) is taken over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

from bot.store.schema import StoreError

STALE_AFTER_S = 120.0
"""A writer from another host that has not refreshed its row for this long is presumed dead."""


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), '' if unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may contain spaces; it is wrapped in parentheses
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int) -> bool:
    """A process with this pid exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int, started: str) -> bool:
    """``pid`` lives and is the process that started at ``started`` (not a reuse of its pid)."""
    if not pid_alive(pid):
        return False
    return not started or not process_start(pid) or process_start(pid) == started


class WriterLock:
    """The ``writer`` row of one database (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.started = process_start(self.pid)
        self.held = False

    def acquire(self, run_id: str) -> None:
        """Take the lock or raise :class:`StoreError` naming the writer that holds it."""
        conn = self.conn
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT pid, host, proc_start, run_id, ts FROM writer WHERE id = 1").fetchone()
            if row is not None:
                pid, host, started, other_run, ts = row
                mine = pid == self.pid and host == self.host
                if not mine:
                    if host == self.host and _alive(int(pid), started or ""):
                        raise StoreError(f"another bot daemon (pid {pid}, run {other_run}) is writing to {self.path}; stop it first or use another run.db")
                    if host != self.host and now - float(ts) < STALE_AFTER_S:
                        raise StoreError(f"a bot daemon on host {host} (pid {pid}, run {other_run}) wrote to {self.path} {now - float(ts):.0f}s ago; stop it first")
            conn.execute(
                "INSERT OR REPLACE INTO writer (id, pid, host, proc_start, run_id, ts) VALUES (1, ?, ?, ?, ?, ?)",
                [self.pid, self.host, self.started, run_id, now],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.held = True
        # into the main file at once: a process reaching the same file under another name (a
        # bind mount) reads its own WAL, never ours, so it must find the row in the file itself
        try:
            conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        except sqlite3.Error:
            pass

    def refresh(self) -> bool:
        """Say we are alive (the daemon does this with its heartbeat); False when the row is no
        longer ours (another writer took the database over): the caller must stop writing."""
        if not self.held:
            return False
        with self.conn:
            cur = self.conn.execute("UPDATE writer SET ts = ? WHERE id = 1 AND pid = ? AND host = ?", [time.time(), self.pid, self.host])
        if cur.rowcount != 1:
            self.held = False
            return False
        return True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            with self.conn:
                self.conn.execute("DELETE FROM writer WHERE id = 1 AND pid = ? AND host = ?", [self.pid, self.host])
        except sqlite3.Error:
            pass  # the next daemon sees a dead pid and takes over
