"""`python_sqlite`: a wharf storage adapter in Python that keeps objects as
rows of one SQLite database file, inside a directory the host grants.

Built into a WebAssembly component by componentize-py (see README.md and
build.sh). The database (database.py has the schema) holds:

- `objects`: one row per visible object: its path, the version holding its
  bytes, size, modification time. The etag is the version id.
- `chunks`: the bytes of every version, in rows of ROW_BYTES (1 MiB) keyed by
  (version, start offset). A write appends rows of its own new version as it
  goes, so no one holds a whole object in memory; `finish` makes the version
  the object's in one transaction, checking the put mode in it.
- `uploads`: versions not (or no longer) an object's: `pending` writes and
  `discarded` old versions, whose rows are deleted a batch at a time.

The host creates a fresh instance for every operation; each opens its own
connection. Nothing is kept between operations.
"""

import functools
import os
import secrets
import sqlite3
import stat as stat_mod
import traceback
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import adapter, maintenance
from wit_world.imports.types import (
    ByteRange,
    Capabilities,
    Error,
    Error_AlreadyExists,
    Error_Backend,
    Error_Denied,
    Error_Invalid,
    Error_NotFound,
    Error_PreconditionFailed,
    Error_Transient,
    ObjectMeta,
    Page,
    PutMode,
    PutMode_Create,
    PutMode_Overwrite,
    PutMode_Update,
)

from database import (
    CLEAN_BATCH_ROWS,
    COPY_BATCH_ROWS,
    ROW_BYTES,
    Database,
    Locked,
    NotAStore,
    Tx,
    error_code,
    now_ms,
)

DEFAULT_PATH = "/data/objects.db"
LIST_MAX_LIMIT = 1000
WRITE_MAX_CHUNK = 16 << 20
# One write in this many first sweeps what killed instances left.
SWEEP_ONE_IN = 32

# SQLite result codes (https://sqlite.org/rescode.html) and what they are
# in the contract's terms.
SQLITE_DENIED = {3, 8, 23}  # PERM, READONLY, AUTH
SQLITE_TRANSIENT = {5, 6, 9, 15}  # BUSY, LOCKED, INTERRUPT, PROTOCOL


class AdapterError(Exception):
    """Raised inside the adapter; turned into `Err(error)` at the boundary."""

    def __init__(self, error: Error):
        super().__init__(error.value)
        self.error = error


def sqlite_error(e: sqlite3.Error) -> Error:
    """Maps an exception of the sqlite3 module to the contract's error, in
    SQLite's words (`database is locked`, `database or disk is full`)."""
    code = error_code(e)
    if code in SQLITE_DENIED:
        return Error_Denied(str(e))
    if code in SQLITE_TRANSIENT:
        return Error_Transient(str(e))
    return Error_Backend(str(e))


def os_error(e: OSError) -> Error:
    msg = e.strerror or str(e)
    if isinstance(e, PermissionError):
        return Error_Denied(msg)
    return Error_Backend(msg)


def contract(method):
    """Wraps an exported method so that every failure leaves as `Err(error)`.

    componentize-py turns a raised `Err(value)` into the `error` of the WIT
    `result`; any other exception would trap the instance, which the host
    treats as a broken adapter.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Err:
            raise
        except AdapterError as e:
            raise Err(e.error)
        except Locked as e:
            # Nothing was committed: the lock was never taken.
            raise Err(Error_Transient(str(e)))
        except sqlite3.Error as e:
            raise Err(sqlite_error(e))
        except OSError as e:
            raise Err(os_error(e))
        except Exception:
            raise Err(Error_Backend(f"{method.__name__}: {traceback.format_exc(limit=4)}"))

    return wrapper


def is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def check_path(path: str) -> None:
    """Rejects what the host already rejects (the adapter does not rely on it)."""
    bad = (
        not path
        or len(path.encode("utf-8")) > 1024
        or path.startswith("/")
        or path.endswith("/")
        or any(is_control(c) for c in path)
        or any(s in ("", ".", "..") for s in path.split("/"))
    )
    if bad:
        raise AdapterError(Error_Invalid(f"invalid object path `{path}`"))


def check_prefix(prefix: str) -> None:
    if "\0" in prefix or prefix.startswith("/") or ".." in prefix.split("/"):
        raise AdapterError(Error_Invalid(f"invalid list prefix `{prefix}`"))


def etag_of(version: int) -> str:
    return f"v{version:x}"


def upload_discarded() -> AdapterError:
    return AdapterError(
        Error_Backend("the upload was discarded before it finished (aborted as pending, or untouched for a day)")
    )


def check_mode(mode: PutMode, current: Optional[int]) -> None:
    """Whether `mode` lets a write replace `current` (a version, or None
    for no object)."""
    if isinstance(mode, PutMode_Create):
        if current is not None:
            raise AdapterError(Error_AlreadyExists("the object already exists"))
    elif isinstance(mode, PutMode_Update):
        now = etag_of(current) if current is not None else None
        if now != mode.value:
            raise AdapterError(
                Error_PreconditionFailed(f"etag is {now or 'absent (no object)'}, expected {mode.value}")
            )
    elif not isinstance(mode, PutMode_Overwrite):
        raise AdapterError(Error_Invalid(f"unknown put mode {mode!r}"))


def commit_version(c: Tx, path: str, version: int, size: int, mode: PutMode) -> Tuple[ObjectMeta, Optional[int]]:
    """Inside a transaction: makes `version` the object at `path` if `mode`
    allows it. Returns the new meta and the replaced version whose rows the
    caller deletes after the commit (`retire`), if any.

    The transaction holds the database's only lock from its BEGIN, so of two
    racing `create`s (or `update`s of one etag) the second sees the first's
    row: exactly one wins.
    """
    current = c.one("SELECT version, size FROM objects WHERE path=?", (path,))
    check_mode(mode, current[0] if current is not None else None)
    # Still ours: abort-pending or a sweep may have discarded it meanwhile.
    if c.execute("DELETE FROM uploads WHERE id=? AND state='pending'", (version,)).rowcount != 1:
        raise upload_discarded()
    modified = now_ms()
    c.execute(
        "INSERT INTO objects (path, version, size, modified_ms) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (path) DO UPDATE SET "
        "version=excluded.version, size=excluded.size, modified_ms=excluded.modified_ms",
        (path, version, size, modified),
    )
    old = retire(c, path, *current) if current is not None else None
    return ObjectMeta(path=path, size=size, etag=etag_of(version), modified_ms=modified), old


def retire(c: Tx, path: str, version: int, size: int) -> Optional[int]:
    """Inside a transaction: a version no object points to any more. The
    rows of a small one go in this transaction; a larger one is marked
    `discarded` and returned, for the caller to delete its rows after the
    commit, a batch per transaction (`discard_quietly`)."""
    if size <= CLEAN_BATCH_ROWS * ROW_BYTES:
        c.execute("DELETE FROM chunks WHERE version=?", (version,))
        return None
    t = now_ms()
    c.execute(
        "INSERT INTO uploads (id, path, state, started_ms, touched_ms) VALUES (?, ?, 'discarded', ?, ?)",
        (version, path, t, t),
    )
    return version


def begin_upload(c: Tx, path: str) -> int:
    """Inside a transaction: a new pending version of `path`; its id."""
    t = now_ms()
    return c.execute(
        "INSERT INTO uploads (path, state, started_ms, touched_ms) VALUES (?, 'pending', ?, ?)",
        (path, t, t),
    ).lastrowid


def discard_quietly(db: Database, version: int, mark: bool = False) -> None:
    """Deletes a version's rows: an old one after a commit (already marked
    `discarded`), or a failed copy's (`mark`). A failure leaves it to a
    later sweep; what happened before (a commit, the copy's own error)
    stands."""
    try:
        db.discard(version, mark=mark)
    except (sqlite3.Error, Locked, OSError):
        pass


class Adapter(exports.Adapter):
    """The exported interface `adapter`: only the `open` function."""

    @contract
    def open(self, config: List[Tuple[str, str]]) -> adapter.Backend:
        path = DEFAULT_PATH
        for key, value in config:
            if key == "path":
                path = value
            else:
                raise AdapterError(Error_Invalid(f"unknown config key `{key}` (known: path)"))
        if not path.startswith("/") or path.endswith("/"):
            raise AdapterError(Error_Invalid(f"path `{path}` must be the database file's absolute guest path"))
        folder = os.path.dirname(path)
        try:
            st = os.stat(folder)
        except OSError as e:
            raise AdapterError(
                Error_Invalid(f"`{folder}` is not accessible ({e.strerror or e}); is it granted to this backend?")
            )
        if not stat_mod.S_ISDIR(st.st_mode):
            raise AdapterError(Error_Invalid(f"`{folder}` is not a directory"))
        try:
            if stat_mod.S_ISDIR(os.stat(path).st_mode):
                raise AdapterError(Error_Invalid(f"`{path}` is a directory, not a database file"))
        except FileNotFoundError:
            pass  # a new store
        db = Database(path)
        try:
            db.ensure_schema()
        except NotAStore as e:
            db.close()
            raise AdapterError(Error_Invalid(f"`{path}` is not a python_sqlite store: {e}"))
        except sqlite3.DatabaseError as e:
            db.close()
            if error_code(e) == 26:  # SQLITE_NOTADB
                raise AdapterError(Error_Invalid(f"`{path}` is not a SQLite database ({e})"))
            raise
        return Backend(db)


class Backend(adapter.Backend):
    """The `backend` resource: one database, through one connection."""

    def __init__(self, db: Database):
        self.db = db

    def capabilities(self) -> Capabilities:
        return Capabilities(
            read_range=True,
            write_create=True,
            write_update=True,
            copy=True,
            list_max_limit=LIST_MAX_LIMIT,
            write_min_chunk=0,
            write_max_chunk=WRITE_MAX_CHUNK,
            max_object_size=None,
        )

    def object_row(self, path: str) -> Optional[Tuple[int, int, int]]:
        """(version, size, modified_ms) of the object, or None."""
        check_path(path)
        rows = self.db.query("SELECT version, size, modified_ms FROM objects WHERE path=?", (path,))
        return rows[0] if rows else None

    @contract
    def stat(self, path: str) -> ObjectMeta:
        row = self.object_row(path)
        if row is None:
            raise AdapterError(Error_NotFound("no such object"))
        version, size, modified = row
        return ObjectMeta(path=path, size=size, etag=etag_of(version), modified_ms=modified)

    @contract
    def exists(self, path: str) -> bool:
        return self.object_row(path) is not None

    @contract
    def delete(self, path: str) -> None:
        check_path(path)
        with self.db.transaction() as c:
            row = c.one("SELECT version, size FROM objects WHERE path=?", (path,))
            if row is None:
                return
            c.execute("DELETE FROM objects WHERE path=?", (path,))
            old = retire(c, path, *row)
        if old is not None:
            discard_quietly(self.db, old)

    @contract
    def list(self, prefix: str, cursor: Optional[str], limit: int) -> Page:
        check_prefix(prefix)
        limit = max(1, min(limit, LIST_MAX_LIMIT))
        # Paths sort by their UTF-8 bytes in SQLite (BINARY collation) and
        # by code point in Python: the same order. Those with the prefix
        # are contiguous from the prefix on, so the first one without it
        # ends the listing; one row more than `limit` says if there is more.
        if cursor is not None and cursor >= prefix:
            where, key = "path > ?", cursor
        else:
            where, key = "path >= ?", prefix
        rows = self.db.query(
            f"SELECT path, version, size, modified_ms FROM objects WHERE {where} ORDER BY path LIMIT ?",
            (key, limit + 1),
        )
        entries = []
        for path, version, size, modified in rows:
            if not path.startswith(prefix):
                break
            entries.append(ObjectMeta(path=path, size=size, etag=etag_of(version), modified_ms=modified))
        more = len(entries) > limit
        entries = entries[:limit]
        return Page(entries=entries, next_cursor=entries[-1].path if more else None)

    @contract
    def copy(self, source: str, destination: str, mode: PutMode) -> ObjectMeta:
        """Copies the source's rows into a new version of the destination and
        commits it as `finish` does. An object of up to COPY_BATCH_ROWS rows
        (16 MiB) is copied and committed in one transaction; a larger one a
        batch per transaction, so that the lock is never held for long."""
        check_path(destination)
        row = self.object_row(source)
        if row is None:
            raise AdapterError(Error_NotFound("no such object"))
        src, size, _ = row
        if not isinstance(mode, PutMode_Overwrite):
            dest = self.object_row(destination)
            check_mode(mode, dest[0] if dest is not None else None)
        version = None
        copied = 0
        try:
            while True:
                with self.db.transaction() as c:
                    if version is None:
                        version = begin_upload(c, destination)
                    for _ in range(COPY_BATCH_ROWS):
                        if copied >= size:
                            break
                        got = c.one(
                            "SELECT start, data FROM chunks WHERE version=? AND start=?",
                            (src, copied),
                        )
                        if got is None:
                            # Its rows are being deleted: it was replaced or
                            # deleted since the copy began. Again may work.
                            raise AdapterError(Error_Transient("the source was replaced or deleted while it was copied"))
                        c.execute(
                            "INSERT INTO chunks (version, start, data) VALUES (?, ?, ?)",
                            (version, copied, got[1]),
                        )
                        copied += len(got[1])
                    if copied >= size:
                        meta, old = commit_version(c, destination, version, size, mode)
                        break
                    if c.execute(
                        "UPDATE uploads SET touched_ms=?, staged=? WHERE id=? AND state='pending'",
                        (now_ms(), copied, version),
                    ).rowcount != 1:
                        raise upload_discarded()
        except BaseException:
            if version is not None:
                discard_quietly(self.db, version, mark=True)
            raise
        if old is not None:
            discard_quietly(self.db, old)
        return meta

    @contract
    def health(self) -> str:
        # Takes the write lock, as a write would, and reads in it.
        with self.db.transaction() as c:
            pending = c.one("SELECT count(*) FROM uploads WHERE state='pending'")[0]
        return (
            f"SQLite {sqlite3.sqlite_version} database `{self.db.path}` takes its write lock; "
            f"{pending} pending uploads (python_sqlite)"
        )

    @contract
    def read(self, path: str, range: Optional[ByteRange]) -> adapter.Reader:
        row = self.object_row(path)
        if row is None:
            raise AdapterError(Error_NotFound("no such object"))
        version, size, _ = row
        if range is None:
            start, end = 0, size
        else:
            if range.end is not None and range.end < range.start:
                raise AdapterError(Error_Invalid("range end before start"))
            end = size if range.end is None else min(range.end, size)
            start = min(range.start, end)
        return Reader(self.db, path, version, start, end)

    @contract
    def write(self, path: str, mode: PutMode, size_hint: Optional[int]) -> adapter.Writer:
        check_path(path)
        if not isinstance(mode, PutMode_Overwrite):
            # Refused now rather than after every byte was sent; `finish`
            # decides, atomically.
            row = self.object_row(path)
            check_mode(mode, row[0] if row is not None else None)
        if secrets.randbelow(SWEEP_ONE_IN) == 0:
            try:
                self.db.sweep()
            except (sqlite3.Error, Locked, OSError):
                pass  # the next sweep tries again; the write goes on
        return Writer(self.db, path, mode)


class Reader(adapter.Reader):
    """The `reader` resource: a version, read one row at a time.

    Each row is one query in autocommit, so the lock is held only while a
    row is read, never between calls. A version's rows never change; once
    the object is replaced or deleted they are deleted, and the reader
    fails at the first one missing: it never returns bytes of another
    version.
    """

    def __init__(self, db: Database, path: str, version: int, start: int, end: int):
        self.db = db
        self.path = path
        self.version = version
        self.pos = start
        self.end = end
        self.row_start = 0
        self.row = b""

    @contract
    def next(self, max_bytes: int) -> bytes:
        if self.pos >= self.end:
            self.row = b""
            return b""
        if not (self.row_start <= self.pos < self.row_start + len(self.row)):
            # The row holding `pos`: the last one starting at or before it.
            rows = self.db.query(
                "SELECT start, data FROM chunks WHERE version=? AND start<=? ORDER BY start DESC LIMIT 1",
                (self.version, self.pos),
            )
            if not rows or rows[0][0] + len(rows[0][1]) <= self.pos:
                raise self.gone()
            self.row_start, self.row = rows[0]
        at = self.pos - self.row_start
        take = min(max_bytes, self.end - self.pos, len(self.row) - at)
        self.pos += take
        if at == 0 and take == len(self.row):
            return self.row
        return self.row[at : at + take]

    def gone(self) -> AdapterError:
        if self.db.query("SELECT 1 FROM objects WHERE path=?", (self.path,)):
            return AdapterError(Error_PreconditionFailed("the object was replaced while it was read"))
        return AdapterError(Error_NotFound("the object was deleted while it was read"))


class Writer(adapter.Writer):
    """The `writer` resource: a pending version, stored a row at a time.

    Appends are gathered into rows of ROW_BYTES; every append that completes
    a row stores its complete rows in one transaction, so the writer holds
    less than one row plus one append. `finish` stores the last row and
    commits in one transaction.

    componentize-py (0.25) runs no Python code when the host drops a
    resource, so a writer cannot clean up in a destructor. wharf's host
    calls `abort` on every writer it drops unfinished; a write whose
    instance was killed before that is swept after a day.
    """

    def __init__(self, db: Database, path: str, mode: PutMode):
        self.db = db
        self.path = path
        self.mode = mode
        self.buf = bytearray()
        self.version: Optional[int] = None
        self.stored = 0
        self.done = False

    def check_open(self, what: str) -> None:
        if self.done:
            raise AdapterError(Error_Invalid(f"{what} after finish or abort"))

    def store_rows(self, c: Tx, view: memoryview) -> None:
        for i in range(0, len(view), ROW_BYTES):
            c.execute(
                "INSERT INTO chunks (version, start, data) VALUES (?, ?, ?)",
                (self.version, self.stored + i, view[i : i + ROW_BYTES]),
            )

    @contract
    def append(self, chunk: bytes) -> None:
        self.check_open("append")
        # Rows are cut from the chunk itself when nothing is buffered (the
        # host's appends are whole MiBs), saving a copy.
        if self.buf:
            self.buf += chunk
            data = self.buf
        else:
            data = chunk
        full = len(data) - len(data) % ROW_BYTES
        if full == 0:
            if data is chunk:
                self.buf += chunk
            return
        new = self.version is None
        try:
            with memoryview(data) as view, self.db.transaction() as c:
                if new:
                    self.version = begin_upload(c, self.path)
                self.store_rows(c, view[:full])
                if c.execute(
                    "UPDATE uploads SET touched_ms=?, staged=staged+? WHERE id=? AND state='pending'",
                    (now_ms(), full, self.version),
                ).rowcount != 1:
                    raise upload_discarded()
        except BaseException:
            if new:
                self.version = None  # rolled back with the transaction
            raise
        self.stored += full
        if data is chunk:
            self.buf = bytearray(chunk[full:])
        else:
            del self.buf[:full]

    @contract
    def finish(self) -> ObjectMeta:
        self.check_open("finish")
        self.done = True
        new = self.version is None
        try:
            with memoryview(self.buf) as view, self.db.transaction() as c:
                if new:
                    self.version = begin_upload(c, self.path)
                self.store_rows(c, view)
                meta, old = commit_version(c, self.path, self.version, self.stored + len(view), self.mode)
        except BaseException:
            if new:
                self.version = None
            self.drop()
            raise
        self.buf = bytearray()
        if old is not None:
            discard_quietly(self.db, old)
        return meta

    def drop(self) -> None:
        self.buf = bytearray()
        if self.version is not None:
            version, self.version = self.version, None
            self.db.discard(version)

    @contract
    def abort(self) -> None:
        self.done = True
        self.drop()


class Maintenance(exports.Maintenance):
    """The exported interface `maintenance`: pending uploads, which `list`
    never shows, for `wharf gc` (and the sweep in `write` does the same
    after a day)."""

    @contract
    def list_pending(
        self, backend: adapter.Backend, prefix: str, cursor: Optional[str], limit: int
    ) -> maintenance.PendingPage:
        check_prefix(prefix)
        after = parse_upload_id(cursor) if cursor is not None else 0
        limit = max(1, min(limit, LIST_MAX_LIMIT))
        rows = backend.db.query(
            "SELECT id, path, started_ms, staged FROM uploads "
            "WHERE state='pending' AND id > ? AND substr(path, 1, ?) = ? ORDER BY id LIMIT ?",
            (after, len(prefix), prefix, limit + 1),
        )
        entries = [
            maintenance.PendingUpload(path=path, upload_id=str(id), started_ms=started, staged_bytes=staged)
            for id, path, started, staged in rows[:limit]
        ]
        more = len(rows) > limit
        return maintenance.PendingPage(entries=entries, next_cursor=entries[-1].upload_id if more else None)

    @contract
    def abort_pending(self, backend: adapter.Backend, path: str, upload_id: str) -> None:
        version = parse_upload_id(upload_id)
        rows = backend.db.query(
            "SELECT 1 FROM uploads WHERE id=? AND path=? AND state='pending'", (version, path)
        )
        if rows:
            backend.db.discard(version)


def parse_upload_id(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0 or str(value) != text:
        raise AdapterError(Error_Invalid(f"`{text}` is not an upload id of this adapter"))
    return value
