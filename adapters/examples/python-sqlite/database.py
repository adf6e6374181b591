"""The SQLite side of `python_sqlite`: the schema, one connection, and its locks.

Under WASI, SQLite (3.51, in componentize-py's CPython) has no POSIX locks and
no shared memory: it locks with the `unix-dotfile` VFS, a directory
`<db>.lock` created by `mkdir` for the whole of any transaction, reads
included, and it is built without WAL. So one instance at a time reads or
writes; the others wait (`retry_busy`). See README.md, "Locks".
"""

import contextlib
import os
import sqlite3
import time
import urllib.parse
from typing import Iterator, List, Optional, Tuple

SCHEMA_VERSION = 1
# Large pages suit rows of 1 MiB: 16 overflow pages a row instead of 256.
PAGE_SIZE = 65536
# An object is stored as rows of this many bytes (the last one shorter).
ROW_BYTES = 1 << 20
# SQLite's own busy handler waits this long at a time (it sleeps 1..100 ms
# between tries); between slices, `retry_busy` looks for a stale lock.
BUSY_SLICE_S = 1.0
# How long an operation waits for the lock in all before it is `transient`.
BUSY_WAIT_S = 20.0
# A lock directory this old was left by an instance killed inside a
# transaction: a transaction of this adapter moves at most one append's
# rows (16 MiB), CLEAN_BATCH_ROWS or COPY_BATCH_ROWS, then commits; a call
# that does more takes the lock again for each batch.
STALE_LOCK_S = 60.0
# Uploads not touched for a day were left by a writer killed before `abort`.
STALE_UPLOAD_MS = 24 * 3600 * 1000
# Rows deleted, or copied, per transaction.
CLEAN_BATCH_ROWS = 32
COPY_BATCH_ROWS = 16

# `uploads` holds the versions that are not (or no longer) an object's:
# `pending` ones being written, `discarded` ones being deleted. Its ids are
# the version ids of all chunks, committed or not, and AUTOINCREMENT never
# hands one out twice, so a reader of an old version can never meet the
# rows of a newer one.
SCHEMA = """
CREATE TABLE objects (
    path TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'discarded')),
    started_ms INTEGER NOT NULL,
    touched_ms INTEGER NOT NULL,
    staged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE chunks (
    version INTEGER NOT NULL,
    start INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (version, start)
);
"""
TABLES = {"objects", "uploads", "chunks", "sqlite_sequence"}

SQLITE_BUSY = 5
SQLITE_LOCKED = 6


class NotAStore(Exception):
    """The file is a database, but not one this adapter made."""


class Locked(Exception):
    """The lock stayed taken for BUSY_WAIT_S."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def error_code(e: sqlite3.Error) -> int:
    """SQLite's primary result code of an exception (0 if it has none)."""
    return (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF


def uri(path: str, vfs: str) -> str:
    return f"file:{urllib.parse.quote(path)}?vfs={vfs}"


class Database:
    """One connection to the store, for one instance (one operation).

    Never two connections in one instance: dotfile locks are not shared
    inside a process, so a second connection would wait on the first.
    """

    def __init__(self, path: str):
        self.path = path
        self.lock_dir = path + ".lock"
        self.conn = sqlite3.connect(
            uri(path, "unix-dotfile"),
            uri=True,
            timeout=BUSY_SLICE_S,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,
        )
        # Sorts and statement journals in memory: WASI grants no temp dir.
        self.conn.execute("PRAGMA temp_store=MEMORY")

    def close(self) -> None:
        self.conn.close()

    # --- schema ---------------------------------------------------------

    def ensure_schema(self) -> None:
        """Creates the tables in a new (empty) file; checks an existing one."""
        version = self.query("PRAGMA user_version")[0][0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise NotAStore(f"its format is version {version}; this adapter reads version {SCHEMA_VERSION}")
        # Both take effect only while the file is empty, and only outside a
        # transaction. Incremental auto-vacuum keeps a map of the pages,
        # which lets a delete free a row's overflow pages without reading
        # them (and `PRAGMA incremental_vacuum` shrink the file).
        self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        with self.transaction() as c:
            if c.execute("PRAGMA user_version").fetchall()[0][0] == SCHEMA_VERSION:
                return  # another instance made it meanwhile
            names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
            if names:
                raise NotAStore(f"it holds other tables ({', '.join(sorted(names))}), not an object store")
            c.executescript_in_transaction(SCHEMA)
            c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- transactions and locks -----------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Tx"]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception.

        The lock is taken at BEGIN (waiting as `retry_busy` does) and held
        to the end: with dotfile locks nothing can take it meanwhile, so
        nothing inside can be busy.
        """
        self.retry_busy(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        try:
            yield Tx(self.conn)
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def query(self, sql: str, args: Tuple = ()) -> List[Tuple]:
        """One read in autocommit: every row, so the statement ends and the
        lock is released before this returns."""
        return self.retry_busy(lambda: self.conn.execute(sql, args).fetchall())

    def retry_busy(self, step):
        """Runs `step` until it gets the lock, for at most BUSY_WAIT_S.

        SQLite's busy handler waits BUSY_SLICE_S at a time; between slices
        this looks for a lock directory left by a killed instance and
        recovers from it (`break_stale_lock`).
        """
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                return step()
            except sqlite3.OperationalError as e:
                if error_code(e) not in (SQLITE_BUSY, SQLITE_LOCKED):
                    raise
                if time.monotonic() >= deadline:
                    raise Locked(
                        f"{e} for {BUSY_WAIT_S:.0f} s: another instance holds it, or one killed "
                        f"inside a transaction left `{self.lock_dir}` (removed when {STALE_LOCK_S:.0f} s old)"
                    )
            self.break_stale_lock()

    def lock_age(self, path: str) -> float:
        try:
            return time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return 0.0

    def break_stale_lock(self) -> None:
        """Recovers from an instance killed inside a transaction.

        Its lock directory stays, and so may a hot rollback journal (a
        transaction killed while it wrote the database file). The dotfile
        VFS never rolls such a journal back: it sees its own lock directory
        as someone else's reservation and reads the half-written file (then
        `database disk image is malformed`). So, holding a mutex file so
        that only one instance breaks the lock: keep the stale directory
        (it still shuts every other instance out), open the file once with
        the `unix-none` VFS, which rolls a hot journal back, and only then
        remove the directory.
        """
        if self.lock_age(self.lock_dir) < STALE_LOCK_S:
            return
        mutex = self.path + ".lock-break"
        try:
            os.close(os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            # Another instance is breaking it, or was killed doing so (a
            # matter of milliseconds, so a mutex this old is left over).
            if self.lock_age(mutex) > STALE_LOCK_S:
                remove_quietly(mutex)
            return
        try:
            # Looked at again under the mutex: another breaker may have
            # removed it, and a live instance taken a fresh one.
            if self.lock_age(self.lock_dir) < STALE_LOCK_S:
                return
            rescue = sqlite3.connect(uri(self.path, "unix-none"), uri=True, isolation_level=None)
            try:
                rescue.execute("SELECT count(*) FROM sqlite_master").fetchall()
            finally:
                rescue.close()
            try:
                os.rmdir(self.lock_dir)
            except FileNotFoundError:
                pass
        finally:
            remove_quietly(mutex)

    # --- versions ---------------------------------------------------------

    def discard(self, version: int, mark: bool = True) -> None:
        """Deletes a version's chunks, CLEAN_BATCH_ROWS at a time, then its
        `uploads` row. The first transaction marks it `discarded` (when
        `mark`), so that a killed instance leaves it to `sweep`."""
        first = True
        while True:
            with self.transaction() as c:
                if first and mark:
                    c.execute("UPDATE uploads SET state='discarded' WHERE id=?", (version,))
                first = False
                deleted = c.execute(
                    "DELETE FROM chunks WHERE rowid IN "
                    "(SELECT rowid FROM chunks WHERE version=? ORDER BY start LIMIT ?)",
                    (version, CLEAN_BATCH_ROWS),
                ).rowcount
                if deleted < CLEAN_BATCH_ROWS:
                    c.execute("DELETE FROM uploads WHERE id=?", (version,))
                    return

    def sweep(self, budget_s: float = 2.0) -> None:
        """Discards what killed instances left: `discarded` versions whose
        deletion stopped, and `pending` uploads untouched for a day. Stops
        after about `budget_s`; the rest waits for the next sweep."""
        deadline = time.monotonic() + budget_s
        rows = self.query(
            "SELECT id FROM uploads WHERE state='discarded' OR touched_ms < ? ORDER BY id LIMIT 16",
            (now_ms() - STALE_UPLOAD_MS,),
        )
        for (version,) in rows:
            if time.monotonic() > deadline:
                return
            self.discard(version)


class Tx:
    """The connection inside a transaction (what `with db.transaction()` gives)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, args: Tuple = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def one(self, sql: str, args: Tuple = ()) -> Optional[Tuple]:
        rows = self.conn.execute(sql, args).fetchall()
        return rows[0] if rows else None

    def executescript_in_transaction(self, script: str) -> None:
        # Connection.executescript would COMMIT first; run the statements
        # one by one instead.
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
